"""PNG plots for dataset cards: the stage funnel, dialogue lengths per split, languages, preference margins.

Every function takes plain data (ledger dicts or polars frames) and an output path, and writes one PNG. The
output is byte-for-byte deterministic: figures are drawn with the Agg renderer outside pyplot (no global
state), under a fixed ``rc_context`` (font, sizes, ``svg.hashsalt``), with fixed margins, and saved
without the ``Software`` text chunk (Agg writes no timestamp). The same data always gives the same bytes, so a
rebuild does not re-upload unchanged plots.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

DPI = 100
#: colours per row unit (colour-blind friendly Okabe-Ito hues), then per split
UNIT_COLOURS = {"records": "#999999", "messages": "#0072B2", "dialogues": "#009E73", "pairs": "#CC79A7"}
SPLIT_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
DROP_COLOUR = "#D55E00"
RC: dict[str, Any] = {
    "svg.hashsalt": "chatdata",
    "font.family": "DejaVu Sans",
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "path.simplify": False,
    "savefig.dpi": DPI,
}


#: matplotlib's state (rcParams, the font cache) is global and not thread-safe: threads (a Dask worker's, a
#: thread pool's) draw one figure at a time, or two cards drawn at once would not be byte-identical
_DRAWING = threading.RLock()


@contextmanager
def _figure(
    width: float,
    height: float,
    *,
    ncols: int = 1,
    left: float = 0.75,
    right: float = 0.25,
    top: float = 0.45,
    bottom: float = 0.6,
    gap: float = 0.8,
) -> Iterator[tuple[Any, list[Any]]]:
    """A figure with fixed margins in inches (cheaper than constrained layout and just as stable)."""
    import matplotlib

    with _DRAWING, matplotlib.rc_context(RC):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(width, height), dpi=DPI)
        axes_w = (width - left - right - gap * (ncols - 1)) / ncols
        fig.subplots_adjust(
            left=left / width,
            right=1 - right / width,
            top=1 - top / height,
            bottom=bottom / height,
            wspace=gap / max(axes_w, 0.1),
        )
        axes = fig.subplots(1, ncols, squeeze=False)[0]
        yield fig, list(axes)


def _label_inches(labels: Sequence[str], size: float = 9.0) -> float:
    """Rough width of the longest tick label (DejaVu Sans averages ~0.6 em per character)."""
    return max((len(str(x)) for x in labels), default=1) * size * 0.6 / 72


def save_png(fig: Any, path: Path) -> Path:
    """Save ``fig`` as a PNG with no metadata that varies (no Software chunk, Agg writes no time)."""
    import matplotlib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _DRAWING, matplotlib.rc_context(RC):
        fig.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _short(n: float) -> str:
    n = float(n)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.0f}"


def funnel_plot(ledger: Sequence[dict[str, Any]], path: Path) -> Path:
    """Horizontal bars: rows kept after each ledger stage, coloured and labelled by unit; the rows each stage
    rejected are printed in red at the right. A stage that changes unit (``flatten``: messages in, dialogues
    out) is drawn in its produced unit."""
    stages = [str(r["stage"]) for r in ledger]
    values, units, drops, units_in = [], [], [], []
    for r in ledger:
        produced = r.get("produced")
        values.append(int(produced if produced is not None else r["rows_out"]))
        units.append(str(r.get("produced_unit") or r["unit"]))
        drops.append(int(sum((r.get("rejected") or {}).values())))
        units_in.append(str(r["unit"]))
    height = 1.2 + 0.42 * max(len(stages), 1)
    margins = {"left": _label_inches(stages) + 0.3, "right": 0.2, "top": 0.4, "bottom": 0.55}
    with _figure(9.0, height, **margins) as (fig, (ax,)):
        y = list(range(len(stages)))
        ax.barh(y, values, color=[UNIT_COLOURS.get(u, "#E69F00") for u in units], height=0.65)
        top = max(values, default=1) or 1
        for i, (v, d) in enumerate(zip(values, drops, strict=True)):
            ax.text(v + top * 0.01, i, f"{v:,} {_unit(units[i], v)}", va="center", ha="left", fontsize=9)
            if d:
                ax.text(
                    top * 1.69,
                    i,
                    f"−{d:,} {_unit(units_in[i], d)}",
                    va="center",
                    ha="right",
                    fontsize=9,
                    color=DROP_COLOUR,
                )
        ax.set_yticks(y, stages)
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.7)
        ax.grid(axis="y", visible=False)
        ax.xaxis.set_major_formatter(_short_formatter())
        ax.set_xlabel("rows kept after the stage (red: rows the stage rejected)")
        ax.set_title("Pipeline funnel: rows kept after each stage")
        return save_png(fig, path)


def _unit(unit: str, n: int) -> str:
    return unit[:-1] if n == 1 and unit.endswith("s") else unit


def _short_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _pos: _short(v))


def _log_bins(lo: float, hi: float, n: int = 30) -> list[float]:
    """``n + 1`` log-spaced bin edges covering ``[max(1, lo), hi]``."""
    lo = max(1.0, lo)
    hi = max(lo * 1.001, hi)
    a, b = math.log10(lo), math.log10(hi)
    return [10 ** (a + (b - a) * i / n) for i in range(n + 1)]


def _shares(values: pl.Series, bins: Sequence[float]) -> np.ndarray:
    """Share of ``values`` (nulls dropped) in each bin: ``np.histogram`` counts divided by the row count."""
    vals = values.drop_nulls().cast(pl.Float64).to_numpy()
    counts, _ = np.histogram(vals, bins=np.asarray(bins, dtype=np.float64))
    return counts / max(len(vals), 1)


def _step_hist(ax: Any, bins: Sequence[float], shares: np.ndarray, colour: str, label: str) -> None:
    """Draw pre-binned ``shares`` as a step histogram: one value per bin (its left edge) weighted by the share,
    so matplotlib bins a few dozen points instead of every row and the figure and legend look the same."""
    ax.hist(bins[:-1], bins=list(bins), weights=shares, histtype="step", linewidth=1.6, color=colour, label=label)


def lengths_plot(frame: pl.DataFrame, path: Path) -> Path:
    """Histograms of dialogue lengths per split: ``turns`` and ``chars`` (and ``tokens`` when the column is
    there and not all null). ``frame`` has one row per dialogue with a ``split`` column. Bars are the share of
    each split's rows, so splits of very different sizes compare. Bins are counted with numpy (or polars for
    turns), so drawing costs the same for any number of rows."""
    panels = [
        ("turns", "Turns per dialogue", "turns (messages)"),
        ("chars", "Characters per dialogue", "characters (log scale)"),
    ]
    if "tokens" in frame.columns and frame.get_column("tokens").drop_nulls().len():
        panels.append(("tokens", "Tokens per dialogue", "tokens (log scale)"))
    splits = frame.get_column("split").unique(maintain_order=True).to_list()
    with _figure(4.2 * len(panels), 3.7, ncols=len(panels), top=0.75, bottom=0.9, right=0.2) as (fig, axes):
        for ax, (col, title, xlabel) in zip(axes, panels, strict=True):
            column = frame.get_column(col).drop_nulls().cast(pl.Float64)
            if not column.len():
                ax.set_visible(False)
                continue
            if col == "turns":
                _turn_bars(ax, frame, splits)
            else:
                bins = _log_bins(float(column.min()), float(column.max()))
                _log_axis(ax)
                for i, split in enumerate(splits):
                    vals = frame.filter(pl.col("split") == split).get_column(col).drop_nulls()
                    if not vals.len():
                        continue
                    colour = SPLIT_COLOURS[i % len(SPLIT_COLOURS)]
                    _step_hist(ax, bins, _shares(vals, bins), colour, f"{split} (n={vals.len():,})")
            ax.set_title(title)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("share of the split's rows")
        handles, labels = next(((h, lab) for h, lab in (a.get_legend_handles_labels() for a in axes) if h), ([], []))
        if handles:
            fig.legend(handles, labels, loc="lower center", ncols=min(len(labels), 4), frameon=False)
        fig.suptitle("Dialogue lengths per split", fontweight="bold", y=0.97)
        return save_png(fig, path)


def _log_axis(ax: Any) -> None:
    """Log x axis labelled 1, 2, 5, 10, 20, 50, … 1k, 2k (short labels, no minor labels, no overlap)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _short(v)))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _turn_bars(ax: Any, frame: pl.DataFrame, splits: list[str]) -> None:
    """Grouped bars: share of each split's rows per number of turns (discrete, so bars side by side)."""
    from matplotlib.ticker import MaxNLocator

    counts = frame.drop_nulls("turns").group_by("split", "turns").len()
    width = 0.8 / max(len(splits), 1)
    for i, split in enumerate(splits):
        part = counts.filter(pl.col("split") == split).sort("turns")
        total = part.get_column("len").sum()
        if not total:
            continue
        xs = [t - 0.4 + width * (i + 0.5) for t in part.get_column("turns").to_list()]
        ax.bar(
            xs,
            [n / total for n in part.get_column("len").to_list()],
            width=width * 0.95,
            color=SPLIT_COLOURS[i % len(SPLIT_COLOURS)],
            label=f"{split} (n={total:,})",
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))
    ax.grid(axis="x", visible=False)


def languages_plot(counts: pl.DataFrame, path: Path, *, top: int = 20) -> Path:
    """Grouped horizontal bars: rows per language, one bar per count column (e.g. ``oasst lang`` and
    ``detected``). ``counts`` has a ``lang`` column and one integer column per source; languages beyond
    ``top`` are summed into ``other``."""
    sources = [c for c in counts.columns if c != "lang"]
    ordered = counts.with_columns(pl.sum_horizontal(sources).alias("_total")).sort(
        ["_total", "lang"], descending=[True, False]
    )
    if ordered.height > top:
        head, tail = ordered.head(top - 1), ordered.slice(top - 1)
        other = tail.select(
            pl.lit(f"other ({tail.height})").alias("lang"),
            *[pl.col(c).sum() for c in sources],
            pl.col("_total").sum(),
        )
        ordered = pl.concat([head, other.cast(head.schema)])
    langs = ordered.get_column("lang").to_list()
    n = len(langs)
    height = 1.1 + 0.3 * n * max(1, len(sources)) ** 0.5
    with _figure(7.5, height, left=_label_inches(langs) + 0.6, right=0.2, top=0.4, bottom=0.55) as (
        fig,
        (ax,),
    ):
        width = 0.8 / max(len(sources), 1)
        top_value = max((v for c in sources for v in ordered.get_column(c).to_list() if v is not None), default=1) or 1
        for j, src in enumerate(sources):
            vals = [int(v or 0) for v in ordered.get_column(src).to_list()]
            ys = [i - 0.4 + width * (j + 0.5) for i in range(n)]
            ax.barh(ys, vals, height=width * 0.95, color=SPLIT_COLOURS[j % len(SPLIT_COLOURS)], label=src)
            for yv, v in zip(ys, vals, strict=True):
                if v:
                    ax.text(v + top_value * 0.01, yv, f"{v:,}", va="center", ha="left", fontsize=8)
        ax.set_yticks(range(n), langs)
        ax.invert_yaxis()
        ax.set_xlim(0, top_value * 1.15)
        ax.grid(axis="y", visible=False)
        ax.xaxis.set_major_formatter(_short_formatter())
        ax.set_xlabel("rows (all splits)")
        ax.set_ylabel("language")
        ax.set_title("Rows per language (primary subtag: pt-BR counts as pt)")
        if len(sources) > 1:
            ax.legend(frameon=False, loc="lower right")
        return save_png(fig, path)


def margins_plot(frame: pl.DataFrame, path: Path) -> Path:
    """Histogram of ``score_chosen - score_rejected`` per split (preference pairs), binned with numpy."""
    data = frame.select("split", (pl.col("score_chosen") - pl.col("score_rejected")).alias("margin")).drop_nulls()
    splits = data.get_column("split").unique(maintain_order=True).to_list()
    margin = data.get_column("margin").cast(pl.Float64)
    lo, hi = (float(margin.min()), float(margin.max())) if margin.len() else (0.0, 0.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    bins = [lo + (hi - lo) * i / 25 for i in range(26)]
    with _figure(6.0, 3.6, left=0.8, right=0.2, top=0.4, bottom=0.55) as (fig, (ax,)):
        for i, split in enumerate(splits):
            vals = data.filter(pl.col("split") == split).get_column("margin")
            colour = SPLIT_COLOURS[i % len(SPLIT_COLOURS)]
            _step_hist(ax, bins, _shares(vals, bins), colour, f"{split} (n={vals.len():,})")
        ax.set_title("Preference margin: score_chosen − score_rejected")
        ax.set_xlabel("score margin")
        ax.set_ylabel("share of the split's pairs")
        ax.legend(frameon=False)
        return save_png(fig, path)
