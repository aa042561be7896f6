"""The Prefect API a build reports to: the server ``PREFECT_API_URL`` names, or a temporary one started here.

Prefect's own ephemeral mode starts a server in a child process that survives a SIGKILLed parent, and every Dask
worker without ``PREFECT_API_URL`` starts one of its own and keeps it. So chatdata starts the temporary server
itself: the same uvicorn app Prefect's ephemeral mode runs, on 127.0.0.1, tied to this process
(:mod:`chatdata.lifeline`) and stopped when the build ends, with ``PREFECT_API_URL`` pointing at it for this
process, its worker processes and (through Prefect's settings context) the tasks it sends to a Dask cluster on
this machine. A cluster on other machines needs a server they can reach: that is refused with one line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from chatdata.errors import ChatdataError
from chatdata.lifeline import preexec

#: seconds a temporary server may take to answer its health check (a fresh PREFECT_HOME migrates its database)
STARTUP_SECONDS = 120
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "0:0:0:0:0:0:0:1"}


@dataclass(frozen=True)
class ApiServer:
    """Where the flow run is recorded: its API URL, and whether it is a temporary server of this build."""

    url: str
    temporary: bool


#: the temporary server this process runs (set while :func:`api_server` runs one), else None
running: ApiServer | None = None


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def loopback(address: str) -> bool:
    """The host of ``tcp://HOST:PORT`` (a Dask scheduler) is this machine's loopback."""
    return (urlparse(address).hostname or "") in _LOOPBACK


def _start(port: int, log: Path) -> subprocess.Popen[bytes]:
    """Prefect's ephemeral server command (``SubprocessASGIServer``), tied to this process."""
    import prefect
    from prefect.settings import get_current_settings

    env = {
        **os.environ,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        **get_current_settings().to_environment_variables(exclude_unset=True),
    }
    env.pop("PREFECT_API_URL", None)
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(Path(prefect.__file__).resolve().parent.parent),
        "--factory",
        "prefect.server.api.server:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "error",
        "--lifespan",
        "on",
    ]
    with log.open("ab") as fh:
        return subprocess.Popen(
            args,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=fh,
            preexec_fn=preexec(signal.SIGTERM) if os.name == "posix" else None,  # type: ignore[arg-type]
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def api_server(
    log: Path, *, dask_address: str | None = None, say: Callable[[str], None] | None = None
) -> Iterator[ApiServer]:
    """The server of ``PREFECT_API_URL``, or a temporary server on 127.0.0.1 for the duration of the block (with
    ``PREFECT_API_URL`` set to it). A Dask scheduler on another machine needs a real server: refused."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL

    configured = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if configured:
        yield ApiServer(str(configured).rstrip("/"), temporary=False)
        return
    if dask_address and not loopback(dask_address):
        raise ChatdataError(
            f"a Dask cluster ({dask_address}) needs a Prefect server every worker can reach: start one "
            "(prefect server start --host 0.0.0.0) and set PREFECT_API_URL=http://HOST:4200/api"
        )
    log.parent.mkdir(parents=True, exist_ok=True)
    process, url = None, ""
    for _ in range(3):  # the port may be taken between choosing and binding it
        port = _free_port()
        url = f"http://127.0.0.1:{port}/api"
        if say:
            say(f"no PREFECT_API_URL: starting a temporary Prefect server at {url} (it stops with this build)")
        process = _start(port, log)
        deadline = time.monotonic() + STARTUP_SECONDS
        while process.poll() is None and time.monotonic() < deadline and not _healthy(url):
            time.sleep(0.2)
        if process.poll() is None and _healthy(url):
            break
        _stop(process)
        process = None
    if process is None:
        raise ChatdataError(
            f"the temporary Prefect server did not start (its log: {log}); start one with `prefect server start` "
            "and set PREFECT_API_URL"
        )
    global running
    os.environ["PREFECT_API_URL"] = url  # worker processes inherit it
    refresh_global_settings_context()  # Prefect's own threads (events, logs) read the process-wide settings
    running = ApiServer(url, temporary=True)
    try:
        yield running
        _drain()  # the run's last logs and events go to this server, not to a new one at exit
    finally:
        running = None
        os.environ.pop("PREFECT_API_URL", None)
        refresh_global_settings_context()
        _stop(process)


def _drain() -> None:
    """Send the log lines and events Prefect still holds, and stop its senders."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):
            service.drain_all(timeout=15)
