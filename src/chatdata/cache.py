"""Content-keyed results in the workspace: what lets a rerun skip finished work, and a killed build resume.

An entry is a folder ``WORK/cache/<kind>/<key>/`` holding the files of one piece of work (a source's partition,
one shard's results for one recipe) and ``manifest.json`` (the files' sizes and sha256, plus small metadata).
It is built in a temporary folder and renamed into place, so an entry either exists whole or not at all: a
build killed half-way leaves only finished entries, and the next build reuses them. The key is a sha256 of
everything that shapes the result (input hashes, recipe declaration, settings of that phase, code fingerprint),
so a stale entry is never returned; entries no build asked for are removed by :meth:`Store.prune`.

Works the same for every executor: worker processes and Prefect tasks on other machines call it on a shared
filesystem. No orchestrator is involved.
"""

from __future__ import annotations

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
def code_fingerprint() -> str:
    """sha256 of the chatdata version and every file of the package, its recipes, filter specs and card
    templates: a code change invalidates every cached result. Computed once per process."""
    import chatdata
    from chatdata.resources import data_cards_dir, filters_dir, recipes_dir

    h = hashlib.sha256(f"chatdata {chatdata.__version__}\n".encode())
    roots = {Path(chatdata.__file__).resolve().parent, filters_dir().resolve(), data_cards_dir().resolve()}
    roots.add(recipes_dir().resolve())
    seen: set[Path] = set()
    for root in sorted(roots):
        for f in _tree_files(root):
            if f in seen:
                continue
            seen.add(f)
            h.update(f"{root.name}/{f.relative_to(root).as_posix()}\0".encode())
            h.update(sha256_file(f).encode())
    return h.hexdigest()


class Store:
    """The cache of one workspace: ``root/<kind>/<key>/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def get(self, kind: str, key: str) -> Path | None:
        """The entry's folder if it is complete and its files are intact (sizes and hashes), else None (a
        damaged entry is removed so it is rebuilt)."""
        folder = self.path(kind, key)
        manifest = folder / MANIFEST
        if not manifest.is_file():
            return None
        try:
            files = json.loads(manifest.read_text())["files"]
            intact = all(
                (folder / name).is_file()
                and (folder / name).stat().st_size == info["bytes"]
                and sha256_file(folder / name) == info["sha256"]
                for name, info in files.items()
            )
        except (OSError, ValueError, KeyError, TypeError):
            intact = False
        if not intact:
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return folder

    def meta(self, kind: str, key: str) -> dict[str, Any]:
        return json.loads((self.path(kind, key) / MANIFEST).read_text())["meta"]

    @contextmanager
    def put(self, kind: str, key: str, meta: dict[str, Any] | None = None) -> Iterator[Path]:
        """A temporary folder to write the entry's files into; on success it becomes the entry (a concurrent
        writer of the same key may win the rename: both wrote the same content)."""
        final = self.path(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.tmp-", dir=final.parent))
        try:
            yield tmp
            files = {
                p.relative_to(tmp).as_posix(): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                for p in _tree_files(tmp)
            }
            (tmp / MANIFEST).write_text(json.dumps({"files": files, "meta": meta or {}}, sort_keys=True, indent=1))
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
