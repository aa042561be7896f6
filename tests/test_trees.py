from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from oasst_builders import m, write_jsonl
from reads import read

from chatdata.filters.specs import build_filters, load_specs
from chatdata.structure import validate_structure
from chatdata.trees import flatten, gate


def _tree(tmp_path: Path, records: list) -> pl.DataFrame:
    r = read(write_jsonl(tmp_path / "x.messages.jsonl", records), "oasst")
    s = validate_structure(r.messages)
    assert s.rejects.is_empty()
    return s.messages


def _texts(dialogues: pl.DataFrame) -> list[list[str]]:
    return [[t["content"] for t in d] for d in dialogues["messages"].to_list()]


GATE_TREE = [
    m("r", None, "prompter", text="Q"),
    m("a0", "r", "assistant", text="A0", rank=0),
    m("a1", "r", "assistant", text="A1", rank=1, deleted=True),
    m("a1p", "a1", "prompter", text="under deleted"),
    m("a2", "r", "assistant", text="A2", rank=2, review_result=None),
    m("a3", "r", "assistant", text="A3", rank=3, synthetic=True, model_name="bot"),
    m("a4", "r", "assistant", text="A4", review_result=False),
    m("p", "a0", "prompter", text="Q2"),
    m("b", "p", "assistant", text="B"),
]


def test_gates_drop_subtrees_with_reasons(tmp_path: Path) -> None:
    tree = _tree(tmp_path, GATE_TREE)
    g = gate(tree, build_filters(load_specs(["gates"])))
    assert sorted(g.frame["message_id"].to_list()) == ["a0", "b", "p", "r"]
    got = {row["message_id"]: (row["filter"], row["reason"]) for row in g.rejects.iter_rows(named=True)}
    assert got == {
        "a1": ("deleted", "deleted"),
        "a1p": (None, "ancestor_rejected"),
        "a2": ("spam", "review_undecided"),
        "a3": ("synthetic", "synthetic"),
        "a4": ("spam", "review_rejected"),
    }
    assert g.counts == {
        "ancestor_rejected": 1,
        "deleted": 1,
        "spam: review_rejected": 1,
        "spam: review_undecided": 1,
        "synthetic": 1,
    }


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("tree_state", "growing", "tree_state_not_allowed"),
        ("review_result", None, "root_review_undecided"),
        ("review_result", False, "root_review_rejected"),
    ],
)
def test_root_gates_drop_whole_tree(tmp_path: Path, field: str, value: object, reason: str) -> None:
    tree = _tree(tmp_path, [m("r", None, "prompter", **{field: value}), m("a", "r", "assistant")])
    g = gate(tree, build_filters(load_specs(["gates"])))
    assert g.frame.is_empty()
    assert reason in g.rejects["reason"].to_list()
    assert g.rejects.height == 2


THREAD_TREE = [
    m("r", None, "prompter", text="Q"),
    m("a", "r", "assistant", text="A", rank=0),
    m("b", "r", "assistant", text="B", rank=1),
    m("ap1", "a", "prompter", text="user leaf 1"),
    m("ap2", "a", "prompter", text="user leaf 2"),
    m("bp", "b", "prompter", text="Q2"),
    m("bpa", "bp", "assistant", text="B2"),
]


def test_threads_end_on_assistant(tmp_path: Path) -> None:
    f = flatten(_tree(tmp_path, THREAD_TREE), "threads")
    assert sorted(_texts(f.frame)) == [["Q", "A"], ["Q", "B", "Q2", "B2"]]
    assert [d["role"] for d in f.frame["messages"][1]] == ["user", "assistant", "user", "assistant"]
    assert f.counts == {"trailing_user_turn": 2}


def test_threads_keep_user_ended(tmp_path: Path) -> None:
    f = flatten(_tree(tmp_path, THREAD_TREE), "threads", keep_user_ended=True)
    assert sorted(_texts(f.frame)) == [
        ["Q", "A", "user leaf 1"],
        ["Q", "A", "user leaf 2"],
        ["Q", "B", "Q2", "B2"],
    ]
    assert f.rejects.is_empty()


def test_lone_prompt_gives_no_dialogue(tmp_path: Path) -> None:
    f = flatten(_tree(tmp_path, [m("r", None, "prompter")]), "threads")
    assert f.frame.is_empty()
    assert f.rejects["reason"].to_list() == ["no_assistant_reply"]


def test_top_ranked_follows_best_surviving_rank(tmp_path: Path) -> None:
    tree = _tree(tmp_path, [*GATE_TREE, m("a5", "r", "assistant", text="A5", rank=None)])
    g = gate(tree, build_filters(load_specs(["gates"])))
    f = flatten(g.frame, "top_ranked")
    assert _texts(f.frame) == [["Q", "A0", "Q2", "B"]]


def test_top_ranked_gap_null_and_tie_rules(tmp_path: Path) -> None:
    records = [
        m("r", None, "prompter", text="Q"),
        # rank 0 was deleted before export: the best surviving is rank 2 (a gap), unranked replies lose
        m("u", "r", "assistant", text="unranked", rank=None, created_date="2023-01-01T00:00:00+00:00"),
        m("x2", "r", "assistant", text="rank2", rank=2),
        m("x3", "r", "assistant", text="rank3", rank=3),
        # below x2: a user leaf (created first) and a user reply that continues; the continuing one is preferred
        m("leaf", "x2", "prompter", text="dead end", created_date="2023-01-01T00:00:00+00:00"),
        m("cont", "x2", "prompter", text="Q2", created_date="2023-01-02T00:00:00+00:00"),
        # all unranked: the earliest wins
        m("late", "cont", "assistant", text="late", created_date="2023-01-05T00:00:00+00:00"),
        m("early", "cont", "assistant", text="early", created_date="2023-01-03T00:00:00+00:00"),
    ]
    f = flatten(_tree(tmp_path, records), "top_ranked")
    assert _texts(f.frame) == [["Q", "rank2", "Q2", "early"]]
    reasons = {row["message_id"]: row["reason"] for row in f.rejects.iter_rows(named=True)}
    assert reasons == {
        "u": "not_top_ranked",
        "x3": "not_top_ranked",
        "leaf": "not_top_ranked",
        "late": "not_top_ranked",
    }


def test_top_ranked_trims_trailing_user_turn(tmp_path: Path) -> None:
    records = [
        m("r", None, "prompter", text="Q"),
        m("a", "r", "assistant", text="A", rank=0),
        m("p", "a", "prompter", text="follow-up without answer"),
    ]
    f = flatten(_tree(tmp_path, records), "top_ranked")
    assert _texts(f.frame) == [["Q", "A"]]
    assert f.rejects["reason"].to_list() == ["trailing_user_turn"]


def test_real_data_flatten(real_trees: Path) -> None:
    r = read(real_trees, "oasst")
    tree = validate_structure(r.messages).messages
    g = gate(tree, build_filters(load_specs(["gates"])))
    assert g.counts == {"synthetic": 22}
    for mode in ("threads", "top_ranked"):
        f = flatten(g.frame, mode)
        assert f.frame.height > 0
        # every message is in a dialogue or rejected with a reason
        used = f.frame["message_ids"].explode().n_unique()
        assert used + f.rejects.height == g.frame.height
        roles = f.frame["messages"].list.eval(pl.element().struct.field("role"))
        assert all(r[-1] == "assistant" and r[0] == "user" for r in roles.to_list())
    top = flatten(g.frame, "top_ranked").frame
    assert top["message_tree_id"].n_unique() == top.height  # one path per tree
