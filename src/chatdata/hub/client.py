"""Shared Hub plumbing: repo-id validation, token lookup, error translation to one line, transient-error test.

The token is only ever handed to ``HfApi``; it is never printed, logged, cached or written, and every message
built here is scrubbed of it.
"""

from __future__ import annotations

import importlib
import re

from huggingface_hub import HfApi, get_token
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from chatdata.errors import ChatdataError

LOGIN_HINT = "set HF_TOKEN to a token with write access or run `hf auth login`"
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID_RE = re.compile(rf"^{_NAME}/{_NAME}$")
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class HubError(ChatdataError):
    """A Hub operation failed; the message is one line and says what to do."""


class HubAuthError(HubError):
    """No token, or the Hub rejected it."""


def validate_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if it is a valid ``namespace/name`` dataset id, else raise a one-line error."""
    if (
        not isinstance(repo_id, str)
        or not _REPO_ID_RE.fullmatch(repo_id)
        or "--" in repo_id
        or ".." in repo_id
        or repo_id.endswith(".git")
    ):
        raise HubError(
            f"invalid Hub repo id {repo_id!r}: use ORG/NAME with letters, digits, '-', '_' or '.' "
            "(no '--' or '..', at most 96 characters per part), e.g. my-org/oasst-chat"
        )
    return repo_id


def resolve_token(token: str | None) -> str | None:
    """The explicit token, else ``HF_TOKEN``, else the ``hf auth login`` token; ``None`` if none."""
    return token or get_token() or None


def make_api(endpoint: str | None, token: str | bool | None) -> HfApi:
    return HfApi(endpoint=endpoint, token=token, library_name="chatdata")


def status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _transport_errors() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for name in ("httpx2", "httpx"):
        try:
            types.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(types)


TRANSPORT_ERRORS = _transport_errors()


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: 5xx/408/429 answers and dropped or refused connections, never 401/403/404."""
    if isinstance(exc, OfflineModeIsEnabled):
        return False
    if isinstance(exc, HfHubHTTPError) and status_of(exc) is not None:
        return status_of(exc) in TRANSIENT_STATUS
    return isinstance(exc, TRANSPORT_ERRORS)


def one_line(text: object, token: str | None = None, limit: int = 300) -> str:
    """Collapse ``text`` to one line, drop URLs' doc boilerplate, scrub the token and cut it to ``limit``."""
    line = " ".join(str(text).split())
    line = re.sub(r"For more (?:information|details)[^.]*?(?:https?://\S+)\.?", "", line).strip()
    if token:
        line = line.replace(token, "***")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def server_message(exc: BaseException) -> str:
    """The Hub's own short error message (``X-Error-Message``) or the exception text."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    return headers.get("X-Error-Message") or str(exc).split("\n")[0]


def translate(exc: BaseException, *, repo_id: str, action: str, token: str | None, revision: str | None = None):
    """Map a ``huggingface_hub``/transport exception to a one-line ``HubError`` (returned, not raised)."""
    status = status_of(exc)
    where = f"{repo_id}@{revision}" if revision else repo_id
    if isinstance(exc, OfflineModeIsEnabled):
        return HubError(f"cannot {action} {where}: HF_HUB_OFFLINE=1 forbids network access; unset it to use the Hub")
    if status == 401 and not isinstance(exc, RepositoryNotFoundError):
        return HubAuthError(f"the Hub rejected the token (401) while trying to {action} {where}: {LOGIN_HINT}")
    if status == 403:
        return HubAuthError(
            f"the token may not {action} {where} (403 Forbidden: "
            f"{one_line(server_message(exc), token, 120)}); "
            f"{LOGIN_HINT}, or use --create-pr to open a pull request instead"
        )
    if isinstance(exc, RevisionNotFoundError):
        return HubError(f"revision {revision!r} does not exist in dataset repo {repo_id}; check --revision")
    if isinstance(exc, RepositoryNotFoundError):
        return HubError(
            f"dataset repo {repo_id} not found (or private and the token cannot read it) while trying to {action} it"
        )
    if isinstance(exc, (EntryNotFoundError, LocalEntryNotFoundError)):
        return HubError(f"cannot {action} {where}: {one_line(exc, token, 200)}")
    if isinstance(exc, HfHubHTTPError):
        return HubError(
            f"the Hub answered {status} while trying to {action} {where}: {one_line(server_message(exc), token)}"
        )
    if isinstance(exc, TRANSPORT_ERRORS):
        return HubError(f"cannot reach the Hub to {action} {where}: {type(exc).__name__}: {one_line(exc, token, 160)}")
    return HubError(f"failed to {action} {where}: {type(exc).__name__}: {one_line(exc, token)}")
