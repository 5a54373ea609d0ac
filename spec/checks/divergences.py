r"""Checks of the divergences: entropy, cross-entropy and KL of probability vectors.

Value oracles never come from the implementation under test: expected values
are computed here, from the textbook formula (``_expected``: mpmath on small
supports, float64 with fsum otherwise), and tolerances from the inputs'
conditioning (:mod:`klspec.spec.tolerances`). Relations between several calls
(permutation, batching, decomposition) compare the implementation with itself,
which is what those clauses state.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from klspec.spec import _expected, _inputs, oracle, strategies
from klspec.spec._assert import (
    call_text,
    describe_exception,
    invoke,
    message_of,
    names_argument,
    observe,
    require,
    require_close,
    show,
    violated,
)
from klspec.spec.checks._registry import Property, StrategySource
from klspec.spec.checks._registry import check as _check
from klspec.spec.interface import DIVERGENCES, Implementation
from klspec.spec.special_cases import SPECIAL_CASES, Outcome, SpecialCase
from klspec.spec.tolerances import TINY, U, defect, perturbation_error, value_tolerance


def _arrays(case: Any, quantity: str) -> tuple[np.ndarray, ...]:
    """The arguments of ``quantity`` in a case: (p,) for entropy, (p, q) otherwise."""
    return (case.p,) if quantity == "entropy" else (case.p, case.q)


def _tolerance(quantity: str, *arrays: np.ndarray) -> float:
    """The value tolerance for ``quantity`` on these 1-D inputs (float64 terms, no mpmath)."""
    return _expected.of(quantity, *arrays, exact=False).tolerance


def _literal_case(**arrays: Any) -> Callable[[], st.SearchStrategy]:
    """A strategy factory always drawing the same case (a witness, a worked example)."""
    return lambda: st.just(strategies.Case(**{k: [float(x) for x in v] for k, v in arrays.items()}))


# --- definitions ------------------------------------------------------------------


def _agrees_with_formula(impl: Implementation, quantity: str, *arrays: np.ndarray) -> None:
    __tracebackhide__ = True
    got = observe(impl, quantity, *arrays)
    want = _expected.of(quantity, *arrays)
    require_close(call_text(quantity, len(arrays)), got, want.value, want.tolerance)


@_check("entropy.definition", needs={"entropy"}, on={"distributions": _inputs.distributions})
def entropy_definition(impl: Implementation, case: Any) -> None:
    """entropy(p) is −Σ P_i log P_i of the normalised input, within the value tolerance."""
    _agrees_with_formula(impl, "entropy", case.p)


@_check("cross_entropy.definition", needs={"cross_entropy"}, on={"pairs": _inputs.pairs})
def cross_entropy_definition(impl: Implementation, case: Any) -> None:
    """cross_entropy(p, q) is −Σ P_i log Q_i of the normalised inputs, within the tolerance."""
    _agrees_with_formula(impl, "cross_entropy", case.p, case.q)


@_check(
    "kl.definition",
    needs={"kl"},
    on={"pairs": _inputs.pairs, "near_equal_pairs": _inputs.near_equal_pairs},
)
def kl_definition(impl: Implementation, case: Any) -> None:
    """kl(p, q) is Σ P_i log(P_i/Q_i) of the normalised inputs, within the value tolerance."""
    _agrees_with_formula(impl, "kl", case.p, case.q)


_BASES = (2.0, math.e, 10.0)
_DEFAULT_INPUTS = {
    "entropy": _inputs.distributions,
    "cross_entropy": _inputs.pairs,
    "kl": _inputs.pairs,
}


def _in_base(impl: Implementation, case: Any, *, quantity: str) -> None:
    """The result with base=b is the exact nats value / ln b, for b = 2, e, 10."""
    __tracebackhide__ = True
    arrays = _arrays(case, quantity)
    want = _expected.of(quantity, *arrays)
    for base in _BASES:
        got = observe(impl, quantity, *arrays, base=base)
        ln_b = float(mpmath.log(base))
        tolerance = want.tolerance / ln_b + 2 * U * abs(want.value / ln_b)
        require_close(
            call_text(quantity, len(arrays), base=base), got, want.value / ln_b, tolerance
        )


for _quantity in DIVERGENCES:
    _check(
        "units.base",
        needs={_quantity, "base"},
        on={_quantity: _DEFAULT_INPUTS[_quantity]},
    )(functools.partial(_in_base, quantity=_quantity))


# --- special cases, generated from the table ------------------------------------


def _special_case_property(row: SpecialCase) -> Property:
    def prop(impl: Implementation, case: Any) -> None:
        arrays = _arrays(case, row.quantity)
        call = call_text(row.quantity, len(arrays))
        got = observe(impl, row.quantity, *arrays)
        if row.result == "+inf":
            require(got == math.inf, call, got, "+inf")
        elif row.result == "0":
            require(got == 0, call, got, "0 exactly")
        elif row.result == "log n":
            n = arrays[0].size
            log_n = float(mpmath.log(n))
            tolerance = value_tolerance(log_n, n, [defect(arrays[0])], log_n) + U * log_n
            require_close(call, got, log_n, tolerance)
        else:  # "term 0", "exact term": the value of the formula (outcomes all zero left out)
            keep = np.logical_or.reduce([a > 0 for a in arrays])
            want = _expected.of(row.quantity, *(a[keep] for a in arrays))
            require_close(call, got, want.value, want.tolerance)

    prop.__doc__ = row.statement
    prop.__name__ = prop.__qualname__ = row.clause_id.replace(".", "_")
    return prop


for _row in SPECIAL_CASES:
    _check(
        _row.clause_id,
        needs={_row.quantity},
        name=_row.id,
        strategy=_inputs.with_outcome(_row.condition)
        if isinstance(_row.condition, Outcome)
        else _inputs.shaped(_row.condition),
        hazard=_row.condition.hazard,
    )(_special_case_property(_row))


# --- the post's worked examples ---------------------------------------------------

_WEATHER_P = (Fraction(7, 10), Fraction(3, 10))  # sunny, rainy: the truth
_WEATHER_Q = (Fraction(1, 2), Fraction(1, 2))  # the 50/50 forecast


def _exact_kl(P: tuple[Fraction, ...], Q: tuple[Fraction, ...]) -> mpmath.mpf:
    """Σ P_i log(P_i/Q_i) for exact rational P, Q, with mpmath at 40 digits."""

    def mp(x: Fraction) -> mpmath.mpf:
        return mpmath.mpf(x.numerator) / x.denominator

    with mpmath.workdps(40):
        return +mpmath.fsum(mp(a) * mpmath.log(mp(a / b)) for a, b in zip(P, Q, strict=True) if a)


def _worked_kl(impl: Implementation, P: tuple[Fraction, ...], Q: tuple[Fraction, ...]) -> None:
    __tracebackhide__ = True
    p, q = np.array([float(x) for x in P]), np.array([float(x) for x in Q])
    want = float(_exact_kl(P, Q))
    approx = _expected.of("kl", p, q, exact=False)
    # The float inputs are within a relative u of the post's numbers.
    tolerance = approx.tolerance + perturbation_error(U, approx.magnitude)
    call = f"kl({_list_text(P)}, {_list_text(Q)})"
    require_close(call, observe(impl, "kl", p, q, call=call), want, tolerance)


def _list_text(x: tuple[Fraction, ...]) -> str:
    return "[" + ", ".join(repr(float(v)) for v in x) + "]"


@_check("example.weather.forward", needs={"kl"})
def weather_forward(impl: Implementation, case: None) -> None:
    """KL((0.7, 0.3)‖(0.5, 0.5)) = 0.7 ln(7/5) + 0.3 ln(3/5) ≈ 0.0823 nats."""
    _worked_kl(impl, _WEATHER_P, _WEATHER_Q)


@_check("example.weather.reverse", needs={"kl"})
def weather_reverse(impl: Implementation, case: None) -> None:
    """KL((0.5, 0.5)‖(0.7, 0.3)) = 0.5 ln(5/7) + 0.5 ln(5/3) ≈ 0.0872 nats (the post says 0.088)."""
    _worked_kl(impl, _WEATHER_Q, _WEATHER_P)


_COIN_FLIPS = ("H", "H", "T")


@_check("example.coin_flips", needs={"empirical"})
def coin_flips(impl: Implementation, case: None) -> None:
    """empirical(H, H, T) is exactly (2/3, 1/3), with the outcomes in order of appearance."""
    call = f"empirical({list(_COIN_FLIPS)!r})"
    result = invoke(call, impl.function("empirical"), list(_COIN_FLIPS))
    try:
        outcomes, probabilities = result
        got = np.asarray(probabilities, dtype=np.float64)
    except (TypeError, ValueError):
        violated(f"{call} returned {result!r:.80}, but should be (outcomes, probabilities)")
    if list(outcomes) != ["H", "T"]:
        violated(f"{call} outcomes={list(outcomes)!r}, but should be ['H', 'T']")
    want = np.array([float(Fraction(_COIN_FLIPS.count(o), len(_COIN_FLIPS))) for o in "HT"])
    if got.shape != want.shape or not (got == want).all():
        violated(f"{call} probabilities={show(got)}, but should be exactly {show(want)}")


# --- properties -------------------------------------------------------------------


@_check(
    "kl.nonnegative",
    needs={"kl"},
    on={"pairs": _inputs.pairs, "near_equal_pairs": _inputs.near_equal_pairs},
)
def kl_nonnegative(impl: Implementation, case: Any) -> None:
    """kl(p, q) >= 0 exactly: no tolerance, a negative value is wrong however small."""
    got = observe(impl, "kl", case.p, case.q)
    require(got >= 0, "kl(p, q)", got, ">= 0")


#: kl.accuracy: the bound on the relative error, and the subnormal grid's unit.
ACCURACY = 1e-15


@_check(
    "kl.accuracy",
    needs={"kl"},
    on={"pairs": _inputs.small_pairs, "near_equal_pairs": _inputs.small_near_equal_pairs},
)
def kl_accuracy(impl: Implementation, case: Any) -> None:
    """kl(p, q) is within a relative 1e-15 of the exact value (mpmath), however small."""
    got = observe(impl, "kl", case.p, case.q)
    exact = oracle.kl_exact(case.p, case.q)
    error = oracle.accuracy_error(got, exact)  # relative; one subnormal unit where it underflows
    require(
        error <= ACCURACY,
        "kl(p, q)",
        got,
        f"{mpmath.nstr(exact, 17)} within a relative {ACCURACY:g} (relative error {error:.2g})",
    )


@_check("kl.zero_iff_equal", needs={"kl"}, on={"p == q": _inputs.distributions})
def kl_of_equal_is_zero(impl: Implementation, case: Any) -> None:
    """kl(p, p) is exactly 0 (p passed twice, as two arrays)."""
    got = observe(impl, "kl", case.p, np.array(case.p), call="kl(p, p)")
    require(got == 0, "kl(p, p)", got, "0 exactly")


@_check("kl.zero_iff_equal", needs={"kl"}, on={"p != q": _inputs.pairs})
def kl_of_different_is_positive(impl: Implementation, case: Any) -> None:
    """kl(p, q) > 0 when P ≠ Q by more than float64 can resolve.

    Gate: Pinsker's lower bound ½‖P − Q‖₁² must exceed the value tolerance;
    closer pairs are skipped rather than judged with a wider tolerance.
    """
    P, Q = _expected.normalised(case.p), _expected.normalised(case.q)
    pinsker = 0.5 * math.fsum(np.abs(P - Q)) ** 2
    assume(pinsker > _tolerance("kl", case.p, case.q))
    got = observe(impl, "kl", case.p, case.q)
    require(got > 0, "kl(p, q)", got, f"> 0 (P ≠ Q: ½‖P − Q‖₁² = {pinsker:.3g})")


@_check(
    "kl.asymmetric",
    needs={"kl"},
    on={"weather": _literal_case(p=_WEATHER_P, q=_WEATHER_Q)},
)
def kl_asymmetric(impl: Implementation, case: Any) -> None:
    """kl(p, q) and kl(q, p) differ, beyond rounding, on the witness (the weather example)."""
    forward = observe(impl, "kl", case.p, case.q)
    reverse = observe(impl, "kl", case.q, case.p, call="kl(q, p)")
    slack = _tolerance("kl", case.p, case.q) + _tolerance("kl", case.q, case.p)
    require(
        abs(forward - reverse) > slack,
        "kl(p, q) − kl(q, p)",
        forward - reverse,
        f"nonzero beyond rounding (|·| > {slack:.2g}): KL is not symmetric",
    )


@_check(
    "kl.not_a_metric",
    needs={"kl"},
    on={"witness": _literal_case(p=(0.9, 0.1), q=(0.5, 0.5), r=(0.1, 0.9))},
)
def kl_not_a_metric(impl: Implementation, case: Any) -> None:
    """kl(p, r) > kl(p, q) + kl(q, r) on the witness: the triangle inequality fails."""
    p, q, r = case.p, case.q, case.r
    direct = observe(impl, "kl", p, r, call="kl(p, r)")
    via_q = observe(impl, "kl", p, q) + observe(impl, "kl", q, r, call="kl(q, r)")
    slack = _tolerance("kl", p, r) + _tolerance("kl", p, q) + _tolerance("kl", q, r)
    require(
        direct - via_q > slack,
        "kl(p, r) − kl(p, q) − kl(q, r)",
        direct - via_q,
        f"> {slack:.2g} (KL breaks the triangle inequality here)",
    )


@_check("kl.decomposition", needs={"kl", "cross_entropy", "entropy"}, on={"pairs": _inputs.pairs})
def kl_decomposition(impl: Implementation, case: Any) -> None:
    """kl(p, q) = cross_entropy(p, q) − entropy(p), within the three value tolerances."""
    p, q = case.p, case.q
    kl = observe(impl, "kl", p, q)
    ce = observe(impl, "cross_entropy", p, q)
    h = observe(impl, "entropy", p)
    tolerance = sum(
        _tolerance(x, *a) for x, a in [("kl", (p, q)), ("cross_entropy", (p, q)), ("entropy", (p,))]
    )
    require_close(
        "kl(p, q)", kl, ce - h, tolerance, expected_text="cross_entropy(p, q) − entropy(p)"
    )


@_check("entropy.bounds", needs={"entropy"}, on={"distributions": _inputs.distributions})
def entropy_bounds(impl: Implementation, case: Any) -> None:
    """0 <= entropy(p) exactly, and entropy(p) <= log n within the value tolerance."""
    h = observe(impl, "entropy", case.p)
    require(h >= 0, "entropy(p)", h, ">= 0")
    n = case.p.size
    log_n = math.log(n)
    slack = _tolerance("entropy", case.p) + U * log_n
    require(h <= log_n + slack, "entropy(p)", h, f"<= log n = {log_n!r} (n = {n}, ± {slack:.2g})")


def _permutation(n: int) -> np.ndarray:
    """A fixed relabelling of n outcomes, derived from n (never the identity for n > 1)."""
    perm = np.random.default_rng(n).permutation(n)
    return perm[::-1] if (perm == np.arange(n)).all() else perm


def _permuted_agrees(impl: Implementation, case: Any, *, quantity: str) -> None:
    """The result does not change when the outcomes are relabelled (p[perm], q[perm])."""
    __tracebackhide__ = True
    arrays = _arrays(case, quantity)
    perm = _permutation(arrays[0].size)
    original = observe(impl, quantity, *arrays)
    call = f"{quantity}({', '.join(f'{n}[perm]' for n in 'pq'[: len(arrays)])})"
    permuted = observe(impl, quantity, *(a[perm] for a in arrays), call=call)
    tolerance = 2 * _tolerance(quantity, *arrays)
    require_close(
        call, permuted, original, tolerance, expected_text=call_text(quantity, len(arrays))
    )


for _quantity, _label, _strategy in (
    ("entropy", "distributions", _inputs.distributions),
    ("kl", "pairs", _inputs.pairs),
):
    _check(f"{_quantity}.permutation_invariant", needs={_quantity}, on={_label: _strategy})(
        functools.partial(_permuted_agrees, quantity=_quantity)
    )


def _no_underflow(*arrays: np.ndarray) -> bool:
    """Whether every positive entry is a normal float (subnormals have lost digits)."""
    return all(bool((a[a > 0] >= TINY).all()) for a in arrays)


@_check(
    "kl.additive_independent", needs={"kl"}, on={"independent_pairs": _inputs.independent_pairs}
)
def kl_additive(impl: Implementation, case: Any) -> None:
    """kl(p1 ⊗ p2, q1 ⊗ q2) = kl(p1, q1) + kl(p2, q2).

    Gate: the outer products must not underflow.
    """
    p = np.outer(case.p1, case.p2).ravel()
    q = np.outer(case.q1, case.q2).ravel()
    assume(_no_underflow(p, q))
    call = "kl(p1 ⊗ p2, q1 ⊗ q2)"
    joint = observe(impl, "kl", p, q, call=call)
    first = observe(impl, "kl", case.p1, case.q1, call="kl(p1, q1)")
    second = observe(impl, "kl", case.p2, case.q2, call="kl(p2, q2)")
    whole = _expected.of("kl", p, q, exact=False)
    tolerance = (
        whole.tolerance
        + perturbation_error(U, whole.magnitude)
        + _tolerance("kl", case.p1, case.q1)
        + _tolerance("kl", case.p2, case.q2)
        + U * abs(first + second)
    )
    require_close(call, joint, first + second, tolerance, expected_text="kl(p1, q1) + kl(p2, q2)")


@_check("kl.chain_rule", needs={"kl"}, on={"joint_pairs": _inputs.joint_pairs})
def kl_chain_rule(impl: Implementation, case: Any) -> None:
    """kl(p_xy, q_xy) = kl(p_x, q_x) + Σ_x p_x(x)·kl(p_y|x, q_y|x) for joints p, q of shape (X, Y).

    Gate: every positive marginal and conditional probability must be a normal
    float (the check computes them; a subnormal quotient has lost its digits).
    """
    p, q = case.p, case.q
    p_x = np.array([math.fsum(row) for row in p])
    q_x = np.array([math.fsum(row) for row in q])
    rows = np.flatnonzero((p_x > 0) & (q_x > 0))
    conditionals = [(p[x] / p_x[x], q[x] / q_x[x]) for x in rows]
    assume(_no_underflow(p_x, q_x, *(a for pair in conditionals for a in pair)))
    call = "kl(p_xy, q_xy)"
    joint = observe(impl, "kl", p.ravel(), q.ravel(), call=call)
    marginal = observe(impl, "kl", p_x, q_x, call="kl(p_x, q_x)")
    whole, margin = (
        _expected.of("kl", a, b, exact=False) for a, b in [(p.ravel(), q.ravel()), (p_x, q_x)]
    )
    weighted, slack = [], []
    if ((p_x > 0) & (q_x == 0)).any():
        weighted.append(math.inf)
    for x, (cp, cq) in zip(rows, conditionals, strict=True):
        conditional = observe(impl, "kl", cp, cq, call=f"kl(p_y|x={x}, q_y|x={x})")
        expected = _expected.of("kl", cp, cq, exact=False)
        weighted.append(p_x[x] * conditional)
        slack.append(p_x[x] * (expected.tolerance + perturbation_error(2 * U, expected.magnitude)))
    want = marginal + math.fsum(weighted)
    tolerance = (
        whole.tolerance
        + margin.tolerance
        + perturbation_error(U, margin.magnitude)
        + math.fsum(slack)
        + 2 * U * abs(want)
    )
    require_close(
        call, joint, want, tolerance, expected_text="kl(p_x, q_x) + Σ_x p_x(x)·kl(p_y|x, q_y|x)"
    )


def _merge(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Probabilities of the merged outcomes: x summed within each group (fsum, one rounding)."""
    return np.array([math.fsum(x[groups == g]) for g in np.unique(groups)])


@_check("kl.data_processing", needs={"kl"}, on={"pairs": _inputs.small_pairs})
def kl_data_processing(impl: Implementation, case: Any) -> None:
    """kl(merge(p), merge(q)) <= kl(p, q): merging outcomes never increases KL.

    The merge groups outcome i into np.random.default_rng(n).integers(0, max(1, n // 2), n)[i].
    """
    p, q = case.p, case.q
    n = p.size
    groups = np.random.default_rng(n).integers(0, max(1, n // 2), n)
    mp, mq = _merge(p, groups), _merge(q, groups)
    call = "kl(merge(p), merge(q))"
    merged = observe(impl, "kl", mp, mq, call=call)
    original = observe(impl, "kl", p, q)
    approx = _expected.of("kl", mp, mq, exact=False)
    slack = approx.tolerance + perturbation_error(U, approx.magnitude) + _tolerance("kl", p, q)
    require(
        merged <= original + slack, call, merged, f"<= kl(p, q) = {show(original)} (± {slack:.2g})"
    )


@_check("kl.jointly_convex", needs={"kl"}, on={"triples": _inputs.triples})
def kl_jointly_convex(impl: Implementation, case: Any) -> None:
    """kl(λp + (1−λ)q, λq + (1−λ)r) <= λ·kl(p, q) + (1−λ)·kl(q, r) for λ = 1/4, 1/2, 3/4.

    Gate: every positive entry of the mixtures must be a normal float.
    """
    p, q, r = case.p, case.q, case.r
    first = observe(impl, "kl", p, q)
    second = observe(impl, "kl", q, r, call="kl(q, r)")
    base_slack = (_tolerance("kl", p, q), _tolerance("kl", q, r))
    for lam in (0.25, 0.5, 0.75):
        mix_p, mix_q = lam * p + (1 - lam) * q, lam * q + (1 - lam) * r
        assume(_no_underflow(mix_p, mix_q))
        call = f"kl({lam}p + {1 - lam}q, {lam}q + {1 - lam}r)"
        mixed = observe(impl, "kl", mix_p, mix_q, call=call)
        bound = lam * first + (1 - lam) * second
        approx = _expected.of("kl", mix_p, mix_q, exact=False)
        slack = (
            approx.tolerance
            + perturbation_error(2 * U, approx.magnitude)
            + lam * base_slack[0]
            + (1 - lam) * base_slack[1]
            + 2 * U * bound
        )
        require(
            mixed <= bound + slack,
            call,
            mixed,
            f"<= {lam}·kl(p, q) + {1 - lam}·kl(q, r) = {show(bound)} (± {slack:.2g})",
        )


@_check("kl.pinsker", needs={"kl"}, on={"pairs": _inputs.pairs})
def kl_pinsker(impl: Implementation, case: Any) -> None:
    """kl(p, q) >= ½‖P − Q‖₁² (Pinsker), within the value tolerance."""
    P, Q = _expected.normalised(case.p), _expected.normalised(case.q)
    bound = 0.5 * math.fsum(np.abs(P - Q)) ** 2
    slack = _tolerance("kl", case.p, case.q) + 8 * U * bound
    got = observe(impl, "kl", case.p, case.q)
    require(got >= bound - slack, "kl(p, q)", got, f">= ½‖P − Q‖₁² = {show(bound)} (± {slack:.2g})")


# --- what implementations promise about calls -----------------------------------


def _rowwise(impl: Implementation, case: Any, *, quantity: str) -> None:
    """A batched call has the batch shape and equals the row-by-row calls."""
    __tracebackhide__ = True
    arrays = _arrays(case, quantity)
    batch = arrays[0].shape[:-1]
    batched = observe(impl, quantity, *arrays, shape=batch)
    rows, tolerance = np.empty(batch), np.empty(batch)
    for index in np.ndindex(*batch):
        at = ", ".join(map(str, index))
        row_arrays = [a[index] for a in arrays]
        call = f"{quantity}({', '.join(f'{n}[{at}]' for n in 'pq'[: len(arrays)])})"
        rows[index] = observe(impl, quantity, *row_arrays, call=call)
        tolerance[index] = 2 * _tolerance(quantity, *row_arrays)
    expected = f"{quantity}({', '.join(f'{n}[{{index}}]' for n in 'pq'[: len(arrays)])})"
    require_close(
        call_text(quantity, len(arrays)), batched, rows, tolerance, expected_text=expected
    )


for _quantity in DIVERGENCES:
    _check("batching.rowwise", needs={_quantity, "batched"}, on={_quantity: _inputs.batched_pairs})(
        functools.partial(_rowwise, quantity=_quantity)
    )


@_check("batching.axis", needs={"kl", "batched", "axis"}, on={"kl": _inputs.batched_pairs})
def kl_axis(impl: Implementation, case: Any) -> None:
    """kl(moveaxis(p, -1, 0), moveaxis(q, -1, 0), axis=0) equals kl(p, q)."""
    p, q = case.p, case.q
    batch = p.shape[:-1]
    call = "kl(moveaxis(p, -1, 0), moveaxis(q, -1, 0), axis=0)"
    moved = observe(
        impl, "kl", np.moveaxis(p, -1, 0), np.moveaxis(q, -1, 0), axis=0, call=call, shape=batch
    )
    last = observe(impl, "kl", p, q, shape=batch)
    tolerance = np.empty(batch)
    for index in np.ndindex(*batch):
        tolerance[index] = 2 * _tolerance("kl", p[index], q[index])
    require_close(call, moved, last, tolerance, expected_text="kl(p, q)[{index}]")


def _unmodified(impl: Implementation, case: Any, *, quantity: str) -> None:
    """The function leaves its arguments unchanged, bit for bit (given writable copies).

    Only the bytes are judged: what the call returns (NaN, say) or raises is the
    business of the other clauses, so it cannot fail this one.
    """
    originals = tuple(case.arrays.values())
    copies = [np.array(a) for a in originals]
    call = call_text(quantity, len(copies))
    with contextlib.suppress(AssertionError):  # a wrong result or an exception: not a write
        invoke(call, impl.function(quantity), *copies)
    for name, before, after in zip(case.arrays, originals, copies, strict=True):
        changed = before.view(np.uint64) != after.view(np.uint64)
        if changed.any():
            i = tuple(int(k) for k in np.argwhere(changed)[0])
            at = ", ".join(map(str, i))
            violated(
                f"{call} changed {name}[{at}] from {show(before[i])} to {show(after[i])}, "
                "but should leave its arguments unchanged",
                "writes",
            )


def _first(names: str) -> Callable[..., st.SearchStrategy]:
    """The drawn case with only the named arrays (entropy takes p alone).

    Any format will do: the check judges bytes, not values (a conversion rounds them).
    """
    return lambda precision=None: _inputs.small_pairs().map(
        lambda c: strategies.Case(regime=c.regime, **{n: c.arrays[n] for n in names})
    )


def _unmodified_inputs() -> dict[str, StrategySource]:
    from klspec.spec.checks import language_models as lm

    return {
        "entropy": _first("p"),
        "cross_entropy": _first("pq"),
        "kl": _first("pq"),
        "token_kl": lm.logit_pairs,
        "k1": lm.sampled_tokens,
        "k2": lm.sampled_tokens,
        "k3": lm.sampled_tokens,
    }


# --- domain: what the API promises about bad input -------------------------------


@dataclass(frozen=True)
class _BadInput:
    """One kind of bad input: how it is made from a valid (p, q), and what the error must name."""

    what: str
    names: tuple[str, ...]
    make: Callable[[np.ndarray, np.ndarray], tuple[Any, Any]]
    options: tuple[tuple[str, Any], ...] = ()
    pairs_only: bool = False  #: only bad for functions of (p, q): the fault is in q


def _with_entry(x: np.ndarray, change: Callable[[float], float]) -> np.ndarray:
    bad = np.array(x)
    k = int(np.argmax(bad))
    bad[k] = change(bad[k])
    return bad


def _entry_rows(name: str) -> tuple[_BadInput, ...]:
    def on(change):
        return lambda p, q: (
            (_with_entry(p, change), q) if name == "p" else (p, _with_entry(q, change))
        )

    return (
        _BadInput(f"a negative entry in {name}", (name,), on(lambda v: -v), pairs_only=name == "q"),
        _BadInput(
            f"a NaN entry in {name}", (name,), on(lambda v: math.nan), pairs_only=name == "q"
        ),
        _BadInput(
            f"an infinite entry in {name}", (name,), on(lambda v: math.inf), pairs_only=name == "q"
        ),
    )


_RAGGED = [[0.5, 0.5], [1.0]]

_BAD_INPUTS: dict[str, tuple[_BadInput, ...]] = {
    "entries": (*_entry_rows("p"), *_entry_rows("q")),
    "sums": (
        _BadInput("p summing to 2", ("p",), lambda p, q: (2 * p, q)),
        _BadInput("q summing to 1/2", ("q",), lambda p, q: (p, 0.5 * q), pairs_only=True),
    ),
    "shapes": (
        _BadInput("an empty support", ("p", "q"), lambda p, q: (np.array([]), np.array([]))),
        _BadInput(
            "one more outcome in q",
            ("p", "q"),
            lambda p, q: (p, np.append(q, 0.0)),
            pairs_only=True,
        ),
        _BadInput("a ragged nested list for p", ("p",), lambda p, q: (_RAGGED, [[0.5, 0.5]] * 2)),
        _BadInput("0-d inputs", ("p", "q"), lambda p, q: (np.float64(1.0), np.float64(1.0))),
    ),
    "base": tuple(
        _BadInput(f"base={b!r}", ("base",), lambda p, q: (p, q), (("base", b),))
        for b in (1.0, 0.0, -2.0, math.nan, math.inf)
    ),
    "axis": tuple(
        _BadInput(f"axis={a!r}", ("axis",), lambda p, q: (p, q), (("axis", a),))
        for a in (1, -2, 0.5)
    ),
}


def _rejects(impl: Implementation, case: Any, *, kind: str) -> None:
    """Every bad input of this kind raises ValueError or TypeError naming the argument."""
    __tracebackhide__ = True
    for quantity in DIVERGENCES:
        fn = getattr(impl, quantity)
        arity = 1 if quantity == "entropy" else 2
        if fn is None:
            continue
        for bad in _BAD_INPUTS[kind]:
            if arity == 1 and bad.pairs_only:
                continue  # entropy has no q
            args = bad.make(case.p, case.q)[:arity]
            options = dict(bad.options)
            call = f"{call_text(quantity, arity, **options)} with {bad.what}"
            should = f"raise ValueError or TypeError naming {' or '.join(bad.names)}"
            try:
                result = fn(*args, **options)
            except (ValueError, TypeError) as exc:
                if not names_argument(message_of(exc), bad.names):
                    violated(
                        f"{call} raised {describe_exception(exc)}, "
                        f"but should name {' or '.join(bad.names)}"
                    )
                continue
            except Exception as exc:
                violated(f"{call} raised {describe_exception(exc)}, but should {should}")
            violated(f"{call} returned {_short_value(result)}, but should {should}")


def _short_value(x: Any) -> str:
    try:
        return show(x)
    except (TypeError, ValueError):
        return repr(x)[:80]


for _kind, _extra in (
    ("entries", ()),
    ("sums", ()),
    ("shapes", ()),
    ("base", ("base",)),
    ("axis", ("axis",)),
):
    _check("domain.validation", needs={"validates", *_extra}, on={_kind: _inputs.small_pairs})(
        functools.partial(_rejects, kind=_kind)
    )


# --- inputs.unmodified, for every function it covers -----------------------------

for _quantity, _source in _unmodified_inputs().items():
    # Bytes, not values, are judged: the check holds in every format.
    _check("inputs.unmodified", needs={_quantity}, on={_quantity: _source}, adapts=("precision",))(
        functools.partial(_unmodified, quantity=_quantity)
    )
