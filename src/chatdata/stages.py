"""The build's stages on one shard: rows in; rows, rejects and a ledger record out. Text is read only through the
shard's messages (:class:`Shard`), once per message.

Each :class:`Stage` declares the columns it reads and writes and what of the recipe and settings shapes its result
(its ``key``: the specs and settings it depends on); stages with equal keys run once for all the recipes of a shard
(``guanaco`` and ``guanaco_uncensored`` share gates and flattening; every recipe shares ``structure``). Frames flow
from stage to stage in memory; nothing is written between stages. A row stage returns the rows it drops with their
reasons, and :func:`run_stage` makes them rejects whose payload is the whole row, so a stage reads only what it
decides on. With ``check`` (set ``CHATDATA_CHECK_STAGES``; the test suite does, for every build) a stage is handed
only the columns it declares it reads, so reading another fails, and it may add only the columns it declares it
writes.

=========== ========================================= ==========================================================
stage       reads                                     writes
=========== ========================================= ==========================================================
structure   ids, parent, tree, role, text, source     message_tree_id (the root), depth, _i; rejects bad
            line                                      structure (duplicates, orphans, cycles, roles, empty text)
gates       ids, parent, depth, review/state/deleted  drops gated messages with their subtrees
            /synthetic/detoxify/lang …
flatten     ids, parent, depth, role, rank, created   new rows: dialogue_id, message_ids, _m (positions), _r,
            date, lang, source_split                  n_turns (pairs: prompt_id, rank/score of each side …)
score       _m, _r, _mr, _rec, lang                   the filters' score columns (lang_score, matched_phrases …)
filters     lang and the score columns                drops rows by each filter's decision
render      _m, _r, _mr, _rec                         text (guanaco), _text_null; drops role-order and
                                                      special-token breaks
masks       _m, _r, _mr, _rec, _text_null             n_tokens, n_trained (only with --tokenizer)
=========== ========================================= ==========================================================

A dialogue or pair is the list of its messages' positions (``_m``, and for a pair its rejected reply ``_r``; see
:mod:`chatdata.messages`): no stage copies text. Scores are computed per distinct message for all recipes
(:meth:`Shard.scores`) and aggregated per dialogue by each filter. Sources other than oasst arrive as dialogues
(or pairs), one per record (``_rec``), and start at ``score``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl

from chatdata.chatstages import masks_stage, reject_unit, render_stage
from chatdata.filters.base import MessageFilter, apply_filters
from chatdata.filters.specs import build_filters, load_specs
from chatdata.ledger import StageRecord
from chatdata.messages import (
    IDX,
    REC,
    SEEDS,
    M,
    R,
    explode_lists,
)
from chatdata.schema import INTERNAL_REJECT_SCHEMA, conform, empty_rejects
from chatdata.splits import dialogue_rejects
from chatdata.stage import (
    MR,
    NO_REJECTS,
    Job,
    Shard,
    Stage,
    StageOut,
    lists_of,
    stage_record,
)
from chatdata.structure import validate_structure
from chatdata.text import TEXT_COLUMNS

log = logging.getLogger(__name__)

#: the published order of the rejects table (stable: ties keep stage-then-file order)
REJECT_ORDER = ("stage", "unit", "message_tree_id", "message_id", "source", "source_line")


def _structure(messages: pl.DataFrame, job: Job, shard: Shard) -> StageOut:
    """Duplicates, orphans, cycles, roots, role alternation, empty text (recipe-independent); the surviving
    messages leave without their text (it stays in the shard, found again by position ``_i``)."""
    result = validate_structure(messages, shard.ingest_rejected)
    record = stage_record("structure", "messages", messages.height, result.messages, result.rejects)
    return StageOut(result.messages.drop("text"), result.rejects, record)


def _spec_shas(refs: Iterable[str]) -> list[str]:
    return [s.sha256 for s in load_specs(list(refs))]


def _gates(tree: pl.DataFrame, job: Job, shard: Shard) -> StageOut:
    from chatdata.trees import gate

    result = gate(tree, gates_of(job))
    return StageOut(
        result.frame, result.rejects, StageRecord("gates", "messages", tree.height, result.frame.height, result.counts)
    )


def gates_of(job: Job) -> list[Any]:
    """A source's gates (message filters)."""
    return build_filters(load_specs(job.recipe.gate_refs(job.source)), "message")


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


def _flatten(gated: pl.DataFrame, job: Job, shard: Shard) -> StageOut:
    from chatdata.pairs import build_pairs
    from chatdata.trees import flatten

    how, keep_user_ended, pair_mode = _flatten_how(job)
    if how == "pairs":
        hashed = gated.join(shard.hashes(gated.get_column("_i")).select("_i", "_h1", "_h2"), on="_i", how="left")
        result = build_pairs(hashed, pair_mode, texts=shard.table.frame)
    else:
        result = flatten(gated, how, keep_user_ended=keep_user_ended)
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
    filters = build_filters(load_specs(job.recipe.filter_refs(job.source, job.settings.decontaminate)), "dialogue")
    for f in filters:
        f.bind(job.settings)
    return filters


def score_frame(frame: pl.DataFrame, filters: list[Any], shard: Shard) -> pl.DataFrame:
    """Every filter's score columns: a message filter's from the shard's message scores, aggregated per row."""
    turns: pl.DataFrame | None = None
    for f in filters:
        if isinstance(f, MessageFilter):
            if turns is None:
                turns = shard.roles(explode_lists(frame.get_column(M)))
            wanted = f.wanted(frame)
            need = f.scored_turns(turns, wanted).get_column("_i")
            frame = f.aggregate(frame, turns, shard.scores(f, need), wanted)
        else:
            frame = f.score(frame)
    return frame


def _score(frame: pl.DataFrame, job: Job, shard: Shard) -> StageOut:
    scored = score_frame(frame, _filters_of(job), shard)
    return StageOut(scored, empty_rejects(INTERNAL_REJECT_SCHEMA), StageRecord("score", job.unit, frame.height,
                                                                                  scored.height))  # fmt: skip


def _filter(scored: pl.DataFrame, job: Job, shard: Shard) -> StageOut:
    outcome = apply_filters(scored, _filters_of(job), score=False)
    record = StageRecord("filters", job.unit, scored.height, outcome.kept.height, outcome.counts)
    return StageOut(outcome.kept, NO_REJECTS, record, dropped=outcome.dropped)


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


#: the score columns the row filters write (and ``filters`` decides on)
SCORE_COLUMNS = ("lang_detected", "lang_score", "lang_votes", "lang_turns", "lang_source", "matched_phrases",
                 "contamination", "_contamination_text")  # fmt: skip
#: what a rejected message's row needs (its payload is built from the shard by position ``_i``)
MESSAGE_REFS = ("message_id", "message_tree_id", "source", "source_line", "_i")
#: a dialogue's (or pair's) messages, by position
POSITIONS = (M, R, MR, REC)

STRUCTURE = Stage(
    "structure",
    ("message_id", "parent_id", "message_tree_id", "role", "text", "source", "source_line"),
    ("message_tree_id", "depth", "_i"),
    lambda job: ("structure",),
    _structure,
    drops=("text",),
)
OASST_STAGES = (
    STRUCTURE,
    Stage(
        "gates",
        (
            *MESSAGE_REFS,
            "parent_id",
            "depth",
            "role",
            "lang",
            "tree_state",
            "review_result",
            "review_count",
            "deleted",
            "synthetic",
            "detoxify",
            "emojis",
            "labels",
            "model_name",
        ),
        (),
        _key_gates,
        _gates,
    ),
    Stage(
        "flatten",
        (*MESSAGE_REFS, "parent_id", "depth", "role", "lang", "rank", "created_date", "source_split"),
        (
            "dialogue_id",
            "message_ids",
            "messages",
            M,
            R,
            "n_turns",
            "prompt",
            "prompt_id",
            "chosen",
            "rejected",
            "score_chosen",
            "score_rejected",
            "rank_chosen",
            "rank_rejected",
        ),
        _key_flatten,
        _flatten,
        reshapes=True,
    ),
)
ROW_STAGES = (
    Stage("score", (*POSITIONS, "lang"), SCORE_COLUMNS, _key_score, _score),
    Stage("filters", ("lang", *SCORE_COLUMNS), (), _key_score, _filter),
    Stage("render", POSITIONS, ("text", "_text_null"), _key_render, render_stage),
    Stage("masks", (*POSITIONS, "_text_null"), ("n_tokens", "n_trained"), _key_masks, masks_stage),
)


def chain(job: Job) -> tuple[Stage, ...]:
    """The stages a job's rows go through in a shard (after ``structure`` for oasst); ``masks`` only when the
    build has a tokenizer (without one no mask is checked, so there is no such stage in the ledger)."""
    stages = (*OASST_STAGES, *ROW_STAGES) if job.spec.format == "oasst" else ROW_STAGES
    return stages if job.settings.tokenizer else tuple(s for s in stages if s.name != "masks")


@dataclass
class Flat:
    """A job's dialogues after structure, gates and flattening, with those stages' rejects, records and the
    dialogues per tree: what a workspace ``flat`` entry holds (:mod:`chatdata.shards`)."""

    frame: pl.DataFrame
    rejects: pl.DataFrame
    records: list[StageRecord]
    per_tree: pl.Series


@dataclass
class ShardOutput:
    """One job's result on one shard: the surviving rows (no text: placeholders and positions), every reject of
    the shard's stages in publish order, the stage records, the dialogues (or pairs) per tree, the per-column
    mask results, and the rows' split keys (see :func:`split_keys`)."""

    rows: pl.DataFrame
    rejects: pl.DataFrame
    records: list[StageRecord]
    per_tree: pl.Series
    masks: dict[str, Any] | None = None
    keys: pl.DataFrame | None = field(default=None)


def _memo_key(key: Any, stage: str) -> str:
    return hashlib.sha256(orjson.dumps([stage, key], default=str)).hexdigest()


def row_frame(shard_frame: pl.DataFrame, shard: Shard, unit: str) -> pl.DataFrame:
    """A source of dialogues or pairs as rows without text: its text columns as placeholders, its record
    ``_rec``, and the positions of its turns in the shard's message table (``_m``; a pair's rejected side
    ``_mr``)."""
    assert shard.lists is not None
    side = "chosen" if unit == "pairs" else "messages"
    rows = shard_frame.with_columns(pl.lit(None, pl.Null).alias(c) for c in TEXT_COLUMNS if c in shard_frame.columns)
    extra = [shard.lists.get_column(f"{M}_{side}").alias(M)]
    if unit == "pairs":
        extra.append(shard.lists.get_column(f"{M}_rejected").alias(MR))
    return rows.with_columns(pl.int_range(pl.len(), dtype=IDX).alias(REC), *extra)


def run_shard(
    jobs: list[Job],
    *,
    messages: pl.DataFrame | None = None,
    ingest_rejected: pl.Series | None = None,
    rows: pl.DataFrame | None = None,
    emit: Callable[[int, ShardOutput], None] | None = None,
    flats: dict[int, Flat] | None = None,
    on_flat: Callable[[int, Flat], None] | None = None,
    scores: dict[Any, pl.DataFrame] | None = None,
    payloads: pl.DataFrame | None = None,
    check: bool = False,
) -> tuple[dict[Any, pl.DataFrame], pl.DataFrame | None]:
    """Run every job's chain over one shard: oasst ``messages`` (structure runs once for all jobs, and only when
    a job needs it) or converted ``rows``. Stages with equal keys run once and their results are shared; each
    message is scored once.

    Each job's output is handed to ``emit(index, output)`` as soon as it is complete and not kept (so a shard holds
    one job's output at a time); a stage's result is dropped once the last job that uses it is done. ``flats``
    (job index -> :class:`Flat`) stand for a job's structure, gates and flattening, found in the
    workspace; ``on_flat(index, flat)`` receives those computed here. ``scores`` (message key -> scores) are
    message scores from the workspace, ``payloads`` the rejected messages' payloads (``_i``, ``_json``) built
    earlier. Rejects keep a message's position ``_i``; its payload (its row as JSON) is built here once per
    message for every recipe. Returns every filter's message scores (message key -> frame), those given and those
    added, and every payload (given and added) when some were added, else None. ``check`` enforces every stage's
    declared columns."""
    flats = flats or {}
    keys = [[_memo_key(stage.key(job), stage.name) for stage in chain(job)] for job in jobs]
    last_use = {key: i for i, job_keys in enumerate(keys) for key in job_keys}
    memo: dict[str, StageOut] = {}
    if messages is not None:
        shard = Shard(messages, oasst=True, ingest_rejected=ingest_rejected)
    else:
        assert rows is not None, "run_shard needs messages or rows"
        columns = tuple(c for c in ("messages", "chosen", "rejected") if c in rows.columns)
        shard = Shard(rows, oasst=False, text_columns=columns)
    for message_key, table in (scores or {}).items():
        shard.seed(("score", message_key), table)
    shard.text.seed_messages(payloads)
    known = payloads.height if payloads is not None else 0
    for i, job in enumerate(jobs):
        stages = chain(job)
        records: list[StageRecord] = []
        rejects: list[pl.DataFrame] = []
        per_tree = pl.Series("count", [], dtype=pl.UInt32)
        if i in flats:
            flat = flats[i]
            frame, records, rejects, per_tree = flat.frame, list(flat.records), [flat.rejects], flat.per_tree
            done = len(OASST_STAGES)
        elif messages is not None:
            frame, done = messages, 0
        else:
            frame, done = row_frame(rows, shard, job.unit), 0  # type: ignore[arg-type]
        masks = None
        for index, (stage, key) in enumerate(zip(stages, keys[i], strict=True)):
            if index < done:
                continue
            if key not in memo:
                memo[key] = run_stage(stage, frame, job, shard, check=check)
            out = memo[key]
            masks = out.masks if out.masks is not None else masks
            if stage.name == "flatten":
                per_tree = out.frame.get_column("message_tree_id").value_counts().get_column("count")
            records.append(StageRecord.from_dict(out.record.to_dict()))
            rejects.append(out.rejects)
            frame = out.frame
            if stage.name == "flatten" and on_flat is not None:
                flat_rejects = conform(pl.concat(rejects, how="diagonal_relaxed"), INTERNAL_REJECT_SCHEMA)
                on_flat(i, Flat(frame, flat_rejects, [StageRecord.from_dict(r.to_dict()) for r in records], per_tree))
        result = frame.with_columns(pl.lit(job.source).alias("source")).sort("message_tree_id", "dialogue_id")
        all_rejects = sort_rejects(conform(pl.concat(rejects, how="diagonal_relaxed"), INTERNAL_REJECT_SCHEMA))
        # a rejected message's payload is its row: built here, once per message for every recipe of the shard, and
        # stored once (the writer looks it up by ``_i``); a dialogue's waits for the writer (``_fill``)
        shard.text.prefetch(all_rejects.select("_i", "message_tree_id"))
        output = ShardOutput(
            rows=result,
            rejects=all_rejects,
            records=[_with_source(r, job.source) for r in records],
            per_tree=per_tree,
            masks=masks,
            keys=split_keys(result, shard, job.recipe.message_columns),
        )
        del frame, rejects
        for key in keys[i]:
            if last_use[key] == i:
                memo.pop(key, None)
        if emit is not None:
            emit(i, output)
        del output
    grown = shard.scored()
    built = shard.text.message_payloads
    shard.forget()
    return grown, (built if built is not None and built.height > known else None)


#: a row's identity while a stage runs (so a stage's output rows are found again in its input)
ROW = "__row"


def run_stage(stage: Stage, frame: pl.DataFrame, job: Job, shard: Shard, *, check: bool = False) -> StageOut:
    """Run one stage and turn the rows it dropped into rejects whose payload is the whole row.

    With ``check`` (what the engine's tests run every build with) the stage is handed only the columns it
    declares it reads (reading another fails), its output may add only the columns it declares it writes, and
    the columns it did not see are joined back by row identity (a stage that reshapes its rows returns only
    what it reads and writes)."""
    view = frame.select([c for c in stage.reads if c in frame.columns]) if check else frame
    if not stage.reshapes:
        view = view.with_columns(pl.int_range(pl.len(), dtype=IDX).alias(ROW))
    out = stage.run(view, job, shard)
    if check:
        for part in (out.frame, out.dropped):
            added = set(part.columns) - set(view.columns) if part is not None else set()
            undeclared = sorted(added - set(stage.writes) - set(DECISION))
            if undeclared:
                raise AssertionError(f"stage {stage.name} wrote undeclared columns {undeclared}")
    if stage.reshapes:
        return out
    if ROW not in out.frame.columns:
        raise AssertionError(f"stage {stage.name} lost its rows' identity ({ROW})")
    kept = _whole(frame, out.frame, stage) if check else out.frame.drop(ROW)
    rejects = out.rejects
    if out.dropped is not None:
        dropped = _whole(frame, out.dropped, stage) if check else out.dropped.drop(ROW)
        rejects = dialogue_rejects(
            dropped,
            stage=stage.name,
            reason=pl.col("reject_reason"),
            evidence=pl.col("reject_evidence"),
            filter_name=pl.col("reject_filter"),
            unit=reject_unit(job),
        )
    return StageOut(kept, rejects, out.record, out.masks)


#: what a row stage adds to the rows it drops
DECISION = ("reject_reason", "reject_evidence", "reject_filter")


def _whole(frame: pl.DataFrame, part: pl.DataFrame, stage: Stage) -> pl.DataFrame:
    """``part``'s rows (a stage's output on the columns it reads) with the input's other columns, in the input's
    column order followed by what the stage added (as the stage would return them given the whole frame)."""
    if ROW not in part.columns:
        raise AssertionError(f"stage {stage.name} lost its rows' identity ({ROW})")
    whole = frame.drop([c for c in stage.drops if c in frame.columns])[part.get_column(ROW)]
    added = [c for c in part.columns if c != ROW and (c not in frame.columns or c in stage.writes)]
    return whole.with_columns(part.select(added))


def _with_source(record: StageRecord, source: str) -> StageRecord:
    record.source = source
    return record


def sort_rejects(rejects: pl.DataFrame) -> pl.DataFrame:
    """The published order of the rejects table (stable: ties keep stage-then-file order)."""
    return rejects.sort(*REJECT_ORDER, nulls_last=True, maintain_order=True)


# ------------------------------------------------------------------------------------------------ split keys


def split_keys(rows: pl.DataFrame, shard: Shard, dedupe_columns: tuple[str, ...]) -> pl.DataFrame:
    """The light columns a split plan needs, one row per row of ``rows`` in order: tree, source split, dialogue
    id, and 128-bit hashes (two seeded 64-bit halves) of the normalised first user prompt (``_p1``/``_p2``) and
    of the dialogue's roles and texts (``_k1``/``_k2``), from each message's hashes: no text is read."""
    n = rows.height
    index = pl.DataFrame({"_row": pl.int_range(n, dtype=IDX, eager=True)})
    turns = explode_lists(lists_of(rows, dedupe_columns[0] if dedupe_columns else "messages"))
    firsts = (
        shard.roles(turns).filter(pl.col("role") == "user").group_by("_row").agg(pl.col("_i").sort_by("_turn").first())
    )
    prompts = shard.prompts(firsts.get_column("_i"))
    hashed = shard.hashes(pl.concat([explode_lists(lists_of(rows, c)).get_column("_i") for c in dedupe_columns]))
    prompt = index.join(firsts.join(prompts, on="_i", how="left"), on="_row", how="left", maintain_order="left")
    parts = []
    for column in dedupe_columns:
        lists = explode_lists(lists_of(rows, column)).join(hashed, on="_i", how="left", maintain_order="left")
        per = lists.group_by("_row", maintain_order=True).agg(pl.col("_h1"), pl.col("_h2"))
        per = index.join(per, on="_row", how="left", maintain_order="left").with_columns(
            pl.col("_h1").fill_null(pl.lit([], pl.List(pl.UInt64))),
            pl.col("_h2").fill_null(pl.lit([], pl.List(pl.UInt64))),
        )
        parts.append(
            per.select(pl.col("_h1").hash(11).alias(f"_a{column}"), pl.col("_h2").hash(12).alias(f"_b{column}"))
        )
    combined = pl.concat(parts, how="horizontal") if parts else index
    keys = combined.select(
        *[pl.struct(pl.col("^_a.*$")).hash(seed).alias(f"_k{seed}") for seed in SEEDS[:1]],
        *[pl.struct(pl.col("^_b.*$")).hash(seed).alias(f"_k{seed}") for seed in SEEDS[1:]],
    )
    return pl.concat(
        [rows.select("message_tree_id", "source_split", "dialogue_id"), prompt.select("_p1", "_p2"), keys],
        how="horizontal",
    )
