"""Read OpenAssistant data into ONE canonical message table: the readers of the three oasst formats
(:mod:`chatdata.sources.formats`: ``oasst_parquet``, ``oasst_messages``, ``oasst_trees``).

The Hub Parquet message table has ``emojis``/``labels`` as parallel lists, messages JSON Lines dict-shaped
``emojis``/``labels``, trees JSON Lines nested ``replies`` (missing keys mean null); each JSON file may also be
gzip-compressed. A UTF-8 BOM is ignored.

Unreadable records never vanish: a malformed line, a record that is not an object, a missing required field or a
value of the wrong type becomes a reject row (``stage="ingest"``) with a reason and the raw payload.

Each reader streams a file in batches of a bounded number of records: Parquet batches hold at most ``batch_rows``
rows; a JSONL batch is cut between lines once it holds ``batch_rows`` records (a tree line may add many).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from chatdata.errors import InputError
from chatdata.jsonfiles import open_lines
from chatdata.parquetfiles import open_parquet, parquet_batches
from chatdata.schema import (
    DETOXIFY_FIELDS,
    MESSAGE_SCHEMA,
    REJECT_SCHEMA,
    REQUIRED_FIELDS,
    conform,
    empty_rejects,
)

STAGE = "ingest"

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


# ---------------------------------------------------------------------------------------------------------- Parquet


def iter_parquet(
    path: Path, name: str, layout: str, split: str | None, batch_rows: int
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """A Hub-style Parquet message table ``batch_rows`` rows at a time (nothing for an empty table); cells of the
    wrong type become ingest rejects."""
    with open_parquet(path, name) as pf:
        schema = pf.schema_arrow
        missing = [c for c in REQUIRED_FIELDS if c not in schema.names]
        if missing:
            raise InputError(name, f"missing required column(s) {missing}; is this an oasst message table?")
        columns = [c for c in schema.names if c != "user_id"] if "user_id" in schema.names else None
        rows = 0
        for batch in parquet_batches(pf, name, batch_rows, columns):
            yield _parquet_frames(batch, name, split, rows)
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


def _parquet_frames(
    batch: pa.RecordBatch, name: str, split: str | None, offset: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
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
        pl.lit(split, dtype=pl.String).alias("source_split"),
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


def iter_messages(
    path: Path, name: str, layout: str, split: str | None, batch_rows: int
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """A messages export (``.messages.jsonl``, one message per line) in batches."""
    return _jsonl_batches(path, name, split, trees=False, batch_rows=batch_rows)


def iter_trees(
    path: Path, name: str, layout: str, split: str | None, batch_rows: int
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """A trees export (``.trees.jsonl``, one nested tree per line) in batches."""
    return _jsonl_batches(path, name, split, trees=True, batch_rows=batch_rows)


def _jsonl_batches(
    path: Path, name: str, split: str | None, *, trees: bool, batch_rows: int
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """Flush the records read so far whenever they reach ``batch_rows``, between lines (nothing for no records)."""
    acc = _Columns(name, split)
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
