"""Assemble a recipe's output folder (a Hub dataset repository) atomically: Parquet per config and split,
README.md with YAML ``configs``, and ``build.json`` with the fingerprint, the exact specs and the ledger."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from chatdata import __version__
from chatdata.errors import ChatdataError
from chatdata.filters.specs import load_specs
from chatdata.ledger import Ledger, LedgerError, StageRecord
from chatdata.writer import payload_bytes, to_arrow

#: the columns every SFT/preference row shows first, in this order, then the metadata columns
PRIMARY = ("prompt", "prompt_id", "chosen", "rejected", "text", "messages", "score_chosen", "score_rejected")
HIDDEN = ("split", "source_split")
REJECTS_CONFIG = "rejects"


def publish_columns(frame: pl.DataFrame) -> list[str]:
    first = [c for c in PRIMARY if c in frame.columns]
    rest = [c for c in frame.columns if c not in first and c not in HIDDEN and not c.startswith("_")]
    return first + rest


REJECT_ORDER = ("stage", "unit", "message_tree_id", "message_id", "source", "source_line")


def file_entry(path: Path, root: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"path": path.relative_to(root).as_posix(), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


@dataclass
class TableStream:
    """The rows of one split as Arrow tables in output order, with the totals the writer needs up front."""

    schema: pa.Schema
    rows: int
    nbytes: int
    chunks: Iterable[pa.Table]

    @classmethod
    def of(cls, frame: pl.DataFrame) -> TableStream:
        table = to_arrow(frame)
        return cls(table.schema, table.num_rows, payload_bytes(table), [table])


def sort_rejects(rejects: pl.DataFrame) -> pl.DataFrame:
    """The published order of the rejects table (stable: ties keep stage-then-file order)."""
    return rejects.sort(*REJECT_ORDER, nulls_last=True, maintain_order=True)


def write_dataset(ctx: Any) -> StageRecord:
    """The ``write`` stage: check the ledger, then write ``OUT/<recipe>/`` in one atomic swap."""
    from chatdata.pipeline import collect_ledger, collect_rejects, load

    ws, recipe = ctx.ws, ctx.recipe
    ledger = collect_ledger(ws)
    final = load(ws.own / "final.parquet")
    cols = publish_columns(final)
    splits = {s: TableStream.of(final.filter(pl.col("split") == s).select(cols)) for s in recipe.splits}
    notes_path = ws.own / "notes.json"
    return assemble(
        ctx.out / recipe.name,
        recipe,
        ctx.settings,
        ledger,
        json.loads((ws.common / "sources.json").read_text()),
        json.loads(notes_path.read_text()) if notes_path.exists() else None,
        splits,
        TableStream.of(sort_rejects(collect_rejects(ws))),
    )


def assemble(
    target: Path,
    recipe: Any,
    settings: Any,
    ledger: Ledger,
    sources: dict[str, Any],
    notes: dict[str, Any] | None,
    splits: dict[str, TableStream],
    rejects: TableStream,
) -> StageRecord:
    """Check the ledger against the rows, then write the dataset folder (data, rejects, build.json, card) in one
    atomic swap; the tables are streamed, so memory stays bounded by one row group."""
    from chatdata.card import render_card
    from chatdata.pipeline import dialogue_filter_refs, settings_fingerprint
    from chatdata.writer import SplitWriter, atomic_folder

    ledger.check()
    if rejects.rows != ledger.total_rejected():
        raise LedgerError(
            f"rejects table has {rejects.rows} rows but the ledger counts {ledger.total_rejected()} rejections"
        )
    total_out = sum(s.rows for s in splits.values())
    if total_out != ledger.records[-1].rows_out:
        raise ChatdataError(f"{total_out} rows to write but the last stage passed {ledger.records[-1].rows_out}")
    refs = list(recipe.gates) + dialogue_filter_refs(recipe, settings)
    specs = [dict(s.to_dict(), sha256=s.sha256) for s in load_specs(refs)]
    outputs: dict[str, dict[str, Any]] = {"default": {}, REJECTS_CONFIG: {}}
    with atomic_folder(target) as tmp:
        tables = [("default", name, tmp / "data", stream) for name, stream in splits.items()]
        tables.append((REJECTS_CONFIG, REJECTS_CONFIG, tmp / REJECTS_CONFIG, rejects))
        for config, name, folder, stream in tables:
            writer = SplitWriter(
                folder, name, stream.schema, stream.rows, stream.nbytes, max_shard_bytes=settings.max_shard_bytes
            )
            for chunk in stream.chunks:
                writer.write(chunk)
            paths = writer.close()
            outputs[config][name] = {"rows": stream.rows, "files": [file_entry(p, tmp) for p in paths]}
        build = {
            "chatdata_version": __version__,
            "recipe": recipe.to_dict(),
            "settings": settings.output_settings(),
            "settings_sha256": settings_fingerprint(recipe, settings, specs),
            "source": sources,
            "filters": specs,
            "ledger": ledger.to_list(),
            "outputs": outputs,
        }
        if notes is not None:
            build["notes"] = notes
        (tmp / "build.json").write_bytes(orjson.dumps(build, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        (tmp / "README.md").write_text(render_card(build, tmp), encoding="utf-8")
    return StageRecord("write", ledger.records[-1].unit, total_out, total_out)
