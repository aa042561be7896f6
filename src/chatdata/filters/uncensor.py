"""The WizardLM "uncensoring" phrase filter, reproduced exactly, in one compiled pass per batch.

Semantics (the original scripts): a text matches phrase ``p`` iff ``p.lower() in text.lower()`` with Python's
``str.lower`` — plain substring, no word boundaries, case-insensitive, every character literal. So "bias"
matches "unbiased", " ESG " needs its spaces, ``f\\*cking`` needs the backslash, and duplicated list entries
count once.

Two presets (``filters/uncensor_wizardlm.yaml``, ``filters/uncensor_starchat_beta.yaml``):

- ``wizardlm``: the original ``wizardlm_clean.py`` tests each response on its own: assistant turns only, one
  text per turn; a dialogue is dropped if any assistant turn matches.
- ``starchat_beta``: StarChat-beta's notebook joins the content of all turns with one space and tests the
  joined text, with the five names it appended (Kilcher, Koepf, Open Assistant, OpenAssistant, LAION).

Implementation: texts are lowercased exactly as Python does (polars lowercasing for pure-ASCII rows, where it
is provably identical; Python ``str.lower`` for rows with any non-ASCII character, since Unicode case tables
differ between versions), then one Aho-Corasick pass (``str.extract_many(overlapping=True)``) over the lowered
phrases reports every occurrence. ``matched_phrases`` lists every distinct phrase of the list that occurs, in
list order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import orjson
import polars as pl

from chatdata.errors import SpecError
from chatdata.filters.base import MessageFilter, register
from chatdata.resources import filters_dir

_NULL = pl.lit(None, dtype=pl.String)
PHRASE_DIR = "phrases"


@dataclass(frozen=True)
class PhraseList:
    """A phrase list from ``filters/phrases/*.json``: the strings in file order (duplicates kept)."""

    name: str
    path: str
    phrases: tuple[str, ...]
    sha256: str

    @property
    def count(self) -> int:
        return len(self.phrases)

    def describe(self) -> dict[str, Any]:
        """Provenance for logs and dataset cards."""
        return {
            "name": self.name,
            "count": self.count,
            "distinct": len(set(self.phrases)),
            "sha256": self.sha256,
        }


def phrases_sha256(phrases: Sequence[str]) -> str:
    """sha256 of the canonical JSON array (UTF-8, no whitespace): formatting-independent, content-exact."""
    return hashlib.sha256(orjson.dumps(list(phrases))).hexdigest()


def resolve_phrase_path(ref: str | Path) -> Path:
    """A bare name (``wizardlm_clean_phrases.json``) is looked up in ``filters/phrases/``; paths are kept."""
    p = Path(ref)
    if p.is_absolute() or p.exists():
        return p
    return filters_dir() / PHRASE_DIR / p


def load_phrase_list(
    ref: str | Path, *, expected_count: int | None = None, expected_sha256: str | None = None
) -> PhraseList:
    """Read a JSON array of non-empty strings; check count and sha256 when given.

    JSON, not a text format, so leading/trailing spaces and backslashes survive exactly, and a missing comma
    is a syntax error instead of two phrases silently glued together.
    """
    path = resolve_phrase_path(ref)
    if not path.is_file():
        raise SpecError(f"{path}: phrase list not found; put a JSON array of strings in filters/phrases/")
    try:
        raw = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise SpecError(f"{path}: invalid JSON ({exc}); a phrase list is one JSON array of strings") from None
    if not isinstance(raw, list):
        raise SpecError(f"{path}: a phrase list must be a JSON array of strings, got {type(raw).__name__}")
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            raise SpecError(f"{path}: entry {i} is {type(item).__name__}, not a string: {item!r}")
        if not item:
            raise SpecError(f"{path}: entry {i} is empty; an empty phrase would match every text")
    phrases = PhraseList(name=path.name, path=str(path), phrases=tuple(raw), sha256=phrases_sha256(raw))
    if expected_count is not None and phrases.count != expected_count:
        raise SpecError(
            f"{path}: {phrases.count} phrases, the spec expects {expected_count} "
            "(a missing or extra comma? an edited list? fix the file or the spec)"
        )
    if expected_sha256 is not None and phrases.sha256 != expected_sha256:
        raise SpecError(
            f"{path}: sha256 {phrases.sha256} differs from the spec's {expected_sha256}; "
            "the list changed: restore it or update the spec deliberately"
        )
    return phrases


def lower_exact(texts: pl.Series) -> pl.Series:
    """``[t.lower() for t in texts]`` (nulls as ""), columnar where that is provably the same.

    ASCII lowercasing is identical everywhere; rows holding any non-ASCII character go through Python's
    ``str.lower`` (polars and CPython may ship different Unicode versions, e.g. for U+A7CB).
    """
    texts = texts.cast(pl.String).fill_null("")
    lowered = texts.str.to_lowercase()
    idx = texts.str.contains(r"[^\x00-\x7F]").arg_true()
    if len(idx):
        fixed = pl.Series([t.lower() for t in texts.gather(idx).to_list()], dtype=pl.String)
        lowered = lowered.scatter(idx, fixed)
    return lowered


class PhraseMatcher:
    """Case-insensitive substring matching of a phrase list, with Python ``str.lower`` semantics."""

    def __init__(self, phrases: Sequence[str]) -> None:
        if not phrases or not all(isinstance(p, str) and p for p in phrases):
            raise SpecError("a phrase matcher needs a non-empty list of non-empty strings")
        self.phrases = tuple(phrases)
        distinct = list(dict.fromkeys(self.phrases))  # first occurrence order, duplicates dropped
        lowered = [p.lower() for p in distinct]
        self.patterns = list(dict.fromkeys(lowered))
        self._table = pl.DataFrame(
            {"_m": lowered, "phrase": distinct, "_order": list(range(len(distinct)))},
            schema={"_m": pl.String, "phrase": pl.String, "_order": pl.Int64},
        )

    @property
    def span(self) -> int:
        """The longest lowered phrase, in characters."""
        return max(len(p) for p in self.patterns)

    def phrases_of(self, hits: pl.DataFrame, n_groups: int) -> pl.Series:
        """``matched_phrases`` per group ``0 .. n_groups - 1`` from distinct (``_row``, lowered phrase ``_m``)
        hits: every phrase of the list whose lowered form was found, in list order."""
        found = (
            hits.join(self._table, on="_m", how="inner")
            .sort("_row", "_order")
            .group_by("_row", maintain_order=True)
            .agg(pl.col("phrase"))
        )
        return (
            pl.DataFrame({"_row": pl.int_range(n_groups, dtype=pl.UInt32, eager=True)})
            .join(found, on="_row", how="left")
            .sort("_row")
            .get_column("phrase")
            .fill_null(pl.lit([], dtype=pl.List(pl.String)))
            .alias("matched_phrases")
        )

    def match(self, texts: pl.Series, groups: pl.Series | None = None, n_groups: int | None = None) -> pl.Series:
        """Distinct matched phrases (list order) per text, or per group when ``groups`` (ints < ``n_groups``)
        says which output row each text belongs to (several turns of one dialogue)."""
        found = lower_exact(texts).str.extract_many(self.patterns, overlapping=True)
        if groups is None:
            groups = pl.int_range(len(texts), dtype=pl.Int64, eager=True)
            n_groups = len(texts)
        elif n_groups is None:
            raise ValueError("n_groups is required with groups")
        hits = (
            pl.DataFrame({"_g": groups.cast(pl.Int64), "_m": found})
            .explode("_m")
            .drop_nulls("_m")
            .unique()
            .join(self._table, on="_m", how="inner")
            .sort("_g", "_order")
            .group_by("_g", maintain_order=True)
            .agg(pl.col("phrase"))
        )
        return (
            pl.DataFrame({"_g": pl.int_range(n_groups, dtype=pl.Int64, eager=True)})
            .join(hits, on="_g", how="left")
            .sort("_g")
            .get_column("phrase")
            .fill_null(pl.lit([], dtype=pl.List(pl.String)))
            .alias("matched_phrases")
        )

    def naive(self, text: str | None) -> list[str]:
        """The definition (for tests): distinct phrases with ``p.lower() in text.lower()``, in list order."""
        low = (text or "").lower()
        return [p for p in dict.fromkeys(self.phrases) if p.lower() in low]


@register
class UncensorFilter(MessageFilter):
    """Drop dialogues containing any phrase of the configured lists (WizardLM / StarChat-beta recipes)."""

    kind = "uncensor_phrases"
    level = "dialogue"
    reads = ("messages",)
    writes = ("matched_phrases",)
    score_keys = ("phrase_lists", "roles", "join_turns", "joiner")
    defaults: ClassVar[dict[str, Any]] = {
        "phrase_lists": [{"file": "wizardlm_clean_phrases.json"}],
        "roles": ["assistant"],
        "join_turns": False,
        "joiner": " ",
        "evidence_max": 3,
    }

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        where = spec.path or spec.name
        s = self.settings
        entries = s["phrase_lists"]
        if not isinstance(entries, list) or not entries:
            raise SpecError(f"{where}: 'phrase_lists' must be a non-empty list of {{file, count, sha256}} entries")
        self.phrase_lists: list[PhraseList] = []
        for entry in entries:
            if isinstance(entry, str):
                entry = {"file": entry}
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("file"), str)
                or set(entry) - {"file", "count", "sha256"}
            ):
                raise SpecError(f"{where}: each phrase list entry needs 'file' (and optional 'count', 'sha256')")
            self.phrase_lists.append(
                load_phrase_list(entry["file"], expected_count=entry.get("count"), expected_sha256=entry.get("sha256"))
            )
        roles = s["roles"]
        if roles != "all" and not (isinstance(roles, list) and roles and all(isinstance(r, str) for r in roles)):
            raise SpecError(f"{where}: 'roles' must be 'all' or a list like [assistant]")
        if not isinstance(s["join_turns"], bool) or not isinstance(s["joiner"], str):
            raise SpecError(f"{where}: 'join_turns' must be true/false and 'joiner' a string")
        if s["join_turns"] and not s["joiner"].isspace():
            raise SpecError(
                f"{where}: 'joiner' must be whitespace such as ' ' (StarChat-beta's) when 'join_turns' is true: turns "
                "are matched one by one and across each joiner, never joined whole"
            )
        if not isinstance(s["evidence_max"], int) or s["evidence_max"] < 1:
            raise SpecError(f"{where}: 'evidence_max' must be a positive integer")
        self.matcher = PhraseMatcher([p for pl_ in self.phrase_lists for p in pl_.phrases])

    def message_key(self) -> tuple[Any, ...]:
        return (self.kind, hashlib.sha256(orjson.dumps(self.matcher.patterns)).hexdigest())

    def score_messages(self, texts: pl.DataFrame) -> pl.DataFrame:
        """Per message: the lowered phrases it contains (``_pats``), and the first and last ``L - 1`` characters of
        its lowered text (``_head``, ``_tail``; ``L`` is the longest phrase) for phrases that cross turns."""
        span = self.matcher.span - 1
        lowered = lower_exact(texts.get_column("text"))
        return pl.DataFrame(
            {
                "_i": texts.get_column("_i"),
                "_pats": lowered.str.extract_many(self.matcher.patterns, overlapping=True).list.unique(),
                "_head": lowered.str.slice(0, span),
                "_tail": lowered.str.slice(-span) if span else lowered.str.slice(0, 0),
            }
        )

    def scored_turns(self, turns: pl.DataFrame, wanted: pl.Series) -> pl.DataFrame:
        roles = self.settings["roles"]
        chosen = turns if roles == "all" else turns.filter(pl.col("role").is_in(list(roles)))
        return super().scored_turns(chosen, wanted)

    def aggregate(
        self, frame: pl.DataFrame, turns: pl.DataFrame, scores: pl.DataFrame, wanted: pl.Series
    ) -> pl.DataFrame:
        """A dialogue's matched phrases: those of its scoped turns, each matched alone; with ``join_turns`` also
        those that cross the joiner between two turns, found in windows of ``L - 1`` characters on each side of
        every joiner (so the turns are never joined whole). Exact: the windows are pieces of the joined text,
        and a phrase of at most ``L`` characters that crosses a joiner lies in the window of the first it
        crosses. (The lowered joined text is the lowered turns joined: Python's lowering looks past a character
        only for the final sigma, which a whitespace joiner does not change.)"""
        chosen = self.scored_turns(turns, wanted).join(scores, on="_i", how="left", maintain_order="left")
        found = [chosen.select("_row", pl.col("_pats").alias("_m"))]
        if self.settings["join_turns"]:
            found.append(self._crossing(chosen))
        hits = pl.concat(found).explode("_m").drop_nulls("_m").unique()
        matched = self.matcher.phrases_of(hits, frame.height)
        return frame.drop([c for c in self.writes if c in frame.columns]).with_columns(matched)

    def _crossing(self, chosen: pl.DataFrame) -> pl.DataFrame:
        """``_row``, ``_m``: the lowered phrases found across joiners (see :meth:`aggregate`)."""
        joiner, span = str(self.settings["joiner"]), self.matcher.span - 1
        ordered = chosen.sort("_row", "_turn").with_columns(
            pl.col("_head").fill_null(""), pl.col("_tail").fill_null("")
        )
        heads = ordered.group_by("_row", maintain_order=True).agg(
            pl.col("_head").str.join(joiner).alias("_ahead"),
            pl.col("_tail"),
            (pl.col("_head").str.len_chars() + len(joiner)).cum_sum().alias("_end"),
        )
        windows = (
            heads.filter(pl.col("_tail").list.len() > 1)
            .with_columns(pl.int_ranges(pl.col("_tail").list.len() - 1, dtype=pl.UInt32).alias("_k"))
            .explode("_k")
            .select(
                "_row",
                pl.concat_str(
                    pl.col("_tail").list.get(pl.col("_k")),
                    pl.lit(joiner),
                    pl.col("_ahead").str.slice(pl.col("_end").list.get(pl.col("_k")), span),
                ).alias("_w"),
            )
        )
        distinct = windows.select(pl.col("_w").unique())
        matched = distinct.with_columns(
            pl.col("_w").str.extract_many(self.matcher.patterns, overlapping=True).alias("_m")
        )
        return windows.join(matched, on="_w", how="left").select("_row", "_m")

    def decide(self) -> tuple[pl.Expr, pl.Expr]:
        n = int(self.settings["evidence_max"])
        m = pl.col("matched_phrases")
        quoted = m.list.head(n).list.eval(pl.concat_str(pl.lit('"'), pl.element(), pl.lit('"'))).list.join(", ")
        more = pl.when(m.list.len() > n).then(pl.format(" (+{} more)", m.list.len() - n)).otherwise(pl.lit(""))
        return (
            pl.when(m.list.len() > 0).then(pl.lit("uncensor_phrase")).otherwise(_NULL),
            pl.concat_str(pl.lit("matched="), quoted, more),
        )

    def describe(self) -> list[dict[str, Any]]:
        """The phrase lists in use (name, count, distinct, sha256), for cards and logs."""
        return [p.describe() for p in self.phrase_lists]


def top_matches(frame: pl.DataFrame, n: int = 20, column: str = "matched_phrases") -> pl.DataFrame:
    """The ``n`` phrases matched in most rows: columns ``phrase``, ``rows``, ``share`` (of all rows)."""
    if column not in frame.columns:
        raise SpecError(f"no column '{column}': score the frame with an uncensor filter first")
    total = max(frame.height, 1)
    return (
        frame.select(pl.col(column).list.unique().alias("phrase"))
        .explode("phrase")
        .drop_nulls("phrase")
        .group_by("phrase")
        .len(name="rows")
        .with_columns((pl.col("rows") / total).alias("share"))
        .sort(["rows", "phrase"], descending=[True, False])
        .head(n)
    )
