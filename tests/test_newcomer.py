"""What a new user and a crash found (issue 23): each defect as the user met it, through the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from chatdata.cli import app

runner = CliRunner()


def chatdata(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``chatdata ARGS`` in a fresh interpreter (what a user's shell runs), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "chatdata.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    return [ln for ln in proc.stderr.splitlines() if ln.strip()]


# ------------------------------------------------------------------------------------------------ a user's folder


def test_a_build_never_replaces_a_folder_chatdata_did_not_write(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "oasst_en").mkdir(parents=True)
    (out / "oasst_en" / "important.txt").write_text("my notes")
    proc = chatdata("build", "oasst_en", "--out", str(out), "--workers", "1")
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert line.startswith("error: ") and str(out / "oasst_en") in line and "--overwrite" in line
    assert sorted(p.name for p in (out / "oasst_en").iterdir()) == ["important.txt"]
    assert not (out / ".work" / "cache").exists()  # refused before any work
    proc = chatdata("build", "oasst_en", "--out", str(out), "--workers", "1", "--overwrite")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (out / "oasst_en" / "important.txt").exists() and (out / "oasst_en" / "build.json").is_file()
    again = chatdata("build", "oasst_en", "--out", str(out), "--workers", "1", "--test-fraction", "0.2")
    assert again.returncode == 0, again.stderr[-2000:]  # its own folder is replaced without asking


def test_a_workspace_folder_chatdata_did_not_make_is_refused(tmp_path: Path) -> None:
    work = tmp_path / "projects"
    work.mkdir()
    (work / "thesis.tex").write_text("years of work")
    proc = chatdata("build", "--out", str(tmp_path / "out"), "--work", str(work), "--force", "--workers", "1")
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert str(work) in line and "thesis.tex" in line and "--overwrite" in line
    assert sorted(p.name for p in work.iterdir()) == ["thesis.tex"]
    fresh = tmp_path / "work"
    ok = chatdata("build", "--out", str(tmp_path / "out"), "--work", str(fresh), "--workers", "1")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "chatdata" in (fresh / "CACHEDIR.TAG").read_text()
    assert json.loads((tmp_path / "out" / "oasst_en" / "build.json").read_text())["recipe"]["name"] == "oasst_en"


def test_overwrite_is_in_the_help() -> None:
    r = runner.invoke(app, ["build", "--help"], terminal_width=200)
    assert r.exit_code == 0 and "--overwrite" in r.output
