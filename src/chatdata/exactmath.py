"""Elementary functions built from IEEE-754 ``+ - * /`` only, so they give the same bits on every CPU.

numpy dispatches ``exp``, ``log``, ``cos`` and ``power`` to CPU-specific SIMD code (AVX2, AVX-512, SVML) whose
last bit differs between machines; libm picks FMA or non-FMA variants at run time. Additions, multiplications,
divisions, ``sqrt``, ``rint``, ``frexp`` and ``ldexp`` are correctly rounded (or exact) everywhere, so functions
made of them alone are reproducible bit for bit. Accuracy is within a few ulp of the correctly rounded value,
plenty for synthetic data (:mod:`chatdata.synth`), whose bytes must not depend on the machine.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["cos", "exp", "log", "pow10", "power", "power_int"]

# ln 2 split so that ``k * _LN2_HI`` is exact for |k| < 2**11 (the high part has 11 trailing zero bits)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LN2 = 0.6931471805599453
_LN10 = 2.302585092994046
_SQRT_HALF = 0.7071067811865476
_TWO_PI = 6.283185307179586
_EXP_TERMS = tuple(1.0 / math.factorial(k) for k in range(14))  # Taylor series of exp on |r| <= ln2 / 2
_LOG_TERMS = tuple(1.0 / (2 * k + 1) for k in range(12))  # atanh series: 2 * sum s^(2k+1) / (2k+1)


def _horner(x: np.ndarray, coefficients: tuple[float, ...]) -> np.ndarray:
    """``sum(c[k] * x**k)`` evaluated from the highest coefficient down."""
    acc = np.full_like(x, coefficients[-1])
    for c in coefficients[-2::-1]:
        acc = acc * x + c
    return acc


def exp(x: np.ndarray | float) -> np.ndarray:
    """``e**x`` elementwise (finite inputs; underflow to 0 and overflow to inf as numpy does)."""
    x = np.asarray(x, dtype=np.float64)
    clipped = np.clip(x, -745.0, 710.0)
    k = np.rint(clipped / _LN2)
    r = (clipped - k * _LN2_HI) - k * _LN2_LO
    with np.errstate(over="ignore", under="ignore"):
        out = np.ldexp(_horner(r, _EXP_TERMS), k.astype(np.int64))
    return np.where(x > 709.8, np.inf, np.where(x < -745.0, 0.0, out))


def log(x: np.ndarray | float) -> np.ndarray:
    """Natural logarithm elementwise for ``x > 0`` (``-inf`` at 0, ``nan`` below)."""
    x = np.asarray(x, dtype=np.float64)
    positive = x > 0
    m, e = np.frexp(np.where(positive, x, 1.0))  # x = m * 2**e, m in [0.5, 1)
    low = m < _SQRT_HALF
    m = np.where(low, m * 2.0, m)  # now in [sqrt(1/2), sqrt(2))
    e = (e - low).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    log_m = 2.0 * s * _horner(s * s, _LOG_TERMS)
    out = (e * _LN2_HI + log_m) + e * _LN2_LO
    return np.where(positive, out, np.where(x == 0, -np.inf, np.nan))


def _sin_poly(x: np.ndarray) -> np.ndarray:
    """sin on [0, pi/4] (Taylor series to x**17)."""
    coefficients = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(9))
    return x * _horner(x * x, coefficients)


def _cos_poly(x: np.ndarray) -> np.ndarray:
    """cos on [0, pi/4] (Taylor series to x**18)."""
    coefficients = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(10))
    return _horner(x * x, coefficients)


def cos(turns: np.ndarray | float) -> np.ndarray:
    """``cos(2 * pi * turns)`` elementwise: the angle is given in turns, so range reduction is exact."""
    t = np.asarray(turns, dtype=np.float64)
    a = np.abs(t - np.rint(t))  # in [0, 1/2], exact
    flip = a > 0.25
    a = np.where(flip, 0.5 - a, a)  # cos(2pi a) = -cos(2pi (1/2 - a)); a in [0, 1/4], exact
    use_sin = a > 0.125
    b = np.where(use_sin, 0.25 - a, a)  # cos(2pi a) = sin(2pi (1/4 - a)); b in [0, 1/8], exact
    x = _TWO_PI * b
    out = np.where(use_sin, _sin_poly(x), _cos_poly(x))
    return np.where(flip, -out, out)


def power(base: np.ndarray | float, exponent: np.ndarray | float) -> np.ndarray:
    """``base ** exponent`` for ``base >= 0`` elementwise (``0 ** y`` is 0 for ``y > 0``)."""
    b = np.asarray(base, dtype=np.float64)
    y = np.asarray(exponent, dtype=np.float64)
    out = exp(y * log(np.where(b > 0, b, 1.0)))
    return np.where(b > 0, out, np.where(y > 0, 0.0, 1.0))


def power_int(base: np.ndarray | float, exponent: np.ndarray | int) -> np.ndarray:
    """``base ** n`` for integer ``n >= 0`` by repeated squaring (multiplications only)."""
    b = np.asarray(base, dtype=np.float64)
    n = np.asarray(exponent, dtype=np.int64)
    if (n < 0).any():
        raise ValueError("power_int needs exponents >= 0")
    b, n = np.broadcast_arrays(b, n)
    out = np.ones(b.shape, dtype=np.float64)
    square = b.copy()
    n = n.copy()
    while (n > 0).any():
        odd = (n & 1).astype(bool)
        out = np.where(odd, out * square, out)
        square = square * square
        n = n >> 1
    return out


def pow10(x: np.ndarray | float) -> np.ndarray:
    """``10 ** x`` elementwise."""
    return exp(np.asarray(x, dtype=np.float64) * _LN10)
