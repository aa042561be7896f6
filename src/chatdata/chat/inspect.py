"""Show one dialogue's label mask to a person (rich) or as one JSON object (``chatdata inspect``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from chatdata.chat.dialects import Dialect, OnSpecial, get_dialect
from chatdata.chat.masks import DEFAULT_CONVENTION, IGNORE_INDEX, Convention, build_masks, make_codec
from chatdata.errors import ChatdataError, InputError

if TYPE_CHECKING:
    from rich.console import Console
    from transformers import PreTrainedTokenizerBase

TRAINED_STYLES = ("bold black on green3", "bold black on dark_sea_green2")  # alternate: token edges show
MASKED_STYLE = "dim"
CUT_STYLE = "dim strike"


def read_messages(source: str | Path | TextIO) -> list[dict[str, str]]:
    """Read one dialogue: a JSON list of ``{role, content}`` or an object ``{"messages": [...]}``.

    ``source`` is a path, ``"-"`` for standard input, or an open text stream. Raises
    :class:`~chatdata.errors.InputError` (one line) when the input is not such JSON.
    """
    if isinstance(source, str | Path) and str(source) != "-":
        path = Path(source)
        name: object = path
        try:
            raw = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(path, f"cannot read the messages file ({exc.strerror or exc})") from exc
        except UnicodeDecodeError as exc:
            raise InputError(path, "the messages file is not UTF-8 text") from exc
    else:
        stream = sys.stdin if isinstance(source, str | Path) else source
        name = "<stdin>" if stream is sys.stdin else getattr(stream, "name", "<stream>")
        raw = stream.read()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InputError(name, f"not JSON ({exc.msg})", line=exc.lineno) from exc
    if isinstance(data, Mapping):
        if "messages" not in data:
            raise InputError(name, 'expected a JSON list of {"role", "content"} or {"messages": [...]}')
        data = data["messages"]
    if not isinstance(data, list) or not data:
        raise InputError(name, 'expected a non-empty JSON list of {"role": ..., "content": ...} objects')
    out: list[dict[str, str]] = []
    for i, m in enumerate(data, start=1):
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise InputError(name, f"message {i} is not an object with string 'role' and 'content'")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def inspect_messages(
    messages: Sequence[Mapping[str, str]],
    tokenizer: PreTrainedTokenizerBase,
    dialect: str | Dialect = "starchat",
    convention: Convention = DEFAULT_CONVENTION,
    max_length: int = 2048,
    as_json: bool = False,
    console: Console | None = None,
    *,
    on_special: OnSpecial = "reject",
    stdout: TextIO | None = None,
) -> dict[str, Any]:
    """Render, tokenize and mask one dialogue, and show it.

    ``as_json``: write exactly one JSON object ``{"text", "input_ids", "labels"}`` (ids and labels cut to
    ``max_length``) and a newline to ``stdout`` (default ``sys.stdout``), nothing else. Otherwise print to
    ``console`` (default: a rich console on stdout) the text with trained tokens highlighted (two alternating
    colours so token edges show), masked ones dimmed, tokens past ``max_length`` struck through, then the
    token counts and the validation verdict. Returns ``text``, ``input_ids``, ``labels``, ``ok``, ``reason``
    and ``notes``. A dialogue that cannot be rendered at all (roles, forged turns) raises
    :class:`~chatdata.errors.ChatdataError` with the reason.
    """
    d = get_dialect(dialect)
    batch = build_masks([list(messages)], tokenizer, d, convention, max_length, on_special=on_special)
    row = batch.frame.row(0, named=True)
    if row["text"] is None:
        raise ChatdataError(f"the dialogue cannot be rendered as {d.name}: {row['reason']}")
    result = {
        "text": row["text"],
        "input_ids": row["input_ids"],
        "labels": row["labels"],
        "ok": row["ok"],
        "reason": row["reason"],
        "notes": batch.notes,
    }
    if as_json:
        out = stdout or sys.stdout
        payload = {k: result[k] for k in ("text", "input_ids", "labels")}
        out.write(json.dumps(payload, ensure_ascii=False) + "\n")
        out.flush()
        return result
    _show(result, row, tokenizer, d, convention, max_length, console)
    return result


def _show(
    result: dict[str, Any],
    row: dict[str, Any],
    tokenizer: PreTrainedTokenizerBase,
    d: Dialect,
    convention: str,
    max_length: int,
    console: Console | None,
) -> None:
    from rich.console import Console
    from rich.text import Text

    console = console or Console()
    text: str = result["text"]
    enc = make_codec(tokenizer).encode(text, add_special_tokens=False)
    labels = result["labels"]
    body = Text()
    shown = 0
    trained_seen = 0
    for k, (start, end) in enumerate(enc.offsets):
        start = max(start, shown)  # tokens that split one character share its span: show it once
        if end <= start:
            continue
        piece = text[start:end].replace("\n", "↵\n")
        if k >= len(labels):
            style = CUT_STYLE
        elif labels[k] != IGNORE_INDEX:
            style = TRAINED_STYLES[trained_seen % 2]
            trained_seen += 1
        else:
            style = MASKED_STYLE
        body.append(piece, style=style)
        shown = end
    if shown < len(text):
        body.append(text[shown:], style=MASKED_STYLE)
    name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
    console.print(
        Text.assemble(
            ("dialect ", "bold"),
            d.name,
            ("  convention ", "bold"),
            convention,
            ("  tokenizer ", "bold"),
            name,
            ("  max_length ", "bold"),
            str(max_length),
        )
    )
    for note in result["notes"]:
        console.print(Text(f"note: {note}", style="yellow"))
    console.print(body)
    trained = sum(1 for x in labels if x != IGNORE_INDEX)
    kept = len(labels)
    summary = f"tokens {row['n_tokens']}"
    summary += f" (cut to {kept})" if row["truncated"] else ""
    summary += f"  trained {trained} ({trained / kept:.0%})" if kept else "  trained 0"
    console.print(Text(summary, style="bold"))
    if result["ok"]:
        console.print(Text("verdict: ok — all six mask checks pass", style="bold green"))
    else:
        console.print(Text(f"verdict: rejected — {result['reason']}", style="bold red"))
