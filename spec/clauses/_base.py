"""The :class:`Clause` record, and the wording the topic modules share."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from klspec.spec._expected import MPMATH_MAX_SIZE

Kind = Literal["definition", "property", "special case", "worked example", "domain", "derivation"]
Level = Literal["required", "advisory"]
LEVELS: tuple[str, ...] = ("required", "advisory")
KINDS: tuple[str, ...] = ("definition", "special case", "worked example", "property", "domain")

VALUE_TOLERANCE = (
    f"Checked against the exact value (mpmath on up to {MPMATH_MAX_SIZE} outcomes, else "
    "the float64 formula summed with fsum plus its error bound), within the error any "
    "correct float64 evaluation can make: (2γ_n + 4u)(M + 2) with M = Σ|t_i| (summation in "
    "any order, one rounding per ratio, log and product, normalisation), plus "
    "D(|S| + 1)(1 + 2D) for inputs whose measured sums are off from 1 by D in all (the "
    "literal formula skips the normalisation). See klspec.spec.tolerances."
)

MODEL_VALUE = (
    "Checked against the exact value (mpmath at 40 digits from the same float64 inputs) "
    "within (2γ_n + 8u)·Σ|t_i| over the n terms t_i: a handful of roundings per term and "
    "summation in any order (klspec.spec.tolerances.model_tolerance)."
)


@dataclass(frozen=True)
class Clause:
    """One requirement, stated once.

    ``id`` is stable (tests, xfail lists and docs use it); ``statement`` is one
    line of prose; ``latex`` the formula; ``kind`` one of :data:`KINDS`;
    ``quantities`` the functions it constrains; ``notes`` how it is checked
    (where a tolerance is used, how it is derived) and anything a reader of the
    post should know; ``level`` whether every correct implementation must meet
    it ("required") or it is a promise of the reference beyond that
    ("advisory", with the reason in ``notes``; see the module docs); ``topic``
    a key of :data:`klspec.spec.interface.TOPICS`.
    """

    id: str
    statement: str
    latex: str
    kind: Kind
    quantities: tuple[str, ...]
    notes: str = ""
    level: Level = "required"
    topic: str = "divergences"


T = TypeVar("T")


def lookup(table: Mapping[str, T], name: str, what: str) -> T:
    """``table[name]``; a ``KeyError`` naming ``what`` and the close matches if it is not there."""
    try:
        return table[name]
    except KeyError:
        close = difflib.get_close_matches(name, table, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `klspec list`"
        raise KeyError(f"unknown {what} {name!r}{hint}") from None
