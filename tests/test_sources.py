"""Readers of other public datasets (Dolly, chat messages, ShareGPT, UltraFeedback, Orca DPO) and their detection."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from oasst_builders import m, write_jsonl
from polars.testing import assert_frame_equal
from reads import batches, read

from chatdata.errors import ChatdataError, InputError
from chatdata.filters.specs import build_filters, load_specs
from chatdata.pairs import build_pairs
from chatdata.schema import MESSAGE_SCHEMA, REJECT_SCHEMA
from chatdata.sources.detect import detect
from chatdata.sources.read import scan
from chatdata.sources.tables import DIALOGUE_SCHEMA, PAIR_SCHEMA
from chatdata.structure import validate_structure
from chatdata.trees import DIALOGUE_COLUMNS, flatten, gate

DATA = Path(__file__).parent / "data" / "sources"

FORMATS = {
    "chat/messages.jsonl": "chat_messages",
    "dolly/databricks-dolly-15k.jsonl": "dolly",
    "dolly_parquet/train-00000-of-00001.parquet": "dolly",
    "orca/orca_rlhf.jsonl": "prefs_orca",
    "sharegpt/sharegpt_clean.json": "sharegpt",
    "ultrachat/data/train_sft-00000-of-00001.parquet": "chat_messages",
    "ultrafeedback/data/test_prefs-00000-of-00001.parquet": "prefs_ultrafeedback",
    "ultrafeedback/data/train_prefs-00000-of-00001.parquet": "prefs_ultrafeedback",
    "ultrafeedback_jsonl/train_prefs.jsonl": "prefs_ultrafeedback",
}

UF_TRAIN = "ultrafeedback/data/train_prefs-00000-of-00001.parquet"
UF_JSONL = "ultrafeedback_jsonl/train_prefs.jsonl"
MALFORMED = "unexpected control character in string"

#: (source, line) -> (stage, unit, reason, evidence) of every bad record of the fixtures
EXPECTED_REJECTS = {
    ("chat/messages.jsonl", 3): ("convert", "dialogue", "unknown_role", "tool"),
    ("chat/messages.jsonl", 4): ("convert", "dialogue", "roles_not_alternating", "roles: assistant,user,assistant"),
    ("chat/messages.jsonl", 5): ("convert", "dialogue", "empty_prompt", "turn 1 (user) is blank"),
    ("chat/messages.jsonl", 6): ("ingest", "line", "malformed_json", MALFORMED),
    ("chat/messages.jsonl", 7): (
        "ingest",
        "line",
        "wrong_type",
        'messages: expected list of turns, got str "user: hi"',
    ),
    ("dolly/databricks-dolly-15k.jsonl", 4): ("convert", "dialogue", "empty_response", "turn 2 (assistant) is blank"),
    ("dolly/databricks-dolly-15k.jsonl", 5): ("ingest", "line", "malformed_json", MALFORMED),
    ("dolly/databricks-dolly-15k.jsonl", 6): ("ingest", "line", "missing_field", "response"),
    ("dolly/databricks-dolly-15k.jsonl", 7): (
        "ingest",
        "line",
        "wrong_type",
        "instruction: expected string, got int 42",
    ),
    ("dolly/databricks-dolly-15k.jsonl", 8): ("ingest", "line", "not_an_object", "got list"),
    ("dolly_parquet/train-00000-of-00001.parquet", 4): (
        "convert",
        "dialogue",
        "empty_response",
        "turn 2 (assistant) is blank",
    ),
    ("dolly_parquet/train-00000-of-00001.parquet", 5): ("ingest", "line", "missing_field", "response"),
    ("orca/orca_rlhf.jsonl", 3): ("convert", "pair", "identical_replies", "both replies: Yes."),
    ("orca/orca_rlhf.jsonl", 4): ("convert", "pair", "empty_prompt", "prompt is blank"),
    ("orca/orca_rlhf.jsonl", 5): ("convert", "pair", "empty_response", "chosen: turn 2 (assistant) is blank"),
    ("orca/orca_rlhf.jsonl", 6): ("ingest", "line", "malformed_json", MALFORMED),
    ("orca/orca_rlhf.jsonl", 7): ("ingest", "line", "missing_field", "question"),
    ("sharegpt/sharegpt_clean.json", 3): ("convert", "dialogue", "unknown_role", "bing"),
    ("sharegpt/sharegpt_clean.json", 4): ("convert", "dialogue", "roles_not_alternating", "roles: user,user,assistant"),
    ("sharegpt/sharegpt_clean.json", 5): ("convert", "dialogue", "empty_conversation", "no turns"),
    ("sharegpt/sharegpt_clean.json", 6): ("convert", "dialogue", "no_reply", "roles: user,assistant,user"),
    ("sharegpt/sharegpt_clean.json", 7): ("ingest", "line", "not_an_object", "got str"),
    ("sharegpt/sharegpt_clean.json", 8): ("ingest", "line", "missing_field", "conversations[0].value"),
    ("ultrachat/data/train_sft-00000-of-00001.parquet", 3): (
        "convert",
        "dialogue",
        "empty_response",
        "turn 2 (assistant) is blank",
    ),
    **{
        (src, line): expected
        for src in (UF_TRAIN, UF_JSONL)
        for line, expected in {
            2: ("convert", "pair", "identical_replies", "both replies: Jupiter."),
            3: ("convert", "pair", "empty_response", "rejected: turn 2 (assistant) is blank"),
            5: ("ingest", "line", "missing_field", "prompt"),
            6: ("convert", "pair", "no_reply", "chosen: roles: user"),
        }.items()
    },
    (UF_JSONL, 7): ("ingest", "line", "malformed_json", MALFORMED),
    (UF_JSONL, 9): ("ingest", "line", "wrong_type", 'chosen: expected list of turns, got str "Smokey."'),
}


def _input_records(path: Path) -> int:
    """Records in a fixture counted without chatdata: Parquet rows, array elements, non-blank lines."""
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if path.suffix == ".json":
        return len(orjson.loads(path.read_bytes()))
    return sum(1 for line in path.read_bytes().splitlines() if line.strip())


@pytest.fixture(scope="module")
def everything():
    return read(DATA)


def test_every_layout_is_detected_by_its_content() -> None:
    files = [p for p in DATA.rglob("*") if p.is_file() and p.suffix != ".md"]
    assert {p.relative_to(DATA).as_posix(): detect(p) for p in files} == FORMATS
    files, skipped = scan(DATA)
    assert {f.name: f.format for f in files} == FORMATS
    assert [(s.path, s.reason) for s in skipped] == [
        ("README.md", "unknown extension (.md); expected .parquet, .jsonl, .json (or .gz)")
    ]


def test_detection_by_columns_and_keys_whatever_the_name(tmp_path: Path) -> None:
    renames = {
        UF_TRAIN: "databricks-dolly-15k.parquet",
        "dolly/databricks-dolly-15k.jsonl": "orca_rlhf.messages.jsonl",
        "sharegpt/sharegpt_clean.json": "train.json",
        "ultrachat/data/train_sft-00000-of-00001.parquet": "export.bin",
        "chat/messages.jsonl": "sharegpt.trees.jsonl",
    }
    for src, name in renames.items():
        shutil.copy(DATA / src, tmp_path / name)
    (tmp_path / "train_prefs.jsonl.gz").write_bytes(gzip.compress((DATA / "orca" / "orca_rlhf.jsonl").read_bytes()))
    expected = {name: FORMATS[src] for src, name in renames.items()} | {"train_prefs.jsonl.gz": "prefs_orca"}
    assert {name: detect(tmp_path / name) for name in expected} == expected
    files, skipped = scan(tmp_path)
    assert {f.name: f.format for f in files} == {k: v for k, v in expected.items() if k != "export.bin"}
    assert [s.path for s in skipped] == ["export.bin"]  # in a folder only known extensions are opened
    r = read(tmp_path)
    assert r.frames["pairs"].height == 2 + 2  # the UltraFeedback and the Orca rows, under their new names
    assert r.frames["dialogues"].height == 4 + 2 + 2


def test_dolly_rows_follow_the_blend_rule(everything) -> None:
    d = everything.frames["dialogues"].filter(pl.col("source").str.starts_with("dolly"))
    record = orjson.loads((DATA / "dolly" / "databricks-dolly-15k.jsonl").read_bytes().splitlines()[0])
    first = d.row(0, named=True)
    assert first["messages"] == [
        {"role": "user", "content": record["instruction"] + "\n\n" + record["context"]},
        {"role": "assistant", "content": record["response"]},
    ]
    assert first["dialogue_id"] == first["message_tree_id"] == "dolly/databricks-dolly-15k.jsonl:1"
    assert first["message_ids"] == [first["dialogue_id"]]
    # a whitespace-only context is no context
    third = d.filter(pl.col("source_line") == 3).row(0, named=True)
    assert third["messages"][0]["content"] == "Give me three ideas for a rainy Sunday."
    jsonl = d.filter(pl.col("source") == "dolly/databricks-dolly-15k.jsonl")
    parquet = d.filter(pl.col("source") == "dolly_parquet/train-00000-of-00001.parquet")
    assert (
        jsonl["category"].to_list()
        == parquet["category"].to_list()
        == [
            "closed_qa",
            "open_qa",
            "brainstorming",
            "summarization",
        ]
    )
    assert jsonl["messages"].to_list() == parquet["messages"].to_list()
    assert set(d["lang"]) == {"en"} and set(d["n_turns"]) == {2}
    assert jsonl["source_split"].to_list() == [None] * 4 and parquet["source_split"].to_list() == ["train"] * 4


def test_chat_messages_and_sharegpt_rows(everything) -> None:
    d = everything.frames["dialogues"]
    share = d.filter(pl.col("source") == "sharegpt/sharegpt_clean.json")
    assert share["source_line"].to_list() == [1, 2]
    assert [t["role"] for t in share["messages"][1]] == ["system", "user", "assistant", "user", "assistant"]
    assert share["messages"][0].to_list() == [
        {"role": "user", "content": "What's a good name for a sailboat?"},
        {"role": "assistant", "content": "How about 'Wind Whisperer'?"},
    ]
    chat = d.filter(pl.col("source") == "chat/messages.jsonl")
    assert chat["n_turns"].to_list() == [2, 3] and chat["messages"][1][0] == {
        "role": "system",
        "content": "Answer briefly.",
    }
    ultrachat = d.filter(pl.col("source").str.starts_with("ultrachat"))
    assert ultrachat["n_turns"].to_list() == [2, 4] and set(ultrachat["source_split"]) == {"train"}
    others = d.filter(~pl.col("source").str.starts_with("dolly"))
    assert others.height == 6 and others["lang"].null_count() == others["category"].null_count() == 6


def test_preference_rows(everything) -> None:
    p = everything.frames["pairs"]
    uf = p.filter(pl.col("source") == UF_TRAIN)
    assert uf["source_line"].to_list() == [1, 4]
    assert uf["score_chosen"].to_list() == [9.0, 10.0] and uf["score_rejected"].to_list() == [2.5, 3.0]
    assert uf["prompt_id"].to_list() == [hashlib.sha256(x.encode()).hexdigest() for x in uf["prompt"]]
    assert uf["messages"].to_list() == uf["chosen"].to_list()
    assert uf["n_turns"].to_list() == [2, 4] and set(uf["source_split"]) == {"train"}
    assert uf["rank_chosen"].null_count() == uf["rank_rejected"].null_count() == uf["lang"].null_count() == 2
    test = p.filter(pl.col("source").str.contains("test_prefs"))
    assert set(test["source_split"]) == {"validation"} and test.height == 2
    as_json = p.filter(pl.col("source") == UF_JSONL)
    assert as_json["score_chosen"].to_list() == [9.0, 10.0, 10.0]  # the integer scores of line 8 become floats
    assert_frame_equal(
        as_json.head(2).drop("dialogue_id", "message_tree_id", "message_ids", "source", "source_split"),
        uf.drop("dialogue_id", "message_tree_id", "message_ids", "source", "source_split"),
    )
    orca = p.filter(pl.col("source") == "orca/orca_rlhf.jsonl")
    no_system, with_system = orca.rows(named=True)
    assert [t["role"] for t in no_system["chosen"]] == ["user", "assistant"]  # an empty system prompt is no turn
    assert [t["role"] for t in with_system["rejected"]] == ["system", "user", "assistant"]
    assert with_system["prompt"] == with_system["chosen"][1]["content"] == "What is the capital of Canada?"
    assert with_system["chosen"][-1]["content"].startswith("The capital of Canada is Ottawa")
    assert orca["score_chosen"].null_count() == orca["score_rejected"].null_count() == 2


def test_every_bad_record_is_rejected_with_its_reason(everything) -> None:
    rej = everything.rejects
    assert rej.schema == pl.Schema(REJECT_SCHEMA)
    got = {
        (r["source"], r["source_line"]): (r["stage"], r["unit"], r["reason"], r["evidence"])
        for r in rej.iter_rows(named=True)
    }
    assert got == EXPECTED_REJECTS
    assert rej.height == len(EXPECTED_REJECTS)
    converted = rej.filter(pl.col("stage") == "convert")
    assert converted["message_tree_id"].to_list() == [
        f"{s}:{n}" for s, n in zip(converted["source"], converted["source_line"], strict=True)
    ]
    # the payload keeps the record: the raw line of JSON, the whole row of Parquet
    payloads = {(r["source"], r["source_line"]): r["payload"] for r in rej.iter_rows(named=True)}
    assert payloads[("dolly/databricks-dolly-15k.jsonl", 5)].startswith('{"instruction": "Who wrote Dracula?"')
    assert orjson.loads(payloads[(UF_TRAIN, 5)])["chosen"][1] == {"content": "y", "role": "assistant"}
    assert orjson.loads(payloads[("sharegpt/sharegpt_clean.json", 3)])["id"] == "a3"


def test_counts_balance(everything) -> None:
    rows = pl.concat(
        [everything.frames[t].select("source") for t in ("dialogues", "pairs")] + [everything.rejects.select("source")]
    )
    per_source = dict(rows.group_by("source").len().iter_rows())
    for f in everything.files:
        assert f.records == per_source[f.path] == _input_records(DATA / f.path), f.path
        assert f.sha256 == hashlib.sha256((DATA / f.path).read_bytes()).hexdigest()
    assert sum(f.records for f in everything.files) == sum(_input_records(DATA / p) for p in FORMATS)


def test_output_schemas_are_the_engine_tables(everything, tmp_path: Path) -> None:
    r = read(
        write_jsonl(
            tmp_path / "t.messages.jsonl",
            [
                m("r", None, "prompter", text="Q"),
                m("a0", "r", "assistant", text="best", rank=0),
                m("a1", "r", "assistant", text="worst", rank=1),
            ],
        ),
        "oasst",
    )
    gated = gate(validate_structure(r.messages).messages, build_filters(load_specs(["gates"]))).frame
    engine_pairs = build_pairs(gated).frame
    engine_dialogues = flatten(gated).frame
    assert engine_pairs.height == 1 and engine_dialogues.height == 2
    where = {"source": pl.String(), "source_line": pl.Int64()}
    assert dict(engine_pairs.schema) | where == PAIR_SCHEMA
    assert {c: engine_dialogues.schema[c] for c in DIALOGUE_COLUMNS} | where == DIALOGUE_SCHEMA
    assert everything.frames["pairs"].schema == pl.Schema(PAIR_SCHEMA)
    assert everything.frames["dialogues"].schema == pl.Schema(DIALOGUE_SCHEMA | {"category": pl.String()})
    assert everything.frames["messages"].schema == pl.Schema(MESSAGE_SCHEMA)


def test_patterns_select_data_files() -> None:
    r = read(DATA / "ultrafeedback", patterns=["data/train_prefs-*"])
    assert [f.path for f in r.files] == ["data/train_prefs-00000-of-00001.parquet"]
    assert [(s.path, s.reason) for s in r.skipped] == [("data/test_prefs-00000-of-00001.parquet", "not in data_files")]
    files, skipped = scan(DATA, patterns=["**/*.jsonl", "sharegpt/*.json"])
    assert {f.name for f in files} == {k for k in FORMATS if k.endswith(".jsonl")} | {"sharegpt/sharegpt_clean.json"}
    assert all(s.reason == "not in data_files" for s in skipped) and len(skipped) == 5
    with pytest.raises(InputError, match=r"no source files found \(README\.md: not in data_files"):
        read(DATA, patterns=["*.csv"])


def test_kind_restricts_the_families() -> None:
    r = read(DATA, "dolly")
    assert [f.path for f in r.files] == [
        "dolly/databricks-dolly-15k.jsonl",
        "dolly_parquet/train-00000-of-00001.parquet",
    ]
    assert r.frames["pairs"].is_empty() and r.frames["dialogues"].height == 8
    reasons = {s.path: s.reason for s in r.skipped}
    assert reasons[UF_TRAIN] == "holds prefs_ultrafeedback records (prefs), not dolly"
    assert reasons["sharegpt/sharegpt_clean.json"] == "holds sharegpt records (chat), not dolly"
    assert {f.format for f in read(DATA, "chat").files} == {"chat_messages", "sharegpt"}
    assert {f.format for f in read(DATA, "prefs").files} == {"prefs_ultrafeedback", "prefs_orca"}
    with pytest.raises(InputError, match="no oasst files found"):
        read(DATA, "oasst")
    with pytest.raises(InputError, match=r"orca_rlhf\.jsonl: holds prefs_orca records \(prefs\), not chat"):
        read(DATA / "orca" / "orca_rlhf.jsonl", "chat")
    with pytest.raises(ChatdataError, match="unknown source kind 'alpaca'"):
        read(DATA, "alpaca")


def test_batches_concatenate_to_the_whole_read(everything) -> None:
    for batch_rows in (1, 2, 100):
        streamed = batches(DATA, batch_rows=batch_rows)
        for table in ("dialogues", "pairs"):
            parts = [b.frame for b in streamed if b.table == table]
            assert_frame_equal(pl.concat(parts, how="diagonal"), everything.frames[table])
        assert_frame_equal(pl.concat([b.rejects for b in streamed]), everything.rejects)
        assert [b.file for b in streamed if b.file is not None] == everything.files
        records = 0
        for b in streamed:
            size = b.frame.height + b.rejects.height
            assert size <= batch_rows
            records += size
            if b.file is not None:
                assert b.file.records == records
                records = 0


def test_oasst_files_are_read_beside_other_sources(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "oasst.jsonl", [m("r", None, "prompter"), m("a", "r", "assistant"), "{bad"])
    shutil.copy(DATA / "dolly" / "databricks-dolly-15k.jsonl", tmp_path / "dolly.jsonl")
    r = read(tmp_path)
    assert [(f.path, f.format, f.records) for f in r.files] == [
        ("dolly.jsonl", "dolly", 9),
        ("oasst.jsonl", "oasst_messages", 3),
    ]
    assert r.frames["messages"]["message_id"].to_list() == ["r", "a"]
    assert r.frames["dialogues"].height == 4
    assert r.rejects.filter(pl.col("source") == "oasst.jsonl")["reason"].to_list() == ["malformed_json"]
    assert [f.path for f in read(tmp_path, "oasst").files] == ["oasst.jsonl"]


def test_format_override_and_empty_files(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "alpaca.jsonl", [{"instruction": "q", "input": "", "output": "a"}])
    (tmp_path / "empty.jsonl").write_bytes(b"")
    with pytest.raises(
        InputError, match=r"no source files found \(alpaca\.jsonl: unrecognised .*; empty\.jsonl: empty"
    ):
        scan(tmp_path)
    # an empty file takes the only format of the kind; content that fits no signature is still skipped
    files, skipped = scan(tmp_path, "dolly")
    assert [(f.name, f.format) for f in files] == [("empty.jsonl", "dolly")]
    assert skipped[0].reason == "unrecognised content: records with keys [input, instruction, output]"
    r = read(tmp_path / "alpaca.jsonl", fmt="dolly")
    assert r.rejects.select("reason", "evidence").rows() == [("missing_field", "response")]
    with pytest.raises(ChatdataError, match="format 'dolly' is not of kind 'chat'"):
        read(tmp_path, "chat", fmt="dolly")


def test_bom_and_gzip_in_every_json_layout(tmp_path: Path) -> None:
    bom = b"\xef\xbb\xbf"
    share = (DATA / "sharegpt" / "sharegpt_clean.json").read_bytes()
    (tmp_path / "a.json").write_bytes(bom + share)
    (tmp_path / "b.json.gz").write_bytes(gzip.compress(share))
    lines = (DATA / "chat" / "messages.jsonl").read_bytes()
    (tmp_path / "c.jsonl").write_bytes(bom + lines)
    (tmp_path / "d.jsonl.gz").write_bytes(gzip.compress(bom + lines))
    r = read(tmp_path)
    assert [(f.path, f.format) for f in r.files] == [
        ("a.json", "sharegpt"),
        ("b.json.gz", "sharegpt"),
        ("c.jsonl", "chat_messages"),
        ("d.jsonl.gz", "chat_messages"),
    ]
    assert r.frames["dialogues"].group_by("source").len().sort("source")["len"].to_list() == [2, 2, 2, 2]
    assert r.rejects.filter(pl.col("source_line") == 1).is_empty()


def test_parquet_cells_of_the_wrong_type_are_rejected(tmp_path: Path) -> None:
    pq.write_table(pa.table({"instruction": ["a", "b"], "response": [1, None]}), tmp_path / "dolly.parquet")
    turn = pa.struct([("role", pa.string()), ("content", pa.string())])
    pq.write_table(
        pa.table(
            {
                "messages": pa.array(
                    [
                        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None}],
                        None,
                    ],
                    pa.list_(turn),
                )
            }
        ),
        tmp_path / "chat.parquet",
    )
    pq.write_table(
        pa.table({"prompt": ["p"], "chosen": ["x"], "rejected": ["y"], "score_chosen": ["high"]}),
        tmp_path / "uf.parquet",
    )
    r = read(tmp_path)
    got = sorted(r.rejects.select("source", "source_line", "reason", "evidence").rows())
    assert got == [
        ("chat.parquet", 2, "missing_field", "messages[1].role/content"),
        ("chat.parquet", 3, "missing_field", "messages"),
        ("dolly.parquet", 1, "wrong_type", "response: expected string, got Int64"),
        ("dolly.parquet", 2, "missing_field", "response"),
        (
            "uf.parquet",
            1,
            "wrong_type",
            "chosen: expected list of turns, got String; rejected: expected list of turns, got String; "
            "score_chosen: expected number, got String",
        ),
    ]
    assert r.frames["dialogues"]["source"].to_list() == ["chat.parquet"]


def test_unreadable_files_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "cut.json").write_bytes((DATA / "sharegpt" / "sharegpt_clean.json").read_bytes()[:700])
    with pytest.raises(InputError, match=r"cut\.json: invalid JSON in element 2"):
        read(tmp_path / "cut.json")
    (tmp_path / "x.json.gz").write_bytes(b"not gzip")
    with pytest.raises(InputError, match=r"x\.json\.gz: cannot read file"):
        read(tmp_path / "x.json.gz")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match=r"broken\.parquet: cannot read Parquet"):
        detect(tmp_path / "broken.parquet")
    with pytest.raises(InputError, match="no such file or folder"):
        read(tmp_path / "missing")
    with pytest.raises(ValueError, match="batch_rows"):
        batches(DATA, batch_rows=0)
