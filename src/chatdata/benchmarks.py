"""Benchmarks to decontaminate against, declared as data (``benchmarks/*.yaml``) and loaded once per build.

A spec names where a benchmark's items come from (a package that ships them, a file shipped beside the spec, or
a Hub dataset at a pinned revision), which field identifies an item, and which item fields are compared with which
roles of a dialogue. ``--benchmark NAME=PATH`` binds a benchmark to a local file or folder instead (JSON Lines,
JSON or Parquet, told apart by content). :func:`resolve` turns a name into :class:`Items` (texts with their item
ids) and a provenance record for ``build.json``; :func:`chatdata.filters.decontam` matches them.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from chatdata.errors import ChatdataError, SpecError
from chatdata.resources import benchmarks_dir
from chatdata.specfiles import read_yaml

Role = Literal["user", "assistant", "system"]


class BenchmarkError(ChatdataError):
    """A benchmark that was asked for cannot be loaded (one line, naming the benchmark and what to do)."""


class Source(BaseModel):
    """Where a benchmark's items come from: exactly one of ``package``, ``file`` or ``hub``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    package: str | None = Field(None, description="an installed package that ships the items (with `path`)")
    path: str | None = Field(None, description="the items' file inside `package`")
    file: str | None = Field(None, description="a file shipped beside the spec (relative to it)")
    hub: str | None = Field(None, description="a Hub dataset id")
    revision: str | None = Field(None, description="the Hub commit the items are pinned to (40 hex digits)")
    files: tuple[str, ...] = Field((), description="globs of the Hub dataset's files to read (one split)")

    @model_validator(mode="after")
    def _one(self) -> Source:
        given = [k for k in ("package", "file", "hub") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of package, file or hub")
        if self.package and not self.path:
            raise ValueError("a package source needs the `path` of its items file")
        if self.hub and not (self.revision and re.fullmatch(r"[0-9a-f]{40}", self.revision)):
            raise ValueError("a Hub source needs a pinned `revision` (a 40-hex-digit commit)")
        if self.hub and not self.files:
            raise ValueError("a Hub source needs the `files` (globs) of the split to read")
        return self

    def describe(self) -> str:
        if self.package:
            return f"package {self.package} ({self.path})"
        if self.file:
            return f"shipped file {self.file}"
        return f"Hub {self.hub}@{self.revision} ({', '.join(self.files)})"


class Compare(BaseModel):
    """Item fields compared with the turns of some roles (a list field gives one text per element)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fields: tuple[str, ...] = Field(min_length=1)
    roles: tuple[Role, ...] = ("user",)


class BenchmarkSpec(BaseModel):
    """One benchmark, as declared in ``benchmarks/NAME.yaml`` (or a user's spec file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    license: str
    homepage: str = ""
    source: Source
    id: str = Field(description="the item field that identifies an item (e.g. task_id, question_id, key)")
    compare: tuple[Compare, ...] = Field(min_length=1)
    path: str | None = Field(None, exclude=True)


@functools.cache
def known() -> dict[str, Path]:
    """Shipped benchmark specs: name -> file."""
    return {p.stem: p for p in sorted(benchmarks_dir().glob("*.yaml"))}


def load_spec(ref: str) -> BenchmarkSpec:
    """A shipped benchmark's spec by name, or a user's spec file by path."""
    path = Path(ref)
    if path.suffix not in {".yaml", ".yml"} or not path.is_file():
        if ref not in known():
            raise SpecError(
                f"unknown benchmark '{ref}'; known: {', '.join(known())} (see `chatdata benchmarks`), or give a "
                "spec file path/to/benchmark.yaml"
            )
        path = known()[ref]
    return _load_spec(path.resolve(), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _load_spec(path: Path, _mtime: int) -> BenchmarkSpec:
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a benchmark spec is a mapping (name, description, license, source, id, compare)")
    try:
        return BenchmarkSpec(**raw, path=str(path))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "spec"
        raise SpecError(f"{path}: {where}: {err['msg']}") from None


# ------------------------------------------------------------------------------------------------ items


@dataclass(frozen=True, eq=False)
class Items:
    """A benchmark's texts: per compared text its item id and the roles it is compared with. Two are equal when
    their name and :attr:`sha256` are."""

    name: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    roles: tuple[tuple[str, ...], ...]
    items: int
    provenance: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def sha256(self) -> str:
        """What the matches depend on: the texts, their ids and roles."""
        raw = json.dumps([self.name, self.ids, self.texts, self.roles], ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(raw.encode()).hexdigest()

    def __hash__(self) -> int:
        return hash((self.name, self.sha256))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Items) and (self.name, self.sha256) == (other.name, other.sha256)


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON Lines, JSON (an array, or an object holding one) or Parquet file, gzip or not, told
    apart by content; a folder gives every such file in it, in name order."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise BenchmarkError(f"{path}: the folder holds no file")
        return [r for f in files for r in read_records(f)]
    return parse_records(path.read_bytes(), str(path))


def parse_records(data: bytes, where: str) -> list[dict[str, Any]]:
    """:func:`read_records` of bytes (``where`` names them in errors)."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if data[:4] == b"PAR1":
        import io

        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pylist()
    try:
        text = data.decode("utf-8-sig")
        head = text.lstrip()[:1]
        if head == "[":
            rows = json.loads(text)
        elif head == "{":
            lines = [line for line in text.splitlines() if line.strip()]
            try:
                rows = [json.loads(line) for line in lines]
            except json.JSONDecodeError:
                rows = [json.loads(text)]  # one object over several lines
            # one object holding the records, e.g. {"version": 1, "data": [...]}
            lists = [v for v in rows[0].values() if isinstance(v, list)] if len(rows) == 1 else []
            if len(lists) == 1 and lists[0] and all(isinstance(r, dict) for r in lists[0]):
                rows = lists[0]
        else:
            raise BenchmarkError(f"{where}: not JSON Lines, JSON or Parquet")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BenchmarkError(f"{where}: not JSON Lines, JSON or Parquet ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise BenchmarkError(f"{where}: every record must be a JSON object")
    return rows


def items_of(spec: BenchmarkSpec, records: list[dict[str, Any]], provenance: dict[str, Any]) -> Items:
    """The compared texts of ``records`` (one per string, or per element of a list field)."""
    ids: list[str] = []
    texts: list[str] = []
    roles: list[tuple[str, ...]] = []
    where = provenance.get("file") or provenance.get("source", spec.name)
    for n, record in enumerate(records):
        if spec.id not in record or record[spec.id] in (None, ""):
            raise BenchmarkError(f"benchmark {spec.name}: record {n} of {where} has no '{spec.id}' (its item id)")
        item = str(record[spec.id])
        for compare in spec.compare:
            for name in compare.fields:
                if name not in record:
                    raise BenchmarkError(
                        f"benchmark {spec.name}: record {n} of {where} has no field '{name}' (fields: "
                        f"{', '.join(sorted(record))})"
                    )
                value = record[name]
                for text in value if isinstance(value, list) else [value]:
                    if isinstance(text, str) and text.strip():
                        ids.append(item)
                        texts.append(text)
                        roles.append(tuple(compare.roles))
    if not records:
        raise BenchmarkError(f"benchmark {spec.name}: {where} holds no records")
    return Items(spec.name, tuple(ids), tuple(texts), tuple(roles), len(records), provenance)


def _sha256(path: Path) -> str:
    from chatdata.workspace import sha256_file

    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256_file(f).encode())
        return h.hexdigest()
    return sha256_file(path)


def resolve(ref: str, binding: str | None = None, *, local_only: bool = False) -> Items:
    """The items of benchmark ``ref`` (a name or a spec file): from ``binding`` (a local file or folder) when
    given, else from the spec's source (a Hub source from the cache only with ``local_only``). Raises
    :class:`BenchmarkError` with one line on failure."""
    spec = load_spec(ref)
    stat = Path(binding).stat() if binding and Path(binding).exists() else None
    return _resolve(spec, binding, local_only, stat.st_mtime_ns if stat else 0)


@functools.lru_cache(maxsize=32)
def _resolve(spec: BenchmarkSpec, binding: str | None, local_only: bool, _mtime: int) -> Items:
    hint = (
        f"bind a local copy with --benchmark {spec.name}=PATH (JSON Lines, JSON or Parquet), or leave it out with "
        f"--benchmark {spec.name}=skip"
    )
    if binding:
        path = Path(binding).expanduser()
        if not path.exists():
            raise BenchmarkError(f"--benchmark {spec.name}={binding}: no such file or folder")
        records = read_records(path)
        return items_of(spec, records, {"source": "file", "file": str(path), "sha256": _sha256(path)})
    src = spec.source
    if src.package:
        try:
            data = importlib_resources.files(src.package).joinpath(*src.path.split("/")).read_bytes()  # type: ignore[union-attr]
        except (ModuleNotFoundError, FileNotFoundError) as exc:
            raise BenchmarkError(
                f"benchmark {spec.name} needs the `{src.package}` package (pip install it), or {hint}"
            ) from exc
        records = parse_records(data, f"{src.package}/{src.path}")
        provenance = {"source": "package", "package": src.package, "path": src.path}
        return items_of(spec, records, {**provenance, "sha256": hashlib.sha256(data).hexdigest()})
    if src.file:
        path = Path(spec.path or ".").parent / src.file
        if not path.is_file():
            raise BenchmarkError(f"benchmark {spec.name}: its shipped file {path} is missing; reinstall chatdata")
        return items_of(spec, read_records(path), {"source": "file", "file": src.file, "sha256": _sha256(path)})
    from chatdata.hub.client import HubError
    from chatdata.hub.source import download_source

    try:
        folder, commit = download_source(
            src.hub,
            revision=src.revision,
            cache_dir=None,
            patterns=src.files,
            local_only=local_only,
        )
    except HubError as exc:
        raise BenchmarkError(f"benchmark {spec.name}: cannot load {src.hub}@{src.revision} ({exc}); {hint}") from None
    files = sorted({p for pattern in src.files for p in folder.glob(pattern) if p.is_file()})
    if not files:
        raise BenchmarkError(f"benchmark {spec.name}: {src.hub}@{commit} has no files matching {list(src.files)}")
    records = [r for f in files for r in read_records(f)]
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(folder).as_posix().encode() + b"\0" + _sha256(f).encode())
    return items_of(
        spec,
        records,
        {
            "source": "hub",
            "repo": src.hub,
            "revision": commit,
            "files": [f.relative_to(folder).as_posix() for f in files],
            "sha256": h.hexdigest(),
        },
    )


#: ``--benchmark NAME=skip`` leaves NAME out of a build (``build.json`` and the card say so)
SKIP = "skip"


def left_out(binding: str | None) -> bool:
    return binding == SKIP
