"""Assemble a recipe's output folder (a Hub dataset repository) atomically: Parquet per config and split,
README.md with YAML ``configs``, and ``build.json`` with the fingerprint, the exact specs and the ledger."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from chatdata import __version__
from chatdata.errors import ChatdataError
from chatdata.filters.specs import load_specs
from chatdata.ledger import LedgerError, StageRecord

#: the columns every SFT/preference row shows first, in this order, then the metadata columns
PRIMARY = ("prompt", "prompt_id", "chosen", "rejected", "text", "messages", "score_chosen", "score_rejected")
HIDDEN = ("split", "source_split")
REJECTS_CONFIG = "rejects"


def publish_columns(frame: pl.DataFrame) -> list[str]:
    first = [c for c in PRIMARY if c in frame.columns]
    rest = [c for c in frame.columns if c not in first and c not in HIDDEN and not c.startswith("_")]
    return first + rest


def file_entry(path: Path, root: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {
        "path": path.relative_to(root).as_posix(),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def write_dataset(ctx: Any) -> StageRecord:
    """The ``write`` stage: check the ledger, then write ``OUT/<recipe>/`` in one atomic swap."""
    from chatdata.card import render_card
    from chatdata.pipeline import collect_ledger, collect_rejects, load, settings_fingerprint
    from chatdata.writer import atomic_folder, write_split

    ws, recipe, settings = ctx.ws, ctx.recipe, ctx.settings
    ledger = collect_ledger(ws)
    ledger.check()
    final = load(ws.own / "final.parquet")
    rejects = collect_rejects(ws)
    if rejects.height != ledger.total_rejected():
        raise LedgerError(
            f"rejects table has {rejects.height} rows but the ledger counts {ledger.total_rejected()} rejections"
        )
    from chatdata.pipeline import dialogue_filter_refs

    refs = list(recipe.gates) + dialogue_filter_refs(recipe, settings)
    specs = [dict(s.to_dict(), sha256=s.sha256) for s in load_specs(refs)]
    sources = json.loads((ws.common / "sources.json").read_text())
    target = ctx.out / recipe.name
    splits_out: dict[str, dict[str, Any]] = {"default": {}, REJECTS_CONFIG: {}}
    with atomic_folder(target) as tmp:
        cols = publish_columns(final)
        for split in recipe.splits:
            part = final.filter(pl.col("split") == split).select(cols)
            paths = write_split(part, tmp / "data", split, max_shard_bytes=settings.max_shard_bytes)
            splits_out["default"][split] = {
                "rows": part.height,
                "files": [file_entry(p, tmp) for p in paths],
            }
        rej_sorted = rejects.sort(
            "stage",
            "unit",
            "message_tree_id",
            "message_id",
            "source",
            "source_line",
            nulls_last=True,
            maintain_order=True,
        )
        paths = write_split(rej_sorted, tmp / REJECTS_CONFIG, REJECTS_CONFIG, max_shard_bytes=settings.max_shard_bytes)
        splits_out[REJECTS_CONFIG][REJECTS_CONFIG] = {
            "rows": rej_sorted.height,
            "files": [file_entry(p, tmp) for p in paths],
        }
        build = {
            "chatdata_version": __version__,
            "recipe": recipe.to_dict(),
            "settings": settings.output_settings(),
            "settings_sha256": settings_fingerprint(recipe, settings, specs),
            "source": sources,
            "filters": specs,
            "ledger": ledger.to_list(),
            "outputs": splits_out,
        }
        notes_path = ws.own / "notes.json"
        if notes_path.exists():
            build["notes"] = json.loads(notes_path.read_text())
        (tmp / "build.json").write_bytes(orjson.dumps(build, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
        (tmp / "README.md").write_text(render_card(build, tmp), encoding="utf-8")
    total_out = sum(v["rows"] for v in splits_out["default"].values())
    if total_out != ledger.records[-1].rows_out:
        raise ChatdataError(f"wrote {total_out} rows but the last stage passed {ledger.records[-1].rows_out}")
    return StageRecord("write", ledger.records[-1].unit, total_out, total_out)
