"""Forests in the Hub schema: chunks of whole trees (shape, texts, metadata) and the public generators.

Every random number of chunk k comes from ``SeedSequence(seed, spawn_key=(k,))``, so the same call gives the same
table on any run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pyarrow as pa

from chatdata import exactmath
from chatdata.errors import ChatdataError
from chatdata.schema import HUB_SCHEMA
from chatdata.synth.banks import piece_table, supported_langs
from chatdata.synth.columns import detoxify, emojis, iso_dates, labels
from chatdata.synth.rng import Rng, random_uuids
from chatdata.synth.shape import RANKED_STATES, TREE_STATES, grow
from chatdata.synth.text import A_REFUSAL, EN_TYPES, OTHER_TYPES, T_TOPIC, message_kinds, message_texts

#: Default mix of root UI languages (oasst1: English ~45 %, Spanish ~25 %, then a long tail).
LANG_MIX: dict[str, float] = {
    "en": 0.45,
    "es": 0.25,
    "ru": 0.06,
    "de": 0.05,
    "fr": 0.04,
    "zh": 0.035,
    "pt-BR": 0.035,
    "it": 0.02,
    "ja": 0.02,
    "uk-UA": 0.015,
    "ca": 0.015,
    "pl": 0.01,
}

_DAY_US = 86_400_000_000
_START_US = 1_674_172_800_000_000  # 2023-01-20T00:00:00Z
_SPAN_US = 80 * _DAY_US
_MODELS = ("oasst-sft-1-pythia-12b", "oasst-sft-4-pythia-12b-epoch-3.5", "chip20b")


def _chunk(seed: int, stream: int, target: int, mix: Mapping[str, float]) -> tuple[pa.Table, np.ndarray]:
    """Whole trees totalling at least ``target`` messages, and the first row of each tree (plus the end)."""
    rng = Rng(seed, stream)
    t = piece_table()
    shape = grow(rng, target)
    n, n_trees = len(shape.parent), len(shape.state)
    parent, depth, tree = shape.parent, shape.depth, shape.tree
    is_root, role = parent < 0, (depth % 2).astype(np.int64)
    mix_idx = np.array([t.langs.index(lang) for lang in mix])
    mix_p = np.array(list(mix.values()), dtype=np.float64)
    en = t.langs.index("en")

    # per tree: language of the text, language label (en on a few non-English trees), type, topic, coding task
    tree_lang = mix_idx[rng.pick(n_trees, mix_p)]
    mislabel = (tree_lang != en) & (rng.u(n_trees) < 0.03) & (en in mix_idx)
    tree_label = np.where(mislabel, en, tree_lang)
    ttype = np.where(tree_lang == en, rng.pick(n_trees, EN_TYPES), rng.pick(n_trees, OTHER_TYPES))
    topic, task = rng.below(t.n_topics, n_trees), rng.below(t.n_tasks, n_trees)

    # per message: a few replies are written (and labelled) in another language than their tree
    other = mix_idx[rng.pick(n, mix_p)]
    cross = ~is_root & ~mislabel[tree] & (rng.u(n) < 0.03) & (len(mix) > 1)
    text_lang = np.where(cross, other, tree_lang[tree])
    label_lang = np.where(cross, other, tree_label[tree])
    text_en = text_lang == en
    kind = message_kinds(rng, role, parent, is_root, ttype[tree], text_en)
    text = message_texts(rng, kind, text_lang, topic[tree], task[tree], ttype[tree] == T_TOPIC)

    # ranks: a random order inside each sibling group of assistant replies in ranked trees; some groups
    # unranked, some partly (the worst reply unranked), some with a gap (a removed sibling held a rank)
    rank = np.zeros(n, dtype=np.int32)
    rank_null = np.ones(n, dtype=bool)
    a = np.flatnonzero(role == 1)
    order = np.lexsort((rng.u(len(a)), parent[a]))
    a, g = a[order], parent[a[order]]
    new = np.ones(len(a), dtype=bool)
    new[1:] = g[1:] != g[:-1]
    gid = np.cumsum(new) - 1
    gstart = np.flatnonzero(new)
    gsize = np.diff(np.append(gstart, len(a)))
    pos = np.arange(len(a)) - gstart[gid]
    mode = rng.pick(len(gstart), (0.86, 0.06, 0.04, 0.04))  # full, unranked, worst unranked, gap
    mode = np.where(gsize == 1, np.where(rng.u(len(gstart)) < 0.1, 0, 1), mode)
    gap_at = 1 + rng.below(np.maximum(gsize - 1, 1))
    ranked_tree = np.isin(shape.state, RANKED_STATES)[tree[a]]
    m = mode[gid]
    rank[a] = pos + ((m == 3) & (pos >= gap_at[gid]))
    rank_null[a] = ~ranked_tree | (m == 1) | ((m == 2) & (pos == gsize[gid] - 1))

    # review, deletion, synthetic
    state = shape.state[tree]
    review_count = rng.pick(n, (0.005, 0.03, 0.085, 0.76, 0.07, 0.05)).astype(np.int32)
    init_review = is_root & (state == TREE_STATES.index("initial_prompt_review"))
    review_count[init_review] = rng.below(3, int(init_review.sum()))
    deleted = rng.u(n) < np.where(is_root, 0.004, 0.022)
    u = rng.u(n)
    review_result = np.where(deleted, u >= 0.4, u < 0.972)
    review_null = (review_count == 0) | (~deleted & (u >= 0.992)) | init_review
    aborted = is_root & (state == TREE_STATES.index("aborted_low_grade"))
    review_result[aborted], review_null[aborted] = False, False
    review_count[aborted] = np.maximum(review_count[aborted], 3)
    synthetic = rng.u(n) < np.where(role == 1, 0.004, 0.001)
    model = rng.below(len(_MODELS), n)

    # created_date grows along every path: parent time + 30 s + an exponential wait (mean ~5 h, longer deeper)
    when = np.zeros(n, dtype=np.int64)
    when[is_root] = _START_US + (rng.u(n_trees) * _SPAN_US).astype(np.int64)
    wait = (30e6 + rng.expo(n) * 5 * 3_600e6 * (1 + 0.3 * depth)).astype(np.int64)
    for d in range(1, int(depth.max(initial=0)) + 1):
        at = np.flatnonzero(depth == d)
        when[at] = when[parent[at]] + wait[at]
    created = iso_dates(when)

    ids = random_uuids(rng, n)
    n_users = max(4, n // 6)
    users = random_uuids(rng, n_users).take(pa.array((exactmath.power(rng.u(n), 1.6) * n_users).astype(np.int64)))
    root_row = shape.starts[tree]
    columns = {
        "message_id": ids,
        "parent_id": ids.take(pa.array(np.maximum(parent, 0), mask=is_root)),
        "user_id": users,
        "created_date": created,
        "text": text,
        "role": pa.array(["prompter", "assistant"]).take(pa.array(role)),
        "lang": pa.array(t.langs).take(pa.array(label_lang)),
        "review_count": pa.array(review_count, pa.int32()),
        "review_result": pa.array(review_result, pa.bool_(), mask=review_null),
        "deleted": pa.array(deleted, pa.bool_()),
        "rank": pa.array(rank, pa.int32(), mask=rank_null),
        "synthetic": pa.array(synthetic, pa.bool_()),
        "model_name": pa.array(_MODELS).take(pa.array(model, mask=~synthetic)),
        "detoxify": detoxify(rng, text_en, kind == A_REFUSAL),
        "message_tree_id": ids.take(pa.array(root_row)),
        "tree_state": pa.array(TREE_STATES).take(pa.array(state)),
        "emojis": emojis(rng, role),
        "labels": labels(
            rng,
            role,
            review_count,
            ~review_result & ~review_null,
            label_lang != text_lang,
            kind == A_REFUSAL,
        ),
    }
    table = pa.Table.from_arrays([columns[f.name] for f in HUB_SCHEMA], schema=HUB_SCHEMA)
    return table, shape.starts


#: Messages per generated chunk: bounds memory, and fixes the random streams (chunk k uses spawn key k).
CHUNK_MESSAGES = 100_000


def language_mix(langs: Mapping[str, float] | Sequence[str] | None) -> dict[str, float]:
    """The root-language weights ``langs`` asks for (default :data:`LANG_MIX`), checked."""
    if langs is None:
        return dict(LANG_MIX)
    mix = dict(langs) if isinstance(langs, Mapping) else dict.fromkeys(langs, 1.0)
    known = supported_langs()
    unknown = [lang for lang in mix if lang not in known]
    if unknown or not mix:
        raise ChatdataError(f"synth: cannot write text in {unknown or 'no language'}; choose from {', '.join(known)}")
    if any(not (w >= 0) for w in mix.values()) or sum(mix.values()) <= 0:
        raise ChatdataError("synth: language weights must be non-negative and not all zero")
    return mix


def check_count(n_messages: int, seed: int) -> None:
    """Refuse a message count below 1 or a negative seed."""
    if not isinstance(n_messages, int) or n_messages < 1:
        raise ChatdataError(f"synth: the number of messages must be a positive integer, got {n_messages!r}")
    if not isinstance(seed, int) or seed < 0:
        raise ChatdataError(f"synth: the seed must be a non-negative integer, got {seed!r}")


def chunks(n_messages: int, seed: int, mix: dict[str, float]) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """``_chunk`` after ``_chunk`` (random stream 0, 1, ...) until ``n_messages``, each up to ``CHUNK_MESSAGES``."""
    made, stream = 0, 0
    while made < n_messages:
        table, starts = _chunk(seed, stream, min(CHUNK_MESSAGES, n_messages - made), mix)
        made += table.num_rows
        stream += 1
        yield table, starts


def iter_forest(
    n_messages: int, *, seed: int = 0, langs: Mapping[str, float] | Sequence[str] | None = None
) -> Iterator[pa.Table]:
    """The forest of :func:`generate_forest`, as a stream of tables of whole trees (~100k messages each)."""
    check_count(n_messages, seed)
    mix = language_mix(langs)
    for table, _ in chunks(n_messages, seed, mix):
        yield table


def generate_forest(
    n_messages: int, *, seed: int = 0, langs: Mapping[str, float] | Sequence[str] | None = None
) -> pa.Table:
    """Whole oasst-like trees, about ``n_messages`` rows (the last tree may overshoot), in ``HUB_SCHEMA``.

    ``langs`` is a mapping of ``lang`` code to weight for the root languages, or a list (equal weights); the
    default is :data:`LANG_MIX`. Rows are in depth-first pre-order, each tree contiguous. Deterministic: the
    same arguments give the same table.
    """
    tables = list(iter_forest(n_messages, seed=seed, langs=langs))
    return pa.concat_tables(tables)
