"""Every build setting, declared once: type, default, help, command-line flag and the part of the build it shapes.

- :class:`BuildSettings` holds what shapes the outputs. It is recorded in ``build.json`` and keys the caches:
  each field's ``phase`` says which work it changes (``shard``: the per-shard stages; ``plan``: the split plan;
  ``write``: the Parquet files), so a changed split setting re-runs only the plan and the writes.
- :class:`BuildRequest` adds what to build, from where, where to and how to run it. The ``chatdata build``
  options (:mod:`chatdata.cli`), the Prefect flow's parameters (``flows/build.py``) and the ``params`` of
  ``prefect.yaml`` are this model: nothing is declared twice.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from chatdata.errors import ChatdataError

MIB = 1024 * 1024
DEFAULT_SHARD_BYTES = 500 * MIB
Phase = Literal["source", "shard", "plan", "write", "run"]
_DASK_ADDRESS = re.compile(r"^(tcp|tls|ucx|ws|wss|inproc)://\S+$")


@dataclass(frozen=True)
class SettingMeta:
    """Where a setting acts and how the command line spells it. Kept out of the JSON schema (Prefect sends the
    parameter schema to its server, which accepts standard keywords only): pydantic calls it to edit the
    schema, and it edits nothing."""

    phase: Phase
    cli: str | None = None
    scale: int | None = None
    metavar: str | None = None

    def __call__(self, schema: dict[str, Any]) -> None:
        return None


def setting(
    default: Any,
    help: str,
    *,
    phase: Phase,
    cli: str | None = None,
    scale: int | None = None,
    metavar: str | None = None,
    **kw: Any,
) -> Any:
    """A field with its help text and where it acts: ``cli`` overrides the flag (``--name`` by default),
    ``scale`` is the factor between the flag's unit and the field's (MB on the command line, bytes here),
    ``metavar`` names the value in ``--help``."""
    return Field(default, description=help, json_schema_extra=SettingMeta(phase, cli, scale, metavar), **kw)


def meta_of(model: type[BaseModel], name: str) -> SettingMeta:
    extra = model.model_fields[name].json_schema_extra
    return extra if isinstance(extra, SettingMeta) else SettingMeta("run")


def phase_of(model: type[BaseModel], name: str) -> Phase:
    return meta_of(model, name).phase


class BuildSettings(BaseModel):
    """Everything besides the recipe and the source bytes that changes the output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decontaminate: bool | None = setting(
        None,
        "Drop dialogues sharing a 10-word sequence with an item of the benchmarks the recipe checks (HumanEval, or "
        "HumanEval, MBPP, MT-Bench and IFEval for the StarChat mixes; default: the recipe's setting, on).",
        phase="shard",
        cli="--decontaminate/--no-decontaminate",
    )
    benchmark: list[str] = setting(
        [],
        "Read a benchmark's items from a local file or folder (JSON Lines, JSON or Parquet) instead of its declared "
        "source, or leave it out with NAME=skip (said in build.json and on the card); repeatable. `chatdata "
        "benchmarks` lists them.",
        phase="shard",
        cli="--benchmark",
        metavar="NAME=PATH",
    )
    pair_mode: Literal["best_vs_worst", "all_pairs"] | None = setting(
        None, "oasst preference pairs: best_vs_worst (one pair per prompt) or all_pairs.", phase="shard"
    )
    on_special: Literal["reject", "escape"] = setting(
        "reject",
        "Content holding a special-token string (<|end|>, <|im_start|>, ### Human:): reject the dialogue, or escape "
        "it with a zero-width space.",
        phase="shard",
    )
    tokenizer: str | None = setting(
        None,
        "Validate every label mask with this tokenizer (tokenizer.json, a tokenizer folder or a Hub id; "
        "`bundled`: the small demo tokenizer shipped with chatdata).",
        phase="shard",
        metavar="TOKENIZER",
    )
    dialect: Literal["starchat", "chatml", "guanaco", "template"] = setting(
        "starchat", "Chat rendering checked with --tokenizer.", phase="shard"
    )
    mask_convention: Literal["starchat", "content_only"] = setting(
        "starchat",
        "Label masks: starchat (the assistant header, reply, <|end|> and newline are trained) or content_only.",
        phase="shard",
    )
    max_length: int = setting(
        2048, "Training length for --tokenizer; rows with no trained token left are rejected.", phase="shard", ge=8
    )
    test_fraction: float | None = setting(
        None,
        "Share of trees in the test split when the source has no split of its own (default: the recipe's, 0.05).",
        phase="plan",
        ge=0.0,
        lt=1.0,
    )
    split_seed: str = setting("", "Salt of the tree-hash split.", phase="plan")
    leak_policy: Literal["move", "drop"] = setting(
        "move", "Test trees whose first prompt is also in train: move them to train, or drop them.", phase="plan"
    )
    max_shard_bytes: int = setting(
        DEFAULT_SHARD_BYTES, "Largest Parquet file, in MB.", phase="write", cli="--max-shard-size", scale=MIB, gt=0
    )

    @field_validator("benchmark", mode="before")
    @classmethod
    def _benchmark_bindings(cls, v: Any) -> Any:
        """``NAME=PATH`` each, one per benchmark (a plain string is one binding)."""
        values = [v] if isinstance(v, str) else ([] if v is None else list(v))
        names = []
        for value in values:
            name, sep, path = str(value).partition("=")
            if not sep or not name.strip() or not path.strip():
                raise ValueError(
                    f"benchmark {value!r}: expected NAME=PATH (or NAME=skip), e.g. mt_bench=question.jsonl"
                )
            names.append(name.strip())
        if len(set(names)) != len(names):
            raise ValueError(f"a benchmark is bound twice: {values}")
        return values

    def benchmark_bindings(self) -> dict[str, str]:
        """``--benchmark`` as {name: path or 'skip'}."""
        return {k.strip(): v.strip() for k, _, v in (b.partition("=") for b in self.benchmark)}

    def phase_settings(self, *phases: Phase) -> dict[str, Any]:
        """The settings of the given phases (what keys that part of the work)."""
        fields = type(self).model_fields
        names = [n for n in BuildSettings.model_fields if phase_of(BuildSettings, n) in phases and n in fields]
        return {n: getattr(self, n) for n in sorted(names)}

    def output_settings(self) -> dict[str, Any]:
        """Every setting that shapes the outputs, as given (``None``: the recipe decides)."""
        return {n: getattr(self, n) for n in BuildSettings.model_fields}

    def resolved(self, recipe: Any) -> dict[str, Any]:
        """The values the build of ``recipe`` used, as ``build.json`` records them: a setting left to the recipe
        (``None``) shows the recipe's value."""
        values = self.output_settings()
        if values["decontaminate"] is None:
            values["decontaminate"] = recipe.decontaminate
        if values["test_fraction"] is None:
            values["test_fraction"] = recipe.test_fraction
        if values["pair_mode"] is None:
            modes = {s.pair_mode for s in recipe.sources.values() if s.flatten == "pairs"}
            values["pair_mode"] = modes.pop() if len(modes) == 1 else None
        return values

    def settings(self) -> BuildSettings:
        return BuildSettings(**self.output_settings())


class BuildRequest(BuildSettings):
    """A whole build: the settings, the recipes, their sources, the output and how to run and publish it."""

    recipes: list[str] = setting(
        ["oasst_en"],
        "Recipes to build (names from `chatdata recipes`, or recipe files).",
        phase="run",
        cli="argument",
        min_length=1,
    )
    source: list[str] = setting(
        [],
        "Where a recipe's sources come from: PATH_OR_HUB_ID for the recipe's first source, or NAME=PATH_OR_HUB_ID "
        "per named source (repeatable). Default: the bundled sample.",
        phase="source",
        cli="--source",
        metavar="[NAME=]PATH_OR_HUB_ID",
    )
    revision: str | None = setting(None, "Hub revision (branch, tag or commit) to pin Hub sources to.", phase="source")
    format: str | None = setting(
        None, "Read every source file as this format instead of detecting it from its content.", phase="source"
    )
    out: str = setting("out", "Output folder; each recipe goes to OUT/RECIPE.", phase="run", cli="--out", metavar="OUT")
    work: str | None = setting(
        None,
        "Workspace for the cache of partitions and shard results (default OUT/.work).",
        phase="run",
        metavar="WORK",
    )
    shards: int | None = setting(
        None,
        "Tree-shards per source (default: about one per 50k messages, an even number); the output bytes do not "
        "depend on it.",
        phase="run",
        ge=1,
        le=4096,
    )
    workers: int | None = setting(
        None, "Processes running shards at once (default: one per core).", phase="run", ge=1, le=256
    )
    force: bool = setting(False, "Recompute everything instead of reusing the workspace cache.", phase="run")
    overwrite: bool = setting(
        False,
        "Replace an OUT/RECIPE folder (and use a --work folder) that chatdata did not write; by default the build "
        "refuses to touch it.",
        phase="run",
    )
    allow_empty: bool = setting(
        False, "Write a recipe whose outputs hold no row (default: fail, with what removed every row).", phase="run"
    )
    push_to: str | None = setting(
        None,
        "Publish each recipe to this Hub dataset repo ORG/NAME ({recipe} in the name for several).",
        phase="run",
        metavar="ORG/NAME",
    )
    private: bool = setting(False, "Create the Hub repo private (new repos only).", phase="run")
    push_revision: str | None = setting(None, "Hub branch to publish to (default main).", phase="run")
    create_pr: bool = setting(False, "Open a pull request on the Hub instead of committing.", phase="run")
    max_shrink: float = setting(
        0.5,
        "Refuse to publish a dataset with fewer rows than this fraction below the published one.",
        phase="run",
        ge=0.0,
        le=1.0,
    )
    force_publish: bool = setting(
        False, "Publish even an empty or shrunken dataset (overrides --max-shrink).", phase="run"
    )
    dask_address: str | None = setting(
        None,
        "Run the build as Prefect tasks on this Dask scheduler (tcp://HOST:8786); implies --engine prefect.",
        phase="run",
        metavar="tcp://HOST:PORT",
    )

    engine: Literal["local", "prefect"] | None = setting(
        None,
        "local: worker processes on this machine, no server (the default); prefect: a Prefect flow run (the default "
        "when PREFECT_API_URL or --dask-address is set; without PREFECT_API_URL a temporary server runs for the "
        "build), on Dask with --dask-address.",
        phase="run",
    )

    def chosen_engine(self) -> Literal["local", "prefect"]:
        """The engine this request runs on: as given, else Prefect when a Prefect API or a Dask scheduler is set."""
        if self.engine is not None:
            return self.engine
        return "prefect" if os.environ.get("PREFECT_API_URL") or self.dask_address else "local"

    @field_validator("engine")
    @classmethod
    def _engine_runs_dask(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v == "local" and info.data.get("dask_address"):
            raise ValueError("--dask-address runs on Prefect's Dask task runner: drop --engine local")
        return v

    @field_validator("recipes")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        from chatdata.recipes import get_recipe

        if len(set(v)) != len(v):
            raise ValueError(f"recipes listed twice: {v}")
        names = [get_recipe(r).name for r in v]
        if len(set(names)) != len(names):
            raise ValueError(f"two recipes share a name: {names}")
        return v

    @field_validator("source", mode="before")
    @classmethod
    def _one_source(cls, v: Any) -> Any:
        """One source may be given as a plain string (as ``prefect.yaml`` params often are)."""
        return [v] if isinstance(v, str) else ([] if v is None else v)

    @field_validator("dask_address")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is not None and not _DASK_ADDRESS.match(v):
            raise ValueError(f"dask_address {v!r} must look like tcp://HOST:PORT (the Dask scheduler)")
        return v

    @field_validator("source")
    @classmethod
    def _bindings(cls, v: list[str], info: ValidationInfo) -> list[str]:
        """Named sources must be sources of the recipes; one unnamed source at most."""
        from chatdata.recipes import get_recipe

        recipes = [get_recipe(r) for r in info.data.get("recipes") or []]
        plain = [s for s in v if "=" not in s or _is_path_like(s)]
        if len(plain) > 1:
            raise ValueError(f"more than one unnamed source {plain}; name them: --source NAME=PATH_OR_HUB_ID")
        known = {name for r in recipes for name in r.sources}
        for entry in v:
            if entry in plain:
                continue
            name, _, value = entry.partition("=")
            if recipes and name not in known:
                names = ", ".join(r.name for r in recipes)
                raise ValueError(f"'{name}' is not a source of {names}; its sources are: {', '.join(sorted(known))}")
            if not value:
                raise ValueError(f"{name}= needs a path or Hub id after '='")
        return v

    @field_validator("push_to")
    @classmethod
    def _push_target(cls, v: str | None, info: ValidationInfo) -> str | None:
        """A valid Hub repo id for every recipe ({recipe} in it for several recipes)."""
        if v is None:
            return v
        from chatdata.hub.client import validate_repo_id
        from chatdata.recipes import get_recipe

        recipes = [get_recipe(r) for r in info.data.get("recipes") or []]
        if len(recipes) > 1 and "{recipe}" not in v:
            raise ValueError("needs a {recipe} placeholder when building several recipes")
        for r in recipes:
            try:
                validate_repo_id(v.replace("{recipe}", r.name))
            except ChatdataError as exc:
                raise ValueError(str(exc)) from None
        return v

    def bindings(self) -> tuple[str | None, dict[str, str]]:
        """The unnamed source (or None) and the named ones."""
        plain = [s for s in self.source if "=" not in s or _is_path_like(s)]
        named = dict(s.partition("=")[::2] for s in self.source if s not in plain)
        return (plain[0] if plain else None), named

    def given_settings(self) -> list[str]:
        """The output settings this request set itself (command-line options, a flow's params); the others are
        defaults or the recipe's."""
        return sorted(n for n in self.model_fields_set if n in BuildSettings.model_fields)

    def work_dir(self) -> str:
        return self.work or f"{self.out.rstrip('/')}/.work"


def _is_path_like(entry: str) -> bool:
    """``--source`` values that hold ``=`` but are not NAME=VALUE (a path such as ``data/a=b.jsonl``)."""
    name = entry.partition("=")[0]
    return not re.fullmatch(r"[a-z][a-z0-9_]*", name)


def flag_of(name: str) -> str:
    """The command-line flag of a :class:`BuildRequest` field."""
    cli = meta_of(BuildRequest, name).cli
    if cli and cli.startswith("--"):
        return cli.split("/")[0]
    return "--" + name.replace("_", "-")


def make_request(*, cli: bool = False, **values: Any) -> BuildRequest:
    """A :class:`BuildRequest`, or a one-line :class:`ChatdataError` naming the bad field (its flag for the CLI)."""
    unknown = sorted(set(values) - set(BuildRequest.model_fields))
    if unknown:
        raise ChatdataError(f"unknown parameter(s) {unknown}; known: {', '.join(BuildRequest.model_fields)}")
    try:
        return BuildRequest(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        field = loc[0] if loc else ""
        where = flag_of(field) if cli and field in BuildRequest.model_fields else ".".join(loc)
        message = first["msg"].removeprefix("Value error, ")
        raise ChatdataError(f"invalid {where}: {message}" if where else f"invalid build settings: {message}") from None
    except ChatdataError as exc:  # a recipe file that cannot be read
        raise ChatdataError(str(exc)) from None
