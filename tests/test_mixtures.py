"""StarChat-α and StarChat2: Dolly, chat and preference sources mixed with oasst, recipes as files, weights,
mixture-wide duplicate and leak checks; every output loads with `datasets` and passes TRL's data utilities."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from builds import HUB_BENCHMARKS, build_recipes, run
from chat_tokenizer import byte_level_bpe
from compare import assert_same_tree

from chatdata.errors import SpecError
from chatdata.ledger import Ledger, StageRecord
from chatdata.recipes import get_recipe, load_recipe_file

DATA = Path(__file__).parent / "data" / "sources"
FIXTURES = [
    "oasst=bundled-sample",
    f"dolly={DATA / 'dolly' / 'databricks-dolly-15k.jsonl'}",
    f"ultrafeedback={DATA / 'ultrafeedback'}",
    f"orca={DATA / 'orca' / 'orca_rlhf.jsonl'}",
]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_recipes(
        ["starchat_alpha", "starchat2_prefs"], tmp_path_factory.mktemp("mix"), source=FIXTURES, benchmark=HUB_BENCHMARKS
    )


def _build(folder: Path) -> dict:
    return json.loads((folder / "build.json").read_text())


def test_starchat_alpha_blends_oasst_threads_with_dolly(mixed: dict[str, Path], tmp_path: Path) -> None:
    folder = mixed["starchat_alpha"]
    build = _build(folder)
    Ledger([StageRecord.from_dict(r) for r in build["ledger"]]).check()
    assert build["recipe"]["source_order"] == ["oasst", "dolly"] and build["sources"]["dolly"]["format"] == "dolly"
    rows = pl.read_parquet(folder / "data")
    by_source = dict(rows.group_by("source").len().iter_rows())
    assert set(by_source) == {"oasst", "dolly"}
    assert build["mix"]["dolly"]["train_sft"] + build["mix"]["dolly"]["test_sft"] == by_source["dolly"]
    dolly = rows.filter(pl.col("source") == "dolly")
    assert dolly["category"].null_count() == 0 and dolly["source_file"].to_list()[0] == "databricks-dolly-15k.jsonl"
    with_context = dolly.filter(pl.col("messages").list.first().struct.field("content").str.contains("\n\n"))
    assert with_context.height > 0  # instruction, a blank line, the context
    # every Dolly record is a row or a reject, the bad ones with their reasons
    rejects = pl.read_parquet(folder / "rejects").filter(pl.col("source") == "dolly")
    assert {"malformed_json", "missing_field", "empty_response"} <= set(rejects["reason"])
    ingest = next(r for r in build["ledger"] if r["source"] == "dolly" and r["stage"] == "ingest")
    assert ingest["rows_in"] == by_source["dolly"] + rejects.height
    # oasst threads are exactly oasst_en's
    oasst_en = build_recipes(["oasst_en"], tmp_path / "en")["oasst_en"]
    mine = rows.filter(pl.col("source") == "oasst").get_column("dialogue_id").sort().to_list()
    assert mine == pl.read_parquet(oasst_en / "data").get_column("dialogue_id").sort().to_list()
    card = (folder / "README.md").read_text()
    assert "## Mixture" in card and "| oasst | ingest |" in card and "cc-by-sa-3.0" in card


def test_starchat2_prefs_mixes_oasst_ultrafeedback_and_orca_pairs(mixed: dict[str, Path]) -> None:
    folder = mixed["starchat2_prefs"]
    build = _build(folder)
    Ledger([StageRecord.from_dict(r) for r in build["ledger"]]).check()
    rows = pl.read_parquet(folder / "data")
    assert set(rows["source"]) == {"oasst", "ultrafeedback", "orca"}
    assert rows.columns[:8] == [
        "prompt",
        "prompt_id",
        "chosen",
        "rejected",
        "messages",
        "score_chosen",
        "score_rejected",
        "dialogue_id",
    ]
    assert rows.select(pl.col("messages") == pl.col("chosen")).to_series().all()
    assert (rows["chosen"] != rows["rejected"]).all()
    orca = rows.filter(pl.col("source") == "orca")
    assert orca["score_chosen"].null_count() == orca.height  # Orca pairs carry no scores
    assert orca.filter(pl.col("chosen").list.first().struct.field("role") == "system").height > 0
    uf = rows.filter(pl.col("source") == "ultrafeedback")
    assert uf["score_chosen"].null_count() == 0
    rejects = pl.read_parquet(folder / "rejects")
    assert "identical_replies" in set(rejects.filter(pl.col("source").is_in(["ultrafeedback", "orca"]))["reason"])


@pytest.mark.parametrize("recipe", ["starchat_alpha", "starchat2_prefs"])
def test_every_config_loads_and_passes_trl_data_utilities(mixed: dict[str, Path], recipe: str, tmp_path: Path) -> None:
    from datasets import load_dataset

    folder = mixed[recipe]
    build = _build(folder)
    for config, splits in build["outputs"].items():
        ds = load_dataset(str(folder), config, cache_dir=str(tmp_path / "hf"))
        assert {s: len(ds[s]) for s in ds} == {s: v["rows"] for s, v in splits.items() if v["rows"]}
    data_utils = pytest.importorskip("trl.data_utils", reason="trl is installed without deps by the test command")
    tokenizer = byte_level_bpe()
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    train = load_dataset(str(folder), "default", cache_dir=str(tmp_path / "hf"))[get_recipe(recipe).splits[0]]
    for row in train:
        if recipe == "starchat_alpha":
            assert data_utils.is_conversational({"messages": row["messages"]})
            text = data_utils.maybe_apply_chat_template({"messages": row["messages"]}, tokenizer)["text"]
            assert text.endswith("<|end|>\n") and row["messages"][-1]["content"] in text
        else:
            pair = data_utils.maybe_extract_prompt({k: row[k] for k in ("prompt", "chosen", "rejected")})
            assert pair["prompt"] == row["chosen"][:-1] and pair["chosen"] == row["chosen"][-1:]
            assert data_utils.is_conversational(pair)
            rendered = data_utils.maybe_apply_chat_template(pair, tokenizer)
            assert rendered["prompt"].endswith("<|assistant|>\n")
            assert rendered["chosen"].startswith(row["chosen"][-1]["content"])


WEIGHTED = """
name: my_mix
summary: oasst threads with half of the Dolly rows and a chat dataset
rebuilds: a test mixture
output: sft
splits: [train_sft, test_sft]
test_fraction: 0.0
decontaminate: false
sources:
  oasst:
    format: oasst
    flatten: threads
    filters: [english]
  dolly:
    format: dolly
    weight: 0.5
  chat:
    format: chat
"""


def test_a_recipe_file_with_weights_and_mixture_wide_duplicates(tmp_path: Path) -> None:
    recipe = tmp_path / "my_mix.yaml"
    recipe.write_text(WEIGHTED)
    dolly = tmp_path / "dolly.jsonl"
    lines = [
        json.dumps(
            {"instruction": f"Name prime number {i}.", "context": "", "response": f"P{i}.", "category": "open_qa"}
        )
        for i in range(10)
    ]
    dolly.write_text("\n".join(lines) + "\n")
    chat = tmp_path / "chat.jsonl"  # the same dialogue as Dolly row 3: an exact duplicate across sources
    same = {"messages": [{"role": "user", "content": "Name prime number 3."}, {"role": "assistant", "content": "P3."}]}
    chat.write_text(json.dumps(same) + "\n")
    sources = ["oasst=bundled-sample", f"dolly={dolly}", f"chat={chat}"]
    one = run([str(recipe)], tmp_path / "one", source=sources, shards=1)
    many = run([str(recipe)], tmp_path / "many", source=sources, shards=3)
    assert_same_tree(one.outputs["my_mix"], many.outputs["my_mix"])
    folder = one.outputs["my_mix"]
    build = _build(folder)
    assert build["weights"]["dolly"]["weight"] == 0.5
    rows = pl.read_parquet(folder / "data")
    rejects = pl.read_parquet(folder / "rejects")
    dups = rejects.filter((pl.col("reason") == "duplicate_dialogue") & pl.col("source").is_in(["dolly", "chat"]))
    assert dups.height == 1
    live_dolly = 9  # ten rows, one a duplicate of the chat row or the other way round
    kept = rows.filter(pl.col("source") == "dolly").height
    assert kept == build["weights"]["dolly"]["kept"] == int(0.5 * build["weights"]["dolly"]["train_rows"])
    assert build["weights"]["dolly"]["train_rows"] in (live_dolly, live_dolly + 1)
    fraction = rejects.filter(pl.col("reason") == "mixture_fraction")
    assert fraction.height == build["weights"]["dolly"]["train_rows"] - kept and set(fraction["source"]) == {"dolly"}
    Ledger([StageRecord.from_dict(r) for r in build["ledger"]]).check()


def test_malformed_recipe_files_are_one_line_errors(tmp_path: Path) -> None:
    for text, needle in (
        ("name: x\nsummary: s\nrebuilds: r\nsources: {}\n", "sources: Dictionary should have at least 1 item"),
        ("name: x\nsummary: s\nrebuilds: r\nsources:\n  oasst: {format: oasst}\n", "sources.oasst.flatten"),
        ("name: x\nsummary: s\nrebuilds: r\nsources:\n  d: {format: dolly, weight: 2}\n", "sources.d.weight"),
        (
            "name: x\nsummary: s\nrebuilds: r\nsources:\n  d: {format: alpaca}\n",
            "sources.d.format: unknown source format 'alpaca'; use one of chat, dolly, oasst, prefs",
        ),
        ("name: x\nsummary: s\nrebuilds: r\nbogus: 1\nsources:\n  d: {format: dolly}\n", "bogus"),
        ("name: x\noutput: prefs\nsummary: s\nrebuilds: r\nsources:\n  d: {format: dolly}\n", "cannot take"),
        ("name: [x\n", "invalid YAML"),
    ):
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(SpecError) as err:
            load_recipe_file(path)
        assert needle in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_cli_builds_a_recipe_file_with_named_sources(tmp_path: Path) -> None:
    recipe = tmp_path / "alpha.yaml"
    recipe.write_text(
        Path(get_recipe("starchat_alpha").path).read_text().replace("name: starchat_alpha", "name: alpha")
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatdata.cli",
            "build",
            str(recipe),
            "--source",
            "oasst=bundled-sample",
            "--source",
            f"dolly={DATA / 'dolly_parquet'}",
            *(x for b in HUB_BENCHMARKS for x in ("--benchmark", b)),
            "--out",
            str(tmp_path / "out"),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "dolly" in proc.stdout and (tmp_path / "out" / "alpha" / "README.md").is_file()
    rows = pl.read_parquet(tmp_path / "out" / "alpha" / "data")
    assert set(rows["source"]) == {"oasst", "dolly"}


def test_an_unbound_source_without_a_sample_names_its_default(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsummary: s\nrebuilds: r\nsources:\n  d:\n    format: chat\n    default: org/nowhere\n")
    proc = subprocess.run(
        [sys.executable, "-m", "chatdata.cli", "build", str(recipe), "--out", str(tmp_path / "o"), "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "org/nowhere" in proc.stderr.splitlines()[-1]
