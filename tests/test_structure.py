from __future__ import annotations

from pathlib import Path

import polars as pl
from oasst_builders import m, write_jsonl
from reads import read

from chatdata.structure import validate_structure


def _run(tmp_path: Path, records: list) -> tuple[pl.DataFrame, dict[str, tuple[str, str]]]:
    r = read(write_jsonl(tmp_path / "x.messages.jsonl", records), "oasst")
    s = validate_structure(r.messages, r.rejects["message_id"].drop_nulls())
    rej = {row["message_id"]: (row["reason"], row["evidence"]) for row in s.rejects.iter_rows(named=True)}
    assert s.messages.height + s.rejects.height == r.messages.height  # nothing lost
    return s.messages, rej


def test_clean_tree_gets_depth_and_tree_id(tmp_path: Path) -> None:
    good, rej = _run(
        tmp_path,
        [
            m("r", None, "prompter"),
            m("a", "r", "assistant"),
            m("p", "a", "prompter"),
            m("a2", "p", "assistant"),
        ],
    )
    assert rej == {}
    assert dict(zip(good["message_id"], good["depth"], strict=True)) == {"r": 0, "a": 1, "p": 2, "a2": 3}
    assert good["message_tree_id"].unique().to_list() == ["r"]


def test_every_structural_fault_is_a_reasoned_reject(tmp_path: Path) -> None:
    records = [
        m("r", None, "prompter"),
        m("a", "r", "assistant"),
        m("dup", "r", "assistant", text="first"),
        m("dup", "r", "assistant", text="second"),
        m("orph", "nowhere", "assistant"),
        m("orph_child", "orph", "prompter"),
        m("c1", "c2", "prompter"),
        m("c2", "c1", "assistant"),
        m("self", "self", "prompter"),
        m("ra", None, "assistant"),
        m("ra_child", "ra", "prompter"),
        m("pp", "r", "prompter"),
        m("pp_child", "pp", "assistant"),
        m("empty", "a", "prompter", text="   \n"),
        m("under_empty", "empty", "assistant"),
        m("mismatch", "a", "prompter", message_tree_id="other"),
        m("badtype", "a", "prompter", rank="x"),
        m("under_badtype", "badtype", "assistant"),
        m("weird_role", "a", "moderator"),
    ]
    good, rej = _run(tmp_path, records)
    assert sorted(good["message_id"].to_list()) == ["a", "dup", "r"]
    assert good.filter(pl.col("message_id") == "dup")["text"][0] == "first"
    expected = {
        "dup": "duplicate_message_id",
        "orph": "orphan",
        "orph_child": "ancestor_rejected",
        "c1": "cycle",
        "c2": "cycle",
        "self": "cycle",
        "ra": "root_not_prompter",
        "ra_child": "ancestor_rejected",
        "pp": "role_not_alternating",
        "pp_child": "ancestor_rejected",
        "empty": "empty_text",
        "under_empty": "ancestor_rejected",
        "mismatch": "tree_id_mismatch",
        "under_badtype": "parent_rejected",
        "weird_role": "invalid_role",
    }
    assert {k: v[0] for k, v in rej.items()} == expected
    assert rej["under_empty"][1] == "empty: empty_text"
    assert rej["orph_child"][1] == "orph: orphan"
    assert "different text" in rej["dup"][1]


def test_real_data_structure(real_trees: Path) -> None:
    r = read(real_trees, "oasst")
    s = validate_structure(r.messages)
    assert s.rejects.height == 0
    assert s.messages.filter(pl.col("depth") == 0).height == 100
