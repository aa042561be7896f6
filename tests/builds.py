"""Build recipes from tests: the library engine in this process (or with a given executor), no Prefect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatdata.engine import BuildResult, build
from chatdata.executors import Executor
from chatdata.settings import make_request

BENCHMARKS = Path(__file__).parent / "data" / "benchmarks"
#: the benchmarks the StarChat mixes read from the Hub, bound to the excerpts in tests/data/benchmarks (tests never
#: reach the network; a build of anything but the bundled samples fails without them)
HUB_BENCHMARKS = [f"mbpp={BENCHMARKS / 'mbpp.jsonl'}", f"ifeval={BENCHMARKS / 'ifeval_input_data.jsonl'}"]


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
