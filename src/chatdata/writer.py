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

import numpy as np
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


def row_payload_bytes(data: pa.Table | pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Bytes of values per row (strings' bytes plus 4 for the offset, fixed-width values, nested leaves plus 4
    per list, nothing for a null): the size measure that cuts files and row groups. A row's size depends on
    that row alone, so any split of the rows into pieces gives the same sizes."""
    if isinstance(data, pa.Table):
        total = np.zeros(data.num_rows, dtype=np.int64)
        for column in data.columns:
            total += row_payload_bytes(column)
        return total
    if isinstance(data, pa.ChunkedArray):
        parts = [row_payload_bytes(c) for c in data.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    t, n = data.type, len(data)
    if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        sizes = pc.fill_null(pc.binary_length(data), 0).to_numpy(zero_copy_only=False).astype(np.int64) + 4
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        sizes = np.full(n, 4, dtype=np.int64)
        values = data.flatten()
        if len(values):
            parents = pc.list_parent_indices(data).to_numpy(zero_copy_only=False)
            sizes += np.bincount(parents, weights=row_payload_bytes(values), minlength=n).astype(np.int64)
    elif pa.types.is_struct(t):
        sizes = np.zeros(n, dtype=np.int64)
        for field in data.flatten():  # fields carry the struct's nulls
            sizes += row_payload_bytes(field)
    elif pa.types.is_null(t):
        return np.zeros(n, dtype=np.int64)
    elif pa.types.is_boolean(t):
        sizes = np.ones(n, dtype=np.int64)
    else:
        try:
            sizes = np.full(n, t.byte_width, dtype=np.int64)
        except ValueError:
            raise TypeError(f"no row size for Arrow type {t}") from None
    # a null holds no value whatever its type, so a column that is all-null in one piece (typed Null there)
    # weighs the same as in the whole table
    if data.null_count:
        sizes[~pc.is_valid(data).to_numpy(zero_copy_only=False)] = 0
    return sizes


def payload_bytes(data: pa.Table | pa.ChunkedArray | pa.Array) -> int:
    """Bytes of values of all rows (:func:`row_payload_bytes` summed): additive over rows, so the totals of the
    pieces of a stream add up to the whole's."""
    return int(row_payload_bytes(data).sum())


def part_path(folder: Path, split: str, index: int) -> Path:
    """Where file ``index`` of a split is written while the number of files is not known yet."""
    return folder / f".{split}-{index:05d}.parquet.part"


def name_parts(folder: Path, split: str, parts: list[Path]) -> list[Path]:
    """Rename a split's written parts, in order, to the Hub's ``{split}-0000i-of-0000N.parquet``."""
    paths = []
    for i, part in enumerate(parts):
        path = folder / f"{split}-{i:05d}-of-{len(parts):05d}.parquet"
        os.replace(part, path)
        paths.append(path)
    return paths


class SplitWriter:
    """Write one split as ``{split}-0000i-of-0000N.parquet`` from tables fed in order, in bounded memory.

    Rows are cut by their :func:`row_payload_bytes`, so skewed rows (a run of long dialogues) cannot make a row
    group or a file larger than its budget. ``nbytes`` of the whole split is known up front: the target file size
    is ``nbytes / ceil(nbytes / max_shard_bytes)`` and a row goes to file ``floor(bytes before it / target)``;
    inside a file a row group closes before the row that would take it over ``row_group_bytes`` (one oversized
    row makes a group of its own). Every cut depends on the rows alone, so the same rows give the same files and
    bytes however they are fed; every row group is written from contiguous arrays. Files are written under
    temporary names and get their ``-of-N`` names at :meth:`close`.
    """

    def __init__(
        self,
        folder: Path,
        split: str,
        schema: pa.Schema,
        rows: int,
        nbytes: int,
        *,
        max_shard_bytes: int,
        row_group_bytes: int = ROW_GROUP_BYTES,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.split, self.schema = folder, split, schema
        self.rows, self.row_group_bytes = rows, row_group_bytes
        n_files = max(1, math.ceil(nbytes / max_shard_bytes)) if rows else 1
        self.file_bytes = max(1, math.ceil(nbytes / n_files))
        self.written = 0
        self._offset = 0  # payload bytes of the rows written so far
        self._parts: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._file = -1  # the file index (offset // file_bytes) of the open file
        self._buffer: list[pa.Table] = []
        self._sizes = np.zeros(0, dtype=np.int64)

    def _new_writer(self, path: Path) -> pq.ParquetWriter:
        return pq.ParquetWriter(
            path,
            self.schema,
            compression="zstd",
            write_page_index=True,
            use_content_defined_chunking=True,
            write_statistics=True,
        )

    def _open(self, file: int) -> pq.ParquetWriter:
        if self._writer is not None and file != self._file:
            self._writer.close()
            self._writer = None
        if self._writer is None:
            path = part_path(self.folder, self.split, len(self._parts))
            self._parts.append(path)
            self._writer = self._new_writer(path)
            self._file = file
        return self._writer

    def _next_group(self, final: bool) -> int:
        """Rows of the buffer that form the next row group, or 0 while the group may still grow."""
        ends = np.cumsum(self._sizes)
        files = (self._offset + ends - self._sizes) // self.file_bytes
        n = len(self._sizes)
        by_file = int(np.searchsorted(files, files[0], side="right"))
        by_bytes = max(1, int(np.searchsorted(ends, self.row_group_bytes, side="right")))
        cut = min(by_file, by_bytes)
        return cut if cut < n or final else 0

    def _emit(self, n: int) -> None:
        """Write the first ``n`` buffered rows as one row group."""
        buffered = pa.concat_tables(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        group, rest = buffered.slice(0, n), buffered.slice(n)
        file = int(self._offset // self.file_bytes)
        self._open(file).write_table(group.combine_chunks(), row_group_size=n)
        self._offset += int(self._sizes[:n].sum())
        self._buffer, self._sizes = ([rest] if rest.num_rows else []), self._sizes[n:]
        self.written += n

    def _drain(self, final: bool) -> None:
        while len(self._sizes):
            n = self._next_group(final)
            if not n:
                break
            self._emit(n)

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self.written + len(self._sizes) + table.num_rows > self.rows:
            raise ValueError(f"split {self.split!r} was declared with {self.rows} rows but is fed more")
        table = table.cast(self.schema)
        self._buffer.append(table)
        self._sizes = np.concatenate([self._sizes, row_payload_bytes(table)])
        self._drain(final=False)

    def close(self) -> list[Path]:
        self._drain(final=True)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.written != self.rows:
            raise ValueError(f"split {self.split!r} was declared with {self.rows} rows but got {self.written}")
        if not self._parts:
            # an empty split is one file with the schema and no row group: a 0-row row group makes
            # `datasets` read it with batch_size 0 (ArrowInvalid)
            path = part_path(self.folder, self.split, 0)
            self._new_writer(path).close()
            self._parts.append(path)
        return name_parts(self.folder, self.split, self._parts)


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
