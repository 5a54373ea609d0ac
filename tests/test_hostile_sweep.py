"""A generated hostile sweep over every public function of klspec.reference (issue 13).

Each public function has a valid baseline call and a list of argument slots. The sweep
substitutes one argument at a time with a hostile value: wrong types, every dtype,
shapes, memory layouts, special values (also deep in a 25,000-row batch, past the
chunked engine's first block, and in the last row of a batch big enough for its
threads) and every option. Each case is classified:

``OK``
    A value without NaN, float64, equal to an oracle where one is cheap: the baseline
    call on the equivalent plain float64 input (for dtype and layout variants), the
    baseline stacked or summed (for batch shapes), or the definition in mpmath (for
    special values of entropy, KL, cross-entropy, token_kl, the estimators, the
    sequence sums, the noise models and the RLHF value). ``inf`` is OK where the
    oracle says so.
``CLEAR_ERROR``
    A ``TypeError``/``ValueError`` (not numpy's ``AxisError`` or any other
    ``LookupError``/``ArithmeticError`` subclass) whose message names the argument
    and, for an element problem, its position (``q[1]``).
``BAD``
    Anything else: another exception (``KeyError``, ``OverflowError``, a
    ``RuntimeWarning`` turned into an error, ...), a message that does not name the
    argument, NaN, a wrong value, a value where only an error makes sense, an error on
    an input that is plainly valid (e.g. a Fortran-ordered copy), an input modified by
    the call, or a call slower than ``DEADLINE_S``.

Every case is its own pytest param, e.g. ``kl_divergence-q-longdouble_beyond_range``.
The cases that are BAD on today's code are not run: they are listed in ``LEFT_OUT``
with what happened, to be re-added (deleted from ``LEFT_OUT``) once fixed.

``python tests/test_hostile_sweep.py`` prints the counts per function and outcome
(``--all`` includes the cases in ``LEFT_OUT``; ``--bad`` lists every BAD case).
"""

from __future__ import annotations

import array
import collections
import collections.abc
import copy
import math
import re
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

import mpmath
import numpy as np
import pytest

from klspec import reference as R

try:
    import ml_dtypes
except ImportError:  # pragma: no cover - optional
    ml_dtypes = None

OK, CLEAR_ERROR, BAD = "OK", "CLEAR_ERROR", "BAD"
VALUE, ERROR, ANY = "value", "error", "any"  # what a case expects
DEADLINE_S = 5.0
HAS_WIDE_LONGDOUBLE = np.finfo(np.longdouble).max > np.finfo(np.float64).max
DTYPE_RTOL = 1e-15  # longdouble input may be rounded to float64 a little differently

N = 3
P = [0.25, 0.25, 0.5]
Q = [0.5, 0.25, 0.25]


def sp(label, values, expect, at=None, equiv=None):
    return (label, values, expect, at, equiv)


NAN, INF = math.nan, math.inf
TINY, SMALL, HUGE, MAXF = 5e-324, 1e-308, 1e308, float(np.finfo(np.float64).max)


# ----------------------------------------------------------------- the functions


@dataclass(frozen=True)
class Slot:
    """One argument: its name, what kind of value it holds, and per-case overrides."""

    name: str
    kind: str
    overrides: dict[str, str] = field(default_factory=dict)  # case label -> expectation
    specials: tuple = ()  # more special values, as in Kind.specials


@dataclass(frozen=True)
class Fn:
    """A public function with a valid baseline call (fresh keyword arguments each time)."""

    label: str
    func: Callable
    baseline: Callable[[], dict]
    slots: tuple[Slot, ...]
    # How stacking two copies of one argument along a new leading axis changes the
    # result: "stack" (a batch: two copies of the result), "sum" (doubles), "mean"
    # (unchanged), "1d" (must be refused), or "any".
    tile: str = "any"
    mp: Callable[[dict], object] | None = None  # the definition in mpmath
    # Errors about several arguments at once may name these instead of the one at fault
    # (the Gaussian fits' documented "the means and sds of P and Q span too many orders
    # of magnitude" concerns mean, sd and start too).
    joint: tuple[str, ...] = ()


def arr(values, dtype=np.float64) -> np.ndarray:
    return np.array(values, dtype=dtype)


def _mp_vec(x) -> list:
    return [mpmath.mpf(float(v)) for v in np.asarray(x, dtype=np.float64).ravel()]


def _norm(x) -> list:
    v = _mp_vec(x)
    s = mpmath.fsum(v)
    return [t / s for t in v]


def _xlogy(x, y):
    if x == 0:
        return mpmath.mpf(0)
    if y == 0:
        return -mpmath.inf
    return x * mpmath.log(y)


def _base(kw):
    b = kw.get("base")
    return mpmath.mpf(1) if b is None else mpmath.log(mpmath.mpf(float(b)))


def mp_entropy(kw):
    return -mpmath.fsum(_xlogy(t, t) for t in _norm(kw["p"])) / _base(kw)


def mp_kl(kw):
    p, q = _norm(kw["p"]), _norm(kw["q"])
    return mpmath.fsum(_xlogy(a, a) - _xlogy(a, b) for a, b in zip(p, q, strict=False)) / _base(kw)


def mp_cross_entropy(kw):
    p, q = _norm(kw["p"]), _norm(kw["q"])
    return -mpmath.fsum(_xlogy(a, b) for a, b in zip(p, q, strict=False)) / _base(kw)


def _log_softmax(z):
    z = _mp_vec(z)
    finite = [t for t in z if t != -mpmath.inf]
    m = max(finite)
    lse = m + mpmath.log(mpmath.fsum(mpmath.exp(t - m) for t in finite))
    return [t - lse for t in z]


def mp_token_kl(kw):
    lp, lq = _log_softmax(kw["logits_p"]), _log_softmax(kw["logits_q"])
    total = mpmath.mpf(0)
    for a, b in zip(lp, lq, strict=False):
        if a == -mpmath.inf:
            continue
        if b == -mpmath.inf:
            return mpmath.inf
        total += mpmath.exp(a) * (a - b)
    return total


def mp_kl_estimate(kw):
    out = []
    est = kw.get("estimator", "k3")
    for a, b in zip(_mp_vec(kw["logp"]), _mp_vec(kw["ref_logp"]), strict=False):
        if b == -mpmath.inf:
            out.append(mpmath.inf)
            continue
        d = b - a
        out.append({"k1": -d, "k2": d * d / 2, "k3": mpmath.expm1(d) - d}[est])
    return out


def _masked_sum(values, mask):
    keep = [True] * len(values) if mask is None else list(np.asarray(mask, dtype=bool))
    return mpmath.fsum(v for v, k in zip(values, keep, strict=False) if k)


def mp_sequence_log_prob(kw):
    return _masked_sum(_mp_vec(kw["token_logprobs"]), kw.get("mask"))


def mp_sequence_log_ratio(kw):
    diffs = []
    for a, b in zip(_mp_vec(kw["logp"]), _mp_vec(kw["ref_logp"]), strict=False):
        diffs.append(mpmath.inf if b == -mpmath.inf and a != -mpmath.inf else a - b)
    return _masked_sum(diffs, kw.get("mask"))


def _bcast(*xs):
    return [_mp_vec(x) for x in np.broadcast_arrays(*[np.asarray(x, np.float64) for x in xs])]


def mp_mse(kw):
    y, f = _bcast(kw["y"], kw["f"])
    return mpmath.fsum((a - b) ** 2 for a, b in zip(y, f, strict=False)) / len(y)


def mp_mae(kw):
    y, f = _bcast(kw["y"], kw["f"])
    return mpmath.fsum(abs(a - b) for a, b in zip(y, f, strict=False)) / len(y)


def mp_gaussian_nll(kw):
    y, f, s = _bcast(kw["y"], kw["f"], kw["sigma"])
    return mpmath.fsum(
        (a - b) ** 2 / (2 * c * c) + mpmath.log(c) + mpmath.log(2 * mpmath.pi) / 2
        for a, b, c in zip(y, f, s, strict=False)
    )


def mp_laplace_nll(kw):
    y, f, s = _bcast(kw["y"], kw["f"], kw["b"])
    return mpmath.fsum(abs(a - b) / c + mpmath.log(2 * c) for a, b, c in zip(y, f, s, strict=False))


def mp_rlhf_optimal_value(kw):
    ref, r, beta = _norm(kw["ref_probs"]), _mp_vec(kw["rewards"]), mpmath.mpf(kw["beta"])
    return beta * mpmath.log(
        mpmath.fsum(a * mpmath.exp(b / beta) for a, b in zip(ref, r, strict=False))
    )


def _softplus(x):
    return mpmath.log1p(mpmath.exp(x))


def _bernoulli_terms(kw):
    if kw.get("p") is not None:
        y, p = _bcast(kw["y"], kw["p"])
        return [-(_xlogy(a, b) + _xlogy(1 - a, 1 - b)) for a, b in zip(y, p, strict=True)]
    y, z = _bcast(kw["y"], kw["logits"])
    return [a * _softplus(-b) + (1 - a) * _softplus(b) for a, b in zip(y, z, strict=True)]


def mp_bernoulli_nll(kw):
    return mpmath.fsum(_bernoulli_terms(kw))


def mp_binary_cross_entropy(kw):
    terms = _bernoulli_terms(kw)
    return mpmath.fsum(terms) / len(terms)


def mp_poisson_nll(kw):
    if kw.get("rate") is not None:
        y, lam = _bcast(kw["y"], kw["rate"])
        logs = [mpmath.log(v) if v > 0 else -mpmath.inf for v in lam]
    else:
        y, logs = _bcast(kw["y"], kw["log_rate"])
        lam = [mpmath.exp(v) for v in logs]
    total = mpmath.mpf(0)
    for k, rate, log_rate in zip(y, lam, logs, strict=True):
        if rate == 0:
            if k > 0:
                return mpmath.inf
            continue
        total += rate - k * log_rate + mpmath.loggamma(k + 1)
    return total


def _tilted(kw):
    ref, r, beta = _norm(kw["ref_probs"]), _mp_vec(kw["rewards"]), mpmath.mpf(kw["beta"])
    w = [a * mpmath.exp(b / beta) for a, b in zip(ref, r, strict=True)]
    z = mpmath.fsum(w)
    return [t / z for t in w]


def mp_rlhf_optimal_policy(kw):
    return _tilted(kw)


def mp_rlhf_objective(kw):
    pi, ref = _norm(kw["policy"]), _norm(kw["ref_probs"])
    r, beta = _mp_vec(kw["rewards"]), mpmath.mpf(kw["beta"])
    kl = mpmath.fsum(_xlogy(a, a) - _xlogy(a, b) for a, b in zip(pi, ref, strict=True))
    return mpmath.fsum(a * b for a, b in zip(pi, r, strict=True)) - beta * kl


def mp_bernoulli_mle(kw):
    v = _mp_vec(kw["y"])
    return mpmath.fsum(v) / len(v)


def _exact_mp(*values):
    """The exact sum of ± float64 values (a Fraction) as an mpf at the working precision."""
    total = sum((Fraction(float(v)) for v in values), Fraction(0))
    return mpmath.mpf(total.numerator) / total.denominator


def mp_dpo_loss(kw):
    names = ("logp_chosen", "logp_rejected", "ref_logp_chosen", "ref_logp_rejected")
    beta, eps = mpmath.mpf(float(kw["beta"])), mpmath.mpf(float(kw.get("label_smoothing", 0.0)))
    out = []
    for lc, lr, rc, rr in zip(*_bcast(*(kw[n] for n in names)), strict=True):
        if -mpmath.inf in (lc, rr):  # z = −inf (the sweep never puts −inf on both sides)
            out.append(mpmath.inf)
            continue
        if -mpmath.inf in (lr, rc):  # z = +inf
            out.append(mpmath.inf if eps > 0 else mpmath.mpf(0))
            continue
        z = beta * _exact_mp(lc, -rc, -lr, rr)
        out.append((1 - eps) * _softplus_mp(-z) + eps * _softplus_mp(z))
    return out


def _softplus_mp(x):
    return mpmath.log1p(mpmath.exp(x)) if x < 0 else x + mpmath.log1p(mpmath.exp(-x))


def mp_dpo_implicit_reward(kw):
    beta = mpmath.mpf(float(kw["beta"]))
    out = []
    for a, b in zip(*_bcast(kw["logp"], kw["ref_logp"]), strict=True):
        if a == -mpmath.inf or b == -mpmath.inf:
            out.append(-mpmath.inf if a == -mpmath.inf else mpmath.inf)
            continue
        out.append(beta * _exact_mp(a, -b))
    return out


def kl_kw(**kw):
    return lambda: {"p": arr(P), "q": arr(Q), "axis": -1, "base": None, **kw}


def seq_kw():
    return {"token_logprobs": arr([-1.0, -2.0, -0.5]), "mask": arr([True, True, False], bool)}


def ratio_kw():
    return {
        "logp": arr([-1.0, -2.0, -0.5]),
        "ref_logp": arr([-1.5, -0.25, -3.0]),
        "mask": arr([True, True, False], bool),
    }


def rlhf_kw():
    return {"ref_probs": arr(P), "rewards": arr([0.0, 1.0, -1.0]), "beta": 0.5}


def dpo_kw():
    return {
        "logp_chosen": arr([-1.0, -2.0, -0.5]),
        "logp_rejected": arr([-1.5, -0.25, -3.0]),
        "ref_logp_chosen": arr([-1.25, -1.0, -0.75]),
        "ref_logp_rejected": arr([-1.0, -0.5, -2.0]),
        "beta": 0.5,
        "label_smoothing": 0.25,
    }


def reward_kw():
    return {"logp": arr([-1.0, -2.0, -0.5]), "ref_logp": arr([-1.5, -0.25, -3.0]), "beta": 0.5}


def noise_kw(third: str | None = None, value=None):
    def make():
        kw = {"y": arr([0.5, -1.0, 2.0]), "f": arr([0.0, -0.5, 1.0])}
        if third:
            kw[third] = arr(value)
        return kw

    return make


def bern_kw(which: str, values):
    return lambda: {"y": arr([1.0, 0.0, 1.0]), which: arr(values)}


def pois_kw(which: str, values):
    return lambda: {"y": arr([1.0, 0.0, 3.0]), which: arr(values)}


def mix_kw(**kw):
    return lambda: {
        "weights": arr(P),
        "means": arr([-1.0, 0.0, 2.0]),
        "sds": arr([1.0, 0.5, 2.0]),
        **kw,
    }


AXIS, BASE = Slot("axis", "axis"), Slot("base", "base")
MIX = ("means", "sds")
PADDING = (  # the baseline mask selects out position 2
    sp("neginf_in_padding", [-1.0, -2.0, -INF], VALUE),
    sp("nan_in_padding", [-1.0, -2.0, NAN], ANY),
    sp("inf_in_padding", [-1.0, -2.0, INF], ANY),
    sp("positive_in_padding", [-1.0, -2.0, 5.0], ANY),
)
BROADCASTS = {"zero_d": ANY, "len1": ANY, "col": ANY}  # against the other argument
# One value per pair (or response): a scalar, a length-1 array and a column broadcast
# against the other arguments, and −inf is a probability 0 with a defined limit.
PER_PAIR = {"zero_d": VALUE, "len1": VALUE, "col": VALUE, "neginf_at_1": VALUE}
REAL, SCALE = "real", "scale"

FUNCTIONS = [
    Fn("entropy", R.entropy, lambda: {"p": arr(P), "axis": -1, "base": None},
       (Slot("p", "dist"), AXIS, BASE), "stack", mp_entropy),
    Fn("kl_divergence", R.kl_divergence, kl_kw(),
       (Slot("p", "dist"), Slot("q", "dist"), AXIS, BASE), "stack", mp_kl),
    Fn("cross_entropy", R.cross_entropy, kl_kw(),
       (Slot("p", "dist"), Slot("q", "dist"), AXIS, BASE), "stack", mp_cross_entropy),
    Fn("token_kl", R.token_kl,
       lambda: {"logits_p": arr([0.0, 1.0, -1.0]), "logits_q": arr([1.0, 0.0, 0.5]), "axis": -1},
       (Slot("logits_p", "logits"), Slot("logits_q", "logits"), AXIS), "stack", mp_token_kl),
    Fn("kl_estimate", R.kl_estimate,
       lambda: {"logp": arr([-1.0, -2.0, -0.5]), "ref_logp": arr([-1.5, -0.25, -3.0]),
                "estimator": "k3"},
       (Slot("logp", "logprob", BROADCASTS),
        Slot("ref_logp", "logprob", {"neginf_at_1": VALUE, **BROADCASTS}),
        Slot("estimator", "estimator")), "stack", mp_kl_estimate),
    *(Fn(f"kl_estimate[{est}]", R.kl_estimate,
         lambda est=est: {"logp": arr([-1.0, -2.0, -0.5]),
                          "ref_logp": arr([-1.5, -0.25, -3.0]), "estimator": est},
         (Slot("logp", "logprob", BROADCASTS),
          Slot("ref_logp", "logprob", {"neginf_at_1": VALUE, **BROADCASTS})),
         "stack", mp_kl_estimate) for est in ("k1", "k2")),
    Fn("sequence_log_prob", R.sequence_log_prob, lambda: {**seq_kw(), "axis": -1},
       (Slot("token_logprobs", "logprob", {"neginf_at_1": VALUE}, PADDING), Slot("mask", "mask"),
        AXIS),
       "stack", mp_sequence_log_prob),
    Fn("sequence_log_ratio", R.sequence_log_ratio, lambda: {**ratio_kw(), "axis": -1},
       (Slot("logp", "logprob", BROADCASTS, PADDING),
        Slot("ref_logp", "logprob", {"neginf_at_1": VALUE, **BROADCASTS}, PADDING),
        Slot("mask", "mask"), AXIS), "stack", mp_sequence_log_ratio),
    Fn("rlhf_optimal_policy", R.rlhf_optimal_policy, rlhf_kw,
       (Slot("ref_probs", "dist"), Slot("rewards", REAL), Slot("beta", "beta")), "stack",
       mp_rlhf_optimal_policy),
    Fn("rlhf_optimal_value", R.rlhf_optimal_value, rlhf_kw,
       (Slot("ref_probs", "dist"), Slot("rewards", REAL), Slot("beta", "beta")), "stack",
       mp_rlhf_optimal_value),
    Fn("rlhf_objective", R.rlhf_objective, lambda: {"policy": arr(Q), **rlhf_kw()},
       (Slot("policy", "dist"), Slot("ref_probs", "dist"), Slot("rewards", REAL),
        Slot("beta", "beta")), "stack", mp_rlhf_objective),
    Fn("dpo_loss", R.dpo_loss, dpo_kw,
       (*(Slot(n, "logprob", PER_PAIR) for n in ("logp_chosen", "logp_rejected",
                                                   "ref_logp_chosen", "ref_logp_rejected")),
        Slot("beta", "beta"), Slot("label_smoothing", "smoothing")), "stack", mp_dpo_loss),
    Fn("dpo_implicit_reward", R.dpo_implicit_reward, reward_kw,
       (Slot("logp", "logprob", PER_PAIR), Slot("ref_logp", "logprob", PER_PAIR),
        Slot("beta", "beta")), "stack", mp_dpo_implicit_reward),
    Fn("gaussian_nll", R.gaussian_nll, noise_kw("sigma", [1.0, 2.0, 0.5]),
       (Slot("y", REAL), Slot("f", REAL), Slot("sigma", SCALE, {"tile": ERROR})), "sum",
       mp_gaussian_nll),
    Fn("mse", R.mse, noise_kw(), (Slot("y", REAL), Slot("f", REAL)), "mean", mp_mse),
    Fn("laplace_nll", R.laplace_nll, noise_kw("b", [1.0, 2.0, 0.5]),
       (Slot("y", REAL), Slot("f", REAL), Slot("b", SCALE, {"tile": ERROR})), "sum",
       mp_laplace_nll),
    Fn("mae", R.mae, noise_kw(), (Slot("y", REAL), Slot("f", REAL)), "mean", mp_mae),
    Fn("bernoulli_nll[p]", R.bernoulli_nll, bern_kw("p", [0.75, 0.25, 0.5]),
       (Slot("y", "label"), Slot("p", "prob01")), "sum", mp_bernoulli_nll),
    Fn("bernoulli_nll[logits]", R.bernoulli_nll, bern_kw("logits", [1.0, -1.0, 0.0]),
       (Slot("y", "label"), Slot("logits", "bern_logits")), "sum", mp_bernoulli_nll),
    Fn("binary_cross_entropy[p]", R.binary_cross_entropy, bern_kw("p", [0.75, 0.25, 0.5]),
       (Slot("y", "label"), Slot("p", "prob01")), "mean", mp_binary_cross_entropy),
    Fn("binary_cross_entropy[logits]", R.binary_cross_entropy,
       bern_kw("logits", [1.0, -1.0, 0.0]),
       (Slot("y", "label"), Slot("logits", "bern_logits")), "mean",
       mp_binary_cross_entropy),
    Fn("poisson_nll[rate]", R.poisson_nll, pois_kw("rate", [0.5, 1.0, 2.0]),
       (Slot("y", "count"), Slot("rate", "rate")), "sum", mp_poisson_nll),
    Fn("poisson_nll[log_rate]", R.poisson_nll, pois_kw("log_rate", [0.0, -1.0, 1.0]),
       (Slot("y", "count"), Slot("log_rate", "log_rate")), "sum", mp_poisson_nll),
    Fn("bernoulli_mle", R.bernoulli_mle, lambda: {"y": arr([1.0, 1.0, 0.0])},
       (Slot("y", "bit", {"len1": VALUE, "col": VALUE, "too_long": VALUE, "too_short": VALUE}),),
       "mean", mp_bernoulli_mle),
    Fn("empirical_distribution", R.empirical_distribution,
       lambda: {"samples": ["a", "b", "a"], "support": None},
       (Slot("samples", "samples"), Slot("support", "support"))),
    Fn("categorical_mle", R.categorical_mle,
       lambda: {"samples": ["a", "b", "a"], "support": None},
       (Slot("samples", "samples"), Slot("support", "support"))),
    Fn("categorical_log_likelihood", R.categorical_log_likelihood,
       lambda: {"samples": ["a", "b", "a"], "probs": arr(P), "support": ["a", "b", "c"]},
       (Slot("samples", "samples"), Slot("probs", "dist"),
        Slot("support", "support", {"none": ERROR})), "stack"),
    Fn("fit_gaussian_to_mixture[forward]", R.fit_gaussian_to_mixture,
       mix_kw(direction="forward"),
       (Slot("weights", "dist"), Slot("means", "mean_vec"), Slot("sds", SCALE),
        Slot("direction", "direction")), "1d", joint=MIX),
    Fn("fit_gaussian_to_mixture[reverse]", R.fit_gaussian_to_mixture,
       mix_kw(direction="reverse", start=(0.0, 1.0)),
       (Slot("weights", "dist"), Slot("means", "mean_vec"), Slot("sds", SCALE),
        Slot("direction", "direction_with_start"), Slot("start", "start")), "1d", joint=MIX),
    Fn("mixture_gaussian_kl", R.mixture_gaussian_kl,
       mix_kw(mean=0.0, sd=1.0, direction="forward"),
       (Slot("weights", "dist"), Slot("means", "mean_vec"), Slot("sds", SCALE),
        Slot("mean", "mean"), Slot("sd", "beta"), Slot("direction", "direction")), "1d",
       joint=MIX),
]  # fmt: skip

# ----------------------------------------------------------------- value kinds


@dataclass(frozen=True)
class Kind:
    """The hostile values of one kind of numeric array argument."""

    ints: list  # a valid integer version (non-negative, for unsigned dtypes)
    signed: list | None  # a valid integer version using negatives, if any
    # (label, values, expectation, position of the bad entry or None, equivalent values)
    specials: list
    shapes: dict = field(default_factory=dict)  # shape label -> expectation (default ANY)


DIST_SHAPES = {"zero_d": ERROR, "empty": ERROR, "n_by_0": ERROR, "len1": ERROR, "col": ERROR}

KINDS = {
    "dist": Kind([0, 1, 0], None, [
        sp("nan_at_1", [0.25, NAN, 0.5], ERROR, 1),
        sp("inf_at_1", [0.25, INF, 0.5], ERROR, 1),
        sp("neginf_at_1", [0.25, -INF, 0.5], ERROR, 1),
        sp("negative_at_1", [0.5, -0.25, 0.75], ERROR, 1),
        sp("neg_zero", [0.5, -0.0, 0.5], VALUE, None, [0.5, 0.0, 0.5]),
        sp("exact_zero", [0.5, 0.0, 0.5], VALUE),
        sp("one_hot", [0.0, 1.0, 0.0], VALUE),
        sp("all_zeros", [0.0, 0.0, 0.0], ERROR),
        sp("all_ones", [1.0, 1.0, 1.0], ERROR),
        sp("subnormal_5e-324", [0.5, TINY, 0.5], VALUE),
        sp("tiny_1e-308", [0.5, SMALL, 0.5], VALUE),
        sp("huge_1e308", [HUGE, 0.0, 0.0], ERROR),
        sp("max_float", [MAXF, MAXF, 0.0], ERROR),
        sp("greater_than_1", [1.5, -0.25, -0.25], ERROR, 1),
        sp("sum_off_by_1e-10", [0.25, 0.25, 0.5 + 1e-10], VALUE),
        sp("sum_off_by_0.1", [0.25, 0.25, 0.6], ERROR),
        sp("nearly_P", [0.25 + 1e-9, 0.25 - 1e-9, 0.5], VALUE),
        sp("nearly_Q", [0.5, 0.25 - 2**-50, 0.25 + 2**-50], VALUE),
    ], DIST_SHAPES),
    "logits": Kind([0, 1, 2], [-1, 0, 2], [
        sp("nan_at_1", [0.0, NAN, 1.0], ERROR, 1),
        sp("inf_at_1", [0.0, INF, 1.0], ERROR, 1),
        sp("neginf_at_1", [0.0, -INF, 1.0], VALUE),
        sp("neginf_at_0", [-INF, 0.0, 1.0], VALUE),
        sp("only_one_finite", [-INF, -INF, 3.0], VALUE),
        sp("all_neginf", [-INF, -INF, -INF], ERROR),
        sp("neg_zero", [-0.0, 1.0, -1.0], VALUE, None, [0.0, 1.0, -1.0]),
        sp("subnormal_5e-324", [TINY, 1.0, -1.0], VALUE),
        sp("huge_1e308", [HUGE, 0.0, -1.0], VALUE),
        sp("huge_neg_1e308", [-HUGE, 0.0, 1.0], VALUE),
        sp("spread_max_float", [MAXF, -MAXF, 0.0], VALUE),
        sp("shifted_by_1e10", [1e10, 1e10 + 1, 1e10 - 1], VALUE),
        sp("all_equal_zero", [0.0, 0.0, 0.0], VALUE),
        sp("nearly_baseline_p", [0.0, 1.0, -1.0 + 2**-40], VALUE),
    ], {"zero_d": ERROR, "empty": ERROR, "n_by_0": ERROR, "len1": ERROR, "col": ERROR}),
    "logprob": Kind([0, 0, 0], [-1, -2, 0], [
        sp("nan_at_1", [-1.0, NAN, -0.5], ERROR, 1),
        sp("inf_at_1", [-1.0, INF, -0.5], ERROR, 1),
        sp("neginf_at_1", [-1.0, -INF, -0.5], ANY),
        sp("positive_0.5_at_1", [-1.0, 0.5, -0.5], ERROR, 1),
        sp("zeros", [0.0, 0.0, 0.0], VALUE),
        sp("neg_zero", [-0.0, -2.0, -0.5], VALUE, None, [0.0, -2.0, -0.5]),
        sp("subnormal_neg", [-TINY, -2.0, -0.5], VALUE),
        sp("subnormal_pos", [TINY, -2.0, -0.5], ANY),
        sp("huge_neg_1e308", [-HUGE, -2.0, -0.5], VALUE),
        sp("neg_max_float", [-MAXF, -MAXF, -0.5], VALUE),
        sp("nearly_baseline_ref", [-1.5 + 2**-40, -0.25, -3.0 - 2**-40], VALUE),
    ], {"zero_d": ERROR, "empty": ERROR, "n_by_0": ERROR, "len1": ERROR, "col": ERROR}),
    REAL: Kind([0, 1, 2], [-1, 0, 2], [
        sp("nan_at_1", [0.5, NAN, 2.0], ERROR, 1),
        sp("inf_at_1", [0.5, INF, 2.0], ERROR, 1),
        sp("neginf_at_1", [0.5, -INF, 2.0], ERROR, 1),
        sp("neg_zero", [-0.0, -1.0, 2.0], VALUE, None, [0.0, -1.0, 2.0]),
        sp("subnormal_5e-324", [TINY, -1.0, 2.0], VALUE),
        sp("huge_1e308", [HUGE, -1.0, 2.0], ANY),
        sp("huge_neg_1e308", [-HUGE, -1.0, 2.0], ANY),
        sp("max_float_both_signs", [MAXF, -MAXF, 0.0], ANY),
        sp("zeros", [0.0, 0.0, 0.0], VALUE),
    ]),
    "mean_vec": Kind([0, 1, 2], [-1, 0, 2], [
        sp("nan_at_1", [-1.0, NAN, 2.0], ERROR, 1),
        sp("inf_at_1", [-1.0, INF, 2.0], ERROR, 1),
        sp("neg_zero", [-1.0, -0.0, 2.0], VALUE, None, [-1.0, 0.0, 2.0]),
        sp("subnormal_5e-324", [-1.0, TINY, 2.0], VALUE),
        sp("huge_1e308", [-1.0, HUGE, 2.0], ANY),
        sp("all_equal", [1.0, 1.0, 1.0], VALUE),
    ], {"zero_d": ERROR, "empty": ERROR, "n_by_0": ERROR, "len1": ERROR, "col": ERROR}),
    SCALE: Kind([1, 2, 3], None, [
        sp("nan_at_1", [1.0, NAN, 0.5], ERROR, 1),
        sp("inf_at_1", [1.0, INF, 0.5], ERROR, 1),
        sp("zero_at_1", [1.0, 0.0, 0.5], ERROR, 1),
        sp("neg_zero_at_1", [1.0, -0.0, 0.5], ERROR, 1),
        sp("negative_at_1", [1.0, -2.0, 0.5], ERROR, 1),
        sp("subnormal_5e-324", [1.0, TINY, 0.5], ANY),
        sp("tiny_1e-308", [1.0, SMALL, 0.5], ANY),
        sp("huge_1e308", [1.0, HUGE, 0.5], ANY),
    ]),
    "label": Kind([1, 0, 1], None, [
        sp("soft_0.5", [1.0, 0.5, 1.0], VALUE),
        sp("above_1_at_1", [1.0, 1.5, 1.0], ERROR, 1),
        sp("negative_at_1", [1.0, -0.5, 1.0], ERROR, 1),
        sp("nan_at_1", [1.0, NAN, 1.0], ERROR, 1),
        sp("inf_at_1", [1.0, INF, 1.0], ERROR, 1),
        sp("neg_zero", [1.0, -0.0, 1.0], VALUE, None, [1.0, 0.0, 1.0]),
        sp("subnormal_5e-324", [1.0, TINY, 1.0], VALUE),
    ]),
    "bit": Kind([1, 1, 0], None, [
        sp("half_at_1", [1.0, 0.5, 0.0], ERROR, 1),
        sp("two_at_1", [1.0, 2.0, 0.0], ERROR, 1),
        sp("negative_at_1", [1.0, -1.0, 0.0], ERROR, 1),
        sp("nan_at_1", [1.0, NAN, 0.0], ERROR, 1),
        sp("inf_at_1", [1.0, INF, 0.0], ERROR, 1),
        sp("neg_zero", [1.0, 1.0, -0.0], VALUE, None, [1.0, 1.0, 0.0]),
        sp("all_zeros", [0.0, 0.0, 0.0], VALUE),
        sp("all_ones", [1.0, 1.0, 1.0], VALUE),
    ], {"zero_d": ERROR, "empty": ERROR}),
    "prob01": Kind([1, 0, 1], None, [
        sp("zero_where_y_is_1", [0.0, 0.25, 0.5], VALUE),
        sp("one_where_y_is_0", [0.75, 1.0, 0.5], VALUE),
        sp("exact_labels", [1.0, 0.0, 1.0], VALUE),
        sp("nan_at_1", [0.75, NAN, 0.5], ERROR, 1),
        sp("above_1_at_1", [0.75, 1.5, 0.5], ERROR, 1),
        sp("negative_at_1", [0.75, -0.25, 0.5], ERROR, 1),
        sp("inf_at_1", [0.75, INF, 0.5], ERROR, 1),
        sp("neg_zero", [0.75, -0.0, 0.5], VALUE, None, [0.75, 0.0, 0.5]),
        sp("subnormal_5e-324", [0.75, TINY, 0.5], VALUE),
        sp("one_minus_eps", [1 - 2**-53, 0.25, 0.5], VALUE),
    ]),
    "bern_logits": Kind([1, 0, 2], [1, -1, 0], [
        sp("nan_at_1", [1.0, NAN, 0.0], ERROR, 1),
        sp("inf_at_1", [1.0, INF, 0.0], ERROR, 1),
        sp("neginf_at_1", [1.0, -INF, 0.0], ANY),
        sp("huge_1e308", [HUGE, -HUGE, 0.0], VALUE),
        sp("wrong_way_1e308", [-HUGE, HUGE, 0.0], VALUE),
        sp("max_float", [MAXF, -MAXF, MAXF], VALUE),
        sp("subnormal_5e-324", [TINY, -TINY, 0.0], VALUE),
        sp("neg_zero", [1.0, -1.0, -0.0], VALUE, None, [1.0, -1.0, 0.0]),
    ]),
    "count": Kind([1, 0, 3], None, [
        sp("fraction_at_1", [1.0, 1.5, 3.0], ERROR, 1),
        sp("negative_at_1", [1.0, -1.0, 3.0], ERROR, 1),
        sp("nan_at_1", [1.0, NAN, 3.0], ERROR, 1),
        sp("inf_at_1", [1.0, INF, 3.0], ERROR, 1),
        sp("huge_1e300", [1.0, 1e300, 3.0], VALUE),
        sp("max_float", [1.0, MAXF, 3.0], ANY),
        sp("neg_zero", [1.0, -0.0, 3.0], VALUE, None, [1.0, 0.0, 3.0]),
        sp("subnormal_5e-324", [1.0, TINY, 3.0], ERROR, 1),
    ]),
    "rate": Kind([1, 1, 2], None, [
        sp("zero_where_y_is_0", [0.5, 0.0, 2.0], VALUE),
        sp("zero_where_y_is_1", [0.0, 1.0, 2.0], VALUE),
        sp("negative_at_1", [0.5, -1.0, 2.0], ERROR, 1),
        sp("nan_at_1", [0.5, NAN, 2.0], ERROR, 1),
        sp("inf_at_1", [0.5, INF, 2.0], ERROR, 1),
        sp("huge_1e300", [0.5, 1e300, 2.0], VALUE),
        sp("max_float", [0.5, MAXF, 2.0], ANY),
        sp("subnormal_5e-324", [TINY, 1.0, 2.0], VALUE),
        sp("neg_zero", [0.5, -0.0, 2.0], VALUE, None, [0.5, 0.0, 2.0]),
    ]),
    "log_rate": Kind([0, 0, 1], [0, -1, 1], [
        sp("nan_at_1", [0.0, NAN, 1.0], ERROR, 1),
        sp("inf_at_1", [0.0, INF, 1.0], ERROR, 1),
        sp("neginf_at_1", [0.0, -INF, 1.0], ANY),
        sp("beyond_exp_800", [0.0, 800.0, 1.0], VALUE),
        sp("very_negative_-800", [-800.0, -1.0, 1.0], VALUE),
        sp("huge_1e308", [0.0, HUGE, 1.0], ANY),
        sp("neg_zero", [-0.0, -1.0, 1.0], VALUE, None, [0.0, -1.0, 1.0]),
    ]),
}  # fmt: skip

# Scalar arguments: the baseline value and its special values.
SCALAR_SPECIALS = {
    "beta": [
        sp("nan", NAN, ERROR), sp("inf", INF, ERROR), sp("neg_inf", -INF, ERROR),
        sp("zero", 0.0, ERROR), sp("neg_zero", -0.0, ERROR), sp("negative", -1.0, ERROR),
        sp("subnormal_5e-324", TINY, ANY), sp("tiny_1e-308", SMALL, ANY),
        sp("huge_1e308", HUGE, ANY), sp("max_float", MAXF, ANY), sp("one", 1.0, VALUE),
    ],
    "smoothing": [
        sp("nan", NAN, ERROR), sp("inf", INF, ERROR), sp("neg_inf", -INF, ERROR),
        sp("negative", -0.25, ERROR), sp("half", 0.5, ERROR), sp("one", 1.0, ERROR),
        sp("huge_1e308", HUGE, ERROR), sp("zero", 0.0, VALUE),
        sp("neg_zero", -0.0, VALUE, None, 0.0), sp("subnormal_5e-324", TINY, VALUE),
        sp("just_below_half", 0.5 - 2**-54, VALUE),
    ],
    "mean": [
        sp("nan", NAN, ERROR), sp("inf", INF, ERROR), sp("neg_inf", -INF, ERROR),
        sp("neg_zero", -0.0, VALUE, None, 0.0), sp("subnormal_5e-324", TINY, VALUE),
        sp("huge_1e308", HUGE, ANY), sp("far_1e5", -1e5, ANY), sp("one", 1.0, VALUE),
    ],
}  # fmt: skip


# ----------------------------------------------------------------- the cases


@dataclass(frozen=True)
class Case:
    """One call: ``fn`` with argument ``slot`` replaced by ``make()``."""

    fn: Fn
    slot: str
    label: str
    make: Callable[[], object]
    expect: str
    # The oracle: a callable giving the expected result, or None.
    oracle: Callable[[], object] | None = None
    rtol: float = 0.0
    where: str | None = None  # the position an error must name, e.g. "q[1]"
    names: tuple[str, ...] = ()  # an error must name one of these (default: the slot)
    extra: Callable[[dict], None] | None = None  # edits the other arguments
    mp: bool = False  # compare with fn.mp

    @property
    def id(self) -> str:
        return f"{self.fn.label}-{self.slot}-{self.label}"

    def kwargs(self) -> dict:
        kw = self.fn.baseline()
        kw[self.slot] = self.make()
        if self.extra is not None:
            self.extra(kw)
        return kw


class ArrayLike:
    """Exposes only ``__array__`` (as a CPU torch tensor does)."""

    def __init__(self, values):
        self._values = np.asarray(values)

    def __array__(self, dtype=None, copy=None):
        return np.array(self._values, dtype=dtype, copy=True)

    def __deepcopy__(self, memo):
        return ArrayLike(self._values.copy())

    def __eq__(self, other):
        return isinstance(other, ArrayLike) and np.array_equal(self._values, other._values)

    __hash__ = None


_BASELINES: dict[str, object] = {}


def baseline_result(fn: Fn):
    if fn.label not in _BASELINES:
        _BASELINES[fn.label] = fn.func(**fn.baseline())
    return _BASELINES[fn.label]


def same_call(fn: Fn, slot: str, value: Callable[[], object], extra=None):
    """An oracle: ``fn`` called with ``slot`` replaced by the plain ``value()``."""

    def oracle():
        kw = fn.baseline()
        kw[slot] = value()
        if extra is not None:
            extra(kw)
        return fn.func(**kw)

    return oracle


def tiled(fn: Fn, k: int, lead: tuple[int, ...] | None = None):
    """The oracle for ``k`` stacked copies (or a reshape to ``lead + shape``)."""

    def oracle():
        b = np.asarray(baseline_result(fn))
        if fn.tile == "stack":
            if lead is not None:
                return b.reshape(lead + b.shape)
            return np.broadcast_to(b, (k, *b.shape)).copy()
        if fn.tile == "sum":
            return b * (k if lead is None else 1)
        return b  # "mean"

    return oracle


def unaligned(values) -> np.ndarray:
    raw = np.zeros(len(values) * 8 + 1, dtype=np.uint8)
    out = raw[1:].view(np.float64)
    out[:] = values
    return out


def negative_strides(values) -> np.ndarray:
    return np.array(values[::-1], dtype=np.float64)[::-1]


def matrix(values) -> np.matrix:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return np.asmatrix(arr(values))


def read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def numeric_cases(fn: Fn, slot: Slot) -> list[Case]:
    kind = KINDS[slot.kind]
    base = list(np.asarray(fn.baseline()[slot.name], dtype=np.float64))
    name = slot.name
    cases: list[Case] = []

    def add(label, make, expect, oracle=None, rtol=0.0, where=None, mp=False, names=()):
        expect = slot.overrides.get(label, expect)
        cases.append(
            Case(
                fn,
                name,
                label,
                make,
                expect,
                oracle,
                rtol,
                where,
                names,
                None,
                mp and expect == VALUE,
            )
        )

    def plain(values):
        return same_call(fn, name, lambda: arr(values))

    # -- types
    add("None", lambda: None, ERROR)
    add("str", lambda: "abc", ERROR)
    add("bytes", lambda: b"abc", ERROR)
    add("dict", lambda: {"a": 1.0}, ERROR)
    add("set", lambda: set(base), ERROR)
    add("object", object, ERROR)
    add("complex_scalar", lambda: 1j, ERROR)
    add("complex_array", lambda: arr(base, complex) + 1j, ERROR)
    add("complex_array_zero_imag", lambda: arr(base, complex), ANY, plain(base))
    add("str_numbers", lambda: [str(v) for v in base], ERROR)
    add("datetime64", lambda: np.array(["2020-01-01"] * N, dtype="datetime64[D]"), ERROR)
    add("timedelta64", lambda: np.array([1, 2, 3], dtype="timedelta64[s]"), ERROR)
    add("structured", lambda: np.array([(v,) for v in base], dtype=[("x", "f8")]), ERROR)
    add("ragged", lambda: [base[:2], base[2:]], ERROR)
    add("ragged_deep", lambda: [[base], [base[:2]]], ERROR)
    add("number_next_to_list", lambda: [base[0], base[1:]], ERROR)
    add("masked", lambda: np.ma.masked_array(arr(base), mask=[False, True, False]), ERROR)
    add("bool_array", lambda: arr(kind.ints, bool), ANY, plain(np.asarray(kind.ints, bool)))
    add("fractions", lambda: [Fraction(v) for v in base], ANY, plain(base))
    add("decimals", lambda: [Decimal(v) for v in base], ANY, plain(base))
    add("object_array", lambda: arr(base, object), ANY, plain(base))
    add("int_beyond_int64", lambda: [2**70, *kind.ints[1:]], ANY, plain([2.0**70, *kind.ints[1:]]))
    add("generator", lambda: (v for v in base), ANY, plain(base))
    add("list", lambda: list(base), VALUE, plain(base))
    add("tuple", lambda: tuple(base), VALUE, plain(base))
    add("list_of_np_float64", lambda: [np.float64(v) for v in base], VALUE, plain(base))
    add("array_like_object", lambda: ArrayLike(base), VALUE, plain(base))
    add("array_array", lambda: array.array("d", base), ANY, plain(base))
    add("memoryview", lambda: memoryview(arr(base)), ANY, plain(base))
    add("matrix", lambda: matrix(base), ANY)
    add("nan_object_array", lambda: arr([base[0], None, base[2]], object), ERROR)
    # -- dtypes (integer dtypes hold the kind's valid integer values)
    for dt in (np.int8, np.int16, np.int32, np.int64):
        ints = kind.signed if kind.signed is not None else kind.ints
        add(np.dtype(dt).name, lambda dt=dt, v=ints: arr(v, dt), VALUE, plain(ints))
    for dt in (np.uint8, np.uint16, np.uint32, np.uint64):
        add(np.dtype(dt).name, lambda dt=dt: arr(kind.ints, dt), VALUE, plain(kind.ints))
    add("int_big_endian", lambda: arr(kind.ints, ">i4"), VALUE, plain(kind.ints))
    for dt in (np.float16, np.float32, np.longdouble):
        add(np.dtype(dt).name, lambda dt=dt: arr(base, dt), VALUE, plain(base), DTYPE_RTOL)
    add("float64_big_endian", lambda: arr(base, ">f8"), VALUE, plain(base))
    add("float32_big_endian", lambda: arr(base, ">f4"), VALUE, plain(base))
    if ml_dtypes is not None:
        add("bfloat16", lambda: arr(base, ml_dtypes.bfloat16), ANY, plain(base))
    if HAS_WIDE_LONGDOUBLE:
        for sign, tag in ((1, ""), (-1, "neg_")):

            def beyond(sign=sign):
                a = np.array(base, dtype=np.longdouble)
                a[1] = np.longdouble("1e400") * sign
                return a

            # +1e400 in a distribution also makes it sum to inf: that row error will do
            where = None if slot.kind == "dist" and sign > 0 else f"{name}[1]"
            add(f"longdouble_{tag}beyond_range", beyond, ERROR, where=where)

        def below(v=base):
            a = np.array(v, dtype=np.longdouble)
            a[1] = a[1] * np.longdouble("1e-4900") if a[1] != 0 else np.longdouble("1e-4900")
            return a

        add("longdouble_below_float64", below, ANY)
    # -- shapes
    shape = kind.shapes
    add("zero_d", lambda: np.float64(base[0]), shape.get("zero_d", ANY))
    add(
        "zero_d_array", lambda: arr(base[0]), slot.overrides.get("zero_d", shape.get("zero_d", ANY))
    )
    add("empty", lambda: arr([]), shape.get("empty", ANY))
    add("len1", lambda: arr(base[:1]), shape.get("len1", ANY))
    add("too_long", lambda: arr([*base, base[0]]), ERROR)
    add("too_short", lambda: arr(base[:2]), ERROR)
    add("n_by_0", lambda: np.zeros((N, 0)), shape.get("n_by_0", ANY))
    add("col", lambda: arr(base)[:, None], shape.get("col", ANY))
    tile = slot.overrides.get(
        "tile", {"stack": VALUE, "sum": VALUE, "mean": VALUE, "1d": ERROR}.get(fn.tile, ANY)
    )
    tile_oracle = tiled(fn, 2) if tile == VALUE else None
    add(
        "empty_batch_0_by_n",
        lambda: np.zeros((0, N)),
        VALUE if fn.tile == "stack" and tile == VALUE else (ERROR if fn.tile == "1d" else ANY),
        tiled(fn, 0) if fn.tile == "stack" and tile == VALUE else None,
    )
    add("batch_2_by_n", lambda: np.tile(arr(base), (2, 1)), tile, tile_oracle)
    add("batch_fortran", lambda: np.asfortranarray(np.tile(arr(base), (2, 1))), tile, tile_oracle)
    add(
        "batch_broadcast_to_zero_stride",
        lambda: np.broadcast_to(arr(base), (2, N)),
        tile,
        tile_oracle,
    )
    add("batch_read_only", lambda: read_only(np.tile(arr(base), (2, 1))), tile, tile_oracle)
    five = slot.overrides.get(
        "five_d", ERROR if fn.tile == "1d" else (VALUE if tile == VALUE else ANY)
    )
    add(
        "five_d",
        lambda: arr(base).reshape(1, 1, 1, 1, N),
        five,
        tiled(fn, 1, (1, 1, 1, 1)) if five == VALUE else None,
    )
    # -- layouts (same values)
    add("non_contiguous", lambda: np.repeat(arr(base), 2)[::2], VALUE, plain(base))
    add("negative_strides", lambda: negative_strides(base), VALUE, plain(base))
    add("read_only", lambda: read_only(arr(base)), VALUE, plain(base))
    add("unaligned", lambda: unaligned(base), VALUE, plain(base))
    add(
        "column_of_fortran_2d",
        lambda: np.asfortranarray(np.stack([arr(base)] * 2))[0],
        VALUE,
        plain(base),
    )
    # -- special values
    for label, values, expect, at, equiv in [*kind.specials, *slot.specials]:
        where = f"{name}[{at}]" if at is not None else None
        oracle = plain(equiv) if equiv is not None else None
        add(
            label,
            lambda v=values: arr(v),
            expect,
            oracle,
            where=where,
            mp=fn.mp is not None,
        )
        if expect == ERROR and at is not None:
            bad = values[at]
            if math.isnan(bad) or float(np.float32(bad)) == bad:
                add(f"{label}_float32", lambda v=values: arr(v, np.float32), ERROR, where=where)
            if fn.tile == "1d":  # a 2-D argument is refused for its shape
                add(f"{label}_in_batch", lambda v=values: np.stack([arr(base), arr(v)]), ERROR)
            else:
                add(
                    f"{label}_in_batch",
                    lambda v=values: np.stack([arr(base), arr(v)]),
                    ERROR if fn.tile != "any" else ANY,
                    where=f"{name}[1, {at}]",
                )
    # -- a special row deep in a batch of BIG_ROWS rows (past the first block of the
    #    chunked engine): the error names the row, a value leaves the other rows alone
    if tile == VALUE and fn.tile in ("stack", "sum", "mean"):
        chosen = [
            next(((lb, v, e, at) for lb, v, e, at, _ in kind.specials
                  if e == ERROR and at is not None), None),
            next(((lb, v, VALUE, at) for lb, v, e, at, eq in kind.specials
                  if slot.overrides.get(lb, e) == VALUE and eq is None), None),
        ]  # fmt: skip
        for label, values, expect, at in filter(None, chosen):
            add(
                f"big_batch_{label}_at_row_{BIG_ROW}",
                lambda v=values: big_batch(base, v),
                expect,
                big_oracle(fn, name, values) if expect == VALUE else None,
                BIG_RTOL,
                where=f"{name}[{BIG_ROW}, {at}]" if expect == ERROR else None,
            )
        # the same batch in layouts the engine copies block by block
        if fn.tile == "stack":
            stacked = tiled(fn, BIG_ROWS)
            for label, make in (
                ("big_batch_float32", lambda: np.tile(arr(base, np.float32), (BIG_ROWS, 1))),
                ("big_batch_fortran", lambda: np.asfortranarray(np.tile(arr(base), (BIG_ROWS, 1)))),
                ("big_batch_zero_stride", lambda: np.broadcast_to(arr(base), (BIG_ROWS, N))),
            ):
                add(label, make, VALUE, stacked, BIG_RTOL)
        # enough blocks for the engine's threads, the bad entry in the last block
        if fn.tile == "stack" and name == fn.slots[0].name and kind.specials[0][3] is not None:
            label, values, _e, at, _q = kind.specials[0]
            add(
                f"threaded_batch_{label}_at_row_{THREADED_ROWS - 1}",
                lambda v=values: threaded_batch(base, v),
                ERROR,
                where=f"{name}[{THREADED_ROWS - 1}, {at}]",
            )
    return cases


BIG_ROWS, BIG_ROW, BIG_RTOL = 25_000, 23_456, 1e-13
THREADED_ROWS = 120_000  # 360,000 entries: more than 4 blocks of 2**16


def threaded_batch(base, values) -> np.ndarray:
    a = np.tile(arr(base), (THREADED_ROWS, 1))
    a[-1] = values
    return a


def big_batch(base, values) -> np.ndarray:
    a = np.tile(arr(base), (BIG_ROWS, 1))
    a[BIG_ROW] = values
    return a


def big_oracle(fn: Fn, slot: str, values):
    """BIG_ROWS copies of the baseline result with row BIG_ROW from the 1-row call."""

    def oracle():
        b = np.asarray(baseline_result(fn))
        one = np.asarray(same_call(fn, slot, lambda: arr(values))())
        if fn.tile == "stack":
            out = np.repeat(b[None], BIG_ROWS, axis=0)
            out[BIG_ROW] = one
            return out
        total = (BIG_ROWS - 1) * b + one
        return total if fn.tile == "sum" else total / BIG_ROWS

    return oracle


def scalar_cases(fn: Fn, slot: Slot) -> list[Case]:
    base = fn.baseline()[slot.name]
    name = slot.name
    cases: list[Case] = []

    def add(label, make, expect, oracle=None, rtol=0.0):
        expect = slot.overrides.get(label, expect)
        cases.append(Case(fn, name, label, make, expect, oracle, rtol))

    def plain(v):
        return same_call(fn, name, lambda: v)

    b = float(base)
    add("None", lambda: None, ERROR)
    add("str", lambda: str(b), ERROR)
    add("bytes", lambda: b"1", ERROR)
    add("dict", lambda: {"a": b}, ERROR)
    add("set", lambda: {b}, ERROR)
    add("object", object, ERROR)
    add("complex", lambda: complex(b, 1.0), ERROR)
    add("complex_zero_imag", lambda: complex(b, 0.0), ANY, plain(b))
    add("bool_True", lambda: True, ANY)
    add("datetime64", lambda: np.datetime64("2020-01-01"), ERROR)
    add("list_of_two", lambda: [b, b], ANY)
    add("list_of_one", lambda: [b], ANY)
    add("array_1d", lambda: arr([b]), ANY)
    add("array_0d", lambda: arr(b), ANY, plain(b))
    add("array_0d_big_endian", lambda: arr(b, ">f8"), ANY, plain(b))
    add("fraction", lambda: Fraction(b), ANY, plain(b))
    add("decimal", lambda: Decimal(b), ANY, plain(b))
    add("int", lambda: int(b) if b == int(b) else b, VALUE, plain(b))
    for dt in (np.float16, np.float32, np.float64, np.longdouble):
        add(np.dtype(dt).name, lambda dt=dt: dt(b), VALUE, plain(b))
    if HAS_WIDE_LONGDOUBLE:
        add("longdouble_beyond_range", lambda: np.longdouble("1e400"), ERROR)
        add("longdouble_neg_beyond_range", lambda: np.longdouble("-1e400"), ERROR)
        add("longdouble_below_float64", lambda: np.longdouble("1e-400"), ANY)
    for label, value, expect, _at, equiv in SCALAR_SPECIALS[slot.kind]:
        add(label, lambda v=value: v, expect, plain(equiv) if equiv is not None else None)
    return cases


def axis_cases(fn: Fn, slot: Slot) -> list[Case]:
    cases = []

    def add(label, value, expect, oracle=None):
        cases.append(Case(fn, "axis", label, lambda: value, expect, oracle))

    same = same_call(fn, "axis", lambda: -1)
    add("zero", 0, VALUE, same)
    add("np_int64_0", np.int64(0), VALUE, same)
    add("np_intp_-1", np.intp(-1), VALUE, same)
    add("np_int8_-1", np.int8(-1), VALUE, same)
    add("np_array_0d_int", np.array(0), ANY, same)
    add("one_out_of_range", 1, ERROR)
    add("minus_two_out_of_range", -2, ERROR)
    add("huge_2**63", 2**63, ERROR)
    add("huge_2**70", 2**70, ERROR)
    add("float_0.0", 0.0, ERROR)
    add("float_1.5", 1.5, ERROR)
    add("np_float64_0", np.float64(0.0), ERROR)
    add("str_0", "0", ERROR)
    add("None", None, ERROR)
    add("bool_False", False, ERROR)
    add("bool_True", True, ERROR)
    add("list_0", [0], ERROR)
    add("tuple_0", (0,), ERROR)
    add("complex", 1j, ERROR)
    add("nan", math.nan, ERROR)
    # a 2-D call along axis 0: every array argument as a column
    arrays = [s.name for s in fn.slots if s.kind in KINDS or s.kind == "mask"]

    def columns(kw):
        for a in arrays:
            kw[a] = np.asarray(kw[a])[:, None]

    def transposed_oracle():
        return np.asarray(baseline_result(fn)).reshape(1, *np.shape(baseline_result(fn)))

    if fn.label.startswith("kl_estimate"):
        return cases
    cases.append(
        Case(fn, "axis", "zero_on_columns", lambda: 0, VALUE, transposed_oracle, extra=columns)
    )
    cases.append(
        Case(fn, "axis", "two_on_columns", lambda: 2, ERROR, extra=columns, names=("axis", *arrays))
    )
    return cases


def base_cases(fn: Fn, slot: Slot) -> list[Case]:
    cases = []

    def add(label, value, expect, divisor=None):
        def oracle(d=divisor):
            return np.asarray(baseline_result(fn)) / d

        cases.append(
            Case(fn, "base", label, lambda: value, expect, oracle if divisor else None, 1e-15)
        )

    add("two", 2, VALUE, math.log(2))
    add("two_float", 2.0, VALUE, math.log(2))
    add("np_float32_2", np.float32(2), VALUE, math.log(2))
    add("np_int64_2", np.int64(2), VALUE, math.log(2))
    add("e", math.e, VALUE, 1.0)
    add("half", 0.5, VALUE, math.log(0.5))
    add("ten", 10, VALUE, math.log(10))
    add("subnormal_5e-324", TINY, ANY)
    add("huge_1e308", HUGE, ANY)
    add("fraction_2", Fraction(2), ANY, math.log(2))
    add("decimal_2", Decimal(2), ANY, math.log(2))
    add("longdouble_2", np.longdouble(2), ANY, math.log(2))
    add("array_0d_2", np.array(2.0), ANY, math.log(2))
    add("zero", 0, ERROR)
    add("neg_zero", -0.0, ERROR)
    add("negative", -2.0, ERROR)
    add("one", 1, ERROR)
    add("one_float", 1.0, ERROR)
    add("np_float64_1", np.float64(1.0), ERROR)
    add("nan", math.nan, ERROR)
    add("inf", math.inf, ERROR)
    add("neg_inf", -math.inf, ERROR)
    add("str_2", "2", ERROR)
    add("bytes_2", b"2", ERROR)
    add("bool_True", True, ERROR)
    add("complex", 2j, ERROR)
    add("list_2", [2], ERROR)
    add("object", object(), ERROR)
    if HAS_WIDE_LONGDOUBLE:
        add("longdouble_beyond_range", np.longdouble("1e400"), ERROR)
    return cases


def choice_cases(fn: Fn, slot: Slot, valid: list[str], extra=None, names=()) -> list[Case]:
    cases = []
    name = slot.name

    def add(label, value, expect, oracle=None, names=names):
        cases.append(Case(fn, name, label, lambda: value, expect, oracle, 0.0, None, names, extra))

    for v in valid:
        add(v, v, VALUE)
        add(f"np_str_{v}", np.str_(v), VALUE, same_call(fn, name, lambda v=v: v, extra))
        add(f"upper_{v}", v.upper(), ANY)
        add(f"padded_{v}", f" {v} ", ANY)
        add(f"bytes_{v}", v.encode(), ERROR)
        add(f"list_{v}", [v], ERROR)
    add("unknown", "sideways", ERROR)
    add("empty_str", "", ERROR)
    add("None", None, ERROR)
    add("int", 1, ERROR)
    add("object", object(), ERROR)
    add("nan", math.nan, ERROR)
    return cases


def mask_cases(fn: Fn, slot: Slot) -> list[Case]:
    base = [True, True, False]
    cases = []

    def add(label, make, expect, oracle=None):
        cases.append(Case(fn, "mask", label, make, expect, oracle))

    def plain(values):
        return same_call(fn, "mask", lambda: arr(values, bool))

    add("None", lambda: None, VALUE, same_call(fn, "mask", lambda: arr([True] * N, bool)))
    add("list", lambda: list(base), VALUE, plain(base))
    add("tuple", lambda: tuple(base), VALUE, plain(base))
    add("all_false", lambda: arr([False] * N, bool), VALUE)
    add("all_true", lambda: arr([True] * N, bool), VALUE, same_call(fn, "mask", lambda: None))
    add("zero_d_True", lambda: np.True_, ANY, same_call(fn, "mask", lambda: None))
    add("python_True", lambda: True, ANY, same_call(fn, "mask", lambda: None))
    for dt in (np.int8, np.int64, np.uint8, np.float64, np.float32):
        add(f"{np.dtype(dt).name}_0_1", lambda dt=dt: arr(base, dt), ANY, plain(base))
    add("int_2", lambda: arr([2, 1, 0], np.int64), ANY, plain(base))
    add("float_half", lambda: arr([0.5, 1.0, 0.0]), ERROR)
    add("nan_float", lambda: arr([NAN, 1.0, 0.0]), ERROR)
    add("str", lambda: "abc", ERROR)
    add("bytes", lambda: b"abc", ERROR)
    add("dict", lambda: {"a": True}, ERROR)
    add("set", lambda: {True}, ERROR)
    add("object", object, ERROR)
    add("complex", lambda: arr(base, complex), ERROR)
    add("object_array", lambda: arr(base, object), ANY, plain(base))
    add("masked", lambda: np.ma.masked_array(arr(base, bool), mask=[False, True, False]), ERROR)
    add("ragged", lambda: [[True, True], [False]], ERROR)
    add("generator", lambda: (v for v in base), ANY, plain(base))
    add("too_long", lambda: arr([*base, True], bool), ERROR)
    add("too_short", lambda: arr(base[:2], bool), ERROR)
    add("empty", lambda: arr([], bool), ERROR)
    add("batch_2_by_n", lambda: np.tile(arr(base, bool), (2, 1)), ANY, tiled(fn, 2))
    add("col", lambda: arr(base, bool)[:, None], ANY)
    add("non_contiguous", lambda: np.repeat(arr(base, bool), 2)[::2], VALUE, plain(base))
    add("negative_strides", lambda: arr(base[::-1], bool)[::-1], VALUE, plain(base))
    add("read_only", lambda: read_only(arr(base, bool)), VALUE, plain(base))
    add("broadcast_to", lambda: np.broadcast_to(arr(base, bool), (N,)), VALUE, plain(base))
    return cases


def samples_cases(fn: Fn, slot: Slot) -> list[Case]:
    base = ["a", "b", "a"]
    cases = []

    def add(label, make, expect, oracle=None, where=None):
        cases.append(Case(fn, "samples", label, make, expect, oracle, 0.0, where))

    def plain(values):
        return same_call(fn, "samples", lambda: list(values))

    numeric = fn.label == "categorical_log_likelihood"
    add("tuple", lambda: tuple(base), VALUE, plain(base))
    add("generator", lambda: (s for s in base), VALUE, plain(base))
    add("iterator", lambda: iter(base), VALUE, plain(base))
    add("str_chars", lambda: "aba", VALUE, plain(base))
    add("np_str_array", lambda: np.array(base), VALUE, plain(base))
    add("np_object_array", lambda: np.array(base, dtype=object), VALUE, plain(base))
    add("deque", lambda: collections.deque(base), VALUE, plain(base))
    add("dict_keys_order", lambda: {"a": 0, "b": 1}, ANY)
    add("empty_list", lambda: [], ERROR)
    add("empty_generator", lambda: (s for s in ()), ERROR)
    add("empty_array", lambda: np.array([], dtype="<U1"), ERROR)
    add("None", lambda: None, ERROR)
    add("int", lambda: 5, ERROR)
    add("object", object, ERROR)
    add("unhashable_list_at_1", lambda: ["a", ["b"], "a"], ERROR, where="samples[1]")
    add("unhashable_dict_at_1", lambda: ["a", {"b": 1}, "a"], ERROR, where="samples[1]")
    add("unhashable_set_at_0", lambda: [{"a"}, "b"], ERROR, where="samples[0]")
    add("rows_of_2d_array", lambda: np.array([["a", "b"], ["a", "b"]]), ERROR)
    add("masked", lambda: np.ma.masked_array(np.array(base), mask=[False, True, False]), ERROR)
    add("set", lambda: {"a", "b"}, ANY)
    add("frozenset", lambda: frozenset("ab"), ANY)
    add("bytes", lambda: b"aba", ANY)
    if numeric:
        add("not_in_support", lambda: ["a", "z"], ERROR)
        add("ints_not_in_support", lambda: [1, 2], ERROR)
        add("np_str_scalars", lambda: [np.str_(s) for s in base], VALUE, plain(base))
    else:
        add("ints", lambda: [1, 2, 1], VALUE)
        add(
            "np_int_array",
            lambda: np.array([1, 2, 1]),
            VALUE,
            same_call(fn, "samples", lambda: [1, 2, 1]),
        )
        add("floats_nan", lambda: [NAN, NAN, 1.0], ANY)
        add("one_float_and_int_and_bool", lambda: [1, 1.0, True], ANY)
        add("neg_zero_and_zero", lambda: [0.0, -0.0], ANY)
        add("None_values", lambda: [None, None, "a"], VALUE)
        add("tuples", lambda: [(1, 2), (1, 2), (3,)], VALUE)
        add("np_float64_nan", lambda: np.array([NAN, NAN]), ANY)
        add("mixed_types", lambda: ["a", 1, None, (1,), b"a"], VALUE)
    return cases


def support_cases(fn: Fn, slot: Slot) -> list[Case]:
    base = ["a", "b", "c"]
    cases = []

    def add(label, make, expect, oracle=None, where=None):
        cases.append(Case(fn, "support", label, make, expect, oracle, 0.0, where))

    def plain(values):
        return same_call(fn, "support", lambda: list(values))

    add("list", lambda: list(base), VALUE)
    add("tuple", lambda: tuple(base), VALUE, plain(base))
    add("np_array", lambda: np.array(base), VALUE, plain(base))
    add("dict_keys", lambda: dict.fromkeys(base).keys(), VALUE, plain(base))
    add("str_chars", lambda: "abc", ANY, plain(base))
    add("range", lambda: range(3), ERROR)
    add("generator", lambda: (s for s in base), ANY, plain(base))
    add("None", lambda: None, slot.overrides.get("none", VALUE))
    add("set", lambda: set(base), ERROR)
    add("frozenset", lambda: frozenset(base), ERROR)
    add("dict", lambda: dict.fromkeys(base), ANY, plain(base))
    add("duplicates", lambda: ["a", "a", "b"], ERROR)
    add("missing_sample", lambda: ["a", "c", "d"], ERROR)
    add("empty", lambda: [], ERROR)
    add("unhashable_at_1", lambda: ["a", ["b"], "c"], ERROR, where="support[1]")
    add("int", lambda: 5, ERROR)
    add("object", object, ERROR)
    add("masked", lambda: np.ma.masked_array(np.array(base), mask=[False, True, False]), ERROR)
    add("nan_outcome", lambda: ["a", "b", NAN], VALUE)
    if fn.label == "categorical_log_likelihood":
        add("too_long", lambda: ["a", "b", "c", "d"], ERROR)
        add("too_short", lambda: ["a", "b"], ERROR)
    else:
        add("superset", lambda: ["a", "b", "c", "d"], VALUE)
    return cases


def start_cases(fn: Fn, slot: Slot) -> list[Case]:
    cases = []

    def add(label, value, expect, oracle=None):
        cases.append(Case(fn, "start", label, lambda: value, expect, oracle))

    same = same_call(fn, "start", lambda: (0.0, 1.0))
    add("None", None, VALUE)
    add("list", [0.0, 1.0], VALUE, same)
    add("np_array", np.array([0.0, 1.0]), VALUE, same)
    add("ints", (0, 1), VALUE, same)
    add("float32", (np.float32(0), np.float32(1)), VALUE, same)
    add("near_a_mode", (2.0, 2.0), VALUE)
    add("sd_zero", (0.0, 0.0), ERROR)
    add("sd_negative", (0.0, -1.0), ERROR)
    add("sd_neg_zero", (0.0, -0.0), ERROR)
    add("mean_nan", (math.nan, 1.0), ERROR)
    add("mean_inf", (math.inf, 1.0), ERROR)
    add("sd_inf", (0.0, math.inf), ERROR)
    add("sd_nan", (0.0, math.nan), ERROR)
    add("three_values", (0.0, 1.0, 2.0), ERROR)
    add("one_value", (0.0,), ERROR)
    add("empty", (), ERROR)
    add("str", "ab", ERROR)
    add("float", 1.0, ERROR)
    add("str_mean", ("0", 1.0), ERROR)
    add("complex_mean", (0j, 1.0), ERROR)
    add("dict", {"mean": 0.0, "sd": 1.0}, ERROR)
    add("set", {0.0, 1.0}, ERROR)
    add("bool_sd", (0.0, True), ANY)
    add("mean_huge_1e308", (1e308, 1.0), ANY)
    add("sd_huge_1e308", (0.0, 1e308), ANY)
    add("sd_tiny_1e-8", (0.0, 1e-8), ANY)
    if HAS_WIDE_LONGDOUBLE:
        add("longdouble_beyond_range", (np.longdouble("1e400"), 1.0), ERROR)
    return cases


def cases_for(fn: Fn) -> list[Case]:
    first = fn.slots[0].name
    out: list[Case] = [
        Case(fn, first, "baseline", lambda: fn.baseline()[first], VALUE, mp=fn.mp is not None)
    ]
    for slot in fn.slots:
        if slot.kind in KINDS:
            out += numeric_cases(fn, slot)
        elif slot.kind in SCALAR_SPECIALS:
            out += scalar_cases(fn, slot)
        elif slot.kind == "axis":
            out += axis_cases(fn, slot)
        elif slot.kind == "base":
            out += base_cases(fn, slot)
        elif slot.kind == "estimator":
            out += choice_cases(fn, slot, ["k1", "k2", "k3"])
        elif slot.kind == "direction":
            out += choice_cases(fn, slot, ["forward", "reverse"])
        elif slot.kind == "direction_with_start":

            def no_start(kw):
                kw["start"] = None

            out += choice_cases(fn, slot, ["forward", "reverse"], no_start)
            out.append(
                Case(
                    fn,
                    "direction",
                    "forward_with_start",
                    lambda: "forward",
                    ERROR,
                    names=("direction", "start"),
                )
            )
        elif slot.kind == "mask":
            out += mask_cases(fn, slot)
        elif slot.kind == "samples":
            out += samples_cases(fn, slot)
        elif slot.kind == "support":
            out += support_cases(fn, slot)
        elif slot.kind == "start":
            out += start_cases(fn, slot)
        else:  # pragma: no cover
            raise AssertionError(slot.kind)
    return out


def alternative_cases() -> list[Case]:
    """Exactly one of p/logits and rate/log_rate."""
    out = []
    for fn in FUNCTIONS:
        if fn.label in ("bernoulli_nll[p]", "binary_cross_entropy[p]"):
            out.append(
                Case(
                    fn,
                    "logits",
                    "both_p_and_logits",
                    lambda: arr([0.0, 0.0, 0.0]),
                    ERROR,
                    names=("p", "logits"),
                )
            )
            out.append(Case(fn, "p", "neither", lambda: None, ERROR, names=("p", "logits")))
        if fn.label == "poisson_nll[rate]":
            out.append(
                Case(
                    fn,
                    "log_rate",
                    "both_rate_and_log_rate",
                    lambda: arr([0.0, 0.0, 0.0]),
                    ERROR,
                    names=("rate", "log_rate"),
                )
            )
            out.append(Case(fn, "rate", "neither", lambda: None, ERROR, names=("rate", "log_rate")))
    return out


ALL_CASES: list[Case] = [c for fn in FUNCTIONS for c in cases_for(fn)] + alternative_cases()


# The cases that are BAD on today's code (id -> what happened). They are not run;
# delete an entry once the reference is fixed.
def _left(what: str, *case_ids: str) -> dict[str, str]:
    return dict.fromkeys(case_ids, what)


LEFT_OUT: dict[str, str] = {}

# ----------------------------------------------------------------- classification


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


WALL_DEADLINE_S = 60.0  # a hang; DEADLINE_S is CPU time, so a loaded machine is no excuse


def _start_deadline() -> Callable[[], None]:
    """Raise _Timeout in the call after DEADLINE_S of CPU or WALL_DEADLINE_S of wall time."""
    timers = [("SIGPROF", "ITIMER_PROF", DEADLINE_S), ("SIGALRM", "ITIMER_REAL", WALL_DEADLINE_S)]
    armed = []
    for sig_name, timer_name, seconds in timers:
        if hasattr(signal, sig_name) and hasattr(signal, timer_name):
            sig, timer = getattr(signal, sig_name), getattr(signal, timer_name)
            armed.append((sig, timer, signal.signal(sig, _alarm)))
            signal.setitimer(timer, seconds)

    def stop() -> None:
        while armed:
            sig, timer, old = armed.pop()
            signal.setitimer(timer, 0)
            signal.signal(sig, old)

    return stop


def _snapshot(value):
    if isinstance(value, dict):
        return {k: _snapshot(v) for k, v in value.items()}
    if isinstance(value, collections.abc.Iterator):
        return _UNCOPYABLE  # consuming an iterator is not modifying it
    try:
        return copy.deepcopy(value)
    except Exception:
        return _UNCOPYABLE


_UNCOPYABLE = object()


def _identical(a, b) -> bool:
    if b is _UNCOPYABLE:
        return True
    if isinstance(a, np.ma.MaskedArray):
        return (
            isinstance(b, np.ma.MaskedArray)
            and _identical(a.data, b.data)
            and np.array_equal(np.ma.getmaskarray(a), np.ma.getmaskarray(b))
        )
    if isinstance(a, np.ndarray):
        if not isinstance(b, np.ndarray) or a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.kind == "O":
            return all(
                _identical(x, y)
                for x, y in zip(a.ravel().tolist(), b.ravel().tolist(), strict=False)
            )
        return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_identical, a, b))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if type(a) is object:
        return type(b) is object
    try:
        return bool(a == b)
    except Exception:
        return True


def _names_one_of(message: str, names: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", message) for n in names)


def _has_nan(result) -> bool:
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], list):
        return _has_nan(result[1])  # (support, probabilities): a NaN outcome is a label
    if isinstance(result, (list, tuple)):
        return any(_has_nan(r) for r in result)
    if isinstance(result, str) or result is None:
        return False
    try:
        a = np.asarray(result)
    except Exception:
        return False
    return a.dtype.kind in "fc" and bool(np.isnan(a).any())


def _float_type_problem(result) -> str | None:
    if isinstance(result, R.GaussianFit):
        for name, v in zip(result._fields, result, strict=False):
            if not isinstance(v, float):
                return f"GaussianFit.{name} is {type(v).__name__}, not float"
        return None
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], list):
        return _float_type_problem(result[1])
    if isinstance(result, (np.ndarray, np.generic)):
        if result.dtype != np.float64:
            return f"result has dtype {result.dtype}, not float64"
        return None
    if isinstance(result, float):
        return None
    return f"result is a {type(result).__name__}"


def _same(got, want, rtol: float, atol: float = 0.0) -> str | None:
    """None if ``got`` matches ``want``, else what differs."""
    if isinstance(want, tuple) and isinstance(got, tuple):
        if len(got) != len(want):
            return f"{got!r} != {want!r}"
        for g, w in zip(got, want, strict=False):
            problem = _same(g, w, rtol)
            if problem:
                return problem
        return None
    if isinstance(want, list):
        return None if list(got) == want else f"support {got!r} != {want!r}"
    g, w = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if g.shape != w.shape:
        return f"shape {g.shape} != {w.shape} (got {got!r}, want {want!r})"
    if not np.array_equal(np.isinf(g) & (g > 0), np.isinf(w) & (w > 0)) or not np.array_equal(
        np.isinf(g) & (g < 0), np.isinf(w) & (w < 0)
    ):
        return f"got {got!r}, want {want!r}"
    fin = np.isfinite(w)
    if not np.all(np.abs(g[fin] - w[fin]) <= rtol * np.abs(w[fin]) + atol):
        return f"got {got!r}, want {want!r}"
    return None


def _mp_expected(fn: Fn, kw: dict):
    with mpmath.workdps(60):
        v = fn.mp(kw)
        if isinstance(v, list):
            return np.array([float(t) for t in v])
        return float(v)


ERRSTATE_DEFAULT = {"divide": "warn", "over": "warn", "invalid": "warn", "under": "ignore"}


def classify(case: Case) -> tuple[str, str]:
    """Run one case and return (outcome, detail)."""
    kw = case.kwargs()
    snap = _snapshot(kw)
    stop = _start_deadline()
    try:
        with (
            warnings.catch_warnings(),
            np.errstate(**ERRSTATE_DEFAULT),
        ):
            warnings.simplefilter("error")
            got = case.fn.func(**kw)
    except _Timeout:
        return BAD, f"took longer than {DEADLINE_S} s of CPU time (or {WALL_DEADLINE_S} s)"
    except Exception as e:
        stop()
        modified = [k for k in kw if not _identical(kw[k], snap[k])]
        if modified:
            return BAD, f"modified {modified} and raised {type(e).__name__}: {e}"
        kind = type(e).__name__
        clear = (
            isinstance(e, (TypeError, ValueError))
            and not isinstance(e, (LookupError, ArithmeticError, Warning))
            and not type(e).__module__.startswith("numpy")
        )
        if not clear:
            return BAD, f"{kind}: {e}"
        if case.expect == VALUE:
            return BAD, f"refused a valid input: {kind}: {e}"
        if not _names_one_of(str(e), (*(case.names or (case.slot,)), *case.fn.joint)):
            return BAD, f"{kind} does not name {case.names or case.slot}: {e}"
        if case.where is not None and case.where not in str(e):
            return BAD, f"{kind} does not give the position {case.where}: {e}"
        return CLEAR_ERROR, f"{kind}: {e}"
    finally:
        stop()
    modified = [k for k in kw if not _identical(kw[k], snap[k])]
    if modified:
        return BAD, f"modified {modified}"
    if case.expect == ERROR:
        return BAD, f"returned {got!r} where an error is due"
    if _has_nan(got):
        return BAD, f"returned NaN: {got!r}"
    problem = _float_type_problem(got)
    if problem:
        return BAD, problem
    if case.oracle is not None:
        try:
            want = case.oracle()
        except Exception as e:
            return BAD, f"the oracle (the call on the plain input) failed: {type(e).__name__}: {e}"
        problem = _same(got, want, case.rtol)
        if problem:
            return BAD, f"wrong value: {problem}"
    if case.mp and case.fn.mp is not None:
        want = _mp_expected(case.fn, case.kwargs())
        problem = _same(got, want, 1e-13, atol=1e-40)
        if problem:
            return BAD, f"wrong value against mpmath: {problem}"
    return OK, repr(got)


# ----------------------------------------------------------------- the tests

RUN = [c for c in ALL_CASES if c.id not in LEFT_OUT]


@pytest.mark.parametrize("case", RUN, ids=[c.id for c in RUN])
def test_hostile_case(case: Case) -> None:
    outcome, detail = classify(case)
    assert outcome != BAD, detail


def test_table_covers_every_public_function_with_unique_ids() -> None:
    ids = [c.id for c in ALL_CASES]
    assert len(ids) == len(set(ids)), [i for i, n in collections.Counter(ids).items() if n > 1]
    covered = {c.fn.func.__name__ for c in ALL_CASES}
    public = {n for n in R.__all__ if n != "GaussianFit"}  # a result type, not a function
    assert covered == public
    assert set(LEFT_OUT) <= set(ids), set(LEFT_OUT) - set(ids)


def _fake(behaviour: str):
    def f(p):
        a = np.asarray(p, dtype=np.float64)
        if behaviour == "nan":
            return np.float64("nan")
        if behaviour == "keyerror":
            raise KeyError("a")
        if behaviour == "warning":
            return np.log(a - a)  # divide by zero
        if behaviour == "modify":
            p[0] = 0.5
            return np.float64(0.0)
        if behaviour == "unnamed":
            raise ValueError("probabilities must be finite")
        if behaviour == "axiserror":
            raise np.exceptions.AxisError(5, 1)
        if behaviour == "wrong":
            return np.float64(1.0)
        if behaviour == "float32":
            return np.float32(0.0)
        return np.float64(0.0)

    return f


@pytest.mark.parametrize(
    ("behaviour", "expect", "oracle", "outcome"),
    [
        ("nan", ANY, None, BAD),
        ("keyerror", ANY, None, BAD),
        ("warning", ANY, None, BAD),
        ("modify", ANY, None, BAD),
        ("unnamed", ERROR, None, BAD),
        ("axiserror", ERROR, None, BAD),
        ("wrong", VALUE, lambda: np.float64(0.0), BAD),
        ("float32", VALUE, None, BAD),
        ("ok", ERROR, None, BAD),  # a value where an error is due
        ("ok", VALUE, lambda: np.float64(0.0), OK),
    ],
)
def test_the_classifier_flags_each_kind_of_bad_behaviour(behaviour, expect, oracle, outcome):
    fn = Fn("fake", _fake(behaviour), lambda: {"p": arr(P)}, (Slot("p", "dist"),))
    case = Case(fn, "p", behaviour, lambda: arr(P), expect, oracle)
    assert classify(case)[0] == outcome


def main(argv: list[str]) -> None:
    cases = ALL_CASES if "--all" in argv else RUN
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    bad: list[tuple[str, str]] = []
    start = time.perf_counter()
    for case in cases:
        outcome, detail = classify(case)
        counts[case.fn.func.__name__][outcome] += 1
        if outcome == BAD:
            bad.append((case.id, detail))
    elapsed = time.perf_counter() - start
    cols = (OK, CLEAR_ERROR, BAD)
    width = max(len(n) for n in counts) + 2
    print(f"{'function':<{width}}" + "".join(f"{c:>13}" for c in cols) + f"{'total':>8}")
    total: collections.Counter = collections.Counter()
    for name in sorted(counts):
        total += counts[name]
        row = counts[name]
        print(
            f"{name:<{width}}" + "".join(f"{row[c]:>13}" for c in cols) + f"{sum(row.values()):>8}"
        )
    print(
        f"{'TOTAL':<{width}}"
        + "".join(f"{total[c]:>13}" for c in cols)
        + f"{sum(total.values()):>8}"
    )
    print(f"{len(cases)} cases in {elapsed:.1f} s; {len(LEFT_OUT)} left out of the test run")
    kinds = collections.Counter(_bad_kind(detail) for _, detail in bad)
    print(
        f"inputs tried {len(cases)}, right values {total[OK]}, clear errors "
        f"{total[CLEAR_ERROR]}, wrong values {kinds['wrong value']}, crashes or unclear "
        f"errors {kinds['crash']}"
    )
    if "--bad" in argv:
        for case_id, detail in bad:
            print(f"BAD {case_id}: {detail}")


def _bad_kind(detail: str) -> str:
    """A BAD case is a wrong value (NaN, wrong number, no error, modified input) or a crash."""
    wrong = ("returned", "wrong value", "modified")
    return "wrong value" if detail.startswith(wrong) else "crash"


if __name__ == "__main__":
    main(sys.argv[1:])
