"""Reruns reuse finished work: nothing changed runs nothing, a killed build resumes, a split change re-plans
only, stale cache entries go; the same mechanism for every executor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builds import run
from compare import assert_same_build, assert_same_tree
from oasst_builders import m, write_jsonl

from chatdata import engine, workspace

ZERO = {"partition": 0, "shard": 0, "plan": 0, "write": 0}


def _entries(out: Path, kind: str) -> set[str]:
    folder = out / ".work" / "cache" / kind
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def test_nothing_changed_runs_nothing(real_trees: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    first = run(["oasst_en", "oasst_prefs"], out, source=real_trees, shards=3)
    assert first.ran == {"partition": 1, "shard": 6, "plan": 2, "write": 2}
    snapshot = tmp_path / "snapshot"
    for name, folder in first.outputs.items():
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        __import__("shutil").copytree(folder, snapshot / name)

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("a stage ran on a rerun with nothing changed")

    monkeypatch.setattr("chatdata.stages.run_shard", no_work)
    again = run(["oasst_en", "oasst_prefs"], out, source=real_trees, shards=3)
    assert again.ran == ZERO and again.reused == first.ran
    for name in first.outputs:
        assert_same_tree(snapshot / name, again.outputs[name])


def test_a_killed_build_resumes_with_its_finished_shards(
    real_trees: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    real = engine.shard_task
    done: list[int] = []

    def dies_on_the_third(task: engine.ShardTask) -> int:
        if len(done) == 2:
            raise RuntimeError("worker killed")
        done.append(task.shard)
        return real(task)

    monkeypatch.setattr(engine, "shard_task", dies_on_the_third)
    with pytest.raises(RuntimeError, match="worker killed"):
        run(["oasst_en"], out, source=real_trees, shards=4)
    monkeypatch.setattr(engine, "shard_task", real)
    resumed = run(["oasst_en"], out, source=real_trees, shards=4)
    assert resumed.ran["shard"] == 2 and resumed.reused["shard"] == 2 and resumed.reused["partition"] == 1
    fresh = run(["oasst_en"], tmp_path / "fresh", source=real_trees, shards=4)
    assert_same_tree(fresh.outputs["oasst_en"], resumed.outputs["oasst_en"])


def test_a_split_setting_reruns_only_plan_and_write(real_trees: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(["oasst_en"], out, source=real_trees, shards=2)
    plans = _entries(out, "plan")
    changed = run(["oasst_en"], out, source=real_trees, shards=2, test_fraction=0.5)
    assert changed.ran == {"partition": 0, "shard": 0, "plan": 1, "write": 1}
    build = json.loads((changed.outputs["oasst_en"] / "build.json").read_text())
    assert build["settings"]["test_fraction"] == 0.5
    assert not plans & _entries(out, "plan")  # the superseded plan is gone
    back = run(["oasst_en"], out, source=real_trees, shards=2)
    assert back.ran == {"partition": 0, "shard": 0, "plan": 1, "write": 1}


def test_a_changed_shard_setting_reruns_the_shards_on_the_same_partition(real_trees: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(["oasst_en"], out, source=real_trees, shards=2)
    shards = _entries(out, "shard")
    changed = run(["oasst_en"], out, source=real_trees, shards=2, decontaminate=False)
    assert changed.ran == {"partition": 0, "shard": 2, "plan": 1, "write": 1}
    assert not shards & _entries(out, "shard")


def test_a_deleted_or_edited_output_is_written_again(real_trees: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    folder = run(["oasst_en"], out, source=real_trees).outputs["oasst_en"]
    card = (folder / "README.md").read_bytes()
    (folder / "README.md").write_text("edited")
    again = run(["oasst_en"], out, source=real_trees)
    assert again.ran == {"partition": 0, "shard": 0, "plan": 0, "write": 1}
    assert (folder / "README.md").read_bytes() == card


def test_a_changed_source_file_replaces_its_partition(tmp_path: Path) -> None:
    src = write_jsonl(
        tmp_path / "a.messages.jsonl",
        [
            m("r", None, "prompter", text="How do I sort a list in Python?"),
            m("a", "r", "assistant", text="Use sorted().", rank=0),
        ],
    )
    out = tmp_path / "out"
    run(["oasst_en"], out, source=src)
    parts = _entries(out, "partition")
    write_jsonl(
        src,
        [
            m("r", None, "prompter", text="How do I sort a list in Python?"),
            m("a", "r", "assistant", text="Use the sorted() builtin.", rank=0),
        ],
    )
    changed = run(["oasst_en"], out, source=src)
    assert changed.ran == {"partition": 1, "shard": 1, "plan": 1, "write": 1}
    assert not parts & _entries(out, "partition")


def test_recipes_built_one_by_one_keep_each_others_entries(real_trees: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(["oasst_en"], out, source=real_trees)
    run(["guanaco"], out, source=real_trees)
    again = run(["oasst_en"], out, source=real_trees)
    assert again.ran == ZERO


def test_force_recomputes_everything(real_trees: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(["oasst_en"], out, source=real_trees)
    forced = run(["oasst_en"], out, source=real_trees, force=True)
    assert forced.ran == {"partition": 1, "shard": 1, "plan": 1, "write": 1}


def test_a_damaged_cache_entry_is_rebuilt(real_trees: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(["oasst_en"], out, source=real_trees, shards=2)
    (entry,) = [p for p in (out / ".work" / "cache" / "shard").iterdir()][:1]
    (entry / workspace.ROWS).write_bytes(b"garbage")
    (out / "oasst_en" / "build.json").unlink()
    again = run(["oasst_en"], out, source=real_trees, shards=2)
    assert again.ran["shard"] == 1 and again.reused["shard"] == 1


def test_rejected_messages_payloads_are_stored_once_per_shard_for_every_recipe(
    real_trees: Path, tmp_path: Path
) -> None:
    """A rejected message's payload (its row as JSON) is built once per shard and stored once, whichever recipes
    reject it; the shard entries hold only its position. Without the entry the writer builds it from the shard."""
    import polars as pl

    from chatdata import artifacts

    out = tmp_path / "out"
    recipes = ["oasst_en", "guanaco", "oasst_prefs"]
    first = run(recipes, out, source=real_trees, shards=2)
    assert len(_entries(out, workspace.PAYLOADS)) == 2  # one per shard, not one per recipe and shard
    for key in _entries(out, workspace.SHARD):
        rejects = artifacts.load(out / ".work" / "cache" / workspace.SHARD / key / workspace.SHARD_REJECTS)
        messages = rejects.filter(pl.col("unit") == "message")
        assert messages.height and messages.get_column("payload").null_count() == messages.height
        assert messages.get_column("_i").null_count() == 0
    stored = {
        key: artifacts.load(out / ".work" / "cache" / workspace.PAYLOADS / key / workspace.MESSAGE_JSON)
        for key in _entries(out, workspace.PAYLOADS)
    }
    assert all(t.get_column("_i").is_unique().all() and t.height for t in stored.values())
    # the entries gone, the outputs written again from the shards: the same bytes
    for key in stored:
        __import__("shutil").rmtree(out / ".work" / "cache" / workspace.PAYLOADS / key)
    for name in recipes:
        (first.outputs[name] / "build.json").unlink()
    again = run(recipes, out, source=real_trees, shards=2)
    assert again.ran["shard"] == 0 and again.ran["write"] == 3
    fresh = run(recipes, tmp_path / "fresh", source=real_trees, shards=2)
    for name in recipes:
        assert_same_tree(fresh.outputs[name], again.outputs[name])


def _strict_recipe(folder: Path) -> tuple[Path, Path]:
    """A user's copy of ``oasst_en`` whose ``english`` filter is a spec file beside it."""
    import shutil

    import yaml

    from chatdata.resources import filters_dir, recipes_dir

    folder.mkdir(parents=True, exist_ok=True)
    recipe = yaml.safe_load((recipes_dir() / "oasst_en.yaml").read_text(encoding="utf-8"))
    recipe["name"] = "oasst_en_strict"
    recipe["sources"]["oasst"]["filters"] = ["english.yaml"]
    path = folder / "oasst_en_strict.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    shutil.copyfile(filters_dir() / "english.yaml", folder / "english.yaml")
    return path, folder / "english.yaml"


def _rows(folder: Path) -> int:
    record = json.loads((folder / "build.json").read_text())
    return sum(split["rows"] for split in record["outputs"]["default"].values())


def test_a_decide_setting_reuses_flattening_and_scores(
    real_trees: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A threshold (``min_score``, a decide setting) re-runs only the decisions: no message is flattened or
    language-scored again, and the result is byte-identical to a fresh build of the changed recipe."""
    from chatdata.filters.language import LanguageFilter

    recipe, spec = _strict_recipe(tmp_path / "user")
    out = tmp_path / "out"
    first = run([str(recipe)], out, source=real_trees, shards=2)
    assert first.ran["shard"] == 2
    kept = _rows(first.outputs["oasst_en_strict"])
    flat, scores = _entries(out, workspace.FLAT), _entries(out, workspace.SCORES)
    assert flat and scores
    text = spec.read_text(encoding="utf-8")
    assert text.count("min_score: 0.4 ") == 1
    spec.write_text(text.replace("min_score: 0.4 ", "min_score: 0.9 "), encoding="utf-8")

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("a decide-only change flattened or scored again")

    monkeypatch.setattr("chatdata.trees.flatten", no_work)
    monkeypatch.setattr(LanguageFilter, "score_messages", no_work)
    changed = run([str(recipe)], out, source=real_trees, shards=2)
    assert changed.ran == {"partition": 0, "shard": 2, "plan": 1, "write": 1}
    assert _entries(out, workspace.FLAT) == flat and _entries(out, workspace.SCORES) == scores
    monkeypatch.undo()
    fresh = run([str(recipe)], tmp_path / "fresh", source=real_trees, shards=2)
    # the same dataset; the rebuild also records what changed since the version it replaced
    assert_same_build(fresh.outputs["oasst_en_strict"], changed.outputs["oasst_en_strict"])
    build = json.loads((changed.outputs["oasst_en_strict"] / "build.json").read_text())
    assert set(build["changes"]["removed_by_reason"]) == {"filters:detected_lang_not_target"}
    assert _rows(changed.outputs["oasst_en_strict"]) < kept  # the stricter threshold did drop dialogues


def test_a_recipe_note_reruns_only_the_write(real_trees: Path, tmp_path: Path) -> None:
    """Notes, a summary or a source's license shape the card, not a shard's rows or the split plan."""
    import yaml

    recipe, _ = _strict_recipe(tmp_path / "user")
    out = tmp_path / "out"
    run([str(recipe)], out, source=real_trees, shards=2)
    data = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    data["notes"] = [*data["notes"], "A note added for this test."]
    data["summary"] = "English oasst threads, a user's copy"
    recipe.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    changed = run([str(recipe)], out, source=real_trees, shards=2)
    assert changed.ran == {"partition": 0, "shard": 0, "plan": 0, "write": 1}
    card = (changed.outputs["oasst_en_strict"] / "README.md").read_text(encoding="utf-8")
    assert "A note added for this test." in card


#: a ``chatdata build`` that kills itself with SIGKILL (no cleanup, no exit handlers) at a chosen point
KILLED_BUILD = """
import os, signal, sys
import chatdata.{module} as target
real, calls = target.{function}, []

def dies(*args, **kwargs):
    calls.append(1)
    if len(calls) == {before}:
        os.kill(os.getpid(), signal.SIGKILL)
    result = real(*args, **kwargs)
    if len(calls) == {after}:
        os.kill(os.getpid(), signal.SIGKILL)
    return result

target.{function} = dies
sys.argv = ["chatdata", "build", "oasst_en", "oasst_prefs", "--source", {source!r}, "--out", {out!r},
            "--shards", "4", "--workers", "1"]
from chatdata.cli import run
run()
"""


@pytest.mark.parametrize(
    ("module", "function", "before", "after", "ran_shards"),
    [
        ("engine", "shard_task", 0, 2, 4),  # killed once 2 of the 4 shard tasks stored their 2 recipes' results
        ("card.render", "render_card", 2, 0, 0),  # killed while the second recipe's folder is being written
    ],
)
def test_a_build_killed_with_sigkill_resumes_to_the_same_bytes(
    real_trees: Path, tmp_path: Path, module: str, function: str, before: int, after: int, ran_shards: int
) -> None:
    import signal
    import subprocess
    import sys

    out = tmp_path / "out"
    code = KILLED_BUILD.format(
        module=module, function=function, before=before, after=after, source=str(real_trees), out=str(out)
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    resumed = run(["oasst_en", "oasst_prefs"], out, source=real_trees, shards=4)
    assert resumed.ran["partition"] == 0 and resumed.ran["shard"] == ran_shards
    assert resumed.reused["shard"] == 8 - ran_shards
    fresh = run(["oasst_en", "oasst_prefs"], tmp_path / "fresh", source=real_trees, shards=4)
    for name in ("oasst_en", "oasst_prefs"):
        assert_same_tree(fresh.outputs[name], resumed.outputs[name])
    assert sorted(p.name for p in out.iterdir()) == [".work", "oasst_en", "oasst_prefs"]  # no leftovers
