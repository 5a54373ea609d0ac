"""rlhf_optimal_policy, rlhf_objective, rlhf_optimal_value: against mpmath, and their laws.

BOUNDS (u = 2**-53; exact values from mpmath, 40+ digits beyond the size of r/β and
the dynamic range of ref_probs, doubled until two evaluations agree to 30 digits).
Measured maxima are over 7000 problems, 1000 per regime of ``build``:

* π*(y): relative error <= PI_BOUND = 6u for every entry above 1e-300
  (measured max 4.1u).
* β log Z: |error| <= VALUE_BOUND·M = 6u·M, where
  M = |β log Z| + Σ π*|r| + β Σ|π* − π_ref| is the change that perturbing each
  reward and each π_ref(y) by one ulp (relative) can cause, i.e. the condition
  number times |β log Z| (measured max 3.1u·M). Where M <= 4|β log Z| this is
  at most 24u relative (measured max 5.8u); where β log Z nearly cancels (rewards
  of both signs with log Z ≈ 0) no float64 algorithm can promise relative digits.
* J(π*) against β log Z: |J(π*) − β log Z| <= J_BOUND·(|E_π*[r]| + β KL(π*‖π_ref) + M)
  = 6u·(...), the size of the terms J subtracts plus the value's own scale, plus
  β·(12u)² because J is evaluated at the *rounded* π* (second order: J is flat at
  its maximum). Measured max 2.5u. On well-conditioned problems (nothing cancels)
  the two agree to 4u relative.
* J(π) against mpmath for drawn π: |error| <= OBJECTIVE_BOUND·(|E_π[r]| + β KL(π‖π_ref))
  = 8u·(...) (measured max 4.0u).

Each property has a meta-test (at the end) showing that a deliberately broken
implementation is rejected by it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import numpy as np
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from klspec.reference import kl_divergence
from klspec.reference.rlhf import rlhf_objective, rlhf_optimal_policy, rlhf_optimal_value

U = 2.0**-53
SUBNORMAL_UNIT = 2.0**-1074
PI_BOUND = 6 * U
VALUE_BOUND = 6 * U
J_BOUND = 6 * U
OBJECTIVE_BOUND = 8 * U


@dataclass(frozen=True)
class Rlhf:
    """The three functions under test (the reference, or a broken one for meta-tests)."""

    name: str
    policy: Callable = rlhf_optimal_policy
    objective: Callable = rlhf_objective
    value: Callable = rlhf_optimal_value


REFERENCE = Rlhf("reference")


@dataclass(frozen=True)
class Problem:
    """One prompt: ref_probs p, rewards r, β. The repr rebuilds it."""

    p: np.ndarray
    r: np.ndarray
    beta: float

    def __repr__(self) -> str:
        return (
            f"Problem(p=np.array({self.p.tolist()!r}), r=np.array({self.r.tolist()!r}), "
            f"beta={self.beta!r})"
        )


# --- exact values ---------------------------------------------------------------------


def _digits(pr: Problem) -> int:
    """40 digits beyond the size of r/β and the dynamic range of ref_probs (Σp exact)."""
    spread = -math.log10(float(pr.p[pr.p > 0].min()))
    return 40 + int(math.log10(1.0 + float(np.abs(pr.r).max()) / pr.beta) + spread)


@dataclass(frozen=True)
class Optimum:
    """The exact β log Z and π* of a problem, and M, the value's condition scale."""

    value: mpmath.mpf
    star: list[mpmath.mpf]
    scale: mpmath.mpf


def exact_optimum(pr: Problem) -> Optimum:
    """β log Z, π* and M = |β log Z| + Σ π*|r| + β Σ|π* − π_ref| with mpmath.

    log Z = log1p(Σ π_ref expm1(r/β)) where |r/β| <= 1 (rewards far below β lose
    nothing), else c + log Σ π_ref e^{r/β − c} with c = max r/β. Either may cancel,
    so the precision is doubled until two evaluations agree to 30 digits.
    """
    digits, previous = _digits(pr), None
    while True:
        with mpmath.workdps(digits):
            beta = mpmath.mpf(pr.beta)
            p = [mpmath.mpf(float(x)) for x in pr.p]
            total = mpmath.fsum(p)
            ref = [x / total for x in p]
            rho = [mpmath.mpf(float(y)) / beta for y in pr.r]
            on = [(q, t) for q, t in zip(ref, rho, strict=True) if q > 0]
            if max(abs(t) for _, t in on) <= 1:
                log_z = mpmath.log1p(mpmath.fsum(q * mpmath.expm1(t) for q, t in on))
            else:  # centred on c = max r/β: positive terms, at most 1
                c = max(t for _, t in on)
                log_z = c + mpmath.log(mpmath.fsum(q * mpmath.exp(t - c) for q, t in on))
            star = [q * mpmath.exp(t - log_z) for q, t in zip(ref, rho, strict=True)]
            # π* − π_ref = π_ref·expm1(ρ − log Z), without cancellation.
            moved = [q * mpmath.expm1(t - log_z) for q, t in zip(ref, rho, strict=True)]
            value = beta * log_z
            scale = (
                abs(value)
                + mpmath.fsum(s * abs(float(y)) for s, y in zip(star, pr.r, strict=True))
                + beta * mpmath.fsum(abs(m) for m in moved)
            )
            if previous is not None and abs(value - previous) <= mpmath.mpf(10) ** -30 * scale:
                return Optimum(+value, [+x for x in star], +scale)
            previous, digits = value, 2 * digits


def exact_objective(pi: np.ndarray, pr: Problem) -> tuple[mpmath.mpf, mpmath.mpf, mpmath.mpf]:
    """(J(π), E_π[r], β KL(π‖π_ref)) of the exactly normalised π and ref_probs."""
    with mpmath.workdps(_digits(pr) + 330):
        a = [mpmath.mpf(float(x)) for x in pi]
        b = [mpmath.mpf(float(x)) for x in pr.p]
        sa, sb = mpmath.fsum(a), mpmath.fsum(b)
        expected = mpmath.fsum(x * float(y) for x, y in zip(a, pr.r, strict=True)) / sa
        if any(x > 0 and y == 0 for x, y in zip(a, b, strict=True)):
            return mpmath.mpf("-inf"), expected, mpmath.mpf("inf")
        kl = mpmath.fsum(
            x / sa * mpmath.log((x / sa) / (y / sb)) for x, y in zip(a, b, strict=True) if x > 0
        )
        return +(expected - pr.beta * kl), expected, pr.beta * kl


# --- problems ---------------------------------------------------------------------------

REGIMES = ("plain", "tiny_ref", "zeros", "near_equal_rewards", "large_rewards", "cancel", "huge")


def build(seed: int, n: int, regime: str, log10_beta: float) -> Problem:
    """A problem of one regime, rebuilt exactly from its parameters."""
    rng = np.random.default_rng(seed)
    beta = 10.0**log10_beta
    p = rng.dirichlet(np.ones(n) * rng.choice([0.1, 1.0, 10.0]))
    r = rng.normal(0.0, 1.0, n) * 10.0 ** rng.uniform(-2, 2)
    if regime == "tiny_ref":  # 300 decades of dynamic range, subnormals included
        k = int(rng.integers(0, n))
        p[:k] *= 10.0 ** -rng.uniform(100, 330, k)
        p[p == 0] = 5e-324
    elif regime == "zeros":
        p[rng.random(n) < 0.3] = 0.0
        p[int(rng.integers(0, n))] += 0.5
    elif regime == "near_equal_rewards":  # only the last digits of r differ
        r = rng.uniform(-100, 100) + 10.0 ** -rng.uniform(3, 15) * rng.normal(size=n)
    elif regime == "large_rewards":  # r/β up to 1e7: a naive exp overflows
        r = rng.uniform(-1e4, 1e4, n)
        beta = 10.0 ** rng.uniform(-3, 0)
    elif regime == "cancel":  # r(j) + β log π_ref(j) ≈ 0 for a tiny π_ref(j)
        p[0] = 10.0 ** -rng.uniform(5, 300)
        r = rng.normal(0.0, 1.0, n) * beta
        r[0] = -beta * math.log(p[0] / p.sum()) + rng.normal() * beta
    elif regime == "huge":  # β near the float64 limit
        beta = 10.0 ** rng.uniform(200, 307)
        r = rng.normal(0.0, 1.0, n) * beta * 10.0 ** rng.uniform(-3, 1)
    return Problem(p / p.sum(), r, beta)


@st.composite
def built_problems(draw) -> Problem:
    return build(
        draw(st.integers(0, 2**32 - 1), label="seed"),
        draw(st.integers(1, 40), label="n"),
        draw(st.sampled_from(REGIMES), label="regime"),
        draw(st.floats(-3, 3), label="log10_beta"),
    )


@st.composite
def small_problems(draw) -> Problem:
    """Element-wise (shrinks to tiny examples): zeros, near-equal and large rewards."""
    n = draw(st.integers(1, 6), label="n")
    weights = draw(
        st.lists(
            st.sampled_from([0.0, 1e-300, 1e-8, 0.25, 1.0, 3.0]), min_size=n, max_size=n
        ).filter(lambda w: sum(w) > 0),
        label="weights",
    )
    r = draw(
        st.lists(st.floats(-1e4, 1e4, allow_subnormal=False), min_size=n, max_size=n),
        label="rewards",
    )
    beta = draw(st.sampled_from([1e-3, 0.1, 1.0, 7.0, 1e3]), label="beta")
    p = np.array(weights)
    return Problem(p / p.sum(), np.array(r), beta)


problems = st.one_of(small_problems(), built_problems())


# --- property checks (each takes the implementation under test) ------------------------


def optimal_policy(impl: Rlhf, pr: Problem, beta: float | None = None) -> np.ndarray:
    """impl.policy(p, r, beta), asserted to be a finite distribution of the right shape."""
    __tracebackhide__ = True
    beta = pr.beta if beta is None else beta
    star = np.asarray(impl.policy(pr.p, pr.r, beta), dtype=np.float64)
    with np.errstate(all="ignore"):
        ok = (
            star.shape == pr.p.shape
            and np.isfinite(star).all()
            and (star >= 0).all()
            and abs(star.sum() - 1) <= 8 * U * star.size
        )
    assert ok, (
        f"rlhf_optimal_policy(p, r, {beta!r})={star.tolist()!r}, but should be a distribution "
        f"[rlhf.optimal_policy] {pr!r}"
    )
    return star


def check_accuracy(impl: Rlhf, pr: Problem) -> None:
    """π* entry-wise within PI_BOUND, β log Z within VALUE_BOUND·M, against mpmath."""
    __tracebackhide__ = True
    exact = exact_optimum(pr)
    value, star, scale = exact.value, exact.star, exact.scale
    got_pi = optimal_policy(impl, pr)
    for y, (g, s) in enumerate(zip(got_pi, star, strict=True)):
        if s > 1e-300:
            err = float(abs(mpmath.mpf(float(g)) - s) / s)
            assert err <= PI_BOUND, (
                f"rlhf_optimal_policy(p, r, beta)[{y}]={g!r}, but should be "
                f"{mpmath.nstr(s, 20)} (relative error {err / U:.1f}u > {PI_BOUND / U:g}u) "
                f"[rlhf.optimal_policy] {pr!r}"
            )
    got = float(impl.value(pr.p, pr.r, pr.beta))
    # A value below 2**-1074 rounds to 0 or one subnormal unit: allow that unit.
    miss = max(abs(mpmath.mpf(got) - value) - SUBNORMAL_UNIT, 0) if math.isfinite(got) else math.inf
    err = float(miss / scale) if miss else 0.0
    assert err <= VALUE_BOUND, (
        f"rlhf_optimal_value(p, r, beta)={got!r}, but should be {mpmath.nstr(value, 20)} "
        f"(error {err / U:.1f}u·M > {VALUE_BOUND / U:g}u·M, M={mpmath.nstr(scale, 5)}) "
        f"[rlhf.optimal_policy] {pr!r}"
    )


def objective_scale(impl: Rlhf, pi: np.ndarray, pr: Problem) -> float:
    """|E_π[r]| + β KL(π‖π_ref): the size of the two terms J subtracts."""
    expected = float(np.dot(pi, pr.r) / pi.sum())
    return abs(expected) + pr.beta * float(kl_divergence(pi, pr.p))


def check_optimum_value(impl: Rlhf, pr: Problem) -> None:
    """J(π*) = β log Z within J_BOUND·(|E_π*[r]| + β KL(π*‖π_ref) + M) + β·(2·PI_BOUND)².

    J is evaluated at the rounded π̃*, where it is exactly β log Z − β KL(π̃*‖π*):
    second order in π*'s rounding, at most β·(2·PI_BOUND)² (χ² bound, after
    normalisation).
    """
    __tracebackhide__ = True
    star = optimal_policy(impl, pr)
    j_star = float(impl.objective(star, pr.p, pr.r, pr.beta))
    value = float(impl.value(pr.p, pr.r, pr.beta))
    bound = J_BOUND * (objective_scale(impl, star, pr) + float(exact_optimum(pr).scale))
    bound += pr.beta * (2 * PI_BOUND) ** 2
    assert abs(j_star - value) <= bound, (
        f"rlhf_objective(pi_star, p, r, beta)={j_star!r}, but should be "
        f"rlhf_optimal_value(p, r, beta)={value!r} within {bound:.3g} "
        f"(off by {abs(j_star - value):.3g}) [rlhf.optimal_policy] {pr!r}"
    )


def check_beats_every_policy(impl: Rlhf, pr: Problem, pi: np.ndarray) -> None:
    """J(π) <= J(π*) and <= β log Z, but for the value tolerances of J and β log Z."""
    __tracebackhide__ = True
    star = optimal_policy(impl, pr)
    j_pi = float(impl.objective(pi, pr.p, pr.r, pr.beta))
    j_star = float(impl.objective(star, pr.p, pr.r, pr.beta))
    value = float(impl.value(pr.p, pr.r, pr.beta))
    scale = float(exact_optimum(pr).scale) + objective_scale(impl, star, pr)
    if math.isfinite(j_pi):
        scale += objective_scale(impl, pi, pr)
    best = max(j_star, value) + J_BOUND * scale
    assert j_pi <= best, (
        f"rlhf_objective(pi, p, r, beta)={j_pi!r}, but should be <= J(pi_star)={j_star!r} "
        f"(and beta log Z={value!r}) [rlhf.optimum_beats_every_policy] "
        f"pi=np.array({pi.tolist()!r}), {pr!r}"
    )


def check_support(impl: Rlhf, pr: Problem) -> None:
    """π*(y) == 0 exactly wherever π_ref(y) == 0, and π* is a distribution."""
    __tracebackhide__ = True
    star = np.asarray(impl.policy(pr.p, pr.r, pr.beta), dtype=np.float64)
    outside = star[pr.p == 0]
    assert (outside == 0).all(), (
        f"rlhf_optimal_policy(p, r, beta)[p == 0]={outside.tolist()!r}, but should be all 0 "
        f"[rlhf.support] {pr!r}"
    )
    optimal_policy(impl, pr)


def check_kl_decreases_with_beta(impl: Rlhf, pr: Problem) -> None:
    """KL(π*‖π_ref) non-increasing on a β grid, within its value tolerance.

    The tolerance of each KL is its own accuracy (16u relative) plus what π*'s
    rounding (PI_BOUND per entry) can move it: PI_BOUND·2Σπ*|log(π*/π_ref)| to
    first order, (2·PI_BOUND)² to second. That matters only where π* ≈ π_ref and
    KL is ~1e-30.
    """
    __tracebackhide__ = True
    ref = pr.p / pr.p.sum()
    kls, tols = [], []
    betas = np.geomspace(1e-6, 1e6, 61)
    for b in betas:
        star = optimal_policy(impl, pr, b)
        kl = float(kl_divergence(star, pr.p))
        on = star > 0
        with np.errstate(all="ignore"):
            spread = float(np.sum(star[on] * np.abs(np.log(star[on] / ref[on]))))
        kls.append(kl)
        tols.append(16 * U * kl + 2 * PI_BOUND * spread + (2 * PI_BOUND) ** 2)
    for i in range(len(betas) - 1):
        assert kls[i + 1] <= kls[i] + tols[i] + tols[i + 1], (
            f"kl(rlhf_optimal_policy(p, r, {betas[i + 1]:.3g}), p)={kls[i + 1]!r}, but should "
            f"be <= its value {kls[i]!r} at beta={betas[i]:.3g} (tolerance "
            f"{tols[i] + tols[i + 1]:.2g}) [rlhf.beta_limits] {pr!r}"
        )


def check_large_beta_limit(impl: Rlhf, pr: Problem) -> None:
    """β = 1e12: π*/π_ref = e^{r/β}/Z lies in [e^{-w/β}, e^{w/β}], w = max r − min r."""
    __tracebackhide__ = True
    beta = 1e12
    star = optimal_policy(impl, pr, beta)
    on = pr.p > 0
    width = float(np.ptp(pr.r[on]))
    with np.errstate(over="ignore"):  # a broken policy over a subnormal π_ref: inf, a failure
        ratio = star[on] / (pr.p[on] / pr.p.sum())
    slack = math.expm1(min(width / beta, 700.0)) + 8 * U
    assert (np.abs(ratio - 1) <= slack).all(), (
        f"rlhf_optimal_policy(p, r, 1e12)/p={ratio.tolist()!r}, but should be within "
        f"{slack:.3g} of 1 [rlhf.beta_limits] {pr!r}"
    )


def check_small_beta_limit(impl: Rlhf, pr: Problem) -> None:
    """β = 1e-12: π* = π_ref restricted to the reward argmax over supp π_ref, renormalised.

    Rewards off the argmax must be at least 1e-3 below it (e^{-1e9} underflows).
    Ties share the mass in proportion to π_ref, so uniformly when π_ref is equal there.
    """
    __tracebackhide__ = True
    on = pr.p > 0
    top = pr.r[on].max()
    tied = on & (pr.r == top)
    assert (pr.r[on & ~tied] <= top - 1e-3).all(), "test input: rewards must be 1e-3 apart"
    want = np.where(tied, pr.p, 0.0) / pr.p[tied].sum()
    star = optimal_policy(impl, pr, 1e-12)
    ok = np.all(np.abs(star - want) <= 8 * U * want) and (star[~tied] == 0).all()
    assert ok, (
        f"rlhf_optimal_policy(p, r, 1e-12)={star.tolist()!r}, but should be "
        f"{want.tolist()!r} (π_ref on the reward argmax) [rlhf.beta_limits] {pr!r}"
    )


# --- tests of the reference -----------------------------------------------------------


@given(pr=problems)
@example(pr=Problem(np.array([0.5, 0.5]), np.array([1e4, 1e4 - 1e-3]), 1e-3))
@example(pr=Problem(np.array([5e-324, 1.0]), np.array([745.0, 0.0]), 1.0))
@example(pr=Problem(np.array([0.2, 0.3, 0.5]), np.array([2.0, 2.0, 2.0]), 1e-3))
def test_optimum_against_mpmath(pr):
    check_accuracy(REFERENCE, pr)


@given(pr=problems)
def test_objective_at_optimum_is_beta_log_z(pr):
    check_optimum_value(REFERENCE, pr)


def test_objective_at_optimum_is_beta_log_z_relative_on_well_conditioned_problems():
    """Where nothing cancels (M <= 2|β log Z|), J(π*) and β log Z agree to a few ulps relative."""
    p = np.array([0.1, 0.2, 0.3, 0.4])
    for r, beta in [([1.0, 2.0, 3.0, 4.0], 0.5), ([1e4, 2e4, 3e4, 4e4], 1e-3), ([5.0] * 4, 2.0)]:
        r = np.array(r)
        star = rlhf_optimal_policy(p, r, beta)
        j, v = float(rlhf_objective(star, p, r, beta)), float(rlhf_optimal_value(p, r, beta))
        exact = exact_optimum(Problem(p, r, beta)).value
        assert abs(j - v) <= 4 * U * abs(v), f"J(pi_star)={j!r}, beta log Z={v!r}"
        assert abs(mpmath.mpf(v) - exact) <= 2 * U * abs(exact)


@st.composite
def problems_and_policies(draw):
    pr = draw(problems, label="problem")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    kind = draw(st.sampled_from(["dirichlet", "near_optimum", "off_support"]), label="kind")
    rng = np.random.default_rng(seed)
    n = pr.p.size
    if kind == "dirichlet":
        pi = rng.dirichlet(np.full(n, 0.5))
    elif kind == "near_optimum":
        star = rlhf_optimal_policy(pr.p, pr.r, pr.beta)
        pi = star * (1 + 10.0 ** -rng.uniform(1, 15) * rng.uniform(-1, 1, n))
    else:
        pi = rng.dirichlet(np.ones(n)) + (pr.p == 0) * 0.1
    return pr, pi / pi.sum()


@given(case=problems_and_policies())
def test_optimum_beats_every_policy(case):
    check_beats_every_policy(REFERENCE, *case)


@given(case=problems_and_policies())
def test_objective_against_mpmath(case):
    pr, pi = case
    got = float(rlhf_objective(pi, pr.p, pr.r, pr.beta))
    exact, expected, penalty = exact_objective(pi, pr)
    if mpmath.isinf(exact):
        assert got == -math.inf
        return
    # A value below 2.2e-308 is on the subnormal grid: one unit of it more (as in test_accuracy).
    bound = OBJECTIVE_BOUND * float(abs(expected) + penalty) + SUBNORMAL_UNIT
    assert abs(mpmath.mpf(got) - exact) <= bound, (
        f"rlhf_objective(pi, p, r, beta)={got!r}, but should be {mpmath.nstr(exact, 20)} "
        f"within {bound:.3g} pi=np.array({pi.tolist()!r}), {pr!r}"
    )


def test_objective_is_minus_inf_off_the_support_of_ref_probs():
    p, r = np.array([0.5, 0.5, 0.0]), np.array([0.0, 0.0, 1e300])
    assert rlhf_objective(np.array([0.0, 0.5, 0.5]), p, r, 1.0) == -np.inf
    assert rlhf_objective(np.array([0.5, 0.5, 0.0]), p, r, 1.0) == 0.0


@given(pr=problems)
@example(pr=Problem(np.array([0.5, 0.5, 0.0]), np.array([0.0, 1.0, 1e300]), 1e-3))
@example(pr=Problem(np.array([0.0, 1.0]), np.array([1e300, -1e300]), 1e-300))
def test_no_mass_outside_the_support_of_ref_probs(pr):
    check_support(REFERENCE, pr)


@pytest.mark.parametrize("reward", [1e300, 1.7e308, -1e300], ids=lambda r: f"r={r:g}")
@pytest.mark.parametrize("beta", [1e-12, 1.0, 1e12], ids=lambda b: f"beta={b:g}")
def test_huge_reward_off_the_support_gets_exactly_zero(reward, beta):
    p = np.array([0.0, 0.25, 0.75, 0.0])
    r = np.array([reward, 1.0, -2.0, reward])
    star = rlhf_optimal_policy(p, r, beta)
    assert star[0] == star[3] == 0.0
    assert star.sum() == pytest.approx(1.0, abs=4 * U)
    assert math.isfinite(rlhf_optimal_value(p, r, beta))


@given(pr=problems)
def test_kl_to_ref_does_not_increase_with_beta(pr):
    check_kl_decreases_with_beta(REFERENCE, pr)


@given(pr=problems)
def test_large_beta_gives_ref_probs(pr):
    check_large_beta_limit(REFERENCE, pr)


@st.composite
def argmax_problems(draw) -> Problem:
    """Rewards on a grid of spacing 1e-3 (so distinct rewards are >= 1e-3 apart), with ties."""
    n = draw(st.integers(1, 8), label="n")
    p = np.array(
        draw(st.lists(st.sampled_from([0.0, 1e-300, 0.1, 1.0, 2.0]), min_size=n, max_size=n))
    )
    if p.sum() == 0:
        p[0] = 1.0
    r = np.array(draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))) * 1e-3
    return Problem(p / p.sum(), r, 1e-12)


@given(pr=argmax_problems())
def test_small_beta_gives_the_reward_argmax(pr):
    check_small_beta_limit(REFERENCE, pr)


def test_small_beta_ties_are_uniform_when_ref_probs_are_equal_there():
    p = np.array([0.2, 0.2, 0.2, 0.2, 0.2, 0.0])
    r = np.array([1.0, 3.0, 3.0, 2.0, 3.0, 9.0])  # the best reward is off the support
    star = rlhf_optimal_policy(p, r, 1e-12)
    assert star.tolist() == [0.0, 1 / 3, 1 / 3, 0.0, 1 / 3, 0.0]


def test_large_rewards_with_small_beta_do_not_overflow():
    """r = 1e4, β = 2**-10 ≈ 1e-3: r/β ≈ 1e7, and e^{1e7} overflows a naive evaluation.

    The reward gap is exactly β, so π* = (1, e^{-1})/(1 + e^{-1}) on the first two.
    """
    beta = 2.0**-10
    pr = Problem(np.array([0.25, 0.25, 0.5]), np.array([1e4, 1e4 - beta, -1e4]), beta)
    star = rlhf_optimal_policy(pr.p, pr.r, beta)  # pytest turns numpy warnings into errors
    e = math.exp(-1.0)
    np.testing.assert_allclose(star, [1 / (1 + e), e / (1 + e), 0.0], rtol=4 * U)
    value = rlhf_optimal_value(pr.p, pr.r, beta)
    exact = exact_optimum(pr).value
    assert abs(mpmath.mpf(float(value)) - exact) <= 2 * U * abs(exact)
    assert rlhf_objective(star, pr.p, pr.r, beta) == pytest.approx(value, rel=4 * U)


def test_equal_rewards_give_ref_probs_and_exactly_that_reward():
    p = np.array([0.1, 0.2, 0.7])
    for c in [0.0, 3.25, -1e4, 1e300]:
        r = np.full(3, c)
        assert rlhf_optimal_value(p, r, 0.01) == c
        np.testing.assert_allclose(rlhf_optimal_policy(p, r, 0.01), p, rtol=2 * U)


def test_batches_broadcast_and_match_row_by_row():
    rng = np.random.default_rng(7)
    p = rng.dirichlet(np.ones(5), size=(2, 3))
    r = rng.normal(size=(3, 5))  # broadcasts against the batch (2, 3)
    star = rlhf_optimal_policy(p, r, 0.3)
    value = rlhf_optimal_value(p, r, 0.3)
    objective = rlhf_objective(star, p, r, 0.3)
    assert star.shape == (2, 3, 5)
    assert value.shape == objective.shape == (2, 3)
    for i in range(2):
        for k in range(3):
            assert (star[i, k] == rlhf_optimal_policy(p[i, k], r[k], 0.3)).all()
            assert value[i, k] == rlhf_optimal_value(p[i, k], r[k], 0.3)
            assert objective[i, k] == rlhf_objective(star[i, k], p[i, k], r[k], 0.3)
    assert isinstance(rlhf_optimal_value(p[0, 0], r[0], 0.3), np.float64)


# --- validation -------------------------------------------------------------------------

P3, R3 = [0.2, 0.3, 0.5], [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (
            (P3, R3, 0.0),
            ValueError,
            r"beta=0.0 is not a valid KL coefficient; use a finite beta > 0",
        ),
        ((P3, R3, -1), ValueError, r"beta=-1 is not a valid KL coefficient"),
        ((P3, R3, math.inf), ValueError, r"beta=inf is not a valid KL coefficient"),
        ((P3, R3, math.nan), ValueError, r"beta=nan is not a valid KL coefficient"),
        ((P3, R3, 10**400), ValueError, r"beta=1000.* is not a valid KL coefficient"),
        ((P3, R3, True), TypeError, r"beta must be a real number \(the KL coefficient\), got True"),
        ((P3, R3, "0.1"), TypeError, r"beta must be a real number .*got '0.1'"),
        ((P3, R3, 1j), TypeError, r"beta must be a real number"),
        (([0.2, 0.3, 0.6], R3, 1.0), ValueError, r"ref_probs sums to 1.1, off from 1 by 0.1"),
        (([0.2, -0.3, 1.1], R3, 1.0), ValueError, r"ref_probs\[1\] is negative \(-0.3\)"),
        ((P3, [1.0, np.nan, 2.0], 1.0), ValueError, r"rewards\[1\] is NaN; rewards must be finite"),
        (
            (P3, [1.0, 2.0, -np.inf], 1.0),
            ValueError,
            r"rewards\[2\] is -inf; rewards must be finite",
        ),
        (
            (P3, [1.0, 2.0], 1.0),
            ValueError,
            r"rewards has 2 responses .* but (policy and )?ref_probs ha(s|ve) 3",
        ),
        ((P3, 1.0, 1.0), ValueError, r"rewards is 0-d \(a single number\)"),
        ((P3, ["a", "b", "c"], 1.0), TypeError, r"rewards has dtype <U1.*; rewards must be real"),
        ((P3, [[1.0, 2.0, 3.0], [1.0]], 1.0), ValueError, r"rewards is a ragged nested sequence"),
        (
            ([P3, P3], [R3, R3, R3], 1.0),
            ValueError,
            r"the batch shapes of rewards \(3,\) and (policy and )?ref_probs \(2,\) do not",
        ),
    ],
    ids=[
        "beta-zero",
        "beta-negative",
        "beta-inf",
        "beta-nan",
        "beta-huge-int",
        "beta-bool",
        "beta-str",
        "beta-complex",
        "ref-not-normalised",
        "ref-negative",
        "rewards-nan",
        "rewards-inf",
        "rewards-too-few",
        "rewards-scalar",
        "rewards-text",
        "rewards-ragged",
        "batch-clash",
    ],
)
@pytest.mark.parametrize("fn", ["policy", "value", "objective"])
def test_bad_input_is_rejected_with_a_message_naming_it(fn, args, error, message):
    call = {
        "policy": rlhf_optimal_policy,
        "value": rlhf_optimal_value,
        "objective": lambda *a: rlhf_objective(P3, *a),  # a valid policy: the others are bad
    }[fn]
    with pytest.raises(error, match=message):
        call(*args)


def test_bad_policy_is_rejected_with_a_message_naming_it():
    with pytest.raises(ValueError, match=r"policy sums to 0.9"):
        rlhf_objective([0.2, 0.3, 0.4], P3, R3, 1.0)
    with pytest.raises(ValueError, match=r"policy and ref_probs have different support sizes"):
        rlhf_objective([0.5, 0.5], P3, R3, 1.0)
    with pytest.raises(ValueError, match=r"rewards has 2 responses .* but policy and ref_probs"):
        rlhf_objective(P3, P3, [1.0, 2.0], 1.0)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(6), size=4)
    p[:, 0] = 0.0
    p /= p.sum(axis=-1, keepdims=True)
    r = rng.normal(size=(4, 6)) * 1e3
    r[:, 0] = 1e300
    pi = rng.dirichlet(np.ones(6), size=4)
    copies = [x.copy() for x in (p, r, pi)]
    star = rlhf_optimal_policy(p, r, 1e-3)
    rlhf_optimal_value(p, r, 1e-3)
    rlhf_objective(pi, p, r, 1e-3)
    rlhf_objective(star, p, r, 1e-3)
    for x, c in zip((p, r, pi), copies, strict=True):
        assert (x == c).all()
        assert x.flags.writeable
    assert star.flags.writeable
    assert not np.shares_memory(star, p)


# --- meta-tests: every property check rejects a deliberately broken implementation ------


def _quiet(fn: Callable) -> Callable:
    """A broken implementation returns its garbage silently, as a real one would."""

    def wrapped(*args):
        with np.errstate(all="ignore"):
            return fn(*args)

    return wrapped


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@_quiet
def naive_policy(p, r, beta):
    """π_ref·e^{r/β}/Σ: overflows for r/β > 709, and 0·inf is NaN off the support."""
    w = np.asarray(p) * np.exp(np.asarray(r) / beta)
    return w / w.sum(axis=-1, keepdims=True)


@_quiet
def policy_without_ref(p, r, beta):
    """softmax(r/β): forgets π_ref."""
    return _softmax(np.asarray(r) / beta)


@_quiet
def policy_masked_after_max(p, r, beta):
    """Shifts by the max reward over *all* responses, so a huge reward off the support wins."""
    p, r = np.asarray(p), np.asarray(r)
    w = p * np.exp((r - r.max()) / beta)
    return w / w.sum()


@_quiet
def policy_beta_inverted(p, r, beta):
    """π_ref·e^{rβ}: β used as a temperature the wrong way round."""
    return _softmax(np.log(np.asarray(p)) + np.asarray(r) * beta)


def policy_uniform_ties(p, r, beta):
    """Right except at β → 0, where it splits ties uniformly instead of by π_ref."""
    p, r = np.asarray(p), np.asarray(r)
    if beta < 1e-9:
        on = p > 0
        tied = on & (r == r[on].max())
        return tied / tied.sum()
    return rlhf_optimal_policy(p, r, beta)


def policy_float32(p, r, beta):
    return rlhf_optimal_policy(p, r, beta).astype(np.float32).astype(np.float64)


@_quiet
def value_without_beta(p, r, beta):
    """log Z instead of β log Z."""
    return rlhf_optimal_value(p, r, beta) / beta


@_quiet
def value_naive(p, r, beta):
    """β log Σ π_ref e^{r/β}: overflows for r/β > 709."""
    return beta * np.log(np.sum(np.asarray(p) * np.exp(np.asarray(r) / beta)))


def objective_plus_kl(pi, p, r, beta):
    """E_π[r] + β KL: the sign of the penalty flipped."""
    return float(np.dot(pi, r)) + beta * float(kl_divergence(pi, p))


def objective_reverse_kl(pi, p, r, beta):
    """E_π[r] − β KL(π_ref‖π): the wrong direction."""
    with np.errstate(all="ignore"):
        return float(np.dot(pi, r)) - beta * float(kl_divergence(p, pi))


def objective_float32(pi, p, r, beta):
    return float(np.float32(rlhf_objective(pi, p, r, beta)))


OFF_SUPPORT_WINNER = Problem(np.array([0.5, 0.5, 0.0]), np.array([0.0, 1.0, 1e300]), 1e-3)


def _problems_property(check):
    return lambda impl: given(pr=problems)(lambda pr: check(impl, pr))


META = [
    ("accuracy", _problems_property(check_accuracy), Rlhf("float32", policy=policy_float32)),
    ("accuracy", _problems_property(check_accuracy), Rlhf("naive value", value=value_naive)),
    (
        "optimum_value",
        _problems_property(check_optimum_value),
        Rlhf("no beta", value=value_without_beta),
    ),
    (
        "optimum_value",
        _problems_property(check_optimum_value),
        Rlhf("reverse kl", objective=objective_reverse_kl),
    ),
    (
        "optimum_value",
        _problems_property(check_optimum_value),
        Rlhf("float32 J", objective=objective_float32),
    ),
    (
        "beats",
        lambda impl: given(case=problems_and_policies())(
            lambda case: check_beats_every_policy(impl, *case)
        ),
        Rlhf("plus kl", objective=objective_plus_kl),
    ),
    ("support", _problems_property(check_support), Rlhf("naive", policy=naive_policy)),
    (
        "support",
        lambda impl: given(pr=st.just(OFF_SUPPORT_WINNER))(lambda pr: check_support(impl, pr)),
        Rlhf("max over all", policy=policy_masked_after_max),
    ),
    (
        "kl_decreases",
        _problems_property(check_kl_decreases_with_beta),
        Rlhf("beta inverted", policy=policy_beta_inverted),
    ),
    (
        "large_beta",
        _problems_property(check_large_beta_limit),
        Rlhf("no ref", policy=policy_without_ref),
    ),
    (
        "small_beta",
        lambda impl: given(pr=argmax_problems())(lambda pr: check_small_beta_limit(impl, pr)),
        Rlhf("uniform ties", policy=policy_uniform_ties),
    ),
    (
        "small_beta",
        lambda impl: given(pr=argmax_problems())(lambda pr: check_small_beta_limit(impl, pr)),
        Rlhf("max over all", policy=policy_masked_after_max),
    ),
]


@pytest.mark.parametrize(
    ("prop", "impl"),
    [(make, impl) for _, make, impl in META],
    ids=[f"{name}-{impl.name}" for name, _, impl in META],
)
def test_property_rejects_broken_implementation(prop, impl):
    run = settings(
        max_examples=200,
        phases=[Phase.explicit, Phase.generate],
        database=None,
        deadline=None,
        report_multiple_bugs=False,
    )(prop(impl))
    with pytest.raises(AssertionError, match=r"but should be"):
        run()


PROPERTIES = {name: make for name, make, _ in META}


@pytest.mark.parametrize("prop", PROPERTIES.values(), ids=PROPERTIES.keys())
def test_property_accepts_the_reference(prop):
    settings(max_examples=20, database=None, deadline=None)(prop(REFERENCE))()
