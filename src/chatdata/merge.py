"""K-way merge of sorted pieces into one stream in publish order, in bounded memory.

Each piece (one shard's rows of a split, or its rejects) is already sorted by the merge key. :func:`merge_order`
is a stable global sort of the key columns only (never the rows): for every output row, the piece it comes from.
:func:`merged_chunks` then reads each piece batch by batch (a file reader holds one row group) and interleaves
the rows in that order, ``CHUNK_ROWS`` at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from chatdata import artifacts
from chatdata.writer import to_arrow

#: rows per merged output chunk
CHUNK_ROWS = 5_000
#: rows a piece reader holds at once: the batch the streamed internal files are written in
READ_ROWS = artifacts.STREAM_BATCH_ROWS


def merge_order(keys: list[pl.DataFrame], by: tuple[str, ...]) -> np.ndarray:
    """For each output row, the piece it comes from: a stable global sort of the pieces' key columns (each piece
    is already sorted by ``by``, so every piece's rows keep their order)."""
    if not keys:
        return np.zeros(0, dtype=np.uint32)
    tagged = [k.select(by).with_columns(pl.lit(i, pl.UInt32).alias("_piece")) for i, k in enumerate(keys)]
    frame = pl.concat(tagged, rechunk=False)
    del tagged
    # low-cardinality string keys as sorted enums (same order, a byte each); sort indices only, never the rows
    small = [c for c in by if frame.schema[c] == pl.String and frame.get_column(c).n_unique() <= 1024]
    frame = frame.with_columns(
        pl.col(c).cast(pl.Enum(sorted(frame.get_column(c).drop_nulls().unique().to_list()))) for c in small
    )
    index = frame.select(pl.arg_sort_by(list(by), nulls_last=True, maintain_order=True)).to_series()
    return frame.get_column("_piece").gather(index).to_numpy()


class PieceReader:
    """Hand out the rows of one piece in order, ``n`` at a time: a Parquet file (optionally only the rows a
    boolean ``mask`` selects, and with ``prepare`` applied to every batch) or an in-memory table."""

    def __init__(
        self,
        source: Path | pa.Table,
        *,
        columns: list[str] | None = None,
        mask: np.ndarray | None = None,
        prepare: Callable[[pa.Table], pa.Table] | None = None,
    ) -> None:
        self._mask, self._prepare, self._offset = mask, prepare, 0
        if isinstance(source, pa.Table):
            self._batches: Iterator[pa.RecordBatch] = iter(source.to_batches(max_chunksize=READ_ROWS))
        else:
            self._batches = _rebatched(artifacts.batches(source, columns), READ_ROWS)
        self._buffer: pa.Table | None = None

    def _next(self) -> pa.Table:
        batch = next(self._batches)
        table = pa.Table.from_batches([batch])
        if self._mask is not None:
            keep = self._mask[self._offset : self._offset + table.num_rows]
            self._offset += table.num_rows
            table = table.filter(_arrow(keep))
        return self._prepare(table) if self._prepare else table

    def take(self, n: int) -> pa.Table:
        parts = []
        while n:
            while self._buffer is None or not self._buffer.num_rows:
                self._buffer = self._next()
            part = self._buffer.slice(0, n)
            self._buffer = self._buffer.slice(part.num_rows)
            parts.append(part)
            n -= part.num_rows
        return pa.concat_tables(parts)


def _rebatched(batches: Iterator[pa.RecordBatch], n: int) -> Iterator[pa.RecordBatch]:
    """The batches cut into slices of at most ``n`` rows."""
    for batch in batches:
        for start in range(0, batch.num_rows, n):
            yield batch.slice(start, n)


def merged_chunks(readers: list[PieceReader], sequence: np.ndarray, schema: pa.Schema) -> Iterator[pa.Table]:
    """Tables in output order, :data:`CHUNK_ROWS` rows at a time, each row from the piece ``sequence`` names."""
    for start in range(0, len(sequence), CHUNK_ROWS):
        seq = sequence[start : start + CHUNK_ROWS]
        counts = np.bincount(seq, minlength=len(readers))
        table = pa.concat_tables([conform_table(readers[i].take(int(n)), schema) for i, n in enumerate(counts) if n])
        grouped = np.argsort(seq, kind="stable")
        index = np.empty(len(seq), dtype=np.int64)
        index[grouped] = np.arange(len(seq))
        yield table.take(_arrow(index))


def _arrow(values: np.ndarray) -> pa.Array:
    """A numpy array as Arrow, through polars (``pa.array`` on numpy imports pandas: 0.4 s of a small build)."""
    return pl.Series(values).to_arrow()


def conform_table(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns in order: missing ones as nulls, the rest cast."""
    arrays = [
        table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def union_schema(schemas: list[dict[str, pl.DataType]], first: tuple[str, ...] = ()) -> pa.Schema:
    """One Arrow schema for pieces whose columns differ (sources of a mixture) or are all-null (``Null``) in
    some: ``first`` columns in that order, then the others in order of first appearance; a column's type is the
    first non-null one."""
    found: dict[str, pl.DataType] = {}
    for schema in schemas:
        for col, dtype in schema.items():
            if col not in found or found[col] == pl.Null:
                found[col] = dtype
    order = [c for c in first if c in found] + [c for c in found if c not in first]
    return to_arrow(pl.DataFrame(schema={c: found[c] for c in order})).schema
