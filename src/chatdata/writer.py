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
import pyarrow.compute as pc
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


def payload_bytes(data: pa.Table | pa.ChunkedArray | pa.Array) -> int:
    """Bytes of values (strings' bytes plus offsets, fixed-width values, nested leaves), the size measure that
    decides shard and row-group sizes. It is additive over rows: any split of the rows into pieces sums to the
    whole, so a stream written piece by piece is cut exactly like the same rows written at once."""
    if isinstance(data, pa.Table):
        return sum(payload_bytes(c) for c in data.columns)
    if isinstance(data, pa.ChunkedArray):
        return sum(payload_bytes(c) for c in data.chunks)
    t = data.type
    if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return int(pc.sum(pc.binary_length(data)).as_py() or 0) + 4 * len(data)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return 4 * len(data) + payload_bytes(data.flatten())
    if pa.types.is_struct(t):
        return sum(payload_bytes(f) for f in data.flatten())
    if pa.types.is_null(t):
        return 0
    if pa.types.is_boolean(t):
        return len(data)
    try:
        return t.byte_width * len(data)
    except ValueError:
        return int(data.nbytes)


class SplitWriter:
    """Write one split as ``{split}-0000i-of-0000N.parquet`` from tables fed in order, in bounded memory.

    ``rows`` and ``nbytes`` (:func:`payload_bytes`) of the whole split are known up front, so the number of files
    (each at most ``max_shard_bytes``) and the rows per row group (~100 MB) are fixed before the first row: the
    same rows give the same files and bytes however they are fed. Every row group is written from contiguous
    arrays, so chunk layout never shows in the output.
    """

    def __init__(
        self, folder: Path, split: str, schema: pa.Schema, rows: int, nbytes: int, *, max_shard_bytes: int
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.split, self.schema = folder, split, schema
        self.n_files = max(1, math.ceil(nbytes / max_shard_bytes)) if rows else 1
        self.per_file = math.ceil(rows / self.n_files) if rows else 0
        avg = max(1, nbytes // max(1, rows))
        self.per_group = max(1, min(self.per_file or 1, ROW_GROUP_BYTES // avg))
        self.rows = rows
        self.written = 0
        self.paths: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._in_file = 0
        self._buffer: list[pa.Table] = []
        self._buffered = 0

    def _open(self) -> pq.ParquetWriter:
        if self._writer is None:
            path = self.folder / f"{self.split}-{len(self.paths):05d}-of-{self.n_files:05d}.parquet"
            self.paths.append(path)
            self._writer = pq.ParquetWriter(
                path,
                self.schema,
                compression="zstd",
                write_page_index=True,
                use_content_defined_chunking=True,
                write_statistics=True,
            )
            self._in_file = 0
        return self._writer

    def _emit(self, n: int) -> None:
        """Write the first ``n`` buffered rows as one row group."""
        buffered = pa.concat_tables(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        group, rest = buffered.slice(0, n), buffered.slice(n)
        self._open().write_table(group.combine_chunks(), row_group_size=n)
        self._buffer, self._buffered = ([rest] if rest.num_rows else []), rest.num_rows
        self._in_file += n
        self.written += n
        if self._in_file == self.per_file and self._writer is not None:
            self._writer.close()
            self._writer = None
            self._in_file = 0

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self.written + self._buffered + table.num_rows > self.rows:
            raise ValueError(f"split {self.split!r} was declared with {self.rows} rows but is fed more")
        self._buffer.append(table.cast(self.schema))
        self._buffered += table.num_rows
        while self._buffered:
            n = min(self.per_group, self.per_file - self._in_file)
            if self._buffered < n:
                break
            self._emit(n)

    def close(self) -> list[Path]:
        if self._buffered:
            self._emit(self._buffered)
        if self.written != self.rows:
            raise ValueError(f"split {self.split!r} was declared with {self.rows} rows but got {self.written}")
        if not self.paths:
            pq.write_table(self.schema.empty_table(), self.folder / f"{self.split}-00000-of-00001.parquet",
                           compression="zstd", write_page_index=True, use_content_defined_chunking=True)  # fmt: skip
            self.paths.append(self.folder / f"{self.split}-00000-of-00001.parquet")
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.paths


def write_split(
    frame: pl.DataFrame, folder: Path, split: str, *, max_shard_bytes: int = DEFAULT_SHARD_BYTES
) -> list[Path]:
    """Write ``{split}-0000i-of-0000N.parquet`` shards into ``folder`` and return their paths."""
    table = to_arrow(frame)
    writer = SplitWriter(
        folder, split, table.schema, table.num_rows, payload_bytes(table), max_shard_bytes=max_shard_bytes
    )
    writer.write(table)
    return writer.close()


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
