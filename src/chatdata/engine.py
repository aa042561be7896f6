"""The one build engine's driver: sources cut into tree-shards, every shard's stages in memory, a global split
plan, a merge-write per recipe; run by any :class:`~chatdata.executors.Executor`, reusing finished work.

A build is four phases of independent tasks, each a module-level function of one picklable argument that reads
and writes the workspace (so an executor may run it here, in a worker process or on a cluster):

1. **partition** (one task per distinct source, :func:`chatdata.partition.partition_task`): ingest streams the
   source into K tree-shards in bounded memory; trees never straddle shards.
2. **shard** (one task per source and shard, all submitted together, :func:`chatdata.shards.shard_task`): every
   requested recipe's stages run on the shard's messages in memory (:func:`chatdata.stages.run_shard`); stages
   shared by recipes run once, each message is scored once. Each (recipe, source, shard) result is stored with
   its split keys (tree, source split, 128-bit hashes of the first prompt and of the dialogue).
3. **plan** (one task per recipe, :func:`chatdata.mixture.plan_task`): the split plan over the light keys of all
   the recipe's shards and sources: tree split, prompt leaks and exact duplicates across the whole mixture, then
   each source's train fraction.
4. **write** (one task per recipe, :func:`chatdata.output.write_task`): each split and the rejects table are a
   k-way merge of the shards' rows in publish order, their text gathered from the shards as they are streamed
   into the Parquet writer; the ledger is the shards' records summed; the card follows.

Every result is a content-keyed workspace entry (:mod:`chatdata.workspace`), keyed by only what shapes it: a
rerun with nothing changed does no work, a killed build resumes with its finished entries, a changed threshold
re-runs only the decisions (flattened dialogues and message scores are entries of their own), a split-only change
only plan and write, a card template only the write. The output bytes are the same whatever the executor, shard
count or worker count (tested).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from chatdata.errors import ChatdataError
from chatdata.executors import Executor, InProcess
from chatdata.mixture import Piece, PlanTask, plan_task
from chatdata.output import WriteTask, write_task
from chatdata.partition import PartitionTask, partition_task
from chatdata.recipes import Recipe, get_recipe, recipe_ref
from chatdata.settings import BuildRequest, BuildSettings
from chatdata.shards import JobSpec, ShardTask, shard_task
from chatdata.workspace import (
    FLAT,
    PARTITION,
    PAYLOADS,
    PLAN,
    SCORES,
    SHARD,
    Index,
    Store,
    claim_workspace,
    code_fingerprint,
    content_key,
    intact,
    owned_output,
    partition_meta,
    payloads_key,
    remember,
    sha256_file,
    workspace_lock,
)

BUNDLED = "bundled-sample"
#: messages per shard when the shard count is automatic: a worker's stages on a 50k-message shard of the four
#: oasst recipes peak at ~0.6 GB (1M messages on 2 workers: ~1.5 GB for the whole process tree; 100k-message
#: shards took ~2 GB for no gain in speed)
TARGET_SHARD_MESSAGES = 50_000
#: below this many input records the writes run faster in this process than in spawned workers
POOL_ROWS = 20_000
Progress = Callable[[str, str], None]  # (phase, label) when a task ends


# ------------------------------------------------------------------------------------------------ sources


@dataclass(frozen=True)
class SourceRef:
    """A recipe source as this build binds it: where from, which format family, which files."""

    spec: str
    format: str
    data_files: tuple[str, ...] = ()
    revision: str | None = None
    fmt: str | None = None
    #: the recipe's default for the source: which bundled sample stands in for it
    default: str | None = None
    #: the recipe source name it is bound to, and whether the user bound it (else it reads the recipe default)
    names: str = field(default="", compare=False)
    given: bool = field(default=True, compare=False)


@dataclass(frozen=True)
class Resolved:
    """A source made local: its folder or file, the Hub commit, and every input file with its sha256."""

    ref: SourceRef
    path: str
    commit: str | None
    #: the files to read, each with its sha256, and those skipped with a reason: the folder is scanned once
    detected: tuple[Any, ...]
    skipped: tuple[Any, ...] = ()

    @property
    def files(self) -> tuple[tuple[str, str], ...]:
        """(name, sha256) of every file read."""
        return tuple((f.name, f.sha256) for f in self.detected)

    @property
    def key(self) -> str:
        r = self.ref
        bundled = r.default if r.spec == BUNDLED else None
        return content_key(PARTITION, r.format, r.data_files, r.fmt, self.files, self.commit, bundled)


def bind_sources(request: BuildRequest, recipes: list[Recipe]) -> dict[tuple[str, str], SourceRef]:
    """(recipe, source name) -> the source it reads. A named ``--source NAME=X`` binds NAME, a plain one the
    recipe's first source (``bundled-sample`` names the sample shipped for it); with no ``--source`` at all every
    source reads its bundled sample; any other unbound source reads its recipe default (a Hub id)."""
    from chatdata.resources import bundled_sample

    plain, named = request.bindings()
    out = {}
    for r in recipes:
        for name, spec in r.sources.items():
            given = named.get(name) or (plain if name == r.primary_source else None)
            if given is None and not request.source and bundled_sample(spec.default, spec.format) is not None:
                given = BUNDLED
            bound = given is not None
            given = given or spec.default
            if given is None:
                raise ChatdataError(f"recipe {r.name}: source '{name}' has no default; give --source {name}=PATH")
            out[(r.name, name)] = SourceRef(
                given, spec.format, spec.data_files, request.revision, request.format, spec.default, name, bound
            )
    return out


def _looks_like_repo_id(s: str) -> bool:
    parts = s.split("/")
    return len(parts) == 2 and all(parts) and not s.startswith((".", "/", "~"))


def resolve(ref: SourceRef, cache_dir: str) -> Resolved:
    """The local files of a source (a Hub dataset is downloaded once, pinned to ``revision``), each with its
    sha256: what the partition key is made of."""
    from chatdata.resources import bundled_sample
    from chatdata.sources.read import scan

    commit = None
    if ref.spec == BUNDLED:
        found = bundled_sample(ref.default, ref.format)
        if found is None:
            raise ChatdataError(f"chatdata ships no sample for {ref.default or ref.format}; give --source with a path")
        path = found
    elif Path(ref.spec).expanduser().exists():
        path = Path(ref.spec).expanduser()
    elif _looks_like_repo_id(ref.spec):
        from chatdata.hub.source import download_source

        try:
            path, commit = download_source(ref.spec, revision=ref.revision, cache_dir=cache_dir)
        except ChatdataError as exc:
            if ref.given:
                raise
            raise ChatdataError(
                f"source '{ref.names}' was not given, so it reads its recipe default {ref.spec} from the Hub: {exc}; "
                f"give --source {ref.names}=PATH_OR_HUB_ID, or --source {ref.names}=bundled-sample for the shipped "
                "sample"
            ) from None
    else:
        raise ChatdataError(
            f"source '{ref.spec}' is neither an existing path nor a Hub dataset id like OpenAssistant/oasst1"
        )
    found, skipped = scan(path, ref.format, patterns=ref.data_files or None, fmt=ref.fmt)
    hashed = tuple(replace(f, sha256=sha256_file(f.path)) for f in found)
    return Resolved(ref, str(path), commit, hashed, tuple(skipped))


def _resolve_task(args: tuple[SourceRef, str]) -> Resolved:
    return resolve(*args)


def estimate_rows(resolved: Resolved) -> int:
    """A cheap estimate of a source's records: Parquet row counts, JSONL bytes over a typical line."""
    import pyarrow.parquet as pq

    root = Path(resolved.path)
    root = root if root.is_dir() else root.parent
    total = 0
    for rel, _ in resolved.files:
        f = root / rel
        if f.name.endswith(".parquet"):
            total += pq.ParquetFile(f).metadata.num_rows
        else:
            total += f.stat().st_size // (350 if f.name.endswith(".gz") else 1000)
    return total


def auto_shards(rows: int) -> int:
    """A source's records (:func:`estimate_rows`) over :data:`TARGET_SHARD_MESSAGES`, rounded, and even when more
    than one (so two workers finish together rather than one running the last shard alone): 200k messages make 4
    shards, 1M make 20. Independent of the worker count, so a rerun with other workers reuses every shard."""
    n = math.floor(rows / TARGET_SHARD_MESSAGES + 0.5)
    return 1 if n <= 1 else n + n % 2


# ------------------------------------------------------------------------------------------------ benchmarks


def bind_benchmarks(
    settings: BuildSettings, recipes: list[Recipe], *, sample: bool, say: Callable[[str], None]
) -> BuildSettings:
    """Load every benchmark the recipes decontaminate against, once and before any work, so one that cannot be
    loaded fails the build with one line. A build whose every source is a bundled sample never reaches the
    network: a Hub benchmark not in the local cache is left out (``NAME=skip``, which ``build.json`` and the card
    show) instead."""
    from chatdata.benchmarks import BenchmarkError, left_out, load_spec, resolve
    from chatdata.filters.decontam import DecontamFilter
    from chatdata.stages import Job, _filters_of

    bindings = settings.benchmark_bindings()
    refs = {
        name: ref
        for r in recipes
        for source in r.sources
        for f in _filters_of(Job(r, source, settings))
        if isinstance(f, DecontamFilter)
        for name, ref in f.refs.items()
    }
    skipped = []
    for name, ref in refs.items():
        if left_out(bindings.get(name)):
            continue
        hub = name not in bindings and load_spec(ref).source.hub is not None
        try:
            resolve(ref, bindings.get(name), local_only=sample and hub)
        except BenchmarkError:
            if not (sample and hub):
                raise
            skipped.append(name)
    if not skipped:
        return settings
    say(f"benchmarks left out of this offline sample build: {', '.join(skipped)} (bind with --benchmark NAME=PATH)")
    return settings.model_copy(update={"benchmark": [*settings.benchmark, *(f"{n}=skip" for n in skipped)]})


# ------------------------------------------------------------------------------------------------ keys


def _job_spec(part: str, shard: int, recipe: Recipe, source: str, settings: BuildSettings) -> JobSpec:
    """A (recipe, source, shard) job and its keys: its result's (everything of the recipe and settings that shapes
    the shard's rows), its flattened dialogues' (the gates and flattening) and its filters' message scores' (their
    score settings)."""
    from chatdata.filters.base import MessageFilter
    from chatdata.stage import message_key
    from chatdata.stages import Job, _filters_of, _key_flatten, _memo_key, gates_of

    job = Job(recipe, source, settings)
    gates_of(job)  # a filter listed at the wrong level fails here, in one line, before any work
    filters = _filters_of(job)
    code = code_fingerprint(cards=False)
    key = content_key(
        SHARD,
        part,
        shard,
        recipe.shard_view(source),
        settings.phase_settings("shard"),
        code,
        _spec_fingerprint(recipe, source, settings, filters),
    )
    flat = content_key(FLAT, part, shard, _memo_key(_key_flatten(job), "flatten"), code)
    flat_key = flat if recipe.sources[source].format == "oasst" else None
    scores = tuple(
        sorted(
            {
                (mk, content_key(SCORES, part, shard, mk, code))
                for f in filters
                if isinstance(f, MessageFilter)
                for mk in [message_key(f)]
            }
        )
    )
    return JobSpec(recipe_ref(recipe), source, key, flat_key, scores)


def _spec_fingerprint(recipe: Recipe, source: str, settings: BuildSettings, filters: list[Any]) -> list[str]:
    """The sha256 of every filter spec a source's chain reads (a user's spec file can change on its own) and of
    the items of every benchmark its decontamination ``filters`` check (a bound file can change too)."""
    from chatdata.filters.decontam import DecontamFilter
    from chatdata.filters.specs import load_specs

    refs = [*recipe.gate_refs(source), *recipe.filter_refs(source, settings.decontaminate)]
    items = [f.fingerprint() for f in filters if isinstance(f, DecontamFilter)]
    return [*(s.sha256 for s in load_specs(refs)), *map(str, items)]


# ------------------------------------------------------------------------------------------------ the driver


@dataclass
class BuildResult:
    """Each recipe's output folder, and per phase how many tasks ran and how many results were reused."""

    outputs: dict[str, Path]
    ran: dict[str, int] = field(default_factory=dict)
    reused: dict[str, int] = field(default_factory=dict)
    shards: dict[str, int] = field(default_factory=dict)


def build(
    request: BuildRequest,
    executor: Executor | None = None,
    *,
    on_phase: Callable[[str], None] | None = None,
    on_done: Progress | None = None,
) -> BuildResult:
    """Build every recipe of ``request`` (see the module docstring); return the output folders."""
    executor = executor or InProcess()
    recipes = [get_recipe(r) for r in request.recipes]
    say = on_phase or (lambda _msg: None)
    sample = all(ref.spec == BUNDLED for ref in bind_sources(request, recipes).values())
    settings = bind_benchmarks(request.settings(), recipes, sample=sample, say=say)
    work, out = Path(request.work_dir()), Path(request.out)
    result = BuildResult({r.name: out / r.name for r in recipes})

    def ran(phase: str, n: int, total: int) -> None:
        result.ran[phase] = result.ran.get(phase, 0) + n
        result.reused[phase] = result.reused.get(phase, 0) + total - n

    # nothing chatdata did not write is ever replaced or removed: refuse before any work
    from chatdata.writer import check_replaceable

    for name, target in result.outputs.items():
        check_replaceable(target, owned_output(work, name), overwrite=request.overwrite, option="--overwrite")
    claim_workspace(work, overwrite=request.overwrite)
    with workspace_lock(work) as waited:
        if waited:
            say("waited for another build to release the workspace")
        store = Store(work / "cache")
        if request.force:
            shutil.rmtree(store.root, ignore_errors=True)
        refs = bind_sources(request, recipes)
        distinct = list(dict.fromkeys(refs.values()))
        say(f"resolve {len(distinct)} source(s)")
        resolved = dict(
            zip(
                distinct,
                executor.map(
                    _resolve_task,
                    [(r, str(work / "hub-cache")) for r in distinct],
                    phase="fetch",
                    labels=[r.spec for r in distinct],
                    on_done=_tell(on_done, "fetch"),
                ),
                strict=True,
            )
        )

        # 1. partitions
        parts: dict[SourceRef, tuple[str, int]] = {}
        tasks = []
        rows = {ref: estimate_rows(resolved[ref]) for ref in distinct}
        for ref in distinct:
            res = resolved[ref]
            k = request.shards or auto_shards(rows[ref])
            key = content_key(res.key, k, code_fingerprint(cards=False))
            parts[ref] = (key, k)
            if store.get(PARTITION, key) is None:
                r_ = res.ref
                tasks.append(
                    PartitionTask(
                        str(store.root),
                        key,
                        res.path,
                        r_.format,
                        k,
                        r_.data_files,
                        r_.fmt,
                        res.commit,
                        r_.spec,
                        res.detected,
                        res.skipped,
                    )
                )
        # 2. shards (their keys need only the partitions' keys: what is missing is known before any work)
        pieces: dict[str, list[Piece]] = {}
        by_shard: dict[tuple[str, int], list[JobSpec]] = {}
        for r in recipes:
            pieces[r.name] = []
            for index, source in enumerate(r.sources):
                key, k = parts[refs[(r.name, source)]]
                for i in range(k):
                    job = _job_spec(key, i, r, source, settings)
                    pieces[r.name].append(Piece(source, index, job.key, key, i))
                    by_shard.setdefault((key, i), []).append(job)
        shard_tasks = [
            ShardTask(str(store.root), part, i, tuple(jobs), settings.model_dump())
            for (part, i), jobs in by_shard.items()
            if any(store.get(SHARD, j.key) is None for j in jobs)
        ]
        executor.prepare(len(shard_tasks))
        say(f"partition {len(tasks)} source(s)" if tasks else "partitions reused")
        executor.map(
            partition_task,
            tasks,
            phase=PARTITION,
            labels=[t.spec for t in tasks],
            on_done=_tell(on_done, PARTITION),
        )
        ran(PARTITION, len(tasks), len(distinct))
        metas = {ref: partition_meta(store, key) for ref, (key, _) in parts.items()}

        n_jobs = sum(len(j) for j in by_shard.values())
        say(f"stages on {len(shard_tasks)} of {len(by_shard)} shard(s)")
        counts = executor.map(
            shard_task,
            shard_tasks,
            phase=SHARD,
            labels=[f"shard {t.shard} of {t.partition[:8]}" for t in shard_tasks],
            on_done=_tell(on_done, SHARD),
        )
        ran(SHARD, sum(counts), n_jobs)
        result.shards = {ref.spec: k for ref, (_, k) in parts.items()}

        # 3. plans
        plan_keys = {
            r.name: content_key(
                PLAN,
                r.plan_view(),
                [asdict(p) for p in pieces[r.name]],
                settings.phase_settings("plan"),
                code_fingerprint(cards=False),
            )
            for r in recipes
        }
        plan_tasks = [
            PlanTask(str(store.root), plan_keys[r.name], recipe_ref(r), tuple(pieces[r.name]), settings.model_dump())
            for r in recipes
            if store.get(PLAN, plan_keys[r.name]) is None
        ]
        say(f"split plans of {len(plan_tasks)} recipe(s)" if plan_tasks else "split plans reused")
        executor.map(
            plan_task, plan_tasks, phase=PLAN, labels=[t.recipe for t in plan_tasks], on_done=_tell(on_done, PLAN)
        )
        ran(PLAN, len(plan_tasks), len(recipes))

        # 4. writes
        write_tasks = []
        for r in recipes:
            build_key = content_key(
                "write",
                plan_keys[r.name],
                r.to_dict(),
                settings.output_settings(),
                code_fingerprint(),
                request.allow_empty,
                request.given_settings(),
            )
            target = out / r.name
            if intact(work, r.name, target, build_key):
                continue
            sources = {
                s: _sources_info(refs[(r.name, s)], resolved[refs[(r.name, s)]], metas[refs[(r.name, s)]], r, s)
                for s in r.sources
            }
            write_tasks.append(
                WriteTask(
                    str(store.root),
                    recipe_ref(r),
                    plan_keys[r.name],
                    tuple(pieces[r.name]),
                    tuple((s, parts[refs[(r.name, s)]][0]) for s in r.sources),
                    sources,
                    settings.model_dump(),
                    str(target),
                    build_key,
                    request.allow_empty,
                    request.overwrite,
                    tuple(request.given_settings()),
                )
            )
        say(f"write {len(write_tasks)} recipe(s)" if write_tasks else "outputs unchanged")
        executor.prepare(len(write_tasks) if sum(rows.values()) >= POOL_ROWS else 1)
        executor.map(
            write_task,
            write_tasks,
            phase="write",
            labels=[Path(t.target).name for t in write_tasks],
            on_done=_tell(on_done, "write"),
        )
        for t in write_tasks:
            remember(work, Path(t.target).name, Path(t.target), t.build_key)
        ran("write", len(write_tasks), len(recipes))

        # stale entries: what no recipe's latest build uses
        index = Index(store)
        for r in recipes:
            used_parts = {parts[refs[(r.name, s)]][0] for s in r.sources}
            jobs = [j for jobs_ in by_shard.values() for j in jobs_ if j.key in {p.job for p in pieces[r.name]}]
            index.set(
                r.name,
                {
                    PARTITION: used_parts,
                    FLAT: {j.flat for j in jobs if j.flat},
                    SCORES: {key for j in jobs for _, key in j.scores},
                    SHARD: {p.job for p in pieces[r.name]},
                    PLAN: {plan_keys[r.name]},
                    PAYLOADS: {payloads_key(p.partition, p.shard) for p in pieces[r.name]},
                },
            )
        index.save()
        store.prune(index.kept())
    return result


def _tell(on_done: Progress | None, phase: str) -> Callable[[str], None] | None:
    return (lambda label: on_done(phase, label)) if on_done else None


def _sources_info(ref: SourceRef, res: Resolved, meta: dict[str, Any], recipe: Recipe, name: str) -> dict[str, Any]:
    """What ``build.json`` records of one source: as given, its pinned commit, every file read with its
    sha256, its format and mixture weight."""
    spec = recipe.sources[name]
    return {
        "spec": ref.spec,
        "revision": res.commit,
        "format": spec.format,
        "weight": spec.weight,
        "files": meta["files"],
        "skipped": meta.get("skipped", []),
    }
