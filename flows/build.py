"""The chatdata build as a Prefect flow: one task per library stage, passing file paths, never frames.

- Parameters are one pydantic model (:class:`BuildParams`), validated before any stage runs.
- Every stage is skipped when its content key matches the marker beside its outputs (``flows/stagecache.py``):
  a rerun with nothing changed runs no stage, a changed setting re-runs only the stages from the first one
  that reads it, a crashed build resumes at the first unfinished stage.
- ``dask_address`` runs the shardable stages (``score``) as K tree-shards on a Dask cluster
  (``flows/scaleout.py``).
- ``push_to`` publishes each built folder with ``chatdata.hub.publish.publish_folder`` (retried on transient
  errors).
- Artifacts on every run: a ledger table and a markdown summary per recipe, and a progress bar for the build.

One-off run without a server (ephemeral Prefect): ``chatdata build`` or
``python -m flows.build '{"recipes": ["oasst_en"]}'``. Prefect 3 has no ``prefect run``; scheduled and
on-demand runs go through the deployments in ``prefect.yaml``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed
from prefect.tasks import exponential_backoff
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chatdata import pipeline
from chatdata.errors import ChatdataError
from chatdata.recipes import RECIPES
from flows import stagecache

#: set by the CLI to drive its progress bar (in-process only)
_progress: Callable[[str, str], None] | None = None

_DEFAULTS = pipeline.BuildSettings()
_SETTING_NAMES = {f.name for f in fields(pipeline.BuildSettings)}
_DASK_ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss|inproc)://\S+$")


def set_progress_callback(callback: Callable[[str, str], None] | None) -> None:
    global _progress
    _progress = callback


class BuildParams(BaseModel):
    """Parameters of a build, validated before any work starts.

    Every ``chatdata.pipeline.BuildSettings`` field is accepted (the ones declared here are checked here; a
    field the pipeline adds later passes through unchecked until it is declared). Anything else is an error.
    """

    model_config = ConfigDict(extra="allow")

    recipes: list[str] = Field(default_factory=lambda: ["oasst_en"], min_length=1)
    source: str | None = Field(None, description="local file/folder or Hub dataset id; None = bundled sample")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) of the source")
    out: str = Field("out", description="output folder; each recipe goes to OUT/RECIPE")
    work: str | None = Field(None, description="stage workspace (default OUT/.work); keep it to make reruns cheap")
    test_fraction: float | None = Field(None, ge=0.0, lt=1.0)
    split_seed: str = _DEFAULTS.split_seed
    leak_policy: Literal["move", "drop"] = "move"
    max_shard_bytes: int = Field(_DEFAULTS.max_shard_bytes, gt=0)
    decontaminate: bool | None = Field(None, description="drop HumanEval overlaps (None: the recipe's setting)")
    pair_mode: str | None = Field(None, description="preference pairs: best_vs_worst or all_pairs")
    on_special: str = Field(_DEFAULTS.on_special, description="special-token strings in content: reject or escape")
    tokenizer: str | None = Field(None, description="validate label masks with this tokenizer")
    dialect: str = Field(_DEFAULTS.dialect, description="chat rendering for the mask check")
    mask_convention: str = Field(_DEFAULTS.mask_convention, description="starchat or content_only")
    max_length: int = Field(_DEFAULTS.max_length, ge=8, description="training length for the mask check")
    force: bool = Field(False, description="run every stage even when its inputs are unchanged")
    push_to: str | None = Field(None, description="publish to this Hub dataset repo ({recipe} for several)")
    private: bool = Field(False, description="create the Hub repo private (only when it does not exist)")
    push_revision: str | None = Field(None, description="Hub branch to publish to (default main)")
    create_pr: bool = Field(False, description="open a pull request instead of committing")
    dask_address: str | None = Field(None, description="Dask scheduler (tcp://host:8786) for the sharded stages")
    shards: int = Field(16, ge=1, le=4096, description="tree-shards per sharded stage (independent of workers)")
    engine: Literal["stages", "sharded"] = Field(
        "stages", description="stages: one task per stage, cached; sharded: one task running the tree-sharded build"
    )
    tree_shards: int | None = Field(None, ge=1, le=4096, description="engine sharded: tree-shards (None: auto)")
    workers: int = Field(2, ge=1, le=256, description="engine sharded: worker processes")

    @field_validator("recipes")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [r for r in v if r not in RECIPES]
        if unknown:
            raise ValueError(f"unknown recipe(s) {unknown}; known: {sorted(RECIPES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"recipes listed twice: {v}")
        return v

    @field_validator("dask_address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not _DASK_ADDRESS.match(v):
            raise ValueError(f"dask_address {v!r} must look like tcp://HOST:PORT (the Dask scheduler)")
        return v

    @model_validator(mode="after")
    def _extras_and_push(self) -> BuildParams:
        extra = sorted(set(self.model_extra or {}) - _SETTING_NAMES)
        if extra:
            raise ValueError(f"unknown parameter(s) {extra}")
        if self.push_to is not None:
            if len(self.recipes) > 1 and "{recipe}" not in self.push_to:
                raise ValueError("push_to needs a {recipe} placeholder when building several recipes")
            from chatdata.hub.client import validate_repo_id

            for r in self.recipes:
                try:
                    validate_repo_id(self.push_to.replace("{recipe}", r))
                except ChatdataError as exc:
                    raise ValueError(str(exc)) from None
        check = getattr(pipeline.BuildSettings, "validate", None)  # the library's own one-line checks
        if check is not None:
            try:
                check(self.settings())
            except ChatdataError as exc:
                raise ValueError(str(exc)) from None
        return self

    def settings(self) -> pipeline.BuildSettings:
        values = {
            **(self.model_extra or {}),
            **self.model_dump(include=_SETTING_NAMES & set(type(self).model_fields)),
        }
        return pipeline.BuildSettings(**values)

    def work_dir(self) -> str:
        return self.work or str(Path(self.out) / ".work")


def make_params(**values: Any) -> BuildParams:
    """:class:`BuildParams` or a one-line :class:`ChatdataError` naming the bad field (for the CLI)."""
    try:
        return BuildParams(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "parameters"
        raise ChatdataError(f"invalid build parameter {where}: {first['msg']}") from None


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


# ------------------------------------------------------------------------------------------------------ tasks


@task(name="fetch-source", cache_policy=NO_CACHE, **HUB_RETRIES)
def fetch_source(source: str | None, revision: str | None, work: str) -> dict[str, Any]:
    """Resolve the source to local files (downloading a Hub dataset into ``work/hub-cache``)."""
    resolved = pipeline.resolve_source(source, revision, Path(work) / "hub-cache")
    return {"path": str(resolved.path), "spec": resolved.spec, "revision": resolved.revision}


def _result(stage: str, recipe: str, key: str, ledger: str, status: str) -> dict[str, Any]:
    return {"stage": stage, "recipe": recipe, "key": key, "ledger": ledger, "status": status}


def _cached(stage: str, recipe: str, key: str, ledger: str) -> Any:
    if _progress:
        _progress(recipe, stage)
    get_run_logger().info("%s:%s unchanged (key %s), skipped", recipe, stage, key[:12])
    return Completed(
        name="Cached",
        message=f"inputs unchanged (key {key[:12]})",
        data=_result(stage, recipe, key, ledger, "cached"),
    )


@task(name="stage", task_run_name="{recipe}:{stage}", cache_policy=NO_CACHE)
def stage_task(
    stage: str,
    work: str,
    recipe: str,
    settings: dict[str, Any],
    out: str,
    upstream: list[str],
    source: dict[str, Any] | None = None,
    force: bool = False,
) -> Any:
    """Run one library stage unless its key matches its marker; returns ``{stage, key, ledger, status}``."""
    key = stagecache.stage_key(stage, work, recipe, settings, out, upstream, source)
    hit = None if force else stagecache.probe(stage, key, work, recipe)
    if hit:
        return _cached(stage, recipe, key, hit)
    if _progress:
        _progress(recipe, stage)
    stagecache.invalidate(stage, work, recipe)
    ledger = pipeline.run_stage(stage, work, recipe, settings, out)
    stagecache.commit(stage, key, work, recipe, out)
    return _result(stage, recipe, key, ledger, "ran")


@task(name="stage-sharded", task_run_name="{recipe}:{stage}", cache_policy=NO_CACHE)
def sharded_stage_task(
    stage: str,
    work: str,
    recipe: str,
    settings: dict[str, Any],
    out: str,
    upstream: list[str],
    address: str,
    k: int,
    force: bool = False,
) -> Any:
    """Like :func:`stage_task`, but the stage runs as ``k`` tree-shards on the Dask cluster at ``address``."""
    from flows.scaleout import run_on_dask

    key = stagecache.stage_key(stage, work, recipe, settings, out, upstream)
    hit = None if force else stagecache.probe(stage, key, work, recipe)
    if hit:
        return _cached(stage, recipe, key, hit)
    if _progress:
        _progress(recipe, stage)
    stagecache.invalidate(stage, work, recipe)
    logger = get_run_logger()
    logger.info("%s:%s: %d tree-shards on the Dask cluster at %s", recipe, stage, k, address)
    progress = _ShardProgress.current

    def on_shard(done: int, total: int) -> None:
        if progress:
            progress.partial(done / total, f"{recipe}:{stage} shard {done}/{total}")

    ledger = run_on_dask(address, stage, work, recipe, settings, out, k, on_shard=on_shard)
    stagecache.commit(stage, key, work, recipe, out)
    return _result(stage, recipe, key, ledger, "ran")


@task(name="sharded-build", cache_policy=NO_CACHE)
def sharded_build_task(
    recipes: list[str], settings: dict[str, Any], out: str, work: str, tree_shards: int | None, workers: int
) -> dict[str, str]:
    """The whole build through :func:`chatdata.sharded_build.run_sharded_build` (its phases are logged)."""
    from chatdata.sharded_build import run_sharded_build

    logger = get_run_logger()
    built = run_sharded_build(
        recipes, pipeline.BuildSettings.from_dict(settings), Path(out), Path(work), shards=tree_shards,
        workers=workers, on_step=lambda msg: logger.info("%s", msg),
    )  # fmt: skip
    return {name: str(folder) for name, folder in built.items()}


@task(name="publish", task_run_name="publish:{recipe}", cache_policy=NO_CACHE, **HUB_RETRIES)
def publish_task(
    folder: str, repo_id: str, recipe: str, private: bool, revision: str | None, create_pr: bool
) -> dict[str, Any]:
    """Publish one built dataset folder to the Hub in one commit (``chatdata.hub.publish``)."""
    from chatdata.hub.publish import publish_folder

    result = publish_folder(Path(folder), repo_id, private=private, revision=revision, create_pr=create_pr)
    get_run_logger().info("%s", result.summary())
    return {
        "repo_id": repo_id,
        "revision": result.revision,
        "commit_sha": result.commit_sha,
        "commit_url": result.commit_url,
        "pr_url": result.pr_url,
        "summary": result.summary(),
    }


# -------------------------------------------------------------------------------------------------- artifacts


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "build"


class _ShardProgress:
    """The build's progress artifact: one unit per stage (shards advance it in fractions) and per push."""

    current: _ShardProgress | None = None

    def __init__(self, total: int, key: str) -> None:
        self.total, self.done = max(1, total), 0.0
        self.id = create_progress_artifact(0.0, key=key, description="chatdata build: starting")

    def advance(self, note: str) -> None:
        self.done += 1
        self._update(self.done, note)

    def partial(self, fraction: float, note: str) -> None:
        self._update(self.done + fraction, note)

    def _update(self, done: float, note: str) -> None:
        update_progress_artifact(self.id, round(min(100.0, 100.0 * done / self.total), 1), description=note)


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


def _artifacts(recipe: str, folder: Path, results: list[dict[str, Any]]) -> str:
    """A ledger table and a markdown summary (card introduction, where the output went) for one recipe."""

    build = json.loads((folder / "build.json").read_text())
    status = {r["stage"]: r["status"] for r in results}
    rows = [
        {
            "stage": r["stage"],
            "unit": r["unit"],
            "in": r["rows_in"],
            "out": r["rows_out"],
            "rejected": sum(r["rejected"].values()),
            "reasons": ", ".join(f"{k}: {v}" for k, v in r["rejected"].items()),
            "run": status.get(r["stage"], ""),
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
    ran = [s for s, v in status.items() if v == "ran"]
    source = build.get("source") or {}
    lines = [
        _card_summary(folder),
        "",
        "## Build",
        "",
        f"- output: `{folder.resolve()}`",
        f"- rows: {splits}; rejects: {sum(r['rejected'] for r in rows)}",
        f"- source: `{source.get('spec')}`" + (f" @ `{source['revision']}`" if source.get("revision") else ""),
        f"- settings sha256: `{build.get('settings_sha256', '')[:16]}`",
        f"- stages run: {', '.join(ran) or 'none (every stage unchanged)'}; cached: {len(status) - len(ran)}",
    ]
    create_markdown_artifact(
        markdown="\n".join(lines) + "\n",
        key=f"summary-{slug}",
        description=f"{recipe}: card summary and where the output went",
    )
    return splits


def _published_artifact(recipe: str, folder: Path, pushed: dict[str, Any]) -> None:
    where = pushed.get("pr_url") or pushed.get("commit_url") or pushed["repo_id"]
    create_markdown_artifact(
        markdown=f"# {recipe} published\n\n`{folder.resolve()}` -> {where}\n\n{pushed['summary']}\n",
        key=f"published-{_slug(recipe)}",
        description=f"{recipe}: Hub commit",
    )


# ------------------------------------------------------------------------------------------------------- flow


def build_plan(recipes: list[str]) -> list[tuple[str, str]]:
    """``(recipe, stage)`` in run order: the shared stages once, then every recipe's own stages."""
    plan: list[tuple[str, str]] = []
    for i, recipe in enumerate(recipes):
        plan += [(recipe, s) for s in pipeline.STAGES if not (i and s in pipeline.COMMON_STAGES)]
    return plan


def _preflight(params: BuildParams) -> None:
    """Cheap checks that fail before any stage runs."""
    src = params.source
    missing = src is not None and src != pipeline.BUNDLED and not Path(src).expanduser().exists()
    if missing and not pipeline._looks_like_repo_id(src):
        raise ChatdataError(
            f"source '{src}' is neither an existing path nor a Hub dataset id like OpenAssistant/oasst1"
        )
    if params.push_to:
        from chatdata.hub.client import LOGIN_HINT, HubAuthError, resolve_token

        if resolve_token(None) is None:
            raise HubAuthError(f"no Hugging Face token found to publish to {params.push_to}: {LOGIN_HINT}")


@flow(name="chatdata-build", log_prints=True, validate_parameters=True)
def build_flow(params: BuildParams) -> dict[str, Any]:
    """Build every requested recipe into ``params.out/<recipe>``; return outputs, per-stage status, pushes."""
    logger = get_run_logger()
    _preflight(params)
    settings = params.settings().to_dict()
    work, out = params.work_dir(), params.out
    plan = build_plan(params.recipes)
    sharded = set(_shardable()) if params.dask_address else set()
    progress = _ShardProgress(
        (len(plan) if params.engine == "stages" else len(params.recipes))
        + (len(params.recipes) if params.push_to else 0),
        key=f"progress-{_slug('-'.join(params.recipes))}",
    )
    _ShardProgress.current = progress
    results: list[dict[str, Any]] = []
    outputs: dict[str, str] = {}
    pushed: dict[str, Any] = {}
    try:
        with stagecache.workspace_lock(work) as waited:
            if waited:
                logger.info("waited for another build to release the workspace %s", work)
            source = fetch_source(params.source, params.revision, work)

            def finish(recipe: str) -> None:
                folder = Path(out) / recipe
                outputs[recipe] = str(folder)
                mine = [r for r in results if r["recipe"] == recipe or r["stage"] in pipeline.COMMON_STAGES]
                splits = _artifacts(recipe, folder, mine)
                ran = sum(r["status"] == "ran" for r in results if r["recipe"] == recipe)
                logger.info("built %s -> %s (%s); %d stage(s) ran", recipe, folder, splits, ran)
                if params.push_to:
                    repo_id = params.push_to.replace("{recipe}", recipe)
                    pushed[recipe] = publish_task(
                        str(folder), repo_id, recipe, params.private, params.push_revision, params.create_pr
                    )
                    _published_artifact(recipe, folder, pushed[recipe])
                    progress.advance(f"published {recipe} to {repo_id}")

            if params.engine == "sharded":
                built = sharded_build_task(params.recipes, settings, out, work, params.tree_shards, params.workers)
                for recipe in params.recipes:
                    for record in json.loads((Path(built[recipe]) / "build.json").read_text())["ledger"]:
                        results.append({"stage": record["stage"], "recipe": recipe, "status": "ran"})
                    progress.advance(f"{recipe}: built (sharded)")
                    finish(recipe)
            common_keys: list[str] = []
            for recipe in params.recipes if params.engine == "stages" else []:
                chain = list(common_keys)
                for r, stage in plan:
                    if r != recipe:
                        continue
                    if stage in sharded:
                        state = sharded_stage_task(
                            stage,
                            work,
                            recipe,
                            settings,
                            out,
                            chain,
                            params.dask_address,
                            params.shards,
                            params.force,
                            return_state=True,
                        )
                    else:
                        runner = stage_task
                        if not pipeline.STAGE_IO[stage][0] and source["revision"]:  # reads a Hub download
                            runner = stage_task.with_options(**HUB_RETRIES)
                        state = runner(
                            stage, work, recipe, settings, out, chain, source, params.force, return_state=True
                        )
                    res = state.result()
                    results.append(res)
                    chain.append(res["key"])
                    if stage in pipeline.COMMON_STAGES:
                        common_keys.append(res["key"])
                    progress.advance(f"{recipe}:{stage} {res['status']}")
                finish(recipe)
    finally:
        _ShardProgress.current = None
    return {"outputs": outputs, "stages": results, "pushed": pushed}


def _shardable() -> tuple[str, ...]:
    from chatdata.shards import shardable_stages

    return shardable_stages()


if __name__ == "__main__":
    import sys

    build_flow(BuildParams.model_validate_json(sys.argv[1]) if len(sys.argv) > 1 else BuildParams())
