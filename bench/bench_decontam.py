"""What one more benchmark costs the decontamination scan: one automaton for every benchmark of a build.

Scores the distinct message texts of a generated forest (``--messages``, the bundled-sample generator) with the
``decontam`` filter checking HumanEval alone, then HumanEval, MBPP, MT-Bench and IFEval together (MBPP and IFEval
bound to the excerpts in ``tests/data/benchmarks``, plus ``--extra`` synthetic items of 30 words each standing in for
the full benchmarks' sizes), and prints the seconds of each scan and their ratio. Both scans start from a built
automaton (its build is timed on its own). Run: ``PYTHONPATH=src python bench/bench_decontam.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import polars as pl

from chatdata.filters.base import FilterSpec
from chatdata.filters.decontam import DecontamFilter, matcher
from chatdata.settings import BuildSettings
from chatdata.synth.forest import generate_forest

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "benchmarks"


def _filter(benchmarks: list[str], bindings: list[str]) -> DecontamFilter:
    f = DecontamFilter(FilterSpec(name="d", filter="decontam", level="dialogue", settings={"benchmarks": benchmarks}))
    f.bind(BuildSettings(benchmark=bindings))
    return f


def _padded(src: Path, key: str, field: str, extra: int, folder: Path, seed: int) -> Path:
    """``src`` plus ``extra`` synthetic items (30 random words each) under the same id and text fields."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(5000)]
    out = folder / src.name
    lines = src.read_text(encoding="utf-8").splitlines()
    lines += [json.dumps({key: f"x{i}", field: " ".join(rng.choices(words, k=30))}) for i in range(extra)]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--extra", type=int, default=500, help="synthetic items added to each bound benchmark")
    args = parser.parse_args()
    forest = pl.from_arrow(generate_forest(args.messages, seed=0))
    texts = (
        forest.select(pl.col("role").replace_strict({"prompter": "user"}, default="assistant"), "text")
        .unique(maintain_order=True)
        .with_row_index("_i")
    )
    print(f"{texts.height:,} distinct messages of a {args.messages:,}-message forest")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        bound = [
            f"mbpp={_padded(DATA / 'mbpp.jsonl', 'task_id', 'text', args.extra, folder, 1)}",
            f"ifeval={_padded(DATA / 'ifeval_input_data.jsonl', 'key', 'prompt', args.extra, folder, 2)}",
        ]
        seconds = {}
        for label, names in (("HumanEval", ["humaneval"]), ("four", ["humaneval", "mbpp", "mt_bench", "ifeval"])):
            f = _filter(names, bound)
            start = time.perf_counter()
            benchmarks = f.checked()
            matcher(benchmarks, 10, 3)
            built = time.perf_counter() - start
            start = time.perf_counter()
            scores = f.score_messages(texts)
            seconds[label] = time.perf_counter() - start
            texts_n = sum(len(b.texts) for b in benchmarks)
            hits = scores.get_column("_hits").drop_nulls().len()
            print(
                f"{label:<10} {texts_n:>6,} benchmark texts: load + automaton {built:.2f} s, scan "
                f"{seconds[label]:.2f} s ({texts.height / seconds[label]:,.0f} messages/s), {hits} messages hit"
            )
        print(f"scan time, four benchmarks / HumanEval alone: {seconds['four'] / seconds['HumanEval']:.2f}")


if __name__ == "__main__":
    main()
