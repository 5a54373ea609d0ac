"""fit_gaussian_to_mixture and mixture_gaussian_kl against mpmath, scipy and exact moments.

BOUND: |error| <= 1e-15·KL + 1e-16 for mixture_gaussian_kl, both directions, against
mpmath at 30 digits on the hard mixtures of HARD_CASES (modes at ±3, ±10, ±30;
weights 1e-6; sds 1e-3 next to 1e3; means at 1e6; Q from 1e-5 to 1e5 times P's
scale). Measured worst on these 18 cases: relative error 1.6e-16 where KL >= 1e-3,
absolute 2.9e-17 where KL < 1e-3 (the rounding of weights 1 − 1e-6 and 1e-6). A
survey of 40 random mixtures (1-3 components, Q and P scales 1e-2 to 1e2 apart)
stayed below 0.43 of the bound.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import minimize

import klspec.reference.fitting as fitting
from klspec.reference.fitting import GaussianFit, fit_gaussian_to_mixture, mixture_gaussian_kl

BOUND_REL, BOUND_ABS = 1e-15, 1e-16

BIMODAL = ([0.5, 0.5], [-3.0, 3.0], [1.0, 1.0])  # ½N(−3, 1) + ½N(3, 1)
# The reverse fits of BIMODAL, checked against mpmath (40 digits) below.
MODE_FIT = (2.984305987835742, 1.023368559661197, 0.6887689958549638)
SYMMETRIC_FIT = (0.0, 2.7437693090912137, 0.8406214312789031)
SYMMETRIC_HESSIAN = (0.13283264244543, 8.45052164291260)  # in (m, log s), diagonal


# --- the truth: mpmath -----------------------------------------------------------


def exact_kl(weights, means, sds, mean, sd, direction, dps=30):
    """KL(P‖Q) or KL(Q‖P) by mpmath Gauss–Legendre on panels that resolve P and Q.

    Panels end at every component's (and in reverse, Q's) mean ± sd·2^j/4 and at every kink of log p
    (where two components have equal density) ± its width·2^j/4 (j <= 10), over
    ±40 sds of the Gaussian(s) integrated over. The quadrature's own error
    estimate is checked.
    """
    with mpmath.workdps(dps):
        total = mpmath.fsum(mpmath.mpf(w) for w in weights)
        comps = [
            (mpmath.mpf(w) / total, mpmath.mpf(mu), mpmath.mpf(s))
            for w, mu, s in zip(weights, means, sds, strict=True)
            if w > 0
        ]
        m, s = mpmath.mpf(mean), mpmath.mpf(sd)
        half_log_2pi = mpmath.log(2 * mpmath.pi) / 2
        # mpmath's exponent range is unbounded: e^{-1e12} needs no log-sum-exp.
        consts = [(mpmath.log(w / sk) - half_log_2pi, mu, 1 / sk) for w, mu, sk in comps]
        log_q0, inv_s = -mpmath.log(s) - half_log_2pi, 1 / s

        def log_p(x):
            return mpmath.log(
                mpmath.fsum([mpmath.exp(c - ((x - mu) * r) ** 2 / 2) for c, mu, r in consts])
            )

        def log_q(x):
            return log_q0 - ((x - m) * inv_s) ** 2 / 2

        if direction == "reverse":
            lo, hi = m - 40 * s, m + 40 * s

            def f(x):
                lq = log_q(x)
                return mpmath.exp(lq) * (lq - log_p(x))

        else:
            lo = min(mu - 40 * sk for _, mu, sk in comps)
            hi = max(mu + 40 * sk for _, mu, sk in comps)

            def f(x):
                lp = log_p(x)
                return mpmath.exp(lp) * (lp - log_q(x))

        points = [lo, hi]
        features = [(mu, sk, hi - lo) for _, mu, sk in comps] + _kinks(comps)
        if direction == "reverse":  # log q is a parabola: only Q as a weight has a scale
            features.append((m, s, hi - lo))
        for centre, width, reach in features:
            points.append(centre)
            step = width / 4
            while step < reach:
                points += [centre - step, centre + step]
                step *= 2
        points = sorted({p for p in points if lo <= p <= hi})
        value, error = mpmath.quad(f, points, method="gauss-legendre", error=True)
        assert error <= mpmath.mpf(10) ** (5 - dps) * (1 + abs(value)), "mpmath did not converge"
        return value


def _kinks(comps):
    """(x, width, reach): where two components have equal weighted density, log p
    turns from one parabola to the other over a width 1/|difference of slopes|;
    panels are graded out to 256 widths from it."""
    out = []
    for j, (wj, mj, sj) in enumerate(comps):
        for wk, mk, sk in comps[j + 1 :]:
            # log(wj/sj) − (x − mj)²/(2sj²) = log(wk/sk) − (x − mk)²/(2sk²): a x² + b x + c = 0.
            a = 1 / (2 * sk**2) - 1 / (2 * sj**2)
            b = mj / sj**2 - mk / sk**2
            c = mpmath.log(wj / sj) - mpmath.log(wk / sk) - mj**2 / (2 * sj**2)
            c += mk**2 / (2 * sk**2)
            roots = []
            if a == 0:
                roots = [-c / b] if b != 0 else []
            elif b * b - 4 * a * c >= 0:
                root = mpmath.sqrt(b * b - 4 * a * c)
                roots = [(-b + root) / (2 * a), (-b - root) / (2 * a)]
            for x in roots:
                slopes = abs((x - mk) / sk**2 - (x - mj) / sj**2)
                width = 1 / slopes if slopes else sj
                out.append((x, width, 256 * width))
    return out


_EXACT: dict[str, mpmath.mpf] = {}


def kl_error(kl_function, case) -> tuple[float, float]:
    """(|kl_function − exact|, allowed) for case = (weights, means, sds, mean, sd, direction)."""
    *mixture, mean, sd, direction = case
    got = kl_function(*mixture, mean, sd, direction=direction)
    key = repr(case)  # the meta-tests reuse the truth of the accuracy tests
    if key not in _EXACT:
        _EXACT[key] = exact_kl(*mixture, mean, sd, direction)
    exact = _EXACT[key]
    return float(abs(got - exact)), BOUND_REL * float(exact) + BOUND_ABS


SEPARATED = {"±3": BIMODAL, "±10": ([0.5, 0.5], [-10, 10], [1, 1])}
SEPARATED["±30"] = ([0.5, 0.5], [-30, 30], [1, 1])
RARE = ([1 - 1e-6, 1e-6], [0, 5], [1, 1])
RARE_NARROW = ([1 - 1e-6, 1e-6], [0, 20], [1, 0.01])
WIDTHS = ([0.5, 0.5], [0, 0], [1e-3, 1e3])
WIDTHS_APART = ([0.5, 0.5], [0, 5], [1e-3, 1e3])
FAR = ([0.3, 0.7], [1e6, 1e6 + 1], [1e-3, 1])

HARD_CASES = {
    "reverse: ½N(±3,1), Q=N(0,10) (Q over the kink)": (*BIMODAL, 0, math.sqrt(10), "reverse"),
    "reverse: ½N(±3,1), Q=N(0,100²) (wide Q)": (*BIMODAL, 0, 100, "reverse"),
    "reverse: ½N(±10,1), Q=N(10,1) (on a mode)": (*SEPARATED["±10"], 10, 1, "reverse"),
    "reverse: ½N(±30,1), Q=N(0,30²) (kink 1/60 wide)": (*SEPARATED["±30"], 0, 30, "reverse"),
    "reverse: ½N(±30,1), Q=N(1,0.001²)": (*SEPARATED["±30"], 1, 1e-3, "reverse"),
    "reverse: weight 1e-6 at 5, Q=N(0,1) (KL 3e-7)": (*RARE, 0, 1, "reverse"),
    "reverse: weight 1e-6 with sd 0.01, Q on it": (*RARE_NARROW, 20, 0.01, "reverse"),
    "reverse: sds 1e-3 and 1e3, Q=N(0,1) (spike under Q)": (*WIDTHS, 0, 1, "reverse"),
    "reverse: sds 1e-3 and 1e3, Q=N(0,(1e5)²)": (*WIDTHS, 0, 1e5, "reverse"),
    "reverse: sds 1e-3 and 1e3 apart, Q=N(0,(1e-3)²)": (*WIDTHS_APART, 0, 1e-3, "reverse"),
    "reverse: means at 1e6, Q=N(1e6+1,(1e-4)²)": (*FAR, 1e6 + 1, 1e-4, "reverse"),
    "forward: ½N(±3,1), Q=N(0,10) (the forward fit)": (*BIMODAL, 0, math.sqrt(10), "forward"),
    "forward: ½N(±30,1), Q=N(1,0.001²) (KL 4.5e8)": (*SEPARATED["±30"], 1, 1e-3, "forward"),
    "forward: weight 1e-6 at 5, Q=N(0,1) (KL 1e-6)": (*RARE, 0, 1, "forward"),
    "forward: weight 1e-6 with sd 0.01, Q=N(10,10²)": (*RARE_NARROW, 10, 10, "forward"),
    "forward: sds 1e-3 and 1e3, Q=N(0,(1e-5)²) (KL 2.5e15)": (*WIDTHS, 0, 1e-5, "forward"),
    "forward: sds 1e-3 and 1e3, Q=N(0,(1e5)²)": (*WIDTHS, 0, 1e5, "forward"),
    "forward: means at 1e6, Q=N(1e6,1)": (*FAR, 1e6, 1, "forward"),
}


@pytest.mark.parametrize("case", HARD_CASES.values(), ids=HARD_CASES.keys())
def test_mixture_gaussian_kl_matches_mpmath(case):
    error, allowed = kl_error(mixture_gaussian_kl, case)
    assert error <= allowed, f"mixture_gaussian_kl{case}: error {error:.2e} > {allowed:.2e}"


def _gauss_hermite_kl(weights, means, sds, mean, sd, *, direction, nodes=200):
    """The textbook method, deliberately: reverse KL by Gauss–Hermite with 200 nodes."""
    assert direction == "reverse"
    z, w = hermegauss(nodes)
    x = mean + sd * z
    t = [
        math.log(wk / sk) - 0.5 * ((x - mu) / sk) ** 2
        for wk, mu, sk in zip(weights, means, sds, strict=True)
    ]
    log_p = np.logaddexp.reduce(np.array(t), axis=0) - 0.5 * math.log(2 * math.pi)
    return -0.5 * math.log(2 * math.pi * math.e * sd * sd) - w @ log_p / math.sqrt(2 * math.pi)


@pytest.mark.parametrize(
    "name",
    [
        "reverse: ½N(±3,1), Q=N(0,10) (Q over the kink)",
        "reverse: sds 1e-3 and 1e3, Q=N(0,1) (spike under Q)",
    ],
)
def test_meta_accuracy_check_rejects_plain_gauss_hermite(name):
    # Off by 1.7e-3 (the kink) and by 0.039 (the spike, at any node count).
    error, allowed = kl_error(_gauss_hermite_kl, HARD_CASES[name])
    assert error > 1e6 * allowed


def test_kl_is_exactly_zero_for_a_single_component_equal_to_q():
    for direction in ("forward", "reverse"):
        assert mixture_gaussian_kl([1.0], [1e6], [1e-3], 1e6, 1e-3, direction=direction) == 0.0
        assert mixture_gaussian_kl([1.0], [-2.0], [7.0], -2.0, 7.0, direction=direction) == 0.0


def test_zero_weight_components_are_ignored():
    for direction in ("forward", "reverse"):
        with_zero = mixture_gaussian_kl(
            [0.25, 0.0, 0.75], [0, 50, 2], [1, 1e-3, 3], 1, 2, direction=direction
        )
        without = mixture_gaussian_kl([0.25, 0.75], [0, 2], [1, 3], 1, 2, direction=direction)
        assert with_zero == without


# --- the forward fit ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("weights", "means", "sds"),
    [
        ([0.125, 0.375, 0.5], [-3.0, 0.5, 7.0], [0.25, 2.0, 1.0]),
        ([0.1, 0.2, 0.7], [-1.3, 2.2, 0.1], [0.3, 1.7, 0.9]),
        # E[x²] − m² would cancel all 16 digits here: the variance is 0.25 + 1e-6.
        ([0.5, 0.5], [1e8, 1e8 + 1], [1e-3, 1e-3]),
    ],
)
def test_forward_fit_is_the_moments_of_p(weights, means, sds):
    w = [Fraction(x) for x in weights]
    w = [x / sum(w) for x in w]
    mu, sd = [Fraction(x) for x in means], [Fraction(x) for x in sds]
    m = sum(wk * mk for wk, mk in zip(w, mu, strict=True))
    var = sum(wk * (sk * sk + (mk - m) ** 2) for wk, mk, sk in zip(w, mu, sd, strict=True))
    fit = fit_gaussian_to_mixture(weights, means, sds, direction="forward")
    assert abs(Fraction(fit.mean) - m) <= 4 * 2.0**-52 * max(abs(m), 1)
    assert abs(Fraction(fit.sd) ** 2 - var) <= 8 * 2.0**-52 * var


def test_forward_fit_of_the_bimodal_example():
    fit = fit_gaussian_to_mixture(*BIMODAL, direction="forward")
    assert fit == (0.0, math.sqrt(10.0), fit.kl)  # variance 1 + 9, exactly
    assert abs(fit.kl - 0.461994613467945) <= 1e-15
    assert fit.kl == mixture_gaussian_kl(*BIMODAL, 0.0, math.sqrt(10.0), direction="forward")


MIXTURES = {
    "½N(±3,1)": BIMODAL,
    "skewed three": ([0.2, 0.5, 0.3], [-2.0, 0.5, 4.0], [0.5, 1.0, 2.0]),
    "sds 0.1 and 10": ([0.5, 0.5], [0.0, 0.0], [0.1, 10.0]),
    "weight 1e-6": RARE,
}


def assert_local_minimum(direction, mixture, mean, sd, delta=1e-3):
    """KL at (mean, sd) is below KL at the 8 neighbours (mean ± δ·sd, sd·e^{±δ})."""
    __tracebackhide__ = True
    at = mixture_gaussian_kl(*mixture, mean, sd, direction=direction)
    for dm in (-1, 0, 1):
        for dt in (-1, 0, 1):
            if dm == dt == 0:
                continue
            m, s = mean + dm * delta * sd, sd * math.exp(dt * delta)
            there = mixture_gaussian_kl(*mixture, m, s, direction=direction)
            assert there > at, f"kl at ({m!r}, {s!r})={there!r}, but should be > {at!r} [minimum]"


@pytest.mark.parametrize("mixture", MIXTURES.values(), ids=MIXTURES.keys())
def test_forward_fit_is_a_minimum_of_forward_kl(mixture):
    fit = fit_gaussian_to_mixture(*mixture, direction="forward")
    assert_local_minimum("forward", mixture, fit.mean, fit.sd)


# --- the reverse fit ---------------------------------------------------------------


def fd_gradient(mixture, mean, sd, h=1e-5):
    """Central differences of KL(Q‖P) in (m/s, log s)."""
    kl = lambda m, s: mixture_gaussian_kl(*mixture, m, s, direction="reverse")  # noqa: E731
    g_m = (kl(mean + h * sd, sd) - kl(mean - h * sd, sd)) / (2 * h)
    g_t = (kl(mean, sd * math.exp(h)) - kl(mean, sd * math.exp(-h))) / (2 * h)
    return g_m, g_t


def assert_reverse_stationary(mixture, mean, sd):
    __tracebackhide__ = True
    g = fd_gradient(mixture, mean, sd)
    # Central differences with h = 1e-5: truncation ~1e-10·|f'''|, rounding ~1e-11.
    assert math.hypot(*g) <= 1e-8, f"gradient at ({mean!r}, {sd!r})={g}, but should be ~0"


@pytest.mark.parametrize("mixture", MIXTURES.values(), ids=MIXTURES.keys())
def test_reverse_fit_is_a_stationary_minimum(mixture):
    fit = fit_gaussian_to_mixture(*mixture, direction="reverse")
    assert fit.kl == mixture_gaussian_kl(*mixture, fit.mean, fit.sd, direction="reverse")
    assert_reverse_stationary(mixture, fit.mean, fit.sd)
    assert_local_minimum("reverse", mixture, fit.mean, fit.sd)


def test_meta_stationarity_and_minimum_checks_reject_wrong_fits():
    forward = fit_gaussian_to_mixture(*BIMODAL, direction="forward")
    with pytest.raises(AssertionError, match="gradient"):
        assert_reverse_stationary(BIMODAL, 2.9, 1.0)
    with pytest.raises(AssertionError, match="minimum"):
        assert_local_minimum("reverse", BIMODAL, MODE_FIT[0] + 0.01, MODE_FIT[1])
    with pytest.raises(AssertionError, match="minimum"):
        assert_local_minimum("forward", BIMODAL, forward.mean, forward.sd * 1.01)


@pytest.mark.parametrize("sign", [1, -1], ids=["near +3", "near -3"])
def test_reverse_fit_locks_onto_the_mode_it_starts_near(sign):
    fit = fit_gaussian_to_mixture(*BIMODAL, direction="reverse", start=(sign * 2.5, 1.0))
    mean, sd, kl = MODE_FIT
    # Pulled 0.0157 toward the other mode; kl is log 2 − 0.00438.
    assert abs(fit.mean - sign * mean) <= 1e-13
    assert abs(fit.sd - sd) <= 1e-13
    assert abs(fit.kl - kl) <= 1e-15


def test_reverse_fit_on_far_apart_modes_is_the_mode_itself():
    # The other mode's pull is e^{-50}-small: below float64 resolution.
    fit = fit_gaussian_to_mixture([0.5, 0.5], [-10, 10], [1, 1], direction="reverse")
    assert abs(fit.mean + 10.0) <= 1e-15
    assert abs(fit.sd - 1.0) <= 1e-15
    assert abs(fit.kl - math.log(2)) <= 1e-16


def _exact_reverse(mean, log_sd):
    return exact_kl(*BIMODAL, mean, mpmath.exp(log_sd), "reverse")


@mpmath.workdps(30)  # h = 1e-7 added to t must not round to 53 bits
def test_mode_fit_is_stationary_per_mpmath():
    mean, sd, kl = MODE_FIT
    h, t = mpmath.mpf("1e-7"), mpmath.log(sd)
    assert abs(_exact_reverse(mean, t) - kl) <= 1e-16
    # Central differences: truncation h²·f'''/6 ~ 1e-14, rounding 1e-30/h = 1e-23.
    g_m = (_exact_reverse(mean + h, t) - _exact_reverse(mean - h, t)) / (2 * h)
    g_t = (_exact_reverse(mean, t + h) - _exact_reverse(mean, t - h)) / (2 * h)
    assert abs(g_m) <= 1e-12
    assert abs(g_t) <= 1e-12


@mpmath.workdps(30)
def test_symmetric_fit_is_a_local_minimum_per_mpmath():
    """Not a saddle: KL(Q‖P) curves up in m (and in log s) at SYMMETRIC_FIT."""
    mean, sd, kl = SYMMETRIC_FIT
    h, t = mpmath.mpf("1e-7"), mpmath.log(sd)
    f0 = _exact_reverse(mean, t)
    assert abs(f0 - kl) <= 1e-16
    # KL is even in m here, so f(h) − f(0) = h²·H_mm/2 + O(h⁴). Second differences:
    # truncation h²·f''''/12 ~ 1e-13, rounding 1e-30/h² = 1e-16.
    h_mm = 2 * (_exact_reverse(mean + h, t) - f0) / h**2
    f_up, f_down = _exact_reverse(mean, t + h), _exact_reverse(mean, t - h)
    h_tt = (f_up - 2 * f0 + f_down) / h**2
    assert abs((f_up - f_down) / (2 * h)) <= 1e-12  # stationary in log s
    assert abs(h_mm - SYMMETRIC_HESSIAN[0]) <= 1e-12
    assert abs(h_tt - SYMMETRIC_HESSIAN[1]) <= 1e-12
    assert h_mm > 0


def test_start_on_the_symmetry_axis_stays_on_it_at_a_local_minimum():
    fit = fit_gaussian_to_mixture(*BIMODAL, direction="reverse", start=(0.0, 1.0))
    _, sd, kl = SYMMETRIC_FIT
    assert abs(fit.mean) <= 1e-14
    assert abs(fit.sd - sd) <= 1e-13
    assert abs(fit.kl - kl) <= 1e-15
    # A local minimum (not a saddle): the Hessian the fit itself uses is positive
    # definite, and matches mpmath (test_symmetric_fit_is_a_local_minimum_per_mpmath).
    mix = fitting._validate_mixture(*BIMODAL)
    _, _, _, scaled, _ = fitting._reverse_derivatives(mix, fit.mean, fit.sd)
    hess = scaled / np.outer([fit.sd, 1.0], [fit.sd, 1.0])  # y = (m/s, log s) -> (m, log s)
    assert np.allclose(np.diag(hess), SYMMETRIC_HESSIAN, rtol=1e-10, atol=0)
    assert abs(hess[0, 1]) <= 1e-14
    assert_local_minimum("reverse", BIMODAL, fit.mean, fit.sd)


def test_default_start_returns_the_best_of_the_local_minima():
    # ±3: the modes (0.6888) beat the broad fit (0.8406); mirror images tie and
    # the first component wins.
    assert fit_gaussian_to_mixture(*BIMODAL, direction="reverse") == (
        -MODE_FIT[0],
        pytest.approx(MODE_FIT[1], abs=1e-13),
        pytest.approx(MODE_FIT[2], abs=1e-15),
    )
    # ±2.5: the broad fit (0.481) beats the modes (0.666).
    mixture = ([0.5, 0.5], [-2.5, 2.5], [1.0, 1.0])
    best = fit_gaussian_to_mixture(*mixture, direction="reverse")
    at_mode = fit_gaussian_to_mixture(*mixture, direction="reverse", start=(2.5, 1.0))
    assert abs(best.mean) <= 1e-14
    assert best.kl < 0.482 < 0.666 < at_mode.kl


# Well-conditioned minima only: where KL is flat in m (a broad Q over two far
# modes, or over a spike), Nelder–Mead stops 1e-7 away in m for a change in KL
# below rounding, and the comparison would test scipy's tolerance, not the fit.
SCIPY_CASES = {
    "½N(±3,1) from (2.5, 1)": (BIMODAL, (2.5, 1.0)),
    "½N(±10,1) from (8, 2)": (SEPARATED["±10"], (8.0, 2.0)),
    "skewed three from (0, 1)": (MIXTURES["skewed three"], (0.0, 1.0)),
    "sds 0.1 and 3 from (0, 1)": (([0.3, 0.7], [-1.0, 2.0], [0.1, 3.0]), (0.0, 1.0)),
    "sds 0.01 and 10 from (0, 0.1)": (([0.6, 0.4], [0.0, 1.0], [0.01, 10.0]), (0.0, 0.1)),
    "weight 1e-6 from (1, 2)": (RARE, (1.0, 2.0)),
}


@pytest.mark.parametrize(("mixture", "start"), SCIPY_CASES.values(), ids=SCIPY_CASES.keys())
def test_reverse_fit_agrees_with_scipy_minimize(mixture, start):
    fit = fit_gaussian_to_mixture(*mixture, direction="reverse", start=start)

    def kl(y):
        return mixture_gaussian_kl(*mixture, y[0], math.exp(y[1]), direction="reverse")

    result = minimize(
        kl,
        [start[0], math.log(start[1])],
        method="Nelder-Mead",
        options={"xatol": 1e-11, "fatol": 1e-15, "maxiter": 2000},
    )
    assert abs(result.x[0] - fit.mean) <= 1e-7
    assert abs(math.exp(result.x[1]) - fit.sd) <= 1e-7
    assert fit.kl <= result.fun + 1e-14


def test_single_component_is_fitted_exactly_in_both_directions():
    for direction in ("forward", "reverse"):
        for mixture in ([1.0], [3.0], [0.5]), ([1.0], [1e6], [1e-3]):
            assert fit_gaussian_to_mixture(*mixture, direction=direction) == (
                mixture[1][0],
                mixture[2][0],
                0.0,
            )
    fit = fit_gaussian_to_mixture([1.0], [3.0], [0.5], direction="reverse", start=(-4, 9))
    assert abs(fit.mean - 3.0) <= 1e-14
    assert abs(fit.sd - 0.5) <= 1e-14
    assert fit.kl <= 1e-26


def test_result_is_a_gaussian_fit_of_python_floats():
    fit = fit_gaussian_to_mixture(*BIMODAL, direction="reverse", start=(2.5, 1.0))
    assert isinstance(fit, GaussianFit)
    assert fit._fields == ("mean", "sd", "kl")
    assert all(type(x) is float for x in fit)


def test_non_convergence_raises(monkeypatch):
    monkeypatch.setattr(fitting, "_MAX_ITERATIONS", 2)
    with pytest.raises(RuntimeError, match=r"did not converge in 2 Newton iterations"):
        fit_gaussian_to_mixture(*BIMODAL, direction="reverse", start=(40.0, 0.01))


# --- issue 13: a subnormal sd, failing starts, a start far too narrow ------------------

EPS = 2.0**-52
SPIKE = ([0.5, 0.5], [0.0, 0.0], [5e-324, 1.0])  # sds[0] = 2**-1074, the least subnormal


@mpmath.workdps(40)
def test_a_subnormal_component_sd_gives_the_mpmath_value():
    # Raised a raw OverflowError (1/σ_k overflowed in the panel grading). Under the
    # spike p = φ(z)/(2σ) + φ(σz)/2; under N(0, 1) the spike adds below 1e-320. So
    # with x = σz, KL(P‖N(0, s²)) = ½(−log 2 − log σ − ½ + log s + σ²/(2s²))
    # + ½(−log 2 + log s − ½ + 1/(2s²)) (40-digit mpmath.quad of the exact
    # integrands agrees), and KL(N(0, 1)‖P) = log 2 − (below 1e-320).
    sigma = mpmath.mpf(2) ** -1074

    def forward(s):
        spike = -mpmath.log(2) - mpmath.log(sigma) - 0.5 + mpmath.log(s) + sigma**2 / (2 * s**2)
        wide = -mpmath.log(2) + mpmath.log(s) - 0.5 + 1 / (2 * s**2)
        return (spike + wide) / 2

    got = mixture_gaussian_kl(*SPIKE, 0.0, 1.0, direction="forward")
    assert abs(got - forward(1)) <= 4 * EPS * forward(1)
    assert abs(mixture_gaussian_kl(*SPIKE, 0.0, 1.0, direction="reverse") - math.log(2)) <= EPS
    fit = fit_gaussian_to_mixture(*SPIKE, direction="forward")
    s = mpmath.sqrt((1 + sigma**2) / 2)  # the moments: mean 0, variance (σ² + 1)/2
    assert (fit.mean, fit.sd) == (0.0, float(s))
    assert abs(fit.kl - forward(s)) <= 4 * EPS * forward(s)
    # Reverse: Q on the spike has p = q/2 + (1e-323 of q): kl log 2, a tie with
    # Q = N(0, 1) (log 2 − 1e-320); the first start wins.
    assert fit_gaussian_to_mixture(*SPIKE, direction="reverse") == (0.0, 5e-324, math.log(2))


@pytest.mark.skipif(
    np.finfo(np.longdouble).tiny >= np.finfo(np.float64).tiny, reason="longdouble is float64 here"
)
def test_a_longdouble_sd_below_the_float64_range_is_named():
    # It became 0 in float64: a divide-by-zero warning, then whatever followed.
    sds = np.array([1, np.longdouble("1e-4900")], dtype=np.longdouble)
    message = r"^sds\[1\] is 1e-4900 \(0 in float64\); standard deviations must be finite"
    for direction in ("forward", "reverse"):
        with pytest.raises(ValueError, match=message):
            fit_gaussian_to_mixture([0.5, 0.5], [0, 1], sds, direction=direction)


@pytest.mark.skipif(
    np.finfo(np.longdouble).max <= np.finfo(np.float64).max, reason="longdouble is float64 here"
)
@pytest.mark.parametrize("name", ["weights", "means", "sds"])
def test_a_longdouble_beyond_the_float64_range_is_named(name):
    # It became inf in float64 with "RuntimeWarning: overflow encountered in cast".
    mixture = {"weights": [0.5, 0.5, 0.0], "means": [-1.0, 0.0, 2.0], "sds": [1.0, 0.5, 2.0]}
    mixture[name] = np.array(mixture[name], dtype=np.longdouble)
    mixture[name][2] = np.longdouble("1e400")
    message = rf"^{name}\[2\] is 1e\+400 \(beyond the float64 range\); "
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for direction in ("forward", "reverse"):
            with pytest.raises(ValueError, match=message):
                fit_gaussian_to_mixture(**mixture, direction=direction)
        with pytest.raises(ValueError, match=message):
            mixture_gaussian_kl(**mixture, mean=0.0, sd=1.0, direction="forward")


def test_weights_whose_sum_overflows_are_refused():
    # math.fsum raised a raw "OverflowError: intermediate overflow in fsum".
    with pytest.raises(ValueError, match=r"^weights sums to more than the float64 maximum"):
        fit_gaussian_to_mixture([1.7e308, 1.7e308, 0.0], [0, 1, 2], [1, 1, 1], direction="forward")


@pytest.mark.parametrize(
    ("direction", "expected"),
    [("forward", 177.45842806038983492), ("reverse", 1.168203989713134264)],
)
def test_a_component_narrower_than_an_ulp_of_its_offset_is_left_out(direction, expected):
    # sds[1] = 1e-308 at distance 1 from component 0's mean: no float64 z falls in its
    # spike, and the quadrature bisected 200,000 panels (25 s) before a RuntimeError.
    # Its share of the integral is ~1e-306; 30-digit mpmath.quad gives these values.
    mixture = ([0.25, 0.25, 0.5], [-1.0, 0.0, 2.0], [1.0, 1e-308, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = mixture_gaussian_kl(*mixture, 0.0, 1.0, direction=direction)
    assert abs(got - expected) <= 4 * EPS * expected


def test_a_forward_fit_with_an_sd_near_the_float64_maximum():
    # 2**1024 (the power of two that scaled the variance) raised "math range error".
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit = fit_gaussian_to_mixture(
            [0.25, 0.25, 0.5], [-1.0, 0.0, 2.0], [1.0, 1e308, 0.5], direction="forward"
        )
    assert (fit.mean, fit.sd) == (0.75, 5e307)
    assert abs(fit.kl - 530.55088520091292493) <= 4 * EPS * fit.kl  # 30-digit mpmath


@pytest.mark.parametrize("start", [{0.0, 1.0}, frozenset((0.0, 2.0)), {"mean": 0, "sd": 1}])
def test_an_unordered_start_is_refused(start):
    # A set was read in hash order: {0.0, 1.0} gave a fit from (0, 1) or (1, 0).
    with pytest.raises(TypeError, match=r"^start is a (set|frozenset|dict), .* pass a tuple"):
        fit_gaussian_to_mixture(*BIMODAL, direction="reverse", start=start)


def test_a_failing_default_start_is_skipped(monkeypatch):
    # One failing start aborted the whole search (a 50-component mixture ran 54 s,
    # then raised RuntimeError). Simulate the first start (μ_0, σ_0) = (−3, 1) failing.
    newton = fitting._reverse_newton

    def fails_from_minus_3(mix, mean, sd, **kwargs):
        if mean == -3.0:
            raise RuntimeError("the reverse fit did not converge (simulated)")
        return newton(mix, mean, sd, **kwargs)

    monkeypatch.setattr(fitting, "_reverse_newton", fails_from_minus_3)
    fit = fit_gaussian_to_mixture(*BIMODAL, direction="reverse")
    # The mirror-image mode from the second start (the first would have won the tie).
    mean, sd, kl = MODE_FIT
    assert abs(fit.mean - mean) <= 1e-13
    assert abs(fit.sd - sd) <= 1e-13
    assert abs(fit.kl - kl) <= 1e-15


def test_every_default_start_failing_is_one_clear_error(monkeypatch):
    def always_fails(mix, mean, sd, **kwargs):
        raise RuntimeError(f"no convergence from {mean}")

    monkeypatch.setattr(fitting, "_reverse_newton", always_fails)
    message = (
        r"^the reverse fit failed from every one of the 3 default starts; "
        r"from \(mean=-3\.0, sd=1\.0\): no convergence from -3\.0$"
    )
    with pytest.raises(RuntimeError, match=message):
        fit_gaussian_to_mixture(*BIMODAL, direction="reverse")


def test_a_flat_direction_gets_a_bounded_step_toward_steepest_descent():
    # Newton's step along a nearly flat direction (curvature 1e-12) with a small
    # gradient there (1e-3) was 1e9 long: the line search halved it ~30 times per
    # iteration, and the fit stalled (the 50-component comb never converged).
    coef, curv = np.array([1e-3, -1.0]), np.array([1e-12, 1e-12])
    step = fitting._trust_step(coef, curv, 2.0)
    assert abs(float(np.hypot(*step)) - 2.0) <= 1e-12
    np.testing.assert_allclose(step, -2.0 * coef / np.hypot(*coef), rtol=1e-9)
    newton = fitting._trust_step(np.array([0.5, -0.5]), np.array([1.0, 2.0]), 2.0)
    np.testing.assert_array_equal(newton, [-0.5, 0.25])  # short enough: Newton's own


@pytest.mark.parametrize(
    ("start", "expected"),
    [((0.0, 1e-200), SYMMETRIC_FIT), ((2.5, 1e-300), MODE_FIT)],
    ids=["(0, 1e-200): the symmetric fit", "(2.5, 1e-300): the mode"],
)
def test_a_start_far_too_narrow_converges(start, expected):
    # Raised RuntimeError after 7 s: log s moved by at most 2 per Newton step, so
    # 100 steps could not climb from 1e-200 to the mixture's scale; the trust radius
    # now doubles after each step that went as far downhill as promised.
    fit = fit_gaussian_to_mixture(*BIMODAL, direction="reverse", start=start)
    mean, sd, kl = expected
    assert abs(fit.mean - mean) <= 1e-13
    assert abs(fit.sd - sd) <= 1e-13
    assert abs(fit.kl - kl) <= 1e-15


# --- validation ----------------------------------------------------------------------

GOOD = {"weights": [0.5, 0.5], "means": [-3.0, 3.0], "sds": [1.0, 1.0]}

BAD_MIXTURES = {
    "weights not numbers": ({"weights": ["a", "b"]}, TypeError, r"weights has dtype <U1"),
    "bool weights": ({"weights": [True, False]}, TypeError, r"weights has dtype bool"),
    "ragged": ({"means": [[0.0], [1.0, 2.0]]}, ValueError, r"means is a ragged nested sequence"),
    "0-d": ({"sds": 1.0}, ValueError, r"sds is 0-d .*1-D, one entry per component"),
    "2-d": ({"means": [[0.0, 1.0]]}, ValueError, r"means is 2-d, shape \(1, 2\)"),
    "empty": (
        {"weights": [], "means": [], "sds": []},
        ValueError,
        r"weights is empty; a mixture needs at least one component",
    ),
    "lengths": (
        {"means": [0.0, 1.0, 2.0]},
        ValueError,
        r"the same length .* got 2, 3 and 2",
    ),
    "NaN weight": ({"weights": [0.5, np.nan]}, ValueError, r"weights\[1\] is NaN; weights must"),
    "inf weight": ({"weights": [np.inf, 0.5]}, ValueError, r"weights\[0\] is inf; weights must"),
    "negative weight": (
        {"weights": [1.5, -0.5]},
        ValueError,
        r"weights\[1\] is negative \(-0.5\); weights must be >= 0",
    ),
    "unnormalised": (
        {"weights": [1.0, 3.0]},
        ValueError,
        r"weights sums to 4, off from 1 by 3 .*weights / weights.sum\(\)",
    ),
    "all zero": ({"weights": [0.0, 0.0]}, ValueError, r"weights sums to 0"),
    "inf mean": ({"means": [0.0, -np.inf]}, ValueError, r"means\[1\] is -inf; means must be"),
    "NaN mean": ({"means": [np.nan, 0.0]}, ValueError, r"means\[0\] is NaN"),
    "zero sd": ({"sds": [1.0, 0.0]}, ValueError, r"sds\[1\] is 0.0; standard deviations must"),
    "negative sd": ({"sds": [-1.0, 1.0]}, ValueError, r"sds\[0\] is -1.0; standard deviations"),
    "NaN sd": ({"sds": [1.0, np.nan]}, ValueError, r"sds\[1\] is NaN; standard deviations"),
}


@pytest.mark.parametrize(("changes", "error", "message"), BAD_MIXTURES.values(), ids=BAD_MIXTURES)
def test_bad_mixtures_are_refused_with_a_message_naming_them(changes, error, message):
    args = {**GOOD, **changes}
    with pytest.raises(error, match=message):
        fit_gaussian_to_mixture(**args, direction="forward")
    with pytest.raises(error, match=message):
        mixture_gaussian_kl(**args, mean=0.0, sd=1.0, direction="reverse")


BAD_CALLS = {
    "direction": (
        {"direction": "backward"},
        ValueError,
        r"direction='backward' is not one of 'forward' .* or 'reverse'",
    ),
    "start with forward": (
        {"direction": "forward", "start": (0.0, 1.0)},
        ValueError,
        r"start applies only to direction='reverse'",
    ),
    "start not a pair": ({"start": (0.0,)}, ValueError, r"start must be a pair \(mean, sd\)"),
    "start a number": ({"start": 1.0}, ValueError, r"start must be a pair \(mean, sd\), got 1.0"),
    "start mean NaN": ({"start": (np.nan, 1.0)}, ValueError, r"start\[0\]=nan is not finite"),
    "start sd 0": ({"start": (0.0, 0.0)}, ValueError, r"start\[1\]=0.0 is not > 0"),
    "start sd text": ({"start": (0.0, "1")}, TypeError, r"start\[1\] must be a real number"),
}


@pytest.mark.parametrize(("changes", "error", "message"), BAD_CALLS.values(), ids=BAD_CALLS)
def test_bad_fit_arguments_are_refused(changes, error, message):
    kwargs = {"direction": "reverse", **changes}
    with pytest.raises(error, match=message):
        fit_gaussian_to_mixture(*BIMODAL, **kwargs)


@pytest.mark.parametrize(
    ("mean", "sd", "error", "message"),
    [
        (np.inf, 1.0, ValueError, r"mean=inf is not finite; the mean of Q"),
        (0.0, -2.0, ValueError, r"sd=-2.0 is not > 0; the sd of Q"),
        (0.0, np.nan, ValueError, r"sd=nan is not finite"),
        (True, 1.0, TypeError, r"mean must be a real number, got True"),
        (0.0, None, TypeError, r"sd must be a real number, got None"),
    ],
)
def test_bad_q_is_refused(mean, sd, error, message):
    with pytest.raises(error, match=message):
        mixture_gaussian_kl(*BIMODAL, mean, sd, direction="forward")


def test_scales_beyond_float64_are_refused_and_huge_ones_work():
    # (σ_wide/σ_narrow)² = 1e400 overflows; the message says how to rescale.
    tiny_and_huge = ([0.5, 0.5], [0, 1], [1e-100, 1e100])
    with pytest.raises(ValueError, match=r"too many orders of magnitude .* rescale"):
        fit_gaussian_to_mixture(*tiny_and_huge, direction="reverse", start=(0, 1e100))
    # From a start 1 away from the narrow component, that component is narrower than
    # half an ulp of its offset (no float64 z sees it; its share of KL is ~1e-98):
    # the fit stays on the wide one, where p = q/2 up to that share, so KL = log 2.
    fit = fit_gaussian_to_mixture(*tiny_and_huge, direction="reverse", start=(1, 1e100))
    assert fit == (1.0, 1e100, math.log(2))
    # By default that start is skipped; the narrow component's own fit is found:
    # there p = q/2 + (a density 1e-200 times smaller), so KL(Q‖P) = log 2.
    fit = fit_gaussian_to_mixture(*tiny_and_huge, direction="reverse")
    assert fit == (0.0, 1e-100, math.log(2))
    # An sd of 1e290 has no float64 variance; the forward fit never forms it.
    assert fit_gaussian_to_mixture([1.0], [1e300], [1e290], direction="forward") == (
        1e300,
        1e290,
        0.0,
    )
    # KL(P‖Q) = log(1e300) − log 2 for modes at ±1e300 (sd 1) and Q = N(0, 1e600).
    fit = fit_gaussian_to_mixture([0.5, 0.5], [-1e300, 1e300], [1, 1], direction="forward")
    assert fit.sd == 1e300
    assert abs(fit.kl - (300 * math.log(10) - math.log(2))) <= 1e-12


def test_arguments_are_not_modified_and_float32_weights_use_their_tolerance():
    weights = np.array([0.3, 0.7], dtype=np.float32)  # sums to 1 within float32 rounding
    means, sds = np.array([-1.0, 2.0]), np.array([0.5, 1.5])
    copies = weights.copy(), means.copy(), sds.copy()
    fit_gaussian_to_mixture(weights, means, sds, direction="reverse")
    for before, after in zip(copies, (weights, means, sds), strict=True):
        assert np.array_equal(before, after)
    with pytest.raises(ValueError, match=r"more than the float64 tolerance"):
        fit_gaussian_to_mixture([0.3, 0.7 + 1e-7], means, sds, direction="forward")
