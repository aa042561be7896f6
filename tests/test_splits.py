from __future__ import annotations

import polars as pl
import pytest

from chatdata.schema import CHAT_MESSAGE
from chatdata.splits import assign_splits


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


def test_source_split_is_honoured_and_trees_never_straddle() -> None:
    f = _frame(
        [
            ("d1", "t1", "train", [("user", "a"), ("assistant", "b")]),
            ("d2", "t1", "train", [("user", "a"), ("assistant", "c")]),
            ("d3", "t2", "validation", [("user", "x"), ("assistant", "y")]),
        ]
    )
    r = assign_splits(f)
    assert dict(zip(r.frame["dialogue_id"], r.frame["split"], strict=True)) == {
        "d1": "train_sft",
        "d2": "train_sft",
        "d3": "test_sft",
    }


def test_hash_split_is_deterministic_and_by_tree() -> None:
    rows = [
        (f"d{i}-{j}", f"tree-{i}", None, [("user", f"q{i}"), ("assistant", f"a{j}")])
        for i in range(400)
        for j in range(2)
    ]
    f = _frame(rows)
    a = assign_splits(f, test_fraction=0.2)
    b = assign_splits(f.sample(fraction=1.0, shuffle=True, seed=1), test_fraction=0.2)
    assert a.frame.equals(b.frame)
    per_tree = a.frame.group_by("message_tree_id").agg(pl.col("split").n_unique())
    assert per_tree["split"].max() == 1
    share = a.frame.filter(pl.col("split") == "test_sft")["message_tree_id"].n_unique() / 400
    assert 0.12 < share < 0.28
    c = assign_splits(f, test_fraction=0.2, seed="other")
    assert not c.frame["split"].equals(a.frame["split"])


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
    r = assign_splits(f, leak_policy=policy)  # type: ignore[arg-type]
    test_prompts = r.frame.filter(pl.col("split") == "test_sft")["dialogue_id"].to_list()
    assert test_prompts == ["d4"]
    if policy == "move":
        assert r.moved == 2 and r.rejects.is_empty()
        assert r.frame.filter(pl.col("message_tree_id") == "t2")["split"].unique().to_list() == ["train_sft"]
    else:
        assert r.counts == {"cross_split_prompt": 2}
        assert sorted(r.rejects["message_id"].to_list()) == ["d2", "d3"]


def test_exact_duplicates_removed_within_split_only() -> None:
    same = [("user", "hi"), ("assistant", "hello")]
    f = _frame(
        [
            ("d1", "t1", "train", same),
            ("d2", "t2", "train", same),
            ("d3", "t3", "validation", [("user", "other"), ("assistant", "x")]),
        ]
    )
    r = assign_splits(f)
    assert r.frame["dialogue_id"].to_list() == ["d3", "d1"]
    assert r.counts == {"duplicate_dialogue": 1}
    assert r.rejects["evidence"][0] == "same as d1 in train_sft"
