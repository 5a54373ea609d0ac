r"""Checks of the preference clauses: the DPO loss.

Called like :func:`klspec.reference.dpo_loss`: ``dpo(logp_chosen, logp_rejected,
ref_logp_chosen, ref_logp_rejected, beta=β)`` on 1-D float64 arrays (one entry per
pair), with ``label_smoothing=ε`` only for targets declaring the capability; one
loss per pair comes back.

β is the target's own (``Implementation.beta``, ``klspec check --beta``) or, for
the reference, drawn. Inputs are drawn in float64 and rounded to the target's
format; the truth is the loss of the exact margin of the rounded inputs (Fractions,
then mpmath at 40 digits) and the tolerance the error a correct evaluation in that
format can make (:func:`dpo_tolerance`; the derivation is in the clause notes).
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction
from typing import Any

import mpmath
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

from klspec.spec._assert import invoke, observe, require, require_close, show, violated
from klspec.spec.checks._registry import check
from klspec.spec.interface import Implementation
from klspec.spec.precision import FLOAT64, Precision
from klspec.spec.strategies import Case

_NAMES = ("logp_chosen", "logp_rejected", "ref_logp_chosen", "ref_logp_rejected")
_CALL = "dpo(logp_chosen, logp_rejected, ref_logp_chosen, ref_logp_rejected, beta)"
_SWAPPED = "dpo(logp_rejected, logp_chosen, ref_logp_rejected, ref_logp_chosen, beta)"
#: β drawn for targets that take any β (the reference): from sharp to flat.
BETAS = (1e-3, 0.1, 1.0, 10.0)
#: Label smoothing drawn for targets declaring it.
SMOOTHINGS = (0.0, 0.05, 0.1, 0.25, 0.45)
_REGIMES = ("typical", "tiny", "extreme", "cancelling", "batch")
_ADAPTS = ("precision", "beta")

# --- inputs ----------------------------------------------------------------------------


def _span(fmt: Precision) -> float:
    """How large a response's log-probability is drawn: hundreds of tokens, within the format."""
    return 500.0 if fmt.bits >= 24 else 8.0


def _from_margins(
    m: np.ndarray, shifts: np.ndarray, fmt: Precision
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Four log-probabilities (<= 0) whose margin is about ``m``: half of it on each response.

    lc − rc = m/2 and lr − rr = −m/2 before rounding to ``fmt``; ``shifts`` (two per
    pair, >= 0) are the log-probability each response already has.
    """
    a, b = m / 2, -m / 2
    lc = -shifts[0] + np.minimum(a, 0.0)
    rc = -shifts[0] - np.maximum(a, 0.0)
    lr = -shifts[1] + np.minimum(b, 0.0)
    rr = -shifts[1] - np.maximum(b, 0.0)
    return tuple(np.minimum(fmt.round(x), 0.0) for x in (lc, lr, rc, rr))  # type: ignore[return-value]


def _pairs(
    rng: np.random.Generator,
    regime: str,
    n: int,
    beta: float,
    fmt: Precision,
    largest: float | None = None,
) -> tuple[np.ndarray, ...]:
    span = _span(fmt)
    shifts = rng.uniform(0.0, span, (2, n))
    if regime == "tiny":  # responses of probability ≈ 1: log-probabilities down to 1e-300
        low = max(-300, math.floor(math.log10(fmt.eta)) + 1)
        tiny = -(10.0 ** rng.uniform(low, -3, (2, n)))
        same = -rng.uniform(0.0, span, n)
        lc, rc = np.minimum(fmt.round(tiny[0]), 0.0), np.minimum(fmt.round(tiny[1]), 0.0)
        lr = rr = np.minimum(fmt.round(same), 0.0)
        return lc, lr, rc, rr
    if regime == "cancelling":  # sums that agree to many digits: −1234.5678 vs −1234.5677999
        # Relative gaps from the format's finest up to 1e-4 (float64: 1e-15..1e-4); a
        # format too coarse for 1e-4 (float16, bfloat16) gets its own few digits.
        finest = max(-15, math.floor(math.log10(fmt.u)) + 1)
        coarsest = max(-4.0, finest + 1.5)
        rel = 10.0 ** rng.uniform(finest, coarsest, (2, n)) * rng.choice([-1.0, 1.0], (2, n))
        lc = np.minimum(fmt.round(-rng.uniform(0.5, 1.0, n) * span * 3), 0.0)
        lr = np.minimum(fmt.round(-rng.uniform(0.5, 1.0, n) * span * 3), 0.0)
        rc = np.minimum(fmt.round(lc * (1 + rel[0])), 0.0)
        rr = np.minimum(fmt.round(lr * (1 + rel[1])), 0.0)
        return lc, lr, rc, rr
    if regime == "extreme":  # |β·m| beyond 710: a literal exp overflows or underflows
        top = min(6.0, math.log10(fmt.max) - 2, math.log10(largest or 1e6))
        z = 10.0 ** rng.uniform(math.log10(20.0), top, n) * rng.choice([-1.0, 1.0], n)
        m = np.minimum(np.abs(z / beta), fmt.max / 16) * np.sign(z)
        return _from_margins(m, shifts, fmt)
    z = rng.normal(0.0, 4.0, n)  # typical: |β·m| of a few units
    return _from_margins(z / beta, shifts, fmt)


def _beta(draw: st.DrawFn, beta: float | None) -> float:
    return float(beta) if beta is not None else draw(st.sampled_from(BETAS), label="beta")


@st.composite
def dpo_pairs(
    draw: st.DrawFn,
    *,
    precision: Precision = FLOAT64,
    beta: float | None = None,
    regimes: tuple[str, ...] = _REGIMES,
    largest: float | None = None,
) -> Case:
    """Pairs of responses: typical, tiny, extreme (|βm| > 710) and nearly cancelling margins.

    Parameters (regime, size, seed, β, ε) are drawn by hypothesis and the arrays built
    with numpy's generator, so shrinking works on the parameters; "batch" mixes every
    regime over up to 1024 pairs. ``largest`` caps |β·m| (checks that need both sides
    of a subtraction representable).
    """
    fmt = precision
    b = _beta(draw, beta)
    regime = draw(st.sampled_from(regimes), label="regime")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    eps = draw(st.sampled_from(SMOOTHINGS), label="label_smoothing")
    if regime == "batch":
        n = draw(st.integers(16, 1024), label="pairs")
        kinds = rng.choice(["typical", "tiny", "extreme", "cancelling"], n)
        parts = [list(_pairs(rng, str(k), 1, b, fmt, largest)) for k in kinds]
        arrays = tuple(np.concatenate([p[i] for p in parts]) for i in range(4))
    else:
        n = draw(st.integers(1, 8), label="pairs")
        arrays = _pairs(rng, regime, n, b, fmt, largest)
    if largest is not None:
        z = b * _margins_float(*arrays)
        keep = np.abs(z) <= largest
        assume(keep.any())
        arrays = tuple(a[keep] for a in arrays)
    return Case(
        **dict(zip(_NAMES, arrays, strict=True)),
        beta=[b],
        label_smoothing=[eps],
        regime=regime,
    )


def killer_pairs(precision: Precision, beta: float | None = None) -> list[Case]:
    """Inputs every run tries first: the pairs where the literal forms break.

    βm = ±800 (σ under- or overflows: −log σ is inf, or 0 where the loss is e^{−βm}),
    βm = 40 (σ rounds to 1), a margin of one part in 1e10 of the sums
    (−1234.5678 vs −1234.5677999) and a tiny one.
    """
    b = 0.1 if beta is None else float(beta)
    fmt = precision
    cases = []
    for z in (-800.0, 800.0, 40.0, -40.0):
        lc, lr, rc, rr = _from_margins(np.array([z / b]), np.array([[10.0], [20.0]]), fmt)
        cases.append((lc, lr, rc, rr, "extreme"))
    lc = fmt.round([-1234.5678])
    rc = fmt.round([-1234.5677999])
    lr = fmt.round([-1234.5677999])
    rr = fmt.round([-1234.5678])
    cases.append((np.minimum(lc, 0), np.minimum(lr, 0), np.minimum(rc, 0), np.minimum(rr, 0), "c"))
    tiny = max(1e-300, 4 * fmt.eta)
    cases.append(
        (fmt.round([-tiny]), fmt.round([-2.0]), fmt.round([-2 * tiny]), fmt.round([-2.0]), "tiny")
    )
    return [
        Case(
            **dict(zip(_NAMES, (lc, lr, rc, rr), strict=True)),
            beta=[b],
            label_smoothing=[0.0],
            regime="cancelling" if tag == "c" else tag,
        )
        for lc, lr, rc, rr, tag in cases
    ]


# --- exact values ------------------------------------------------------------------------


def _margins_float(lc, lr, rc, rr) -> np.ndarray:
    with np.errstate(all="ignore"):
        return (lc - rc) - (lr - rr)


def exact_margins(lc, lr, rc, rr) -> list[Fraction]:
    """m = (lc − rc) − (lr − rr) of the float inputs, exactly."""
    return [
        (Fraction(float(a)) - Fraction(float(c))) - (Fraction(float(b)) - Fraction(float(d)))
        for a, b, c, d in zip(lc, lr, rc, rr, strict=True)
    ]


def _softplus(x: mpmath.mpf) -> mpmath.mpf:
    """log(1 + e^x) without overflow of the exponent."""
    return mpmath.log1p(mpmath.exp(x)) if x < 0 else x + mpmath.log1p(mpmath.exp(-x))


def exact_loss(m: Fraction, beta: float, eps: float = 0.0) -> mpmath.mpf:
    """−(1 − ε) log σ(βm) − ε log σ(−βm) at the working precision (callers set 40 digits)."""
    z = mpmath.mpf(m.numerator) / m.denominator * mpmath.mpf(beta)
    e = mpmath.mpf(eps)
    loss = (1 - e) * _softplus(-z)
    return loss + e * _softplus(z) if eps else loss


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(-np.logaddexp(0.0, -x))


def _floor(fmt: Precision) -> float:
    return 1e-300 if fmt.bits == 53 else 4 * fmt.eta


def expected(case: Case, eps: float | None = None, fmt: Precision = FLOAT64) -> tuple[Any, ...]:
    """(exact loss, tolerance, exact z) per pair, as float64 arrays."""
    arrays = tuple(case.arrays[k] for k in _NAMES)
    beta = float(case.beta[0])
    eps = float(case.label_smoothing[0]) if eps is None else eps
    margins = exact_margins(*arrays)
    with mpmath.workdps(40):
        loss = np.array([float(exact_loss(m, beta, eps)) for m in margins])
        z = np.array([float(mpmath.mpf(m.numerator) / m.denominator * beta) for m in margins])
    return loss, dpo_tolerance(arrays, z, loss, eps, fmt, beta), z


def dpo_tolerance(
    arrays: tuple[np.ndarray, ...],
    z: np.ndarray,
    loss: np.ndarray,
    eps: float,
    fmt: Precision,
    beta: float,
) -> np.ndarray:
    """The error of a correct evaluation of the loss in ``fmt``, per pair.

    The margin from the four inputs (three subtractions, with β applied before or after
    them: 4u·β·S with S = Σ|inputs|), z = β·m (2u|z|, β's own rounding included), each
    moving the loss by w(z) = (1 − ε)σ(−z) + εσ(z) per unit of z; the softplus and the
    mixture 4u·loss; a few of the format's subnormals for losses that underflow.
    """
    u = fmt.u
    size = sum(np.abs(a) for a in arrays)
    weight = (1 - eps) * _sigmoid(-z) + eps * _sigmoid(z)
    return weight * (4 * u * beta * size + 2 * u * np.abs(z)) + 4 * u * loss + _floor(fmt)


def _eps(impl: Implementation, case: Case) -> float:
    """The label smoothing a check passes: the drawn one for targets that take it, else 0."""
    return float(case.label_smoothing[0]) if "label_smoothing" in impl.capabilities else 0.0


def losses(
    impl: Implementation,
    arrays: tuple[np.ndarray, ...],
    beta: float,
    eps: float = 0.0,
    *,
    call: str = _CALL,
) -> np.ndarray:
    """The target's losses, one per pair (``label_smoothing=`` passed only when nonzero)."""
    options = {"beta": beta}
    if eps:
        options["label_smoothing"] = eps
        call = call.replace("beta)", f"beta, label_smoothing={eps:g})")
    n = arrays[0].shape[0]
    return observe(impl, "dpo", *arrays, call=call, shape=(n,), **options)


def _arrays(case: Case) -> tuple[np.ndarray, ...]:
    return tuple(case.arrays[k] for k in _NAMES)


# --- checks -------------------------------------------------------------------------------


def _dpo_examples(precision: Precision, beta: float | None = None) -> list[Case]:
    return killer_pairs(precision, beta)


@check(
    "dpo.definition",
    needs={"dpo"},
    on={"pairs": dpo_pairs},
    adapts=_ADAPTS,
    examples=_dpo_examples,
)
def dpo_definition(impl: Implementation, case: Case) -> None:
    """dpo(...) is −(1 − ε) log σ(βm) − ε log σ(−βm) of the exact margin, per pair."""
    eps = _eps(impl, case)
    beta = float(case.beta[0])
    got = losses(impl, _arrays(case), beta, eps)
    want, tolerance, _ = expected(case, eps, impl.precision)
    require_close(_CALL, got, want, tolerance, expected_text="−log σ(β·m)")


#: The reference's accuracy bound (klspec.reference.preference): relative, in units of 2^-52.
ACCURACY = 4 * 2.0**-52


@check(
    "dpo.accuracy", needs={"dpo"}, on={"pairs": dpo_pairs}, adapts=("beta",), examples=_dpo_examples
)
def dpo_accuracy(impl: Implementation, case: Case) -> None:
    """dpo(...) within 4·2^-52 relative of the exact margin's loss (one subnormal below normal)."""
    eps = _eps(impl, case)
    got = losses(impl, _arrays(case), float(case.beta[0]), eps)
    want, _, _ = expected(case, eps, FLOAT64)
    # Below the normal range one unit 2^-1074 more (a loss below half of it rounds to 0).
    allowed = ACCURACY * want + np.where(want < 2.0**-1022, 2.0**-1074, 0.0)
    require_close(_CALL, got, want, allowed, expected_text="the exact margin's −log σ(β·m)")


@check(
    "dpo.limits",
    needs={"dpo"},
    on={"extreme": functools.partial(dpo_pairs, regimes=("extreme",))},
    adapts=_ADAPTS,
    examples=lambda fmt, beta=None: [c for c in killer_pairs(fmt, beta) if c.regime == "extreme"],
)
def dpo_limits(impl: Implementation, case: Case) -> None:
    """Finite and >= 0; <= e^{−βm} for large βm; within e^{βm} above −βm for large −βm."""
    beta = float(case.beta[0])
    got = losses(impl, _arrays(case), beta)
    _, tolerance, z = expected(case, 0.0, impl.precision)
    require(np.isfinite(got), _CALL, got, "finite (the loss of a finite margin is finite)")
    require(got >= 0, _CALL, got, ">= 0 (a negative log-probability)")
    with np.errstate(over="ignore", under="ignore"):
        upper = np.where(z > 0, np.exp(-z), -z + np.exp(np.minimum(z, 0.0))) + tolerance
        lower = np.where(z > 0, 0.0, -z - tolerance)
    require(got <= upper, _CALL, got, "<= e^{−β·m} (→ 0 as β·m → +∞) or −β·m + e^{β·m}")
    require(got >= lower, _CALL, got, ">= −β·m (the loss grows like −β·m as β·m → −∞)")


@check(
    "dpo.swap_symmetry",
    needs={"dpo"},
    on={"pairs": functools.partial(dpo_pairs, largest=50.0)},
    adapts=_ADAPTS,
)
def dpo_swap_symmetry(impl: Implementation, case: Case) -> None:
    """dpo(pair) − dpo(swapped pair) = −(1 − 2ε)·β·m."""
    eps = _eps(impl, case)
    beta = float(case.beta[0])
    lc, lr, rc, rr = _arrays(case)
    here = losses(impl, (lc, lr, rc, rr), beta, eps)
    there = losses(impl, (lr, lc, rr, rc), beta, eps, call=_SWAPPED)
    _, tol_here, z = expected(case, eps, impl.precision)
    swapped = Case(
        **dict(zip(_NAMES, (lr, lc, rr, rc), strict=True)),
        beta=case.beta,
        label_smoothing=case.label_smoothing,
    )
    _, tol_there, _ = expected(swapped, eps, impl.precision)
    want = -(1 - 2 * eps) * z
    difference = here - there
    allowed = tol_here + tol_there + 2 * FLOAT64.u * np.abs(want)
    require_close(f"{_CALL} − {_SWAPPED}", difference, want, allowed, expected_text="−(1 − 2ε)·β·m")


def _grid(fmt: Precision) -> tuple[int, int]:
    """(m, e): log-probabilities k·2^-e above −2^m, and shifts on the same grid, add exactly."""
    m = 9 if fmt.bits >= 24 else 3
    return m, fmt.bits - 2 - m


@st.composite
def _shift_cases(draw: st.DrawFn, *, precision: Precision = FLOAT64, beta: float | None = None):
    """Log-probabilities and a shift c on a grid of the format, so that every sum is exact."""
    m, e = _grid(precision)
    b = _beta(draw, beta)
    n = draw(st.integers(1, 8), label="pairs")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    scale = 2.0**-e
    values = -rng.integers(0, 2 ** (m + e - 1), (4, n)) * scale
    shift = -draw(st.integers(1, 2 ** (m + e - 1)), label="shift / grid") * scale
    which = draw(st.sampled_from(["chosen", "rejected"]), label="response")
    return Case(
        **dict(zip(_NAMES, values, strict=True)),
        beta=[b],
        label_smoothing=[0.0],
        shift=[shift],
        regime=f"grid({which})",
    )


@check("dpo.shift_invariant", needs={"dpo"}, on={"grid": _shift_cases}, adapts=_ADAPTS)
def dpo_shift_invariant(impl: Implementation, case: Case) -> None:
    """Adding c to log π(y) and log π_ref(y) of one response leaves every loss unchanged."""
    beta = float(case.beta[0])
    lc, lr, rc, rr = _arrays(case)
    c = float(case.shift[0])
    if case.regime.endswith("(chosen)"):
        moved, which = (lc + c, lr, rc + c, rr), "chosen"
    else:
        moved, which = (lc, lr + c, rc, rr + c), "rejected"
    before = losses(impl, (lc, lr, rc, rr), beta)
    after = losses(
        impl,
        moved,
        beta,
        call=f"dpo(...) with {show(c)} added to the {which} response's logp and ref_logp",
    )
    _, tol_before, _ = expected(case, 0.0, impl.precision)
    shifted = Case(**dict(zip(_NAMES, moved, strict=True)), beta=case.beta, label_smoothing=[0.0])
    _, tol_after, _ = expected(shifted, 0.0, impl.precision)
    require_close(
        f"dpo(...) with {show(c)} added to the {which} response's logp and ref_logp",
        after,
        before,
        tol_before + tol_after,
        expected_text=f"{_CALL}[{{index}}]",
    )


@check(
    "dpo.bradley_terry",
    needs={"dpo"},
    on={"pairs": functools.partial(dpo_pairs, regimes=("typical", "extreme", "tiny"))},
    adapts=_ADAPTS,
)
def dpo_bradley_terry(impl: Implementation, case: Case) -> None:
    """dpo(...) = bernoulli_nll(1 − ε, logits = r̂(y_w) − r̂(y_l)) per pair (Z cancelled)."""
    from klspec.reference import bernoulli_nll  # the oracle of noise.bernoulli_logits

    eps = _eps(impl, case)
    beta = float(case.beta[0])
    got = losses(impl, _arrays(case), beta, eps)
    _, tolerance, z = expected(case, eps, impl.precision)
    label = np.array([1.0 - eps])
    nll = np.array([float(bernoulli_nll(label, logits=np.array([x]))) for x in z])
    u = FLOAT64.u
    weight = (1 - eps) * _sigmoid(-z) + eps * _sigmoid(z)
    # z is rounded once to float64 (u|z|, through the slope), the soft label once (u|z|),
    # and the oracle is within a few ulps of its value.
    allowed = tolerance + (weight + eps) * u * np.abs(z) + 8 * u * nll
    require_close(
        _CALL,
        got,
        nll,
        allowed,
        expected_text="bernoulli_nll(1 − ε, logits = r̂(y_w) − r̂(y_l))",
    )


def _step(fmt: Precision) -> float:
    """The finite-difference step: about u^(1/3) (2^-17 in float64, 2^-7 in float32)."""
    return 2.0 ** (math.floor(math.log2(fmt.u) / 3) + 1)


def slope_exact(z: np.ndarray, beta: float, eps: float) -> np.ndarray:
    """∂loss/∂m = −β[(1 − ε)σ(−z) − εσ(z)]."""
    return -beta * ((1 - eps) * _sigmoid(-z) - eps * _sigmoid(z))


@check(
    "dpo.gradient_weight",
    needs={"dpo"},
    on={"pairs": functools.partial(dpo_pairs, regimes=("typical",), largest=30.0)},
    adapts=_ADAPTS,
)
def dpo_gradient_weight(impl: Implementation, case: Case) -> None:
    """∂dpo/∂logp_chosen = −β σ(−β·m) (with ε: −β[(1 − ε)σ(−βm) − εσ(βm)])."""
    fmt = impl.precision
    eps = _eps(impl, case)
    beta = float(case.beta[0])
    lc, lr, rc, rr = _arrays(case)
    _, _, z = expected(case, eps, fmt)
    want = slope_exact(z, beta, eps)
    if "dpo" in impl.derivatives:
        how = "∂dpo/∂logp_chosen (autograd)"
        got = np.asarray(
            invoke(how, impl.derivatives["dpo"], lc, lr, rc, rr, beta=beta, label_smoothing=eps),
            dtype=np.float64,
        )
        if got.shape != lc.shape:
            violated(f"{how} has shape {got.shape}, but should have shape {lc.shape}", "shape")
        size = np.abs(lc) + np.abs(lr) + np.abs(rc) + np.abs(rr)
        moved = 4 * fmt.u * beta * size + 2 * fmt.u * np.abs(z)  # z's error, as in the value
        # The slope −β·w(z) moves by at most β/4 per unit of z (|w'| <= 1/4).
        allowed = beta / 4 * moved + 4 * fmt.u * np.abs(want) + _floor(fmt)
        require_close(how, got, want, allowed, expected_text="−β·w(β·m)")
        return
    h = _step(fmt)
    assume(lc.max() < -4 * h)  # logp_chosen ± h stays a log-probability
    up, down = fmt.round(lc + h), fmt.round(lc - h)
    width = up - down  # exact: both are in the format
    assume((width > 0).all())
    f_up = losses(impl, (up, lr, rc, rr), beta, eps)
    f_down = losses(impl, (down, lr, rc, rr), beta, eps)
    slope = (f_up - f_down) / width
    t_up = expected(
        Case(
            **dict(zip(_NAMES, (up, lr, rc, rr), strict=True)),
            beta=case.beta,
            label_smoothing=[eps],
        ),
        eps,
        fmt,
    )
    t_down = expected(
        Case(
            **dict(zip(_NAMES, (down, lr, rc, rr), strict=True)),
            beta=case.beta,
            label_smoothing=[eps],
        ),
        eps,
        fmt,
    )
    # Rounding of both values over the step, truncation (|softplus'''| <= 0.1, times β³).
    allowed = (t_up[1] + t_down[1]) / width + (width / 2) ** 2 / 6 * 0.1 * beta**3
    allowed = (
        allowed
        + 2 * FLOAT64.u * np.abs(slope)
        + np.abs(want - slope_exact((t_up[2] + t_down[2]) / 2, beta, eps))
    )
    require_close(
        "∂dpo/∂logp_chosen (finite differences)",
        slope,
        want,
        allowed,
        expected_text="−β·w(β·m)",
    )


@check(
    "dpo.label_smoothing",
    needs={"dpo", "label_smoothing"},
    on={"pairs": functools.partial(dpo_pairs, largest=700.0)},
    adapts=_ADAPTS,
)
def dpo_label_smoothing(impl: Implementation, case: Case) -> None:
    """dpo(..., ε) = (1 − ε)·dpo(pair) + ε·dpo(swapped pair), with the target's own values."""
    eps = float(case.label_smoothing[0])
    assume(eps > 0)
    beta = float(case.beta[0])
    lc, lr, rc, rr = _arrays(case)
    smoothed = losses(impl, (lc, lr, rc, rr), beta, eps)
    plain = losses(impl, (lc, lr, rc, rr), beta)
    flipped = losses(impl, (lr, lc, rr, rc), beta, call=_SWAPPED)
    _, tol_eps, _ = expected(case, eps, impl.precision)
    _, tol_plain, _ = expected(case, 0.0, impl.precision)
    swapped = Case(
        **dict(zip(_NAMES, (lr, lc, rr, rc), strict=True)), beta=case.beta, label_smoothing=[0.0]
    )
    _, tol_flipped, _ = expected(swapped, 0.0, impl.precision)
    mixture = (1 - eps) * plain + eps * flipped
    allowed = tol_eps + (1 - eps) * tol_plain + eps * tol_flipped + 4 * FLOAT64.u * mixture
    require_close(
        _CALL.replace("beta)", f"beta, label_smoothing={eps:g})"),
        smoothed,
        mixture,
        allowed,
        expected_text="(1 − ε)·dpo(pair) + ε·dpo(swapped pair)",
    )
