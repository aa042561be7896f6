"""Tree-sharded stages: the merge is byte-identical to an unsharded run, also for the flow on Dask."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest
from prefect_harness import prefect_server, server_test, tiny_source  # noqa: F401  (prefect_server: session fixture)

from chatdata import shards
from chatdata.pipeline import BuildSettings, run_local

SHARED = Path(__file__).resolve().parents[2] / "shared"
REAL_TREES = SHARED / "data" / "oa_export_2023-03_en_100.trees.jsonl"


def digest(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def local_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A local (unsharded, Prefect-free) build of the real sample if present, else of a tiny source."""
    root = tmp_path_factory.mktemp("local")
    src = REAL_TREES if REAL_TREES.is_file() else tiny_source(root / "src")
    run_local(["oasst_en"], BuildSettings(source=str(src)), root / "out")
    return src, root / "out"


def test_shard_index_is_stable_and_in_range() -> None:
    ids = pl.Series("message_tree_id", ["a", "b", "a", "c", "tree-42"])
    got = shards.shard_index(ids, 16).to_list()
    assert got[0] == got[2] and all(0 <= s < 16 for s in got)
    # sha256("chatdata-shard:" + id) -> the same numbers on every machine and Python version
    assert got == [
        int(int.from_bytes(hashlib.sha256(f"chatdata-shard:{t}".encode()).digest()[:8], "big") / 2**64 * 16)
        for t in ids.to_list()
    ]
    with pytest.raises(shards.ShardError):
        shards.shard_index(ids, 0)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_sharded_stage_equals_unsharded(local_build: tuple[Path, Path], tmp_path: Path, k: int) -> None:
    src, out = local_build
    work = out / ".work"
    stage = shards.shardable_stages()[0]
    _, (output, *_) = _paths(stage, work)
    want, want_ledger = output.read_bytes(), (work / "oasst_en" / f"ledger-{stage}.json").read_bytes()
    settings = BuildSettings(source=str(src)).to_dict()
    with ThreadPoolExecutor(2) as pool:
        ledger = shards.run_sharded(stage, work, "oasst_en", settings, out, k, map_fn=pool.map)
    assert output.read_bytes() == want
    assert Path(ledger).read_bytes() == want_ledger
    assert not shards.shards_dir(stage, work, "oasst_en").exists()


def _paths(stage: str, work: Path) -> tuple[list[Path], list[Path]]:
    from chatdata.pipeline import stage_paths

    return stage_paths(stage, work, "oasst_en")


def test_merge_records_sums_counts_and_refuses_unmergeable_notes() -> None:
    a = {
        "stage": "score",
        "unit": "dialogues",
        "rows_in": 5,
        "rows_out": 4,
        "rejected": {"x": 1},
        "produced": None,
        "produced_unit": None,
        "moved": {},
        "notes": {},
    }
    b = dict(a, rows_in=3, rows_out=1, rejected={"x": 1, "y": 1})
    merged = shards.merge_records("score", [a, b])
    assert (merged.rows_in, merged.rows_out, merged.rejected) == (8, 5, {"x": 2, "y": 1}) and merged.balanced
    with pytest.raises(shards.ShardError, match="notes"):
        shards.merge_records("score", [dict(a, notes={"p50": 1}), dict(b, notes={"p50": 2})])


@server_test
def test_flow_on_dask_cluster_matches_local_run(
    local_build: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    from distributed import LocalCluster

    from flows.build import BuildParams, build_flow

    src, local_out = local_build
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        protocol="tcp",
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        result = build_flow(
            BuildParams(source=str(src), out=str(tmp_path / "out"), dask_address=cluster.scheduler_address, shards=5)
        )
    sharded = {r["stage"] for r in result["stages"]} & set(shards.shardable_stages())
    assert sharded and all(r["status"] == "ran" for r in result["stages"])
    assert digest(tmp_path / "out" / "oasst_en") == digest(local_out / "oasst_en")
