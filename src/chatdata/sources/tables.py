"""The two tables the non-oasst readers produce (SFT dialogues, preference pairs) and the rows of each."""

from __future__ import annotations

import polars as pl

from chatdata.pairs import _sha256_hex
from chatdata.schema import CHAT_MESSAGE, REJECT_SCHEMA, conform

TURNS = pl.List(CHAT_MESSAGE)

#: SFT rows: chatdata's dialogue columns (``trees.DIALOGUE_COLUMNS``) plus where each row came from; readers may
#: add extras after these (Dolly: ``category``).
DIALOGUE_SCHEMA: dict[str, pl.DataType] = {
    "dialogue_id": pl.String(),
    "message_tree_id": pl.String(),
    "message_ids": pl.List(pl.String()),
    "messages": TURNS,
    "lang": pl.String(),
    "source_split": pl.String(),
    "n_turns": pl.Int32(),
    "source": pl.String(),
    "source_line": pl.Int64(),
}

#: Preference rows: the columns and types of ``chatdata.pairs.build_pairs`` plus ``source``/``source_line``.
PAIR_SCHEMA: dict[str, pl.DataType] = {
    "prompt": pl.String(),
    "prompt_id": pl.String(),
    "chosen": TURNS,
    "rejected": TURNS,
    "messages": TURNS,
    "score_chosen": pl.Float64(),
    "score_rejected": pl.Float64(),
    "dialogue_id": pl.String(),
    "message_tree_id": pl.String(),
    "message_ids": pl.List(pl.String()),
    "rank_chosen": pl.Int32(),
    "rank_rejected": pl.Int32(),
    "lang": pl.String(),
    "source_split": pl.String(),
    "n_turns": pl.Int32(),
    "source": pl.String(),
    "source_line": pl.Int64(),
}

TABLE_SCHEMAS = {"dialogues": DIALOGUE_SCHEMA, "pairs": PAIR_SCHEMA}

#: ``{source}:{source_line}``: each record is its own dialogue and its own split unit
DIALOGUE_ID = pl.format("{}:{}", pl.col("source"), pl.col("source_line"))


def dialogue_rows(frame: pl.DataFrame, *, lang: str | None, extras: tuple[str, ...] = ()) -> pl.DataFrame:
    """SFT rows from converted records holding ``messages``, ``source``, ``source_line``, ``source_split``."""
    out = frame.with_columns(DIALOGUE_ID.alias("dialogue_id")).with_columns(
        pl.col("dialogue_id").alias("message_tree_id"),
        pl.concat_list("dialogue_id").alias("message_ids"),
        pl.lit(lang, dtype=pl.String).alias("lang"),
        pl.col("messages").list.len().cast(pl.Int32).alias("n_turns"),
    )
    return conform(out, DIALOGUE_SCHEMA).hstack(out.select(extras))


def pair_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """Preference rows from converted records holding ``prompt``, ``chosen``, ``rejected``, the scores (or not)
    and where they came from."""
    out = frame.with_columns(DIALOGUE_ID.alias("dialogue_id")).with_columns(
        pl.col("prompt").map_batches(_sha256_hex, return_dtype=pl.String).alias("prompt_id"),
        pl.col("chosen").alias("messages"),
        pl.col("dialogue_id").alias("message_tree_id"),
        pl.concat_list("dialogue_id").alias("message_ids"),
        pl.col("chosen").list.len().cast(pl.Int32).alias("n_turns"),
    )
    return conform(out, PAIR_SCHEMA)


def convert_rejects(frame: pl.DataFrame, *, unit: str, reason: str, evidence: str, payload: pl.Expr) -> pl.DataFrame:
    """Reject rows (stage ``convert``) for records that were read but cannot become a row."""
    return conform(
        frame.select(
            pl.lit(unit).alias("unit"),
            pl.lit("convert").alias("stage"),
            pl.col(reason).alias("reason"),
            pl.col(evidence).alias("evidence"),
            DIALOGUE_ID.alias("message_tree_id"),
            "source",
            "source_line",
            payload.alias("payload"),
        ),
        REJECT_SCHEMA,
    )
