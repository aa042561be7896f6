"""Recipes are data: one YAML file each (shipped ones in ``recipes/``, or a user's own file).

A recipe names its **sources** (each with a format, a default Hub id, its own filters and a mixture weight) and
says what to build from them: the output layout (``sft`` messages or ``prefs`` pairs), the split names, the
special-token checks, the rendered text column, the notes for the card. Its declaration is copied into
``build.json`` and the card. A malformed file is one :class:`~chatdata.errors.SpecError` naming the file and key.

Source formats are the families of :data:`chatdata.sources.registry.KINDS`: ``oasst`` (message trees: quality
gates, then ``threads``, ``top_ranked`` paths or preference ``pairs``), ``dolly`` and ``chat`` (one dialogue per
row), ``prefs`` (one preference pair per row).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chatdata.errors import ChatdataError, SpecError
from chatdata.resources import recipes_dir
from chatdata.sources.registry import KINDS
from chatdata.specfiles import read_yaml

#: the dialects whose special strings may not appear inside content (they would forge turns when rendered)
CHECK_DIALECTS = ("starchat", "chatml")
DECONTAM_SPEC = "decontam_humaneval"
FlattenMode = Literal["threads", "top_ranked", "pairs"]


class SourceSpec(BaseModel):
    """One named source of a recipe and what is done to it before it joins the mixture."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = Field("oasst", description="the source's format family (chatdata.sources.registry.KINDS)")
    default: str | None = Field(None, description="Hub dataset id (or path) read when the build does not bind it")
    data_files: tuple[str, ...] = Field((), description="globs relative to the source root; empty: every file")
    gates: tuple[str, ...] = Field(("gates",), description="oasst only: message quality gates (filters/*.yaml)")
    flatten: FlattenMode | None = Field(None, description="oasst only: threads, top_ranked or pairs")
    keep_user_ended: bool = False
    pair_mode: Literal["best_vs_worst", "all_pairs"] = "best_vs_worst"
    filters: tuple[str, ...] = Field((), description="dialogue filters (filters/*.yaml names or paths)")
    weight: float = Field(1.0, gt=0.0, le=1.0, description="share of the source's train rows in the mixture")
    license: str = Field("apache-2.0", description="the source dataset's license (the card lists each)")
    description: str = ""

    @field_validator("format")
    @classmethod
    def _known_format(cls, v: str) -> str:
        if v not in KINDS:
            raise ValueError(f"unknown source format {v!r}; use one of {', '.join(KINDS)}")
        return v

    @property
    def unit(self) -> str:
        return "pairs" if self.format == "prefs" or self.flatten == "pairs" else "dialogues"


class Recipe(BaseModel):
    """What a recipe builds, from which sources (all names refer to ``filters/*.yaml`` specs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][\w.-]*$")
    summary: str
    rebuilds: str
    reference: str = ""
    output: Literal["sft", "prefs"] = "sft"
    sources: dict[str, SourceSpec] = Field(min_length=1)
    decontaminate: bool = True
    decontamination: str = Field(
        DECONTAM_SPEC, description="the decontamination filter spec (which benchmarks; filters/*.yaml or a path)"
    )
    check_dialects: tuple[str, ...] = CHECK_DIALECTS
    text_format: Literal["guanaco"] | None = None
    splits: tuple[str, str] = ("train_sft", "test_sft")
    test_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    mixture_seed: int = Field(42, description="seed of the per-source train fractions (alignment-handbook's)")
    languages: tuple[str, ...] = ("en",)
    card: str | None = Field(None, description="card template in data_cards/ (default: <name>.md.j2 or base)")
    notes: tuple[str, ...] = ()
    path: str | None = Field(None, exclude=True)

    @field_validator("sources")
    @classmethod
    def _source_names(cls, v: dict[str, SourceSpec]) -> dict[str, SourceSpec]:
        for name in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"source name {name!r} must be lowercase letters, digits and _")
        return v

    @field_validator("splits")
    @classmethod
    def _split_names(cls, v: tuple[str, str]) -> tuple[str, str]:
        for name in v:
            if not re.fullmatch(r"\w+(\.\w+)*", name):
                raise ValueError(f"split name {name!r} must match ^\\w+(\\.\\w+)*$ (the Hub's rule)")
        if v[0] == v[1]:
            raise ValueError("the train and test split names must differ")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Recipe:
        for name, s in self.sources.items():
            where = f"sources.{name}"
            if s.format != "oasst" and (s.flatten is not None or s.gates != ("gates",)):
                raise ValueError(f"{where}: flatten and gates apply to oasst sources only")
            if s.format == "oasst" and s.flatten is None:
                raise ValueError(f"{where}.flatten: an oasst source needs threads, top_ranked or pairs")
            makes = s.unit
            if (self.output == "prefs") != (makes == "pairs"):
                raise ValueError(f"{where}: a '{self.output}' recipe cannot take {makes} (format {s.format})")
        if self.text_format and self.output != "sft":
            raise ValueError("text_format applies to sft recipes only")
        return self

    @property
    def unit(self) -> str:
        return "pairs" if self.output == "prefs" else "dialogues"

    @property
    def message_columns(self) -> tuple[str, ...]:
        """The message-list columns a row carries: both sides of a pair, or the dialogue."""
        return ("chosen", "rejected") if self.output == "prefs" else ("messages",)

    @property
    def primary_source(self) -> str:
        """The source a plain ``--source PATH`` binds: the first one declared."""
        return next(iter(self.sources))

    def filter_refs(self, source: str, decontaminate: bool | None = None) -> list[str]:
        """A source's dialogue filters, plus decontamination unless switched off (``decontaminate``)."""
        refs = [self._ref(r) for r in self.sources[source].filters]
        if self.decontaminate if decontaminate is None else decontaminate:
            refs.append(self._ref(self.decontamination))
        return refs

    def gate_refs(self, source: str) -> list[str]:
        spec = self.sources[source]
        return [self._ref(r) for r in spec.gates] if spec.format == "oasst" else []

    def _ref(self, ref: str) -> str:
        """A filter reference: a shipped spec name, or a path (relative to the recipe file when it has one)."""
        if ref.endswith((".yaml", ".yml")) and self.path and not Path(ref).is_absolute():
            candidate = Path(self.path).parent / ref
            if candidate.is_file():
                return str(candidate)
        return ref

    def shard_view(self, source: str) -> dict[str, Any]:
        """What of the recipe shapes one source's shard results (rows, rejects, records): the source's declaration
        but its default, data files, weight, license and description (the partition and the card hold those),
        and the output kind, checked dialects, rendered text and decontamination. Notes, names and split settings
        change no shard result."""
        spec = self.sources[source].model_dump(
            mode="json", exclude={"default", "data_files", "weight", "license", "description"}
        )
        return {
            "source": source,
            "spec": spec,
            "output": self.output,
            "check_dialects": list(self.check_dialects),
            "text_format": self.text_format,
            "decontaminate": self.decontaminate,
            "decontamination": self.decontamination,
        }

    def plan_view(self) -> dict[str, Any]:
        """What of the recipe shapes its split plan: split names, test fraction, mixture seed, sources' weights."""
        return {
            "output": self.output,
            "splits": list(self.splits),
            "test_fraction": self.test_fraction,
            "mixture_seed": self.mixture_seed,
            "weights": [[name, spec.weight] for name, spec in self.sources.items()],
        }

    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump(mode="json")
        d["sources"] = {k: v.model_dump(mode="json") for k, v in self.sources.items()}
        d["source_order"] = list(self.sources)  # build.json sorts its keys; the mixture's order is this
        return d


def _error_line(path: Path, exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "recipe"
    message = first["msg"].removeprefix("Value error, ")
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{path}: {where}: {message}{extra}"


def load_recipe_file(path: str | Path) -> Recipe:
    """Read and check one recipe YAML file; every problem is one line naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: recipe file not found")
    raw = read_yaml(path)
    if not isinstance(raw, Mapping):
        raise SpecError(f"{path}: a recipe is a mapping with at least name, summary, rebuilds and sources")
    try:
        recipe = Recipe(**raw, path=str(path))
    except ValidationError as exc:
        raise SpecError(_error_line(path, exc)) from None
    except TypeError as exc:  # a key that collides with a keyword argument
        raise SpecError(f"{path}: {exc}") from None
    _check_filter_refs(recipe, path)
    return recipe


def _check_filter_refs(recipe: Recipe, path: Path) -> None:
    """Every gate and filter a source names is a shipped spec or an existing file: else one line naming the
    recipe key and the shipped specs."""
    from chatdata.filters.specs import resolve_spec_path
    from chatdata.resources import filters_dir

    for name, spec in recipe.sources.items():
        for key, refs in (("gates", spec.gates if spec.format == "oasst" else ()), ("filters", spec.filters)):
            for ref in refs:
                if not resolve_spec_path(recipe._ref(ref)).is_file():
                    shipped = ", ".join(sorted(p.stem for p in filters_dir().glob("*.yaml")))
                    raise SpecError(
                        f"{path}: sources.{name}.{key}: no filter spec '{ref}'; shipped specs: {shipped}, or a path "
                        "to a spec file of your own (.yaml, relative to the recipe)"
                    )


@functools.cache
def shipped_recipes() -> dict[str, Recipe]:
    """Every recipe in the shipped ``recipes/`` folder, by name (file order)."""
    found: dict[str, Recipe] = {}
    for path in sorted(recipes_dir().glob("*.yaml")):
        recipe = load_recipe_file(path)
        if recipe.name != path.stem:
            raise SpecError(f"{path}: name: '{recipe.name}' must equal the file name '{path.stem}'")
        found[recipe.name] = recipe
    return found


def recipe_ref(recipe: Recipe) -> str:
    """How a task (maybe in another process or machine) finds the recipe again: a shipped recipe by name, a
    user's recipe by its file."""
    shipped = recipe.path is None or Path(recipe.path).resolve().parent == recipes_dir().resolve()
    return recipe.name if shipped else str(recipe.path)


def get_recipe(name: str) -> Recipe:
    """A shipped recipe by name, or a recipe file by path (``path/to/recipe.yaml``)."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return load_recipe_file(name)
    recipes = shipped_recipes()
    try:
        return recipes[name]
    except KeyError:
        raise ChatdataError(
            f"unknown recipe '{name}'; known: {', '.join(recipes)} (see `chatdata recipes`), or give a recipe "
            "file path/to/recipe.yaml"
        ) from None
