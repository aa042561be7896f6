"""Throughput of label-mask building and validation (``chatdata.chat.validate.validate_masks``), in dialogues/s.

Dialogues are the root-to-leaf threads of ``../shared/data/oa_export_2023-03_en_100.trees.jsonl`` (repeated to
``--rows``), or synthetic ones when that file is absent; the tokenizer is a byte-level BPE trained here on the
same text (offline, seconds). Prints dialogues/s and tokens/s for the full validation, for validation without
the prompt-prefix check (rule 3), and for the bare ``encode_batch`` call the validation is built on, so the
ratio to the tokenizer's own speed is visible. Run: ``PYTHONPATH=src python bench/bench_masks.py``.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import polars as pl
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from chatdata.chat.dialects import render_batch
from chatdata.chat.masks import make_codec
from chatdata.chat.validate import validate_masks

TREES = Path(__file__).resolve().parents[2] / "shared" / "data" / "oa_export_2023-03_en_100.trees.jsonl"


def threads() -> list[list[dict[str, str]]]:
    """Root-to-leaf threads of the real oasst sample, or synthetic dialogues when it is absent."""
    if not TREES.is_file():
        rng = random.Random(0)
        words = ["the", "a", "of", "to", "and", "in", "is", "you", "that", "it", "can", "I", "what", "do"]
        sent = lambda n: " ".join(rng.choice(words) for _ in range(n)) + "."  # noqa: E731
        return [
            [{"role": ("user", "assistant")[i % 2], "content": sent(rng.randint(5, 200))} for i in range(4)]
            for _ in range(500)
        ]
    out: list[list[dict[str, str]]] = []

    def walk(node: dict, path: list[dict[str, str]]) -> None:
        path = [
            *path,
            {"role": "user" if node["role"] == "prompter" else "assistant", "content": node["text"]},
        ]
        if not node.get("replies"):
            out.append(path)
        for reply in node.get("replies", []):
            walk(reply, path)

    for line in TREES.read_text(encoding="utf-8").splitlines():
        walk(json.loads(line)["prompt"], [])
    return out


def tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def timed(label: str, rows: int, fn) -> float:
    start = time.perf_counter()
    tokens = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<44} {rows / seconds:>9,.0f} dialogues/s  {tokens / seconds / 1e6:6.2f} M tokens/s")
    return seconds


def bench_validation(frame: pl.DataFrame, tok, max_length: int, prefix: bool | str) -> tuple[float, dict]:
    out: dict = {}

    def run() -> int:
        result, out["stats"] = validate_masks(frame, tok, max_length=max_length, prefix_check=prefix)
        return int(result.get_column("n_tokens").sum())

    label = {True: "(six rules)", "full": "(rule 3 on whole prompts)", False: "(without rule 3)"}[prefix]
    return timed(f"validate_masks {label}", frame.height, run), out["stats"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--vocab-size", type=int, default=8_000)
    parser.add_argument("--max-length", type=int, default=2048)
    args = parser.parse_args()

    base = threads()
    tok = tokenizer([m["content"] for t in base for m in t], args.vocab_size)
    example = [
        {"role": "user", "content": "Hello, can you help me?"},
        {"role": "assistant", "content": "Sure, what can I do for you?"},
    ]
    name = "oasst threads" if TREES.is_file() else "synthetic dialogues"
    for label, dialogues in ((name, base), ("the published 2-turn example", [example])):
        frame = pl.DataFrame({"messages": (dialogues * (args.rows // len(dialogues) + 1))[: args.rows]})
        print(f"\n{label}: {frame.height:,} dialogues, byte-level BPE vocab {args.vocab_size:,}")
        validate_masks(frame.head(100), tok, max_length=args.max_length)  # warm up, add the chat tokens
        texts = render_batch(frame.get_column("messages"), "starchat").to_list()
        t_full, stats = bench_validation(frame, tok, args.max_length, True)
        bench_validation(frame, tok, args.max_length, "full")
        bench_validation(frame, tok, args.max_length, False)
        codec = make_codec(tok)
        t_enc = timed(
            "bare encode_batch with offsets (baseline)",
            frame.height,
            lambda codec=codec, texts=texts: sum(len(e.ids) for e in codec.encode_batch(texts)),
        )
        print(
            f"validation time / bare tokenization time: {t_full / t_enc:.2f}; tokens mean "
            f"{stats['tokens']['mean']}, p95 {stats['tokens']['p95']}; ok {stats['ok']:,}/{stats['rows']:,}"
        )


if __name__ == "__main__":
    main()
