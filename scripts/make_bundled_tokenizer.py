"""Train the small tokenizer shipped with chatdata (``src/chatdata/data/tokenizer/``), offline, from the bundled
sample's text.

It is a byte-level BPE in the style of GPT-2 and StarCoder (regex pre-tokenizer, ByteLevel decoder and
trim-offsets post-processor), with StarCoder's ``<|endoftext|>`` as eos and no chat tokens (chatdata adds them
for the dialect, as it does for a real model's tokenizer). It lets ``chatdata inspect`` and
``chatdata build --tokenizer bundled`` run with no download; it is not any model's tokenizer: for StarCoder's
real vocabulary run ``scripts/fetch_starcoder_tokenizer.py``.

    python scripts/make_bundled_tokenizer.py
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "chatdata" / "data" / "tokenizer"
VOCAB_SIZE = 4096
EOS = "<|endoftext|>"


def corpus() -> list[str]:
    files = sorted((ROOT / "src" / "chatdata" / "data" / "sample" / "data").glob("*.parquet"))
    texts = pl.concat([pl.read_parquet(f, columns=["text"]) for f in files]).get_column("text")
    return sorted(set(texts.drop_nulls().to_list()))  # sorted: the same merges whatever the file order


def main() -> None:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    OUT.mkdir(parents=True, exist_ok=True)
    tok.save(str(OUT / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": EOS,
        "bos_token": EOS,
        "unk_token": EOS,
        "model_max_length": 8192,
        "clean_up_tokenization_spaces": False,
        "chatdata_made_with": f"tokenizers {tokenizers.__version__}",  # the trainer's ties may move between versions
    }
    (OUT / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({tok.get_vocab_size()} tokens)")


if __name__ == "__main__":
    main()
