"""Pausing Python's cyclic garbage collector around allocation-heavy batch work."""

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
