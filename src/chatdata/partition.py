"""Cut a source into K tree-shards in bounded memory, so every later stage can run shard by shard.

A message goes to the shard of the root its parent links lead to (not of the ``message_tree_id`` it claims; the
roots are cut into ``k`` ranges of their ids, so the shards hold consecutive runs of trees in id order), so
each shard holds whole trees exactly as :func:`chatdata.structure.validate_structure` would walk them: a message
claiming another tree, an orphan or a cycle is judged in a shard with everything it is judged against. Messages
no root reaches (orphans, cycles and whatever hangs below them or below an ingest reject) and all ingest rejects
go to shard 0, every copy of a duplicated message id to the shard of its first occurrence. Within a shard, rows
keep source order. The result: each shard's stages see the same trees, in the same order, as a whole-input run.

Three passes, none holding the text of more than one batch: ingest streams batches into a spill file while
keeping two 64-bit id hashes per message; a level-by-level walk over those hashes routes every message id to a
shard; the spill is re-read and appended to per-shard files. The shards and the ingest rejects are written into
one folder (a cache entry of the workspace, see :mod:`chatdata.engine`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from chatdata import artifacts
from chatdata.ledger import StageRecord
from chatdata.schema import MESSAGE_SCHEMA, REJECT_SCHEMA
from chatdata.sources.detect import SkippedFile
from chatdata.sources.read import SourceFile, iter_detected, scan
from chatdata.trees import reason_counts
from chatdata.workspace import PARTITION, PARTITION_REJECTS, Store, partition_meta, shard_file

_SEED = 7
_BUFFER_BYTES = 256 * 1024 * 1024
_MIN_FLUSH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Partition:
    """The shard files written (``shard-0000i.arrow``, ``rejects.arrow``), what ingest counted (one record
    per stage: ``ingest``, and ``convert`` for sources of dialogues or pairs), the files read and skipped."""

    records: tuple[StageRecord, ...]
    files: tuple[SourceFile, ...]
    skipped: tuple[SkippedFile, ...]
    rows_per_shard: tuple[int, ...]


REJECTS_FILE = PARTITION_REJECTS


def _id_hash(col: str) -> pl.Expr:
    """A 64-bit hash of an id column; null stays null (a root has no parent)."""
    return pl.when(pl.col(col).is_not_null()).then(pl.col(col).hash(_SEED))


def root_shards(roots: pl.DataFrame, k: int) -> pl.DataFrame:
    """``roots`` (``mid``: the hash of a root's id, ``message_id``) -> ``mid``, ``shard``: the roots cut into ``k``
    ranges of their ids, about as many roots each. A tree's shard then follows the order of its id, so shard
    ``i``'s trees all sort before shard ``i + 1``'s: the writer, which writes trees in id order, reads the shards
    one after another instead of all at once."""
    distinct = roots.unique("mid").sort("message_id")
    ids = distinct.get_column("message_id")
    bounds = ids.gather([(j * ids.len()) // k for j in range(1, k)]) if ids.len() else ids
    return distinct.select("mid", bounds.search_sorted(ids, side="right").cast(pl.UInt32).alias("shard"))


def route(ids: pl.DataFrame, k: int, roots: pl.DataFrame) -> pl.DataFrame:
    """``ids`` (``mid``, ``pid``: u64 hashes of message and parent ids, source order) -> ``mid``, ``shard`` per
    distinct message id. Reached messages go to their root's shard (``roots``: ``mid``, ``shard``, see
    :func:`root_shards`), unreached ones to shard 0."""
    first = ids.filter(pl.col("mid").is_first_distinct())
    frontier = (
        first.filter(pl.col("pid").is_null())
        .join(roots.select("mid", pl.col("shard").alias("root")), on="mid", how="left")
        .select("mid", pl.col("root").fill_null(0))
    )
    pool = first.filter(pl.col("pid").is_not_null())
    reached = [frontier]
    while frontier.height and pool.height:
        children = pool.join(frontier.rename({"mid": "pid"}), on="pid", how="inner").select("mid", "root")
        if not children.height:
            break
        reached.append(children)
        pool = pool.join(children.select("mid"), on="mid", how="anti")
        frontier = children
    routed = pl.concat(reached).select("mid", pl.col("root").cast(pl.UInt32).alias("shard"))
    return pl.concat([routed, pool.select("mid", pl.lit(0, pl.UInt32).alias("shard"))])


class _ShardFiles:
    """One Arrow IPC writer per shard (lz4, or uncompressed when ``plain``: shard files are memory-mapped by the
    writer, which takes their text row by row), fed in buffered slices so batches stay a sensible size."""

    def __init__(self, paths: list[Path], schema: pa.Schema, *, plain: bool = False) -> None:
        self.paths, self.schema, self.plain = paths, schema, plain
        self.buffers: list[list[pl.DataFrame]] = [[] for _ in paths]
        self.counts = [0] * len(paths)
        self.writers: list[artifacts.Writer | None] = [None] * len(paths)
        self.sizes = [0] * len(paths)
        # all buffers together stay under ~_BUFFER_BYTES whatever the number of shards
        self.flush_bytes = max(_MIN_FLUSH_BYTES, _BUFFER_BYTES // len(paths))

    def add(self, i: int, frame: pl.DataFrame) -> None:
        self.buffers[i].append(frame)
        self.counts[i] += frame.height
        self.sizes[i] += frame.estimated_size()
        if self.sizes[i] >= self.flush_bytes:
            self._flush(i)

    def _flush(self, i: int) -> None:
        if not self.buffers[i]:
            return
        table = pl.concat(self.buffers[i]).to_arrow().cast(self.schema)
        self.buffers[i], self.sizes[i] = [], 0
        if self.writers[i] is None:
            self.paths[i].parent.mkdir(parents=True, exist_ok=True)
            self.writers[i] = artifacts.Writer(self.paths[i], self.schema, plain=self.plain)
        self.writers[i].write(table)  # type: ignore[union-attr]

    def close(self) -> None:
        for i, path in enumerate(self.paths):
            self._flush(i)
            writer = self.writers[i]
            if writer is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                artifacts.Writer(path, self.schema, plain=self.plain).close()
            else:
                writer.close()


def _arrow_schema(schema: dict[str, pl.DataType]) -> pa.Schema:
    return pl.DataFrame(schema=schema).to_arrow().schema


def partition_source(
    path: Path,
    folder: Path,
    k: int,
    *,
    kind: str = "oasst",
    patterns: Sequence[str] | None = None,
    fmt: str | None = None,
    batch_rows: int = 50_000,
    scanned: tuple[Sequence[Any], Sequence[Any]] | None = None,
) -> Partition:
    """Read the source at ``path`` (only files of the ``kind`` family, matching ``patterns``, as ``fmt`` when
    given) into ``k`` shards in ``folder``: oasst messages by tree (see the module docstring), dialogues or pairs
    by a hash of their id (each is its own split unit). ``scanned`` is the source's files and skipped files as
    the build scanned (and hashed) them already, so the folder is not scanned again."""
    if k < 1:
        raise ValueError(f"the number of shards must be at least 1, got {k}")
    folder.mkdir(parents=True, exist_ok=True)
    files, skipped = scanned if scanned is not None else scan(path, kind, patterns=patterns, fmt=fmt)
    batches = (b for f in files for b in iter_detected(f, batch_rows))
    if kind == "oasst":
        return _partition_trees(batches, folder, k, batch_rows, tuple(skipped))
    return _partition_rows(batches, folder, k, tuple(skipped))


def _partition_trees(batches: Iterable[Any], folder: Path, k: int, batch_rows: int, skipped: tuple) -> Partition:
    msg_schema, rej_schema = _arrow_schema(MESSAGE_SCHEMA), _arrow_schema(REJECT_SCHEMA)
    spill_path = folder / f".messages.spill{artifacts.SUFFIX}"
    spill = artifacts.Writer(spill_path, msg_schema)
    rejects = _ShardFiles([folder / REJECTS_FILE], rej_schema)
    ids: list[pl.DataFrame] = []
    roots: list[pl.DataFrame] = []
    files: list[SourceFile] = []
    n_messages = 0
    counts = _Counts()
    try:
        for batch in batches:
            if batch.frame.height:
                spill.write(batch.frame.to_arrow().cast(msg_schema))
                hashed = (_id_hash("message_id").alias("mid"), _id_hash("parent_id").alias("pid"))
                ids.append(batch.frame.select(hashed))
                is_root = pl.col("parent_id").is_null() & pl.col("message_id").is_not_null()
                roots.append(batch.frame.filter(is_root).select(_id_hash("message_id").alias("mid"), "message_id"))
                n_messages += batch.frame.height
            if batch.rejects.height:
                rejects.add(0, batch.rejects)
                counts.add(batch.rejects)
            if batch.file is not None:
                files.append(batch.file)
    finally:
        spill.close()
        rejects.close()
    all_ids = pl.concat(ids) if ids else pl.DataFrame(schema={"mid": pl.UInt64, "pid": pl.UInt64})
    del ids
    no_roots = pl.DataFrame(schema={"mid": pl.UInt64, "message_id": pl.String})
    routes = route(all_ids, k, root_shards(pl.concat(roots) if roots else no_roots, k))
    del roots
    _check_hashes(spill_path, routes.height)
    # one join for the whole input: the shard of every spilled row, in spill order
    shard_of = (
        all_ids.select("mid").join(routes, on="mid", how="left", maintain_order="left").get_column("shard").to_numpy()
    )
    del all_ids, routes
    shards = _ShardFiles([shard_file(folder, i) for i in range(k)], msg_schema, plain=True)
    start = 0
    for rb in artifacts.batches(spill_path):
        frame = pl.from_arrow(rb)
        assert isinstance(frame, pl.DataFrame)
        frame = frame.with_columns(pl.Series("shard", shard_of[start : start + frame.height]))
        start += frame.height
        for (i,), part in frame.partition_by("shard", as_dict=True, maintain_order=True).items():
            shards.add(int(i), part.drop("shard"))  # type: ignore[arg-type]
    shards.close()
    spill_path.unlink()
    record = StageRecord("ingest", "records", n_messages + counts.total, n_messages, counts.of("ingest"))
    return Partition((record,), tuple(files), skipped, tuple(shards.counts))


def _partition_rows(batches: Iterable[Any], folder: Path, k: int, skipped: tuple) -> Partition:
    """Dialogues or pairs (one per record) into ``k`` shards by a stable hash of their id, in source order."""
    rejects = _ShardFiles([folder / REJECTS_FILE], _arrow_schema(REJECT_SCHEMA))
    shards: _ShardFiles | None = None
    files: list[SourceFile] = []
    counts = _Counts()
    unit, rows = "dialogues", 0
    for batch in batches:
        unit = batch.table
        frame = batch.frame.rename({"source": "source_file"})
        if shards is None:
            shards = _ShardFiles([shard_file(folder, i) for i in range(k)], frame.to_arrow().schema, plain=True)
        if frame.height:
            rows += frame.height
            shard = (pl.col("message_tree_id").hash(_SEED) % k).alias("_shard")
            for (i,), part in (
                frame.with_columns(shard).partition_by("_shard", as_dict=True, maintain_order=True).items()
            ):
                shards.add(int(i), part.drop("_shard"))  # type: ignore[arg-type]
        if batch.rejects.height:
            rejects.add(0, batch.rejects)
            counts.add(batch.rejects)
        if batch.file is not None:
            files.append(batch.file)
    rejects.close()
    assert shards is not None, "a scanned source yields at least one batch"
    shards.close()
    records = sum(f.records for f in files)
    converted = records - sum(counts.of("ingest").values())
    ingest = StageRecord("ingest", "records", records, converted, counts.of("ingest"))
    convert = StageRecord(
        "convert", "records", converted, rows, counts.of("convert"), produced=rows, produced_unit=unit
    )
    return Partition((ingest, convert), tuple(files), skipped, tuple(shards.counts))


class _Counts:
    """Reject counts by stage and reason, summed over batches."""

    def __init__(self) -> None:
        self.by_stage: dict[str, dict[str, int]] = {}

    def add(self, rejects: pl.DataFrame) -> None:
        for (stage,), part in rejects.partition_by("stage", as_dict=True).items():
            mine = self.by_stage.setdefault(str(stage), {})
            for reason, n in reason_counts(part).items():
                mine[reason] = mine.get(reason, 0) + n

    def of(self, stage: str) -> dict[str, int]:
        return dict(sorted(self.by_stage.get(stage, {}).items()))

    @property
    def total(self) -> int:
        return sum(n for reasons in self.by_stage.values() for n in reasons.values())


def _check_hashes(spill: Path, distinct_hashes: int) -> None:
    """Routing joins on 64-bit hashes; make sure no two distinct message ids share one."""
    ids = pl.scan_ipc(spill).select(pl.col("message_id").n_unique()).collect().item()
    if ids != distinct_hashes:
        raise RuntimeError(
            f"{ids} distinct message ids but {distinct_hashes} distinct id hashes: a 64-bit collision; "
            "run this input unsharded (--shards 1)"
        )


@dataclass(frozen=True)
class PartitionTask:
    """Cut the source at ``path`` (its files, format family, ``data_files`` and forced format as the build binds
    them) into ``k`` shards, in the workspace ``store`` under ``key``."""

    store: str
    key: str
    path: str
    kind: str
    k: int
    data_files: tuple[str, ...] = ()
    fmt: str | None = None
    commit: str | None = None
    spec: str = ""
    #: the files the build scanned and hashed (read as found), and those it skipped
    files: tuple[Any, ...] = ()
    skipped: tuple[Any, ...] = ()


def partition_task(task: PartitionTask) -> dict[str, Any]:
    """Cut one source into ``k`` shards in a workspace entry (unless it is there); return its metadata."""
    import json
    from dataclasses import asdict

    from chatdata.memory import release_memory
    from chatdata.stages import sort_rejects

    store = Store(Path(task.store))
    if store.get(PARTITION, task.key) is None:
        with store.put(PARTITION, task.key) as tmp:
            part = partition_source(
                Path(task.path),
                tmp,
                task.k,
                kind=task.kind,
                patterns=task.data_files or None,
                fmt=task.fmt,
                scanned=(task.files, task.skipped) if task.files else None,
            )
            rejects = sort_rejects(artifacts.load(tmp / REJECTS_FILE))  # in publish order
            artifacts.save(rejects, tmp / REJECTS_FILE, artifacts.STREAM_BATCH_ROWS)
            meta = {
                "k": task.k,
                "records": [r.to_dict() for r in part.records],
                "files": [asdict(f) for f in part.files],
                "skipped": [asdict(f) for f in part.skipped],
                "rows_per_shard": list(part.rows_per_shard),
                "commit": task.commit,
                "spec": task.spec,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
        release_memory()
    return partition_meta(store, task.key)
