"""UltraFeedback-binarized (``HuggingFaceH4/ultrafeedback_binarized``), the layout of :mod:`chatdata.pairs`:
``prompt`` (str), ``prompt_id``, ``chosen`` and ``rejected`` (message lists ending in the assistant reply),
``score_chosen``, ``score_rejected``. ``prompt_id`` is recomputed as the sha256 hex of ``prompt``; the file's
``messages`` column is not read (``messages`` = ``chosen``). A pair is rejected as
:func:`chatdata.sources.layout.convert_pairs` says.
"""

from __future__ import annotations

import polars as pl

from chatdata.sources.checks import CHAT_ROLES
from chatdata.sources.formats import Format
from chatdata.sources.layout import Converted, convert_pairs, record_reader
from chatdata.sources.records import Field

FIELDS = (
    Field("prompt"),
    Field("chosen", "turns"),
    Field("rejected", "turns"),
    Field("score_chosen", "number", required=False),
    Field("score_rejected", "number", required=False),
)


def convert(frame: pl.DataFrame) -> Converted:
    return convert_pairs(
        frame,
        prompt=pl.col("prompt"),
        chosen=pl.col("chosen"),
        rejected=pl.col("rejected"),
        roles=CHAT_ROLES,
        scores=(pl.col("score_chosen"), pl.col("score_rejected")),
    )


FORMAT = Format(
    "prefs_ultrafeedback",
    family="prefs",
    table="pairs",
    signature=("prompt", "chosen", "rejected"),
    read=record_reader(FIELDS, convert),
    precedence=30,
)
