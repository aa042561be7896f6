"""The shard phase's task: every requested recipe's stages on one tree-shard, reusing what the workspace holds.

A task runs the (recipe, source) jobs of one shard whose results are missing (:mod:`chatdata.stages`). Two kinds of
cache entry make a rerun cheap when only a decision changed (a filter's threshold, a recipe's checks):

- ``flat``: a job's dialogues or pairs after structure, gates and flattening (positions, no text) with those
  stages' rejects and records, keyed by the shard, the gate specs and the flattening;
- ``scores``: the per-message scores of one filter's score settings (:meth:`~chatdata.filters.base.MessageFilter.
  message_key`) for the messages scored so far; a later build that needs more messages adds them and the entry
  is replaced by the larger one;
- ``payloads``: the reject payloads (rows as JSON) of the shard's rejected messages, built once per message for
  every recipe and grown the same way; shard entries' rejects point at them by position (``_i``).

So a changed threshold re-runs only the aggregation, the decisions and what follows, never language
identification or the tree walks.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from chatdata import artifacts
from chatdata.ledger import StageRecord
from chatdata.memory import release_memory
from chatdata.recipes import get_recipe
from chatdata.settings import BuildSettings
from chatdata.stages import Flat
from chatdata.workspace import (
    FLAT,
    KEYS,
    MESSAGE_JSON,
    PARTITION,
    PARTITION_REJECTS,
    PAYLOADS,
    PER_TREE,
    ROWS,
    SCORED,
    SCORES,
    SHARD,
    SHARD_REJECTS,
    Store,
    load_payloads,
    payloads_key,
    save_masks,
    shard_file,
)

#: the files of a flat entry
FLAT_ROWS, FLAT_REJECTS = "dialogues.arrow", "rejects.arrow"


@dataclass(frozen=True)
class JobSpec:
    """One (recipe, source) chain over one shard: the key its result is stored under, and the keys of its
    flattened dialogues (oasst) and of its filters' message scores (by message key)."""

    recipe: str
    source: str
    key: str
    flat: str | None = None
    scores: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ShardTask:
    store: str
    partition: str
    shard: int
    jobs: tuple[JobSpec, ...]
    settings: dict[str, Any]


def load_flat(folder: Path) -> Flat:
    meta = json.loads((folder / "manifest.json").read_text())["meta"]
    return Flat(
        artifacts.load(folder / FLAT_ROWS),
        artifacts.load(folder / FLAT_REJECTS),
        [StageRecord.from_dict(r) for r in meta["records"]],
        artifacts.load(folder / PER_TREE).get_column("count"),
    )


#: set (to anything) to check every stage's declared columns as it runs (the tests do; slower)
CHECK_STAGES = "CHATDATA_CHECK_STAGES"


def shard_task(task: ShardTask) -> int:
    """Run the missing jobs of one shard and store each one's result (and the flat and scores entries it made
    or grew); return how many jobs ran."""
    from chatdata.filters.langid import forget_detections
    from chatdata.stages import Job, ShardOutput, run_shard

    store = Store(Path(task.store))
    todo = [j for j in task.jobs if store.get(SHARD, j.key) is None]
    if not todo:
        return 0
    folder = store.path(PARTITION, task.partition)
    settings = BuildSettings(**task.settings)
    jobs = [Job(get_recipe(j.recipe), j.source, settings) for j in todo]

    flats: dict[int, Flat] = {}
    for i, spec in enumerate(todo):
        found = store.get(FLAT, spec.flat) if spec.flat else None
        if found is not None:
            flats[i] = load_flat(found)
    scores: dict[tuple[str, ...], pl.DataFrame] = {}
    score_keys: dict[str, str] = {}
    for spec in todo:
        for message_key, entry in spec.scores:
            score_keys[message_key] = entry
    for message_key, entry in score_keys.items():
        found = store.get(SCORES, entry)
        if found is not None:
            scores[message_key] = artifacts.load(found / SCORED)

    def store_flat(i: int, flat: Flat) -> None:
        key = todo[i].flat
        if key is None or store.get(FLAT, key) is not None:
            return
        with store.put(FLAT, key, {"records": [r.to_dict() for r in flat.records]}) as tmp:
            artifacts.save(flat.frame, tmp / FLAT_ROWS)
            artifacts.save(flat.rejects, tmp / FLAT_REJECTS)
            artifacts.save(flat.per_tree.to_frame("count"), tmp / PER_TREE)

    def store_output(i: int, out: ShardOutput) -> None:
        spec = todo[i]
        meta = {"records": [r.to_dict() for r in out.records], "rows": out.rows.height}
        with store.put(SHARD, spec.key, meta) as tmp:
            artifacts.save(out.rows, tmp / ROWS, artifacts.STREAM_BATCH_ROWS)
            assert out.keys is not None
            artifacts.save(out.keys, tmp / KEYS)
            artifacts.save(out.rejects, tmp / SHARD_REJECTS, artifacts.STREAM_BATCH_ROWS)
            artifacts.save(out.per_tree.to_frame("count"), tmp / PER_TREE)
            if out.masks is not None:
                save_masks(out.masks, tmp)

    frame = artifacts.load(shard_file(folder, task.shard))
    payloads = load_payloads(store, task.partition, task.shard)
    kwargs: dict[str, Any] = {
        "emit": store_output,
        "flats": flats,
        "on_flat": store_flat,
        "scores": scores,
        "payloads": payloads,
        "check": bool(os.environ.get(CHECK_STAGES)),
    }
    if jobs[0].spec.format == "oasst":
        rejected = None
        if task.shard == 0:
            rejected = artifacts.load(folder / PARTITION_REJECTS, ["message_id"]).get_column("message_id")
        ingest = rejected.drop_nulls() if rejected is not None else None
        grown, built = run_shard(jobs, messages=frame, ingest_rejected=ingest, **kwargs)
    else:
        grown, built = run_shard(jobs, rows=frame, **kwargs)
    del frame
    if built is not None:  # one entry per partition shard for every recipe, replaced by a larger one
        key = payloads_key(task.partition, task.shard)
        with store.put(PAYLOADS, key, {"messages": built.height}, replace=True) as tmp:
            artifacts.save(built.sort("_i"), tmp / MESSAGE_JSON)
    for message_key, table in grown.items():
        entry = score_keys.get(message_key)
        if entry is None:
            continue
        before = scores.get(message_key)
        if before is None or table.height > before.height:
            with store.put(SCORES, entry, {"messages": table.height}, replace=True) as tmp:
                artifacts.save(table.sort("_i"), tmp / SCORED)
    forget_detections()
    release_memory()
    return len(todo)
