"""Command line: ``python -m chatdata.synth sample | forest --messages N --out DIR [--seed S]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from chatdata.errors import ChatdataError
from chatdata.synth.sample import write_sample
from chatdata.synth.writer import write_forest

_DESCRIPTION = "Deterministic synthetic OpenAssistant-shaped data: forests in the Hub schema, and the bundled sample."


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatdata.synth", description=_DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    p_sample = sub.add_parser("sample", help="regenerate the bundled sample")
    p_sample.add_argument("--out", type=Path, default=None, help="folder (default: the package's data/sample)")
    p_forest = sub.add_parser("forest", help="write a big synthetic forest in Hub layout")
    p_forest.add_argument("--messages", type=int, required=True, help="about this many messages")
    p_forest.add_argument("--out", type=Path, required=True, help="folder; the Parquet parts go to OUT/data/")
    p_forest.add_argument("--seed", type=int, default=0)
    p_forest.add_argument("--rows-per-file", type=int, default=500_000)
    p_forest.add_argument("--langs", default=None, help="comma-separated lang codes (default: the oasst-like mix)")
    args = parser.parse_args(argv)
    try:
        if args.command == "sample":
            from chatdata.resources import sample_dir

            result = write_sample(args.out or sample_dir())
            for name, info in result["bad_cases"].items():
                print(f"bad case {name}: line {info['line']} {' '.join(info['message_ids'])}")
        else:
            langs = args.langs.split(",") if args.langs else None
            result = write_forest(
                args.out, args.messages, seed=args.seed, rows_per_file=args.rows_per_file, langs=langs
            )
        for split in ("train", "validation"):
            for path in result[split]:
                print(f"{split}: {path}")
    except ChatdataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
