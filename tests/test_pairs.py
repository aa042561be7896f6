from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest
from oasst_builders import m, write_jsonl
from reads import read

from chatdata.filters.specs import build_filters, load_specs
from chatdata.pairs import build_pairs
from chatdata.structure import validate_structure
from chatdata.trees import gate


def _gated(tmp_path: Path, records: list) -> pl.DataFrame:
    r = read(write_jsonl(tmp_path / "x.messages.jsonl", records), "oasst")
    return gate(validate_structure(r.messages).messages, build_filters(load_specs(["gates"]))).frame


TREE = [
    m("r", None, "prompter", text="Q"),
    m("a0", "r", "assistant", text="best", rank=0),
    m("a1", "r", "assistant", text="deleted one", rank=1, deleted=True),  # leaves a gap: 0, 2, 3
    m("a2", "r", "assistant", text="middle", rank=2),
    m("a3", "r", "assistant", text="worst", rank=3),
    m("u", "r", "assistant", text="unranked", rank=None),
    m("p", "a0", "prompter", text="Q2"),
    m("b0", "p", "assistant", text="only ranked reply", rank=0),
    m("q", "a2", "prompter", text="Q3"),
    m("c0", "q", "assistant", text="same", rank=0),
    m("c1", "q", "assistant", text="same", rank=1),
]


def test_best_vs_worst_with_gap_and_nulls(tmp_path: Path) -> None:
    res = build_pairs(_gated(tmp_path, TREE), "best_vs_worst")
    assert res.frame.height == 1
    row = res.frame.row(0, named=True)
    assert row["prompt"] == "Q"
    assert row["prompt_id"] == hashlib.sha256(b"Q").hexdigest()
    assert row["chosen"] == [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "best"}]
    assert row["rejected"][-1]["content"] == "worst"
    assert row["messages"] == row["chosen"]
    assert (row["score_chosen"], row["score_rejected"]) == (10.0, 0.0)
    assert (row["rank_chosen"], row["rank_rejected"]) == (0, 3)
    reasons = {r["message_id"]: r["reason"] for r in res.rejects.iter_rows(named=True)}
    assert reasons["u"] == "unranked_reply"
    assert reasons["a2"] == "not_best_or_worst"
    assert reasons["b0"] == "single_ranked_reply"
    assert reasons["c0"] == reasons["c1"] == "identical_replies"
    # everything is accounted for
    used = set(res.frame["message_ids"].explode().to_list())
    assert len(used) + res.rejects.height == 10  # 11 messages minus the deleted one (gated earlier)


def test_all_pairs_orders_by_rank_and_scores_by_position(tmp_path: Path) -> None:
    res = build_pairs(_gated(tmp_path, TREE), "all_pairs")
    got = sorted(
        (r["chosen"][-1]["content"], r["rejected"][-1]["content"], r["score_chosen"], r["score_rejected"])
        for r in res.frame.iter_rows(named=True)
    )
    assert got == [("best", "middle", 10.0, 5.0), ("best", "worst", 10.0, 0.0), ("middle", "worst", 5.0, 0.0)]
    assert all(r["rank_chosen"] < r["rank_rejected"] for r in res.frame.iter_rows(named=True))


def test_multi_turn_prefix(tmp_path: Path) -> None:
    records = [
        m("r", None, "prompter", text="Q"),
        m("a", "r", "assistant", text="A", rank=0),
        m("p", "a", "prompter", text="Q2"),
        m("x", "p", "assistant", text="good", rank=0),
        m("y", "p", "assistant", text="bad", rank=1),
    ]
    res = build_pairs(_gated(tmp_path, records))
    row = res.frame.row(0, named=True)
    assert [t["content"] for t in row["chosen"]] == ["Q", "A", "Q2", "good"]
    assert row["prompt"] == "Q2"
    assert row["message_ids"] == ["r", "a", "p", "x", "y"]


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown pair mode"):
        build_pairs(pl.DataFrame(), "first_and_last")  # type: ignore[arg-type]


def test_real_data_pairs(real_trees: Path) -> None:
    r = read(real_trees, "oasst")
    g = gate(validate_structure(r.messages).messages, build_filters(load_specs(["gates"])))
    res = build_pairs(g.frame)
    assert res.frame.height > 100
    assert (res.frame["score_chosen"] > res.frame["score_rejected"]).all()
    assert (
        res.frame["chosen"].list.last().struct.field("content")
        != res.frame["rejected"].list.last().struct.field("content")
    ).all()
