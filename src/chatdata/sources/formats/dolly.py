"""Dolly-15k (``databricks/databricks-dolly-15k``: ``instruction``, ``context``, ``response``, ``category``).

StarChat-α's blend rule: one user turn holding the ``instruction`` — followed by ``"\\n\\n"`` and the ``context``
when the context is non-empty (holds a non-whitespace character; it is appended as given) — and one assistant turn
holding the ``response``. ``category`` is kept as a column; ``lang`` is ``"en"``. A blank response is rejected
(``empty_response``), like every rule of :mod:`chatdata.sources.checks`.
"""

from __future__ import annotations

import polars as pl

from chatdata.sources.checks import CHAT_ROLES
from chatdata.sources.formats import Format
from chatdata.sources.layout import Converted, convert_dialogues, record_reader, turn
from chatdata.sources.records import Field

FIELDS = (
    Field("instruction"),
    Field("context", required=False),
    Field("response"),
    Field("category", required=False),
)


def user_text() -> pl.Expr:
    """The instruction, plus ``"\\n\\n"`` and the context when the context is not blank."""
    context = pl.col("context")
    has_context = context.is_not_null() & (context.str.strip_chars() != "")
    return pl.when(has_context).then(pl.col("instruction") + "\n\n" + context).otherwise(pl.col("instruction"))


def convert(frame: pl.DataFrame) -> Converted:
    turns = pl.concat_list(turn("user", user_text()), turn("assistant", pl.col("response")))
    return convert_dialogues(frame, turns, CHAT_ROLES, lang="en", extras=("category",))


FORMAT = Format(
    "dolly",
    family="dolly",
    table="dialogues",
    signature=("instruction", "response"),
    read=record_reader(FIELDS, convert),
    precedence=50,
)
