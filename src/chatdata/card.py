"""Render a recipe folder's README.md dataset card: YAML metadata that matches the files exactly, and a body
that explains the data (funnel, lengths, languages, phrases, decontamination, masks, pairs, specs,
fingerprint, usage).

Entry point: :func:`render_card` (called by :func:`chatdata.output.write_dataset` inside the atomic temp
folder, after the Parquet files and ``build.json`` are written). It also writes the PNG plots
(:mod:`chatdata.plots`) into the folder. Templates are Jinja files in ``data_cards/``
(:func:`chatdata.resources.data_cards_dir`): a shared ``base.md.j2`` with partials, and one
``<recipe>.md.j2`` per recipe that overrides the recipe-specific blocks.

Safety: every value printed by a template is Markdown-escaped unless a filter marked it safe (``Markup``);
YAML is produced only by :func:`dump_yaml` (a SafeDumper), never by string formatting; code blocks get a fence
longer than any backtick run inside; local absolute paths never reach the card. Determinism: orders are
canonical (recipe split order, sorted configs, counts then names) and no clock is read, so the same build and
files give the same bytes.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from markupsafe import Markup

from chatdata.errors import ChatdataError

#: Plots a card may write; stale ones (e.g. no languages plot any more) are removed from the folder.
PLOT_FILES = ("funnel.png", "lengths.png", "languages.png", "margins.png", "changes.png")
TOP_N = 20
#: ``source.spec`` of a build from the sample shipped with chatdata (``chatdata.engine.BUNDLED``)
BUNDLED_SOURCE = "bundled-sample"
#: build.json keys with a dedicated section (anything else goes to "Other build records")
CORE_KEYS = frozenset(
    {
        "chatdata_version",
        "recipe",
        "settings",
        "settings_given",
        "settings_sha256",
        "source",
        "filters",
        "ledger",
        "outputs",
        "notes",
        "sources",
        "mix",
        "weights",
        "changes",
    }
)
MASK_KEYS = ("masks", "mask_stats", "label_masks")
DECONTAM_KEYS = ("decontamination", "decontam")
LANGUAGE_KEYS = ("language", "languages", "langid")
PHRASE_KEYS = ("phrases", "uncensor", "matched_phrases")
PAIR_KEYS = ("pairs", "prefs", "preferences")
# ------------------------------------------------------------------------------------------------ escaping

_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_MD_BACKSLASH = re.compile(r"([\\`*_\[\]{}|~#!])")
_LEADING_BLOCK = re.compile(r"^([-+=>]|\d+[.)](?=\s|$))")
_URL = re.compile(r"^https?://[A-Za-z0-9._~:/?#@!$&'*+,;=%-]+$")


def one_line(value: Any, limit: int | None = None) -> str:
    """``value`` as one line: control characters and line breaks become spaces; cut at ``limit`` chars."""
    text = _CONTROL.sub(" ", "" if value is None else str(value))
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def md_text(value: Any, limit: int | None = None) -> Markup:
    """Escape untrusted text for Markdown prose and table cells: HTML (``& < >``) as entities, Markdown
    punctuation (backticks, pipes, emphasis, brackets, headings) with backslashes, line breaks as spaces,
    and a leading ``-``/``+``/``=``/``>``/``1.`` so no block (list, rule, setext heading, quote) can start."""
    text = one_line(value, limit)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_BACKSLASH.sub(r"\\\1", text)
    text = _LEADING_BLOCK.sub(lambda m: "\\" + m.group(0), text)
    return Markup(text)


def md_prose(value: Any) -> Markup:
    """Trusted prose from the recipe declaration: inline Markdown kept (backticks, emphasis), HTML and line
    breaks neutralised, no block can start."""
    text = one_line(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return Markup(_LEADING_BLOCK.sub(lambda m: "\\" + m.group(0), text))


def md_code(value: Any, limit: int | None = None) -> Markup:
    """Inline code span for untrusted text (one line, fence longer than any backtick run, pipes escaped for
    tables). Inside a code span nothing is interpreted, so no HTML or Markdown can be injected."""
    text = one_line(value, limit)
    runs = [len(r) for r in re.findall(r"`+", text)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return Markup(f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}")


def code_block(text: str, lang: str = "") -> Markup:
    """A fenced code block whose fence is longer than any backtick run in ``text`` (so it cannot be closed
    early). Control characters other than newline and tab are replaced."""
    body = re.sub(r"[\x00-\x08\x0b-\x1f\x7f\x85\u2028\u2029]", " ", text.replace("\r\n", "\n")).rstrip("\n")
    runs = [len(r) for r in re.findall(r"`+", body)]
    fence = "`" * max(3, max(runs, default=0) + 1)
    return Markup(f"{fence}{re.sub(r'[^A-Za-z0-9_+-]', '', lang)}\n{body}\n{fence}")


def md_link(text: Any, url: Any) -> Markup:
    """``[text](url)`` for an http(s) URL made only of URL characters; otherwise just the escaped text."""
    label = md_text(text)
    u = one_line(url)
    if not _URL.match(u):
        return label
    return Markup(f"[{label}]({u.replace('(', '%28').replace(')', '%29')})")


class _CardDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]  (libyaml's emitter)
    """SafeDumper that writes strings holding line breaks or control characters double-quoted (escaped on one
    line), so no value can put ``---`` or a new key at the start of a line."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = '"' if _CONTROL.search(data) or "\t" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_CardDumper.add_representer(str, _represent_str)


def _plain(obj: Any) -> Any:
    """JSON-shaped copy (tuples to lists, unknown objects to str), so the safe dumper can represent it."""
    return json.loads(json.dumps(obj, default=str, ensure_ascii=False))


def dump_yaml(obj: Any, *, sort_keys: bool = False) -> str:
    """YAML for the card (front matter, spec blocks): safe dumper, no document markers, one line per value."""
    return yaml.dump(_plain(obj), Dumper=_CardDumper, sort_keys=sort_keys, allow_unicode=True, width=10**9)


def _looks_local(value: str) -> bool:
    return value.startswith(("/", "~", "\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", value))


def scrub_paths(obj: Any) -> Any:
    """Replace every string that is an absolute local path by its file name (cards are public)."""
    if isinstance(obj, str):
        if _looks_local(obj):
            return (PureWindowsPath(obj) if "\\" in obj else PurePosixPath(obj)).name or "(local path)"
        return obj
    if isinstance(obj, Mapping):
        return {k: scrub_paths(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_paths(v) for v in obj]
    return obj


# ------------------------------------------------------------------------------------------------ files


@dataclass(frozen=True)
class SplitFiles:
    """One split of one config as listed in ``build['outputs']``."""

    config: str
    split: str
    rows: int
    paths: tuple[str, ...]
    bytes: tuple[int, ...]
    sha256: tuple[str, ...]


def _ordered_splits(build: Mapping[str, Any]) -> list[SplitFiles]:
    outputs = build.get("outputs") or {}
    if "default" not in outputs:
        raise ChatdataError("build.json has no 'default' output config; rebuild the folder with `chatdata build`")
    recipe_order = list((build.get("recipe") or {}).get("splits") or [])
    configs = ["default", *sorted(c for c in outputs if c != "default")]
    out = []
    for config in configs:
        splits = outputs[config]
        order = [s for s in recipe_order if s in splits] if config == "default" else []
        order += sorted(s for s in splits if s not in order)
        for split in order:
            info = splits[split]
            files = list(info.get("files") or [])
            out.append(
                SplitFiles(
                    config,
                    split,
                    int(info["rows"]),
                    tuple(str(f["path"]) for f in files),
                    tuple(int(f["bytes"]) for f in files),
                    tuple(str(f.get("sha256", "")) for f in files),
                )
            )
    return out


def _local(folder: Path, rel: str) -> Path:
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


def _primary(code: str) -> str | None:
    sub = re.split(r"[-_]", code.strip().lower(), maxsplit=1)[0]
    return sub if re.fullmatch(r"[a-z]{2,3}", sub) else None


def _safe_name(name: str) -> str:
    """A file or repo name fit for metadata: word characters, ``. + -`` only, no ``---``."""
    cleaned = re.sub(r"[^\w.+-]", "_", one_line(name)).strip("_")
    return re.sub(r"-{3,}", "--", cleaned) or "source"


def _hub_id(text: str) -> bool:
    return bool(re.fullmatch(r"[\w.-]+/[\w.-]+", text)) and ".." not in text and "--" not in text


def _from_hub(source: Mapping[str, Any]) -> bool:
    """The source was a Hub dataset (it has a pinned revision)."""
    return bool(source.get("revision")) and _hub_id(str(source.get("spec") or ""))


def _file_names(source: Mapping[str, Any]) -> list[str]:
    """The source's files' names (or its spec's), fit for the card."""
    spec = str(source.get("spec") or "")
    names = [
        _safe_name(PurePosixPath(str(f.get("path", "")).replace("\\", "/")).name) for f in source.get("files") or []
    ]
    return sorted(set(names)) or [_safe_name(PurePosixPath(spec.replace("\\", "/")).name)]


def source_datasets(source: Mapping[str, Any], default: str | None = None) -> list[str]:
    """The Hub datasets a source is: its Hub id when it came from the Hub; for local files, its recipe
    ``default`` when every file was read in that dataset's format (``known_datasets.yaml``); else none (the
    files stay in the fingerprint)."""
    from chatdata.resources import known_datasets

    if _from_hub(source):
        return [str(source["spec"])]
    if source.get("spec") == BUNDLED_SOURCE:
        return []  # synthetic data shipped with chatdata, not the dataset it stands in for
    formats = known_datasets().get(str(default or ""))
    files = source.get("files") or []
    if formats and files and all(f.get("format") in formats for f in files):
        return [str(default)]
    return []


def _all_source_datasets(build: Mapping[str, Any]) -> list[str]:
    specs = (build.get("recipe") or {}).get("sources") or {}
    found = {
        d
        for name, src in _build_sources(build).items()
        for d in source_datasets(src, (specs.get(name) or {}).get("default"))
    }
    return sorted(found)


def _build_sources(build: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """``build.json``'s sources by recipe source name (a build recorded before mixtures has one ``source``)."""
    sources = build.get("sources")
    if isinstance(sources, Mapping) and sources:
        order = [n for n in (build.get("recipe") or {}).get("source_order") or [] if n in sources]
        return {n: sources[n] for n in order + [n for n in sources if n not in order]}
    return {"oasst": build.get("source") or {}}


def _source_context(name: str, source: Mapping[str, Any], spec: Mapping[str, Any]) -> dict[str, Any]:
    """What the templates print of one source."""
    text = str(source.get("spec") or "")
    hub = _from_hub(source)
    return {
        "name": name,
        "hub": hub,
        "bundled": text == BUNDLED_SOURCE,
        "records": sum(int(f.get("records") or 0) for f in source.get("files") or []),
        "spec": text if hub else ", ".join(_file_names(source)),
        "revision": source.get("revision"),
        "format": spec.get("format") or source.get("format") or "oasst",
        "default": spec.get("default"),
        "weight": spec.get("weight", 1.0),
        "license": spec.get("license") or "apache-2.0",
        "skipped": [
            {"path": _safe_name(PurePosixPath(str(k.get("path", ""))).name), "reason": one_line(k.get("reason"))}
            for k in source.get("skipped") or []
        ],
        "files": [
            {
                "path": _file_names({"files": [f]})[0],
                "format": f.get("format"),
                "records": f.get("records"),
                "sha256": f.get("sha256"),
            }
            for f in source.get("files") or []
        ],
    }


def mixture_table(build: Mapping[str, Any], split_order: list[str]) -> list[dict[str, Any]] | None:
    """Rows per source per split, with each source's weight and train rows before and after its fraction."""
    mix = build.get("mix")
    if not isinstance(mix, Mapping) or not mix:
        return None
    weights = build.get("weights") or {}
    order = [n for n in (build.get("recipe") or {}).get("source_order") or [] if n in mix]
    return [
        {
            "source": name,
            "splits": [int((mix.get(name) or {}).get(s, 0)) for s in split_order],
            "weight": (weights.get(name) or {}).get("weight", 1.0),
            "train_rows": (weights.get(name) or {}).get("train_rows"),
            "kept": (weights.get(name) or {}).get("kept"),
        }
        for name in order + [n for n in mix if n not in order]
    ]


def card_metadata(build: Mapping[str, Any], folder: Path, languages: list[str] | None = None) -> dict[str, Any]:
    """The YAML front matter: license, languages, sizes, sources, tags, ``configs`` and ``dataset_info``, with
    row counts and byte sizes taken from the files themselves (and checked against ``build.json``)."""
    folder = Path(folder)
    recipe = build.get("recipe") or {}
    name = _safe_name(str(recipe.get("name") or folder.name))
    splits = _ordered_splits(build)
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
                path = _local(folder, rel)
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
        tags.append(_safe_name(str(recipe["text_format"])))
    langs = languages or sorted({p for c in recipe.get("languages") or [] if (p := _primary(str(c)))}) or ["en"]
    meta = {
        "license": licenses[0] if len(licenses) == 1 else "other",
        "language": langs,
        "pretty_name": f"chatdata {name}",
        "size_categories": [size_category(rows)],
        "task_categories": ["text-generation"],
        "source_datasets": _all_source_datasets(build),
        "tags": tags,
        "configs": configs,
        "dataset_info": infos,
    }
    if not meta["source_datasets"]:
        del meta["source_datasets"]  # no Hub dataset to name (the files are in the fingerprint)
    return meta


# ------------------------------------------------------------------------------------------------ data stats


def _dialogue_exprs(schema: pa.Schema) -> list[pl.Expr]:
    names = set(schema.names)
    exprs: list[pl.Expr] = []
    conv = next((c for c in ("messages", "chosen") if c in names), None)
    if conv is not None:
        exprs += [
            pl.col(conv).list.len().cast(pl.Int64).alias("turns"),
            pl.col(conv)
            .list.eval(pl.element().struct.field("content").str.len_chars())
            .list.sum()
            .cast(pl.Int64)
            .alias("chars"),
        ]
    elif "text" in names:
        turns = pl.col("text").str.count_matches(r"### (?:Human|Assistant):").cast(pl.Int64)
        exprs += [
            pl.when(turns > 0).then(turns).alias("turns"),
            pl.col("text").str.len_chars().cast(pl.Int64).alias("chars"),
        ]
    if "n_tokens" in names:
        exprs.append(pl.col("n_tokens").cast(pl.Int64).alias("tokens"))
    for col, dtype in (
        ("lang", pl.String),
        ("lang_detected", pl.String),
        ("lang_score", pl.Float64),
        ("lang_source", pl.String),
        ("score_chosen", pl.Float64),
        ("score_rejected", pl.Float64),
    ):
        if col in names:
            exprs.append(pl.col(col).cast(dtype))
    for col in ("matched_phrases", "contamination"):
        if col in names:
            exprs.append(pl.col(col).cast(pl.List(pl.String)))
    return exprs


def _needed(schema: pa.Schema) -> tuple[list[pl.Expr], list[str]]:
    exprs = _dialogue_exprs(schema)
    return exprs, sorted({c for e in exprs for c in e.meta.root_names()})


def table_stats(table: pa.Table | pa.RecordBatch, split: str) -> pl.DataFrame:
    """The stats rows (see :func:`load_rows`) of a table of ``split`` as it is written: the writer collects them
    while writing, so the card never reads the data back."""
    exprs, needed = _needed(table.schema)
    if needed:
        frame = pl.from_arrow(table.select(needed))
        assert isinstance(frame, pl.DataFrame)
    else:
        frame = pl.DataFrame({"_": pl.Series([None] * table.num_rows, dtype=pl.Null)})
    return frame.with_columns(pl.lit(split).alias("split")).select("split", *exprs)


def stats_rows(frames: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """Stats rows of several tables as one frame (empty when there are none)."""
    frames = list(frames)
    if not frames:
        return pl.DataFrame({"split": []}, schema={"split": pl.String})
    return pl.concat(frames, how="diagonal_relaxed")


def load_rows(folder: Path, splits: Iterable[SplitFiles]) -> pl.DataFrame:
    """One row per published row of the given splits: ``split`` plus the stats columns that exist (``turns``,
    ``chars``, ``tokens``, ``lang``, ``lang_detected``, ``lang_score``, ``lang_source``, ``matched_phrases``,
    ``score_chosen``, ``score_rejected``), read back from a folder's files (a build collects them as it writes)."""
    frames = []
    for sf in splits:
        for rel in sf.paths:
            path = _local(folder, rel)
            exprs, needed = _needed(pq.read_schema(path))
            if not needed:
                frame = pl.DataFrame({"_": pl.Series([None] * pq.read_metadata(path).num_rows, dtype=pl.Null)})
                frames.append(frame.with_columns(pl.lit(sf.split).alias("split")).select("split", *exprs))
                continue
            # batch by batch: only the small stats columns of a whole file are ever held
            for batch in pq.ParquetFile(path).iter_batches(batch_size=50_000, columns=needed):
                frames.append(table_stats(batch, sf.split))
    return stats_rows(frames)


def _describe(s: pl.Series) -> dict[str, float | int] | None:
    s = s.drop_nulls()
    if not s.len():
        return None
    return {
        "mean": float(s.mean()),
        "p50": int(s.quantile(0.5, "nearest")),
        "p95": int(s.quantile(0.95, "nearest")),
        "max": int(s.max()),
        "total": int(s.sum()),
    }


def length_stats(rows: pl.DataFrame, split_order: list[str]) -> list[dict[str, Any]]:
    """Per split: rows and turns/chars/tokens summaries (mean, p50, p95, max, total)."""
    out = []
    for split in split_order:
        part = rows.filter(pl.col("split") == split)
        entry: dict[str, Any] = {"split": split, "rows": part.height}
        for col in ("turns", "chars", "tokens"):
            entry[col] = _describe(part.get_column(col)) if col in part.columns else None
        out.append(entry)
    return out


def _count_table(rows: pl.DataFrame, col: str, split_order: list[str]) -> list[dict[str, Any]]:
    counts = rows.select("split", pl.col(col).fill_null("(none)").alias("value")).group_by("value", "split").len()
    totals = (
        counts.group_by("value")
        .agg(pl.col("len").sum().alias("total"))
        .sort(["total", "value"], descending=[True, False])
    )
    per = {(v, s): n for v, s, n in counts.iter_rows()}
    grand = max(rows.height, 1)
    return [
        {"value": v, "splits": [per.get((v, s), 0) for s in split_order], "total": t, "share": t / grand}
        for v, t in totals.iter_rows()
    ]


def language_stats(rows: pl.DataFrame, split_order: list[str]) -> dict[str, Any] | None:
    """Rows per ``lang`` and ``lang_detected`` (per split), agreement, score quantiles, score sources."""
    if "lang" not in rows.columns and "lang_detected" not in rows.columns:
        return None
    out: dict[str, Any] = {"field": None, "detected": None, "agreement": None, "score": None, "source": None}
    if "lang" in rows.columns:
        out["field"] = _count_table(rows, "lang", split_order)
    if "lang_detected" in rows.columns:
        out["detected"] = _count_table(rows, "lang_detected", split_order)
        if "lang" in rows.columns:
            both = rows.select(
                pl.col("lang").str.to_lowercase().str.replace(r"[-_].*$", ""),
                pl.col("lang_detected").str.to_lowercase().str.replace(r"[-_].*$", ""),
            ).drop_nulls()
            if both.height:
                out["agreement"] = {
                    "rows": both.height,
                    "same": int((both["lang"] == both["lang_detected"]).sum()),
                }
    if "lang_score" in rows.columns:
        s = rows.get_column("lang_score").drop_nulls()
        if s.len():
            out["score"] = {
                "rows": s.len(),
                "null": rows.height - s.len(),
                **{f"p{q}": float(s.quantile(q / 100, "nearest")) for q in (5, 25, 50, 75, 95)},
                "mean": float(s.mean()),
            }
    if "lang_source" in rows.columns:
        out["source"] = _count_table(rows, "lang_source", split_order)
    return out


def language_codes(rows: pl.DataFrame) -> list[str]:
    """ISO 639 primary subtags of the published rows' oasst ``lang`` (e.g. ``pt-BR`` -> ``pt``), sorted."""
    if "lang" not in rows.columns:
        return []
    return sorted({p for v in rows.get_column("lang").drop_nulls().unique().to_list() if (p := _primary(v))})


def _filter_names(build: Mapping[str, Any], *kinds: str) -> list[str]:
    return sorted(
        {
            str(f.get("name"))
            for f in build.get("filters") or []
            if any(k in str(f.get("filter", "")).lower() for k in kinds)
        }
    )


#: reject columns the card summarises (``payload`` is read only for the phrase filters' rows)
REJECT_COLUMNS = ("stage", "filter", "reason", "evidence")


def _reject_paths(folder: Path, splits: list[SplitFiles]) -> list[Path]:
    return [_local(folder, p) for s in splits if s.config == "rejects" for p in s.paths]


def _scan_rejects(paths: Iterable[Path], columns: Iterable[str]) -> pl.LazyFrame:
    """The rejects files as one lazy frame of ``columns`` cast to strings, in file order (a column missing
    from a file is null there)."""
    columns = list(columns)
    frames = []
    for path in paths:
        missing = [c for c in columns if c not in pq.read_schema(path).names]
        frames.append(
            pl.scan_parquet(path)
            .with_columns(pl.lit(None, pl.String).alias(c) for c in missing)
            .select(pl.col(c).cast(pl.String) for c in columns)
        )
    if not frames:
        return pl.LazyFrame(schema=dict.fromkeys(columns, pl.String))
    return pl.concat(frames, how="vertical")


def _rejects(paths: list[Path]) -> pl.LazyFrame | None:
    """The small columns of the rejects table (:data:`REJECT_COLUMNS`, strings), never the payloads; lazy, so
    the summaries below stream over it instead of holding it."""
    if not paths:
        return None
    return _scan_rejects(paths, REJECT_COLUMNS)


RejectFrames = pl.DataFrame | pl.LazyFrame | Iterable[pl.DataFrame | pl.LazyFrame]


def reject_summary(rejects: RejectFrames) -> list[dict[str, Any]]:
    """Rejects per stage, filter and reason, with the first evidence (file order) as an example.

    ``rejects`` may be one frame or the rejects files' frames in order: each is summarised alone and the partial
    summaries are combined, so memory is bounded by one file whatever the size of the table."""
    keys = ["stage", "filter", "reason"]
    parts = [rejects] if isinstance(rejects, (pl.DataFrame, pl.LazyFrame)) else rejects
    summary: pl.DataFrame | None = None
    offset = 0
    for part in parts:
        frame = part.collect() if isinstance(part, pl.LazyFrame) else part
        numbered = frame.select(*keys, "evidence").with_row_index("_i", offset=offset)
        offset += frame.height
        del frame
        partial = numbered.group_by(keys).agg(
            pl.len().alias("rows"),
            pl.col("_i").filter(pl.col("evidence").is_not_null()).min().alias("_first"),
            pl.col("evidence").sort_by("_i").drop_nulls().first().alias("example"),
        )
        if summary is not None:
            partial = (
                pl.concat([summary, partial])
                .group_by(keys)
                .agg(
                    pl.col("rows").sum(),
                    pl.col("_first").min(),
                    pl.col("example").sort_by("_first", nulls_last=True).drop_nulls().first(),
                )
            )
        summary = partial
    if summary is None or summary.is_empty():
        return []
    grouped = summary.select(*keys, "rows", "example").sort(
        ["rows", "stage", "filter", "reason"], descending=[True, False, False, False], nulls_last=True
    )
    return grouped.to_dicts()


def phrase_stats(build: Mapping[str, Any], rows: pl.DataFrame, reject_paths: Iterable[Path]) -> dict[str, Any] | None:
    """Most frequent matched phrases: in dropped dialogues (``matched_phrases`` inside the payload of the
    phrase filters' rejects, read lazily from ``reject_paths`` for those rows only) and in published rows (a
    ``matched_phrases`` column), counting each phrase once per row."""
    names = _filter_names(build, "uncensor", "phrase")
    kept_col = "matched_phrases" in rows.columns
    if not names and not kept_col:
        return None
    dropped = pl.DataFrame(schema={"m": pl.List(pl.String)})
    by_filter: list[tuple[str, int]] = []
    reject_paths = list(reject_paths)
    if reject_paths and names:
        mine = (
            _scan_rejects(reject_paths, ("filter", "payload"))
            .filter(pl.col("filter").is_in(names))
            .select(
                "filter",
                pl.col("payload")
                .str.json_path_match("$.matched_phrases")
                .str.json_decode(pl.List(pl.String))
                .alias("m"),
            )
            .collect(engine="streaming")  # payloads pass through in morsels, only the phrase rows stay
        )
        by_filter = sorted(((str(f), n) for f, n in mine.group_by("filter").len().iter_rows()), key=lambda x: x[0])
        dropped = mine.select("m")
    kept = rows.select(pl.col("matched_phrases").alias("m")) if kept_col else dropped.head(0)

    def counts(frame: pl.DataFrame) -> dict[str, int]:
        c = frame.select(pl.col("m").list.unique()).explode("m").drop_nulls().group_by("m").len()
        return dict(c.iter_rows())

    d, k = counts(dropped), counts(kept)
    order = sorted(set(d) | set(k), key=lambda p: (-d.get(p, 0), -k.get(p, 0), p))[:TOP_N]
    n_dropped = dropped.height
    kept_matching = int(kept.select(pl.col("m").list.len().fill_null(0) > 0).to_series().sum()) if kept_col else None
    specs = [f for f in build.get("filters") or [] if f.get("name") in names]
    return {
        "filters": names,
        "by_filter": by_filter,
        "dropped_rows": n_dropped,
        "kept_matching": kept_matching,
        "distinct": len(set(d) | set(k)),
        "top": [
            {
                "phrase": p,
                "dropped": d.get(p, 0),
                "kept": k.get(p, 0),
                "share": d.get(p, 0) / n_dropped if n_dropped else 0.0,
            }
            for p in order
        ],
        "scope": [
            {
                "name": f.get("name"),
                "roles": (f.get("settings") or {}).get("roles"),
                "join_turns": (f.get("settings") or {}).get("join_turns"),
            }
            for f in specs
        ],
    }


def decontamination_stats(
    build: Mapping[str, Any], rows: pl.DataFrame, rejects: pl.DataFrame | pl.LazyFrame | None
) -> dict[str, Any] | None:
    """Rows dropped by decontamination filters (or stages), by reason and by benchmark item named in evidence,
    and published rows still flagged in a ``contamination`` column."""
    names = set(_filter_names(build, "decontam"))
    if rejects is not None:
        filters = rejects.lazy().select(pl.col("filter").drop_nulls().unique()).collect(engine="streaming")
        names |= {str(f) for f in filters.to_series().to_list() if "decontam" in f.lower()}
    stages = [r for r in build.get("ledger") or [] if "decontam" in str(r.get("stage", "")).lower()]
    record = _find(build, DECONTAM_KEYS)
    declared = bool((build.get("recipe") or {}).get("decontaminate"))
    flagged_col = "contamination" in rows.columns
    if not (names or stages or record is not None or declared or flagged_col):
        return None
    mine = pl.DataFrame(schema={"reason": pl.String, "evidence": pl.String})
    if rejects is not None:
        mine = (
            rejects.lazy()
            .filter(pl.col("filter").is_in(sorted(names)) | pl.col("stage").str.to_lowercase().str.contains("decontam"))
            .select("reason", "evidence")
            .collect(engine="streaming")
        )
    reasons = sorted(((str(r), n) for r, n in mine.group_by("reason").len().iter_rows()), key=lambda x: (-x[1], x[0]))
    items = (
        mine.select(pl.col("evidence").str.extract(r"overlap with (\w+:\S+) «", 1).alias("item"))
        .drop_nulls()
        .group_by("item")
        .len()
        .sort(["len", "item"], descending=[True, False])
    )
    checked = (record or {}).get("benchmarks") if isinstance(record, Mapping) else None
    if checked:
        benchmarks = [
            (
                str(b.get("name")),
                _provenance(b),
                int(b.get("items") or 0),
                sum(int(n) for n in (b.get("removed") or {}).values()),
                ", ".join(f"{k} {int(n):,}" for k, n in sorted((b.get("removed") or {}).items())),
            )
            for b in checked
        ]
    else:
        benchmarks = [
            (str(b), "", 0, int(n), "")
            for b, n in items.select(pl.col("item").str.replace(r":.*$", "").alias("benchmark"), "len")
            .group_by("benchmark")
            .agg(pl.col("len").sum())
            .sort(["len", "benchmark"], descending=[True, False])
            .rows()
        ]
    flagged = None
    if flagged_col:
        flagged = int(rows.select(pl.col("contamination").list.len().fill_null(0) > 0).to_series().sum())
    left_out = list((record or {}).get("left_out") or []) if isinstance(record, Mapping) else []
    return {
        "filters": sorted(names),
        "rows": mine.height,
        "reasons": reasons,
        "top_items": items.head(TOP_N).rows(),
        "benchmarks": benchmarks,
        "left_out": left_out,
        "n": (record or {}).get("n") if isinstance(record, Mapping) else None,
        "flagged": flagged,
    }


def _provenance(b: Mapping[str, Any]) -> str:
    """Where a checked benchmark's items came from, in a few words."""
    sha = str(b.get("sha256") or "")[:12]
    if b.get("source") == "hub":
        return f"Hub {b.get('repo')}@{str(b.get('revision'))[:12]}"
    if b.get("source") == "package":
        return f"package {b.get('package')} (sha256 {sha})"
    return f"file {Path(str(b.get('file'))).name} (sha256 {sha})"


def pair_stats(rows: pl.DataFrame, split_order: list[str]) -> list[dict[str, Any]] | None:
    """Per split with scores: pairs, mean chosen/rejected score, margin mean/min, pairs with margin <= 0."""
    if "score_chosen" not in rows.columns or "score_rejected" not in rows.columns:
        return None
    out = []
    for split in split_order:
        part = rows.filter(pl.col("split") == split).drop_nulls(["score_chosen", "score_rejected"])
        if not part.height:
            continue
        margin = part.get_column("score_chosen") - part.get_column("score_rejected")
        out.append(
            {
                "split": split,
                "pairs": part.height,
                "chosen": float(part["score_chosen"].mean()),
                "rejected": float(part["score_rejected"].mean()),
                "margin": float(margin.mean()),
                "min_margin": float(margin.min()),
                "not_better": int((margin <= 0).sum()),
            }
        )
    return out or None


def _find(build: Mapping[str, Any], keys: Iterable[str]) -> Any:
    notes = build.get("notes") if isinstance(build.get("notes"), Mapping) else {}
    for key in keys:
        if build.get(key) is not None:
            return build[key]
        if notes.get(key) is not None:
            return notes[key]
    return None


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, int | float | str | bool)


def mask_info(build: Mapping[str, Any]) -> dict[str, Any] | None:
    """Label-mask statistics recorded in build.json (``masks``, top level or in ``notes``): the shared
    settings (tokenizer, dialect, convention, max_length) and, per checked column (``messages``, or ``chosen``
    and ``rejected``), the counts, reasons, token stats and tokenizer notes of
    :func:`chatdata.chat.validate.mask_stats`."""
    record = _find(build, MASK_KEYS)
    if record is None:
        return None
    if not isinstance(record, Mapping):
        return {"settings": [], "columns": [], "measures": [], "reasons": [], "notes": [], "record": record}
    record = scrub_paths(record)
    if "rows" in record and "ok" in record:  # one column's stats at the top level
        record = {"messages": record}
    per_column = {str(k): v for k, v in record.items() if isinstance(v, Mapping)}
    columns = sorted(per_column, key=lambda c: (c not in ("messages", "chosen", "rejected"), c))
    shared = {str(k): v for k, v in record.items() if _scalar(v)}
    measures: dict[str, list[Any]] = {}
    for i, col in enumerate(columns):
        stats = per_column[col]
        flat = {str(k): v for k, v in stats.items() if _scalar(v)}
        flat.update({f"tokens {k}": v for k, v in (stats.get("tokens") or {}).items() if _scalar(v)})
        for key, value in flat.items():
            if key in shared and shared[key] == value:
                continue
            if key in ("dialect", "convention", "max_length", "tokenizer") and key not in shared:
                shared[key] = value
                continue
            measures.setdefault(key, [None] * len(columns))[i] = value
    reasons = []
    for col in columns:
        for reason, n in sorted(
            (per_column[col].get("reasons") or {}).items(), key=lambda kv: (-int(kv[1] or 0), kv[0])
        ):
            reasons.append((col, str(reason), n))
    notes = sorted({str(n) for col in columns for n in per_column[col].get("notes") or []})
    rest = {k: v for k, v in record.items() if not _scalar(v) and not isinstance(v, Mapping)}
    return {
        "settings": sorted(shared.items()),
        "columns": columns,
        "measures": sorted(measures.items()),
        "reasons": reasons,
        "notes": notes,
        "record": rest or None,
    }


# ------------------------------------------------------------------------------------------------ funnel


def _fmt_notes(notes: Any) -> str:
    if not isinstance(notes, Mapping) or not notes:
        return ""
    parts = []
    for key in sorted(notes):
        v = notes[key]
        if v is None:
            continue
        if isinstance(v, Mapping):
            inner = ", ".join(f"{k} {_num(v[k])}" for k in sorted(v, key=str))
            parts.append(f"{key}: {inner}")
        else:
            parts.append(f"{key}: {_num(v)}")
    return "; ".join(parts)


def _num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return f"{v:,.0f}" if v == int(v) and abs(v) >= 1000 else f"{v:.4g}"
    return str(v)


def funnel_rows(ledger: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Ledger rows for the funnel table: counts, output label, drops by count then reason, moves, notes."""
    out = []
    for r in ledger:
        rejected = r.get("rejected") or {}
        produced = r.get("produced")
        unit = str(r.get("unit", ""))
        label = f"{int(r['rows_out']):,}"
        if produced is not None:
            label = f"{int(r['rows_out']):,} {unit} → {int(produced):,} {r.get('produced_unit') or unit}"
        out.append(
            {
                "source": r.get("source") or "all sources",
                "stage": r.get("stage"),
                "unit": unit,
                "rows_in": int(r["rows_in"]),
                "out": label,
                "dropped": int(sum(rejected.values())),
                "reasons": sorted(((str(k), int(v)) for k, v in rejected.items()), key=lambda kv: (-kv[1], kv[0])),
                "moved": sorted((str(k), int(v)) for k, v in (r.get("moved") or {}).items()),
                "notes": _fmt_notes(r.get("notes")),
            }
        )
    return out


# ------------------------------------------------------------------------------------------------ rendering


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup):
        return value
    if isinstance(value, bool) or value is None:
        return md_text(value)
    if isinstance(value, int | float):
        return Markup(_num(value))
    return md_text(value)


def _environment() -> Any:
    from chatdata.resources import data_cards_dir

    return _cached_environment(str(data_cards_dir()))


@functools.lru_cache(maxsize=4)
def _cached_environment(templates: str) -> Any:
    """One Jinja environment per template folder, so templates compile once per process."""
    from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined

    env = Environment(
        loader=FileSystemLoader(templates),
        # compiled templates kept in the temp folder, keyed by their source: compiling costs more than rendering
        bytecode_cache=FileSystemBytecodeCache(),
        undefined=StrictUndefined,
        autoescape=False,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.tests["hub_id"] = lambda v: isinstance(v, str) and bool(re.fullmatch(r"[\w.-]+/[\w.-]+", v))
    env.filters.update(
        md=md_text,
        prose=md_prose,
        code=md_code,
        codeblock=code_block,
        link=md_link,
        yaml=lambda obj, lang="yaml": code_block(dump_yaml(obj, sort_keys=True), lang),
        num=lambda v: Markup(_num(v)),
        pct=lambda v: Markup(f"{100 * float(v):.1f}%"),
        bytes=lambda v: Markup(_bytes(int(v))),
        pyrepr=lambda v: Markup(json.dumps(one_line(v), ensure_ascii=False)),
        quoted=lambda v: md_text(json.dumps(one_line(v), ensure_ascii=False)),
        raw=lambda v: Markup(one_line(v)),
    )
    return env


def _bytes(n: int) -> str:
    for div, unit in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n} B"


def _template_name(env: Any, recipe_name: str) -> str:
    name = f"{recipe_name}.md.j2"
    if re.fullmatch(r"[\w-]+", recipe_name) and name in env.list_templates():
        return name
    return "base.md.j2"


def _write_plots(
    folder: Path,
    build: Mapping[str, Any],
    rows: pl.DataFrame,
    langs: dict[str, Any] | None,
    pairs: list[dict[str, Any]] | None,
    split_order: list[str],
) -> dict[str, str | None]:
    from chatdata import plots

    written: dict[str, str | None] = {
        "funnel": None,
        "lengths": None,
        "languages": None,
        "margins": None,
        "changes": None,
    }
    ledger = list(build.get("ledger") or [])
    changes = build.get("changes")
    if isinstance(changes, Mapping) and (changes.get("removed_by_reason") or changes.get("added_by_cause")):
        plots.changes_plot(dict(changes), folder / "changes.png")
        written["changes"] = "changes.png"
    if ledger:
        plots.funnel_plot(ledger, folder / "funnel.png")
        written["funnel"] = "funnel.png"
    if "turns" in rows.columns and rows.get_column("turns").drop_nulls().len():
        cols = [c for c in ("split", "turns", "chars", "tokens") if c in rows.columns]
        plots.lengths_plot(rows.select(cols).filter(pl.col("split").is_in(split_order)), folder / "lengths.png")
        written["lengths"] = "lengths.png"
    if langs is not None:
        sources = {"oasst lang": "lang", "detected": "lang_detected"}
        present = {k: v for k, v in sources.items() if v in rows.columns}
        distinct = {
            _primary(x) or x for v in present.values() for x in rows.get_column(v).drop_nulls().unique().to_list()
        }
        if len(distinct) > 1:
            frames = [
                rows.group_by(
                    pl.col(col).str.to_lowercase().str.replace(r"[-_].*$", "").fill_null("(none)").alias("lang")
                ).agg(pl.len().alias(label))
                for label, col in present.items()
            ]
            counts = frames[0]
            for extra in frames[1:]:
                counts = counts.join(extra, on="lang", how="full", coalesce=True)
            counts = counts.fill_null(0).sort("lang")
            plots.languages_plot(counts, folder / "languages.png")
            written["languages"] = "languages.png"
    margins = rows.select(pl.col("score_chosen") - pl.col("score_rejected")) if pairs else None
    if margins is not None and margins.to_series().drop_nulls().n_unique() > 1:
        plots.margins_plot(rows.select("split", "score_chosen", "score_rejected"), folder / "margins.png")
        written["margins"] = "margins.png"
    for name in PLOT_FILES:
        if name not in written.values() and (folder / name).is_file():
            (folder / name).unlink()
    return written


def card_context(
    build: Mapping[str, Any],
    folder: Path,
    *,
    repo_id: str | None = None,
    plots: bool = True,
    rows: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Everything the templates print, computed from ``build`` and the files in ``folder`` (``rows``: the data's
    stats rows collected while writing it, else read back from the files)."""
    folder = Path(folder)
    recipe = dict(build.get("recipe") or {})
    name = _safe_name(str(recipe.get("name") or folder.name))
    splits = _ordered_splits(build)
    default = [s for s in splits if s.config == "default"]
    split_order = [s.split for s in default]
    if rows is None:
        rows = load_rows(folder, default)
    else:  # in the order of the build's splits, as read back
        order = {s: i for i, s in enumerate(split_order)}
        rows = rows.with_columns(pl.col("split").replace_strict(order, return_dtype=pl.Int64).alias("_o"))
        rows = rows.sort("_o", maintain_order=True).drop("_o")
    reject_paths = _reject_paths(folder, splits)
    rejects = _rejects(reject_paths)
    langs = language_stats(rows, split_order)
    meta = card_metadata(build, folder, languages=language_codes(rows) or None)
    pairs = pair_stats(rows, split_order)
    plot_files = (
        _write_plots(folder, build, rows, langs, pairs, split_order)
        if plots
        else dict.fromkeys(("funnel", "lengths", "languages", "margins"))
    )
    specs_of = recipe.get("sources") or {}
    sources = [_source_context(n, src, specs_of.get(n) or {}) for n, src in _build_sources(build).items()]
    primary = sources[0]
    known = CORE_KEYS | set(MASK_KEYS) | set(DECONTAM_KEYS) | set(LANGUAGE_KEYS) | set(PHRASE_KEYS) | set(PAIR_KEYS)
    notes = build.get("notes")
    extras = [(k, scrub_paths(build[k])) for k in sorted(build) if k not in known]
    if isinstance(notes, Mapping):
        extras += [(f"notes.{k}", scrub_paths(notes[k])) for k in sorted(notes) if k not in known]
    elif notes is not None:
        extras.append(("notes", scrub_paths(notes)))
    outputs = [
        {
            "config": s.config,
            "split": s.split,
            "rows": s.rows,
            "files": list(zip(s.paths, s.bytes, s.sha256, strict=True)),
        }
        for s in splits
    ]
    return {
        "name": name,
        "repo_id": repo_id or f"YOUR_ORG/{name}",
        "repo_id_known": repo_id is not None,
        "recipe": recipe,
        "primary": next(iter((recipe.get("sources") or {}).values()), {}),
        "output": recipe.get("output", "sft"),
        "meta": meta,
        "front_matter": Markup(dump_yaml(meta)),
        "splits": outputs,
        "split_order": split_order,
        "sft_splits": [s for s in split_order if s.endswith("_sft")] or split_order,
        "pref_splits": [s for s in split_order if s.endswith("_prefs")],
        "columns": pq.read_schema(_local(folder, default[0].paths[0])).names if default and default[0].paths else [],
        "funnel": funnel_rows(list(build.get("ledger") or [])),
        "lengths": length_stats(rows, split_order),
        "languages": langs,
        "language_record": scrub_paths(_find(build, LANGUAGE_KEYS)),
        "language_filters": _filter_names(build, "lang"),
        "phrases": phrase_stats(build, rows, reject_paths),
        "phrase_record": scrub_paths(_find(build, PHRASE_KEYS)),
        "decontam": decontamination_stats(build, rows, rejects),
        "changes": build.get("changes") if isinstance(build.get("changes"), Mapping) else None,
        "masks": mask_info(build),
        "pairs": pairs,
        "pair_record": scrub_paths(_find(build, PAIR_KEYS)),
        "rejects": reject_summary(_scan_rejects([p], REJECT_COLUMNS) for p in reject_paths)
        if rejects is not None
        else None,
        "plots": plot_files,
        "filters": scrub_paths(list(build.get("filters") or [])),
        "settings": scrub_paths(build.get("settings") or {}),
        "settings_given": list(build.get("settings_given") or []),
        "settings_sha256": build.get("settings_sha256"),
        "version": build.get("chatdata_version"),
        "source": primary,
        "sources": sources,
        "mixture": mixture_table(build, split_order),
        "extras": extras,
    }


def render_card(
    build: dict[str, Any],
    folder: Path,
    *,
    repo_id: str | None = None,
    plots: bool = True,
    rows: pl.DataFrame | None = None,
) -> str:
    """The README.md text for the dataset folder ``folder`` built as ``build`` (writes the PNG plots too).

    ``repo_id`` (``org/name``) is used in the usage snippets; without it they say ``YOUR_ORG/<recipe>``. ``rows``
    are the data's stats rows when the caller collected them while writing (see :func:`table_stats`).
    """
    ctx = card_context(build, Path(folder), repo_id=repo_id, plots=plots, rows=rows)
    env = _environment()
    text = env.get_template(_template_name(env, ctx["name"])).render(**ctx)
    text = re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n"
    return text


def write_record(folder: Path, build: dict[str, Any], *, rows: pl.DataFrame | None = None) -> None:
    """Write a built folder's record: ``build.json`` (sorted keys, two-space indent) and the card rendered from
    it (with its plots); each file replaced in one rename."""
    import os

    import orjson

    def replace(name: str, data: bytes) -> None:
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)

    replace("build.json", orjson.dumps(build, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    replace("README.md", render_card(build, folder, rows=rows).encode("utf-8"))


#: what records the version a rebuild replaced (``build.json``'s ``changes``, the card's section, its plot)
CHANGES_SECTION = "## Changes since the previous version"


def without_changes(name: str, data: bytes) -> bytes | None:
    """A built folder's file ``name`` (its path in the folder) less the record of the version a rebuild
    replaced, so a rebuild in place compares with a fresh build: ``build.json`` without ``changes``
    (re-serialised), the card without its section, None for the plot."""
    if name == "changes.png":
        return None
    if name == "build.json":
        record = json.loads(data)
        record.pop("changes", None)
        return json.dumps(record, sort_keys=True).encode()
    if name == "README.md":
        pattern = re.escape(CHANGES_SECTION).encode() + rb"\n.*?(?=\n## )"
        return re.sub(rb"\n{3,}", b"\n\n", re.sub(pattern, b"", data, flags=re.S))
    return data
