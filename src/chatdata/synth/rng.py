"""Random numbers for the generator: only PCG64 raw 64-bit words (stable across numpy versions), every
distribution derived here from them, and version-4 UUID strings drawn from the same stream."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from chatdata import exactmath

_TWO53 = 1.0 / 9007199254740992.0


class Rng:
    """Random stream ``stream`` of ``seed``: PCG64 seeded by ``SeedSequence(seed, spawn_key=(stream,))``."""

    def __init__(self, seed: int, stream: int) -> None:
        self._bits = np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(stream,)))

    def raw(self, n: int) -> np.ndarray:
        return np.asarray(self._bits.random_raw(n), dtype=np.uint64)

    def u(self, n: int) -> np.ndarray:
        """Uniform floats in [0, 1)."""
        return (self.raw(n) >> np.uint64(11)).astype(np.float64) * _TWO53

    def below(self, k: np.ndarray | int, n: int | None = None) -> np.ndarray:
        """Integers uniform in [0, k) (k > 0), elementwise when ``k`` is an array."""
        count = n if n is not None else len(k)  # type: ignore[arg-type]
        k_arr = np.asarray(k, dtype=np.int64)
        return np.minimum((self.u(count) * k_arr).astype(np.int64), k_arr - 1)

    def pick(self, n: int, probs: Sequence[float]) -> np.ndarray:
        """Category indices drawn with the given (unnormalised) probabilities."""
        cum = np.cumsum(np.asarray(probs, dtype=np.float64))
        idx = np.searchsorted(cum / cum[-1], self.u(n), side="right")
        return np.minimum(idx, len(cum) - 1).astype(np.int64)

    def normal(self, n: int) -> np.ndarray:
        u1, u2 = self.u(n), self.u(n)
        return np.sqrt(-2.0 * exactmath.log(1.0 - u1)) * exactmath.cos(u2)

    def expo(self, n: int) -> np.ndarray:
        return -exactmath.log(1.0 - self.u(n))

    def poisson(self, lam: np.ndarray, cap: int) -> np.ndarray:
        """Poisson draws (inverse CDF), capped at ``cap``."""
        u = self.u(len(lam))
        p = exactmath.exp(-lam)
        cdf = p.copy()
        out = np.zeros(len(lam), dtype=np.int64)
        for k in range(1, cap + 1):
            still = u > cdf
            out += still
            p = p * lam / k
            cdf = cdf + p
        return out


def random_uuids(rng: Rng, n: int) -> pa.Array:
    """``n`` random version-4 UUID strings, formatted with numpy (same text as ``str(uuid.UUID(...))``)."""
    b = rng.raw(2 * n).astype("<u8").view(np.uint8).reshape(n, 16).copy()
    b[:, 6] = (b[:, 6] & 0x0F) | 0x40
    b[:, 8] = (b[:, 8] & 0x3F) | 0x80
    hexd = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2], digits[:, 1::2] = hexd[b >> 4], hexd[b & 0x0F]
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for src, dst in (
        (slice(0, 8), slice(0, 8)),
        (slice(8, 12), slice(9, 13)),
        (slice(12, 16), slice(14, 18)),
        (slice(16, 20), slice(19, 23)),
        (slice(20, 32), slice(24, 36)),
    ):
        out[:, dst] = digits[:, src]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(out.tobytes()))
