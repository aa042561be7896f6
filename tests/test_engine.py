"""The one engine: every record accounted for, the same bytes whatever the executor, shard or worker count."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import polars as pl
import pytest
from builds import build_recipes, run
from compare import assert_same_tree, files_of
from oasst_builders import m, write_jsonl

from chatdata import artifacts, engine, merge, stages
from chatdata.errors import ChatdataError
from chatdata.executors import InProcess, ProcessPool
from chatdata.ledger import Ledger, LedgerError, StageRecord
from chatdata.output import EmptyDatasetError
from chatdata.partition import REJECTS_FILE, partition_source, root_shards, route, shard_file
from chatdata.resources import sample_dir

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
BAD = [
    m("r", None, "prompter", text="How do I sort a list in Python?"),
    m("a", "r", "assistant", text="Use sorted().", rank=0),
    m("a2", "r", "assistant", text="Use list.sort().", rank=1, deleted=True),
    "{oops",
    m("o", "missing-parent", "assistant"),
    m("c1", "c2", "prompter"),
    m("c2", "c1", "assistant"),
    m("e", "a", "prompter", text=" "),
    m("r", None, "prompter", text="duplicate id"),
    {"message_id": "nt", "parent_id": "a", "role": "prompter"},
    m("de", None, "prompter", text="Wie sortiere ich eine Liste?", lang="de"),
    m("dea", "de", "assistant", text="Mit sorted().", rank=0),
]


def _outputs(folders: dict[str, Path]) -> dict[str, Path]:
    return {name: Path(folder) for name, folder in folders.items()}


@pytest.fixture(scope="module")
def trap_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("traps")
    shutil.copytree(sample_dir(), root, dirs_exist_ok=True)
    write_jsonl(root / "extra" / "2023-05-01_traps.messages.jsonl", TRAPS)
    write_jsonl(root / "extra" / "2023-05-02_later.messages.jsonl", LATER)
    return root


@pytest.fixture(scope="module")
def one_shard(trap_source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_recipes(ALL, tmp_path_factory.mktemp("one"), source=trap_source, shards=1)


# ------------------------------------------------------------------------------------------ accounting


def test_real_data_build_balances_and_loads(real_trees: Path, tmp_path: Path) -> None:
    out = build_recipes(["oasst_en"], tmp_path / "out", source=real_trees)["oasst_en"]
    build = json.loads((out / "build.json").read_text())
    ledger = Ledger([StageRecord.from_dict(r) for r in build["ledger"]])
    ledger.check()
    assert build["ledger"][0]["rows_in"] == 1167 and build["ledger"][0]["source"] == "oasst"
    assert build["sources"]["oasst"]["files"][0]["sha256"]
    rejects = pl.read_parquet(out / "rejects")
    assert rejects.height == ledger.total_rejected()
    assert set(rejects["source"]) == {"oasst"} and "source_file" in rejects.columns
    rows = sum(v["rows"] for v in build["outputs"]["default"].values())
    # every input message is in an output dialogue or in the rejects table
    published = pl.read_parquet(out / "data")
    used = set(published["message_ids"].explode().to_list())
    rejected_msgs = set(rejects.filter(pl.col("unit") == "message")["message_id"].to_list())
    dialogues = rejects.filter(pl.col("unit") == "dialogue")["payload"]
    in_rejected_dialogues = {mid for p in dialogues for mid in json.loads(p)["message_ids"]}
    assert len(used | rejected_msgs | in_rejected_dialogues) == 1167
    assert published.height == rows and set(published["source"]) == {"oasst"}
    assert "user_id" not in published.columns

    from datasets import load_dataset

    ds = load_dataset(str(out), "default")
    assert {s: len(ds[s]) for s in ds} == {k: v["rows"] for k, v in build["outputs"]["default"].items()}
    assert ds["train_sft"][0]["messages"][0]["role"] == "user"
    assert len(load_dataset(str(out), "rejects")["rejects"]) == rejects.height


def test_bad_input_build_accounts_for_everything(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "bad.messages.jsonl", BAD)
    out = build_recipes(["oasst_en"], tmp_path / "out", source=src)["oasst_en"]
    build = json.loads((out / "build.json").read_text())
    Ledger([StageRecord.from_dict(r) for r in build["ledger"]]).check()
    reasons = sorted(pl.read_parquet(out / "rejects")["reason"].to_list())
    assert reasons == sorted(
        [
            "malformed_json",
            "missing_field",
            "orphan",
            "cycle",
            "cycle",
            "empty_text",
            "duplicate_message_id",
            "deleted",
            "root_lang_not_target",
        ]
    )
    assert sum(v["rows"] for v in build["outputs"]["default"].values()) == 1


def test_a_recipe_left_empty_fails_with_the_reasons_unless_allowed(tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "de.messages.jsonl",
        [m("de", None, "prompter", text="Hallo?", lang="de"), m("dea", "de", "assistant", text="Hallo!", rank=0)],
    )
    with pytest.raises(EmptyDatasetError, match=r"no row left.*root_lang_not_target.*--allow-empty"):
        build_recipes(["oasst_en"], tmp_path / "out", source=src)
    assert not (tmp_path / "out" / "oasst_en").exists()
    out = build_recipes(["oasst_en"], tmp_path / "out", source=src, allow_empty=True)["oasst_en"]
    assert json.loads((out / "build.json").read_text())["outputs"]["default"]["train_sft"]["rows"] == 0


def test_build_is_byte_identical(real_trees: Path, tmp_path: Path) -> None:
    a = build_recipes(["oasst_en"], tmp_path / "a", source=real_trees)["oasst_en"]
    b = build_recipes(["oasst_en"], tmp_path / "b", source=real_trees)["oasst_en"]
    assert_same_tree(a, b)


def test_crash_during_write_leaves_previous_output(
    real_trees: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    build_recipes(["oasst_en"], out, source=real_trees)
    before = {name: (out / "oasst_en" / name).read_bytes() for name in files_of(out / "oasst_en")}

    def boom(*args: object, **kwargs: object) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr("chatdata.card.render.render_card", boom)
    with pytest.raises(RuntimeError):
        build_recipes(["oasst_en"], out, source=real_trees, split_seed="x")
    assert {name: (out / "oasst_en" / name).read_bytes() for name in files_of(out / "oasst_en")} == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".oasst_en")] == []


def test_unbalanced_ledger_refuses_to_write() -> None:
    with pytest.raises(LedgerError, match="does not balance at stage 'x'"):
        Ledger([StageRecord("x", "messages", 10, 8, {"r": 1})]).check()
    with pytest.raises(LedgerError, match="starts with 5"):
        Ledger([StageRecord("a", "m", 10, 9, {"r": 1}), StageRecord("b", "m", 5, 5)]).check()


def test_a_mixture_ledger_starts_the_mixture_with_every_source_summed() -> None:
    chain = [
        StageRecord("ingest", "records", 10, 9, {"r": 1}, source="a"),
        StageRecord("score", "dialogues", 9, 9, source="a"),
        StageRecord("ingest", "records", 4, 4, source="b"),
    ]
    Ledger([*chain, StageRecord("splits", "dialogues", 13, 12, {"d": 1})]).check()
    with pytest.raises(LedgerError, match="starts with 12 rows but 'a:score\\+b:ingest' passed 13"):
        Ledger([*chain, StageRecord("splits", "dialogues", 12, 12)]).check()


def test_every_stage_declares_its_columns_and_is_documented() -> None:
    for stage in (*stages.OASST_STAGES, *stages.ROW_STAGES):
        assert stage.reads and isinstance(stage.writes, tuple), stage.name
        assert f"\n{stage.name}" in stages.__doc__  # the docstring table says what each reads and writes
    assert stages.OASST_STAGES[0].name == "structure"  # a stage like the others


def test_the_suite_checks_every_stage_it_runs() -> None:
    import os

    from chatdata.shards import CHECK_STAGES

    assert os.environ.get(CHECK_STAGES)  # set by conftest: every build below runs checked


def _swap(monkeypatch: pytest.MonkeyPatch, name: str, **changes: object) -> None:
    import dataclasses

    for group in ("OASST_STAGES", "ROW_STAGES"):
        swapped = tuple(dataclasses.replace(s, **changes) if s.name == name else s for s in getattr(stages, group))
        monkeypatch.setattr(stages, group, swapped)


@pytest.mark.parametrize(
    ("name", "column"),
    [("render", stages.M), ("filters", "lang_score"), ("gates", "parent_id"), ("flatten", "depth"),
     ("structure", "text"), ("score", stages.M)],
)  # fmt: skip
def test_a_stage_that_reads_an_undeclared_column_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, column: str
) -> None:
    stage = next(s for s in (*stages.OASST_STAGES, *stages.ROW_STAGES) if s.name == name)
    _swap(monkeypatch, name, reads=tuple(c for c in stage.reads if c != column))
    with pytest.raises(pl.exceptions.ColumnNotFoundError, match=column):
        build_recipes(["oasst_en", "oasst_prefs"], tmp_path / "out")


def test_a_stage_that_writes_an_undeclared_column_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    render = next(s for s in stages.ROW_STAGES if s.name == "render")

    def sneaky(frame: pl.DataFrame, job: stages.Job, shard: stages.Shard) -> stages.StageOut:
        out = render.run(frame, job, shard)
        return stages.StageOut(out.frame.with_columns(pl.lit(1).alias("sneaky")), out.rejects, out.record)

    _swap(monkeypatch, "render", run=sneaky)
    with pytest.raises(AssertionError, match=r"render wrote undeclared columns \['sneaky'\]"):
        build_recipes(["oasst_en", "oasst_prefs"], tmp_path / "out")


def test_a_checked_build_equals_an_unchecked_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Checking hands each stage only its columns and joins the rest back: the bytes are those of a plain run."""
    from chatdata.shards import CHECK_STAGES

    recipes = ["oasst_en", "guanaco_uncensored", "oasst_prefs", "starchat_alpha"]
    checked = build_recipes(recipes, tmp_path / "checked", source=None)
    monkeypatch.delenv(CHECK_STAGES)
    plain = build_recipes(recipes, tmp_path / "plain", source=None)
    for name in recipes:
        assert_same_tree(checked[name], plain[name])


def test_recipes_share_identical_stages_within_a_shard(real_trees: Path, tmp_path: Path, monkeypatch) -> None:
    calls: list[str] = []
    real = stages._flatten

    def counted(frame: pl.DataFrame, job: stages.Job, shard: stages.Shard) -> stages.StageOut:
        calls.append(job.recipe.name)
        return real(frame, job, shard)

    monkeypatch.setattr(
        stages,
        "OASST_STAGES",
        tuple(s if s.name != "flatten" else dataclasses.replace(s, run=counted) for s in stages.OASST_STAGES),
    )
    out = build_recipes(["guanaco", "guanaco_uncensored"], tmp_path / "out", source=real_trees)
    assert calls == ["guanaco"]  # the second recipe reuses the first one's gates and paths
    ledgers = [json.loads((out[r] / "build.json").read_text())["ledger"] for r in out]
    assert ledgers[0][:3] == ledgers[1][:3]


# ------------------------------------------------------------------------------------------ executors and shards


@pytest.mark.parametrize(("k", "workers"), [(5, 1), (3, 2)])
def test_any_shard_and_worker_count_gives_the_same_bytes(
    trap_source: Path, one_shard: dict[str, Path], tmp_path: Path, k: int, workers: int
) -> None:
    executor = ProcessPool(workers) if workers > 1 else InProcess()
    with executor:
        result = run(ALL, tmp_path / "many", source=trap_source, shards=k, executor=executor)
    assert result.shards == {str(trap_source): k}
    for name in ALL:
        assert_same_tree(one_shard[name], result.outputs[name])
        Ledger(
            [StageRecord.from_dict(r) for r in json.loads((result.outputs[name] / "build.json").read_text())["ledger"]]
        ).check()
    reasons = set(pl.read_parquet(result.outputs["oasst_en"] / "rejects").get_column("reason").to_list())
    assert {"tree_id_mismatch", "orphan", "cycle", "duplicate_message_id", "parent_rejected", "malformed_json"} <= (
        reasons
    )


@pytest.mark.parametrize("max_shard_bytes", [None, 150_000])
def test_real_data_sharded_equals_one_shard(real_trees: Path, tmp_path: Path, max_shard_bytes: int | None) -> None:
    extra = {"max_shard_bytes": max_shard_bytes} if max_shard_bytes else {}
    one = build_recipes(ALL, tmp_path / "one", source=real_trees, shards=1, **extra)
    many = build_recipes(ALL, tmp_path / "many", source=real_trees, shards=4, **extra)
    for name in ALL:
        assert_same_tree(one[name], many[name])
    if max_shard_bytes:  # several files per table, cut from sizes summed over the shards
        assert len(list((many["oasst_en"] / "rejects").glob("*.parquet"))) > 1
        assert len(list((many["oasst_en"] / "data").glob("train_sft-*.parquet"))) > 1


def test_small_merge_chunks_give_the_same_bytes(real_trees: Path, tmp_path: Path, monkeypatch) -> None:
    one = build_recipes(["oasst_en", "oasst_prefs"], tmp_path / "one", source=real_trees, shards=1)
    monkeypatch.setattr(merge, "READ_ROWS", 7)  # readers hold 7 rows, chunks interleave 13 rows of 4 shards
    monkeypatch.setattr(merge, "CHUNK_ROWS", 13)
    many = build_recipes(["oasst_en", "oasst_prefs"], tmp_path / "many", source=real_trees, shards=4)
    for name in ("oasst_en", "oasst_prefs"):
        assert_same_tree(one[name], many[name])


def test_mask_validation_runs_per_shard_with_merged_statistics(real_trees: Path, tmp_path: Path) -> None:
    from chat_tokenizer import byte_level_bpe

    tok = tmp_path / "tok"
    byte_level_bpe().save_pretrained(str(tok))
    one = build_recipes(
        ["oasst_prefs"], tmp_path / "one", source=real_trees, shards=1, tokenizer=str(tok), max_length=96
    )
    many = build_recipes(
        ["oasst_prefs"], tmp_path / "many", source=real_trees, shards=3, tokenizer=str(tok), max_length=96
    )
    assert_same_tree(one["oasst_prefs"], many["oasst_prefs"])
    masks = json.loads((many["oasst_prefs"] / "build.json").read_text())["masks"]
    columns = masks["columns"]
    assert masks["max_length"] == 96 and columns["chosen"]["rows"] == columns["rejected"]["rows"] > 0
    assert columns["chosen"]["tokens"]["max"] > 0 and 0 < columns["chosen"]["trained_share"] <= 1


def test_partition_keeps_whole_trees_and_every_record(trap_source: Path, tmp_path: Path) -> None:
    part = partition_source(trap_source, tmp_path, 4, batch_rows=97)
    frames = [artifacts.load(shard_file(tmp_path, i)) for i in range(4)]
    (record,) = part.records
    assert sum(f.height for f in frames) == record.rows_out == sum(part.rows_per_shard)
    assert min(part.rows_per_shard) > 0.5 * max(part.rows_per_shard)  # trees spread evenly
    assert record.rows_in == sum(f.records for f in part.files)
    where = {mid: i for i, f in enumerate(frames) for mid in f.get_column("message_id").to_list()}
    # a message sits with its parent whenever the parent is a message (links decide, not claimed tree ids)
    for f in frames:
        for mid, parent in f.select("message_id", "parent_id").iter_rows():
            if parent in where:
                assert where[mid] == where[parent], (mid, parent)
    assert where["ta2"] == where["ta"] and where["tb2"] == where["tb"]
    assert where["o1"] == where["o2"] == where["c1"] == where["r2"] == 0
    assert artifacts.load(tmp_path / REJECTS_FILE).height == record.n_rejected > 0
    for f in frames:  # source order is kept inside a shard
        order = f.select("source", "source_line").rows()
        assert order == sorted(order, key=lambda r: (r[0].startswith("extra"), r[0], r[1]))


def test_route_sends_unreached_messages_to_shard_zero() -> None:
    ids = pl.DataFrame(
        {"mid": [1, 2, 3, 4, 5, 6, 2, 7, 8], "pid": [None, 1, 2, 99, 6, 5, None, None, 7]},
        schema={"mid": pl.UInt64, "pid": pl.UInt64},
    )
    roots = pl.DataFrame(
        {"mid": [1, 7], "message_id": ["b-root", "a-root"]}, schema={"mid": pl.UInt64, "message_id": pl.String}
    )
    routes = dict(route(ids, 2, root_shards(roots, 2)).iter_rows())
    assert routes == {1: 1, 2: 1, 3: 1, 7: 0, 8: 0, 4: 0, 5: 0, 6: 0}  # trees by id range: "a-root" < "b-root"


def test_root_shards_cut_the_ids_into_ordered_ranges() -> None:
    ids = [f"t{i:04d}" for i in range(1000)]
    roots = pl.DataFrame(
        {"mid": list(range(1000)), "message_id": ids[::-1]}, schema={"mid": pl.UInt64, "message_id": pl.String}
    )
    shards = root_shards(roots, 4).join(roots, on="mid").sort("message_id")
    assert shards.get_column("shard").is_sorted() and shards.get_column("shard").value_counts().height == 4
    counts = shards.group_by("shard").len().sort("shard").get_column("len").to_list()
    assert counts == [250, 250, 250, 250]


def test_merge_order_is_a_stable_global_sort() -> None:
    a = pl.DataFrame({"k": ["a", "c", "c", None]})
    b = pl.DataFrame({"k": ["b", "c", "d"]})
    assert merge.merge_order([a, b], ("k",)).tolist() == [0, 1, 0, 0, 1, 1, 0]


def test_automatic_shard_count_follows_the_input_not_the_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    resolved = engine.resolve(engine.SourceRef(engine.BUNDLED, "oasst"), "")
    rows = pl.read_parquet(sample_dir() / "data" / "train-00000-of-00001.parquet").height
    assert engine.estimate_rows(resolved) >= rows
    monkeypatch.setattr(engine, "TARGET_SHARD_MESSAGES", 1000)
    n = math.floor(engine.estimate_rows(resolved) / 1000 + 0.5)
    assert engine.auto_shards(engine.estimate_rows(resolved)) == n + n % 2 >= 4  # even: two workers end together
    monkeypatch.setattr(engine, "TARGET_SHARD_MESSAGES", 10**9)
    assert engine.auto_shards(engine.estimate_rows(resolved)) == 1


def test_unknown_sources_and_bindings_are_one_line_errors(tmp_path: Path) -> None:
    for kwargs, needle in (
        ({"source": tmp_path / "nope"}, "neither an existing path"),
        ({"source": ["dolly=x.jsonl"]}, "'dolly' is not a source of oasst_en"),
        ({"source": ["a.jsonl", "b.jsonl"]}, "more than one unnamed source"),
    ):
        with pytest.raises(ChatdataError) as err:
            build_recipes(["oasst_en"], tmp_path / "o", **kwargs)
        assert needle in str(err.value) and "\n" not in str(err.value)
