"""prefect.yaml: one deployment per recipe; deployed with the real CLI its schedules fire, and a one-off run
(``prefect deployment run`` + ``prefect flow-run execute``) builds and publishes to a loopback Hub."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hubserver import hub_env, running_hub
from prefect_harness import REPO, PrefectServer, prefect_server, server_test, tiny_source  # noqa: F401

from flows.deployments import (
    ENTRYPOINT,
    FLOW_NAME,
    WORK_POOL,
    check_prefect_yaml,
    expected_recipes,
    load_deployments,
)


def test_prefect_yaml_has_a_valid_deployment_per_recipe() -> None:
    assert check_prefect_yaml(REPO / "prefect.yaml") == []
    names = [d["name"] for d in load_deployments(REPO / "prefect.yaml")]
    assert set(expected_recipes()) <= set(names)
    assert {"oasst_en", "guanaco", "guanaco_uncensored", "oasst_prefs"} <= set(names)
    path, func = ENTRYPOINT.split(":")
    assert (REPO / path).is_file() and f"def {func}(" in (REPO / path).read_text()


def test_check_reports_a_missing_recipe_and_a_local_schedule(tmp_path: Path) -> None:
    import yaml

    data = yaml.safe_load((REPO / "prefect.yaml").read_text())
    data["deployments"] = [d for d in data["deployments"] if d["name"] != "guanaco"]
    data["deployments"][0]["schedules"][0]["timezone"] = "Europe/Paris"
    broken = tmp_path / "prefect.yaml"
    broken.write_text(yaml.safe_dump(data))
    problems = check_prefect_yaml(broken)
    assert "recipe 'guanaco' has no deployment" in problems
    assert any("timezone UTC" in p for p in problems)


@pytest.fixture(scope="module")
def deployed(prefect_server: PrefectServer) -> dict[str, Any]:  # noqa: F811
    """The work pool, then ``prefect --no-prompt deploy --all`` from the repository root (as the README)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"), overwrite=True)
    proc = prefect_server.run_cli("--no-prompt", "deploy", "--all")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with get_client(sync_client=True) as client:
        ids = {d.name: d.id for d in client.read_deployments() if d.name in expected_recipes()}
    assert set(ids) == set(expected_recipes())
    return ids


@server_test
def test_deployed_schedules_create_scheduled_runs(deployed: dict[str, Any]) -> None:
    """The server's scheduler turns every cron schedule into SCHEDULED runs (fails with SQLAlchemy 2.1)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    seen: set[Any] = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and seen != set(deployed.values()):
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=list(deployed.values()))),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
                ),
            )
        seen = {r.deployment_id for r in runs}
        time.sleep(1)
    assert seen == set(deployed.values())
    assert all(r.expected_start_time and r.expected_start_time.tzinfo for r in runs)


@server_test
def test_one_off_deployment_run_builds_and_publishes(
    deployed: dict[str, Any],
    prefect_server: PrefectServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    from prefect.client.orchestration import get_client

    params = {
        "recipes": ["oasst_en"],
        "source": [str(tiny_source(tmp_path / "src", n_trees=6))],
        "out": str(tmp_path / "out"),
        "push_to": "tester/chatdata-oasst-en",
    }
    proc = prefect_server.run_cli(
        "deployment", "run", f"{FLOW_NAME}/oasst_en", "--param", f"params={json.dumps(params)}"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", proc.stdout)
    assert match, proc.stdout
    run_id = match.group(1)

    with running_hub() as hub:
        hf = {k: v for k, v in hub_env(hub, tmp_path, hub.token).items() if k.startswith("HF_")}
        proc = prefect_server.run_cli("flow-run", "execute", run_id, timeout=300, HF_HUB_OFFLINE="0", **hf)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        files = hub.files("tester/chatdata-oasst-en")

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
    assert run.state is not None and run.state.is_completed()
    built = tmp_path / "out" / "oasst_en"
    assert json.loads((built / "build.json").read_text())["recipe"]["name"] == "oasst_en"
    assert {"README.md", "build.json"} <= set(files)
    assert {p.relative_to(built).as_posix() for p in built.rglob("*.parquet")} <= set(files)


@server_test
def test_the_documented_one_off_run_exits_non_zero_when_the_run_fails(
    deployed: dict[str, Any],
    prefect_server: PrefectServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    """``python -m flows.deployments run``: create the run, execute it here, and exit 1 when it did not complete
    (``prefect flow-run execute`` alone exits 0 whatever happened)."""
    import subprocess
    import sys

    def one_off(params: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flows.deployments", "run", "oasst_en", json.dumps(params)],
            cwd=REPO,
            env=prefect_server.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )

    failed = one_off({"recipes": ["oasst_en"], "source": [str(tmp_path / "missing")], "out": str(tmp_path / "o")})
    assert failed.returncode == 1, failed.stdout[-2000:] + failed.stderr[-2000:]
    assert re.search(r"error: flow run '[\w-]+' ended Failed", failed.stderr), failed.stderr[-2000:]
    ok = one_off({"recipes": ["oasst_en"], "source": ["bundled-sample"], "out": str(tmp_path / "out")})
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert json.loads((tmp_path / "out" / "oasst_en" / "build.json").read_text())["recipe"]["name"] == "oasst_en"
