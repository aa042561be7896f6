"""The OpenAssistant message table as the Hub publishes it (``OpenAssistant/oasst1``'s ``data/*.parquet``):
one row per message, ``emojis``/``labels`` as parallel lists (:func:`chatdata.ingest.iter_parquet`)."""

from __future__ import annotations

from chatdata.ingest import iter_parquet
from chatdata.schema import REQUIRED_FIELDS
from chatdata.sources.formats import PARQUET, Format

FORMAT = Format(
    "oasst_parquet",
    family="oasst",
    table="messages",
    signature=REQUIRED_FIELDS,
    read=iter_parquet,
    layouts=frozenset({PARQUET}),
    precedence=20,
    near_miss="an oasst message table",
)
