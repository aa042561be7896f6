"""What a new user and a crash found (issue 23): each defect as the user met it, through the real command."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from builds import HUB_BENCHMARKS
from typer.testing import CliRunner

from chatdata.cli import app

runner = CliRunner()
CLI = [sys.executable, "-m", "chatdata.cli"]


def chatdata(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """``chatdata ARGS`` in a fresh interpreter (what a user's shell runs), output captured."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


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


# ------------------------------------------------------------------------------------------------ kill -9


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc; zombies count as gone)."""
    found, frontier = set(), {pid}
    while frontier:
        parents, frontier = frontier, set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[1]) in parents and int(entry.name) not in found:
                found.add(int(entry.name))
                frontier.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def kill_and_check_nothing_left(args: list[str], *, processes: int, env: dict[str, str] | None = None) -> None:
    """Start ``chatdata ARGS``, wait until it runs at least ``processes`` child processes, SIGKILL it, and check
    that every one of its descendants ends (they are re-parented, so nobody else would end them)."""
    import os
    import signal

    proc = subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    family: set[int] = set()
    try:
        assert _wait_for(lambda: len(_children(proc.pid)) >= processes or proc.poll() is not None, 240)
        assert proc.poll() is None, f"the build ended before it was killed: {proc.stderr.read()[-2000:]}"
        family = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert _wait_for(lambda: not any(_alive(p) for p in family), 30), [p for p in family if _alive(p)]
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in family | _children(proc.pid):  # a failed test leaves nothing behind either
            if _alive(p):
                os.kill(p, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_a_build_ends_its_worker_processes(tmp_path: Path) -> None:
    args = ["build", "oasst_en", "guanaco", "oasst_prefs", "--out", str(tmp_path / "out")]
    kill_and_check_nothing_left([*args, "--workers", "2", "--shards", "8"], processes=2)


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_a_prefect_build_ends_its_temporary_server_and_workers(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    args = ["build", "oasst_en", "guanaco", "oasst_prefs", "--engine", "prefect", "--out", str(tmp_path / "out")]
    seen: list[str] = []
    real = _children

    def spy(pid: int) -> set[int]:
        found = real(pid)
        seen.extend(_cmdline(p) for p in found)
        return found

    globals()["_children"] = spy
    try:
        kill_and_check_nothing_left([*args, "--workers", "2", "--shards", "8"], processes=3, env=env)
    finally:
        globals()["_children"] = real
    assert any("uvicorn" in c and "prefect.server" in c for c in seen)  # the temporary server was among them


# ------------------------------------------------------------------------------------------------ Dask


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_dask_without_a_prefect_server_shares_the_builds_temporary_server(tmp_path: Path) -> None:
    """Real ``dask scheduler`` and ``dask worker`` processes, no PREFECT_API_URL: --dask-address alone runs the
    build on them (bytes equal to the local build) and no Prefect server is left running anywhere."""
    import os
    import shutil
    import signal

    from builds import build_recipes
    from compare import assert_same_tree
    from prefect_harness import free_port, tiny_source

    from chatdata.lifeline import preexec

    source = tiny_source(tmp_path / "src", n_trees=40)
    local = build_recipes(["oasst_en"], tmp_path / "local", source=source, shards=1)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    dask = shutil.which("dask", path=str(Path(sys.executable).parent)) or "dask"
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    cluster = [
        subprocess.Popen(
            [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=preexec(signal.SIGKILL),
        )
    ]
    try:
        cluster.append(
            subprocess.Popen(
                [dask, "worker", address, "--nworkers", "2", "--nthreads", "1", "--no-dashboard"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=preexec(signal.SIGKILL),
            )
        )
        build = ["build", "oasst_en", "--source", str(source), "--out", str(tmp_path / "out"), "--shards", "4"]
        proc = subprocess.run(
            [*CLI, *build, "--dask-address", address],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "temporary Prefect server" in proc.stderr
        assert_same_tree(local["oasst_en"], tmp_path / "out" / "oasst_en")
        servers = [p for c in cluster for p in _children(c.pid) if "uvicorn" in _cmdline(p) or "prefect" in _cmdline(p)]
        assert servers == [], [_cmdline(p) for p in servers]  # no Dask worker started a server of its own
    finally:
        for c in reversed(cluster):
            family = _children(c.pid)
            c.kill()
            c.wait(timeout=30)
            for p in family:
                if _alive(p):
                    os.kill(p, signal.SIGKILL)


def test_a_remote_dask_cluster_without_a_prefect_server_is_refused_in_one_line(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    proc = subprocess.run(
        [*CLI, "build", "--out", str(tmp_path / "o"), "--dask-address", "tcp://10.11.12.13:8786"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2
    (line,) = error_lines(proc)
    assert "PREFECT_API_URL" in line and "tcp://10.11.12.13:8786" in line


# ------------------------------------------------------------------------------------------------ honest records


def test_a_file_named_explicitly_is_read_whatever_the_recipes_data_files_say(tmp_path: Path) -> None:
    import shutil

    from chatdata.resources import bundled_sample

    sample = bundled_sample("HuggingFaceH4/ultrafeedback_binarized", "prefs")
    assert sample is not None
    mine = tmp_path / "my_prefs.parquet"  # matches none of the recipe's data_files globs
    shutil.copy(sample / "data" / "train_prefs-00000-of-00001.parquet", mine)
    out = tmp_path / "out"
    proc = chatdata(
        "build", "starchat2_prefs", "-s", f"ultrafeedback={mine}", "-s", "oasst=bundled-sample",
        "-s", "orca=bundled-sample", "--out", str(out), "--workers", "1",
        *(x for b in HUB_BENCHMARKS for x in ("--benchmark", b)),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    build = json.loads((out / "starchat2_prefs" / "build.json").read_text())
    files = build["sources"]["ultrafeedback"]["files"]
    assert [f["path"] for f in files] == ["my_prefs.parquet"] and files[0]["format"] == "prefs_ultrafeedback"
    card = (out / "starchat2_prefs" / "README.md").read_text()
    # the file was read as UltraFeedback-binarized, so the card names that dataset (the samples are synthetic)
    assert "source_datasets:\n- HuggingFaceH4/ultrafeedback_binarized\n" in card


def test_build_json_records_the_values_used_and_which_were_given(tmp_path: Path) -> None:
    proc = chatdata("build", "oasst_en", "--out", str(tmp_path), "--leak-policy", "move", "--workers", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    build = json.loads((tmp_path / "oasst_en" / "build.json").read_text())
    assert build["settings"]["test_fraction"] == 0.05 and build["settings"]["decontaminate"] is True
    assert build["settings_given"] == ["leak_policy"]
    card = (tmp_path / "oasst_en" / "README.md").read_text()
    assert "set by the build request: `leak_policy`" in card and "test_fraction: 0.05" in card
    assert "decontaminate: null" not in card and "test_fraction: null" not in card


def test_no_masks_stage_without_a_tokenizer(tmp_path: Path) -> None:
    proc = chatdata("build", "oasst_en", "--out", str(tmp_path), "--workers", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    build = json.loads((tmp_path / "oasst_en" / "build.json").read_text())
    assert "masks" not in [r["stage"] for r in build["ledger"]] and "masks" not in build.get("notes", {})
    assert "│ masks" not in proc.stdout and "## Label masks" not in (tmp_path / "oasst_en" / "README.md").read_text()


def test_an_output_folder_is_ours_by_its_record_or_by_the_workspaces(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert chatdata("build", "--out", str(out), "--workers", "1").returncode == 0
    (out / "oasst_en" / "build.json").unlink()  # the record deleted by hand: every file left is one we wrote
    again = chatdata("build", "--out", str(out), "--workers", "1")
    assert again.returncode == 0, again.stderr[-2000:]
    (out / "oasst_en" / "build.json").unlink()
    (out / "oasst_en" / "my_notes.txt").write_text("mine")  # now a file we never wrote is there
    refused = chatdata("build", "--out", str(out), "--workers", "1")
    assert refused.returncode == 2 and "--overwrite" in error_lines(refused)[0]
    assert (out / "oasst_en" / "my_notes.txt").read_text() == "mine"


# ------------------------------------------------------------------------------------------------ tokenizers


def test_inspect_works_out_of_the_box_with_the_bundled_tokenizer_and_no_torch_warning(tmp_path: Path) -> None:
    dialogue = tmp_path / "d.json"
    dialogue.write_text(
        json.dumps([{"role": "user", "content": "Hello, can you help me?"}, {"role": "assistant", "content": "Sure!"}])
    )
    proc = chatdata("inspect", "--messages", str(dialogue))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "bundled demo tokenizer" in proc.stderr and "all six mask checks pass" in proc.stdout
    assert "PyTorch" not in proc.stdout + proc.stderr
    as_json = chatdata("inspect", "--messages", str(dialogue), "--json")
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 0 and len(data["input_ids"]) == len(data["labels"]) and -100 in data["labels"]
    built = chatdata("build", "--tokenizer", "bundled", "--out", str(tmp_path / "out"), "--workers", "1")
    assert built.returncode == 0 and "PyTorch" not in built.stdout + built.stderr
    build = json.loads((tmp_path / "out" / "oasst_en" / "build.json").read_text())
    assert "masks" in [r["stage"] for r in build["ledger"]] and build["masks"]["tokenizer"] == "bundled"


def test_the_bundled_tokenizer_is_what_its_script_makes(tmp_path: Path) -> None:
    """``scripts/make_bundled_tokenizer.py`` rebuilds the shipped tokenizer byte for byte (it is data, not magic)."""
    import hashlib
    import importlib.util

    import tokenizers

    from chatdata.chat.tokenizer import bundled_tokenizer

    made_with = json.loads((bundled_tokenizer() / "tokenizer_config.json").read_text())["chatdata_made_with"]
    if made_with != f"tokenizers {tokenizers.__version__}":
        pytest.skip(f"the shipped tokenizer was trained with {made_with}; BPE ties may differ in another version")
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_bundled_tokenizer.py"
    spec = importlib.util.spec_from_file_location("make_bundled_tokenizer", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.OUT = tmp_path
    module.main()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        made, shipped = (tmp_path / name).read_bytes(), (bundled_tokenizer() / name).read_bytes()
        assert hashlib.sha256(made).hexdigest() == hashlib.sha256(shipped).hexdigest(), name
