"""Pipeline entry point: label-mask validation of a dialogue table, with statistics for ``build.json``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from chatdata.chat.dialects import Dialect, OnSpecial, get_dialect
from chatdata.chat.masks import DEFAULT_CONVENTION, Convention, build_masks
from chatdata.errors import ChatdataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

RESULT_COLUMNS = ("n_tokens", "n_trained", "truncated", "ok", "reason")


def validate_masks(
    frame: pl.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    dialect: str | Dialect = "starchat",
    convention: Convention = DEFAULT_CONVENTION,
    max_length: int = 2048,
    *,
    messages_col: str = "messages",
    on_special: OnSpecial = "reject",
    prefix_check: bool | Literal["full"] = True,
    keep_ids: bool = False,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Build and check the label mask of every dialogue of ``frame``; return it with results and stats.

    Adds ``n_tokens`` (before truncation), ``n_trained`` (trained tokens within ``max_length``),
    ``truncated``, ``ok`` and ``reason`` (null when ok; see :mod:`chatdata.chat.masks` for the codes), plus
    ``input_ids``/``labels`` when ``keep_ids``. Existing columns of those names are replaced. The stats dict
    (JSON-ready) holds counts per reason code, token-length stats, the trained-token share, truncation
    drops and the tokenizer notes (tokens added, pad/eos). ``tokenizer`` gains the dialect's missing special
    tokens (see :func:`chatdata.chat.tokenizer.prepare_tokenizer`).
    """
    if messages_col not in frame.columns:
        raise ChatdataError(f"the dialogue table has no {messages_col!r} column; pass messages_col=")
    d = get_dialect(dialect)
    batch = build_masks(
        frame.get_column(messages_col),
        tokenizer,
        d,
        convention,
        max_length,
        on_special=on_special,
        prefix_check=prefix_check,
    )
    added = batch.frame.select(*RESULT_COLUMNS, *(("input_ids", "labels") if keep_ids else ()))
    result = frame.with_columns(added.get_columns())
    stats = mask_stats(batch.frame, max_length)
    stats.update(
        dialect=d.name,
        convention=convention,
        max_length=max_length,
        tokenizer=getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        notes=batch.notes,
    )
    return result, stats


def mask_stats(masks: pl.DataFrame, max_length: int) -> dict[str, Any]:
    """Counts, reasons, token-length stats and trained share of a :class:`~chatdata.chat.masks.MaskBatch`."""
    codes = (
        masks.select(pl.col("reason").str.split("; ").alias("r"))
        .explode("r")
        .drop_nulls()
        .select(pl.col("r").str.extract(r"^(\w+):", 1).alias("code"))
        .group_by("code")
        .len()
        .sort("code")
    )
    tokens = masks.get_column("n_tokens").drop_nulls()
    ok = masks.filter(pl.col("ok"))
    kept = ok.select(pl.min_horizontal(pl.col("n_tokens"), pl.lit(max_length)).sum()).item() or 0
    trained = ok.get_column("n_trained").sum() or 0
    return {
        "rows": masks.height,
        "ok": ok.height,
        "rejected": masks.height - ok.height,
        "reasons": dict(codes.iter_rows()),
        "tokens": {
            "rows": tokens.len(),
            "mean": round(float(tokens.mean()), 2) if tokens.len() else None,
            "p50": int(tokens.quantile(0.5, "nearest")) if tokens.len() else None,
            "p95": int(tokens.quantile(0.95, "nearest")) if tokens.len() else None,
            "max": int(tokens.max()) if tokens.len() else None,
        },
        "kept_tokens": int(kept),
        "trained_tokens": int(trained),
        "trained_share": round(trained / kept, 4) if kept else None,
        "truncated_rows": ok.get_column("truncated").sum(),
        "truncation_drops": int(masks.get_column("reason").str.contains(r"(^|; )truncated:").fill_null(False).sum()),
    }
