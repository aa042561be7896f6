"""PNG plots for dataset cards: the stage funnel, dialogue lengths per split, languages, preference margins.

Every function takes plain data (ledger dicts or polars frames) and an output path, and writes one PNG. Charts
are drawn with Pillow: axis-aligned rectangles and lines on integer pixels, text rendered by FreeType with the
font bundled in Pillow, the PNG written with no metadata. That is a few milliseconds per chart (a matplotlib
figure cost ~0.3 s, the largest part of a small build) and the bytes depend only on the data, so a rebuild does
not re-upload unchanged plots. Histograms are binned with numpy, so drawing costs the same for any row count.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from chatdata import exactmath

#: colours per row unit (colour-blind friendly Okabe-Ito hues), then per split
UNIT_COLOURS = {"records": "#999999", "messages": "#0072B2", "dialogues": "#009E73", "pairs": "#CC79A7"}
SPLIT_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")
DROP_COLOUR = "#D55E00"
INK, GRID, AXIS = "#222222", "#E6E6E6", "#888888"
TITLE, LABEL, TICK = 15, 12, 11


@functools.cache
def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


class _Canvas:
    """A white RGB image with text helpers (sizes in pixels)."""

    def __init__(self, width: int, height: int) -> None:
        from PIL import Image, ImageDraw

        self.image = Image.new("RGB", (int(width), int(height)), "white")
        self.draw = ImageDraw.Draw(self.image)

    def text(self, xy: tuple[float, float], s: str, size: int = TICK, fill: str = INK, anchor: str = "la") -> None:
        self.draw.text((round(xy[0]), round(xy[1])), s, font=_font(size), fill=fill, anchor=anchor)

    def width_of(self, s: str, size: int = TICK) -> int:
        return math.ceil(self.draw.textlength(s, font=_font(size)))

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: str) -> None:
        a, b = sorted((round(x0), round(x1)))
        c, d = sorted((round(y0), round(y1)))
        if b > a and d > c:
            self.draw.rectangle((a, c, b - 1, d - 1), fill=fill)

    def line(self, points: list[tuple[float, float]], fill: str, width: int = 1) -> None:
        self.draw.line([(round(x), round(y)) for x, y in points], fill=fill, width=width)

    def legend(self, x: float, y: float, items: list[tuple[str, str]], size: int = TICK) -> None:
        """Coloured squares with labels, left to right from ``(x, y)`` (the top left corner)."""
        for colour, label in items:
            self.rect(x, y + 2, x + 12, y + 14, colour)
            self.text((x + 18, y + 8), label, size, anchor="lm")
            x += 18 + self.width_of(label, size) + 22

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.image.save(path, format="PNG", compress_level=3)
        return path


def _short(n: float) -> str:
    n = float(n)
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.3g}" if n != int(n) else f"{n:.0f}"


def _pct(v: float) -> str:
    return f"{100 * v:.0f}%" if v >= 0.01 or v == 0 else f"{100 * v:.1f}%"


def _log10(x: float) -> float:
    """log10 from :mod:`chatdata.exactmath` (libm's last bit differs between machines; plots must not)."""
    return float(exactmath.log(x)) / _LN10


_LN10 = 2.302585092994046


def _pow10(x: float) -> float:
    return float(exactmath.pow10(x))


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (1, 2 or 5 times a power of ten apart) covering ``[lo, hi]``."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    power = 10.0 ** math.floor(_log10(raw) + 1e-9)
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 12) for k in range(first, math.floor(hi / step + 1e-9) + 1)]


def log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 × powers of ten inside ``[lo, hi]`` (every one when there are few, else the powers only)."""
    out = []
    for e in range(math.floor(_log10(max(lo, 1e-12)) + 1e-9), math.ceil(_log10(max(hi, 1e-12)) - 1e-9) + 1):
        out += [m * 10.0**e for m in (1, 2, 5) if lo <= m * 10.0**e <= hi]
    return out if len(out) <= 8 else [t for t in out if f"{t:.0e}".startswith("1e")]


class _Scale:
    """Data values to pixels along one axis (linear or log10)."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float, *, log: bool = False) -> None:
        self.log = log
        self.lo, self.hi = (_log10(lo), _log10(hi)) if log else (lo, hi)
        if self.hi <= self.lo:
            self.hi = self.lo + 1
        self.p0, self.p1 = p0, p1

    def __call__(self, v: float) -> float:
        x = _log10(max(v, 1e-12)) if self.log else v
        return self.p0 + (x - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)


def _frame_axes(
    c: _Canvas,
    box: tuple[float, float, float, float],
    xs: _Scale,
    ys: _Scale,
    xticks: list[float],
    yticks: list[float],
    xfmt: Any,
    yfmt: Any,
) -> None:
    """Grid lines, tick labels and the axis lines of a plot area ``box`` = (left, top, right, bottom)."""
    left, top, right, bottom = box
    for t in yticks:
        y = ys(t)
        c.line([(left, y), (right, y)], GRID)
        c.text((left - 6, y), yfmt(t), TICK, anchor="rm")
    for t in xticks:
        x = xs(t)
        c.line([(x, top), (x, bottom)], GRID)
        c.text((x, bottom + 6), xfmt(t), TICK, anchor="ma")
    c.line([(left, top), (left, bottom), (right, bottom)], AXIS)


def _unit(unit: str, n: int) -> str:
    return unit[:-1] if n == 1 and unit.endswith("s") else unit


def _stage_label(record: dict[str, Any], many_sources: bool) -> str:
    source = record.get("source")
    return f"{source}: {record['stage']}" if many_sources and source else str(record["stage"])


def funnel_plot(ledger: Sequence[dict[str, Any]], path: Path) -> Path:
    """Horizontal bars: rows kept after each ledger stage, coloured and labelled by unit; the rows each stage
    rejected are printed in red at the right. A stage that changes unit (``flatten``: messages in, dialogues
    out) is drawn in its produced unit; with several sources each stage is named after its source."""
    many = len({r.get("source") for r in ledger if r.get("source")}) > 1
    stages = [_stage_label(r, many) for r in ledger]
    values, units, drops, units_in = [], [], [], []
    for r in ledger:
        produced = r.get("produced")
        values.append(int(produced if produced is not None else r["rows_out"]))
        units.append(str(r.get("produced_unit") or r["unit"]))
        drops.append(int(sum((r.get("rejected") or {}).values())))
        units_in.append(str(r["unit"]))
    probe = _Canvas(1, 1)
    label_w = max((probe.width_of(s, LABEL) for s in stages), default=40) + 16
    row, bar_w, right_w = 28, 520, 150
    width, height = label_w + bar_w + right_w + 20, 70 + row * max(len(stages), 1) + 50
    c = _Canvas(width, height)
    c.text((12, 12), "Pipeline funnel: rows kept after each stage", TITLE)
    top_value = max(values, default=1) or 1
    box = (label_w, 48, label_w + bar_w, 48 + row * len(stages))
    xs = _Scale(0, top_value * 1.3, box[0], box[2])
    ticks = [t for t in nice_ticks(0, top_value, 4) if t <= top_value * 1.3]
    for t in ticks:
        c.line([(xs(t), box[1]), (xs(t), box[3])], GRID)
        c.text((xs(t), box[3] + 6), _short(t), TICK, anchor="ma")
    for i, (stage, v, d) in enumerate(zip(stages, values, drops, strict=True)):
        y0 = box[1] + i * row
        c.text((label_w - 10, y0 + row / 2), stage, LABEL, anchor="rm")
        c.rect(xs(0), y0 + 5, max(xs(v), xs(0) + 1), y0 + row - 5, UNIT_COLOURS.get(units[i], "#E69F00"))
        c.text((xs(v) + 6, y0 + row / 2), f"{v:,} {_unit(units[i], v)}", TICK, anchor="lm")
        if d:
            c.text((width - 12, y0 + row / 2), f"-{d:,} {_unit(units_in[i], d)}", TICK, DROP_COLOUR, anchor="rm")
    c.line([(box[0], box[1]), (box[0], box[3])], AXIS)
    c.text(
        (box[0] + bar_w / 2, height - 14),
        "rows kept after the stage (red: rows the stage rejected)",
        LABEL,
        anchor="md",
    )
    return c.save(path)


def _log_bins(lo: float, hi: float, n: int = 30) -> list[float]:
    """``n + 1`` log-spaced bin edges covering ``[max(1, lo), hi]``."""
    lo = max(1.0, lo)
    hi = max(lo * 1.001, hi)
    a, b = _log10(lo), _log10(hi)
    return [lo, *(_pow10(a + (b - a) * i / n) for i in range(1, n)), hi]


def _shares(values: pl.Series, bins: Sequence[float]) -> np.ndarray:
    """Share of ``values`` (nulls dropped) in each bin: ``np.histogram`` counts divided by the row count."""
    vals = values.drop_nulls().cast(pl.Float64).to_numpy()
    counts, _ = np.histogram(vals, bins=np.asarray(bins, dtype=np.float64))
    return counts / max(len(vals), 1)


def _steps(c: _Canvas, xs: _Scale, ys: _Scale, bins: Sequence[float], shares: np.ndarray, colour: str) -> None:
    """A step histogram: a flat line over each bin at its share, joined by verticals, down to 0 at the ends."""
    points = [(xs(bins[0]), ys(0))]
    for i, share in enumerate(shares):
        points += [(xs(bins[i]), ys(float(share))), (xs(bins[i + 1]), ys(float(share)))]
    points.append((xs(bins[-1]), ys(0)))
    c.line(points, colour, width=2)


def _panel_box(i: int, panel_w: int, top: int, height: int) -> tuple[float, float, float, float]:
    left = i * panel_w + 64
    return (left, top + 30, left + panel_w - 84, top + height)


def lengths_plot(frame: pl.DataFrame, path: Path) -> Path:
    """Histograms of dialogue lengths per split: ``turns`` and ``chars`` (and ``tokens`` when the column is
    there and not all null). ``frame`` has one row per dialogue with a ``split`` column. Bars are the share of
    each split's rows, so splits of very different sizes compare."""
    panels = [
        ("turns", "Turns per dialogue", "turns (messages)"),
        ("chars", "Characters per dialogue", "characters (log scale)"),
    ]
    if "tokens" in frame.columns and frame.get_column("tokens").drop_nulls().len():
        panels.append(("tokens", "Tokens per dialogue", "tokens (log scale)"))
    splits = frame.get_column("split").unique(maintain_order=True).to_list()
    panel_w, plot_h = 420, 250
    c = _Canvas(panel_w * len(panels), 56 + plot_h + 96)
    c.text((12, 12), "Dialogue lengths per split", TITLE)
    legend: list[tuple[str, str]] = []
    for i, (col, title, xlabel) in enumerate(panels):
        column = frame.get_column(col).drop_nulls().cast(pl.Float64)
        if not column.len():
            continue
        box = _panel_box(i, panel_w, 40, plot_h)
        c.text(((box[0] + box[2]) / 2, box[1] - 20), title, LABEL, anchor="mm")
        c.text(((box[0] + box[2]) / 2, box[3] + 26), xlabel, LABEL, anchor="ma")
        if col == "turns":
            legend = _turn_bars(c, box, frame, splits)
        else:
            bins = _log_bins(float(column.min()), float(column.max()))
            series = []
            for j, split in enumerate(splits):
                vals = frame.filter(pl.col("split") == split).get_column(col).drop_nulls()
                if vals.len():
                    series.append((SPLIT_COLOURS[j % len(SPLIT_COLOURS)], _shares(vals, bins)))
            top = max((float(s.max()) for _, s in series), default=0.0) or 1.0
            xs = _Scale(bins[0], bins[-1], box[0], box[2], log=True)
            ys = _Scale(0, top * 1.1, box[3], box[1])
            _frame_axes(c, box, xs, ys, log_ticks(bins[0], bins[-1]), nice_ticks(0, top * 1.1, 4), _short, _pct)
            for colour, shares in series:
                _steps(c, xs, ys, bins, shares, colour)
    if legend:
        c.legend(64, c.image.height - 28, legend)
    return c.save(path)


def _turn_bars(
    c: _Canvas, box: tuple[float, float, float, float], frame: pl.DataFrame, splits: list[str]
) -> list[tuple[str, str]]:
    """Grouped bars: share of each split's rows per number of turns (discrete, so bars side by side)."""
    counts = frame.drop_nulls("turns").group_by("split", "turns").len()
    turns = counts.get_column("turns").cast(pl.Int64)
    lo, hi = int(turns.min() or 0), int(turns.max() or 0)
    parts, legend = [], []
    for i, split in enumerate(splits):
        part = counts.filter(pl.col("split") == split).sort("turns")
        total = int(part.get_column("len").sum())
        if not total:
            continue
        colour = SPLIT_COLOURS[i % len(SPLIT_COLOURS)]
        shares = {int(t): n / total for t, n in part.select("turns", "len").iter_rows()}
        parts.append((i, colour, shares))
        legend.append((colour, f"{split} (n={total:,})"))
    top = max((v for _, _, s in parts for v in s.values()), default=0.0) or 1.0
    xs = _Scale(lo - 0.6, hi + 0.6, box[0], box[2])
    ys = _Scale(0, top * 1.1, box[3], box[1])
    step = max(1, math.ceil((hi - lo + 1) / 10))
    _frame_axes(
        c,
        box,
        xs,
        ys,
        [float(t) for t in range(lo, hi + 1, step)],
        nice_ticks(0, top * 1.1, 4),
        lambda v: f"{v:.0f}",
        _pct,
    )
    width = 0.8 / max(len(splits), 1)
    for i, colour, shares in parts:
        for t, share in shares.items():
            x0 = t - 0.4 + width * i
            c.rect(xs(x0), ys(share), xs(x0 + width * 0.95), ys(0), colour)
    return legend


def languages_plot(counts: pl.DataFrame, path: Path, *, top: int = 20) -> Path:
    """Grouped horizontal bars: rows per language, one bar per count column (e.g. ``oasst lang`` and
    ``detected``). ``counts`` has a ``lang`` column and one integer column per source; languages beyond
    ``top`` are summed into ``other``."""
    sources = [col for col in counts.columns if col != "lang"]
    ordered = counts.with_columns(pl.sum_horizontal(sources).alias("_total")).sort(
        ["_total", "lang"], descending=[True, False]
    )
    if ordered.height > top:
        head, tail = ordered.head(top - 1), ordered.slice(top - 1)
        other = tail.select(
            pl.lit(f"other ({tail.height})").alias("lang"), *[pl.col(s).sum() for s in sources], pl.col("_total").sum()
        )
        ordered = pl.concat([head, other.cast(head.schema)])
    langs = ordered.get_column("lang").to_list()
    probe = _Canvas(1, 1)
    label_w = max((probe.width_of(x, LABEL) for x in langs), default=30) + 18
    group = 10 + 14 * max(len(sources), 1)
    bar_w = 560
    c = _Canvas(label_w + bar_w + 90, 60 + group * len(langs) + 60)
    c.text((12, 12), "Rows per language (primary subtag: pt-BR counts as pt)", TITLE)
    top_value = max((int(v or 0) for s in sources for v in ordered.get_column(s).to_list()), default=1) or 1
    box = (label_w, 48, label_w + bar_w, 48 + group * len(langs))
    xs = _Scale(0, top_value * 1.15, box[0], box[2])
    for t in nice_ticks(0, top_value, 4):
        c.line([(xs(t), box[1]), (xs(t), box[3])], GRID)
        c.text((xs(t), box[3] + 6), _short(t), TICK, anchor="ma")
    for i, lang in enumerate(langs):
        y0 = box[1] + i * group
        c.text((label_w - 10, y0 + group / 2), lang, LABEL, anchor="rm")
        for j, src in enumerate(sources):
            v = int(ordered.get_column(src)[i] or 0)
            yb = y0 + 5 + 14 * j
            c.rect(xs(0), yb, max(xs(v), xs(0) + (1 if v else 0)), yb + 12, SPLIT_COLOURS[j % len(SPLIT_COLOURS)])
            if v:
                c.text((xs(v) + 5, yb + 6), f"{v:,}", 10, anchor="lm")
    c.line([(box[0], box[1]), (box[0], box[3])], AXIS)
    if len(sources) > 1:
        c.legend(
            label_w, c.image.height - 30, [(SPLIT_COLOURS[j % len(SPLIT_COLOURS)], s) for j, s in enumerate(sources)]
        )
    else:
        c.text((box[0] + bar_w / 2, c.image.height - 14), "rows (all splits)", LABEL, anchor="md")
    return c.save(path)


def margins_plot(frame: pl.DataFrame, path: Path) -> Path:
    """Histogram of ``score_chosen - score_rejected`` per split (preference pairs), binned with numpy."""
    data = frame.select("split", (pl.col("score_chosen") - pl.col("score_rejected")).alias("margin")).drop_nulls()
    splits = data.get_column("split").unique(maintain_order=True).to_list()
    margin = data.get_column("margin").cast(pl.Float64)
    lo, hi = (float(margin.min()), float(margin.max())) if margin.len() else (0.0, 0.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    bins = [lo + (hi - lo) * i / 25 for i in range(26)]
    c = _Canvas(620, 380)
    c.text((12, 12), "Preference margin: score_chosen - score_rejected", TITLE)
    box = (70.0, 52.0, 600.0, 300.0)
    series, legend = [], []
    for i, split in enumerate(splits):
        vals = data.filter(pl.col("split") == split).get_column("margin")
        colour = SPLIT_COLOURS[i % len(SPLIT_COLOURS)]
        series.append((colour, _shares(vals, bins)))
        legend.append((colour, f"{split} (n={vals.len():,})"))
    top = max((float(s.max()) for _, s in series), default=0.0) or 1.0
    xs, ys = _Scale(lo, hi, box[0], box[2]), _Scale(0, top * 1.1, box[3], box[1])
    _frame_axes(c, box, xs, ys, nice_ticks(lo, hi, 6), nice_ticks(0, top * 1.1, 4), _short, _pct)
    for colour, shares in series:
        _steps(c, xs, ys, bins, shares, colour)
    c.text(((box[0] + box[2]) / 2, box[3] + 26), "score margin", LABEL, anchor="ma")
    c.legend(box[0], c.image.height - 28, legend)
    return c.save(path)


def changes_plot(changes: dict[str, Any], path: Path, *, top: int = 8) -> Path:
    """Horizontal bars: rows added since the previous version by cause (green, right) and removed by reason
    (red, left), the ``top`` largest of each."""
    removed = list((changes.get("removed_by_reason") or {}).items())[:top]
    added = list((changes.get("added_by_cause") or {}).items())[:top]
    items = [(f"- {k}", -int(n)) for k, n in removed] + [(f"+ {k}", int(n)) for k, n in added]
    probe = _Canvas(1, 1)
    label_w = max((probe.width_of(k, LABEL) for k, _ in items), default=40) + 16
    row, half = 26, 220
    width, height = label_w + 2 * half + 120, 70 + row * max(len(items), 1) + 40
    c = _Canvas(width, height)
    c.text((12, 12), "Changes since the previous version: rows added and removed, and why", TITLE)
    biggest = max((abs(v) for _, v in items), default=1) or 1
    zero = label_w + half
    box_top = 48
    for i, (label, v) in enumerate(items):
        y0 = box_top + i * row
        c.text((label_w - 10, y0 + row / 2), label, LABEL, anchor="rm")
        length = max(1.0, half * abs(v) / biggest)
        if v < 0:
            c.rect(zero - length, y0 + 5, zero, y0 + row - 5, DROP_COLOUR)
            c.text((zero - length - 6, y0 + row / 2), f"{-v:,}", TICK, anchor="rm")
        else:
            c.rect(zero, y0 + 5, zero + length, y0 + row - 5, "#009E73")
            c.text((zero + length + 6, y0 + row / 2), f"{v:,}", TICK, anchor="lm")
    c.line([(zero, box_top), (zero, box_top + row * max(len(items), 1))], AXIS)
    c.text((zero, height - 14), "rows removed (left) and added (right)", LABEL, anchor="md")
    return c.save(path)
