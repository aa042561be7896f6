"""How typed records (:mod:`chatdata.sources.records`) become SFT dialogues or preference pairs, and the reader of
a format made of such records."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import polars as pl

from chatdata.sources.checks import facts, normalise, problem
from chatdata.sources.formats import Batch, Reader
from chatdata.sources.records import Field, iter_batches, payload
from chatdata.sources.tables import convert_rejects, dialogue_rows, pair_rows

#: (rows, ``convert`` rejects) of a batch of typed records
Converted = tuple[pl.DataFrame, pl.DataFrame]


def record_reader(fields: tuple[Field, ...], convert: Callable[[pl.DataFrame], Converted]) -> Reader:
    """The reader of a format whose records hold ``fields``: each batch of typed records becomes ``convert``'s
    rows, and its ``ingest`` and ``convert`` rejects together in record order."""

    def read(path: Path, name: str, layout: str, split: str | None, batch_rows: int) -> Iterator[Batch]:
        for typed, ingest_rejects in iter_batches(path, name, layout, fields, split, batch_rows):
            rows, rejects = convert(typed)
            yield rows, pl.concat([ingest_rejects, rejects]).sort("source_line", maintain_order=True)

    return read


def turn(role: str, content: pl.Expr) -> pl.Expr:
    return pl.struct(pl.lit(role).alias("role"), content.alias("content"))


def convert_dialogues(
    frame: pl.DataFrame,
    turns: pl.Expr,
    roles: Mapping[str, str],
    *,
    lang: str | None = None,
    extras: tuple[str, ...] = (),
) -> Converted:
    """SFT rows of the records whose ``turns`` are a usable conversation (:mod:`checks`); the others rejected."""
    checked = (
        frame.with_columns(turns.alias("_raw"))
        .with_columns(normalise(pl.col("_raw"), roles).alias("messages"))
        .with_columns(facts("_raw", "messages", roles, "d"))
    )
    reason, evidence = problem("d")
    checked = checked.with_columns(reason.alias("_reason"), evidence.alias("_evidence"))
    good = checked.filter(pl.col("_reason").is_null())
    bad = checked.filter(pl.col("_reason").is_not_null())
    rejects = convert_rejects(bad, unit="dialogue", reason="_reason", evidence="_evidence", payload=payload(frame))
    return dialogue_rows(good, lang=lang, extras=extras), rejects


def convert_pairs(
    frame: pl.DataFrame,
    *,
    prompt: pl.Expr,
    chosen: pl.Expr,
    rejected: pl.Expr,
    roles: Mapping[str, str],
    scores: tuple[pl.Expr, pl.Expr] | None = None,
) -> Converted:
    """Preference rows of the records whose two sides are usable conversations that share everything but the
    final reply and differ in it; the others rejected (``empty_prompt``, a side's conversation problem,
    ``prefix_mismatch``, ``identical_replies``)."""
    no_score = pl.lit(None, dtype=pl.Float64)
    score_c, score_r = scores if scores is not None else (no_score, no_score)
    checked = frame.with_columns(
        prompt.alias("prompt"),
        chosen.alias("_raw_c"),
        rejected.alias("_raw_r"),
        score_c.alias("score_chosen"),
        score_r.alias("score_rejected"),
    ).with_columns(
        normalise(pl.col("_raw_c"), roles).alias("chosen"),
        normalise(pl.col("_raw_r"), roles).alias("rejected"),
    )
    checked = checked.with_columns(
        *facts("_raw_c", "chosen", roles, "c"),
        *facts("_raw_r", "rejected", roles, "r"),
    )
    reason_c, evidence_c = problem("c", "chosen: ")
    reason_r, evidence_r = problem("r", "rejected: ")
    reply_c = pl.col("chosen").list.last().struct.field("content")
    reply_r = pl.col("rejected").list.last().struct.field("content")
    same_prefix = pl.col("chosen").list.head(pl.col("chosen").list.len() - 1) == pl.col("rejected").list.head(
        pl.col("rejected").list.len() - 1
    )
    blank_prompt = pl.col("prompt").str.strip_chars() == ""
    reason = (
        pl.when(blank_prompt)
        .then(pl.lit("empty_prompt"))
        .when(reason_c.is_not_null())
        .then(reason_c)
        .when(reason_r.is_not_null())
        .then(reason_r)
        .when(~same_prefix)
        .then(pl.lit("prefix_mismatch"))
        .when(reply_c == reply_r)
        .then(pl.lit("identical_replies"))
    )
    evidence = (
        pl.when(blank_prompt)
        .then(pl.lit("prompt is blank"))
        .when(reason_c.is_not_null())
        .then(evidence_c)
        .when(reason_r.is_not_null())
        .then(evidence_r)
        .when(~same_prefix)
        .then(pl.lit("chosen and rejected differ before the final reply"))
        .when(reply_c == reply_r)
        .then(pl.lit("both replies: ") + reply_c.str.slice(0, 80))
    )
    checked = checked.with_columns(reason.alias("_reason"), evidence.alias("_evidence"))
    good = checked.filter(pl.col("_reason").is_null())
    bad = checked.filter(pl.col("_reason").is_not_null())
    rejects = convert_rejects(bad, unit="pair", reason="_reason", evidence="_evidence", payload=payload(frame))
    return pair_rows(good), rejects
