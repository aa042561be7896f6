"""Dataset cards: YAML metadata that matches the files, sections present only with their data, escaping of
hostile strings, byte-identical README and PNGs, and the real build's card loading with ``datasets``."""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest
import yaml
from writes import write_table

from chatdata.card.markdown import code_block, dump_yaml, md_code, md_link, md_text
from chatdata.card.metadata import card_metadata, features_yaml, size_category
from chatdata.card.metadata import ordered_splits as _ordered_splits
from chatdata.card.render import PLOT_FILES, card_context, render_card
from chatdata.card.statistics import REJECT_COLUMNS
from chatdata.card.statistics import reject_frame as _rejects
from chatdata.card.statistics import reject_paths as _reject_paths
from chatdata.errors import ChatdataError
from chatdata.output import file_entry
from chatdata.record import BuildRecord
from chatdata.schema import REJECT_SCHEMA

MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
LANGS = ["en"] * 9 + ["es"] * 6 + ["de"] * 3 + ["ru"] * 2 + ["pt-BR", "fr", "zh", "ca"]
WORDS = [
    "the",
    "model",
    "answers",
    "about",
    "python",
    "code",
    "data",
    "history",
    "music",
    "cooking",
    "travel",
]
HOSTILE_SOURCE = "x\n---\nlicense: mit"
HOSTILE_PHRASE = "<script>alert(1)</script>"


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _dialogue(rng: random.Random, turns: int, phrase: str | None = None) -> list[dict[str, str]]:
    out = []
    for t in range(turns):
        content = _text(rng, rng.randint(3, 120))
        if phrase and t == turns - 1:
            content += f" {phrase} "
        out.append({"role": "user" if t % 2 == 0 else "assistant", "content": content})
    return out


def _ledger(n_in: int, final: int, dropped: dict[str, int], unit: str = "dialogues") -> list[dict[str, Any]]:
    base = {"moved": {}, "notes": {}, "produced": None, "produced_unit": None, "rejected": {}}
    after_gates = n_in - 5
    dialogues = final + sum(dropped.values())
    return [
        {**base, "stage": "ingest", "unit": "records", "rows_in": n_in, "rows_out": n_in},
        {
            **base,
            "stage": "gates",
            "unit": "messages",
            "rows_in": n_in,
            "rows_out": after_gates,
            "rejected": {"synthetic": 5},
        },
        {
            **base,
            "stage": "flatten",
            "unit": "messages",
            "rows_in": after_gates,
            "rows_out": after_gates,
            "produced": dialogues,
            "produced_unit": unit,
            "notes": {
                "dialogues_per_tree": {"mean": 1.0, "p50": 1.0, "p95": 1.0, "max": 1.0},
                "tokenizer": None,
            },
        },
        {
            **base,
            "stage": "filters",
            "unit": unit,
            "rows_in": dialogues,
            "rows_out": final,
            "rejected": dropped,
        },
        {**base, "stage": "splits", "unit": unit, "rows_in": final, "rows_out": final},
    ]


def make_folder(root: Path, kind: str, *, n: int = 60, hostile: bool = False, seed: int = 0) -> tuple[Path, dict]:
    """A dataset folder as ``write_dataset`` lays it out, for ``kind`` (sft, guanaco, uncensored, prefs),
    with rejects that carry phrases and decontamination evidence, and optional hostile strings everywhere."""
    rng = random.Random(seed)
    name = {
        "sft": "oasst_en",
        "guanaco": "guanaco",
        "uncensored": "guanaco_uncensored",
        "prefs": "oasst_prefs",
    }[kind]
    folder = root / name
    folder.mkdir(parents=True)
    splits = ("train_prefs", "test_prefs") if kind == "prefs" else ("train_sft", "test_sft")
    phrase = HOSTILE_PHRASE if hostile else "as an ai language model"
    rows: list[dict[str, Any]] = []
    for i in range(n):
        lang = "en" if kind in ("sft", "prefs") else LANGS[i % len(LANGS)]
        msgs = _dialogue(rng, rng.choice([2, 2, 4, 4, 4, 6]))
        row: dict[str, Any] = {
            "dialogue_id": f"d{i:04d}",
            "message_tree_id": f"t{i:04d}",
            "messages": msgs,
            "lang": lang,
            "split": splits[1] if i % 10 == 0 else splits[0],
        }
        if kind == "prefs":
            chosen = msgs[:2]
            row.update(
                prompt=chosen[0]["content"],
                prompt_id=hashlib.sha256(chosen[0]["content"].encode()).hexdigest(),
                chosen=chosen,
                rejected=[chosen[0], {"role": "assistant", "content": _text(rng, 5)}],
                messages=chosen,
                score_chosen=10.0,
                score_rejected=float(rng.choice([0, 0, 5])),
            )
        if kind in ("guanaco", "uncensored"):
            row["text"] = "".join(
                f"### {'Human' if m['role'] == 'user' else 'Assistant'}: {m['content']}" for m in msgs
            )
            row["lang_detected"] = lang.split("-")[0] if i % 7 else "en"
            row["lang_score"] = round(0.5 + (i % 5) / 10, 2)
            row["lang_source"] = "turns" if i % 3 else "root_lang"
        if kind == "uncensored":
            row["matched_phrases"] = []
        row["n_tokens"] = sum(len(m["content"].split()) for m in row["messages"]) + 4
        row["n_trained"] = row["n_tokens"] // 2
        rows.append(row)
    frame = pl.DataFrame(rows, infer_schema_length=None)
    for col in ("messages", "chosen", "rejected"):
        if col in frame.columns:
            frame = frame.with_columns(pl.col(col).cast(MESSAGES))
    if "matched_phrases" in frame.columns:
        frame = frame.with_columns(pl.col("matched_phrases").cast(pl.List(pl.String)))

    reason = "bad|reason" if hostile else "uncensor_phrase"
    rejects = [
        {
            "unit": "message",
            "stage": "gates",
            "filter": "synthetic",
            "reason": "synthetic",
            "evidence": "model_name=chip20b",
            "message_id": f"m{i}",
        }
        for i in range(5)
    ]
    phrase_filter = "uncensor_starchat_beta" if kind == "uncensored" else None
    n_phrase = 7 if phrase_filter else 0
    for i in range(n_phrase):
        matched = [phrase, "openassistant"] if i % 2 else [phrase]
        payload = {"dialogue_id": f"x{i}", "messages": _dialogue(rng, 2, phrase), "matched_phrases": matched}
        rejects.append(
            {
                "unit": "dialogue",
                "stage": "filters",
                "filter": phrase_filter,
                "reason": reason,
                "evidence": "matched=" + ", ".join(json.dumps(m) for m in matched),
                "payload": json.dumps(payload),
            }
        )
    for i in range(3):
        rejects.append(
            {
                "unit": "dialogue",
                "stage": "filters",
                "filter": "decontam_humaneval",
                "reason": "humaneval_overlap",
                "evidence": f"10-gram overlap with humaneval:HumanEval/{i % 2} «from typing import list def»",
            }
        )
    if hostile:
        rejects.append(
            {
                "unit": "dialogue",
                "stage": "filters",
                "filter": "decontam_humaneval",
                "reason": "a|b",
                "evidence": "```\n# injected heading\n---\n<img src=x onerror=alert(1)> | `x`",
            }
        )
    rej = pl.DataFrame(rejects, schema_overrides={"source_line": pl.Int64}, infer_schema_length=None)
    rej = rej.select(
        [pl.col(c).cast(t) if c in rej.columns else pl.lit(None, t).alias(c) for c, t in REJECT_SCHEMA.items()]
    )
    dropped = {f"{phrase_filter}: {reason}": n_phrase} if phrase_filter else {}
    dropped["decontam_humaneval: humaneval_overlap"] = 3
    if hostile:
        dropped["decontam_humaneval: a|b"] = 1

    outputs: dict[str, dict[str, Any]] = {"default": {}, "rejects": {}}
    publish = [c for c in frame.columns if c != "split"]
    for split in splits:
        part = frame.filter(pl.col("split") == split).select(publish)
        paths = write_table(part, folder / "data", split)
        outputs["default"][split] = {"rows": part.height, "files": [file_entry(p, folder) for p in paths]}
    paths = write_table(rej, folder / "rejects", "rejects")
    outputs["rejects"]["rejects"] = {"rows": rej.height, "files": [file_entry(p, folder) for p in paths]}

    filters = [
        {
            "name": "synthetic",
            "filter": "synthetic",
            "level": "message",
            "settings": {},
            "version": 1,
            "description": "line one\n---\nlicense: mit" if hostile else "Drop model-written messages.",
            "sha256": "0" * 64,
        },
        {
            "name": "decontam_humaneval",
            "filter": "decontam",
            "level": "dialogue",
            "version": 1,
            "settings": {"n": 10},
            "description": "HumanEval 10-gram overlap.",
            "sha256": "1" * 64,
        },
    ]
    if phrase_filter:
        filters.append(
            {
                "name": phrase_filter,
                "filter": "uncensor_phrases",
                "level": "dialogue",
                "version": 1,
                "settings": {"roles": "all", "join_turns": True},
                "description": f"phrases incl. {phrase}",
                "sha256": "2" * 64,
            }
        )
    recipe = {
        "name": name,
        "summary": "<img src=x onerror=alert(1)> summary" if hostile else f"test {name}",
        "rebuilds": "x/y",
        "reference": "javascript:alert(1)" if hostile else "https://huggingface.co/datasets/x/y",
        "sources": {
            "oasst": {
                "format": "oasst",
                "flatten": "pairs" if kind == "prefs" else "threads",
                "keep_user_ended": False,
                "filters": [f["name"] for f in filters[1:]],
                "weight": 1.0,
            }
        },
        "output": "prefs" if kind == "prefs" else "sft",
        "text_format": "guanaco" if kind in ("guanaco", "uncensored") else None,
        "splits": list(splits),
        "languages": ["en"] if kind in ("sft", "prefs") else ["multilingual"],
        "notes": ["a note"],
    }
    src_path = "/home/me/secret/oasst|dump.jsonl" if hostile else "oasst.trees.jsonl"
    build = {
        "record_version": 1,
        "chatdata_version": "9.9.9",
        "recipe": recipe,
        "settings": {"leak_policy": "move", "tokenizer": "/home/me/secret/tok" if hostile else None},
        "settings_sha256": "f" * 64,
        "sources": {
            "oasst": {
                "spec": HOSTILE_SOURCE if hostile else "OpenAssistant/oasst1",
                "revision": None if hostile else "a" * 40,
                "format": "oasst",
                "files": [{"path": src_path, "sha256": "b" * 64, "format": "trees", "records": n + 5}],
            }
        },
        "filters": filters,
        "ledger": _ledger(n + 5, n, dropped),
        "outputs": outputs,
        "masks": {
            "tokenizer": "/home/me/secret/tok" if hostile else "bigcode/starcoder",
            "dialect": "starchat",
            "convention": "starchat",
            "max_length": 2048,
            "columns": {
                "messages": {
                    "rows": n,
                    "ok": n,
                    "rejected": 0,
                    "reasons": {"truncated": 2},
                    "tokens": {"mean": 50.0, "p50": 40, "p95": 90, "max": 120},
                    "trained_share": 0.5,
                    "notes": [f"added {phrase}"],
                }
            },
        },
    }
    (folder / "build.json").write_bytes(orjson.dumps(build, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return folder, build


def front_matter(text: str) -> dict[str, Any]:
    assert text.startswith("---\n")
    head, _, _ = text[4:].partition("\n---\n")
    meta = yaml.safe_load(head)
    assert isinstance(meta, dict)
    return meta


def outside_code(text: str) -> str:
    """``text`` without fenced code blocks (a block closes on a fence at least as long as its opener)."""
    out, fence = [], ""
    for line in text.splitlines():
        run = re.match(r"^(`{3,})", line)
        if fence:
            if run and len(run.group(1)) >= len(fence) and not line.strip("`"):
                fence = ""
        elif run:
            fence = run.group(1)
        else:
            out.append(line)
    assert not fence, "unclosed code block"
    return "\n".join(out)


def check_metadata_matches_files(folder: Path, meta: dict[str, Any]) -> None:
    from datasets import Features

    infos = {i["config_name"]: i for i in meta["dataset_info"]}
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert set(infos) == set(configs)
    assert [c for c in configs.values() if c.get("default")] == [configs["default"]]
    present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
    for name, config in configs.items():
        info = infos[name]
        total = 0
        for entry, split_info in zip(config["data_files"], info["splits"], strict=True):
            assert entry["split"] == split_info["name"]
            assert re.fullmatch(r"\w+(\.\w+)*", entry["split"])
            patterns = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            files = sorted({p for p in present for pat in patterns if Path(p).match(pat) or p == pat})
            assert files, entry
            assert split_info["num_examples"] == sum(pq.read_metadata(folder / f).num_rows for f in files)
            assert split_info["num_bytes"] == sum((folder / f).stat().st_size for f in files)
            total += split_info["num_bytes"]
            schema = pq.read_schema(folder / files[0])
            assert info["features"] == Features.from_arrow_schema(schema)._to_yaml_list()
        assert info["download_size"] == info["dataset_size"] == total


def check_loads(folder: Path, meta: dict[str, Any], cache: Path) -> None:
    """``datasets.load_dataset(folder, config)`` works for every config and gives the card's row counts."""
    from datasets import load_dataset

    for info in meta["dataset_info"]:
        ds = load_dataset(str(folder), info["config_name"], cache_dir=str(cache))
        assert {s: ds[s].num_rows for s in ds} == {s["name"]: s["num_examples"] for s in info["splits"]}


# ------------------------------------------------------------------------------------------------ escaping


def test_md_text_neutralises_html_markdown_and_blocks() -> None:
    out = md_text("<script>alert(1)</script> a|b `x` *y* [l](u) & \n---\n# h")
    assert "<" not in out and ">" not in out and "\n" not in out
    assert "&lt;script&gt;" in out and "&amp;" in out
    assert "\\|" in out and "\\`" in out and "\\*" in out and "\\[" in out and "\\#" in out
    assert md_text("---").startswith("\\-") and md_text("1. x").startswith("\\1.")
    assert md_text("3.25") == "3.25"  # a number is not an ordered-list marker


def test_code_spans_and_blocks_cannot_be_closed_early() -> None:
    span = md_code("a ``b`` | c")
    assert span.startswith("```") and span.endswith("```") and "\\|" in span
    block = code_block("x\n````\n# not a heading\n", "yaml")
    fence = block.split("\n", 1)[0].rstrip("yaml")
    assert len(fence) == 5 and block.endswith("\n" + fence)
    assert code_block("a\x00b\u2028c") == "```\na b c\n```"


def test_links_only_for_http_urls() -> None:
    assert md_link("x", "https://huggingface.co/datasets/a/b") == "[x](https://huggingface.co/datasets/a/b)"
    assert md_link("x", "javascript:alert(1)") == "x"
    assert md_link("x", "https://a.b/c) [evil](https://e.f") == "x"


def test_yaml_dump_keeps_hostile_strings_on_one_line() -> None:
    data = {"source_datasets": [HOSTILE_SOURCE], "tab": "a\tb", "nel": "a\u2028b", "plain": "ok"}
    out = dump_yaml(data)
    assert yaml.safe_load(out) == data
    assert not any(line.startswith(("---", "license")) for line in out.splitlines())


def test_size_categories() -> None:
    assert [size_category(n) for n in (0, 999, 1000, 99_999, 100_000, 10**7)] == [
        "n<1K",
        "n<1K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
        "10M<n<100M",
    ]


def test_features_match_datasets_for_usual_types() -> None:
    import pyarrow as pa
    from datasets import Features

    schema = pa.schema(
        [
            ("a", pa.string()),
            ("b", pa.int32()),
            ("c", pa.float64()),
            ("d", pa.bool_()),
            ("e", pa.list_(pa.string())),
            ("f", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
            ("g", pa.large_string()),
            ("h", pa.list_(pa.list_(pa.int64()))),
            ("i", pa.struct([("x", pa.float32()), ("y", pa.list_(pa.uint8()))])),
            ("j", pa.large_list(pa.string())),
            ("k", pa.timestamp("us")),
        ]
    )
    assert features_yaml(schema) == Features.from_arrow_schema(schema)._to_yaml_list()


# ------------------------------------------------------------------------------------------------ cards


@pytest.mark.parametrize("kind", ["guanaco", "uncensored", "prefs"])
def test_card_sections_follow_the_data(tmp_path: Path, kind: str) -> None:
    folder, build = make_folder(tmp_path, kind)
    text = render_card(BuildRecord.parse(build), folder, repo_id="org/name")
    meta = front_matter(text)
    check_metadata_matches_files(folder, meta)
    assert meta["license"] == "apache-2.0"
    assert meta["source_datasets"] == ["OpenAssistant/oasst1"]
    assert "## Pipeline funnel" in text and "(funnel.png)" in text and "(lengths.png)" in text
    assert "## Decontamination" in text and "`humaneval:HumanEval/0` (2)" in text
    assert "## Label masks" in text and "trained\\_share | 0.5 |" in text
    assert 'load_dataset("org/name")' in text and "dataset_mixer:\n  org/name: 1.0" in text
    (folder / "README.md").write_text(text, encoding="utf-8")
    check_loads(folder, meta, tmp_path / "hf")
    if kind == "prefs":
        assert meta["language"] == ["en"] and "dpo" in meta["tags"]
        assert "## Preference pairs" in text and (folder / "margins.png").is_file()
        assert "DPOTrainer" in text and "- train_prefs\n- test_prefs" in text
        assert "## Languages" in text and not (folder / "languages.png").exists()  # one language: no plot
    else:
        assert meta["language"] == ["ca", "de", "en", "es", "fr", "pt", "ru", "zh"]
        assert (folder / "languages.png").is_file() and "(languages.png)" in text
        assert "SFTTrainer" in text and "matches the `lang` field" in text
    if kind == "uncensored":
        assert "## Uncensoring phrases" in text
        assert '| "as an ai language model" | 7 | 100.0% | 0 |' in text
        assert '| "openassistant" | 3 |' in text
        assert "StarChat-beta" in text and "WizardLM" in text
    else:
        assert "## Uncensoring phrases" not in text


def test_card_is_byte_identical_and_independent_of_dict_order(tmp_path: Path) -> None:
    folder, build = make_folder(tmp_path / "a", "uncensored")
    first = render_card(BuildRecord.parse(build), folder)
    pngs = {p: (folder / p).read_bytes() for p in PLOT_FILES if (folder / p).exists()}
    assert set(pngs) == {"funnel.png", "lengths.png", "languages.png"}
    assert all(b.startswith(b"\x89PNG") and b"Software" not in b and b"matplotlib" not in b for b in pngs.values())
    # the same build read back from build.json (keys sorted), rendered in a fresh copy of the folder
    other = tmp_path / "b" / folder.name
    shutil.copytree(folder, other, ignore=shutil.ignore_patterns("*.png"))
    again = render_card(BuildRecord.read(other), other)
    assert again == first
    assert {p: (other / p).read_bytes() for p in pngs} == pngs


def test_hostile_strings_cannot_break_yaml_or_inject(tmp_path: Path) -> None:
    folder, build = make_folder(tmp_path, "uncensored", hostile=True)
    text = render_card(BuildRecord.parse(build), folder)
    meta = front_matter(text)
    check_metadata_matches_files(folder, meta)
    assert meta["license"] == "apache-2.0"
    assert "source_datasets" not in meta  # a local file of no known dataset: named in the fingerprint only
    lines = text.splitlines()
    assert [i for i, line in enumerate(lines) if line.startswith("---")] == [0, lines.index("---", 1)]
    assert set(meta) == {
        "license",
        "language",
        "pretty_name",
        "size_categories",
        "task_categories",
        "tags",
        "configs",
        "dataset_info",
    }
    assert "/home/me" not in text and "secret" not in text
    prose = outside_code(text)
    assert "<script>" not in prose and "<img" not in prose and "javascript:" not in prose
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in prose
    assert "\n# injected" not in text and "\n---\n<img" not in text
    # inside code blocks hostile text stays literal (nothing renders there), but cannot close the block
    assert "phrases incl. <script>alert(1)</script>" in text
    # every row of every table has as many unescaped pipes as its header
    lines = prose.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|") or not (i + 1 < len(lines) and lines[i + 1].startswith("| ---")):
            continue
        width = len(re.findall(r"(?<!\\)\|", line))
        j = i + 1
        while j < len(lines) and lines[j].startswith("|"):
            assert len(re.findall(r"(?<!\\)\|", lines[j])) == width, lines[j]
            j += 1


def test_stale_plots_are_removed_and_plots_can_be_skipped(tmp_path: Path) -> None:
    folder, build = make_folder(tmp_path, "prefs")
    (folder / "languages.png").write_bytes(b"old")
    render_card(BuildRecord.parse(build), folder)
    assert not (folder / "languages.png").exists() and (folder / "margins.png").is_file()
    for p in folder.glob("*.png"):
        p.unlink()
    text = render_card(BuildRecord.parse(build), folder, plots=False)
    assert not list(folder.glob("*.png")) and ".png)" not in text


def test_rejects_are_summarised_without_payloads_and_across_shards(tmp_path: Path) -> None:
    folder, build = make_folder(tmp_path / "one", "uncensored", hostile=True)
    keys = ("phrases", "decontam", "rejects")
    one = card_context(BuildRecord.parse(build), folder, plots=False)
    assert one["phrases"]["dropped_rows"] == 7 and one["rejects"]
    # the same rejects in several shards (file order kept): the same phrases, decontamination and summary
    rej = pl.concat([pl.read_parquet(p) for p in _reject_paths(folder, _ordered_splits(BuildRecord.parse(build)))])
    for p in (folder / "rejects").glob("*.parquet"):
        p.unlink()
    paths = write_table(rej, folder / "rejects", "rejects", max_file_bytes=2_000)
    assert len(paths) > 2
    build["outputs"]["rejects"]["rejects"]["files"] = [file_entry(p, folder) for p in paths]
    many = card_context(BuildRecord.parse(build), folder, plots=False)
    assert {k: many[k] for k in keys} == {k: one[k] for k in keys}
    lazy = _rejects(_reject_paths(folder, _ordered_splits(BuildRecord.parse(build))))
    assert lazy is not None
    small = lazy.collect()
    assert tuple(small.columns) == REJECT_COLUMNS and small.height == rej.height


def test_data_files_list_exact_paths_when_a_glob_would_match_more(tmp_path: Path) -> None:
    folder, build = make_folder(tmp_path, "sft")
    stray = folder / "data" / "train_sft-extra.parquet"  # e.g. a leftover shard: the glob would pick it up
    shutil.copy(folder / "data" / "test_sft-00000-of-00001.parquet", stray)
    meta = card_metadata(BuildRecord.parse(build), folder)
    entries = {e["split"]: e["path"] for e in meta["configs"][0]["data_files"]}
    assert entries == {"train_sft": ["data/train_sft-00000-of-00001.parquet"], "test_sft": "data/test_sft-*"}
    stray.unlink()
    check_metadata_matches_files(folder, meta)


def test_files_outside_the_folder_or_missing_are_refused(tmp_path: Path) -> None:
    folder, build = make_folder(tmp_path, "sft")
    bad = json.loads(json.dumps(build))
    bad["outputs"]["default"]["train_sft"]["files"][0]["path"] = "../../etc/passwd"
    with pytest.raises(ChatdataError, match="outside the folder"):
        render_card(BuildRecord.parse(bad), folder, plots=False)
    (folder / "data" / "test_sft-00000-of-00001.parquet").unlink()
    with pytest.raises(ChatdataError, match="missing"):
        render_card(BuildRecord.parse(build), folder, plots=False)


def test_card_for_unknown_recipe_uses_the_base_template(tmp_path: Path) -> None:
    folder, build = make_folder(tmp_path, "sft")
    build["recipe"]["name"] = "my_recipe"
    text = render_card(BuildRecord.parse(build), folder)
    assert text.startswith("---\n") and "# chatdata my\\_recipe" in text
    assert "## What it rebuilds and how it differs" in text


# ------------------------------------------------------------------------------------------------ real build


def test_real_build_card_loads_with_datasets(tmp_path: Path, real_trees: Path) -> None:
    from builds import build_recipes

    folder = build_recipes(["oasst_en"], tmp_path / "out", source=real_trees)["oasst_en"]
    folder = Path(folder)
    text = (folder / "README.md").read_text(encoding="utf-8")
    meta = front_matter(text)
    check_metadata_matches_files(folder, meta)
    # a local oasst trees file for a source whose default is oasst1: named as the dataset it is a copy of
    assert meta["source_datasets"] == ["OpenAssistant/oasst1"] and str(real_trees.parent) not in text
    assert real_trees.name.replace("_", "\\_") in text  # the file itself is in the fingerprint
    check_loads(folder, meta, tmp_path / "hf")
    build = json.loads((folder / "build.json").read_text())
    assert render_card(BuildRecord.parse(build), folder) == text


def test_source_datasets_name_hub_datasets_and_known_copies_only() -> None:
    from chatdata.card.metadata import source_datasets
    from chatdata.record import SourceRecord

    def source(spec: str, fmt: str, path: str, revision: str | None = None) -> SourceRecord:
        files = [{"path": path, "format": fmt, "records": 1, "sha256": "0" * 64}]
        return SourceRecord(spec=spec, revision=revision, format="oasst", files=files)

    hub = source("OpenAssistant/oasst2", "x", "a.parquet", "c" * 40)
    assert source_datasets(hub, "OpenAssistant/oasst1") == ["OpenAssistant/oasst2"]
    local = source("/data/forest.parquet", "oasst_parquet", "forest.parquet")
    assert source_datasets(local, "OpenAssistant/oasst1") == ["OpenAssistant/oasst1"]
    orca = source("my_prefs.parquet", "prefs_orca", "train-00000-of-00001.parquet")
    assert source_datasets(orca, "HuggingFaceH4/ultrafeedback_binarized") == []  # read as Orca: not UltraFeedback
    uf = source("my_prefs.parquet", "prefs_ultrafeedback", "train-00000-of-00001.parquet")
    assert source_datasets(uf, "HuggingFaceH4/ultrafeedback_binarized") == ["HuggingFaceH4/ultrafeedback_binarized"]
    assert source_datasets(uf, None) == []
    bundled = source("bundled-sample", "oasst_parquet", "data/train.parquet")
    assert source_datasets(bundled, "OpenAssistant/oasst1") == []  # synthetic, not the dataset it stands in for


def test_a_build_card_from_stats_collected_while_writing_equals_one_read_back(tmp_path: Path) -> None:
    """The writer collects the card's statistics as it writes (it never reads the data back); ``chatdata card``
    on the folder reads them from the files: the two cards and plots are the same bytes."""
    from builds import build_recipes

    out = build_recipes(["oasst_en", "guanaco_uncensored", "oasst_prefs", "starchat_alpha"], tmp_path / "out")
    for name, folder in out.items():
        written = (folder / "README.md").read_text(encoding="utf-8")
        pngs = {p: (folder / p).read_bytes() for p in PLOT_FILES if (folder / p).exists()}
        assert pngs, name
        build = json.loads((folder / "build.json").read_text())
        assert render_card(BuildRecord.parse(build), folder) == written, name
        assert {p: (folder / p).read_bytes() for p in pngs} == pngs, name
