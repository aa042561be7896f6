"""The statistics the card prints: lengths, languages, rejects, phrases, decontamination, pairs, masks and the
funnel, from the build record and the rows' small stats columns (collected while writing)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from chatdata.card.markdown import fmt_num, scrub_paths
from chatdata.card.metadata import SplitFiles, local_file, primary_subtag
from chatdata.record import MASK_SETTINGS, BuildRecord, StageCounts

#: rows of the card's ranked tables (phrases, benchmark items)
TOP_N = 20

# ------------------------------------------------------------------------------------------------ data stats


def _dialogue_exprs(schema: pa.Schema) -> list[pl.Expr]:
    names = set(schema.names)
    exprs: list[pl.Expr] = []
    conv = next((c for c in ("messages", "chosen") if c in names), None)
    if conv is not None:
        exprs += [
            pl.col(conv).list.len().cast(pl.Int64).alias("turns"),
            pl.col(conv)
            .list.eval(pl.element().struct.field("content").str.len_chars())
            .list.sum()
            .cast(pl.Int64)
            .alias("chars"),
        ]
    elif "text" in names:
        turns = pl.col("text").str.count_matches(r"### (?:Human|Assistant):").cast(pl.Int64)
        exprs += [
            pl.when(turns > 0).then(turns).alias("turns"),
            pl.col("text").str.len_chars().cast(pl.Int64).alias("chars"),
        ]
    if "n_tokens" in names:
        exprs.append(pl.col("n_tokens").cast(pl.Int64).alias("tokens"))
    for col, dtype in (
        ("lang", pl.String),
        ("lang_detected", pl.String),
        ("lang_score", pl.Float64),
        ("lang_source", pl.String),
        ("score_chosen", pl.Float64),
        ("score_rejected", pl.Float64),
    ):
        if col in names:
            exprs.append(pl.col(col).cast(dtype))
    for col in ("matched_phrases", "contamination"):
        if col in names:
            exprs.append(pl.col(col).cast(pl.List(pl.String)))
    return exprs


def _needed(schema: pa.Schema) -> tuple[list[pl.Expr], list[str]]:
    exprs = _dialogue_exprs(schema)
    return exprs, sorted({c for e in exprs for c in e.meta.root_names()})


def table_stats(table: pa.Table | pa.RecordBatch, split: str) -> pl.DataFrame:
    """The stats rows (see :func:`load_rows`) of a table of ``split`` as it is written: the writer collects them
    while writing, so the card never reads the data back."""
    exprs, needed = _needed(table.schema)
    if needed:
        frame = pl.from_arrow(table.select(needed))
        assert isinstance(frame, pl.DataFrame)
    else:
        frame = pl.DataFrame({"_": pl.Series([None] * table.num_rows, dtype=pl.Null)})
    return frame.with_columns(pl.lit(split).alias("split")).select("split", *exprs)


def stats_rows(frames: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """Stats rows of several tables as one frame (empty when there are none)."""
    frames = list(frames)
    if not frames:
        return pl.DataFrame({"split": []}, schema={"split": pl.String})
    return pl.concat(frames, how="diagonal_relaxed")


def load_rows(folder: Path, splits: Iterable[SplitFiles]) -> pl.DataFrame:
    """One row per published row of the given splits: ``split`` plus the stats columns that exist (``turns``,
    ``chars``, ``tokens``, ``lang``, ``lang_detected``, ``lang_score``, ``lang_source``, ``matched_phrases``,
    ``score_chosen``, ``score_rejected``), read back from a folder's files (a build collects them as it writes)."""
    frames = []
    for sf in splits:
        for rel in sf.paths:
            path = local_file(folder, rel)
            exprs, needed = _needed(pq.read_schema(path))
            if not needed:
                frame = pl.DataFrame({"_": pl.Series([None] * pq.read_metadata(path).num_rows, dtype=pl.Null)})
                frames.append(frame.with_columns(pl.lit(sf.split).alias("split")).select("split", *exprs))
                continue
            # batch by batch: only the small stats columns of a whole file are ever held
            for batch in pq.ParquetFile(path).iter_batches(batch_size=50_000, columns=needed):
                frames.append(table_stats(batch, sf.split))
    return stats_rows(frames)


def _describe(s: pl.Series) -> dict[str, float | int] | None:
    s = s.drop_nulls()
    if not s.len():
        return None
    return {
        "mean": float(s.mean()),
        "p50": int(s.quantile(0.5, "nearest")),
        "p95": int(s.quantile(0.95, "nearest")),
        "max": int(s.max()),
        "total": int(s.sum()),
    }


def length_stats(rows: pl.DataFrame, split_order: list[str]) -> list[dict[str, Any]]:
    """Per split: rows and turns/chars/tokens summaries (mean, p50, p95, max, total)."""
    out = []
    for split in split_order:
        part = rows.filter(pl.col("split") == split)
        entry: dict[str, Any] = {"split": split, "rows": part.height}
        for col in ("turns", "chars", "tokens"):
            entry[col] = _describe(part.get_column(col)) if col in part.columns else None
        out.append(entry)
    return out


def _count_table(rows: pl.DataFrame, col: str, split_order: list[str]) -> list[dict[str, Any]]:
    counts = rows.select("split", pl.col(col).fill_null("(none)").alias("value")).group_by("value", "split").len()
    totals = (
        counts.group_by("value")
        .agg(pl.col("len").sum().alias("total"))
        .sort(["total", "value"], descending=[True, False])
    )
    per = {(v, s): n for v, s, n in counts.iter_rows()}
    grand = max(rows.height, 1)
    return [
        {"value": v, "splits": [per.get((v, s), 0) for s in split_order], "total": t, "share": t / grand}
        for v, t in totals.iter_rows()
    ]


def language_stats(rows: pl.DataFrame, split_order: list[str]) -> dict[str, Any] | None:
    """Rows per ``lang`` and ``lang_detected`` (per split), agreement, score quantiles, score sources."""
    if "lang" not in rows.columns and "lang_detected" not in rows.columns:
        return None
    out: dict[str, Any] = {"field": None, "detected": None, "agreement": None, "score": None, "source": None}
    if "lang" in rows.columns:
        out["field"] = _count_table(rows, "lang", split_order)
    if "lang_detected" in rows.columns:
        out["detected"] = _count_table(rows, "lang_detected", split_order)
        if "lang" in rows.columns:
            both = rows.select(
                pl.col("lang").str.to_lowercase().str.replace(r"[-_].*$", ""),
                pl.col("lang_detected").str.to_lowercase().str.replace(r"[-_].*$", ""),
            ).drop_nulls()
            if both.height:
                out["agreement"] = {
                    "rows": both.height,
                    "same": int((both["lang"] == both["lang_detected"]).sum()),
                }
    if "lang_score" in rows.columns:
        s = rows.get_column("lang_score").drop_nulls()
        if s.len():
            out["score"] = {
                "rows": s.len(),
                "null": rows.height - s.len(),
                **{f"p{q}": float(s.quantile(q / 100, "nearest")) for q in (5, 25, 50, 75, 95)},
                "mean": float(s.mean()),
            }
    if "lang_source" in rows.columns:
        out["source"] = _count_table(rows, "lang_source", split_order)
    return out


def language_codes(rows: pl.DataFrame) -> list[str]:
    """ISO 639 primary subtags of the published rows' oasst ``lang`` (e.g. ``pt-BR`` -> ``pt``), sorted."""
    if "lang" not in rows.columns:
        return []
    return sorted({p for v in rows.get_column("lang").drop_nulls().unique().to_list() if (p := primary_subtag(v))})


def filter_names(record: BuildRecord, *kinds: str) -> list[str]:
    """The names of the build's filter specs whose filter class name holds one of ``kinds``."""
    return sorted({str(f["name"]) for f in record.filters if any(k in str(f["filter"]).lower() for k in kinds)})


#: reject columns the card summarises (``payload`` is read only for the phrase filters' rows)
REJECT_COLUMNS = ("stage", "filter", "reason", "evidence")


def reject_paths(folder: Path, splits: list[SplitFiles]) -> list[Path]:
    return [local_file(folder, p) for s in splits if s.config == "rejects" for p in s.paths]


def scan_rejects(paths: Iterable[Path], columns: Iterable[str]) -> pl.LazyFrame:
    """The rejects files as one lazy frame of ``columns`` cast to strings, in file order (a column missing
    from a file is null there)."""
    columns = list(columns)
    frames = []
    for path in paths:
        missing = [c for c in columns if c not in pq.read_schema(path).names]
        frames.append(
            pl.scan_parquet(path)
            .with_columns(pl.lit(None, pl.String).alias(c) for c in missing)
            .select(pl.col(c).cast(pl.String) for c in columns)
        )
    if not frames:
        return pl.LazyFrame(schema=dict.fromkeys(columns, pl.String))
    return pl.concat(frames, how="vertical")


def reject_frame(paths: list[Path]) -> pl.LazyFrame | None:
    """The small columns of the rejects table (:data:`REJECT_COLUMNS`, strings), never the payloads; lazy, so
    the summaries below stream over it instead of holding it."""
    if not paths:
        return None
    return scan_rejects(paths, REJECT_COLUMNS)


RejectFrames = pl.DataFrame | pl.LazyFrame | Iterable[pl.DataFrame | pl.LazyFrame]


def reject_summary(rejects: RejectFrames) -> list[dict[str, Any]]:
    """Rejects per stage, filter and reason, with the first evidence (file order) as an example.

    ``rejects`` may be one frame or the rejects files' frames in order: each is summarised alone and the partial
    summaries are combined, so memory is bounded by one file whatever the size of the table."""
    keys = ["stage", "filter", "reason"]
    parts = [rejects] if isinstance(rejects, (pl.DataFrame, pl.LazyFrame)) else rejects
    summary: pl.DataFrame | None = None
    offset = 0
    for part in parts:
        frame = part.collect() if isinstance(part, pl.LazyFrame) else part
        numbered = frame.select(*keys, "evidence").with_row_index("_i", offset=offset)
        offset += frame.height
        del frame
        partial = numbered.group_by(keys).agg(
            pl.len().alias("rows"),
            pl.col("_i").filter(pl.col("evidence").is_not_null()).min().alias("_first"),
            pl.col("evidence").sort_by("_i").drop_nulls().first().alias("example"),
        )
        if summary is not None:
            partial = (
                pl.concat([summary, partial])
                .group_by(keys)
                .agg(
                    pl.col("rows").sum(),
                    pl.col("_first").min(),
                    pl.col("example").sort_by("_first", nulls_last=True).drop_nulls().first(),
                )
            )
        summary = partial
    if summary is None or summary.is_empty():
        return []
    grouped = summary.select(*keys, "rows", "example").sort(
        ["rows", "stage", "filter", "reason"], descending=[True, False, False, False], nulls_last=True
    )
    return grouped.to_dicts()


def phrase_stats(record: BuildRecord, rows: pl.DataFrame, reject_paths: Iterable[Path]) -> dict[str, Any] | None:
    """Most frequent matched phrases: in dropped dialogues (``matched_phrases`` inside the payload of the
    phrase filters' rejects, read lazily from ``reject_paths`` for those rows only) and in published rows (a
    ``matched_phrases`` column), counting each phrase once per row."""
    names = filter_names(record, "uncensor", "phrase")
    kept_col = "matched_phrases" in rows.columns
    if not names and not kept_col:
        return None
    dropped = pl.DataFrame(schema={"m": pl.List(pl.String)})
    by_filter: list[tuple[str, int]] = []
    reject_paths = list(reject_paths)
    if reject_paths and names:
        mine = (
            scan_rejects(reject_paths, ("filter", "payload"))
            .filter(pl.col("filter").is_in(names))
            .select(
                "filter",
                pl.col("payload")
                .str.json_path_match("$.matched_phrases")
                .str.json_decode(pl.List(pl.String))
                .alias("m"),
            )
            .collect(engine="streaming")  # payloads pass through in morsels, only the phrase rows stay
        )
        by_filter = sorted(((str(f), n) for f, n in mine.group_by("filter").len().iter_rows()), key=lambda x: x[0])
        dropped = mine.select("m")
    kept = rows.select(pl.col("matched_phrases").alias("m")) if kept_col else dropped.head(0)

    def counts(frame: pl.DataFrame) -> dict[str, int]:
        c = frame.select(pl.col("m").list.unique()).explode("m").drop_nulls().group_by("m").len()
        return dict(c.iter_rows())

    d, k = counts(dropped), counts(kept)
    order = sorted(set(d) | set(k), key=lambda p: (-d.get(p, 0), -k.get(p, 0), p))[:TOP_N]
    n_dropped = dropped.height
    kept_matching = int(kept.select(pl.col("m").list.len().fill_null(0) > 0).to_series().sum()) if kept_col else None
    specs = [f for f in record.filters if f["name"] in names]
    return {
        "filters": names,
        "by_filter": by_filter,
        "dropped_rows": n_dropped,
        "kept_matching": kept_matching,
        "distinct": len(set(d) | set(k)),
        "top": [
            {
                "phrase": p,
                "dropped": d.get(p, 0),
                "kept": k.get(p, 0),
                "share": d.get(p, 0) / n_dropped if n_dropped else 0.0,
            }
            for p in order
        ],
        "scope": [
            {
                "name": f["name"],
                "roles": f["settings"].get("roles"),
                "join_turns": f["settings"].get("join_turns"),
            }
            for f in specs
        ],
    }


def decontamination_stats(
    record: BuildRecord, rows: pl.DataFrame, rejects: pl.DataFrame | pl.LazyFrame | None
) -> dict[str, Any] | None:
    """Rows dropped by decontamination filters (or stages), by reason and by benchmark item named in evidence,
    and published rows still flagged in a ``contamination`` column."""
    names = set(filter_names(record, "decontam"))
    if rejects is not None:
        filters = rejects.lazy().select(pl.col("filter").drop_nulls().unique()).collect(engine="streaming")
        names |= {str(f) for f in filters.to_series().to_list() if "decontam" in f.lower()}
    stages = [r for r in record.ledger if "decontam" in r.stage.lower()]
    checked = record.decontamination
    declared = bool(record.recipe.get("decontaminate"))
    flagged_col = "contamination" in rows.columns
    if not (names or stages or checked is not None or declared or flagged_col):
        return None
    mine = pl.DataFrame(schema={"reason": pl.String, "evidence": pl.String})
    if rejects is not None:
        mine = (
            rejects.lazy()
            .filter(pl.col("filter").is_in(sorted(names)) | pl.col("stage").str.to_lowercase().str.contains("decontam"))
            .select("reason", "evidence")
            .collect(engine="streaming")
        )
    reasons = sorted(((str(r), n) for r, n in mine.group_by("reason").len().iter_rows()), key=lambda x: (-x[1], x[0]))
    items = (
        mine.select(pl.col("evidence").str.extract(r"overlap with (\w+:\S+) «", 1).alias("item"))
        .drop_nulls()
        .group_by("item")
        .len()
        .sort(["len", "item"], descending=[True, False])
    )
    if checked is not None and checked.benchmarks:
        benchmarks = [
            (
                b.name,
                b.provenance(),
                b.items,
                sum(b.removed.values()),
                ", ".join(f"{k} {n:,}" for k, n in sorted(b.removed.items())),
            )
            for b in checked.benchmarks
        ]
    else:
        benchmarks = [
            (str(b), "", 0, int(n), "")
            for b, n in items.select(pl.col("item").str.replace(r":.*$", "").alias("benchmark"), "len")
            .group_by("benchmark")
            .agg(pl.col("len").sum())
            .sort(["len", "benchmark"], descending=[True, False])
            .rows()
        ]
    flagged = None
    if flagged_col:
        flagged = int(rows.select(pl.col("contamination").list.len().fill_null(0) > 0).to_series().sum())
    return {
        "filters": sorted(names),
        "rows": mine.height,
        "reasons": reasons,
        "top_items": items.head(TOP_N).rows(),
        "benchmarks": benchmarks,
        "left_out": list(checked.left_out) if checked is not None else [],
        "n": checked.n if checked is not None else None,
        "flagged": flagged,
    }


def pair_stats(rows: pl.DataFrame, split_order: list[str]) -> list[dict[str, Any]] | None:
    """Per split with scores: pairs, mean chosen/rejected score, margin mean/min, pairs with margin <= 0."""
    if "score_chosen" not in rows.columns or "score_rejected" not in rows.columns:
        return None
    out = []
    for split in split_order:
        part = rows.filter(pl.col("split") == split).drop_nulls(["score_chosen", "score_rejected"])
        if not part.height:
            continue
        margin = part.get_column("score_chosen") - part.get_column("score_rejected")
        out.append(
            {
                "split": split,
                "pairs": part.height,
                "chosen": float(part["score_chosen"].mean()),
                "rejected": float(part["score_rejected"].mean()),
                "margin": float(margin.mean()),
                "min_margin": float(margin.min()),
                "not_better": int((margin <= 0).sum()),
            }
        )
    return out or None


def mask_info(record: BuildRecord) -> dict[str, Any] | None:
    """The label-mask check of the record: its settings, and per checked column (``messages``, or ``chosen`` and
    ``rejected``) the counts, token statistics, failing reasons and tokenizer notes."""
    masks = record.masks
    if masks is None:
        return None
    columns = sorted(masks.columns, key=lambda c: (c not in ("messages", "chosen", "rejected"), c))
    measures: dict[str, list[Any]] = {}
    for i, col in enumerate(columns):
        stats = masks.columns[col]
        flat = {k: v for k, v in stats.items() if _scalar(v)}
        flat.update({f"tokens {k}": v for k, v in (stats.get("tokens") or {}).items() if _scalar(v)})
        for key, value in flat.items():
            measures.setdefault(key, [None] * len(columns))[i] = value
    reasons = [
        (col, str(reason), n)
        for col in columns
        for reason, n in sorted((masks.columns[col].get("reasons") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    settings = {k: getattr(masks, k) for k in MASK_SETTINGS}
    return {
        "settings": sorted(scrub_paths(settings).items()),
        "columns": columns,
        "measures": sorted(measures.items()),
        "reasons": reasons,
        "notes": sorted({str(n) for col in columns for n in masks.columns[col].get("notes") or []}),
    }


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, int | float | str | bool)


# ------------------------------------------------------------------------------------------------ funnel


def _fmt_notes(notes: Any) -> str:
    if not isinstance(notes, Mapping) or not notes:
        return ""
    parts = []
    for key in sorted(notes):
        v = notes[key]
        if v is None:
            continue
        if isinstance(v, Mapping):
            inner = ", ".join(f"{k} {fmt_num(v[k])}" for k in sorted(v, key=str))
            parts.append(f"{key}: {inner}")
        else:
            parts.append(f"{key}: {fmt_num(v)}")
    return "; ".join(parts)


def funnel_rows(ledger: list[StageCounts]) -> list[dict[str, Any]]:
    """Ledger rows for the funnel table: counts, output label, drops by count then reason, moves, notes."""
    out = []
    for r in ledger:
        label = f"{r.rows_out:,}"
        if r.produced is not None:
            label = f"{r.rows_out:,} {r.unit} → {r.produced:,} {r.produced_unit or r.unit}"
        out.append(
            {
                "source": r.source or "all sources",
                "stage": r.stage,
                "unit": r.unit,
                "rows_in": r.rows_in,
                "out": label,
                "dropped": sum(r.rejected.values()),
                "reasons": sorted(r.rejected.items(), key=lambda kv: (-kv[1], kv[0])),
                "moved": sorted(r.moved.items()),
                "notes": _fmt_notes(r.notes),
            }
        )
    return out
