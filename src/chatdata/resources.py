"""Locate the data shipped beside the library: filter specs, card templates, the bundled sample.

A wheel carries ``filters/``, ``recipes/``, ``benchmarks/`` and ``data_cards/`` as ``chatdata/_specs/...``; a
source checkout (editable install or plain ``PYTHONPATH=src``) finds them at the repository's top level.
"""

from __future__ import annotations

import functools
from pathlib import Path

_PKG = Path(__file__).resolve().parent
_REPO = _PKG.parent.parent


def _locate(name: str) -> Path:
    for candidate in (_PKG / "_specs" / name, _REPO / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"chatdata cannot find its '{name}/' folder; reinstall the package")


def filters_dir() -> Path:
    """The folder of declarative filter specs and phrase lists."""
    return _locate("filters")


def data_cards_dir() -> Path:
    """The folder of dataset-card templates."""
    return _locate("data_cards")


def recipes_dir() -> Path:
    """The folder of shipped recipe files (``recipes/*.yaml``)."""
    return _locate("recipes")


def benchmarks_dir() -> Path:
    """The folder of benchmark specs (``benchmarks/*.yaml``) and the benchmark items shipped with them."""
    return _locate("benchmarks")


def sample_dir() -> Path:
    """The bundled oasst-shaped sample (what ``chatdata build`` reads when no --source is given)."""
    return _PKG / "data" / "sample"


#: the oasst releases the bundled oasst sample stands in for
OASST_IDS = ("OpenAssistant/oasst1", "OpenAssistant/oasst2")


def bundled_sample(hub_id: str | None, fmt: str) -> Path | None:
    """The small sample shipped for a source's default dataset (oasst: the synthetic forest; Dolly,
    UltraFeedback and Orca: a few records of the published layout, broken ones included), or None."""
    if fmt == "oasst" or hub_id in OASST_IDS:
        return sample_dir()
    if not hub_id:
        return None
    folder = _PKG / "data" / "samples" / hub_id.replace("/", "__")
    return folder if folder.is_dir() else None


@functools.cache
def known_datasets() -> dict[str, tuple[str, ...]]:
    """Hub dataset id -> the formats its files are published in (``data/known_datasets.yaml``)."""
    import yaml

    raw = yaml.safe_load((_PKG / "data" / "known_datasets.yaml").read_text(encoding="utf-8")) or {}
    return {str(k): tuple(str(f) for f in v) for k, v in raw.items()}
