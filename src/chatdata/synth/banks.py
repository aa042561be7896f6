"""The sentence banks and the piece table that texts are joined from.

Genuine sentences per language so that a language detector recognises them. ``topics`` are parallel across
languages (same index = same subject) and fit the ``{t}``/``{T}`` (capitalised) slots of ``q_topic`` and
``topic_sent`` grammatically (nominative, no preposition contractions). ``body`` sizes are prime so a random stride
walks a bank without repeating a sentence inside one reply. Only ``refusal`` and the ``oa_*`` banks contain phrases
of the WizardLM / StarChat-beta filter list (tests check this). The banks are data: ``data/synth_banks.json.gz``.

The piece table holds every bank entry of every language in two variants, [plain, spaced]: the plain one opens a
message or a block (after a newline), the spaced one follows a sentence. Texts are joins of pieces, so no clean-up
pass.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa


@functools.cache
def _banks() -> dict[str, Any]:
    """The sentence banks per language (``text``) and the English coding tasks (``code_tasks``: question with
    inline code, fenced answer, follow-up sentence with inline code; the last quotes HumanEval/0 so that
    decontamination filters have something to find), from ``data/synth_banks.json.gz``."""
    raw = (Path(__file__).parents[1] / "data" / "synth_banks.json.gz").read_bytes()
    return json.loads(gzip.decompress(raw))


def _text() -> dict[str, dict[str, list[str]]]:
    return _banks()["text"]


def _code_tasks() -> list[tuple[str, str, str]]:
    return [tuple(t) for t in _banks()["code_tasks"]]  # type: ignore[misc]


#: Languages written without spaces between sentences.
_NO_SPACE = frozenset({"zh", "ja"})


_BANKS = (
    "age",
    "year",
    "q_topic",
    "topic_sent",
    "greet",
    "q_free",
    "context",
    "follow",
    "thanks",
    "opener",
    "body",
    "bullet",
    "url",
    "closer",
    "refusal",
    "refusal_alt",
    "short",
    "oa_q",
    "oa_a",
    "code_q",
    "code_block",
    "code_after",
    "code_intro",
    "code_body",
    "code_follow",
    "para",
    "nl",
)
BANK = {name: i for i, name in enumerate(_BANKS)}
_BLOCK_ENDING = frozenset({"para", "nl", "code_block"})


@dataclass(frozen=True)
class PieceTable:
    langs: tuple[str, ...]
    pieces: pa.Array  # entry e of the table is pieces[2e] (plain) and pieces[2e + 1] (spaced)
    base: np.ndarray  # (n_langs, n_banks): index of a bank's first entry
    size: np.ndarray  # (n_langs, n_banks): number of entries (0 = the language lacks that bank)
    ends_block: np.ndarray  # (n_banks,): the next piece starts a block
    n_topics: int
    n_tasks: int


_AGES = [a for tens in (10, 20, 30, 40, 50, 60) for a in range(tens + 5, tens + 11)]


def expand(lang: str) -> dict[str, list[str]]:
    spec = _text()[lang]
    topics = spec["topics"]
    caps = [t[:1].upper() + t[1:] for t in topics]
    out = {k: list(v) for k, v in spec.items() if k in BANK}
    for bank in ("q_topic", "topic_sent"):  # entry = template * n_topics + topic
        out[bank] = [tpl.format(t=t, T=c) for tpl in spec[bank] for t, c in zip(topics, caps, strict=True)]
    # numbers multiply the variety of prompts; the ages avoid the numeral agreement of ru/uk/pl (all "лет")
    out["age"] = [spec["age"][0].format(n=n) for n in _AGES]
    out["year"] = [spec["year"][0].format(n=n) for n in range(1980, 2024)]
    out["bullet"] = ["\n- " + s for s in spec["body"]]
    out["para"], out["nl"] = ["\n\n"], ["\n"]
    if lang == "en":
        out["code_q"] = [q for q, _, _ in _code_tasks()]
        out["code_block"] = ["\n\n```python\n" + code + "```\n\n" for _, code, _ in _code_tasks()]
        out["code_after"] = [a for _, _, a in _code_tasks()]
    return out


def _is_prime(k: int) -> bool:
    return k >= 2 and all(k % d for d in range(2, math.isqrt(k) + 1))


@functools.cache
def piece_table() -> PieceTable:
    langs = tuple(_text())
    base = np.zeros((len(langs), len(_BANKS)), dtype=np.int64)
    size = np.zeros_like(base)
    pieces: list[str] = []
    n_topics = len(_text()["en"]["topics"])
    for li, lang in enumerate(langs):
        banks = expand(lang)
        if len(_text()[lang]["topics"]) != n_topics or not _is_prime(len(banks["body"])):
            raise RuntimeError(f"synth bank for {lang!r}: {n_topics} topics and a prime-sized body are required")
        for bi, bank in enumerate(_BANKS):
            items = banks.get(bank, [])
            base[li, bi], size[li, bi] = len(pieces) // 2, len(items)
            for s in items:
                spaced = s if lang in _NO_SPACE or s.startswith("\n") else " " + s
                pieces += [s, spaced]
    ends = np.array([b in _BLOCK_ENDING for b in _BANKS])
    return PieceTable(langs, pa.array(pieces, pa.string()), base, size, ends, n_topics, len(_code_tasks()))


def supported_langs() -> tuple[str, ...]:
    """The ``lang`` codes the generator can write text in."""
    return tuple(_text())
