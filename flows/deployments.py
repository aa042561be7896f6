"""The recipe deployments declared in ``prefect.yaml``: check them against the recipes, or serve them here.

``prefect.yaml`` (repository root) is the source of truth: one deployment per recipe, a UTC cron schedule, the
build parameters and the ``process`` work pool. Two ways to run it:

- with a server and a worker: ``prefect --no-prompt deploy --all`` then ``prefect worker start --pool
  chatdata-process``;
- on one machine without a work pool: ``python -m flows.deployments serve`` (``flow.serve`` for every
  deployment of the file, same schedules and parameters; Ctrl-C stops it).

``python -m flows.deployments check`` prints what is wrong with the file (nothing when it is in sync);
``python -m flows.deployments run DEPLOYMENT [PARAMS_JSON]`` is a one-off run of a deployment executed in this
shell (a server, no worker), which exits 1 when the run does not complete.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from chatdata.errors import ChatdataError
from chatdata.recipes import shipped_recipes

FLOW_NAME = "chatdata-build"
ENTRYPOINT = "flows/build.py:build_flow"
WORK_POOL = "chatdata-process"


def prefect_yaml_path() -> Path:
    """``./prefect.yaml`` if there is one, else the one at the root of this checkout."""
    here = Path.cwd() / "prefect.yaml"
    return here if here.is_file() else Path(__file__).resolve().parents[1] / "prefect.yaml"


def load_deployments(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or prefect_yaml_path()
    if not path.is_file():
        raise ChatdataError(f"{path} not found; run this from the chatdata repository root")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return list(data.get("deployments") or [])


def expected_recipes() -> list[str]:
    return list(shipped_recipes())


def check_prefect_yaml(path: Path | None = None) -> list[str]:
    """Problems with ``prefect.yaml``: a recipe without a deployment, a schedule that is not UTC cron, bad
    parameters (validated with :class:`chatdata.settings.BuildRequest`)."""
    from chatdata.settings import BuildRequest

    problems = []
    deployments = {d.get("name"): d for d in load_deployments(path)}
    for recipe in expected_recipes():
        d = deployments.get(recipe)
        if d is None:
            problems.append(f"recipe '{recipe}' has no deployment")
            continue
        if d.get("entrypoint") != ENTRYPOINT:
            problems.append(f"{recipe}: entrypoint must be {ENTRYPOINT}")
        schedules = d.get("schedules") or []
        if not schedules or any(not s.get("cron") or s.get("timezone") != "UTC" for s in schedules):
            problems.append(f"{recipe}: needs cron schedules with timezone UTC")
        if (d.get("work_pool") or {}).get("name") != WORK_POOL:
            problems.append(f"{recipe}: work pool must be {WORK_POOL}")
        params = (d.get("parameters") or {}).get("params")
        if not isinstance(params, dict) or params.get("recipes") != [recipe]:
            problems.append(f"{recipe}: parameters.params.recipes must be [{recipe}]")
        else:
            try:
                BuildRequest.model_validate(params)
            except ValueError as exc:
                problems.append(f"{recipe}: invalid parameters: {exc}")
    return problems


def serve(recipes: list[str] | None = None) -> None:
    """Serve the deployments of ``prefect.yaml`` from this process (no work pool or worker needed)."""
    from prefect import serve as prefect_serve
    from prefect.client.schemas.schedules import CronSchedule

    from flows.build import build_flow

    runners = []
    for d in load_deployments():
        if recipes and d["name"] not in recipes:
            continue
        schedules = [CronSchedule(cron=s["cron"], timezone=s.get("timezone", "UTC")) for s in d.get("schedules") or []]
        runners.append(
            build_flow.to_deployment(
                name=d["name"],
                description=d.get("description"),
                tags=d.get("tags"),
                schedules=schedules,
                parameters=d.get("parameters") or {},
                concurrency_limit=d.get("concurrency_limit"),
            )
        )
    if not runners:
        raise ChatdataError(f"no deployment matches {recipes}; see prefect.yaml")
    prefect_serve(*runners)


def run_once(deployment: str, params: dict[str, Any] | None = None) -> int:
    """A one-off run of a deployment executed in this shell, no worker needed: create the run (with ``params``
    as its ``params`` object, else the deployment's), execute it with ``prefect flow-run execute`` and return
    0 if it completed, 1 otherwise (``prefect flow-run execute`` itself exits 0 whatever the run's end)."""
    import os
    import signal
    import subprocess

    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    from chatdata.lifeline import preexec

    name = deployment if "/" in deployment else f"{FLOW_NAME}/{deployment}"
    parameters = {"params": params} if params is not None else None
    run = run_deployment(name=name, parameters=parameters, timeout=0)
    print(f"flow run '{run.name}' ({run.id}) of {name}: executing here", file=sys.stderr)
    tie = preexec(signal.SIGTERM) if os.name == "posix" else None
    subprocess.run([sys.executable, "-m", "prefect", "flow-run", "execute", str(run.id)], preexec_fn=tie)  # type: ignore[arg-type]
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run.id).state
    if state is not None and state.is_completed():
        print(f"flow run '{run.name}' completed", file=sys.stderr)
        return 0
    what = f"{state.name}: {state.message}" if state is not None else "no state"
    print(f"error: flow run '{run.name}' ended {what} (prefect flow-run logs {run.id})", file=sys.stderr)
    return 1


USAGE = "usage: python -m flows.deployments check | serve [RECIPE ...] | run DEPLOYMENT ['{\"recipes\": [...], ...}']"


def main(argv: list[str]) -> int:
    import json

    command, *rest = argv or ["check"]
    if command == "check":
        problems = check_prefect_yaml()
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    if command == "serve":
        serve(rest or None)
        return 0
    if command == "run" and len(rest) in (1, 2):
        try:
            params = json.loads(rest[1]) if len(rest) == 2 else None
        except ValueError as exc:
            print(f"error: the params are not JSON ({exc})", file=sys.stderr)
            return 2
        return run_once(rest[0], params)
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
