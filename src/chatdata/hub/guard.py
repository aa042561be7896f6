"""The publish guard: what the remote version declared and how many rows it held (its ``build.json``, else its
card), the verdict on a local folder against it, and what changed since it (``chatdata diff``)."""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml
from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.hf_api import RepoFile
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from chatdata.card.render import PLOT_FILES
from chatdata.errors import ChatdataError, InputError
from chatdata.hub.client import (
    one_line,
)
from chatdata.hub.localfiles import FRONT_MATTER, LocalFile, card_front_matter

#: remote build.json / README.md larger than this are not read (no count for the guard, nothing declared to delete)
_GUARD_READ_LIMIT = 16 * 1024 * 1024


class PublishRefused(ChatdataError):
    """The publish guard refused the push (empty default config, or too large a shrink); ``--force`` overrides."""


@dataclass(frozen=True)
class Verdict:
    """The publish guard's judgement: local and remote default-config rows and, if refused, why."""

    repo_id: str
    revision: str
    local_rows: int
    remote_rows: int | None
    remote_source: str | None
    max_shrink: float
    force: bool
    refusal: str | None = None

    @property
    def blocks(self) -> bool:
        return self.refusal is not None and not self.force

    def line(self) -> str:
        """One line for the console: passed, refused, or overridden by ``force``."""
        if self.refusal is None:
            remote = (
                f"remote has {self.remote_rows} (from {self.remote_source})"
                if self.remote_rows is not None
                else "no remote row count to compare with"
            )
            return f"guard: ok, default config holds {self.local_rows} row(s) locally, {remote}"
        if self.force:
            return f"guard overridden by --force: {self.refusal}"
        return f"guard: refused: {self.refusal}"

    def error(self) -> PublishRefused:
        if self.local_rows == 0 or self.remote_rows is None:
            hint = "rebuild the folder, or pass --force to publish it anyway"
        else:
            needed = math.ceil((1 - self.local_rows / self.remote_rows) * 100 - 1e-9) / 100
            hint = f"check the build, or pass --max-shrink {needed:g} (or --force) to publish it anyway"
        return PublishRefused(f"refusing to publish to {self.repo_id}@{self.revision}: {self.refusal}; {hint}")


# ------------------------------------------------------------------------------------------------ guard


def _default_config(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The ``configs`` entry ``datasets`` loads without a config name: marked ``default``, named ``default``, or the
    only one; None when the card declares no configs (or several without a default)."""
    configs = [c for c in meta.get("configs") or [] if isinstance(c, dict)]
    for config in configs:
        if config.get("default") is True:
            return config
    named = [c for c in configs if c.get("config_name", "default") == "default"]
    return (named or (configs if len(configs) == 1 else [None]))[0]


def _patterns(config: dict[str, Any]) -> list[str]:
    data_files = config.get("data_files") or []
    entries = [data_files] if isinstance(data_files, (str, dict)) else list(data_files)
    out: list[str] = []
    for entry in entries:
        paths = entry.get("path") if isinstance(entry, dict) else entry
        out += [paths] if isinstance(paths, str) else [str(p) for p in paths or []]
    return out


def local_default_rows(folder: Path, local: dict[str, LocalFile]) -> int:
    """Rows of the folder's default config, from the Parquet footers of its files (every ``.parquet`` file when
    the card declares no configs, as ``datasets`` then reads them all)."""
    config = _default_config(card_front_matter(Path(folder) / "README.md"))
    patterns = _patterns(config) if config is not None else ["*.parquet", "**/*.parquet"]
    paths = [p for p in local if p.endswith(".parquet") and any(fnmatch.fnmatchcase(p, pat) for pat in patterns)]
    try:
        return sum(pq.read_metadata(local[p].abspath).num_rows for p in paths)
    except Exception as exc:
        raise InputError(folder, f"cannot read a Parquet footer ({one_line(exc, limit=120)}); rebuild it") from exc


def _remote_build(text: str | None) -> dict[str, Any]:
    """A remote ``build.json`` as a mapping, {} when absent or not a JSON object. Read leniently, not as a
    :class:`~chatdata.record.BuildRecord`: a remote may hold any chatdata version's record or a hand-made one,
    and a remote is never an error; the guard needs only its marker, its row counts and its file list."""
    try:
        build = json.loads(text) if text is not None else None
    except ValueError:
        return {}
    return build if isinstance(build, dict) else {}


def _remote_card(text: str | None) -> dict[str, Any]:
    """A remote card's YAML front matter, {} when absent, unclosed or not a mapping."""
    match = FRONT_MATTER.match(text or "")
    try:
        meta = yaml.safe_load(match.group(1)) if match else None
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _rows_from_build(build: dict[str, Any]) -> int | None:
    """``sum(outputs.default.<split>.rows)`` of a chatdata ``build.json``, None if it has none."""
    try:
        splits = build["outputs"]["default"]
        return sum(int(v["rows"]) for v in splits.values())
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _rows_from_card(meta: dict[str, Any]) -> int | None:
    """``sum(splits[].num_examples)`` of the default config's ``dataset_info`` in a card, None if it has none."""
    config = _default_config(meta)
    name = config.get("config_name", "default") if config is not None else "default"
    infos = meta.get("dataset_info")
    infos = [infos] if isinstance(infos, dict) else infos if isinstance(infos, list) else []
    for info in infos:
        if isinstance(info, dict) and info.get("config_name", "default") == name:
            try:
                return sum(int(s["num_examples"]) for s in info["splits"])
            except (KeyError, TypeError, ValueError):
                return None
    return None


def _remote_text(api: HfApi, repo_id: str, sha: str, entry: RepoFile | None) -> str | None:
    """A small remote file's text at commit ``sha`` (one GET, nothing cached), or None if absent or too big."""
    if entry is None or entry.size > _GUARD_READ_LIMIT:
        return None
    url = hf_hub_url(repo_id, entry.path, repo_type="dataset", revision=sha, endpoint=api.endpoint)
    response = get_session().get(
        url, headers=build_hf_headers(token=api.token, library_name="chatdata"), follow_redirects=True
    )
    hf_raise_for_status(response)
    return response.content.decode("utf-8", errors="replace")


def remote_default_rows(build: dict[str, Any], meta: dict[str, Any]) -> tuple[int, str] | None:
    """(rows, where from) of the remote's default config: its ``build.json``, else its card's ``dataset_info``."""
    for path, rows in (("build.json", _rows_from_build(build)), ("README.md", _rows_from_card(meta))):
        if rows is not None:
            return rows, path
    return None


def _is_chatdata(build: dict[str, Any], meta: dict[str, Any]) -> bool:
    """Whether chatdata wrote the remote version: its ``build.json`` has ``chatdata_version``, or its card is
    tagged ``chatdata``."""
    tags = meta.get("tags")
    return "chatdata_version" in build or "chatdata" in (tags if isinstance(tags, list) else [tags])


def _build_files(build: dict[str, Any]) -> set[str]:
    """Every ``outputs.<config>.<split>.files[].path`` of a ``build.json``."""
    paths: set[str] = set()
    try:
        for splits in (build.get("outputs") or {}).values():
            for info in splits.values():
                paths |= {str(f["path"]) for f in info.get("files") or [] if isinstance(f, dict) and "path" in f}
    except (AttributeError, TypeError):
        pass  # a malformed list declares what was read so far: fewer deletions, never more
    return paths


def declared_outputs(build: dict[str, Any], meta: dict[str, Any], remote: dict[str, RepoFile]) -> frozenset[str]:
    """The remote paths chatdata's previous version declared as its outputs: ``.parquet`` files matched by its
    card's ``configs`` data files or listed in its ``build.json`` outputs, and the card's plots (``PLOT_FILES``,
    at the root). Empty when chatdata did not write the remote (see :func:`_is_chatdata`): only these may be
    deleted."""
    if not _is_chatdata(build, meta):
        return frozenset()
    configs = meta.get("configs")
    configs = [c for c in configs if isinstance(c, dict)] if isinstance(configs, list) else []
    try:
        patterns = [p for c in configs for p in _patterns(c)]
    except (AttributeError, TypeError):
        patterns = []
    listed = _build_files(build)
    data = {
        p
        for p in remote
        if p.endswith(".parquet") and (p in listed or any(fnmatch.fnmatchcase(p, pat) for pat in patterns))
    }
    return frozenset(data | {p for p in PLOT_FILES if p in remote})


@dataclass(frozen=True)
class Previous:
    """The remote version being replaced, read at the diffed commit: its default config's row count (and where
    from) for the guard, and the paths chatdata declared in it, the only candidates for deletion."""

    rows: tuple[int, str] | None = None
    declared: frozenset[str] = frozenset()
    chatdata: bool = False


def read_previous(api: HfApi, repo_id: str, sha: str, remote: dict[str, RepoFile]) -> Previous:
    build = _remote_build(_remote_text(api, repo_id, sha, remote.get("build.json")))
    meta = _remote_card(_remote_text(api, repo_id, sha, remote.get("README.md")))
    return Previous(remote_default_rows(build, meta), declared_outputs(build, meta, remote), _is_chatdata(build, meta))


def judge(
    repo_id: str,
    revision: str,
    local_rows: int,
    remote: tuple[int, str] | None,
    *,
    max_shrink: float,
    force: bool,
) -> Verdict:
    """Refuse an empty default config, and one smaller than ``remote * (1 - max_shrink)``."""
    remote_rows, source = remote if remote is not None else (None, None)
    refusal = None
    if local_rows == 0:
        refusal = "the default config holds 0 rows, nothing to publish"
    elif remote_rows is not None and local_rows < remote_rows * (1 - max_shrink):
        refusal = (
            f"the default config would shrink from {remote_rows} rows (remote {source}) to {local_rows} "
            f"(-{1 - local_rows / remote_rows:.0%}), more than --max-shrink {max_shrink:g} allows"
        )
    return Verdict(repo_id, revision, local_rows, remote_rows, source, max_shrink, force, refusal)


def _remote_changes(api: HfApi, repo_id: str, sha: str, folder: Path) -> dict[str, Any]:
    """``chatdata diff`` of the remote version at ``sha`` (its ``build.json`` and Parquet files, downloaded to a
    temporary folder) and the local ``folder``."""
    import tempfile

    from chatdata.diff import diff_versions, read_version

    with tempfile.TemporaryDirectory(prefix="chatdata-previous-") as cache:
        remote = api.snapshot_download(
            repo_id, repo_type="dataset", revision=sha, cache_dir=cache, allow_patterns=["build.json", "*.parquet"]
        )
        return diff_versions(read_version(Path(remote), "remote"), read_version(folder, "local"))


def record_changes(api: HfApi, repo_id: str, sha: str, folder: Path) -> bool:
    """Write into ``folder``'s ``build.json`` and card what changed since the version published at ``sha`` (the
    version this publish replaces), when its rows differ; True when the record was rewritten. A remote chatdata
    cannot read leaves the folder as it is."""
    try:
        changes = _remote_changes(api, repo_id, sha, folder)
    except (ChatdataError, OSError, ValueError):
        return False
    if not (any(changes[c] for c in ("added", "removed", "changed", "moved")) or changes["rejects"]):
        return False  # the same rows as published: the folder's record stands
    from chatdata.card.render import write_record
    from chatdata.record import BuildRecord

    record = BuildRecord.read(folder)
    if record.changes == changes:
        return False
    write_record(folder, record.model_copy(update={"changes": changes}))
    return True


def explain_refusal(guard: Verdict, api: HfApi, repo_id: str, sha: str, folder: Path) -> Verdict:
    """``guard`` with its refusal explained by what changed since the remote version (``chatdata diff``): the
    split that shrank most and the reason that removed most of its rows. A remote chatdata cannot diff (not its
    layout) leaves the refusal as it was."""
    import dataclasses

    from chatdata.diff import shrink_summary

    try:
        why = shrink_summary(_remote_changes(api, repo_id, sha, folder))
    except (ChatdataError, OSError, ValueError):
        return guard
    return dataclasses.replace(guard, refusal=f"{guard.refusal} ({why})") if why else guard
