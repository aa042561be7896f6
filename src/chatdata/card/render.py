"""Render the card (Jinja templates in ``data_cards/``) and write a folder's record: ``build.json``, README.md and
the plots."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from markupsafe import Markup

from chatdata.card.markdown import (
    code_block,
    dump_yaml,
    fmt_bytes,
    fmt_num,
    md_code,
    md_link,
    md_prose,
    md_text,
    one_line,
    scrub_paths,
)
from chatdata.card.metadata import (
    SplitFiles,
    card_metadata,
    local_file,
    mixture_table,
    ordered_splits,
    primary_subtag,
    safe_name,
    source_context,
)
from chatdata.card.statistics import (
    REJECT_COLUMNS,
    decontamination_stats,
    filter_names,
    funnel_rows,
    language_codes,
    language_stats,
    length_stats,
    load_rows,
    mask_info,
    pair_stats,
    phrase_stats,
    reject_frame,
    reject_paths,
    reject_summary,
    scan_rejects,
)
from chatdata.record import RECORD_FILE, BuildRecord

#: Plots a card may write; stale ones (e.g. no languages plot any more) are removed from the folder.
PLOT_FILES = ("funnel.png", "lengths.png", "languages.png", "margins.png", "changes.png")

# ------------------------------------------------------------------------------------------------ rendering


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return value
    if isinstance(value, bool) or value is None:
        return md_text(value)
    if isinstance(value, int | float):
        return Markup(fmt_num(value))
    return md_text(value)


def _environment() -> Any:
    from chatdata.resources import data_cards_dir

    return _cached_environment(str(data_cards_dir()))


@functools.lru_cache(maxsize=4)
def _cached_environment(templates: str) -> Any:
    """One Jinja environment per template folder, so templates compile once per process."""
    from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(templates),
        # compiled templates kept in the temp folder, keyed by their source: compiling costs more than rendering
        bytecode_cache=FileSystemBytecodeCache(),
        undefined=StrictUndefined,
        autoescape=False,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.tests["hub_id"] = lambda v: isinstance(v, str) and bool(re.fullmatch(r"[\w.-]+/[\w.-]+", v))
    env.filters.update(
        md=md_text,
        prose=md_prose,
        code=md_code,
        codeblock=code_block,
        link=md_link,
        yaml=lambda obj, lang="yaml": code_block(dump_yaml(obj, sort_keys=True), lang),
        num=lambda v: Markup(fmt_num(v)),
        pct=lambda v: Markup(f"{100 * float(v):.1f}%"),
        bytes=lambda v: Markup(fmt_bytes(int(v))),
        pyrepr=lambda v: Markup(json.dumps(one_line(v), ensure_ascii=False)),
        quoted=lambda v: md_text(json.dumps(one_line(v), ensure_ascii=False)),
        raw=lambda v: Markup(one_line(v)),
    )
    return env


def _template_name(env: Any, recipe_name: str) -> str:
    name = f"{recipe_name}.md.j2"
    if re.fullmatch(r"[\w-]+", recipe_name) and name in env.list_templates():
        return name
    return "base.md.j2"


def _write_plots(
    folder: Path,
    record: BuildRecord,
    rows: pl.DataFrame,
    langs: dict[str, Any] | None,
    pairs: list[dict[str, Any]] | None,
    split_order: list[str],
) -> dict[str, str | None]:
    from chatdata import plots

    written: dict[str, str | None] = {
        "funnel": None,
        "lengths": None,
        "languages": None,
        "margins": None,
        "changes": None,
    }
    changes = record.changes
    if changes and (changes.get("removed_by_reason") or changes.get("added_by_cause")):
        plots.changes_plot(dict(changes), folder / "changes.png")
        written["changes"] = "changes.png"
    if record.ledger:
        plots.funnel_plot([r.model_dump() for r in record.ledger], folder / "funnel.png")
        written["funnel"] = "funnel.png"
    if "turns" in rows.columns and rows.get_column("turns").drop_nulls().len():
        cols = [c for c in ("split", "turns", "chars", "tokens") if c in rows.columns]
        plots.lengths_plot(rows.select(cols).filter(pl.col("split").is_in(split_order)), folder / "lengths.png")
        written["lengths"] = "lengths.png"
    if langs is not None:
        sources = {"oasst lang": "lang", "detected": "lang_detected"}
        present = {k: v for k, v in sources.items() if v in rows.columns}
        distinct = {
            primary_subtag(x) or x for v in present.values() for x in rows.get_column(v).drop_nulls().unique().to_list()
        }
        if len(distinct) > 1:
            frames = [
                rows.group_by(
                    pl.col(col).str.to_lowercase().str.replace(r"[-_].*$", "").fill_null("(none)").alias("lang")
                ).agg(pl.len().alias(label))
                for label, col in present.items()
            ]
            counts = frames[0]
            for extra in frames[1:]:
                counts = counts.join(extra, on="lang", how="full", coalesce=True)
            counts = counts.fill_null(0).sort("lang")
            plots.languages_plot(counts, folder / "languages.png")
            written["languages"] = "languages.png"
    margins = rows.select(pl.col("score_chosen") - pl.col("score_rejected")) if pairs else None
    if margins is not None and margins.to_series().drop_nulls().n_unique() > 1:
        plots.margins_plot(rows.select("split", "score_chosen", "score_rejected"), folder / "margins.png")
        written["margins"] = "margins.png"
    for name in PLOT_FILES:
        if name not in written.values() and (folder / name).is_file():
            (folder / name).unlink()
    return written


def card_context(
    record: BuildRecord,
    folder: Path,
    *,
    repo_id: str | None = None,
    plots: bool = True,
    rows: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Everything the templates print, computed from ``record`` and the files in ``folder`` (``rows``: the data's
    stats rows collected while writing it, else read back from the files)."""
    folder = Path(folder)
    recipe = record.recipe
    name = safe_name(str(recipe.get("name") or folder.name))
    splits = ordered_splits(record)
    default = [s for s in splits if s.config == "default"]
    split_order = [s.split for s in default]
    if rows is None:
        rows = load_rows(folder, default)
    else:  # in the order of the build's splits, as read back
        order = {s: i for i, s in enumerate(split_order)}
        rows = rows.with_columns(pl.col("split").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
        rows = rows.sort("_o", maintain_order=True).drop("_o")
    rejected_files = reject_paths(folder, splits)
    rejects = reject_frame(rejected_files)
    langs = language_stats(rows, split_order)
    meta = card_metadata(record, folder, languages=language_codes(rows) or None)
    pairs = pair_stats(rows, split_order)
    plot_files = (
        _write_plots(folder, record, rows, langs, pairs, split_order)
        if plots
        else dict.fromkeys(("funnel", "lengths", "languages", "margins"))
    )
    specs_of = recipe.get("sources") or {}
    sources = [source_context(n, src, specs_of.get(n) or {}) for n, src in record.ordered_sources().items()]
    outputs = [
        {
            "config": s.config,
            "split": s.split,
            "rows": s.rows,
            "files": list(zip(s.paths, s.bytes, s.sha256, strict=True)),
        }
        for s in splits
    ]
    return {
        "name": name,
        "repo_id": repo_id or f"YOUR_ORG/{name}",
        "repo_id_known": repo_id is not None,
        "recipe": recipe,
        "primary": next(iter(specs_of.values()), {}),
        "output": recipe.get("output", "sft"),
        "meta": meta,
        "front_matter": Markup(dump_yaml(meta)),
        "splits": outputs,
        "split_order": split_order,
        "sft_splits": [s for s in split_order if s.endswith("_sft")] or split_order,
        "pref_splits": [s for s in split_order if s.endswith("_prefs")],
        "columns": pq.read_schema(local_file(folder, default[0].paths[0])).names
        if default and default[0].paths
        else [],
        "funnel": funnel_rows(record.ledger),
        "lengths": length_stats(rows, split_order),
        "languages": langs,
        "language_filters": filter_names(record, "lang"),
        "phrases": phrase_stats(record, rows, rejected_files),
        "decontam": decontamination_stats(record, rows, rejects),
        "changes": record.changes,
        "masks": mask_info(record),
        "pairs": pairs,
        "rejects": reject_summary(scan_rejects([p], REJECT_COLUMNS) for p in rejected_files)
        if rejects is not None
        else None,
        "plots": plot_files,
        "filters": scrub_paths(record.filters),
        "settings": scrub_paths(record.settings),
        "settings_given": record.settings_given,
        "settings_sha256": record.settings_sha256,
        "version": record.chatdata_version,
        "source": sources[0],
        "sources": sources,
        "mixture": mixture_table(record, split_order),
    }


def _columns(folder: Path, default: list[SplitFiles]) -> list[str]:
    """The data's column names (those of the first file of the default config)."""
    first = next((s.paths[0] for s in default if s.paths), None)
    return pq.read_schema(local_file(folder, first)).names if first is not None else []


def render_card(
    record: BuildRecord,
    folder: Path,
    *,
    repo_id: str | None = None,
    plots: bool = True,
    rows: pl.DataFrame | None = None,
) -> str:
    """The README.md text for the dataset folder ``folder`` built as ``record`` (writes the PNG plots too).

    ``repo_id`` (``org/name``) is used in the usage snippets; without it they say ``YOUR_ORG/<recipe>``. ``rows``
    are the data's stats rows when the caller collected them while writing (see :func:`table_stats`).
    """
    ctx = card_context(record, Path(folder), repo_id=repo_id, plots=plots, rows=rows)
    env = _environment()
    text = env.get_template(_template_name(env, ctx["name"])).render(**ctx)
    text = re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"
    return text


def write_record(folder: Path, record: BuildRecord, *, rows: pl.DataFrame | None = None) -> None:
    """Write a built folder's record: ``build.json`` and the card rendered from it (with its plots); each file
    replaced in one rename."""
    import os

    def replace(name: str, data: bytes) -> None:
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)

    replace(RECORD_FILE, record.to_json())
    replace("README.md", render_card(record, folder, rows=rows).encode("utf-8"))


#: what records the version a rebuild replaced (``build.json``'s ``changes``, the card's section, its plot)
CHANGES_SECTION = "## Changes since the previous version"


def without_changes(name: str, data: bytes) -> bytes | None:
    """A built folder's file ``name`` (its path in the folder) less the record of the version a rebuild
    replaced, so a rebuild in place compares with a fresh build: ``build.json`` without ``changes``
    (re-serialised), the card without its section, None for the plot."""
    if name == "changes.png":
        return None
    if name == "build.json":
        record = json.loads(data)
        record.pop("changes", None)
        return json.dumps(record, sort_keys=True).encode()
    if name == "README.md":
        pattern = re.escape(CHANGES_SECTION).encode() + rb"\n.*?(?=\n## )"
        return re.sub(rb"\n{3,}", b"\n\n", re.sub(pattern, b"", data, flags=re.S))
    return data
