"""End to end: `chatdata build --push-to` against the loopback Hub, then `load_dataset` through it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
from hubserver import HubServer, hub_env, hub_server, load_dataset_rows  # noqa: F401
from test_publish import REPO, build_folder


def test_build_push_to_and_load_back(real_trees: Path, tmp_path: Path, hub_server: HubServer) -> None:  # noqa: F811
    env = hub_env(hub_server, tmp_path, hub_server.token)
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatdata.cli",
            "build",
            "oasst_prefs",
            "--source",
            str(real_trees),
            "--out",
            str(out),
            "--engine",
            "local",
            "--push-to",
            "org/{recipe}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert hub_server.token not in proc.stdout + proc.stderr
    assert hub_server.commit_count("org/oasst_prefs") == 1
    rows = load_dataset_rows(
        hub_server, "org/oasst_prefs", [("default", "train_prefs"), ("rejects", "rejects")], tmp_path
    )
    local = pl.read_parquet(out / "oasst_prefs" / "data" / "train_prefs-00000-of-00001.parquet")
    assert len(rows["default/train_prefs"]) == local.height
    assert [r["prompt_id"] for r in rows["default/train_prefs"]] == local["prompt_id"].to_list()
    assert len(rows["rejects/rejects"]) == pl.read_parquet(out / "oasst_prefs" / "rejects").height


def test_push_to_without_token_fails_before_building(tmp_path: Path, hub_server: HubServer) -> None:  # noqa: F811
    env = hub_env(hub_server, tmp_path, None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatdata.cli",
            "build",
            "--engine",
            "local",
            "--out",
            str(tmp_path / "o"),
            "--push-to",
            "org/x",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "token" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def _publish(hub: HubServer, home: Path, folder: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatdata.cli", "publish", str(folder), "--repo", REPO, *options],
        env=hub_env(hub, home, hub.token),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_publish_guard_refuses_with_exit_3_until_overridden(tmp_path: Path, hub_server: HubServer) -> None:  # noqa: F811
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1", train=100, test=20, counts_in="build.json")
    assert _publish(hub_server, tmp_path, folder).returncode == 0
    build_folder(folder, "v2", train=20, test=5, counts_in="build.json")

    dry = _publish(hub_server, tmp_path, folder, "--dry-run")
    assert dry.returncode == 3, dry.stderr[-2000:]
    assert "would be REFUSED: the default config would shrink from 120 rows" in dry.stdout
    refused = _publish(hub_server, tmp_path, folder)
    assert refused.returncode == 3 and "Traceback" not in refused.stderr
    (line,) = [x for x in refused.stderr.splitlines() if x.startswith("error: ")]
    assert "from 120 rows (remote build.json) to 25 (-79%)" in line and "--force" in line and "--max-shrink" in line
    assert hub_server.commit_count(REPO) == 1
    assert _publish(hub_server, tmp_path, folder, "--max-shrink", "0.7").returncode == 3
    assert _publish(hub_server, tmp_path, folder, "--max-shrink", "0.8").returncode == 0
    assert hub_server.commit_count(REPO) == 2

    build_folder(folder, "v3", train=0, test=0, counts_in="build.json")
    empty = _publish(hub_server, tmp_path, folder)
    assert empty.returncode == 3 and "holds 0 rows" in empty.stderr and "Traceback" not in empty.stderr
    forced = _publish(hub_server, tmp_path, folder, "--force")
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert "guard overridden by --force" in forced.stderr and hub_server.commit_count(REPO) == 3
    bad = _publish(hub_server, tmp_path, folder, "--max-shrink", "2")
    assert bad.returncode == 2 and "--max-shrink" in bad.stderr


def test_publish_help_teaches_the_guard() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chatdata.cli", "publish", "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "--max-shrink" in text and "--force" in text and "0 rows" in text and "exit with code 3" in text
