"""The Prefect flow: the library engine with Prefect tasks as its executor, on a process pool or on Dask, with the
same output bytes as the local executor; artifacts; reuse across runs; one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from builds import build_recipes
from compare import assert_same_tree
from prefect_harness import REPO, prefect_server, server_test, tiny_source  # noqa: F401  (session fixture)

from chatdata.errors import ChatdataError

RECIPES = ["oasst_en", "oasst_prefs"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_source(tmp_path_factory.mktemp("src"), n_trees=40)


@pytest.fixture(scope="module")
def local(source: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_recipes(RECIPES, tmp_path_factory.mktemp("local"), source=source, shards=1)


def test_retry_only_transient_hub_errors() -> None:
    import importlib

    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
    from prefect.states import Failed

    from chatdata.hub.client import HubError
    from flows.build import retry_if_transient

    def http_error(cls: type[HfHubHTTPError], status: int) -> HfHubHTTPError:
        try:  # huggingface_hub >= 2 answers with httpx2 responses
            http: Any = importlib.import_module("httpx2")
        except ImportError:
            http = importlib.import_module("httpx")
        request = http.Request("GET", "http://127.0.0.1/api/datasets/a/b")
        return cls(f"{status}", response=http.Response(status, request=request))

    def wrapped(cause: BaseException) -> HubError:
        try:
            raise HubError("download failed") from cause
        except HubError as exc:
            return exc

    assert retry_if_transient(None, None, Failed(data=http_error(HfHubHTTPError, 503)))
    assert retry_if_transient(None, None, Failed(data=wrapped(ConnectionError("reset"))))
    assert not retry_if_transient(None, None, Failed(data=wrapped(http_error(RepositoryNotFoundError, 404))))
    assert not retry_if_transient(None, None, Failed(data=ChatdataError("source 'x' is neither a path nor an id")))


def _artifacts(state: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )


def _task_names(state: Any) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    return sorted(r.name for r in runs)


@server_test
def test_invalid_params_fail_before_any_task(tmp_path: Path) -> None:
    from flows.build import build_flow

    with pytest.raises(Exception, match="unknown recipe"):
        build_flow(params={"recipes": ["no_such_recipe"], "out": str(tmp_path)})
    assert not (tmp_path / ".work").exists()


@server_test
def test_flow_on_a_process_pool_matches_the_local_build_and_reuses_on_rerun(
    source: Path, local: dict[str, Path], tmp_path: Path
) -> None:
    from chatdata.settings import BuildRequest
    from flows.build import build_flow

    params = BuildRequest(recipes=RECIPES, source=[str(source)], out=str(tmp_path / "out"), shards=3, workers=2)
    state = build_flow(params, return_state=True)
    result = state.result()
    for name in RECIPES:
        assert_same_tree(local[name], Path(result["outputs"][name]))
    assert result["ran"] == {"partition": 1, "shard": 6, "plan": 2, "write": 2}
    names = _task_names(state)
    assert sum(n.startswith("shard:") for n in names) == 3  # one task per shard, all recipes inside it
    assert {n.split(":")[0] for n in names} == {"fetch", "partition", "shard", "plan", "write"}
    arts = {a.key: a for a in _artifacts(state)}
    assert {"ledger-oasst-en", "summary-oasst-prefs", "progress-oasst-en-oasst-prefs"} <= set(arts)
    assert arts["progress-oasst-en-oasst-prefs"].data == 100.0
    assert str((tmp_path / "out" / "oasst_en").resolve()) in arts["summary-oasst-en"].data
    again = build_flow(params)
    assert again["ran"] == {"partition": 0, "shard": 0, "plan": 0, "write": 0}
    assert "changes-oasst-en" not in arts  # the first build replaced nothing
    # a split change rewrites both recipes over their previous versions: each run says what changed
    moved = build_flow(params.model_copy(update={"test_fraction": 0.5}), return_state=True)
    changes = {a.key: a for a in _artifacts(moved)}
    assert {"changes-oasst-en", "changes-oasst-prefs"} <= set(changes)
    assert "| train_sft |" in changes["changes-oasst-en"].data and "moved" in changes["changes-oasst-en"].data


@server_test
def test_flow_on_a_dask_cluster_matches_the_local_build(source: Path, local: dict[str, Path], tmp_path: Path) -> None:
    from distributed import LocalCluster

    from chatdata.settings import BuildRequest
    from flows.build import build_flow

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1", dashboard_address=None
    ) as cluster:
        result = build_flow(
            BuildRequest(
                recipes=RECIPES,
                source=[str(source)],
                out=str(tmp_path / "out"),
                shards=4,
                dask_address=cluster.scheduler_address,
            )
        )
    assert result["ran"]["shard"] == 8
    for name in RECIPES:
        assert_same_tree(local[name], Path(result["outputs"][name]))


@server_test
def test_cli_prefect_engine_prints_one_line_errors(prefect_server: Any, tmp_path: Path) -> None:  # noqa: F811
    """A user error inside a flow run is chatdata's one line on the terminal; the traceback goes to the log."""
    bad = tmp_path / "cut.messages.jsonl.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 10)
    env = prefect_server.env()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatdata.cli",
            "build",
            "--engine",
            "prefect",
            "--source",
            str(bad),
            "--out",
            str(tmp_path / "o"),
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "gzip" in lines[-1], proc.stderr[-2000:]
    assert "Traceback" in (tmp_path / "o" / ".work" / "prefect.log").read_text()


def test_prefect_is_imported_only_by_flows() -> None:
    code = (
        "import sys; import chatdata.cli, chatdata.engine, chatdata.stages, chatdata.output;"
        "print(sorted(m for m in ('prefect', 'dask', 'datasets', 'transformers', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=True)
    assert out.stdout.strip() == "[]"


@server_test
def test_cli_prefect_engine_names_the_flow_run_and_logs_each_line_once(
    prefect_server: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "chatdata.cli", "build", "--engine", "prefect", "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        env=prefect_server.env(),
        cwd=REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r"Prefect flow run '([\w-]+)': (\S+)", proc.stderr)
    assert match, proc.stderr[-2000:]
    assert match.group(2).startswith(f"http://127.0.0.1:{prefect_server.port}/runs/flow-run/")
    assert "temporary Prefect server" not in proc.stderr  # PREFECT_API_URL names a server: it is used
    lines = (tmp_path / "o" / ".work" / "prefect.log").read_text().splitlines()
    assert any(match.group(1) in line for line in lines)
    assert len(lines) == len(set(lines)), [line for line in lines if lines.count(line) > 1][:3]
