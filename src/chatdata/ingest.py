"""Read OpenAssistant data in every published format into ONE canonical message table.

Formats: the Hub Parquet message table (``emojis``/``labels`` as parallel lists), messages JSON Lines (dict-shaped
``emojis``/``labels``), trees JSON Lines (nested ``replies``; missing keys mean null), each also gzip-compressed, a
folder of such files, or a Hub dataset id (downloaded through :mod:`chatdata.hub.source`). What a file holds is read
from its content (:mod:`chatdata.detect`: a trees line has ``prompt`` and ``message_tree_id``, a message line
``message_id``, ``role`` and ``text``, Parquet is judged by its columns); the name (``*.trees.jsonl``,
``*.messages.jsonl``) only decides when the content does not, and ``fmt`` overrides both. A UTF-8 BOM is ignored.

Unreadable records never vanish: a malformed line, a record that is not an object, a missing required field or a
value of the wrong type becomes a reject row (``stage="ingest"``) with a reason and the raw payload. Files of a
folder that are not read are listed with a reason (:attr:`Discovery.skipped`).

:func:`iter_path` streams the input in batches of a bounded number of records; :func:`read_path` concatenates them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from chatdata.detect import FAMILY, SkippedFile, examine, hidden
from chatdata.errors import ChatdataError, InputError
from chatdata.jsonfiles import open_lines
from chatdata.parquetfiles import open_parquet, parquet_batches
from chatdata.schema import (
    DETOXIFY_FIELDS,
    MESSAGE_SCHEMA,
    REJECT_SCHEMA,
    REQUIRED_FIELDS,
    conform,
    empty_messages,
    empty_rejects,
)
from chatdata.workspace import sha256_file

STAGE = "ingest"
#: Input records (Parquet rows, JSONL messages and rejects) per streamed batch by default.
BATCH_ROWS = 200_000
#: ingest's format names (``SourceFile.format``, the ``fmt`` override) -> the fine format names of :mod:`detect`
FORMATS = {"parquet": "oasst_parquet", "messages": "oasst_messages", "trees": "oasst_trees"}
_SHORT = {fine: short for short, fine in FORMATS.items()}

# JSON field -> accepted Python types (bool is not an int here)
_STR, _INT, _BOOL = (str,), (int,), (bool,)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "message_id": _STR,
    "parent_id": _STR,
    "message_tree_id": _STR,
    "role": _STR,
    "text": _STR,
    "lang": _STR,
    "created_date": _STR,
    "review_count": _INT,
    "review_result": _BOOL,
    "deleted": _BOOL,
    "rank": _INT,
    "synthetic": _BOOL,
    "model_name": _STR,
    "tree_state": _STR,
}
_TYPE_NAMES = {_STR: "string", _INT: "integer", _BOOL: "boolean"}


@dataclass
class SourceFile:
    """One file that was read, for the build fingerprint; ``format`` is the detected (or given) format."""

    path: str
    sha256: str
    format: str
    records: int


@dataclass(frozen=True)
class DetectedFile:
    """A file :func:`discover` will read: its path, its name relative to the read root, its format and its layout
    (``parquet``, ``jsonl``, ``json_array``)."""

    path: Path
    name: str
    format: str
    layout: str | None = None
    #: its sha256, when the build has hashed it already (each input file is hashed once per build)
    sha256: str | None = None


@dataclass
class Discovery:
    """The files below a source: those that will be read, in order, and those skipped with a reason."""

    files: list[DetectedFile]
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def paths(self) -> list[Path]:
        return [f.path for f in self.files]


@dataclass
class IngestResult:
    messages: pl.DataFrame
    rejects: pl.DataFrame
    files: list[SourceFile] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


@dataclass
class IngestBatch:
    """A slice of one file: canonical messages and ingest rejects; ``file`` is set on the file's last batch only."""

    messages: pl.DataFrame
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


def oasst_format(fmt: str | None) -> str | None:
    """The fine oasst format an override names (``parquet``/``messages``/``trees`` or ``oasst_*``)."""
    if fmt is None:
        return None
    fine = FORMATS.get(fmt, fmt)
    if FAMILY.get(fine) != "oasst":
        raise ChatdataError(f"unknown oasst format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fine


def discover(path: Path, fmt: str | None = None) -> Discovery:
    """Every file below ``path`` (or ``path`` itself) with the format it holds, in a stable order, and the files
    that are skipped (hidden ones are not listed); see the module docstring for how formats are told apart.

    ``path`` itself must be readable oasst data, and a folder must hold at least one such file: otherwise
    :class:`InputError` says why."""
    fine = oasst_format(fmt)
    accept = tuple(FORMATS.values())
    if path.is_file():
        found = examine(path, path.name, explicit=True, fmt=fine, accept=accept)
        if found.format is None:
            raise InputError(path, found.reason)
        return Discovery([DetectedFile(path, path.name, _SHORT[found.format], found.layout)])
    if not path.is_dir():
        raise InputError(
            path, "no such file or folder; pass a local path or a Hub dataset id like OpenAssistant/oasst1"
        )
    files: list[DetectedFile] = []
    skipped: list[SkippedFile] = []
    for p in sorted(p for p in path.rglob("*") if p.is_file() and not hidden(p, path)):
        name = p.relative_to(path).as_posix()
        found = examine(p, name, fmt=fine, accept=accept)
        if found.format is None:
            skipped.append(SkippedFile(name, found.reason))
        else:
            files.append(DetectedFile(p, name, _SHORT[found.format], found.layout))
    if not files:
        why = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:3]) + (" …" if len(skipped) > 3 else "")
        raise InputError(path, f"no oasst files found ({why or 'the folder is empty'})")
    return Discovery(files, skipped)


def file_format(path: Path, fmt: str | None = None) -> str:
    """``parquet``, ``messages`` or ``trees``: what one file holds (or ``fmt``), :class:`InputError` if neither."""
    return discover(path, fmt).files[0].format


def read_path(path: Path, *, fmt: str | None = None) -> IngestResult:
    """Read a local file or folder of oasst data whole: :func:`iter_path`, concatenated."""
    found = discover(path, fmt)
    frames: list[pl.DataFrame] = []
    rejects: list[pl.DataFrame] = []
    files: list[SourceFile] = []
    for batch in _iter_files(found, BATCH_ROWS):
        frames.append(batch.messages)
        rejects.append(batch.rejects)
        if batch.file is not None:
            files.append(batch.file)
    messages = pl.concat(frames, how="vertical") if frames else empty_messages()
    rejected = pl.concat(rejects, how="vertical") if rejects else empty_rejects()
    return IngestResult(messages=messages, rejects=rejected, files=files, skipped=found.skipped)


def iter_path(path: Path, batch_rows: int = BATCH_ROWS, *, fmt: str | None = None) -> Iterator[IngestBatch]:
    """Stream a local file or folder of oasst data in batches of about ``batch_rows`` input records.

    Files come in :func:`discover` order, each as one or more batches in file order (at least one, possibly
    empty); the last batch of a file carries its :class:`SourceFile`. Parquet batches hold at most ``batch_rows``
    rows; a JSONL batch is cut between lines once it holds ``batch_rows`` records (a tree line may add many).
    Unreadable files raise :class:`InputError` when reached, possibly after earlier batches of that file."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    yield from _iter_files(discover(path, fmt), batch_rows)


def _iter_files(found: Discovery, batch_rows: int) -> Iterator[IngestBatch]:
    for f in found.files:
        yield from iter_file(f.path, f.name, f.format, batch_rows)


def iter_file(
    path: Path, name: str, fmt: str, batch_rows: int = BATCH_ROWS, *, sha256: str | None = None
) -> Iterator[IngestBatch]:
    """One file of format ``fmt`` (``parquet``/``messages``/``trees``) as batches, shown as ``name``; the last
    (possibly the only, possibly empty) batch carries its :class:`SourceFile` (with ``sha256`` when the caller
    hashed the file already)."""
    if fmt == "parquet":
        batches = _parquet_batches(path, name, batch_rows)
    else:
        batches = _jsonl_batches(path, name, trees=(fmt == "trees"), batch_rows=batch_rows)
    records = 0
    last: tuple[pl.DataFrame, pl.DataFrame] | None = None
    for current in batches:  # one batch of lookahead, so the file's last batch can carry its SourceFile
        if last is not None:
            yield IngestBatch(*last)
        records += current[0].height + current[1].height
        last = current
    msgs, rej = last if last is not None else (empty_messages(), empty_rejects())
    sha = sha256 or sha256_file(path)
    yield IngestBatch(msgs, rej, SourceFile(path=name, sha256=sha, format=fmt, records=records))


def _concat(batches: Iterator[tuple[pl.DataFrame, pl.DataFrame]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    pairs = list(batches)
    if not pairs:
        return empty_messages(), empty_rejects()
    return pl.concat([p[0] for p in pairs], how="vertical"), pl.concat([p[1] for p in pairs], how="vertical")


# ---------------------------------------------------------------------------------------------------------- Parquet


def read_parquet(path: Path, name: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read a Hub-style Parquet message table; cells of the wrong type become ingest rejects."""
    return _concat(_parquet_batches(path, name, BATCH_ROWS))


def _parquet_batches(path: Path, name: str, batch_rows: int) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """Convert a Parquet message table ``batch_rows`` rows at a time (nothing for an empty table)."""

    with open_parquet(path, name) as pf:
        schema = pf.schema_arrow
        missing = [c for c in REQUIRED_FIELDS if c not in schema.names]
        if missing:
            raise InputError(name, f"missing required column(s) {missing}; is this an oasst message table?")
        columns = [c for c in schema.names if c != "user_id"] if "user_id" in schema.names else None
        rows = 0
        for batch in parquet_batches(pf, name, batch_rows, columns):
            yield _parquet_frames(batch, path, name, rows)
            rows += batch.num_rows


def _lenient_cast(raw: pl.DataFrame, col: str, dtype: pl.DataType) -> pl.Expr:
    """``col`` as ``dtype``; a cell that does not convert becomes null (and so a ``wrong_type`` reject).

    Strings convert to booleans only as "true"/"false"; a nested value where a scalar belongs, or a column polars
    cannot cast at all, is wrong everywhere."""
    if raw.schema[col] == pl.String and dtype == pl.Boolean:
        return (
            pl.col(col)
            .str.strip_chars()
            .str.to_lowercase()
            .replace_strict({"true": True, "false": False}, default=None, return_dtype=pl.Boolean)
        )
    if raw.schema[col].is_nested() and not dtype.is_nested():
        return pl.lit(None, dtype=dtype)  # a struct or list where a scalar belongs (polars would stringify it)
    expr = pl.col(col).cast(dtype, strict=False)
    try:
        raw.head(0).select(expr)
        raw.select(expr.is_null().sum())
    except pl.exceptions.PolarsError:
        return pl.lit(None, dtype=dtype)
    return expr


def _parquet_frames(batch: pa.RecordBatch, path: Path, name: str, offset: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Messages and rejects of Parquet rows that follow ``offset`` earlier rows of the file."""
    raw = pl.from_arrow(batch)
    assert isinstance(raw, pl.DataFrame)
    raw = raw.with_row_index("source_line", offset=offset + 1).with_columns(pl.col("source_line").cast(pl.Int64))
    casts = []
    bad_flags = []
    for col, dtype in MESSAGE_SCHEMA.items():
        if col not in raw.columns or col in ("source", "source_line", "source_split"):
            continue
        if raw.schema[col] == dtype:
            continue
        casted = _lenient_cast(raw, col, dtype)
        casts.append(casted.alias(col))
        bad_flags.append(pl.when(pl.col(col).is_not_null() & casted.is_null()).then(pl.lit(col)))
    raw = raw.with_columns(
        pl.lit(name).alias("source"),
        pl.lit(split_from_name(path), dtype=pl.String).alias("source_split"),
    )
    if bad_flags:
        raw = raw.with_columns(pl.concat_list(bad_flags).list.drop_nulls().alias("_bad"))
    else:
        raw = raw.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("_bad"))
    raw = raw.with_columns(
        pl.when(pl.any_horizontal([pl.col(c).is_null() for c in REQUIRED_FIELDS]))
        .then(pl.concat_list([pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in REQUIRED_FIELDS]).list.drop_nulls())
        .alias("_missing")
    )
    bad = raw.filter((pl.col("_bad").list.len() > 0) | pl.col("_missing").is_not_null())
    good = raw.filter((pl.col("_bad").list.len() == 0) & pl.col("_missing").is_null()).with_columns(casts)
    rejects = empty_rejects()
    if bad.height:
        payload_cols = [c for c in bad.columns if not c.startswith("_") and c not in ("source", "source_line")]
        rejects = conform(
            bad.select(
                pl.lit("message").alias("unit"),
                pl.lit(STAGE).alias("stage"),
                pl.when(pl.col("_missing").is_not_null())
                .then(pl.lit("missing_field"))
                .otherwise(pl.lit("wrong_type"))
                .alias("reason"),
                pl.when(pl.col("_missing").is_not_null())
                .then(pl.col("_missing").list.join(", "))
                .otherwise(pl.col("_bad").list.join(", "))
                .alias("evidence"),
                pl.col("message_tree_id").cast(pl.String) if "message_tree_id" in bad.columns else pl.lit(None),
                pl.col("message_id").cast(pl.String),
                pl.col("source"),
                pl.col("source_line"),
                pl.struct(
                    [
                        pl.col(c).cast(pl.String) if c not in ("detoxify", "emojis", "labels") else pl.col(c)
                        for c in payload_cols
                    ]
                )
                .struct.json_encode()
                .alias("payload"),
            ),
            REJECT_SCHEMA,
        )
    return conform(good, MESSAGE_SCHEMA), rejects


# ------------------------------------------------------------------------------------------------------------ JSONL


def _emojis(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict) and set(value) >= {"name", "count"} and isinstance(value.get("name"), list):
        return {"name": value["name"], "count": value["count"]}
    if isinstance(value, dict):
        items = sorted(value.items())
        return {"name": [k for k, _ in items], "count": [int(v) for _, v in items]}
    raise TypeError("emojis")


def _labels(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict) and isinstance(value.get("name"), list):
        return {"name": value["name"], "value": value["value"], "count": value["count"]}
    if isinstance(value, dict):
        items = sorted(value.items())
        return {
            "name": [k for k, _ in items],
            "value": [float(v["value"]) for _, v in items],
            "count": [int(v["count"]) for _, v in items],
        }
    raise TypeError("labels")


def _detoxify(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError("detoxify")
    return {f: (float(value[f]) if value.get(f) is not None else None) for f in DETOXIFY_FIELDS}


class _Columns:
    """Column-wise accumulator for canonical messages built from JSON records."""

    def __init__(self, name: str, split: str | None) -> None:
        self.name = name
        self.split = split
        self.cols: dict[str, list[Any]] = {c: [] for c in MESSAGE_SCHEMA}
        self.rejects: list[dict[str, Any]] = []

    def reject(
        self,
        *,
        unit: str,
        reason: str,
        evidence: str,
        line: int,
        payload: Any,
        message_id: Any = None,
        tree_id: Any = None,
    ) -> None:
        self.rejects.append(
            {
                "unit": unit,
                "stage": STAGE,
                "filter": None,
                "reason": reason,
                "evidence": evidence,
                "message_tree_id": tree_id if isinstance(tree_id, str) else None,
                "message_id": message_id if isinstance(message_id, str) else None,
                "source": self.name,
                "source_line": line,
                "payload": payload if isinstance(payload, str) else orjson.dumps(payload, default=str).decode(),
            }
        )

    def add(
        self,
        rec: dict[str, Any],
        line: int,
        *,
        tree_id: Any = None,
        tree_state: Any = None,
        fallback_id: str | None = None,
    ) -> str | None:
        """Validate one JSON message and append it; return its id (or None when rejected).

        ``fallback_id`` names a tree node without a usable id in its reject row, so that its replies are
        reported as hanging below a rejected message rather than as orphans."""
        mid = rec.get("message_id")
        if not isinstance(mid, str) and fallback_id is not None:
            mid = fallback_id

        def reject(reason: str, evidence: str) -> None:
            self.reject(unit="message", reason=reason, evidence=evidence, line=line, payload=_strip(rec),
                        message_id=mid, tree_id=tree_id or rec.get("message_tree_id"))  # fmt: skip

        missing = [f for f in REQUIRED_FIELDS if rec.get(f) is None]
        if missing:
            reject("missing_field", ", ".join(missing))
            return None
        values: dict[str, Any] = {}
        wrong = []
        for f, types in _FIELD_TYPES.items():
            v = rec.get(f)
            if v is not None and (not isinstance(v, types) or (types == _INT and isinstance(v, bool))):
                wrong.append(f"{f}: expected {_TYPE_NAMES[types]}, got {type(v).__name__} {_short(v)}")
            values[f] = v
        for f, conv in (("emojis", _emojis), ("labels", _labels), ("detoxify", _detoxify)):
            try:
                values[f] = conv(rec.get(f))
            except (TypeError, ValueError, KeyError, AttributeError):
                wrong.append(f"{f}: unexpected shape {_short(rec.get(f))}")
        if values["rank"] is not None and isinstance(values["rank"], int) and not -(2**31) <= values["rank"] < 2**31:
            wrong.append(f"rank: out of range {values['rank']}")
        if wrong:
            reject("wrong_type", "; ".join(wrong))
            return None
        if tree_id is not None:
            values["message_tree_id"] = tree_id
        if tree_state is not None:
            values["tree_state"] = tree_state
        for c in MESSAGE_SCHEMA:
            if c == "source":
                self.cols[c].append(self.name)
            elif c == "source_line":
                self.cols[c].append(line)
            elif c == "source_split":
                self.cols[c].append(self.split)
            else:
                self.cols[c].append(values.get(c))
        return mid

    @property
    def records(self) -> int:
        """Messages and rejects held since the last flush."""
        return len(self.cols["source_line"]) + len(self.rejects)

    def flush(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The held messages and rejects as frames; the accumulator starts over empty."""
        msgs = pl.DataFrame(self.cols, schema=MESSAGE_SCHEMA)
        rej = pl.DataFrame(self.rejects, schema=REJECT_SCHEMA) if self.rejects else empty_rejects()
        self.cols = {c: [] for c in MESSAGE_SCHEMA}
        self.rejects = []
        return msgs, rej


def _short(v: Any, n: int = 40) -> str:
    s = orjson.dumps(v, default=str).decode()
    return s if len(s) <= n else s[: n - 1] + "…"


def _strip(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as payload: without nested replies (they are accounted for separately) and without user_id."""
    return {k: v for k, v in rec.items() if k not in ("replies", "user_id")}


def read_jsonl(path: Path, name: str, *, trees: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Read a ``.messages.jsonl(.gz)`` or ``.trees.jsonl(.gz)`` export."""
    return _concat(_jsonl_batches(path, name, trees=trees, batch_rows=BATCH_ROWS))


def _jsonl_batches(
    path: Path, name: str, *, trees: bool, batch_rows: int
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """Flush the records read so far whenever they reach ``batch_rows``, between lines (nothing for no records)."""
    acc = _Columns(name, split_from_name(path))
    ready_export = "_ready." in path.name
    for lineno, raw in open_lines(path, name):
        _read_line(acc, raw, lineno, trees=trees, ready_export=ready_export)
        if acc.records >= batch_rows:
            yield acc.flush()
    if acc.records:
        yield acc.flush()


def _read_line(acc: _Columns, raw: bytes, lineno: int, *, trees: bool, ready_export: bool) -> None:
    if not raw.strip():
        return
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        acc.reject(
            unit="line",
            reason="malformed_json",
            evidence=str(exc).split(":")[0][:120],
            line=lineno,
            payload=raw.decode("utf-8", errors="replace").rstrip("\r\n"),
        )
        return
    if not isinstance(obj, dict):
        acc.reject(
            unit="line",
            reason="not_an_object",
            evidence=f"got {type(obj).__name__}",
            line=lineno,
            payload=raw.decode("utf-8", errors="replace").rstrip("\r\n"),
        )
        return
    if trees:
        _read_tree(acc, obj, lineno, ready_export)
    else:
        if obj.get("tree_state") is None and ready_export:
            obj["tree_state"] = "ready_for_export"
        acc.add(obj, lineno)


def _read_tree(acc: _Columns, obj: dict[str, Any], lineno: int, ready_export: bool) -> None:
    """Walk one nested tree iteratively (explicit stack, pre-order), emitting its messages."""
    prompt = obj.get("prompt")
    tree_id = obj.get("message_tree_id")
    if not isinstance(prompt, dict):
        acc.reject(
            unit="line",
            reason="missing_field" if prompt is None else "not_an_object",
            evidence="prompt",
            line=lineno,
            payload=obj,
            tree_id=tree_id,
        )
        return
    tree_state = obj.get("tree_state")
    if tree_state is None and ready_export:
        tree_state = "ready_for_export"
    if not isinstance(tree_state, str):
        tree_state = None
    tid = tree_id if isinstance(tree_id, str) else prompt.get("message_id")
    tid = tid if isinstance(tid, str) else None
    stack: list[tuple[Any, str | None, str]] = [(prompt, None, "prompt")]
    while stack:
        node, parent, where = stack.pop()
        if not isinstance(node, dict):
            acc.reject(
                unit="message",
                reason="not_an_object",
                evidence=f"{where}: got {type(node).__name__}",
                line=lineno,
                payload=node,
                tree_id=tid,
            )
            continue
        # the nesting defines the parent: a stale or missing parent_id inside a tree is overridden
        own_id = node.get("message_id")
        placeholder = f"<no id: line {lineno} {where}>"
        rec = dict(node)
        rec["parent_id"] = parent
        acc.add(rec, lineno, tree_id=tid, tree_state=tree_state, fallback_id=placeholder)
        replies = node.get("replies") or []
        if not isinstance(replies, list):
            acc.reject(
                unit="message",
                reason="wrong_type",
                evidence=f"{where}.replies: expected list",
                line=lineno,
                payload=replies,
                tree_id=tid,
            )
            continue
        child_parent = own_id if isinstance(own_id, str) else placeholder
        for i in range(len(replies) - 1, -1, -1):
            stack.append((replies[i], child_parent, f"{where}.replies[{i}]"))
