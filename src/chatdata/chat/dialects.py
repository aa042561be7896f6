"""Chat dialects: render message lists to training text, parse it back, reject dialogues that forge turns.

Four dialects:

* ``starchat`` — ``<|system|>\\n{system}<|end|>\\n<|user|>\\n{u}<|end|>\\n<|assistant|>\\n{a}<|end|>\\n``
  (StarChat alpha/beta). The system block is written when a system message is given (an empty one gives
  StarChat's ``no_system`` block ``<|system|>\\n<|end|>\\n``) and left out when there is none.
* ``chatml`` — ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` (StarChat2).
* ``guanaco`` — ``### Human: {u}### Assistant: {a}`` (timdettmers/openassistant-guanaco): one space after each
  colon, nothing before ``###``, no system prompt, no end marker.
* ``template`` — the tokenizer's own ``chat_template`` through ``apply_chat_template`` (see :mod:`.template`).

Every dialogue must be ``system?`` then ``user``/``assistant`` alternating, starting with ``user``. Content
holding one of the dialect's special strings would forge a turn: such dialogues are rejected with a reason
(``on_special="reject"``, the default) or the strings are escaped reversibly (``on_special="escape"``): a
ZERO WIDTH SPACE (U+200B) is inserted after the first character of every occurrence, and an occurrence that
already carries k such spaces there gets k+1, so :func:`unescape_specials` restores the original exactly.

Reject reasons are one line, ``"<code>: <detail>"``; the code is one of :data:`REASON_CODES`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from chatdata.errors import ChatdataError

OnSpecial = Literal["reject", "escape"]
ZWSP = "\u200b"
ROLES = ("system", "user", "assistant")

#: Codes that start a reject reason from :func:`check_messages` / :func:`check_dialogues`.
REASON_CODES = (
    "missing_messages",
    "empty_dialogue",
    "unknown_role",
    "no_system",
    "role_order",
    "missing_content",
    "special_token",
)


class DialogueError(ChatdataError):
    """A dialogue cannot be rendered or parsed; the message is the reject reason."""


@dataclass(frozen=True)
class Dialect:
    """How one chat format writes a turn: ``header[role] + lead + content + end + sep``.

    ``lead`` is text between the header and the content that belongs to the reply side for label masks
    (guanaco's space after the colon: GPT-2-style tokenizers merge it into the first word, and the generation
    prompt is ``### Assistant:``). ``specials`` are the strings content may not contain; ``added_tokens`` are
    the tokens a tokenizer needs, in the order they are added when missing. ``final_eos``: no end marker, so
    label masks close the last assistant reply with the tokenizer's eos token (as Guanaco's QLoRA training
    did).
    """

    name: str
    headers: Mapping[str, str]
    end: str = ""
    sep: str = ""
    lead: str = ""
    specials: tuple[str, ...] = ()
    added_tokens: tuple[str, ...] = ()
    system: bool = True
    final_eos: bool = False
    fixed: bool = True
    parse_pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def turn(self, role: str, content: str) -> str:
        """The text of one turn."""
        return f"{self.headers[role]}{self.lead}{content}{self.end}{self.sep}"


STARCHAT = Dialect(
    name="starchat",
    headers={"system": "<|system|>\n", "user": "<|user|>\n", "assistant": "<|assistant|>\n"},
    end="<|end|>",
    sep="\n",
    specials=("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
    added_tokens=("<|system|>", "<|assistant|>", "<|user|>", "<|end|>"),
)
CHATML = Dialect(
    name="chatml",
    headers={r: f"<|im_start|>{r}\n" for r in ROLES},
    end="<|im_end|>",
    sep="\n",
    specials=("<|im_start|>", "<|im_end|>"),
    added_tokens=("<|im_start|>", "<|im_end|>"),
)
GUANACO = Dialect(
    name="guanaco",
    headers={"user": "### Human:", "assistant": "### Assistant:"},
    lead=" ",
    specials=("### Human:", "### Assistant:"),
    system=False,
    final_eos=True,
)
TEMPLATE = Dialect(name="template", headers={}, fixed=False)

DIALECTS: dict[str, Dialect] = {d.name: d for d in (STARCHAT, CHATML, GUANACO, TEMPLATE)}


def get_dialect(dialect: str | Dialect) -> Dialect:
    """Look a dialect up by name (``starchat``, ``chatml``, ``guanaco``, ``template``)."""
    if isinstance(dialect, Dialect):
        return dialect
    try:
        return DIALECTS[dialect]
    except KeyError:
        raise ChatdataError(f"unknown chat dialect {dialect!r}: use one of {', '.join(DIALECTS)}") from None


def _fixed(dialect: str | Dialect) -> Dialect:
    d = get_dialect(dialect)
    if not d.fixed:
        raise ChatdataError("the 'template' dialect needs a tokenizer: use chatdata.chat.template.render_template")
    return d


# ----------------------------------------------------------------------------------------------------
# escaping


def _escape_groups(specials: Iterable[str]) -> list[tuple[str, list[str]]]:
    groups: dict[str, list[str]] = {}
    for s in sorted(set(specials), key=lambda s: (-len(s), s)):
        if len(s) < 2:
            raise ChatdataError(f"special string {s!r} is too short to escape; use on_special='reject'")
        groups.setdefault(s[0], []).append(s[1:])
    return sorted(groups.items())


def _escape_pattern(head: str, rests: list[str], plus: bool) -> str:
    alts = "|".join(re.escape(r) for r in rests)
    return f"{re.escape(head)}({ZWSP}{'+' if plus else '*'})({alts})"


def escape_specials(text: str, specials: Iterable[str]) -> str:
    """Break every occurrence of a special string: insert U+200B after its first character (reversible)."""
    for head, rests in _escape_groups(specials):
        text = re.sub(_escape_pattern(head, rests, False), lambda m, h=head: f"{h}{ZWSP}{m[1]}{m[2]}", text)
    return text


def unescape_specials(text: str, specials: Iterable[str]) -> str:
    """Invert :func:`escape_specials`."""
    for head, rests in reversed(_escape_groups(specials)):
        text = re.sub(_escape_pattern(head, rests, True), lambda m, h=head: f"{h}{m[1][1:]}{m[2]}", text)
    return text


def _escape_expr(expr: pl.Expr, specials: Iterable[str]) -> pl.Expr:
    for head, rests in _escape_groups(specials):
        pattern = _escape_pattern(head, rests, False).replace(ZWSP, r"\x{200b}")
        expr = expr.str.replace_all(pattern, head.replace("$", "$$") + ZWSP + "${1}${2}")
    return expr


# ----------------------------------------------------------------------------------------------------
# validation (one dialogue, Python) — the reference the columnar version is tested against


def check_messages(
    messages: Sequence[Mapping[str, object]] | None,
    dialect: str | Dialect,
    on_special: OnSpecial = "reject",
    extra_specials: Iterable[str] = (),
) -> str | None:
    """The reject reason of one dialogue (roles, content, special strings), or ``None`` when it is fine."""
    d = get_dialect(dialect)
    if messages is None:
        return "missing_messages: the dialogue has no message list"
    if len(messages) == 0:
        return "empty_dialogue: the dialogue has no messages"
    specials = (*d.specials, *extra_specials) if on_special == "reject" else ()
    has_system = messages[0].get("role") == "system" if isinstance(messages[0], Mapping) else False
    if has_system and len(messages) == 1:
        return "empty_dialogue: the dialogue has only a system message"
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, Mapping) else None
        content = m.get("content") if isinstance(m, Mapping) else None
        reason = _message_reason(i, role, content, has_system, d, specials)
        if reason:
            return reason
    return None


def _message_reason(
    i: int, role: object, content: object, has_system: bool, d: Dialect, specials: Sequence[str]
) -> str | None:
    turn = i + 1
    if role not in ROLES:
        return f"unknown_role: turn {turn} has role {role!r}; expected system, user or assistant"
    if role == "system" and not d.system:
        return f"no_system: {d.name} has no system prompt (turn {turn} is a system message)"
    if role == "system" and i > 0:
        return f"role_order: turn {turn} is a system message; only the first message may be one"
    expected = None if (has_system and i == 0) else ("user", "assistant")[(i - has_system) % 2]
    if expected is not None and role != expected:
        return f"role_order: turn {turn} is {role}, expected {expected}"
    if not isinstance(content, str):
        return f"missing_content: turn {turn} ({role}) has no text content"
    for s in specials:
        if s in content:
            return f"special_token: turn {turn} ({role}) contains {s!r}, which would forge a turn"
    return None


# ----------------------------------------------------------------------------------------------------
# rendering and parsing (one dialogue)


def render(messages: Sequence[Mapping[str, str]], dialect: str | Dialect, on_special: OnSpecial = "reject") -> str:
    """Render one dialogue; raise :class:`DialogueError` (message = reject reason) when it is invalid."""
    d = _fixed(dialect)
    reason = check_messages(messages, d, on_special)
    if reason:
        raise DialogueError(reason)
    esc = on_special == "escape"
    return "".join(
        d.turn(m["role"], escape_specials(m["content"], d.specials) if esc else m["content"]) for m in messages
    )


def _parse_regex(d: Dialect) -> re.Pattern[str]:
    heads = "|".join(re.escape(h) for h in sorted(d.headers.values(), key=len, reverse=True))
    stop = re.escape(d.end) if d.end else "(?=" + heads + "|\\Z)"
    return re.compile(f"({heads}){re.escape(d.lead)}(.*?){stop}{re.escape(d.sep)}", re.S)


def parse(text: str, dialect: str | Dialect, unescape: bool = False) -> list[dict[str, str]]:
    """Invert :func:`render` for a fixed dialect; raise :class:`DialogueError` on malformed text."""
    d = _fixed(dialect)
    pattern = _parse_regex(d)
    role_of = {h: r for r, h in d.headers.items()}
    out: list[dict[str, str]] = []
    pos = 0
    while pos < len(text):
        m = pattern.match(text, pos)
        if m is None:
            raise DialogueError(f"not {d.name} text at character {pos}: {text[pos : pos + 30]!r}")
        content = unescape_specials(m[2], d.specials) if unescape else m[2]
        out.append({"role": role_of[m[1]], "content": content})
        pos = m.end()
    return out


# ----------------------------------------------------------------------------------------------------
# columnar versions for the pipeline


def _as_messages(messages: pl.Series) -> pl.Series:
    dtype = messages.dtype
    inner = dtype.inner if isinstance(dtype, pl.List) else None
    if not isinstance(inner, pl.Struct) or {f.name for f in inner.fields} < {"role", "content"}:
        raise ChatdataError(
            f"messages must be a list of structs with fields role and content, got {dtype}; "
            "build the dialogue table first"
        )
    return messages


def _exploded(messages: pl.Series) -> pl.DataFrame:
    """One row per message: row, turn (0-based), n (messages in the dialogue), role, content."""
    frame = pl.DataFrame({"m": _as_messages(messages)}).with_row_index("row")
    frame = frame.with_columns(pl.col("m").list.len().alias("n")).filter(pl.col("n") > 0)
    return (
        frame.explode("m")
        .with_columns(pl.int_range(pl.len()).over("row").alias("turn"))
        .select("row", "turn", "n", pl.col("m").struct.field("role"), pl.col("m").struct.field("content"))
    )


def special_in(content: pl.Expr, specials: Sequence[str]) -> pl.Expr:
    """The first of ``specials`` (in their order) that ``content`` contains, quoted as :func:`check_messages`
    quotes it (``repr``), or null."""
    if not specials:
        return pl.lit(None, pl.String)
    found = pl.coalesce([pl.when(content.str.contains(s, literal=True)).then(pl.lit(repr(s))) for s in specials])
    return pl.when(content.str.contains_any(list(specials))).then(found)


def checked_specials(dialect: str | Dialect, on_special: OnSpecial, extra_specials: Iterable[str] = ()) -> list[str]:
    """The strings content may not hold under ``on_special`` (none when they are escaped)."""
    d = get_dialect(dialect)
    return list(dict.fromkeys((*d.specials, *extra_specials))) if on_special == "reject" else []


def check_dialogues(
    messages: pl.Series,
    dialect: str | Dialect,
    on_special: OnSpecial = "reject",
    extra_specials: Iterable[str] = (),
) -> pl.Series:
    """Columnar :func:`check_messages`: a reject reason (or null) per dialogue, from polars expressions."""
    specials = checked_specials(dialect, on_special, extra_specials)
    lengths = _as_messages(messages).list.len()
    ex = _exploded(messages).with_columns(
        pl.col("content").is_null().alias("missing"), special_in(pl.col("content"), specials).alias("special")
    )
    return check_turns(ex, lengths, dialect)


def check_turns(turns: pl.DataFrame, lengths: pl.Series, dialect: str | Dialect) -> pl.Series:
    """:func:`check_dialogues` from one row per message: ``row``, ``turn`` (0-based), ``n`` (messages in the
    dialogue), ``role``, ``missing`` (no content) and ``special`` (the quoted special string it holds, or null);
    ``lengths`` gives each dialogue's number of messages (null: no list). No text is read here, so the turns may
    come from a shard's message table (:mod:`chatdata.messages`)."""
    d = get_dialect(dialect)
    role, turn = pl.col("role"), pl.col("turn")
    turn_s = (turn + 1).cast(pl.String)
    has_system = (pl.col("role").first().over("row") == "system").fill_null(False)
    expected = (
        pl.when(has_system & (turn == 0))
        .then(pl.lit(None, pl.String))
        .when((turn - has_system.cast(pl.Int64)) % 2 == 0)
        .then(pl.lit("user"))
        .otherwise(pl.lit("assistant"))
    )
    role_repr = pl.when(role.is_null()).then(pl.lit("None")).otherwise(pl.lit("'") + role + pl.lit("'"))
    reason = pl.when(~role.is_in(ROLES) | role.is_null()).then(
        pl.concat_str(
            [
                pl.lit("unknown_role: turn "),
                turn_s,
                pl.lit(" has role "),
                role_repr,
                pl.lit("; expected system, user or assistant"),
            ]
        )
    )
    if not d.system:
        reason = reason.when(role == "system").then(
            pl.concat_str(
                [
                    pl.lit(f"no_system: {d.name} has no system prompt (turn "),
                    turn_s,
                    pl.lit(" is a system message)"),
                ]
            )
        )
    reason = (
        reason.when((role == "system") & (turn > 0))
        .then(
            pl.concat_str(
                [
                    pl.lit("role_order: turn "),
                    turn_s,
                    pl.lit(" is a system message; only the first message may be one"),
                ]
            )
        )
        .when(expected.is_not_null() & (role != expected))
        .then(
            pl.concat_str([pl.lit("role_order: turn "), turn_s, pl.lit(" is "), role, pl.lit(", expected "), expected])
        )
        .when(pl.col("missing"))
        .then(
            pl.concat_str(
                [
                    pl.lit("missing_content: turn "),
                    turn_s,
                    pl.lit(" ("),
                    role,
                    pl.lit(") has no text content"),
                ]
            )
        )
        .when(pl.col("special").is_not_null())
        .then(
            pl.concat_str(
                [
                    pl.lit("special_token: turn "),
                    turn_s,
                    pl.lit(" ("),
                    role,
                    pl.lit(") contains "),
                    pl.col("special"),
                    pl.lit(", which would forge a turn"),
                ]
            )
        )
        .otherwise(pl.lit(None, pl.String))
    )
    per_row = (
        turns.with_columns(reason.alias("reason"), has_system.alias("has_system"))
        .group_by("row", maintain_order=True)
        .agg(
            pl.col("reason").drop_nulls().first(),
            (pl.col("has_system").first() & (pl.col("n").first() == 1)).alias("system_only"),
        )
    )
    out = (
        pl.DataFrame({"len": lengths})
        .with_row_index("row")
        .join(per_row, on="row", how="left")
        .select(
            pl.when(pl.col("len").is_null())
            .then(pl.lit("missing_messages: the dialogue has no message list"))
            .when(pl.col("len") == 0)
            .then(pl.lit("empty_dialogue: the dialogue has no messages"))
            .when(pl.col("system_only"))
            .then(pl.lit("empty_dialogue: the dialogue has only a system message"))
            .otherwise(pl.col("reason"))
            .alias("reason")
        )
    )
    return out.get_column("reason")


def turn_frame(
    messages: pl.Series,
    dialect: str | Dialect,
    on_special: OnSpecial = "reject",
    extra_specials: Iterable[str] = (),
) -> pl.DataFrame:
    """One row per message with its piece of text and character spans inside the rendered dialogue.

    Columns: ``row``, ``turn``, ``role``, ``piece`` (the turn's text) and the row-local character offsets
    ``h0`` (turn start), ``c0`` (header end = where generation starts; the reply region, guanaco's lead
    space included, runs from here), ``c1`` (content end), ``e1`` (end marker end), ``s1`` (turn end).
    Content is escaped when ``on_special="escape"``. Rows are not checked here.
    """
    d = _fixed(dialect)
    ex = _exploded(messages)
    content = pl.col("content").fill_null("")
    if on_special == "escape":
        content = _escape_expr(content, (*d.specials, *extra_specials))
    header = pl.col("role").replace_strict(dict(d.headers), default="", return_dtype=pl.String)
    ex = ex.with_columns(header.alias("header"), content.alias("content"))
    head_len = pl.col("header").str.len_chars() + len(d.lead)
    tail_len = len(d.end) + len(d.sep)
    ex = ex.with_columns(
        pl.concat_str([pl.col("header"), pl.lit(d.lead), pl.col("content"), pl.lit(d.end + d.sep)]).alias("piece"),
        (head_len + pl.col("content").str.len_chars() + tail_len).cast(pl.Int64).alias("_len"),
    )
    ex = ex.with_columns((pl.col("_len").cum_sum().over("row") - pl.col("_len")).alias("h0"))
    return ex.select(
        "row",
        "turn",
        "role",
        "piece",
        "h0",
        (pl.col("h0") + pl.col("header").str.len_chars()).alias("c0"),
        (pl.col("h0") + pl.col("_len") - tail_len).alias("c1"),
        (pl.col("h0") + pl.col("_len") - len(d.sep)).alias("e1"),
        (pl.col("h0") + pl.col("_len")).alias("s1"),
    )


def render_batch(messages: pl.Series, dialect: str | Dialect, on_special: OnSpecial = "reject") -> pl.Series:
    """Columnar :func:`render`: the rendered text per dialogue, null where :func:`check_dialogues` rejects."""
    d = _fixed(dialect)
    reasons = check_dialogues(messages, d, on_special)
    texts = (
        turn_frame(messages, d, on_special)
        .group_by("row", maintain_order=True)
        .agg(pl.col("piece").str.join("").alias("text"))
    )
    out = (
        pl.DataFrame({"reason": reasons})
        .with_row_index("row")
        .join(texts, on="row", how="left")
        .select(pl.when(pl.col("reason").is_null()).then(pl.col("text")).alias("text"))
    )
    return out.to_series()
