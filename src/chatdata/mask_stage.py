"""The ``masks`` stage with a tokenizer: render, tokenize and validate every label mask before publishing.

Failures (no trained token after truncation, a header leaking into the trained span, …) become rejects with the
reason; token-length stats, the trained-token share, truncation drops and the tokenizer notes (tokens added in
StarChat's order) go to ``notes.json`` and from there into ``build.json`` and the card.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import polars as pl

from chatdata.ledger import StageRecord

log = logging.getLogger(__name__)


def run_mask_stage(ctx: Any, frame: pl.DataFrame) -> StageRecord:
    from chatdata.chat.tokenizer import load_tokenizer
    from chatdata.chat.validate import validate_masks
    from chatdata.pipeline import _unit, save
    from chatdata.splits import reject_where
    from chatdata.trees import reason_counts

    s = ctx.settings
    tokenizer = load_tokenizer(s.tokenizer)
    columns = ctx.recipe.message_columns
    reason = pl.lit(None, pl.String)
    stats: dict[str, Any] = {}
    checked = frame
    for column in columns:
        result, col_stats = validate_masks(
            frame,
            tokenizer,
            s.dialect,
            s.mask_convention,
            s.max_length,  # type: ignore[arg-type]
            messages_col=column,
            on_special=s.on_special,  # type: ignore[arg-type]
        )
        stats[column] = col_stats
        reason = pl.coalesce(
            reason,
            pl.when(~pl.lit(result.get_column("ok"))).then(
                pl.format("{} [{}]", pl.lit(result.get_column("reason")), pl.lit(column))
            ),
        )
        if column in ("messages", "chosen"):
            checked = checked.with_columns(result.get_column("n_tokens"), result.get_column("n_trained"))
    for note in stats[columns[0]].get("notes", []):
        log.warning("%s", note)
    good, rejects = reject_where(checked, reason, stage="masks")
    save(good, ctx.ws.own / "masked.parquet")
    save(rejects, ctx.ws.own / "rejects-masks.parquet")
    notes = {
        "masks": {
            "tokenizer": s.tokenizer,
            "dialect": s.dialect,
            "convention": s.mask_convention,
            "max_length": s.max_length,
            **stats,
        }
    }
    (ctx.ws.own / "notes.json").write_bytes(orjson.dumps(notes, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return StageRecord(
        "masks",
        _unit(ctx),
        frame.height,
        good.height,
        reason_counts(rejects),
        notes={"tokenizer": s.tokenizer},
    )
