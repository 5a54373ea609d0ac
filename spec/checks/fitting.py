r"""Checks of the Gaussian-fit clauses: forward against reverse KL.

Called like :mod:`klspec.reference.fitting`: ``fit_gaussian_to_mixture(weights,
means, sds, direction=..., start=...)`` → (mean, sd, kl),
``mixture_gaussian_kl(weights, means, sds, mean, sd, direction=...)``.

Exact values come from mpmath quadrature of the one integral without a closed form.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any

import mpmath
from hypothesis import strategies as st

from klspec.spec._assert import (
    invoke,
    mp,
    observe,
    printable,
    require,
    require_close,
    show,
    violated,
)
from klspec.spec.checks._registry import check
from klspec.spec.interface import Implementation
from klspec.spec.strategies import Case
from klspec.spec.tolerances import U

# --- inputs and the calling convention ----------------------------------------------------


@st.composite
def mixtures(draw: st.DrawFn) -> Case:
    """Two-component mixtures; the post's ½N(−3, 1) + ½N(3, 1) among them."""
    if draw(st.booleans(), label="the post's mixture"):
        return Case(weights=[0.5, 0.5], means=[-3.0, 3.0], sds=[1.0, 1.0], regime="bimodal")
    w = draw(st.floats(0.05, 0.95), label="weight")
    means = draw(st.lists(st.floats(-10.0, 10.0), min_size=2, max_size=2), label="means")
    sds = draw(st.lists(st.floats(0.2, 5.0), min_size=2, max_size=2), label="sds")
    return Case(weights=[w, 1.0 - w], means=means, sds=sds, regime="drawn")


def _fit(
    impl: Implementation, case: Case, direction: str, start: tuple[float, float] | None = None
):
    options: dict[str, Any] = {"direction": direction}
    if start is not None:
        options["start"] = start
    shown = ", ".join(f"{k}={v!r}" for k, v in options.items())
    call = f"fit_gaussian_to_mixture(weights, means, sds, {shown})"
    result = invoke(
        call,
        impl.function("fit_gaussian_to_mixture"),
        case.weights,
        case.means,
        case.sds,
        **options,
    )
    try:
        mean, sd, kl = (float(x) for x in result)
    except Exception:  # the target's object: whatever it raises, it is not (mean, sd, kl)
        violated(f"{call} returned {printable(result)}, but should return (mean, sd, kl)")
    return call, mean, sd, kl


def _moments(case: Case) -> tuple[Fraction, Fraction, Fraction]:
    """Exact mean, variance and E[(X − mean)⁴] of the mixture (from its float64 parameters)."""
    w = [Fraction(float(x)) for x in case.weights]
    total = sum(w)
    w = [x / total for x in w]
    mu = [Fraction(float(x)) for x in case.means]
    s2 = [Fraction(float(x)) ** 2 for x in case.sds]
    mean = sum(a * m for a, m in zip(w, mu, strict=True))
    var = sum(a * (v + (m - mean) ** 2) for a, m, v in zip(w, mu, s2, strict=True))
    fourth = sum(
        a * ((m - mean) ** 4 + 6 * (m - mean) ** 2 * v + 3 * v * v)
        for a, m, v in zip(w, mu, s2, strict=True)
    )
    return mean, var, fourth


# --- Gaussian fits ------------------------------------------------------------------------

_FIT_ACCURACY = 1e-9  # what the integrals promise (clause fit.divergence_value)
_BIMODAL = Case(weights=[0.5, 0.5], means=[-3.0, 3.0], sds=[1.0, 1.0], regime="bimodal")


def _log_mixture(case: Case, x: mpmath.mpf) -> mpmath.mpf:
    logs = [
        mpmath.log(mp(w))
        - (x - mp(m)) ** 2 / (2 * mp(s) ** 2)
        - mpmath.log(mp(s) * mpmath.sqrt(2 * mpmath.pi))
        for w, m, s in zip(case.weights, case.means, case.sds, strict=True)
        if w > 0
    ]
    top = max(logs)
    return top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in logs))


def _log_gaussian(m: float, s: float, x: mpmath.mpf) -> mpmath.mpf:
    return -((x - mp(m)) ** 2) / (2 * mp(s) ** 2) - mpmath.log(mp(s) * mpmath.sqrt(2 * mpmath.pi))


def _features(case: Case) -> list[tuple[float, float]]:
    """(x, width) where log p changes on the scale ``width``: the components, and the kinks.

    A kink is where two components have equal weighted density: there log p turns from
    one parabola to the other over a width 1/|difference of their slopes| (a quadratic
    in x gives the points).
    """
    comps = [
        (math.log(float(w)), float(m), float(s))
        for w, m, s in zip(case.weights, case.means, case.sds, strict=True)
        if w > 0
    ]
    out = [(m, s) for _, m, s in comps]
    for i, (lw_i, m_i, s_i) in enumerate(comps):
        for lw_j, m_j, s_j in comps[i + 1 :]:
            a = 1 / (2 * s_j**2) - 1 / (2 * s_i**2)
            b = m_i / s_i**2 - m_j / s_j**2
            c = lw_i - math.log(s_i) - m_i**2 / (2 * s_i**2)
            c += -lw_j + math.log(s_j) + m_j**2 / (2 * s_j**2)
            if a == 0:
                roots = [-c / b] if b else []
            else:
                disc = b * b - 4 * a * c
                roots = [(-b + k * math.sqrt(disc)) / (2 * a) for k in (1, -1)] if disc >= 0 else []
            for r in roots:
                slope = abs((r - m_j) / s_j**2 - (r - m_i) / s_i**2)
                out.append((r, 1 / slope if slope else s_i))
    return out


def _expect_log_mixture(case: Case, centre: float, width: float) -> mpmath.mpf:
    """∫ φ(z) log p(centre + width·z) dz over |z| <= 40 by Gauss–Legendre, graded at features.

    Panels are graded geometrically (width/4, width/2, ... out to 40 z-units) around
    every feature of log p (:func:`_features`) and around z = 0, so that each panel
    is smooth on its own scale and mpmath's error estimate can be trusted (it is
    checked). Agrees with the reference to 1e-16 relative on the hard cases of
    tests/test_fitting.py.
    """
    c, w = mp(centre), mp(width)
    points = {-40.0, 40.0}
    for x, scale in [(centre, width), *_features(case)]:
        z, step = (x - centre) / width, scale / width / 4
        points.add(z)
        while step < 80:
            points.update((z - step, z + step))
            step *= 2
    points = sorted(z for z in points if -40.0 <= z <= 40.0)

    def integrand(z: mpmath.mpf) -> mpmath.mpf:
        return mpmath.npdf(z) * _log_mixture(case, c + w * z)

    value, error = mpmath.quad(
        integrand, [mp(z) for z in points], method="gauss-legendre", error=True
    )
    if error > 1e-15 * (1 + abs(value)):
        raise RuntimeError(f"the quadrature of the oracle did not converge (error {error})")
    return value


def mixture_kl_exact(case: Case, mean: float, sd: float, direction: str) -> float:
    """KL(P‖Q) (forward) or KL(Q‖P) (reverse) with mpmath: closed forms and one quadrature.

    Reverse: −½ log(2πe s²) − E_Q[log p]. Forward: Σ_k w_k E_k[log p] − E_P[log q],
    with E_P[log q] = −½ log(2π s²) − Σ_k w_k (σ_k² + (μ_k − m)²)/(2 s²). Cached: the
    same mixtures come back for every implementation a run checks.
    """
    key = tuple(tuple(float(x) for x in case.arrays[k]) for k in ("weights", "means", "sds"))
    return _mixture_kl_exact(key, float(mean), float(sd), direction)


@functools.lru_cache(maxsize=4096)
def _mixture_kl_exact(
    key: tuple[tuple[float, ...], ...], mean: float, sd: float, direction: str
) -> float:
    case = Case(weights=key[0], means=key[1], sds=key[2])
    with mpmath.workdps(20):
        m, s = mp(mean), mp(sd)
        if direction == "reverse":
            value = -mpmath.log(2 * mpmath.pi * mpmath.e * s * s) / 2 - _expect_log_mixture(
                case, mean, sd
            )
            return float(value)
        total = mpmath.fsum(mp(w) for w in case.weights)
        parts, spread = [], []
        for w, mu, sigma in zip(case.weights, case.means, case.sds, strict=True):
            if w > 0:
                parts.append(mp(w) / total * _expect_log_mixture(case, float(mu), float(sigma)))
                spread.append(mp(w) / total * (mp(sigma) ** 2 + (mp(mu) - m) ** 2))
        log_q = -mpmath.log(2 * mpmath.pi * s * s) / 2 - mpmath.fsum(spread) / (2 * s * s)
        return float(mpmath.fsum(parts) - log_q)


def _fit_tolerance(value: float) -> float:
    return _FIT_ACCURACY * max(1.0, abs(value))


@check("fit.forward_moment_matching", needs={"fit_gaussian_to_mixture"}, on={"mixtures": mixtures})
def forward_moment_matching(impl: Implementation, case: Case) -> None:
    """The forward fit's mean and variance are the mixture's (exact moments), its kl the KL."""
    call, mean, sd, kl = _fit(impl, case, "forward")
    m, var, _ = _moments(case)
    scale = float(
        sum(
            Fraction(float(w)) * (Fraction(float(s)) ** 2 + Fraction(float(mu)) ** 2)
            for w, mu, s in zip(case.weights, case.means, case.sds, strict=True)
        )
    )
    require_close(
        f"{call}.mean", mean, float(m), 4 * U * math.sqrt(scale) + 1e-300, expected_text="E_P[x]"
    )
    require_close(f"{call}.sd²", sd * sd, float(var), 16 * U * scale, expected_text="Var_P[x]")
    if case.regime == "bimodal":  # the value of kl elsewhere: fit.minimum, fit.divergence_value
        want = mixture_kl_exact(case, mean, sd, "forward")
        require_close(
            f"{call}.kl", kl, want, _fit_tolerance(want), expected_text="KL(P‖Q) by quadrature"
        )


@st.composite
def hard_mixtures(draw: st.DrawFn) -> Case:
    """Separated modes, unequal weights and widths, and a Q far narrower or wider than P.

    Drawn from a finite set, so that the quadratures (cached) are shared between runs.
    """
    kinds = ["separated", "unequal", "widths", "narrow q", "wide q"]
    kind = draw(st.sampled_from(kinds), label="kind")
    gap = draw(st.sampled_from([3.0, 10.0, 30.0]), label="gap")
    w = {"unequal": 1e-6}.get(kind, 0.5)
    sds = [1e-3, 1e3] if kind == "widths" else [1.0, 1.0]
    mean = draw(st.sampled_from([-1.0, 0.0, 0.3, 0.9, 1.2]), label="mean of q / gap") * gap
    sd = {"narrow q": 1e-3, "wide q": 1e3}.get(kind) or draw(
        st.sampled_from([0.3, 1.0, 3.0]), label="sd of q"
    )
    direction = draw(st.sampled_from(["forward", "reverse"]), label="direction")
    return Case(
        weights=[w, 1.0 - w],
        means=[-gap, gap],
        sds=sds,
        q=[mean, sd],
        regime=f"{kind} {direction}",
        forward=[1.0 if direction == "forward" else 0.0],
    )


@check(
    "fit.divergence_value",
    needs={"mixture_gaussian_kl"},
    on={"hard": hard_mixtures},
    max_examples=40,
)
def divergence_value(impl: Implementation, case: Case) -> None:
    """mixture_gaussian_kl is the divergence by quadrature, within 1e-9."""
    direction = "forward" if case.forward[0] else "reverse"
    mean, sd = (float(x) for x in case.q)
    call = f"mixture_gaussian_kl(weights, means, sds, {mean!r}, {sd!r}, direction={direction!r})"
    got = observe(
        impl,
        "mixture_gaussian_kl",
        case.weights,
        case.means,
        case.sds,
        mean,
        sd,
        call=call,
        direction=direction,
    )
    want = mixture_kl_exact(case, mean, sd, direction)
    require_close(
        call, got, want, _FIT_ACCURACY + 1e-12 * abs(want), expected_text="the quadrature"
    )


def _local_minimum(
    impl: Implementation, case: Case, call: str, mean: float, sd: float, kl: float, direction: str
) -> None:
    for dm, ds in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)):
        m, s = mean + 1e-3 * dm * sd, sd * math.exp(1e-3 * ds)
        other = observe(
            impl,
            "mixture_gaussian_kl",
            case.weights,
            case.means,
            case.sds,
            m,
            s,
            call=f"mixture_gaussian_kl(..., {m!r}, {s!r}, direction={direction!r})",
            direction=direction,
        )
        require(
            other >= kl - _FIT_ACCURACY,
            f"mixture_gaussian_kl(..., {m!r}, {s!r})",
            other,
            f">= {call}.kl = {show(kl)}",
        )


@check(
    "fit.minimum",
    needs={"fit_gaussian_to_mixture", "mixture_gaussian_kl"},
    on={"mixtures": mixtures},
)
def fit_minimum(impl: Implementation, case: Case) -> None:
    """Neither fit can be improved by a nearby (mean, sd)."""
    for direction in ("forward", "reverse"):
        call, mean, sd, kl = _fit(impl, case, direction)
        at_fit = observe(
            impl,
            "mixture_gaussian_kl",
            case.weights,
            case.means,
            case.sds,
            mean,
            sd,
            call=f"mixture_gaussian_kl(..., {mean!r}, {sd!r}, direction={direction!r})",
            direction=direction,
        )
        require_close(
            f"{call}.kl",
            kl,
            at_fit,
            2 * _fit_tolerance(at_fit),
            expected_text="mixture_gaussian_kl at the fit",
        )
        _local_minimum(impl, case, call, mean, sd, kl, direction)


@check("fit.reverse_mode_seeking", needs={"fit_gaussian_to_mixture"})
def reverse_mode_seeking(impl: Implementation, case: None) -> None:
    """From near either mode of ½N(−3,1) + ½N(3,1), the reverse fit locks onto that mode."""
    for start in ((2.5, 1.0), (-2.5, 1.0), (3.5, 0.7), (-3.5, 0.7)):
        call, mean, sd, kl = _fit(impl, _BIMODAL, "reverse", start)
        mode = math.copysign(3.0, start[0])
        require_close(f"{call}.mean", mean, mode, 0.05, expected_text="the mode it started near")
        require_close(f"{call}.sd", sd, 1.0, 0.05, expected_text="the mode's sd")
        require_close(f"{call}.kl", kl, math.log(2), 0.01, expected_text="log 2")


@check("fit.symmetric_stationary_point", needs={"fit_gaussian_to_mixture", "mixture_gaussian_kl"})
def symmetric_stationary_point(impl: Implementation, case: None) -> None:
    """From mean 0 the reverse fit stays on the axis, at a local minimum worse than the modes."""
    call, mean, sd, kl = _fit(impl, _BIMODAL, "reverse", (0.0, 1.0))
    require(abs(mean) < 1e-6, f"{call}.mean", mean, "0 (the gradient in the mean is 0 there)")
    _, _, _, mode_kl = _fit(impl, _BIMODAL, "reverse", (2.5, 1.0))
    require(kl > mode_kl + 0.1, f"{call}.kl", kl, f"> the mode fit's {show(mode_kl)} + 0.1")
    for m in (0.1, -0.1):
        moved = observe(
            impl,
            "mixture_gaussian_kl",
            *_BIMODAL.arrays.values(),
            m,
            sd,
            direction="reverse",
            call=f"mixture_gaussian_kl(..., {m}, {sd!r}, direction='reverse')",
        )
        require(
            moved > kl + _fit_tolerance(kl),
            f"mixture_gaussian_kl(..., {m}, {sd!r})",
            moved,
            f"> {show(kl)} at mean 0 (a local minimum)",
        )
