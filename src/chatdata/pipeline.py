"""The build as a sequence of stages over a file workspace, runnable without any orchestrator.

Each stage reads named Parquet artifacts from the workspace, writes new ones and a ledger record
(``ledger-<stage>.json``). Recipe-independent stages (``ingest``, ``structure``) live in ``work/common``; the rest
in ``work/<recipe>``. Orchestrators (``flows/``) call :func:`run_stage` with paths only, never frames.

Stage contract (what each reads -> writes):

=========== ================================== ===========================================
stage       reads                              writes
=========== ================================== ===========================================
ingest      the source                         messages, rejects-ingest, sources.json
structure   messages                           tree, rejects-structure
gates       tree (common)                      gated, rejects-gates
flatten     gated                              dialogues (or pairs), rejects-flatten
score       dialogues                          scored (score columns added)
filters     scored                             filtered, rejects-filters
render      filtered                           rendered, rejects-render (roles, special tokens, text)
masks       rendered                           masked, rejects-masks (tokenizer label-mask checks)
splits      masked                             final, rejects-splits
write       final + every rejects-*            OUT/<recipe>/ (atomic)
=========== ================================== ===========================================
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from chatdata import __version__
from chatdata.errors import ChatdataError
from chatdata.filters.base import apply_filters
from chatdata.filters.specs import build_filters, load_specs
from chatdata.ingest import SourceFile, read_path
from chatdata.ledger import Ledger, StageRecord
from chatdata.pairs import build_pairs
from chatdata.recipes import DECONTAM_SPEC, Recipe, get_recipe
from chatdata.resources import sample_dir
from chatdata.schema import REJECT_SCHEMA, conform, empty_rejects
from chatdata.splits import assign_splits, dialogue_rejects, reject_where
from chatdata.structure import validate_structure
from chatdata.trees import flatten, gate, reason_counts
from chatdata.writer import DEFAULT_SHARD_BYTES

BUNDLED = "bundled-sample"
COMMON_STAGES = ("ingest", "structure")
RECIPE_STAGES = ("gates", "flatten", "score", "filters", "render", "masks", "splits", "write")
STAGES = COMMON_STAGES + RECIPE_STAGES


@dataclass(frozen=True)
class BuildSettings:
    """Everything that changes the output besides the recipe and the source bytes."""

    source: str | None = None
    revision: str | None = None
    test_fraction: float | None = None
    split_seed: str = ""
    leak_policy: str = "move"
    max_shard_bytes: int = DEFAULT_SHARD_BYTES
    decontaminate: bool | None = None
    pair_mode: str | None = None
    on_special: str = "reject"
    tokenizer: str | None = None
    dialect: str = "starchat"
    mask_convention: str = "starchat"
    max_length: int = 2048

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        """Fail early, with one line, on settings that cannot work."""
        choices = {
            "leak_policy": ("move", "drop"),
            "pair_mode": (None, "best_vs_worst", "all_pairs"),
            "on_special": ("reject", "escape"),
            "dialect": ("starchat", "chatml", "guanaco", "template"),
            "mask_convention": ("starchat", "content_only"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                shown = ", ".join(a for a in allowed if a)
                raise ChatdataError(f"--{name.replace('_', '-')} must be one of: {shown}")
        if self.test_fraction is not None and not 0.0 <= self.test_fraction < 1.0:
            raise ChatdataError("--test-fraction must be in [0, 1)")

    def output_settings(self) -> dict[str, Any]:
        """The settings that shape outputs (the source is fingerprinted by content, not by name)."""
        d = self.to_dict()
        d.pop("source")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BuildSettings:
        return cls(**d)


@dataclass
class Workspace:
    """Where stage artifacts live: ``root/common`` and ``root/<recipe>``."""

    root: Path
    recipe: str

    @property
    def common(self) -> Path:
        return self.root / "common"

    @property
    def own(self) -> Path:
        return self.root / self.recipe

    def dir_for(self, stage: str) -> Path:
        return self.common if stage in COMMON_STAGES else self.own

    def artifact(self, stage_dir: Path, name: str) -> Path:
        return stage_dir / f"{name}.parquet"


def save(frame: pl.DataFrame, path: Path, row_group_size: int | None = None) -> Path:
    """Write a workspace artifact: fast lz4 Parquet (publish-grade zstd + CDC is for outputs only), atomically.
    Small ``row_group_size`` keeps a streaming reader's memory small (a reader holds one row group)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".parquet.tmp")
    frame.write_parquet(tmp, compression="lz4", statistics=False, row_group_size=row_group_size)
    tmp.replace(path)
    _remember(path, frame)
    return path


#: the last few artifacts this process saved, so the next stage in the same process skips reading them back
_RECENT: dict[str, tuple[tuple[int, int], pl.DataFrame]] = {}
_RECENT_MAX = 4


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def _remember(path: Path, frame: pl.DataFrame) -> None:
    key = str(path.resolve())
    _RECENT.pop(key, None)
    _RECENT[key] = (_stamp(path), frame)
    while len(_RECENT) > _RECENT_MAX:
        _RECENT.pop(next(iter(_RECENT)))


def load(path: Path) -> pl.DataFrame:
    """Read a workspace artifact (the frame itself when this process just saved that very file)."""
    hit = _RECENT.get(str(Path(path).resolve()))
    if hit is not None and hit[0] == _stamp(Path(path)):
        return hit[1]
    return pl.read_parquet(path)


def save_record(record: StageRecord, folder: Path) -> Path:
    path = folder / f"ledger-{record.stage}.json"
    path.write_bytes(orjson.dumps(record.to_dict(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return path


def load_record(folder: Path, stage: str) -> StageRecord:
    return StageRecord.from_dict(json.loads((folder / f"ledger-{stage}.json").read_text()))


# ------------------------------------------------------------------------------------------------------- sources


@dataclass
class ResolvedSource:
    path: Path
    spec: str
    revision: str | None = None


def resolve_source(source: str | None, revision: str | None, cache_dir: Path) -> ResolvedSource:
    """A local path, the bundled sample (``None``), or a Hub dataset id (downloaded, pinned to ``revision``)."""
    if source is None or source == BUNDLED:
        return ResolvedSource(sample_dir(), BUNDLED)
    p = Path(source).expanduser()
    if p.exists():
        return ResolvedSource(p, source)
    if _looks_like_repo_id(source):
        from chatdata.hub.source import download_source

        local, sha = download_source(source, revision=revision, cache_dir=cache_dir)
        return ResolvedSource(local, source, sha)
    raise ChatdataError(f"source '{source}' is neither an existing path nor a Hub dataset id like OpenAssistant/oasst1")


def _looks_like_repo_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith((".", "/", "~"))


# --------------------------------------------------------------------------------------------------------- stages


@dataclass
class StageContext:
    ws: Workspace
    recipe: Recipe
    settings: BuildSettings
    out: Path
    extra: dict[str, Any] = field(default_factory=dict)


def sources_info(
    src: ResolvedSource, files: Iterable[SourceFile], skipped: Iterable[Any] | None = None
) -> dict[str, Any]:
    """What ``sources.json`` records: the source as given, its pinned revision, every file with its sha256, and
    every file of the source that was not read (``{"path", "reason"}``). ``skipped`` are the
    :class:`~chatdata.detect.SkippedFile` of the read (``IngestResult.skipped``); when not given they are found
    again from the source folder by content detection (without a format override)."""
    if skipped is None:
        from chatdata.ingest import discover

        skipped = discover(src.path).skipped
    return {
        "spec": src.spec,
        "revision": src.revision,
        "files": [asdict(f) for f in files],
        "skipped": [{"path": s.path, "reason": s.reason} for s in skipped],
    }


def write_sources(info: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sources.json").write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def stage_ingest(ctx: StageContext) -> StageRecord:
    d = ctx.ws.common
    src = resolve_source(ctx.settings.source, ctx.settings.revision, ctx.ws.root / "hub-cache")
    result = read_path(src.path)
    save(result.messages, d / "messages.parquet")
    save(result.rejects, d / "rejects-ingest.parquet")
    write_sources(sources_info(src, result.files), d)
    n_rej = result.rejects.height
    return StageRecord(
        "ingest",
        "records",
        result.messages.height + n_rej,
        result.messages.height,
        reason_counts(result.rejects),
    )


def stage_structure(ctx: StageContext) -> StageRecord:
    d = ctx.ws.common
    shutil.rmtree(d / "memo", ignore_errors=True)  # recipe-stage memos belong to the tree this stage replaces
    messages = load(d / "messages.parquet")
    ingest_rejects = load(d / "rejects-ingest.parquet")
    rejected_ids = ingest_rejects.get_column("message_id").drop_nulls()
    result = validate_structure(messages, rejected_ids)
    save(result.messages, d / "tree.parquet")
    save(result.rejects, d / "rejects-structure.parquet")
    return StageRecord("structure", "messages", messages.height, result.messages.height, reason_counts(result.rejects))


def _memo_key(*parts: Any) -> str:
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def _memoised(
    ctx: StageContext, name: str, key: str, files: tuple[str, ...], run: Callable[[], StageRecord]
) -> StageRecord:
    """Recipes that share a stage's inputs and settings share its outputs within one common tree.

    The memo lives in ``common/memo`` and is cleared whenever the ``structure`` stage rebuilds the tree, so it never
    outlives the input it was computed from. Files are hard-linked (artifacts are replaced by rename, never rewritten
    in place, so a link cannot change under a reader).
    """
    memo = ctx.ws.common / "memo" / f"{name}-{key}"
    if (memo / "record.json").is_file():
        for f in files:
            target = ctx.ws.own / f
            target.unlink(missing_ok=True)
            try:
                os.link(memo / f, target)
            except OSError:
                shutil.copyfile(memo / f, target)
        return StageRecord.from_dict(json.loads((memo / "record.json").read_text()))
    record = run()
    tmp = memo.with_name(memo.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in files:
        shutil.copyfile(ctx.ws.own / f, tmp / f)
    (tmp / "record.json").write_bytes(orjson.dumps(record.to_dict()))
    shutil.rmtree(memo, ignore_errors=True)
    tmp.rename(memo)
    return record


def _gates_key(ctx: StageContext) -> str:
    return _memo_key([s.to_dict() for s in load_specs(list(ctx.recipe.gates))])


def stage_gates(ctx: StageContext) -> StageRecord:
    def run() -> StageRecord:
        tree = load(ctx.ws.common / "tree.parquet")
        result = gate(tree, build_filters(load_specs(list(ctx.recipe.gates))))
        save(result.frame, ctx.ws.own / "gated.parquet")
        save(result.rejects, ctx.ws.own / "rejects-gates.parquet")
        return StageRecord("gates", "messages", tree.height, result.frame.height, result.counts)

    return _memoised(ctx, "gates", _gates_key(ctx), ("gated.parquet", "rejects-gates.parquet"), run)


def stage_flatten(ctx: StageContext) -> StageRecord:
    r = ctx.recipe
    how = (r.flatten, r.keep_user_ended, (ctx.settings.pair_mode or r.pair_mode) if r.flatten == "pairs" else None)
    key = _memo_key(_gates_key(ctx), how)
    return _memoised(ctx, "flatten", key, ("dialogues.parquet", "rejects-flatten.parquet"), lambda: _flatten(ctx))


def _flatten(ctx: StageContext) -> StageRecord:
    gated = load(ctx.ws.own / "gated.parquet")
    r = ctx.recipe
    if r.flatten == "pairs":
        result = build_pairs(gated, (ctx.settings.pair_mode or r.pair_mode))  # type: ignore[arg-type]
    else:
        result = flatten(gated, r.flatten, keep_user_ended=r.keep_user_ended)
    save(result.frame, ctx.ws.own / "dialogues.parquet")
    save(result.rejects, ctx.ws.own / "rejects-flatten.parquet")
    used = gated.height - result.rejects.height
    unit = _unit(ctx)
    notes = per_tree_notes(unit, result.frame.group_by("message_tree_id").len().get_column("len"))
    return StageRecord(
        "flatten",
        "messages",
        gated.height,
        used,
        result.counts,
        produced=result.frame.height,
        produced_unit=unit,
        notes=notes,
    )


def per_tree_notes(unit: str, per_tree: pl.Series) -> dict[str, Any]:
    """The flatten record's notes: how many dialogues (or pairs) each tree gave."""
    return {f"{unit}_per_tree": _describe(per_tree)} if per_tree.len() else {}


def _unit(ctx: StageContext) -> str:
    return "pairs" if ctx.recipe.output == "prefs" else "dialogues"


def dialogue_filter_refs(recipe: Recipe, settings: BuildSettings) -> list[str]:
    """The recipe's dialogue filters plus decontamination unless switched off."""
    refs = list(recipe.dialogue_filters)
    decontaminate = recipe.decontaminate if settings.decontaminate is None else settings.decontaminate
    if decontaminate:
        refs.append(DECONTAM_SPEC)
    return refs


def _dialogue_filters(ctx: StageContext) -> list[Any]:
    return build_filters(load_specs(dialogue_filter_refs(ctx.recipe, ctx.settings)))


def stage_score(ctx: StageContext) -> StageRecord:
    dialogues = load(ctx.ws.own / "dialogues.parquet")
    scored = dialogues
    for f in _dialogue_filters(ctx):
        scored = f.score(scored)
    save(scored, ctx.ws.own / "scored.parquet")
    return StageRecord("score", _unit(ctx), dialogues.height, scored.height)


def stage_filters(ctx: StageContext) -> StageRecord:
    scored = load(ctx.ws.own / "scored.parquet")
    outcome = apply_filters(scored, _dialogue_filters(ctx), score=False)
    rejects = dialogue_rejects(
        outcome.dropped,
        stage="filters",
        reason=pl.col("reject_reason"),
        evidence=pl.col("reject_evidence"),
        filter_name=pl.col("reject_filter"),
    )
    save(outcome.kept, ctx.ws.own / "filtered.parquet")
    save(rejects, ctx.ws.own / "rejects-filters.parquet")
    return StageRecord("filters", _unit(ctx), scored.height, outcome.kept.height, outcome.counts)


def stage_render(ctx: StageContext) -> StageRecord:
    """Reject dialogues that break the role order or hold a special-token string of any checked dialect; add
    the recipe's rendered ``text`` column (guanaco)."""
    from chatdata.chat.dialects import check_dialogues, render_batch

    frame = load(ctx.ws.own / "filtered.parquet")
    r = ctx.recipe
    on_special = ctx.settings.on_special
    found = [
        pl.lit(check_dialogues(frame.get_column(column), dialect, on_special)).pipe(  # type: ignore[arg-type]
            lambda e, d=dialect, c=column: pl.when(e.is_not_null()).then(
                pl.format("{} [{} in {}]", e, pl.lit(d), pl.lit(c))
            )
        )
        for column in r.message_columns
        for dialect in r.check_dialects
    ]
    good, rejects = reject_where(frame, pl.coalesce(found) if found else pl.lit(None, pl.String), stage="render")
    if r.text_format and good.height:
        good = good.with_columns(render_batch(good.get_column("messages"), r.text_format, on_special).alias("text"))  # type: ignore[arg-type]
    elif r.text_format:
        good = good.with_columns(pl.lit(None, pl.String).alias("text"))
    save(good, ctx.ws.own / "rendered.parquet")
    save(rejects, ctx.ws.own / "rejects-render.parquet")
    return StageRecord("render", _unit(ctx), frame.height, good.height, reason_counts(rejects))


def stage_masks(ctx: StageContext) -> StageRecord:
    """With ``--tokenizer``: render, tokenize and validate every label mask; without: pass rows through."""
    frame = load(ctx.ws.own / "rendered.parquet")
    if not ctx.settings.tokenizer:
        (ctx.ws.own / "notes.json").unlink(missing_ok=True)
        save(frame, ctx.ws.own / "masked.parquet")
        save(empty_rejects(), ctx.ws.own / "rejects-masks.parquet")
        return StageRecord("masks", _unit(ctx), frame.height, frame.height, notes={"tokenizer": None})
    from chatdata.mask_stage import run_mask_stage

    return run_mask_stage(ctx, frame)


def stage_splits(ctx: StageContext) -> StageRecord:
    filtered = load(ctx.ws.own / "masked.parquet")
    result = assign_splits(
        filtered, **split_options(ctx.recipe, ctx.settings), dedupe_columns=dedupe_columns(ctx.recipe)
    )
    save(result.frame, ctx.ws.own / "final.parquet")
    save(result.rejects, ctx.ws.own / "rejects-splits.parquet")
    return splits_record(_unit(ctx), filtered.height, result.frame.height, result.counts, result.moved)


def split_options(recipe: Recipe, settings: BuildSettings) -> dict[str, Any]:
    """The split plan's settings for a recipe: its split names, the test fraction (the recipe's unless set), the
    seed and the leak policy."""
    tf = settings.test_fraction if settings.test_fraction is not None else recipe.test_fraction
    return {
        "names": recipe.splits,
        "test_fraction": tf,
        "seed": settings.split_seed,
        "leak_policy": settings.leak_policy,
    }


def dedupe_columns(recipe: Recipe) -> tuple[str, ...]:
    """The columns whose roles and contents make two rows duplicates."""
    return ("chosen", "rejected") if recipe.output == "prefs" else ("messages",)


def splits_record(unit: str, rows_in: int, rows_out: int, counts: dict[str, int], moved: int) -> StageRecord:
    return StageRecord(
        "splits", unit, rows_in, rows_out, counts,
        moved={"cross_split_prompt_moved_to_train": moved} if moved else {},
    )  # fmt: skip


def stage_write(ctx: StageContext) -> StageRecord:
    from chatdata.output import write_dataset

    return write_dataset(ctx)


STAGE_FUNCS: dict[str, Callable[[StageContext], StageRecord]] = {
    "ingest": stage_ingest,
    "structure": stage_structure,
    "gates": stage_gates,
    "flatten": stage_flatten,
    "score": stage_score,
    "filters": stage_filters,
    "render": stage_render,
    "masks": stage_masks,
    "splits": stage_splits,
    "write": stage_write,
}

LEDGER_STAGES = ("ingest", "structure", "gates", "flatten", "score", "filters", "render", "masks", "splits")

#: What each stage reads and writes, as paths relative to the workspace root (``{r}`` = the recipe's folder).
#: ``ingest`` reads the source, fingerprinted separately (``sources.json`` records its files' sha256).
STAGE_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ingest": ((), ("common/messages.parquet", "common/rejects-ingest.parquet", "common/sources.json")),
    "structure": (
        ("common/messages.parquet", "common/rejects-ingest.parquet"),
        ("common/tree.parquet", "common/rejects-structure.parquet"),
    ),
    "gates": (("common/tree.parquet",), ("{r}/gated.parquet", "{r}/rejects-gates.parquet")),
    "flatten": (("{r}/gated.parquet",), ("{r}/dialogues.parquet", "{r}/rejects-flatten.parquet")),
    "score": (("{r}/dialogues.parquet",), ("{r}/scored.parquet",)),
    "filters": (("{r}/scored.parquet",), ("{r}/filtered.parquet", "{r}/rejects-filters.parquet")),
    "render": (("{r}/filtered.parquet",), ("{r}/rendered.parquet", "{r}/rejects-render.parquet")),
    "masks": (
        ("{r}/rendered.parquet",),
        ("{r}/masked.parquet", "{r}/rejects-masks.parquet", "{r}/notes.json"),
    ),
    "splits": (("{r}/masked.parquet",), ("{r}/final.parquet", "{r}/rejects-splits.parquet")),
    "write": (("{r}/final.parquet", "common/sources.json"), ()),
}


def stage_paths(stage: str, work: Path, recipe: str) -> tuple[list[Path], list[Path]]:
    """The concrete input and output paths of ``stage`` (ledger records not included)."""
    reads, writes = STAGE_IO[stage]
    fmt = [work / p.format(r=recipe) for p in reads], [work / p.format(r=recipe) for p in writes]
    return fmt


def _describe(s: pl.Series) -> dict[str, float]:
    return {
        "mean": round(float(s.mean()), 3),  # type: ignore[arg-type]
        "p50": float(s.quantile(0.5) or 0),
        "p95": float(s.quantile(0.95) or 0),
        "max": float(s.max()),  # type: ignore[arg-type]
    }


def run_stage(stage: str, work: str | Path, recipe: str, settings: dict[str, Any], out: str | Path) -> str:
    """Run one stage by name with plain arguments (what an orchestrator task calls); return the ledger path."""
    ctx = StageContext(Workspace(Path(work), recipe), get_recipe(recipe), BuildSettings.from_dict(settings), Path(out))
    folder = ctx.ws.dir_for(stage)
    folder.mkdir(parents=True, exist_ok=True)
    record = STAGE_FUNCS[stage](ctx)
    return str(save_record(record, folder))


def collect_ledger(ws: Workspace) -> Ledger:
    ledger = Ledger()
    for stage in LEDGER_STAGES:
        ledger.add(load_record(ws.dir_for(stage), stage))
    return ledger


def collect_rejects(ws: Workspace) -> pl.DataFrame:
    frames = [load(ws.dir_for(s) / f"rejects-{s}.parquet") for s in LEDGER_STAGES if s != "score"]
    return conform(pl.concat(frames, how="vertical"), REJECT_SCHEMA) if frames else empty_rejects()


def settings_fingerprint(recipe: Recipe, settings: BuildSettings, specs: list[dict[str, Any]]) -> str:
    raw = orjson.dumps(
        {
            "recipe": recipe.to_dict(),
            "settings": settings.output_settings(),
            "filters": specs,
            "version": __version__,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(raw).hexdigest()


def run_local(
    recipes: list[str],
    settings: BuildSettings,
    out: Path,
    work: Path | None = None,
    on_stage: Callable[[str, str], None] | None = None,
) -> dict[str, Path]:
    """Run every stage in order in this process (no orchestrator); return each recipe's output folder."""
    work = work or out / ".work"
    done_common = False
    outputs = {}
    for name in recipes:
        get_recipe(name)
        for stage in STAGES:
            if stage in COMMON_STAGES and done_common:
                continue
            if on_stage:
                on_stage(name, stage)
            run_stage(stage, work, name, settings.to_dict(), out)
        done_common = True
        outputs[name] = out / name
    return outputs
