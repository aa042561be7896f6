"""A Hugging Face Hub-compatible HTTP server on 127.0.0.1 for tests (stdlib only, in a thread).

It implements the endpoints that ``huggingface_hub`` (``HfApi``, ``hf_hub_download``, ``snapshot_download``,
``HfFileSystem``) and ``datasets.load_dataset("org/name", config)`` call: create repo, repo/revision info,
preupload (always ``uploadMode: "regular"`` so content comes inline), commit (NDJSON), tree listing,
paths-info, refs, commits, branch creation, resolve (HEAD/GET with ``X-Repo-Commit``, ``ETag``,
``Content-Length`` and range requests), whoami, ``validate-yaml`` and ``agent-harnesses`` (an empty registry).

State is an in-memory dict of repos; every commit is atomic and gets a new sha over an immutable file mapping.
Tokens are checked: a wrong ``Authorization`` header gets 401 on every endpoint, writes need a ``write``
token. ``HubServer.inject(...)`` fails the next matching requests (HTTP status, dropped connection before the
change is applied, or dropped connection *after* it is applied: the "lost response" case).

Use ``running_hub()`` (context manager) or the ``hub_server`` fixture (register with ``pytest_plugins =
["hubserver"]`` in ``tests/conftest.py`` or ``from hubserver import hub_server``). ``hub_env`` gives the
environment for a subprocess that must talk to the server (``HF_ENDPOINT`` is read at import time by
``huggingface_hub`` and ``datasets``); ``load_dataset_rows`` runs ``datasets.load_dataset`` in such a
subprocess with every non-loopback connection refused.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

DEFAULT_TOKEN = "hf_loopbackWriteToken0123456789abcdef"
READ_TOKEN = "hf_loopbackReadToken0123456789abcdef"
GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
_REPO_TYPES = {"datasets": "dataset", "spaces": "space", "models": "model", "kernels": "kernel"}
_BRANCH_RE = re.compile(r"^(?!refs/)(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._/-]*$")


def git_blob_sha1(data: bytes) -> str:
    """Git blob OID of ``data`` (what the Hub reports as ``oid`` / ``ETag`` for regular files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass(frozen=True)
class Commit:
    sha: str
    parent: str | None
    files: Mapping[str, bytes]
    last_touch: Mapping[str, str]
    title: str
    message: str
    date: str
    author: str
    added: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)  # "main", "dev", "refs/pr/1" -> sha
    pr_count: int = 0
    api_commits: int = 0  # commits made through the commit endpoint (the initial .gitattributes excluded)

    def resolve(self, revision: str) -> str | None:
        if revision in self.refs:
            return self.refs[revision]
        if revision.startswith("refs/heads/") and revision[11:] in self.refs:
            return self.refs[revision[11:]]
        if re.fullmatch(r"[0-9a-f]{7,40}", revision):
            hits = [sha for sha in self.commits if sha.startswith(revision)]
            if len(hits) == 1:
                return hits[0]
        return None


@dataclass
class Fault:
    endpoint: str  # "commit", "preupload", "tree", "paths-info", "resolve", "info", "create", "branch", "*"
    kind: str  # "status" | "drop" | "drop_after_apply"
    status: int = 500
    remaining: int = 1


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    endpoint: str
    status: int
    authenticated: bool


class _HTTPError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict | None = None,
        extra: dict | None = None,
    ):
        super().__init__(message)
        self.extra = extra or {}
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


class _Dropped(Exception):
    """The handler closed the connection on purpose (fault injection)."""


class HubServer:
    """In-memory Hub. ``url`` is the endpoint to give to ``HfApi(endpoint=...)`` / ``HF_ENDPOINT``."""

    def __init__(self, tokens: Mapping[str, str] | None = None, user: str = "tester") -> None:
        self.tokens = dict(tokens or {DEFAULT_TOKEN: "write", READ_TOKEN: "read"})
        self.token = next(t for t, role in self.tokens.items() if role == "write")
        self.user = user
        self.repos: dict[tuple[str, str], Repo] = {}
        self.faults: list[Fault] = []
        self.requests: list[RequestRecord] = []
        self.lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._seq = 0

    # ---- lifecycle
    def start(self) -> HubServer:
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="hubserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # ---- test helpers
    def inject(self, endpoint: str = "commit", kind: str = "status", status: int = 500, times: int = 1) -> None:
        """Fail the next ``times`` requests to ``endpoint``: answer ``status``, or drop the connection."""
        assert kind in {"status", "drop", "drop_after_apply"}
        with self.lock:
            self.faults.append(Fault(endpoint, kind, status, times))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def head(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> str:
        sha = self.repo(repo_id, repo_type).resolve(revision)
        assert sha is not None, f"{repo_id}@{revision} not found"
        return sha

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "dataset") -> dict[str, bytes]:
        repo = self.repo(repo_id, repo_type)
        return dict(repo.commits[self.head(repo_id, revision, repo_type)].files)

    def commit_count(self, repo_id: str, repo_type: str = "dataset") -> int:
        """Commits created through the commit endpoint (the repo's initial commit is not counted)."""
        return self.repo(repo_id, repo_type).api_commits

    def writes(self) -> list[RequestRecord]:
        """Requests that change state (create repo, branch, commit)."""
        return [r for r in self.requests if r.endpoint in {"create", "commit", "branch", "delete"}]

    def create_repo(self, repo_id: str, repo_type: str = "dataset", private: bool = False) -> Repo:
        """Create a repo directly (with the Hub's initial ``.gitattributes`` commit)."""
        with self.lock:
            key = (repo_type, repo_id)
            if key in self.repos:
                return self.repos[key]
            repo = Repo(repo_type, repo_id, private, _now())
            first = self._new_commit(repo, None, {".gitattributes": GITATTRIBUTES}, "initial commit", "", (), ())
            repo.refs["main"] = first.sha
            self.repos[key] = repo
            return repo

    def _new_commit(
        self,
        repo: Repo,
        parent: Commit | None,
        files: dict[str, bytes],
        title: str,
        message: str,
        added: tuple[str, ...],
        deleted: tuple[str, ...],
    ) -> Commit:
        self._seq += 1
        digest = hashlib.sha1()
        digest.update(f"{repo.repo_id}\0{parent.sha if parent else ''}\0{title}\0{self._seq}".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{git_blob_sha1(files[path])}\0".encode())
        sha = digest.hexdigest()
        touch = dict(parent.last_touch) if parent else {}
        for path in deleted:
            touch.pop(path, None)
        for path in added:
            touch[path] = sha
        commit = Commit(
            sha,
            parent.sha if parent else None,
            MappingProxyType(dict(files)),
            MappingProxyType(touch),
            title,
            message,
            _now(),
            self.user,
            added,
            deleted,
        )
        repo.commits[sha] = commit
        return commit

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.remaining > 0 and fault.endpoint in (endpoint, "*"):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                    return fault
        return None


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else ~40 ms per request (Nagle + delayed ACK)
    server_version = "LoopbackHub/1.0"
    _body: bytes | None = None
    _suppress = False
    _logged = False

    # ---- plumbing
    def log_message(self, format: str, *args: Any) -> None:  # quiet: no request lines on stderr
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _read_body(self, limit: int | None = None) -> bytes:
        """The request body, read once (``limit`` reads a prefix only: before dropping the connection)."""
        if self._body is not None:
            return self._body
        body = self._read_raw(limit)
        if limit is None:
            self._body = body
        return body

    def _read_raw(self, limit: int | None) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length if limit is None else min(limit, length))

    def _log(self, status: int) -> None:
        """Record the request before answering, so a client that got the answer always finds it in the log."""
        if not self._logged:
            self._logged = True
            with self.hub.lock:
                self.hub.requests.append(RequestRecord(*self._pending, status, self._authenticated))

    def _drop(self) -> None:
        """Close the connection without an answer (the client sees a transport error)."""
        self._log(0)
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        raise _Dropped

    def _send(self, status: int, body: bytes = b"", ctype: str = "application/json", headers: dict | None = None):
        if self._suppress:  # "lost answer" fault: the change is applied, the answer never sent
            return
        self._log(status)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, payload: Any, headers: dict | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), headers=headers)

    def _token_role(self) -> tuple[bool, str | None]:
        """(header present, role) — raises 401 for a wrong token, like the Hub."""
        auth = self.headers.get("Authorization")
        if not auth:
            return False, None
        token = auth.removeprefix("Bearer ").strip()
        role = self.hub.tokens.get(token)
        if role is None:
            raise _HTTPError(401, "Invalid credentials in Authorization header")
        return True, role

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        parts = [unquote(p) for p in split.path.split("/")[1:]]
        query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self._body, self._logged, self._authenticated, self._suppress = None, False, False, False
        self._pending = (method, split.path, "unknown")
        try:
            endpoint, handler, args = self._route(method, parts)
            self._pending = (method, split.path, endpoint)
            self._authenticated, role = self._token_role()
            fault = self.hub._take_fault(endpoint)
            if fault is not None and fault.kind == "status":
                raise _HTTPError(fault.status, f"Injected failure on {endpoint}")
            if fault is not None and fault.kind == "drop":
                self._read_body(limit=16)
                self._drop()
            self._suppress = fault is not None and fault.kind == "drop_after_apply"
            handler(role, query, *args)  # applies the change and answers (unless the answer is suppressed)
            if self._suppress:
                self._drop()
        except _Dropped:
            pass
        except _HTTPError as err:
            if method in ("POST", "PUT", "DELETE"):
                with contextlib.suppress(Exception):
                    self._read_body()
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._json(err.status, {"error": err.message, **err.extra}, headers=headers)

    def _route(self, method: str, parts: list[str]):
        if parts[:1] == ["api"]:
            rest = parts[1:]
            if rest == ["whoami-v2"] and method == "GET":
                return "whoami", self._whoami, ()
            if rest == ["validate-yaml"] and method == "POST":
                return "validate-yaml", self._validate_yaml, ()
            if rest == ["agent-harnesses"] and method == "GET":
                return "agent-harnesses", self._agent_harnesses, ()
            if rest == ["repos", "create"] and method == "POST":
                return "create", self._create_repo, ()
            if rest == ["repos", "delete"] and method == "DELETE":
                return "delete", self._delete_repo, ()
            if len(rest) >= 3 and rest[0] in _REPO_TYPES:
                repo_type, repo_id, tail = _REPO_TYPES[rest[0]], f"{rest[1]}/{rest[2]}", rest[3:]
                if not tail and method == "GET":
                    return "info", self._info, (repo_type, repo_id, "main")
                action, args = tail[0], tail[1:]
                table = {
                    ("GET", "revision"): ("info", self._info),
                    ("GET", "tree"): ("tree", self._tree),
                    ("POST", "paths-info"): ("paths-info", self._paths_info),
                    ("POST", "preupload"): ("preupload", self._preupload),
                    ("POST", "commit"): ("commit", self._commit),
                    ("POST", "branch"): ("branch", self._create_branch),
                    ("GET", "refs"): ("refs", self._refs),
                    ("GET", "commits"): ("commits", self._commits),
                }
                if (method, action) in table:
                    name, handler = table[(method, action)]
                    revision = args[0] if args else "main"
                    path = "/".join(args[1:])
                    return name, handler, (repo_type, repo_id, revision, path)
        # resolve: /{datasets/}org/name/resolve/{rev}/{path...}
        if method in ("GET", "HEAD"):
            if parts and parts[0] in _REPO_TYPES and len(parts) >= 6 and parts[3] == "resolve":
                repo_type, repo_id, rev, path = (
                    _REPO_TYPES[parts[0]],
                    f"{parts[1]}/{parts[2]}",
                    parts[4],
                    parts[5:],
                )
                return "resolve", self._resolve, (repo_type, repo_id, rev, "/".join(path))
            if len(parts) >= 5 and parts[2] == "resolve":
                return (
                    "resolve",
                    self._resolve,
                    ("model", f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])),
                )
        raise _HTTPError(404, f"No route for {method} /{'/'.join(parts)}")

    # ---- repo access
    def _repo(self, role: str | None, repo_type: str, repo_id: str) -> Repo:
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and role is None):
            raise _HTTPError(404, "Repository not found", "RepoNotFound")
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        sha = repo.resolve(revision)
        if sha is None:
            raise _HTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo.commits[sha]

    @staticmethod
    def _need_write(role: str | None) -> None:
        if role is None:
            raise _HTTPError(401, "You must be authenticated to perform this action")
        if role != "write":
            raise _HTTPError(403, "You don't have the rights to write to this repository")

    # ---- endpoints
    def _whoami(self, role: str | None, query: dict) -> int:
        if role is None:
            raise _HTTPError(401, "Invalid username or password.")
        self._json(
            200,
            {
                "type": "user",
                "name": self.hub.user,
                "fullname": self.hub.user,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "loopback", "role": role}},
            },
        )
        return 200

    def _validate_yaml(self, role: str | None, query: dict) -> int:
        payload = json.loads(self._read_body() or b"{}")
        errors = []
        try:
            import yaml

            text = payload.get("content", "")
            if text.startswith("---"):
                block = text.split("---", 2)[1]
                if not isinstance(yaml.safe_load(block) or {}, dict):
                    errors.append({"message": "metadata must be a mapping"})
        except Exception as exc:
            errors.append({"message": f"invalid YAML: {exc}"})
        self._json(400 if errors else 200, {"errors": errors, "warnings": []})
        return 400 if errors else 200

    def _agent_harnesses(self, role: str | None, query: dict) -> int:
        self._json(200, {"standardEnvVars": [], "harnesses": {}})
        return 200

    def _create_repo(self, role: str | None, query: dict) -> int:
        payload = json.loads(self._read_body() or b"{}")
        self._need_write(role)
        name, org = payload.get("name"), payload.get("organization") or self.hub.user
        repo_type = payload.get("type") or "model"
        repo_id = f"{org}/{name}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.hub.url}/{prefix}{repo_id}"
        with self.hub.lock:
            if (repo_type, repo_id) in self.hub.repos:
                raise _HTTPError(409, "You already created this repo", extra={"url": url})
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            self.hub.create_repo(repo_id, repo_type, private)
        self._json(200, {"url": url, "name": repo_id, "id": repo_id})
        return 200

    def _delete_repo(self, role: str | None, query: dict) -> int:
        payload = json.loads(self._read_body() or b"{}")
        self._need_write(role)
        key = (
            payload.get("type") or "model",
            f"{payload.get('organization') or self.hub.user}/{payload['name']}",
        )
        with self.hub.lock:
            if self.hub.repos.pop(key, None) is None:
                raise _HTTPError(404, "Repository not found", "RepoNotFound")
        self._json(200, {})
        return 200

    def _file_entry(self, repo: Repo, commit: Commit, path: str, expand: bool) -> dict:
        data = commit.files[path]
        entry: dict[str, Any] = {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}
        if expand:
            touched = repo.commits.get(commit.last_touch.get(path, commit.sha), commit)
            entry["lastCommit"] = {"id": touched.sha, "title": touched.title, "date": touched.date}
        return entry

    def _dir_entry(self, commit: Commit, path: str, expand: bool) -> dict:
        children = sorted(p for p in commit.files if p.startswith(path + "/"))
        oid = hashlib.sha1("\0".join(f"{p}:{git_blob_sha1(commit.files[p])}" for p in children).encode())
        entry: dict[str, Any] = {"type": "directory", "oid": oid.hexdigest(), "size": 0, "path": path}
        if expand:
            entry["lastCommit"] = {"id": commit.sha, "title": commit.title, "date": commit.date}
        return entry

    @staticmethod
    def _dirs(files: Mapping[str, bytes]) -> set[str]:
        dirs: set[str] = set()
        for path in files:
            parts = path.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return dirs

    def _info(self, role: str | None, query: dict, repo_type: str, repo_id: str, revision: str, *_: str) -> int:
        repo = self._repo(role, repo_type, repo_id)
        commit = self._commit_at(repo, revision)
        card: Any = None
        readme = commit.files.get("README.md", b"").decode("utf-8", "replace")
        if readme.startswith("---"):
            with contextlib.suppress(Exception):
                import yaml

                card = yaml.safe_load(readme.split("---", 2)[1])
        author = repo_id.split("/")[0]
        payload = {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
            "id": repo_id,
            "author": author,
            "sha": commit.sha,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": repo.created_at,
            "lastModified": commit.date,
            "usedStorage": sum(len(v) for v in commit.files.values()),
            "siblings": [
                {"rfilename": p, "size": len(d), "blobId": git_blob_sha1(d)} for p, d in sorted(commit.files.items())
            ],
        }
        if isinstance(card, dict):
            payload["cardData"] = card
        self._json(200, payload)
        return 200

    def _tree(self, role: str | None, query: dict, repo_type: str, repo_id: str, revision: str, path: str) -> int:
        repo = self._repo(role, repo_type, repo_id)
        commit = self._commit_at(repo, revision)
        recursive = query.get("recursive", "false").lower() in {"1", "true"}
        expand = query.get("expand", "false").lower() in {"1", "true"}
        path = path.strip("/")
        dirs = self._dirs(commit.files)
        if path and path not in dirs:
            raise _HTTPError(404, f"Path {path} not found in tree", "EntryNotFound")
        prefix = f"{path}/" if path else ""
        out = []
        for d in sorted(dirs):
            if d.startswith(prefix) and (recursive or "/" not in d[len(prefix) :]):
                out.append(self._dir_entry(commit, d, expand))
        for p in sorted(commit.files):
            if p.startswith(prefix) and (recursive or "/" not in p[len(prefix) :]):
                out.append(self._file_entry(repo, commit, p, expand))
        self._json(200, out)
        return 200

    def _paths_info(self, role: str | None, query: dict, repo_type: str, repo_id: str, revision: str, _: str):
        body = self._read_body().decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = json.loads(body or "{}")
            paths, expand = form.get("paths", []), bool(form.get("expand"))
        else:
            parsed = parse_qs(body, keep_blank_values=True)
            paths = parsed.get("paths", [])
            expand = parsed.get("expand", ["false"])[-1].lower() in {"1", "true"}
        repo = self._repo(role, repo_type, repo_id)
        commit = self._commit_at(repo, revision)
        dirs = self._dirs(commit.files)
        out = []
        for p in paths:
            p = p.strip("/")
            if p in commit.files:
                out.append(self._file_entry(repo, commit, p, expand))
            elif p in dirs:
                out.append(self._dir_entry(commit, p, expand))
        self._json(200, out)
        return 200

    def _refs(self, role: str | None, query: dict, repo_type: str, repo_id: str, *_: str) -> int:
        repo = self._repo(role, repo_type, repo_id)
        branches = [
            {"name": n, "ref": f"refs/heads/{n}", "targetCommit": s}
            for n, s in repo.refs.items()
            if not n.startswith("refs/")
        ]
        prs = [{"name": n, "ref": n, "targetCommit": s} for n, s in repo.refs.items() if n.startswith("refs/pr/")]
        self._json(200, {"branches": branches, "converts": [], "tags": [], "pullRequests": prs})
        return 200

    def _commits(self, role: str | None, query: dict, repo_type: str, repo_id: str, revision: str, _: str) -> int:
        repo = self._repo(role, repo_type, repo_id)
        commit: Commit | None = self._commit_at(repo, revision)
        out = []
        while commit is not None:
            out.append(
                {
                    "id": commit.sha,
                    "title": commit.title,
                    "message": commit.message,
                    "authors": [{"user": commit.author}],
                    "date": commit.date,
                }
            )
            commit = repo.commits.get(commit.parent) if commit.parent else None
        self._json(200, out)
        return 200

    def _create_branch(self, role: str | None, query: dict, repo_type: str, repo_id: str, branch: str, _: str):
        payload = json.loads(self._read_body() or b"{}")
        self._need_write(role)
        repo = self._repo(role, repo_type, repo_id)
        if not _BRANCH_RE.match(branch):
            raise _HTTPError(400, f"Invalid reference for a branch: {branch}")
        with self.hub.lock:
            if branch in repo.refs:
                raise _HTTPError(409, "Reference already exists")
            start = self._commit_at(repo, payload.get("startingPoint") or "main")
            repo.refs[branch] = start.sha
        self._json(200, {})
        return 200

    def _preupload(self, role: str | None, query: dict, repo_type: str, repo_id: str, revision: str, _: str):
        payload = json.loads(self._read_body() or b"{}")
        repo = self._repo(role, repo_type, repo_id)
        if query.get("create_pr") != "1":
            self._need_write(role)
        commit = self._commit_at(repo, revision)
        files = []
        for item in payload.get("files", []):
            remote = commit.files.get(item["path"])
            files.append(
                {
                    "path": item["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": git_blob_sha1(remote) if remote is not None else None,
                }
            )
        self._json(200, {"files": files, "commitOid": commit.sha})
        return 200

    def _commit(self, role: str | None, query: dict, repo_type: str, repo_id: str, revision: str, _: str) -> int:
        body = self._read_body()
        repo = self._repo(role, repo_type, repo_id)
        create_pr = query.get("create_pr") == "1"
        if not create_pr:
            self._need_write(role)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise _HTTPError(400, "First line of the commit payload must be the header")
        header = lines[0]["value"]
        with self.hub.lock:
            if revision not in repo.refs and not (create_pr and repo.resolve(revision)):
                if repo.resolve(revision) is not None:
                    raise _HTTPError(400, f"Cannot commit to a commit id: {revision}")
                raise _HTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            base = repo.commits[repo.resolve(revision)]  # type: ignore[index]
            parent_sha = header.get("parentCommit")
            if parent_sha is not None:
                parent_full = repo.resolve(parent_sha)
                if parent_full is None:
                    raise _HTTPError(404, f"Invalid parent commit: {parent_sha}", "RevisionNotFound")
                if create_pr:
                    base = repo.commits[parent_full]
                elif parent_full != base.sha:
                    raise _HTTPError(412, "A commit has happened since. Please refresh and try again.")
            files = dict(base.files)
            added, deleted = [], []
            for line in lines[1:]:
                key, value = line.get("key"), line.get("value", {})
                path = str(value.get("path", ""))
                if not path or path.startswith("/") or ".." in path.split("/"):
                    raise _HTTPError(400, f"Invalid path: {path!r}")
                if key == "file":
                    if value.get("encoding") != "base64":
                        raise _HTTPError(400, "Only base64 encoding is supported")
                    files[path] = base64.b64decode(value["content"])
                    added.append(path)
                elif key == "deletedFile":
                    if path not in files:
                        raise _HTTPError(404, "A file with this name doesn't exist", "EntryNotFound")
                    del files[path]
                    deleted.append(path)
                elif key == "deletedFolder":
                    gone = [p for p in files if p.startswith(path.rstrip("/") + "/")]
                    if not gone:
                        raise _HTTPError(404, "A folder with this name doesn't exist", "EntryNotFound")
                    for p in gone:
                        del files[p]
                    deleted.extend(gone)
                else:
                    raise _HTTPError(400, f"Unsupported commit operation {key!r} (the loopback Hub is regular-only)")
            new = self.hub._new_commit(
                repo,
                base,
                files,
                header.get("summary", ""),
                header.get("description", ""),
                tuple(added),
                tuple(deleted),
            )
            pr_url = None
            if create_pr:
                repo.pr_count += 1
                repo.refs[f"refs/pr/{repo.pr_count}"] = new.sha
                prefix = "" if repo_type == "model" else f"{repo_type}s/"
                pr_url = f"{self.hub.url}/{prefix}{repo_id}/discussions/{repo.pr_count}"
            else:
                repo.refs[revision] = new.sha
            repo.api_commits += 1
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        self._json(
            200,
            {
                "success": True,
                "commitOid": new.sha,
                "commitUrl": f"{self.hub.url}/{prefix}{repo_id}/commit/{new.sha}",
                "pullRequestUrl": pr_url,
                "hookOutput": "",
            },
        )
        return 200

    def _resolve(self, role: str | None, query: dict, repo_type: str, repo_id: str, revision: str, path: str):
        repo = self._repo(role, repo_type, repo_id)
        commit = self._commit_at(repo, revision)
        if path not in commit.files:
            raise _HTTPError(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": commit.sha})
        data = commit.files[path]
        total = len(data)
        headers = {
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{git_blob_sha1(data)}"',
            "Accept-Ranges": "bytes",
        }
        rng = self.headers.get("Range")
        status, body = 200, data
        if rng:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if match is None:
                raise _HTTPError(416, "Bad range", headers={"Content-Range": f"bytes */{total}"})
            first, last = match.groups()
            if first == "":
                start, end = max(total - int(last or 0), 0), total - 1
            else:
                start, end = int(first), min(int(last), total - 1) if last else total - 1
            if start >= total or start > end:
                raise _HTTPError(416, "Range Not Satisfiable", headers={"Content-Range": f"bytes */{total}"})
            status, body = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{total}"
        self._send(status, body, ctype="application/octet-stream", headers=headers)
        return status

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:
            self.close_connection = True

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()


@contextlib.contextmanager
def running_hub(tokens: Mapping[str, str] | None = None) -> Iterator[HubServer]:
    """Start a loopback Hub for the duration of the block."""
    server = HubServer(tokens).start()
    try:
        yield server
    finally:
        server.stop()


def hub_env(server: HubServer, home: Path, token: str | None = None) -> dict[str, str]:
    """Environment for a subprocess that must use ``server`` (and nothing else) as its Hub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=server.url,
        HF_HOME=str(home / "hf_home"),
        HF_DATASETS_CACHE=str(home / "hf_datasets"),
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_UPDATE_DOWNLOAD_COUNTS="0",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
    )
    if token is not None:
        env["HF_TOKEN"] = token
    return env


_LOAD_SCRIPT = r"""
import json, socket, sys
_connect = socket.socket.connect
def _guard(self, address):
    if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
        raise ConnectionRefusedError(f"test guard: no network access to {address[0]}")
    return _connect(self, address)
socket.socket.connect = _guard
import datasets
datasets.config.USE_PARQUET_EXPORT = False  # never ask the dataset viewer (datasets-server.<host>)
datasets.disable_progress_bars()
repo_id, targets = sys.argv[1], json.loads(sys.argv[2])
out = {}
for config, split, revision in targets:
    ds = datasets.load_dataset(repo_id, config, split=split, revision=revision)
    out[f"{config}/{split}"] = ds.to_list()
print("@@ROWS@@" + json.dumps(out, default=str))
"""


def load_dataset_rows(
    server: HubServer,
    repo_id: str,
    targets: list[tuple[str | None, str]] | list[tuple[str | None, str, str | None]],
    home: Path,
    token: str | None = None,
) -> dict[str, list[dict]]:
    """``datasets.load_dataset(repo_id, config, split=...)`` through ``server``, in a subprocess.

    ``targets`` is a list of ``(config, split)`` or ``(config, split, revision)``; the result maps
    ``"config/split"`` to the rows. Runs in a subprocess because ``HF_ENDPOINT`` is read at import time.
    """
    norm = [tuple(t) if len(t) == 3 else (*t, None) for t in targets]
    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_SCRIPT, repo_id, json.dumps(norm)],
        env=hub_env(server, home, token if token is not None else server.token),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"load_dataset subprocess failed:\n{proc.stderr[-4000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("@@ROWS@@"))
    return json.loads(line[len("@@ROWS@@") :])


@pytest.fixture
def hub_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubServer]:
    """A fresh loopback Hub; in-process ``huggingface_hub`` is cut off from the real Hub and the user login.

    Sets ``HF_HUB_DISABLE_XET``/telemetry, points the token file and ``HF_HOME``-derived paths at
    ``tmp_path``, removes ``HF_TOKEN`` (tests pass tokens explicitly or set it themselves) and refuses
    non-loopback sockets.
    """
    from huggingface_hub import constants

    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    _refuse_non_loopback(monkeypatch)
    with running_hub() as server:
        yield server


def _refuse_non_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    original = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise ConnectionRefusedError(f"test guard: no network access to {address[0]}")
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
