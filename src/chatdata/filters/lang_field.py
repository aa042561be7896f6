"""Keep dialogues whose root message carries a wanted oasst ``lang`` field (the language the contributor chose)."""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from chatdata.filters.base import Filter, register


def primary_subtag_expr(code: pl.Expr) -> pl.Expr:
    """Polars twin of :func:`chatdata.filters.langid.primary_subtag` (``pt-BR`` -> ``pt``, null -> null)."""
    return code.cast(pl.String).str.to_lowercase().str.replace(r"[-_].*$", "").str.strip_chars()


@register
class LangFieldFilter(Filter):
    """Compare the primary subtag of the root's ``lang`` with the targets (``en-US`` counts as ``en``)."""

    kind = "lang_field"
    level = "dialogue"
    reads = ("lang",)
    defaults: ClassVar[dict[str, Any]] = {"targets": ["en"]}

    def decide(self) -> tuple[pl.Expr, pl.Expr]:
        targets = [str(t).lower() for t in self.settings["targets"]]
        ok = primary_subtag_expr(pl.col("lang")).is_in(targets)
        return (
            pl.when(ok.fill_null(False)).then(pl.lit(None, pl.String)).otherwise(pl.lit("root_lang_not_target")),
            pl.format("lang={}", pl.col("lang").fill_null("null")),
        )
