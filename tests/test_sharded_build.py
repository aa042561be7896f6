"""The tree-sharded build writes exactly what the one-process build writes, whatever K and the worker count."""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from chatdata.errors import ChatdataError
from chatdata.ledger import Ledger, StageRecord
from chatdata.partition import partition_source, route
from chatdata.pipeline import BuildSettings, run_local
from chatdata.resources import sample_dir
from chatdata.sharded_build import merge_order, run_sharded_build
from tests.oasst_builders import m, write_jsonl

ALL = ["oasst_en", "guanaco", "guanaco_uncensored", "oasst_prefs"]

#: trees whose parent links disagree with the tree ids they claim, orphans, cycles, cross-file duplicates with
#: another tree id, ingest rejects with children, a malformed line
TRAPS = [
    m("ta", None, "prompter", text="How do I reverse a string in Python?", message_tree_id="ta"),
    m("ta1", "ta", "assistant", text="Use slicing: s[::-1].", rank=0, message_tree_id="ta"),
    m("ta2", "ta1", "prompter", text="And in place?", message_tree_id="tb"),
    m("ta3", "ta2", "assistant", text="Strings are immutable.", message_tree_id="tb"),
    m("tb", None, "prompter", text="What is a Python decorator?", message_tree_id="tb"),
    m("tb1", "tb", "assistant", text="A function wrapping a function.", rank=0, message_tree_id="tb"),
    m("tb2", "tb", "assistant", text="Syntax sugar for f = d(f).", rank=1, message_tree_id="ta"),
    m("o1", "nowhere", "assistant", message_tree_id="o1"),
    m("o2", "o1", "prompter", message_tree_id="tb"),
    m("c1", "c2", "prompter", message_tree_id="ta"),
    m("c2", "c1", "assistant", message_tree_id="tb"),
    {"message_id": "r1", "parent_id": "tb1", "text": "no role"},
    m("r2", "r1", "assistant", message_tree_id="tb"),
    "{not json",
]
LATER = [
    m("ta1", "ta", "assistant", text="A different text under the same id.", message_tree_id="tb"),
    m("tb2", "tb", "assistant", text="Syntax sugar for f = d(f).", rank=1, message_tree_id="tb"),
    m("tc", None, "prompter", text="How do I reverse a string in Python?", message_tree_id="tc"),
    m("tc1", "tc", "assistant", text="Use slicing: s[::-1].", rank=0, message_tree_id="tc"),
]


def _same_tree(a: Path, b: Path) -> list[str]:
    """Relative paths that differ between two output folders (ignoring the workspace)."""
    diffs: list[str] = []

    def walk(cmp: filecmp.dircmp, rel: str) -> None:
        diffs.extend(f"{rel}{n} only on one side" for n in cmp.left_only + cmp.right_only if n != ".work")
        _, mismatch, errors = filecmp.cmpfiles(cmp.left, cmp.right, cmp.common_files, shallow=False)
        diffs.extend(f"{rel}{n}" for n in mismatch + errors)
        for name, sub in cmp.subdirs.items():
            if name != ".work":
                walk(sub, f"{rel}{name}/")

    walk(filecmp.dircmp(a, b), "")
    return diffs


@pytest.fixture(scope="module")
def trap_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("traps")
    shutil.copytree(sample_dir(), root, dirs_exist_ok=True)
    write_jsonl(root / "extra" / "2023-05-01_traps.messages.jsonl", TRAPS)
    write_jsonl(root / "extra" / "2023-05-02_later.messages.jsonl", LATER)
    return root


@pytest.fixture(scope="module")
def one_process(trap_source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return run_local(ALL, BuildSettings(source=str(trap_source)), tmp_path_factory.mktemp("one"))


@pytest.mark.parametrize(("k", "workers"), [(5, 1), (3, 2)])
def test_sharded_build_is_byte_identical_to_the_one_process_build(
    trap_source: Path, one_process: dict[str, Path], tmp_path: Path, k: int, workers: int
) -> None:
    settings = BuildSettings(source=str(trap_source))
    one = one_process
    many = run_sharded_build(ALL, settings, tmp_path / "many", shards=k, workers=workers)
    for name in ALL:
        assert _same_tree(one[name], many[name]) == [], name
        build = json.loads((many[name] / "build.json").read_text())
        Ledger([StageRecord.from_dict(r) for r in build["ledger"]]).check()
    assert not (tmp_path / "many" / ".work" / "shards").exists()  # shard workspaces go once the outputs exist
    reasons = set(pl.read_parquet(many["oasst_en"] / "rejects").get_column("reason").to_list())
    assert {"tree_id_mismatch", "orphan", "cycle", "duplicate_message_id", "parent_rejected", "malformed_json"} <= (
        reasons
    )


@pytest.mark.parametrize("max_shard_bytes", [None, 150_000])
def test_real_data_sharded_equals_one_process(real_trees: Path, tmp_path: Path, max_shard_bytes: int | None) -> None:
    extra = {"max_shard_bytes": max_shard_bytes} if max_shard_bytes else {}
    settings = BuildSettings(source=str(real_trees), **extra)
    one = run_local(ALL, settings, tmp_path / "one")
    many = run_sharded_build(ALL, settings, tmp_path / "many", shards=4, workers=2)
    for name in ALL:
        assert _same_tree(one[name], many[name]) == [], name
    if max_shard_bytes:  # several files per table, cut from sizes summed over the shards' pieces
        assert len(list((many["oasst_en"] / "rejects").glob("*.parquet"))) > 1
        assert len(list((many["oasst_en"] / "data").glob("train_sft-*.parquet"))) > 1


def test_many_shards_merge_from_smaller_row_groups_with_the_same_bytes(
    real_trees: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chatdata import sharded_build

    assert [sharded_build.piece_rows(k) for k in (1, 34, 68, 136, 10**6)] == [2_000, 2_000, 1_000, 500, 100]
    settings = BuildSettings(source=str(real_trees))
    one = run_local(["oasst_en", "oasst_prefs"], settings, tmp_path / "one")
    monkeypatch.setattr(sharded_build, "_MERGE_HELD_ROWS", 400)  # 4 shards: pieces in groups of 100 rows
    pieces: list[tuple[int, int | None]] = []
    real_save = sharded_build.save

    def spy(frame: pl.DataFrame, path: Path, row_group_size: int | None = None) -> Path:
        if path.name.startswith("piece-") and not path.name.endswith(".keys.parquet"):
            pieces.append((frame.height, row_group_size))
        return real_save(frame, path, row_group_size=row_group_size)

    monkeypatch.setattr(sharded_build, "save", spy)
    many = run_sharded_build(["oasst_en", "oasst_prefs"], settings, tmp_path / "many", shards=4, workers=1)
    for name in ("oasst_en", "oasst_prefs"):
        assert _same_tree(one[name], many[name]) == [], name
    assert {g for _, g in pieces} == {100} and max(h for h, _ in pieces) > 200  # pieces of 3 groups and more


def test_partition_keeps_whole_trees_and_every_record(trap_source: Path, tmp_path: Path) -> None:
    part = partition_source(trap_source, tmp_path, 4, batch_rows=97)
    frames = [pl.read_parquet(r / "common" / "messages.parquet") for r in part.roots]
    assert sum(f.height for f in frames) == part.record.rows_out == sum(part.messages_per_shard)
    assert min(part.messages_per_shard) > 0.5 * max(part.messages_per_shard)  # trees spread evenly
    assert part.record.rows_in == sum(f.records for f in part.files)
    where = {mid: i for i, f in enumerate(frames) for mid in f.get_column("message_id").to_list()}
    # a message sits with its parent whenever the parent is a message (links decide, not claimed tree ids)
    for f in frames:
        for mid, parent in f.select("message_id", "parent_id").iter_rows():
            if parent in where:
                assert where[mid] == where[parent], (mid, parent)
    assert where["ta2"] == where["ta"] and where["tb2"] == where["tb"]
    assert where["o1"] == where["o2"] == where["c1"] == where["r2"] == 0
    rejects = [pl.read_parquet(r / "common" / "rejects-ingest.parquet").height for r in part.roots]
    assert rejects[0] == part.record.n_rejected > 0 and not any(rejects[1:])
    for f in frames:  # source order is kept inside a shard
        order = f.select("source", "source_line").rows()
        assert order == sorted(order, key=lambda r: (r[0].startswith("extra"), r[0], r[1]))


def test_route_sends_unreached_messages_to_shard_zero() -> None:
    ids = pl.DataFrame(
        {"mid": [1, 2, 3, 4, 5, 6, 2], "pid": [None, 1, 2, 99, 6, 5, None]},
        schema={"mid": pl.UInt64, "pid": pl.UInt64},
    )
    routes = dict(route(ids, 7).iter_rows())
    assert routes == {1: 1, 2: 1, 3: 1, 4: 0, 5: 0, 6: 0}


def test_merge_order_is_a_stable_global_sort() -> None:
    a = pl.DataFrame({"k": ["a", "c", "c", None]})
    b = pl.DataFrame({"k": ["b", "c", "d"]})
    assert merge_order([a, b], ("k",)).tolist() == [0, 1, 0, 0, 1, 1, 0]


def test_tokenizer_with_several_shards_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ChatdataError, match="--tokenizer runs unsharded"):
        run_sharded_build(["oasst_en"], BuildSettings(tokenizer="gpt2"), tmp_path, shards=2, workers=1)


def test_automatic_shard_count_follows_the_input_and_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    import chatdata.sharded_build as sb

    rows = pl.read_parquet(sample_dir() / "data" / "train-00000-of-00001.parquet").height
    assert sb.estimate_messages(sample_dir() / "data") >= rows
    monkeypatch.setattr(sb, "TARGET_SHARD_MESSAGES", 1000)
    k1, k2 = sb.auto_shards(sample_dir(), 1), sb.auto_shards(sample_dir(), 2)
    assert k1 >= 3 and k2 % 2 == 0 and k1 <= k2 <= k1 + 1
    monkeypatch.setattr(sb, "TARGET_SHARD_MESSAGES", 10**9)
    assert sb.auto_shards(sample_dir(), 2) == 1
