"""A recipe's split plan over all its sources and shards: splits by tree, prompt leaks and exact duplicates
across the whole mixture, then each source's share of train rows (the alignment-handbook's ``dataset_mixer``).

The plan reads only light columns (:func:`chatdata.stages.split_keys`) of every (source, shard) piece, so it
runs over millions of rows without their text. Weights: a source of weight ``w < 1`` keeps ``floor(w * n)`` of
its ``n`` train rows that survived the mixture-wide checks, chosen by sha256 of the recipe's
``mixture_seed`` and the row's tree and dialogue ids (the same rows on every machine, whatever the shard
count); the others are rejects (``mixture_fraction``). Test rows are kept whole.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from chatdata import artifacts
from chatdata.recipes import Recipe
from chatdata.settings import BuildSettings
from chatdata.splits import plan_splits
from chatdata.workspace import KEYS, PLAN, SHARD, Store

#: ``_row`` = (piece << ROW_BITS) + the row's position in its piece
ROW_BITS = 40


@dataclass(frozen=True)
class Piece:
    """One (source, shard) result of a recipe, in the recipe's global order, and where its text is: the shard
    ``shard`` of partition ``partition``."""

    source: str
    source_index: int
    job: str
    partition: str = ""
    shard: int = 0


@dataclass(frozen=True)
class PlanTask:
    store: str
    key: str
    recipe: str
    pieces: tuple[Piece, ...]
    settings: dict[str, Any]


def plan_task(task: PlanTask) -> dict[str, Any]:
    """Plan one recipe's splits over all its pieces' keys (unless the workspace has the plan); return the counts."""
    from chatdata.recipes import get_recipe

    store = Store(Path(task.store))
    if store.get(PLAN, task.key) is None:
        recipe = get_recipe(task.recipe)
        with store.put(PLAN, task.key) as tmp:
            meta = plan_recipe(recipe, BuildSettings(**task.settings), store, task.pieces, tmp)
            (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
    return json.loads((store.path(PLAN, task.key) / "meta.json").read_text())


def piece_file(folder: Path, i: int) -> Path:
    return folder / f"piece-{i:05d}{artifacts.SUFFIX}"


def split_options(recipe: Recipe, settings: BuildSettings) -> dict[str, Any]:
    """The split plan's settings for a recipe: its split names, the test fraction (the recipe's unless set),
    the seed and the leak policy."""
    tf = settings.test_fraction if settings.test_fraction is not None else recipe.test_fraction
    return {
        "names": recipe.splits,
        "test_fraction": tf,
        "seed": settings.split_seed,
        "leak_policy": settings.leak_policy,
    }


def _fraction_order(frame: pl.DataFrame, seed: int) -> pl.Series:
    """A sha256 rank key per row from the seed, tree and dialogue id (machine- and version-independent)."""
    values = [
        int.from_bytes(hashlib.sha256(f"{seed}\x1f{t}\x1f{d}".encode()).digest()[:8], "big")
        for t, d in frame.select("message_tree_id", "dialogue_id").iter_rows()
    ]
    return pl.Series("_h", values, dtype=pl.UInt64)


def apply_weights(rows: pl.DataFrame, recipe: Recipe, sources: list[str]) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Drop all but ``floor(weight * n)`` live train rows of every source with a weight below 1."""
    train = recipe.splits[0]
    report: dict[str, Any] = {}
    for index, name in enumerate(sources):
        weight = recipe.sources[name].weight
        live = rows.filter((pl.col("_src") == index) & (pl.col("split") == train) & pl.col("_reason").is_null())
        keep = math.floor(weight * live.height + 1e-9)
        report[name] = {"weight": weight, "train_rows": live.height, "kept": keep if weight < 1 else live.height}
        if weight >= 1 or live.height == keep:
            continue
        ranked = live.with_columns(_fraction_order(live, recipe.mixture_seed)).sort(
            "_h", "message_tree_id", "dialogue_id"
        )
        dropped = ranked.slice(keep).select("_row")
        evidence = f"{name} weight {weight}: {keep} of {live.height} {train} rows kept"
        rows = rows.with_columns(
            pl.when(pl.col("_row").is_in(dropped.get_column("_row").implode()))
            .then(pl.lit("mixture_fraction"))
            .otherwise(pl.col("_reason"))
            .alias("_reason"),
            pl.when(pl.col("_row").is_in(dropped.get_column("_row").implode()))
            .then(pl.lit(evidence))
            .otherwise(pl.col("_evidence"))
            .alias("_evidence"),
        )
    return rows, report


def plan_recipe(recipe: Recipe, settings: BuildSettings, store: Store, pieces: Any, folder: Path) -> dict[str, Any]:
    """Plan the splits of one recipe over its pieces (:class:`Piece`); write each piece's plan rows
    (``_row``, ``split``, ``_reason``, ``_evidence``, in row order) to ``folder``; return the counts."""
    keys = []
    for i, piece in enumerate(pieces):
        k = artifacts.load(store.path(SHARD, piece.job) / KEYS)
        keys.append(
            k.with_columns(
                (pl.int_range(k.height, dtype=pl.UInt64) + (i << ROW_BITS)).alias("_row"),
                pl.lit(piece.source_index, pl.UInt16).alias("_src"),
            )
        )
    frame = pl.concat(keys) if keys else pl.DataFrame()
    sources = list(recipe.sources)
    if frame.is_empty():
        for i in range(len(pieces)):
            empty = {"_row": pl.UInt64, "split": pl.String, "_reason": pl.String, "_evidence": pl.String}
            artifacts.save(pl.DataFrame(schema=empty), piece_file(folder, i))
        return {"counts": {}, "moved": 0, "rows": 0, "mix": {}, "weights": {}}
    plan = plan_splits(frame.drop("_src"), **split_options(recipe, settings))
    rows = plan.rows.join(frame.select("_row", "_src", "message_tree_id", "dialogue_id"), on="_row", how="left")
    rows, weights = apply_weights(rows, recipe, sources)
    counts = dict(plan.counts)
    fraction = rows.filter(pl.col("_reason") == "mixture_fraction").height
    if fraction:
        counts["mixture_fraction"] = fraction
    piece_of = (pl.col("_row") // (1 << ROW_BITS)).alias("_piece")
    ordered = rows.with_columns(piece_of).sort("_row")
    parts = ordered.partition_by("_piece", as_dict=True, include_key=False)
    for i in range(len(pieces)):
        part = parts.get((i,), ordered.clear().drop("_piece"))
        artifacts.save(part.select("_row", "split", "_reason", "_evidence"), piece_file(folder, i))
    live = rows.filter(pl.col("_reason").is_null())
    mix = {
        name: {split: live.filter((pl.col("_src") == i) & (pl.col("split") == split)).height for split in recipe.splits}
        for i, name in enumerate(sources)
    }
    return {"counts": counts, "moved": plan.moved, "rows": frame.height, "mix": mix, "weights": weights}
