"""The card's YAML front matter: ``configs`` and ``dataset_info`` taken from the files themselves (and checked
against the build record), licence, languages, sizes, source datasets and tags."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from chatdata.card.markdown import one_line
from chatdata.errors import ChatdataError
from chatdata.record import BuildRecord, SourceRecord

#: ``spec`` of a source read from the sample shipped with chatdata (``chatdata.engine.BUNDLED``)
BUNDLED_SOURCE = "bundled-sample"


@dataclass(frozen=True)
class SplitFiles:
    """One split of one config as the record's ``outputs`` list it."""

    config: str
    split: str
    rows: int
    paths: tuple[str, ...]
    bytes: tuple[int, ...]
    sha256: tuple[str, ...]


def ordered_splits(record: BuildRecord) -> list[SplitFiles]:
    """Every split of every config: ``default`` first in the recipe's split order, then the others sorted."""
    outputs = record.outputs
    if "default" not in outputs:
        raise ChatdataError("build.json has no 'default' output config; rebuild the folder with `chatdata build`")
    recipe_order = list(record.recipe.get("splits") or [])
    configs = ["default", *sorted(c for c in outputs if c != "default")]
    out = []
    for config in configs:
        splits = outputs[config]
        order = [s for s in recipe_order if s in splits] if config == "default" else []
        order += sorted(s for s in splits if s not in order)
        for split in order:
            files = splits[split].files
            out.append(
                SplitFiles(
                    config,
                    split,
                    splits[split].rows,
                    tuple(f.path for f in files),
                    tuple(f.bytes for f in files),
                    tuple(f.sha256 for f in files),
                )
            )
    return out


def local_file(folder: Path, rel: str) -> Path:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts:
        raise ChatdataError(f"build.json lists output file '{one_line(rel)}' outside the folder; rebuild it")
    path = folder / p
    if not path.is_file():
        raise ChatdataError(f"{path}: listed in build.json but missing; rebuild the folder with `chatdata build`")
    return path


def size_category(n: int) -> str:
    """The Hub's ``size_categories`` bucket for ``n`` rows."""
    labels = (
        "n<1K",
        "1K<n<10K",
        "10K<n<100K",
        "100K<n<1M",
        "1M<n<10M",
        "10M<n<100M",
        "100M<n<1B",
        "1B<n<10B",
        "10B<n<100B",
        "100B<n<1T",
    )
    for i, label in enumerate(labels):
        if n < 10 ** (3 + i):
            return label
    return "n>1T"


_SIMPLE_DTYPES = {
    pa.null(): "null",
    pa.bool_(): "bool",
    pa.int8(): "int8",
    pa.int16(): "int16",
    pa.int32(): "int32",
    pa.int64(): "int64",
    pa.uint8(): "uint8",
    pa.uint16(): "uint16",
    pa.uint32(): "uint32",
    pa.uint64(): "uint64",
    pa.float16(): "float16",
    pa.float32(): "float32",
    pa.float64(): "float64",
    pa.string(): "string",
    pa.large_string(): "large_string",
    pa.binary(): "binary",
    pa.large_binary(): "large_binary",
    pa.date32(): "date32",
    pa.date64(): "date64",
}


def _feature_yaml(t: pa.DataType) -> dict[str, Any] | None:
    if t in _SIMPLE_DTYPES:
        return {"dtype": _SIMPLE_DTYPES[t]}
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = _feature_yaml(t.value_type)
        if inner is None:
            return None
        if list(inner) in (["dtype"], ["struct"]):
            inner = next(iter(inner.values()))
        return {"large_list" if pa.types.is_large_list(t) else "list": inner}
    if pa.types.is_struct(t):
        fields = []
        for f in t:
            sub = _feature_yaml(f.type)
            if sub is None:
                return None
            fields.append({"name": f.name, **sub})
        return {"struct": fields}
    return None


def features_yaml(schema: pa.Schema) -> list[dict[str, Any]]:
    """The ``dataset_info.features`` list for an Arrow schema, as
    ``datasets.Features.from_arrow_schema(schema)._to_yaml_list()`` gives it (computed directly for the usual
    types, which avoids importing ``datasets``; other types ask ``datasets``)."""
    out = []
    for f in schema:
        sub = _feature_yaml(f.type)
        if sub is None:
            from datasets import Features

            return Features.from_arrow_schema(schema)._to_yaml_list()
        out.append({"name": f.name, **sub})
    return out


def _data_files_entry(sf: SplitFiles, present: list[str]) -> dict[str, Any]:
    """``{split, path}``: the ``{dir}/{split}-*`` glob if it selects just the split's files, else a list."""
    if sf.paths:
        prefix = sf.paths[0].rsplit("/", 1)[0] + "/" if "/" in sf.paths[0] else ""
        pattern = f"{prefix}{sf.split}-*"
        if sorted(p for p in present if fnmatchcase(p, pattern)) == sorted(sf.paths):
            return {"split": sf.split, "path": pattern}
    return {"split": sf.split, "path": list(sf.paths)}


# ------------------------------------------------------------------------------------------------ metadata


def primary_subtag(code: str) -> str | None:
    sub = re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]
    return sub if re.fullmatch(r"[a-z]{2,3}", sub) else None


def safe_name(name: str) -> str:
    """A file or repo name fit for metadata: word characters, ``. + -`` only, no ``---``."""
    cleaned = re.sub(r"[^\w.+-]", "_", one_line(name)).strip("_")
    return re.sub(r"-{3,}", "--", cleaned) or "source"


def _hub_id(text: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", text)) and ".." not in text and "--" not in text


def _from_hub(source: SourceRecord) -> bool:
    """The source was a Hub dataset (it has a pinned revision)."""
    return bool(source.revision) and _hub_id(source.spec)


def _file_name(path: str) -> str:
    """A file's name fit for the card (never its folder)."""
    return safe_name(PurePosixPath(path.replace("\\", "/")).name)


def _file_names(source: SourceRecord) -> list[str]:
    """The source's files' names (or its spec's), fit for the card."""
    return sorted({_file_name(f.path) for f in source.files}) or [_file_name(source.spec)]


def source_datasets(source: SourceRecord, default: str | None = None) -> list[str]:
    """The Hub datasets a source is: its Hub id when it came from the Hub; for local files, its recipe
    ``default`` when every file was read in that dataset's format (``known_datasets.yaml``); else none (the
    files stay in the fingerprint)."""
    from chatdata.resources import known_datasets

    if _from_hub(source):
        return [source.spec]
    if source.spec == BUNDLED_SOURCE:
        return []  # synthetic data shipped with chatdata, not the dataset it stands in for
    formats = known_datasets().get(str(default or ""))
    if formats and source.files and all(f.format in formats for f in source.files):
        return [str(default)]
    return []


def _all_source_datasets(record: BuildRecord) -> list[str]:
    specs = record.recipe.get("sources") or {}
    found = {
        d
        for name, src in record.ordered_sources().items()
        for d in source_datasets(src, (specs.get(name) or {}).get("default"))
    }
    return sorted(found)


def source_context(name: str, source: SourceRecord, spec: Mapping[str, Any]) -> dict[str, Any]:
    """What the templates print of one source (``spec``: the recipe's declaration of it)."""
    hub = _from_hub(source)
    return {
        "name": name,
        "hub": hub,
        "bundled": source.spec == BUNDLED_SOURCE,
        "records": sum(f.records for f in source.files),
        "spec": source.spec if hub else ", ".join(_file_names(source)),
        "revision": source.revision,
        "format": spec.get("format") or source.format,
        "default": spec.get("default"),
        "weight": spec.get("weight", 1.0),
        "license": spec.get("license") or "apache-2.0",
        "skipped": [{"path": _file_name(k.path), "reason": one_line(k.reason)} for k in source.skipped],
        "files": [
            {"path": _file_name(f.path), "format": f.format, "records": f.records, "sha256": f.sha256}
            for f in source.files
        ],
    }


def mixture_table(record: BuildRecord, split_order: list[str]) -> list[dict[str, Any]] | None:
    """Rows per source per split, with each source's weight and train rows before and after its fraction."""
    if not record.mix:
        return None
    mix, weights = record.mix, record.weights or {}
    order = [n for n in record.recipe.get("source_order") or [] if n in mix]
    return [
        {
            "source": name,
            "splits": [int(mix[name].get(s, 0)) for s in split_order],
            "weight": weights[name].weight if name in weights else 1.0,
            "train_rows": weights[name].train_rows if name in weights else None,
            "kept": weights[name].kept if name in weights else None,
        }
        for name in order + [n for n in mix if n not in order]
    ]


def card_metadata(record: BuildRecord, folder: Path, languages: list[str] | None = None) -> dict[str, Any]:
    """The YAML front matter: license, languages, sizes, sources, tags, ``configs`` and ``dataset_info``, with
    row counts and byte sizes taken from the files themselves (and checked against the record)."""
    folder = Path(folder)
    recipe = record.recipe
    name = safe_name(str(recipe.get("name") or folder.name))
    splits = ordered_splits(record)
    present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
    configs: list[dict[str, Any]] = []
    infos: list[dict[str, Any]] = []
    for config in dict.fromkeys(s.config for s in splits):
        members = [s for s in splits if s.config == config]
        schema: pa.Schema | None = None
        split_infos = []
        for sf in members:
            rows, size = 0, 0
            for rel in sf.paths:
                path = local_file(folder, rel)
                meta = pq.read_metadata(path)
                if schema is None:
                    schema = meta.schema.to_arrow_schema().remove_metadata()
                elif not meta.schema.to_arrow_schema().remove_metadata().equals(schema):
                    raise ChatdataError(f"{path}: schema differs from the other files of config '{config}'; rebuild")
                rows += meta.num_rows
                size += path.stat().st_size
            if rows != sf.rows:
                raise ChatdataError(
                    f"config '{config}' split '{sf.split}': files hold {rows} rows, build.json says "
                    f"{sf.rows}; rebuild the folder"
                )
            split_infos.append({"name": sf.split, "num_bytes": size, "num_examples": rows})
        # datasets (<= 5.2) cannot materialise a 0-row split ('Instruction "test" corresponds to no data!') and
        # then fails the whole config, so empty splits stay out of the YAML (their files stay in the folder and
        # in build.json), unless every split of the config is empty
        listed = [i for i, sf in enumerate(members) if sf.rows] or list(range(len(members)))
        split_infos = [split_infos[i] for i in listed]
        entry: dict[str, Any] = {
            "config_name": config,
            "data_files": [_data_files_entry(members[i], present) for i in listed],
        }
        if config == "default":
            entry["default"] = True
        configs.append(entry)
        total = sum(s["num_bytes"] for s in split_infos)
        infos.append(
            {
                "config_name": config,
                "features": features_yaml(schema) if schema is not None else [],
                "splits": split_infos,
                "download_size": total,
                "dataset_size": total,
            }
        )
    rows = sum(s.rows for s in splits if s.config == "default")
    output = recipe.get("output", "sft")
    licenses = sorted({str(v.get("license") or "apache-2.0") for v in (recipe.get("sources") or {}).values()})
    tags = ["chatdata", "oasst", "conversational", "dpo" if output == "prefs" else "sft"]
    if recipe.get("text_format"):
        tags.append(safe_name(str(recipe["text_format"])))
    langs = languages or sorted({p for c in recipe.get("languages") or [] if (p := primary_subtag(str(c)))}) or ["en"]
    meta = {
        "license": licenses[0] if len(licenses) == 1 else "other",
        "language": langs,
        "pretty_name": f"chatdata {name}",
        "size_categories": [size_category(rows)],
        "task_categories": ["text-generation"],
        "source_datasets": _all_source_datasets(record),
        "tags": tags,
        "configs": configs,
        "dataset_info": infos,
    }
    if not meta["source_datasets"]:
        del meta["source_datasets"]  # no Hub dataset to name (the files are in the fingerprint)
    return meta
