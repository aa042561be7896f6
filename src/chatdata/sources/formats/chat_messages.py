"""Chat datasets in TRL/H4 ``messages`` (a list of ``{role, content}``, roles ``system``/``user``/``assistant``):
each record is one dialogue, ``lang`` is null; the rules are those of :mod:`chatdata.sources.checks`.
"""

from __future__ import annotations

import polars as pl

from chatdata.sources.checks import CHAT_ROLES
from chatdata.sources.formats import Format
from chatdata.sources.layout import Converted, convert_dialogues, record_reader
from chatdata.sources.records import Field


def convert(frame: pl.DataFrame) -> Converted:
    return convert_dialogues(frame, pl.col("messages"), CHAT_ROLES)


FORMAT = Format(
    "chat_messages",
    family="chat",
    table="dialogues",
    signature=("messages",),
    read=record_reader((Field("messages", "turns"),), convert),
    precedence=70,
)
