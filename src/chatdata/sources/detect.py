"""What a data file holds, judged by its content; the file name is only a hint.

Layout: ``*.parquet`` is Parquet; ``*.jsonl``, ``*.ndjson`` and ``*.json`` (each also ``.gz``; gzip is also
recognised by its magic bytes) are JSON: a ``.json`` file whose text starts with ``[`` is a JSON array, any other
is JSON Lines. In a folder, files with other names are skipped; a file given by itself is judged by its first bytes
whatever its name (``PAR1``: Parquet, else JSON).

Format (a name of :data:`chatdata.sources.registry.FORMATS`): Parquet by its column names; JSON by the first of
its first :data:`SNIFF_RECORDS` non-empty lines (or array elements) that parses to an object with the keys of a
format's ``signature``. The formats that come in Parquet (or in JSON) are tried in detection order, the first match
wins. When no record tells (an empty file, only blank or malformed lines, unknown keys) the name decides (a format's
``name_hint``: ``*.trees.jsonl``, ``*.messages.jsonl``), then, for an empty file, the only format the caller
accepts for that layout.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from chatdata.errors import InputError
from chatdata.jsonfiles import first_char, head, iter_array, open_lines
from chatdata.sources.formats import JSON_ARRAY, JSONL, PARQUET
from chatdata.sources.registry import FORMATS, check_format

JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
SNIFF_RECORDS = 50
_JSON = frozenset({JSONL, JSON_ARRAY})
#: the layouts whose files are told apart alike: by a Parquet table's columns, or by JSON records' keys
_ALIKE = {PARQUET: frozenset({PARQUET}), JSONL: _JSON, JSON_ARRAY: _JSON}


@dataclass(frozen=True)
class SkippedFile:
    """A file below a source folder that is not read, and why (one line)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Detection:
    """How to read one file: its fine ``format`` and ``layout``, or ``format=None`` and the reason it is skipped.

    ``reason`` says what decided a format: ``content``, ``columns``, ``name``, ``kind`` or ``given``."""

    format: str | None
    layout: str | None
    reason: str


def classify(keys: Iterable[str], layout: str) -> str | None:
    """The first format (in detection order) that comes in a layout like ``layout`` and whose signature ``keys``
    holds (``None`` for none)."""
    have = set(keys)
    alike = _ALIKE[layout]
    return next((f.name for f in FORMATS.values() if f.layouts & alike and have.issuperset(f.signature)), None)


def layout_of(path: Path, name: str, *, explicit: bool = False) -> str | None:
    """``parquet``, ``jsonl`` or ``json_array``; ``None`` for a name no reader takes (unless ``explicit``)."""
    lower = path.name.lower().removesuffix(".gz")
    if lower.endswith(".parquet"):
        return PARQUET
    if not lower.endswith(JSON_SUFFIXES):
        if not explicit:
            return None
        if head(path) == b"PAR1":
            return PARQUET
    elif lower.endswith((".jsonl", ".ndjson")):
        return JSONL
    return JSON_ARRAY if first_char(path, name) == "[" else JSONL


def hidden(p: Path, root: Path) -> bool:
    """True for a file below ``root`` whose path has a part starting with a dot (never read nor listed)."""
    return any(part.startswith(".") for part in p.relative_to(root).parts)


def name_hint(path: Path) -> str | None:
    lower = path.name.lower().removesuffix(".gz")
    return next((f.name for f in FORMATS.values() if f.name_hint and lower.endswith(f.name_hint)), None)


def examine(
    path: Path,
    name: str,
    *,
    explicit: bool = False,
    fmt: str | None = None,
    accept: Collection[str] | None = None,
) -> Detection:
    """Decide how to read ``path`` (shown as ``name``): see the module docstring.

    ``fmt`` overrides the content (the layout must still fit); ``accept`` lists the formats the caller reads, any
    other is skipped. A file that cannot be opened at all raises :class:`InputError`."""
    check_format(fmt)
    layout = layout_of(path, name, explicit=explicit)
    if layout is None:
        suffix = "".join(path.suffixes[-2:]) or "no extension"
        return Detection(None, None, f"unknown extension ({suffix}); expected .parquet, .jsonl, .json (or .gz)")
    if fmt is not None:
        if layout not in FORMATS[fmt].layouts:
            return Detection(None, layout, f"a {_LAYOUT_NAMES[layout]} cannot hold {fmt} records (format given)")
        return Detection(fmt, layout, "given")
    if layout == PARQUET:
        found, why = _sniff_parquet(path, name)
        if found is None:
            return Detection(None, layout, why)
        how = "columns"
    else:
        found, why, empty = _sniff_json(path, name, layout)
        how = "content"
        if found is None and (hint := name_hint(path)) is not None:
            found, how = hint, "name"
        elif found is None and empty and accept is not None:
            fits = [f for f in accept if layout in FORMATS[f].layouts]
            if len(fits) == 1:
                found, how = fits[0], "kind"
        if found is None:
            return Detection(None, layout, why)
    if layout not in FORMATS[found].layouts:
        return Detection(None, layout, f"{found} records in a {_LAYOUT_NAMES[layout]}; read them from JSON Lines")
    if accept is not None and found not in accept:
        wanted = sorted({FORMATS[f].family for f in accept})
        return Detection(None, layout, f"holds {found} records ({FORMATS[found].family}), not {' or '.join(wanted)}")
    return Detection(found, layout, how)


def detect(path: Path) -> str:
    """The format of one file (a name of :data:`~chatdata.sources.registry.FORMATS`); :class:`InputError` with the
    reason when it holds none of them."""
    found = examine(path, path.name, explicit=True)
    if found.format is None:
        raise InputError(path, found.reason)
    return found.format


_LAYOUT_NAMES = {PARQUET: "Parquet file", JSONL: "JSON Lines file", JSON_ARRAY: "JSON array"}


def _sniff_parquet(path: Path, name: str) -> tuple[str | None, str]:
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(name, f"cannot read Parquet ({exc}); is the file complete?") from None
    found = classify(names, PARQUET)
    if found is not None:
        return found, "columns"
    for f in FORMATS.values():
        if f.near_miss and PARQUET in f.layouts and f.signature[0] in names:
            missing = [c for c in f.signature if c not in names]
            return None, f"missing required column(s) {missing}; is this {f.near_miss}?"
    return None, f"unrecognised columns {_keys(names)}"


def _sniff_json(path: Path, name: str, layout: str) -> tuple[str | None, str, bool]:
    """(format or None, why not, whether the file holds no record at all)."""
    seen = 0
    first_keys: list[str] | None = None
    if layout == JSONL:
        values = ((n, _loads(raw)) for n, raw in open_lines(path, name) if raw.strip())
    else:
        values = iter_array(path, name)
    for _, value in values:
        seen += 1
        if isinstance(value, dict):
            found = classify(value, layout)
            if found is not None:
                return found, "content", False
            if first_keys is None:
                first_keys = list(value)
        if seen >= SNIFF_RECORDS:
            break
    if seen == 0:
        if path.stat().st_size == 0:
            return None, "empty file", True
        return None, "empty JSON array" if layout == JSON_ARRAY else "no records (only blank lines)", True
    if first_keys is not None:
        return None, f"unrecognised content: records with keys {_keys(first_keys)}", False
    return None, f"unrecognised content: no JSON object in the first {seen} record(s)", False


def _loads(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _keys(keys: Iterable[str], n: int = 6) -> str:
    ks = sorted(keys)
    return "[" + ", ".join(ks[:n]) + (f", … {len(ks) - n} more" if len(ks) > n else "") + "]"
