"""Small tokenizers for the chat tests, trained offline in well under a second (no network).

``byte_level_bpe()`` is a GPT-2/StarCoder-style byte-level BPE (regex pre-tokenizer, ByteLevel decoder and a
trim-offsets post-processor, as real ones have) wrapped in ``transformers.PreTrainedTokenizerFast``; each call
returns a fresh object, because preparing a tokenizer for a dialect adds tokens to it.
"""

from __future__ import annotations

import functools

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"

_WORDS = (
    "Hello, can you help me? Sure, what can I do for you? I would like to know how a tokenizer works. "
    "A tokenizer splits text into tokens; byte-level BPE merges frequent pairs of bytes. "
    "Please write a Python function that returns the sum of two numbers. def add(a, b):\n    return a + b\n"
    "The capital of France is Paris. Thank you! You're welcome. What is the weather like today? "
    "Über café naïve — 東京 😀 emoji and unicode text. 1234567890 numbers, (brackets) [lists] {dicts}.\n"
    "### Human: hi### Assistant: hello\n"
)


def _corpus() -> list[str]:
    sentences = [s.strip() for s in _WORDS.replace("\n", " \n ").split(". ") if s.strip()]
    return [f"{a} {b}" for a in sentences for b in sentences] * 3


@functools.cache
def _trained_json(vocab_size: int) -> str:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    return tok.to_str()


def byte_level_bpe(vocab_size: int = 600, **kwargs: str) -> PreTrainedTokenizerFast:
    """A fresh byte-level BPE tokenizer with eos ``<|endoftext|>`` and no pad token (unless given)."""
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(_trained_json(vocab_size)), eos_token=EOS, **kwargs
    )


def merging_bpe() -> PreTrainedTokenizerFast:
    """A byte-level BPE without a regex pre-tokenizer whose merges join a header's ``"\\n"`` with ``"S"``.

    Vocabulary: the 256 byte symbols plus ``"ĊS"`` (newline + S) and ``"ure"``-style merges, so
    ``"<|assistant|>\\nSure"`` tokenizes to ``<|assistant|>``, ``"ĊS"``, ``"ur"``... — one token spans the
    header's newline and the first reply character.
    """
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    merges = [("Ċ", "S"), ("u", "r"), ("ur", "e")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab[EOS] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOS])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS)
