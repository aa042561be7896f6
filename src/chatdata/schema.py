"""Explicit schemas: the Hub's oasst Parquet table, chatdata's canonical message table and the rejects table."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

DETOXIFY_FIELDS = (
    "toxicity",
    "severe_toxicity",
    "obscene",
    "identity_attack",
    "insult",
    "threat",
    "sexual_explicit",
)

#: The 18 columns of ``OpenAssistant/oasst1`` / ``oasst2`` Parquet on the Hub, in order.
HUB_SCHEMA = pa.schema(
    [
        ("message_id", pa.string()),
        ("parent_id", pa.string()),
        ("user_id", pa.string()),
        ("created_date", pa.string()),
        ("text", pa.string()),
        ("role", pa.string()),
        ("lang", pa.string()),
        ("review_count", pa.int32()),
        ("review_result", pa.bool_()),
        ("deleted", pa.bool_()),
        ("rank", pa.int32()),
        ("synthetic", pa.bool_()),
        ("model_name", pa.string()),
        ("detoxify", pa.struct([(f, pa.float64()) for f in DETOXIFY_FIELDS])),
        ("message_tree_id", pa.string()),
        ("tree_state", pa.string()),
        ("emojis", pa.struct([("name", pa.list_(pa.string())), ("count", pa.list_(pa.int32()))])),
        (
            "labels",
            pa.struct(
                [
                    ("name", pa.list_(pa.string())),
                    ("value", pa.list_(pa.float64())),
                    ("count", pa.list_(pa.int32())),
                ]
            ),
        ),
    ]
)

#: Fields without which a message cannot be placed or used.
REQUIRED_FIELDS = ("message_id", "role", "text")

#: The canonical message table every reader produces. ``user_id`` is dropped at ingest: it is never published.
#: ``source`` names the file, ``source_line`` the 1-based line (JSONL) or row (Parquet), ``source_split`` the
#: split the source assigned (``train``/``validation``) or null.
MESSAGE_SCHEMA: dict[str, pl.DataType] = {
    "message_id": pl.String(),
    "parent_id": pl.String(),
    "message_tree_id": pl.String(),
    "role": pl.String(),
    "text": pl.String(),
    "lang": pl.String(),
    "created_date": pl.String(),
    "review_count": pl.Int32(),
    "review_result": pl.Boolean(),
    "deleted": pl.Boolean(),
    "rank": pl.Int32(),
    "synthetic": pl.Boolean(),
    "model_name": pl.String(),
    "tree_state": pl.String(),
    "detoxify": pl.Struct({f: pl.Float64() for f in DETOXIFY_FIELDS}),
    "emojis": pl.Struct({"name": pl.List(pl.String()), "count": pl.List(pl.Int32())}),
    "labels": pl.Struct({"name": pl.List(pl.String()), "value": pl.List(pl.Float64()), "count": pl.List(pl.Int32())}),
    "source": pl.String(),
    "source_line": pl.Int64(),
    "source_split": pl.String(),
}

#: One row per thing that did not reach an output: a message, a dialogue, a pair or an unreadable line.
#: ``evidence`` is a short human-readable string (matched phrase, detected language and score, the
#: ancestor that was rejected); ``payload`` holds the rejected content as JSON so nothing is lost.
REJECT_SCHEMA: dict[str, pl.DataType] = {
    "unit": pl.String(),  # line | message | dialogue | pair
    "stage": pl.String(),
    "filter": pl.String(),
    "reason": pl.String(),
    "evidence": pl.String(),
    "message_tree_id": pl.String(),
    "message_id": pl.String(),
    "source": pl.String(),
    "source_line": pl.Int64(),
    "payload": pl.String(),
}

#: What a reject row of the workspace holds besides the published columns, so its payload is built when the rejects
#: table is written, from the shard's text: ``_i`` the rejected message's position in the shard file (its payload
#: is that row), ``_m``/``_r``/``_rec`` a rejected dialogue's or pair's text (see :mod:`chatdata.messages`), and
#: ``_fill`` the fields of ``payload`` (the row as JSON, its text fields null) to fill with that text.
REJECT_REFS: dict[str, pl.DataType] = {
    "_i": pl.UInt32(),
    "_m": pl.List(pl.UInt32()),
    "_r": pl.UInt32(),
    "_rec": pl.UInt32(),
    "_fill": pl.List(pl.String()),
    "_text_null": pl.Boolean(),
}
INTERNAL_REJECT_SCHEMA: dict[str, pl.DataType] = {**REJECT_SCHEMA, **REJECT_REFS}

#: A chat message inside a dialogue, as published (``messages`` column).
CHAT_MESSAGE = pl.Struct({"role": pl.String(), "content": pl.String()})

ROLE_MAP = {"prompter": "user", "assistant": "assistant"}


def empty_messages() -> pl.DataFrame:
    return pl.DataFrame(schema=MESSAGE_SCHEMA)


def empty_rejects(schema: dict[str, pl.DataType] = REJECT_SCHEMA) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def conform(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Select ``schema``'s columns in order, adding missing ones as nulls and casting the rest."""
    cols = []
    for name, dtype in schema.items():
        if name in frame.columns:
            cols.append(pl.col(name).cast(dtype))
        else:
            cols.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(cols)


def message_rejects(
    frame: pl.DataFrame,
    *,
    stage: str,
    reason: pl.Expr | str,
    evidence: pl.Expr | str | None = None,
    filter_name: str | None = None,
) -> pl.DataFrame:
    """Turn rejected canonical messages into reject rows; the payload keeps the whole message as JSON. A frame
    without ``text`` but with positions ``_i`` gives rows whose payload the writer builds from the shard."""
    compact = "text" not in frame.columns and "_i" in frame.columns
    if frame.is_empty():
        return empty_rejects(INTERNAL_REJECT_SCHEMA if compact else REJECT_SCHEMA)
    reason_e = pl.lit(reason) if isinstance(reason, str) else reason
    if evidence is None:
        evidence_e = pl.lit(None, dtype=pl.String())
    elif isinstance(evidence, str):
        evidence_e = pl.lit(evidence)
    else:
        evidence_e = evidence
    payload_cols = [c for c in MESSAGE_SCHEMA if c in frame.columns and not c.startswith("source")]
    out = frame.select(
        pl.lit("message").alias("unit"),
        pl.lit(stage).alias("stage"),
        pl.lit(filter_name, dtype=pl.String()).alias("filter"),
        reason_e.cast(pl.String()).alias("reason"),
        evidence_e.cast(pl.String()).alias("evidence"),
        pl.col("message_tree_id") if "message_tree_id" in frame.columns else pl.lit(None, pl.String()),
        pl.col("message_id"),
        pl.col("source") if "source" in frame.columns else pl.lit(None, pl.String()),
        pl.col("source_line") if "source_line" in frame.columns else pl.lit(None, pl.Int64()),
        (pl.lit(None, pl.String) if compact else pl.struct(payload_cols).struct.json_encode()).alias("payload"),
        *([pl.col("_i")] if compact else []),
    )
    out.columns = list(REJECT_SCHEMA) + (["_i"] if compact else [])
    return conform(out, INTERNAL_REJECT_SCHEMA if compact else REJECT_SCHEMA)
