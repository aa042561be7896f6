"""The build's stages as pure functions on frames: rows in; rows, rejects and a ledger record out.

Each :class:`Stage` declares the columns it reads and writes and what of the recipe and settings shapes its
result (its ``key``), so stages shared by several recipes run once per shard (``guanaco`` and
``guanaco_uncensored`` share gates and flattening; every recipe shares ``structure``). Frames flow from stage to
stage in memory; nothing is written between stages. :func:`run_shard` runs every requested (recipe, source) chain
over one shard.

=========== ===================================== ==============================================================
stage       reads                                 writes
=========== ===================================== ==============================================================
structure   message_id, parent_id, role, text     depth; rejects duplicates, orphans, cycles, bad roles, empty text
gates       tree_state, review_result, deleted …  drops gated messages with their subtrees
flatten     depth, rank, created_date             dialogue_id, messages (or prompt, chosen, rejected), n_turns
score       messages (or chosen), lang            the filters' score columns (lang_score, matched_phrases …)
filters     the score columns                     drops rows by each filter's decision
render      messages (or chosen, rejected)        text (guanaco); drops role-order and special-token breaks
masks       messages (or chosen, rejected)        n_tokens, n_trained (with --tokenizer)
=========== ===================================== ==============================================================

Sources other than oasst arrive as dialogues (or pairs), one per record, and start at ``score``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl

from chatdata.filters.base import apply_filters
from chatdata.filters.specs import build_filters, load_specs
from chatdata.ledger import StageRecord
from chatdata.recipes import Recipe, SourceSpec
from chatdata.schema import REJECT_SCHEMA, conform, empty_rejects
from chatdata.settings import BuildSettings
from chatdata.splits import dialogue_rejects, reject_where
from chatdata.structure import validate_structure
from chatdata.trees import reason_counts

log = logging.getLogger(__name__)

#: the published order of the rejects table (stable: ties keep stage-then-file order)
REJECT_ORDER = ("stage", "unit", "message_tree_id", "message_id", "source", "source_line")


@dataclass(frozen=True)
class Job:
    """One (recipe, source) chain over a shard, with the build's settings."""

    recipe: Recipe
    source: str
    settings: BuildSettings

    @property
    def spec(self) -> SourceSpec:
        return self.recipe.sources[self.source]

    @property
    def unit(self) -> str:
        return self.spec.unit


@dataclass
class StageOut:
    frame: pl.DataFrame
    rejects: pl.DataFrame
    record: StageRecord
    #: per-column mask results (the ``masks`` stage with a tokenizer), merged over shards by the writer
    masks: dict[str, Any] | None = None


@dataclass(frozen=True)
class Stage:
    """A stage: its name, the columns it reads and writes, what of a job shapes it, and the function."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    key: Callable[[Job], Any]
    run: Callable[[pl.DataFrame, Job], StageOut]


def _spec_shas(refs: Iterable[str]) -> list[str]:
    return [s.sha256 for s in load_specs(list(refs))]


def _record(name: str, unit: str, rows_in: int, out: pl.DataFrame, rejects: pl.DataFrame, **kw: Any) -> StageRecord:
    return StageRecord(name, unit, rows_in, out.height, reason_counts(rejects), **kw)


# ------------------------------------------------------------------------------------------------ oasst stages


def structure(messages: pl.DataFrame, ingest_rejected: pl.Series | None = None) -> StageOut:
    """Duplicates, orphans, cycles, roots, role alternation, empty text (recipe-independent)."""
    result = validate_structure(messages, ingest_rejected)
    record = _record("structure", "messages", messages.height, result.messages, result.rejects)
    return StageOut(result.messages, result.rejects, record)


def _gates(tree: pl.DataFrame, job: Job) -> StageOut:
    from chatdata.trees import gate

    result = gate(tree, build_filters(load_specs(job.recipe.gate_refs(job.source))))
    return StageOut(
        result.frame, result.rejects, StageRecord("gates", "messages", tree.height, result.frame.height, result.counts)
    )


def _flatten_how(job: Job) -> tuple[Any, ...]:
    s = job.spec
    pair_mode = (job.settings.pair_mode or s.pair_mode) if s.flatten == "pairs" else None
    return (s.flatten, s.keep_user_ended, pair_mode)


def per_tree_notes(unit: str, per_tree: pl.Series) -> dict[str, Any]:
    """The flatten record's notes: how many dialogues (or pairs) each tree gave."""
    if not per_tree.len():
        return {}
    return {
        f"{unit}_per_tree": {
            "mean": round(float(per_tree.mean()), 3),  # type: ignore[arg-type]
            "p50": float(per_tree.quantile(0.5) or 0),
            "p95": float(per_tree.quantile(0.95) or 0),
            "max": float(per_tree.max()),  # type: ignore[arg-type]
        }
    }


def _flatten(gated: pl.DataFrame, job: Job) -> StageOut:
    from chatdata.pairs import build_pairs
    from chatdata.trees import flatten

    how, keep_user_ended, pair_mode = _flatten_how(job)
    result = build_pairs(gated, pair_mode) if how == "pairs" else flatten(gated, how, keep_user_ended=keep_user_ended)
    record = StageRecord(
        "flatten",
        "messages",
        gated.height,
        gated.height - result.rejects.height,
        result.counts,
        produced=result.frame.height,
        produced_unit=job.unit,
    )
    return StageOut(result.frame, result.rejects, record)


# ------------------------------------------------------------------------------------------------ row stages


def _filters_of(job: Job) -> list[Any]:
    return build_filters(load_specs(job.recipe.filter_refs(job.source, job.settings.decontaminate)))


def _score(frame: pl.DataFrame, job: Job) -> StageOut:
    scored = frame
    for f in _filters_of(job):
        scored = f.score(scored)
    return StageOut(scored, empty_rejects(), StageRecord("score", job.unit, frame.height, scored.height))


def _filter(scored: pl.DataFrame, job: Job) -> StageOut:
    outcome = apply_filters(scored, _filters_of(job), score=False)
    rejects = dialogue_rejects(
        outcome.dropped,
        stage="filters",
        reason=pl.col("reject_reason"),
        evidence=pl.col("reject_evidence"),
        filter_name=pl.col("reject_filter"),
        unit=_reject_unit(job),
    )
    return StageOut(
        outcome.kept, rejects, StageRecord("filters", job.unit, scored.height, outcome.kept.height, outcome.counts)
    )


def _reject_unit(job: Job) -> str:
    return "pair" if job.unit == "pairs" else "dialogue"


def _render(frame: pl.DataFrame, job: Job) -> StageOut:
    """Reject rows that break the role order or hold a special-token string of any checked dialect; add the
    recipe's rendered ``text`` column (guanaco)."""
    from chatdata.chat.dialects import check_dialogues, render_batch

    r, on_special = job.recipe, job.settings.on_special
    found = [
        pl.lit(check_dialogues(frame.get_column(column), dialect, on_special)).pipe(  # type: ignore[arg-type]
            lambda e, d=dialect, c=column: pl.when(e.is_not_null()).then(
                pl.format("{} [{} in {}]", e, pl.lit(d), pl.lit(c))
            )
        )
        for column in r.message_columns
        for dialect in r.check_dialects
    ]
    reason = pl.coalesce(found) if found and frame.height else pl.lit(None, pl.String)
    good, rejects = reject_where(frame, reason, stage="render", unit=_reject_unit(job))
    if r.text_format and good.height:
        good = good.with_columns(render_batch(good.get_column("messages"), r.text_format, on_special).alias("text"))  # type: ignore[arg-type]
    elif r.text_format:
        good = good.with_columns(pl.lit(None, pl.String).alias("text"))
    return StageOut(good, rejects, _record("render", job.unit, frame.height, good, rejects))


#: light per-row mask results kept for the merged statistics (see :func:`chatdata.chat.validate.mask_stats`)
MASK_COLUMNS = ("n_tokens", "n_trained", "truncated", "ok", "reason")


def _masks(frame: pl.DataFrame, job: Job) -> StageOut:
    """Tokenize every row in one batch call and check its label mask (a stage only with ``--tokenizer``).

    The record's ``notes`` carry, per checked column, the light per-row results (``mask_rows``) and the
    tokenizer notes, so shards' statistics can be merged exactly (:func:`merge_mask_notes`)."""
    s = job.settings
    assert s.tokenizer, "the masks stage runs only with a tokenizer (see chain)"
    from chatdata.chat.tokenizer import load_tokenizer
    from chatdata.chat.validate import validate_masks

    tokenizer, prepared = _tokenizer(s.tokenizer, s.dialect, load_tokenizer)
    reason = pl.lit(None, pl.String)
    checked = frame
    per_column: dict[str, Any] = {}
    for column in job.recipe.message_columns:
        result, stats = validate_masks(
            frame,
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
    good, rejects = reject_where(checked, reason, stage="masks", unit=_reject_unit(job))
    record = _record("masks", job.unit, frame.height, good, rejects, notes={"tokenizer": s.tokenizer})
    return StageOut(good, rejects, record, masks={"columns": per_column, "settings": _mask_settings(job)})


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
    """The ``masks`` notes of a recipe from its shards' per-column rows and settings (exact, order-free)."""
    from chatdata.chat.validate import mask_stats

    if not parts:
        return {}
    columns: dict[str, Any] = {}
    for column in parts[0]["columns"]:
        rows = pl.concat([p["columns"][column]["rows"] for p in parts])
        stats = dict(parts[0]["columns"][column]["stats"])
        stats.update(mask_stats(rows, max_length))
        columns[column] = stats
    return {"masks": {**parts[0]["settings"], **columns}}


# ------------------------------------------------------------------------------------------------ the chains


def _key_gates(job: Job) -> Any:
    return ("gates", _spec_shas(job.recipe.gate_refs(job.source)))


def _key_flatten(job: Job) -> Any:
    return (_key_gates(job), _flatten_how(job))


def _key_score(job: Job) -> Any:
    upstream = _key_flatten(job) if job.spec.format == "oasst" else ("rows",)
    return (upstream, _spec_shas(job.recipe.filter_refs(job.source, job.settings.decontaminate)))


def _key_render(job: Job) -> Any:
    r = job.recipe
    return (_key_score(job), r.message_columns, r.check_dialects, r.text_format, job.settings.on_special)


def _key_masks(job: Job) -> Any:
    s = job.settings
    return (_key_render(job), s.tokenizer, s.dialect, s.mask_convention, s.max_length, s.on_special)


OASST_STAGES = (
    Stage("gates", ("tree_state", "review_result", "deleted", "synthetic"), (), _key_gates, _gates),
    Stage("flatten", ("depth", "rank", "created_date"), ("dialogue_id", "messages", "n_turns"), _key_flatten, _flatten),
)
ROW_STAGES = (
    Stage("score", ("messages", "lang"), ("lang_score", "matched_phrases", "contamination"), _key_score, _score),
    Stage("filters", ("lang_score", "matched_phrases", "contamination"), (), _key_score, _filter),
    Stage("render", ("messages", "chosen", "rejected"), ("text",), _key_render, _render),
    Stage("masks", ("messages", "chosen", "rejected"), ("n_tokens", "n_trained"), _key_masks, _masks),
)


def chain(job: Job) -> tuple[Stage, ...]:
    """The stages a job's rows go through in a shard (after ``structure`` for oasst); ``masks`` only when the
    build has a tokenizer (without one no mask is checked, so there is no such stage in the ledger)."""
    stages = (*OASST_STAGES, *ROW_STAGES) if job.spec.format == "oasst" else ROW_STAGES
    return stages if job.settings.tokenizer else tuple(s for s in stages if s.name != "masks")


@dataclass
class ShardOutput:
    """One job's result on one shard: the surviving rows, every reject of the shard's stages in publish order,
    the stage records, the dialogues (or pairs) per tree, and the per-column mask results."""

    rows: pl.DataFrame
    rejects: pl.DataFrame
    records: list[StageRecord]
    per_tree: pl.Series
    masks: dict[str, Any] | None = None


def _memo_key(key: Any, stage: str) -> str:
    return hashlib.sha256(orjson.dumps([stage, key], default=str)).hexdigest()


def run_shard(
    jobs: list[Job],
    *,
    messages: pl.DataFrame | None = None,
    ingest_rejected: pl.Series | None = None,
    rows: pl.DataFrame | None = None,
    emit: Callable[[int, ShardOutput], None] | None = None,
) -> list[ShardOutput]:
    """Run every job's chain over one shard: oasst ``messages`` (structure runs once for all jobs) or
    converted ``rows``. Stages with equal keys run once and their results are shared.

    A stage's result is dropped once the last job that uses it is done; with ``emit``, each job's output is handed
    to ``emit(index, output)`` as soon as it is complete and not kept (so a shard holds one job's output at a time,
    not all of them), and the list returned is empty."""
    keys = [[_memo_key(stage.key(job), stage.name) for stage in chain(job)] for job in jobs]
    last_use = {key: i for i, job_keys in enumerate(keys) for key in job_keys}
    memo: dict[str, StageOut] = {}
    start: StageOut | None = None
    if messages is not None:
        start = structure(messages, ingest_rejected)
    outputs = []
    for i, job in enumerate(jobs):
        frame = start.frame if start is not None else rows
        assert frame is not None, "run_shard needs messages or rows"
        records = [start.record] if start is not None else []
        rejects = [start.rejects] if start is not None else []
        per_tree = pl.Series("count", [], dtype=pl.UInt32)
        masks = None
        for stage, key in zip(chain(job), keys[i], strict=True):
            if key not in memo:
                memo[key] = stage.run(frame, job)
            out = memo[key]
            record = StageRecord.from_dict(out.record.to_dict())
            masks = out.masks if out.masks is not None else masks
            if stage.name == "flatten":
                per_tree = out.frame.get_column("message_tree_id").value_counts().get_column("count")
            records.append(record)
            rejects.append(out.rejects)
            frame = out.frame
        output = ShardOutput(
            rows=frame.with_columns(pl.lit(job.source).alias("source")).sort("message_tree_id", "dialogue_id"),
            rejects=sort_rejects(conform(pl.concat(rejects, how="vertical_relaxed"), REJECT_SCHEMA)),
            records=[_with_source(r, job.source) for r in records],
            per_tree=per_tree,
            masks=masks,
        )
        del frame, rejects, out
        for key in keys[i]:
            if last_use[key] == i:
                memo.pop(key, None)
        if emit is None:
            outputs.append(output)
        else:
            emit(i, output)
        del output
    return outputs


def _mask_settings(job: Job) -> dict[str, Any]:
    s = job.settings
    return {"tokenizer": s.tokenizer, "dialect": s.dialect, "convention": s.mask_convention, "max_length": s.max_length}


def _with_source(record: StageRecord, source: str) -> StageRecord:
    record.source = source
    return record


def sort_rejects(rejects: pl.DataFrame) -> pl.DataFrame:
    """The published order of the rejects table (stable: ties keep stage-then-file order)."""
    return rejects.sort(*REJECT_ORDER, nulls_last=True, maintain_order=True)
