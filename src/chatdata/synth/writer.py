"""Write generated forests as Hub-layout Parquet parts, ``data/{split}-0000K-of-0000N.parquet``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chatdata.errors import ChatdataError
from chatdata.schema import HUB_SCHEMA
from chatdata.synth.forest import check_count, chunks, language_mix
from chatdata.writer import name_parts, part_path


def _validation_trees(tree_ids: Sequence[str], share: float) -> np.ndarray:
    """A tree goes to validation when the first 32 bits of its UUID fall below ``share`` (stable, by tree)."""
    return np.array([int(t[:8], 16) < share * 2**32 for t in tree_ids], dtype=bool)


_PART_NAME = re.compile(r"^(?P<split>[A-Za-z0-9_]+)-\d{5}-of-\d{5}\.parquet$")
_WRITE_OPTS: dict[str, Any] = {"compression": "zstd", "write_statistics": True}


class _PartWriter:
    """Rotates a split's files at tree boundaries; ``close`` names them ``{split}-0000K-of-0000N.parquet``."""

    def __init__(self, folder: Path, split: str, rows_per_file: int, row_group_size: int) -> None:
        self.folder, self.split = folder, split
        self.rows_per_file, self.row_group_size = rows_per_file, row_group_size
        self.temps: list[Path] = []
        self.writer: pq.ParquetWriter | None = None
        self.rows_in_file = 0

    def write(self, table: pa.Table, starts: np.ndarray) -> None:
        pos, n = 0, table.num_rows
        while pos < n:
            if self.writer is None:
                path = part_path(self.folder, self.split, len(self.temps))
                self.temps.append(path)
                self.writer = pq.ParquetWriter(path, HUB_SCHEMA, **_WRITE_OPTS)
                self.rows_in_file = 0
            room = self.rows_per_file - self.rows_in_file
            end = n if pos + room >= n else int(starts[np.searchsorted(starts, pos + room)])
            self.writer.write_table(table.slice(pos, end - pos), row_group_size=self.row_group_size)
            self.rows_in_file += end - pos
            pos = end
            if self.rows_in_file >= self.rows_per_file:
                self.writer.close()
                self.writer = None

    def close(self) -> list[Path]:
        if self.writer is not None:
            self.writer.close()
        return name_parts(self.folder, self.split, self.temps)


def write_forest(
    path_or_dir: str | os.PathLike[str],
    n_messages: int,
    *,
    seed: int = 0,
    rows_per_file: int = 500_000,
    row_group_size: int = 50_000,
    validation_share: float = 0.05,
    langs: Mapping[str, float] | Sequence[str] | None = None,
) -> dict[str, list[Path]]:
    """Write :func:`generate_forest`'s rows as Hub-layout parts under ``path_or_dir/data/``.

    Trees are split between ``train`` and ``validation`` (about ``validation_share`` of them, chosen from the
    tree id so the choice never depends on chunking) and never cut across files. Chunks are streamed, so
    memory stays flat whatever ``n_messages`` is. Old parts of the two splits in that folder are removed
    first. Returns the part paths per split.
    """
    check_count(n_messages, seed)
    if rows_per_file < 1 or row_group_size < 1 or not (0.0 <= validation_share <= 1.0):
        raise ChatdataError("synth: rows_per_file and row_group_size must be >= 1, validation_share in [0, 1]")
    mix = language_mix(langs)
    folder = Path(path_or_dir) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():
        m = _PART_NAME.match(old.name)
        if m and m["split"] in ("train", "validation"):
            old.unlink()
    writers = {s: _PartWriter(folder, s, rows_per_file, row_group_size) for s in ("train", "validation")}
    for table, starts in chunks(n_messages, seed, mix):
        roots = table.column("message_tree_id").take(pa.array(starts[:-1])).to_pylist()
        val_tree = _validation_trees(roots, validation_share)
        sizes = np.diff(starts)
        for split, keep_tree in (("train", ~val_tree), ("validation", val_tree)):
            if not keep_tree.any():
                continue
            part = table.filter(pa.array(np.repeat(keep_tree, sizes)))
            part_starts = np.concatenate([[0], np.cumsum(sizes[keep_tree])])
            writers[split].write(part, part_starts)
    return {split: w.close() for split, w in writers.items()}
