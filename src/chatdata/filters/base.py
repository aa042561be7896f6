"""The filter contract: score in batch (add columns), then decide with thresholds from the spec.

Learned from datatrove's base filter (one small method returns keep/drop with a reason) and Dolma (scores are
columns; thresholds are applied in a separate declarative step so a threshold change needs no rescoring):

- ``score(frame)`` adds the columns named in ``writes`` (e.g. ``lang_detected``, ``lang_score``,
  ``matched_phrases``). It runs once per input and setting of ``score_keys``; the result can be cached.
- ``decide()`` returns two polars expressions over the scored frame: the drop reason (null keeps the row) and the
  evidence string. It may only read columns and ``settings`` entries, never recompute scores.

The runner (:func:`apply_filters`) batches, counts and writes the rejects, so filters stay small.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import orjson
import polars as pl

Level = Literal["message", "dialogue"]


@dataclass(frozen=True)
class FilterSpec:
    """One declared filter instance, as read from ``filters/*.yaml``."""

    name: str
    filter: str
    version: int = 1
    level: Level = "message"
    settings: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "filter": self.filter,
            "version": self.version,
            "level": self.level,
            "settings": self.settings,
            "description": self.description,
        }

    @property
    def sha256(self) -> str:
        return hashlib.sha256(orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS)).hexdigest()


class Filter(ABC):
    """Base class: subclasses set ``kind``, ``level``, ``reads``, ``writes`` and implement ``decide``."""

    kind: ClassVar[str]
    level: ClassVar[Level] = "message"
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    #: settings that change scores (part of the score cache key); every other setting is a decision threshold.
    score_keys: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, spec: FilterSpec) -> None:
        self.spec = spec
        unknown = set(spec.settings) - set(self.defaults)
        if unknown:
            from chatdata.errors import SpecError

            raise SpecError(
                f"{spec.path or spec.name}: unknown setting(s) {sorted(unknown)} for filter '{self.kind}'; "
                f"known: {sorted(self.defaults)}"
            )
        self.settings: dict[str, Any] = {**self.defaults, **spec.settings}

    @property
    def name(self) -> str:
        return self.spec.name

    def bind(self, settings: Any) -> None:
        """Take what a build binds to this filter (its :class:`~chatdata.settings.BuildSettings`); default: nothing."""
        return None

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Add this filter's score columns. Default: none (the decision reads existing columns)."""
        return frame

    @abstractmethod
    def decide(self) -> tuple[pl.Expr, pl.Expr]:
        """Return ``(reason, evidence)`` expressions: a null reason keeps the row."""

    def score_fingerprint(self) -> str:
        key = {k: self.settings.get(k) for k in self.score_keys}
        raw = orjson.dumps({"kind": self.kind, "version": self.spec.version, "key": key}, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(raw).hexdigest()


class MessageFilter(Filter):
    """A dialogue filter that reads text message by message: each message is scored once (``score_messages``,
    cached per :meth:`message_key` by whoever holds the messages), then a dialogue's score columns are an
    aggregation of its turns' message scores (``aggregate``); no dialogue text is ever built to be scored."""

    level: ClassVar[Level] = "dialogue"

    @abstractmethod
    def message_key(self) -> tuple[Any, ...]:
        """What a message's scores depend on (the settings that change them, not which dialogues ask)."""

    @abstractmethod
    def score_messages(self, texts: pl.DataFrame) -> pl.DataFrame:
        """Per message of ``texts`` (``_i``, ``role``, ``text``): ``_i`` and its score columns."""

    @abstractmethod
    def aggregate(
        self, frame: pl.DataFrame, turns: pl.DataFrame, scores: pl.DataFrame, wanted: pl.Series
    ) -> pl.DataFrame:
        """``frame`` with this filter's score columns (``writes``) from its dialogues' ``turns`` (``_row``,
        ``_turn``, ``_i``, ``role``) and the message ``scores`` of the turns :meth:`scored_turns` picks."""

    def wanted(self, frame: pl.DataFrame) -> pl.Series:
        """Which dialogues of ``frame`` need their turns scored (default: all)."""
        return pl.repeat(True, frame.height, eager=True)

    def scored_turns(self, turns: pl.DataFrame, wanted: pl.Series) -> pl.DataFrame:
        """The turns (``_row``, ``_turn``, ``_i``, ``role``) whose messages are scored: the wanted dialogues'."""
        rows = pl.DataFrame({"_row": pl.int_range(len(wanted), dtype=pl.UInt32, eager=True)}).filter(wanted)
        return turns.join(rows, on="_row", how="semi")

    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Score dialogues that hold their ``messages`` (text): their turns as a message table, each distinct
        message scored, then aggregated (what the pipeline does with a shard's messages)."""
        from chatdata.errors import SpecError
        from chatdata.messages import M, explode_lists, row_table

        missing = sorted({"messages", *self.reads} - set(frame.columns))
        if missing:
            raise SpecError(f"filter '{self.name}' needs dialogue columns {missing}; got {frame.columns}")
        table, lists = row_table(frame, ("messages",))
        turns = explode_lists(lists.get_column(f"{M}_messages")).join(
            table.frame.select("_i", "role"), on="_i", how="left", maintain_order="left"
        )
        wanted = self.wanted(frame)
        need = self.scored_turns(turns, wanted).get_column("_i").unique().sort()
        scores = self.score_messages(table.texts(need))
        return self.aggregate(frame, turns, scores, wanted)


REGISTRY: dict[str, type[Filter]] = {}


def register(cls: type[Filter]) -> type[Filter]:
    """Class decorator: make a filter available to specs under ``cls.kind``."""
    REGISTRY[cls.kind] = cls
    return cls


@dataclass
class FilterOutcome:
    """The kept rows (score columns included), the dropped rows with ``reject_filter``/``reject_reason``/
    ``reject_evidence`` columns, and counts of drops by ``filter: reason``."""

    kept: pl.DataFrame
    dropped: pl.DataFrame
    counts: dict[str, int]


def apply_filters(frame: pl.DataFrame, filters: list[Filter], *, score: bool = True) -> FilterOutcome:
    """Score (unless already scored) and decide; the first filter that drops a row owns the reject."""
    scored = frame
    if score:
        for f in filters:
            scored = f.score(scored)
    reasons = []
    for f in filters:
        reason, evidence = f.decide()
        reasons.append(
            pl.when(reason.is_not_null()).then(
                pl.struct(
                    pl.lit(f.name).alias("f"),
                    reason.cast(pl.String).alias("r"),
                    evidence.cast(pl.String).alias("e"),
                )
            )
        )
    if not reasons:
        return FilterOutcome(scored, scored.head(0), {})
    decided = scored.with_columns(pl.coalesce(reasons).alias("_reject"))
    dropped = (
        decided.filter(pl.col("_reject").is_not_null())
        .with_columns(
            pl.col("_reject").struct.field("f").alias("reject_filter"),
            pl.col("_reject").struct.field("r").alias("reject_reason"),
            pl.col("_reject").struct.field("e").alias("reject_evidence"),
        )
        .drop("_reject")
    )
    kept = decided.filter(pl.col("_reject").is_null()).drop("_reject")
    counts: dict[str, int] = {}
    if dropped.height:
        for row in (
            dropped.group_by("reject_filter", "reject_reason").len().sort("reject_filter", "reject_reason").iter_rows()
        ):
            counts[row[1] if row[0] == row[1] else f"{row[0]}: {row[1]}"] = row[2]
    return FilterOutcome(kept, dropped, counts)
