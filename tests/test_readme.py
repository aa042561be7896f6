"""The README's offline examples run as written (bash, from an empty folder, the installed ``chatdata``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
#: blocks that need something a test cannot give them: the network, a Prefect server and worker, a cluster, an install
NOT_HERE = ("OpenAssistant/", "prefect ", "dask ", "pip install", "PREFECT_HOST")


def offline_blocks() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    return [b for b in blocks if "chatdata " in b and not any(marker in b for marker in NOT_HERE)]


def test_the_readme_has_offline_examples_to_run() -> None:
    blocks = offline_blocks()
    assert len(blocks) >= 2 and any("inspect" in b for b in blocks) and any("bundled-sample" in b for b in blocks)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(offline_blocks())))
def test_a_readme_example_runs_offline_as_written(index: int, tmp_path: Path) -> None:
    block = offline_blocks()[index]
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{block}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr
