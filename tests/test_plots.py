"""Card plots: histograms binned with numpy draw the same steps as matplotlib binning every row, and the PNGs
stay byte-identical for the same data."""

from __future__ import annotations

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


@pytest.mark.parametrize("bins", [plots._log_bins(1.0, 5_000.0), [float(x) for x in range(-3, 12)]])
def test_prebinned_steps_match_matplotlib_binning_every_row(bins: list[float]) -> None:
    from matplotlib.figure import Figure

    values = pl.Series(np.random.default_rng(1).lognormal(4.0, 2.0, size=5_000) - 4.0)
    fig = Figure()
    ax = fig.subplots()
    raw = values.to_list()
    _, _, (old,) = ax.hist(raw, bins=bins, weights=[1.0 / len(raw)] * len(raw), histtype="step")
    plots._step_hist(ax, bins, plots._shares(values, bins), "#000000", "new")
    new = ax.patches[-1]
    assert np.allclose(old.get_path().vertices, new.get_path().vertices, rtol=0, atol=1e-12)
    assert ax.get_legend_handles_labels()[1] == ["new"]


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
