from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from oasst_builders import m, write_jsonl

from chatdata.errors import InputError
from chatdata.ingest import read_path, split_from_name
from chatdata.schema import HUB_SCHEMA, MESSAGE_SCHEMA


def test_real_trees_file(real_trees: Path) -> None:
    r = read_path(real_trees)
    assert r.messages.height == 1167
    assert r.rejects.height == 0
    assert r.messages["synthetic"].sum() == 22
    assert r.messages["rank"].is_not_null().sum() == 641
    assert r.messages.schema == pl.Schema(MESSAGE_SCHEMA)
    # nesting defines parents; tree id and state come from the outer object
    assert r.messages.filter(pl.col("parent_id").is_null()).height == 100
    assert r.messages["tree_state"].unique().to_list() == ["ready_for_export"]


def test_messages_jsonl_dict_labels_and_gz(tmp_path: Path) -> None:
    recs = [
        m(
            "r",
            None,
            "prompter",
            emojis={"+1": 3, "_skip_reply": 1},
            labels={"spam": {"value": 0.0, "count": 3}},
        ),
        m("a", "r", "assistant", rank=0, detoxify={"toxicity": 0.5}),
    ]
    raw = b"\n".join(orjson.dumps(x) for x in recs)
    p = tmp_path / "x.messages.jsonl.gz"
    p.write_bytes(gzip.compress(raw))
    r = read_path(p)
    assert r.messages.height == 2 and r.rejects.height == 0
    row = r.messages.row(0, named=True)
    assert row["emojis"] == {"name": ["+1", "_skip_reply"], "count": [3, 1]}
    assert row["labels"] == {"name": ["spam"], "value": [0.0], "count": [3]}
    assert r.messages.row(1, named=True)["detoxify"]["toxicity"] == 0.5


def test_bad_records_are_rejected_with_reasons(tmp_path: Path) -> None:
    p = write_jsonl(
        tmp_path / "bad.messages.jsonl",
        [
            m("r", None, "prompter"),
            "{not json",
            "[1, 2]",
            {"message_id": "nt", "parent_id": "r", "role": "assistant"},
            {"parent_id": "r", "role": "assistant", "text": "no id"},
            m("wt", "r", "assistant", rank="two"),
            m("wb", "r", "assistant", deleted="no"),
        ],
    )
    r = read_path(p)
    assert r.messages["message_id"].to_list() == ["r"]
    got = {(x["reason"], x["source_line"]) for x in r.rejects.iter_rows(named=True)}
    assert got == {
        ("malformed_json", 2),
        ("not_an_object", 3),
        ("missing_field", 4),
        ("missing_field", 5),
        ("wrong_type", 6),
        ("wrong_type", 7),
    }
    ev = dict(zip(r.rejects["source_line"].to_list(), r.rejects["evidence"].to_list(), strict=True))
    assert "text" in ev[4] and "message_id" in ev[5]
    assert "rank: expected integer" in ev[6] and "deleted: expected boolean" in ev[7]
    assert r.rejects.filter(pl.col("source_line") == 2)["payload"][0] == "{not json"


def test_trees_jsonl_missing_keys_and_bad_nodes(tmp_path: Path) -> None:
    tree = {
        "message_tree_id": "t1",
        "tree_state": "ready_for_export",
        "prompt": {
            "message_id": "t1",
            "text": "hi",
            "role": "prompter",
            "lang": "en",
            "replies": [
                {
                    "message_id": "a1",
                    "text": "hello",
                    "role": "assistant",
                    "rank": 0,
                    "replies": [{"message_id": "p2", "text": "thanks", "role": "prompter"}],
                },
                {
                    "text": "no id",
                    "role": "assistant",
                    "replies": [{"message_id": "x", "text": "below", "role": "prompter"}],
                },
                "not a node",
            ],
        },
    }
    p = write_jsonl(tmp_path / "t.trees.jsonl", [tree, '{"message_tree_id": "t2"}'])
    r = read_path(p)
    assert sorted(r.messages["message_id"].to_list()) == ["a1", "p2", "t1", "x"]
    assert r.messages.filter(pl.col("message_id") == "a1")["parent_id"][0] == "t1"
    assert r.messages["message_tree_id"].unique().to_list() == ["t1"]
    reasons = sorted(r.rejects["reason"].to_list())
    assert reasons == ["missing_field", "missing_field", "not_an_object"]
    # the node without an id is named so its reply is reported below it, not as an orphan
    no_id = r.rejects.filter(pl.col("unit") == "message", pl.col("reason") == "missing_field")
    assert no_id["message_id"][0].startswith("<no id:")
    assert r.messages.filter(pl.col("message_id") == "x")["parent_id"][0] == no_id["message_id"][0]


def _hub_table(rows: list[dict]) -> pa.Table:
    cols = {f.name: [r.get(f.name) for r in rows] for f in HUB_SCHEMA}
    return pa.table(cols, schema=HUB_SCHEMA)


def test_hub_parquet_folder_with_splits(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    base = {
        "user_id": "u",
        "review_count": 3,
        "review_result": True,
        "deleted": False,
        "synthetic": False,
        "tree_state": "ready_for_export",
        "lang": "en",
    }
    pq.write_table(
        _hub_table(
            [
                {
                    **base,
                    "message_id": "r",
                    "message_tree_id": "r",
                    "role": "prompter",
                    "text": "q",
                    "emojis": {"name": ["+1"], "count": [2]},
                }
            ]
        ),
        tmp_path / "data" / "train-00000-of-00001.parquet",
    )
    pq.write_table(
        _hub_table([{**base, "message_id": "s", "message_tree_id": "s", "role": "prompter", "text": "q2"}]),
        tmp_path / "data" / "validation-00000-of-00001.parquet",
    )
    r = read_path(tmp_path)
    assert dict(zip(r.messages["message_id"], r.messages["source_split"], strict=True)) == {
        "r": "train",
        "s": "validation",
    }
    assert "user_id" not in r.messages.columns
    assert r.messages["emojis"][0] == {"name": ["+1"], "count": [2]}
    assert [f.path for f in r.files] == [
        "data/train-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
    ]


def test_parquet_wrong_types_are_rejected(tmp_path: Path) -> None:
    t = pa.table(
        {
            "message_id": ["a", "b", None],
            "parent_id": [None, "a", None],
            "role": ["prompter", "assistant", "prompter"],
            "text": ["x", "y", "z"],
            "rank": ["0", "two", None],
        }
    )
    pq.write_table(t, tmp_path / "m.parquet")
    r = read_path(tmp_path / "m.parquet")
    assert r.messages["message_id"].to_list() == ["a"]
    assert r.messages["rank"].to_list() == [0]
    assert sorted(zip(r.rejects["reason"], r.rejects["evidence"], strict=True)) == [
        ("missing_field", "message_id"),
        ("wrong_type", "rank"),
    ]


def test_unreadable_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_path(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no oasst files"):
        read_path(tmp_path / "empty")
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match=r"broken\.parquet: cannot read Parquet"):
        read_path(bad)
    gz = tmp_path / "x.messages.jsonl.gz"
    gz.write_bytes(b"not gzip")
    with pytest.raises(InputError, match=r"x\.messages\.jsonl\.gz"):
        read_path(gz)
    t = pa.table({"message_id": ["a"], "role": ["prompter"]})
    pq.write_table(t, tmp_path / "notext.parquet")
    with pytest.raises(InputError, match=r"missing required column\(s\) \['text'\]"):
        read_path(tmp_path / "notext.parquet")


def test_split_from_name() -> None:
    assert split_from_name(Path("train-00000-of-00001-abc.parquet")) == "train"
    assert split_from_name(Path("validation-00000-of-00001.parquet")) == "validation"
    assert split_from_name(Path("2023-04-12_oasst_ready.messages.jsonl.gz")) is None


def test_parquet_cells_polars_cannot_cast_become_wrong_type_rejects(tmp_path: Path) -> None:
    """A string where a boolean belongs converts only from "true"/"false"; a column of an impossible type (a
    struct where text belongs) rejects every row that has a value, never a traceback."""
    base = {"parent_id": None, "role": "prompter", "lang": "en", "synthetic": "false", "review_result": "TRUE"}
    rows = [
        {**base, "message_id": "a", "message_tree_id": "a", "text": "hello there", "deleted": "no"},
        {**base, "message_id": "b", "message_tree_id": "b", "text": "hi again", "deleted": " False "},
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train-00000-of-00001.parquet")
    r = read_path(tmp_path)
    assert r.messages.select("message_id", "deleted", "review_result").rows() == [("b", False, True)]
    assert r.rejects.select("message_id", "reason", "evidence").rows() == [("a", "wrong_type", "deleted")]
    odd = [{**rows[0], "deleted": False, "text": {"body": "x"}}]
    pq.write_table(pa.Table.from_pylist(odd), tmp_path / "train-00000-of-00001.parquet")
    r = read_path(tmp_path)
    assert r.messages.height == 0
    assert r.rejects.select("reason", "evidence").rows() == [("wrong_type", "text")]
