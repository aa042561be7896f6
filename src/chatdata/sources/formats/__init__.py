"""Source formats, one module each: a module ``xyz.py`` here declares ``FORMAT = Format("xyz", ...)``, and
:mod:`chatdata.sources.registry` finds it; nothing else names a format.

A format says which family it belongs to (a recipe source's ``format``: ``oasst``, ``dolly``, ``chat``,
``prefs``), the table its records become, how a file of it is recognised (:mod:`chatdata.sources.detect`) and how it is
read. Every record read is a row of that table or a reject (the contract: :mod:`chatdata.sources`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

#: file layouts (:func:`chatdata.sources.detect.layout_of`)
PARQUET, JSONL, JSON_ARRAY = "parquet", "jsonl", "json_array"
ANY_LAYOUT = frozenset({PARQUET, JSONL, JSON_ARRAY})

#: (rows, rejects) of about ``batch_rows`` records
Batch = tuple[pl.DataFrame, pl.DataFrame]
#: ``read(path, name, layout, source_split, batch_rows)``: a file's batches, shown as ``name`` in rows and rejects
#: (nothing for a file without records); ``source_split`` is the split its name gives (``train``, ``validation``)
Reader = Callable[[Path, str, str, str | None, int], Iterator[Batch]]


@dataclass(frozen=True)
class Format:
    """One source format: its name (the module's), family and table, how it is recognised and how it is read."""

    name: str
    #: the recipe source ``format`` that reads it
    family: str
    #: what its records become: ``messages`` (oasst's canonical messages), ``dialogues`` (SFT rows) or ``pairs``
    #: (preference rows); one per family
    table: str
    #: the keys (JSON) or columns (Parquet) that tell a record of it
    signature: tuple[str, ...]
    read: Reader
    #: the layouts a file of it comes in
    layouts: frozenset[str] = ANY_LAYOUT
    #: formats are tried in increasing precedence and the first whose signature a record holds wins: it matters
    #: only to records that hold several signatures (UltraFeedback rows carry ``messages`` too)
    precedence: int = 100
    #: a name ending (before ``.gz``) that tells a JSON Lines file of it when its content does not
    name_hint: str | None = None
    #: what a Parquet table holding the first column of the signature but not the rest is asked to be ("is this
    #: an oasst message table?") instead of being called unrecognised
    near_miss: str | None = None
