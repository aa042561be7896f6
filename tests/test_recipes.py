"""Every recipe built from the bundled sample: ledgers balance, every config and split loads, rules hold."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from builds import build_recipes
from chat_tokenizer import byte_level_bpe

from chatdata.ledger import Ledger, StageRecord
from chatdata.recipes import get_recipe
from chatdata.resources import sample_dir

ALL = ["oasst_en", "guanaco", "guanaco_uncensored", "oasst_prefs"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample-build")
    build_recipes(ALL, out)
    return out


@pytest.mark.parametrize("recipe", ALL)
def test_every_config_and_split_loads(built: Path, recipe: str) -> None:
    from datasets import load_dataset

    build = json.loads((built / recipe / "build.json").read_text())
    Ledger([StageRecord.from_dict(r) for r in build["ledger"]]).check()
    assert build["sources"]["oasst"]["spec"] == "bundled-sample"
    for config, splits in build["outputs"].items():
        ds = load_dataset(str(built / recipe), config)
        assert {s: len(ds[s]) for s in ds} == {s: v["rows"] for s, v in splits.items()}
    assert sum(v["rows"] for v in build["outputs"]["default"].values()) > 0


def test_every_config_loads_when_the_test_splits_are_empty(tmp_path: Path) -> None:
    """A source with no validation trees leaves every test split empty: the file is still written (schema, no row
    group), the card's YAML leaves the split out, and every config loads with `datasets`."""
    from datasets import Features, load_dataset

    train = pl.read_parquet(sample_dir() / "data" / "train-00000-of-00001.parquet")
    trees = train.get_column("message_tree_id").unique(maintain_order=True).head(60)
    source = tmp_path / "src" / "data"
    source.mkdir(parents=True)
    few = train.filter(pl.col("message_tree_id").is_in(trees.implode()))
    few.write_parquet(source / "train-00000-of-00001.parquet")
    build_recipes(ALL, tmp_path / "out", source=source.parent)
    for recipe in ALL:
        folder = tmp_path / "out" / recipe
        outputs = json.loads((folder / "build.json").read_text())["outputs"]
        train_split, test_split = get_recipe(recipe).splits
        assert outputs["default"][test_split]["rows"] == 0 and outputs["default"][train_split]["rows"] > 0
        (empty,) = outputs["default"][test_split]["files"]
        meta = pq.read_metadata(folder / empty["path"])
        assert (meta.num_rows, meta.num_row_groups) == (0, 0)
        for config, splits in outputs.items():
            ds = load_dataset(str(folder), config, cache_dir=str(tmp_path / "cache"))
            assert {s: len(ds[s]) for s in ds} == {s: v["rows"] for s, v in splits.items() if v["rows"]}
        # the empty file itself reads as 0 rows with its features (streaming: datasets <= 5.2 cannot materialise it)
        streamed = load_dataset(str(folder), data_files={test_split: empty["path"]}, streaming=True)
        assert list(streamed[test_split]) == []
        assert streamed[test_split].features == Features.from_arrow_schema(pq.read_schema(folder / empty["path"]))


def test_recipe_rules_on_the_sample(built: Path) -> None:
    def rows(recipe: str) -> pl.DataFrame:
        return pl.read_parquet(built / recipe / "data")

    guanaco = rows("guanaco")
    assert guanaco["message_tree_id"].n_unique() == guanaco.height  # one path per tree
    assert guanaco["text"].str.starts_with("### Human: ").all()
    assert guanaco["lang"].n_unique() > 3  # all languages
    unc = rows("guanaco_uncensored")
    assert set(unc["dialogue_id"]) < set(guanaco["dialogue_id"])
    assert (unc["matched_phrases"].list.len() == 0).all()
    en = rows("oasst_en")
    en_share = (
        en["lang_votes"]
        .list.eval(pl.element().filter(pl.element().struct.field("lang") == "en").struct.field("share").sum())
        .list.first()
    )
    assert ((en_share >= 0.4) | (en["lang_source"] == "root_lang")).all()  # english.yaml's min_score
    assert (en["lang"].str.starts_with("en")).all()
    prefs = rows("oasst_prefs")
    assert (prefs["score_chosen"] > prefs["score_rejected"]).all()
    assert prefs.select(pl.col("messages") == pl.col("chosen")).to_series().all()
    for recipe in ALL:
        frame = rows(recipe).join(
            pl.read_parquet(built / recipe / "data" / f"{get_recipe(recipe).splits[1]}-00000-of-00001.parquet")
            .select("message_tree_id")
            .unique(),
            on="message_tree_id",
            how="semi",
        )
        # no tree straddles train and test
        test_trees = set(frame["message_tree_id"])
        train = pl.read_parquet(built / recipe / "data" / f"{get_recipe(recipe).splits[0]}-00000-of-00001.parquet")
        assert not test_trees & set(train["message_tree_id"])
    rejects = pl.read_parquet(built / "oasst_en" / "rejects")
    forged = rejects.filter(pl.col("stage") == "render")
    assert forged["reason"].to_list() == ["special_token"]
    assert "<|end|>" in forged["evidence"][0] or "<|user|>" in forged["evidence"][0]


def test_build_with_tokenizer_records_mask_stats(tmp_path: Path) -> None:
    tok_dir = tmp_path / "tok"
    byte_level_bpe().save_pretrained(str(tok_dir))
    out = build_recipes(["oasst_prefs"], tmp_path / "out", tokenizer=str(tok_dir), max_length=64)
    build = json.loads((out["oasst_prefs"] / "build.json").read_text())
    masks = build["masks"]
    assert masks["convention"] == "starchat" and masks["max_length"] == 64
    for column in ("chosen", "rejected"):
        assert masks["columns"][column]["tokens"]["max"] > 0
        assert 0 < masks["columns"][column]["trained_share"] <= 1
    ledger = {r["stage"]: r for r in build["ledger"]}
    assert ledger["masks"]["rows_in"] == ledger["masks"]["rows_out"] + sum(ledger["masks"]["rejected"].values())
    Ledger([StageRecord.from_dict(r) for r in build["ledger"]]).check()
