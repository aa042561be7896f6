"""The build record (``build.json``): one schema, versioned, written by the write phase and read back whole; a
record of chatdata 0.1 (no version) is upgraded; anything else is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatdata.errors import SpecError
from chatdata.filters.specs import load_specs
from chatdata.record import RECORD_VERSION, BuildRecord, RecordError
from tests.builds import build_recipes


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("record") / "out"
    return build_recipes(["oasst_en", "starchat_alpha"], out, tokenizer="bundled")


def test_a_build_writes_the_declared_record_and_reads_it_back_byte_for_byte(built: dict[str, Path]) -> None:
    for folder in built.values():
        data = (folder / "build.json").read_bytes()
        record = BuildRecord.parse(data)
        assert record.record_version == RECORD_VERSION and record.to_json() == data
        assert sum(s.rows for s in record.outputs["default"].values()) > 0
        files = [f for splits in record.outputs.values() for s in splits.values() for f in s.files]
        assert files and all((folder / f.path).stat().st_size == f.bytes for f in files)
    mixed = BuildRecord.read(built["starchat_alpha"])
    assert set(mixed.sources) == {"oasst", "dolly"} and mixed.mix and mixed.weights
    assert list(mixed.ordered_sources()) == mixed.recipe["source_order"]
    masks = BuildRecord.read(built["oasst_en"]).masks
    assert masks is not None and masks.tokenizer == "bundled" and set(masks.columns) == {"messages"}
    # a column repeats none of the shared settings, so no resolved tokenizer path ties the record to a machine
    assert not {"tokenizer", "dialect", "convention", "max_length"} & set(masks.columns["messages"])


def test_a_record_of_chatdata_0_1_is_upgraded(built: dict[str, Path]) -> None:
    new = json.loads((built["oasst_en"] / "build.json").read_bytes())
    old = {k: v for k, v in new.items() if k not in ("record_version", "masks", "sources")}
    old["source"] = new["sources"]["oasst"]
    old["sources"] = new["sources"]
    masks = new["masks"]
    columns = {
        c: {**stats, "tokenizer": "/home/someone/tok", "dialect": masks["dialect"]}
        for c, stats in masks["columns"].items()
    }
    old["notes"] = {"masks": {k: masks[k] for k in ("tokenizer", "dialect", "convention", "max_length")} | columns}
    assert BuildRecord.parse(old).to_json() == BuildRecord.parse(new).to_json()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(future_section={"a": 1}), "future_section: Extra inputs are not permitted"),
        (lambda r: r.update(record_version=99), "record version 99, this chatdata reads 1"),
        (lambda r: r["outputs"]["default"]["train_sft"].pop("rows"), "outputs.default.train_sft.rows: Field required"),
        (lambda r: r["ledger"][0].update(rows_in="many"), "ledger.0.rows_in: Input should be a valid integer"),
    ],
)
def test_a_record_off_the_schema_is_refused_in_one_line(built: dict[str, Path], change, message: str) -> None:
    record = json.loads((built["oasst_en"] / "build.json").read_bytes())
    change(record)
    with pytest.raises(RecordError, match=message) as err:
        BuildRecord.parse(json.dumps(record), "x/build.json")
    assert "\n" not in str(err.value) and str(err.value).startswith("x/build.json: ")


def test_not_a_record_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match=r"no build\.json"):
        BuildRecord.read(tmp_path)
    (tmp_path / "build.json").write_text("[1, 2]")
    with pytest.raises(RecordError, match="not a JSON object"):
        BuildRecord.read(tmp_path)
    (tmp_path / "build.json").write_text("{oops")
    with pytest.raises(RecordError, match="not JSON"):
        BuildRecord.read(tmp_path)


def test_a_filter_spec_takes_only_keys_something_reads(tmp_path: Path) -> None:
    spec = tmp_path / "mine.yaml"
    spec.write_text("name: mine\nfilter: synthetic\nscope: {roles: all}\n")
    with pytest.raises(SpecError, match=r"unknown key\(s\) \['scope'\]"):
        load_specs([str(spec)])
