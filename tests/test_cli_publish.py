"""End to end: `chatdata build --push-to` against the loopback Hub, then `load_dataset` through it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
from hubserver import HubServer, hub_env, hub_server, load_dataset_rows  # noqa: F401


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
