"""Card plots: histograms binned with numpy, round ticks, and PNGs byte-identical for the same data."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from chatdata import plots


def _frame(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    tokens = pl.Series(np.round(rng.lognormal(5.0, 1.0, size=n)).astype(np.int64))
    return pl.DataFrame(
        {
            "split": rng.choice(["train_sft", "test_sft"], size=n, p=[0.9, 0.1]),
            "turns": rng.integers(1, 7, size=n) * 2,
            "chars": np.round(rng.lognormal(6.0, 1.2, size=n)).astype(np.int64),
            "tokens": pl.select(pl.when(pl.lit(rng.random(n) < 0.05)).then(None).otherwise(tokens)).to_series(),
        }
    )


def test_shares_count_every_value_once() -> None:
    values = pl.Series(np.random.default_rng(1).lognormal(4.0, 2.0, size=5_000))
    bins = plots._log_bins(float(values.min()), float(values.max()))
    shares = plots._shares(values, bins)
    assert bins[0] == max(1.0, float(values.min())) and bins[-1] == float(values.max())  # exact ends
    assert shares.sum() == pytest.approx((values >= bins[0]).sum() / values.len())
    assert all(a < b for a, b in itertools.pairwise(bins))


@pytest.mark.parametrize(("lo", "hi"), [(0, 1), (0, 0.37), (0, 12_345), (-3.5, 10.0), (0, 7)])
def test_ticks_are_round_and_cover_the_range(lo: float, hi: float) -> None:
    ticks = plots.nice_ticks(lo, hi, 4)
    assert 2 <= len(ticks) <= 9 and lo <= ticks[0] < ticks[-1] <= hi
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(steps) == 1 and f"{steps.pop():.0e}"[0] in "125"
    assert plots.log_ticks(7, 5_000) == [10.0, 100.0, 1000.0]
    assert plots.log_ticks(1, 60) == [1.0, 2.0, 5.0, 10.0, 20.0, 50.0]


def test_funnel_and_languages_plots(tmp_path: Path) -> None:
    from PIL import Image

    ledger = [
        {"stage": "ingest", "unit": "records", "rows_in": 10, "rows_out": 9, "rejected": {"x": 1}, "source": "a"},
        {
            "stage": "flatten",
            "unit": "messages",
            "rows_in": 9,
            "rows_out": 9,
            "rejected": {},
            "produced": 4,
            "produced_unit": "dialogues",
            "source": "a",
        },
        {"stage": "ingest", "unit": "records", "rows_in": 5, "rows_out": 5, "rejected": {}, "source": "b"},
        {"stage": "splits", "unit": "dialogues", "rows_in": 9, "rows_out": 8, "rejected": {"d": 1}, "source": None},
    ]
    funnel = Image.open(plots.funnel_plot(ledger, tmp_path / "funnel.png"))
    assert funnel.size[0] > 600 and funnel.size[1] > 4 * 28
    counts = pl.DataFrame({"lang": [f"l{i}" for i in range(30)], "oasst lang": range(30), "detected": range(30)})
    langs = Image.open(plots.languages_plot(counts, tmp_path / "languages.png", top=20))
    assert langs.size[1] > 20 * 30  # 19 languages and "other (11)", two bars each


def test_plots_are_byte_identical_for_the_same_data(tmp_path: Path) -> None:
    frame = _frame(20_000)
    pairs = pl.DataFrame(
        {
            "split": ["train_prefs"] * 6 + ["test_prefs"] * 2,
            "score_chosen": [5.0, 4.0, 3.5, 2.0, 5.0, 1.0, 4.0, 3.0],
            "score_rejected": [1.0, 2.0, 3.5, 2.5, 0.0, None, 1.0, 2.0],
        }
    )
    for name in ("a", "b"):
        plots.lengths_plot(frame, tmp_path / name / "lengths.png")
        plots.margins_plot(pairs, tmp_path / name / "margins.png")
    for png in ("lengths.png", "margins.png"):
        data = (tmp_path / "a" / png).read_bytes()
        assert data.startswith(b"\x89PNG") and data == (tmp_path / "b" / png).read_bytes()


def test_margins_plot_with_a_single_value(tmp_path: Path) -> None:
    pairs = pl.DataFrame({"split": ["train_prefs"] * 3, "score_chosen": [2.0] * 3, "score_rejected": [1.0] * 3})
    assert plots.margins_plot(pairs, tmp_path / "margins.png").read_bytes().startswith(b"\x89PNG")
