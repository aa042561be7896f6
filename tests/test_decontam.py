"""Decontamination against benchmarks declared as data: real items of HumanEval, MBPP, MT-Bench and IFEval
(excerpts in tests/data/benchmarks, licences in LICENSES.md) planted among clean rows, bound files, the shipped
specs, and builds that check, bind or leave out benchmarks."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builds import run
from hubserver import HubServer, hub_env, hub_server  # noqa: F401

from chatdata.benchmarks import BenchmarkError, known, load_spec, read_records, resolve
from chatdata.errors import ChatdataError, SpecError
from chatdata.filters.base import FilterSpec, apply_filters
from chatdata.filters.decontam import DecontamFilter
from chatdata.schema import CHAT_MESSAGE
from chatdata.settings import BuildSettings

DATA = Path(__file__).parent / "data" / "benchmarks"
FIXTURES = {
    "humaneval": DATA / "humaneval.jsonl",
    "mbpp": DATA / "mbpp.jsonl",
    "mt_bench": DATA / "mt_bench_question.jsonl",
    "ifeval": DATA / "ifeval_input_data.jsonl",
}
BOUND = [f"{name}={path}" for name, path in FIXTURES.items()]


def _records(name: str) -> dict[str, dict]:
    spec = load_spec(name)
    return {str(r[spec.id]): r for r in read_records(FIXTURES[name])}


def _frame(dialogues: list[list[tuple[str, str]]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"messages": [[{"role": r, "content": c} for r, c in d] for d in dialogues]},
        schema={"messages": pl.List(CHAT_MESSAGE)},
    )


def _filter(bindings: list[str] = BOUND, **settings: object) -> DecontamFilter:
    f = DecontamFilter(
        FilterSpec(
            name="decontam",
            filter="decontam",
            level="dialogue",
            settings={"benchmarks": ["humaneval", "mbpp", "mt_bench", "ifeval"], **settings},
        )
    )
    f.bind(BuildSettings(benchmark=bindings))
    return f


CLEAN = [
    [("user", "What is the capital of France?"), ("assistant", "Paris.")],
    [("user", "Write a function to add two numbers in Python."), ("assistant", "def add(a, b): return a + b")],
    [("user", "Can you recommend a good book about the history of Hawaii?"), ("assistant", "Try 'Shoal of Time'.")],
    [("user", "Write a short poem about the sea, without any commas please."), ("assistant", "Waves roll in")],
]


def test_planted_benchmark_prompts_are_rejected_with_their_item_ids() -> None:
    """Verbatim, re-cased, re-spaced, Unicode-variant and embedded copies of real items are rejected, each with
    its benchmark and item id; the clean rows (some sharing topics or short phrases with items) are kept."""
    mt, ife, mbpp, he = _records("mt_bench"), _records("ifeval"), _records("mbpp"), _records("humaneval")
    verbatim = mt["81"]["turns"][0]
    second_turn = mt["81"]["turns"][1]
    recased = ife["1001"]["prompt"].upper()
    respaced = re.sub(r"\s+", "  \n\t ", mbpp["2"]["text"]).replace(" the ", " the, ")
    unicode = ife["1005"]["prompt"].replace("Write", "Ｗｒｉｔｅ").replace("first", "\ufb01rst")
    embedded = f"My teacher gave me this, no idea where to start:\n\n{he['HumanEval/2']['prompt']}\nAny hints?"
    planted = {
        4: ("mt_bench_overlap", "mt_bench:81"),
        5: ("mt_bench_overlap", "mt_bench:81"),
        6: ("ifeval_overlap", "ifeval:1001"),
        7: ("mbpp_overlap", "mbpp:2"),
        8: ("ifeval_overlap", "ifeval:1005"),
        9: ("humaneval_overlap", "humaneval:HumanEval/2"),
    }
    frame = _frame(
        [
            *CLEAN,
            [("user", verbatim), ("assistant", "Aloha! ...")],
            [("user", "Tell me about Hawaii."), ("assistant", "..."), ("user", second_turn), ("assistant", "A...")],
            [("user", recased), ("assistant", "...")],
            [("user", respaced), ("assistant", "def similar_elements(a, b): ...")],
            [("user", unicode), ("assistant", "...")],
            [("user", embedded), ("assistant", "Sure.")],
        ]
    ).with_row_index("row")
    out = apply_filters(frame, [_filter()])
    got = {
        row: (reason, evidence)
        for row, reason, evidence in out.dropped.select("row", "reject_reason", "reject_evidence").iter_rows()
    }
    assert sorted(got) == sorted(planted)
    for row, (reason, item) in planted.items():
        assert got[row][0] == reason
        assert got[row][1].startswith(f"10-gram overlap with {item} «"), got[row][1]
    assert out.kept.get_column("row").to_list() == [0, 1, 2, 3]
    # the shared words are the item's own, normalised
    words = got[9][1].split("«")[1].rstrip("»").split()
    assert len(words) == 10 and " ".join(words) in " ".join(re.findall(r"\w+", he["HumanEval/2"]["prompt"].lower()))


def test_a_near_miss_or_another_role_is_not_contamination() -> None:
    item = _records("mt_bench")["82"]["turns"][0]
    nine = " ".join(re.findall(r"\w+", item)[:9])
    rows = [[("user", nine), ("assistant", "ok")], [("user", "Proofread this."), ("assistant", item)]]
    assert apply_filters(_frame(rows), [_filter()]).dropped.height == 0
    # a spec (or filter setting) may compare assistant turns too
    assert apply_filters(_frame(rows), [_filter(roles=["user", "assistant"])]).dropped.height == 1


def test_a_text_shorter_than_n_words_matches_only_whole(tmp_path: Path) -> None:
    items = tmp_path / "mine.jsonl"
    items.write_text(json.dumps({"id": "short-1", "q": "Name three primary colors."}) + "\n")
    spec = tmp_path / "mine.yaml"
    spec.write_text(
        f"name: mine\ndescription: my eval\nlicense: mit\nsource: {{file: {items.name}}}\nid: id\n"
        "compare:\n  - fields: [q]\n"
    )
    f = DecontamFilter(FilterSpec(name="d", filter="decontam", level="dialogue", settings={"benchmarks": [str(spec)]}))
    f.bind(BuildSettings())
    rows = [
        [("user", "Quick quiz: name THREE primary colors!"), ("assistant", "Red, yellow, blue.")],
        [("user", "Name three colors."), ("assistant", "Red, green, blue.")],
        [("user", "name three primary colours"), ("assistant", "...")],
    ]
    out = apply_filters(_frame(rows), [f])
    assert out.dropped.get_column("reject_evidence").to_list() == [
        "10-gram overlap with mine:short-1 «name three primary colors»"
    ]


def test_ngrams_common_to_many_items_are_ignored(tmp_path: Path) -> None:
    boiler = "you are a helpful assistant please answer the following question carefully"
    items = tmp_path / "b.jsonl"
    items.write_text(
        "".join(json.dumps({"k": i, "p": f"{boiler} {tail}"}) + "\n" for i, tail in enumerate(["one", "two", "three"]))
    )
    (tmp_path / "b.yaml").write_text(
        "name: boiler\ndescription: d\nlicense: mit\nsource: {file: b.jsonl}\nid: k\ncompare: [{fields: [p]}]\n"
    )
    f = DecontamFilter(
        FilterSpec(name="d", filter="decontam", level="dialogue", settings={"benchmarks": [str(tmp_path / "b.yaml")]})
    )
    f.bind(BuildSettings())
    rows = [[("user", boiler), ("assistant", "ok")], [("user", f"{boiler} two"), ("assistant", "ok")]]
    out = apply_filters(_frame(rows), [f])
    # the boilerplate alone is in all three items; with its item's own word it is that item's 10-gram
    assert out.dropped.get_column("reject_evidence").to_list() == [
        "10-gram overlap with boiler:1 «a helpful assistant please answer the following question carefully two»"
    ]


@pytest.mark.parametrize("form", ["jsonl", "json", "json_object", "parquet", "gzip", "folder"])
def test_a_bound_file_is_read_by_content_whatever_its_form(tmp_path: Path, form: str) -> None:
    records = read_records(FIXTURES["ifeval"])
    target = tmp_path / "ifeval.bin"
    if form == "jsonl":
        shutil.copyfile(FIXTURES["ifeval"], target)
    elif form == "json":
        target.write_text(json.dumps(records))
    elif form == "json_object":
        target.write_text(json.dumps({"version": 1, "data": records}))
    elif form == "parquet":
        pq.write_table(pa.Table.from_pylist([{k: r[k] for k in ("key", "prompt")} for r in records]), target)
    elif form == "gzip":
        target.write_bytes(gzip.compress(FIXTURES["ifeval"].read_bytes()))
    else:
        target.mkdir()
        half = len(records) // 2
        (target / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:half]))
        pq.write_table(pa.Table.from_pylist([{"key": r["key"], "prompt": r["prompt"]} for r in records[half:]]),
                       target / "b.parquet")  # fmt: skip
    items = resolve("ifeval", str(target))
    assert items.items == 16 and items.texts == tuple(r["prompt"] for r in records)
    assert items.ids == tuple(str(r["key"]) for r in records)
    assert items.provenance["source"] == "file" and len(items.provenance["sha256"]) == 64


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"key,prompt\n1,hello\n", "not JSON Lines, JSON or Parquet"),
        (b'{"prompt": "no key here"}\n', "has no 'key' (its item id)"),
        (b'{"key": 1}\n', "has no field 'prompt'"),
        (b"[1, 2]", "every record must be a JSON object"),
        (b"", "not JSON Lines, JSON or Parquet"),
    ],
)
def test_a_bad_bound_file_fails_in_one_line(tmp_path: Path, content: bytes, expected: str) -> None:
    target = tmp_path / "bad.jsonl"
    target.write_bytes(content)
    with pytest.raises(BenchmarkError) as err:
        resolve("ifeval", str(target))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_the_shipped_specs() -> None:
    assert set(known()) == {"humaneval", "mbpp", "mt_bench", "ifeval"}
    he, mt = resolve("humaneval"), resolve("mt_bench")
    assert (he.items, len(he.texts), he.provenance["source"]) == (164, 164, "package")
    assert (mt.items, len(mt.texts), mt.ids[:2]) == (80, 160, ("81", "81"))  # both turns of each question
    assert mt.provenance["sha256"] == "119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7"
    for name in ("mbpp", "ifeval"):
        source = load_spec(name).source
        assert source.hub and re.fullmatch(r"[0-9a-f]{40}", source.revision or "")
    with pytest.raises(SpecError, match="unknown benchmark 'gsm8k'"):
        load_spec("gsm8k")


def test_a_spec_file_is_checked_in_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "x.yaml"
    spec.write_text("name: x\ndescription: d\nlicense: mit\nsource: {hub: org/x}\nid: k\ncompare: [{fields: [p]}]\n")
    with pytest.raises(SpecError) as err:
        load_spec(str(spec))
    assert "pinned `revision`" in str(err.value) and "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------------ builds


def _alpha_like(folder: Path) -> Path:
    """oasst_en decontaminated against the four benchmarks (starchat_alpha's decontamination)."""
    import yaml

    from chatdata.resources import recipes_dir

    recipe = yaml.safe_load((recipes_dir() / "oasst_en.yaml").read_text(encoding="utf-8"))
    recipe["name"] = "oasst_en_four"
    recipe["decontamination"] = "decontam_benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "oasst_en_four.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


def test_a_build_that_cannot_load_a_benchmark_fails_in_one_line(real_trees: Path, tmp_path: Path) -> None:
    recipe = _alpha_like(tmp_path / "user")
    with pytest.raises(ChatdataError) as err:  # HF_HUB_OFFLINE=1 in the suite: mbpp is not in the cache
        run([str(recipe)], tmp_path / "out", source=real_trees)
    message = str(err.value)
    assert "benchmark mbpp" in message and "--benchmark mbpp=PATH" in message and "\n" not in message
    assert not (tmp_path / "out" / "oasst_en_four").exists()


def test_a_build_records_each_benchmark_and_reruns_when_a_bound_file_changes(real_trees: Path, tmp_path: Path) -> None:
    recipe = _alpha_like(tmp_path / "user")
    mine = tmp_path / "ifeval.jsonl"
    shutil.copyfile(FIXTURES["ifeval"], mine)
    trees = [json.loads(line) for line in real_trees.read_text(encoding="utf-8").splitlines()]
    prompt = next(t["prompt"]["text"] for t in trees if not t["prompt"].get("synthetic"))
    with mine.open("a") as fh:  # a benchmark item that one of the real trees' prompts happens to contain
        fh.write(json.dumps({"key": 4242, "prompt": prompt}) + "\n")
    bound = [*BOUND[1:2], f"ifeval={mine}"]  # mbpp and ifeval bound; humaneval and mt_bench as shipped
    first = run([str(recipe)], tmp_path / "out", source=real_trees, shards=2, benchmark=bound)
    build = json.loads((first.outputs["oasst_en_four"] / "build.json").read_text())
    record = build["decontamination"]
    assert record["filter"] == "decontam_benchmarks" and record["left_out"] == []
    by_name = {b["name"]: b for b in record["benchmarks"]}
    assert [b["name"] for b in record["benchmarks"]] == ["humaneval", "mbpp", "mt_bench", "ifeval"]
    assert by_name["ifeval"]["items"] == 17 and by_name["ifeval"]["file"] == str(mine)
    assert by_name["mt_bench"]["texts"] == 160 and by_name["humaneval"]["source"] == "package"
    removed = sum(n for b in record["benchmarks"] for n in b["removed"].values())
    ledger = next(r for r in build["ledger"] if r["stage"] == "filters")["rejected"]
    assert removed == sum(n for k, n in ledger.items() if k.startswith("decontam_benchmarks:")) > 0
    card = (first.outputs["oasst_en_four"] / "README.md").read_text(encoding="utf-8")
    assert "| ifeval | file ifeval.jsonl" in card and "Not checked" not in card
    assert by_name["ifeval"]["removed"]["oasst"] > 0 and "`ifeval:4242`" in card

    again = run([str(recipe)], tmp_path / "out", source=real_trees, shards=2, benchmark=bound)
    assert again.ran["shard"] == 0
    with mine.open("a") as fh:  # the user's copy gains an item: every shard is checked again
        fh.write(json.dumps({"key": 9999, "prompt": "A brand new instruction following prompt."}) + "\n")
    changed = run([str(recipe)], tmp_path / "out", source=real_trees, shards=2, benchmark=bound)
    assert changed.ran["shard"] == 2


def test_an_offline_sample_build_leaves_hub_benchmarks_out_and_says_so(tmp_path: Path) -> None:
    out = run(["starchat_alpha"], tmp_path / "out").outputs["starchat_alpha"]
    build = json.loads((out / "build.json").read_text())
    assert build["decontamination"]["left_out"] == ["mbpp", "ifeval"]
    assert [b["name"] for b in build["decontamination"]["benchmarks"]] == ["humaneval", "mt_bench"]
    assert build["settings"]["benchmark"] == ["mbpp=skip", "ifeval=skip"]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "**Not checked in this build:** `mbpp`, `ifeval`" in card


def test_skip_leaves_a_benchmark_out_on_request(real_trees: Path, tmp_path: Path) -> None:
    recipe = _alpha_like(tmp_path / "user")
    result = run([str(recipe)], tmp_path / "out", source=real_trees, benchmark=["mbpp=skip", "ifeval=skip"])
    build = json.loads((result.outputs["oasst_en_four"] / "build.json").read_text())
    assert build["decontamination"]["left_out"] == ["mbpp", "ifeval"]
    assert build["settings_given"] == ["benchmark"]


def test_benchmark_bindings_are_checked() -> None:
    with pytest.raises(ValueError, match="expected NAME=PATH"):
        BuildSettings(benchmark=["mbpp"])
    with pytest.raises(ValueError, match="bound twice"):
        BuildSettings(benchmark=["mbpp=a.jsonl", "mbpp=b.jsonl"])


# ------------------------------------------------------------------------------------------------ the Hub and the CLI


def test_a_benchmark_of_your_own_from_the_hub(real_trees: Path, tmp_path: Path, hub_server: HubServer) -> None:  # noqa: F811
    """A user's benchmark spec pinned to a Hub dataset commit (the loopback Hub), picked by a decontamination
    spec and a recipe of their own: no code. The resolved commit and the items land in build.json."""
    import subprocess
    import sys

    from huggingface_hub import HfApi

    api = HfApi(endpoint=hub_server.url, token=hub_server.token)
    api.create_repo("evals/my-ifeval", repo_type="dataset")
    api.upload_file(
        path_or_fileobj=str(FIXTURES["ifeval"]),
        path_in_repo="data/train.jsonl",
        repo_id="evals/my-ifeval",
        repo_type="dataset",
    )
    sha = hub_server.head("evals/my-ifeval")
    user = tmp_path / "user"
    user.mkdir()
    (user / "my_ifeval.yaml").write_text(
        "name: my_ifeval\ndescription: our copy of IFEval\nlicense: apache-2.0\n"
        f"source: {{hub: evals/my-ifeval, revision: {sha}, files: ['data/*.jsonl']}}\n"
        "id: key\ncompare: [{fields: [prompt], roles: [user]}]\n"
    )
    (user / "decontam_mine.yaml").write_text(
        "name: decontam_mine\nfilter: decontam\nsettings: {benchmarks: [humaneval, my_ifeval.yaml]}\n"  # beside it
    )
    recipe = _alpha_like(user)
    recipe.write_text(recipe.read_text().replace("decontam_benchmarks", "decontam_mine.yaml"))
    proc = subprocess.run(
        [sys.executable, "-m", "chatdata.cli", "build", str(recipe), "--source", str(real_trees), "--out",
         str(tmp_path / "out"), "--engine", "local"],
        env=hub_env(hub_server, tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "decontamination: humaneval (0 removed), my_ifeval (0 removed)" in proc.stdout
    record = json.loads((tmp_path / "out" / "oasst_en_four" / "build.json").read_text())["decontamination"]
    mine = record["benchmarks"][1]
    assert (mine["name"], mine["source"], mine["repo"], mine["revision"]) == (
        "my_ifeval",
        "hub",
        "evals/my-ifeval",
        sha,
    )
    assert (mine["items"], mine["files"]) == (16, ["data/train.jsonl"])


def test_the_benchmarks_command_lists_the_shipped_specs() -> None:
    from typer.testing import CliRunner

    from chatdata.cli import app

    result = CliRunner().invoke(app, ["benchmarks"])
    assert result.exit_code == 0
    for name in ("humaneval", "mbpp", "mt_bench", "ifeval"):
        assert f"{name}  " in result.stdout
    assert "compares turns with user turns" in result.stdout  # MT-Bench: both turns of each question
    assert "Hub google/IFEval@966cd89545d6b6acfd7638bc708b98261ca58e84" in result.stdout
