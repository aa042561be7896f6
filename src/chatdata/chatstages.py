"""The chat stages: ``render`` (role order and special-token strings of every checked dialect; the rendered
``text`` column's placeholder) and ``masks`` (label masks with a real tokenizer, statistics merged exactly over
shards)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from chatdata.messages import (
    IDX,
    REC,
    M,
    R,
    explode_lists,
)
from chatdata.stage import NO_REJECTS, Job, Shard, StageOut, decide, decided_record, lists_of


def reject_unit(job: Job) -> str:
    return "pair" if job.unit == "pairs" else "dialogue"


def check_rows(frame: pl.DataFrame, column: str, dialect: str, on_special: str, shard: Shard) -> pl.Series:
    """:func:`chatdata.chat.dialects.check_dialogues` of a text column of the rows, from the positions of its
    messages: each message's role and special strings, no text."""
    from chatdata.chat.dialects import check_turns, checked_specials

    lists = lists_of(frame, column)
    turns = explode_lists(lists)
    specials = checked_specials(dialect, on_special)  # type: ignore[arg-type]
    found = shard.specials(specials, turns.get_column("_i"))
    lengths = lists.list.len()
    turns = shard.roles(turns).join(found, on="_i", how="left", maintain_order="left")
    turns = turns.with_columns(pl.col("_row").alias("row"), pl.col("_turn").alias("turn"))
    turns = turns.join(pl.DataFrame({"row": pl.int_range(len(lists), dtype=IDX, eager=True), "n": lengths}), on="row")
    return check_turns(turns.select("row", "turn", "n", "role", "missing", "special"), lengths, dialect)


def render_stage(frame: pl.DataFrame, job: Job, shard: Shard) -> StageOut:
    """Reject rows that break the role order or hold a special-token string of any checked dialect; add the
    recipe's rendered ``text`` column (guanaco) as a placeholder the writer fills."""
    r, on_special = job.recipe, job.settings.on_special
    found = [
        pl.lit(check_rows(frame, column, dialect, on_special, shard)).pipe(
            lambda e, d=dialect, c=column: pl.when(e.is_not_null()).then(
                pl.format("{} [{} in {}]", e, pl.lit(d), pl.lit(c))
            )
        )
        for column in r.message_columns
        for dialect in r.check_dialects
    ]
    reason = pl.coalesce(found) if found and frame.height else pl.lit(None, pl.String)
    good, dropped = decide(frame, reason)
    if r.text_format:
        null = check_rows(good, "messages", r.text_format, on_special, shard).is_not_null() if good.height else None
        good = good.with_columns(
            pl.lit(None, pl.Null).alias("text"),
            (null if null is not None else pl.lit(None, pl.Boolean)).alias("_text_null"),
        )
    return StageOut(good, NO_REJECTS, decided_record("render", job, frame, good, dropped), dropped=dropped)


#: light per-row mask results kept for the merged statistics (see :func:`chatdata.chat.validate.mask_stats`)
MASK_COLUMNS = ("n_tokens", "n_trained", "truncated", "ok", "reason")


def masks_stage(frame: pl.DataFrame, job: Job, shard: Shard) -> StageOut:
    """Tokenize every row in one batch call and check its label mask (a stage only with ``--tokenizer``): the
    only stage that needs a dialogue's text whole, gathered here for the rows it checks.

    The record's ``notes`` carry, per checked column, the light per-row results (``mask_rows``) and the
    tokenizer notes, so shards' statistics can be merged exactly (:func:`merge_mask_notes`)."""
    s = job.settings
    assert s.tokenizer, "the masks stage runs only with a tokenizer (see chain)"
    from chatdata.chat.tokenizer import load_tokenizer
    from chatdata.chat.validate import validate_masks

    tokenizer, prepared = _tokenizer(s.tokenizer, s.dialect, load_tokenizer)
    columns = list(job.recipe.message_columns)
    whole = shard.text.fill(frame.select(*[pl.lit(None, pl.Null).alias(c) for c in columns], *_refs(frame)), columns)
    reason = pl.lit(None, pl.String)
    checked = frame
    per_column: dict[str, Any] = {}
    for column in columns:
        result, stats = validate_masks(
            whole,
            tokenizer,
            s.dialect,
            s.mask_convention,
            s.max_length,  # type: ignore[arg-type]
            messages_col=column,
            on_special=s.on_special,  # type: ignore[arg-type]
        )
        rows = result.select(MASK_COLUMNS)
        stats["notes"] = prepared  # what preparing the freshly loaded tokenizer did, the same in every shard
        per_column[column] = {"rows": rows, "stats": {k: v for k, v in stats.items() if not _merged_stat(k)}}
        reason = pl.coalesce(
            reason,
            pl.when(~pl.lit(result.get_column("ok"))).then(
                pl.format("{} [{}]", pl.lit(result.get_column("reason")), pl.lit(column))
            ),
        )
        if column in ("messages", "chosen"):
            checked = checked.with_columns(result.get_column("n_tokens"), result.get_column("n_trained"))
    good, dropped = decide(checked, reason)
    record = decided_record("masks", job, frame, good, dropped, notes={"tokenizer": s.tokenizer})
    return StageOut(good, NO_REJECTS, record, masks={"columns": per_column, "settings": mask_settings(job)},
                    dropped=dropped)  # fmt: skip


def _refs(frame: pl.DataFrame) -> list[str]:
    return [c for c in (M, R, REC, "_text_null") if c in frame.columns]


_TOKENIZERS: dict[tuple[str, str], tuple[Any, list[str]]] = {}


def _tokenizer(spec: str, dialect: str, load: Callable[[str], Any]) -> tuple[Any, list[str]]:
    """One tokenizer per process, spec and dialect, prepared for the dialect once (loading one costs more than
    tokenizing a small shard), with the notes of that preparation (tokens added …)."""
    from chatdata.chat.tokenizer import prepare_tokenizer

    if (spec, dialect) not in _TOKENIZERS:
        tokenizer = load(spec)
        _TOKENIZERS[(spec, dialect)] = tokenizer, prepare_tokenizer(tokenizer, dialect)
    return _TOKENIZERS[(spec, dialect)]


def _merged_stat(key: str) -> bool:
    """Statistics recomputed from the merged per-row results (everything but the settings and notes)."""
    return key in (
        "rows",
        "ok",
        "rejected",
        "reasons",
        "tokens",
        "kept_tokens",
        "trained_tokens",
        "trained_share",
        "truncated_rows",
        "truncation_drops",
    )


def merge_mask_notes(parts: list[dict[str, Any]], max_length: int) -> dict[str, Any]:
    """A recipe's mask statistics from its shards' per-column rows and settings (exact, order-free): the shared
    settings and one entry per checked column (:func:`chatdata.record.mask_record` takes it)."""
    from chatdata.chat.validate import mask_stats

    if not parts:
        return {}
    columns: dict[str, Any] = {}
    for column in parts[0]["columns"]:
        rows = pl.concat([p["columns"][column]["rows"] for p in parts])
        stats = dict(parts[0]["columns"][column]["stats"])
        stats.update(mask_stats(rows, max_length))
        columns[column] = stats
    return {**parts[0]["settings"], **columns}


def mask_settings(job: Job) -> dict[str, Any]:
    s = job.settings
    return {"tokenizer": s.tokenizer, "dialect": s.dialect, "convention": s.mask_convention, "max_length": s.max_length}
