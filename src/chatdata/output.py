"""Write a recipe's output folder (a Hub dataset repository) atomically from its shards' results: Parquet per
config and split, README.md with YAML ``configs``, and ``build.json`` with the fingerprint, the exact specs and
the ledger.

Every split and the rejects table are k-way merges of the pieces (one per source and shard) in publish order,
streamed into :class:`chatdata.writer.SplitWriter`: splits ordered by source, tree and dialogue; rejects by
source and :data:`chatdata.stages.REJECT_ORDER`. Rows' payload sizes were measured when the shards were
stored, so the writer knows each table's size before the first row and cuts the same files however many
shards there were.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from chatdata import __version__, artifacts
from chatdata.errors import ChatdataError
from chatdata.ledger import Ledger, LedgerError, StageRecord
from chatdata.record import RECORD_FILE, BuildRecord, mask_record
from chatdata.workspace import is_build_folder
from chatdata.writer import to_arrow

#: the columns every SFT/preference row shows first, in this order, then the metadata columns
PRIMARY = ("prompt", "prompt_id", "chosen", "rejected", "text", "messages", "score_chosen", "score_rejected")
HIDDEN = ("split", "source_split")
REJECTS_CONFIG = "rejects"
#: the published rejects table: the recipe's source name, then the file and line the reject comes from
PUBLISHED_REJECT_COLUMNS = (
    "unit",
    "stage",
    "filter",
    "reason",
    "evidence",
    "source",
    "message_tree_id",
    "message_id",
    "source_file",
    "source_line",
    "payload",
)


class EmptyDatasetError(ChatdataError):
    """Every row of a recipe was removed: nothing is written (unless ``allow_empty``)."""


@dataclass(frozen=True)
class WriteTask:
    store: str
    recipe: str
    plan: str
    pieces: tuple[Any, ...]  # chatdata.mixture.Piece
    partitions: tuple[tuple[str, str], ...]  # (source name, partition key) in source order
    sources: dict[str, Any]
    settings: dict[str, Any]
    target: str
    build_key: str
    allow_empty: bool
    overwrite: bool = False
    #: the output settings the request set itself (recorded as ``settings_given``)
    given: tuple[str, ...] = ()


def write_task(task: WriteTask) -> str:
    """Merge-write one recipe's output folder (atomically) and record what it wrote."""
    from chatdata.memory import release_memory
    from chatdata.workspace import Store

    write_recipe(task, Store(Path(task.store)))
    release_memory()
    return task.target


def publish_columns(columns: Iterable[str]) -> list[str]:
    columns = list(columns)
    first = [c for c in PRIMARY if c in columns]
    rest = [c for c in columns if c not in first and c not in HIDDEN and not c.startswith("_")]
    return first + rest


def file_entry(path: Path, root: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"path": path.relative_to(root).as_posix(), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


@dataclass
class TableStream:
    """The rows of one table as Arrow tables in output order, and how many there are."""

    schema: pa.Schema
    rows: int
    chunks: Iterable[pa.Table]

    @classmethod
    def of(cls, frame: pl.DataFrame) -> TableStream:
        table = to_arrow(frame)
        return cls(table.schema, table.num_rows, [table])


def settings_fingerprint(recipe: Any, settings: Any, specs: list[dict[str, Any]]) -> str:
    raw = orjson.dumps(
        {"recipe": recipe.to_dict(), "settings": settings.resolved(recipe), "filters": specs, "version": __version__},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(raw).hexdigest()


# ------------------------------------------------------------------------------------------------ the ledger


def sum_records(records: list[StageRecord]) -> StageRecord:
    """The shards' records of one stage summed into the record of the whole source."""
    first = records[0]

    def add(dicts: Iterable[dict[str, int]]) -> dict[str, int]:
        total: dict[str, int] = {}
        for d in dicts:
            for key, v in d.items():
                total[key] = total.get(key, 0) + v
        return dict(sorted(total.items()))

    produced = [r.produced for r in records if r.produced is not None]
    return StageRecord(
        stage=first.stage,
        unit=first.unit,
        rows_in=sum(r.rows_in for r in records),
        rows_out=sum(r.rows_out for r in records),
        rejected=add(r.rejected for r in records),
        produced=sum(produced) if produced else None,
        produced_unit=first.produced_unit,
        moved=add(r.moved for r in records),
        notes=dict(first.notes),
        source=first.source,
    )


def recipe_ledger(task: Any, store: Any, plan: dict[str, Any]) -> Ledger:
    """Per source: what its partition counted, then its shards' records summed stage by stage (flatten's
    per-tree statistics over all trees); then the mixture's ``splits`` record."""
    from chatdata.stages import per_tree_notes
    from chatdata.workspace import PER_TREE, SHARD, partition_meta

    ledger = Ledger()
    last_out = 0
    for source, part_key in task.partitions:
        for rec in partition_meta(store, part_key)["records"]:
            ledger.add(StageRecord.from_dict({**rec, "source": source}))
        jobs = [p.job for p in task.pieces if p.source == source]
        per_shard = [[StageRecord.from_dict(r) for r in store.meta(SHARD, j)["records"]] for j in jobs]
        for stage_index in range(len(per_shard[0])):
            record = sum_records([records[stage_index] for records in per_shard])
            if record.stage == "flatten":
                counts = pl.concat([artifacts.load(store.path(SHARD, j) / PER_TREE) for j in jobs])
                record.notes = per_tree_notes(record.produced_unit or "dialogues", counts.get_column("count"))
            ledger.add(record)
        last_out += ledger.records[-1].carried
    kept = last_out - sum(plan["counts"].values())
    moved = {"cross_split_prompt_moved_to_train": plan["moved"]} if plan["moved"] else {}
    counts = dict(sorted(plan["counts"].items()))
    ledger.add(StageRecord("splits", _recipe(task).unit, last_out, kept, counts, moved=moved))
    return ledger


def _empty_reasons(ledger: Ledger) -> str:
    """The stages and reasons that removed rows, largest first (for the empty-dataset error)."""
    parts = []
    for r in sorted(ledger.records, key=lambda r: -r.n_rejected):
        if r.n_rejected:
            top = ", ".join(f"{k} {v}" for k, v in sorted(r.rejected.items(), key=lambda kv: -kv[1])[:3])
            parts.append(f"{(r.source + ':') if r.source else ''}{r.stage} {r.n_rejected} ({top})")
    return "; ".join(parts[:6]) or "the sources hold no usable record"


# ------------------------------------------------------------------------------------------------ the merge


class _Texts:
    """The text of the shards a recipe's pieces come from (:class:`chatdata.text.ShardText`), each memory-mapped
    when a row of it is first written. Shards hold consecutive runs of trees (:func:`chatdata.partition.
    root_shards`) and rows are written in tree order, so the shards are read one after another: only the
    ``keep`` most recently used stay open, which bounds the writer's memory whatever the number of shards."""

    def __init__(self, task: Any, store: Any, settings: Any, keep: int = 2) -> None:
        self.task, self.store, self.recipe, self.keep = task, store, _recipe(task), keep
        self.render = (self.recipe.text_format, settings.on_special) if self.recipe.text_format else None
        self._open: dict[tuple[str, int], Any] = {}
        self._seeded: set[tuple[str, int]] = set()

    def of(self, piece: Any, *, payloads: bool = False) -> Any:
        """The piece's shard text; with ``payloads``, knowing the payloads the shard phase built for the shard's
        rejected messages (a payload missing there is built from the shard)."""
        from chatdata.text import ShardText
        from chatdata.workspace import PARTITION, load_payloads, shard_file

        key = (piece.partition, piece.shard)
        text = self._open.pop(key, None)
        if text is None:
            path = shard_file(self.store.path(PARTITION, piece.partition), piece.shard)
            oasst = self.recipe.sources[piece.source].format == "oasst"
            text = ShardText(path, oasst=oasst, render=self.render)
            self._seeded.discard(key)
            while len(self._open) >= self.keep:
                self._open.pop(next(iter(self._open)))
        if payloads and key not in self._seeded:
            text.seed_messages(load_payloads(self.store, piece.partition, piece.shard))
            self._seeded.add(key)
        self._open[key] = text  # most recently used last
        return text


def _filling(texts: _Texts, piece: Any, columns: list[str]) -> Any:
    """A piece reader's ``prepare``: the rows with their text gathered, then only the published ``columns``."""

    def prepare(table: pa.Table) -> pa.Table:
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return to_arrow(texts.of(piece).fill(frame).select(columns))

    return prepare


def _split_streams(task: Any, store: Any, plans: list[pl.DataFrame], texts: _Texts) -> dict[str, TableStream]:
    """Every split as a merged stream: per source in order, its shards' rows merged by (tree, dialogue), each
    piece's text gathered as its rows are read."""
    from chatdata.merge import PieceReader, merge_order, merged_chunks, union_schema
    from chatdata.schema import REJECT_REFS
    from chatdata.text import TEXT_COLUMNS, TEXT_TYPES
    from chatdata.workspace import KEYS, ROWS, SHARD

    recipe_splits = _recipe(task).splits
    paths = [store.path(SHARD, p.job) / ROWS for p in task.pieces]
    schemas = [artifacts.schema(p) for p in paths]
    columns = publish_columns(dict.fromkeys(c for s in schemas for c in s))
    typed = [{c: (TEXT_TYPES[c] if c in TEXT_COLUMNS else d) for c, d in s.items() if c in columns} for s in schemas]
    schema = union_schema(typed, first=tuple(columns))
    keys = [artifacts.load(store.path(SHARD, p.job) / KEYS, ["message_tree_id", "dialogue_id"]) for p in task.pieces]
    streams = {}
    for split in recipe_splits:
        masks = [
            plan.select((pl.col("split") == split) & pl.col("_reason").is_null()).to_series().to_numpy()
            for plan in plans
        ]
        sequence = _source_ordered(
            task.pieces,
            [k.filter(m) for k, m in zip(keys, masks, strict=True)],
            ("message_tree_id", "dialogue_id"),
            merge_order,
        )
        rows = int(sum(m.sum() for m in masks))
        readers = []
        for piece, path, s, m in zip(task.pieces, paths, schemas, masks, strict=True):
            mine = [c for c in columns if c in s]
            refs = [c for c in REJECT_REFS if c in s and c not in mine]
            readers.append(PieceReader(path, columns=mine + refs, mask=m, prepare=_filling(texts, piece, mine)))
        streams[split] = TableStream(schema, rows, merged_chunks(readers, sequence, schema))
    return streams


def _source_ordered(pieces: Any, keys: list[pl.DataFrame], by: tuple[str, ...], order: Any) -> np.ndarray:
    """The merge sequence over all pieces: each source's pieces merged by ``by``, the sources one after another."""
    parts = []
    for source in dict.fromkeys(p.source for p in pieces):
        index = [i for i, p in enumerate(pieces) if p.source == source]
        local = order([keys[i] for i in index], by)
        parts.append(np.asarray(index, dtype=np.uint32)[local])
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)


def _plan_rejects(task: Any, store: Any, plans: list[pl.DataFrame], unit: str) -> list[pl.DataFrame]:
    """Per piece, its rows the plan dropped (leaks under ``drop``, duplicates, mixture fractions) as rejects."""
    from chatdata.schema import INTERNAL_REJECT_SCHEMA, conform, empty_rejects
    from chatdata.splits import dialogue_rejects
    from chatdata.stages import sort_rejects
    from chatdata.workspace import ROWS, SHARD

    out = []
    for piece, plan in zip(task.pieces, plans, strict=True):
        dropped = plan.select(pl.col("_reason").is_not_null()).to_series()
        if not dropped.any():
            out.append(empty_rejects(INTERNAL_REJECT_SCHEMA))
            continue
        rows = artifacts.load(store.path(SHARD, piece.job) / ROWS).filter(dropped)
        rows = rows.with_columns(plan.filter(dropped).select("_reason", "_evidence"))
        rejects = dialogue_rejects(
            rows, stage="splits", reason=pl.col("_reason"), evidence=pl.col("_evidence"), unit=unit
        )
        out.append(sort_rejects(conform(rejects, INTERNAL_REJECT_SCHEMA)))
    return out


def _rejects_stream(
    task: Any, store: Any, plans: list[pl.DataFrame], unit: str, texts: _Texts, spool: Path
) -> TableStream:
    """The rejects table: per source, its ingest rejects, its shards' and the plan's, merged in publish order.
    Each piece is finished first, alone and in its order (its payloads built from its shard's text, read once),
    into a file in ``spool``: the merge visits the shards once per stage, which would read each shard again and
    again."""
    from chatdata.merge import PieceReader, merge_order, merged_chunks
    from chatdata.schema import REJECT_SCHEMA
    from chatdata.stages import REJECT_ORDER
    from chatdata.workspace import PARTITION, PARTITION_REJECTS, SHARD, SHARD_REJECTS

    plan_rejects = _plan_rejects(task, store, plans, unit)
    schema = to_arrow(pl.DataFrame(schema=_published_reject_schema())).schema
    pieces: list[tuple[str, Path, bool]] = []  # (source, file, finished)
    for source, part_key in task.partitions:
        pieces.append((source, store.path(PARTITION, part_key) / PARTITION_REJECTS, False))
        for piece, extra in zip(task.pieces, plan_rejects, strict=True):
            if piece.source != source:
                continue
            stored = store.path(SHARD, piece.job) / SHARD_REJECTS
            pieces.append((source, _finish_rejects(stored, piece, source, texts, spool, schema), True))
            if extra.height:
                pieces.append((source, _finish_rejects(extra, piece, source, texts, spool, schema), True))
    published = [c if c != "source" else "source_file" for c in REJECT_ORDER]  # what the order calls the file
    keys = [
        artifacts.load(p, published).rename({"source_file": "source"}) if done else artifacts.load(p, REJECT_ORDER)
        for _, p, done in pieces
    ]
    sequence = _source_ordered([_Tag(s) for s, _, _ in pieces], keys, REJECT_ORDER, merge_order)
    readers = [
        PieceReader(p, columns=list(schema.names)) if done else PieceReader(p, columns=list(REJECT_SCHEMA),
                                                                              prepare=_publish_rejects(source))
        for source, p, done in pieces
    ]  # fmt: skip
    rows = sum(k.height for k in keys)
    return TableStream(schema, rows, merged_chunks(readers, sequence, schema))


def _finish_rejects(
    rejects: Path | pl.DataFrame, piece: Any, source: str, texts: _Texts, spool: Path, schema: pa.Schema
) -> Path:
    """A piece's rejects as published, in their order, with their payloads built (from the piece's shard)."""
    from chatdata.schema import INTERNAL_REJECT_SCHEMA, REJECT_SCHEMA

    path = spool / f"{len(list(spool.iterdir())):05d}{artifacts.SUFFIX}"
    writer = artifacts.Writer(path, schema, artifacts.STREAM_BATCH_ROWS)
    publish = _publish_rejects(source)
    batches = (
        artifacts.batches(rejects, list(INTERNAL_REJECT_SCHEMA))
        if isinstance(rejects, Path)
        else rejects.select(list(INTERNAL_REJECT_SCHEMA)).to_arrow().to_batches(artifacts.STREAM_BATCH_ROWS)
    )
    text = texts.of(piece, payloads=True)
    for batch in batches:
        frame = pl.from_arrow(batch)
        assert isinstance(frame, pl.DataFrame)
        if frame.height:
            done = frame.with_columns(text.payloads(frame)).select(list(REJECT_SCHEMA))
            writer.write(publish(to_arrow(done)).select(schema.names))
    writer.close()
    return path


@dataclass(frozen=True)
class _Tag:
    """A reject piece's source, as :func:`_source_ordered` reads pieces."""

    source: str


def _published_reject_schema() -> dict[str, pl.DataType]:
    from chatdata.schema import REJECT_SCHEMA

    internal = {("source_file" if k == "source" else k): v for k, v in REJECT_SCHEMA.items()}
    return {c: internal.get(c, pl.String()) for c in PUBLISHED_REJECT_COLUMNS}


def _publish_rejects(source: str) -> Any:
    """Rejects as published: the file a reject came from renamed ``source_file``, the recipe's source added."""

    def prepare(table: pa.Table) -> pa.Table:
        table = table.rename_columns(["source_file" if c == "source" else c for c in table.column_names])
        # built through polars: pa.array on a Python list imports pandas (0.4 s of a small build)
        name = pl.repeat(source, table.num_rows, dtype=pl.String, eager=True).to_arrow().cast(pa.string())
        return table.append_column("source", name)

    return prepare


def _recipe(task: Any) -> Any:
    from chatdata.recipes import get_recipe

    return get_recipe(task.recipe)


def decontamination_record(recipe: Any, settings: Any, ledger: Ledger) -> dict[str, Any] | None:
    """What ``build.json`` says of decontamination: per benchmark its provenance (source, revision or sha256),
    item and text counts and the rows it removed per source; the benchmarks left out of this build."""
    from chatdata.filters.decontam import DecontamFilter
    from chatdata.stages import Job, _filters_of

    filters = {
        source: [f for f in _filters_of(Job(recipe, source, settings)) if isinstance(f, DecontamFilter)]
        for source in recipe.sources
    }
    first = next((fs[0] for fs in filters.values() if fs), None)
    if first is None:
        return None
    rejected = {r.source: r.rejected for r in ledger.records if r.stage == "filters"}
    benchmarks = []
    for items in first.checked():
        removed = {
            source: sum(rejected.get(source, {}).get(f"{f.name}: {items.name}_overlap", 0) for f in fs)
            for source, fs in filters.items()
        }
        benchmarks.append(
            {
                "name": items.name,
                **items.provenance,
                "items": items.items,
                "texts": len(items.texts),
                "removed": removed,
            }
        )
    return {
        "filter": first.name,
        "n": int(first.settings["n"]),
        "common": int(first.settings["common"]),
        "benchmarks": benchmarks,
        "left_out": first.left_out(),
    }


def write_recipe(task: Any, store: Any) -> None:
    """Write one recipe's folder from its pieces and plan (:class:`WriteTask`), atomically."""
    from chatdata.chatstages import merge_mask_notes
    from chatdata.mixture import piece_file
    from chatdata.settings import BuildSettings
    from chatdata.workspace import PLAN, SHARD, load_masks, owned_output

    recipe = _recipe(task)
    settings = BuildSettings(**task.settings)
    plan_dir = store.path(PLAN, task.plan)
    plan = json.loads((plan_dir / "meta.json").read_text())
    ledger = recipe_ledger(task, store, plan)
    if ledger.records[-1].rows_out == 0 and not task.allow_empty:
        raise EmptyDatasetError(
            f"recipe {recipe.name}: no row left to publish (removed by {_empty_reasons(ledger)}); check the source "
            "and the filters, or pass --allow-empty to write an empty dataset"
        )
    plans = [artifacts.load(piece_file(plan_dir, i)) for i in range(len(task.pieces))]
    unit = "pair" if recipe.output == "prefs" else "dialogue"
    masks = [m for p in task.pieces if (m := load_masks(store.path(SHARD, p.job))) is not None]
    extra = {"mix": plan["mix"], "weights": plan["weights"]} if len(recipe.sources) > 1 else {}
    if masks:
        extra["masks"] = mask_record(merge_mask_notes(masks, settings.max_length))
    record = decontamination_record(recipe, settings, ledger)
    if record is not None:
        extra["decontamination"] = record
    texts = _Texts(task, store, settings)
    with tempfile.TemporaryDirectory(prefix=".rejects-", dir=store.root) as spool:
        assemble(
            Path(task.target),
            recipe,
            settings,
            ledger,
            task.sources,
            _split_streams(task, store, plans, texts),
            _rejects_stream(task, store, plans, unit, texts, Path(spool)),
            extra,
            owned=owned_output(store.root.parent, recipe.name),
            overwrite=task.overwrite,
            given=task.given,
        )


def _changes_since(target: Path, written: Path, owned: Callable[[Path], bool], ledger: Ledger) -> dict[str, Any] | None:
    """The changes from the version of ``target`` this write replaces (a folder chatdata wrote) to the tables
    just ``written`` (``chatdata diff``'s fields), or None when there is no previous version or nothing changed."""
    if not (target / RECORD_FILE).is_file() or not owned(target):
        return None
    from chatdata.diff import diff_versions, read_version

    changes = diff_versions(
        read_version(target, "previous"), read_version(written, "new", [r.stage for r in ledger.records])
    )
    moved = any(changes[c] for c in ("added", "removed", "changed", "moved")) or changes["rejects"]
    return changes if moved else None  # the same rows again: a rewrite is not a new version


def assemble(
    target: Path,
    recipe: Any,
    settings: Any,
    ledger: Ledger,
    sources: dict[str, Any],
    splits: dict[str, TableStream],
    rejects: TableStream,
    extra: dict[str, Any] | None = None,
    *,
    owned: Callable[[Path], bool] = is_build_folder,
    overwrite: bool = False,
    given: tuple[str, ...] = (),
) -> StageRecord:
    """Check the ledger against the rows, then write the dataset folder (data, rejects, build.json, card) in one
    atomic swap; the tables are streamed, so memory stays bounded by one row group."""
    from chatdata.card.render import write_record
    from chatdata.card.statistics import stats_rows, table_stats
    from chatdata.filters.specs import load_specs
    from chatdata.memory import release_memory
    from chatdata.writer import SplitWriter, atomic_folder

    ledger.check()
    if rejects.rows != ledger.total_rejected():
        raise LedgerError(
            f"rejects table has {rejects.rows} rows but the ledger counts {ledger.total_rejected()} rejections"
        )
    total_out = sum(s.rows for s in splits.values())
    if total_out != ledger.records[-1].rows_out:
        raise ChatdataError(f"{total_out} rows to write but the last stage passed {ledger.records[-1].rows_out}")
    refs = []
    for name in recipe.sources:
        refs += [*recipe.gate_refs(name), *recipe.filter_refs(name, settings.decontaminate)]
    specs = [dict(s.to_dict(), sha256=s.sha256) for s in load_specs(list(dict.fromkeys(refs)))]
    outputs: dict[str, dict[str, Any]] = {"default": {}, REJECTS_CONFIG: {}}
    stats: list[pl.DataFrame] = []  # the card's statistics, collected as the data is written
    with atomic_folder(target, owned=owned, overwrite=overwrite) as tmp:
        tables = [("default", name, tmp / "data", stream) for name, stream in splits.items()]
        tables.append((REJECTS_CONFIG, REJECTS_CONFIG, tmp / REJECTS_CONFIG, rejects))
        for config, name, folder, stream in tables:
            writer = SplitWriter(folder, name, stream.schema, stream.rows, max_file_bytes=settings.max_shard_bytes)
            for chunk in stream.chunks:
                writer.write(chunk)
                if config == "default":
                    stats.append(table_stats(chunk, name))
            paths = writer.close()
            outputs[config][name] = {"rows": stream.rows, "files": [file_entry(p, tmp) for p in paths]}
            release_memory()  # the next table's buffers start from an empty allocator
        record = BuildRecord(
            chatdata_version=__version__,
            recipe=recipe.to_dict(),
            settings=settings.resolved(recipe),
            settings_given=list(given),
            settings_sha256=settings_fingerprint(recipe, settings, specs),
            sources=sources,
            filters=specs,
            ledger=ledger.to_list(),
            outputs=outputs,
            changes=_changes_since(target, tmp, owned, ledger),
            **(extra or {}),
        )
        write_record(tmp, record, rows=stats_rows(stats))
    return StageRecord("write", ledger.records[-1].unit, total_out, total_out)
