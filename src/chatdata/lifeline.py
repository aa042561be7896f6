"""No process of ours outlives the build that started it, even when the build is killed with SIGKILL.

A child process (a pool worker, a temporary Prefect server) calls :func:`die_with_parent` as it starts: on Linux
the kernel sends it a signal the moment its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread
polls the parent and ends the process when it is gone. Either way a parent that died before the call is noticed
at once (the child was re-parented).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1
#: how often the watchdog looks at its parent where the kernel cannot tell it (seconds)
POLL_SECONDS = 1.0


def _parent_gone(parent: int) -> bool:
    return os.getppid() != parent


def _watch(parent: int) -> None:
    while not _parent_gone(parent):
        time.sleep(POLL_SECONDS)
    os._exit(1)


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> None:
    """End this process when process ``parent`` (the one that started it) dies: ``sig`` from the kernel on
    Linux, a watchdog thread elsewhere. Safe to call in a ``preexec_fn`` or a pool initializer."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0:
                if _parent_gone(parent):  # it died before the call: nobody will send the signal
                    os._exit(1)
                return
        except (OSError, AttributeError):
            pass  # no prctl: fall back to the watchdog
    if _parent_gone(parent):
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="chatdata-lifeline", daemon=True).start()


def preexec(sig: int = signal.SIGTERM) -> object:
    """A ``subprocess.Popen(preexec_fn=...)`` that ties the child to this process (POSIX only)."""
    parent = os.getpid()
    return lambda: die_with_parent(parent, sig)
