"""Write Parquet deterministically and publish a dataset folder atomically.

Parquet goes through pyarrow with zstd, content-defined chunking and a page index (what datasets >= 4.1 writes, so
a re-push to the Hub's Xet storage uploads only changed chunks), row groups of at most ~100 MB, and shards no larger
than ``max_shard_bytes``. The same frame always gives the same bytes.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_BYTES = 100 * 1024 * 1024
DEFAULT_SHARD_BYTES = 500 * 1024 * 1024


def _standard_type(t: pa.DataType) -> pa.DataType:
    """Large (64-bit offset) string/list types as the plain ones the Hub's tools expect."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_list(t) or pa.types.is_list(t) or pa.types.is_list_view(t):
        return pa.list_(_standard_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _standard_type(f.type), f.nullable) for f in t])
    return t


def to_arrow(frame: pl.DataFrame) -> pa.Table:
    table = frame.to_arrow()
    schema = pa.schema([pa.field(f.name, _standard_type(f.type), f.nullable) for f in table.schema])
    return table.cast(schema).replace_schema_metadata(None)


def write_table(table: pa.Table, path: Path) -> None:
    """Write one Parquet file (deterministic bytes; row groups of at most ~100 MB uncompressed)."""
    avg = max(1, table.nbytes // max(1, table.num_rows))
    rows_per_group = max(1, min(table.num_rows or 1, ROW_GROUP_BYTES // avg))
    pq.write_table(
        table,
        path,
        compression="zstd",
        row_group_size=rows_per_group,
        write_page_index=True,
        use_content_defined_chunking=True,
        write_statistics=True,
    )


def write_split(
    frame: pl.DataFrame, folder: Path, split: str, *, max_shard_bytes: int = DEFAULT_SHARD_BYTES
) -> list[Path]:
    """Write ``{split}-0000i-of-0000N.parquet`` shards into ``folder`` and return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    table = to_arrow(frame)
    n = max(1, math.ceil(table.nbytes / max_shard_bytes)) if table.num_rows else 1
    per = math.ceil(table.num_rows / n) if table.num_rows else 0
    paths = []
    for i in range(n):
        path = folder / f"{split}-{i:05d}-of-{n:05d}.parquet"
        write_table(table.slice(i * per, per) if per else table, path)
        paths.append(path)
    return paths


@contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` whole, on error it vanishes.

    The swap is two renames on the same filesystem: readers see the old folder or the new one, never a half-written
    one. A crash between the renames leaves the old dataset in ``.{name}.old-*`` beside it.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
    os.rename(tmp, target)
    os.chmod(target, 0o755)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
