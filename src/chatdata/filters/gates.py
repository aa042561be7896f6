"""Quality gates on single messages: tree state, review, deleted, synthetic, detoxify.

Each gate marks a message; the tree stage drops the marked message together with its subtree.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from chatdata.filters.base import Filter, register

_IS_ROOT = pl.col("parent_id").is_null()
_NULL = pl.lit(None, dtype=pl.String)


@register
class TreeStateGate(Filter):
    """Keep trees whose state is allowed (judged on the root; the subtree follows)."""

    kind = "tree_state"
    reads = ("parent_id", "tree_state")
    defaults: ClassVar[dict[str, Any]] = {"allowed": ["ready_for_export"]}

    def decide(self) -> tuple[pl.Expr, pl.Expr]:
        allowed = list(self.settings["allowed"])
        bad = _IS_ROOT & ~pl.col("tree_state").fill_null("<null>").is_in(allowed)
        return (
            pl.when(bad).then(pl.lit("tree_state_not_allowed")).otherwise(_NULL),
            pl.format("tree_state={}", pl.col("tree_state").fill_null("null")),
        )


@register
class RootReviewGate(Filter):
    """The root prompt must have passed review (null counts as spam, as Open-Assistant's tools do)."""

    kind = "root_review"
    reads = ("parent_id", "review_result")
    defaults: ClassVar[dict[str, Any]] = {"null_is_spam": True}

    def decide(self) -> tuple[pl.Expr, pl.Expr]:
        rr = pl.col("review_result")
        null_bad = pl.lit(bool(self.settings["null_is_spam"]))
        reason = (
            pl.when(_IS_ROOT & (rr == False))  # noqa: E712
            .then(pl.lit("root_review_rejected"))
            .when(_IS_ROOT & rr.is_null() & null_bad)
            .then(pl.lit("root_review_undecided"))
            .otherwise(_NULL)
        )
        return reason, pl.format("review_result={}", rr.cast(pl.String).fill_null("null"))


@register
class ReviewGate(Filter):
    """Drop messages whose review failed (false) or never concluded (null, counted as spam by default)."""

    kind = "review"
    reads = ("review_result",)
    defaults: ClassVar[dict[str, Any]] = {"null_is_spam": True}

    def decide(self) -> tuple[pl.Expr, pl.Expr]:
        rr = pl.col("review_result")
        null_bad = pl.lit(bool(self.settings["null_is_spam"]))
        reason = (
            pl.when(rr == False)  # noqa: E712
            .then(pl.lit("review_rejected"))
            .when(rr.is_null() & null_bad)
            .then(pl.lit("review_undecided"))
            .otherwise(_NULL)
        )
        return reason, pl.format("review_result={}", rr.cast(pl.String).fill_null("null"))


@register
class DeletedGate(Filter):
    """Drop deleted messages (they can have children: the subtree goes too)."""

    kind = "deleted"
    reads = ("deleted",)

    def decide(self) -> tuple[pl.Expr, pl.Expr]:
        return (
            pl.when(pl.col("deleted").fill_null(False)).then(pl.lit("deleted")).otherwise(_NULL),
            pl.lit("deleted=true"),
        )


@register
class SyntheticGate(Filter):
    """Drop model-written messages."""

    kind = "synthetic"
    reads = ("synthetic", "model_name")

    def decide(self) -> tuple[pl.Expr, pl.Expr]:
        return (
            pl.when(pl.col("synthetic").fill_null(False)).then(pl.lit("synthetic")).otherwise(_NULL),
            pl.format("model_name={}", pl.col("model_name").fill_null("null")),
        )


@register
class DetoxifyGate(Filter):
    """Drop messages whose shipped detoxify score exceeds a threshold (oasst ships the scores)."""

    kind = "detoxify"
    reads = ("detoxify",)
    defaults: ClassVar[dict[str, Any]] = {"field": "toxicity", "max_score": 0.9}

    def decide(self) -> tuple[pl.Expr, pl.Expr]:
        field = str(self.settings["field"])
        score = pl.col("detoxify").struct.field(field)
        return (
            pl.when(score > float(self.settings["max_score"]))
            .then(pl.lit(f"{field}_above_threshold"))
            .otherwise(_NULL),
            pl.format(f"{field}={{}}", score.round(4).cast(pl.String).fill_null("null")),
        )
