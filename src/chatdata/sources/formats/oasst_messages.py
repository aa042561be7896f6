"""An OpenAssistant messages export (``*.messages.jsonl``): one message per line, ``emojis``/``labels`` as dicts
(:func:`chatdata.ingest.iter_messages`)."""

from __future__ import annotations

from chatdata.ingest import iter_messages
from chatdata.schema import REQUIRED_FIELDS
from chatdata.sources.formats import JSONL, Format

FORMAT = Format(
    "oasst_messages",
    family="oasst",
    table="messages",
    signature=REQUIRED_FIELDS,
    read=iter_messages,
    layouts=frozenset({JSONL}),
    precedence=20,
    name_hint=".messages.jsonl",
)
