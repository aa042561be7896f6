"""The ``chatdata`` command line."""

from __future__ import annotations

import atexit
import contextlib
import inspect as pyinspect
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from chatdata import __version__
from chatdata.errors import ChatdataError

app = typer.Typer(
    help="chatdata: curate OpenAssistant trees into StarChat-style chat fine-tuning datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
out_console = Console()


def _fail(exc: Exception, code: int = 2) -> None:
    """Print one line (never wrapped, no traceback) and exit with ``code`` (2: bad input or settings)."""
    console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        out_console.print(f"chatdata {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """chatdata: curate OpenAssistant trees into StarChat-style chat fine-tuning datasets."""


@app.command()
def recipes() -> None:
    """List the shipped recipes (recipes/*.yaml) with their sources; a recipe file of your own works too."""
    from chatdata.recipes import shipped_recipes

    for r in shipped_recipes().values():
        out_console.print(f"[bold]{r.name}[/]  {r.summary}", highlight=False, soft_wrap=True)
        out_console.print(f"  rebuilds: {r.rebuilds}", highlight=False, soft_wrap=True, markup=False)
        for name, spec in r.sources.items():
            weight = f", weight {spec.weight}" if spec.weight < 1 else ""
            out_console.print(
                f"  source {name}: {spec.format}, default {spec.default}{weight}",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
    out_console.print(
        "Build one: chatdata build NAME (or your own: chatdata build path/to/recipe.yaml)",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def benchmarks() -> None:
    """List the benchmarks a build can decontaminate against (benchmarks/*.yaml): where their items come from,
    what is compared with which roles. Add your own with a spec file; bind any to a local copy with
    `--benchmark NAME=PATH`."""
    from chatdata.benchmarks import known, load_spec

    for name in known():
        spec = load_spec(name)
        out_console.print(f"[bold]{spec.name}[/]  {spec.description}", highlight=False, soft_wrap=True)
        out_console.print(f"  items: {spec.source.describe()}, id {spec.id}, license {spec.license}", highlight=False,
                          soft_wrap=True, markup=False)  # fmt: skip
        for compare in spec.compare:
            out_console.print(
                f"  compares {', '.join(compare.fields)} with {', '.join(compare.roles)} turns",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
    out_console.print(
        "A recipe picks them with its decontamination filter (filters/decontam_*.yaml); a spec of your own: "
        "benchmarks/humaneval.yaml shows the fields.",
        highlight=False,
        soft_wrap=True,
    )


def _option(name: str, field: Any) -> pyinspect.Parameter:
    """A typer option for one :class:`~chatdata.settings.BuildRequest` field: flag, type, default and help
    all come from the field's declaration."""
    from chatdata.settings import BuildRequest, meta_of

    meta = meta_of(BuildRequest, name)
    flag = meta.cli or "--" + name.replace("_", "-")
    annotation, default = field.annotation, field.default
    nullable = get_origin(annotation) in (Union, UnionType) and type(None) in get_args(annotation)
    base = next(a for a in get_args(annotation) if a is not type(None)) if nullable else annotation
    kw: dict[str, Any] = {"help": field.description, "show_default": default not in (None, [], False)}
    if meta.scale:
        default = default // meta.scale
    decls = [flag]  # a boolean's "--on/--off" is one declaration: split, both names would switch it on
    if decls[0] == "--source":
        decls.append("-s")
    elif decls[0] == "--out":
        decls.append("-o")
    typ = base | None if nullable else base  # type: ignore[operator]
    if base is bool:
        kw["metavar"] = ""  # a flag takes no value
    elif meta.metavar:
        kw["metavar"] = meta.metavar
    option = typer.Option(*decls, **kw)
    return pyinspect.Parameter(
        name, pyinspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[typ, option]
    )


def _build_parameters() -> list[pyinspect.Parameter]:
    from chatdata.settings import BuildRequest, meta_of

    params = [
        pyinspect.Parameter("ctx", pyinspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context),
        pyinspect.Parameter(
            "recipe_names",
            pyinspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=None,
            annotation=Annotated[
                list[str] | None,
                typer.Argument(
                    metavar="RECIPE",
                    help="Recipes (`chatdata recipes`) or recipe files, several at once (default: oasst_en).",
                    show_default=False,
                ),
            ],
        ),
    ]
    for name, field in BuildRequest.model_fields.items():
        if meta_of(BuildRequest, name).cli != "argument":
            params.append(_option(name, field))
    return params


BUILD_HELP = (
    "Build recipes into Hub dataset folders (Parquet, README.md card, build.json).\n\n"
    "Every source is cut into tree-shards that run on all cores; results are kept in the workspace (OUT/.work), "
    "so a rerun with nothing changed does no work and a killed build resumes where it stopped.\n\n"
    "Examples:\n\n"
    "chatdata build  (oasst_en from the bundled sample)\n\n"
    "chatdata build oasst_en guanaco --source OpenAssistant/oasst1\n\n"
    "chatdata build starchat_alpha -s oasst=OpenAssistant/oasst1 -s dolly=databricks-dolly-15k.jsonl\n\n"
    "chatdata build my_recipe.yaml --source data/ --test-fraction 0.1"
)


def build(ctx: typer.Context, recipe_names: list[str] | None = None, **options: Any) -> None:
    """Build recipes into Hub dataset folders (the options are :class:`chatdata.settings.BuildRequest`; only
    those given on the command line are passed, so ``build.json`` can tell them from defaults)."""
    from chatdata.settings import BuildRequest, make_request, meta_of

    def given(name: str) -> bool:  # typer's ParameterSource (click's, or its vendored copy)
        return getattr(ctx.get_parameter_source(name), "name", "COMMANDLINE") != "DEFAULT"

    options = {k: v for k, v in options.items() if given(k)}
    for name in BuildRequest.model_fields:
        scale = meta_of(BuildRequest, name).scale
        if scale and options.get(name) is not None:
            options[name] = options[name] * scale
    try:
        request = make_request(cli=True, recipes=recipe_names or ["oasst_en"], **options)
        from chatdata.hub.publish import check_push_token

        check_push_token(request.push_to)
        result = _run_prefect(request) if request.chosen_engine() == "prefect" else _run_local(request)
    except ChatdataError as exc:
        from chatdata.output import EmptyDatasetError

        _fail(exc, code=1 if isinstance(exc, EmptyDatasetError) else 2)
    for folder in result["outputs"].values():
        _summary(Path(folder))
    reused = result.get("reused", {})
    if reused.get("shard") or reused.get("write"):
        out_console.print(
            f"reused from the workspace: {reused.get('shard', 0)} shard result(s), "
            f"{reused.get('write', 0)} unchanged output folder(s)"
        )
    for info in result.get("pushed", {}).values():
        out_console.print(info["summary"], highlight=False, markup=False)


build.__signature__ = pyinspect.Signature(_build_parameters())  # type: ignore[attr-defined]
build.__annotations__ = {p.name: p.annotation for p in build.__signature__.parameters.values()}  # type: ignore[attr-defined]
app.command(help=BUILD_HELP)(build)


def _run_local(request: Any) -> dict[str, Any]:
    """Build with worker processes on this machine (no Prefect), then publish when asked."""
    from chatdata.engine import build as run_build
    from chatdata.executors import InProcess, ProcessPool

    workers = request.workers or os.cpu_count() or 1
    executor = ProcessPool(workers) if workers > 1 else InProcess()
    with _progress() as (on_phase, on_done), executor:
        result = run_build(request, executor, on_phase=on_phase, on_done=on_done)
    pushed = {}
    if request.push_to:
        from chatdata.hub.publish import publish_built

        for name, folder in result.outputs.items():
            pushed[name] = {"summary": publish_built(name, folder, request, console=console).summary()}
    return {"outputs": result.outputs, "reused": result.reused, "pushed": pushed}


@contextmanager
def _progress() -> Iterator[tuple[Callable[[str], None], Callable[[str, str], None]]]:
    """A progress bar over the build's tasks: the phase as description, a tick per finished task."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} task(s)"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # piped or captured: no bar, and no blank line where it was
        # no proxies around sys.stdout/stderr: a Prefect run pickles its context for worker processes
        redirect_stdout=False,
        redirect_stderr=False,
    ) as progress:
        bar = progress.add_task("starting", total=None)

        def on_phase(message: str) -> None:
            progress.update(bar, description=message)

        def on_done(phase: str, label: str) -> None:
            progress.update(bar, description=f"{phase}: {label}", advance=1)

        yield on_phase, on_done


@app.command()
def inspect(
    messages: Annotated[
        str,
        typer.Option(
            "--messages",
            help='JSON file with a list of {role, content} (or {"messages": [...]}); - reads stdin.',
        ),
    ],
    tokenizer: Annotated[
        str,
        typer.Option(
            "--tokenizer",
            metavar="TOKENIZER",
            help="tokenizer.json, a tokenizer folder or a Hub id; `bundled` is the small demo tokenizer shipped "
            "with chatdata (not a model's: scripts/fetch_starcoder_tokenizer.py rebuilds StarCoder's offline).",
        ),
    ] = "bundled",
    dialect: Annotated[str, typer.Option(help="starchat, chatml, guanaco or template.")] = "starchat",
    mask_convention: Annotated[str, typer.Option("--mask-convention", help="starchat or content_only.")] = "starchat",
    max_length: Annotated[int, typer.Option("--max-length", help="Truncate to this many tokens.", min=1)] = 2048,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object {text, input_ids, labels} and nothing else.")
    ] = False,
) -> None:
    """Show how one dialogue becomes training tokens: trained tokens highlighted, masked ones dimmed, the verdict."""
    try:
        from chatdata.chat.inspect import inspect_messages, read_messages
        from chatdata.chat.tokenizer import BUNDLED, load_tokenizer

        if tokenizer == BUNDLED and not as_json:
            console.print(
                "tokenizer: chatdata's bundled demo tokenizer (not a model's); pass --tokenizer for yours",
                style="dim",
                highlight=False,
            )

        result = inspect_messages(
            read_messages(messages),
            load_tokenizer(tokenizer),
            dialect,
            mask_convention,  # type: ignore[arg-type]
            max_length,
            as_json=as_json,
        )
    except ChatdataError as exc:
        _fail(exc)
    raise typer.Exit(0 if result["ok"] else 1)


@app.command()
def synth(
    messages: Annotated[int, typer.Option("--messages", "-n", help="About how many messages to generate.", min=1)],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write the Hub layout (data/train-*.parquet) into.")
    ],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same forest.")] = 0,
    rows_per_file: Annotated[int, typer.Option(help="Rows per Parquet file.", min=1)] = 500_000,
) -> None:
    """Write a synthetic oasst-shaped forest (Hub Parquet layout) for benchmarks and load tests."""
    from chatdata.synth.writer import write_forest

    for split, paths in write_forest(out, messages, seed=seed, rows_per_file=rows_per_file).items():
        for p in paths:
            out_console.print(f"{split}: {p}", highlight=False)


@app.command()
def diff(
    old: Annotated[
        str, typer.Argument(help="The earlier version: a recipe's output folder or a Hub dataset ORG/NAME.")
    ],
    new: Annotated[str, typer.Argument(help="The later version: a folder or a Hub dataset id.")],
    revision: Annotated[
        str | None, typer.Option(help="Hub revision of OLD (a branch, tag or commit), e.g. the last release.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as JSON (for machines).")] = False,
) -> None:
    """What changed between two versions of a dataset, and why.

    Rows are matched by identity (an oasst row's message path, a pair's path and replies, another source's file
    and line): added, removed, changed (same row, other content), moved (another split), unchanged; each removed
    row is explained by its first reject in NEW (e.g. gates:deleted) or gone_from_source, each added row by
    new_in_source or no_longer_rejected:<stage:reason>; the reject reasons that grew or shrank. Hub ids are
    downloaded through huggingface_hub (build.json and the Parquet files only).
    """
    from chatdata.diff import diff as run_diff
    from chatdata.diff import render
    from chatdata.errors import ChatdataError
    from chatdata.hub.source import dataset_folder

    try:
        changes = run_diff(
            dataset_folder(old, revision=revision, label="OLD"), dataset_folder(new, revision=None, label="NEW")
        )
    except ChatdataError as exc:
        _fail(exc)
    if as_json:
        out_console.print_json(json.dumps(changes))
    else:
        render(changes, out_console, title=f"{old} → {new}")


@app.command()
def publish(
    folder: Annotated[Path, typer.Argument(help="A built dataset folder, e.g. out/oasst_en.")],
    repo: Annotated[str, typer.Option("--repo", help="Hub dataset repo ORG/NAME.")],
    private: Annotated[bool, typer.Option("--private", help="Create the repo private (new repos only).")] = False,
    revision: Annotated[str | None, typer.Option(help="Target branch (created from main if missing).")] = None,
    create_pr: Annotated[bool, typer.Option("--create-pr", help="Open a pull request instead of committing.")] = False,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="List uploads and deletions with sizes and the guard's verdict; write nothing."),
    ] = False,
    max_shrink: Annotated[
        float,
        typer.Option(
            "--max-shrink",
            min=0.0,
            max=1.0,
            help="Refuse when the default config would lose more than this fraction of the remote's rows "
            "(0.5: refuse going from 1000 to under 500 rows; 1: never refuse a shrink).",
        ),
    ] = 0.5,
    force: Annotated[
        bool,
        typer.Option("--force", help="Publish even when the guard refuses (an empty default config, a big shrink)."),
    ] = False,
) -> None:
    """Publish a built folder to the Hub in one atomic commit (stale data files deleted).

    Only the data files and plots chatdata's previous version declared (its card's configs, its build.json) are
    deleted; other remote files are kept. The plan is printed before the guard's verdict.

    A guard refuses, before anything is written, a folder whose default config holds 0 rows, or one whose
    default config has fewer rows than the remote's (read from the remote build.json, else its card) by more
    than --max-shrink; a new repo has nothing to compare with. Refusals exit with code 3, also for --dry-run,
    which prints the verdict. The token comes from HF_TOKEN or `hf auth login` and is never printed.
    """
    from chatdata.hub.guard import PublishRefused

    try:
        from chatdata.hub.publish import publish_folder

        result = publish_folder(
            folder,
            repo,
            private=private,
            revision=revision,
            create_pr=create_pr,
            dry_run=dry_run,
            console=console,
            max_shrink=max_shrink,
            force=force,
        )
    except PublishRefused as exc:
        console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True, highlight=False)
        raise typer.Exit(3) from None
    except ChatdataError as exc:
        _fail(exc)
    out_console.print(result.summary(), highlight=False, markup=False)
    if result.refused:
        raise typer.Exit(3)


def _run_prefect(request: Any) -> dict[str, Any]:
    """Run the build as a Prefect flow in this process (ephemeral server unless PREFECT_API_URL is set).

    Prefect's own log lines (and a failed run's traceback) go to ``WORK/prefect.log``, not the terminal: a
    user error prints as one line like every engine's."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    from flows.build import quiet_prefect_logging, run_flow

    with quiet_prefect_logging(Path(request.work_dir()) / "prefect.log"), _progress() as callbacks:
        return run_flow(request, *callbacks, on_note=_note)


def _note(line: str) -> None:
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def _summary(folder: Path) -> None:
    """The recipe's ledger as a table (a source column for mixtures), the files a source skipped, the rows."""
    from chatdata.diff import print_table
    from chatdata.record import BuildRecord

    record = BuildRecord.read(folder)
    mixed = len(record.sources) > 1
    table = Table(title=f"{record.name} → {folder}", title_justify="left")
    for col in (("source",) if mixed else ()) + ("stage", "unit", "in", "out", "rejected (by reason)"):
        # a narrow terminal wraps a long reason and folds a long word instead of cutting it
        table.add_column(col, justify="right" if col in ("in", "out") else "left", overflow="fold")
    for r in record.ledger:
        rej = "\n".join(f"{k}: {v}" for k, v in r.rejected.items()) or "-"
        if r.moved:
            rej += "\nmoved: " + ", ".join(f"{k}: {v}" for k, v in r.moved.items())
        out_txt = f"{r.rows_out}" + (f" → {r.produced} {r.produced_unit or r.unit}" if r.produced is not None else "")
        cells = [r.stage, r.unit, str(r.rows_in), out_txt, rej]
        table.add_row(*([r.source or "all"] if mixed else []), *cells)
    print_table(out_console, table)  # never cut a reason: piped, the table gets the width it needs
    for name, info in record.sources.items():
        for skipped in info.skipped:
            out_console.print(f"skipped {name}: {skipped.path}: {skipped.reason}", highlight=False, markup=False)
    decontam = record.decontamination
    if decontam is not None:
        checked = ", ".join(f"{b.name} ({sum(b.removed.values())} removed)" for b in decontam.benchmarks)
        line = f"decontamination: {checked or 'no benchmark'}"
        if decontam.left_out:
            line += f"; not checked: {', '.join(decontam.left_out)} (bind with --benchmark NAME=PATH)"
        out_console.print(line, highlight=False, markup=False, soft_wrap=True)
    changes = record.changes
    if changes:
        why = lambda d: "; ".join(f"{k} {n}" for k, n in list(d.items())[:3])  # noqa: E731
        line = f"since the previous version: {changes['added']} added"
        line += f" ({why(changes['added_by_cause'])})" if changes["added_by_cause"] else ""
        line += f", {changes['removed']} removed"
        line += f" ({why(changes['removed_by_reason'])})" if changes["removed_by_reason"] else ""
        line += f", {changes['changed']} changed, {changes['moved']} moved, {changes['unchanged']} unchanged"
        out_console.print(line, highlight=False, markup=False, soft_wrap=True)
    splits = ", ".join(f"{s}: {v.rows}" for cfg in record.outputs.values() for s, v in cfg.items())
    out_console.print(f"[bold]rows[/] {splits}\n")


def run() -> None:
    """The console script: run the app, then leave without tearing the interpreter down.

    Freeing polars', pyarrow's and fastText's native state at interpreter exit costs about 0.4 s after a build,
    a tenth of a small build. When the app has returned and only the main thread is left, the exit handlers run
    (logging flushes, multiprocessing reaps its children), the streams are flushed and the process ends with
    ``os._exit``; otherwise (a Prefect run leaves threads behind, a profiler or debugger is attached) Python exits
    as usual.
    """
    try:
        app()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if threading.active_count() > 1 or sys.getprofile() is not None or sys.gettrace() is not None:
        raise SystemExit(code)  # threads to join, or a profiler/debugger that reports after the program
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing more to say
            stream.flush()
    os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    run()
