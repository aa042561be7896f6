"""Shared test helpers: the real-data path, and builders for small handmade oasst files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# before anything imports prefect: never touch a real Prefect profile, no analytics
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="chatdata-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# every build of the suite checks each stage's declared columns as it runs (chatdata.stages.run_stage)
os.environ.setdefault("CHATDATA_CHECK_STAGES", "1")

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_TREES = SHARED / "data" / "oa_export_2023-03_en_100.trees.jsonl"


@pytest.fixture
def real_trees() -> Path:
    if not REAL_TREES.is_file():
        pytest.skip("../shared/data is not present (a fresh clone has no shared/)")
    return REAL_TREES
