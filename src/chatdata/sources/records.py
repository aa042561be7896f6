"""The records of a non-oasst file as typed frames, in batches, whatever the layout (Parquet, JSON Lines, JSON array).

A format declares its :class:`Field` s; each batch is a frame with one column per field (``text`` → String,
``number`` → Float64, ``turns`` → list of ``{role, content}``), ``source``, ``source_line`` (1-based line, array
element or Parquet row), ``source_split`` and the record's payload for reject rows. A record that cannot be read
(malformed JSON, not an object, a required field missing or null, a value of the wrong type) becomes an
``ingest`` reject (``unit="line"``) instead. JSON records are checked one by one as they are parsed; Parquet
columns are checked by type, and their cells with vectorised expressions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
import polars as pl
import pyarrow as pa

from chatdata.jsonfiles import iter_array, open_lines
from chatdata.parquetfiles import open_parquet, parquet_batches
from chatdata.schema import REJECT_SCHEMA, conform, empty_rejects
from chatdata.sources.tables import TURNS

STAGE = "ingest"
_KIND_TYPES: dict[str, pl.DataType] = {"text": pl.String(), "number": pl.Float64(), "turns": TURNS}
_KIND_NAMES = {"text": "string", "number": "number", "turns": "list of turns"}
_ARROW_TYPES: dict[pl.DataType, pa.DataType] = {
    pl.String(): pa.string(),
    pl.Int64(): pa.int64(),
    pl.Float64(): pa.float64(),
    TURNS: pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])),
}


@dataclass(frozen=True)
class Field:
    """One field of a record: a string, a number, or a list of turns (objects with a role and a content key)."""

    name: str
    kind: Literal["text", "number", "turns"] = "text"
    required: bool = True
    role_key: str = "role"
    content_key: str = "content"


def typed_schema(fields: Sequence[Field]) -> dict[str, pl.DataType]:
    return {
        **{f.name: _KIND_TYPES[f.kind] for f in fields},
        "source": pl.String(),
        "source_line": pl.Int64(),
        "source_split": pl.String(),
        "_payload": pl.String(),
    }


def payload(frame: pl.DataFrame) -> pl.Expr:
    """The record as JSON: the raw line or element for JSON, the whole row for Parquet (encoded only when used)."""
    return pl.col("_payload") if "_payload" in frame.columns else pl.col("_row").struct.json_encode()


def iter_batches(
    path: Path, name: str, layout: str, fields: Sequence[Field], split: str | None, batch_rows: int
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    """(typed records, ingest rejects) of about ``batch_rows`` records at a time (nothing for no records)."""
    if layout == "parquet":
        yield from _parquet_batches(path, name, fields, split, batch_rows)
        return
    acc = _JsonRecords(fields, name, split)
    if layout == "jsonl":
        for lineno, raw in open_lines(path, name):
            if raw.strip():
                acc.add_line(lineno, raw)
                if acc.records >= batch_rows:
                    yield acc.flush()
    else:
        for index, value in iter_array(path, name):
            acc.add(index, value, orjson.dumps(value).decode())
            if acc.records >= batch_rows:
                yield acc.flush()
    if acc.records:
        yield acc.flush()


# ------------------------------------------------------------------------------------------------------------- JSON


class _JsonRecords:
    """Column-wise accumulator of checked JSON records and their rejects."""

    def __init__(self, fields: Sequence[Field], name: str, split: str | None) -> None:
        self.fields = tuple(fields)
        self.schema = typed_schema(fields)
        self.name = name
        self.split = split
        self.cols: dict[str, list[Any]] = {c: [] for c in self.schema}
        self.rejects: list[dict[str, Any]] = []

    @property
    def records(self) -> int:
        return len(self.cols["source_line"]) + len(self.rejects)

    def reject(self, line: int, reason: str, evidence: str, payload: str) -> None:
        self.rejects.append(
            {
                "unit": "line",
                "stage": STAGE,
                "reason": reason,
                "evidence": evidence,
                "source": self.name,
                "source_line": line,
                "payload": payload,
            }
        )

    def add_line(self, line: int, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self.reject(line, "malformed_json", str(exc).split(":")[0][:120], text)
            return
        self.add(line, value, text)

    def add(self, line: int, value: Any, text: str) -> None:
        if not isinstance(value, dict):
            self.reject(line, "not_an_object", f"got {type(value).__name__}", text)
            return
        missing: list[str] = []
        wrong: list[str] = []
        values = {f.name: _check(f, value.get(f.name), missing, wrong) for f in self.fields}
        if missing or wrong:
            self.reject(line, "missing_field" if missing else "wrong_type", "; ".join(missing or wrong), text)
            return
        for k, v in values.items():
            self.cols[k].append(v)
        self.cols["source"].append(self.name)
        self.cols["source_line"].append(line)
        self.cols["source_split"].append(self.split)
        self.cols["_payload"].append(text)

    def flush(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        # through Arrow: building nested columns from Python objects is several times faster there than in polars
        table = pa.table({c: pa.array(v, type=_ARROW_TYPES[self.schema[c]]) for c, v in self.cols.items()})
        frame = conform(pl.from_arrow(table), self.schema)  # type: ignore[arg-type]
        rejects = conform(pl.DataFrame(self.rejects), REJECT_SCHEMA) if self.rejects else empty_rejects()
        self.cols = {c: [] for c in self.schema}
        self.rejects = []
        return frame, rejects


def _check(f: Field, v: Any, missing: list[str], wrong: list[str]) -> Any:
    """``v`` as the field's type; a problem is appended to ``missing`` or ``wrong`` (and None returned)."""
    if v is None:
        if f.required:
            missing.append(f.name)
        return None
    if f.kind == "text":
        if isinstance(v, str):
            return v
    elif f.kind == "number":
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    elif isinstance(v, list):
        turns = []
        for i, turn in enumerate(v):
            where = f"{f.name}[{i}]"
            if not isinstance(turn, dict):
                wrong.append(f"{where}: expected object, got {type(turn).__name__}")
                return None
            role, content = turn.get(f.role_key), turn.get(f.content_key)
            for key, got in ((f.role_key, role), (f.content_key, content)):
                if got is None:
                    missing.append(f"{where}.{key}")
                elif not isinstance(got, str):
                    wrong.append(f"{where}.{key}: expected string, got {type(got).__name__} {_short(got)}")
            if missing or wrong:
                return None
            turns.append({"role": role, "content": content})
        return turns
    wrong.append(f"{f.name}: expected {_KIND_NAMES[f.kind]}, got {type(v).__name__} {_short(v)}")
    return None


def _short(v: Any, n: int = 40) -> str:
    s = orjson.dumps(v, default=str).decode()
    return s if len(s) <= n else s[: n - 1] + "…"


# ---------------------------------------------------------------------------------------------------------- Parquet


def _parquet_batches(
    path: Path, name: str, fields: Sequence[Field], split: str | None, batch_rows: int
) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
    with open_parquet(path, name) as pf:
        rows = 0
        for batch in parquet_batches(pf, name, batch_rows):
            yield _parquet_frames(batch, fields, name, split, rows)
            rows += batch.num_rows


def _text_ok(dtype: pl.DataType) -> bool:
    return dtype in (pl.String, pl.Null, pl.Categorical) or isinstance(dtype, pl.Enum)


def _column(raw: pl.DataFrame, f: Field) -> tuple[pl.Expr, pl.Expr | None, pl.Expr | None]:
    """(the column as the field's type, a per-row wrong-type evidence or None, a per-row missing evidence or None)."""
    target = _KIND_TYPES[f.kind]
    if f.name not in raw.columns:
        return pl.lit(None, dtype=target), None, pl.lit(f.name) if f.required else None
    col = pl.col(f.name)
    dtype = raw.schema[f.name]
    missing = pl.when(col.is_null()).then(pl.lit(f.name)) if f.required else None
    if f.kind == "text" and _text_ok(dtype):
        return col.cast(pl.String), None, missing
    if f.kind == "number" and (dtype == pl.Null or (dtype.is_numeric() and dtype != pl.Boolean)):
        return col.cast(pl.Float64), None, missing
    if f.kind == "turns" and isinstance(dtype, (pl.List, pl.Array)) and isinstance(dtype.inner, pl.Struct):
        keys = {fl.name: fl.dtype for fl in dtype.inner.fields}
        if all(k in keys and _text_ok(keys[k]) for k in (f.role_key, f.content_key)):
            el = pl.element()
            turns = col.cast(pl.List(dtype.inner)) if isinstance(dtype, pl.Array) else col
            bad = turns.list.eval(
                el.is_null() | el.struct.field(f.role_key).is_null() | el.struct.field(f.content_key).is_null()
            )
            inner = pl.when(bad.list.any()).then(
                pl.format("{}[{}].{}/{}", pl.lit(f.name), bad.list.arg_max(), pl.lit(f.role_key), pl.lit(f.content_key))
            )
            missing = inner if missing is None else pl.coalesce(missing, inner)
            value = turns.list.eval(
                pl.struct(
                    el.struct.field(f.role_key).cast(pl.String).alias("role"),
                    el.struct.field(f.content_key).cast(pl.String).alias("content"),
                )
            )
            return value, None, missing
    if dtype == pl.Null:
        return pl.lit(None, dtype=target), None, missing
    wrong = pl.when(col.is_not_null()).then(pl.lit(f"{f.name}: expected {_KIND_NAMES[f.kind]}, got {dtype}"))
    return pl.lit(None, dtype=target), wrong, missing


def _parquet_frames(
    batch: pa.RecordBatch, fields: Sequence[Field], name: str, split: str | None, offset: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    raw = pl.from_arrow(batch)
    assert isinstance(raw, pl.DataFrame)
    columns = [_column(raw, f) for f in fields]
    missing = [m for _, _, m in columns if m is not None]
    wrong = [w for _, w, _ in columns if w is not None]
    framed = raw.select(
        *[value.alias(f.name) for f, (value, _, _) in zip(fields, columns, strict=True)],
        pl.lit(name).alias("source"),
        pl.int_range(offset + 1, offset + 1 + raw.height, dtype=pl.Int64).alias("source_line"),
        pl.lit(split, dtype=pl.String).alias("source_split"),
        pl.struct(raw.columns).alias("_row") if raw.width else pl.lit(None, dtype=pl.Struct({})).alias("_row"),
        (pl.concat_str(missing, separator=", ", ignore_nulls=True) if missing else pl.lit(None, pl.String)).alias(
            "_missing"
        ),
        (pl.concat_str(wrong, separator="; ", ignore_nulls=True) if wrong else pl.lit(None, pl.String)).alias("_wrong"),
    ).with_columns(pl.col("_missing").replace("", None), pl.col("_wrong").replace("", None))
    ok = pl.col("_missing").is_null() & pl.col("_wrong").is_null()
    bad = framed.filter(~ok)
    rejects = empty_rejects()
    if bad.height:
        rejects = conform(
            bad.select(
                pl.lit("line").alias("unit"),
                pl.lit(STAGE).alias("stage"),
                pl.when(pl.col("_missing").is_not_null()).then(pl.lit("missing_field")).otherwise(pl.lit("wrong_type"))
                .alias("reason"),
                pl.coalesce("_missing", "_wrong").alias("evidence"),
                "source",
                "source_line",
                pl.col("_row").struct.json_encode().alias("payload"),
            ),
            REJECT_SCHEMA,
        )  # fmt: skip
    return framed.filter(ok).drop("_missing", "_wrong"), rejects
