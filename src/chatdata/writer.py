"""Write Parquet deterministically and publish a dataset folder atomically.

Parquet goes through pyarrow with zstd, content-defined chunking and a page index (what datasets >= 4.1 writes, so
a re-push to the Hub's Xet storage uploads only changed chunks), row groups of at most ~100 MB, and files no larger
than ``max_file_bytes`` (the ``--max-shard-size`` setting: ``datasets`` calls a dataset's Parquet files shards;
in chatdata a shard is a tree-shard of the engine). The same frame always gives the same bytes.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from chatdata.errors import ChatdataError

try:
    import fcntl
except ImportError:  # Windows: no flock; temp folders of dead runs are then left alone
    fcntl = None  # type: ignore[assignment]

ROW_GROUP_BYTES = 16 * 1024 * 1024


def _standard_type(t: pa.DataType) -> pa.DataType:
    """Large (64-bit offset) string/list types as the plain ones the Hub's tools expect."""
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_list(t) or pa.types.is_list(t) or pa.types.is_list_view(t):
        return pa.list_(_standard_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _standard_type(f.type), f.nullable) for f in t])
    return t


def to_arrow(frame: pl.DataFrame) -> pa.Table:
    table = frame.to_arrow()
    schema = pa.schema([pa.field(f.name, _standard_type(f.type), f.nullable) for f in table.schema])
    return table.cast(schema).replace_schema_metadata(None)


def _numpy(array: pa.Array) -> np.ndarray:
    """An Arrow array as numpy, nulls as 0, through polars (pyarrow's own conversion and scalars import pandas,
    0.4 s of a small build)."""
    series = pl.from_arrow(array)
    return (series.fill_null(0) if series.null_count() else series).to_numpy()  # type: ignore[union-attr]


def row_payload_bytes(data: pa.Table | pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Bytes of values per row (strings' bytes plus 4 for the offset, fixed-width values, nested leaves plus 4
    per list, nothing for a null): the size measure that cuts files and row groups. A row's size depends on
    that row alone, so any split of the rows into pieces gives the same sizes."""
    if isinstance(data, pa.Table):
        total = np.zeros(data.num_rows, dtype=np.int64)
        for column in data.columns:
            total += row_payload_bytes(column)
        return total
    if isinstance(data, pa.ChunkedArray):
        parts = [row_payload_bytes(c) for c in data.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    t, n = data.type, len(data)
    if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        sizes = _numpy(pc.binary_length(data)).astype(np.int64) + 4
    elif pa.types.is_list(t) or pa.types.is_large_list(t):
        sizes = np.full(n, 4, dtype=np.int64)
        values = data.flatten()
        if len(values):
            parents = _numpy(pc.list_parent_indices(data))
            sizes += np.bincount(parents, weights=row_payload_bytes(values), minlength=n).astype(np.int64)
    elif pa.types.is_struct(t):
        sizes = np.zeros(n, dtype=np.int64)
        for field in data.flatten():  # fields carry the struct's nulls
            sizes += row_payload_bytes(field)
    elif pa.types.is_null(t):
        return np.zeros(n, dtype=np.int64)
    elif pa.types.is_boolean(t):
        sizes = np.ones(n, dtype=np.int64)
    else:
        try:
            sizes = np.full(n, t.byte_width, dtype=np.int64)
        except ValueError:
            raise TypeError(f"no row size for Arrow type {t}") from None
    # a null holds no value whatever its type, so a column that is all-null in one piece (typed Null there)
    # weighs the same as in the whole table
    if data.null_count:
        sizes[~_numpy(pc.is_valid(data))] = 0
    return sizes


def payload_bytes(data: pa.Table | pa.ChunkedArray | pa.Array) -> int:
    """Bytes of values of all rows (:func:`row_payload_bytes` summed): additive over rows, so the totals of the
    pieces of a stream add up to the whole's."""
    return int(row_payload_bytes(data).sum())


def part_path(folder: Path, split: str, index: int) -> Path:
    """Where file ``index`` of a split is written while the number of files is not known yet."""
    return folder / f".{split}-{index:05d}.parquet.part"


def name_parts(folder: Path, split: str, parts: list[Path]) -> list[Path]:
    """Rename a split's written parts, in order, to the Hub's ``{split}-0000i-of-0000N.parquet``."""
    paths = []
    for i, part in enumerate(parts):
        path = folder / f"{split}-{i:05d}-of-{len(parts):05d}.parquet"
        os.replace(part, path)
        paths.append(path)
    return paths


class SplitWriter:
    """Write one split as ``{split}-0000i-of-0000N.parquet`` from tables fed in order, in bounded memory.

    Rows are cut by their :func:`row_payload_bytes`, so skewed rows (a run of long dialogues) cannot make a row
    group or a file larger than its budget: a row goes to file ``floor(bytes before it / max_file_bytes)`` (so no
    file passes the budget by more than its last row, and the last file holds the rest); inside a file a row group
    closes before the row that would take it over ``row_group_bytes`` (one oversized row makes a group of its
    own). Every cut depends on the rows alone, so the same rows give the same files and bytes however they are
    fed, and nothing about the table must be known before its first row; every row group is written from
    contiguous arrays. Files are written under temporary names and get their ``-of-N`` names at :meth:`close`.
    """

    def __init__(
        self,
        folder: Path,
        split: str,
        schema: pa.Schema,
        rows: int,
        *,
        max_file_bytes: int,
        row_group_bytes: int = ROW_GROUP_BYTES,
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.split, self.schema = folder, split, schema
        self.rows, self.row_group_bytes = rows, row_group_bytes
        self.file_bytes = max(1, max_file_bytes)
        self.written = 0
        self._offset = 0  # payload bytes of the rows written so far
        self._parts: list[Path] = []
        self._writer: pq.ParquetWriter | None = None
        self._file = -1  # the file index (offset // file_bytes) of the open file
        self._buffer: list[pa.Table] = []
        self._sizes = np.zeros(0, dtype=np.int64)

    def _new_writer(self, path: Path) -> pq.ParquetWriter:
        return pq.ParquetWriter(
            path,
            self.schema,
            compression="zstd",
            write_page_index=True,
            use_content_defined_chunking=True,
            write_statistics=True,
        )

    def _open(self, file: int) -> pq.ParquetWriter:
        if self._writer is not None and file != self._file:
            self._writer.close()
            self._writer = None
        if self._writer is None:
            path = part_path(self.folder, self.split, len(self._parts))
            self._parts.append(path)
            self._writer = self._new_writer(path)
            self._file = file
        return self._writer

    def _next_group(self, final: bool) -> int:
        """Rows of the buffer that form the next row group, or 0 while the group may still grow."""
        ends = np.cumsum(self._sizes)
        files = (self._offset + ends - self._sizes) // self.file_bytes
        n = len(self._sizes)
        by_file = int(np.searchsorted(files, files[0], side="right"))
        by_bytes = max(1, int(np.searchsorted(ends, self.row_group_bytes, side="right")))
        cut = min(by_file, by_bytes)
        return cut if cut < n or final else 0

    def _emit(self, n: int) -> None:
        """Write the first ``n`` buffered rows as one row group."""
        buffered = pa.concat_tables(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        group, rest = buffered.slice(0, n), buffered.slice(n)
        file = int(self._offset // self.file_bytes)
        self._open(file).write_table(group.combine_chunks(), row_group_size=n)
        self._offset += int(self._sizes[:n].sum())
        self._buffer, self._sizes = ([rest] if rest.num_rows else []), self._sizes[n:]
        self.written += n

    def _drain(self, final: bool) -> None:
        while len(self._sizes):
            n = self._next_group(final)
            if not n:
                break
            self._emit(n)

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        if self.written + len(self._sizes) + table.num_rows > self.rows:
            raise ValueError(f"split {self.split!r} was declared with {self.rows} rows but is fed more")
        table = table.cast(self.schema)
        self._buffer.append(table)
        self._sizes = np.concatenate([self._sizes, row_payload_bytes(table)])
        self._drain(final=False)

    def close(self) -> list[Path]:
        self._drain(final=True)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self.written != self.rows:
            raise ValueError(f"split {self.split!r} was declared with {self.rows} rows but got {self.written}")
        if not self._parts:
            # an empty split is one file with the schema and no row group: a 0-row row group makes
            # `datasets` read it with batch_size 0 (ArrowInvalid)
            path = part_path(self.folder, self.split, 0)
            self._new_writer(path).close()
            self._parts.append(path)
        return name_parts(self.folder, self.split, self._parts)


# ------------------------------------------------------------------------------------------------ atomic swap
#
# Beside OUT/NAME live, only while a run needs them:
#   .NAME.lock            the target's lock: held (briefly) to recover and clean up, to create a temp folder and to
#                         swap; never during the build itself, so builds of the same target may run side by side
#   .NAME.tmp-XXXX/       a run's folder being built, and .NAME.tmp-XXXX.lock, flocked by that run while it lives
#   .NAME.swap.json       the journal of a two-rename swap (only where RENAME_EXCHANGE is unavailable)
#   .NAME.old-XXXX/       the old folder during a two-rename swap
# The rule: a temp folder whose .lock someone holds belongs to a live run and is never touched; one whose lock is
# free (its run died: the kernel drops flocks with the process) is removed. An .old folder or a journal only
# exists inside a swap, under .NAME.lock, so whoever holds that lock may finish, undo or remove them. Lock files
# are unlinked on release; a waiter that then finds its lock on an unlinked file retries.

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
#: renameat2 syscall numbers, for a libc without the wrapper (glibc < 2.28, some musl builds)
_SYS_RENAMEAT2 = {"x86_64": 316, "amd64": 316, "aarch64": 276, "arm64": 276, "riscv64": 276, "i386": 353,
                  "i686": 353, "armv7l": 382, "ppc64le": 357, "ppc64": 357, "s390x": 347}  # fmt: skip
#: errors that mean "this OS or filesystem cannot exchange": fall back to the journaled two-rename swap
_NO_EXCHANGE = frozenset(e for e in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", 0)) if e)


def _libc_renameat2() -> Callable[..., int] | None:
    """libc's ``renameat2``, or None when this libc has no such symbol."""
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


def _syscall_renameat2() -> Callable[..., int] | None:
    """``renameat2`` as a raw syscall, or None when its number on this CPU is not known."""
    number = _SYS_RENAMEAT2.get(platform.machine().lower())
    if number is None:
        return None
    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall.restype = ctypes.c_long

    def call(olddirfd: int, old: bytes, newdirfd: int, new: bytes, flags: int) -> int:
        args = (ctypes.c_int(olddirfd), ctypes.c_char_p(old), ctypes.c_int(newdirfd), ctypes.c_char_p(new))
        return int(syscall(ctypes.c_long(number), *args, ctypes.c_uint(flags)))

    return call


def exchange(a: Path, b: Path) -> None:
    """Swap the paths ``a`` and ``b`` in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``).

    Raises ``OSError`` with ``ENOSYS`` off Linux or without the call, ``EINVAL``/``EOPNOTSUPP`` where the filesystem
    cannot exchange."""
    if not sys.platform.startswith("linux"):
        raise OSError(errno.ENOSYS, "RENAME_EXCHANGE needs Linux")
    func = _libc_renameat2() or _syscall_renameat2()
    if func is None:
        raise OSError(errno.ENOSYS, "no renameat2 on this system")
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a), None, str(b))


def _discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _take_lock(path: Path, *, blocking: bool) -> int | None:
    """An flock'ed descriptor on ``path`` (created if missing), or None if ``blocking`` is false and it is held.
    Without flock (Windows) no file is made: -1 when blocking, else None (so nothing is ever judged dead)."""
    if fcntl is None:
        return -1 if blocking else None
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except BlockingIOError:
            os.close(fd)
            return None
        except FileNotFoundError:
            pass  # the holder unlinked it while we waited: our lock is on a dead file, take the new one
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _drop_lock(fd: int, path: Path, *, unlink: bool = True) -> None:
    """Unlink the lock file (unless told to keep it), then release it (a waiter on the unlinked file notices and
    retries)."""
    if fd < 0:
        return
    if unlink:
        with suppress(FileNotFoundError):
            os.unlink(path)
    os.close(fd)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = _take_lock(path, blocking=True)
    assert fd is not None
    try:
        yield
    finally:
        _drop_lock(fd, path)


def _siblings(target: Path, kind: str) -> list[Path]:
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.{kind}-*"))


def _journal(target: Path) -> Path:
    return target.parent / f".{target.name}.swap.json"


def _owner_lock(tmp: Path) -> Path:
    return tmp.parent / f"{tmp.name}.lock"


def _write_journal(target: Path, new: Path, old: Path) -> None:
    journal, part = _journal(target), target.parent / f".{target.name}.swap.json.part"
    part.write_bytes(orjson.dumps({"new": new.name, "old": old.name, "target": target.name}))
    with open(part, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(part, journal)
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    with suppress(OSError):  # not every OS/filesystem can fsync a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ForeignFolderError(ChatdataError):
    """A folder a build would replace or remove was not written by chatdata."""


def _always(_: Path) -> bool:
    return True


def check_replaceable(target: Path, owned: Callable[[Path], bool], *, overwrite: bool, option: str) -> None:
    """Raise :class:`ForeignFolderError` unless ``target`` is missing, an empty folder, a folder ``owned`` says
    chatdata wrote, or ``overwrite`` allows replacing whatever is there (``option`` names the flag that does)."""
    target = Path(target)
    if overwrite or not os.path.lexists(target):
        return
    if target.is_dir() and not target.is_symlink() and (owned(target) or not any(target.iterdir())):
        return
    what = "is not a folder" if not target.is_dir() or target.is_symlink() else "was not written by chatdata"
    raise ForeignFolderError(
        f"{target} {what} (it holds no chatdata build record) and a build would replace it: move it away, "
        f"choose another output folder, or pass {option} to replace it"
    )


def recover(target: Path, owned: Callable[[Path], bool] = _always) -> None:
    """Finish or undo an interrupted swap of ``target`` and remove what dead runs left beside it.

    Call with ``.NAME.lock`` held. A journaled two-rename swap that lost the target is finished (the new folder was
    complete) or, without the new folder, undone; with no journal, a missing target comes back from the newest
    ``.NAME.old-*``. Then every ``.old`` folder that ``owned`` says chatdata wrote goes (another is left alone),
    and every temp folder whose run no longer holds its lock (a temp folder with no lock file was not made by a
    run of ours, or is empty: it is removed only when empty)."""
    target = Path(target)
    journal = _journal(target)
    if journal.exists():
        try:
            plan = orjson.loads(journal.read_bytes())
            new, old = target.parent / str(plan["new"]), target.parent / str(plan["old"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            new = old = None  # written atomically, so never half a journal; a foreign file: ignore it
        if new is not None and old is not None and not os.path.lexists(target):
            if new.is_dir():
                os.rename(new, target)
            elif old.is_dir():
                os.rename(old, target)
        journal.unlink()
    olds = [p for p in _siblings(target, "old") if p.is_dir()]
    if olds and not os.path.lexists(target):
        newest = max(olds, key=lambda p: p.stat().st_mtime_ns)
        os.rename(newest, target)
        olds.remove(newest)
    for old in olds:
        if owned(old) or not any(old.iterdir()):
            _discard(old)
    for path in _siblings(target, "tmp"):
        if path.name.endswith(".lock"):
            if not path.with_name(path.name[: -len(".lock")]).exists():
                fd = _take_lock(path, blocking=False)
                if fd is not None:
                    _drop_lock(fd, path)
            continue
        lock = _owner_lock(path)
        if not lock.exists():
            with suppress(OSError):
                path.rmdir()  # only an empty one: a run killed between making it and locking it
            continue
        fd = _take_lock(lock, blocking=False)
        if fd is not None:  # no live run owns it
            _discard(path)
            _drop_lock(fd, lock)


def _swap(tmp: Path, target: Path) -> None:
    """Put ``tmp`` at ``target`` (under the target's lock): one exchange, else a journaled two-rename swap."""
    if not os.path.lexists(target):
        os.rename(tmp, target)
        return
    try:
        exchange(tmp, target)
    except OSError as exc:
        if exc.errno not in _NO_EXCHANGE:
            raise
    else:
        _discard(tmp)  # now the old folder
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.rmdir(old)
    _write_journal(target, tmp, old)
    os.rename(target, old)
    try:
        os.rename(tmp, target)
    except Exception:  # a real error: undo now (a killed process leaves the journal to the next run)
        os.rename(old, target)
        _journal(target).unlink()
        raise
    _journal(target).unlink()
    _discard(old)


@contextmanager
def atomic_folder(
    target: Path, *, owned: Callable[[Path], bool], overwrite: bool = False, option: str = "--overwrite"
) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it replaces ``target`` whole, on error it vanishes.

    The swap is one ``renameat2(RENAME_EXCHANGE)`` (Linux): readers see the old folder or the new one, never a
    half-written one or none. Where the OS or filesystem cannot exchange, two renames with a journal, which the next
    run finishes or undoes if this one dies in between. Each call first recovers an interrupted swap and removes
    what dead runs left (see the rule above), never a live run's folder. The result has mode 0o755.

    Only a folder chatdata wrote (``owned``), an empty one or none is replaced: anything else raises
    :class:`ForeignFolderError` naming ``option``, before and again just before the swap, unless ``overwrite``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.lock"
    with _locked(lock):
        recover(target, owned)
        check_replaceable(target, owned, overwrite=overwrite, option=option)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        owner = _take_lock(_owner_lock(tmp), blocking=True)  # new, so never waits
        assert owner is not None
    try:
        try:
            yield tmp
        except BaseException:
            _discard(tmp)
            raise
        os.chmod(tmp, 0o755)
        with _locked(lock):
            try:
                check_replaceable(target, owned, overwrite=overwrite, option=option)
                _swap(tmp, target)
            except Exception:  # a real error (a killed run leaves its state to the next run's recover)
                _discard(tmp)
                raise
    finally:  # a temp folder still there (interrupted) keeps its lock file: it marks the folder as a run's own
        _drop_lock(owner, _owner_lock(tmp), unlink=not tmp.exists())
