"""Chat-aware text cleaning for language identification, as polars string expressions (columnar).

Chat turns carry code, URLs and markdown that confuse language detectors: a Python snippet reads as "English"
or as noise, a table of numbers as anything. :func:`clean_for_langid` removes, in this order:

1. fenced code blocks (```...``` and ~~~...~~~; an unclosed fence runs to the end of the turn),
2. inline code (`...`),
3. markdown links and images (``[text](url)`` keeps ``text``),
4. URLs (``http(s)://``, ``ftp://``, ``www.``), e-mail addresses and HTML tags,
5. markdown noise: headers, block quotes, list markers, table separator rows, table pipes, horizontal rules,
   emphasis markers (``*``, ``_``, ``~``), stray backticks,

then collapses all whitespace (newlines included) to single spaces and strips the ends. The result is only
used for detection; the dataset's text is never changed. :func:`letter_count` measures how much language is
left (Unicode letters, so digits, punctuation and leftover symbols do not count).
"""

from __future__ import annotations

import polars as pl

# Rust regex syntax (no backreferences): one pattern per fence style.
_STEPS: tuple[tuple[str, str], ...] = (
    (r"(?s)```.*?(?:```|\z)", " "),
    (r"(?s)~~~.*?(?:~~~|\z)", " "),
    (r"`[^`\n]*`", " "),
    (r"!?\[([^\]\n]*)\]\([^)\n]*\)", "$1"),
    (r"(?i)\b(?:https?|ftp)://\S+", " "),
    (r"(?i)\bwww\.\S+", " "),
    (r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", " "),
    (r"</?[A-Za-z][^<>\n]{0,200}>", " "),
    (r"(?m)^[ \t]*\|?[ \t]*:?-{3,}:?[ \t]*(?:\|[ \t]*:?-{3,}:?[ \t]*)*\|?[ \t]*$", " "),
    (r"(?m)^[ \t]*(?:[-*_][ \t]*){3,}$", " "),
    (r"(?m)^[ \t]{0,3}#{1,6}[ \t]+", " "),
    (r"(?m)^[ \t]*(?:>[ \t]?)+", " "),
    (r"(?m)^[ \t]*(?:[-*+•]|\d{1,3}[.)])[ \t]+", " "),
    (r"[|*_~`]+", " "),
    (r"\s+", " "),
)


def clean_for_langid(text: pl.Expr) -> pl.Expr:
    """Strip code, URLs and markdown from a string expression; collapse whitespace (see module doc)."""
    out = text.fill_null("")
    for pattern, replacement in _STEPS:
        out = out.str.replace_all(pattern, replacement)
    return out.str.strip_chars()


def letter_count(text: pl.Expr) -> pl.Expr:
    """Number of Unicode letters (``\\p{L}``) in a string expression: the weight of a turn in the vote."""
    return text.fill_null("").str.count_matches(r"\p{L}").cast(pl.Int64)
