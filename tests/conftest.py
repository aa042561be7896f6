"""Shared test helpers: the real-data path, and builders for small handmade oasst files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_TREES = SHARED / "data" / "oa_export_2023-03_en_100.trees.jsonl"


@pytest.fixture
def real_trees() -> Path:
    if not REAL_TREES.is_file():
        pytest.skip("../shared/data is not present (a fresh clone has no shared/)")
    return REAL_TREES
