"""The chatdata build as a Prefect flow: the library's engine, with Prefect tasks as its executor.

The flow's parameter is :class:`chatdata.settings.BuildRequest` (validated before any work starts), the same
model the CLI's options and ``prefect.yaml``'s ``params`` are. The engine (:func:`chatdata.engine.build`) hands
each phase to :class:`PrefectExecutor`, which submits one Prefect task per unit of work to a task runner: a
fetch task per source (retried on transient Hub errors), a partition task per source, one task per shard
(submitted together), a plan task and a write task per recipe, then a publish task per recipe (retried too).
On one machine the runner is Prefect's ``ProcessPoolTaskRunner``; with ``dask_address`` it is prefect-dask's
``DaskTaskRunner(address=...)``, so every shard's stages run on the cluster (the workspace must be on a
filesystem every worker mounts at the same path). Reuse of finished work is the engine's own content-keyed
cache, the same for every executor: no Prefect result cache is involved.

Artifacts on every run: a ledger table and a markdown summary per recipe, a progress bar for the build and,
after a push, the Hub commit. One-off run: ``chatdata build --engine prefect`` or
``python -m flows.build '{"recipes": ["oasst_en"]}'``; scheduled runs go through ``prefect.yaml``.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from chatdata import engine
from chatdata.executors import Executor, OnDone
from chatdata.settings import BuildRequest

T = TypeVar("T")
R = TypeVar("R")


# --------------------------------------------------------------------------------------------------- retries


def _transient(exc: BaseException | None) -> bool:
    """True if ``exc`` or anything it was raised from is a retryable Hub/network error."""
    from chatdata.hub.client import is_transient

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if is_transient(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
    """``retry_condition_fn``: retry network hiccups and 5xx/429, never bad input, auth or not-found."""
    data = state.data
    if not isinstance(data, BaseException):
        try:
            data = state.result(raise_on_failure=False)
        except Exception as exc:  # the stored result itself is the error
            data = exc
    return isinstance(data, BaseException) and _transient(data)


HUB_RETRIES = {
    "retries": 3,
    "retry_delay_seconds": exponential_backoff(backoff_factor=10),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_if_transient,
}


# ------------------------------------------------------------------------------------------------ the executor


@task(name="chatdata", cache_policy=NO_CACHE)
def run_unit(fn: Callable[[Any], Any], item: Any) -> Any:
    """One unit of an engine phase (what the task runner ships to a worker)."""
    return fn(item)


class PrefectExecutor(Executor):
    """Each phase's units as Prefect tasks on ``runner``, all submitted at once; tasks named after the phase."""

    def __init__(self, runner: Any, workers: int, progress: _Progress | None = None) -> None:
        self.runner, self.workers, self.progress = runner, workers, progress

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        phase: str,
        labels: Sequence[str] | None = None,
        on_done: OnDone | None = None,
    ) -> list[R]:
        names = list(labels) if labels is not None else [f"{phase} {i + 1}" for i in range(len(items))]
        options: dict[str, Any] = HUB_RETRIES if phase == "fetch" else {}
        if self.progress:
            self.progress.expect(len(items))
        futures = [
            self.runner.submit(
                run_unit.with_options(name=phase, task_run_name=f"{phase}:{name}", **options), {"fn": fn, "item": item}
            )
            for item, name in zip(items, names, strict=True)
        ]
        results: list[Any] = []
        error: BaseException | None = None
        for future, name in zip(futures, names, strict=True):
            try:
                results.append(future.result())
            except BaseException as exc:  # wait for every task, then raise the first failure
                error = error or exc
                continue
            if on_done:
                on_done(name)
            if self.progress:
                self.progress.advance(f"{phase}: {name}")
        if error is not None:
            raise error
        return results


def _dask_runner() -> Any:
    """prefect-dask's ``DaskTaskRunner`` (the ``chatdata[dask]`` extra)."""
    from chatdata.optional import require

    return require("prefect_dask", "--dask-address (Prefect tasks on a Dask cluster)").DaskTaskRunner


def task_runner(params: BuildRequest) -> tuple[Any, int]:
    """prefect-dask's runner on the cluster at ``dask_address``, else a process pool on this machine."""
    if params.dask_address:
        return _dask_runner()(address=params.dask_address), params.workers or 1
    from prefect.task_runners import ProcessPoolTaskRunner

    import flows.callbacks

    workers = params.workers or os.cpu_count() or 1
    init = {"initializer": worker_init, "initargs": (os.getpid(), flows.callbacks.log_file)}
    return ProcessPoolTaskRunner(max_workers=workers, **init), workers


def worker_init(parent: int, log_file: str | None) -> None:
    """Initializer of the process pool's workers: die with the flow's process (even a SIGKILLed one); in a quiet
    run, log to the debug file instead of the terminal."""
    from chatdata.lifeline import die_with_parent

    die_with_parent(parent)
    if log_file:
        log_to_file(log_file)


# -------------------------------------------------------------------------------------------------- artifacts


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "build"


class _Progress:
    """The build's progress artifact: one unit per finished task (phases add their tasks as they start)."""

    def __init__(self, key: str) -> None:
        self.total, self.done = 0, 0
        self.id = create_progress_artifact(0.0, key=key, description="chatdata build: starting")

    def expect(self, n: int) -> None:
        self.total += n

    def advance(self, note: str) -> None:
        self.done += 1
        share = 100.0 * self.done / max(self.total, 1)
        update_progress_artifact(self.id, round(min(99.0, share), 1), description=note)

    def finish(self) -> None:
        update_progress_artifact(self.id, 100.0, description="chatdata build: done")


def _card_summary(folder: Path) -> str:
    """The dataset card's title and introduction (what comes before its first ``##`` section)."""
    card = folder / "README.md"
    if not card.is_file():
        return ""
    text = card.read_text(encoding="utf-8")
    if text.startswith("---"):
        parts = text.split("\n---", 1)
        text = parts[1].split("\n", 1)[-1] if len(parts) > 1 else text
    return text.split("\n## ", 1)[0].strip()


def _artifacts(recipe: str, folder: Path, result: engine.BuildResult) -> str:
    """A ledger table and a markdown summary (card introduction, where the output went) for one recipe."""
    import json

    build = json.loads((folder / "build.json").read_text())
    rows = [
        {
            "source": r.get("source") or "(mixture)",
            "stage": r["stage"],
            "unit": r["unit"],
            "in": r["rows_in"],
            "out": r["rows_out"],
            "rejected": sum(r["rejected"].values()),
            "reasons": ", ".join(f"{k}: {v}" for k, v in r["rejected"].items()),
        }
        for r in build["ledger"]
    ]
    slug = _slug(recipe)
    create_table_artifact(table=rows, key=f"ledger-{slug}", description=f"{recipe}: rows in/out and rejects per stage")
    splits = ", ".join(
        f"{split}: {v['rows']}"
        for config, by_split in build["outputs"].items()
        if config != "rejects"
        for split, v in by_split.items()
    )
    sources = build.get("sources") or {}
    reused = ", ".join(f"{phase} {n}" for phase, n in sorted(result.reused.items()) if n) or "nothing"
    lines = [
        _card_summary(folder),
        "",
        "## Build",
        "",
        f"- output: `{folder.resolve()}`",
        f"- rows: {splits}; rejects: {sum(r['rejected'] for r in rows)}",
        *[
            f"- source `{n}`: `{s.get('spec')}`" + (f" @ `{s['revision']}`" if s.get("revision") else "")
            for n, s in sources.items()
        ],
        f"- settings sha256: `{build.get('settings_sha256', '')[:16]}`",
        f"- reused from the workspace: {reused}",
    ]
    create_markdown_artifact(
        markdown="\n".join(lines) + "\n",
        key=f"summary-{slug}",
        description=f"{recipe}: card summary and where the output went",
    )
    changes = build.get("changes")
    if changes:
        create_markdown_artifact(
            markdown=_changes_markdown(changes),
            key=f"changes-{slug}",
            description=f"{recipe}: what changed since the version this build replaced, and why",
        )
    return splits


def _changes_markdown(changes: dict[str, Any]) -> str:
    """``build.json``'s ``changes`` as a short markdown page: the categories per split, then the reasons."""
    lines = [
        f"{changes['added']} added, {changes['removed']} removed, {changes['changed']} changed, "
        f"{changes['moved']} moved, {changes['unchanged']} unchanged",
        "",
        "| split | before | now | added | removed | changed | moved in | moved out |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[
            f"| {name} | {s['old']} | {s['new']} | {s['added']} | {s['removed']} | {s['changed']} | {s['moved_in']} "
            f"| {s['moved_out']} |"
            for name, s in changes["splits"].items()
        ],
    ]
    for key, heading in (("removed_by_reason", "Removed, by reason"), ("added_by_cause", "Added, by cause")):
        if changes[key]:
            lines += ["", f"{heading}:", "", *[f"- `{k}`: {n}" for k, n in changes[key].items()]]
    return "\n".join(lines) + "\n"


def _published_artifact(recipe: str, folder: Path, pushed: dict[str, Any]) -> None:
    where = pushed.get("pr_url") or pushed.get("commit_url") or pushed["repo_id"]
    create_markdown_artifact(
        markdown=f"# {recipe} published\n\n`{folder.resolve()}` -> {where}\n\n{pushed['summary']}\n",
        key=f"published-{_slug(recipe)}",
        description=f"{recipe}: Hub commit",
    )


@task(name="publish", task_run_name="publish:{recipe}", cache_policy=NO_CACHE, **HUB_RETRIES)
def publish_task(folder: str, recipe: str, params: BuildRequest) -> dict[str, Any]:
    """Publish one built dataset folder to the Hub in one commit (``chatdata.hub.publish``), guarded against
    empty or shrunken data unless ``force_publish``."""
    from chatdata.hub.publish import publish_built

    result = publish_built(recipe, Path(folder), params)
    get_run_logger().info("%s", result.summary())
    return {
        "repo_id": result.repo_id,
        "revision": result.revision,
        "commit_sha": result.commit_sha,
        "commit_url": result.commit_url,
        "pr_url": result.pr_url,
        "summary": result.summary(),
    }


# ------------------------------------------------------------------------------------------------------- flow


def _announce() -> None:
    """Tell the user which flow run this is and where to see it (the UI link when the server has a UI)."""
    from prefect.runtime import flow_run
    from prefect.utilities.urls import url_for

    import flows.callbacks
    from flows import server

    if flows.callbacks.on_note is None:
        return
    link = None if server.running else url_for("flow-run", obj_id=flow_run.get_id())
    where = f": {link}" if link else f" ({flow_run.get_id()}; the temporary server has no UI: set PREFECT_API_URL)"
    flows.callbacks.on_note(f"Prefect flow run '{flow_run.get_name()}'{where}")


def _preflight(params: BuildRequest) -> None:
    """Checks that fail before any task runs."""
    from chatdata.hub.publish import check_push_token

    check_push_token(params.push_to)


@flow(name="chatdata-build", log_prints=True, validate_parameters=True)
def build_flow(params: BuildRequest) -> dict[str, Any]:
    """Build every requested recipe into ``params.out/<recipe>`` and publish them when asked."""
    import flows.callbacks

    logger = get_run_logger()
    _announce()
    _preflight(params)
    on_phase, on_done = flows.callbacks.current
    progress = _Progress(key=f"progress-{_slug('-'.join(Path(r).stem for r in params.recipes))}")
    runner, workers = task_runner(params)

    def phase(message: str) -> None:
        logger.info("%s", message)
        if on_phase:
            on_phase(message)

    with runner:
        executor = PrefectExecutor(runner, workers, progress)
        result = engine.build(params, executor, on_phase=phase, on_done=on_done)
    pushed: dict[str, Any] = {}
    for recipe, folder in result.outputs.items():
        splits = _artifacts(recipe, folder, result)
        logger.info("built %s -> %s (%s)", recipe, folder, splits)
        if params.push_to:
            pushed[recipe] = publish_task(str(folder), recipe, params)
            _published_artifact(recipe, folder, pushed[recipe])
    progress.finish()
    return {
        "outputs": {k: str(v) for k, v in result.outputs.items()},
        "ran": result.ran,
        "reused": result.reused,
        "pushed": pushed,
    }


def run_flow(
    params: BuildRequest,
    on_phase: Callable[[str], None] | None = None,
    on_done: Callable[[str, str], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Call the flow in this process (the CLI's ``--engine prefect``, ``python -m flows.build``) with progress
    callbacks; ``on_note`` hears lines for the user (the server, the flow run and its link). Without
    ``PREFECT_API_URL`` a temporary server runs for the duration of the call (:mod:`flows.server`)."""
    import flows.callbacks
    from flows.server import api_server

    if params.dask_address:  # before a server starts: a missing extra is one line, at once
        _dask_runner()
    log = Path(params.work_dir()) / "prefect.log"
    with api_server(log, dask_address=params.dask_address, say=on_note):
        flows.callbacks.current = (on_phase, on_done)
        flows.callbacks.on_note = on_note
        try:
            return build_flow(params)
        finally:
            flows.callbacks.current = (None, None)
            flows.callbacks.on_note = None


def _terminal_handlers() -> list[tuple[logging.Logger, logging.Handler]]:
    """Every logging handler that writes to the terminal (Prefect's console handler and the like)."""
    streams = {id(x) for x in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)}
    found = []
    for name in [None, *logging.root.manager.loggerDict]:
        lg = logging.getLogger(name)
        for h in getattr(lg, "handlers", []):
            console = id(getattr(h, "stream", None)) in streams or type(h).__name__ == "PrefectConsoleHandler"
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) and console:
                found.append((lg, h))
    return found


def log_to_file(path: str) -> None:
    """In this process: Prefect's (and every library's) log records to ``path``, nothing to the terminal. The
    initializer of the worker processes of a quiet run."""
    for lg, h in _terminal_handlers():
        lg.removeHandler(h)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)  # the root only: "prefect" propagates to it (each line once)


@contextmanager
def quiet_prefect_logging(path: Path) -> Iterator[None]:
    """Prefect's terminal logging off (in this process and the workers it starts), its records into ``path``:
    a failed run prints chatdata's one-line error; the traceback stays in the debug log (and the Prefect UI)."""
    import flows.callbacks

    silenced = {f"PREFECT_LOGGING_HANDLERS_{h}_LEVEL": "100" for h in ("CONSOLE", "DEBUG")}
    saved = {k: os.environ.get(k) for k in silenced}
    os.environ.update(silenced)
    path.parent.mkdir(parents=True, exist_ok=True)
    removed = _terminal_handlers()
    before = {id(h) for h in logging.getLogger().handlers}
    log_to_file(str(path))
    flows.callbacks.log_file = str(path)
    try:
        yield
    finally:
        flows.callbacks.log_file = None
        for lg in (logging.getLogger(), logging.getLogger("prefect")):
            for h in [h for h in lg.handlers if id(h) not in before and isinstance(h, logging.FileHandler)]:
                lg.removeHandler(h)
                h.close()
        for lg, h in removed:
            lg.addHandler(h)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


if __name__ == "__main__":
    run_flow(
        BuildRequest.model_validate_json(sys.argv[1]) if len(sys.argv) > 1 else BuildRequest(),
        on_note=lambda line: print(line, file=sys.stderr),
    )
