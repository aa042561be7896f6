"""Read declarative filter specs from ``filters/*.yaml`` and build filter instances, failing early and clearly."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from chatdata.errors import SpecError
from chatdata.filters.base import REGISTRY, Filter, FilterSpec
from chatdata.resources import filters_dir
from chatdata.specfiles import read_yaml

_KEYS = {"name", "filter", "version", "level", "settings", "description"}


def _spec_from_mapping(raw: Any, path: Path) -> FilterSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: each filter must be a mapping with keys {sorted(_KEYS)}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise SpecError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}")
    for key in ("name", "filter"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise SpecError(f"{path}: every filter needs a non-empty string '{key}'")
    kind = raw["filter"]
    if kind not in REGISTRY:
        raise SpecError(f"{path}: unknown filter '{kind}' in '{raw['name']}'; known: {sorted(REGISTRY)}")
    cls = REGISTRY[kind]
    level = raw.get("level", cls.level)
    if level != cls.level:
        raise SpecError(f"{path}: filter '{kind}' works on {cls.level}s, not {level}s")
    if raw.get("settings") is not None and not isinstance(raw["settings"], dict):
        raise SpecError(f"{path}: 'settings' of '{raw['name']}' must be a mapping")
    version = raw.get("version", 1)
    if not isinstance(version, int):
        raise SpecError(f"{path}: 'version' of '{raw['name']}' must be an integer")
    return FilterSpec(
        name=raw["name"],
        filter=kind,
        version=version,
        level=level,
        settings=raw.get("settings") or {},
        description=str(raw.get("description", "")),
        path=str(path),
    )


def load_spec_file(path: Path) -> list[FilterSpec]:
    """Read one YAML file holding either one filter mapping or ``filters: [mapping, ...]`` (parsed once per
    process and version of the file: every stage of every shard asks for its specs)."""
    if not path.is_file():
        raise SpecError(f"{path}: filter spec file not found")
    stat = path.stat()
    return list(_load_spec_file(path, stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=256)
def _load_spec_file(path: Path, _mtime: int, _size: int) -> tuple[FilterSpec, ...]:
    # importing the filter modules registers their kinds
    import chatdata.filters.registry  # noqa: F401

    raw = read_yaml(path)
    items = raw.get("filters") if isinstance(raw, dict) and "filters" in raw else [raw]
    if not isinstance(items, list) or not items:
        raise SpecError(f"{path}: 'filters' must be a non-empty list")
    specs = [_spec_from_mapping(item, path) for item in items]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SpecError(f"{path}: duplicate filter names {names}")
    return tuple(specs)


def resolve_spec_path(ref: str) -> Path:
    """``english`` -> ``filters/english.yaml``; an existing path is used as it is."""
    p = Path(ref)
    if p.suffix in {".yaml", ".yml"} and p.is_file():
        return p
    return filters_dir() / f"{ref}.yaml"


def load_specs(refs: list[str]) -> list[FilterSpec]:
    specs: list[FilterSpec] = []
    for ref in refs:
        specs.extend(load_spec_file(resolve_spec_path(ref)))
    return specs


def build_filters(specs: list[FilterSpec], level: str | None = None) -> list[Filter]:
    """The filters of ``specs``; with ``level``, a spec of another level (a message gate listed among a source's
    dialogue ``filters``, or the reverse) is a :class:`SpecError` saying where it belongs."""
    import chatdata.filters.registry  # noqa: F401

    for s in specs:
        if level is not None and s.level != level:
            belongs = "gates" if s.level == "message" else "filters"
            raise SpecError(
                f"{s.path or s.name}: filter '{s.name}' works on {s.level}s: list it under a source's {belongs}, "
                f"not its {'filters' if belongs == 'gates' else 'gates'}"
            )
    return [REGISTRY[s.filter](s) for s in specs]
