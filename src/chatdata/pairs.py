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

No text is read but the prompts' (for ``prompt_id``): a pair is its chosen side's positions ``_m`` (the prefix, then
the chosen reply) and the rejected reply's position ``_r`` (see :mod:`chatdata.messages`); ``prompt``, ``chosen``,
``rejected`` and ``messages`` are placeholders the writer fills. Replies are compared by the 128-bit hash of their
text (``_h1``/``_h2``). Given messages that hold ``text``, the pairs are returned whole.
"""

from __future__ import annotations

from typing import Literal

import polars as pl

from chatdata.messages import IDX, SEEDS, M, R
from chatdata.schema import message_rejects
from chatdata.trees import StageResult, chat_table, gather_messages, reason_counts, root_paths

PairMode = Literal["best_vs_worst", "all_pairs"]


def build_pairs(
    messages: pl.DataFrame,
    mode: PairMode = "best_vs_worst",
    stage: str = "pairs",
    *,
    texts: pl.DataFrame | None = None,
) -> StageResult:
    """Build preference pairs from surviving messages (``depth`` required); see the module docstring.

    ``texts`` (``_i``, ``text``) gives the prompts' text when ``messages`` holds none (then it needs ``_i`` and
    the text hashes ``_h1``/``_h2``)."""
    if mode not in ("best_vs_worst", "all_pairs"):
        raise ValueError(f"unknown pair mode {mode!r}; use 'best_vs_worst' or 'all_pairs'")
    whole = "text" in messages.columns
    if "_i" not in messages.columns:
        messages = messages.with_columns(pl.int_range(pl.len(), dtype=IDX).alias("_i"))
    if whole:
        texts = messages.select("_i", "text")
        messages = messages.with_columns(pl.col("text").hash(seed).alias(f"_h{seed}") for seed in SEEDS)
    replies = messages.filter((pl.col("role") == "assistant") & pl.col("parent_id").is_not_null())
    ranked = replies.filter(pl.col("rank").is_not_null())
    ranked = ranked.with_columns(
        pl.len().over("parent_id").alias("_k"),
        pl.col("rank").rank("ordinal").over("parent_id").cast(pl.Int64).sub(1).alias("_p"),
    ).filter(pl.col("_k") >= 2)
    ranked = ranked.with_columns((10.0 * (pl.col("_k") - 1 - pl.col("_p")) / (pl.col("_k") - 1)).alias("_score"))
    side = ranked.select("parent_id", "message_id", "_i", "rank", "_h1", "_h2", "_p", "_k", "_score")
    pairs = side.join(side, on="parent_id", suffix="_r").filter(pl.col("_p") < pl.col("_p_r"))
    if mode == "best_vs_worst":
        pairs = pairs.filter((pl.col("_p") == 0) & (pl.col("_p_r") == pl.col("_k_r") - 1))
    equal_rank = pairs.filter(pl.col("rank") == pl.col("rank_r"))
    same_text = pairs.filter((pl.col("_h1") == pl.col("_h1_r")) & (pl.col("_h2") == pl.col("_h2_r")))
    bad_pairs = pl.concat([equal_rank, same_text]).unique(["message_id", "message_id_r"])
    pairs = pairs.join(bad_pairs.select("message_id", "message_id_r"), on=["message_id", "message_id_r"], how="anti")

    # the prefix: the path from the root to the user message the replies answer
    paths = root_paths(messages)
    prefixes = (
        pairs.select("parent_id")
        .unique()
        .join(paths.rename({"message_id": "parent_id", "path": "_prefix_ids", "_ip": "_prefix"}), on="parent_id")
    )
    roots = messages.filter(pl.col("depth") == 0).select(
        pl.col("message_id").alias("message_tree_id"), "lang", "source_split"
    )
    prompt_ids = _prompt_ids(prefixes.select(pl.col("_prefix").list.last().alias("_i")), texts)
    placeholder = pl.lit(None, pl.Null)
    out = (
        pairs.join(prefixes, on="parent_id", how="left")
        .with_columns(
            pl.col("_prefix_ids").list.first().alias("message_tree_id"),
            pl.col("_prefix").list.last().alias("_pi"),
        )
        .join(roots, on="message_tree_id", how="left")
        .join(prompt_ids, on="_pi", how="left")
        .select(
            placeholder.alias("prompt"),
            "prompt_id",
            placeholder.alias("chosen"),
            placeholder.alias("rejected"),
            placeholder.alias("messages"),
            pl.col("_score").alias("score_chosen"),
            pl.col("_score_r").alias("score_rejected"),
            pl.format("{}-vs-{}", pl.col("message_id"), pl.col("message_id_r")).alias("dialogue_id"),
            "message_tree_id",
            pl.col("_prefix_ids").list.concat(pl.concat_list("message_id", "message_id_r")).alias("message_ids"),
            pl.col("rank").alias("rank_chosen"),
            pl.col("rank_r").alias("rank_rejected"),
            "lang",
            "source_split",
            (pl.col("_prefix").list.len() + 1).cast(pl.Int32).alias("n_turns"),
            pl.col("_prefix").list.concat(pl.concat_list("_i")).cast(pl.List(IDX)).alias(M),
            pl.col("_i_r").cast(IDX).alias(R),
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
    if whole:
        out = with_pair_text(out, chat_table(messages)).drop(M, R)
    return StageResult(out, rejects, reason_counts(rejects))


def _prompt_ids(prompts: pl.DataFrame, texts: pl.DataFrame | None) -> pl.DataFrame:
    """``_pi`` (a prompt's position) -> ``prompt_id``, the sha256 hex of its text."""
    distinct = prompts.unique().sort("_i")
    if texts is None or not distinct.height:
        return distinct.select(pl.col("_i").alias("_pi"), pl.lit(None, pl.String).alias("prompt_id"))
    found = distinct.join(texts.select("_i", "text"), on="_i", how="left", maintain_order="left")
    return found.select(
        pl.col("_i").alias("_pi"), pl.col("text").map_batches(_sha256_hex, return_dtype=pl.String).alias("prompt_id")
    )


def with_pair_text(pairs: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """``pairs`` with ``prompt``, ``chosen``, ``rejected`` and ``messages`` gathered from ``table`` (``_i``,
    ``role``, ``text``)."""
    chosen = gather_messages(pairs.get_column(M), table)
    rejected_ids = pairs.select(pl.col(M).list.head(pl.col(M).list.len() - 1).list.concat(pl.concat_list(R)))
    rejected = gather_messages(rejected_ids.to_series(), table)
    prompt = chosen.list.get(-2, null_on_oob=True).struct.field("content")
    return pairs.with_columns(
        prompt.alias("prompt"), chosen.alias("chosen"), rejected.alias("rejected"), chosen.alias("messages")
    )


def _sha256_hex(s: pl.Series) -> pl.Series:
    import hashlib

    return pl.Series(
        [hashlib.sha256(x.encode("utf-8")).hexdigest() if x is not None else None for x in s.to_list()],
        dtype=pl.String,
    )
