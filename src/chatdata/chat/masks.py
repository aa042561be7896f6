"""Label masks: ``input_ids`` and ``labels`` (-100 = not trained) for rendered dialogues, validated per row.

Turn boundaries are character spans of the rendering (:func:`chatdata.chat.dialects.turn_frame`) mapped to
tokens through the offsets of a fast tokenizer, all rows in one ``encode_batch`` call. A token is trained when
any of its characters is trained, so no reply character is ever lost; a token that also holds untrained
characters (a BPE merge across a turn boundary, e.g. a header's ``"\\n"`` merged into the first reply word) is
reported and the row rejected, because the tokens seen in training would differ from those at generation.

Conventions (``convention=``):

* ``starchat`` (the default) — the published StarChat recipe: system and user turns masked; the assistant's
  ``<|assistant|>`` header, content, ``<|end|>`` and the newline after it trained. It is the default because
  chatdata rebuilds that recipe and its published example comes out bit for bit; training the header costs
  nothing (it is always given at generation) and teaches the turn structure.
* ``content_only`` — headers and separators masked; the assistant content and the end-of-turn token trained
  (what TRL's assistant-only loss and transformers' ``{% generation %}`` masks do).

Every row is checked against six rules; failures give ``ok=False`` and a ``"<code>: <detail>"`` reason
(several joined with ``"; "``), with the codes of :data:`MASK_REASON_CODES`:

1. the trained tokens decode to the expected assistant text (``decode_mismatch``, ``boundary_merge``);
2. at least one token is trained after truncation to ``max_length`` (``no_assistant``, ``truncated``);
3. the tokens of each prompt plus its generation header are a prefix of the dialogue's (``prefix_mismatch``);
4. every assistant end-of-turn is one trained token (``end_token``), and no trained token is the pad token
   (``pad_token_trained``: a collator masking padding would drop it, e.g. when pad = eos);
5. system and user text is never trained (``user_trained``);
6. content holding a special-token string of the dialect or the tokenizer is rejected (``special_token``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa

from chatdata.chat.dialects import Dialect, OnSpecial, check_dialogues, get_dialect, turn_frame
from chatdata.chat.template import render_template
from chatdata.chat.tokenizer import prepare_tokenizer, special_strings
from chatdata.errors import ChatdataError
from chatdata.memory import paused_gc

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerBase

Convention = Literal["starchat", "content_only"]
CONVENTIONS: tuple[str, ...] = ("starchat", "content_only")
DEFAULT_CONVENTION: Convention = "starchat"
IGNORE_INDEX = -100
MASK_REASON_CODES = (
    "no_assistant",
    "user_trained",
    "boundary_merge",
    "end_token",
    "pad_token_trained",
    "decode_mismatch",
    "prefix_mismatch",
    "truncated",
    "template_error",
    "template_content",
)
MESSAGES_DTYPE = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))


@dataclass
class MaskBatch:
    """Per dialogue: ``text``, ``input_ids``, ``labels`` (truncated to ``max_length``), ``n_tokens`` (before
    truncation), ``n_trained`` (after), ``truncated``, ``ok``, ``reason``; plus notes about the tokenizer."""

    frame: pl.DataFrame
    notes: list[str] = field(default_factory=list)


def as_messages_series(messages: pl.Series | Sequence[Sequence[Mapping[str, Any]] | None]) -> pl.Series:
    """A ``list[struct{role, content}]`` series from a series or from Python lists of ``{role, content}``."""
    if isinstance(messages, pl.Series):
        return messages
    rows = []
    for dialogue in messages:
        if dialogue is None:
            rows.append(None)
            continue
        rows.append(
            [
                {
                    "role": m.get("role") if isinstance(m.get("role"), str) else None,
                    "content": m.get("content") if isinstance(m.get("content"), str) else None,
                }
                if isinstance(m, Mapping)
                else {"role": None, "content": None}
                for m in dialogue
            ]
        )
    return pl.Series("messages", rows, dtype=MESSAGES_DTYPE)


def make_codec(tokenizer: PreTrainedTokenizerBase) -> Tokenizer:
    """A private copy of the fast tokenizer's backend that reports untrimmed offsets.

    We always encode with ``add_special_tokens=False`` (the rendering carries every special token), so the
    post-processor has nothing to add; dropping it keeps ids identical and stops ``trim_offsets`` from
    cutting spaces out of token spans.
    """
    from tokenizers import Tokenizer

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ChatdataError("label masks need a fast tokenizer (tokenizers library) for character offsets")
    codec = Tokenizer.from_str(backend.to_str())
    codec.post_processor = None
    codec.no_truncation()
    codec.no_padding()
    return codec


def _lossless(codec: Tokenizer, specials: Sequence[str]) -> bool:
    probe = "Hello, world!\n  two  spaces\ttab ünïcödé 😀 x=1;" + "".join(specials[:8])
    return codec.decode(codec.encode(probe, add_special_tokens=False).ids, skip_special_tokens=False) == probe


def _covered(starts: np.ndarray, ends: np.ndarray, x: np.ndarray) -> np.ndarray:
    """How many positions before each ``x`` lie inside the sorted, disjoint intervals ``[starts, ends)``."""
    cum = np.concatenate([[0], np.cumsum(ends - starts)])
    i = np.searchsorted(starts, x, side="right")
    last = np.maximum(i - 1, 0)
    partial = np.where(i > 0, np.minimum(x, ends[last]) - starts[last], 0) if len(starts) else 0
    return np.where(i > 0, cum[last] + partial, 0) if len(starts) else np.zeros_like(x)


def _norm(text: str) -> str:
    return " ".join(text.split())


@paused_gc()
def build_masks(
    messages: pl.Series | Sequence[Sequence[Mapping[str, Any]] | None],
    tokenizer: PreTrainedTokenizerBase,
    dialect: str | Dialect = "starchat",
    convention: Convention = DEFAULT_CONVENTION,
    max_length: int = 2048,
    *,
    on_special: OnSpecial = "reject",
    prefix_check: bool | Literal["full"] = True,
) -> MaskBatch:
    """Render, tokenize (one batch call) and label every dialogue, and validate each row (six rules).

    Missing special tokens of the dialect are added to ``tokenizer`` first (see
    :func:`chatdata.chat.tokenizer.prepare_tokenizer`); what was done is in ``notes``. Rows that fail come
    back with ``ok=False`` and a reason; ``input_ids``/``labels`` are null only for rows that could not be
    rendered. Rule 3 re-tokenizes each prompt from its last added token on (``prefix_check="full"``:
    the whole prompt, same verdict, slower; ``False``: skip rule 3).
    """
    d = get_dialect(dialect)
    if convention not in CONVENTIONS:
        raise ChatdataError(f"unknown mask convention {convention!r}: use one of {', '.join(CONVENTIONS)}")
    if max_length < 1:
        raise ChatdataError(f"max_length must be a positive number of tokens, got {max_length}")
    series = as_messages_series(messages)
    notes = prepare_tokenizer(tokenizer, d)
    specials = special_strings(tokenizer)
    reasons: list[str | None] = check_dialogues(series, d, on_special, extra_specials=specials).to_list()
    valid = [i for i, r in enumerate(reasons) if r is None]

    if d.fixed:
        turns = turn_frame(series[valid] if valid else series.clear(), d, on_special, extra_specials=specials)
        valid_rows = np.asarray(valid, dtype=np.uint32)
        turns = turns.with_columns(pl.Series("row", valid_rows[turns.get_column("row").to_numpy()]))
        joined = turns.group_by("row", maintain_order=True).agg(pl.col("piece").str.join(""))
        text_of = dict(zip(joined.get_column("row").to_list(), joined.get_column("piece").to_list(), strict=True))
        turns = turns.drop("piece")
    else:
        text_of, turns, template_reasons = render_template(series, tokenizer, specials, valid, on_special == "escape")
        for row, reason in template_reasons.items():
            reasons[row] = reason
        valid = [i for i in valid if i in text_of]
        turns = turns.filter(pl.col("row").is_in(valid))

    texts = [text_of[i] for i in valid]
    if d.final_eos and valid:
        texts, turns = _append_eos(texts, turns, valid, tokenizer.eos_token)

    codec = make_codec(tokenizer)
    labelled = _label(
        texts,
        turns,
        valid,
        codec,
        convention,
        max_length,
        pad_id=tokenizer.pad_token_id,
        lossless=_lossless(codec, specials),
        prefix_check=prefix_check,
    )
    for row, reason in zip(valid, labelled.pop("reasons"), strict=True):
        reasons[row] = reason
    n = len(series)
    base = pl.DataFrame({"row": np.arange(n, dtype=np.uint32), "reason": pl.Series(reasons, dtype=pl.String)})
    done = pl.DataFrame(
        {
            "row": pl.Series(valid, dtype=pl.UInt32),
            "text": pl.Series(texts, dtype=pl.String),
            **labelled,
        }
    )
    frame = (
        base.join(done, on="row", how="left")
        .with_columns(pl.col("reason").is_null().alias("ok"))
        .select("text", "input_ids", "labels", "n_tokens", "n_trained", "truncated", "ok", "reason")
    )
    return MaskBatch(frame=frame, notes=notes)


def _append_eos(texts: list[str], turns: pl.DataFrame, valid: list[int], eos: str) -> tuple[list[str], pl.DataFrame]:
    """Guanaco has no end marker: close a dialogue that ends on a reply with the eos token (QLoRA did)."""
    last = turns.group_by("row", maintain_order=True).agg(pl.col("role").last().alias("last_role"))
    ends_on_reply = set(last.filter(pl.col("last_role") == "assistant").get_column("row").to_list())
    texts = [t + eos if row in ends_on_reply else t for t, row in zip(texts, valid, strict=True)]
    is_last = (pl.col("turn") == pl.col("turn").max().over("row")) & pl.col("row").is_in(list(ends_on_reply))
    turns = turns.with_columns(
        pl.when(is_last).then(pl.col("c1") + len(eos)).otherwise(pl.col("e1")).alias("e1"),
        pl.when(is_last).then(pl.col("c1") + len(eos)).otherwise(pl.col("s1")).alias("s1"),
    )
    return texts, turns


def _label(
    texts: list[str],
    turns: pl.DataFrame,
    valid: list[int],
    codec: Tokenizer,
    convention: str,
    max_length: int,
    *,
    pad_id: int | None,
    lossless: bool,
    prefix_check: bool | Literal["full"],
) -> dict[str, Any]:
    """Tokenize ``texts`` in one batch, derive labels from the turn spans, and check the six rules."""
    nrows = len(texts)
    if nrows == 0:
        return {
            "input_ids": pl.Series([], dtype=pl.List(pl.Int32)),
            "labels": pl.Series([], dtype=pl.List(pl.Int32)),
            "n_tokens": pl.Series([], dtype=pl.Int64),
            "n_trained": pl.Series([], dtype=pl.Int64),
            "truncated": pl.Series([], dtype=pl.Boolean),
            "reasons": [],
        }
    encs = codec.encode_batch(texts, add_special_tokens=False)
    id_lists = [e.ids for e in encs]
    lens = np.fromiter((len(x) for x in id_lists), dtype=np.int64, count=nrows)
    total = int(lens.sum())
    ids = np.fromiter(chain.from_iterable(id_lists), dtype=np.int64, count=total)
    offsets = np.fromiter(
        chain.from_iterable(chain.from_iterable(e.offsets for e in encs)), dtype=np.int64, count=2 * total
    ).reshape(-1, 2)
    tok_row = np.repeat(np.arange(nrows), lens)
    first_tok = np.concatenate([[0], np.cumsum(lens)])
    pos = np.arange(total) - first_tok[tok_row]
    text_len = np.fromiter((len(t) for t in texts), dtype=np.int64, count=nrows)
    base = np.concatenate([[0], np.cumsum(text_len + 1)])  # one gap between rows: rows never touch
    starts = offsets[:, 0] + base[tok_row]
    ends = offsets[:, 1] + base[tok_row]

    # turn spans in global coordinates
    vrow_of = {row: k for k, row in enumerate(valid)}
    t_vrow = np.fromiter((vrow_of[r] for r in turns.get_column("row").to_list()), dtype=np.int64)
    role = turns.get_column("role").to_numpy()
    h0, c0, c1, e1, s1 = (
        turns.get_column(c).to_numpy().astype(np.int64) + base[t_vrow] for c in ("h0", "c0", "c1", "e1", "s1")
    )
    is_asst = role == "assistant"
    if convention == "starchat":
        tr_s, tr_e = h0[is_asst], s1[is_asst]
    else:
        tr_s, tr_e = c0[is_asst], e1[is_asst]
    pr_s, pr_e = h0[~is_asst], s1[~is_asst]

    # labels: a token is trained when any of its characters is
    length = ends - starts
    zero = length == 0
    hi = np.where(zero, starts + 1, ends)
    n_trained_chars = _covered(tr_s, tr_e, hi) - _covered(tr_s, tr_e, starts)
    n_protected_chars = _covered(pr_s, pr_e, hi) - _covered(pr_s, pr_e, starts)
    trained = n_trained_chars > 0
    labels = np.where(trained, ids, IGNORE_INDEX)
    kept = pos < max_length
    user_leak = trained & (n_protected_chars > 0)
    merge = trained & ~zero & (n_trained_chars < length) & ~user_leak

    count = lambda mask: np.bincount(tok_row, weights=mask, minlength=nrows).astype(np.int64)  # noqa: E731
    n_trained_full = count(trained)
    n_trained_kept = count(trained & kept)
    problems: list[list[str]] = [[] for _ in range(nrows)]

    for k in np.setdiff1d(np.arange(nrows), t_vrow[is_asst]).tolist():
        problems[k].append("no_assistant: the dialogue has no assistant turn to train on")

    def turn_of(tok: int) -> int:
        return int(turns.get_column("turn")[int(np.searchsorted(h0, starts[tok], side="right")) - 1]) + 1

    def first_per_row(mask: np.ndarray) -> dict[int, int]:
        idx = np.flatnonzero(mask)
        rows, first = np.unique(tok_row[idx], return_index=True)
        return dict(zip(rows.tolist(), idx[first].tolist(), strict=True))

    for k, tok in first_per_row(user_leak).items():
        problems[k].append(
            f"user_trained: token {codec.id_to_token(int(ids[tok]))!r} (turn {turn_of(tok)}) joins "
            "system/user text with trained text"
        )
    for k, tok in first_per_row(merge).items():
        problems[k].append(
            f"boundary_merge: token {codec.id_to_token(int(ids[tok]))!r} at characters "
            f"{offsets[tok, 0]}-{offsets[tok, 1]} (turn {turn_of(tok)}) joins masked and trained text; "
            "training and generation would tokenize it differently"
        )

    # rule 4: each assistant end-of-turn is one trained token of its own
    has_end = is_asst & (e1 > c1)
    if has_end.any() and total:
        ec1, ee1, erow = c1[has_end], e1[has_end], t_vrow[has_end]
        eturn = turns.get_column("turn").to_numpy()[has_end]
        idx = np.minimum(np.searchsorted(starts, ec1, side="left"), total - 1)
        end_text = [texts[r][a - base[r] : b - base[r]] for r, a, b in zip(erow, ec1, ee1, strict=True)]
        want = np.array([codec.token_to_id(t) if codec.token_to_id(t) is not None else -1 for t in end_text])
        single = (starts[idx] == ec1) & (ends[idx] == ee1) & (ids[idx] == want) & (tok_row[idx] == erow)
        good = single & trained[idx]
        cut = (tok_row[idx] == erow) & (pos[idx] >= max_length)
        for k in np.flatnonzero(~good & ~cut).tolist():
            what = "is not trained" if single[k] else "is not one token of its own"
            problems[int(erow[k])].append(f"end_token: the end of turn {int(eturn[k]) + 1} ({end_text[k]!r}) {what}")

    if pad_id is not None:
        for k in np.flatnonzero(count(trained & (ids == pad_id))).tolist():
            problems[k].append(
                f"pad_token_trained: the pad token (id {pad_id}) is trained; a collator that masks padding "
                "would drop it (set a pad token distinct from eos and end-of-turn)"
            )

    # rule 1: decode the trained tokens and compare with the expected trained text
    trained_offsets = pa.array(np.concatenate([[0], np.cumsum(n_trained_full)]).astype(np.int64))
    trained_ids = pa.LargeListArray.from_arrays(trained_offsets, pa.array(ids[trained], pa.int64())).to_pylist()
    decoded = codec.decode_batch(trained_ids, skip_special_tokens=False)
    # the trained spans of each row, cut out of its text in one vectorized pass (offsets are characters)
    spans = pl.DataFrame(
        {"row": t_vrow[is_asst], "a": tr_s - base[t_vrow[is_asst]], "n": tr_e - tr_s},
        schema={"row": pl.Int64, "a": pl.Int64, "n": pl.Int64},
    )
    text_series = pl.Series("t", texts, dtype=pl.String)
    pieces = spans.with_columns(text_series.gather(spans.get_column("row")).alias("t")).select(
        "row", pl.col("t").str.slice(pl.col("a"), pl.col("n")).alias("p")
    )
    want_of = pieces.group_by("row", maintain_order=True).agg(pl.col("p").str.join(""))
    expected_all = pl.Series("w", [""] * nrows, dtype=pl.String).scatter(
        want_of.get_column("row"), want_of.get_column("p")
    )
    got_all = pl.Series("g", decoded, dtype=pl.String)
    differs = (expected_all != got_all).to_numpy()
    expected_list = expected_all.to_list() if differs.any() else []
    for k in np.flatnonzero(differs).tolist():
        want_text, got = expected_list[k], decoded[k]
        if (want_text != got) if lossless else (_norm(want_text) != _norm(got)):
            at = next(
                (i for i, (x, y) in enumerate(zip(want_text, got, strict=False)) if x != y),
                min(len(want_text), len(got)),
            )
            problems[k].append(
                f"decode_mismatch: trained tokens decode to {got[at : at + 20]!r} at character {at} of the "
                f"trained text, expected {want_text[at : at + 20]!r}"
            )

    # rule 3: prompt + generation header tokenize to a prefix of the whole dialogue. Fast tokenizers split
    # the text at added tokens before anything else, so the prompt's tokens up to its last added token are
    # the dialogue's; only the tail from that token (e.g. "<|assistant|>\n") is tokenized again.
    if prefix_check and is_asst.any():
        a_rows, a_c0 = t_vrow[is_asst], c0[is_asst]
        a_turn = turns.get_column("turn").to_numpy()[is_asst]
        from_tok = first_tok[a_rows]
        added_ids = np.fromiter(codec.get_added_tokens_decoder(), dtype=np.int64)
        added = np.flatnonzero(np.isin(ids, added_ids))
        if prefix_check != "full" and len(added):
            j = np.searchsorted(starts[added], a_c0, side="right") - 1
            jj = added[np.maximum(j, 0)]
            usable = (j >= 0) & (tok_row[jj] == a_rows) & (ends[jj] <= a_c0)
            from_tok = np.where(usable, jj, from_tok)
        from_char = np.where(from_tok < first_tok[a_rows + 1], starts[np.minimum(from_tok, total - 1)], a_c0)
        from_char = np.where(from_tok == first_tok[a_rows], base[a_rows], from_char)
        prompts = [
            texts[r][f - base[r] : p - base[r]]
            for r, f, p in zip(a_rows.tolist(), from_char.tolist(), a_c0.tolist(), strict=True)
        ]
        encoded = codec.encode_batch_fast(prompts, add_special_tokens=False)
        for r, t, k0, enc in zip(
            a_rows.tolist(), a_turn.tolist(), (from_tok - first_tok[a_rows]).tolist(), encoded, strict=True
        ):
            p_ids = enc.ids
            if id_lists[r][k0 : k0 + len(p_ids)] != p_ids and not any(
                s.startswith("prefix_mismatch") for s in problems[r]
            ):
                problems[r].append(
                    f"prefix_mismatch: the prompt up to turn {t + 1}'s header does not tokenize to a prefix "
                    "of the dialogue's tokens (generation would start from other tokens than training)"
                )

    truncated = lens > max_length
    for k in np.flatnonzero((n_trained_full > 0) & (n_trained_kept == 0)).tolist():
        first = int(np.flatnonzero(trained[first_tok[k] : first_tok[k + 1]])[0])
        problems[k].append(
            f"truncated: no trained token within max_length={max_length} (the first one is token {first})"
        )

    # list columns: ids and labels cut to max_length
    kept_lens = np.minimum(lens, max_length)
    list_offsets = pa.array(np.concatenate([[0], np.cumsum(kept_lens)]).astype(np.int32))
    return {
        "input_ids": pl.from_arrow(pa.ListArray.from_arrays(list_offsets, pa.array(ids[kept], pa.int32()))),
        "labels": pl.from_arrow(pa.ListArray.from_arrays(list_offsets, pa.array(labels[kept], pa.int32()))),
        "n_tokens": pl.Series(lens, dtype=pl.Int64),
        "n_trained": pl.Series(n_trained_kept, dtype=pl.Int64),
        "truncated": pl.Series(truncated, dtype=pl.Boolean),
        "reasons": ["; ".join(p) if p else None for p in problems],
    }
