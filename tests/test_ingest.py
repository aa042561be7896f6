from __future__ import annotations

import gzip
import json
from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from oasst_builders import m, write_jsonl
from reads import read

from chatdata.errors import ChatdataError, InputError
from chatdata.resources import sample_dir
from chatdata.schema import HUB_SCHEMA, MESSAGE_SCHEMA
from chatdata.sources.detect import detect
from chatdata.sources.read import scan, split_from_name
from chatdata.synth.sample import BAD_JSONL_NAME


def test_real_trees_file(real_trees: Path) -> None:
    r = read(real_trees, "oasst")
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
    r = read(p, "oasst")
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
    r = read(p, "oasst")
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
    r = read(p, "oasst")
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
    r = read(tmp_path, "oasst")
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
    r = read(tmp_path / "m.parquet", "oasst")
    assert r.messages["message_id"].to_list() == ["a"]
    assert r.messages["rank"].to_list() == [0]
    assert sorted(zip(r.rejects["reason"], r.rejects["evidence"], strict=True)) == [
        ("missing_field", "message_id"),
        ("wrong_type", "rank"),
    ]


def test_unreadable_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read(tmp_path / "missing", "oasst")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no oasst files"):
        read(tmp_path / "empty", "oasst")
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match=r"broken\.parquet: cannot read Parquet"):
        read(bad, "oasst")
    gz = tmp_path / "x.messages.jsonl.gz"
    gz.write_bytes(b"not gzip")
    with pytest.raises(InputError, match=r"x\.messages\.jsonl\.gz"):
        read(gz, "oasst")
    t = pa.table({"message_id": ["a"], "role": ["prompter"]})
    pq.write_table(t, tmp_path / "notext.parquet")
    with pytest.raises(InputError, match=r"missing required column\(s\) \['text'\]"):
        read(tmp_path / "notext.parquet", "oasst")


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
    r = read(tmp_path, "oasst")
    assert r.messages.select("message_id", "deleted", "review_result").rows() == [("b", False, True)]
    assert r.rejects.select("message_id", "reason", "evidence").rows() == [("a", "wrong_type", "deleted")]
    odd = [{**rows[0], "deleted": False, "text": {"body": "x"}}]
    pq.write_table(pa.Table.from_pylist(odd), tmp_path / "train-00000-of-00001.parquet")
    r = read(tmp_path, "oasst")
    assert r.messages.height == 0
    assert r.rejects.select("reason", "evidence").rows() == [("wrong_type", "text")]


# --- files are read by what they hold


def _tree(tid: str) -> dict:
    return {
        "message_tree_id": tid,
        "tree_state": "ready_for_export",
        "prompt": {
            "message_id": tid,
            "text": "hi",
            "role": "prompter",
            "lang": "en",
            "replies": [{"message_id": f"{tid}-a", "text": "hello", "role": "assistant", "rank": 0}],
        },
    }


def test_renamed_trees_export_is_read_as_trees(real_trees: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "oasst2_filtered.jsonl"
    renamed.write_bytes(real_trees.read_bytes())
    (tmp_path / "oasst2_filtered.jsonl.gz").write_bytes(gzip.compress(real_trees.read_bytes()))
    for name in ("oasst2_filtered.jsonl", "oasst2_filtered.jsonl.gz"):
        r = read(tmp_path / name, "oasst")
        assert (r.messages.height, r.rejects.height) == (1167, 0), name
        assert [(f.path, f.format) for f in r.files] == [(name, "oasst_trees")]
        assert detect(tmp_path / name) == "oasst_trees"
    assert read(tmp_path, "oasst").messages.height == 2 * 1167


def test_folder_lists_the_files_it_skips_with_reasons(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "export.jsonl", [_tree("t1"), _tree("t2")])
    (tmp_path / "notes.txt").write_text("not data\n")
    write_jsonl(tmp_path / "random.jsonl", [{"foo": 1, "bar": [2]}])
    (tmp_path / "empty.jsonl").write_bytes(b"")
    write_jsonl(tmp_path / "broken.jsonl", ["{oops", "also not json"])
    write_jsonl(tmp_path / "dolly.jsonl", [{"instruction": "q", "context": "", "response": "a", "category": "qa"}])
    (tmp_path / ".hidden.jsonl").write_bytes(orjson.dumps(_tree("t3")))
    files, skipped = scan(tmp_path, "oasst")
    assert [(f.name, f.format) for f in files] == [("export.jsonl", "oasst_trees")]
    reasons = {s.path: s.reason for s in skipped}
    assert set(reasons) == {"notes.txt", "random.jsonl", "empty.jsonl", "broken.jsonl", "dolly.jsonl"}
    assert reasons["notes.txt"].startswith("unknown extension (.txt)")
    assert reasons["random.jsonl"] == "unrecognised content: records with keys [bar, foo]"
    assert reasons["empty.jsonl"] == "empty file"
    assert reasons["broken.jsonl"] == "unrecognised content: no JSON object in the first 2 record(s)"
    assert reasons["dolly.jsonl"] == "holds dolly records (dolly), not oasst"
    r = read(tmp_path, "oasst")
    assert r.messages["message_tree_id"].unique().sort().to_list() == ["t1", "t2"]
    assert r.skipped == skipped
    # a build records every file it skipped, with the reason, in build.json (and so on the card)
    from builds import build_recipes

    out = tmp_path.parent / f"{tmp_path.name}-out"
    folder = build_recipes(["guanaco"], out, source=tmp_path, allow_empty=True)["guanaco"]
    recorded = json.loads((folder / "build.json").read_text())["sources"]["oasst"]["skipped"]
    assert recorded == [{"path": s.path, "reason": s.reason} for s in skipped]


def test_nothing_readable_is_one_line_error_with_reasons(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    write_jsonl(tmp_path / "random.jsonl", [{"foo": 1}])
    with pytest.raises(InputError, match=r"no oasst files found \(notes\.txt: unknown extension"):
        read(tmp_path, "oasst")
    with pytest.raises(InputError, match=r"random\.jsonl: unrecognised content: records with keys \[foo\]"):
        read(tmp_path / "random.jsonl", "oasst")


def test_parquet_is_detected_by_its_columns_whatever_its_name(tmp_path: Path) -> None:
    base = {"message_tree_id": "r", "role": "prompter", "text": "q", "lang": "en", "review_result": True}
    table = _hub_table([{**base, "message_id": "r"}])
    pq.write_table(table, tmp_path / "whatever.parquet")
    pq.write_table(table, tmp_path / "export.bin")  # a Parquet file given by itself is known by its magic bytes
    pq.write_table(pa.table({"instruction": ["q"], "response": ["a"]}), tmp_path / "train-0.parquet")
    assert detect(tmp_path / "export.bin") == "oasst_parquet"
    assert read(tmp_path / "export.bin", "oasst").messages["message_id"].to_list() == ["r"]
    files, skipped = scan(tmp_path, "oasst")
    assert [(f.name, f.format) for f in files] == [("whatever.parquet", "oasst_parquet")]
    assert {s.path: s.reason for s in skipped} == {
        "export.bin": "unknown extension (.bin); expected .parquet, .jsonl, .json (or .gz)",
        "train-0.parquet": "holds dolly records (dolly), not oasst",
    }


def test_format_override_wins(tmp_path: Path) -> None:
    msgs = write_jsonl(tmp_path / "a.trees.jsonl", [m("r", None, "prompter"), m("a", "r", "assistant")])
    assert detect(msgs) == "oasst_messages"  # the content wins over the name
    as_trees = read(msgs, "oasst", fmt="oasst_trees")
    assert as_trees.messages.height == 0
    assert as_trees.rejects.select("reason", "evidence").rows() == [("missing_field", "prompt")] * 2
    assert [f.format for f in as_trees.files] == ["oasst_trees"]
    odd = tmp_path / "dump.txt"
    odd.write_bytes(msgs.read_bytes())
    assert read(odd, "oasst", fmt="oasst_messages").messages.height == 2
    # in a folder the override applies to every file its layout can hold; the others are skipped
    pq.write_table(_hub_table([{"message_id": "p", "role": "prompter", "text": "q"}]), tmp_path / "p.parquet")
    files, skipped = scan(tmp_path, "oasst", fmt="oasst_messages")
    assert [(f.name, f.format) for f in files] == [("a.trees.jsonl", "oasst_messages")]
    assert {s.path: s.reason for s in skipped} == {
        "dump.txt": "unknown extension (.txt); expected .parquet, .jsonl, .json (or .gz)",
        "p.parquet": "a Parquet file cannot hold oasst_messages records (format given)",
    }
    with pytest.raises(InputError, match="cannot hold oasst_trees"):
        read(tmp_path / "p.parquet", "oasst", fmt="oasst_trees")
    with pytest.raises(ChatdataError, match="format 'dolly' is not of kind 'oasst'"):
        read(msgs, "oasst", fmt="dolly")


def test_bom_on_the_first_line_is_ignored(tmp_path: Path) -> None:
    lines = b"\xef\xbb\xbf" + orjson.dumps(m("r", None, "prompter")) + b"\n" + orjson.dumps(m("a", "r", "assistant"))
    (tmp_path / "x.jsonl").write_bytes(lines)
    (tmp_path / "y.jsonl.gz").write_bytes(gzip.compress(lines.replace(b'"r"', b'"s"').replace(b'"a"', b'"b"')))
    (tmp_path / "t.jsonl").write_bytes(b"\xef\xbb\xbf" + orjson.dumps(_tree("t1")) + b"\n")
    r = read(tmp_path, "oasst")
    assert r.rejects.height == 0
    assert [(f.path, f.format, f.records) for f in r.files] == [
        ("t.jsonl", "oasst_trees", 2),
        ("x.jsonl", "oasst_messages", 2),
        ("y.jsonl.gz", "oasst_messages", 2),
    ]
    assert sorted(r.messages["message_id"]) == ["a", "b", "r", "s", "t1", "t1-a"]


def test_gzip_is_known_by_its_magic_bytes(tmp_path: Path) -> None:
    p = tmp_path / "export.jsonl"
    p.write_bytes(gzip.compress(orjson.dumps(_tree("t1"))))
    r = read(p, "oasst")
    assert r.messages.height == 2 and r.files[0].format == "oasst_trees"


def test_empty_files_take_the_format_their_name_hints(tmp_path: Path) -> None:
    (tmp_path / "a.trees.jsonl.gz").write_bytes(gzip.compress(b""))
    (tmp_path / "b.messages.jsonl").write_bytes(b"\n")
    (tmp_path / "c.jsonl").write_bytes(b"\n\n")
    files, skipped = scan(tmp_path, "oasst")
    assert [(f.name, f.format) for f in files] == [
        ("a.trees.jsonl.gz", "oasst_trees"),
        ("b.messages.jsonl", "oasst_messages"),
    ]
    assert [(s.path, s.reason) for s in skipped] == [("c.jsonl", "no records (only blank lines)")]


def test_bundled_bad_file_starts_with_a_bom_and_reads_line_1() -> None:
    bad = sample_dir() / "extra" / BAD_JSONL_NAME
    assert bad.read_bytes().startswith(b"\xef\xbb\xbf")
    r = read(bad, "oasst")
    assert r.messages.filter(pl.col("source_line") == 1).height == 1
    assert r.rejects.filter(pl.col("source_line") == 1).is_empty()
