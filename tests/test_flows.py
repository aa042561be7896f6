"""The Prefect build flow: parameter validation, content-keyed stage caching (counted), artifacts, retries."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prefect_harness import prefect_server, server_test, tiny_source  # noqa: F401  (prefect_server: session fixture)

from chatdata import pipeline
from chatdata.errors import ChatdataError


@pytest.fixture
def stage_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count executions of every library stage function (the flow's tasks run in this process)."""
    calls: Counter[str] = Counter()
    for name, fn in list(pipeline.STAGE_FUNCS.items()):

        def counted(ctx: Any, fn: Any = fn, name: str = name) -> Any:
            calls[name] += 1
            return fn(ctx)

        monkeypatch.setitem(pipeline.STAGE_FUNCS, name, counted)
    return calls


def _run(calls: Counter[str], **params: Any) -> tuple[dict[str, Any], dict[str, int], Any]:
    from flows.build import BuildParams, build_flow

    calls.clear()
    state = build_flow(BuildParams(**params), return_state=True)
    return state.result(), dict(calls), state


# ------------------------------------------------------------------------------------------ no server needed


def test_bad_params_are_one_line_errors() -> None:
    from flows.build import make_params

    for values, needle in (
        ({"recipes": ["no_such_recipe"]}, "unknown recipe"),
        ({"recipes": []}, "recipes"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"leak_policy": "keep"}, "leak_policy"),
        ({"dask_address": "localhost"}, "tcp://HOST:PORT"),
        ({"shards": 0}, "shards"),
        ({"no_such_setting": 1}, "unknown parameter"),
        ({"recipes": ["oasst_en", "oasst_en"]}, "twice"),
        ({"push_to": "not a repo"}, "invalid Hub repo id"),
        ({"on_special": "shout"}, "on-special"),
        ({"max_length": 0}, "max_length"),
        ({"engine": "fast"}, "engine"),
        ({"tree_shards": 0}, "tree_shards"),
        ({"workers": 0}, "workers"),
    ):
        with pytest.raises(ChatdataError) as err:
            make_params(**values)
        assert needle in str(err.value) and "\n" not in str(err.value), (values, str(err.value))


def test_params_carry_every_build_setting() -> None:
    from flows.build import BuildParams

    params = BuildParams(test_fraction=0.2, split_seed="s", max_shard_bytes=1234, source="x")
    settings = params.settings()
    assert (settings.test_fraction, settings.split_seed, settings.max_shard_bytes, settings.source) == (
        0.2,
        "s",
        1234,
        "x",
    )
    assert settings.to_dict().keys() == pipeline.BuildSettings().to_dict().keys()
    assert params.work_dir() == str(Path("out") / ".work")


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


# ------------------------------------------------------------------------------------------- against a server


@server_test
def test_invalid_params_fail_before_any_stage(stage_calls: Counter[str], tmp_path: Path) -> None:
    from flows.build import BuildParams, build_flow

    with pytest.raises(Exception, match="unknown recipe"):
        build_flow(params={"recipes": ["no_such_recipe"], "out": str(tmp_path)})
    with pytest.raises(ChatdataError, match="neither an existing path"):
        build_flow(BuildParams(source=str(tmp_path / "missing.jsonl"), out=str(tmp_path)))
    assert not stage_calls and not (tmp_path / ".work" / "common").exists()


@server_test
def test_reruns_skip_unchanged_stages(stage_calls: Counter[str], tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    src = tiny_source(tmp_path / "src")
    base = {"recipes": ["oasst_en"], "source": str(src), "out": str(tmp_path / "out")}
    stages = list(pipeline.STAGES)

    first, calls, state = _run(stage_calls, **base)
    assert calls == {s: 1 for s in stages}
    assert [r["status"] for r in first["stages"]] == ["ran"] * len(stages)
    folder = Path(first["outputs"]["oasst_en"])
    build = json.loads((folder / "build.json").read_text())

    with get_client(sync_client=True) as client:
        flow_run_id = state.state_details.flow_run_id
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    by_type = {a.type: a for a in arts}
    assert {"table", "markdown", "progress"} <= set(by_type)
    assert by_type["progress"].data == 100.0
    assert str(folder.resolve()) in by_type["markdown"].data
    assert "splits" in str(by_type["table"].data)

    # nothing changed: every stage skipped, same bytes
    second, calls, _ = _run(stage_calls, **base)
    assert calls == {} and {r["status"] for r in second["stages"]} == {"cached"}
    assert json.loads((folder / "build.json").read_text()) == build

    # a split setting changed: only splits and what follows it
    _, calls, _ = _run(stage_calls, **base, test_fraction=0.5)
    assert calls == {s: 1 for s in stages[stages.index("splits") :]}
    assert json.loads((folder / "build.json").read_text())["settings"]["test_fraction"] == 0.5

    # back to the first settings: the workspace now holds 0.5's files, so the markers do not match -> rebuilt
    _, calls, _ = _run(stage_calls, **base)
    assert calls == {s: 1 for s in stages[stages.index("splits") :]}
    assert json.loads((folder / "build.json").read_text()) == build

    # an intermediate output vanished: its stage re-runs (never a stale path); its bytes come back identical
    (tmp_path / "out" / ".work" / "oasst_en" / "final.parquet").unlink()
    _, calls, _ = _run(stage_calls, **base)
    assert calls == {"splits": 1}


@server_test
def test_crashed_build_resumes(
    stage_calls: Counter[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = tiny_source(tmp_path / "src", n_trees=8)
    base = {"recipes": ["oasst_en"], "source": str(src), "out": str(tmp_path / "out")}
    stages = list(pipeline.STAGES)
    crash_at = "filters" if "filters" in stages else stages[len(stages) // 2]
    real = pipeline.STAGE_FUNCS[crash_at]

    def crash(ctx: Any) -> Any:
        stage_calls[crash_at] += 1
        raise RuntimeError("worker lost")

    monkeypatch.setitem(pipeline.STAGE_FUNCS, crash_at, crash)
    with pytest.raises(RuntimeError, match="worker lost"):
        _run(stage_calls, **base)
    assert stage_calls == {s: 1 for s in stages[: stages.index(crash_at) + 1]}

    monkeypatch.setitem(pipeline.STAGE_FUNCS, crash_at, real)
    result, calls, _ = _run(stage_calls, **base)
    assert calls == {s: 1 for s in stages[stages.index(crash_at) :]}
    assert (Path(result["outputs"]["oasst_en"]) / "build.json").is_file()


@server_test
def test_recipes_share_the_common_stages(stage_calls: Counter[str], tmp_path: Path) -> None:
    from chatdata.recipes import RECIPES

    others = [r for r in RECIPES if r != "oasst_en"][:1]
    if not others:
        pytest.skip("only one recipe is declared")
    src = tiny_source(tmp_path / "src", n_trees=8)
    base = {"source": str(src), "out": str(tmp_path / "out")}
    both = ["oasst_en", *others]
    _, calls, _ = _run(stage_calls, recipes=both, **base)
    assert calls == {s: 1 if s in pipeline.COMMON_STAGES else len(both) for s in pipeline.STAGES}
    result, calls, _ = _run(stage_calls, recipes=others, **base)
    assert calls == {} and {r["status"] for r in result["stages"]} == {"cached"}


@server_test
def test_sharded_engine_runs_as_one_task_and_matches_the_stage_engine(
    stage_calls: Counter[str], tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    src = tiny_source(tmp_path / "src", n_trees=60)
    recipes = ["oasst_en", "oasst_prefs"]
    stages_run, _, _ = _run(stage_calls, recipes=recipes, source=str(src), out=str(tmp_path / "a"))
    sharded, calls, state = _run(
        stage_calls, recipes=recipes, source=str(src), out=str(tmp_path / "b"), engine="sharded", tree_shards=3,
        workers=1,
    )  # fmt: skip
    assert calls["structure"] == 3 and calls["gates"] == 6  # every shard ran its stages, through the library
    for recipe in recipes:
        a, b = Path(stages_run["outputs"][recipe]), Path(sharded["outputs"][recipe])
        files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and ".work" not in p.parts)
        assert files and all((a / f).read_bytes() == (b / f).read_bytes() for f in files), recipe
    assert {r["stage"] for r in sharded["stages"]} >= {"ingest", "structure", "splits"}
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    assert {a.key for a in arts} >= {"ledger-oasst-en", "summary-oasst-prefs"}
