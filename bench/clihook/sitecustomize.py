"""Times the phases of a ``chatdata build`` command that ``bench/run`` starts, from inside that process.

Python imports ``sitecustomize`` at start-up (``site``) from the first folder of ``sys.path`` that has one;
``bench/run`` puts this folder on ``PYTHONPATH`` for the ``chatdata`` commands it runs and names a JSON file in
``CHATDATA_BENCH_PHASES``. The command itself is the unmodified console script. This hook wraps the CLI's own
progress bar (``chatdata.cli._progress``), whose callbacks are the engine's ``on_phase``/``on_done``, and
records when each phase message arrives, how many tasks finished in it and this process's peak RSS; at exit it
writes the file (also after every phase, so a build that is stopped leaves what it finished).

Without the variable it does nothing. The variable is removed at once, so the build's worker processes (which
inherit the environment) do not time themselves. Times are ``perf_counter`` seconds since this hook ran;
``t0_unix`` lets the runner place the interpreter's own start.
"""

from __future__ import annotations

import os

_TARGET = os.environ.pop("CHATDATA_BENCH_PHASES", None)

#: a phase message of ``chatdata.engine.build`` -> the phase it starts
PHASES = (
    ("waited", "waiting for the workspace"),
    ("resolve", "resolve sources"),
    ("partition", "partition"),
    ("stages", "shard stages"),
    ("split plans", "split plans"),
    ("write", "write and cards"),
    ("outputs unchanged", "write and cards"),
)


def phase_name(message: str) -> str:
    return next((name for prefix, name in PHASES if message.startswith(prefix)), message)


def _install(target: str) -> None:
    import atexit
    import json
    import resource
    import time
    from contextlib import contextmanager

    t0, t0_unix = time.perf_counter(), time.time()
    record: dict = {"t0_unix": t0_unix, "phases": []}
    phases: list[dict] = record["phases"]

    def now() -> float:
        return time.perf_counter() - t0

    def peak_gb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9

    def save() -> None:
        tmp = target + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(tmp, target)

    def close_phase() -> None:
        if phases and phases[-1]["end"] is None:
            phases[-1].update(end=now(), rss_gb=peak_gb())

    import chatdata.cli as cli  # what the console script imports first thing anyway

    record["imported"] = now()
    original = cli._progress

    @contextmanager
    def timed_progress():
        record["build_start"] = now()
        with original() as (on_phase, on_done):

            def phase(message: str) -> None:
                close_phase()
                if phases:
                    save()
                phases.append({"phase": phase_name(message), "message": message, "start": now(), "end": None,
                               "tasks": 0, "rss_gb": None})  # fmt: skip
                on_phase(message)

            def done(phase_: str, label: str) -> None:
                if phases:
                    phases[-1]["tasks"] += 1
                on_done(phase_, label)

            try:
                yield phase, done
            finally:
                close_phase()  # the pool has shut down by now (it closes before the progress bar)
                record["build_end"] = now()
                save()

    cli._progress = timed_progress

    def at_exit() -> None:
        record["exit"] = now()
        save()

    atexit.register(at_exit)


if _TARGET:
    _install(_TARGET)
