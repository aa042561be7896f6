"""The whole build, tree-sharded: memory bounded by a shard, both cores busy, the same bytes as a one-shard run.

1. **partition** (:mod:`chatdata.partition`): ingest streams the source into K shard workspaces, each holding
   whole trees.
2. **per shard**, in worker processes: the unchanged library stages ``structure`` … ``masks`` for every recipe,
   each shard in its own workspace (``work/shards/<i>/``).
3. **split plan**, once per recipe over light columns (tree, source split, 128-bit hashes of the first prompt
   and of the dialogue, see :func:`chatdata.splits.split_keys`), so prompt leaks and duplicates are found across
   shards; each shard then applies the plan, sorts its kept rows and rejects into publish order and notes sizes.
4. **write**: every split and the rejects table are streamed into :class:`chatdata.writer.SplitWriter` as a
   k-way merge of the shards' sorted pieces (a global sort of the key columns only), the ledger records are the
   shards' records summed, and :func:`chatdata.output.assemble` checks the counts and swaps the folder in.

Every row lands where a whole-input run puts it: trees never straddle shards, the plan is global, and the merge
reproduces the global sort order, so the output folder is byte-identical whatever K and however many workers
(tested). The library stays orchestrator-free; ``workers`` processes come from :mod:`concurrent.futures`.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from chatdata.errors import ChatdataError
from chatdata.ingest import discover, file_format
from chatdata.ledger import Ledger, StageRecord
from chatdata.output import REJECT_ORDER, TableStream, assemble, publish_columns, sort_rejects
from chatdata.partition import partition_source
from chatdata.pipeline import (
    BuildSettings,
    Workspace,
    collect_rejects,
    dedupe_columns,
    load,
    load_record,
    per_tree_notes,
    resolve_source,
    run_stage,
    save,
    sources_info,
    split_options,
    splits_record,
    write_sources,
)
from chatdata.recipes import get_recipe
from chatdata.schema import REJECT_SCHEMA, conform
from chatdata.shards import merge_records
from chatdata.splits import apply_plan, plan_splits, split_keys
from chatdata.writer import payload_bytes, to_arrow

SHARD_STAGES = ("structure", "gates", "flatten", "score", "filters", "render", "masks")
#: a shard's artifacts no later phase reads: deleted as soon as the shard's stages are done (disk stays small)
INTERMEDIATE = ("gated.parquet", "dialogues.parquet", "scored.parquet", "filtered.parquet", "rendered.parquet")
#: messages per shard when K is chosen automatically (a shard's stages peak at ~1 GB per 250k messages)
TARGET_SHARD_MESSAGES = 150_000
#: rows per merged output chunk
_CHUNK_ROWS = 5_000
#: a merge holds one row group of every shard's piece: rows per group (:func:`piece_rows`) shrink as shards grow
PIECE_ROWS = 2_000
_MERGE_HELD_ROWS = 68_000


def estimate_messages(path: Path) -> int:
    """A cheap estimate of the input's message count: Parquet row counts, JSONL bytes over a typical line."""
    total = 0
    for f in discover(path).paths:
        if file_format(f) == "parquet":
            total += pq.ParquetFile(f).metadata.num_rows
        else:
            total += f.stat().st_size // (350 if f.name.endswith(".gz") else 1000)
    return total


def auto_shards(path: Path, workers: int = 1) -> int:
    """About one shard per :data:`TARGET_SHARD_MESSAGES`, rounded up to a multiple of ``workers`` so no worker
    is left running the last shard alone."""
    k = max(1, math.ceil(estimate_messages(path) / TARGET_SHARD_MESSAGES))
    return k if k == 1 else math.ceil(k / workers) * workers


# ------------------------------------------------------------------------------------------- per-shard work


def _shard_stages(root: str, recipes: list[str], settings: dict[str, Any], out: str, shard: int) -> dict[str, Any]:
    """Run ``structure`` … ``masks`` for every recipe in one shard workspace and write its split keys; return
    the ledger records."""
    records: dict[str, Any] = {}
    run_stage("structure", root, recipes[0], settings, out)
    records["structure"] = load_record(Workspace(Path(root), recipes[0]).common, "structure").to_dict()
    for name in recipes:
        ws = Workspace(Path(root), name)
        for stage in SHARD_STAGES[1:]:
            run_stage(stage, root, name, settings, out)
        records[name] = {s: load_record(ws.own, s).to_dict() for s in SHARD_STAGES[1:]}
        per_tree = load(ws.own / "dialogues.parquet").get_column("message_tree_id").value_counts()
        save(per_tree, ws.own / "per-tree.parquet")
        _shard_keys(root, name, shard)
        for artifact in INTERMEDIATE:
            (ws.own / artifact).unlink(missing_ok=True)
    common = Workspace(Path(root), recipes[0]).common
    shutil.rmtree(common / "memo", ignore_errors=True)
    for artifact in ("messages.parquet", "tree.parquet"):
        (common / artifact).unlink(missing_ok=True)
    return records


def _numbered(frame: pl.DataFrame, shard: int) -> pl.Series:
    """Row ids unique across shards: ``(shard << 40) + row``."""
    return (pl.int_range(frame.height, dtype=pl.UInt64, eager=True) + (shard << 40)).alias("_row")


def _shard_keys(root: str, recipe: str, shard: int) -> str:
    """The light split-plan columns of one shard's rows, ``_row`` = (shard << 40) + row."""
    own = Workspace(Path(root), recipe).own
    frame = load(own / "masked.parquet")
    keys = split_keys(frame, dedupe_columns=dedupe_columns(get_recipe(recipe))).with_columns(_numbered(frame, shard))
    save(keys, own / "split-keys.parquet")
    return str(own / "split-keys.parquet")


def piece_rows(shards: int) -> int:
    """Rows per row group of a shard's pieces: :data:`PIECE_ROWS`, fewer when there are so many shards that the
    merge, which holds one group of each, would hold more than :data:`_MERGE_HELD_ROWS` rows."""
    return max(100, min(PIECE_ROWS, _MERGE_HELD_ROWS // max(1, shards)))


def _shard_apply(root: str, recipe: str, shard: int, shards: int) -> dict[str, Any]:
    """Apply the plan to one shard: kept rows per split in publish order, and all of the shard's rejects sorted
    into publish order; return rows and sizes, and write the merge keys."""
    ws = Workspace(Path(root), recipe)
    frame = load(ws.own / "masked.parquet")
    numbered = frame.with_columns(_numbered(frame, shard))
    plan = load(ws.own / "split-plan.parquet")
    kept, rejects = apply_plan(numbered, plan)
    save(conform(rejects, REJECT_SCHEMA), ws.own / "rejects-splits.parquet")
    columns = publish_columns(kept)
    tables = {split: kept.filter(pl.col("split") == split).select(columns) for split in get_recipe(recipe).splits}
    tables["rejects"] = sort_rejects(collect_rejects(ws))
    info: dict[str, Any] = {}
    for table, by in _merges(recipe):
        piece = tables[table]
        save(piece, ws.own / f"piece-{table}.parquet", row_group_size=piece_rows(shards))
        save(piece.select(by), ws.own / f"piece-{table}.keys.parquet")
        info[table] = {"rows": piece.height, "nbytes": payload_bytes(to_arrow(piece))}
    return info


# ----------------------------------------------------------------------------------------------- the merge


class _RowReader:
    """Hand out the rows of one Parquet file in order, ``n`` at a time."""

    def __init__(self, path: Path) -> None:
        # no pre-buffering: it holds ~30 MB of a file per reader, and a merge opens one reader per shard
        file = pq.ParquetFile(path, pre_buffer=False)
        groups = [file.metadata.row_group(g).num_rows for g in range(file.metadata.num_row_groups)]
        self._batches = file.iter_batches(batch_size=max(groups, default=PIECE_ROWS))
        self._buffer: pa.Table | None = None

    def take(self, n: int) -> pa.Table:
        parts = []
        while n:
            if self._buffer is None or not self._buffer.num_rows:
                self._buffer = pa.Table.from_batches([next(self._batches)])
            part = self._buffer.slice(0, n)
            self._buffer = self._buffer.slice(part.num_rows)
            parts.append(part)
            n -= part.num_rows
        return pa.concat_tables(parts)


def merge_order(keys: list[pl.DataFrame], by: tuple[str, ...]) -> np.ndarray:
    """For each output row, the shard it comes from: a stable global sort of the pieces' key columns (each piece
    is already sorted by ``by``, so every shard's rows keep their order)."""
    tagged = [k.select(by).with_columns(pl.lit(i, pl.UInt32).alias("_shard")) for i, k in enumerate(keys)]
    frame = pl.concat(tagged, rechunk=False)
    del tagged
    # low-cardinality string keys as sorted enums (same order, a byte each); sort indices only, never the rows
    small = [c for c in by if frame.schema[c] == pl.String and frame.get_column(c).n_unique() <= 1024]
    frame = frame.with_columns(
        pl.col(c).cast(pl.Enum(sorted(frame.get_column(c).drop_nulls().unique().to_list()))) for c in small
    )
    index = frame.select(pl.arg_sort_by(list(by), nulls_last=True, maintain_order=True)).to_series()
    return frame.get_column("_shard").gather(index).to_numpy()


def merged_chunks(pieces: list[Path], sequence: np.ndarray, schema: pa.Schema) -> Iterator[pa.Table]:
    """Tables in output order, ``_CHUNK_ROWS`` rows at a time, taking each row from the shard ``sequence`` names."""
    readers = [_RowReader(p) for p in pieces]
    for start in range(0, len(sequence), _CHUNK_ROWS):
        seq = sequence[start : start + _CHUNK_ROWS]
        counts = np.bincount(seq, minlength=len(pieces))
        table = pa.concat_tables([readers[i].take(int(n)).cast(schema) for i, n in enumerate(counts) if n])
        grouped = np.argsort(seq, kind="stable")
        index = np.empty(len(seq), dtype=np.int64)
        index[grouped] = np.arange(len(seq))
        yield table.take(pa.array(index))


def _common_schema(pieces: list[Path]) -> pa.Schema:
    """The pieces' Arrow schema, a column that is all-null (``Null``) in one piece typed by the others."""
    found: dict[str, pl.DataType] = {}
    for piece in pieces:
        for col, dtype in pl.read_parquet_schema(piece).items():
            if col not in found or found[col] == pl.Null:
                found[col] = dtype
    return to_arrow(pl.DataFrame(schema=found)).schema


def _order_file(key_files: list[Path]) -> Path:
    return key_files[0].with_suffix(".order.npy")


def _order_recipe(name: str, roots: list[str]) -> None:
    """Compute and save the merge order of every split and of the rejects of one recipe. It runs in its own
    short-lived process, so the key columns (the only part of the merge that grows with the input) never share
    memory with the writers."""
    owns = [Workspace(Path(r), name).own for r in roots]
    for names, by in _merges(name):
        key_files = [o / f"piece-{names}.keys.parquet" for o in owns]
        order = merge_order([pl.read_parquet(k) for k in key_files], by)
        np.save(_order_file(key_files), order.astype(np.uint32 if len(roots) > 65_535 else np.uint16))


def _merges(name: str) -> list[tuple[str, tuple[str, ...]]]:
    """The merged tables of a recipe: each split by (tree, dialogue), and the rejects in publish order."""
    return [(s, ("message_tree_id", "dialogue_id")) for s in get_recipe(name).splits] + [("rejects", REJECT_ORDER)]


def _stream(owns: list[Path], table: str, infos: list[dict[str, Any]]) -> TableStream:
    """One merged table of a recipe (a split or ``rejects``) as a stream in publish order."""
    pieces = [o / f"piece-{table}.parquet" for o in owns]
    rows = sum(info[table]["rows"] for info in infos)
    nbytes = sum(info[table]["nbytes"] for info in infos)
    schema = _common_schema(pieces)
    order = _order_file([o / f"piece-{table}.keys.parquet" for o in owns])
    sequence = np.load(order)
    if len(sequence) != rows:
        raise RuntimeError(f"merge keys hold {len(sequence)} rows but the pieces {rows}")
    return TableStream(schema, rows, nbytes, merged_chunks(pieces, sequence, schema))


# ---------------------------------------------------------------------------------------------- the driver


class _Pool:
    """``map`` over worker processes (spawned: polars is not fork-safe), or in this process for one worker."""

    def __init__(self, workers: int, *, fresh: bool = False) -> None:
        self.workers = workers
        self._ex = None
        self._saved: str | None = None
        if workers > 1 or fresh:
            # the workers share the cores: a polars thread pool each of cores/workers threads, not cores each
            # (processes are spawned on demand, so the variable stays set until the pool closes)
            self._saved = os.environ.get("POLARS_MAX_THREADS")
            os.environ["POLARS_MAX_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
            self._ex = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def map(self, fn: Callable[..., Any], *args: list[Any]) -> list[Any]:
        return list(self._ex.map(fn, *args) if self._ex else map(fn, *args))

    def close(self) -> None:
        if self._ex:
            self._ex.shutdown()
            if self._saved is None:
                os.environ.pop("POLARS_MAX_THREADS", None)
            else:
                os.environ["POLARS_MAX_THREADS"] = self._saved


@contextmanager
def _pool(workers: int, *, fresh: bool = False) -> Iterator[_Pool]:
    pool = _Pool(workers, fresh=fresh)
    try:
        yield pool
    finally:
        pool.close()


def _merged(stage: str, records: list[dict[str, Any]], notes: dict[str, Any] | None = None) -> StageRecord:
    record = merge_records(stage, [dict(r, notes={}) for r in records])
    record.notes = notes if notes is not None else records[0].get("notes") or {}
    return record


def run_sharded_build(
    recipes: list[str],
    settings: BuildSettings,
    out: Path,
    work: Path | None = None,
    *,
    shards: int | None = None,
    workers: int = 2,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Build ``recipes`` tree-sharded (see the module docstring); return each recipe's output folder."""
    settings.validate()
    for name in recipes:
        get_recipe(name)
    work = work or out / ".work"
    step = on_step or (lambda _msg: None)
    src = resolve_source(settings.source, settings.revision, work / "hub-cache")
    k = shards or (1 if settings.tokenizer else auto_shards(src.path, workers))
    if settings.tokenizer and k > 1:
        raise ChatdataError(
            "--tokenizer runs unsharded for now (label-mask statistics are not merged across shards): "
            "leave --tree-shards unset or use 1"
        )
    shutil.rmtree(work / "shards", ignore_errors=True)
    sdict = settings.to_dict()
    n_workers = max(1, min(workers, k))
    # three pools, one per phase: memory a phase touched goes back to the system with its processes
    step(f"partition into {k} tree-shards")
    with _pool(1, fresh=n_workers > 1) as pool:
        (part,) = pool.map(partition_source, [src.path], [work], [k])
    sources = sources_info(src, part.files)
    write_sources(sources, work / "common")
    roots = [str(r) for r in part.roots]
    pairs = [(name, i) for name in recipes for i in range(k)]
    with _pool(n_workers) as pool:
        step(f"stages {SHARD_STAGES[0]}…{SHARD_STAGES[-1]} on {k} shards, {n_workers} worker(s)")
        records = pool.map(_shard_stages, roots, [recipes] * k, [sdict] * k, [str(out)] * k, list(range(k)))
        step("split plans")
        plans = pool.map(_plan_recipe, recipes, [roots] * len(recipes), [sdict] * len(recipes))
        step("apply the plans")
        infos = pool.map(
            _shard_apply,
            [roots[i] for _, i in pairs],
            [name for name, _ in pairs],
            [i for _, i in pairs],
            [k] * len(pairs),
        )
    ledgers = [_ledger(name, part.record, records, roots) for name in recipes]
    per_recipe = [[infos[j] for j, (n, _) in enumerate(pairs) if n == name] for name in recipes]
    n = len(recipes)
    step("merge order")
    with _pool(1, fresh=n_workers > 1) as pool:
        pool.map(_order_recipe, recipes, [roots] * n)
    step("write and card")
    with _pool(n_workers) as pool:
        outputs = pool.map(_write_recipe, recipes, [roots] * n, [sdict] * n, [str(out)] * n, ledgers, plans,
                           [sources] * n, per_recipe)  # fmt: skip
    shutil.rmtree(work / "shards", ignore_errors=True)  # the outputs hold everything the shards held
    shutil.rmtree(work / "partition", ignore_errors=True)
    return {name: Path(o) for name, o in zip(recipes, outputs, strict=True)}


def _plan_recipe(name: str, roots: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """The split plan of one recipe over every shard's keys; each shard's part goes to its workspace."""
    keys = pl.concat([load(Workspace(Path(r), name).own / "split-keys.parquet") for r in roots])
    plan = plan_splits(keys, **split_options(get_recipe(name), BuildSettings.from_dict(settings)))
    del keys
    shard_of = plan.rows.get_column("_row") // (1 << 40)
    for i, root in enumerate(roots):
        save(plan.rows.filter(shard_of == i), Workspace(Path(root), name).own / "split-plan.parquet")
    return {"counts": plan.counts, "moved": plan.moved}


def _ledger(name: str, ingest: StageRecord, records: list[dict[str, Any]], roots: list[str]) -> list[dict[str, Any]]:
    """The recipe's ledger: the shards' records summed (flatten's per-tree stats recomputed over all trees)."""
    ledger = Ledger()
    ledger.add(ingest)
    ledger.add(_merged("structure", [r["structure"] for r in records]))
    for stage in SHARD_STAGES[1:]:
        notes = None
        if stage == "flatten":
            unit = records[0][name]["flatten"].get("produced_unit") or "dialogues"
            per_tree = pl.concat([load(Workspace(Path(r), name).own / "per-tree.parquet") for r in roots])
            notes = per_tree_notes(unit, per_tree.get_column("count"))
        ledger.add(_merged(stage, [r[name][stage] for r in records], notes))
    return [r.to_dict() for r in ledger.records]


def _write_recipe(
    name: str,
    roots: list[str],
    settings: dict[str, Any],
    out: str,
    ledger_rows: list[dict[str, Any]],
    plan: dict[str, Any],
    sources: dict[str, Any],
    infos: list[dict[str, Any]],
) -> str:
    """Merge the shards' pieces of one recipe into its output folder (see :func:`chatdata.output.assemble`)."""
    recipe = get_recipe(name)
    ledger = Ledger([StageRecord.from_dict(r) for r in ledger_rows])
    last = ledger.records[-1]
    kept = sum(info[s]["rows"] for info in infos for s in recipe.splits)
    ledger.add(splits_record(last.unit, last.rows_out, kept, plan["counts"], plan["moved"]))
    owns = [Workspace(Path(r), name).own for r in roots]
    streams = {table: _stream(owns, table, infos) for table, _ in _merges(name)}
    rejects = streams.pop("rejects")
    notes_path = owns[0] / "notes.json"
    notes = json.loads(notes_path.read_text()) if notes_path.exists() else None
    target = Path(out) / name
    assemble(target, recipe, BuildSettings.from_dict(settings), ledger, sources, notes, streams, rejects)
    return str(target)
