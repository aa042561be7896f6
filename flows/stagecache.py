"""Skip build stages whose inputs did not change: a content key per stage, a marker file beside its outputs.

The key of a stage is the sha256 of

- the stage name, and the recipe declaration for recipe stages (``ingest``/``structure`` are shared by
  recipes);
- the settings the stage reads (:data:`SETTINGS_READ_BY`; a setting not listed there counts for every stage);
- the code fingerprint: ``chatdata.__version__`` and the bytes of every file of the installed ``chatdata``
  package, filter spec and card template (:func:`code_fingerprint`);
- the sha256 of every input file the stage reads (``chatdata.pipeline.stage_paths``; for ``ingest`` every
  source file, found as the reader finds them, plus the source spec and resolved Hub commit);
- the keys of the stages before it in the same build (``upstream``): a change upstream reaches every stage
  after it, including what a stage reads besides its declared inputs (``write`` collects every ledger and
  rejects file).

After a stage succeeds, ``.stage-<stage>.json`` records the key and the sha256 of every file it wrote (its
declared outputs and ledger record; for a stage without declared outputs, such as ``write``, every file under
``OUT/<recipe>``). A stage is skipped only when that marker holds the same key *and* every recorded file still
exists with the recorded hash, so a deleted or overwritten output (or a workspace last built with other
settings than the key asks for) makes it run again instead of returning a stale path. The marker is removed
before a stage runs and written after it succeeded, so a build that crashed resumes at the first unfinished
stage.

Why markers rather than Prefect's result cache alone: a Prefect cache hit returns the stored return value
without looking at the files it names, and the workspace paths are reused by every build, so settings A -> B
-> A would hand back paths whose bytes belong to B. The marker checks the files themselves, lives and dies
with the workspace, and needs no Prefect at all. (Prefect-free module: importable by any runner.)
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chatdata import __version__, pipeline
from chatdata.ingest import discover, sha256_file
from chatdata.recipes import get_recipe
from chatdata.resources import data_cards_dir, filters_dir

MARKER_VERSION = 1

#: The first stage that reads each setting (later stages follow through the upstream keys). A setting missing
#: here (e.g. one added later) keys every stage: always correct, only slower.
#: ``chatdata.pipeline.SETTINGS_READ_BY`` replaces this table when the pipeline declares one.
DEFAULT_SETTINGS_READ_BY: dict[str, tuple[str, ...]] = {
    "source": ("ingest",),
    "revision": ("ingest",),
    "pair_mode": ("flatten",),
    "decontaminate": ("score",),
    "on_special": ("render",),
    "tokenizer": ("masks",),
    "dialect": ("masks",),
    "mask_convention": ("masks",),
    "max_length": ("masks",),
    "test_fraction": ("splits",),
    "split_seed": ("splits",),
    "leak_policy": ("splits",),
    "max_shard_bytes": ("write",),
}


def settings_read_by() -> dict[str, tuple[str, ...]]:
    return getattr(pipeline, "SETTINGS_READ_BY", DEFAULT_SETTINGS_READ_BY)


def stage_settings(stage: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The part of ``settings`` that ``stage`` reads."""
    table = settings_read_by()
    return {k: v for k, v in sorted(settings.items()) if k not in table or stage in table[k]}


def _tree_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """sha256 of the chatdata version and every file of the package, its filter specs and card templates.

    Computed once per process: the code a process runs does not change under it.
    """
    import chatdata

    h = hashlib.sha256(f"chatdata {__version__}\n".encode())
    roots = {Path(chatdata.__file__).resolve().parent, filters_dir().resolve(), data_cards_dir().resolve()}
    seen: set[Path] = set()
    for root in sorted(roots):
        for f in _tree_files(root):
            if f in seen:
                continue
            seen.add(f)
            h.update(f"{root.name}/{f.relative_to(root).as_posix()}\0".encode())
            h.update(sha256_file(f).encode())
    return h.hexdigest()


def files_fingerprint(paths: list[Path], root: Path | None = None) -> list[tuple[str, str]]:
    """``(name, sha256)`` per file; a missing file is recorded as missing (the stage then fails loudly)."""
    rows = []
    for p in paths:
        name = p.relative_to(root).as_posix() if root is not None and p.is_relative_to(root) else str(p)
        rows.append((name, sha256_file(p) if p.is_file() else "missing"))
    return rows


def source_fingerprint(path: str | Path) -> list[tuple[str, str]]:
    """sha256 of every oasst file below ``path``, found the way ``ingest`` finds them."""
    p = Path(path)
    root = p if p.is_dir() else p.parent
    return files_fingerprint(discover(p).paths, root)


def _key(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def stage_key(
    stage: str,
    work: str | Path,
    recipe: str,
    settings: dict[str, Any],
    out: str | Path,
    upstream: list[str],
    source: dict[str, Any] | None = None,
) -> str:
    """The cache key of ``stage`` (see the module docstring).

    ``source`` is the resolved source (``{"path", "spec", "revision"}``), needed by the stage that reads it.
    """
    work = Path(work)
    reads, writes = pipeline.stage_paths(stage, work, recipe)
    payload: dict[str, Any] = {
        "marker": MARKER_VERSION,
        "stage": stage,
        "recipe": None if stage in pipeline.COMMON_STAGES else get_recipe(recipe).to_dict(),
        "settings": stage_settings(stage, settings),
        "code": code_fingerprint(),
        "inputs": files_fingerprint(reads, work),
        "upstream": list(upstream),
    }
    if not reads:  # the stage reads the source itself
        if source is None:
            raise ValueError(f"the key of '{stage}' needs the resolved source")
        payload["source"] = {
            "spec": source.get("spec"),
            "revision": source.get("revision"),
            "files": source_fingerprint(source["path"]),
        }
    if not writes:
        payload["out"] = str((Path(out) / recipe).resolve())
    return _key(payload)


def ledger_path(stage: str, work: str | Path, recipe: str) -> Path:
    return pipeline.Workspace(Path(work), recipe).dir_for(stage) / f"ledger-{stage}.json"


def marker_path(stage: str, work: str | Path, recipe: str) -> Path:
    return pipeline.Workspace(Path(work), recipe).dir_for(stage) / f".stage-{stage}.json"


def stage_outputs(stage: str, work: str | Path, recipe: str, out: str | Path) -> list[Path]:
    """Every file ``stage`` writes: declared outputs and ledger record, or all of ``OUT/<recipe>``."""
    _, writes = pipeline.stage_paths(stage, Path(work), recipe)
    files = [*writes, ledger_path(stage, work, recipe)]
    if not writes:
        folder = Path(out) / recipe
        files += _tree_files(folder) if folder.is_dir() else [folder / "build.json"]
    return files


def probe(stage: str, key: str, work: str | Path, recipe: str) -> str | None:
    """The ledger path if ``stage`` ran with ``key`` and every file it wrote is intact, else ``None``."""
    marker = marker_path(stage, work, recipe)
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if data.get("version") != MARKER_VERSION or data.get("key") != key:
        return None
    for name, digest in data.get("files", {}).items():
        f = Path(name)
        if not f.is_file() or sha256_file(f) != digest:
            return None
    ledger = ledger_path(stage, work, recipe)
    return str(ledger) if ledger.is_file() else None


def invalidate(stage: str, work: str | Path, recipe: str) -> None:
    marker_path(stage, work, recipe).unlink(missing_ok=True)


def commit(stage: str, key: str, work: str | Path, recipe: str, out: str | Path) -> Path:
    """Record that ``stage`` finished with ``key``: the hash of every file it wrote, written atomically."""
    files = {str(p.resolve()): sha256_file(p) for p in stage_outputs(stage, work, recipe, out) if p.is_file()}
    marker = marker_path(stage, work, recipe)
    tmp = marker.with_name(marker.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"version": MARKER_VERSION, "stage": stage, "key": key, "files": files}, indent=1))
    tmp.replace(marker)
    return marker


@contextmanager
def workspace_lock(work: str | Path) -> Iterator[bool]:
    """Hold an exclusive lock on the workspace (``work/.lock``) so two builds never write it at once.

    Yields ``True`` if another build held it and this one waited. The lock is released when the process dies.
    """
    work = Path(work)
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
