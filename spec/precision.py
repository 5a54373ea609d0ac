r"""Floating-point formats as data: the dtype a target computes in, and what it can represent.

Precision is a dimension of every check (docs/design.md): inputs are drawn, then rounded
to the target's format with :meth:`Precision.round` (and kept as float64 numbers that
the format represents exactly), the truth is computed exactly from the rounded
inputs, and value tolerances use the format's unit roundoff :attr:`Precision.u`
where they used float64's. A check that derives its tolerances this way declares it
(``check(..., adapts=("precision",))``); the others run at float64 only and are
skipped, with that reason, for a target in another format.

=========  ===========  =========  ===============  ===============
format     significand  u          smallest normal  largest finite
=========  ===========  =========  ===============  ===============
float64    53 bits      2⁻⁵³       2⁻¹⁰²²           ≈ 1.8e308
float32    24 bits      2⁻²⁴       2⁻¹²⁶            ≈ 3.4e38
bfloat16   8 bits       2⁻⁸        2⁻¹²⁶            ≈ 3.4e38
float16    11 bits      2⁻¹¹       2⁻¹⁴             65504
=========  ===========  =========  ===============  ===============
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Precision:
    """A binary floating-point format: ``bits`` of significand, exponents from ``min_exponent``.

    ``min_exponent`` is the exponent of the smallest normal number (2^min_exponent)
    and ``max_exponent`` that of the largest binade, so the largest finite number is
    (2 − 2^(1−bits))·2^max_exponent.
    """

    name: str
    bits: int
    min_exponent: int
    max_exponent: int

    @property
    def u(self) -> float:
        """Unit roundoff: a correctly rounded operation has relative error at most u."""
        return 2.0**-self.bits

    @property
    def tiny(self) -> float:
        """The smallest positive normal number; below it, relative precision is lost."""
        return 2.0**self.min_exponent

    @property
    def eta(self) -> float:
        """The smallest positive (subnormal) number: absolute errors below it cannot show."""
        return 2.0 ** (self.min_exponent - self.bits + 1)

    @property
    def max(self) -> float:
        """The largest finite number."""
        return (2.0 - 2.0 ** (1 - self.bits)) * 2.0**self.max_exponent

    @property
    def max_log(self) -> float:
        """log(max): exp of anything larger overflows in this format."""
        return math.log(self.max)

    def round(self, x: object) -> np.ndarray:
        """``x`` rounded to this format (to nearest, ties to even), as float64 numbers.

        Overflow gives ±inf and underflow the subnormals of the format, as a
        conversion to the format would; NaN and ±inf are kept.
        """
        a = np.array(x, dtype=np.float64)
        if self.bits == 53:
            return a
        with np.errstate(all="ignore"):
            finite = np.isfinite(a)
            _, exponent = np.frexp(np.where(finite, a, 1.0))
            # The spacing of the format around |x| (constant below the smallest normal).
            spacing = np.ldexp(1.0, np.maximum(exponent - 1, self.min_exponent) - self.bits + 1)
            rounded = np.where(finite, np.round(a / spacing) * spacing, a)
            big = np.abs(rounded) > self.max
            rounded = np.where(big, np.copysign(np.inf, rounded), rounded)
        return rounded

    def ulps(self, x: np.ndarray, k: object) -> np.ndarray:
        """``x`` moved by ``k`` units in the last place of this format (x representable)."""
        out = np.array(x, dtype=np.float64)
        steps = np.broadcast_to(np.asarray(k, dtype=np.int64), out.shape)
        for _ in range(int(np.max(np.abs(steps), initial=0))):
            move = steps != 0
            _, exponent = np.frexp(np.where(out == 0, 1.0, out))
            # Step to the next number of the format: one spacing, smaller when crossing a binade.
            up = np.sign(steps)
            toward_zero = np.sign(out) == -up
            exact = np.where(
                toward_zero & (np.abs(out) == np.ldexp(1.0, exponent - 1)), exponent - 1, exponent
            )
            spacing = np.ldexp(1.0, np.maximum(exact - 1, self.min_exponent) - self.bits + 1)
            out = np.where(move, out + up * spacing, out)
            steps = steps - up
        return self.round(out)

    def __str__(self) -> str:
        return self.name


FLOAT64 = Precision("float64", 53, -1022, 1023)
FLOAT32 = Precision("float32", 24, -126, 127)
BFLOAT16 = Precision("bfloat16", 8, -126, 127)
FLOAT16 = Precision("float16", 11, -14, 15)

#: The formats ``klspec check --dtype`` takes, by name.
PRECISIONS: dict[str, Precision] = {p.name: p for p in (FLOAT64, FLOAT32, FLOAT16, BFLOAT16)}


def precision(name: str | Precision) -> Precision:
    """The format named ``name`` (``"float32"``); ``ValueError`` listing the known ones."""
    if isinstance(name, Precision):
        return name
    try:
        return PRECISIONS[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(PRECISIONS)}") from None
