"""Decontamination against evaluation benchmarks by long word n-gram overlap.

The benchmarks are data (:mod:`chatdata.benchmarks`: HumanEval, MBPP, MT-Bench, IFEval or a user's spec). Text is
normalised on both sides (Unicode NFKC, case folded, every run of punctuation and whitespace a word break) into
word tokens. A message is contaminated when it contains ``n`` consecutive words of a benchmark text compared with
its role (user turns by default), or a whole benchmark text shorter than ``n`` words; n-grams shared by ``common``
or more items of one benchmark (boilerplate such as imports) are ignored. A dialogue's contamination is the union
of its turns'; every contaminated dialogue is a reject naming the benchmark, the item ids and the shared words.

Matching is one Aho–Corasick pass (pyahocorasick; one automaton for all the benchmarks of a filter, built once per
process) over each distinct message. Both sides are encoded first, in polars, with one character per benchmark
word (any other word becomes a separator no n-gram contains), so an n-gram is an n-character key: adding a
benchmark adds keys, not passes.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import polars as pl

from chatdata.benchmarks import Items, left_out, load_spec, resolve
from chatdata.filters.base import MessageFilter, register

_HITS = pl.List(pl.String)
#: an encoded text's character for a word that is in no benchmark n-gram
_OTHER = "\x00"
#: separates a hit's item key from its shared words
_SEP = "\x1f"


def normalise(texts: pl.Series) -> pl.Series:
    """Word tokens: Unicode NFKC (only texts that are not plain ASCII need it), lowercased, split at every
    non-word character."""
    wide = texts.str.contains(r"[^\x00-\x7F]").fill_null(False)
    if wide.any():
        texts = texts.clone().scatter(wide.arg_true(), texts.filter(wide).str.normalize("NFKC"))  # a copy
    return texts.str.to_lowercase().str.extract_all(r"\w+")


def _char(i: int) -> str:
    """The ``i``-th word's character: from U+0100 on, around the surrogate block."""
    code = 0x100 + i
    return chr(code + 0x800 if code >= 0xD800 else code)


def ngram_index(items: Items, n: int, common: int) -> dict[str, set[tuple[str, tuple[str, ...]]]]:
    """Padded n-gram (or whole short text) -> the (item id, roles) that contain it, n-grams of ``common`` or more
    items removed."""
    toks = normalise(pl.Series(items.texts, dtype=pl.String)).to_list()
    index: dict[str, set[tuple[str, tuple[str, ...]]]] = defaultdict(set)
    for item, roles, words in zip(items.ids, items.roles, toks, strict=True):
        if not words:
            continue
        grams = [words] if len(words) < n else [words[i : i + n] for i in range(len(words) - n + 1)]
        for gram in grams:
            index[" ".join(gram)].add((item, roles))
    return {g: hits for g, hits in index.items() if len({item for item, _ in hits}) < common}


@lru_cache(maxsize=8)
def matcher(benchmarks: tuple[Items, ...], n: int, common: int) -> tuple[dict[str, str], Any, int]:
    """Word -> its character, one Aho–Corasick automaton over every benchmark's n-grams so encoded (a key's
    value is ``(gram, ((benchmark, item, roles), ...))``), and the fewest words of a key."""
    import ahocorasick

    merged: dict[str, set[tuple[str, str, tuple[str, ...]]]] = defaultdict(set)
    for items in benchmarks:
        for gram, hits in ngram_index(items, n, common).items():
            merged[gram] |= {(items.name, item, roles) for item, roles in hits}
    words = sorted({w for gram in merged for w in gram.split(" ")})
    code = {w: _char(i) for i, w in enumerate(words)}
    automaton = ahocorasick.Automaton()
    for gram in sorted(merged):
        automaton.add_word("".join(code[w] for w in gram.split(" ")), (gram, tuple(sorted(merged[gram]))))
    if len(automaton):
        automaton.make_automaton()
    shortest = min((gram.count(" ") + 1 for gram in merged), default=n)
    return code, automaton, shortest


def encode(texts: pl.Series, code: dict[str, str]) -> pl.Series:
    """Word tokens (:func:`normalise`), each replaced by its character in ``code`` (others by a separator)."""
    replaced = pl.element().replace_strict(list(code), list(code.values()), default=_OTHER, return_dtype=pl.String)
    return normalise(texts).list.eval(replaced).list.join("")


@register
class DecontamFilter(MessageFilter):
    """Drop dialogues whose turns share a long n-gram with a benchmark text compared with their role."""

    kind = "decontam"
    level = "dialogue"
    reads = ("messages",)
    writes = ("contamination", "_contamination_text")
    score_keys = ("benchmarks", "n", "common", "roles")
    defaults: ClassVar[dict[str, Any]] = {"benchmarks": ["humaneval"], "n": 10, "common": 3, "roles": None}

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        #: benchmark -> a local file or folder (``--benchmark NAME=PATH``), or ``skip`` to leave it out
        self.bindings: dict[str, str] = {}

    def bind(self, settings: Any) -> None:
        self.bindings = settings.benchmark_bindings()

    # ---------------------------------------------------------------- the benchmarks
    @property
    def refs(self) -> dict[str, str]:
        """Each benchmark's name -> its spec: a shipped name, or a spec file (relative to this filter's spec)."""
        out = {}
        for ref in map(str, self.settings["benchmarks"]):
            if ref.endswith((".yaml", ".yml")) and self.spec.path and not Path(ref).is_absolute():
                beside = Path(self.spec.path).parent / ref
                ref = str(beside) if beside.is_file() else ref
            out[load_spec(ref).name] = ref
        return out

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.refs)

    def checked(self) -> tuple[Items, ...]:
        """The items of every benchmark this filter checks (those left out aside)."""
        return tuple(
            resolve(ref, self.bindings.get(name))
            for name, ref in self.refs.items()
            if not left_out(self.bindings.get(name))
        )

    def left_out(self) -> list[str]:
        """The benchmarks this build leaves out (``--benchmark NAME=skip``)."""
        return [n for n in self.names if left_out(self.bindings.get(n))]

    def fingerprint(self) -> list[Any]:
        """What the matches depend on besides the settings: each checked benchmark's items."""
        return [[b.name, b.sha256] for b in self.checked()]

    def message_key(self) -> tuple[Any, ...]:
        roles = self.settings["roles"]
        return (
            self.kind,
            tuple(tuple(x) for x in self.fingerprint()),
            int(self.settings["n"]),
            int(self.settings["common"]),
            tuple(roles) if roles else None,
        )

    # ---------------------------------------------------------------- scoring
    def _roles(self) -> set[str]:
        if self.settings["roles"]:
            return set(self.settings["roles"])
        return {r for items in self.checked() for roles in items.roles for r in roles}

    def score_messages(self, texts: pl.DataFrame) -> pl.DataFrame:
        """Per message: its hits (``_hits``: ``benchmark:item`` and the shared words), one automaton pass over
        each distinct text; a hit counts when the benchmark text is compared with the message's role."""
        benchmarks = self.checked()
        override = set(self.settings["roles"] or ())
        code, automaton, shortest = matcher(benchmarks, int(self.settings["n"]), int(self.settings["common"]))
        empty = pl.DataFrame(schema={"text": pl.String, "role": pl.String, "_hits": _HITS})
        if not len(automaton):
            return texts.join(empty, on=["text", "role"], how="left").select("_i", "_hits")
        distinct = texts.get_column("text").drop_nulls().unique().sort()
        encoded = pl.DataFrame({"text": distinct, "_n": encode(distinct, code)})
        # a key is `shortest` benchmark words in a row or more: only such runs of a text reach the automaton
        runs = pl.col("_n").str.extract_all(rf"[^\x00]{{{shortest},}}")
        candidates = encoded.select("text", runs.list.join(_OTHER).alias("_n")).filter(pl.col("_n") != "")
        found_in: dict[str, list[tuple[str, tuple[str, ...], str]]] = {}
        for raw, text in candidates.iter_rows():
            hits = [(f"{b}:{item}", roles, gram) for _end, (gram, hs) in automaton.iter(text) for b, item, roles in hs]
            if hits:
                found_in[raw] = hits
        rows_text, rows_role, rows_hits = [], [], []
        pairs = texts.select("text", "role").unique().filter(pl.col("text").is_in(list(found_in))).sort("text", "role")
        for raw, role in pairs.iter_rows():
            found: dict[str, str] = {}
            for key, roles, gram in found_in[raw]:
                if role in (override or roles):
                    found.setdefault(key, gram)
            if found:
                rows_text.append(raw)
                rows_role.append(role)
                rows_hits.append([f"{k}{_SEP}{found[k]}" for k in sorted(found)])
        hit = pl.DataFrame({"text": rows_text, "role": rows_role, "_hits": rows_hits}, schema=empty.schema)
        return texts.join(hit, on=["text", "role"], how="left", maintain_order="left").select("_i", "_hits")

    def scored_turns(self, turns: pl.DataFrame, wanted: pl.Series) -> pl.DataFrame:
        return super().scored_turns(turns.filter(pl.col("role").is_in(sorted(self._roles()))), wanted)

    def aggregate(
        self, frame: pl.DataFrame, turns: pl.DataFrame, scores: pl.DataFrame, wanted: pl.Series
    ) -> pl.DataFrame:
        """A dialogue's contamination: the items hit by any of its turns, sorted, each with the words it shares
        first (in turn order)."""
        per_row = (
            self.scored_turns(turns, wanted)
            .join(scores, on="_i", how="inner")
            .sort("_row", "_turn")
            .explode("_hits")
            .drop_nulls("_hits")
            .with_columns(pl.col("_hits").str.split_exact(_SEP, 1).struct.rename_fields(["item", "words"]).alias("_h"))
            .unnest("_h")
            .unique(["_row", "item"], keep="first", maintain_order=True)
            .sort("_row", "item")
            .group_by("_row", maintain_order=True)
            .agg(pl.col("item").alias("contamination"), pl.col("words").alias("_contamination_text"))
        )
        none = pl.lit([], dtype=pl.List(pl.String))
        return (
            frame.drop("contamination", "_contamination_text", strict=False)
            .with_row_index("_row")
            .join(per_row, on="_row", how="left", maintain_order="left")
            .with_columns(pl.col("contamination").fill_null(none), pl.col("_contamination_text").fill_null(none))
            .drop("_row")
        )

    def decide(self) -> tuple[pl.Expr, pl.Expr]:
        """Reason ``<benchmark>_overlap`` of the first benchmark (in the spec's order) a dialogue hits; evidence
        every item with its shared words."""
        c = pl.col("contamination")
        first = pl.lit(None, pl.String)
        for name in reversed(self.names):
            first = (
                pl.when(c.list.eval(pl.element().str.starts_with(f"{name}:")).list.any())
                .then(pl.lit(f"{name}_overlap"))
                .otherwise(first)
            )
        shared = pl.concat_str(c.list.first(), pl.lit(" «"), pl.col("_contamination_text").list.first(), pl.lit("»"))
        evidence = pl.format(
            "{}-gram overlap with {}{}",
            pl.lit(self.settings["n"]),
            shared,
            pl.when(c.list.len() > 1)
            .then(pl.format(" and {} more: {}", c.list.len() - 1, c.list.slice(1, 5).list.join(", ")))
            .otherwise(pl.lit("")),
        )
        return pl.when(c.list.len() > 0).then(first).otherwise(pl.lit(None, pl.String)), evidence
