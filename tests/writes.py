"""Write a table from tests as a build writes a split: one :class:`~chatdata.writer.SplitWriter` fed the rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from chatdata.settings import DEFAULT_SHARD_BYTES
from chatdata.writer import SplitWriter, to_arrow


def write_table(
    frame: pl.DataFrame, folder: Path, split: str, *, max_file_bytes: int = DEFAULT_SHARD_BYTES
) -> list[Path]:
    """``{split}-0000i-of-0000N.parquet`` files of ``frame`` in ``folder``; their paths."""
    table = to_arrow(frame)
    writer = SplitWriter(folder, split, table.schema, table.num_rows, max_file_bytes=max_file_bytes)
    writer.write(table)
    return writer.close()
