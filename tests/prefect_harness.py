"""A real ``prefect server start`` on 127.0.0.1 for the flow tests, one per test session (per xdist worker).

Not ``prefect_test_harness``: its ephemeral server runs no scheduler, and the deployment test must see the
scheduler create SCHEDULED runs (the check that catches the fastapi / SQLAlchemy drift described in
shared/reference/prefect.md). The server gets a temporary ``PREFECT_HOME`` and SQLite database, no UI, no
analytics, and only the services the tests need.

Importing this module points ``PREFECT_HOME`` at a temporary folder unless it is already set, so no test ever
touches a real Prefect profile; import it before anything imports ``prefect``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from oasst_builders import m, write_jsonl

os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="chatdata-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 150.0
#: services the tests do not need (the scheduler, task-run recorder and event persister stay on)
_OFF = (
    "CANCELLATION_CLEANUP",
    "FOREMAN",
    "LATE_RUNS",
    "PAUSE_EXPIRATIONS",
    "REPOSSESSOR",
    "TRIGGERS",
    "CLEANUP_RECONCILER",
    "DB_VACUUM",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def import_paths() -> list[str]:
    """Where this process imports ``chatdata`` and ``flows`` from (a subprocess must see the same code)."""
    import chatdata
    import flows

    paths = [
        str(Path(chatdata.__file__).resolve().parents[1]),
        str(Path(flows.__file__).resolve().parents[1]),
    ]
    return list(dict.fromkeys(paths))


def _die_with_parent() -> None:
    """In the server process: get SIGTERM when the test process dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class PrefectServer:
    home: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a subprocess (CLI, worker, flow run) that talks to this server."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.home),
            PREFECT_API_URL=self.api_url,
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_UI_ENABLED="false",
            PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{self.home / 'prefect.db'}",
            PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS="2",
            PREFECT_CLI_PROMPT="false",
            PYTHONPATH=os.pathsep.join([*import_paths(), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        )
        env.update({f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false" for name in _OFF})
        env.update(extra)
        return env

    def start(self) -> PrefectServer:
        with (self.home / "server.log").open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "prefect",
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prefect server exited with {self.process.returncode}: {self.log_tail()}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as r,
            ):
                if r.status == 200:
                    return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"prefect server not healthy after {STARTUP_TIMEOUT:.0f} s: {self.log_tail()}")

    def log_tail(self, n: int = 3000) -> str:
        path = self.home / "server.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)

    def run_cli(
        self, *args: str, timeout: float = 180, cwd: Path = REPO, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run ``prefect ARGS`` against this server (from the repository root by default)."""
        return subprocess.run(
            [sys.executable, "-m", "prefect", *args],
            cwd=cwd,
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def server_test(fn: Any) -> Any:
    """Mark a test as needing the loopback Prefect server (``-m "not prefect"`` deselects it)."""
    return pytest.mark.prefect(pytest.mark.usefixtures("prefect_server")(fn))


_shared: PrefectServer | None = None
_users = 0


def _attach() -> PrefectServer:
    """The process's one server (started on first use): test modules that import the fixture each get their
    own fixture definition, and they must not each start a server."""
    global _shared, _users
    if _shared is None or _shared.process is None or _shared.process.poll() is not None:
        home = Path(tempfile.mkdtemp(prefix="chatdata-prefect-server-"))
        _shared = PrefectServer(home, free_port()).start()
        atexit.register(_shared.stop)
    _users += 1
    return _shared


def _detach() -> None:
    global _shared, _users
    _users -= 1
    if _users <= 0 and _shared is not None:
        _shared.stop()
        shutil.rmtree(_shared.home, ignore_errors=True)
        _shared = None


@contextlib.contextmanager
def running_server() -> Iterator[PrefectServer]:
    """The loopback server, with this process's Prefect settings pointed at it for the duration."""
    import prefect.context
    import prefect.settings

    server = _attach()
    try:
        with (
            prefect.settings.temporary_settings(updates={prefect.settings.PREFECT_API_URL: server.api_url}),
            prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()),
        ):
            yield server
    finally:
        _detach()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[PrefectServer]:
    """One loopback Prefect server per test process; in-process flows report to it.

    Register this module in ``tests/conftest.py`` (``pytest_plugins = ["prefect_harness"]``) or import the
    fixture into a test module; either way one server is started per process.
    """
    with running_server() as server:
        yield server


def tiny_source(folder: Path, n_trees: int = 24) -> Path:
    """``n_trees`` clean English trees: prompt -> two answers, one answered again (3 threads per tree)."""
    recs: list[dict[str, Any]] = []
    for t in range(n_trees):
        root = f"t{t:03d}"
        recs += [
            m(
                root,
                None,
                "prompter",
                f"Question number {t} about the weather in town {t}?",
                message_tree_id=root,
            ),
            m(
                f"{root}a",
                root,
                "assistant",
                f"First answer {t}: it will be sunny.",
                message_tree_id=root,
                rank=0,
            ),
            m(
                f"{root}b",
                root,
                "assistant",
                f"Second answer {t}: expect rain.",
                message_tree_id=root,
                rank=1,
            ),
            m(f"{root}c", f"{root}a", "prompter", f"Follow-up {t}: and tomorrow?", message_tree_id=root),
            m(
                f"{root}d",
                f"{root}c",
                "assistant",
                f"Tomorrow {t} looks cloudy.",
                message_tree_id=root,
                rank=0,
            ),
        ]
    folder.mkdir(parents=True, exist_ok=True)
    return write_jsonl(folder / "tiny.messages.jsonl", recs)
