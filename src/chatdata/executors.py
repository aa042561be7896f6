"""Where the build's tasks run: one small interface, several executors (as datatrove runs one pipeline locally,
on Slurm or on Ray).

The engine (:mod:`chatdata.engine`) cuts a build into phases of independent tasks (partition each source, run
each shard, plan each recipe, write each recipe) and hands every phase to :meth:`Executor.map`. A task is a
module-level function of one picklable argument that reads and writes the workspace, so it can run in this
process, in a worker process, or as a Prefect task on a Dask cluster (``flows/build.py``); the bytes of the
output do not depend on where it ran.

- :class:`InProcess`: everything in this process, in order (one worker; what tests and tiny builds use);
- :class:`ProcessPool`: a pool of spawned worker processes (default: one per core), started in the background
  as soon as the build knows it has parallel work, so the workers import while this process ingests. The workers
  die with this process, even when it is killed with SIGKILL (:mod:`chatdata.lifeline`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
OnDone = Callable[[str], None]


class Executor(ABC):
    """Runs the independent tasks of one build phase."""

    #: how many tasks can run at once
    workers: int = 1

    @abstractmethod
    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        phase: str,
        labels: Sequence[str] | None = None,
        on_done: OnDone | None = None,
    ) -> list[R]:
        """``[fn(item) for item in items]``, possibly in parallel; results in ``items`` order. ``labels`` name
        the tasks (progress, task names); ``on_done(label)`` is called as each finishes. The first failure is
        raised once every submitted task has ended."""

    def prepare(self, parallel_tasks: int) -> None:  # noqa: B027  (a hint: most executors ignore it)
        """A hint that phases of about ``parallel_tasks`` tasks are coming (a pool may start its workers)."""

    def close(self) -> None:  # noqa: B027  (most executors hold nothing)
        """Release workers."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _labels(items: Sequence[Any], labels: Sequence[str] | None, phase: str) -> list[str]:
    return list(labels) if labels is not None else [f"{phase} {i + 1}/{len(items)}" for i in range(len(items))]


class InProcess(Executor):
    """Run every task here, one after the other."""

    workers = 1

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        phase: str,
        labels: Sequence[str] | None = None,
        on_done: OnDone | None = None,
    ) -> list[R]:
        out = []
        for item, label in zip(items, _labels(items, labels, phase), strict=True):
            out.append(fn(item))
            if on_done:
                on_done(label)
        return out


def _warm(parent: int) -> None:
    """Worker initializer: die with the build's process (even a SIGKILLed one), then import what every task needs
    while the parent is still busy."""
    from chatdata.lifeline import die_with_parent

    die_with_parent(parent)
    import polars  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import chatdata.output
    import chatdata.shards  # noqa: F401


class ProcessPool(Executor):
    """Spawned worker processes (polars is not fork-safe). The pool starts when :meth:`prepare` announces
    parallel work; until then, and for a phase of one task, tasks run in this process (spawning costs a second
    of imports per worker, more than a small build's work)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None
        self._saved: str | None = None

    def _start(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            # the workers share the cores: a polars thread pool of cores/workers threads each (spawned children
            # read the variable when they start, so it is restored once the pool is up)
            self._saved = os.environ.get("POLARS_MAX_THREADS")
            os.environ["POLARS_MAX_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.workers))
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_warm,
                initargs=(os.getpid(),),
            )
            for _ in range(self.workers):  # start every worker now, not at the first task
                self._pool.submit(int)
        return self._pool

    def prepare(self, parallel_tasks: int) -> None:
        if self.workers > 1 and parallel_tasks > 1:
            self._start()

    def map(
        self,
        fn: Callable[[T], R],
        items: Sequence[T],
        *,
        phase: str,
        labels: Sequence[str] | None = None,
        on_done: OnDone | None = None,
    ) -> list[R]:
        names = _labels(items, labels, phase)
        if len(items) <= 1 or self._pool is None:  # a small build never started the pool (see prepare)
            return InProcess().map(fn, items, phase=phase, labels=names, on_done=on_done)
        pool = self._start()
        futures: dict[Future[R], int] = {pool.submit(fn, item): i for i, item in enumerate(items)}
        results: list[Any] = [None] * len(items)
        error: BaseException | None = None
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except BaseException as exc:  # keep the first error; let the others finish
                error = error or exc
                for other in futures:
                    other.cancel()
                continue
            if on_done:
                on_done(names[i])
        if error is not None:
            raise error
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
            if self._saved is None:
                os.environ.pop("POLARS_MAX_THREADS", None)
            else:
                os.environ["POLARS_MAX_THREADS"] = self._saved
