"""The workspace's internal files (partitions, shard results, plans): Arrow IPC with lz4, in batches of at most
:data:`BATCH_ROWS` rows (:data:`STREAM_BATCH_ROWS` for the files a merge streams).

Published outputs are Parquet (zstd, content-defined chunks, page index: what the Hub wants); what only chatdata
reads back is written and read in the Arrow format itself, several times faster than Parquet both ways, and
in bounded batches, so a merge that streams a file holds one batch of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

SUFFIX = ".arrow"
#: rows per record batch of an internal file that is read whole
BATCH_ROWS = 20_000
#: rows per record batch of a file the merge streams (shard rows, rejects): the write of a recipe holds one batch
#: of every piece at once, so at 1M messages 20k-row batches of ten pieces cost ~0.5 GB, 2k-row ones a tenth
STREAM_BATCH_ROWS = 2_000
_OPTIONS = ipc.IpcWriteOptions(compression="lz4")
#: uncompressed, for the files whose text the writer takes rows from (memory-mapped, only what is taken is read)
PLAIN = ipc.IpcWriteOptions()


class Writer:
    """Append tables to one IPC file (batches cut at :data:`BATCH_ROWS` rows; lz4 unless ``plain``)."""

    def __init__(self, path: Path, schema: pa.Schema, batch_rows: int = BATCH_ROWS, *, plain: bool = False) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.schema, self.batch_rows = schema, batch_rows
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = ipc.new_file(self._sink, schema, options=PLAIN if plain else _OPTIONS)

    def write(self, table: pa.Table) -> None:
        self._writer.write_table(table.cast(self.schema), max_chunksize=self.batch_rows)

    def close(self) -> None:
        self._writer.close()
        self._sink.close()


def save(frame: pl.DataFrame, path: Path, batch_rows: int = BATCH_ROWS) -> Path:
    """Write ``frame`` as one internal file."""
    from chatdata.writer import to_arrow

    table = to_arrow(frame)
    writer = Writer(path, table.schema, batch_rows)
    writer.write(table)
    writer.close()
    return path


def load(path: Path, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """Read an internal file (only ``columns`` when given)."""
    return pl.read_ipc(path, columns=list(columns) if columns is not None else None)


def schema(path: Path) -> dict[str, pl.DataType]:
    return dict(pl.read_ipc_schema(path))


def batches(path: Path, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The file's record batches in order."""
    # read, not memory-mapped: mapped pages stay in the resident set until the whole file is done, and the merge
    # reads every piece of a recipe side by side
    with pa.OSFile(str(path)) as source:
        reader = ipc.open_file(source)
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            yield batch.select(list(columns)) if columns is not None else batch
