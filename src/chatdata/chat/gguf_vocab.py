"""Build a Hugging Face fast tokenizer from a llama.cpp GGUF vocabulary file (byte-level BPE models).

llama.cpp ships vocab-only GGUF files (e.g. ``models/ggml-vocab-starcoder.gguf``, vendored in the
``llama-cpp-python`` source distribution on PyPI). This reads their tokens, merges and token types with the ``gguf``
package and rebuilds the byte-level BPE, so a real StarCoder tokenizer is available without the Hub.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatdata.errors import ChatdataError
from chatdata.optional import require

#: llama.cpp pre-tokenizer names -> whether digits are split one by one before byte-level BPE
_DIGIT_SPLIT = {"starcoder": True, "gpt-2": False, "gpt2": False, "default": False}
_CONTROL = 3  # llama.cpp token type of special/control tokens


def _strings(field: Any) -> list[str]:
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def tokenizer_from_gguf(path: str | Path, *, vocab_size: int | None = None) -> Any:
    """A ``PreTrainedTokenizerFast`` equal to the GGUF file's byte-level BPE tokenizer.

    ``vocab_size`` keeps only the first ids (and the merges that stay inside them): Refact's vocabulary is StarCoder's
    49,152 tokens plus 64 of its own, so ``vocab_size=49152`` gives StarCoder's tokenizer exactly.
    """
    try:
        from gguf import GGUFReader
    except ImportError:
        raise ChatdataError("reading a GGUF vocabulary needs the `gguf` package (pip install gguf)") from None
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    PreTrainedTokenizerFast = require("transformers", "a tokenizer from a GGUF vocabulary").PreTrainedTokenizerFast

    reader = GGUFReader(str(path))
    fields = reader.fields
    model = _strings(fields["tokenizer.ggml.model"])[0]
    if model != "gpt2":
        raise ChatdataError(f"{path}: tokenizer model '{model}' is not byte-level BPE (gpt2); not supported")
    tokens = _strings(fields["tokenizer.ggml.tokens"])
    merges = [tuple(m.split(" ", 1)) for m in _strings(fields["tokenizer.ggml.merges"])]
    types_field = fields["tokenizer.ggml.token_type"]
    types = [int(types_field.parts[i][0]) for i in types_field.data]
    if vocab_size is not None:
        tokens, types = tokens[:vocab_size], types[:vocab_size]
        known = set(tokens)
        merges = [m for m in merges if m[0] in known and m[1] in known and m[0] + m[1] in known]
    pre = _strings(fields["tokenizer.ggml.pre"])[0] if "tokenizer.ggml.pre" in fields else "default"

    bpe = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))  # type: ignore[arg-type]
    steps = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
    if _DIGIT_SPLIT.get(pre, False):
        steps.insert(0, pre_tokenizers.Digits(individual_digits=True))
    bpe.pre_tokenizer = pre_tokenizers.Sequence(steps)
    bpe.decoder = decoders.ByteLevel()
    bpe.add_special_tokens([AddedToken(t, special=True) for t, k in zip(tokens, types, strict=True) if k == _CONTROL])

    def special(key: str) -> str | None:
        f = fields.get(f"tokenizer.ggml.{key}_token_id")
        i = int(f.parts[f.data[0]][0]) if f is not None else -1
        return tokens[i] if 0 <= i < len(tokens) else None

    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=special("bos"), eos_token=special("eos"), unk_token=special("unknown")
    )
