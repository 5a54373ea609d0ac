"""Root causes: why a check failed, in words a user can act on.

A check's failure comes with a shrunk counterexample, but a counterexample drawn
from a mix of regimes can hold several hazards at once (an outcome with
p_i = q_i = 0 next to a subnormal q_j), and the message only says what went wrong
(``kl(p, q)=nan``). :func:`analyse` replays the property on that counterexample to
find out why:

1. **Hazards** (:mod:`klspec.spec.hazards`). It removes every hazard the input
   holds (leaving the outcomes out and renormalising) except the one the check is
   about. If the property then passes, it keeps each hazard alone in turn: those
   that make it fail on their own are the cause ("NaN where p_i = q_i = 0"). If it
   still fails with none of them, no hazard is to blame.
2. **Conventions** (:mod:`klspec.conformance.conventions`). It records the calls
   the property made. A call whose result differs from the clause's exact value but
   equals, within the rounding of a float64 evaluation, the exact value of a
   documented convention's formula (no normalisation, a clip, a reduction, float32)
   is explained by that convention, and the cause says so instead of calling the
   value wrong. A negative KL is told apart the same way: the exact value of the
   unnormalised formula is itself negative, or rounding made a non-negative one
   negative (and nothing clamps it).
3. **Conditions** that cannot be removed are described: "on nearly equal p and q
   (relative difference 1e-13)".

A :class:`Cause` has words (:attr:`Cause.text`) and a key (:attr:`Cause.key`) that
is the same for one bug wherever it shows, so that a report lists one finding per
bug with the clauses it breaks. The analysis only ever calls the implementation on
inputs built from the counterexample, through the same guards as the check
(timeouts in a worker); when it cannot decide, it says less rather than guess.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from klspec.conformance.conventions import UNNORMALISED, Convention
from klspec.conformance.runner import run_once
from klspec.spec import _expected, hazards
from klspec.spec._assert import SYMPTOMS
from klspec.spec.checks import Check
from klspec.spec.interface import DIVERGENCES, Implementation
from klspec.spec.strategies import Case
from klspec.spec.tolerances import U

#: Symptoms worth a replay: those where the input decides the outcome.
_ANALYSED = frozenset({"nan", "negative", "not_inf", "inf", "value", "raises", "violation"})


@dataclass(frozen=True)
class Cause:
    """Why a check failed: the symptom, the hazards it needs, a condition, a convention."""

    symptom: str
    hazards: tuple[str, ...] = ()
    arity: int = 2
    condition: str = ""
    #: The convention that explains the values (its key), "rounding" when rounding does.
    convention: str = ""
    #: What the convention or the rounding did, in words.
    note: str = ""
    #: The exception's type, for "raises".
    detail: str = ""
    #: The convention's own words, and whether the implementation declared it.
    convention_words: str = ""
    declared: bool = False
    #: The format the implementation was judged in (its rounding is what "rounding" means).
    dtype: str = "float64"

    @property
    def text(self) -> str:
        """The cause in words: ``returns NaN where p_i = q_i = 0``."""
        if self.diagnosed:  # a bug recognised from its values: the words say it all
            return f"it {self.note}"
        what = SYMPTOMS.get(self.symptom, "violates the clause")
        if self.convention == "rounding" and self.symptom == "value":
            what = f"is accurate to {self.dtype} rounding, not to the clause's bound"
        if self.symptom == "raises" and self.detail:
            what = f"raises {self.detail}"
        if self.hazards:
            phrases = [hazards.HAZARDS[h].phrase(self.arity) for h in self.hazards]
            what += " where " + " and ".join(phrases)
        elif self.condition:
            what += f" on {self.condition}"
        return f"{what}: {self.note}" if self.note else what

    @property
    def diagnosed(self) -> bool:
        """Whether a known bug explains the failure (klspec.conformance.preference_causes)."""
        return self.convention.startswith("bug:")

    @property
    def by_convention(self) -> bool:
        """Whether a convention of the library (declared or consistent) explains the values."""
        return bool(self.convention_words)

    @property
    def title(self) -> str:
        """What the finding is, one bug in one sentence (the convention, when one explains it)."""
        if self.by_convention:
            how = (
                "by its documented convention"
                if self.declared
                else ("consistently with a convention it does not declare")
            )
            return f"{how}, it {self.convention_words}"
        return self.text

    @property
    def key(self) -> tuple[Any, ...]:
        """What identifies one bug: the same key wherever it shows, whatever the numbers.

        A convention is one finding whatever the symptoms it causes; otherwise the
        symptom with the hazards it needs (or the kind of condition it shows on).
        """
        if self.by_convention:
            return ("convention", self.convention)
        if self.diagnosed:  # one bug, whatever symptom each clause saw
            return ("bug", self.convention)
        # A condition only describes the inputs (it is not shown to be needed, as a hazard
        # is): the same symptom with and without one is one bug.
        return (self.symptom, self.hazards, "", self.convention, self.detail)


def same_bug(keys: Iterable[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Map each cause key to the key of the finding it belongs to, and name merged findings.

    One bug can show under two hazards: a missing guard for p_i = 0 gives NaN where
    p_i = 0 < q_i and where p_i = q_i = 0 alike. When an implementation shows the same
    symptom under both, they are one finding (keyed as p_i = 0's); when it shows it only
    where p_i = q_i = 0 (torch's kl_div), that is a finding of its own.
    """
    keys = set(keys)
    out = {k: k for k in keys}
    for k in keys:
        if k[0] != "convention" and k[1] == ("both_zero",):
            other = (k[0], ("p_zero",), *k[2:])
            if other in keys:
                out[k] = other
    return out


def merged_title(key: tuple[Any, ...]) -> str:
    """The title of a finding that merged p_i = 0 < q_i and p_i = q_i = 0."""
    return f"{SYMPTOMS.get(key[0], 'violates the clause')} where p_i = 0, whatever q_i"


#: What an outcome holding a hazard is set to when leaving it out would change the case's
#: meaning: an ordinary probability, far from every hazard.
_FILL = 0.25

#: A hazard of a case with one distribution, as seen in a call that takes it twice:
#: kl(p, p) with p_i = 0 has p_i = q_i = 0.
_AS_PAIR = {"p_zero": "both_zero", "subnormal": "subnormal", "tiny": "tiny"}


def analyse(
    check: Check, impl: Implementation, case: Any, symptom: str, message: str = ""
) -> Cause:
    """The cause of ``check``'s failure on ``case`` (its shrunk counterexample).

    ``impl`` should be the implementation as the check ran it (guarded by the
    runner); ``symptom`` and ``message`` are the failure's. What cannot be decided
    is left out of the cause.
    """
    detail = exception_type(message) if symptom == "raises" else ""
    if check.clause_id.startswith("dpo.") and symptom != "raises":
        from klspec.conformance.preference_causes import diagnose

        found = diagnose(impl, case)
        if found:
            return Cause(symptom, **{"dtype": impl.dtype, **found})
        return Cause(symptom, detail=detail, dtype=impl.dtype)
    arrays = getattr(case, "arrays", None)
    if symptom not in _ANALYSED:
        return Cause(symptom, detail=detail)
    if not arrays:  # a check with a fixed input (a worked example): only conventions
        return Cause(symptom, detail=detail, **_conventions(check, impl, case, symptom))
    regime = getattr(case, "regime", "given")
    arity = hazards.arity(arrays)

    def fails(candidate: dict[str, np.ndarray] | None) -> bool | None:
        if candidate is None:
            return None
        return _fails(check, impl, Case(regime=regime, **candidate), symptom)

    own = {check.hazard} if check.hazard else set()
    present = set(hazards.present(arrays)) - own
    needed: tuple[str, ...] = ()
    if present:
        needed = _blamed(fails, arrays, present)
    if check.hazard and not needed and _needs_own(check, symptom, fails, arrays):
        needed = (check.hazard,)
    if arity == 1 and needed and _pairs_itself(check, impl, case):
        needed, arity = tuple(dict.fromkeys(_AS_PAIR[h] for h in needed)), 2
    # A condition of the inputs describes a wrong number; an exception is one bug wherever.
    conditions = hazards.conditions(arrays, impl.precision) if symptom != "raises" else []
    return Cause(
        symptom,
        needed,
        arity,
        conditions[0] if conditions else "",
        detail=detail,
        **_conventions(check, impl, case, symptom),
    )


def _needs_own(
    check: Check, symptom: str, fails: Callable[[dict | None], bool | None], arrays: Any
) -> bool:
    """Whether a special case's failure is about its own condition (not wrong everywhere).

    A finite value where the condition makes KL +inf is about it by definition; any
    other failure must go away once the condition's outcome holds an ordinary value.
    """
    if symptom == "not_inf":
        return True
    return fails(hazards.without(arrays, {check.hazard}, fill=_FILL)) is False


def _pairs_itself(check: Check, impl: Implementation, case: Any) -> bool:
    """Whether the check calls a divergence with one distribution in both places: kl(p, p)."""
    calls: list[_Call] = []
    _fails(check, _recording(impl, calls), case)
    return any(
        len(c.args) == 2 and np.array_equal(np.asarray(c.args[0]), np.asarray(c.args[1]))
        for c in calls
        if c.quantity in DIVERGENCES
    )


def _blamed(
    fails: Callable[[dict | None], bool | None], arrays: Any, present: set[str]
) -> tuple[str, ...]:
    """The hazards a failure needs, agreed on by every way of removing them that means something.

    Two ways: leave the outcomes out, or keep them as ordinary probabilities
    (:data:`_FILL`). Removing hazards changes the input, and a change can hide a
    failure for another reason (dropping outcomes can leave p = q, where a biased KL
    is 0 too), so a hazard is blamed only when every way whose result means
    something agrees that the failure goes with it and comes back with it alone;
    one way in which the failure persists without any hazard clears them all.
    """
    verdicts = []
    for fill in (None, _FILL):
        clean = fails(hazards.without(arrays, present, fill=fill))
        if clean is None:
            continue
        if clean is True:
            return ()
        alone = {h for h in present if fails(hazards.without(arrays, present - {h}, fill=fill))}
        verdicts.append(alone or set(present))  # none suffices alone: all together
    if not verdicts:
        return ()
    agreed = set.intersection(*verdicts)
    return tuple(_ordered(agreed))


def exception_type(message: str) -> str:
    """The exception type a ``raised X(...)`` message names ("ValueError"), or ""."""
    found = re.search(r"raised (\w+)", message)
    return found.group(1) if found else ""


def _ordered(keys: set[str]) -> list[str]:
    return [k for k in hazards.HAZARDS if k in keys]


def _fails(
    check: Check, impl: Implementation, case: Any, symptom: str | None = None
) -> bool | None:
    """Whether the property fails on ``case`` (with ``symptom``, if given): True, False, or
    None when it cannot tell.

    A failure with another symptom counts as False: removing a hazard can break what
    the check expects of the input (a one-hot p filled in is no longer one-hot), and
    what is asked is whether *this* symptom goes with the hazard.
    """
    try:
        outcome, failure = run_once(check, impl, case)
    except BaseException:  # a guard stopping the check, a bug of the check on odd input
        return None
    if outcome == "rejected":
        return None
    if outcome == "pass":
        return False
    seen = getattr(failure, "symptom", "violation")
    if seen == "no_result":  # a call that timed out says nothing about the input
        return None
    return symptom is None or seen == symptom


# --- conventions ---------------------------------------------------------------------


@dataclass
class _Call:
    quantity: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any


def _recording(impl: Implementation, calls: list[_Call]) -> Implementation:
    def wrap(quantity: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            calls.append(_Call(quantity, args, kwargs, result))
            return result

        return recorded

    return impl.replace(**{q: wrap(q, fn) for q, fn in impl.functions.items()})


def _conventions(check: Check, impl: Implementation, case: Any, symptom: str) -> dict[str, Any]:
    """The Cause fields for a convention or rounding that explains the failing values."""
    if symptom not in ("value", "negative", "not_inf", "inf"):
        return {}
    calls: list[_Call] = []
    _fails(check, _recording(impl, calls), case)
    declared = [c for c in impl.conventions if isinstance(c, Convention)]
    tried = [*declared, *([] if UNNORMALISED in declared else [UNNORMALISED])]
    largest = 0.0  # the largest tolerance of the values found within their clause's rounding
    for call in calls:
        found = _explain(call, tried, declared, symptom, impl.precision)
        if isinstance(found, dict):
            return found
        if found is None:  # a value no convention explains, or a call it cannot judge
            return {}
        largest = max(largest, found)
    if calls and symptom == "value":  # every call's value within its format's rounding
        return {
            "convention": "rounding",
            "dtype": impl.dtype,
            "note": f"each value it returned is within the error a correct {impl.dtype} evaluation "
            f"of the formula can make on these inputs (±{largest:.1g}, the inputs' own "
            "rounding included); the clause asks for more, which exact arithmetic gives",
        }
    return {}


def _by(convention: Convention, declared: list[Convention], note: str) -> dict[str, Any]:
    return {
        "convention": convention.key,
        "note": note,
        "convention_words": convention.words,
        "declared": convention in declared,
    }


def _numbers(result: Any) -> np.ndarray | None:
    try:
        return np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _explain(
    call: _Call,
    tried: list[Convention],
    declared: list[Convention],
    symptom: str,
    precision: Any = None,
) -> dict[str, Any] | float | None:
    """A convention (or rounding) that explains this call's value: the Cause fields; else
    the largest tolerance when every value is the clause's own within float64 rounding;
    else None (a value nothing explains, or a call this cannot judge)."""
    got = _numbers(call.result)
    if got is None or call.kwargs:
        return None
    float64 = precision is None or precision.name == "float64"
    if call.quantity in DIVERGENCES and float64:
        arrays = tuple(np.asarray(a, dtype=np.float64) for a in call.args)
        if got.ndim or any(a.ndim != 1 for a in arrays) or not _probabilities(arrays):
            return None
        want = _expected.of(call.quantity, *arrays)
        rows = [(float(got), arrays, (want.value, want.tolerance))]
    elif call.quantity == "token_kl":
        from klspec.spec.checks.language_models import token_kl_expected

        a, b = (np.asarray(x, dtype=np.float64) for x in call.args)
        if a.ndim != 2 or got.shape != a.shape[:-1] or not np.isfinite(a).all():
            return None
        values, tolerances = token_kl_expected(a, b, *([] if precision is None else [precision]))
        rows = [
            (float(g), (x, y), (float(v), float(t)))
            for g, x, y, v, t in zip(got, a, b, values, tolerances, strict=True)
        ]
    else:
        return None
    for value, arrays, exact in rows:
        if symptom == "negative" and value < 0 and call.quantity in DIVERGENCES:
            return _negative(call.quantity, arrays, value, tried, declared)
        deviates = not _close(value, *exact)
        for convention in tried:
            explained = convention.value(call.quantity, arrays, exact, precision)
            if explained is None:
                continue
            if convention.float32:  # the clause's value, within float32's rounding
                follows = deviates and _close(value, *explained)
            else:  # another formula's value, which the clause's is not
                follows = _follows(value, explained, exact[0])
            if follows:
                how = (
                    "by its documented convention"
                    if convention in declared
                    else "consistent with a convention it does not declare"
                )
                return _by(convention, declared, f"{how}: it {convention.words}")
        if deviates:
            return None
    return max(exact[1] for _, _, exact in rows) if rows else None


def _follows(value: float, explained: tuple[float, float], clause_value: float) -> bool:
    """Whether ``value`` is the convention's, and the convention's is not the clause's.

    Within the convention's rounding bound of its value, when that bound tells the two
    formulas apart; or within a few ulps of it, when the two differ by more than that
    (an exact clause, entropy of a one-hot p = 0, is told apart from 2.2e-16).
    """
    formula, tolerance = explained
    if math.isinf(formula) or math.isinf(value):
        return value == formula and not math.isinf(clause_value)
    if _close(value, formula, tolerance) and not _close(formula, clause_value, tolerance):
        return True
    ulps = 8 * U * abs(formula)
    return abs(value - formula) <= ulps and abs(formula - clause_value) > ulps


def _negative(
    quantity: str,
    arrays: tuple[np.ndarray, ...],
    value: float,
    tried: list[Convention],
    declared: list[Convention],
) -> dict[str, Any]:
    """Why a divergence came out negative: its own formula is negative here, or rounding.

    A declared convention whose formula is exactly negative on these inputs, and whose
    value the call returned, explains it. An undeclared one must also be told apart
    from rounding: a value within the clause's own tolerance of the exact (non-negative)
    value is put down to rounding, whatever else it is consistent with.
    """
    exact = _expected.of(quantity, *arrays)
    rounding = _close(value, exact.value, exact.tolerance)
    for convention in tried:
        explained = convention.value(quantity, arrays, (exact.value, exact.tolerance))
        if explained is None or convention.float32 or (rounding and convention not in declared):
            continue
        formula, tolerance = explained
        if formula < 0 and _close(value, formula, tolerance):
            how = "its documented convention" if convention in declared else "its formula"
            return _by(
                convention,
                declared,
                f"{how} {convention.words}; on these inputs that formula is exactly "
                f"{formula:.2g} < 0",
            )
    return {
        "convention": "rounding",
        "note": f"rounding: the exact value is {exact.value:.2g} ≥ 0, its evaluation in "
        "floating point came out below 0 and nothing clamps it at 0",
    }


def _probabilities(arrays: tuple[np.ndarray, ...]) -> bool:
    return all(a.size and np.isfinite(a).all() and (a >= 0).all() for a in arrays)


def _close(got: float, want: float, tolerance: float) -> bool:
    if math.isinf(want) or math.isinf(got):
        return got == want
    return abs(got - want) <= tolerance
