from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatdata.cli import app

runner = CliRunner()


def _python(code: str, *, timeout: int) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter, capturing its output."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)


def test_help_lists_commands() -> None:
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    assert "build" in r.output and "recipes" in r.output


def test_recipes_lists_oasst_en() -> None:
    r = runner.invoke(app, ["recipes"])
    assert r.exit_code == 0
    assert "oasst_en" in r.output and "HuggingFaceH4/oasst1_en" in r.output


def test_build_local_engine_prints_ledger(real_trees: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["build", "--source", str(real_trees), "--out", str(tmp_path), "--engine", "local"])
    assert r.exit_code == 0, r.output
    assert "trailing_user_turn" in r.output and "train_sft" in r.output
    assert json.loads((tmp_path / "oasst_en" / "build.json").read_text())["recipe"]["name"] == "oasst_en"


@pytest.mark.parametrize(("flag", "on"), [("--no-decontaminate", False), ("--decontaminate", True)])
def test_an_on_off_flag_switches_both_ways(tmp_path: Path, flag: str, on: bool) -> None:
    r = runner.invoke(app, ["build", "oasst_en", "--out", str(tmp_path), "--engine", "local", "--workers", "1", flag])
    assert r.exit_code == 0, r.output
    build = json.loads((tmp_path / "oasst_en" / "build.json").read_text())
    assert build["settings"]["decontaminate"] is on and build["settings_given"] == ["decontaminate"]
    dropped = next(x for x in build["ledger"] if x["stage"] == "filters")["rejected"]
    assert any(k.startswith("decontam_humaneval:") for k in dropped) is on


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cut = tmp_path / "cut.messages.jsonl.gz"
    cut.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 10)
    no_text = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.table({"message_id": ["a"], "role": ["prompter"], "parent_id": [None]}), no_text)
    wrong_level = tmp_path / "wrong_level.yaml"  # a message gate listed among a source's dialogue filters
    recipe = (Path(__file__).resolve().parents[1] / "recipes" / "oasst_en.yaml").read_text(encoding="utf-8")
    wrong_level.write_text(
        recipe.replace("name: oasst_en", "name: wrong_level").replace(
            "filters: [english]", "filters: [english, detoxify]"
        )
    )
    for args, needle in (
        (["build", "--source", str(tmp_path / "nope"), "--engine", "local"], "neither an existing path"),
        (["build", "no_such_recipe", "--engine", "local"], "unknown recipe 'no_such_recipe'"),
        (["build", "--source", str(cut)], "gzip"),
        (["build", "--source", str(no_text), "--workers", "2"], "text"),
        (["build", "--test-fraction", "1.5"], "--test-fraction"),
        (["build", "--source", "dolly=x.jsonl"], "'dolly' is not a source of oasst_en"),
        (
            ["build", str(wrong_level), "--engine", "local"],
            "filter 'detoxify' works on messages: list it under a source's gates",
        ),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "chatdata.cli", *args, "--out", str(tmp_path / "o")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr + proc.stdout
        err_lines = [ln for ln in proc.stderr.splitlines() if ln.strip().startswith("error:")]
        assert len(err_lines) == 1 and needle in err_lines[0], proc.stderr


def test_a_build_imports_only_what_it_uses(tmp_path: Path) -> None:
    """A plain build loads no Prefect, Dask, datasets, transformers, matplotlib or pandas (start-up time)."""
    code = (
        "import sys\n"
        f"sys.argv = ['chatdata', 'build', 'oasst_en', 'guanaco', '--out', {str(tmp_path)!r}, '--workers', '1']\n"
        "from chatdata.cli import app\n"
        "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "heavy = ('prefect', 'dask', 'datasets', 'transformers', 'matplotlib', 'pandas', 'torch')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    proc = _python(code, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def test_library_does_not_import_prefect() -> None:
    code = (
        "import sys, pkgutil, importlib, chatdata\n"
        "for m in pkgutil.walk_packages(chatdata.__path__, 'chatdata.'):\n"
        "    if m.name != 'chatdata.cli': importlib.import_module(m.name)\n"
        "print('prefect' in sys.modules)"
    )
    proc = _python(code, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_console_script_exit_runs_exit_handlers_and_flushes() -> None:
    """``run`` ends the process with ``os._exit`` but still runs atexit handlers and flushes every stream."""
    code = (
        "import atexit, sys\n"
        "from chatdata.cli import run\n"
        "atexit.register(lambda: print('handler ran'))\n"
        "sys.argv = ['chatdata', '--version']\n"
        "print('x' * 100000)\n"
        "run()\n"
    )
    proc = _python(code, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("x" * 100000)
    assert proc.stdout.rstrip().splitlines()[-2:] == [f"chatdata {__import__('chatdata').__version__}", "handler ran"]
    failing = subprocess.run(
        [sys.executable, "-m", "chatdata.cli", "build", "no_such_recipe"], capture_output=True, text=True, timeout=120
    )
    assert failing.returncode == 2 and "unknown recipe" in failing.stderr
