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
from chatdata.filters.base import MessageFilter, register
from chatdata.filters.lang_field import primary_subtag_expr
from chatdata.filters.langid import BACKENDS, SCORE_DECIMALS, UNDETERMINED, get_backend
from chatdata.filters.textclean import clean_for_langid, letter_count

_NULL = pl.lit(None, dtype=pl.String)
VOTE_DTYPE = pl.List(pl.Struct({"lang": pl.String, "share": pl.Float64}))


@register
class LanguageFilter(MessageFilter):
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
    def message_key(self) -> tuple[Any, ...]:
        """What a message's score depends on (not which dialogues ask for it)."""
        s = self.settings
        return (self.kind, s["backend"], int(s["min_turn_letters"]), int(s["max_chars"]))

    def score_messages(self, texts: pl.DataFrame) -> pl.DataFrame:
        """Per message (``_i``, ``text``): its cleaned ``letters``; a long enough turn's language ``tlang`` and
        confidence ``conf`` (detected on its first ``max_chars`` cleaned characters, each distinct text once);
        a shorter one's cleaned text ``short`` (for dialogues with no long turn)."""
        min_letters, max_chars = int(self.settings["min_turn_letters"]), int(self.settings["max_chars"])
        cleaned = texts.select("_i", clean_for_langid(pl.col("text")).alias("clean")).with_columns(
            letter_count(pl.col("clean")).alias("letters")
        )
        voting = pl.col("letters") >= min_letters
        units = cleaned.filter(voting).select("_i", pl.col("clean").str.slice(0, max_chars).alias("unit"))
        detected = self._detect(units.get_column("unit"))
        return cleaned.join(
            units.join(detected, on="unit", how="left"), on="_i", how="left", maintain_order="left"
        ).select(
            "_i",
            "letters",
            "tlang",
            "conf",
            pl.when(~voting & (pl.col("letters") > 0)).then(pl.col("clean")).alias("short"),
        )

    def _detect(self, units: pl.Series) -> pl.DataFrame:
        texts = units.unique(maintain_order=True)
        langs, confs = get_backend(self.settings["backend"]).detect_batch(texts.to_list())
        return pl.DataFrame(
            {"unit": texts, "tlang": langs, "conf": confs},
            schema={"unit": pl.String, "tlang": pl.String, "conf": pl.Float64},
        )

    def wanted(self, frame: pl.DataFrame) -> pl.Series:
        """Which dialogues need their turns scored: all, or with ``detect_scope: root_targets`` only those the
        root ``lang`` does not reject anyway."""
        if self.settings["detect_scope"] == "root_targets" and self.settings["require_root_lang"]:
            return frame.select(primary_subtag_expr(pl.col("lang")).is_in(self.targets).fill_null(False)).to_series()
        return pl.repeat(True, frame.height, eager=True)

    def aggregate(
        self, frame: pl.DataFrame, turns: pl.DataFrame, scores: pl.DataFrame, wanted: pl.Series
    ) -> pl.DataFrame:
        """The score columns of each dialogue of ``frame`` from its turns (``_row``, ``_turn``, ``_i``) and their
        messages' ``scores`` (of the ``wanted`` dialogues' turns): the length-weighted vote of the long turns, or,
        for a dialogue with none, one detection of its short turns joined."""
        min_letters, max_chars = int(self.settings["min_turn_letters"]), int(self.settings["max_chars"])
        rows = pl.DataFrame({"_row": pl.int_range(len(wanted), dtype=pl.UInt32, eager=True)}).filter(wanted)
        scored = turns.join(rows, on="_row", how="semi").join(scores, on="_i", how="left", maintain_order="left")
        voting = scored.filter(pl.col("letters") >= min_letters).select("_row", "_turn", "letters", "tlang", "conf")
        joined = (
            scored.filter(pl.col("letters") > 0)
            .group_by("_row", maintain_order=True)
            .agg(pl.col("short").str.join(" "), pl.col("letters").sum(), pl.lit(None, pl.UInt32).alias("_turn"))
            .join(voting.select("_row").unique(), on="_row", how="anti")
            .filter(pl.col("letters") >= min_letters)
            .select("_row", "_turn", pl.col("short").str.slice(0, max_chars).alias("unit"), "letters")
        )
        if joined.height:
            joined = joined.join(self._detect(joined.get_column("unit")), on="unit", how="left").drop("unit")
        else:
            joined = joined.drop("unit").with_columns(
                pl.lit(None, pl.String).alias("tlang"), pl.lit(None, pl.Float64).alias("conf")
            )
        units = pl.concat([voting, joined.select(voting.columns)])
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
            .join(units.filter(pl.col("_turn").is_not_null()).select("_row", "_turn", "tlang"), on=["_row", "_turn"],
                  how="left")
            .sort("_row", "_turn")
            .group_by("_row", maintain_order=True)
            .agg(pl.col("tlang").alias("lang_turns"))
        )  # fmt: skip
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
