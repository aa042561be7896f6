"""The metadata columns of generated messages: emojis, labels, detoxify scores, ISO timestamps."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from chatdata import exactmath
from chatdata.schema import DETOXIFY_FIELDS, HUB_SCHEMA
from chatdata.synth.rng import Rng

_EMOJIS = (
    "+1",
    "-1",
    "_skip_reply",
    "_skip_ranking",
    "_skip_labeling",
    "red_flag",
    "heart",
    "laugh",
    "rocket",
    "100",
    "confused",
)
_EMOJI_P = np.array([0.55, 0.12, 0.12, 0.06, 0.03, 0.02, 0.05, 0.04, 0.02, 0.03, 0.02])
_EMOJI_SCALE = np.array([1.6, 0.5, 0.3, 0.2, 0.2, 0.2, 0.6, 0.6, 0.4, 0.4, 0.2])
# oasst1's label order; fails_task and helpfulness only on assistant messages
_LABELS = (
    "spam",
    "fails_task",
    "lang_mismatch",
    "pii",
    "not_appropriate",
    "hate_speech",
    "sexual_content",
    "quality",
    "toxicity",
    "humor",
    "helpfulness",
    "creativity",
    "violence",
)
_FLAG_P = np.array([0.03, 0.08, 0.02, 0.01, 0.02, 0.01, 0.01])  # the 7 yes/no labels
_SCALE_MEAN = np.array([0.65, 0.08, 0.2, 0.65, 0.45, 0.04])  # quality, toxicity, humor, helpfulness, creativity, ...


def _struct(name: str, children: list[pa.Array], null: np.ndarray) -> pa.Array:
    fields = list(HUB_SCHEMA.field(name).type)
    return pa.StructArray.from_arrays(children, fields=fields, mask=pa.array(null, pa.bool_()))


def _lists(matrix: np.ndarray, values: np.ndarray, value_type: pa.DataType) -> tuple[pa.Array, np.ndarray]:
    """Per-row lists of ``values[r, c]`` where ``matrix[r, c]``; returns the list array and the column ids."""
    rows, cols = np.nonzero(matrix)
    offsets = np.zeros(len(matrix) + 1, dtype=np.int32)
    np.cumsum(matrix.sum(axis=1), out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[rows, cols], value_type)), cols


def emojis(rng: Rng, role: np.ndarray) -> pa.Array:
    n, e = len(role), len(_EMOJIS)
    has = rng.u(n) < 0.5
    m = (rng.u(n * e).reshape(n, e) < _EMOJI_P) & has[:, None]
    m[role == 1, _EMOJIS.index("_skip_ranking")] = False
    counts = (1 + np.floor(rng.expo(n * e).reshape(n, e) * _EMOJI_SCALE)).astype(np.int32)
    count_list, cols = _lists(m, counts, pa.int32())
    offsets = count_list.offsets
    names = pa.ListArray.from_arrays(offsets, pa.array(_EMOJIS).take(pa.array(cols)))
    return _struct("emojis", [names, count_list], ~m.any(axis=1))


def labels(
    rng: Rng,
    role: np.ndarray,
    review_count: np.ndarray,
    bad: np.ndarray,
    mismatch: np.ndarray,
    refusal: np.ndarray,
) -> pa.Array:
    n, k = len(role), len(_LABELS)
    labelled = (review_count > 0) & (rng.u(n) < 0.92)
    m = np.broadcast_to(labelled[:, None], (n, k)).copy()
    m[role == 0, _LABELS.index("fails_task")] = False
    m[role == 0, _LABELS.index("helpfulness")] = False
    count = np.broadcast_to(np.maximum(review_count, 1)[:, None], (n, k)).astype(np.int32)
    scale_cols = [7, 8, 9, 10, 11, 12]
    count[:, scale_cols] = np.maximum(1, count[:, scale_cols] - (rng.u(n * 6).reshape(n, 6) < 0.15))
    value = np.zeros((n, k))
    # yes/no labels: the share of ``count`` reviewers who said yes (binomial, inverse CDF on one uniform)
    p = np.broadcast_to(_FLAG_P, (n, 7)).copy()
    p[:, 0] = np.where(bad, 0.5, p[:, 0])
    p[:, 1] = np.where(refusal, 0.3, p[:, 1])
    p[:, 2] = np.where(mismatch, 0.6, p[:, 2])
    c = count[:, :7].astype(np.float64)
    u = rng.u(n * 7).reshape(n, 7)
    yes = np.zeros((n, 7))
    pmf = exactmath.power_int(1 - p, count[:, :7])
    cdf = pmf.copy()
    for j in range(1, 6):
        step = u > cdf
        yes += step
        pmf = pmf * (c - j + 1) / j * p / (1 - p)
        cdf = cdf + pmf
    value[:, :7] = np.minimum(yes, c) / c
    # 0-1 scales: the mean of ``count`` votes in quarter steps, i.e. a multiple of 1 / (4 * count)
    cs = count[:, scale_cols].astype(np.float64)
    noise = (rng.u(n * 6).reshape(n, 6) - 0.5) * 0.9 / np.sqrt(cs)
    value[:, scale_cols] = np.rint(np.clip(_SCALE_MEAN + noise, 0, 1) * 4 * cs) / (4 * cs)
    value_list, cols = _lists(m, value, pa.float64())
    offsets = value_list.offsets
    names = pa.ListArray.from_arrays(offsets, pa.array(_LABELS).take(pa.array(cols)))
    count_list = pa.ListArray.from_arrays(offsets, pa.array(count[m], pa.int32()))
    return _struct("labels", [names, value_list, count_list], ~labelled)


def detoxify(rng: Rng, text_en: np.ndarray, refusal: np.ndarray) -> pa.Array:
    n = len(text_en)
    null = rng.u(n) < np.where(text_en, 0.05, 0.6)
    cube = rng.u(n)
    tox = exactmath.pow10(-4.0 + 4.0 * (cube * cube * cube))
    tox = np.where(refusal, np.maximum(tox, 0.001), tox)
    scale = {
        "toxicity": 1.0,
        "severe_toxicity": 0.02,
        "obscene": 0.4,
        "identity_attack": 0.15,
        "insult": 0.6,
        "threat": 0.05,
        "sexual_explicit": 0.1,
    }
    children = []
    for f in DETOXIFY_FIELDS:
        v = tox if f == "toxicity" else tox * scale[f] * exactmath.pow10(-rng.u(n))
        children.append(pa.array(v))
    return _struct("detoxify", children, null)


def iso_dates(micros: np.ndarray) -> pa.Array:
    """``2023-02-07T17:29:24.727400+00:00`` strings from UTC microseconds (Arrow's cast, then fixed-width
    edits)."""
    n = len(micros)
    plain = pa.array(micros).cast(pa.timestamp("us")).cast(pa.string())  # "2023-02-07 17:29:24.727400"
    offsets = np.frombuffer(plain.buffers()[1], np.int32)[: n + 1]
    if n and not (np.diff(offsets) == 26).all():
        raise RuntimeError("synth: timestamps outside the years 1000-9999")
    out = np.empty((n, 32), dtype=np.uint8)
    out[:, :26] = np.frombuffer(plain.buffers()[2], np.uint8)[offsets[0] : offsets[0] + 26 * n].reshape(n, 26)
    out[:, 10] = ord("T")
    out[:, 26:] = np.frombuffer(b"+00:00", np.uint8)
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(np.arange(0, 32 * (n + 1), 32, dtype=np.int32)), pa.py_buffer(out.tobytes())
    )
