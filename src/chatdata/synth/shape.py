"""Tree shapes: who replies to whom, in depth-first pre-order.

Prompters get 0-5 assistant replies (the root 1-5, mostly 3); assistants get a capped Poisson number of prompter
follow-ups whose mean decays with depth and scales with a log-normal per-tree "activity", which gives oasst1's
shape: ~8.6 messages per ready tree, most trees 4-10 messages, a tail past 100 and depth up to ~12-15.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chatdata import exactmath
from chatdata.synth.rng import Rng

_MAX_DEPTH = 15  # 4 bits per level of the pre-order sort key, 15 levels -> 60 bits
_ROOT_REPLIES = (0.0, 0.12, 0.18, 0.45, 0.15, 0.10)  # P(k assistant replies), k = 0..5, at the root
_DEEP_REPLIES = (0.08, 0.55, 0.25, 0.10, 0.015, 0.005)  # ... to a later prompter message
_FOLLOW_MEAN = 0.43  # mean prompter follow-ups to a first-level assistant reply (times the tree's activity)
_FOLLOW_DECAY = 0.5  # per assistant level
_ACTIVITY_SIGMA = 0.55

TREE_STATES = (
    "ready_for_export",
    "growing",
    "aborted_low_grade",
    "ranking",
    "backlog_ranking",
    "halted_by_moderator",
    "prompt_lottery_waiting",
    "initial_prompt_review",
)
_STATE_P = (0.93, 0.02, 0.02, 0.01, 0.005, 0.005, 0.005, 0.005)
_ROOT_ONLY_STATES = (2, 6, 7)
RANKED_STATES = (0, 5)


@dataclass
class Shape:
    parent: np.ndarray  # row of the parent, -1 at a root; rows in depth-first pre-order, trees contiguous
    depth: np.ndarray
    tree: np.ndarray  # tree number per row, 0..T-1
    starts: np.ndarray  # (T + 1,) first row of each tree, then n
    state: np.ndarray  # per tree, index into TREE_STATES


def _grow_batch(rng: Rng, state: np.ndarray, activity: np.ndarray) -> tuple[np.ndarray, ...]:
    n_trees = len(state)
    parents, depths, trees, keys = (
        [np.full(n_trees, -1)],
        [np.zeros(n_trees, np.int64)],
        [np.arange(n_trees)],
        [],
    )
    keys.append(np.zeros(n_trees, np.uint64))
    cur, cur_tree, cur_key, next_id = np.arange(n_trees), np.arange(n_trees), keys[0], n_trees
    root_only = np.isin(state, _ROOT_ONLY_STATES)
    for d in range(1, _MAX_DEPTH + 1):
        if len(cur) == 0:
            break
        if d % 2 == 1:  # parents are prompters: assistant replies
            counts = rng.pick(len(cur), _ROOT_REPLIES if d == 1 else _DEEP_REPLIES)
            if d == 1:
                counts[root_only] = 0
        else:  # parents are assistants: prompter follow-ups
            lam = activity[cur_tree] * _FOLLOW_MEAN * exactmath.power_int(_FOLLOW_DECAY, (d - 2) // 2)
            counts = rng.poisson(lam, cap=4)
        total = int(counts.sum())
        if total == 0:
            break
        first = np.cumsum(counts) - counts
        sib = np.arange(total) - np.repeat(first, counts)
        shift = np.uint64(4 * (_MAX_DEPTH - d))
        child_key = np.repeat(cur_key, counts) | ((sib.astype(np.uint64) + np.uint64(1)) << shift)
        child_tree = np.repeat(cur_tree, counts)
        parents.append(np.repeat(cur, counts))
        depths.append(np.full(total, d, np.int64))
        trees.append(child_tree)
        keys.append(child_key)
        cur, cur_tree, cur_key = np.arange(next_id, next_id + total), child_tree, child_key
        next_id += total
    parent, depth, tree, key = (np.concatenate(x) for x in (parents, depths, trees, keys))
    order = np.lexsort((key, tree))  # pre-order: by tree, then by path of sibling numbers
    pos = np.empty_like(order)
    pos[order] = np.arange(len(order))
    parent = parent[order]
    parent = np.where(parent >= 0, pos[np.maximum(parent, 0)], -1)
    return parent, depth[order], tree[order]


def grow(rng: Rng, target: int) -> Shape:
    """Whole trees until at least ``target`` messages (the last tree may overshoot)."""
    parts: list[tuple[np.ndarray, ...]] = []
    have = 0
    while have < target:
        need = target - have
        n_trees = max(4, int(need / 7.0) + 4)
        state = rng.pick(n_trees, _STATE_P)
        activity = exactmath.exp(_ACTIVITY_SIGMA * rng.normal(n_trees) - _ACTIVITY_SIGMA * _ACTIVITY_SIGMA / 2)
        activity[state == 1] *= 0.5  # growing trees are young
        parent, depth, tree = _grow_batch(rng, state, activity)
        sizes = np.bincount(tree, minlength=n_trees)
        cum = np.cumsum(sizes)
        keep = int(np.searchsorted(cum, need)) + 1 if cum[-1] >= need else n_trees
        rows = int(cum[keep - 1])
        parts.append((parent[:rows], depth[:rows], tree[:rows], state[:keep], sizes[:keep]))
        have += rows
    row_off = np.cumsum([0] + [len(p[0]) for p in parts])
    tree_off = np.cumsum([0] + [len(p[3]) for p in parts])
    parent = np.concatenate([np.where(p[0] >= 0, p[0] + o, -1) for p, o in zip(parts, row_off[:-1], strict=True)])
    tree = np.concatenate([p[2] + o for p, o in zip(parts, tree_off[:-1], strict=True)])
    sizes = np.concatenate([p[4] for p in parts])
    starts = np.concatenate([[0], np.cumsum(sizes)])
    return Shape(parent, np.concatenate([p[1] for p in parts]), tree, starts, np.concatenate([p[3] for p in parts]))
