"""A shard's messages, the one place text is read: every dialogue and pair is a list of positions into it.

For an oasst shard the table is the shard file itself (a message per row; its position ``_i`` is the row number,
so the writer finds the text again in the same file). For a source of dialogues or pairs it is those records'
turns, one row per (record, column, turn), in a fixed order the writer can rebuild from the shard file.

Everything text-derived that a dialogue or pair needs is computed here once per message: 128-bit hashes of the
turn (for exact duplicates) and of the normalised prompt (for leaks). Filters score messages the same way
(:mod:`chatdata.filters`), once per message.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from chatdata.schema import ROLE_MAP

IDX = pl.UInt32
#: a dialogue's (or pair's chosen side's) messages, in order: positions in the shard's message table
M = "_m"
#: a pair's rejected reply: its rejected side is ``_m`` without the last message, plus this one
R = "_r"
#: a dialogue's or pair's record: its row in the shard file (sources of dialogues or pairs)
REC = "_rec"
#: the columns a row of a dialogue or pair source takes its text from, and what the message table holds of each
ROW_TEXT = ("messages", "chosen", "rejected")
#: hash seeds of the 128-bit keys (two 64-bit halves)
SEEDS = (1, 2)
#: columns of a dialogue or pair row that hold text, in the order the writer fills them: in the workspace they are
#: null placeholders (see :mod:`chatdata.text`)
TEXT_COLUMNS = ("prompt", "chosen", "rejected", "messages", "text")


def placeholders(frame: pl.DataFrame) -> list[str]:
    """The text columns of ``frame`` that wait for their text (null placeholders), in :data:`TEXT_COLUMNS` order."""
    return [c for c in TEXT_COLUMNS if c in frame.columns and frame.schema[c] == pl.Null]


def normalise_prompt(expr: pl.Expr) -> pl.Expr:
    """A prompt's text as the leak check compares it: lowercase, whitespace folded, stripped."""
    return expr.str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


@dataclass
class MessageTable:
    """``frame``: one row per message: ``_i`` (its position), ``role`` (user, assistant, system) and ``text``
    (its content, null where a source gave none)."""

    frame: pl.DataFrame

    @property
    def height(self) -> int:
        return self.frame.height

    def texts(self, idx: pl.Series) -> pl.DataFrame:
        """``_i``, ``role`` and ``text`` of the given positions, in ``idx`` order (a position is the row number)."""
        return self.frame[idx.cast(IDX)]


def oasst_table(shard: pl.DataFrame) -> MessageTable:
    """An oasst shard's message table: its rows in file order, roles in chat terms."""
    return MessageTable(
        shard.select(
            pl.int_range(pl.len(), dtype=IDX).alias("_i"),
            pl.col("role").replace_strict(ROLE_MAP, default=None, return_dtype=pl.String).alias("role"),
            pl.col("text"),
        )
    )


def row_table(shard: pl.DataFrame, columns: tuple[str, ...]) -> tuple[MessageTable, pl.DataFrame]:
    """The turns of a dialogue or pair source's records (``columns`` of :data:`ROW_TEXT`, in that order) as a
    message table, and per record and column the list of its turns' positions (``_rec``, then ``_m_<column>``)."""
    parts, offset = [], 0
    lists = pl.DataFrame({REC: pl.int_range(shard.height, dtype=IDX, eager=True)})
    for column in columns:
        turns = (
            shard.select(pl.int_range(pl.len(), dtype=IDX).alias(REC), pl.col(column).alias("_t"))
            .with_columns(pl.col("_t").list.len().fill_null(0).cast(IDX).alias("_n"))
            .explode("_t")
            .filter(pl.col("_n") > 0)
            .with_row_index("_i", offset=offset)
            .with_columns(pl.col("_i").cast(IDX))
        )
        offset += turns.height
        parts.append(turns.select("_i", pl.col("_t").struct.field("role"), pl.col("_t").struct.field("content")))
        grouped = turns.group_by(REC, maintain_order=True).agg(pl.col("_i").alias(f"{M}_{column}"))
        lists = lists.join(grouped, on=REC, how="left", maintain_order="left").with_columns(
            pl.col(f"{M}_{column}").fill_null(pl.lit([], dtype=pl.List(IDX)))
        )
    frame = (
        pl.concat(parts).rename({"content": "text"})
        if parts
        else pl.DataFrame(schema={"_i": IDX, "role": pl.String, "text": pl.String})
    )
    return MessageTable(frame), lists


def explode_lists(lists: pl.Series) -> pl.DataFrame:
    """``_row``, ``_turn``, ``_i`` for every position of every list, in row then turn order (an empty or null
    list gives no row)."""
    return (
        pl.DataFrame({"_i": lists.cast(pl.List(IDX))})
        .with_row_index("_row")
        .with_columns(pl.int_ranges(pl.col("_i").list.len().fill_null(0), dtype=IDX).alias("_turn"))
        .explode("_i", "_turn")
        .drop_nulls("_turn")
        .select("_row", "_turn", "_i")
    )


def turn_hashes(texts: pl.DataFrame) -> pl.DataFrame:
    """Per message (``_i``, ``role``, ``text``): ``_h1``/``_h2``, a 128-bit hash of its role and text (what makes
    two dialogues, or two replies, the same)."""
    turn = pl.struct("role", "text")
    return texts.select("_i", *[turn.hash(seed).alias(f"_h{seed}") for seed in SEEDS])


def prompt_hashes(texts: pl.DataFrame) -> pl.DataFrame:
    """Per message: ``_p1``/``_p2``, a 128-bit hash of its normalised text (lowercase, whitespace folded): a leak
    is the same first prompt in train and test."""
    prompt = normalise_prompt(pl.col("text"))
    return texts.select(
        "_i", *[pl.when(prompt.is_not_null()).then(prompt.hash(seed)).alias(f"_p{seed}") for seed in SEEDS]
    )
