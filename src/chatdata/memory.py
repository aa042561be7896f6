"""Memory housekeeping: pausing the cyclic garbage collector around batch work, returning freed memory."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run the block with the cyclic collector off, then restore its state.

    Batch steps that turn a tokenizer's or a frame's output into Python lists create millions of short-lived,
    acyclic objects; each one counts toward the next collection, and every collection walks all the objects
    still alive. Reference counting frees them anyway, so pausing the collector for the block loses nothing.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def release_memory() -> None:
    """Return freed memory to the operating system after a task: Arrow's allocator (mimalloc) keeps freed pages for
    reuse, and after partitioning 1M messages held ~300 MB that no later task of the process would reuse soon.
    (No ``gc.collect()``: frames are freed by reference counting, and a full collection costs ~0.1 s.)"""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
