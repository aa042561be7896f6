"""download_source against the loopback Hub: pinned snapshots, resolved sha, offline/missing errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hubserver import HubServer, hub_server
from huggingface_hub import constants

from chatdata.errors import ChatdataError
from chatdata.hub.publish import publish_folder
from chatdata.hub.source import download_source
from chatdata.schema import DETOXIFY_FIELDS, HUB_SCHEMA

__all__ = ["hub_server"]

REPO = "OpenAssistant/tiny"


def oasst_rows(tag: str) -> list[dict]:
    tree = f"tree-{tag}"
    base = {
        "user_id": "u",
        "created_date": "2023-02-05T00:00:00Z",
        "lang": "en",
        "review_count": 3,
        "review_result": True,
        "deleted": False,
        "synthetic": False,
        "model_name": None,
        "detoxify": dict.fromkeys(DETOXIFY_FIELDS, 0.0),
        "message_tree_id": tree,
        "tree_state": "ready_for_export",
        "emojis": {"name": [], "count": []},
        "labels": {"name": ["quality"], "value": [0.8], "count": [3]},
    }
    return [
        {
            **base,
            "message_id": tree,
            "parent_id": None,
            "text": f"Hello {tag}?",
            "role": "prompter",
            "rank": None,
        },
        {**base, "message_id": f"{tree}-a", "parent_id": tree, "text": "Hi!", "role": "assistant", "rank": 0},
    ]


def publish_tiny(hub: HubServer, root: Path, tag: str) -> str:
    """Publish an oasst-like Hub layout (``data/*.parquet`` + a JSONL dump) and return the commit sha."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(oasst_rows(tag), schema=HUB_SCHEMA), root / "data/train-00000-of-00001.parquet")
    (root / "2023-04-12_oasst_ready.trees.jsonl").write_text(f'{{"message_tree_id": "tree-{tag}"}}\n')
    (root / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny\n")
    result = publish_folder(root, REPO, token=hub.token, endpoint=hub.url, retry_wait=0.01)
    assert result.commit_sha is not None
    return result.commit_sha


def test_download_returns_the_files_and_the_commit_sha(hub_server: HubServer, tmp_path: Path) -> None:
    first = publish_tiny(hub_server, tmp_path / "src", "one")
    second = publish_tiny(hub_server, tmp_path / "src", "two")
    cache = tmp_path / "cache"

    path, sha = download_source(REPO, revision=None, cache_dir=cache, endpoint=hub_server.url)
    assert sha == second == hub_server.head(REPO)
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    assert files == ["2023-04-12_oasst_ready.trees.jsonl", "data/train-00000-of-00001.parquet"]  # no README
    table = pq.read_table(path / "data/train-00000-of-00001.parquet")
    assert table.schema.equals(HUB_SCHEMA) and table.column("text").to_pylist()[0] == "Hello two?"

    old_path, old_sha = download_source(REPO, revision=first, cache_dir=cache, endpoint=hub_server.url)
    assert old_sha == first and old_path != path
    assert pq.read_table(old_path / "data/train-00000-of-00001.parquet").column("text").to_pylist()[0] == "Hello one?"


def test_offline_uses_the_cache_or_fails_in_one_line(
    hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sha = publish_tiny(hub_server, tmp_path / "src", "one")
    cache = tmp_path / "cache"
    download_source(REPO, revision=None, cache_dir=cache, endpoint=hub_server.url)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    seen = len(hub_server.requests)

    path, cached_sha = download_source(REPO, revision=None, cache_dir=cache, endpoint=hub_server.url)
    assert cached_sha == sha and (path / "data/train-00000-of-00001.parquet").is_file()
    assert len(hub_server.requests) == seen  # no request at all

    with pytest.raises(ChatdataError) as err:
        download_source(REPO, revision=None, cache_dir=tmp_path / "empty-cache", endpoint=hub_server.url)
    assert "HF_HUB_OFFLINE=1" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("repo", "revision", "expected"),
    [
        ("OpenAssistant/missing", None, "not found"),
        (REPO, "no-such-branch", "does not exist"),
        ("not/a/repo", None, "invalid Hub repo id"),
    ],
)
def test_missing_repo_or_revision_fails_in_one_line(
    hub_server: HubServer, tmp_path: Path, repo: str, revision: str | None, expected: str
) -> None:
    publish_tiny(hub_server, tmp_path / "src", "one")
    with pytest.raises(ChatdataError) as err:
        download_source(repo, revision=revision, cache_dir=tmp_path / "cache", endpoint=hub_server.url)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_repo_without_data_files_fails_in_one_line(hub_server: HubServer, tmp_path: Path) -> None:
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=hub_server.url, token=hub_server.token)
    api.create_repo("OpenAssistant/empty", repo_type="dataset")
    api.create_commit(
        "OpenAssistant/empty",
        [CommitOperationAdd("README.md", b"# empty")],
        commit_message="c",
        repo_type="dataset",
    )
    with pytest.raises(ChatdataError, match=r"has no \*\.parquet"):
        download_source("OpenAssistant/empty", revision=None, cache_dir=tmp_path / "cache", endpoint=hub_server.url)
