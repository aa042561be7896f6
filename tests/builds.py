"""Build recipes from tests: the library engine in this process (or with a given executor), no Prefect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatdata.engine import BuildResult, build
from chatdata.executors import Executor
from chatdata.settings import make_request


def build_recipes(
    recipes: list[str], out: Path, *, executor: Executor | None = None, source: Any = None, **settings: Any
) -> dict[str, Path]:
    """Build ``recipes`` into ``out`` (``source``: a path, a list of ``--source`` values or None for the bundled
    sample); return each recipe's folder."""
    return run(recipes, out, executor=executor, source=source, **settings).outputs


def run(
    recipes: list[str], out: Path, *, executor: Executor | None = None, source: Any = None, **settings: Any
) -> BuildResult:
    """Like :func:`build_recipes`, but return the whole :class:`~chatdata.engine.BuildResult`."""
    sources = [] if source is None else [str(s) for s in source] if isinstance(source, list) else [str(source)]
    request = make_request(recipes=recipes, out=str(out), source=sources, **settings)
    return build(request, executor)
