"""Read a file or folder of any source format: which files to read and in what format (:func:`scan`, once per
build), and each file's rows and rejects in batches (:func:`iter_detected`, what the partition streams)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from chatdata.errors import ChatdataError, InputError
from chatdata.schema import empty_messages, empty_rejects
from chatdata.sources.detect import SkippedFile, examine, hidden
from chatdata.sources.registry import FORMATS, check_format, check_kind, of_kind
from chatdata.sources.tables import TABLE_SCHEMAS
from chatdata.workspace import sha256_file

#: Input records per streamed batch by default.
BATCH_ROWS = 200_000


@dataclass(frozen=True)
class DetectedFile:
    """A file :func:`scan` found to read: its path, its name relative to the read root, its format and its layout
    (``parquet``, ``jsonl``, ``json_array``)."""

    path: Path
    name: str
    format: str
    layout: str
    #: its sha256, when the build has hashed it already (each input file is hashed once per build)
    sha256: str | None = None


@dataclass
class SourceFile:
    """One file that was read, for the build fingerprint; ``format`` is the detected (or given) format."""

    path: str
    sha256: str
    format: str
    records: int


@dataclass
class SourceBatch:
    """A slice of one file: rows of ``table`` (``messages``/``dialogues``/``pairs``) and rejects; ``file`` is set on
    the file's last batch only."""

    table: str
    frame: pl.DataFrame
    rejects: pl.DataFrame
    file: SourceFile | None = None


def split_from_name(path: Path) -> str | None:
    """The source split a file belongs to, from Hub naming (``data/train-0000-of-0001.parquet``, ``train_sft-…``,
    ``test_prefs-…``)."""
    stem = path.name.lower()
    if re.match(r"^(train)[-_.]", stem):
        return "train"
    if re.match(r"^(validation|valid|val|test|dev)[-_.]", stem):
        return "validation"
    return None


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
    """The files of ``path`` to read (with their format) and those skipped with a reason.

    ``kind`` (one of :data:`~chatdata.sources.registry.KINDS`) accepts that family only; ``patterns`` are
    ``data_files`` globs that pick files inside a folder (other files there are "not in data_files"; a file named by
    itself is read whatever they say); ``fmt`` forces a format. A file given by itself that is not read, or a folder
    with nothing to read, raises :class:`InputError` with the reason(s)."""
    check_kind(kind)
    check_format(fmt)
    if fmt is not None and kind is not None and FORMATS[fmt].family != kind:
        raise ChatdataError(f"format {fmt!r} is not of kind {kind!r}")
    accept = of_kind(kind) if kind is not None else None
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


def iter_detected(f: DetectedFile, batch_rows: int = BATCH_ROWS) -> Iterator[SourceBatch]:
    """The batches of one scanned file, read by its format, of about ``batch_rows`` records each: at least one
    (possibly empty), the last carrying the file's :class:`SourceFile`. A file that turns out unreadable raises
    :class:`InputError` when reached, possibly after earlier batches of it."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    fmt = FORMATS[f.format]
    records = 0
    last: SourceBatch | None = None
    for rows, rejects in fmt.read(f.path, f.name, f.layout, split_from_name(f.path), batch_rows):
        if last is not None:  # one batch of lookahead, so the file's last batch can carry its SourceFile
            yield last
        records += rows.height + rejects.height
        last = SourceBatch(fmt.table, rows, rejects)
    if last is None:
        last = SourceBatch(fmt.table, empty_table(fmt.table), empty_rejects())
    last.file = SourceFile(path=f.name, sha256=f.sha256 or sha256_file(f.path), format=f.format, records=records)
    yield last
