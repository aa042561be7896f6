"""Split plans as a build makes them: each row's keys from its shard's message hashes
(:func:`chatdata.stages.split_keys`), then :func:`chatdata.splits.plan_splits` over all of them."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from chatdata.schema import CHAT_MESSAGE
from chatdata.splits import SplitPlan, plan_splits
from chatdata.stages import Shard, row_frame, split_keys


def _frame(rows: list[tuple[str, str, str | None, list[tuple[str, str]]]]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "dialogue_id": [r[0] for r in rows],
            "message_tree_id": [r[1] for r in rows],
            "source_split": [r[2] for r in rows],
            "messages": [[{"role": a, "content": b} for a, b in r[3]] for r in rows],
        },
        schema={
            "dialogue_id": pl.String,
            "message_tree_id": pl.String,
            "source_split": pl.String,
            "messages": pl.List(CHAT_MESSAGE),
        },
    )


def _plan(frame: pl.DataFrame, **options: Any) -> tuple[SplitPlan, pl.DataFrame]:
    """The plan of ``frame``'s dialogues, and its rows with their dialogue id (``split``, ``_reason``,
    ``_evidence``)."""
    shard = Shard(frame, oasst=False, text_columns=("messages",))
    keys = split_keys(row_frame(frame, shard, "dialogues"), shard, ("messages",))
    keys = keys.with_columns(pl.int_range(keys.height, dtype=pl.UInt64).alias("_row"))
    plan = plan_splits(keys, **options)
    return plan, plan.rows.join(keys.select("_row", "dialogue_id", "message_tree_id"), on="_row")


def _kept(rows: pl.DataFrame) -> dict[str, str]:
    return dict(rows.filter(pl.col("_reason").is_null()).select("dialogue_id", "split").iter_rows())


def test_source_split_is_honoured_and_trees_never_straddle() -> None:
    f = _frame(
        [
            ("d1", "t1", "train", [("user", "a"), ("assistant", "b")]),
            ("d2", "t1", "train", [("user", "a"), ("assistant", "c")]),
            ("d3", "t2", "validation", [("user", "x"), ("assistant", "y")]),
        ]
    )
    _, rows = _plan(f)
    assert _kept(rows) == {"d1": "train_sft", "d2": "train_sft", "d3": "test_sft"}


def test_hash_split_is_deterministic_and_by_tree() -> None:
    rows = [
        (f"d{i}-{j}", f"tree-{i}", None, [("user", f"q{i}"), ("assistant", f"a{j}")])
        for i in range(400)
        for j in range(2)
    ]
    f = _frame(rows)
    _, a = _plan(f, test_fraction=0.2)
    _, b = _plan(f.sample(fraction=1.0, shuffle=True, seed=1), test_fraction=0.2)
    assert _kept(a) == _kept(b) and len(_kept(a)) == 800
    per_tree = a.group_by("message_tree_id").agg(pl.col("split").n_unique())
    assert per_tree["split"].max() == 1
    share = a.filter(pl.col("split") == "test_sft")["message_tree_id"].n_unique() / 400
    assert 0.12 < share < 0.28
    _, c = _plan(f, test_fraction=0.2, seed="other")
    assert _kept(c) != _kept(a)


@pytest.mark.parametrize("policy", ["move", "drop"])
def test_cross_split_prompt_leak(policy: str) -> None:
    f = _frame(
        [
            ("d1", "t1", "train", [("user", "What is  Rust?"), ("assistant", "a")]),
            ("d2", "t2", "validation", [("user", "what is rust?\n"), ("assistant", "b")]),
            ("d3", "t2", "validation", [("user", "what is rust?\n"), ("assistant", "c")]),
            ("d4", "t3", "validation", [("user", "unique"), ("assistant", "d")]),
        ]
    )
    plan, rows = _plan(f, leak_policy=policy)
    kept = _kept(rows)
    assert [d for d, split in kept.items() if split == "test_sft"] == ["d4"]
    if policy == "move":
        assert plan.moved == 2 and rows["_reason"].null_count() == rows.height
        assert {kept["d2"], kept["d3"]} == {"train_sft"}
    else:
        assert plan.counts == {"cross_split_prompt": 2}
        assert sorted(rows.filter(pl.col("_reason") == "cross_split_prompt")["dialogue_id"]) == ["d2", "d3"]


def test_exact_duplicates_removed_within_split_only() -> None:
    same = [("user", "hi"), ("assistant", "hello")]
    f = _frame(
        [
            ("d1", "t1", "train", same),
            ("d2", "t2", "train", same),
            ("d3", "t3", "validation", [("user", "other"), ("assistant", "x")]),
        ]
    )
    plan, rows = _plan(f)
    assert _kept(rows) == {"d1": "train_sft", "d3": "test_sft"}
    assert plan.counts == {"duplicate_dialogue": 1}
    dropped = rows.filter(pl.col("_reason").is_not_null())
    assert dropped.select("dialogue_id", "_reason", "_evidence").rows() == [
        ("d2", "duplicate_dialogue", "same as d1 in train_sft")
    ]
