"""Chat datasets: ``messages`` (a list of ``{role, content}``, roles ``system``/``user``/``assistant``, as TRL and
the H4 datasets use) and ShareGPT ``conversations`` (a list of ``{from, value}``, ``from`` in ``human``/``gpt``/
``system``, mapped to user/assistant/system; any other value is rejected as ``unknown_role`` with the value as
evidence). Each record is one dialogue; ``lang`` is null. The rules are those of :mod:`chatdata.sources.checks`.
"""

from __future__ import annotations

import polars as pl

from chatdata.sources.checks import CHAT_ROLES, SHAREGPT_ROLES
from chatdata.sources.layout import Converted, Layout, convert_dialogues
from chatdata.sources.records import Field


def _messages(frame: pl.DataFrame) -> Converted:
    return convert_dialogues(frame, pl.col("messages"), CHAT_ROLES)


def _sharegpt(frame: pl.DataFrame) -> Converted:
    return convert_dialogues(frame, pl.col("conversations"), SHAREGPT_ROLES)


LAYOUTS = {
    "chat_messages": Layout("chat_messages", "dialogues", (Field("messages", "turns"),), _messages),
    "sharegpt": Layout(
        "sharegpt",
        "dialogues",
        (Field("conversations", "turns", role_key="from", content_key="value"),),
        _sharegpt,
    ),
}
