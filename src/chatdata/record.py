"""The build record (``build.json``), declared once: written by the write phase, read by the card, ``chatdata
diff`` and the publish guard.

The record carries a ``record_version``. A record without one was written by chatdata 0.1 before the record
had a schema (its mask statistics under ``notes.masks``, its primary source repeated as ``source``): it is read
and upgraded on the fly, so a version published then still diffs and guards. Anything else that does not
match the schema is a :class:`RecordError` with the first problem in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from chatdata.errors import ChatdataError

#: the schema version this chatdata writes
RECORD_VERSION = 1
#: the record's file name in a dataset folder
RECORD_FILE = "build.json"
#: settings of the mask check shared by every checked column (kept once, in :class:`MaskRecord`)
MASK_SETTINGS = ("tokenizer", "dialect", "convention", "max_length")


class RecordError(ChatdataError):
    """A ``build.json`` that is not a chatdata build record."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OutputFile(_Model):
    """One Parquet file of a split, relative to the dataset folder."""

    path: str
    bytes: int
    sha256: str


class SplitOutput(_Model):
    rows: int
    files: list[OutputFile]


class InputFile(_Model):
    """One input file read, with the format it was read in and its records."""

    path: str
    format: str
    records: int
    sha256: str


class SkippedInput(_Model):
    """An input file that was not read, and why."""

    path: str
    reason: str


class SourceRecord(_Model):
    """One recipe source as given, its pinned Hub commit (None for local files) and every file read."""

    spec: str
    revision: str | None = None
    format: str
    weight: float = 1.0
    files: list[InputFile] = Field(default_factory=list)
    skipped: list[SkippedInput] = Field(default_factory=list)


class StageCounts(_Model):
    """One ledger row (:class:`chatdata.ledger.StageRecord`)."""

    stage: str
    unit: str
    rows_in: int
    rows_out: int
    rejected: dict[str, int] = Field(default_factory=dict)
    produced: int | None = None
    produced_unit: str | None = None
    moved: dict[str, int] = Field(default_factory=dict)
    notes: dict[str, Any] = Field(default_factory=dict)
    source: str | None = None


class BenchmarkRecord(_Model):
    """One benchmark decontamination checked against: its provenance, size and the rows it removed per source."""

    name: str
    source: Literal["package", "file", "hub"]
    items: int
    texts: int
    removed: dict[str, int]
    package: str | None = None
    path: str | None = None
    file: str | None = None
    sha256: str | None = None
    repo: str | None = None
    revision: str | None = None
    files: list[str] | None = None

    def provenance(self) -> str:
        """Where the items came from, in a few words."""
        sha = (self.sha256 or "")[:12]
        if self.source == "hub":
            return f"Hub {self.repo}@{(self.revision or '')[:12]}"
        if self.source == "package":
            return f"package {self.package} (sha256 {sha})"
        return f"file {Path(str(self.file)).name} (sha256 {sha})"


class DecontaminationRecord(_Model):
    filter: str
    n: int
    common: int
    benchmarks: list[BenchmarkRecord]
    left_out: list[str] = Field(default_factory=list)


class MixWeight(_Model):
    """A mixture source's weight and its train rows before (``train_rows``) and after (``kept``) the fraction."""

    weight: float
    train_rows: int
    kept: int


class MaskRecord(_Model):
    """The label-mask check: its settings, and per checked column (``messages``, or ``chosen`` and
    ``rejected``) the statistics of :func:`chatdata.chat.validate.mask_stats`."""

    tokenizer: str
    dialect: str
    convention: str
    max_length: int
    columns: dict[str, dict[str, Any]]


class BuildRecord(_Model):
    """What one recipe's build was: its exact recipe, settings and filter specs, every input, the ledger, the
    output files, and the records of the optional stages (mixture, decontamination, masks, changes)."""

    record_version: int = RECORD_VERSION
    chatdata_version: str
    recipe: dict[str, Any]
    settings: dict[str, Any]
    settings_given: list[str] = Field(default_factory=list)
    settings_sha256: str
    sources: dict[str, SourceRecord]
    filters: list[dict[str, Any]]
    ledger: list[StageCounts]
    outputs: dict[str, dict[str, SplitOutput]]
    mix: dict[str, dict[str, int]] | None = None
    weights: dict[str, MixWeight] | None = None
    decontamination: DecontaminationRecord | None = None
    masks: MaskRecord | None = None
    #: what changed since the version this build replaced (``chatdata diff``'s fields), when rows changed
    changes: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return str(self.recipe.get("name") or "")

    def ordered_sources(self) -> dict[str, SourceRecord]:
        """The sources in the recipe's order."""
        order = [n for n in self.recipe.get("source_order") or [] if n in self.sources]
        return {n: self.sources[n] for n in order + [n for n in self.sources if n not in order]}

    def to_json(self) -> bytes:
        """The file's bytes: sorted keys, two-space indent, the absent optional records left out."""
        import orjson

        data = {k: v for k, v in self.model_dump(mode="json").items() if v is not None}
        return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"

    @classmethod
    def parse(cls, data: bytes | str | dict[str, Any], where: str = RECORD_FILE) -> BuildRecord:
        """A record from the file's bytes or its parsed JSON; a record of chatdata 0.1 is upgraded."""
        import orjson

        try:
            raw = orjson.loads(data) if isinstance(data, bytes | str) else dict(data)
        except orjson.JSONDecodeError as exc:
            raise RecordError(f"{where}: not JSON ({exc}); rebuild the folder with `chatdata build`") from None
        if not isinstance(raw, dict):
            raise RecordError(f"{where}: not a JSON object; rebuild the folder with `chatdata build`")
        if "record_version" not in raw:
            raw = _upgrade_unversioned(raw)
        elif raw["record_version"] != RECORD_VERSION:
            raise RecordError(
                f"{where}: record version {raw['record_version']!r}, this chatdata reads {RECORD_VERSION}; "
                "use the chatdata version that wrote it or rebuild"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            at = ".".join(str(p) for p in first["loc"]) or "(top)"
            raise RecordError(f"{where}: {at}: {first['msg']}; not a chatdata build record") from None

    @classmethod
    def read(cls, folder: Path) -> BuildRecord:
        """The record of a dataset folder."""
        path = Path(folder) / RECORD_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise RecordError(f"{folder}: no {RECORD_FILE}, not a dataset chatdata wrote") from None
        return cls.parse(data, str(path))


def mask_record(notes: dict[str, Any]) -> MaskRecord:
    """The record of a mask check from its shared settings and per-column statistics (a column's copy of a shared
    setting is dropped: it repeats it, and a resolved tokenizer path would tie the record to one machine)."""
    settings = {k: notes[k] for k in MASK_SETTINGS}
    columns = {
        str(c): {k: v for k, v in stats.items() if k not in MASK_SETTINGS}
        for c, stats in notes.items()
        if isinstance(stats, dict)
    }
    return MaskRecord(**settings, columns=columns)


def _upgrade_unversioned(raw: dict[str, Any]) -> dict[str, Any]:
    """A chatdata 0.1 record in the version-1 layout."""
    out = {k: v for k, v in raw.items() if k not in ("source", "notes")}
    if not out.get("sources") and isinstance(raw.get("source"), dict):
        out["sources"] = {"oasst": raw["source"]}
    notes = raw.get("notes")
    if isinstance(notes, dict) and isinstance(notes.get("masks"), dict) and notes["masks"]:
        out["masks"] = mask_record(notes["masks"]).model_dump()
    return out
