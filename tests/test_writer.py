from __future__ import annotations

import errno
import itertools
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from compare import assert_same_bytes
from writes import write_table

from chatdata import writer
from chatdata.schema import CHAT_MESSAGE
from chatdata.writer import SplitWriter, atomic_folder, payload_bytes, row_payload_bytes, to_arrow


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
    whole = write_table(frame, tmp_path / "a", "train", max_file_bytes=max_bytes)
    table = to_arrow(frame)
    writer = SplitWriter(tmp_path / "b", "train", table.schema, table.num_rows, max_file_bytes=max_bytes)
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
    w = SplitWriter(tmp_path, "t", table.schema, 5, max_file_bytes=10**9)
    with pytest.raises(ValueError, match="declared with 5 rows"):
        w.write(table)
    w = SplitWriter(tmp_path, "u", table.schema, 12, max_file_bytes=10**9)
    w.write(table)
    with pytest.raises(ValueError, match="got 10"):
        w.close()


def test_empty_split_is_one_empty_file_with_the_schema(tmp_path: Path) -> None:
    paths = write_table(_frame(0), tmp_path, "test")
    assert [p.name for p in paths] == ["test-00000-of-00001.parquet"]
    assert pq.read_table(paths[0]).num_rows == 0
    assert pq.read_schema(paths[0]).names == ["dialogue_id", "score", "messages"]


def test_a_split_of_zero_rows_has_the_schema_and_no_row_group(tmp_path: Path) -> None:
    """A 0-row row group makes `datasets` read the file with batch_size 0 (ArrowInvalid); no row group reads fine."""
    from datasets import Features, load_dataset

    schema = to_arrow(_frame(3)).schema
    written = []
    for name in ("a", "b"):
        writer = SplitWriter(tmp_path / name, "test", schema, 0, max_file_bytes=10**9)
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
    whole = SplitWriter(tmp_path / "a", "train", table.schema, table.num_rows, max_file_bytes=max_bytes,
                        row_group_bytes=budget)  # fmt: skip
    whole.write(table)
    paths = whole.close()
    sizes = row_payload_bytes(table)
    start = 0
    for i, path in enumerate(paths):
        meta = pq.ParquetFile(path).metadata
        file_rows = sum(meta.row_group(g).num_rows for g in range(meta.num_row_groups))
        assert sizes[start : start + file_rows].sum() <= max_bytes + sizes.max()
        # a row goes to file floor(bytes before it / max_file_bytes): every file but the last is full
        assert (sizes[:start].sum()) // max_bytes == i
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            assert sizes[start : start + n].sum() <= budget
            start += n
    assert start == table.num_rows
    assert len(paths) == (int(sizes.sum() - sizes[-1]) // max_bytes) + 1  # 1, or 4 for 208,600 bytes
    streamed = SplitWriter(tmp_path / "b", "train", table.schema, table.num_rows, max_file_bytes=max_bytes,
                           row_group_bytes=budget)  # fmt: skip
    for a, b in ((0, 1), (1, 199), (199, 230), (230, 400)):
        streamed.write(table.slice(a, b - a))
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in streamed.close()]
    assert pl.concat([pl.read_parquet(p) for p in paths]).equals(frame)
    assert not list((tmp_path / "a").glob(".*"))


def test_a_row_larger_than_the_row_group_budget_is_a_group_of_its_own(tmp_path: Path) -> None:
    frame = pl.DataFrame({"payload": ["a" * 10, "b" * 5_000, "c" * 10]})
    table = to_arrow(frame)
    w = SplitWriter(tmp_path, "t", table.schema, 3, max_file_bytes=10**9, row_group_bytes=100)
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


# ------------------------------------------------------------------------------------------------ atomic_folder


class Killed(BaseException):
    """Stands for the process dying: no `except Exception` handler runs, the kernel drops its flocks."""


def _beside(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir())


def _contents(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def _ours(folder: Path) -> bool:
    """These tests' folders count as chatdata's own (the build record rule has tests of its own below)."""
    return True


def _build(target: Path, files: dict[str, str]) -> None:
    with atomic_folder(target, owned=_ours) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)


def test_atomic_folder_exchanges_the_target_in_one_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "ds"
    _build(target, {"old.txt": "v1", "data/a.parquet": "old rows"})
    assert oct(target.stat().st_mode & 0o777) == "0o755" and _beside(target) == ["ds"]
    renames: list[tuple[str, str]] = []
    real_rename, real_exchange = os.rename, writer.exchange

    def spy_rename(src: object, dst: object) -> None:
        renames.append((str(src), str(dst)))
        real_rename(src, dst)

    def spy_exchange(a: Path, b: Path) -> None:
        real_exchange(a, b)
        assert _contents(b) == {"new.txt": "v2"} and _contents(a)["old.txt"] == "v1"  # both moved in one call

    monkeypatch.setattr(os, "rename", spy_rename)
    monkeypatch.setattr(writer, "exchange", spy_exchange)
    _build(target, {"new.txt": "v2"})
    assert _contents(target) == {"new.txt": "v2"}
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    assert _beside(target) == ["ds"] and not [r for r in renames if r[1] == str(target)]


def test_a_run_killed_after_the_exchange_leaves_the_old_folder_to_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ds"
    _build(target, {"a.txt": "v1"})
    with monkeypatch.context() as m:
        m.setattr(writer, "_discard", lambda path: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            _build(target, {"b.txt": "v2"})
    assert _contents(target) == {"b.txt": "v2"}  # the exchange was done: the new folder is in place
    (left,) = [p for p in tmp_path.iterdir() if p.name.startswith(".ds.tmp-") and p.is_dir()]
    assert _contents(left) == {"a.txt": "v1"} and (tmp_path / f"{left.name}.lock").is_file()  # marked as a run's
    with atomic_folder(target, owned=_ours) as tmp:
        assert not left.exists() and _beside(target) == sorted(["ds", tmp.name, f"{tmp.name}.lock"])
        (tmp / "c.txt").write_text("v3")
    assert _contents(target) == {"c.txt": "v3"} and _beside(target) == ["ds"]


def _no_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(a: Path, b: Path) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(writer, "exchange", unsupported)


def _fail_rename(monkeypatch: pytest.MonkeyPatch, which: str, error: BaseException) -> None:
    """Make the first (target -> old) or the second (tmp -> target) rename of the two-rename swap fail."""
    real = os.rename

    def rename(src: object, dst: object) -> None:
        src, dst = Path(str(src)), Path(str(dst))
        first = src.name == "ds" and dst.name.startswith(".ds.old-")
        second = src.name.startswith(".ds.tmp-") and dst.name == "ds"
        if (which == "first" and first) or (which == "second" and second):
            raise error
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)


def test_the_two_rename_swap_where_exchange_is_unsupported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "ds"
    _build(target, {"a.txt": "v1"})
    _no_exchange(monkeypatch)
    _build(target, {"b.txt": "v2"})
    assert _contents(target) == {"b.txt": "v2"} and _beside(target) == ["ds"]
    assert oct(target.stat().st_mode & 0o777) == "0o755"


def test_a_run_killed_between_the_two_renames_is_finished_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ds"
    _build(target, {"a.txt": "v1"})
    _no_exchange(monkeypatch)
    with monkeypatch.context() as m:
        _fail_rename(m, "second", Killed())
        with pytest.raises(Killed):
            _build(target, {"b.txt": "v2"})
    assert not target.exists() and ".ds.swap.json" in _beside(target)
    assert any(n.startswith(".ds.old-") for n in _beside(target))
    with atomic_folder(target, owned=_ours) as tmp:
        assert _contents(target) == {"b.txt": "v2"}  # the killed run had finished building: its swap is completed
        assert _beside(target) == sorted(["ds", tmp.name, f"{tmp.name}.lock"])
        (tmp / "c.txt").write_text("v3")
    assert _contents(target) == {"c.txt": "v3"} and _beside(target) == ["ds"]


def test_a_run_killed_before_the_first_rename_is_undone_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ds"
    _build(target, {"a.txt": "v1"})
    _no_exchange(monkeypatch)
    with monkeypatch.context() as m:
        _fail_rename(m, "first", Killed())
        with pytest.raises(Killed):
            _build(target, {"b.txt": "v2"})
    assert _contents(target) == {"a.txt": "v1"} and ".ds.swap.json" in _beside(target)
    with atomic_folder(target, owned=_ours) as tmp:
        assert _contents(target) == {"a.txt": "v1"}
        assert _beside(target) == sorted(["ds", tmp.name, f"{tmp.name}.lock"])


def test_a_real_error_between_the_renames_is_undone_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "ds"
    _build(target, {"a.txt": "v1"})
    _no_exchange(monkeypatch)
    _fail_rename(monkeypatch, "second", OSError(errno.EIO, "I/O error"))
    with pytest.raises(OSError, match="I/O error"):
        _build(target, {"b.txt": "v2"})
    assert _contents(target) == {"a.txt": "v1"} and _beside(target) == ["ds"]


def test_a_missing_target_comes_back_from_a_leftover_old_folder(tmp_path: Path) -> None:
    target = tmp_path / "ds"
    old = tmp_path / ".ds.old-x1y2"  # what an interrupted swap of an earlier version left: no target, no journal
    old.mkdir()
    (old / "a.txt").write_text("v1")
    with atomic_folder(target, owned=_ours) as tmp:
        assert _contents(target) == {"a.txt": "v1"} and not old.exists()
        (tmp / "b.txt").write_text("v2")
    assert _contents(target) == {"b.txt": "v2"} and _beside(target) == ["ds"]


def test_dead_runs_leftovers_are_removed_but_a_live_runs_folder_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "ds"
    _build(target, {"a.txt": "v1"})
    for name in (".ds.tmp-dead1", ".ds.tmp-dead2", ".ds.tmp-live", ".ds.old-stale"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "part.parquet").write_text(name)
    (tmp_path / ".ds.tmp-dead2.lock").touch()
    (tmp_path / ".ds.tmp-gone.lock").touch()
    live_lock = tmp_path / ".ds.tmp-live.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
            str(live_lock),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        _build(target, {"b.txt": "v2"})
        # a temp folder with no lock file and content was not made by a run of ours: left alone
        assert _beside(target) == [".ds.tmp-dead1", ".ds.tmp-live", ".ds.tmp-live.lock", "ds"]
        assert _contents(tmp_path / ".ds.tmp-live") == {"part.parquet": ".ds.tmp-live"}
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=60)
    _build(target, {"c.txt": "v3"})  # its process is gone: now it is a dead run's folder
    assert _beside(target) == [".ds.tmp-dead1", "ds"] and _contents(target) == {"c.txt": "v3"}


def test_concurrent_runs_leave_each_others_folders_alone(tmp_path: Path) -> None:
    target = tmp_path / "ds"
    with atomic_folder(target, owned=_ours) as outer:
        (outer / "outer.txt").write_text("outer")
        with atomic_folder(target, owned=_ours) as inner:
            assert _contents(outer) == {"outer.txt": "outer"}
            (inner / "inner.txt").write_text("inner")
        assert _contents(target) == {"inner.txt": "inner"} and outer.exists()
    assert _contents(target) == {"outer.txt": "outer"} and _beside(target) == ["ds"]


def test_a_failing_build_leaves_the_target_and_nothing_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "ds"
    _build(target, {"a.txt": "v1"})
    with pytest.raises(RuntimeError, match="disk full"), atomic_folder(target, owned=_ours) as tmp:
        (tmp / "b.txt").write_text("half")
        raise RuntimeError("disk full")
    assert _contents(target) == {"a.txt": "v1"} and _beside(target) == ["ds"]


@pytest.mark.skipif(writer._syscall_renameat2() is None, reason="no known renameat2 syscall number on this CPU")
def test_exchange_through_the_raw_syscall_when_libc_lacks_renameat2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer, "_libc_renameat2", lambda: None)
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("in a")
    (b / "y").write_text("in b")
    writer.exchange(a, b)
    assert _contents(a) == {"y": "in b"} and _contents(b) == {"x": "in a"}
    with pytest.raises(FileNotFoundError):
        writer.exchange(a, tmp_path / "missing")


# ------------------------------------------------------------------------------------------------ foreign folders


def _record(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "build.json").write_text('{"chatdata_version": "0.1.0"}')


def test_a_folder_chatdata_did_not_write_is_never_replaced(tmp_path: Path) -> None:
    from chatdata.workspace import is_build_folder
    from chatdata.writer import ForeignFolderError

    target = tmp_path / "ds"
    target.mkdir()
    (target / "important.txt").write_text("mine")
    foreign = pytest.raises(ForeignFolderError, match=r"ds was not written by chatdata.*--overwrite")
    with foreign, atomic_folder(target, owned=is_build_folder) as tmp:
        _record(tmp)
    assert _contents(target) == {"important.txt": "mine"} and _beside(target) == ["ds"]
    (target / "build.json").write_text('{"name": "someone else\'s record"}')  # a build.json, not chatdata's
    with pytest.raises(ForeignFolderError), atomic_folder(target, owned=is_build_folder) as tmp:
        _record(tmp)
    assert (target / "important.txt").read_text() == "mine"
    with atomic_folder(target, owned=is_build_folder, overwrite=True) as tmp:  # the user said so
        _record(tmp)
    assert _contents(target) == {"build.json": '{"chatdata_version": "0.1.0"}'} and _beside(target) == ["ds"]


def test_a_foreign_folder_that_appears_during_the_build_is_not_replaced(tmp_path: Path) -> None:
    from chatdata.workspace import is_build_folder
    from chatdata.writer import ForeignFolderError

    target = tmp_path / "ds"
    with pytest.raises(ForeignFolderError), atomic_folder(target, owned=is_build_folder) as tmp:
        _record(tmp)
        target.mkdir()
        (target / "important.txt").write_text("mine")
    assert _contents(target) == {"important.txt": "mine"} and _beside(target) == ["ds"]


def test_an_empty_folder_or_a_chatdata_folder_is_replaced(tmp_path: Path) -> None:
    from chatdata.workspace import is_build_folder

    target = tmp_path / "ds"
    target.mkdir()
    with atomic_folder(target, owned=is_build_folder) as tmp:
        _record(tmp)
        (tmp / "v1.txt").write_text("v1")
    with atomic_folder(target, owned=is_build_folder) as tmp:
        _record(tmp)
        (tmp / "v2.txt").write_text("v2")
    assert sorted(_contents(target)) == ["build.json", "v2.txt"]


def test_old_folders_beside_the_target_are_removed_only_when_chatdata_wrote_them(tmp_path: Path) -> None:
    from chatdata.workspace import is_build_folder

    target = tmp_path / "ds"
    _record(target)
    ours, theirs = tmp_path / ".ds.old-ours", tmp_path / ".ds.old-theirs"
    _record(ours)
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    with atomic_folder(target, owned=is_build_folder) as tmp:
        _record(tmp)
    assert _beside(target) == [".ds.old-theirs", "ds"] and _contents(theirs) == {"notes.txt": "keep me"}
