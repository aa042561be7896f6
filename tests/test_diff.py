"""`chatdata diff`: rows matched by identity, each change explained, checked against an independent count over the
two folders; generated trees for every category, real oasst rows for a threshold change, a Hub OLD on the loopback
server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from builds import run
from hubserver import HubServer, hub_env, hub_server  # noqa: F401
from oasst_builders import m, write_jsonl
from typer.testing import CliRunner

from chatdata.cli import app
from chatdata.diff import CATEGORIES, DiffError, diff


def _tree(t: str, *, edited: bool = False, deleted: bool = False) -> list[dict[str, Any]]:
    """A small English tree: a root prompt with two ranked replies, a follow-up under the first and its answer."""
    return [
        m(f"{t}-u1", None, "prompter", f"How do people in {t} usually cook rice for a family dinner at home?"),
        m(f"{t}-a1", f"{t}-u1", "assistant", "They rinse it, boil it with twice the water and let it rest.", rank=0),
        m(
            f"{t}-a2",
            f"{t}-u1",
            "assistant",
            "Most use a rice cooker these days." + (" It is easier than a pot." if edited else ""),
            rank=1,
        ),
        m(f"{t}-u2", f"{t}-a1", "prompter", "And how long should it rest before serving it to the guests?"),
        m(f"{t}-a3", f"{t}-u2", "assistant", "About ten minutes with the lid on.", deleted=deleted),
    ]


def _build(tmp: Path, name: str, records: list[dict[str, Any]], **settings: Any) -> Path:
    src = write_jsonl(tmp / f"{name}.messages.jsonl", records)
    return run(["oasst_en"], tmp / name, source=src, decontaminate=False, **settings).outputs["oasst_en"]


def _independent(old: Path, new: Path) -> dict[str, int]:
    """The five categories counted without chatdata: every row read whole, keyed by its source and message path."""

    def rows(folder: Path) -> dict[tuple, tuple[str, Any]]:
        out = {}
        for path in sorted((folder / "data").glob("*.parquet")):
            split = path.name.split("-")[0]
            for r in pq.read_table(path).to_pylist():
                key = (r["source"], tuple(r["message_ids"]))
                content = json.dumps([r.get(c) for c in ("messages", "text", "chosen", "rejected")], sort_keys=True)
                out[key] = (split, content)
        return out

    a, b = rows(old), rows(new)
    both = a.keys() & b.keys()
    moved = sum(a[k][0] != b[k][0] for k in both)
    changed = sum(a[k][0] == b[k][0] and a[k][1] != b[k][1] for k in both)
    return {
        "added": len(b.keys() - a.keys()),
        "removed": len(a.keys() - b.keys()),
        "moved": moved,
        "changed": changed,
        "unchanged": len(both) - moved - changed,
    }


def _check(old: Path, new: Path) -> dict[str, Any]:
    changes = diff(str(old), str(new))
    assert {c: changes[c] for c in CATEGORIES} == _independent(old, new)
    assert sum(changes["removed_by_reason"].values()) == changes["removed"]
    assert sum(changes["added_by_cause"].values()) == changes["added"]
    for split, s in changes["splits"].items():
        assert s["old"] + s["added"] - s["removed"] + s["moved_in"] - s["moved_out"] == s["new"], split
    return changes


def test_every_category_on_generated_trees(tmp_path: Path) -> None:
    """Upstream, between two exports: tree B is edited (a reply reworded), tree C has a reply flagged deleted,
    tree D is gone, tree E is new; tree A is as it was."""
    old = _build(tmp_path, "old", [*_tree("A"), *_tree("B"), *_tree("C"), *_tree("D")])
    new = _build(tmp_path, "new", [*_tree("A"), *_tree("B", edited=True), *_tree("C", deleted=True), *_tree("E")])
    changes = _check(old, new)
    assert changes["changed"] == 1 and changes["examples"]["changed"] == ["oasst|B-u1/B-a2"]
    assert changes["removed_by_reason"] == {"gone_from_source": 2, "gates:deleted": 1}
    # C's first thread now ends at its first answer: a shorter row of messages the old version had in another
    assert changes["added_by_cause"] == {"new_in_source": 2, "messages_in_other_rows": 1}
    assert "oasst|C-u1/C-a1" in changes["examples"]["added"]
    assert changes["unchanged"] == 4  # A's two threads, B's and C's other thread
    assert changes["rejects"] == {  # the deleted reply, and the follow-up it leaves without an answer
        "gates:deleted": {"old": 0, "new": 1},
        "flatten:trailing_user_turn": {"old": 0, "new": 1},
    }


def test_a_split_change_moves_rows(tmp_path: Path) -> None:
    trees = [r for t in "ABCDEFGHIJKL" for r in _tree(t)]
    old = _build(tmp_path, "old", trees, test_fraction=0.0)
    new = _build(tmp_path, "new", trees, test_fraction=0.5)
    changes = _check(old, new)
    assert changes["moved"] > 0 and changes["added"] == changes["removed"] == changes["changed"] == 0
    assert changes["splits"]["test_sft"]["moved_in"] == changes["moved"] == changes["splits"]["train_sft"]["moved_out"]


def test_a_threshold_change_on_real_rows(real_trees: Path, tmp_path: Path) -> None:
    """The English filter's min_score raised in a user's copy of the spec: the rows it drops are removed by
    filters:detected_lang_not_target, and lowered back they come back as no longer rejected."""
    import shutil

    import yaml

    from chatdata.resources import filters_dir, recipes_dir

    user = tmp_path / "user"
    user.mkdir()
    recipe = yaml.safe_load((recipes_dir() / "oasst_en.yaml").read_text(encoding="utf-8"))
    recipe["name"], recipe["sources"]["oasst"]["filters"] = "strict", ["english.yaml"]
    (user / "strict.yaml").write_text(yaml.safe_dump(recipe), encoding="utf-8")
    spec = user / "english.yaml"
    shutil.copyfile(filters_dir() / "english.yaml", spec)
    old = run([str(user / "strict.yaml")], tmp_path / "old", source=real_trees).outputs["strict"]
    spec.write_text(spec.read_text().replace("min_score: 0.4 ", "min_score: 0.9 "), encoding="utf-8")
    new = run([str(user / "strict.yaml")], tmp_path / "new", source=real_trees).outputs["strict"]
    changes = _check(old, new)
    assert changes["removed"] > 0 and changes["added"] == 0
    assert set(changes["removed_by_reason"]) == {"filters:detected_lang_not_target"}
    back = _check(new, old)
    assert back["added_by_cause"] == {"no_longer_rejected:filters:detected_lang_not_target": changes["removed"]}


def test_the_command_prints_tables_or_json(tmp_path: Path) -> None:
    old = _build(tmp_path, "old", [*_tree("A"), *_tree("D")])
    new = _build(tmp_path, "new", [*_tree("A"), *_tree("E")])
    runner = CliRunner()
    text = runner.invoke(app, ["diff", str(old), str(new)])
    assert text.exit_code == 0, text.output
    assert "removed, by reason" in text.output and "gone_from_source" in text.output and "new_in_source" in text.output
    as_json = runner.invoke(app, ["diff", str(old), str(new), "--json"])
    data = json.loads(as_json.output)
    assert set(CATEGORIES) | {"removed_by_reason", "added_by_cause", "splits"} <= set(data)
    missing = runner.invoke(app, ["diff", str(tmp_path / "nowhere"), str(new)])
    assert missing.exit_code == 2 and "no such folder" in missing.output


def test_a_folder_chatdata_did_not_write_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    with pytest.raises(DiffError, match=r"no build\.json"):
        diff(str(tmp_path / "mine"), str(tmp_path / "mine"))


def test_old_from_the_hub(tmp_path: Path, hub_server: HubServer) -> None:  # noqa: F811
    """OLD as the published version on the (loopback) Hub, pinned with --revision; NEW a local rebuild."""
    from chatdata.hub.publish import publish_folder

    first = _build(tmp_path, "first", [*_tree("A"), *_tree("D")])
    publish_folder(first, "org/rice", token=hub_server.token, endpoint=hub_server.url, retry_wait=0.01)
    sha = hub_server.head("org/rice")
    second = _build(tmp_path, "second", [*_tree("A"), *_tree("E")])
    publish_folder(second, "org/rice", token=hub_server.token, endpoint=hub_server.url, retry_wait=0.01)
    new = _build(tmp_path, "new", [*_tree("A"), *_tree("E"), *_tree("F")])
    proc = subprocess.run(
        [sys.executable, "-m", "chatdata.cli", "diff", "org/rice", str(new), "--revision", sha, "--json"],
        env=hub_env(hub_server, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    changes = json.loads(proc.stdout)
    assert {c: changes[c] for c in CATEGORIES} == _independent(first, new)
    assert changes["removed_by_reason"] == {"gone_from_source": 2} and changes["added_by_cause"] == {"new_in_source": 4}


# ------------------------------------------------------------------------------------------------ every rebuild


def test_a_rebuild_records_its_changes_in_build_json_the_card_and_the_summary(tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "trees.messages.jsonl"
    write_jsonl(src, [*_tree("A"), *_tree("B"), *_tree("D")])
    runner = CliRunner()
    args = ["build", "oasst_en", "--source", str(src), "--out", str(tmp_path / "out"), "--engine", "local"]
    first = runner.invoke(app, [*args, "--no-decontaminate"])
    assert first.exit_code == 0, first.output
    folder = tmp_path / "out" / "oasst_en"
    assert "changes" not in json.loads((folder / "build.json").read_text())  # nothing was replaced
    assert "since the previous version" not in first.output and not (folder / "changes.png").exists()
    before = tmp_path / "before"
    shutil.copytree(folder, before)

    write_jsonl(src, [*_tree("A"), *_tree("B", edited=True), *_tree("C", deleted=True), *_tree("E")])
    second = runner.invoke(app, [*args, "--no-decontaminate"])
    assert second.exit_code == 0, second.output
    build = json.loads((folder / "build.json").read_text())
    assert build["changes"] == diff(str(before), str(folder))
    assert build["changes"]["removed_by_reason"] == {"gone_from_source": 2}
    changes = build["changes"]
    assert f"since the previous version: {changes['added']} added (new_in_source {changes['added']})" in second.output
    assert "2 removed (gone_from_source 2), 1 changed" in second.output
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "## Changes since the previous version" in card and "(changes.png)" in card
    assert "Removed, by the first reject of the row or one of its messages in this build: `gone_from_source` 2." in card
    assert (folder / "changes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_publish_guard_explains_a_refusal(tmp_path: Path, hub_server: HubServer) -> None:  # noqa: F811
    from chatdata.hub.guard import PublishRefused
    from chatdata.hub.publish import publish_folder

    trees = [f"T{i}" for i in range(10)]
    full = _build(tmp_path, "full", [r for t in trees for r in _tree(t)])
    publish_folder(full, "org/rice", token=hub_server.token, endpoint=hub_server.url, retry_wait=0.01)
    # upstream flags most trees' roots as deleted: their rows go, removed by gates:deleted
    flagged = [r for t in trees for r in _tree(t)]
    for r in flagged:
        if r["message_id"].endswith("-u1") and r["message_id"] not in ("T0-u1", "T1-u1"):
            r["deleted"] = True
    shrunk = _build(tmp_path, "shrunk", flagged)
    with pytest.raises(PublishRefused) as err:
        publish_folder(shrunk, "org/rice", token=hub_server.token, endpoint=hub_server.url, retry_wait=0.01)
    assert "-80% of train_sft: 16 rows removed by gates:deleted" in str(err.value)
    assert "\n" not in str(err.value)


def test_changes_as_a_prefect_artifact() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from flows.build import _changes_markdown

    changes = {
        "added": 1, "removed": 2, "changed": 0, "moved": 0, "unchanged": 5,
        "splits": {"train_sft": {"old": 7, "new": 6, "added": 1, "removed": 2, "changed": 0, "moved_in": 0,
                                 "moved_out": 0}},
        "removed_by_reason": {"gates:deleted": 2}, "added_by_cause": {"new_in_source": 1},
    }  # fmt: skip
    text = _changes_markdown(changes)
    assert text.startswith("1 added, 2 removed, 0 changed, 0 moved, 5 unchanged\n")
    assert "| train_sft | 7 | 6 | 1 | 2 | 0 | 0 | 0 |" in text and "- `gates:deleted`: 2" in text


def test_every_category_on_real_oasst_rows(real_trees: Path, tmp_path: Path) -> None:
    """Two exports of the real trees: five trees gone and five new, a reply reworded in one tree, a reply
    flagged deleted in another (with what hangs below it)."""
    trees = [json.loads(line) for line in real_trees.read_text(encoding="utf-8").splitlines()]

    def replies(node: dict[str, Any]) -> list[dict[str, Any]]:
        return [r for r in node.get("replies") or [] if r.get("role") == "assistant"]

    def clean(t: dict[str, Any]) -> bool:
        return not t["prompt"].get("synthetic") and t["prompt"].get("lang") == "en" and bool(replies(t["prompt"]))

    usable = [i for i, t in enumerate(trees) if clean(t)]
    edited, flagged = usable[10], usable[20]
    old_src = tmp_path / "old.trees.jsonl"
    old_src.write_text("".join(json.dumps(t) + "\n" for t in trees[:-5]), encoding="utf-8")
    newer = json.loads(json.dumps(trees[5:]))
    replies(newer[edited - 5]["prompt"])[0]["text"] += " (Edited: a clearer example follows.)"
    replies(newer[flagged - 5]["prompt"])[0]["deleted"] = True
    new_src = tmp_path / "new.trees.jsonl"
    new_src.write_text("".join(json.dumps(t) + "\n" for t in newer), encoding="utf-8")
    old = run(["oasst_en"], tmp_path / "old", source=old_src).outputs["oasst_en"]
    new = run(["oasst_en"], tmp_path / "new", source=new_src).outputs["oasst_en"]
    changes = _check(old, new)
    assert changes["changed"] >= 1 and changes["removed_by_reason"]["gates:deleted"] >= 1
    assert changes["removed_by_reason"]["gone_from_source"] > 0 and changes["added_by_cause"]["new_in_source"] > 0
    assert changes["rejects"]["gates:deleted"]["new"] > changes["rejects"]["gates:deleted"]["old"]


def test_publishing_over_a_version_records_what_changed_since_it(tmp_path: Path, hub_server: HubServer) -> None:  # noqa: F811
    from huggingface_hub import HfApi

    from chatdata.hub.publish import publish_folder

    v1 = _build(tmp_path, "v1", [*_tree("A"), *_tree("D")])
    publish_folder(v1, "org/rice", token=hub_server.token, endpoint=hub_server.url, retry_wait=0.01)
    v2 = _build(tmp_path, "v2", [*_tree("A"), *_tree("E"), *_tree("F")])  # a fresh folder: no local history
    assert "changes" not in json.loads((v2 / "build.json").read_text())
    expected = diff(str(v1), str(v2))
    publish_folder(v2, "org/rice", token=hub_server.token, endpoint=hub_server.url, retry_wait=0.01)
    api = HfApi(endpoint=hub_server.url, token=hub_server.token)
    remote = json.loads(
        Path(
            api.hf_hub_download("org/rice", "build.json", repo_type="dataset", cache_dir=str(tmp_path / "c"))
        ).read_text()
    )
    assert remote["changes"] == expected == json.loads((v2 / "build.json").read_text())["changes"]
    assert expected["removed_by_reason"] == {"gone_from_source": 2} and expected["added_by_cause"] == {
        "new_in_source": 4
    }
    card = Path(
        api.hf_hub_download("org/rice", "README.md", repo_type="dataset", cache_dir=str(tmp_path / "c"))
    ).read_text()
    assert "## Changes since the previous version" in card
    commits = hub_server.commit_count("org/rice")
    publish_folder(v2, "org/rice", token=hub_server.token, endpoint=hub_server.url, retry_wait=0.01)
    assert hub_server.commit_count("org/rice") == commits  # the same version again: nothing to record or upload
