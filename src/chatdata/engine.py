"""The one build engine: sources cut into tree-shards, every shard's stages in memory, a global split plan, a
merge-write per recipe; run by any :class:`~chatdata.executors.Executor`, reusing finished work.

A build is four phases of independent tasks, each a module-level function of one picklable argument that reads
and writes the workspace (so an executor may run it here, in a worker process or on a cluster):

1. **partition** (one task per distinct source): ingest streams the source into K tree-shards in bounded memory
   (:mod:`chatdata.partition`); trees never straddle shards.
2. **shard** (one task per source and shard, all submitted together): every requested recipe's stages run on
   the shard's frames in memory (:func:`chatdata.stages.run_shard`); stages shared by recipes run once. Each
   (recipe, source, shard) result is stored with its split keys (tree, source split, 128-bit hashes of the
   first prompt and of the dialogue).
3. **plan** (one task per recipe): the split plan over the light keys of all the recipe's shards and sources:
   tree split, prompt leaks and exact duplicates across the whole mixture, then each source's train fraction.
4. **write** (one task per recipe): each split and the rejects table are a k-way merge of the shards' rows in
   publish order, streamed into the Parquet writer; the ledger is the shards' records summed; the card follows.

Every result is a content-keyed cache entry (:mod:`chatdata.cache`): a rerun with nothing changed does no work, a
killed build resumes with its finished entries, a split-only change re-runs only plan and write. The output
bytes are the same whatever the executor, shard count or worker count (tested).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chatdata import artifacts
from chatdata.cache import Store, claim_workspace, code_fingerprint, content_key, sha256_file, workspace_lock
from chatdata.errors import ChatdataError
from chatdata.executors import Executor, InProcess
from chatdata.memory import release_memory
from chatdata.recipes import Recipe, get_recipe, recipe_ref
from chatdata.settings import BuildRequest, BuildSettings

BUNDLED = "bundled-sample"
#: messages per shard when the shard count is automatic: a worker's stages on a 100k-message shard of the four
#: oasst recipes peak at ~0.75 GB (1M messages on 2 workers: ~2 GB for the whole process tree)
TARGET_SHARD_MESSAGES = 100_000
#: below this many input records the writes run faster in this process than in spawned workers
POOL_ROWS = 20_000
PARTITION, SHARD, PLAN = "partition", "shard", "plan"
#: the files of a shard entry: surviving rows, their split keys, the shard's rejects, dialogues per tree
ROWS, KEYS, SHARD_REJECTS, PER_TREE = (f"{n}{artifacts.SUFFIX}" for n in ("rows", "keys", "rejects", "per-tree"))
Progress = Callable[[str, str], None]  # (phase, label) when a task ends


class EmptyDatasetError(ChatdataError):
    """Every row of a recipe was removed: nothing is written (unless ``allow_empty``)."""


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
    files: tuple[tuple[str, str], ...]

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
    found, _ = scan(path, ref.format, patterns=ref.data_files or None, fmt=ref.fmt)
    files = tuple((f.name, sha256_file(f.path)) for f in found)
    return Resolved(ref, str(path), commit, files)


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
    than one (so two workers finish together rather than one running the last shard alone): 200k messages make 2
    shards, 1M make 10. Independent of the worker count, so a rerun with other workers reuses every shard."""
    n = math.floor(rows / TARGET_SHARD_MESSAGES + 0.5)
    return 1 if n <= 1 else n + n % 2


# ------------------------------------------------------------------------------------------------ tasks


@dataclass(frozen=True)
class PartitionTask:
    store: str
    key: str
    resolved: Resolved
    k: int


def partition_task(task: PartitionTask) -> dict[str, Any]:
    """Cut one source into ``k`` shards in a cache entry; return its metadata."""
    from chatdata.partition import REJECTS_FILE, partition_source
    from chatdata.stages import sort_rejects

    store = Store(Path(task.store))
    if store.get(PARTITION, task.key) is None:
        with store.put(PARTITION, task.key) as tmp:
            ref = task.resolved.ref
            part = partition_source(
                Path(task.resolved.path), tmp, task.k, kind=ref.format, patterns=ref.data_files or None, fmt=ref.fmt
            )
            rejects = sort_rejects(artifacts.load(tmp / REJECTS_FILE))  # in publish order
            artifacts.save(rejects, tmp / REJECTS_FILE, artifacts.STREAM_BATCH_ROWS)
            meta = {
                "k": task.k,
                "records": [r.to_dict() for r in part.records],
                "files": [asdict(f) for f in part.files],
                "skipped": [asdict(f) for f in part.skipped],
                "rows_per_shard": list(part.rows_per_shard),
                "commit": task.resolved.commit,
                "spec": task.resolved.ref.spec,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
        release_memory()
    return partition_meta(store, task.key)


def partition_meta(store: Store, key: str) -> dict[str, Any]:
    return json.loads((store.path(PARTITION, key) / "meta.json").read_text())


@dataclass(frozen=True)
class JobSpec:
    """One (recipe, source) chain over one shard and the key its result is stored under."""

    recipe: str
    source: str
    key: str


@dataclass(frozen=True)
class ShardTask:
    store: str
    partition: str
    shard: int
    jobs: tuple[JobSpec, ...]
    settings: dict[str, Any]


def shard_task(task: ShardTask) -> int:
    """Run the missing jobs of one shard and store each one's result; return how many ran."""

    from chatdata.filters.langid import forget_detections
    from chatdata.partition import REJECTS_FILE, shard_file
    from chatdata.stages import Job, ShardOutput, run_shard

    store = Store(Path(task.store))
    todo = [j for j in task.jobs if store.get(SHARD, j.key) is None]
    if not todo:
        return 0
    folder = store.path(PARTITION, task.partition)
    settings = BuildSettings(**task.settings)
    jobs = [Job(get_recipe(j.recipe), j.source, settings) for j in todo]

    def store_output(i: int, out: ShardOutput) -> None:
        spec = todo[i]
        meta = {"records": [r.to_dict() for r in out.records], "rows": out.rows.height}
        with store.put(SHARD, spec.key, meta) as tmp:
            artifacts.save(out.rows, tmp / ROWS, artifacts.STREAM_BATCH_ROWS)
            assert out.keys is not None
            artifacts.save(out.keys, tmp / KEYS)
            artifacts.save(out.rejects, tmp / SHARD_REJECTS, artifacts.STREAM_BATCH_ROWS)
            artifacts.save(out.per_tree.to_frame("count"), tmp / PER_TREE)
            if out.masks is not None:
                save_masks(out.masks, tmp)

    frame = artifacts.load(shard_file(folder, task.shard))
    if jobs[0].spec.format == "oasst":
        rejected = None
        if task.shard == 0:
            rejected = artifacts.load(folder / REJECTS_FILE, ["message_id"]).get_column("message_id")
        ingest = rejected.drop_nulls() if rejected is not None else None
        run_shard(jobs, messages=frame, ingest_rejected=ingest, emit=store_output)
    else:
        run_shard(jobs, rows=frame, emit=store_output)
    del frame
    forget_detections()
    release_memory()
    return len(todo)


def save_masks(masks: dict[str, Any], folder: Path) -> None:
    columns = masks["columns"]
    for column, part in columns.items():
        artifacts.save(part["rows"], folder / f"masks-{column}{artifacts.SUFFIX}")
    info = {"settings": masks["settings"], "columns": {c: p["stats"] for c, p in columns.items()}}
    (folder / "masks.json").write_text(json.dumps(info, sort_keys=True, default=str))


def load_masks(folder: Path) -> dict[str, Any] | None:
    path = folder / "masks.json"
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    return {
        "settings": info["settings"],
        "columns": {
            c: {"rows": artifacts.load(folder / f"masks-{c}{artifacts.SUFFIX}"), "stats": stats}
            for c, stats in info["columns"].items()
        },
    }


@dataclass(frozen=True)
class Piece:
    """One (source, shard) result of a recipe, in the recipe's global order, and where its text is: the shard
    ``shard`` of partition ``partition``."""

    source: str
    source_index: int
    job: str
    partition: str = ""
    shard: int = 0


@dataclass(frozen=True)
class PlanTask:
    store: str
    key: str
    recipe: str
    pieces: tuple[Piece, ...]
    settings: dict[str, Any]


def plan_task(task: PlanTask) -> dict[str, Any]:
    """Plan one recipe's splits over all its pieces' keys; store each piece's part; return the counts."""
    from chatdata.mixture import plan_recipe

    store = Store(Path(task.store))
    if store.get(PLAN, task.key) is None:
        recipe = get_recipe(task.recipe)
        with store.put(PLAN, task.key) as tmp:
            meta = plan_recipe(recipe, BuildSettings(**task.settings), store, task.pieces, tmp)
            (tmp / "meta.json").write_text(json.dumps(meta, sort_keys=True))
    return json.loads((store.path(PLAN, task.key) / "meta.json").read_text())


@dataclass(frozen=True)
class WriteTask:
    store: str
    recipe: str
    plan: str
    pieces: tuple[Piece, ...]
    partitions: tuple[tuple[str, str], ...]  # (source name, partition key) in source order
    sources: dict[str, Any]
    settings: dict[str, Any]
    target: str
    build_key: str
    allow_empty: bool
    overwrite: bool = False
    #: the output settings the request set itself (recorded as ``settings_given``)
    given: tuple[str, ...] = ()


def write_task(task: WriteTask) -> str:
    """Merge-write one recipe's output folder (atomically) and record what it wrote."""
    from chatdata.output import write_recipe

    store = Store(Path(task.store))
    write_recipe(task, store)
    release_memory()
    return task.target


# ------------------------------------------------------------------------------------------------ the driver


@dataclass
class BuildResult:
    """Each recipe's output folder, and per phase how many tasks ran and how many results were reused."""

    outputs: dict[str, Path]
    ran: dict[str, int] = field(default_factory=dict)
    reused: dict[str, int] = field(default_factory=dict)
    shards: dict[str, int] = field(default_factory=dict)


def _job_key(part: str, shard: int, recipe: Recipe, source: str, settings: BuildSettings) -> str:
    return content_key(
        SHARD,
        part,
        shard,
        recipe.to_dict(),
        source,
        settings.phase_settings("shard"),
        code_fingerprint(),
        _spec_fingerprint(recipe, source, settings),
    )


def _spec_fingerprint(recipe: Recipe, source: str, settings: BuildSettings) -> list[str]:
    """The sha256 of every filter spec a source's chain reads (a user's spec file can change on its own)."""
    from chatdata.filters.specs import load_specs

    refs = [*recipe.gate_refs(source), *recipe.filter_refs(source, settings.decontaminate)]
    return [s.sha256 for s in load_specs(refs)]


class _Index:
    """``WORK/cache/index.json``: the entries the latest build of each recipe used (everything else is stale)."""

    def __init__(self, store: Store) -> None:
        self.path = store.root / "index.json"
        self.data: dict[str, dict[str, list[str]]] = {}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text())
            except ValueError:
                self.data = {}

    def set(self, recipe: str, used: dict[str, set[str]]) -> None:
        self.data[recipe] = {kind: sorted(keys) for kind, keys in used.items()}

    def kept(self) -> dict[str, set[str]]:
        kinds = (PARTITION, SHARD, PLAN)
        return {k: {key for entry in self.data.values() for key in entry.get(k, [])} for k in kinds}

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, sort_keys=True, indent=1))
        tmp.replace(self.path)


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
    settings = request.settings()
    work, out = Path(request.work_dir()), Path(request.out)
    say = on_phase or (lambda _msg: None)
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
            key = content_key(res.key, k, code_fingerprint())
            parts[ref] = (key, k)
            if store.get(PARTITION, key) is None:
                tasks.append(PartitionTask(str(store.root), key, res, k))
        # 2. shards (their keys need only the partitions' keys: what is missing is known before any work)
        pieces: dict[str, list[Piece]] = {}
        by_shard: dict[tuple[str, int], list[JobSpec]] = {}
        for r in recipes:
            pieces[r.name] = []
            for index, source in enumerate(r.sources):
                key, k = parts[refs[(r.name, source)]]
                for i in range(k):
                    job = JobSpec(recipe_ref(r), source, _job_key(key, i, r, source, settings))
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
            labels=[t.resolved.ref.spec for t in tasks],
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
                r.to_dict(),
                [asdict(p) for p in pieces[r.name]],
                settings.phase_settings("plan"),
                code_fingerprint(),
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
                settings.phase_settings("write"),
                code_fingerprint(),
                request.allow_empty,
                request.given_settings(),
            )
            target = out / r.name
            if _intact(work, r.name, target, build_key):
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
            _remember(work, Path(t.target).name, Path(t.target), t.build_key)
        ran("write", len(write_tasks), len(recipes))

        # stale entries: what no recipe's latest build uses
        index = _Index(store)
        for r in recipes:
            used_parts = {parts[refs[(r.name, s)]][0] for s in r.sources}
            index.set(
                r.name, {PARTITION: used_parts, SHARD: {p.job for p in pieces[r.name]}, PLAN: {plan_keys[r.name]}}
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


def _outputs_record(work: Path, name: str) -> Path:
    return work / "cache" / "outputs" / f"{name}.json"


def _folder_files(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _intact(work: Path, name: str, target: Path, build_key: str) -> bool:
    """The output folder is what a build with this key wrote, file for file."""
    record = _outputs_record(work, name)
    if not record.is_file() or not target.is_dir():
        return False
    try:
        saved = json.loads(record.read_text())
    except ValueError:
        return False
    return saved.get("build_key") == build_key and saved.get("files") == _folder_files(target)


def owned_output(work: Path, name: str) -> Callable[[Path], bool]:
    """Whether chatdata wrote a recipe's output folder: its build record is there, or every file in it is one this
    workspace recorded writing there (a build record deleted by hand loses nothing of the user's)."""
    from chatdata.output import is_build_folder

    def owned(folder: Path) -> bool:
        if is_build_folder(folder):
            return True
        try:
            recorded = json.loads(_outputs_record(work, name).read_text())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return all(p.relative_to(folder).as_posix() in recorded for p in folder.rglob("*") if p.is_file())

    return owned


def _remember(work: Path, name: str, target: Path, build_key: str) -> None:
    record = _outputs_record(work, name)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"build_key": build_key, "files": _folder_files(target)}, sort_keys=True))
