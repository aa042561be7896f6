"""Read a Parquet data file batch by batch; a file that is cut or is not Parquet is one clear line."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from chatdata.errors import InputError


def _unreadable(name: str, exc: Exception) -> InputError:
    return InputError(name, f"cannot read Parquet ({exc}); is the file complete?")


def open_parquet(path: Path, name: str) -> pq.ParquetFile:
    """The file's reader, or :class:`InputError` naming the file (``name``, as the build reports it)."""
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _unreadable(name, exc) from None


def parquet_batches(
    pf: pq.ParquetFile, name: str, batch_rows: int, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The file's rows ``batch_rows`` at a time (only ``columns`` when given); a read error is an
    :class:`InputError` naming the file, raised when the damaged part is reached."""
    batches = pf.iter_batches(batch_size=batch_rows, columns=list(columns) if columns is not None else None)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowInvalid, OSError) as exc:
            raise _unreadable(name, exc) from None
        if batch is None:
            return
        yield batch
