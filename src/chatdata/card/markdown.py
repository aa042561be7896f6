"""Safe Markdown and YAML for the card: escaping, code spans and blocks, links, one-line values, local paths
scrubbed, numbers and sizes formatted."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import yaml
from markupsafe import Markup

# ------------------------------------------------------------------------------------------------ escaping

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_MD_BACKSLASH = re.compile(r"([\\`*_\[\]{}|~#!])")
_LEADING_BLOCK = re.compile(r"^([-+=>]|\d+[.)](?=\s|$))")
_URL = re.compile(r"^https?://[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+$")


def one_line(value: Any, limit: int | None = None) -> str:
    """``value`` as one line: control characters and line breaks become spaces; cut at ``limit`` chars."""
    text = _CONTROL.sub(" ", "" if value is None else str(value))
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def md_text(value: Any, limit: int | None = None) -> Markup:
    """Escape untrusted text for Markdown prose and table cells: HTML (``& < >``) as entities, Markdown
    punctuation (backticks, pipes, emphasis, brackets, headings) with backslashes, line breaks as spaces,
    and a leading ``-``/``+``/``=``/``>``/``1.`` so no block (list, rule, setext heading, quote) can start."""
    text = one_line(value, limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_BACKSLASH.sub(r"\\\1", text)
    text = _LEADING_BLOCK.sub(lambda m: "\\" + m.group(0), text)
    return Markup(text)


def md_prose(value: Any) -> Markup:
    """Trusted prose from the recipe declaration: inline Markdown kept (backticks, emphasis), HTML and line
    breaks neutralised, no block can start."""
    text = one_line(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return Markup(_LEADING_BLOCK.sub(lambda m: "\\" + m.group(0), text))


def md_code(value: Any, limit: int | None = None) -> Markup:
    """Inline code span for untrusted text (one line, fence longer than any backtick run, pipes escaped for
    tables). Inside a code span nothing is interpreted, so no HTML or Markdown can be injected."""
    text = one_line(value, limit)
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return Markup(f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}")


def code_block(text: str, lang: str = "") -> Markup:
    """A fenced code block whose fence is longer than any backtick run in ``text`` (so it cannot be closed
    early). Control characters other than newline and tab are replaced."""
    body = re.sub(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]", " ", text.replace("\r\n", "\n")).rstrip("\n")
    runs = [len(r) for r in re.findall(r"`+", body)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return Markup(f"{fence}{re.sub(r'[^A-Za-z0-9_+-]', '', lang)}\n{body}\n{fence}")


def md_link(text: Any, url: Any) -> Markup:
    """``[text](url)`` for an http(s) URL made only of URL characters; otherwise just the escaped text."""
    label = md_text(text)
    u = one_line(url)
    if not _URL.match(u):
        return label
    return Markup(f"[{label}]({u.replace('(', '%28').replace(')', '%29')})")


class _CardDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]  (libyaml's emitter)
    """SafeDumper that writes strings holding line breaks or control characters double-quoted (escaped on one
    line), so no value can put ``---`` or a new key at the start of a line."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = '"' if _CONTROL.search(data) or "\t" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_CardDumper.add_representer(str, _represent_str)


def _plain(obj: Any) -> Any:
    """JSON-shaped copy (tuples to lists, unknown objects to str), so the safe dumper can represent it."""
    return json.loads(json.dumps(obj, default=str, ensure_ascii=False))


def dump_yaml(obj: Any, *, sort_keys: bool = False) -> str:
    """YAML for the card (front matter, spec blocks): safe dumper, no document markers, one line per value."""
    return yaml.dump(_plain(obj), Dumper=_CardDumper, sort_keys=sort_keys, allow_unicode=True, width=10**9)


def _looks_local(value: str) -> bool:
    return value.startswith(("/", "~", "\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", value))


def scrub_paths(obj: Any) -> Any:
    """Replace every string that is an absolute local path by its file name (cards are public)."""
    if isinstance(obj, str):
        if _looks_local(obj):
            return (PureWindowsPath(obj) if "\\" in obj else PurePosixPath(obj)).name or "(local path)"
        return obj
    if isinstance(obj, Mapping):
        return {k: scrub_paths(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_paths(v) for v in obj]
    return obj


def fmt_num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:,.0f}" if v == int(v) and abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def fmt_bytes(n: int) -> str:
    for div, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"
