"""An OpenAssistant trees export (``*.trees.jsonl``): one tree per line, its messages nested in ``replies``
(:func:`chatdata.ingest.iter_trees`)."""

from __future__ import annotations

from chatdata.ingest import iter_trees
from chatdata.sources.formats import JSONL, Format

FORMAT = Format(
    "oasst_trees",
    family="oasst",
    table="messages",
    signature=("prompt", "message_tree_id"),
    read=iter_trees,
    layouts=frozenset({JSONL}),
    precedence=10,
    name_hint=".trees.jsonl",
)
