"""The workspace: the content-keyed results that let a rerun skip finished work and a killed build resume.

An entry is a folder ``WORK/cache/<kind>/<key>/`` holding the files of one piece of work and ``manifest.json``
(the files' sizes, modification times and sha256, plus small metadata). It is built in a temporary folder and
renamed into place, so an entry either exists whole or not at all: a build killed half-way leaves only finished
entries, and the next build reuses them. The key is a sha256 of everything that shapes the result (input hashes,
the parts of the recipe and the settings that phase reads, the code), so a stale entry is never returned; entries
no build asked for are removed by :meth:`Store.prune`. The kinds:

=========== ============================================== =====================================================
kind        one entry per                                  files
=========== ============================================== =====================================================
partition   source (its files' sha256, the shard count)    ``shard-0000i.arrow`` (the text), ingest rejects
flat        shard, gates and flattening                    dialogues or pairs (positions, no text), rejects
scores      shard and a filter's score settings            each scored message's score columns
payloads    partition shard                                rejected messages' rows as JSON, for every recipe
shard       shard, recipe source and every setting of it   rows (no text), split keys, rejects, per-tree counts
plan        recipe (its pieces' keys, its split settings)  each piece's split and drop reasons
=========== ============================================== =====================================================

Besides the entries: ``WORK/cache/outputs/NAME.json`` records what the last write of each output folder wrote
(file sizes, times and sha256), ``WORK/cache/index.json`` which entries each recipe's latest build used, and
``WORK/CACHEDIR.TAG`` marks the folder as chatdata's. Works the same for every executor: worker processes and
Prefect tasks on other machines call it on a shared filesystem. No orchestrator is involved.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chatdata.record import RECORD_FILE

MANIFEST = "manifest.json"
CACHE_VERSION = 1


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_key(*parts: Any) -> str:
    """sha256 of JSON-encoded parts (sorted keys), the key of an entry."""
    raw = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


def _tree_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


@functools.cache
def code_fingerprint(cards: bool = True) -> str:
    """sha256 of the chatdata version and every file of the package and its filter specs, plus the card templates
    unless ``cards`` is false (what the shard and plan phases use: a template change re-renders the cards
    only). A code change invalidates the cached results it can change. Computed once per process."""
    import chatdata
    from chatdata.resources import data_cards_dir, filters_dir

    h = hashlib.sha256(f"chatdata {chatdata.__version__}\n".encode())
    roots = {Path(chatdata.__file__).resolve().parent, filters_dir().resolve()}
    if cards:
        roots.add(data_cards_dir().resolve())
    seen: set[Path] = set()
    for root in sorted(roots):
        for f in _tree_files(root):
            if f in seen:
                continue
            seen.add(f)
            h.update(f"{root.name}/{f.relative_to(root).as_posix()}\0".encode())
            h.update(sha256_file(f).encode())
    return h.hexdigest()


def file_stats(path: Path) -> dict[str, Any]:
    """What a file is recorded as: its size, modification time and sha256."""
    stat = path.stat()
    return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path)}


def unchanged(path: Path, recorded: dict[str, Any]) -> bool:
    """``path`` is the file ``recorded`` describes: its size and modification time as recorded (a file whose time
    moved is hashed again; one with another size is not the same)."""
    try:
        stat = path.stat()
    except OSError:
        return False
    if stat.st_size != recorded.get("bytes"):
        return False
    if stat.st_mtime_ns == recorded.get("mtime_ns"):
        return True
    return sha256_file(path) == recorded.get("sha256")


class Store:
    """The cache of one workspace: ``root/<kind>/<key>/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def get(self, kind: str, key: str) -> Path | None:
        """The entry's folder if it is complete and its files are intact, else None (a damaged entry is removed so
        it is rebuilt). Intact: each file has the size and time its manifest records (checked without reading
        the file; a file whose time moved is hashed against the manifest)."""
        folder = self.path(kind, key)
        manifest = folder / MANIFEST
        if not manifest.is_file():
            return None
        try:
            files = json.loads(manifest.read_text())["files"]
            intact = all(unchanged(folder / name, info) for name, info in files.items())
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            intact = False
        if not intact:
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return folder

    def meta(self, kind: str, key: str) -> dict[str, Any]:
        return json.loads((self.path(kind, key) / MANIFEST).read_text())["meta"]

    @contextmanager
    def put(self, kind: str, key: str, meta: dict[str, Any] | None = None, *, replace: bool = False) -> Iterator[Path]:
        """A temporary folder to write the entry's files into; on success it becomes the entry (a concurrent
        writer of the same key may win the rename: both wrote the same content). With ``replace`` it takes the
        place of an existing entry (one that holds more of the same results: a scores entry that grew)."""
        final = self.path(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.tmp-", dir=final.parent))
        try:
            yield tmp
            files = {p.relative_to(tmp).as_posix(): file_stats(p) for p in _tree_files(tmp)}
            (tmp / MANIFEST).write_text(json.dumps({"files": files, "meta": meta or {}}, sort_keys=True, indent=1))
            if replace and final.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.old-", dir=final.parent))
                os.rmdir(old)
                with contextlib.suppress(OSError):
                    os.rename(final, old)
                shutil.rmtree(old, ignore_errors=True)
            try:
                os.rename(tmp, final)
            except OSError:  # the entry appeared meanwhile (another worker): keep that one
                if not (final / MANIFEST).is_file():
                    shutil.rmtree(final, ignore_errors=True)
                    os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def prune(self, keep: dict[str, set[str]]) -> int:
        """Remove every entry of the given kinds whose key is not kept, and the temporary folders of killed
        writers; return how many folders went. Call it only while holding the workspace lock with no task
        running (the end of a build), so no temporary folder can belong to a live writer."""
        removed = 0
        for kind, keys in keep.items():
            folder = self.root / kind
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                if entry.name not in keys:
                    shutil.rmtree(entry, ignore_errors=True)
                    removed += 1
        return removed


#: the Cache Directory Tagging Specification's tag (https://bford.info/cachedir/): backup tools skip the folder, and
#: chatdata knows the workspace is its own
CACHEDIR_TAG = "CACHEDIR.TAG"
_TAG_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by chatdata (its build workspace).\n"
    "# For information about cache directory tags, see https://bford.info/cachedir/\n"
)
#: what a workspace written before the tag existed holds (it is tagged when next used)
_WORKSPACE_NAMES = frozenset({".lock", "cache", "hub-cache", "prefect.log"})


def claim_workspace(work: Path, *, overwrite: bool = False) -> None:
    """Make ``work`` a chatdata workspace, or refuse a folder chatdata did not make (a build removes stale cache
    entries in it, and all of ``WORK/cache`` with ``--force``) unless ``overwrite``."""
    from chatdata.errors import ChatdataError

    work = Path(work)
    tag = work / CACHEDIR_TAG
    if tag.is_file() and "chatdata" in tag.read_text(errors="replace"):
        return
    if work.exists() and not work.is_dir():
        raise ChatdataError(f"workspace {work} is not a folder: choose another --work")
    foreign = sorted(p.name for p in work.iterdir() if p.name not in _WORKSPACE_NAMES) if work.is_dir() else []
    if foreign and not overwrite:
        shown = ", ".join(foreign[:3]) + (" …" if len(foreign) > 3 else "")
        raise ChatdataError(
            f"workspace {work} holds files chatdata did not write ({shown}); choose another --work, or pass "
            "--overwrite to use it anyway (a build removes stale entries under its cache/ folder)"
        )
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / f".{CACHEDIR_TAG}.tmp-{os.getpid()}"
    tmp.write_text(_TAG_TEXT)
    os.replace(tmp, tag)


@contextmanager
def workspace_lock(work: Path) -> Iterator[bool]:
    """Hold ``WORK/.lock`` for a build: a second build of the same workspace waits (yields whether it waited)."""
    import fcntl

    work.mkdir(parents=True, exist_ok=True)
    with (work / ".lock").open("a+") as fh:
        waited = False
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = True
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield waited
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------------------ kinds and files

PARTITION, FLAT, SCORES, SHARD, PLAN = "partition", "flat", "scores", "shard", "plan"
#: the reject payloads (message rows as JSON) of one partition shard's rejected messages, for every recipe
PAYLOADS = "payloads"
KINDS = (PARTITION, FLAT, SCORES, SHARD, PLAN, PAYLOADS)
#: the files of a shard entry: surviving rows, their split keys, the shard's rejects, dialogues per tree
ROWS, KEYS, SHARD_REJECTS, PER_TREE = (f"{n}.arrow" for n in ("rows", "keys", "rejects", "per-tree"))
#: the files of a partition entry: the shards and the ingest rejects
PARTITION_REJECTS = "rejects.arrow"
#: the file of a scores entry
SCORED = "scores.arrow"
#: the file of a payloads entry: ``_i`` (the message's position in its shard) and ``_json`` (its payload)
MESSAGE_JSON = "messages.arrow"


def payloads_key(partition: str, shard: int) -> str:
    """The payloads entry of a partition shard: a rejected message's payload is its row, whichever recipe
    rejected it, so one entry serves every recipe (and grows as builds reject more messages)."""
    return content_key(PAYLOADS, partition, shard, code_fingerprint(cards=False))


def load_payloads(store: Store, partition: str, shard: int) -> Any:
    """The stored payloads of a partition shard's rejected messages (a frame of ``_i``, ``_json``), or None."""
    from chatdata import artifacts

    found = store.get(PAYLOADS, payloads_key(partition, shard))
    return artifacts.load(found / MESSAGE_JSON) if found is not None else None


def shard_file(folder: Path, i: int) -> Path:
    """Shard ``i`` of a partition entry."""
    return folder / f"shard-{i:05d}.arrow"


def partition_meta(store: Store, key: str) -> dict[str, Any]:
    return json.loads((store.path(PARTITION, key) / "meta.json").read_text())


def save_masks(masks: dict[str, Any], folder: Path) -> None:
    from chatdata import artifacts

    columns = masks["columns"]
    for column, part in columns.items():
        artifacts.save(part["rows"], folder / f"masks-{column}{artifacts.SUFFIX}")
    info = {"settings": masks["settings"], "columns": {c: p["stats"] for c, p in columns.items()}}
    (folder / "masks.json").write_text(json.dumps(info, sort_keys=True, default=str))


def load_masks(folder: Path) -> dict[str, Any] | None:
    from chatdata import artifacts

    path = folder / "masks.json"
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    return {
        "settings": info["settings"],
        "columns": {
            c: {"rows": artifacts.load(folder / f"masks-{c}{artifacts.SUFFIX}"), "stats": stats}
            for c, stats in info["columns"].items()
        },
    }


class Index:
    """``WORK/cache/index.json``: the entries the latest build of each recipe used (everything else is stale)."""

    def __init__(self, store: Store) -> None:
        self.path = store.root / "index.json"
        self.data: dict[str, dict[str, list[str]]] = {}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError:
                self.data = {}

    def set(self, recipe: str, used: dict[str, set[str]]) -> None:
        self.data[recipe] = {kind: sorted(keys) for kind, keys in used.items()}

    def kept(self) -> dict[str, set[str]]:
        return {k: {key for entry in self.data.values() for key in entry.get(k, [])} for k in KINDS}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, sort_keys=True, indent=1))
        tmp.replace(self.path)


# ------------------------------------------------------------------------------------------------ output folders


def is_build_folder(folder: Path) -> bool:
    """``folder`` holds a chatdata build record (``build.json`` with ``chatdata_version``): chatdata wrote it."""
    try:
        record = json.loads((Path(folder) / RECORD_FILE).read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "chatdata_version" in record


def _outputs_record(work: Path, name: str) -> Path:
    return work / "cache" / "outputs" / f"{name}.json"


def _folder_files(folder: Path) -> dict[str, dict[str, Any]]:
    return {p.relative_to(folder).as_posix(): file_stats(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def intact(work: Path, name: str, target: Path, build_key: str) -> bool:
    """The output folder is what a build with this key wrote, file for file (sizes and times as recorded; a file
    whose time moved is hashed again)."""
    record = _outputs_record(work, name)
    if not record.is_file() or not target.is_dir():
        return False
    try:
        saved = json.loads(record.read_text())
        files = saved["files"]
        present = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
        return (
            saved.get("build_key") == build_key
            and present == sorted(files)
            and all(unchanged(target / rel, info) for rel, info in files.items())
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def owned_output(work: Path, name: str) -> Any:
    """Whether chatdata wrote a recipe's output folder: its build record is there, or every file in it is one this
    workspace recorded writing there (a build record deleted by hand loses nothing of the user's)."""

    def owned(folder: Path) -> bool:
        if is_build_folder(folder):
            return True
        try:
            recorded = json.loads(_outputs_record(work, name).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return all(p.relative_to(folder).as_posix() in recorded for p in folder.rglob("*") if p.is_file())

    return owned


def remember(work: Path, name: str, target: Path, build_key: str) -> None:
    """Record what was written to an output folder (for :func:`intact` and :func:`owned_output`)."""
    record = _outputs_record(work, name)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"build_key": build_key, "files": _folder_files(target)}, sort_keys=True))
