"""Read a source from tests as a build does: :func:`~chatdata.sources.read.scan` finds its files once, then each
file streams in batches (:func:`~chatdata.sources.read.iter_detected`), what the partition consumes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from chatdata.schema import empty_rejects
from chatdata.sources.detect import SkippedFile
from chatdata.sources.read import BATCH_ROWS, SourceBatch, SourceFile, empty_table, iter_detected, scan

TABLES = ("messages", "dialogues", "pairs")


@dataclass
class Read:
    """A whole source: every table (``messages``, ``dialogues``, ``pairs``; empty when no file filled it), every
    reject, the files read and those skipped."""

    frames: dict[str, pl.DataFrame]
    rejects: pl.DataFrame
    files: list[SourceFile]
    skipped: list[SkippedFile]

    @property
    def messages(self) -> pl.DataFrame:
        return self.frames["messages"]


def batches(
    path: Path,
    kind: str | None = None,
    *,
    patterns: Sequence[str] | None = None,
    fmt: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> list[SourceBatch]:
    """Every batch of every file of the source, in scan order."""
    files, _ = scan(path, kind, patterns=patterns, fmt=fmt)
    return [b for f in files for b in iter_detected(f, batch_rows)]


def read(
    path: Path,
    kind: str | None = None,
    *,
    patterns: Sequence[str] | None = None,
    fmt: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Read:
    """The batches of the source concatenated per table."""
    files, skipped = scan(path, kind, patterns=patterns, fmt=fmt)
    parts: dict[str, list[pl.DataFrame]] = {t: [] for t in TABLES}
    rejects: list[pl.DataFrame] = []
    read_files: list[SourceFile] = []
    for f in files:
        for b in iter_detected(f, batch_rows):
            parts[b.table].append(b.frame)
            rejects.append(b.rejects)
            if b.file is not None:
                read_files.append(b.file)
    frames = {t: pl.concat(p, how="diagonal") if p else empty_table(t) for t, p in parts.items()}
    return Read(frames, pl.concat(rejects) if rejects else empty_rejects(), read_files, skipped)
