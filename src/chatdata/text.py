"""The text of a shard's rows and rejects, measured without building it and gathered only when written.

A stored row (or reject) holds no text: its text columns (:data:`TEXT_COLUMNS`) are null placeholders beside the
positions they come from, ``_m``/``_r`` into an oasst shard (see :mod:`chatdata.messages`) or ``_rec``, the record
of a source of dialogues or pairs. :class:`ShardText` is one shard's text:

- :meth:`ShardText.sizes`: what each row's text will weigh in Parquet and in a reject's JSON payload, from each
  message's measures (so the writer knows a table's bytes before its first row);
- :meth:`ShardText.fill`: the rows with their text columns gathered (Arrow ``take`` on the shard's columns);
- :meth:`ShardText.payloads`: the finished JSON payloads of rejects (a message's row, or a dialogue's JSON with its
  text fields filled).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from chatdata.messages import IDX, MEASURES, REC, M, MessageTable, R, measures, oasst_table
from chatdata.schema import CHAT_MESSAGE, MESSAGE_SCHEMA

#: columns of a dialogue or pair row that hold text, in the order the writer fills them
TEXT_COLUMNS = ("prompt", "chosen", "rejected", "messages", "text")
TURNS = pl.List(CHAT_MESSAGE)
TEXT_TYPES: dict[str, pl.DataType] = {
    "prompt": pl.String(),
    "chosen": TURNS,
    "rejected": TURNS,
    "messages": TURNS,
    "text": pl.String(),
}
#: a message's row as its reject payload: the canonical columns but where it came from
PAYLOAD_COLUMNS = tuple(c for c in MESSAGE_SCHEMA if not c.startswith("source"))


def placeholders(frame: pl.DataFrame) -> list[str]:
    """The text columns of ``frame`` that wait for their text (null placeholders), in :data:`TEXT_COLUMNS` order."""
    return [c for c in TEXT_COLUMNS if c in frame.columns and frame.schema[c] == pl.Null]


def positions(columns: Sequence[str], column: str) -> pl.Expr:
    """The message positions a text column is made of, for an oasst row (``_m``, ``_r``)."""
    if column == "rejected":
        return pl.col(M).list.head(pl.col(M).list.len() - 1).list.concat(pl.concat_list(pl.col(R)))
    if column == "prompt":
        return pl.concat_list(pl.col(M).list.get(-2, null_on_oob=True))
    return pl.col(M)


class ShardText:
    """One shard's text: an oasst shard's messages (``table``) or a row source's records (``records``)."""

    def __init__(self, shard: pl.DataFrame, *, oasst: bool, render: Any = None) -> None:
        self.shard, self.oasst = shard, oasst
        self.table: MessageTable | None = oasst_table(shard) if oasst else None
        #: (dialect, on_special) of a recipe's rendered ``text`` column (guanaco), or None
        self.render = render

    # ------------------------------------------------------------------------------------------- sizes

    def sizes(self, frame: pl.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per row of ``frame``: the Parquet bytes of its text ``columns`` (as :func:`~chatdata.writer.
        row_payload_bytes` counts them) and the bytes of their JSON values (what replaces each ``null`` in a
        payload)."""
        n = frame.height
        arrow, json = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        if not columns or not n:
            return arrow, json
        if not self.oasst:
            filled = self.fill(frame.select(*columns, REC), columns)
            from chatdata.writer import row_payload_bytes, to_arrow

            for column in columns:
                arrow += row_payload_bytes(to_arrow(filled.select(column)))
                encoded = filled.select(pl.struct(pl.col(column).alias("v")).struct.json_encode().str.len_bytes())
                json += encoded.to_series().to_numpy().astype(np.int64) - 6
            return arrow, json
        for column in columns:
            a, j = self._oasst_sizes(frame, column)
            arrow += a
            json += j
        return arrow, json

    def _oasst_sizes(self, frame: pl.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
        assert self.table is not None
        lists = frame.select(positions(frame.columns, column).alias("_p")).to_series()
        from chatdata.messages import explode_lists

        turns = explode_lists(lists)
        per = measures(self.table, turns.get_column("_i"))
        if column == "text":
            per = self._rendered_measures(per)
        turns = turns.join(per, on="_i", how="left", maintain_order="left")
        rows = pl.DataFrame({"_row": pl.int_range(frame.height, dtype=IDX, eager=True)})
        if column == "prompt":
            agg = turns.group_by("_row").agg((pl.col("nb").first() + 4).alias("a"), pl.col("jb").first().alias("j"))
            out = rows.join(agg, on="_row", how="left").select(pl.col("a").fill_null(0), pl.col("j").fill_null(4))
        elif column == "text":
            agg = turns.group_by("_row").agg(pl.col("nb").sum().alias("a"), pl.col("jb").sum().alias("j"))
            out = rows.join(agg, on="_row", how="left").select(
                (pl.col("a").fill_null(0) + 4).alias("a"), (pl.col("j").fill_null(0) + 2).alias("j")
            )
            if "_text_null" in frame.columns:
                null = frame.get_column("_text_null").fill_null(False)
                out = out.with_columns(
                    pl.when(null).then(0).otherwise(pl.col("a")).alias("a"),
                    pl.when(null).then(4).otherwise(pl.col("j")).alias("j"),
                )
        else:  # a list of {role, content}
            role = pl.col("role").str.len_bytes().fill_null(0)
            content = pl.when(pl.col("null")).then(0).otherwise(pl.col("nb") + 4)
            agg = turns.group_by("_row").agg(
                (role + 4 + content).sum().alias("a"),
                (22 + role + pl.col("jb")).sum().alias("j"),
                pl.len().alias("k"),
            )
            out = rows.join(agg, on="_row", how="left").select(
                (pl.col("a").fill_null(0) + 4).alias("a"),
                (pl.col("j").fill_null(0) + 2 + (pl.col("k").fill_null(0) - 1).clip(lower_bound=0)).alias("j"),
            )
        return out.get_column("a").to_numpy().astype(np.int64), out.get_column("j").to_numpy().astype(np.int64)

    def _rendered_measures(self, per: pl.DataFrame) -> pl.DataFrame:
        """Measures of each message's piece of the rendered ``text``: header, lead, its content (escaped when
        ``on_special`` escapes), end and separator; ``jb`` without quotes."""
        from chatdata.chat.dialects import _escape_expr, get_dialect

        dialect, on_special = self.render
        d = get_dialect(dialect)
        assert self.table is not None
        content = pl.col("text")
        if on_special == "escape":
            content = _escape_expr(content, d.specials)
        texts = self.table.texts(per.get_column("_i")).with_columns(content.alias("text"))
        pieces = texts.select(
            "_i",
            pl.concat_str(
                pl.col("role").replace_strict(dict(d.headers), default="", return_dtype=pl.String),
                pl.lit(d.lead),
                pl.col("text").fill_null(""),
                pl.lit(d.end + d.sep),
            ).alias("_piece"),
        )
        return pieces.select(
            "_i",
            pl.col("_piece").str.len_bytes().cast(pl.Int64).alias("nb"),
            (pl.struct(pl.col("_piece").alias("t")).struct.json_encode().str.len_bytes() - 8)
            .cast(pl.Int64)
            .alias("jb"),
        )

    def payload_sizes(self, rejects: pl.DataFrame) -> np.ndarray:
        """Bytes of each reject's finished payload (built here to be measured; the writer builds it again)."""
        return self.payloads(rejects).str.len_bytes().fill_null(0).cast(pl.Int64).to_numpy()

    # ------------------------------------------------------------------------------------------- text

    def fill(self, frame: pl.DataFrame, columns: list[str] | None = None) -> pl.DataFrame:
        """``frame`` with its text placeholders (or ``columns``) gathered from this shard."""
        columns = placeholders(frame) if columns is None else columns
        if not columns:
            return frame
        if not self.oasst:
            taken = self.shard.select([c for c in columns if c in self.shard.columns])
            rec = frame.get_column(REC)
            values = taken[rec] if rec.null_count() == 0 else _take_nullable(taken, rec)
            return frame.with_columns(values.get_column(c).cast(TEXT_TYPES[c]).alias(c) for c in values.columns)
        filled = {}
        for column in columns:
            lists = frame.select(positions(frame.columns, column).alias("_p")).to_series()
            if column == "prompt":
                filled[column] = self._strings(lists.list.first())
            elif column == "text":
                null = frame.get_column("_text_null") if "_text_null" in frame.columns else None
                filled[column] = self._rendered(lists, null)
            else:
                filled[column] = self._turns(lists)
        return frame.with_columns(pl.Series(name, values) for name, values in filled.items())

    def _strings(self, idx: pl.Series) -> pl.Series:
        assert self.table is not None
        return self.table.texts(idx).get_column("text")

    def _turns(self, lists: pl.Series) -> pl.Series:
        """``list<struct{role, content}>`` per list of positions (Arrow take: no join, no sort)."""
        assert self.table is not None
        arrow = lists.cast(pl.List(IDX)).to_arrow()
        if isinstance(arrow, pa.ChunkedArray):
            arrow = arrow.combine_chunks()
        flat = arrow.flatten()
        role = self.table.frame.get_column("role").to_arrow().take(flat)
        content = self.table.frame.get_column("text").to_arrow().take(flat)
        structs = pa.StructArray.from_arrays([role, content], names=["role", "content"])
        offsets = pc.subtract(arrow.offsets, arrow.offsets[0]) if len(arrow) else arrow.offsets
        out = pa.ListArray.from_arrays(offsets, structs, mask=arrow.is_null() if arrow.null_count else None)
        return pl.Series(out).cast(TURNS)

    def _rendered(self, lists: pl.Series, null: pl.Series | None) -> pl.Series:
        from chatdata.chat.dialects import _escape_expr, get_dialect

        dialect, on_special = self.render
        d = get_dialect(dialect)
        turns = self._turns(lists)
        content = pl.element().struct.field("content").fill_null("")
        if on_special == "escape":
            content = _escape_expr(content, d.specials)
        header = pl.element().struct.field("role").replace_strict(dict(d.headers), default="", return_dtype=pl.String)
        text = pl.DataFrame({"t": turns}).select(
            pl.col("t").list.eval(pl.concat_str(header, pl.lit(d.lead), content, pl.lit(d.end + d.sep))).list.join("")
        )
        out = text.to_series()
        if null is not None:
            out = pl.select(pl.when(null.fill_null(False)).then(pl.lit(None, pl.String)).otherwise(out)).to_series()
        return out.alias("text")

    # ------------------------------------------------------------------------------------------- payloads

    def payloads(self, rejects: pl.DataFrame) -> pl.Series:
        """Each reject's payload: as stored; for a message (``_i``) its shard row as JSON (with the reject's
        ``message_tree_id``, the tree structure assigned it); for a dialogue or pair (``_fill``) its stored JSON
        with the listed text fields filled."""
        payload = rejects.get_column("payload")
        if not rejects.height:
            return payload
        message = rejects.get_column("_i").is_not_null() if "_i" in rejects.columns else None
        fill = rejects.get_column("_fill").list.len().fill_null(0) > 0 if "_fill" in rejects.columns else None
        out = payload
        if message is not None and message.any():
            idx = message.arg_true()
            rows = rejects[idx]
            shard = self.shard[rows.get_column("_i")].with_columns(rows.get_column("message_tree_id"))
            encoded = shard.select(pl.struct(list(PAYLOAD_COLUMNS)).struct.json_encode()).to_series()
            out = out.scatter(idx, encoded)
        if fill is not None and fill.any():
            idx = fill.arg_true()
            rows = rejects[idx]
            out = out.scatter(idx, self._filled_payloads(rows))
        return out

    def _filled_payloads(self, rows: pl.DataFrame) -> pl.Series:
        names = sorted({c for f in rows.get_column("_fill").to_list() for c in f}, key=TEXT_COLUMNS.index)
        refs = [c for c in (M, R, REC, "_text_null") if c in rows.columns]
        filled = self.fill(rows.select(*[pl.lit(None, pl.Null).alias(c) for c in names], *refs), names)
        values = rows.select("payload", "_fill").with_columns(
            pl.struct(filled.get_column(c).alias("v")).struct.json_encode().str.slice(5).str.head(-1).alias(f"_v{c}")
            for c in names
        )
        for c in names:
            field = pl.lit(f'"{c}":')
            values = values.with_columns(
                pl.when(pl.col("_fill").list.contains(c))
                .then(pl.col("payload").str.replace(f'"{c}":null', field + pl.col(f"_v{c}"), literal=True, n=1))
                .otherwise(pl.col("payload"))
                .alias("payload")
            )
        return values.get_column("payload")


def _take_nullable(frame: pl.DataFrame, idx: pl.Series) -> pl.DataFrame:
    """``frame``'s rows at ``idx``; a null index gives a row of nulls."""
    return (
        frame.with_row_index("_rec")
        .join(pl.DataFrame({"_rec": idx.cast(pl.UInt32)}), on="_rec", how="right", maintain_order="right")
        .drop("_rec")
    )


def shard_frame(path: Path) -> pl.DataFrame:
    """A shard file (memory-mapped: only what is taken is read)."""
    import pyarrow.ipc as ipc

    with pa.memory_map(str(path)) as source:
        table = ipc.open_file(source).read_all()
    return pl.from_arrow(table)  # type: ignore[return-value]


__all__ = ["MEASURES", "TEXT_COLUMNS", "ShardText", "placeholders", "positions", "shard_frame"]
