"""ShareGPT ``conversations`` (a list of ``{from, value}``, ``from`` in ``human``/``gpt``/``system``, mapped to
user/assistant/system; any other value is rejected as ``unknown_role`` with the value as evidence): each record is
one dialogue, ``lang`` is null; the rules are those of :mod:`chatdata.sources.checks`.
"""

from __future__ import annotations

import polars as pl

from chatdata.sources.checks import SHAREGPT_ROLES
from chatdata.sources.formats import Format
from chatdata.sources.layout import Converted, convert_dialogues, record_reader
from chatdata.sources.records import Field


def convert(frame: pl.DataFrame) -> Converted:
    return convert_dialogues(frame, pl.col("conversations"), SHAREGPT_ROLES)


FORMAT = Format(
    "sharegpt",
    family="chat",
    table="dialogues",
    signature=("conversations",),
    read=record_reader((Field("conversations", "turns", role_key="from", content_key="value"),), convert),
    precedence=60,
)
