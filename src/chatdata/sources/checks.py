"""Whether a list of turns is a usable conversation, as vectorised polars expressions.

Rules, in this order (the first that fails is the reject reason):

- ``unknown_role``: a role outside the format's role map (evidence: the values);
- ``empty_conversation``: no turns, or only a system turn;
- ``roles_not_alternating``: not ``system?`` then user/assistant alternating from user (evidence: the roles);
- ``no_reply``: it ends on a user turn (nothing to train on);
- ``empty_prompt`` / ``empty_response``: a user / assistant turn whose content is empty or whitespace only.

A system turn whose content is empty or whitespace is dropped before the checks (it says nothing; Orca and
ShareGPT data hold many), and roles are mapped to ``system``/``user``/``assistant``.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

#: role map of TRL/H4 ``messages``
CHAT_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
#: role map of ShareGPT ``conversations`` (``from``)
SHAREGPT_ROLES = {"system": "system", "human": "user", "gpt": "assistant"}

_VALID = r"^(system,)?user,assistant(,user,assistant)*$"
_ENDS_ON_USER = r"^(system,)?user(,assistant,user)*$"


def _role() -> pl.Expr:
    return pl.element().struct.field("role")


def _blank(role: str) -> pl.Expr:
    return (_role() == role) & (pl.element().struct.field("content").str.strip_chars() == "")


def normalise(turns: pl.Expr, roles: Mapping[str, str]) -> pl.Expr:
    """``turns`` with roles mapped (an unknown role becomes null) and blank system turns dropped."""
    mapped = turns.list.eval(
        pl.struct(
            _role().replace_strict(dict(roles), default=None, return_dtype=pl.String).alias("role"),
            pl.element().struct.field("content").alias("content"),
        )
    )
    return mapped.list.eval(pl.element().filter(~_blank("system").fill_null(False)))


def facts(raw: str, turns: str, roles: Mapping[str, str], tag: str) -> list[pl.Expr]:
    """Helper columns ``_{tag}_*`` that :func:`problem` reads, from the raw ``raw`` turns and their
    :func:`normalise` d ``turns`` (computed once, read by both the reason and the evidence)."""
    return [
        pl.col(raw).list.eval(_role().filter(~_role().is_in(list(roles)))).list.unique(maintain_order=True)
        .alias(f"_{tag}_unknown"),
        pl.col(turns).list.eval(_role()).list.join(",").alias(f"_{tag}_seq"),
        pl.col(turns).list.eval(_blank("user")).alias(f"_{tag}_blank_user"),
        pl.col(turns).list.eval(_blank("assistant")).alias(f"_{tag}_blank_reply"),
    ]  # fmt: skip


def problem(tag: str, label: str = "") -> tuple[pl.Expr, pl.Expr]:
    """(reason, evidence) from the :func:`facts` columns of ``tag``; both null when the conversation is usable.
    ``label`` prefixes the evidence (``chosen: ``)."""
    unknown, seq = pl.col(f"_{tag}_unknown"), pl.col(f"_{tag}_seq")
    blank_user, blank_reply = pl.col(f"_{tag}_blank_user"), pl.col(f"_{tag}_blank_reply")
    has_unknown, empty = unknown.list.len() > 0, seq.is_in(["", "system"])
    ends_on_user, valid = seq.str.contains(_ENDS_ON_USER), seq.str.contains(_VALID)

    def at(blank: pl.Expr, role: str) -> pl.Expr:
        return pl.format(f"{label}turn {{}} ({role}) is blank", blank.list.arg_max() + 1)

    roles_ev = pl.format(f"{label}roles: {{}}", seq.str.slice(0, 200))
    reason = (
        pl.when(has_unknown)
        .then(pl.lit("unknown_role"))
        .when(empty)
        .then(pl.lit("empty_conversation"))
        .when(ends_on_user)
        .then(pl.lit("no_reply"))
        .when(~valid)
        .then(pl.lit("roles_not_alternating"))
        .when(blank_user.list.any())
        .then(pl.lit("empty_prompt"))
        .when(blank_reply.list.any())
        .then(pl.lit("empty_response"))
    )
    evidence = (
        pl.when(has_unknown)
        .then(pl.lit(label) + unknown.list.join(", "))
        .when(seq == "")
        .then(pl.lit(f"{label}no turns"))
        .when(empty | ends_on_user | ~valid)
        .then(roles_ev)
        .when(blank_user.list.any())
        .then(at(blank_user, "user"))
        .when(blank_reply.list.any())
        .then(at(blank_reply, "assistant"))
    )
    return reason, evidence
