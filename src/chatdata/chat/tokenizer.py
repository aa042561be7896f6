"""Load a fast tokenizer (file, folder or Hub id) and give it the special tokens a dialect needs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from chatdata.chat.dialects import Dialect, get_dialect
from chatdata.errors import ChatdataError
from chatdata.optional import require

#: the name of the small byte-level BPE shipped with chatdata (``data/tokenizer``, made by
#: ``scripts/make_bundled_tokenizer.py``): masks can be tried offline; it is not any model's tokenizer
BUNDLED = "bundled"

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class TokenizerError(ChatdataError):
    """A tokenizer cannot be loaded or cannot serve a dialect."""


def load_tokenizer(spec: str | os.PathLike[str], *, revision: str | None = None) -> PreTrainedTokenizerBase:
    """Load a fast tokenizer from a ``tokenizer.json`` file, a local folder or a Hugging Face Hub id.

    A ``tokenizer.json`` next to a ``tokenizer_config.json`` is loaded with its folder (so eos, pad and the
    chat template come along); a bare ``tokenizer.json`` is wrapped in ``PreTrainedTokenizerFast``. Anything
    that is not an existing path is taken as a Hub id: ``AutoTokenizer.from_pretrained`` (network).
    ``bundled`` is the small demo tokenizer shipped with chatdata.
    """
    # transformers announces at import that PyTorch is missing: chatdata needs no model, only tokenizers
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    transformers = require("transformers", "loading a tokenizer (--tokenizer, label masks, chat templates)")
    AutoTokenizer, PreTrainedTokenizerFast = transformers.AutoTokenizer, transformers.PreTrainedTokenizerFast

    text = os.fspath(spec)
    path = bundled_tokenizer() if text == BUNDLED else Path(text).expanduser()
    try:
        if path.is_file():
            if (path.parent / "tokenizer_config.json").is_file() and path.name == "tokenizer.json":
                tok = AutoTokenizer.from_pretrained(str(path.parent), use_fast=True)
            else:
                tok = PreTrainedTokenizerFast(tokenizer_file=str(path))
        elif path.is_dir():
            try:
                tok = AutoTokenizer.from_pretrained(str(path), use_fast=True)
            except (OSError, ValueError):
                if not (path / "tokenizer.json").is_file():
                    raise
                tok = PreTrainedTokenizerFast(tokenizer_file=str(path / "tokenizer.json"))
        elif text.count("/") > 1 or text.endswith(".json") or text.startswith((".", "~", "/")):
            raise TokenizerError(
                f"{text}: no such tokenizer file or folder; pass a tokenizer.json, a folder or a Hub id"
            )
        else:
            tok = AutoTokenizer.from_pretrained(text, revision=revision, use_fast=True)
    except TokenizerError:
        raise
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors, JSON errors ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TokenizerError(f"cannot load tokenizer {text!r}: {first}; pass a local tokenizer.json or folder") from exc
    if not getattr(tok, "is_fast", False):
        raise TokenizerError(f"tokenizer {text!r} is not a fast tokenizer; label masks need character offsets")
    return tok


def bundled_tokenizer() -> Path:
    """The folder of the demo tokenizer shipped with chatdata."""
    return Path(__file__).resolve().parents[1] / "data" / "tokenizer"


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, dialect: str | Dialect) -> list[str]:
    """Make ``tokenizer`` able to serve ``dialect``; return notes for ``build.json``.

    Missing special tokens of the dialect are added as special tokens in the dialect's documented order
    (StarChat: ``<|system|>``, ``<|assistant|>``, ``<|user|>``, ``<|end|>``, as the StarChat recipe did), so
    the model's embeddings must be resized for training. Raises :class:`TokenizerError` when the dialect
    cannot work (guanaco masks need an eos token, ``template`` needs a chat template).
    """
    from tokenizers import AddedToken

    d = get_dialect(dialect)
    notes: list[str] = []
    if not getattr(tokenizer, "is_fast", False):
        raise TokenizerError("label masks need a fast tokenizer (tokenizers library) for character offsets")
    vocab = tokenizer.get_vocab()
    missing = [t for t in d.added_tokens if t not in vocab]
    if missing:
        tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True)
        ids = tokenizer.convert_tokens_to_ids(missing)
        added = ", ".join(f"{t}={i}" for t, i in zip(missing, ids, strict=True))
        notes.append(
            f"added special tokens {added} for the {d.name} dialect (not in the tokenizer's vocabulary); "
            f"resize the model's embeddings to {len(tokenizer)}"
        )
    if d.final_eos and tokenizer.eos_token is None:
        raise TokenizerError(
            f"the {d.name} dialect ends the last reply with the eos token, but the tokenizer has none; "
            "set tokenizer.eos_token"
        )
    if d.name == "template" and not getattr(tokenizer, "chat_template", None):
        raise TokenizerError("the tokenizer has no chat_template; pick the starchat, chatml or guanaco dialect")
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    if pad is None:
        notes.append("the tokenizer has no pad token: the collator must pad with a token that is never trained")
    elif pad == eos:
        notes.append(
            f"pad token = eos token (id {pad}): a collator that masks padding would mask eos; "
            "rows that train it are rejected"
        )
    return notes


def special_strings(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Every added or special token string of ``tokenizer``: content holding one would become that token."""
    decoder = tokenizer.backend_tokenizer.get_added_tokens_decoder()
    out = {t.content for t in decoder.values() if t.content}
    out.update(s for s in tokenizer.all_special_tokens if s)
    return sorted(out, key=lambda s: (-len(s), s))
