from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from oasst_builders import m, write_jsonl

from chatdata import pipeline
from chatdata.ledger import Ledger, LedgerError, StageRecord
from chatdata.pipeline import BuildSettings, run_local


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_real_data_build_balances_and_loads(real_trees: Path, tmp_path: Path) -> None:
    out = run_local(["oasst_en"], BuildSettings(source=str(real_trees)), tmp_path / "out")["oasst_en"]
    build = json.loads((out / "build.json").read_text())
    ledger = Ledger([StageRecord.from_dict(r) for r in build["ledger"]])
    ledger.check()
    assert build["ledger"][0]["rows_in"] == 1167
    assert build["source"]["files"][0]["sha256"]
    rejects = pl.read_parquet(out / "rejects")
    assert rejects.height == ledger.total_rejected()
    rows = sum(v["rows"] for v in build["outputs"]["default"].values())
    # every input message is in an output dialogue or in the rejects table
    published = pl.read_parquet(out / "data")
    used = set(published["message_ids"].explode().to_list())
    rejected_msgs = set(rejects.filter(pl.col("unit") == "message")["message_id"].to_list())
    in_rejected_dialogues = (
        set(
            pl.Series([json.loads(p)["message_ids"] for p in rejects.filter(pl.col("unit") == "dialogue")["payload"]])
            .explode()
            .to_list()
        )
        if rejects.filter(pl.col("unit") == "dialogue").height
        else set()
    )
    assert len(used | rejected_msgs | in_rejected_dialogues) == 1167
    assert published.height == rows
    assert "user_id" not in published.columns

    from datasets import load_dataset

    ds = load_dataset(str(out), "default")
    assert {s: len(ds[s]) for s in ds} == {k: v["rows"] for k, v in build["outputs"]["default"].items()}
    assert ds["train_sft"][0]["messages"][0]["role"] == "user"
    rj = load_dataset(str(out), "rejects")
    assert len(rj["rejects"]) == rejects.height


def test_build_is_byte_identical(real_trees: Path, tmp_path: Path) -> None:
    a = run_local(["oasst_en"], BuildSettings(source=str(real_trees)), tmp_path / "a")["oasst_en"]
    b = run_local(["oasst_en"], BuildSettings(source=str(real_trees)), tmp_path / "b")["oasst_en"]
    assert _files(a) == _files(b)


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


def test_bad_input_build_accounts_for_everything(tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "bad.messages.jsonl", BAD)
    out = run_local(["oasst_en"], BuildSettings(source=str(src)), tmp_path / "out")["oasst_en"]
    build = json.loads((out / "build.json").read_text())
    Ledger([StageRecord.from_dict(r) for r in build["ledger"]]).check()
    rej = pl.read_parquet(out / "rejects")
    reasons = sorted(rej["reason"].to_list())
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
    assert build["outputs"]["default"]["train_sft"]["rows"] + build["outputs"]["default"]["test_sft"]["rows"] == 1


def test_crash_during_write_leaves_previous_output(
    real_trees: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    run_local(["oasst_en"], BuildSettings(source=str(real_trees)), out)
    before = _files(out / "oasst_en")

    def boom(*args: object, **kwargs: object) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr("chatdata.card.render_card", boom)
    with pytest.raises(RuntimeError):
        run_local(["oasst_en"], BuildSettings(source=str(real_trees), split_seed="x"), out)
    assert _files(out / "oasst_en") == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".oasst_en")] == []


def test_unbalanced_ledger_refuses_to_write() -> None:
    with pytest.raises(LedgerError, match="does not balance at stage 'x'"):
        Ledger([StageRecord("x", "messages", 10, 8, {"r": 1})]).check()
    with pytest.raises(LedgerError, match="starts with 5"):
        Ledger([StageRecord("a", "m", 10, 9, {"r": 1}), StageRecord("b", "m", 5, 5)]).check()


def test_stage_contract_lists_every_stage() -> None:
    for stage in pipeline.STAGES:
        assert stage in pipeline.STAGE_FUNCS
        assert f"\n{stage}" in pipeline.__doc__  # the docstring table documents what each stage reads and writes


def test_recipes_share_identical_stages_within_one_tree(real_trees: Path, tmp_path: Path) -> None:
    work = tmp_path / "out" / ".work"
    run_local(["guanaco", "guanaco_uncensored"], BuildSettings(source=str(real_trees)), tmp_path / "out")
    a, b = work / "guanaco" / "dialogues.parquet", work / "guanaco_uncensored" / "dialogues.parquet"
    assert a.read_bytes() == b.read_bytes()
    memos = sorted(p.name.split("-")[0] for p in (work / "common" / "memo").iterdir())
    assert memos == ["flatten", "gates"]  # one memo per distinct (stage, inputs, settings), reused by the 2nd recipe
    # a new tree (different source) clears the memo before any recipe stage can read it
    src = write_jsonl(tmp_path / "other.messages.jsonl", BAD)
    run_local(["guanaco"], BuildSettings(source=str(src)), tmp_path / "out")
    ledger = json.loads((tmp_path / "out" / "guanaco" / "build.json").read_text())["ledger"]
    assert ledger[2]["stage"] == "gates" and ledger[2]["rows_in"] == ledger[1]["rows_out"]
    Ledger([StageRecord.from_dict(r) for r in ledger]).check()
