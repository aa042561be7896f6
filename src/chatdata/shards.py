"""Run a per-tree stage over K tree-shards and merge the pieces back deterministically.

A stage is *shardable* when it reads one artifact and each output row depends only on rows of the same
conversation tree (the ``score`` stage: language scores, phrase matches). Its input is cut into K shards by a
sha256 of ``message_tree_id`` (K is a parameter, independent of how many workers run the shards), each shard
runs the unchanged library stage in its own small workspace, and :func:`merge_shards` concatenates the shard
outputs, sorts them back into input order and sums the ledger records. The merged files are byte-identical to
an unsharded run, whatever K and however many workers.

The shard folders live under ``work/<recipe>/.shards/<stage>/``: on several machines that path must be on a
filesystem every worker can read and write. This module imports neither Prefect nor Dask; the orchestrator
maps :func:`run_shard` over the shard roots (``flows/build.py`` submits them to a Dask cluster).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from chatdata import pipeline
from chatdata.errors import ChatdataError
from chatdata.ledger import StageRecord
from chatdata.splits import tree_hash_fraction

#: column added before sharding (the row's position in the stage input) and removed by the merge
ROW = "_shard_row"
TREE_KEY = "message_tree_id"
SHARD_SALT = "chatdata-shard:"
#: stages that may run sharded (``chatdata.pipeline.SHARDABLE_STAGES`` wins when the pipeline declares it)
DEFAULT_SHARDABLE = ("score",)


class ShardError(ChatdataError):
    """A stage cannot be run sharded, or its shards do not fit back together."""


def shardable_stages() -> tuple[str, ...]:
    """The stages of the current pipeline that may run sharded (each reads one Parquet artifact)."""
    declared = getattr(pipeline, "SHARDABLE_STAGES", DEFAULT_SHARDABLE)
    return tuple(s for s in declared if s in pipeline.STAGES and _single_parquet_input(s))


def _single_parquet_input(stage: str) -> bool:
    reads, _ = pipeline.STAGE_IO.get(stage, ((), ()))
    return len(reads) == 1 and reads[0].endswith(".parquet")


def shard_index(tree_ids: pl.Series, k: int) -> pl.Series:
    """Shard number in ``[0, k)`` per row from sha256 of the tree id: the same on every machine and run."""
    if k < 1:
        raise ShardError(f"the number of shards must be at least 1, got {k}")
    unique = tree_ids.unique(maintain_order=True)
    shards = (tree_hash_fraction(unique, SHARD_SALT) * k).floor().cast(pl.UInt32)
    lookup = pl.DataFrame({TREE_KEY: unique, "_shard": shards})
    return tree_ids.to_frame(TREE_KEY).join(lookup, on=TREE_KEY, how="left", maintain_order="left")["_shard"]


@dataclass(frozen=True)
class ShardPlan:
    """Where the shards of one stage run were written: ``roots[i]`` is a workspace root for one shard."""

    stage: str
    recipe: str
    k: int
    rows: int
    roots: tuple[str, ...]


def shards_dir(stage: str, work: str | Path, recipe: str) -> Path:
    return pipeline.Workspace(Path(work), recipe).dir_for(stage) / ".shards" / stage


def split_input(stage: str, work: str | Path, recipe: str, k: int) -> ShardPlan:
    """Cut the stage's input into the non-empty tree-shards among ``k`` (one shard when it is empty)."""
    if stage not in pipeline.STAGES:
        raise ShardError(f"unknown stage '{stage}'; stages: {', '.join(pipeline.STAGES)}")
    if not _single_parquet_input(stage):
        raise ShardError(f"stage '{stage}' cannot run sharded: it does not read exactly one Parquet artifact")
    (src,), _ = pipeline.stage_paths(stage, Path(work), recipe)
    frame = pipeline.load(src)
    if TREE_KEY not in frame.columns:
        raise ShardError(f"stage '{stage}' cannot run sharded: {src.name} has no '{TREE_KEY}' column")
    base = shards_dir(stage, work, recipe)
    if base.exists():
        shutil.rmtree(base)
    rel = src.relative_to(Path(work))
    numbered = frame.with_row_index(ROW).with_columns(shard_index(frame[TREE_KEY], k).alias("_shard"))
    parts = numbered.partition_by("_shard", as_dict=True, include_key=False)
    present = sorted(int(key[0]) for key in parts) or [0]
    roots = []
    for i in present:
        part = parts.get((i,), numbered.drop("_shard").clear())
        root = base / f"{i:05d}-of-{k:05d}"
        pipeline.save(part, root / rel)
        roots.append(str(root))
    return ShardPlan(stage, recipe, k, frame.height, tuple(roots))


def run_shard(stage: str, root: str | Path, recipe: str, settings: dict[str, Any], out: str | Path) -> dict[str, Any]:
    """Run the library stage on one shard workspace; return its ledger record as a dict."""
    ledger = pipeline.run_stage(stage, root, recipe, settings, out)
    return json.loads(Path(ledger).read_text())


def merge_records(stage: str, records: Iterable[dict[str, Any]]) -> StageRecord:
    """Sum the shards' counts into the record an unsharded run writes."""
    recs = [StageRecord.from_dict(r) for r in records]
    if not recs:
        raise ShardError(f"no shard records to merge for stage '{stage}'")
    notes = [r.notes for r in recs if r.notes]
    if notes and any(n != notes[0] for n in notes):
        raise ShardError(f"stage '{stage}' cannot run sharded: its ledger notes differ per shard and do not add up")

    def add(dicts: list[dict[str, int]]) -> dict[str, int]:
        total: dict[str, int] = {}
        for d in dicts:
            for key, v in d.items():
                total[key] = total.get(key, 0) + v
        return total

    first = recs[0]
    produced = [r.produced for r in recs if r.produced is not None]
    return StageRecord(
        stage=first.stage,
        unit=first.unit,
        rows_in=sum(r.rows_in for r in recs),
        rows_out=sum(r.rows_out for r in recs),
        rejected=add([r.rejected for r in recs]),
        produced=sum(produced) if produced else None,
        produced_unit=first.produced_unit,
        moved=add([r.moved for r in recs]),
        notes=notes[0] if notes else {},
    )


def merge_shards(plan: ShardPlan, work: str | Path, records: list[dict[str, Any]], *, keep: bool = False) -> str:
    """Write the stage's outputs and ledger record from the shard results; return the ledger path.

    Every Parquet output is the shards' outputs concatenated and sorted back into input order (by :data:`ROW`,
    which the stage must carry through), so the bytes equal those of an unsharded run.
    """
    work = Path(work)
    _, outputs = pipeline.stage_paths(plan.stage, work, plan.recipe)
    for dest in outputs:
        rel = dest.relative_to(work)
        pieces = []
        for root in plan.roots:
            piece = Path(root) / rel
            if not piece.is_file():
                raise ShardError(
                    f"shard {Path(root).name} of stage '{plan.stage}' did not write {rel}; re-run the build"
                )
            pieces.append(piece)
        if dest.suffix == ".parquet":
            frame = pl.concat([pipeline.load(p) for p in pieces], how="vertical_relaxed")
            if ROW not in frame.columns:
                raise ShardError(f"stage '{plan.stage}' dropped the row order column from {rel}; it cannot run sharded")
            pipeline.save(frame.sort(ROW).drop(ROW).rechunk(), dest)
        else:
            contents = {p.read_bytes() for p in pieces}
            if len(contents) != 1:
                raise ShardError(f"stage '{plan.stage}' wrote a different {rel} per shard; it cannot run sharded")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pieces[0], dest)
    record = merge_records(plan.stage, records)
    if record.rows_in != plan.rows:
        raise ShardError(f"the shards of '{plan.stage}' read {record.rows_in} rows but the input has {plan.rows}")
    folder = pipeline.Workspace(work, plan.recipe).dir_for(plan.stage)
    path = pipeline.save_record(record, folder)
    if not keep:
        shutil.rmtree(shards_dir(plan.stage, work, plan.recipe), ignore_errors=True)
    return str(path)


def run_sharded(
    stage: str,
    work: str | Path,
    recipe: str,
    settings: dict[str, Any],
    out: str | Path,
    k: int,
    map_fn: Callable[..., Iterable[dict[str, Any]]] = map,
) -> str:
    """Split, run every shard through ``map_fn`` (``map``, ``executor.map``), merge; return the ledger."""
    plan = split_input(stage, work, recipe, k)
    n = len(plan.roots)
    records = list(map_fn(run_shard, [stage] * n, plan.roots, [recipe] * n, [settings] * n, [str(out)] * n))
    return merge_shards(plan, work, records)
