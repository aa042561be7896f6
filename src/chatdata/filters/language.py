"""Dialogue-level language filter: a length-weighted vote of per-turn detections on cleaned text.

Scoring (:meth:`LanguageFilter.score`, columnar, one backend call per batch):

1. every turn is cleaned (:func:`~chatdata.filters.textclean.clean_for_langid`: code, URLs, markdown removed)
   and measured in letters;
2. turns with at least ``min_turn_letters`` letters vote, with weight = their letter count; shorter turns
   ("ok", "Hello!", "Thanks") get no weight, so they can never sink (or carry) a thread on their own;
3. a dialogue in which no turn is long enough is detected once on all its cleaned turns joined with a space,
   if that reaches ``min_turn_letters`` (source ``joined_turns``);
4. a dialogue with still too little text (pure code, only emoji, "ok"/"yes") falls back to the oasst ``lang``
   field of its root (source ``root_lang``; ``lang_score`` is null): there is nothing to contradict the label;
5. texts are capped at ``max_chars`` characters and deduplicated before the backend sees them.

Score columns: ``lang_detected`` (language with the largest vote), ``lang_score`` (its vote share: sum over
its turns of letters x confidence, divided by all voting letters; so a confident, unanimous thread scores near
1; rounded to 4 decimals, as are the detector's confidences, so the published scores and the decisions on
them are the same on every machine), ``lang_votes`` (list of {lang, share}, largest first), ``lang_turns``
(per-turn detected language, null for turns that did not vote), ``lang_source`` (``turns`` | ``joined_turns`` |
``root_lang``).

Decision (thresholds only, no rescoring): with ``require_root_lang`` the root's oasst ``lang`` must be in
``targets`` (primary subtags: ``en-US`` counts as ``en``), else ``root_lang_not_target``; then the summed vote
share of the target languages must reach ``min_score``, else ``detected_lang_not_target``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import polars as pl

from chatdata.errors import SpecError
from chatdata.filters.base import Filter, register
from chatdata.filters.lang_field import primary_subtag_expr
from chatdata.filters.langid import BACKENDS, SCORE_DECIMALS, UNDETERMINED, get_backend
from chatdata.filters.textclean import clean_for_langid, letter_count

_NULL = pl.lit(None, dtype=pl.String)
VOTE_DTYPE = pl.List(pl.Struct({"lang": pl.String, "share": pl.Float64}))


def _turns(frame: pl.DataFrame, only: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per turn: ``_row`` (dialogue position), ``_turn``, ``clean`` text, ``letters``.

    Threads repeat their shared prefixes, so each distinct content is cleaned once and joined back. With ``only``
    (a frame of ``_row``), only those dialogues' turns are cleaned; the others get null ``clean``/``letters``.
    """
    turns = (
        frame.select(
            pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"),
            pl.col("messages").list.eval(pl.element().struct.field("content")).alias("content"),
        )
        .with_columns(pl.int_ranges(pl.col("content").list.len(), dtype=pl.UInt32).alias("_turn"))
        .explode("content", "_turn")
        .drop_nulls("_turn")
    )
    wanted = turns if only is None else turns.join(only, on="_row", how="semi")
    cleaned = (
        wanted.select(pl.col("content").unique())
        .with_columns(clean_for_langid(pl.col("content")).alias("clean"))
        .with_columns(letter_count(pl.col("clean")).alias("letters"))
    )
    return turns.join(cleaned, on="content", how="left", nulls_equal=True).drop("content")


@register
class LanguageFilter(Filter):
    """Keep dialogues whose root ``lang`` and detected language (length-weighted vote) are in ``targets``."""

    kind = "language"
    level = "dialogue"
    reads = ("messages", "lang")
    writes = ("lang_detected", "lang_score", "lang_votes", "lang_turns", "lang_source")
    score_keys = ("backend", "min_turn_letters", "max_chars", "detect_scope")

    def score_fingerprint(self) -> str:
        """With ``detect_scope: root_targets`` the targets decide what is detected, so they key the scores too."""
        base = super().score_fingerprint()
        if self.settings["detect_scope"] != "root_targets":
            return base
        import hashlib

        extra = f"{base}|{self.targets}|{self.settings['require_root_lang']}"
        return hashlib.sha256(extra.encode()).hexdigest()

    defaults: ClassVar[dict[str, Any]] = {
        "targets": ["en"],
        "min_score": 0.4,
        "require_root_lang": True,
        "backend": "fasttext",
        "min_turn_letters": 20,
        "max_chars": 2000,
        "detect_scope": "all",
    }

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        where = spec.path or spec.name
        s = self.settings
        if s["backend"] not in BACKENDS:
            raise SpecError(f"{where}: unknown language backend '{s['backend']}'; choose one of {sorted(BACKENDS)}")
        targets = s["targets"]
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) and t for t in targets):
            raise SpecError(f"{where}: 'targets' must be a non-empty list of language codes like [en]")
        self.targets = sorted({t.replace("_", "-").split("-")[0].lower() for t in targets})
        for key, lo, hi in (("min_score", 0.0, 1.0),):
            if not isinstance(s[key], (int, float)) or not lo <= s[key] <= hi:
                raise SpecError(f"{where}: '{key}' must be a number in [{lo}, {hi}]")
        if s["detect_scope"] not in ("all", "root_targets"):
            raise SpecError(f"{where}: 'detect_scope' must be 'all' or 'root_targets'")
        for key in ("min_turn_letters", "max_chars"):
            if not isinstance(s[key], int) or s[key] < 1:
                raise SpecError(f"{where}: '{key}' must be a positive integer")

    # ------------------------------------------------------------------ score
    def score(self, frame: pl.DataFrame) -> pl.DataFrame:
        missing = {"messages", "lang"} - set(frame.columns)
        if missing:
            raise SpecError(f"filter '{self.name}' needs dialogue columns {sorted(missing)}; got {frame.columns}")
        min_letters = int(self.settings["min_turn_letters"])
        max_chars = int(self.settings["max_chars"])
        wanted = None
        if self.settings["detect_scope"] == "root_targets" and self.settings["require_root_lang"]:
            # the decision rejects these on their lang field anyway: skip cleaning and detecting them
            wanted = (
                frame.select(
                    pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"),
                    primary_subtag_expr(pl.col("lang")).is_in(self.targets).fill_null(False).alias("_want"),
                )
                .filter("_want")
                .select("_row")
            )
        turns = _turns(frame, wanted)
        voting = turns.filter(pl.col("letters") >= min_letters)
        # dialogues without any long-enough turn: one unit from all their cleaned turns joined
        joined = (
            turns.filter(pl.col("letters") > 0)
            .group_by("_row")
            .agg(pl.col("clean").str.join(" "), pl.col("letters").sum(), pl.lit(None, pl.UInt32).alias("_turn"))
            .join(voting.select("_row").unique(), on="_row", how="anti")
            .filter(pl.col("letters") >= min_letters)
            .select("_row", "_turn", "clean", "letters")
        )
        units = pl.concat([voting, joined]).with_columns(pl.col("clean").str.slice(0, max_chars).alias("text"))
        if wanted is not None:
            units = units.join(wanted, on="_row", how="semi")

        texts = units.get_column("text").unique(maintain_order=True)
        langs, confs = get_backend(self.settings["backend"]).detect_batch(texts.to_list())
        detected = pl.DataFrame(
            {"text": texts, "tlang": langs, "conf": confs},
            schema={"text": pl.String, "tlang": pl.String, "conf": pl.Float64},
        )
        units = units.join(detected, on="text", how="left")

        totals = units.group_by("_row").agg(pl.col("letters").sum().cast(pl.Float64).alias("total"))
        votes = (
            units.group_by("_row", "tlang")
            .agg((pl.col("letters") * pl.col("conf")).sum().alias("mass"))
            .join(totals, on="_row")
            .with_columns((pl.col("mass") / pl.col("total")).round(SCORE_DECIMALS).alias("share"))
            .sort(["_row", "share", "tlang"], descending=[False, True, False])
            .group_by("_row", maintain_order=True)
            .agg(
                pl.struct(pl.col("tlang").alias("lang"), pl.col("share")).alias("lang_votes"),
                pl.col("tlang").first().alias("lang_detected"),
                pl.col("share").first().alias("lang_score"),
            )
        )
        per_turn = (
            turns.select("_row", "_turn")
            .join(
                units.filter(pl.col("_turn").is_not_null()).select("_row", "_turn", "tlang"),
                on=["_row", "_turn"],
                how="left",
            )
            .sort("_row", "_turn")
            .group_by("_row", maintain_order=True)
            .agg(pl.col("tlang").alias("lang_turns"))
        )
        source = units.group_by("_row").agg(
            pl.when(pl.col("_turn").is_null().all())
            .then(pl.lit("joined_turns"))
            .otherwise(pl.lit("turns"))
            .alias("lang_source")
        )
        root_code = primary_subtag_expr(pl.col("lang"))
        root = pl.when(root_code.str.len_chars() > 0).then(root_code).otherwise(pl.lit(UNDETERMINED))
        out = (
            frame.drop([c for c in self.writes if c in frame.columns])
            .with_row_index("_row")
            .join(votes, on="_row", how="left")
            .join(per_turn, on="_row", how="left")
            .join(source, on="_row", how="left")
            .with_columns(
                pl.col("lang_source").fill_null(pl.lit("root_lang")),
                pl.col("lang_detected").fill_null(root),
                pl.col("lang_score").cast(pl.Float64),
                pl.col("lang_votes").cast(VOTE_DTYPE),
                pl.col("lang_turns").cast(pl.List(pl.String)).fill_null(pl.lit([], dtype=pl.List(pl.String))),
            )
            .sort("_row")
            .drop("_row")
        )
        return out.select(*[c for c in out.columns if c not in self.writes], *self.writes)

    # ----------------------------------------------------------------- decide
    def decide(self) -> tuple[pl.Expr, pl.Expr]:
        targets = self.targets
        root = primary_subtag_expr(pl.col("lang"))
        root_ok = root.is_in(targets).fill_null(False)
        voted = (
            pl.col("lang_votes")
            .list.eval(
                pl.when(pl.element().struct.field("lang").is_in(targets))
                .then(pl.element().struct.field("share"))
                .otherwise(0.0)
            )
            .list.sum()
        )
        target_share = (
            pl.when(pl.col("lang_source") == "root_lang").then(root_ok.cast(pl.Float64)).otherwise(voted.fill_null(0.0))
        )
        root_fails = root_ok.not_() if self.settings["require_root_lang"] else pl.lit(False)
        reason = (
            pl.when(root_fails)
            .then(pl.lit("root_lang_not_target"))
            .when(target_share < float(self.settings["min_score"]))
            .then(pl.lit("detected_lang_not_target"))
            .otherwise(_NULL)
        )
        evidence = (
            pl.when(root_fails)
            .then(pl.format("lang={}", pl.col("lang").cast(pl.String).fill_null("null")))
            .otherwise(
                pl.format(
                    "detected={} score={} target_share={} source={}",
                    pl.col("lang_detected").fill_null(UNDETERMINED),
                    pl.col("lang_score").round(2).cast(pl.String).fill_null("null"),
                    target_share.round(2).cast(pl.String),
                    pl.col("lang_source"),
                )
            )
        )
        return reason, evidence
