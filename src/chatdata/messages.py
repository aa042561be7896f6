"""A shard's messages, the one place text is read: every dialogue and pair is a list of positions into it.

For an oasst shard the table is the shard file itself (a message per row; its position ``_i`` is the row number,
so the writer finds the text again in the same file). For a source of dialogues or pairs it is those records'
turns, one row per (record, column, turn), in a fixed order the writer can rebuild from the shard file.

Everything text-derived that a dialogue or pair needs is measured here once per message: its sizes as the
writer will store it (:func:`measures`: UTF-8 bytes, JSON-escaped bytes, characters) and 128-bit hashes of the
turn (for exact duplicates) and of the normalised prompt (for leaks). Filters score messages the same way
(:mod:`chatdata.filters`), once per distinct text.
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
#: the measures of one message (see :func:`measures`)
MEASURES = ("nb", "jb", "nc", "null")


@dataclass
class MessageTable:
    """``frame``: one row per message: ``_i`` (its position), ``role`` (user, assistant, system) and ``text``
    (its content, null where a source gave none)."""

    frame: pl.DataFrame

    @property
    def height(self) -> int:
        return self.frame.height

    def texts(self, idx: pl.Series) -> pl.DataFrame:
        """``_i``, ``role`` and ``text`` of the given positions (distinct, in ``idx`` order)."""
        return pl.DataFrame({"_i": idx.cast(IDX)}).join(self.frame, on="_i", how="left", maintain_order="left")


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


def measures(table: MessageTable, idx: pl.Series) -> pl.DataFrame:
    """Per message of ``idx``: ``nb`` (UTF-8 bytes of its text, 0 when null), ``jb`` (its text as a JSON string,
    quotes included: ``null`` is 4), ``nc`` (characters), ``null`` (it has no text), ``role`` (and ``_i``)."""
    return table.texts(idx.drop_nulls().unique()).select(
        "_i",
        "role",
        pl.col("text").str.len_bytes().fill_null(0).cast(pl.Int64).alias("nb"),
        (pl.struct(pl.col("text").alias("t")).struct.json_encode().str.len_bytes() - 6).cast(pl.Int64).alias("jb"),
        pl.col("text").str.len_chars().fill_null(0).cast(pl.Int64).alias("nc"),
        pl.col("text").is_null().alias("null"),
    )


def turn_hashes(table: MessageTable, idx: pl.Series) -> pl.DataFrame:
    """Per message: ``_h1``/``_h2``, a 128-bit hash of its role and text (what makes two dialogues the same),
    and ``_p1``/``_p2`` of its normalised text (lowercase, whitespace folded; a leak is the same first prompt)."""
    from chatdata.splits import normalise_prompt

    rows = table.texts(idx.unique())
    turn = pl.col("role") + pl.lit("\x1f") + pl.col("text")
    prompt = normalise_prompt(pl.col("text"))
    return rows.select(
        "_i",
        *[turn.hash(seed).alias(f"_h{seed}") for seed in SEEDS],
        *[pl.when(prompt.is_not_null()).then(prompt.hash(seed)).alias(f"_p{seed}") for seed in SEEDS],
    )
