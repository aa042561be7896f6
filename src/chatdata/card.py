"""Render a recipe folder's README.md: YAML metadata that matches the files, and a body explaining the data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                         (10_000_000, "1M<n<10M")):
        if n < limit:
            return label
    return "10M<n<100M"


def features_yaml(folder: Path, files: list[str]) -> list[dict[str, Any]]:
    from datasets import Features

    schema = pq.read_schema(folder / files[0])
    return Features.from_arrow_schema(schema)._to_yaml_list()


def card_metadata(build: dict[str, Any], folder: Path) -> dict[str, Any]:
    recipe = build["recipe"]
    configs = []
    infos = []
    for config, splits in build["outputs"].items():
        data_files = []
        split_infos = []
        first_files: list[str] = []
        for split, info in splits.items():
            paths = [f["path"] for f in info["files"]]
            first_files = first_files or paths
            prefix = paths[0].rsplit("/", 1)[0]
            data_files.append({"split": split, "path": f"{prefix}/{split}-*"})
            split_infos.append({"name": split, "num_bytes": sum(f["bytes"] for f in info["files"]),
                                "num_examples": info["rows"]})
        entry: dict[str, Any] = {"config_name": config, "data_files": data_files}
        if config == "default":
            entry["default"] = True
        configs.append(entry)
        infos.append({
            "config_name": config,
            "features": features_yaml(folder, first_files),
            "splits": split_infos,
            "download_size": sum(s["num_bytes"] for s in split_infos),
            "dataset_size": sum(s["num_bytes"] for s in split_infos),
        })
    rows = sum(v["rows"] for v in build["outputs"]["default"].values())
    return {
        "license": "apache-2.0",
        "language": list(recipe["languages"]),
        "pretty_name": f"chatdata {recipe['name']}",
        "size_categories": [size_category(rows)],
        "task_categories": ["text-generation"],
        "source_datasets": [build["source"]["spec"]],
        "tags": ["chatdata", "oasst", "sft" if recipe["output"] == "sft" else "dpo"],
        "configs": configs,
        "dataset_info": infos,
    }


def render_card(build: dict[str, Any], folder: Path) -> str:
    meta = card_metadata(build, folder)
    recipe = build["recipe"]
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        "",
        f"# chatdata `{recipe['name']}`",
        "",
        f"{recipe['summary']}. Rebuilds [{recipe['rebuilds']}]({recipe['reference']}) with chatdata {build['chatdata_version']}.",
        "",
        "## Ledger",
        "",
        "| stage | unit | in | out | rejected |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for r in build["ledger"]:
        rej = ", ".join(f"{k}: {v}" for k, v in r["rejected"].items()) or "—"
        lines.append(f"| {r['stage']} | {r['unit']} | {r['rows_in']} | {r['rows_out']} | {rej} |")
    lines += ["", "## Load it", "", "```python", "from datasets import load_dataset",
              f'ds = load_dataset("ORG/{recipe["name"]}")', "```", ""]
    return "\n".join(lines)
