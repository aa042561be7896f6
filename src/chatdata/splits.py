"""Leak-free splits: by tree always, then a prompt-leak check across splits and exact-duplicate removal.

1. Every tree goes to one split: the source's own split when it has one (oasst1's train/validation), otherwise a
   deterministic hash of ``message_tree_id`` (sha256, so it is stable across machines and Python versions).
2. No normalised (case- and whitespace-folded) first user prompt may be in both train and test: test trees whose
   prompt also occurs in train are moved to train (``leak_policy="move"``, the default: test stays clean and no data
   is lost) or dropped (``"drop"``). Moves are counted; drops are rejects.
3. Exact duplicate dialogues within a split (same roles and contents) are removed, keeping the first in the
   split's deterministic order, and rejected as ``duplicate_dialogue``.

:func:`plan_splits` decides all three from light keys of every row (:func:`chatdata.stages.split_keys`: hashes of
the normalised first prompt and of the dialogue), never from the text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from chatdata.schema import REJECT_SCHEMA, conform, empty_rejects

LeakPolicy = Literal["move", "drop"]


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
