"""publish_folder against the loopback Hub: one atomic commit, stale shards deleted, retries, errors."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hubserver import READ_TOKEN, HubServer, hub_server, load_dataset_rows
from huggingface_hub import CommitOperationAdd, HfApi
from rich.console import Console

from chatdata.errors import ChatdataError
from chatdata.hub.client import HubError
from chatdata.hub.guard import PublishRefused
from chatdata.hub.publish import PublishResult, publish_folder

__all__ = ["hub_server"]  # the fixture, imported for pytest

REPO = "org/oasst-chat"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
SFT_SCHEMA = pa.schema([("dialogue_id", pa.string()), ("messages", MESSAGES), ("lang", pa.string())])
REJECT_SCHEMA = pa.schema([("unit", pa.string()), ("reason", pa.string())])

CARD = """---
license: apache-2.0
configs:
- config_name: sft
  data_files:
  - split: train_sft
    path: data/train_sft-*
  - split: test_sft
    path: data/test_sft-*
  default: true
- config_name: rejects
  data_files:
  - split: rejects
    path: rejects/rejects-*
---
# oasst chat (test build)
"""


def sft_rows(tag: str, n: int) -> list[dict]:
    return [
        {
            "dialogue_id": f"{tag}-{i}",
            "messages": [
                {"role": "user", "content": f"q {tag} {i}"},
                {"role": "assistant", "content": f"a {i}"},
            ],
            "lang": "en",
        }
        for i in range(n)
    ]


def write_shards(folder: Path, prefix: str, rows: list[dict], schema: pa.Schema, shards: int) -> None:
    per = -(-len(rows) // shards)
    for i in range(shards):
        path = folder / f"{prefix}-{i:05d}-of-{shards:05d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows[i * per : (i + 1) * per], schema=schema), path)


def build_folder(
    root: Path,
    tag: str,
    *,
    train_shards: int = 1,
    plots: tuple[str, ...] = ("lengths.png",),
    train: int = 6,
    test: int = 2,
    counts_in: str | None = None,
    marked_by: str | None = "build.json",
) -> dict:
    """A built dataset folder like the lead's writer makes; returns the rows per config/split. ``counts_in``
    records the row counts the way chatdata does (``build.json`` outputs) or in the card (``README.md``
    dataset_info); by default neither holds them, so the publish guard has no remote count to compare with.
    ``marked_by`` says what shows chatdata wrote it: ``build.json`` (its ``chatdata_version``), ``tags`` (the
    card's ``tags: [chatdata]``) or None (neither: once published, a repo chatdata does not delete from)."""
    root.mkdir(parents=True, exist_ok=True)
    for old in root.rglob("*.parquet"):
        old.unlink()
    for old in root.glob("*.png"):
        old.unlink()
    rows = {
        "sft/train_sft": sft_rows(f"{tag}-train", train),
        "sft/test_sft": sft_rows(f"{tag}-test", test),
        "rejects/rejects": [{"unit": "message", "reason": f"{tag} too short"}],
    }
    write_shards(root, "data/train_sft", rows["sft/train_sft"], SFT_SCHEMA, train_shards)
    write_shards(root, "data/test_sft", rows["sft/test_sft"], SFT_SCHEMA, 1)
    write_shards(root, "rejects/rejects", rows["rejects/rejects"], REJECT_SCHEMA, 1)
    card, build = CARD, {"recipe": "oasst_en", "tag": tag}
    if marked_by == "build.json":
        build["chatdata_version"] = "0.0.test"
    elif marked_by == "tags":
        card = card.replace("license: apache-2.0\n", "license: apache-2.0\ntags:\n- chatdata\n")
    if counts_in == "build.json":
        build["outputs"] = {
            "default": {"train_sft": {"rows": train}, "test_sft": {"rows": test}},
            "rejects": {"rejects": {"rows": 1}},
        }
    elif counts_in == "README.md":
        info = (
            f"dataset_info:\n- config_name: sft\n  splits:\n  - name: train_sft\n    num_examples: {train}\n"
            f"  - name: test_sft\n    num_examples: {test}\n- config_name: rejects\n  splits:\n"
            "  - name: rejects\n    num_examples: 1\n"
        )
        card = card.replace("---\n# oasst", info + "---\n# oasst")
    (root / "README.md").write_text(card, encoding="utf-8")
    (root / "build.json").write_text(json.dumps(build), encoding="utf-8")
    for name in plots:
        (root / name).write_bytes(PNG + tag.encode())
    return rows


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def push(folder: Path, hub: HubServer, **kwargs) -> PublishResult:
    kwargs.setdefault("token", hub.token)
    kwargs.setdefault("retry_wait", 0.01)
    return publish_folder(folder, kwargs.pop("repo", REPO), endpoint=hub.url, **kwargs)


def commit_by_hand(hub: HubServer, files: dict[str, bytes], repo: str = REPO) -> str:
    """Commit ``files`` the way a user does, without chatdata (creating the repo if needed); returns the head."""
    api = HfApi(endpoint=hub.url, token=hub.token)
    api.create_repo(repo, repo_type="dataset", exist_ok=True)
    operations = [CommitOperationAdd(path, data) for path, data in files.items()]
    api.create_commit(repo, operations, commit_message="by hand", repo_type="dataset")
    return hub.head(repo)


#: A user's own files in the repo chatdata publishes to: never declared by chatdata, so never deleted by it
#: (``notes/lengths.png`` has a chatdata plot's name, but not at the root).
FOREIGN = {
    "extra/my_eval.parquet": b"PAR1 the user's own eval split PAR1",
    "assets/logo.png": PNG + b"logo",
    "notes/plot.png": PNG + b"plot",
    "notes/lengths.png": PNG + b"not a card plot",
}
#: What chatdata's v1 declared and v2 no longer has: two train shards (card configs), a shard only its
#: build.json lists, a root plot.
STALE = {
    "data/train_sft-00000-of-00002.parquet",
    "data/train_sft-00001-of-00002.parquet",
    "data/old_sft-00000-of-00001.parquet",
    "languages.png",
}


def chatdata_repo_with_foreign_files(hub: HubServer, folder: Path, marked_by: str = "build.json") -> str:
    """The remote holds chatdata's v1 (2 train shards, 2 plots, a shard only its build.json ``outputs`` lists)
    and, committed by hand after it, ``FOREIGN``; ``folder`` then holds v2 (1 train shard, 1 plot, no old
    shard), so ``STALE`` is what a push deletes. Returns the remote head."""
    build_folder(folder, "v1", train_shards=2, plots=("lengths.png", "languages.png"), marked_by=marked_by)
    old = "data/old_sft-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(sft_rows("old", 1), schema=SFT_SCHEMA), folder / old)
    build = json.loads((folder / "build.json").read_text(encoding="utf-8"))
    build["outputs"] = {"old": {"old_sft": {"rows": 1, "files": [{"path": old, "bytes": 1, "sha256": "0" * 64}]}}}
    (folder / "build.json").write_text(json.dumps(build), encoding="utf-8")
    push(folder, hub)
    head = commit_by_hand(hub, FOREIGN)
    build_folder(folder, "v2", train_shards=1, plots=("lengths.png",), marked_by=marked_by)
    return head


def test_push_then_load_dataset_returns_exactly_the_rows(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "OUT" / "oasst_en"
    rows = build_folder(folder, "v1", train_shards=2)
    result = push(folder, hub_server, private=True)

    assert hub_server.commit_count(REPO) == 1
    assert hub_server.repo(REPO).private
    assert result.commit_sha == hub_server.head(REPO)
    assert {f.path for f in result.uploads} == set(local_files(folder))
    assert hub_server.files(REPO) == {
        **local_files(folder),
        ".gitattributes": hub_server.files(REPO)[".gitattributes"],
    }
    loaded = load_dataset_rows(hub_server, REPO, [tuple(k.split("/")) for k in rows], tmp_path)
    assert loaded == rows


def test_second_push_deletes_stale_shards_in_the_same_single_commit(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1", train_shards=2, plots=("lengths.png", "languages.png"))
    push(folder, hub_server)
    first = hub_server.head(REPO)
    rows = build_folder(folder, "v2", train_shards=1, plots=("lengths.png",))
    (tmp_path / "oasst_en" / "notes.txt").write_text("kept locally and uploaded")

    result = push(folder, hub_server)

    assert hub_server.commit_count(REPO) == 2  # exactly one commit per push
    commit = hub_server.repo(REPO).commits[hub_server.head(REPO)]
    assert commit.parent == first
    stale = {"data/train_sft-00000-of-00002.parquet", "data/train_sft-00001-of-00002.parquet", "languages.png"}
    assert set(commit.deleted) == stale == {f.path for f in result.deletions}
    assert "data/train_sft-00000-of-00001.parquet" in commit.added
    remote = hub_server.files(REPO)
    assert set(remote) == set(local_files(folder)) | {".gitattributes"}
    assert all(remote[p] == data for p, data in local_files(folder).items())
    loaded = load_dataset_rows(hub_server, REPO, [("sft", "train_sft"), ("sft", "test_sft")], tmp_path)
    assert loaded == {k: v for k, v in rows.items() if k.startswith("sft/")}


def test_unchanged_push_makes_no_commit_and_keeps_foreign_files(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1")
    push(folder, hub_server)
    head = commit_by_hand(hub_server, {"LICENSE": b"Apache-2.0"})
    result = push(folder, hub_server)
    assert not result.changed and result.commit_sha == head
    assert hub_server.commit_count(REPO) == 2
    assert result.kept == [".gitattributes", "LICENSE"]
    assert "already up to date" in result.summary()


@pytest.mark.parametrize("marked_by", ["build.json", "tags"])
def test_a_push_deletes_only_what_chatdata_declared_and_keeps_foreign_files(
    hub_server: HubServer, tmp_path: Path, marked_by: str
) -> None:
    folder = tmp_path / "oasst_en"
    before = chatdata_repo_with_foreign_files(hub_server, folder, marked_by)

    result = push(folder, hub_server)

    assert hub_server.commit_count(REPO) == 3  # v1, the user's commit, and exactly one for this push
    commit = hub_server.repo(REPO).commits[hub_server.head(REPO)]
    assert commit.parent == before
    assert set(commit.deleted) == STALE == {f.path for f in result.deletions}
    assert all(path in commit.message for path in STALE)  # the commit description lists the deletions
    remote = hub_server.files(REPO)
    assert set(remote) == set(local_files(folder)) | set(FOREIGN) | {".gitattributes"}
    assert {p: remote[p] for p in FOREIGN} == FOREIGN
    assert result.kept == sorted([*FOREIGN, ".gitattributes"])
    assert result.kept_line() == (
        "kept 4 remote file(s) chatdata did not write: "
        "assets/logo.png, extra/my_eval.parquet, notes/lengths.png, notes/plot.png"
    )


def test_dry_run_lists_the_same_deletions_and_kept_files(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    chatdata_repo_with_foreign_files(hub_server, folder)
    writes = len(hub_server.writes())
    buffer = io.StringIO()

    dry = push(folder, hub_server, dry_run=True, console=Console(file=buffer, width=300))

    assert len(hub_server.writes()) == writes
    assert {f.path for f in dry.deletions} == STALE
    assert dry.kept == sorted([*FOREIGN, ".gitattributes"])
    printed = buffer.getvalue().splitlines()
    assert dry.kept_line() in printed and "- extra/my_eval.parquet" not in buffer.getvalue()
    real = push(folder, hub_server)
    assert (real.deletions, real.kept) == (dry.deletions, dry.kept)


@pytest.mark.parametrize("card", [None, "foreign card"])
def test_a_repo_chatdata_did_not_write_gets_nothing_deleted(
    hub_server: HubServer, tmp_path: Path, card: str | None
) -> None:
    foreign = {**FOREIGN, "data/train-00000-of-00001.parquet": b"PAR1 theirs PAR1", "lengths.png": PNG + b"theirs"}
    if card is not None:  # a card whose configs cover their parquet, but not chatdata's (no tag, no build.json)
        foreign["README.md"] = b"---\nconfigs:\n- config_name: default\n  data_files: data/*\n---\n# theirs\n"
    before = commit_by_hand(hub_server, foreign)
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1", plots=())

    result = push(folder, hub_server)

    commit = hub_server.repo(REPO).commits[hub_server.head(REPO)]
    assert commit.parent == before and commit.deleted == () and result.deletions == []
    remote = hub_server.files(REPO)
    assert set(remote) == set(local_files(folder)) | set(foreign) | {".gitattributes"}
    assert {p: remote[p] for p in foreign if p != "README.md"} == {p: d for p, d in foreign.items() if p != "README.md"}
    assert result.kept == sorted({*foreign, ".gitattributes"} - {"README.md"})


def test_the_plan_is_printed_before_the_guard_lets_it_through(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    chatdata_repo_with_foreign_files(hub_server, folder)
    buffer = io.StringIO()

    result = push(folder, hub_server, console=Console(file=buffer, width=300))

    printed = buffer.getvalue().splitlines()
    (guard,) = [i for i, line in enumerate(printed) if line.startswith("guard: ok")]
    deletions = [i for i, line in enumerate(printed) if line.startswith("- ")]
    assert sorted(printed[i].split(" ")[1] for i in deletions) == sorted(STALE)
    assert printed[0].startswith(f"publishing {folder} to {REPO}@main") and max(deletions) < guard
    assert printed.index(result.kept_line()) < guard
    assert printed[-1] == result.summary()


@pytest.mark.parametrize("kind", ["status", "drop"])
def test_interrupted_push_leaves_remote_unchanged_with_one_line_error(
    hub_server: HubServer, tmp_path: Path, kind: str
) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1", train_shards=2)
    push(folder, hub_server)
    before, files_before = hub_server.head(REPO), hub_server.files(REPO)
    build_folder(folder, "v2", train_shards=1)
    hub_server.inject("commit", kind=kind, status=503, times=10)

    with pytest.raises(ChatdataError) as err:
        push(folder, hub_server, max_retries=2)

    message = str(err.value)
    assert "\n" not in message and "failed after 3 attempt(s)" in message and "re-run" in message
    assert hub_server.token not in message
    assert hub_server.head(REPO) == before and hub_server.files(REPO) == files_before
    assert hub_server.commit_count(REPO) == 1
    assert [r.endpoint for r in hub_server.requests].count("commit") == 1 + 3


def test_transient_failure_is_retried_into_exactly_one_commit(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1")
    hub_server.inject("commit", kind="status", status=500, times=1)
    result = push(folder, hub_server)
    assert result.attempts == 2 and hub_server.commit_count(REPO) == 1
    assert result.commit_sha == hub_server.head(REPO)


def test_lost_commit_answer_is_recognised_not_committed_twice(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1", train_shards=2)
    push(folder, hub_server)
    build_folder(folder, "v2", train_shards=1)
    hub_server.inject("commit", kind="drop_after_apply", times=1)
    result = push(folder, hub_server)
    assert hub_server.commit_count(REPO) == 2  # the dropped answer's commit, and no duplicate
    assert result.attempts == 2 and result.commit_sha == hub_server.head(REPO)
    assert set(hub_server.files(REPO)) == set(local_files(folder)) | {".gitattributes"}


def test_concurrent_change_is_replanned_against_the_new_head(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1")
    push(folder, hub_server)
    build_folder(folder, "v2", train_shards=2)
    hub_server.inject("commit", kind="status", status=412, times=1)
    buffer = io.StringIO()
    result = push(folder, hub_server, console=Console(file=buffer, width=300))
    assert result.attempts == 2 and hub_server.commit_count(REPO) == 2
    assert set(hub_server.files(REPO)) == set(local_files(folder)) | {".gitattributes"}
    printed = buffer.getvalue().splitlines()  # the same plan again: printed once, with one verdict
    assert [line for line in printed if line[:2] in {"+ ", "~ ", "- "}] == result.lines()
    assert sum(line.startswith("guard: ok") for line in printed) == 1


def test_dry_run_writes_nothing_and_lists_exactly_the_ops(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1", train_shards=2, plots=("lengths.png", "languages.png"))
    push(folder, hub_server)
    before = (hub_server.head(REPO), hub_server.commit_count(REPO), len(hub_server.writes()))
    seen = len(hub_server.requests)
    build_folder(folder, "v2", train_shards=1, plots=("lengths.png",))
    local = local_files(folder)

    result = push(folder, hub_server, dry_run=True)

    assert (hub_server.head(REPO), hub_server.commit_count(REPO), len(hub_server.writes())) == before
    new_requests = hub_server.requests[seen:]
    assert new_requests and all(r.method == "GET" for r in new_requests)
    assert result.dry_run and result.remote_listed and result.commit_sha is None
    assert [(f.path, f.action) for f in result.unchanged] == [("README.md", "unchanged")]  # same card bytes
    assert {(f.path, f.size) for f in result.uploads} == {(p, len(b)) for p, b in local.items() if p != "README.md"}
    assert {f.path: f.action for f in result.uploads}["data/train_sft-00000-of-00001.parquet"] == "add"
    assert {f.path: f.action for f in result.uploads}["build.json"] == "update"
    assert {f.path for f in result.deletions} == {
        "data/train_sft-00000-of-00002.parquet",
        "data/train_sft-00001-of-00002.parquet",
        "languages.png",
    }
    assert all(f.size > 0 for f in result.deletions)
    assert len(result.lines()) == len(result.uploads) + len(result.deletions)


def test_dry_run_without_token_makes_no_request(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1")
    result = publish_folder(folder, "org/new-repo", dry_run=True, endpoint=hub_server.url)
    assert hub_server.requests == []
    assert not result.remote_listed and "no token" in result.summary()
    assert {(f.path, f.size, f.action) for f in result.uploads} == {
        (p, len(b), "add") for p, b in local_files(folder).items()
    }


def test_revision_branch_and_pull_request(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1")
    push(folder, hub_server)
    main_files = hub_server.files(REPO)
    build_folder(folder, "v2", train_shards=2)

    on_branch = push(folder, hub_server, revision="dev")
    assert on_branch.revision == "dev" and hub_server.head(REPO, "dev") == on_branch.commit_sha
    assert hub_server.files(REPO) == main_files
    assert set(hub_server.files(REPO, "dev")) == set(local_files(folder)) | {".gitattributes"}

    pr = push(folder, hub_server, create_pr=True)
    assert pr.pr_url is not None and pr.pr_url.endswith("/discussions/1")
    assert hub_server.head(REPO, "refs/pr/1") == pr.commit_sha
    assert hub_server.files(REPO) == main_files
    assert {f.path for f in pr.deletions} == {"data/train_sft-00000-of-00001.parquet"}


def test_read_only_token_gets_a_one_line_permission_error(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1")
    push(folder, hub_server)
    build_folder(folder, "v2")
    with pytest.raises(ChatdataError) as err:
        push(folder, hub_server, token=READ_TOKEN)
    assert "\n" not in str(err.value) and "403" in str(err.value) and "--create-pr" in str(err.value)
    assert READ_TOKEN not in str(err.value)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("bad_token", "rejected the token (401)"),
        ("missing_token", "no Hugging Face token found"),
        ("invalid_repo", "invalid Hub repo id"),
        ("empty_folder", "no README.md"),
        ("no_folder", "no such dataset folder"),
        ("no_parquet", "no .parquet data files"),
        ("card_points_nowhere", "matches no file"),
        ("bad_revision", "invalid --revision"),
    ],
)
def test_bad_input_gives_one_line_errors(hub_server: HubServer, tmp_path: Path, case: str, expected: str) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1")
    kwargs: dict = {}
    if case == "bad_token":
        kwargs["token"] = "hf_thisTokenIsWrong000000000000000"
    elif case == "missing_token":
        kwargs["token"] = None
    elif case == "invalid_repo":
        kwargs["repo"] = "not a repo//x"
    elif case == "empty_folder":
        folder = tmp_path / "empty"
        folder.mkdir()
    elif case == "no_folder":
        folder = tmp_path / "missing"
    elif case == "no_parquet":
        for p in folder.rglob("*.parquet"):
            p.unlink()
    elif case == "card_points_nowhere":
        (folder / "data" / "test_sft-00000-of-00001.parquet").unlink()
    elif case == "bad_revision":
        kwargs["revision"] = "../main"
    with pytest.raises(ChatdataError) as err:
        push(folder, hub_server, **kwargs)
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert "hf_thisTokenIsWrong" not in message
    if case in {"bad_token", "missing_token"}:
        assert "HF_TOKEN" in message and "hf auth login" in message
    if case != "bad_token":
        assert hub_server.writes() == []


def test_token_never_appears_in_output_logs_or_files(
    hub_server: HubServer, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="huggingface_hub")
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1", train_shards=2)
    hub_server.inject("commit", kind="status", status=502, times=1)  # exercise the retry path too
    first = push(folder, hub_server, console=console)
    build_folder(folder, "v2")
    dry = push(folder, hub_server, dry_run=True, console=console)
    second = push(folder, hub_server, console=console)
    with pytest.raises(ChatdataError) as err:
        push(folder, hub_server, token=hub_server.token + "x", console=console)

    out, errout = capfd.readouterr()
    texts = [
        out,
        errout,
        buffer.getvalue(),
        caplog.text,
        str(err.value),
        repr(first),
        repr(dry),
        repr(second),
    ]
    texts += [first.summary(), dry.summary(), second.summary()]
    assert buffer.getvalue().count("published") == 2 and "retry 1/" in buffer.getvalue()
    for text in texts:
        assert hub_server.token not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert hub_server.token.encode() not in path.read_bytes(), path
    for data in hub_server.files(REPO).values():
        assert hub_server.token.encode() not in data


def test_token_from_environment_is_used(hub_server: HubServer, tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1")
    monkeypatch.setenv("HF_TOKEN", hub_server.token)
    result = publish_folder(folder, REPO, endpoint=hub_server.url)
    assert result.commit_sha == hub_server.head(REPO)
    assert hub_server.files(REPO)["README.md"] == CARD.encode()
    assert all(r.authenticated for r in hub_server.requests)


def test_private_flag_never_publishes_into_an_existing_public_repo(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1")
    push(folder, hub_server)
    build_folder(folder, "v2")
    with pytest.raises(ChatdataError, match="already exists and is public"):
        push(folder, hub_server, private=True)
    assert hub_server.commit_count(REPO) == 1


def test_dry_run_with_token_on_a_new_repo_creates_nothing(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1")
    result = push(folder, hub_server, repo="org/brand-new", dry_run=True, revision="dev")
    assert result.remote_listed and "would be created" in result.summary()
    assert hub_server.writes() == [] and ("dataset", "org/brand-new") not in hub_server.repos
    assert {f.path for f in result.uploads} == set(local_files(folder)) and not result.deletions


# ------------------------------------------------------------------------------------------------ guard


def test_an_empty_default_config_is_refused_before_any_request(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1", train=0, test=0, counts_in="build.json")
    with pytest.raises(PublishRefused) as err:
        push(folder, hub_server)
    message = str(err.value)
    assert "\n" not in message and "holds 0 rows" in message and "--force" in message and REPO in message
    assert hub_server.requests == []
    assert push(folder, hub_server, force=True).guard.refusal is not None  # force publishes it anyway
    assert hub_server.commit_count(REPO) == 1


@pytest.mark.parametrize("counts_in", ["build.json", "README.md"])
def test_a_shrink_beyond_max_shrink_is_refused_with_the_counts(
    hub_server: HubServer, tmp_path: Path, counts_in: str
) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1", train=100, test=20, counts_in=counts_in)
    push(folder, hub_server)
    before, files_before, writes = hub_server.head(REPO), hub_server.files(REPO), len(hub_server.writes())
    build_folder(folder, "v2", train=40, test=10, counts_in=counts_in)  # 50 < 120 * (1 - 0.5)

    with pytest.raises(PublishRefused) as err:
        push(folder, hub_server)

    message = str(err.value)
    assert "\n" not in message
    assert f"from 120 rows (remote {counts_in}) to 50 (-58%)" in message
    assert "--max-shrink 0.5 allows" in message and "--max-shrink 0.59" in message and "--force" in message
    assert hub_server.head(REPO) == before and hub_server.files(REPO) == files_before
    assert len(hub_server.writes()) == writes
    with pytest.raises(PublishRefused):
        push(folder, hub_server, max_shrink=0.58)
    allowed = push(folder, hub_server, max_shrink=0.59)
    assert allowed.guard.refusal is None and (allowed.guard.local_rows, allowed.guard.remote_rows) == (50, 120)
    assert hub_server.commit_count(REPO) == 2


def test_a_shrink_within_max_shrink_and_force_publish(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1", train=100, test=20, counts_in="build.json")
    push(folder, hub_server)
    build_folder(folder, "v2", train=50, test=10, counts_in="build.json")  # 60 == 120 * 0.5: not below
    assert push(folder, hub_server).guard.refusal is None
    build_folder(folder, "v3", train=1, test=1, counts_in="build.json")
    forced = push(folder, hub_server, force=True)
    assert "from 60 rows" in forced.guard.line() and forced.guard.line().startswith("guard overridden by --force")
    assert hub_server.commit_count(REPO) == 3 and forced.commit_sha == hub_server.head(REPO)


def test_the_remote_count_is_read_at_the_target_revision(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1", train=100, test=20, counts_in="build.json")
    push(folder, hub_server)
    build_folder(folder, "v2", train=10, test=2, counts_in="build.json")
    push(folder, hub_server, revision="dev", force=True)
    build_folder(folder, "v3", train=9, test=2, counts_in="build.json")
    on_dev = push(folder, hub_server, revision="dev")  # 11 vs dev's 12, not main's 120
    assert (on_dev.guard.local_rows, on_dev.guard.remote_rows) == (11, 12)
    with pytest.raises(PublishRefused, match="from 120 rows"):
        push(folder, hub_server)


def test_first_publish_to_a_new_repo_has_nothing_to_compare_with(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    rows = build_folder(folder, "v1", train=3, test=1, counts_in="build.json")
    result = push(folder, hub_server, repo="org/fresh")
    assert result.guard.remote_rows is None and result.guard.local_rows == 4
    assert "no remote row count" in result.guard.line()
    loaded = load_dataset_rows(hub_server, "org/fresh", [("sft", "train_sft")], tmp_path)
    assert loaded == {"sft/train_sft": rows["sft/train_sft"]}


def test_dry_run_reports_the_guard_verdict(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1", train=100, test=20, counts_in="README.md")
    push(folder, hub_server)
    writes = len(hub_server.writes())
    build_folder(folder, "v2", train=10, test=2, counts_in="README.md")
    buffer = io.StringIO()

    dry = push(folder, hub_server, dry_run=True, console=Console(file=buffer, width=300))
    assert dry.refused and (dry.guard.local_rows, dry.guard.remote_rows) == (12, 120)
    assert "would be REFUSED: the default config would shrink from 120 rows" in dry.summary()
    assert "guard: refused:" in buffer.getvalue()
    forced = push(folder, hub_server, dry_run=True, force=True)
    assert not forced.refused and "overridden by --force" in forced.summary()
    no_token = publish_folder(folder, REPO, dry_run=True, endpoint=hub_server.url)
    assert not no_token.refused and no_token.guard.remote_rows is None  # the remote was not read
    build_folder(folder, "v3", train=0, test=0)
    assert publish_folder(folder, REPO, dry_run=True, endpoint=hub_server.url).refused  # empty: known locally
    assert len(hub_server.writes()) == writes


def test_max_shrink_must_be_a_fraction(hub_server: HubServer, tmp_path: Path) -> None:
    folder = tmp_path / "oasst_en"
    build_folder(folder, "v1")
    with pytest.raises(HubError, match=r"--max-shrink must be a fraction in \[0, 1\]"):
        push(folder, hub_server, max_shrink=1.5)
    assert hub_server.requests == []
