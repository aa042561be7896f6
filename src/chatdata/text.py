"""The text of a shard's rows and rejects, gathered only when they are written.

A stored row (or reject) holds no text: its text columns (:data:`TEXT_COLUMNS`) are null placeholders beside the
positions they come from, ``_m``/``_r`` into an oasst shard (see :mod:`chatdata.messages`) or ``_rec``, the record
of a source of dialogues or pairs. :class:`ShardText` is one shard's text:

- :meth:`ShardText.fill`: the rows with their text columns gathered (Arrow ``take`` on the shard's columns, read
  from the shard file once);
- :meth:`ShardText.payloads`: the finished JSON payloads of rejects (a message's row, or a dialogue's JSON with its
  text fields filled).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from chatdata.messages import IDX, REC, TEXT_COLUMNS, M, R, placeholders
from chatdata.schema import CHAT_MESSAGE, MESSAGE_SCHEMA, ROLE_MAP

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


def positions(columns: Sequence[str], column: str) -> pl.Expr:
    """The message positions a text column is made of, for an oasst row (``_m``, ``_r``)."""
    if column == "rejected":
        return pl.col(M).list.head(pl.col(M).list.len() - 1).list.concat(pl.concat_list(pl.col(R)))
    if column == "prompt":
        return pl.concat_list(pl.col(M).list.get(-2, null_on_oob=True))
    return pl.col(M)


class ShardText:
    """One shard's text: an oasst shard's messages or a row source's records, from the shard file (``path``, read
    column group by column group when first needed: roles and texts, a message's payload columns, a record's text
    columns) or from a frame already in memory (the shard phase)."""

    def __init__(self, source: Path | pl.DataFrame, *, oasst: bool, render: Any = None) -> None:
        self._path = source if isinstance(source, Path) else None
        self._frame = source if isinstance(source, pl.DataFrame) else None
        self.oasst = oasst
        #: (dialect, on_special) of a recipe's rendered ``text`` column (guanaco), or None
        self.render = render
        self._groups: dict[tuple[str, ...], pa.Table] = {}
        self._roles: pa.Array | None = None
        self._message_json: pl.DataFrame | None = None

    def read(self, columns: Sequence[str]) -> pa.Table:
        """These columns of the shard as one Arrow table (read once per column group)."""
        key = tuple(columns)
        if key not in self._groups:
            if self._frame is not None:
                table = self._frame.select(list(columns)).to_arrow()
            else:
                import pyarrow.ipc as ipc

                assert self._path is not None
                with pa.OSFile(str(self._path)) as source:
                    reader = ipc.open_file(source)
                    fields = [reader.schema.get_field_index(c) for c in columns]
                    reader = ipc.open_file(source, options=ipc.IpcReadOptions(included_fields=fields))
                    table = reader.read_all()
            self._groups[key] = table.combine_chunks()
        return self._groups[key]

    def _columns(self) -> tuple[pa.Array, pa.Array]:
        """The chat roles and texts of an oasst shard as Arrow arrays."""
        table = self.read(("role", "text"))
        if self._roles is None:
            roles = pl.from_arrow(table.column("role"))
            assert isinstance(roles, pl.Series)
            self._roles = roles.replace_strict(ROLE_MAP, default=None, return_dtype=pl.String).to_arrow()
        return self._roles, table.column("text").chunk(0) if table.num_rows else pa.array([], pa.large_string())

    # ------------------------------------------------------------------------------------------- text

    def fill(self, frame: pl.DataFrame, columns: list[str] | None = None) -> pl.DataFrame:
        """``frame`` with its text placeholders (or ``columns``) gathered from this shard."""
        columns = placeholders(frame) if columns is None else columns
        if not columns:
            return frame
        if not self.oasst:
            names = [c for c in TEXT_COLUMNS if c in columns and c in self._names()]
            rec = frame.get_column(REC).cast(IDX).to_arrow()
            values = pl.from_arrow(self.read(names).take(rec))
            assert isinstance(values, pl.DataFrame)
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

    def _names(self) -> list[str]:
        if self._frame is not None:
            return self._frame.columns
        import pyarrow.ipc as ipc

        assert self._path is not None
        with pa.OSFile(str(self._path)) as source:
            return ipc.open_file(source).schema.names

    def _strings(self, idx: pl.Series) -> pl.Series:
        _, texts = self._columns()
        out = pl.from_arrow(texts.take(idx.cast(IDX).to_arrow()))
        assert isinstance(out, pl.Series)
        return out.cast(pl.String)

    def _turns(self, lists: pl.Series) -> pl.Series:
        """``list<struct{role, content}>`` per list of positions (Arrow take: no join, no sort)."""
        roles, texts = self._columns()
        arrow = lists.cast(pl.List(IDX)).to_arrow()
        if isinstance(arrow, pa.ChunkedArray):
            arrow = arrow.combine_chunks()
        flat = arrow.flatten()
        role, content = roles.take(flat), texts.take(flat)
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
            rows = rejects[idx].select("_i", "message_tree_id")
            self.prefetch(rows)
            assert self._message_json is not None
            found = rows.join(self._message_json, on="_i", how="left", maintain_order="left")
            out = out.scatter(idx, found.get_column("_json"))
        if fill is not None and fill.any():
            idx = fill.arg_true()
            rows = rejects[idx]
            out = out.scatter(idx, self._filled_payloads(rows))
        return out

    def seed_messages(self, built: pl.DataFrame | None) -> None:
        """Payloads of rejected messages built earlier (``_i``, ``_json``: a workspace payloads entry)."""
        if built is None or not built.height:
            return
        known = self._message_json
        self._message_json = built if known is None else pl.concat([known, built.join(known, on="_i", how="anti")])

    @property
    def message_payloads(self) -> pl.DataFrame | None:
        """Every rejected message's payload built or seeded so far (``_i``, ``_json``)."""
        return self._message_json

    def prefetch(self, rows: pl.DataFrame) -> None:
        """Build the payloads of rejected messages (``_i``, ``message_tree_id``) not built yet, all in one take:
        a message is rejected at one stage, so its payload is the same wherever it is asked for."""
        known = self._message_json
        missing = rows.drop_nulls("_i").unique("_i")
        if known is not None:
            missing = missing.join(known, on="_i", how="anti")
        if not missing.height:
            return
        missing = missing.sort("_i")
        taken = pl.from_arrow(self.read(PAYLOAD_COLUMNS).take(missing.get_column("_i").to_arrow()))
        assert isinstance(taken, pl.DataFrame)
        taken = taken.with_columns(missing.get_column("message_tree_id"))
        built = missing.select("_i").with_columns(
            taken.select(pl.struct(list(PAYLOAD_COLUMNS)).struct.json_encode().alias("_json"))
        )
        self._message_json = built if known is None else pl.concat([known, built])

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


__all__ = ["TEXT_COLUMNS", "ShardText", "placeholders", "positions"]
