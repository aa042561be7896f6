"""Leak-free splits: by tree always, then a prompt-leak check across splits and exact-duplicate removal.

1. Every tree goes to one split: the source's own split when it has one (oasst1's train/validation), otherwise a
   deterministic hash of ``message_tree_id`` (sha256, so it is stable across machines and Python versions).
2. No normalised (case- and whitespace-folded) first user prompt may be in both train and test: test trees whose
   prompt also occurs in train are moved to train (``leak_policy="move"``, the default: test stays clean and no data
   is lost) or dropped (``"drop"``). Moves are counted; drops are rejects.
3. Exact duplicate dialogues within a split (same roles and contents) are removed, keeping the first in the
   split's deterministic order, and rejected as ``duplicate_dialogue``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from chatdata.messages import normalise_prompt
from chatdata.schema import REJECT_SCHEMA, conform, empty_rejects

STAGE = "splits"
LeakPolicy = Literal["move", "drop"]


@dataclass
class SplitResult:
    frame: pl.DataFrame
    rejects: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    moved: int = 0


def tree_hash_fraction(tree_ids: pl.Series, seed: str = "") -> pl.Series:
    """A uniform number in [0, 1) per tree id from sha256(seed + id); stable everywhere."""
    values = [
        int.from_bytes(hashlib.sha256(f"{seed}{t}".encode()).digest()[:8], "big") / 2**64 for t in tree_ids.to_list()
    ]
    return pl.Series("_u", values, dtype=pl.Float64)


def dialogue_rejects(
    frame: pl.DataFrame,
    *,
    stage: str,
    reason: pl.Expr | str,
    evidence: pl.Expr | str,
    filter_name: pl.Expr | str | None = None,
    unit: str = "dialogue",
) -> pl.DataFrame:
    """Reject rows for whole dialogues (or pairs); the payload is the dialogue's row as JSON. A row whose text
    waits in the shard (null text placeholders beside its positions ``_m``/``_r`` or record ``_rec``) keeps
    them, and ``_fill`` names the payload fields the writer fills with that text."""
    from chatdata.messages import placeholders
    from chatdata.schema import INTERNAL_REJECT_SCHEMA, REJECT_REFS

    refs = [c for c in REJECT_REFS if c in frame.columns]
    compact = bool(refs)
    if frame.is_empty():
        return empty_rejects(INTERNAL_REJECT_SCHEMA if compact else REJECT_SCHEMA)
    reason_e = pl.lit(reason) if isinstance(reason, str) else reason
    evidence_e = pl.lit(evidence) if isinstance(evidence, str) else evidence
    payload_cols = [c for c in frame.columns if not c.startswith(("_", "reject_"))]
    fill = placeholders(frame) if compact else []
    extra = [*[c for c in refs if c != "_fill"], pl.lit(fill, pl.List(pl.String)).alias("_fill")] if compact else []
    out = frame.select(
        pl.lit(unit).alias("unit"),
        pl.lit(stage).alias("stage"),
        (filter_name if isinstance(filter_name, pl.Expr) else pl.lit(filter_name, dtype=pl.String)).alias("filter"),
        reason_e.cast(pl.String).alias("reason"),
        evidence_e.cast(pl.String).alias("evidence"),
        pl.col("message_tree_id"),
        pl.col("dialogue_id").alias("message_id") if "dialogue_id" in frame.columns else pl.lit(None, pl.String),
        pl.lit(None, pl.String).alias("source"),
        pl.lit(None, pl.Int64).alias("source_line"),
        pl.struct(payload_cols).struct.json_encode().alias("payload"),
        *extra,
    )
    return out if compact else conform(out, REJECT_SCHEMA)


def reject_where(
    frame: pl.DataFrame, reason: pl.Expr, *, stage: str, unit: str = "dialogue"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``frame`` by ``reason`` (null keeps the row): the kept rows, and dialogue (or pair) rejects whose
    reason is the code before the first ``:`` (or `` [``) and whose evidence is the whole reason string."""
    checked = frame.with_columns(reason.alias("_reason"))
    code = pl.col("_reason").str.split(":").list.first().str.split(" [").list.first()
    rejects = dialogue_rejects(checked.filter(pl.col("_reason").is_not_null()), stage=stage, reason=code,
                               evidence=pl.col("_reason"), unit=unit)  # fmt: skip
    return checked.filter(pl.col("_reason").is_null()).drop("_reason"), rejects


def split_keys(
    frame: pl.DataFrame, *, prompt_column: str = "messages", dedupe_columns: tuple[str, ...] = ("messages",)
) -> pl.DataFrame:
    """The light columns a split plan needs, one row per dialogue in ``frame`` order: tree, source split, dialogue
    id, and 128-bit hashes (two seeded 64-bit halves) of the normalised first user prompt and of the dialogue's
    roles and contents. Hashes let the plan run over millions of rows from many shards without their text."""
    first_user = (
        pl.col(prompt_column)
        .list.eval(pl.element().filter(pl.element().struct.field("role") == "user").first())
        .list.first()
        .struct.field("content")
    )
    key = pl.concat_str(
        [
            pl.col(c)
            .list.eval(pl.element().struct.field("role") + pl.lit("\x1f") + pl.element().struct.field("content"))
            .list.join("\x1e")
            for c in dedupe_columns
        ],
        separator="\x1d",
    )
    prompt = normalise_prompt(first_user)
    return frame.select(
        "message_tree_id",
        "source_split",
        "dialogue_id",
        *[pl.when(prompt.is_not_null()).then(prompt.hash(seed)).alias(f"_p{seed}") for seed in (1, 2)],
        *[pl.when(key.is_not_null()).then(key.hash(seed)).alias(f"_k{seed}") for seed in (1, 2)],
    )


@dataclass
class SplitPlan:
    """Per input row (``_row``): its final ``split`` and, for dropped rows, ``_reason``/``_evidence``."""

    rows: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    moved: int = 0


def plan_splits(
    keys: pl.DataFrame,
    *,
    names: tuple[str, str] = ("train_sft", "test_sft"),
    test_fraction: float = 0.05,
    seed: str = "",
    honour_source: bool = True,
    leak_policy: LeakPolicy = "move",
    dedupe: bool = True,
) -> SplitPlan:
    """Decide every row's split and drops from :func:`split_keys` columns plus a unique ``_row`` per row."""
    train, test = names
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError("test_fraction must be in [0, 1)")
    trees = (
        keys.select("message_tree_id", "source_split").unique("message_tree_id", keep="first").sort("message_tree_id")
    )
    trees = trees.with_columns(tree_hash_fraction(trees.get_column("message_tree_id"), seed))
    by_source = pl.col("source_split").is_not_null() & pl.lit(honour_source)
    trees = trees.with_columns(
        pl.when(by_source & (pl.col("source_split") == "train"))
        .then(pl.lit(train))
        .when(by_source)
        .then(pl.lit(test))
        .when(pl.col("_u") < test_fraction)
        .then(pl.lit(test))
        .otherwise(pl.lit(train))
        .alias("split")
    )
    out = keys.join(trees.select("message_tree_id", "split"), on="message_tree_id", how="left").with_columns(
        pl.lit(None, pl.String).alias("_reason"), pl.lit(None, pl.String).alias("_evidence")
    )
    counts: dict[str, int] = {}
    moved = 0
    # prompt leaks: a test tree whose normalised first user prompt also occurs in train
    prompt = ["_p1", "_p2"]
    train_prompts = out.filter(pl.col("split") == train).select(prompt).drop_nulls().unique()
    leaking_trees = (
        out.filter(pl.col("split") == test).join(train_prompts, on=prompt, how="semi").get_column("message_tree_id")
    ).unique()
    if leaking_trees.len():
        is_leak = pl.col("message_tree_id").is_in(leaking_trees.implode())
        if leak_policy == "move":
            moved = out.filter(is_leak).height
            out = out.with_columns(pl.when(is_leak).then(pl.lit(train)).otherwise(pl.col("split")).alias("split"))
        else:
            counts["cross_split_prompt"] = out.filter(is_leak).height
            out = out.with_columns(
                pl.when(is_leak).then(pl.lit("cross_split_prompt")).alias("_reason"),
                pl.when(is_leak).then(pl.lit(f"prompt also in {train}")).alias("_evidence"),
            )
    out = out.sort("split", "message_tree_id", "dialogue_id")
    if dedupe:
        live = out.filter(pl.col("_reason").is_null())
        first = pl.struct("_k1", "_k2").is_first_distinct().over("split")
        dups = live.filter(~first)
        if dups.height:
            firsts = live.filter(first).select("split", "_k1", "_k2", pl.col("dialogue_id").alias("_first"))
            dups = dups.join(firsts, on=["split", "_k1", "_k2"], how="left").select(
                "_row",
                pl.lit("duplicate_dialogue").alias("_dup_reason"),
                pl.format("same as {} in {}", pl.col("_first"), pl.col("split")).alias("_dup_evidence"),
            )
            out = out.join(dups, on="_row", how="left", maintain_order="left").with_columns(
                pl.coalesce("_reason", "_dup_reason").alias("_reason"),
                pl.coalesce("_evidence", "_dup_evidence").alias("_evidence"),
            )
            counts["duplicate_dialogue"] = dups.height
    return SplitPlan(out.select("_row", "split", "_reason", "_evidence"), counts, moved)


def apply_plan(frame: pl.DataFrame, plan_rows: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``frame`` (with ``_row``) split by a plan: the kept rows in output order (split, tree, dialogue) with a
    ``split`` column, and the dropped rows as dialogue rejects of the ``splits`` stage."""
    out = frame.join(plan_rows, on="_row", how="left", maintain_order="left")
    dropped = out.filter(pl.col("_reason").is_not_null())
    rejects = dialogue_rejects(dropped, stage=STAGE, reason=pl.col("_reason"), evidence=pl.col("_evidence"))
    kept = out.filter(pl.col("_reason").is_null()).sort("split", "message_tree_id", "dialogue_id")
    return kept.drop([c for c in kept.columns if c.startswith("_")]), rejects


def assign_splits(
    frame: pl.DataFrame,
    *,
    names: tuple[str, str] = ("train_sft", "test_sft"),
    test_fraction: float = 0.05,
    seed: str = "",
    honour_source: bool = True,
    leak_policy: LeakPolicy = "move",
    dedupe: bool = True,
    prompt_column: str = "messages",
    dedupe_columns: tuple[str, ...] = ("messages",),
) -> SplitResult:
    """Assign ``split`` by tree, fix cross-split prompt leaks, drop exact duplicates. See the module docstring."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError("test_fraction must be in [0, 1)")
    if frame.is_empty():
        return SplitResult(frame.with_columns(pl.lit(None, pl.String).alias("split")), empty_rejects())
    numbered = frame.with_row_index("_row")
    keys = split_keys(frame, prompt_column=prompt_column, dedupe_columns=dedupe_columns).with_columns(
        numbered.get_column("_row")
    )
    plan = plan_splits(
        keys,
        names=names,
        test_fraction=test_fraction,
        seed=seed,
        honour_source=honour_source,
        leak_policy=leak_policy,
        dedupe=dedupe,
    )
    kept, rejects = apply_plan(numbered, plan.rows)
    return SplitResult(kept, conform(rejects, REJECT_SCHEMA), plan.counts, plan.moved)
