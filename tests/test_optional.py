"""A plain install leaves Dask and transformers out: the base dependencies do not name them, and a feature that
needs one fails in one line naming the extra to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from chatdata.optional import MissingExtraError, require

ROOT = Path(__file__).resolve().parents[1]
#: run the CLI with a package made unimportable, as in an environment without the extra
BLOCKED = (
    "import sys; sys.modules[{module!r}] = None; "
    "sys.argv = ['chatdata', *sys.argv[1:]]; from chatdata.cli import app; app()"
)


def test_the_base_install_has_no_dask_transformers_or_torch() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = " ".join(project["dependencies"]).lower()
    for heavy in ("dask", "distributed", "transformers", "torch"):
        assert heavy not in base, heavy
    extras = project["optional-dependencies"]
    assert any(d.startswith("prefect-dask") for d in extras["dask"]) and any("distributed" in d for d in extras["dask"])
    assert any(d.startswith("transformers") for d in extras["transformers"])
    assert "chatdata[dask,transformers]" in extras["test"]  # the README's test command installs both


def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'chatdata\[transformers\]'"):
        require("transformers", "loading a tokenizer")
    assert require("polars", "anything").__name__ == "polars"


@pytest.mark.parametrize(
    ("module", "args", "extra"),
    [
        ("transformers", ["build", "--tokenizer", "bundled"], "transformers"),
        ("prefect_dask", ["build", "--dask-address", "tcp://127.0.0.1:1"], "dask"),
    ],
)
def test_a_missing_extra_fails_the_cli_in_one_line(tmp_path: Path, module: str, args: list[str], extra: str) -> None:
    code = BLOCKED.format(module=module)
    r = subprocess.run(
        [sys.executable, "-c", code, *args, "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 2, out
    assert f"pip install 'chatdata[{extra}]'" in out and "Traceback" not in out
    assert not (tmp_path / "out" / "oasst_en").exists()
