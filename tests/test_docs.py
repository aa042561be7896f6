"""README.md and docs/*.md are checked against the code (the convention is described in docs/install.md).

- A fenced block tagged ``sh`` runs as written: ``bash -euo pipefail`` in a fresh empty folder, the installed
  ``chatdata`` (the one beside this Python) first on ``PATH``, the Hub offline. It must succeed; a ``text`` block
  right after it is (part of) what it prints, and every line of that must appear in the output (whitespace aside,
  ``…`` elides).
- Every other block (``bash``, ``text``, ``yaml``, ``python`` …) is shown only: the network, servers, clusters,
  installs.
- Relative links point to files (and headings) that exist; every ``chatdata COMMAND --option`` in code, and every
  ``--option`` on its own in inline code, exists in the CLI (read from the typer app); every module
  (``chatdata.engine``) and repository path (``filters/gates.yaml``) named in code exists.
"""

from __future__ import annotations

import ast
import glob
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = "sh"
OUTPUT = "text"
FENCE = re.compile(r"^```(\S*)\s*$")
#: what a runnable block may not do: it runs offline, on this machine, in seconds
NOT_RUNNABLE = (
    "pip install",
    "chatdata publish",
    "--push-to",
    "--dask-address",
    "--engine prefect",
    "prefect ",
    "dask ",
)
#: options the docs show on their own (in inline code) that belong to another tool than chatdata
OTHER_TOOLS_OPTIONS: dict[str, str] = {}
#: the two commands of the README, exactly as CI (.ci/run) runs the second one
BUILD_COMMAND = "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/chatdata build"
REPO_DIRS = ("src", "flows", "recipes", "filters", "benchmarks", "data_cards", "bench", "scripts", "tests", "docs")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, from 1
    lang: str
    code: str
    output: str | None  # the text block right after a runnable block: what it prints, in part

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _fenced(page: Path) -> tuple[list[tuple[int, int, str, str]], list[str]]:
    """The fenced blocks of a page as (first line, last line, language, code), and the lines outside them."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, prose, i = [], [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            prose.append(lines[i])
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == "```"), None)
        assert end is not None, f"{page.relative_to(ROOT)}:{i + 1}: the code fence is never closed"
        found.append((i + 1, end + 1, match.group(1), "\n".join(lines[i + 1 : end]) + "\n"))
        i = end + 1
    return found, prose


def blocks(page: Path) -> list[Block]:
    found, _ = _fenced(page)
    lines = page.read_text(encoding="utf-8").splitlines()
    result = []
    for k, (first, last, lang, code) in enumerate(found):
        output = None
        if lang == RUNNABLE and k + 1 < len(found):
            next_first, _, next_lang, next_code = found[k + 1]
            if next_lang == OUTPUT and not any(line.strip() for line in lines[last : next_first - 1]):
                output = next_code
        result.append(Block(page, first, lang, code, output))
    return result


def prose(page: Path) -> str:
    return "\n".join(_fenced(page)[1])


def inline_code(page: Path) -> list[str]:
    """The inline code spans outside fenced blocks, whitespace squashed (a span may wrap across lines)."""
    return [squash(span) for span in re.findall(r"`([^`]+)`", prose(page))]


def code_texts(page: Path) -> list[tuple[str, str]]:
    """(where, text) for every fenced block (continuation lines joined) and inline code span of a page."""
    name = str(page.relative_to(ROOT))
    texts = [(b.where, b.code.replace("\\\n", " ")) for b in blocks(page)]
    return texts + [(f"{name}: `{span}`", span) for span in inline_code(page)]


def squash(text: str) -> str:
    return " ".join(text.split())


def runnable_blocks() -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.lang == RUNNABLE]


# ------------------------------------------------------------------------------------------------ the CLI


def cli_options() -> dict[str, set[str]]:
    """Each ``chatdata`` subcommand -> its options (long, short and ``--no-`` forms), from the typer app."""
    import typer

    from chatdata.cli import app

    group = typer.main.get_command(app)
    return {
        name: {"--help"} | {opt for p in command.params for opt in (*p.opts, *p.secondary_opts) if opt.startswith("-")}
        for name, command in group.commands.items()  # type: ignore[attr-defined]
    }


INVOCATION = re.compile(r"(?<![\w.\-\[])chatdata[ \t]+([a-z][\w-]*)([^\n]*)")


def invocations(text: str) -> list[tuple[str, list[str]]]:
    """``chatdata SUB ...`` in a piece of code: the subcommand and the options given to it (up to the end of the
    command: a pipe, ``;``, ``&&``, a comment, a redirection or the end of the line)."""
    found = []
    for match in INVOCATION.finditer(text):
        rest = re.split(r"\s(?:\|\|?|;|#|\d?>|&&)|[);]", match.group(2))[0]
        options = [t.split("=")[0] for t in rest.split() if re.match(r"^--?[A-Za-z]", t)]
        found.append((match.group(1), options))
    return found


def test_every_chatdata_command_and_option_in_the_docs_exists() -> None:
    cli = cli_options()
    every_option = set().union(*cli.values()) | {"--version"}
    problems, seen = [], 0
    for page in PAGES:
        for where, text in code_texts(page):
            for sub, options in invocations(text):
                seen += 1
                if sub not in cli:
                    problems.append(f"{where}: `chatdata {sub}`: no such command (there are {sorted(cli)})")
                    continue
                problems += [f"{where}: `chatdata {sub} {o}`: no such option" for o in options if o not in cli[sub]]
        for span in inline_code(page):
            if re.match(r"^--?[A-Za-z]", span):
                option = span.split()[0].split("=")[0]
                if option not in every_option and option not in OTHER_TOOLS_OPTIONS:
                    problems.append(f"{page.relative_to(ROOT)}: `{span}`: no chatdata command has {option}")
    assert seen > 40, f"only {seen} chatdata commands found in the docs: is the pattern still right?"
    assert not problems, "\n".join(problems)


def test_the_cli_reading_finds_what_the_docs_use() -> None:
    cli = cli_options()
    assert {"build", "recipes", "benchmarks", "inspect", "diff", "publish", "synth"} <= set(cli)
    assert {"--source", "-s", "--no-decontaminate", "--tokenizer", "--dask-address"} <= cli["build"]
    assert invocations("x && .venv/bin/chatdata build oasst_en -s a=b --out o | grep rows # --not-this") == [
        ("build", ["-s", "--out"])
    ]
    assert invocations("python -m chatdata.synth sample; pip install 'chatdata[dask]'") == []


# ------------------------------------------------------------------------------------------------ links, names


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(line.lstrip("#")) for line in prose(page).splitlines() if re.match(r"^#{1,6} ", line)}


def test_every_relative_link_points_to_something_that_exists() -> None:
    problems, seen = [], 0
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", prose(page)):
            if re.match(r"^[a-z]+:", target):  # https:, mailto:
                continue
            seen += 1
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(ROOT)}: ({target})"
            if not file.exists():
                problems.append(f"{where}: no such file")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                problems.append(f"{where}: no heading #{anchor} in {file.name} ({sorted(anchors(file))})")
    assert seen > 20
    assert not problems, "\n".join(problems)


def test_the_readme_links_every_docs_page() -> None:
    linked = {Path(t.partition("#")[0]).name for t in re.findall(r"\]\((docs/[^)\s]+)\)", prose(README))}
    assert {p.name for p in PAGES[1:]} <= linked


def _top_level_names(path: Path) -> set[str]:
    """What a module defines or imports at its top level, read without importing it (flows import Prefect)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _resolve(dotted: str) -> bool:
    """``chatdata.settings.BuildRequest``: the modules exist in this checkout and the last one defines the name
    (read from the files: importing would take seconds)."""
    first, *rest = dotted.split(".")
    where = ROOT / "src" / first if first == "chatdata" else ROOT / first
    for i, part in enumerate(rest):
        if (where / part / "__init__.py").is_file():
            where = where / part
        elif (where / f"{part}.py").is_file():
            where = where / f"{part}.py"
            return i + 1 == len(rest) or rest[i + 1] in _top_level_names(where)
        else:
            init = where / "__init__.py" if where.is_dir() else where
            return part in _top_level_names(init)
    return where.exists()


def test_every_module_and_repository_path_named_in_code_exists() -> None:
    problems = []
    for page in PAGES:
        for where, text in code_texts(page):
            for dotted in re.findall(r"(?<![\w./-])((?:chatdata|flows)(?:\.[A-Za-z_]\w*)+)", text):
                if not _resolve(dotted):
                    problems.append(f"{where}: {dotted} cannot be imported")
            for token in text.split():
                token = token.strip("\"'[](),;:")
                top = token.split("/")[0]
                if not (top in REPO_DIRS and "/" in token) or any(c in token for c in "<>{}…") or "..." in token:
                    continue
                if not (glob.glob(str(ROOT / token)) if "*" in token else (ROOT / token).exists()):
                    problems.append(f"{where}: {token} does not exist")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------------------------------------ the two commands


def test_the_two_commands_stay_as_ci_runs_them() -> None:
    shown = [b.code.strip() for b in blocks(README) if b.lang == "bash"]
    assert BUILD_COMMAND in shown
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert ci and ci[-1] in shown, "the README's test command must be the one .ci/run runs"


def test_the_recipes_table_has_the_numbers_a_build_prints() -> None:
    table = {}
    for line in prose(README).splitlines():
        if cells := re.match(r"^\| `(\w+)` \|.*\| (\d+) / (\d+) \|$", line):
            table[cells.group(1)] = (int(cells.group(2)), int(cells.group(3)))
    build = next(b for b in blocks(ROOT / "docs" / "recipes.md") if b.output and "→ out/" in b.output)
    printed = {}
    for name, rows in re.findall(r"^(\w+) → out/\w+\n(rows .*)$", build.output or "", re.M):
        train, test = re.search(r"train_\w+: (\d+)", rows), re.search(r"test_\w+: (\d+)", rows)
        printed[name] = (int(train.group(1)), int(test.group(1)))  # type: ignore[union-attr]
    assert len(table) == 6 and table == printed


# ------------------------------------------------------------------------------------------------ runnable blocks


def test_runnable_blocks_stay_offline_and_small() -> None:
    found = runnable_blocks()
    assert len(found) >= 10 and any(b.page == README for b in found)
    for block in found:
        assert not any(marker in block.code for marker in NOT_RUNNABLE), f"{block.where}: show it as ```bash"


@pytest.mark.slow
@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: b.where)
def test_a_runnable_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    # as a user runs them: PREFECT_API_URL would make `chatdata build` use Prefect; the suite's stage checks are off
    for name in ("PREFECT_API_URL", "FORCE_COLOR", "CHATDATA_CHECK_STAGES"):
        env.pop(name, None)
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    said = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{block.where} failed ({proc.returncode}):\n{block.code}\n{said[-3000:]}"
    assert "Traceback" not in said, f"{block.where}:\n{said[-3000:]}"
    missing = [
        line
        for line in (block.output or "").splitlines()
        if any(piece and piece not in squash(said) for piece in map(squash, line.split("…")))
    ]
    missing_lines = "\n".join(missing)
    assert not missing, f"{block.where}: not printed:\n{missing_lines}\n--- it printed:\n{said[-3000:]}"
