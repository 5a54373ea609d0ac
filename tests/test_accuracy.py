"""Accuracy of the reference against mpmath, on inputs chosen to be hard.

BOUND: relative error <= 1e-15 (about 4.5 ulps) against the exact value of the
exactly normalised inputs (klspec.spec.oracle, >= 60 digits beyond the inputs'
dynamic range), for float64 inputs, for KL, entropy and cross-entropy. A result
below the smallest normal float64 (2.2e-308) is a subnormal number whose
resolution is 2**-1074 = 4.9e-324, so there the bound adds that one unit
(H(1, 5e-324) = 3.68e-321 cannot be closer than 0.5 units to the truth).

The regimes are the ones where literal implementations fail: nearly equal
distributions (the true KL is ~ε², the normalisation rounding ~1e-16), exact
zeros, subnormal probabilities, 300 decades of dynamic range, one-hot and
uniform inputs, and supports from 1 to 10^6 outcomes.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given

from klspec.reference import cross_entropy, entropy, kl_divergence
from klspec.spec import strategies
from klspec.spec.oracle import accuracy_error, cross_entropy_exact, entropy_exact, kl_exact

BOUND = 1e-15


def assert_accurate(name: str, value: float, exact, **inputs: np.ndarray) -> None:
    __tracebackhide__ = True
    err = accuracy_error(float(value), exact)  # relative, one subnormal unit where it underflows
    shown = ", ".join(f"{k}=np.array({v.tolist()!r})" for k, v in inputs.items() if v.size <= 16)
    assert err <= BOUND, (
        f"{name}={value!r}, but should be {mpmath.nstr(exact, 20)} "
        f"(relative error {err:.2e} > {BOUND:g}) [{shown}]"
    )


def check_all(p: np.ndarray, q: np.ndarray) -> None:
    assert_accurate("kl(p, q)", kl_divergence(p, q), kl_exact(p, q), p=p, q=q)
    assert_accurate("entropy(p)", entropy(p), entropy_exact(p), p=p)
    assert_accurate("cross_entropy(p, q)", cross_entropy(p, q), cross_entropy_exact(p, q), p=p, q=q)


@given(case=strategies.pairs(max_size=64))
def test_accuracy_on_every_regime_of_the_pair_strategy(case):
    check_all(case.p, case.q)


@given(case=strategies.near_equal_pairs())
def test_accuracy_on_nearly_equal_pairs(case):
    if case.p.size > 4096:  # mpmath cost; large supports have their own tests below
        case_p, case_q = case.p[:4096], case.q[:4096]
        case_p, case_q = case_p / case_p.sum(), case_q / case_q.sum()
    else:
        case_p, case_q = case.p, case.q
    assert_accurate("kl(p, q)", kl_divergence(case_p, case_q), kl_exact(case_p, case_q))


# --- deterministic adversarial families -------------------------------------------

RNG_SEEDS = range(3)


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / x.sum()


def _near_equal(n: int, exponent: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = _normalised(rng.random(n))
    q = _normalised(p * (1 + 10.0**exponent * rng.uniform(-1, 1, n)))
    return p, q


@pytest.mark.parametrize("exponent", range(-2, -16, -1), ids=lambda e: f"eps=1e{e}")
@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_nearly_equal_down_to_relative_perturbation_1e_15(exponent, seed):
    p, q = _near_equal(50, exponent, seed)
    check_all(p, q)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_one_ulp_apart(seed):
    """The smallest possible difference: q moves one ulp from p in two places (KL ~ 1e-33)."""
    rng = np.random.default_rng(seed)
    p = _normalised(rng.random(30))
    q = p.copy()
    q[3] = np.nextafter(q[3], 2.0)
    q[7] = np.nextafter(q[7], -1.0)
    assert kl_exact(p, q) > 0
    check_all(p, q)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_three_hundred_decades_of_dynamic_range(seed):
    rng = np.random.default_rng(seed)
    p = _normalised(10.0 ** rng.uniform(-300, 0, 40))
    q = _normalised(10.0 ** rng.uniform(-300, 0, 40))
    check_all(p, q)
    check_all(q, p)


def test_subnormal_probabilities():
    p = _normalised(np.array([1.0, 1e-300, 5e-324, 4e-320, 2.5e-310]))
    q = np.array([0.5, 0.25, 0.125, 0.0625, 0.0625])
    check_all(p, q)
    check_all(q, p)  # log(q_i/p_i) ~ 744 next to terms of order 1


def test_subnormal_both_sides():
    """Both p_i and q_i subnormal and nearly equal: the scaling by 2**600 keeps products exact."""
    p = _normalised(np.array([0.6, 0.4 - 1e-309, 1e-309]))
    q = _normalised(np.array([0.6 - 1e-12, 0.4, 1.1e-309]))
    check_all(p, q)


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_every_ratio_from_1e_minus_300_to_1e300(seed):
    """Two-outcome pairs with log(P_i/Q_i) spread over ±690: exercises both branches of B(s)."""
    rng = np.random.default_rng(seed)
    for _ in range(40):
        p = _normalised(10.0 ** rng.uniform(-rng.uniform(0, 300), 0, 2))
        q = _normalised(10.0 ** rng.uniform(-rng.uniform(0, 300), 0, 2))
        check_all(p, q)


@pytest.mark.parametrize("s", np.linspace(-0.99, 0.99, 23), ids=lambda s: f"s={s:+.2f}")
def test_across_the_series_and_atanh_branches(s):
    """s = (r−1)/(r+1) for the first outcome, swept through the switch at |s| = 1/2."""
    r = (1 + s) / (1 - s)
    for q0 in (0.01, 0.2, 0.45):
        if r * q0 < 1:
            check_all(np.array([r * q0, 1 - r * q0]), np.array([q0, 1 - q0]))


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_one_hot_and_uniform(n):
    rng = np.random.default_rng(n)
    one_hot = np.zeros(n)
    one_hot[n // 2] = 1.0
    uniform = np.full(n, 1.0 / n)
    generic = _normalised(rng.random(n) + 1e-3)
    for p, q in [(one_hot, uniform), (one_hot, generic), (uniform, generic), (generic, uniform)]:
        check_all(p, q)
    assert entropy(one_hot) == 0.0
    assert kl_divergence(uniform, uniform) == 0.0


@pytest.mark.parametrize(
    ("n", "exponent"),
    [(1, -3), (10**3, -8), (10**4, -15), (10**5, -12)],
    ids=lambda v: str(v),
)
def test_large_supports(n, exponent):
    p, q = _near_equal(n, exponent, seed=n)
    if n == 1:
        q = np.array([1.0])
    assert_accurate("kl(p, q)", kl_divergence(p, q), kl_exact(p, q))
    assert_accurate("entropy(p)", entropy(p), entropy_exact(p))


def test_support_of_a_million_outcomes():
    """10^6 outcomes, relative perturbation 1e-13 (true KL ~ 1.7e-27). ~25 s of mpmath."""
    p, q = _near_equal(10**6, -13, seed=6)
    assert_accurate("kl(p, q)", kl_divergence(p, q), kl_exact(p, q))


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4)])
def test_batched_results_are_as_accurate_as_rows(shape):
    rng = np.random.default_rng(len(shape))
    p = rng.random(shape)
    p /= p.sum(axis=-1, keepdims=True)
    q = p * (1 + 1e-11 * rng.uniform(-1, 1, shape))
    q /= q.sum(axis=-1, keepdims=True)
    kl = kl_divergence(p, q)
    assert kl.shape == shape[:-1]
    for index in np.ndindex(*shape[:-1]):
        assert_accurate("kl(p, q)", kl[index], kl_exact(p[index], q[index]))


# --- the input classes of issue 15, each through the path that serves it ------------


def _class_pair(kind: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = _normalised(rng.standard_exponential(n))
    q = _normalised(rng.standard_exponential(n))
    if kind == "near":
        q = _normalised(p * (1 + 1e-12 * rng.uniform(-1, 1, n)))
    elif kind == "one_hot_p":  # sums to 1 − 1e-12: H ~ 1e-15 next to log Σp ~ −1e-12
        p = np.full(n, 1e-17 / max(1, n - 1))
        p[n // 3] = 1.0 - 1e-12 if n > 1 else 1.0
    elif kind == "one_hot_q":  # cross-entropy ~ 1e-15 next to log Σq ~ 1e-12
        q = np.full(n, 1e-17 / max(1, n - 1))
        q[0] = 1.0 + 1e-12 if n > 1 else 1.0
        p = q * (1 + 1e-10)
    elif kind == "proportional":  # p ∝ q, not normalised: KL ~ 1e-33
        p = q * (1 + 1e-9)
    elif kind == "zeros":
        p[::3] = 0.0
        q[::6] = 0.0
        p, q = _normalised(p), _normalised(q)
        if p.sum() == 0:
            p[1 % n] = 1.0
    elif kind == "subnormal":
        p[1::4] = 5e-320
        p = _normalised(p)
    return p, q


@pytest.mark.parametrize("n", [2, 3, 17, 300])
@pytest.mark.parametrize(
    "kind",
    ["dirichlet", "near", "one_hot_p", "one_hot_q", "proportional", "zeros", "subnormal"],
)
def test_every_input_class_of_issue_15(kind, n):
    """Rows the first pass certifies, rows the second pass redoes, rows the exact path
    redoes: batched (three rows) and one by one, all within the bound."""
    pairs = [_class_pair(kind, n, seed) for seed in range(3)]
    p = np.stack([a for a, _ in pairs])
    q = np.stack([b for _, b in pairs])
    kl, h, ce = kl_divergence(p, q), entropy(p), cross_entropy(p, q)
    for i, (pi, qi) in enumerate(pairs):
        assert_accurate("kl(p, q)", kl[i], kl_exact(pi, qi), p=pi, q=qi)
        assert_accurate("entropy(p)", h[i], entropy_exact(pi), p=pi)
        assert_accurate("cross_entropy(p, q)", ce[i], cross_entropy_exact(pi, qi), p=pi, q=qi)
