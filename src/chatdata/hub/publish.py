"""Publish a built dataset folder to the Hugging Face Hub in one atomic commit.

One ``HfApi.create_commit`` adds every new or changed local file and deletes the remote data files and plots
that chatdata's previous version declared and that no longer exist locally, so readers see the old dataset or
the new one, never a mix. Declared means, in the remote version being replaced (read at the commit that is
diffed): a ``.parquet`` file matched by its card's ``configs`` data files or listed in its ``build.json``
``outputs``, or one of the card's plots (``chatdata.card.PLOT_FILES``, at the root), and only when chatdata
wrote that version (its ``build.json`` has ``chatdata_version`` or its card is tagged ``chatdata``). Any other
remote file (a user's ``extra/eval.parquet``, ``assets/logo.png``, a repo chatdata never published to) is kept
and reported. The plan (``+`` add, ``~`` update, ``-`` delete, the kept files) is printed before the guard's
verdict. The commit is pinned to the remote head that was diffed (``parent_commit``): if anything moved in
between, the plan is recomputed. Transient failures (5xx, 429, dropped connections) are retried with
exponential backoff, re-planning each time, so a commit whose answer was lost is recognised instead of being
made twice. After the commit the remote file list is checked against the expected set (local and kept files).

A guard refuses (:class:`PublishRefused`) to publish a folder whose default config holds no rows, or one that
would shrink the remote's default config by more than ``max_shrink`` (the remote count comes from its
``build.json``, else its card's ``dataset_info``, at the commit that is diffed); ``force`` overrides it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.hf_api import RepoFile

from chatdata.errors import ChatdataError
from chatdata.hub.client import (
    LOGIN_HINT,
    HubAuthError,
    HubError,
    is_transient,
    make_api,
    resolve_token,
    status_of,
    translate,
    validate_repo_id,
)
from chatdata.hub.guard import (
    Previous,
    Verdict,
    explain_refusal,
    judge,
    local_default_rows,
    read_previous,
    record_changes,
)
from chatdata.hub.localfiles import LocalFile, human_size, scan_folder

log = logging.getLogger("chatdata.hub")

#: Files the Hub writes itself: kept without being reported as files chatdata did not write.
HUB_FILES = frozenset({".gitattributes"})
DEFAULT_MAX_SHRINK = 0.5
T = TypeVar("T")


@dataclass(frozen=True)
class FileChange:
    """One file of the plan. ``action`` is ``add``, ``update``, ``unchanged`` or ``delete``."""

    path: str
    size: int
    action: str


@dataclass
class PublishResult:
    """What was (or, for a dry run, would be) uploaded and deleted, and the commit that did it."""

    repo_id: str
    revision: str
    dry_run: bool
    uploads: list[FileChange]
    unchanged: list[FileChange]
    deletions: list[FileChange]
    kept: list[str] = field(default_factory=list)
    remote_listed: bool = True
    note: str = ""
    commit_sha: str | None = None
    commit_url: str | None = None
    pr_url: str | None = None
    attempts: int = 0
    guard: Verdict | None = None

    @property
    def upload_bytes(self) -> int:
        return sum(f.size for f in self.uploads)

    @property
    def changed(self) -> bool:
        return bool(self.uploads or self.deletions)

    def summary(self) -> str:
        """One line: what happened (or would happen)."""
        what = (
            f"{len(self.uploads)} file(s) to upload ({human_size(self.upload_bytes)}), {len(self.deletions)} to delete"
        )
        where = f"{self.repo_id}@{self.revision}"
        if self.dry_run:
            tail = f" ({'' if self.remote_listed else 'remote not read: '}{self.note})" if self.note else ""
            if self.guard is not None and self.guard.refusal is not None:
                tail += f"; {'overridden by --force' if self.guard.force else 'would be REFUSED'}: {self.guard.refusal}"
            return f"dry run for {where}: {what}, {len(self.unchanged)} unchanged{tail}"
        if not self.changed:
            return f"{where} already up to date at {self.commit_sha}"
        target = self.pr_url or self.commit_url or self.commit_sha
        done = f"uploaded {len(self.uploads)} file(s) ({human_size(self.upload_bytes)}), "
        done += f"deleted {len(self.deletions)}"
        return f"published {where}: {done}; commit {self.commit_sha} ({target})"

    @property
    def refused(self) -> bool:
        """A dry run whose real push the guard would refuse."""
        return self.guard is not None and self.guard.blocks

    def lines(self) -> list[str]:
        """The plan, one file per line: ``+`` add, ``~`` update, ``-`` delete."""
        marks = {"add": "+", "update": "~", "delete": "-"}
        return [f"{marks[f.action]} {f.path} ({human_size(f.size)})" for f in [*self.uploads, *self.deletions]]

    @property
    def foreign(self) -> list[str]:
        """Kept remote files chatdata did not write (``kept`` without the Hub's own ``.gitattributes``)."""
        return [p for p in self.kept if p not in HUB_FILES]

    def kept_line(self) -> str | None:
        """One line naming the first few kept remote files chatdata did not write, None if there are none."""
        if not self.foreign:
            return None
        names = ", ".join(self.foreign[:5]) + (", …" if len(self.foreign) > 5 else "")
        return f"kept {len(self.foreign)} remote file(s) chatdata did not write: {names}"

    def plan_lines(self) -> list[str]:
        """:meth:`lines`, then :meth:`kept_line` when files are kept: what is printed before the guard's verdict."""
        kept = self.kept_line()
        return [*self.lines(), *([kept] if kept else [])]


def _remote_files(api: HfApi, repo_id: str, sha: str) -> dict[str, RepoFile]:
    tree = api.list_repo_tree(repo_id, repo_type="dataset", revision=sha, recursive=True)
    return {entry.path: entry for entry in tree if isinstance(entry, RepoFile)}


def _same(local: LocalFile, remote: RepoFile) -> bool:
    if remote.lfs is not None:
        return remote.lfs.sha256 == local.sha256
    return remote.blob_id == local.git_sha1


def _diff(
    local: dict[str, LocalFile], remote: dict[str, RepoFile], declared: frozenset[str]
) -> tuple[list[FileChange], list[FileChange], list[FileChange], list[str]]:
    """(uploads, unchanged, deletions, kept): a remote file missing locally is deleted only if ``declared``."""
    uploads, unchanged = [], []
    for path, item in local.items():
        if path not in remote:
            uploads.append(FileChange(path, item.size, "add"))
        elif _same(item, remote[path]):
            unchanged.append(FileChange(path, item.size, "unchanged"))
        else:
            uploads.append(FileChange(path, item.size, "update"))
    stale = sorted(p for p in remote if p not in local and p in declared)
    deletions = [FileChange(p, remote[p].size, "delete") for p in stale]
    kept = sorted(p for p in remote if p not in local and p not in declared)
    return uploads, unchanged, deletions, kept


def _say(console: Any, message: str) -> None:
    log.info(message)
    if console is not None:
        console.print(message, markup=False, highlight=False)


def _with_retries(
    step: Callable[[int], T], *, max_retries: int, retry_wait: float, console: Any, describe: str
) -> tuple[T, int]:
    """Run ``step(attempt)``; on a transient error (or 412: head moved) wait, back off, and re-run it."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return step(attempt), attempt
        except ChatdataError:
            raise
        except Exception as exc:
            retryable = is_transient(exc) or status_of(exc) == 412
            if not retryable or attempt > max_retries:
                raise _Failed(exc, attempt, retryable) from exc
            wait = retry_wait * (2 ** (attempt - 1))
            _say(
                console,
                f"{describe}: transient error ({type(exc).__name__}), retry {attempt}/{max_retries} in {wait:.1f}s",
            )
            time.sleep(wait)


class _Failed(Exception):
    def __init__(self, exc: BaseException, attempts: int, transient: bool) -> None:
        super().__init__(str(exc))
        self.exc, self.attempts, self.transient = exc, attempts, transient


def publish_folder(
    folder: Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    create_pr: bool = False,
    dry_run: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    max_retries: int = 4,
    retry_wait: float = 2.0,
    commit_message: str | None = None,
    console: Any = None,
    max_shrink: float = DEFAULT_MAX_SHRINK,
    force: bool = False,
) -> PublishResult:
    """Upload ``folder`` to dataset repo ``repo_id`` in one commit; delete the remote data files/plots gone locally
    that chatdata's previous version there declared (its card's ``configs``, its ``build.json`` outputs, the
    card's root plots); every other remote file is kept and listed in ``result.kept``.

    ``revision`` is the target branch (created from ``main`` if missing, unless ``create_pr``), ``create_pr``
    opens a pull request against it instead of committing. ``dry_run`` writes nothing: it returns the exact
    plan (reading the remote listing only if a token is available). ``endpoint`` overrides the Hub URL (tests
    use a loopback server). The token comes from ``token``, ``HF_TOKEN`` or ``hf auth login`` and is never
    printed or stored. Raises a one-line ``ChatdataError`` on bad input, missing/rejected token or a failed
    push.

    The guard raises :class:`PublishRefused` before anything is written when the default config holds 0 rows,
    or when it holds fewer than ``remote * (1 - max_shrink)`` rows (remote: the target's ``build.json``, else
    its card's ``dataset_info``; a new repo or one with neither has no count); ``force`` publishes anyway. A dry
    run never raises for the guard: ``result.guard`` holds the verdict and ``result.refused`` says if it blocks.
    Both print the plan (``result.plan_lines()``: each upload and deletion with its size, then the kept remote
    files chatdata did not write) to ``console`` before the guard's verdict line.
    """
    folder = Path(folder)
    validate_repo_id(repo_id)
    branch = revision or "main"
    if revision is not None and (not revision.strip() or revision.startswith("/") or ".." in revision):
        raise HubError(f"invalid --revision {revision!r}: give a branch name such as 'dev'")
    if not 0.0 <= max_shrink <= 1.0:
        raise HubError(f"--max-shrink must be a fraction in [0, 1] (0.5 refuses losing over half), not {max_shrink}")
    local = scan_folder(folder)
    local_rows = local_default_rows(folder, local)

    def verdict(remote: tuple[int, str] | None) -> Verdict:
        return judge(repo_id, branch, local_rows, remote, max_shrink=max_shrink, force=force)

    resolved = resolve_token(token)
    if dry_run:
        return _dry_run(local, repo_id, branch, resolved, endpoint, console, verdict)
    if verdict(None).blocks:  # empty: refused before any request
        raise verdict(None).error()
    if resolved is None:
        raise HubAuthError(f"no Hugging Face token found to publish {repo_id}: {LOGIN_HINT}")
    api = make_api(endpoint, resolved)
    message = commit_message or f"Publish {folder.name} with chatdata"
    shown: list[list[str]] = []  # the plans printed so far

    def step(attempt: int) -> PublishResult:
        nonlocal local
        base_sha = _ensure_target(api, repo_id, branch, private=private, may_create_branch=not create_pr)
        remote = _remote_files(api, repo_id, base_sha)
        previous = read_previous(api, repo_id, base_sha, remote)
        guard = verdict(previous.rows)
        if guard.refusal is not None and local_rows and previous.rows is not None:
            guard = explain_refusal(guard, api, repo_id, base_sha, folder)
        elif previous.chatdata and record_changes(api, repo_id, base_sha, folder):
            local = scan_folder(folder)  # build.json, the card and its plot now say what changed since the remote
        uploads, unchanged, deletions, kept = _diff(local, remote, previous.declared)
        result = PublishResult(repo_id, branch, False, uploads, unchanged, deletions, kept, attempts=attempt)
        result.guard = guard
        plan = result.plan_lines()
        if not shown or plan != shown[-1]:  # attempt 1, or a re-plan that changed it: plan, then guard verdict
            shown.append(plan)
            for line in plan:
                _say(console, line)
            _say(console, guard.line())
        elif guard.refusal is not None:
            _say(console, guard.line())
        if guard.blocks:
            raise guard.error()
        if not result.changed:
            result.commit_sha = base_sha
            return result
        operations: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationAdd(path_in_repo=f.path, path_or_fileobj=str(local[f.path].abspath)) for f in uploads
        ]
        operations += [CommitOperationDelete(path_in_repo=f.path, is_folder=False) for f in deletions]
        description = f"{len(uploads)} file(s) added or updated, {len(deletions)} stale file(s) deleted"
        if deletions:
            description += ": " + ", ".join(f.path for f in deletions[:50])
            description += ", …" if len(deletions) > 50 else ""
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=message,
            commit_description=description,
            repo_type="dataset",
            revision=branch,
            create_pr=create_pr,
            parent_commit=base_sha,
        )
        result.commit_sha, result.commit_url, result.pr_url = info.oid, str(info.commit_url), info.pr_url
        _verify(api, repo_id, info.oid, local, set(kept))
        return result

    _say(console, f"publishing {folder} to {repo_id}@{branch}" + (" as a pull request" if create_pr else ""))
    try:
        result, attempts = _with_retries(
            step,
            max_retries=max_retries,
            retry_wait=retry_wait,
            console=console,
            describe=f"push to {repo_id}",
        )
    except _Failed as failed:
        error = translate(failed.exc, repo_id=repo_id, action="publish to", token=resolved, revision=branch)
        if failed.transient:
            raise HubError(
                f"push to {repo_id}@{branch} failed after {failed.attempts} attempt(s): {error}; "
                "Hub commits are atomic, so the remote still holds its previous version: "
                "re-run the same command to retry"
            ) from failed.exc
        raise error from failed.exc
    result.attempts = attempts
    _say(console, result.summary())
    return result


def _ensure_target(api: HfApi, repo_id: str, branch: str, *, private: bool, may_create_branch: bool) -> str:
    """Head sha of ``branch``; creates the repo (and a missing branch, from main) first when needed.

    Reading first means an existing repo is never sent a create request: a token that may only open pull
    requests works, and ``private`` only applies to a new repo.
    """
    try:
        info = api.dataset_info(repo_id)
    except RepositoryNotFoundError:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = None
    if private and info is not None and info.private is False:
        raise HubError(
            f"{repo_id} already exists and is public, and --private only applies to a new repo: make it "
            "private in its settings on the Hub or drop --private"
        )
    if branch == "main" and info is not None:
        return _head(api, repo_id, branch, info.sha)
    try:
        return _head(api, repo_id, branch)
    except RevisionNotFoundError:
        if not may_create_branch:
            raise
    api.create_branch(repo_id, branch=branch, repo_type="dataset", exist_ok=True)
    return _head(api, repo_id, branch)


def _head(api: HfApi, repo_id: str, branch: str, sha: str | None = None) -> str:
    sha = sha or api.dataset_info(repo_id, revision=branch).sha
    if not sha:
        raise HubError(f"the Hub did not report a commit sha for {repo_id}@{branch}")
    return sha


def _verify(api: HfApi, repo_id: str, sha: str, local: dict[str, LocalFile], kept: set[str]) -> None:
    remote = _remote_files(api, repo_id, sha)
    expected = set(local) | kept
    missing = sorted(expected - set(remote))
    unexpected = sorted(set(remote) - expected)
    differ = sorted(p for p in local if p in remote and not _same(local[p], remote[p]))
    if missing or unexpected or differ:
        raise HubError(
            f"after commit {sha} the files of {repo_id} do not match the folder (missing: {missing[:5]}, "
            f"unexpected: {unexpected[:5]}, different content: {differ[:5]}); re-run the publish command"
        )


def _dry_run(
    local: dict[str, LocalFile],
    repo_id: str,
    branch: str,
    token: str | None,
    endpoint: str | None,
    console: Any,
    verdict: Callable[[tuple[int, str] | None], Verdict],
) -> PublishResult:
    remote: dict[str, RepoFile] = {}
    previous = Previous()
    listed, note = False, "no token available" if token is None else ""
    if token is not None:
        api = make_api(endpoint, token)
        try:
            try:
                sha = api.dataset_info(repo_id, revision=branch).sha
            except RevisionNotFoundError:
                sha, note = (
                    api.dataset_info(repo_id).sha,
                    f"branch {branch!r} does not exist yet (diffed against main)",
                )
            files = _remote_files(api, repo_id, sha or branch)
            previous = read_previous(api, repo_id, sha or branch, files)
            remote, listed = files, True
        except RepositoryNotFoundError:
            listed, note = True, "the repo does not exist yet and would be created"
        except Exception as exc:
            note = str(translate(exc, repo_id=repo_id, action="read", token=token, revision=branch))
    uploads, unchanged, deletions, kept = _diff(local, remote, previous.declared)
    result = PublishResult(repo_id, branch, True, uploads, unchanged, deletions, kept, listed, note)
    result.guard = verdict(previous.rows)
    for line in result.plan_lines():
        _say(console, line)
    _say(console, result.guard.line() + ("" if listed or result.refused else " (remote not read: shrink unchecked)"))
    _say(console, result.summary())
    return result


def check_push_token(push_to: str | None) -> None:
    """Fail before any building when a build is asked to publish (``--push-to``) and no token is there."""
    if push_to and resolve_token(None) is None:
        raise HubAuthError(f"--push-to {push_to} needs a Hugging Face token: {LOGIN_HINT}")


def publish_built(recipe: str, folder: Path, request: Any, *, console: Any = None) -> PublishResult:
    """Publish one recipe's folder of a build as the request asks (``push_to`` with ``{recipe}`` filled in, its
    branch, privacy, pull request and guard settings): what ``chatdata build --push-to`` and the flow both do."""
    return publish_folder(
        folder,
        request.push_to.replace("{recipe}", recipe),
        private=request.private,
        revision=request.push_revision,
        create_pr=request.create_pr,
        max_shrink=request.max_shrink,
        force=request.force_publish,
        console=console,
    )
