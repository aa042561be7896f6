"""The ``template`` dialect: the tokenizer's own ``chat_template``, with turn spans found in its output.

``apply_chat_template`` gives only text, so each turn is located afterwards: the content must appear
verbatim, directly followed by one of the tokenizer's special tokens (the end-of-turn token, e.g.
``<|im_end|>``, ``<|eot_id|>``, ``</s>``). Whitespace right after it is the turn's separator; everything
between the previous turn and the content is the header (bos and a default system prompt land in the first
header). Templates that change content (strip, translate roles) or write no end token after a reply give
reject reasons, never wrong spans.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import polars as pl

from chatdata.chat.dialects import escape_specials

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TURN_COLUMNS = ("row", "turn", "role", "h0", "c0", "c1", "e1", "s1")


def _spans(
    text: str, messages: Sequence[Mapping[str, str]], end_alt: re.Pattern[str]
) -> tuple[list[tuple[int, int, int, int, int]], str | None]:
    spans: list[tuple[int, int, int, int, int]] = []
    cursor = 0
    for k, m in enumerate(messages, start=1):
        content = m["content"]
        if not content:
            return spans, f"template_content: turn {k} is empty, so its place in the template text is unknown"
        pattern = re.compile(re.escape(content) + f"({end_alt.pattern})", re.S)
        hit = pattern.search(text, cursor)
        if hit is None:
            if text.find(content, cursor) < 0:
                return spans, f"template_content: the chat template does not write turn {k} verbatim"
            if m["role"] == "assistant":
                return spans, f"end_token: the chat template writes no special token right after turn {k}"
            c0 = text.find(content, cursor)
            c1 = e1 = c0 + len(content)
        else:
            c0, c1, e1 = hit.start(), hit.start() + len(content), hit.end()
        s1 = e1 + len(text[e1:]) - len(text[e1:].lstrip())
        spans.append((cursor, c0, c1, e1, s1))
        cursor = s1
    return spans, None


def render_template(
    messages: pl.Series,
    tokenizer: PreTrainedTokenizerBase,
    specials: Sequence[str],
    rows: Sequence[int],
    escape: bool = False,
) -> tuple[dict[int, str], pl.DataFrame, dict[int, str]]:
    """Render ``rows`` of ``messages`` with the chat template; return texts, turn spans and reject reasons.

    The turn frame has the columns of :func:`chatdata.chat.dialects.turn_frame` (without ``piece``).
    ``escape``: content is passed through :func:`~chatdata.chat.dialects.escape_specials` first.
    """
    end_alt = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)) or "(?!)")
    texts: dict[int, str] = {}
    reasons: dict[int, str] = {}
    records: list[tuple[int, int, str, int, int, int, int, int]] = []
    for row in rows:
        msgs = [
            {
                "role": m["role"],
                "content": escape_specials(m["content"], specials) if escape else m["content"],
            }
            for m in messages[row]
        ]
        try:
            text = tokenizer.apply_chat_template(msgs, tokenize=False)
        except Exception as exc:  # jinja raises TemplateError and anything the template raises itself
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            reasons[row] = f"template_error: the chat template refused the dialogue: {first}"
            continue
        if not isinstance(text, str):
            reasons[row] = "template_error: the chat template did not return text"
            continue
        spans, reason = _spans(text, msgs, end_alt)
        if reason:
            reasons[row] = reason
            continue
        texts[row] = text
        records.extend((row, k, msgs[k]["role"], *span) for k, span in enumerate(spans))
    schema = {
        "row": pl.UInt32,
        "turn": pl.Int64,
        "role": pl.String,
        **{c: pl.Int64 for c in TURN_COLUMNS[3:]},
    }
    return texts, pl.DataFrame(records, schema=schema, orient="row"), reasons
