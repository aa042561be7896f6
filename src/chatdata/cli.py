"""The ``chatdata`` command line."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

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


class Engine(str, Enum):
    prefect = "prefect"
    local = "local"
    sharded = "sharded"


def _fail(exc: Exception) -> None:
    """Print one line (never wrapped, no traceback) and exit 2."""
    console.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True, highlight=False)
    raise typer.Exit(2)


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
    """List the recipes with a one-line description each."""
    from chatdata.recipes import RECIPES

    table = Table("recipe", "what it builds", "rebuilds", box=None)
    for r in RECIPES.values():
        table.add_row(r.name, r.summary, r.rebuilds)
    out_console.print(table)


@app.command()
def build(
    recipe_names: Annotated[
        list[str] | None,
        typer.Argument(metavar="[RECIPE]...", help="Recipes to build (default: oasst_en); see `chatdata recipes`."),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            "-s",
            help="A local file/folder of oasst data or a Hub dataset id (OpenAssistant/oasst1). "
            "Default: the bundled sample.",
        ),
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="Hub revision (branch, tag or commit) to pin the source to.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder; each recipe goes to OUT/RECIPE.")] = Path(
        "out"
    ),
    test_fraction: Annotated[
        float | None,
        typer.Option(
            help="Share of trees in the test split when the source has no split of its own.",
            min=0.0,
            max=0.99,
        ),
    ] = None,
    split_seed: Annotated[str, typer.Option(help="Salt for the tree-hash split.")] = "",
    leak_policy: Annotated[
        str, typer.Option(help="What to do with test trees whose prompt is also in train: move | drop.")
    ] = "move",
    max_shard_size: Annotated[int, typer.Option(help="Largest Parquet shard in MB.", min=1)] = 500,
    engine: Annotated[
        Engine,
        typer.Option(
            help="prefect: run the Prefect flow (ephemeral server unless PREFECT_API_URL is set); "
            "local: run the stages in this process; sharded: cut the input into tree-shards and run them in "
            "--workers processes (bounded memory, same output bytes; for millions of messages)."
        ),
    ] = Engine.prefect,
    push_to: Annotated[
        str | None,
        typer.Option(
            "--push-to",
            help="Publish each built recipe to ORG/NAME (use {recipe} in the name with several recipes).",
        ),
    ] = None,
    decontaminate: Annotated[
        bool | None,
        typer.Option(
            "--decontaminate/--no-decontaminate",
            help="Drop dialogues overlapping HumanEval prompts (default: the recipe's setting, on for all recipes).",
        ),
    ] = None,
    pair_mode: Annotated[
        str | None, typer.Option(help="Preference pairs: best_vs_worst (default) or all_pairs.")
    ] = None,
    on_special: Annotated[
        str, typer.Option(help="Content holding a special-token string: reject (default) or escape.")
    ] = "reject",
    tokenizer: Annotated[
        str | None,
        typer.Option(help="Validate label masks with this tokenizer (tokenizer.json, a folder or a Hub id)."),
    ] = None,
    dialect: Annotated[
        str, typer.Option(help="Chat rendering for --tokenizer: starchat, chatml, guanaco or template.")
    ] = "starchat",
    mask_convention: Annotated[
        str,
        typer.Option(
            help="Label-mask convention: starchat (header, reply, <|end|> and newline trained) or content_only."
        ),
    ] = "starchat",
    dask_address: Annotated[
        str | None,
        typer.Option(help="Run the per-tree stages as tree-shards on this Dask scheduler (tcp://HOST:8786)."),
    ] = None,
    shards: Annotated[
        int, typer.Option(help="Tree-shards per sharded stage (independent of the worker count).", min=1, max=4096)
    ] = 16,
    tree_shards: Annotated[
        int | None,
        typer.Option(
            help="With --engine sharded: number of tree-shards (default: about one per 150k messages).",
            min=1,
            max=4096,
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option(help="With --engine sharded: worker processes running shards at once.", min=1, max=256)
    ] = 2,
    force: Annotated[
        bool, typer.Option("--force", help="Re-run every stage even if its inputs are unchanged.")
    ] = False,
    work: Annotated[
        Path | None, typer.Option(help="Stage workspace (default OUT/.work); keep it for cheap reruns.")
    ] = None,
    max_length: Annotated[
        int,
        typer.Option(
            help="Training length for --tokenizer; rows with no trained token after truncation are rejected.",
            min=8,
        ),
    ] = 2048,
) -> None:
    """Build recipes into Hub-style dataset folders (Parquet, README.md card, build.json)."""
    names = recipe_names or ["oasst_en"]
    try:
        if push_to:
            _check_push_target(push_to, names)
        from chatdata.pipeline import STAGES, BuildSettings, run_local
        from chatdata.recipes import get_recipe

        for n in names:
            get_recipe(n)
        settings = BuildSettings(
            source=source,
            revision=revision,
            test_fraction=test_fraction,
            split_seed=split_seed,
            leak_policy=leak_policy,
            max_shard_bytes=max_shard_size * 1024 * 1024,
            decontaminate=decontaminate,
            pair_mode=pair_mode,
            on_special=on_special,
            tokenizer=tokenizer,
            dialect=dialect,
            mask_convention=mask_convention,
            max_length=max_length,
        )
        settings.validate()
        total = len(STAGES) + (len(names) - 1) * (len(STAGES) - 2)
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            bar = progress.add_task("starting", total=total)

            def on_stage(recipe: str, stage: str) -> None:
                progress.update(bar, description=f"{recipe}: {stage}", advance=0)
                progress.advance(bar)

            if dask_address and engine is not Engine.prefect:
                raise ChatdataError("--dask-address needs --engine prefect (the Dask runner is Prefect's)")
            if engine is Engine.local:
                run_local(names, settings, out, work=work, on_stage=on_stage)
                result = None
            elif engine is Engine.sharded:
                from chatdata.sharded_build import run_sharded_build

                progress.update(bar, total=None)
                run_sharded_build(
                    names, settings, out, work=work, shards=tree_shards, workers=workers,
                    on_step=lambda msg: progress.update(bar, description=msg),
                )  # fmt: skip
                result = None
            else:
                result = _run_prefect(
                    names, settings, out, on_stage,
                    push_to=push_to, dask_address=dask_address, shards=shards, force=force, work=work,
                )  # fmt: skip
            progress.update(bar, description="done", completed=total)
    except ChatdataError as exc:
        _fail(exc)
    for n in names:
        _summary(out / n)
    if result is not None:
        cached = sum(1 for r in result.get("stages", []) if r.get("status") == "cached")
        if cached:
            out_console.print(f"{cached} stage(s) reused from the workspace cache (inputs unchanged)")
        for info in result.get("pushed", {}).values():
            out_console.print(info["summary"], highlight=False, markup=False)
    elif push_to:
        from chatdata.hub import publish_folder

        try:
            for n in names:
                summary = publish_folder(out / n, push_to.replace("{recipe}", n), console=console).summary()
                out_console.print(summary, highlight=False, markup=False)
        except ChatdataError as exc:
            _fail(exc)


def _check_push_target(push_to: str, names: list[str]) -> None:
    """Fail before building on a bad repo id or a missing token."""
    from chatdata.hub.client import LOGIN_HINT, HubAuthError, resolve_token, validate_repo_id

    if len(names) > 1 and "{recipe}" not in push_to:
        raise ChatdataError("--push-to needs a {recipe} placeholder when building several recipes")
    for n in names:
        validate_repo_id(push_to.replace("{recipe}", n))
    if resolve_token(None) is None:
        raise HubAuthError(f"--push-to needs a Hugging Face token: {LOGIN_HINT}")


@app.command()
def inspect(
    tokenizer: Annotated[str, typer.Option("--tokenizer", help="tokenizer.json, a tokenizer folder or a Hub id.")],
    messages: Annotated[
        str,
        typer.Option(
            "--messages",
            help='JSON file with a list of {role, content} (or {"messages": [...]}); - reads stdin.',
        ),
    ],
    dialect: Annotated[str, typer.Option(help="starchat, chatml, guanaco or template.")] = "starchat",
    mask_convention: Annotated[str, typer.Option("--mask-convention", help="starchat or content_only.")] = "starchat",
    max_length: Annotated[int, typer.Option("--max-length", help="Truncate to this many tokens.", min=1)] = 2048,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object {text, input_ids, labels} and nothing else.")
    ] = False,
) -> None:
    """Show how one dialogue becomes training tokens: trained tokens highlighted, masked ones dimmed, the verdict."""
    try:
        from chatdata.chat import inspect_messages, load_tokenizer, read_messages

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
    rows_per_file: Annotated[int, typer.Option(help="Rows per Parquet shard.", min=1)] = 500_000,
) -> None:
    """Write a synthetic oasst-shaped forest (Hub Parquet layout) for benchmarks and load tests."""
    from chatdata.synth import write_forest

    for split, paths in write_forest(out, messages, seed=seed, rows_per_file=rows_per_file).items():
        for p in paths:
            out_console.print(f"{split}: {p}", highlight=False)


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
    """Publish a built folder to the Hub in one atomic commit (stale shards deleted).

    A guard refuses, before anything is written, a folder whose default config holds 0 rows, or one whose
    default config has fewer rows than the remote's (read from the remote build.json, else its card) by more
    than --max-shrink; a new repo has nothing to compare with. Refusals exit with code 3, also for --dry-run,
    which prints the verdict. The token comes from HF_TOKEN or `hf auth login` and is never printed.
    """
    from chatdata.hub.publish import PublishRefused

    try:
        from chatdata.hub import publish_folder

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


def _run_prefect(
    names: list[str], settings: object, out: Path, on_stage: Callable[[str, str], None], **extra: Any
) -> dict[str, Any]:
    """Run the Prefect flow in this process (ephemeral server unless PREFECT_API_URL is set)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from dataclasses import asdict

    from flows.build import build_flow, make_params, set_progress_callback

    work = extra.pop("work")
    params = make_params(
        recipes=names,
        out=str(out),
        work=str(work) if work else None,
        **asdict(settings),
        **extra,  # type: ignore[call-overload]
    )
    set_progress_callback(on_stage)
    try:
        return build_flow(params)
    finally:
        set_progress_callback(None)


def _summary(folder: Path) -> None:
    build = json.loads((folder / "build.json").read_text())
    table = Table(title=f"{build['recipe']['name']} → {folder}", title_justify="left")
    for col in ("stage", "unit", "in", "out", "rejected (by reason)"):
        table.add_column(col, justify="right" if col in ("in", "out") else "left")
    for r in build["ledger"]:
        rej = ", ".join(f"{k}: {v}" for k, v in r["rejected"].items()) or "-"
        if r.get("moved"):
            rej += " | moved: " + ", ".join(f"{k}: {v}" for k, v in r["moved"].items())
        out_unit = r["produced_unit"] if r.get("produced_unit") else r["unit"]
        out_txt = f"{r['rows_out']}" + (f" → {r['produced']} {out_unit}" if r.get("produced") is not None else "")
        table.add_row(r["stage"], r["unit"], str(r["rows_in"]), out_txt, rej)
    out_console.print(table)
    splits = ", ".join(f"{s}: {v['rows']}" for cfg in build["outputs"].values() for s, v in cfg.items())
    out_console.print(f"[bold]rows[/] {splits}\n")


if __name__ == "__main__":  # pragma: no cover
    app()
