"""Read a file or folder of any supported source: which files, in what format, and their rows in batches."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from chatdata.detect import FAMILY, KINDS, SkippedFile, check_format, examine, hidden
from chatdata.errors import ChatdataError, InputError
from chatdata.ingest import BATCH_ROWS, DetectedFile, SourceFile, iter_file, split_from_name
from chatdata.schema import empty_messages, empty_rejects
from chatdata.sources import chat, dolly, prefs
from chatdata.sources.layout import Layout
from chatdata.sources.records import iter_batches
from chatdata.sources.tables import TABLE_SCHEMAS
from chatdata.workspace import sha256_file

#: fine format -> layout, for every non-oasst format
LAYOUTS: dict[str, Layout] = {**dolly.LAYOUTS, **chat.LAYOUTS, **prefs.LAYOUTS}
#: the tables a source fills
TABLES = ("messages", "dialogues", "pairs")
_OASST = {"oasst_parquet": "parquet", "oasst_messages": "messages", "oasst_trees": "trees"}


@dataclass
class SourceBatch:
    """A slice of one file: rows of ``table`` (``messages``/``dialogues``/``pairs``) and rejects; ``file`` is set on
    the file's last batch only."""

    table: str
    frame: pl.DataFrame
    rejects: pl.DataFrame
    file: SourceFile | None = None


@dataclass
class SourceRead:
    """A whole source: ``frames`` has every table (``messages``: oasst's canonical messages, ``dialogues``: SFT rows,
    ``pairs``: preference rows; empty when no file filled it), every reject, the files read and those skipped."""

    frames: dict[str, pl.DataFrame]
    rejects: pl.DataFrame
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def table_of(fmt: str) -> str:
    return "messages" if FAMILY[fmt] == "oasst" else LAYOUTS[fmt].table


def empty_table(table: str) -> pl.DataFrame:
    return empty_messages() if table == "messages" else pl.DataFrame(schema=TABLE_SCHEMAS[table])


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A ``data_files`` glob as a regex over POSIX paths: ``*``/``?`` stay within a folder, ``**`` crosses them."""
    out, i = [], 0
    pattern = pattern.removeprefix("./")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body).replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def scan(
    path: Path,
    kind: str | None = None,
    *,
    patterns: Sequence[str] | None = None,
    fmt: str | None = None,
) -> tuple[list[DetectedFile], list[SkippedFile]]:
    """The files of ``path`` to read (with their fine format) and those skipped with a reason.

    ``kind`` (``oasst``, ``dolly``, ``chat``, ``prefs``) accepts that family only; ``patterns`` are ``data_files``
    globs that pick files inside a folder (other files there are "not in data_files"; a file named by itself is
    read whatever they say); ``fmt`` forces a fine format. A file given by itself that is not read, or a folder
    with nothing to read, raises :class:`InputError` with the reason(s)."""
    if kind is not None and kind not in KINDS:
        raise ChatdataError(f"unknown source kind {kind!r}; use one of {', '.join(KINDS)}")
    check_format(fmt)
    if fmt is not None and kind is not None and FAMILY[fmt] != kind:
        raise ChatdataError(f"format {fmt!r} is not of kind {kind!r}")
    accept = [f for f, k in FAMILY.items() if k == kind] if kind is not None else None
    regexes = [glob_regex(p) for p in patterns] if patterns is not None and not path.is_file() else None
    if path.is_file():
        root, candidates, explicit = path.parent, [path], True
    elif path.is_dir():
        root, explicit = path, False
        candidates = sorted(p for p in path.rglob("*") if p.is_file() and not hidden(p, path))
    else:
        raise InputError(path, "no such file or folder")
    files: list[DetectedFile] = []
    skipped: list[SkippedFile] = []
    for p in candidates:
        name = p.relative_to(root).as_posix()
        if regexes is not None and not any(r.match(name) for r in regexes):
            skipped.append(SkippedFile(name, "not in data_files"))
            continue
        found = examine(p, name, explicit=explicit, fmt=fmt, accept=accept)
        if found.format is None:
            skipped.append(SkippedFile(name, found.reason))
        else:
            files.append(DetectedFile(p, name, found.format, found.layout))
    if explicit and skipped:
        raise InputError(path, skipped[0].reason)
    if not files:
        why = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3]) + (" …" if len(skipped) > 3 else "")
        raise InputError(path, f"no {kind or 'source'} files found ({why or 'the folder is empty'})")
    return files, skipped


def iter_source(
    path: Path,
    kind: str | None = None,
    *,
    patterns: Sequence[str] | None = None,
    fmt: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> Iterator[SourceBatch]:
    """Stream a source file by file (in :func:`scan` order), each as one or more batches of about ``batch_rows``
    records (at least one, possibly empty); the last batch of a file carries its :class:`SourceFile`."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    files, _ = scan(path, kind, patterns=patterns, fmt=fmt)
    for f in files:
        yield from iter_detected(f, batch_rows)


def iter_detected(f: DetectedFile, batch_rows: int = BATCH_ROWS) -> Iterator[SourceBatch]:
    """The batches of one scanned file."""
    if f.format in _OASST:
        for b in iter_file(f.path, f.name, _OASST[f.format], batch_rows, sha256=f.sha256):
            file = dataclasses.replace(b.file, format=f.format) if b.file is not None else None
            yield SourceBatch("messages", b.messages, b.rejects, file)
        return
    layout = LAYOUTS[f.format]
    batches = iter_batches(f.path, f.name, f.layout or "jsonl", layout.fields, split_from_name(f.path), batch_rows)
    records = 0
    last: SourceBatch | None = None
    for typed, ingest_rejects in batches:
        rows, convert_rejects = layout.convert(typed)
        if last is not None:
            yield last
        records += typed.height + ingest_rejects.height
        rejects = pl.concat([ingest_rejects, convert_rejects]).sort("source_line", maintain_order=True)
        last = SourceBatch(layout.table, rows, rejects)
    if last is None:
        last = SourceBatch(layout.table, empty_table(layout.table), empty_rejects())
    last.file = SourceFile(path=f.name, sha256=f.sha256 or sha256_file(f.path), format=f.format, records=records)
    yield last


def read_source(
    path: Path,
    kind: str | None = None,
    *,
    patterns: Sequence[str] | None = None,
    fmt: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> SourceRead:
    """Read a source whole: :func:`iter_source`, concatenated per table, plus the skipped files."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    files, skipped = scan(path, kind, patterns=patterns, fmt=fmt)
    parts: dict[str, list[pl.DataFrame]] = {t: [] for t in TABLES}
    rejects: list[pl.DataFrame] = []
    read: list[SourceFile] = []
    for f in files:
        for b in iter_detected(f, batch_rows):
            parts[b.table].append(b.frame)
            rejects.append(b.rejects)
            if b.file is not None:
                read.append(b.file)
    frames = {t: pl.concat(p, how="diagonal") if p else empty_table(t) for t, p in parts.items()}
    return SourceRead(frames, pl.concat(rejects) if rejects else empty_rejects(), read, skipped)
