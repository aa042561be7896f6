"""Message texts: each message gets a "kind" (what it is), then slots emit pieces of the piece table in order; a
stable sort by row and one pyarrow ``binary_join`` turn the pieces into strings."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from chatdata import exactmath
from chatdata.synth.banks import BANK, PieceTable, piece_table
from chatdata.synth.rng import Rng

# Tree types (what the root asks) and message kinds.
T_TOPIC, T_FREE, T_CODE, T_OA = range(4)
EN_TYPES = (0.50, 0.32, 0.16, 0.02)
OTHER_TYPES = (0.60, 0.38, 0.0, 0.02)
(
    P_TOPIC,
    P_FREE,
    P_CODE,
    P_OA,
    P_FOLLOW,
    P_CODEFOLLOW,
    P_THANKS,
    P_NEWQ,
    A_NORMAL,
    A_SHORT,
    A_REFUSAL,
    A_CODE,
    A_OA,
) = range(13)


class _Builder:
    def __init__(self, table: PieceTable, rng: Rng, lang: np.ndarray) -> None:
        self.t, self.rng, self.lang = table, rng, lang
        self.at_start = np.ones(len(lang), dtype=bool)
        self.rows: list[np.ndarray] = []
        self.ids: list[np.ndarray] = []

    def size(self, bank: str, rows: np.ndarray) -> np.ndarray:
        return self.t.size[self.lang[rows], BANK[bank]]

    def put(self, bank: str, rows: np.ndarray, entry: np.ndarray) -> None:
        """Append entry ``entry[i]`` of ``bank`` to row ``rows[i]`` (repeated rows must be adjacent)."""
        if len(rows) == 0:
            return
        b = BANK[bank]
        if (self.t.size[self.lang[rows], b] <= entry).any():
            raise RuntimeError(f"synth: bank {bank!r} used for a language that lacks it")
        first = np.ones(len(rows), dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        spaced = ~(first & self.at_start[rows])
        self.rows.append(rows)
        self.ids.append(2 * (self.t.base[self.lang[rows], b] + entry) + spaced)
        self.at_start[rows] = self.t.ends_block[b]

    def one(self, bank: str, rows: np.ndarray) -> None:
        self.put(bank, rows, self.rng.below(self.size(bank, rows)))

    def fixed(self, bank: str, rows: np.ndarray, entry: np.ndarray | int = 0) -> None:
        self.put(bank, rows, np.broadcast_to(np.asarray(entry, dtype=np.int64), rows.shape))

    def seq(
        self,
        bank: str,
        rows: np.ndarray,
        counts: np.ndarray,
        start: np.ndarray | None = None,
        stride: np.ndarray | None = None,
        j0: np.ndarray | None = None,
    ) -> None:
        """``counts[i]`` distinct entries per row: ``(start + j * stride) % size`` for consecutive ``j``."""
        keep = counts > 0
        rows, counts = rows[keep], counts[keep]
        size = self.size(bank, rows)
        start = self.rng.below(size) if start is None else start[keep]
        stride = np.ones_like(size) if stride is None else stride[keep]
        j0 = np.zeros_like(size) if j0 is None else j0[keep]
        first = np.cumsum(counts) - counts
        j = np.arange(int(counts.sum())) - np.repeat(first, counts) + np.repeat(j0, counts)
        entry = (np.repeat(start, counts) + j * np.repeat(stride, counts)) % np.repeat(size, counts)
        self.put(bank, np.repeat(rows, counts), entry)

    def join(self) -> pa.Array:
        n = len(self.lang)
        rows, ids = np.concatenate(self.rows), np.concatenate(self.ids)
        counts = np.bincount(rows, minlength=n)
        if (counts == 0).any():
            raise RuntimeError("synth: a message got no text piece")
        order = np.argsort(rows, kind="stable")
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(counts, out=offsets[1:])
        values = self.t.pieces.take(pa.array(ids[order]))
        return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), values), "")


def message_kinds(
    rng: Rng,
    role: np.ndarray,
    parent: np.ndarray,
    is_root: np.ndarray,
    ttype_row: np.ndarray,
    text_en: np.ndarray,
) -> np.ndarray:
    """What each message is, decided parents first (an assistant reply depends on the prompt kind)."""
    n = len(role)
    kind = np.full(n, A_NORMAL, dtype=np.int64)
    kind[is_root] = np.array([P_TOPIC, P_FREE, P_CODE, P_OA])[ttype_row[is_root]]
    follow = (role == 0) & ~is_root
    u = rng.u(n)
    code_tree = (ttype_row == T_CODE) & text_en
    kind[follow] = np.where(u[follow] < 0.14, P_THANKS, np.where(u[follow] < 0.24, P_NEWQ, P_FOLLOW))
    kind[follow & code_tree & (kind == P_FOLLOW) & (u < 0.80)] = P_CODEFOLLOW
    asst = role == 1
    pk = kind[np.maximum(parent, 0)]
    u2, u3 = rng.u(n), rng.u(n)
    k = np.full(n, A_NORMAL)
    k[code_tree & np.isin(pk, (P_CODE, P_CODEFOLLOW, P_FOLLOW)) & (u3 < 0.85)] = A_CODE
    k[(pk == P_OA) & (u3 < 0.9)] = A_OA
    k[(pk == P_THANKS) & (u3 < 0.7)] = A_SHORT
    k[u2 < 0.05] = A_SHORT
    k[u2 < 0.03] = A_REFUSAL
    kind[asst] = k[asst]
    # a reply written in another language than the tree is never a code one
    kind[~text_en & (kind == P_CODE)] = P_TOPIC
    kind[~text_en & (kind == P_CODEFOLLOW)] = P_FOLLOW
    kind[~text_en & (kind == A_CODE)] = A_NORMAL
    return kind


def message_texts(
    rng: Rng, kind: np.ndarray, lang: np.ndarray, topic: np.ndarray, task: np.ndarray, topical: np.ndarray
) -> pa.Array:
    """Each message's text: pieces of the banks of its language, chosen by its kind, joined."""
    t = piece_table()
    b = _Builder(t, rng, lang)
    nt = t.n_topics

    def rows(*kinds: int) -> np.ndarray:
        return np.flatnonzero(np.isin(kind, kinds))

    def some(r: np.ndarray, p: float) -> np.ndarray:
        return r[rng.u(len(r)) < p]

    # prompter messages: [greeting] question [context...]
    b.one("greet", some(rows(P_TOPIC, P_FREE, P_CODE, P_OA), 0.22))
    b.one("age", some(rows(P_TOPIC, P_FREE), 0.2))
    r = rows(P_TOPIC, P_NEWQ)
    b.put("q_topic", r, rng.below(b.size("q_topic", r) // nt) * nt + topic[r])
    b.one("q_free", rows(P_FREE))
    r = rows(P_CODE)
    b.fixed("code_q", r, task[r])
    b.one("oa_q", rows(P_OA))
    b.one("follow", rows(P_FOLLOW))
    b.one("code_follow", rows(P_CODEFOLLOW))
    b.one("thanks", rows(P_THANKS))
    r = np.concatenate([some(rows(P_TOPIC, P_FREE, P_CODE), 0.4), some(rows(P_FOLLOW, P_NEWQ), 0.08)])
    r.sort()
    b.seq("context", r, 1 + (rng.u(len(r)) < 0.3))
    b.one("year", some(rows(P_TOPIC, P_FREE, P_CODE), 0.2))
    # assistant messages
    b.one("short", rows(A_SHORT))
    r = rows(A_REFUSAL)
    b.seq("refusal", r, 1 + (rng.u(len(r)) < 0.35))
    b.one("refusal_alt", some(r, 0.6))
    b.one("oa_a", rows(A_OA))
    code = rows(A_CODE)
    b.one("code_intro", code)
    b.fixed("code_block", code, task[code])
    b.fixed("code_after", code, task[code])
    b.seq("code_body", code, rng.below(3, len(code)))
    normal = rows(A_NORMAL)
    b.one("opener", some(normal, 0.45))
    r = normal[topical[normal] & (rng.u(len(normal)) < 0.5)]
    b.put("topic_sent", r, rng.below(b.size("topic_sent", r) // nt) * nt + topic[r])
    size = b.size("body", normal)
    k = np.clip(np.rint(exactmath.exp(1.4 + 0.8 * rng.normal(len(normal)))).astype(np.int64), 1, size)
    n_bullets = np.where((k >= 4) & (rng.u(len(normal)) < 0.2), np.minimum(k - 2, 2 + rng.below(4, len(k))), 0)
    n_body = k - n_bullets
    n_first = np.where((n_body >= 4) & (rng.u(len(normal)) < 0.7), (n_body + 1) // 2, n_body)
    start, stride = rng.below(size), 1 + rng.below(size - 1)  # body sizes are prime: no repeats in a reply
    b.seq("body", normal, n_first, start, stride)
    second = n_body > n_first
    b.fixed("para", normal[second])
    b.seq("body", normal, n_body - n_first, start, stride, n_first)
    bullets = n_bullets > 0
    b.fixed("nl", normal[bullets])
    b.seq("bullet", normal, n_bullets, start, stride, n_body)
    url = rng.u(len(normal)) < np.where(k >= 6, 0.15, 0.04)
    b.fixed("para", normal[url & bullets])
    b.one("url", normal[url])
    # closing line, after a blank line when it follows a list or a code answer (or at random)
    closing = np.zeros(len(kind), dtype=bool)
    closing[normal] = rng.u(len(normal)) < 0.3
    closing[code] = rng.u(len(code)) < 0.3
    closing[rows(A_OA)] = rng.u(len(rows(A_OA))) < 0.2
    para = closing & (rng.u(len(kind)) < 0.4)
    para[normal[bullets & ~url]] |= closing[normal[bullets & ~url]]
    para[code] |= closing[code]
    b.fixed("para", np.flatnonzero(para))
    b.one("closer", np.flatnonzero(closing))
    return b.join()
