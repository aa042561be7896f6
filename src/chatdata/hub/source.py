"""Download a source dataset snapshot (Parquet / JSONL files) from the Hub, pinned to one commit."""

from __future__ import annotations

import os
import re
from pathlib import Path

from huggingface_hub import constants, snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from chatdata.hub.client import HubError, translate, validate_repo_id

#: what a Hub source is downloaded as (what chatdata reads: Parquet, JSON Lines, JSON arrays, gzip or not)
SOURCE_PATTERNS = ("*.parquet", "*.jsonl", "*.jsonl.gz", "*.ndjson", "*.ndjson.gz", "*.json", "*.json.gz")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")


def _offline() -> bool:
    env = os.environ.get("HF_HUB_OFFLINE", "")
    return constants.is_offline_mode() or env.upper() in constants.ENV_VARS_TRUE_VALUES


def download_source(
    repo_id: str,
    *,
    revision: str | None,
    cache_dir: str | Path | None,
    endpoint: str | None = None,
    token: str | None = None,
    patterns: tuple[str, ...] | list[str] = SOURCE_PATTERNS,
    local_only: bool = False,
) -> tuple[Path, str]:
    """Fetch the data files (``patterns``, by default :data:`SOURCE_PATTERNS`) of dataset ``repo_id`` at
    ``revision``; a revision that is a full commit sha already in the cache is used without asking the Hub.

    Returns ``(snapshot folder, resolved commit sha)``; the sha goes into the build fingerprint. The revision
    is resolved to one commit (``snapshot_download`` asks the Hub once) and every file comes from that commit.
    With ``HF_HUB_OFFLINE=1`` (or ``local_only``) only the local cache is used. Raises a one-line ``HubError``
    when offline and not cached, or when the repo/revision does not exist.
    """
    validate_repo_id(repo_id)
    wanted = revision or "main"
    cache = str(cache_dir) if cache_dir is not None else None
    common = {"repo_type": "dataset", "revision": wanted, "cache_dir": cache, "allow_patterns": list(patterns)}
    offline = local_only or _offline()
    if _SHA_RE.match(wanted) and not offline:
        try:
            path = Path(snapshot_download(repo_id, local_files_only=True, **common))  # type: ignore[arg-type]
            if any(any(path.rglob(pattern)) for pattern in patterns):
                return path, _checked_sha(path, repo_id)
        except (LocalEntryNotFoundError, FileNotFoundError):
            pass
    if offline:
        try:
            path = Path(snapshot_download(repo_id, local_files_only=True, **common))  # type: ignore[arg-type]
        except (LocalEntryNotFoundError, FileNotFoundError) as exc:
            why = "this build reads the cache only" if local_only else "HF_HUB_OFFLINE=1 is set"
            raise HubError(
                f"{why} and {repo_id}@{wanted} is not in the cache "
                f"({cache or constants.HF_HUB_CACHE}); unset HF_HUB_OFFLINE once to download it, or pass a "
                "local file instead"
            ) from exc
        return _with_data(path, repo_id, wanted, patterns), _checked_sha(path, repo_id)
    try:
        path = Path(snapshot_download(repo_id, endpoint=endpoint, token=token, **common))  # type: ignore[arg-type]
    except Exception as exc:
        cause = exc.__cause__ if isinstance(exc, LocalEntryNotFoundError) and exc.__cause__ is not None else exc
        raise translate(cause, repo_id=repo_id, action="download", token=token, revision=wanted) from exc
    sha = _checked_sha(path, repo_id)
    return _with_data(path, repo_id, wanted, patterns), sha


def _with_data(path: Path, repo_id: str, revision: str, patterns: tuple[str, ...] | list[str]) -> Path:
    if not any(any(path.rglob(pattern)) for pattern in patterns):
        raise HubError(f"dataset repo {repo_id}@{revision} has no {', '.join(patterns)} files to read")
    return path


def _checked_sha(path: Path, repo_id: str) -> str:
    """A cache snapshot lives in ``.../snapshots/<sha>``: that folder name is the commit sha."""
    if not _SHA_RE.match(path.name):
        raise HubError(f"cannot tell which commit the cached copy of {repo_id} at {path} is; re-download it online")
    return path.name


def dataset_folder(where: str, *, revision: str | None = None, label: str = "", cache_dir: str | None = None) -> Path:
    """A local dataset folder as it is, or a Hub dataset id (``ORG/NAME``) downloaded at ``revision`` (only its
    ``build.json`` and Parquet files: what ``chatdata diff`` reads)."""
    path = Path(where).expanduser()
    if path.exists():
        return path
    if where.count("/") != 1 or where.startswith((".", "/", "~")):
        raise HubError(f"{label} {where}: no such folder, and not a Hub dataset id ORG/NAME".strip())
    folder, _sha = download_source(where, revision=revision, cache_dir=cache_dir, patterns=["build.json", "*.parquet"])
    return folder
