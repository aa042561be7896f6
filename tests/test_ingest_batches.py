"""Streaming oasst ingest: a file's batches (:func:`~chatdata.sources.read.iter_detected`, what the partition
streams) concatenate to the same tables whatever the batch size."""

from __future__ import annotations

import gzip
import hashlib
from itertools import pairwise
from pathlib import Path

import orjson
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from oasst_builders import m, write_jsonl
from polars.testing import assert_frame_equal
from reads import batches, read

from chatdata.errors import InputError
from chatdata.resources import sample_dir
from chatdata.schema import MESSAGE_SCHEMA, REJECT_SCHEMA
from chatdata.sources.read import SourceBatch, iter_detected, scan


def _assert_streams_like_the_whole(path: Path, batch_rows: int) -> list[SourceBatch]:
    """The batches of ``batch_rows`` records equal the default batches once concatenated; the per-file contract
    holds."""
    whole = read(path, "oasst")
    streamed = batches(path, "oasst", batch_rows=batch_rows)
    for b in streamed:
        assert b.table == "messages"
        assert b.frame.schema == pl.Schema(MESSAGE_SCHEMA)
        assert b.rejects.schema == pl.Schema(REJECT_SCHEMA)
    assert_frame_equal(pl.concat([b.frame for b in streamed]), whole.messages, check_exact=True)
    assert_frame_equal(pl.concat([b.rejects for b in streamed]), whole.rejects, check_exact=True)
    assert [b.file for b in streamed if b.file is not None] == whole.files
    assert streamed[-1].file is not None
    # a file's batches are contiguous and its SourceFile comes on the last one, counting all of its records
    records = 0
    for b in streamed:
        sources = set(b.frame["source"]) | set(b.rejects["source"])
        records += b.frame.height + b.rejects.height
        if b.file is not None:
            assert sources <= {b.file.path}
            assert b.file.records == records
            records = 0
        else:
            assert len(sources) == 1
    return streamed


def _by_file(streamed: list[SourceBatch]) -> dict[str, list[SourceBatch]]:
    out: dict[str, list[SourceBatch]] = {}
    current: list[SourceBatch] = []
    for b in streamed:
        current.append(b)
        if b.file is not None:
            out[b.file.path] = current
            current = []
    return out


@pytest.mark.parametrize("batch_rows", [1, 7, 100])
def test_sample_batches_concatenate_to_the_whole(batch_rows: int) -> None:
    per_file = _by_file(_assert_streams_like_the_whole(sample_dir(), batch_rows))
    whole = read(sample_dir(), "oasst")
    assert list(per_file) == [f.path for f in whole.files]
    for name, file_batches in per_file.items():
        sizes = [b.frame.height + b.rejects.height for b in file_batches]
        assert sum(sizes) == file_batches[-1].file.records  # type: ignore[union-attr]
        assert len(file_batches) == -(-sum(sizes) // batch_rows)  # every batch but the last is full
        assert max(sizes) <= batch_rows, name  # Parquet rows and messages.jsonl lines are one record each


def _bad_messages(path: Path) -> Path:
    return write_jsonl(
        path,
        [
            m("r", None, "prompter", emojis={"+1": 2}, labels={"spam": {"value": 0.0, "count": 3}}),
            "{not json",
            "[1, 2]",
            {"message_id": "nt", "parent_id": "r", "role": "assistant"},
            "",
            {"parent_id": "r", "role": "assistant", "text": "no id"},
            m("wt", "r", "assistant", rank="two"),
            m("wb", "r", "assistant", deleted="no"),
            m("a", "r", "assistant", rank=0, detoxify={"toxicity": 0.5}),
            m("big", "r", "assistant", rank=2**40),
            m("sh", "r", "assistant", emojis=[1]),
            m("b", "r", "assistant", rank=1),
        ],
    )


def _bad_trees(path: Path) -> Path:
    tree = {
        "message_tree_id": "t1",
        "tree_state": "ready_for_export",
        "prompt": {
            "message_id": "t1",
            "text": "hi",
            "role": "prompter",
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
                    "replies": [{"message_id": "x", "text": "b", "role": "prompter"}],
                },
                "not a node",
                {"message_id": "a3", "text": "bad replies", "role": "assistant", "replies": "nope"},
                {"message_id": "a4", "text": 5, "role": "assistant"},
            ],
        },
    }
    t2 = {"message_tree_id": "t2", "prompt": {"message_id": "t2", "text": "q", "role": "prompter"}}
    return write_jsonl(path, [tree, '{"message_tree_id": "t3"}', "{oops", t2, "[]", tree])


def _bad_parquet(path: Path) -> Path:
    n = 23
    rows = {
        "message_id": [f"m{i}" if i != 4 else None for i in range(n)],
        "parent_id": [None] + ["m0"] * (n - 1),
        "user_id": ["u"] * n,
        "role": ["prompter"] + ["assistant"] * (n - 1),
        "text": [f"t{i}" if i != 17 else None for i in range(n)],
        "rank": [str(i) if i not in (9, 20) else "x" for i in range(n)],
        "review_count": [i if i != 12 else 2**40 for i in range(n)],
    }
    pq.write_table(pa.table(rows), path, row_group_size=5)
    return path


def test_malformed_records_in_all_formats_stream_exactly(tmp_path: Path) -> None:
    plain = _bad_messages(tmp_path / "bad.messages.jsonl")
    (tmp_path / "bad.messages.jsonl.gz").write_bytes(gzip.compress(plain.read_bytes()))
    _bad_trees(tmp_path / "bad.trees.jsonl")
    _bad_parquet(tmp_path / "bad.parquet")
    whole = read(tmp_path, "oasst")
    assert [f.path for f in whole.files] == [
        "bad.messages.jsonl",
        "bad.messages.jsonl.gz",
        "bad.parquet",
        "bad.trees.jsonl",
    ]
    for batch_rows in (1, 2, 3, 7, 100):
        for name, file_batches in _by_file(_assert_streams_like_the_whole(tmp_path, batch_rows)).items():
            if name.endswith(".parquet"):
                assert all(b.frame.height + b.rejects.height <= batch_rows for b in file_batches)
                assert len(file_batches) >= -(-23 // batch_rows)
    # source_line continues across Parquet batches: rows 5, 10, 13, 18, 21 (1-based) are rejected, the rest kept
    parquet_rejects = whole.rejects.filter(pl.col("source") == "bad.parquet")
    assert sorted(zip(parquet_rejects["source_line"], parquet_rejects["reason"], strict=True)) == [
        (5, "missing_field"),
        (10, "wrong_type"),
        (13, "wrong_type"),
        (18, "missing_field"),
        (21, "wrong_type"),
    ]
    kept = whole.messages.filter(pl.col("source") == "bad.parquet")
    assert kept["source_line"].to_list() == [i for i in range(1, 24) if i not in (5, 10, 13, 18, 21)]
    assert kept["message_id"].to_list() == [f"m{i - 1}" for i in kept["source_line"]]
    for batch_rows in (1, 4, 6):
        streamed = pl.concat([b.rejects for b in batches(tmp_path / "bad.parquet", batch_rows=batch_rows)])
        assert streamed["evidence"].to_list() == ["message_id", "rank", "review_count", "text", "rank"]
        assert orjson.loads(streamed["payload"][1])["rank"] == "x"
    # JSONL line numbers and reasons do not depend on the batch size
    for name in ("bad.messages.jsonl", "bad.messages.jsonl.gz"):
        got = pl.concat([b.rejects for b in batches(tmp_path / name, batch_rows=2)])
        assert list(zip(got["source_line"], got["reason"], strict=True)) == [
            (2, "malformed_json"),
            (3, "not_an_object"),
            (4, "missing_field"),
            (6, "missing_field"),
            (7, "wrong_type"),
            (8, "wrong_type"),
            (10, "wrong_type"),
            (11, "wrong_type"),
        ]
        assert got["payload"][0] == "{not json"
    trees = pl.concat([b.frame for b in batches(tmp_path / "bad.trees.jsonl", batch_rows=1)])
    assert trees["message_id"].to_list() == ["t1", "a1", "p2", "x", "a3", "t2", "t1", "a1", "p2", "x", "a3"]
    assert trees["source_line"].to_list() == [1, 1, 1, 1, 1, 4, 6, 6, 6, 6, 6]


def test_tree_batches_are_cut_between_lines(tmp_path: Path) -> None:
    path = _bad_trees(tmp_path / "bad.trees.jsonl")
    streamed = batches(path, batch_rows=3)
    lines = [set(b.frame["source_line"]) | set(b.rejects["source_line"]) for b in streamed]
    # line 1 alone emits 5 messages and 4 rejects: one batch larger than batch_rows, never split
    assert lines == [{1}, {2, 3, 4}, {5, 6}]
    assert [b.frame.height + b.rejects.height for b in streamed] == [9, 3, 10]
    assert [b.file is not None for b in streamed] == [False, False, True]
    assert streamed[-1].file is not None and streamed[-1].file.records == 22


def test_real_trees_stream_like_the_whole(real_trees: Path) -> None:
    streamed = _assert_streams_like_the_whole(real_trees, 50)
    assert len(streamed) > 10
    # lines (trees) are never split: each batch starts after the previous one's last line
    assert all(a.frame["source_line"].max() < b.frame["source_line"].min() for a, b in pairwise(streamed))
    for b in streamed[:-1]:
        assert b.frame.height >= 50
        last_line = b.frame["source_line"].max()
        assert b.frame.filter(pl.col("source_line") != last_line).height < 50  # cut at the first full line
    assert streamed[-1].file is not None and streamed[-1].file.records == 1167


def test_every_file_yields_a_batch_with_its_source_file(tmp_path: Path) -> None:
    (tmp_path / "empty.messages.jsonl").write_bytes(b"")
    (tmp_path / "blank.trees.jsonl").write_bytes(b"\n  \n")
    pq.write_table(
        pa.table({c: pa.array([], pa.string()) for c in ("message_id", "role", "text")}), tmp_path / "e.parquet"
    )
    write_jsonl(tmp_path / "one.messages.jsonl", [m("r", None, "prompter")])
    streamed = batches(tmp_path, batch_rows=1)
    assert [(b.file.path, b.file.format, b.file.records) for b in streamed if b.file] == [
        ("blank.trees.jsonl", "oasst_trees", 0),
        ("e.parquet", "oasst_parquet", 0),
        ("empty.messages.jsonl", "oasst_messages", 0),
        ("one.messages.jsonl", "oasst_messages", 1),
    ]
    assert len(streamed) == 4
    assert [b.frame.height for b in streamed] == [0, 0, 0, 1]
    for b in streamed:
        assert b.file is not None
        assert b.file.sha256 == hashlib.sha256((tmp_path / b.file.path).read_bytes()).hexdigest()


def test_exactly_full_batches_leave_no_empty_tail(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "x.messages.jsonl", [m(f"r{i}", None, "prompter") for i in range(6)])
    streamed = batches(path, batch_rows=3)
    assert [b.frame["message_id"].to_list() for b in streamed] == [["r0", "r1", "r2"], ["r3", "r4", "r5"]]
    assert streamed[0].file is None and streamed[1].file is not None and streamed[1].file.records == 6


def test_a_file_reads_the_same_in_one_batch_or_many(tmp_path: Path) -> None:
    for path in (_bad_parquet(tmp_path / "bad.parquet"), _bad_trees(tmp_path / "bad.trees.jsonl")):
        (whole,) = batches(path)
        streamed = batches(path, batch_rows=1)
        assert_frame_equal(whole.frame, pl.concat([b.frame for b in streamed]), check_exact=True)
        assert_frame_equal(whole.rejects, pl.concat([b.rejects for b in streamed]), check_exact=True)


def test_streaming_errors(tmp_path: Path) -> None:
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match=r"broken\.parquet: cannot read Parquet"):
        batches(bad, batch_rows=10)
    pq.write_table(pa.table({"message_id": ["a"], "role": ["prompter"]}), tmp_path / "notext.parquet")
    with pytest.raises(InputError, match=r"missing required column\(s\) \['text'\]"):
        batches(tmp_path / "notext.parquet", batch_rows=10)
    # a truncated gzip fails when reached, after the batches read before the damage
    raw = b"\n".join(orjson.dumps(m(f"r{i}", None, "prompter", text="x" * 200)) for i in range(2000))
    gz = tmp_path / "cut.messages.jsonl.gz"
    gz.write_bytes(gzip.compress(raw)[:4000])
    seen = []
    (cut,), _ = scan(gz, "oasst")
    with pytest.raises(InputError, match=r"cut\.messages\.jsonl\.gz: cannot read file"):
        for b in iter_detected(cut, 5):
            seen.append(b)
    assert seen and all(b.file is None for b in seen)
    with pytest.raises(ValueError, match="batch_rows"):
        next(iter_detected(cut, 0))
