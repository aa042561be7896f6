"""Validate tree structure columnarly: duplicates, orphans, cycles, roots, role alternation, empty text.

The walk is level by level (one join per depth), never recursive per row: roots first, then their children, and so
on. A message that fails a check is rejected together with everything below it (``ancestor_rejected``, with the
ancestor and its reason as evidence). The surviving messages get ``depth`` and ``message_tree_id`` = their root.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from chatdata.schema import INTERNAL_REJECT_SCHEMA, empty_rejects, message_rejects

STAGE = "structure"
_S = pl.String


@dataclass
class StructureResult:
    messages: pl.DataFrame  # the input's columns + depth (Int32) + _i (the row's position in the input)
    rejects: pl.DataFrame  # payloads left to the writer: each row carries the message's position _i


def _own_checks(frame: pl.DataFrame) -> pl.DataFrame:
    """Reasons that depend only on the message itself."""
    text = pl.col("text")
    return frame.with_columns(
        pl.when(text.str.strip_chars().str.len_chars() == 0)
        .then(pl.lit("empty_text"))
        .when(~pl.col("role").is_in(["prompter", "assistant"]))
        .then(pl.lit("invalid_role"))
        .otherwise(pl.lit(None, _S))
        .alias("_own")
    )


def _inherit(
    parent_own: pl.Expr, parent_id: pl.Expr, parent_bad_id: pl.Expr, parent_bad_reason: pl.Expr
) -> list[pl.Expr]:
    return [
        pl.when(parent_own.is_not_null()).then(parent_id).otherwise(parent_bad_id).alias("_bad_id"),
        pl.when(parent_own.is_not_null()).then(parent_own).otherwise(parent_bad_reason).alias("_bad_reason"),
    ]


def _descend(start: pl.DataFrame, pool: pl.DataFrame, *, check_roles: bool) -> tuple[list[pl.DataFrame], pl.DataFrame]:
    """Walk from ``start`` (one level) down through ``pool``; return the levels reached and what is left."""
    levels = [start]
    frontier = start
    remaining = pool
    keep = ["message_id", "depth", "_root", "role", "_own", "_bad_id", "_bad_reason"]
    while frontier.height and remaining.height:
        parents = frontier.select(
            pl.col("message_id").alias("_pid"),
            pl.col("depth").alias("_pdepth"),
            pl.col("_root").alias("_proot"),
            pl.col("role").alias("_prole"),
            pl.col("_own").alias("_pown"),
            pl.col("_bad_id").alias("_pbad_id"),
            pl.col("_bad_reason").alias("_pbad_reason"),
        )
        children = remaining.join(parents, left_on="parent_id", right_on="_pid", how="inner")
        if not children.height:
            break
        own = pl.col("_own")
        if check_roles:
            own = (
                pl.when(own.is_not_null())
                .then(own)
                .when(pl.col("role") == pl.col("_prole"))
                .then(pl.lit("role_not_alternating"))
                .when(pl.col("message_tree_id").is_not_null() & (pl.col("message_tree_id") != pl.col("_proot")))
                .then(pl.lit("tree_id_mismatch"))
                .otherwise(own)
            )
        children = children.with_columns(
            (pl.col("_pdepth") + 1).cast(pl.Int32).alias("depth"),
            pl.col("_proot").alias("_root"),
            own.alias("_own"),
            *_inherit(pl.col("_pown"), pl.col("parent_id"), pl.col("_pbad_id"), pl.col("_pbad_reason")),
        ).drop("_pdepth", "_proot", "_prole", "_pown", "_pbad_id", "_pbad_reason")
        levels.append(children)
        remaining = remaining.join(children.select("message_id"), on="message_id", how="anti")
        frontier = children.select(keep)
    return levels, remaining


def validate_structure(messages: pl.DataFrame, rejected_ids: pl.Series | None = None) -> StructureResult:
    """Check every message's place in its tree; see the module docstring for the rules. Rejects carry the
    message's position in ``messages`` (``_i``) instead of a payload (the writer builds it from that row)."""
    m = _own_checks(messages.with_row_index("_order"))
    rejects = [empty_rejects(INTERNAL_REJECT_SCHEMA)]

    # duplicates: the first occurrence (in source order) wins, the others are rejected with a pointer to it
    first = m.filter(pl.col("message_id").is_first_distinct())
    dups = m.filter(~pl.col("message_id").is_first_distinct())
    if dups.height:
        ref = first.select(
            "message_id",
            pl.format("{}:{}", pl.col("source"), pl.col("source_line")).alias("_first_at"),
            pl.col("text").alias("_first_text"),
        )
        dups = (
            dups.join(ref, on="message_id", how="left")
            .with_columns(
                pl.format(
                    "first seen at {} ({})",
                    pl.col("_first_at"),
                    pl.when(pl.col("text") == pl.col("_first_text"))
                    .then(pl.lit("same text"))
                    .otherwise(pl.lit("different text")),
                ).alias("_ev"),
                pl.col("_order").alias("_i"),
            )
            .drop("text")
        )
        rejects.append(message_rejects(dups, stage=STAGE, reason="duplicate_message_id", evidence=pl.col("_ev")))
    # walk on a slim frame (ids, roles, flags) and join the full rows back once at the end
    slim_cols = ["_order", "message_id", "parent_id", "message_tree_id", "role", "_own"]
    rest_cols = first.drop([c for c in slim_cols if c != "_order"])
    m = first.select(slim_cols)

    def full(frame: pl.DataFrame) -> pl.DataFrame:
        """The rows of rejected messages: every column but the text, and their position."""
        return frame.join(rest_cols.drop("text"), on="_order", how="left").with_columns(pl.col("_order").alias("_i"))

    nulls = [pl.lit(None, _S).alias("_bad_id"), pl.lit(None, _S).alias("_bad_reason")]
    roots = m.filter(pl.col("parent_id").is_null()).with_columns(
        pl.lit(0, pl.Int32).alias("depth"),
        pl.col("message_id").alias("_root"),
        pl.when(pl.col("_own").is_not_null())
        .then(pl.col("_own"))
        .when(pl.col("role") != "prompter")
        .then(pl.lit("root_not_prompter"))
        .when(pl.col("message_tree_id").is_not_null() & (pl.col("message_tree_id") != pl.col("message_id")))
        .then(pl.lit("tree_id_mismatch"))
        .otherwise(pl.col("_own"))
        .alias("_own"),
        *nulls,
    )
    pool = m.filter(pl.col("parent_id").is_not_null())
    levels, unreached = _descend(roots, pool, check_roles=True)
    reached = pl.concat(levels, how="diagonal_relaxed")

    if unreached.height:
        known = m.get_column("message_id")
        heads = unreached.filter(~pl.col("parent_id").is_in(known.implode()))
        rejected = rejected_ids if rejected_ids is not None else pl.Series([], dtype=_S)
        heads = heads.with_columns(
            pl.lit(0, pl.Int32).alias("depth"),
            pl.col("message_id").alias("_root"),
            pl.when(pl.col("parent_id").is_in(rejected.implode()))
            .then(pl.lit("parent_rejected"))
            .otherwise(pl.lit("orphan"))
            .alias("_own"),
            pl.format("parent {} not found", pl.col("parent_id")).alias("_ev"),
            *nulls,
        )
        rest = unreached.join(heads.select("message_id"), on="message_id", how="anti")
        orphan_levels, cyclic = _descend(heads, rest, check_roles=False)
        orphaned = pl.concat(orphan_levels, how="diagonal_relaxed")
        heads_out = orphaned.filter(pl.col("_own").is_in(["orphan", "parent_rejected"]) & pl.col("_bad_id").is_null())
        rejects.append(message_rejects(full(heads_out), stage=STAGE, reason=pl.col("_own"), evidence=pl.col("_ev")))
        below = orphaned.join(heads_out.select("message_id"), on="message_id", how="anti")
        rejects.append(
            message_rejects(
                full(below),
                stage=STAGE,
                reason="ancestor_rejected",
                evidence=pl.format("{}: {}", pl.col("_bad_id"), pl.col("_bad_reason")),
            )
        )
        if cyclic.height:
            rejects.append(
                message_rejects(
                    full(cyclic),
                    stage=STAGE,
                    reason="cycle",
                    evidence=pl.format("parent chain from {} never reaches a root", pl.col("parent_id")),
                )
            )

    own_bad = reached.filter(pl.col("_own").is_not_null())
    rejects.append(
        message_rejects(
            full(own_bad),
            stage=STAGE,
            reason=pl.col("_own"),
            evidence=pl.format("role={} depth={}", pl.col("role"), pl.col("depth")),
        )
    )
    inherited = reached.filter(pl.col("_own").is_null() & pl.col("_bad_id").is_not_null())
    rejects.append(
        message_rejects(
            full(inherited),
            stage=STAGE,
            reason="ancestor_rejected",
            evidence=pl.format("{}: {}", pl.col("_bad_id"), pl.col("_bad_reason")),
        )
    )
    good = (
        reached.filter(pl.col("_own").is_null() & pl.col("_bad_id").is_null())
        .select("_order", "message_id", "parent_id", "role", "depth", pl.col("_root").alias("message_tree_id"))
        .sort("_order")
        .join(rest_cols, on="_order", how="left", maintain_order="left")
    )
    out = good.select(*messages.columns, "depth", pl.col("_order").cast(pl.UInt32).alias("_i"))
    return StructureResult(messages=out, rejects=pl.concat(rejects, how="vertical"))


def propagate(messages: pl.DataFrame, reason: str = "_reason") -> pl.DataFrame:
    """Push per-message reasons down to descendants by depth (needs ``depth`` from :func:`validate_structure`).

    Adds ``_bad_id``/``_bad_reason``: the nearest rejected ancestor of every message (null when none).
    """
    if messages.is_empty():
        return messages.with_columns(pl.lit(None, _S).alias("_bad_id"), pl.lit(None, _S).alias("_bad_reason"))
    max_depth = int(messages.get_column("depth").max())  # type: ignore[arg-type]
    out = []
    prev = None
    for d in range(max_depth + 1):
        level = messages.filter(pl.col("depth") == d)
        if prev is None:
            level = level.with_columns(pl.lit(None, _S).alias("_bad_id"), pl.lit(None, _S).alias("_bad_reason"))
        else:
            parents = prev.select(
                pl.col("message_id").alias("_pid"),
                pl.col(reason).alias("_pown"),
                pl.col("_bad_id").alias("_pbad_id"),
                pl.col("_bad_reason").alias("_pbad_reason"),
            )
            level = (
                level.join(parents, left_on="parent_id", right_on="_pid", how="left")
                .with_columns(
                    *_inherit(pl.col("_pown"), pl.col("parent_id"), pl.col("_pbad_id"), pl.col("_pbad_reason"))
                )
                .drop("_pown", "_pbad_id", "_pbad_reason")
            )
        out.append(level)
        prev = level
    return pl.concat(out, how="vertical")
