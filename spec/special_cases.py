r"""Special cases as data: one row per convention the formulas need at 0 and at the ends.

Each row states a condition on the inputs and the result it forces. The clause
statement (:mod:`klspec.spec.clauses`), the check's name and its input strategy
(:mod:`klspec.spec.checks`) are all generated from the row's fields; nothing
parses prose. A row's :attr:`SpecialCase.id` reads like the spec and is the name
of its check, e.g. ``kl(p_i == 0 and q_i > 0) -> term 0``, so it can be pasted
into an xfail list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Quantity = Literal["entropy", "cross_entropy", "kl"]
#: A condition on one probability: exactly zero, positive (and at least 1e-3, so that
#: nothing else is hazardous), subnormal (below 2.2e-308) or tiny (normal, below 1e-7).
Sign = Literal["== 0", "> 0", "subnormal", "< 1e-7"]
#: What the condition forces: one outcome's term is 0, or its exact (finite) value; the
#: result is +inf, 0, or log n.
Result = Literal["term 0", "exact term", "+inf", "0", "log n"]

_RESULT_PHRASE: dict[str, str] = {
    "term 0": "contributes 0",
    "exact term": "contributes its exact, finite term",
    "+inf": "makes the result +inf",
    "0": "gives exactly 0",
    "log n": "gives log n",
}


@dataclass(frozen=True)
class Outcome:
    """A condition on one outcome i: the sign of p_i and, if given, of q_i."""

    p: Sign
    q: Sign | None = None

    def __str__(self) -> str:
        text = f"p_i {self.p}"
        return text if self.q is None else f"{text} and q_i {self.q}"

    @property
    def subject(self) -> str:
        return f"an outcome with {self}"

    @property
    def hazard(self) -> str:
        """The key of the hazard (klspec.spec.hazards) this condition is: the only one drawn."""
        if self.q is None:
            return "p_zero"
        if self.p == "== 0":
            return "both_zero" if self.q == "== 0" else "p_zero"
        return {"== 0": "q_zero", "subnormal": "subnormal", "< 1e-7": "tiny"}[self.q]


@dataclass(frozen=True)
class Shape:
    """A condition on the whole distribution p: one-hot, or uniform over its n outcomes."""

    kind: Literal["one-hot", "uniform"]

    def __str__(self) -> str:
        return f"p is {self.kind}"

    @property
    def subject(self) -> str:
        return f"a {self.kind} p"

    @property
    def hazard(self) -> str | None:
        """A one-hot p has zeros by nature (its clause is about that); a uniform one none."""
        return "p_zero" if self.kind == "one-hot" else None


@dataclass(frozen=True)
class SpecialCase:
    """One row of the table: in ``quantity``, ``condition`` forces ``result``."""

    clause_id: str
    quantity: Quantity
    condition: Outcome | Shape
    result: Result
    because: str  #: why, in one line of math
    latex: str

    @property
    def id(self) -> str:
        """The check's name, which reads like the spec: ``kl(p_i == 0 and q_i > 0) -> term 0``."""
        return f"{self.quantity}({self.condition}) -> {self.result}"

    @property
    def statement(self) -> str:
        """The clause statement, generated from the fields."""
        return (
            f"In {self.quantity}, {self.condition.subject} "
            f"{_RESULT_PHRASE[self.result]}: {self.because}."
        )


SPECIAL_CASES: tuple[SpecialCase, ...] = (
    SpecialCase(
        "entropy.special.zero",
        "entropy",
        Outcome(p="== 0"),
        "term 0",
        "0·log 0 = 0 (the limit of x·log x as x → 0)",
        r"p_i = 0 \Rightarrow -p_i \log p_i = 0",
    ),
    SpecialCase(
        "entropy.special.one_hot",
        "entropy",
        Shape("one-hot"),
        "0",
        "a certain outcome carries no information, −1·log 1 = 0",
        r"P = e_k \Rightarrow H(P) = 0",
    ),
    SpecialCase(
        "entropy.special.uniform",
        "entropy",
        Shape("uniform"),
        "log n",
        "−Σ (1/n)·log(1/n) = log n, the largest entropy on n outcomes",
        r"P_i = \tfrac1n \Rightarrow H(P) = \log n",
    ),
    SpecialCase(
        "cross_entropy.special.q_zero",
        "cross_entropy",
        Outcome(p="> 0", q="== 0"),
        "+inf",
        "−p_i·log 0 = +∞: Q rules out an outcome that P produces",
        r"q_i = 0 < p_i \Rightarrow H(P, Q) = +\infty",
    ),
    SpecialCase(
        "kl.special.p_zero",
        "kl",
        Outcome(p="== 0", q="> 0"),
        "term 0",
        "0·log(0/q_i) = 0: an outcome P never produces costs nothing",
        r"p_i = 0 < q_i \Rightarrow p_i \log\frac{p_i}{q_i} = 0",
    ),
    SpecialCase(
        "kl.special.q_zero",
        "kl",
        Outcome(p="> 0", q="== 0"),
        "+inf",
        "p_i·log(p_i/0) = +∞: Q rules out an outcome that P produces",
        r"q_i = 0 < p_i \Rightarrow KL(P \| Q) = +\infty",
    ),
    SpecialCase(
        "kl.special.both_zero",
        "kl",
        Outcome(p="== 0", q="== 0"),
        "term 0",
        "an outcome neither distribution produces changes nothing; "
        "the result is the same as with the outcome dropped",
        r"p_i = q_i = 0 \Rightarrow KL(P \| Q) = KL(P_{\setminus i} \| Q_{\setminus i})",
    ),
    SpecialCase(
        "kl.special.subnormal_q",
        "kl",
        Outcome(p="> 0", q="subnormal"),
        "exact term",
        "a subnormal number is a number, not 0, so p_i·log(p_i/q_i) is large "
        "(up to 745·p_i) but finite; flushing q_i to 0 would make KL +inf",
        r"0 < q_i < 2^{-1022} < p_i \Rightarrow p_i \log\frac{p_i}{q_i} < \infty",
    ),
    SpecialCase(
        "kl.special.tiny_q",
        "kl",
        Outcome(p="> 0", q="< 1e-7"),
        "exact term",
        "p_i·log(p_i/q_i) of the value as given; clipping q at an epsilon (keras clips at "
        "1e-7) replaces it by a smaller term",
        r"2^{-1022} \le q_i < 10^{-7} \Rightarrow p_i \log\frac{p_i}{q_i}\ \text{exactly}",
    ),
)
