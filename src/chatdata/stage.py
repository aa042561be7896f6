"""What a stage is and what it runs on: a :class:`Job` (a recipe's source with the build's settings), the
:class:`Stage` declaration, its :class:`StageOut`, and the :class:`Shard` whose messages every stage reads by
position (hashes, special strings and filter scores computed once per message)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl

from chatdata.filters.base import MessageFilter
from chatdata.ledger import StageRecord
from chatdata.messages import (
    IDX,
    M,
    MessageTable,
    R,
    oasst_table,
    prompt_hashes,
    row_table,
    turn_hashes,
)
from chatdata.recipes import Recipe, SourceSpec
from chatdata.schema import INTERNAL_REJECT_SCHEMA, empty_rejects
from chatdata.settings import BuildSettings
from chatdata.text import ShardText
from chatdata.trees import reason_counts

#: a row source's rejected side: positions into its message table
MR = "_mr"
#: what a row stage returns as rejects (the engine makes its dropped rows rejects)
NO_REJECTS = empty_rejects(INTERNAL_REJECT_SCHEMA)


@dataclass(frozen=True)
class Job:
    """One (recipe, source) chain over a shard, with the build's settings."""

    recipe: Recipe
    source: str
    settings: BuildSettings

    @property
    def spec(self) -> SourceSpec:
        return self.recipe.sources[self.source]

    @property
    def unit(self) -> str:
        return self.spec.unit

    @property
    def render(self) -> tuple[str, str] | None:
        """The recipe's rendered text column: (dialect, on_special), or None."""
        r = self.recipe
        return (r.text_format, self.settings.on_special) if r.text_format else None


@dataclass
class StageOut:
    frame: pl.DataFrame
    rejects: pl.DataFrame
    record: StageRecord
    #: per-column mask results (the ``masks`` stage with a tokenizer), merged over shards by the writer
    masks: dict[str, Any] | None = None
    #: the rows a row stage removed, with ``reject_reason``/``reject_evidence``/``reject_filter``: the engine
    #: makes them rejects whose payload is the whole row (so a stage reads only the columns it decides on)
    dropped: pl.DataFrame | None = None


@dataclass(frozen=True)
class Stage:
    """A stage: its name, the columns it reads and writes, what of a job shapes it (``key``), and the function.
    ``reads`` and ``writes`` may name columns a job's frame lacks (a pair has no ``text``); only those present
    count. Its output keeps its input's other columns on a subset of the rows (less ``drops``), unless it
    ``reshapes`` them (flatten: dialogues from messages), when its output holds only what it reads and writes."""

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    key: Callable[[Job], Any]
    run: Callable[[pl.DataFrame, Job, Shard], StageOut]
    #: input columns its output leaves out (structure leaves the text in the shard)
    drops: tuple[str, ...] = ()
    #: its rows are new ones (not a subset of its input's)
    reshapes: bool = False


# ------------------------------------------------------------------------------------------------ the shard


class Shard:
    """One shard's text and what its recipes share: the message table, and each message's hashes, special
    strings and filter scores, computed once per message whichever recipe asks first."""

    def __init__(
        self,
        frame: pl.DataFrame,
        *,
        oasst: bool,
        text_columns: tuple[str, ...] = (),
        ingest_rejected: pl.Series | None = None,
    ) -> None:
        self.oasst = oasst
        #: message ids the ingest rejected (their replies are orphans of a rejected parent, not of a missing one)
        self.ingest_rejected = ingest_rejected
        self.text = ShardText(frame, oasst=oasst)
        if oasst:
            self.table: MessageTable = oasst_table(frame)
            self.lists: pl.DataFrame | None = None
        else:
            self.table, self.lists = row_table(frame, text_columns)
        self._memo: dict[Any, pl.DataFrame] = {}

    def per_message(self, key: Any, idx: pl.Series, compute: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
        """``compute``'s columns for the messages ``idx``, each message computed once per ``key`` in this shard."""
        idx = idx.drop_nulls().unique().cast(IDX)
        have = self._memo.get(key)
        missing = idx if have is None else idx.filter(~idx.is_in(have.get_column("_i").implode()))
        if missing.len() or have is None:
            new = compute(self.table.texts(missing.sort()))
            have = new if have is None else pl.concat([have, new], how="vertical_relaxed")
            self._memo[key] = have
        return have

    def scores(self, f: MessageFilter, idx: pl.Series) -> pl.DataFrame:
        return self.per_message(("score", message_key(f)), idx, f.score_messages)

    def seed(self, key: Any, table: pl.DataFrame) -> None:
        """Per-message results computed earlier (a scores entry of the workspace)."""
        self._memo[key] = table

    def scored(self) -> dict[str, pl.DataFrame]:
        """Every filter's message scores held: message key -> frame."""
        return {key[1]: table for key, table in self._memo.items() if isinstance(key, tuple) and key[0] == "score"}

    def hashes(self, idx: pl.Series) -> pl.DataFrame:
        return self.per_message("hashes", idx, turn_hashes)

    def prompts(self, idx: pl.Series) -> pl.DataFrame:
        return self.per_message("prompts", idx, prompt_hashes)

    def specials(self, specials: list[str], idx: pl.Series) -> pl.DataFrame:
        from chatdata.chat.dialects import special_in

        def compute(texts: pl.DataFrame) -> pl.DataFrame:
            return texts.select("_i", special_in(pl.col("text"), specials).alias("special"))

        return self.per_message(("specials", tuple(specials)), idx, compute)

    def roles(self, turns: pl.DataFrame) -> pl.DataFrame:
        """``turns`` with each message's ``role`` and whether it has no text (``missing``)."""
        info = self.table.frame.select("_i", "role", pl.col("text").is_null().alias("missing"))
        return turns.join(info, on="_i", how="left", maintain_order="left")

    def forget(self) -> None:
        self._memo.clear()


def message_key(f: MessageFilter) -> str:
    """A filter's message key as a string (what names its scores in the workspace)."""
    return hashlib.sha256(orjson.dumps(list(f.message_key()), default=str)).hexdigest()


def lists_of(frame: pl.DataFrame, column: str) -> pl.Series:
    """The message positions of a text column of the rows (``messages``/``chosen``: ``_m``; ``rejected``: a row
    source's ``_mr``, else the chosen prefix and ``_r``)."""
    if column == "rejected":
        if MR in frame.columns:
            return frame.get_column(MR)
        expr = pl.col(M).list.head(pl.col(M).list.len() - 1).list.concat(pl.concat_list(pl.col(R)))
        return frame.select(expr.alias(column)).to_series()
    return frame.get_column(M)


# ------------------------------------------------------------------------------------------------ oasst stages


def stage_record(
    name: str, unit: str, rows_in: int, out: pl.DataFrame, rejects: pl.DataFrame, **kw: Any
) -> StageRecord:
    return StageRecord(name, unit, rows_in, out.height, reason_counts(rejects), **kw)


def decided_record(
    name: str, job: Job, frame: pl.DataFrame, kept: pl.DataFrame, dropped: pl.DataFrame, **kw: Any
) -> StageRecord:
    counts = reason_counts(
        dropped.select(pl.col("reject_reason").alias("reason"), pl.col("reject_filter").alias("filter"))
    )
    return StageRecord(name, job.unit, frame.height, kept.height, counts, **kw)


def decide(frame: pl.DataFrame, reason: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``frame`` by ``reason`` (null keeps the row): the kept rows, and the dropped ones whose
    ``reject_reason`` is the code before the first ``:`` (or `` [``) and whose ``reject_evidence`` is the whole
    reason string."""
    checked = frame.with_columns(reason.alias("reject_evidence"))
    code = pl.col("reject_evidence").str.split(":").list.first().str.split(" [").list.first()
    dropped = checked.filter(pl.col("reject_evidence").is_not_null()).with_columns(
        code.alias("reject_reason"), pl.lit(None, pl.String).alias("reject_filter")
    )
    return checked.filter(pl.col("reject_evidence").is_null()).drop("reject_evidence"), dropped
