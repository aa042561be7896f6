"""Quality gates over trees and flattening trees into linear dialogues, columnar and level by level.

Flatten modes:

- ``threads``: every root-to-leaf path of the surviving tree, ending on an assistant turn as Open-Assistant's loader
  does. A path whose leaf is a user message is cut back to its assistant parent (once per parent, however many
  user leaves hang there); ``keep_user_ended=True`` keeps such paths whole instead. A root that has no surviving
  reply gives no dialogue (``no_assistant_reply``).
- ``top_ranked`` (guanaco): one path per tree. Below a user message the assistant reply with the best (lowest)
  surviving rank is followed; ranks are compared as they are, so gaps left by removed siblings do not matter; a
  ranked reply beats an unranked one; among unranked replies (or on equal ranks) the earliest ``created_date``
  wins, then the smallest ``message_id``. Below an assistant message the user reply that itself has a surviving
  reply is preferred (so the path can continue), then the earliest, then the smallest id. A trailing user turn
  is dropped, so every dialogue ends on an assistant turn.

Gates and flattening never lose a message silently: every message that ends up in no dialogue is a reject row
with the stage and reason (``ancestor_rejected``, ``trailing_user_turn``, ``not_top_ranked`` …).

Neither reads text. A dialogue is the list of its messages' positions in the shard's message table (``_m``, see
:mod:`chatdata.messages`) beside its ids; ``messages`` is a placeholder column (null) that keeps its place in the
row until the writer gathers the text. Message rejects carry the message's position (``_i``) instead of a payload.
:func:`flatten` on a frame that holds ``text`` gathers it at once (for callers that want the dialogues whole).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from chatdata.filters.base import Filter, apply_filters
from chatdata.messages import IDX, M
from chatdata.schema import CHAT_MESSAGE, ROLE_MAP, empty_rejects, message_rejects
from chatdata.structure import propagate

FlattenMode = Literal["threads", "top_ranked"]

#: Columns of a dialogue table produced by :func:`flatten` (then ``_m``, the messages' positions).
DIALOGUE_COLUMNS = (
    "dialogue_id",
    "message_tree_id",
    "message_ids",
    "messages",
    "lang",
    "source_split",
    "n_turns",
)
IDS = pl.List(IDX)


@dataclass
class StageResult:
    frame: pl.DataFrame
    rejects: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


def reason_counts(rejects: pl.DataFrame) -> dict[str, int]:
    if rejects.is_empty():
        return {}
    key = pl.when(pl.col("filter").is_not_null() & (pl.col("filter") != pl.col("reason"))).then(
        pl.format("{}: {}", pl.col("filter"), pl.col("reason"))
    )
    rows = rejects.group_by(key.otherwise(pl.col("reason")).alias("k")).len().sort("k").iter_rows()
    return {k: n for k, n in rows}


def gate(messages: pl.DataFrame, filters: list[Filter], stage: str = "gates") -> StageResult:
    """Apply message-level filters; a failing message takes its whole subtree with it."""
    if not filters:
        return StageResult(messages, empty_rejects(), {})
    outcome = apply_filters(messages, filters)
    dropped = outcome.dropped.select("message_id", "reject_filter", "reject_reason", "reject_evidence")
    # propagate on a slim frame (ids and depth), then pick whole rows by position once
    slim = (
        messages.select("message_id", "parent_id", "depth")
        .with_row_index("_o")
        .join(dropped, on="message_id", how="left")
        .with_columns(pl.col("reject_reason").alias("_reason"))
    )
    walked = propagate(slim, "_reason").sort("_o")
    flags = walked.select("_reason", "_bad_id", "_bad_reason", "reject_filter", "reject_reason", "reject_evidence")
    rows = pl.concat([messages, flags], how="horizontal")
    own = rows.filter(pl.col("_reason").is_not_null())
    below = rows.filter(pl.col("_reason").is_null() & pl.col("_bad_id").is_not_null())
    rejects = pl.concat(
        [
            message_rejects(
                own,
                stage=stage,
                reason=pl.col("reject_reason"),
                evidence=pl.col("reject_evidence"),
                filter_name=None,
            ).with_columns(own.get_column("reject_filter").alias("filter")),
            message_rejects(
                below,
                stage=stage,
                reason="ancestor_rejected",
                evidence=pl.format("{}: {}", pl.col("_bad_id"), pl.col("_bad_reason")),
            ),
        ],
        how="vertical",
    )
    keep = flags.select(pl.col("_reason").is_null() & pl.col("_bad_id").is_null()).to_series()
    kept = messages.filter(keep)
    return StageResult(kept, rejects, reason_counts(rejects))


def root_paths(nodes: pl.DataFrame) -> pl.DataFrame:
    """``message_id`` -> ``path`` (ids from the root) and ``_ip`` (their positions ``_i``), level by level."""
    max_depth = int(nodes.get_column("depth").max() or 0)
    levels = []
    prev = nodes.filter(pl.col("depth") == 0).select(
        "message_id", pl.concat_list(pl.col("message_id")).alias("path"), pl.concat_list(pl.col("_i")).alias("_ip")
    )
    levels.append(prev)
    for d in range(1, max_depth + 1):
        cur = (
            nodes.filter(pl.col("depth") == d)
            .select("message_id", "parent_id", "_i")
            .join(prev.rename({"message_id": "parent_id", "path": "_pp", "_ip": "_pi"}), on="parent_id", how="inner")
            .select(
                "message_id",
                pl.concat_list(pl.col("_pp"), pl.col("message_id")).alias("path"),
                pl.concat_list(pl.col("_pi"), pl.col("_i")).alias("_ip"),
            )
        )
        levels.append(cur)
        prev = cur
    return pl.concat(levels, how="vertical")


def _build_dialogues(ends: pl.DataFrame, messages: pl.DataFrame) -> pl.DataFrame:
    """Turn ``ends`` (``end_id``, ``path``, ``_ip``) into dialogue rows: ids, ``message_ids``, the ``messages``
    placeholder and ``_m`` (the path's positions)."""
    roots = messages.filter(pl.col("depth") == 0).select(
        pl.col("message_id").alias("message_tree_id"), "lang", "source_split"
    )
    return (
        ends.select(
            pl.col("end_id").alias("dialogue_id"),
            pl.col("path").list.first().alias("message_tree_id"),
            pl.col("path").cast(pl.List(pl.String)).alias("message_ids"),
            pl.lit(None, pl.Null).alias("messages"),
            pl.col("_ip").cast(IDS).alias(M),
        )
        .join(roots, on="message_tree_id", how="left")
        .with_columns(pl.col("message_ids").list.len().cast(pl.Int32).alias("n_turns"))
        .select(*DIALOGUE_COLUMNS, M)
        .sort("message_tree_id", "dialogue_id")
    )


def gather_messages(lists: pl.Series, table: pl.DataFrame) -> pl.Series:
    """``list<struct{role, content}>`` per list of positions into ``table`` (``_i``, ``role``, ``text``)."""
    info = table.select("_i", pl.struct(pl.col("role"), pl.col("text").alias("content")).alias("_msg"))
    exploded = (
        pl.DataFrame({M: lists})
        .with_row_index("_row")
        .explode(M)
        .with_row_index("_pos")
        .join(info.rename({"_i": M}), on=M, how="left")
        .sort("_pos")
    )
    grouped = exploded.group_by("_row", maintain_order=True).agg(pl.col("_msg").drop_nulls())
    out = pl.DataFrame({"_row": pl.int_range(len(lists), dtype=pl.UInt32, eager=True)}).join(
        grouped, on="_row", how="left", maintain_order="left"
    )
    return out.get_column("_msg").cast(pl.List(CHAT_MESSAGE)).fill_null(pl.lit([], pl.List(CHAT_MESSAGE)))


def chat_table(messages: pl.DataFrame) -> pl.DataFrame:
    """``_i``, chat ``role`` and ``text`` of oasst messages that hold their text (for :func:`gather_messages`)."""
    return messages.select(
        pl.col("_i").cast(IDX), pl.col("role").replace_strict(ROLE_MAP, return_dtype=pl.String), "text"
    )


def flatten(
    messages: pl.DataFrame,
    mode: FlattenMode = "threads",
    *,
    keep_user_ended: bool = False,
    stage: str = "flatten",
) -> StageResult:
    """Flatten surviving trees (``depth`` required) into dialogues; see the module docstring for the rules.

    ``messages`` without ``_i`` are numbered in order; with ``text`` the dialogues' ``messages`` are gathered,
    else they stay a placeholder beside ``_m``."""
    if mode not in ("threads", "top_ranked"):
        raise ValueError(f"unknown flatten mode {mode!r}; use 'threads' or 'top_ranked'")
    if "_i" not in messages.columns:
        messages = messages.with_columns(pl.int_range(pl.len(), dtype=IDX).alias("_i"))
    empty_ends = pl.DataFrame(schema={"end_id": pl.String, "path": pl.List(pl.String), "_ip": IDS})
    if messages.is_empty():
        return StageResult(_with_text(_build_dialogues(empty_ends, messages), messages), empty_rejects(), {})
    has_child = (
        messages.select(pl.col("parent_id").alias("message_id")).unique().with_columns(pl.lit(True).alias("_has_child"))
    )
    nodes = messages.join(has_child, on="message_id", how="left").with_columns(pl.col("_has_child").fill_null(False))
    if mode == "threads":
        ends, on_path_reason = _thread_ends(nodes, keep_user_ended)
    else:
        ends, on_path_reason = _top_ranked_ends(nodes)
    dialogues = _build_dialogues(ends, messages)
    used = dialogues.select(pl.col("message_ids").explode().unique().alias("message_id"))
    unused = nodes.join(used, on="message_id", how="anti").join(on_path_reason, on="message_id", how="left")
    rejects = message_rejects(
        unused,
        stage=stage,
        reason=pl.col("_why").fill_null("not_in_dialogue"),
        evidence=pl.col("_ev"),
    )
    counts = reason_counts(rejects)
    return StageResult(_with_text(dialogues, messages), rejects, counts)


def _with_text(dialogues: pl.DataFrame, messages: pl.DataFrame) -> pl.DataFrame:
    """The dialogues with their ``messages`` gathered when ``messages`` holds text, else as they are."""
    if "text" not in messages.columns:
        return dialogues
    gathered = gather_messages(dialogues.get_column(M), chat_table(messages))
    return dialogues.with_columns(gathered.alias("messages")).drop(M)


def _why_unused(nodes: pl.DataFrame) -> pl.DataFrame:
    """Default reasons for messages that end in no dialogue."""
    return nodes.select(
        "message_id",
        pl.when((pl.col("depth") == 0) & ~pl.col("_has_child"))
        .then(pl.lit("no_assistant_reply"))
        .when((pl.col("role") == "prompter") & ~pl.col("_has_child"))
        .then(pl.lit("trailing_user_turn"))
        .otherwise(pl.lit("not_in_dialogue"))
        .alias("_why"),
        pl.format("role={} depth={}", pl.col("role"), pl.col("depth")).alias("_ev"),
    )


def _thread_ends(nodes: pl.DataFrame, keep_user_ended: bool) -> tuple[pl.DataFrame, pl.DataFrame]:
    paths = root_paths(nodes)
    leaves = nodes.filter(~pl.col("_has_child"))
    if keep_user_ended:
        end_ids = leaves.filter(pl.col("depth") > 0).select(pl.col("message_id").alias("end_id"))
    else:
        assistant_leaves = leaves.filter(pl.col("role") == "assistant").select(pl.col("message_id").alias("end_id"))
        cut_back = (
            leaves.filter((pl.col("role") == "prompter") & (pl.col("depth") > 0))
            .select(pl.col("parent_id").alias("end_id"))
            .unique()
        )
        end_ids = pl.concat([assistant_leaves, cut_back]).unique()
    ends = end_ids.join(paths.rename({"message_id": "end_id"}), on="end_id", how="inner")
    return ends, _why_unused(nodes)


def _top_ranked_ends(nodes: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    # one best child per parent, by the documented preference order
    children = nodes.filter(pl.col("parent_id").is_not_null()).with_columns(
        pl.when(pl.col("role") == "assistant")
        .then(pl.col("rank").is_null())
        .otherwise(~pl.col("_has_child"))
        .alias("_k1"),
        pl.when(pl.col("role") == "assistant").then(pl.col("rank")).otherwise(pl.lit(0)).alias("_k2"),
    )
    best = (
        children.sort(["parent_id", "_k1", "_k2", "created_date", "message_id"], nulls_last=True)
        .group_by("parent_id", maintain_order=True)
        .first()
        .select("parent_id", "message_id")
    )
    # follow best children level by level from the roots
    frontier = nodes.filter(pl.col("depth") == 0).select(
        pl.col("message_id").alias("_cur"),
        pl.concat_list(pl.col("message_id")).alias("path"),
        pl.concat_list(pl.col("_i")).alias("_ip"),
    )
    best = best.join(nodes.select("message_id", "_i"), on="message_id", how="left")
    finished = []
    while frontier.height:
        step = frontier.join(best.rename({"parent_id": "_cur"}), on="_cur", how="left")
        done = step.filter(pl.col("message_id").is_null()).select("_cur", "path", "_ip")
        finished.append(done)
        frontier = step.filter(pl.col("message_id").is_not_null()).select(
            pl.col("message_id").alias("_cur"),
            pl.concat_list(pl.col("path"), pl.col("message_id")).alias("path"),
            pl.concat_list(pl.col("_ip"), pl.col("_i")).alias("_ip"),
        )
    walked = pl.concat(finished, how="vertical").rename({"_cur": "end_id"})
    roles = nodes.select(pl.col("message_id").alias("end_id"), pl.col("role").alias("_end_role"))
    walked = walked.join(roles, on="end_id", how="left")
    trim = pl.col("_end_role") == "prompter"
    trimmed = walked.with_columns(
        pl.when(trim).then(pl.col("path").list.head(pl.col("path").list.len() - 1)).otherwise(pl.col("path")),
        pl.when(trim).then(pl.col("_ip").list.head(pl.col("_ip").list.len() - 1)).otherwise(pl.col("_ip")),
    ).filter(pl.col("path").list.len() >= 2)
    ends = trimmed.select(pl.col("path").list.last().alias("end_id"), "path", "_ip")
    # why the others are left out: trimmed from the walked path, an unchosen sibling, or below one
    on_walk = walked.select(pl.col("path").explode().alias("message_id")).with_columns(pl.lit(True).alias("_walk"))
    parent_on_walk = on_walk.rename({"message_id": "parent_id", "_walk": "_pwalk"})
    why = (
        _why_unused(nodes)
        .join(nodes.select("message_id", "parent_id", "role", "rank"), on="message_id")
        .join(on_walk, on="message_id", how="left")
        .join(parent_on_walk, on="parent_id", how="left")
        .with_columns(
            pl.when(pl.col("_walk").fill_null(False))
            .then(pl.col("_why"))
            .when(pl.col("_pwalk").fill_null(False))
            .then(pl.lit("not_top_ranked"))
            .otherwise(pl.lit("below_unselected_reply"))
            .alias("_why"),
            pl.format("role={} rank={}", pl.col("role"), pl.col("rank").cast(pl.String).fill_null("null")).alias("_ev"),
        )
        .select("message_id", "_why", "_ev")
    )
    return ends, why
