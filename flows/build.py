"""The chatdata build as a Prefect flow: one task per stage, passing file paths, never frames.

Run it once without a server (ephemeral Prefect): ``chatdata build`` or ``python -m flows.build``.
Prefect 3 has no ``prefect run``; scheduled and on-demand runs go through deployments (see prefect.yaml).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import BaseModel, Field, field_validator

from chatdata.pipeline import COMMON_STAGES, STAGES, BuildSettings, run_stage
from chatdata.recipes import RECIPES

#: set by the CLI to drive its progress bar (in-process only)
_progress: Callable[[str, str], None] | None = None


def set_progress_callback(callback: Callable[[str, str], None] | None) -> None:
    global _progress
    _progress = callback


class BuildParams(BaseModel):
    """Parameters of a build, validated before any work starts."""

    recipes: list[str] = Field(default_factory=lambda: ["oasst_en"], min_length=1)
    source: str | None = Field(None, description="local path or Hub dataset id; None = bundled sample")
    revision: str | None = None
    out: str = "out"
    work: str | None = None
    test_fraction: float | None = Field(None, ge=0.0, lt=1.0)
    split_seed: str = ""
    leak_policy: str = Field("move", pattern="^(move|drop)$")
    max_shard_bytes: int = Field(500 * 1024 * 1024, gt=0)

    @field_validator("recipes")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [r for r in v if r not in RECIPES]
        if unknown:
            raise ValueError(f"unknown recipe(s) {unknown}; known: {sorted(RECIPES)}")
        return v

    def settings(self) -> BuildSettings:
        return BuildSettings(
            source=self.source,
            revision=self.revision,
            test_fraction=self.test_fraction,
            split_seed=self.split_seed,
            leak_policy=self.leak_policy,
            max_shard_bytes=self.max_shard_bytes,
        )


@task(name="stage", task_run_name="{recipe}:{stage}")
def stage_task(stage: str, work: str, recipe: str, settings: dict[str, Any], out: str) -> str:
    """Run one library stage; returns the path of its ledger record."""
    if _progress:
        _progress(recipe, stage)
    return run_stage(stage, work, recipe, settings, out)


@flow(name="chatdata-build", log_prints=True)
def build_flow(params: BuildParams) -> dict[str, str]:
    """Build every requested recipe into ``params.out/<recipe>``."""
    logger = get_run_logger()
    settings = params.settings().to_dict()
    work = params.work or str(Path(params.out) / ".work")
    outputs: dict[str, str] = {}
    common_done = False
    for recipe in params.recipes:
        for stage in STAGES:
            if stage in COMMON_STAGES and common_done:
                continue
            stage_task(stage, work, recipe, settings, params.out)
        common_done = True
        folder = Path(params.out) / recipe
        outputs[recipe] = str(folder)
        build = json.loads((folder / "build.json").read_text())
        rows = [
            {"stage": r["stage"], "unit": r["unit"], "in": r["rows_in"], "out": r["rows_out"],
             "rejected": sum(r["rejected"].values())}
            for r in build["ledger"]
        ]
        create_table_artifact(table=rows, key=f"ledger-{recipe.replace('_', '-')}", description=f"{recipe} ledger")
        splits = ", ".join(f"{s}: {v['rows']}" for s, v in build["outputs"]["default"].items())
        create_markdown_artifact(
            markdown=f"# {recipe}\n\nWritten to `{folder}`.\n\nRows: {splits}.\n",
            key=f"summary-{recipe.replace('_', '-')}",
        )
        logger.info("built %s -> %s (%s)", recipe, folder, splits)
    return outputs


if __name__ == "__main__":
    import sys

    build_flow(BuildParams.model_validate_json(sys.argv[1]) if len(sys.argv) > 1 else BuildParams())
