"""Preference datasets, read into the UltraFeedback-binarized layout of :mod:`chatdata.pairs`.

- UltraFeedback-binarized (``HuggingFaceH4/ultrafeedback_binarized``): ``prompt`` (str), ``prompt_id``,
  ``chosen`` and ``rejected`` (message lists ending in the assistant reply), ``score_chosen``, ``score_rejected``.
  ``prompt_id`` is recomputed as the sha256 hex of ``prompt``; the file's ``messages`` column is not read
  (``messages`` = ``chosen``).
- Orca DPO pairs (``Intel/orca_dpo_pairs``): ``system``, ``question``, ``chosen``, ``rejected`` (strings). A
  non-empty system prompt becomes a system turn: chosen = [system?, user question, assistant chosen], rejected
  likewise; ``prompt`` is the question; scores are null.

A pair is rejected when its prompt is blank (``empty_prompt``), a side is not a usable conversation
(:mod:`chatdata.sources.checks`, evidence prefixed ``chosen:``/``rejected:``), the sides differ before the final
reply (``prefix_mismatch``) or the two replies are the same text (``identical_replies``).
"""

from __future__ import annotations

import polars as pl

from chatdata.sources.checks import CHAT_ROLES
from chatdata.sources.layout import Converted, Layout, convert_pairs, turn
from chatdata.sources.records import Field

ULTRAFEEDBACK_FIELDS = (
    Field("prompt"),
    Field("chosen", "turns"),
    Field("rejected", "turns"),
    Field("score_chosen", "number", required=False),
    Field("score_rejected", "number", required=False),
)
ORCA_FIELDS = (Field("system", required=False), Field("question"), Field("chosen"), Field("rejected"))


def _ultrafeedback(frame: pl.DataFrame) -> Converted:
    return convert_pairs(
        frame,
        prompt=pl.col("prompt"),
        chosen=pl.col("chosen"),
        rejected=pl.col("rejected"),
        roles=CHAT_ROLES,
        scores=(pl.col("score_chosen"), pl.col("score_rejected")),
    )


def _orca_side(reply: str) -> pl.Expr:
    user, answer = turn("user", pl.col("question")), turn("assistant", pl.col(reply))
    return (
        pl.when(pl.col("system").is_not_null())
        .then(pl.concat_list(turn("system", pl.col("system")), user, answer))
        .otherwise(pl.concat_list(user, answer))
    )


def _orca(frame: pl.DataFrame) -> Converted:
    return convert_pairs(
        frame, prompt=pl.col("question"), chosen=_orca_side("chosen"), rejected=_orca_side("rejected"), roles=CHAT_ROLES
    )


LAYOUTS = {
    "prefs_ultrafeedback": Layout("prefs_ultrafeedback", "pairs", ULTRAFEEDBACK_FIELDS, _ultrafeedback),
    "prefs_orca": Layout("prefs_orca", "pairs", ORCA_FIELDS, _orca),
}
