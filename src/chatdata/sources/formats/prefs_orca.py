"""Orca DPO pairs (``Intel/orca_dpo_pairs``): ``system``, ``question``, ``chosen``, ``rejected`` (strings). A
non-empty system prompt becomes a system turn: chosen = [system?, user question, assistant chosen], rejected
likewise; ``prompt`` is the question; scores are null. A pair is rejected as
:func:`chatdata.sources.layout.convert_pairs` says.
"""

from __future__ import annotations

import polars as pl

from chatdata.sources.checks import CHAT_ROLES
from chatdata.sources.formats import Format
from chatdata.sources.layout import Converted, convert_pairs, record_reader, turn
from chatdata.sources.records import Field

FIELDS = (Field("system", required=False), Field("question"), Field("chosen"), Field("rejected"))


def _side(reply: str) -> pl.Expr:
    user, answer = turn("user", pl.col("question")), turn("assistant", pl.col(reply))
    return (
        pl.when(pl.col("system").is_not_null())
        .then(pl.concat_list(turn("system", pl.col("system")), user, answer))
        .otherwise(pl.concat_list(user, answer))
    )


def convert(frame: pl.DataFrame) -> Converted:
    return convert_pairs(
        frame, prompt=pl.col("question"), chosen=_side("chosen"), rejected=_side("rejected"), roles=CHAT_ROLES
    )


FORMAT = Format(
    "prefs_orca",
    family="prefs",
    table="pairs",
    signature=("question", "chosen", "rejected"),
    read=record_reader(FIELDS, convert),
    precedence=40,
)
