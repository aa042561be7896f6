from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from compare import assert_same_bytes

from chatdata.schema import CHAT_MESSAGE
from chatdata.writer import SplitWriter, payload_bytes, row_payload_bytes, to_arrow, write_split


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


def test_a_split_of_zero_rows_has_the_schema_and_no_row_group(tmp_path: Path) -> None:
    """A 0-row row group makes `datasets` read the file with batch_size 0 (ArrowInvalid); no row group reads fine."""
    from datasets import Features, load_dataset

    schema = to_arrow(_frame(3)).schema
    written = []
    for name in ("a", "b"):
        writer = SplitWriter(tmp_path / name, "test", schema, 0, 0, max_shard_bytes=10**9)
        writer.write(schema.empty_table())
        written.append(writer.close())
    (path,), (again,) = written
    assert path.name == "test-00000-of-00001.parquet"
    meta = pq.read_metadata(path)
    assert (meta.num_rows, meta.num_row_groups) == (0, 0)
    assert pq.read_schema(path).remove_metadata().equals(schema)
    assert_same_bytes(again, path)
    assert not list((tmp_path / "a").glob(".*"))
    ds = load_dataset("parquet", data_files={"test": str(path)}, streaming=True, cache_dir=str(tmp_path / "cache"))
    assert ds["test"].features == Features.from_arrow_schema(schema)
    assert list(ds["test"]) == []


def _skewed(n: int) -> pl.DataFrame:
    """Short rows, then a run of long ones (as sorted rejects are: payload-heavy stages together), then short."""
    sizes = [10] * (n // 2) + [2_000] * (n // 4) + [10] * (n - n // 2 - n // 4)
    return pl.DataFrame({"id": [f"r{i:05d}" for i in range(n)], "payload": ["x" * s for s in sizes]})


def test_row_payload_bytes_sum_to_the_whole_and_depend_on_the_row_alone() -> None:
    table = to_arrow(_frame(60))
    sizes = row_payload_bytes(table)
    assert sizes.sum() == payload_bytes(table)
    assert list(row_payload_bytes(table.slice(17, 9))) == list(sizes[17:26])
    # one row by hand: dialogue_id (6 + 4), score (8), messages (4 + 2 x (role + 4, content + 4))
    row = 7
    content = len("q" * (row % 13)) + len(f"answer {row}")
    assert sizes[row] == 10 + 8 + 4 + len("user") + len("assistant") + 16 + content


@pytest.mark.parametrize("max_bytes", [10**9, 60_000])
def test_skewed_rows_keep_row_groups_and_files_within_their_budgets(tmp_path: Path, max_bytes: int) -> None:
    frame = _skewed(400)
    table = to_arrow(frame)
    budget = 20_000
    whole = SplitWriter(tmp_path / "a", "train", table.schema, table.num_rows, payload_bytes(table),
                        max_shard_bytes=max_bytes, row_group_bytes=budget)  # fmt: skip
    whole.write(table)
    paths = whole.close()
    sizes = row_payload_bytes(table)
    start = 0
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        file_rows = sum(meta.row_group(g).num_rows for g in range(meta.num_row_groups))
        assert sizes[start : start + file_rows].sum() <= max_bytes + sizes.max()
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            assert sizes[start : start + n].sum() <= budget
            start += n
    assert start == table.num_rows
    assert len(paths) == -(-int(sizes.sum()) // max_bytes)  # ceil(payload / max): 1, or 4 for 208,600 bytes
    streamed = SplitWriter(tmp_path / "b", "train", table.schema, table.num_rows, payload_bytes(table),
                           max_shard_bytes=max_bytes, row_group_bytes=budget)  # fmt: skip
    for a, b in ((0, 1), (1, 199), (199, 230), (230, 400)):
        streamed.write(table.slice(a, b - a))
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in streamed.close()]
    assert pl.concat([pl.read_parquet(p) for p in paths]).equals(frame)
    assert not list((tmp_path / "a").glob(".*"))


def test_a_row_larger_than_the_row_group_budget_is_a_group_of_its_own(tmp_path: Path) -> None:
    frame = pl.DataFrame({"payload": ["a" * 10, "b" * 5_000, "c" * 10]})
    table = to_arrow(frame)
    w = SplitWriter(tmp_path, "t", table.schema, 3, payload_bytes(table), max_shard_bytes=10**9, row_group_bytes=100)
    w.write(table)
    (path,) = w.close()
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [1, 1, 1]


def test_nulls_weigh_nothing_whatever_their_type() -> None:
    typed = pa.table({"a": pa.array([None, None], pa.string()), "b": pa.array([None, 5], pa.int64())})
    untyped = pa.table({"a": pa.array([None, None], pa.null()), "b": pa.array([None, 5], pa.int64())})
    assert list(row_payload_bytes(typed)) == list(row_payload_bytes(untyped)) == [0, 8]
    nested = to_arrow(
        pl.DataFrame({"m": [None, [{"role": "user", "content": "hi"}]]}, schema={"m": pl.List(CHAT_MESSAGE)})
    )
    assert list(row_payload_bytes(nested)) == [0, 4 + (4 + 4) + (2 + 4)]
