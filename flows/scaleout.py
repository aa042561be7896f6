"""Run shardable stages (``score`` now: language scores, phrase matches) on a Dask cluster through
prefect-dask.

The flow process splits the stage input into K tree-shards (:func:`chatdata.shards.split_input`), submits one
:func:`shard_task` per shard to ``DaskTaskRunner(address=...)``, and merges the shard outputs in input order
(:func:`chatdata.shards.merge_shards`): the result is byte-identical to a local run for any K and any number
of workers. Workers need chatdata (with this ``flows`` package) installed, the shard folder (inside the
build's ``work`` directory) on a filesystem they share with the flow, and a Prefect API they can reach.

This module is imported by name (``flows.scaleout``) so Dask pickles :func:`shard_task` by reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from chatdata import shards


@task(name="shard", task_run_name="{recipe}:{stage}:{label}", cache_policy=NO_CACHE)
def shard_task(stage: str, root: str, recipe: str, settings: dict[str, Any], out: str, label: str) -> dict[str, Any]:
    """Run one library stage on one tree-shard; return its ledger record."""
    return shards.run_shard(stage, root, recipe, settings, out)


def run_on_dask(
    address: str,
    stage: str,
    work: str,
    recipe: str,
    settings: dict[str, Any],
    out: str,
    k: int,
    on_shard: Callable[[int, int], None] | None = None,
) -> str:
    """Split ``stage``'s input into ``k`` tree-shards, run them on the Dask scheduler at ``address``, merge.

    ``on_shard(done, total)`` is called in the flow process as shards finish. Returns the ledger path.
    """
    from prefect_dask import DaskTaskRunner

    plan = shards.split_input(stage, work, recipe, k)
    total = len(plan.roots)
    with DaskTaskRunner(address=address) as runner:
        futures = [
            runner.submit(
                shard_task,
                parameters={
                    "stage": stage,
                    "root": root,
                    "recipe": recipe,
                    "settings": settings,
                    "out": out,
                    "label": root.rsplit("/", 1)[-1],
                },
            )
            for root in plan.roots
        ]
        records = []
        for done, future in enumerate(futures, start=1):
            records.append(future.result())
            if on_shard:
                on_shard(done, total)
    return shards.merge_shards(plan, work, records)
