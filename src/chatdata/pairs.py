"""Preference pairs from oasst ranks, in the UltraFeedback-binarized layout the alignment-handbook and TRL consume.

For every prefix that ends on a user message with at least two surviving *ranked* assistant replies, the replies are
ordered by rank (lowest = best; unranked replies are left out; gaps left by removed siblings do not matter):

- ``best_vs_worst`` (default): one pair, the best against the worst reply;
- ``all_pairs``: every pair (i, j) with rank_i < rank_j.

Scores come from the position ``p`` (0 = best) among the ``k`` surviving ranked replies:
``score = 10 * (k - 1 - p) / (k - 1)``, so the best reply scores 10 and the worst 0 whatever the raw ranks were.
A pair is never built from equal ranks, nor from two replies with the same text (``identical_replies``).

Columns: ``prompt`` (the last user message), ``prompt_id`` (sha256 hex of ``prompt``), ``chosen`` and ``rejected``
(the full message list ending in the reply), ``messages`` (= ``chosen``), ``score_chosen``, ``score_rejected``, plus
``dialogue_id`` (``<chosen id>-vs-<rejected id>``), ``message_tree_id``, ``rank_chosen``, ``rank_rejected``, ``lang``.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from chatdata.schema import ROLE_MAP, message_rejects
from chatdata.trees import StageResult, reason_counts, root_paths

PairMode = Literal["best_vs_worst", "all_pairs"]


def build_pairs(messages: pl.DataFrame, mode: PairMode = "best_vs_worst", stage: str = "pairs") -> StageResult:
    """Build preference pairs from surviving messages (``depth`` required); see the module docstring."""
    if mode not in ("best_vs_worst", "all_pairs"):
        raise ValueError(f"unknown pair mode {mode!r}; use 'best_vs_worst' or 'all_pairs'")
    replies = messages.filter((pl.col("role") == "assistant") & pl.col("parent_id").is_not_null())
    ranked = replies.filter(pl.col("rank").is_not_null())
    ranked = ranked.with_columns(
        pl.len().over("parent_id").alias("_k"),
        pl.col("rank").rank("ordinal").over("parent_id").cast(pl.Int64).sub(1).alias("_p"),
    ).filter(pl.col("_k") >= 2)
    ranked = ranked.with_columns((10.0 * (pl.col("_k") - 1 - pl.col("_p")) / (pl.col("_k") - 1)).alias("_score"))
    side = ranked.select("parent_id", "message_id", "rank", "text", "_p", "_k", "_score")
    pairs = side.join(side, on="parent_id", suffix="_r").filter(pl.col("_p") < pl.col("_p_r"))
    if mode == "best_vs_worst":
        pairs = pairs.filter((pl.col("_p") == 0) & (pl.col("_p_r") == pl.col("_k_r") - 1))
    equal_rank = pairs.filter(pl.col("rank") == pl.col("rank_r"))
    same_text = pairs.filter(pl.col("text") == pl.col("text_r"))
    bad_pairs = pl.concat([equal_rank, same_text]).unique(["message_id", "message_id_r"])
    pairs = pairs.join(bad_pairs.select("message_id", "message_id_r"), on=["message_id", "message_id_r"], how="anti")

    # the prefix: the path from the root to the user message the replies answer
    paths = root_paths(messages)
    info = messages.select(
        "message_id",
        pl.struct(
            pl.col("role").replace_strict(ROLE_MAP, return_dtype=pl.String).alias("role"),
            pl.col("text").alias("content"),
        ).alias("_msg"),
    )
    prefix_ids = (
        pairs.select("parent_id").unique().join(paths.rename({"message_id": "parent_id"}), on="parent_id", how="left")
    )
    prefixes = (
        prefix_ids.explode("path")
        .with_row_index("_pos")
        .join(info.rename({"message_id": "path"}), on="path", how="left")
        .sort("_pos")
        .group_by("parent_id", maintain_order=True)
        .agg(pl.col("_msg").alias("_prefix"), pl.col("path").alias("_prefix_ids"))
    )
    roots = messages.filter(pl.col("depth") == 0).select(
        pl.col("message_id").alias("message_tree_id"), "lang", "source_split"
    )
    reply = pl.struct(pl.lit("assistant").alias("role"), pl.col("text").alias("content"))
    reply_r = pl.struct(pl.lit("assistant").alias("role"), pl.col("text_r").alias("content"))
    out = (
        pairs.join(prefixes, on="parent_id", how="left")
        .with_columns(pl.col("_prefix_ids").list.first().alias("message_tree_id"))
        .join(roots, on="message_tree_id", how="left")
        .with_columns(
            pl.col("_prefix").list.last().struct.field("content").alias("prompt"),
            pl.col("_prefix").list.concat(pl.concat_list(reply)).alias("chosen"),
            pl.col("_prefix").list.concat(pl.concat_list(reply_r)).alias("rejected"),
            pl.format("{}-vs-{}", pl.col("message_id"), pl.col("message_id_r")).alias("dialogue_id"),
            pl.col("_prefix_ids").list.concat(pl.concat_list("message_id", "message_id_r")).alias("message_ids"),
        )
    )
    out = (
        out.with_columns(
            pl.col("prompt").map_batches(_sha256_hex, return_dtype=pl.String).alias("prompt_id"),
            pl.col("chosen").alias("messages"),
        )
        .select(
            "prompt",
            "prompt_id",
            "chosen",
            "rejected",
            "messages",
            pl.col("_score").alias("score_chosen"),
            pl.col("_score_r").alias("score_rejected"),
            "dialogue_id",
            "message_tree_id",
            "message_ids",
            pl.col("rank").alias("rank_chosen"),
            pl.col("rank_r").alias("rank_rejected"),
            "lang",
            "source_split",
            pl.col("chosen").list.len().cast(pl.Int32).alias("n_turns"),
        )
        .sort("message_tree_id", "dialogue_id")
    )

    # account for every message that is in no pair
    used = out.select(pl.col("message_ids").explode().unique().alias("message_id"))
    unused = messages.join(used, on="message_id", how="anti")
    ranked_ids = ranked.select("message_id", "_k")
    bad_ids = pl.concat([bad_pairs.select("message_id"), bad_pairs.select(pl.col("message_id_r").alias("message_id"))])
    why = unused.join(ranked_ids, on="message_id", how="left").with_columns(
        pl.when(pl.col("message_id").is_in(bad_ids.get_column("message_id").implode()))
        .then(pl.lit("identical_replies"))
        .when((pl.col("role") == "assistant") & pl.col("rank").is_null())
        .then(pl.lit("unranked_reply"))
        .when((pl.col("role") == "assistant") & pl.col("_k").is_null())
        .then(pl.lit("single_ranked_reply"))
        .when(pl.col("role") == "assistant")
        .then(pl.lit("not_best_or_worst"))
        .otherwise(pl.lit("no_ranked_reply_pair"))
        .alias("_why"),
        pl.format("role={} rank={}", pl.col("role"), pl.col("rank").cast(pl.String).fill_null("null")).alias("_ev"),
    )
    rejects = message_rejects(why, stage=stage, reason=pl.col("_why"), evidence=pl.col("_ev"))
    return StageResult(out, rejects, reason_counts(rejects))


def _sha256_hex(s: pl.Series) -> pl.Series:
    import hashlib

    return pl.Series(
        [hashlib.sha256(x.encode("utf-8")).hexdigest() if x is not None else None for x in s.to_list()],
        dtype=pl.String,
    )
