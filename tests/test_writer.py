from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from chatdata.schema import CHAT_MESSAGE
from chatdata.writer import SplitWriter, payload_bytes, to_arrow, write_split


def _frame(n: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "dialogue_id": [f"d{i:05d}" for i in range(n)],
            "score": [i / 7 for i in range(n)],
            "messages": [
                [{"role": "user", "content": "q" * (i % 13)}, {"role": "assistant", "content": f"answer {i}"}]
                for i in range(n)
            ],
        },
        schema={"dialogue_id": pl.String, "score": pl.Float64, "messages": pl.List(CHAT_MESSAGE)},
    )


def test_payload_bytes_is_additive_over_any_row_split() -> None:
    table = to_arrow(_frame(101))
    whole = payload_bytes(table)
    assert whole > 0
    for cuts in ([0, 50, 101], [0, 1, 2, 77, 101], [0, 33, 34, 35, 101]):
        parts = [table.slice(a, b - a) for a, b in itertools.pairwise(cuts)]
        assert sum(payload_bytes(p) for p in parts) == whole
        assert payload_bytes(pa.concat_tables(parts)) == whole


@pytest.mark.parametrize("max_bytes", [10**9, 4000, 1500])
def test_streamed_pieces_write_the_same_bytes_as_the_whole(tmp_path: Path, max_bytes: int) -> None:
    frame = _frame(400)
    whole = write_split(frame, tmp_path / "a", "train", max_shard_bytes=max_bytes)
    table = to_arrow(frame)
    writer = SplitWriter(
        tmp_path / "b", "train", table.schema, table.num_rows, payload_bytes(table), max_shard_bytes=max_bytes
    )
    for a, b in ((0, 3), (3, 150), (150, 151), (151, 400)):
        writer.write(table.slice(a, b - a))
    streamed = writer.close()
    assert [p.name for p in whole] == [p.name for p in streamed]
    assert [p.read_bytes() for p in whole] == [p.read_bytes() for p in streamed]
    assert pl.concat([pl.read_parquet(p) for p in streamed]).equals(frame)
    if max_bytes < 10**9:
        assert len(whole) > 1
        assert all(pq.ParquetFile(p).metadata.num_row_groups >= 1 for p in whole)


def test_writer_refuses_more_or_fewer_rows_than_declared(tmp_path: Path) -> None:
    table = to_arrow(_frame(10))
    w = SplitWriter(tmp_path, "t", table.schema, 5, payload_bytes(table), max_shard_bytes=10**9)
    with pytest.raises(ValueError, match="declared with 5 rows"):
        w.write(table)
    w = SplitWriter(tmp_path, "u", table.schema, 12, payload_bytes(table), max_shard_bytes=10**9)
    w.write(table)
    with pytest.raises(ValueError, match="got 10"):
        w.close()


def test_empty_split_is_one_empty_file_with_the_schema(tmp_path: Path) -> None:
    paths = write_split(_frame(0), tmp_path, "test")
    assert [p.name for p in paths] == ["test-00000-of-00001.parquet"]
    assert pq.read_table(paths[0]).num_rows == 0
    assert pq.read_schema(paths[0]).names == ["dialogue_id", "score", "messages"]
