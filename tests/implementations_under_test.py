"""Implementations for the meta-tests: correct-but-different ones, and broken ones.

Each broken function is small and named for its bug; :data:`BROKEN` maps a check
name (or a clause id, for all of its checks) to the broken implementations that
check must reject. :data:`ACCEPTED` are correct implementations built
differently from the reference: every check they can run must pass them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import numpy as np
import scipy.special
import scipy.stats
from model_implementations_under_test import ACCEPTED_MODELS, BROKEN_MODELS
from preference_implementations_under_test import ACCEPTED_PREFERENCE, BROKEN_PREFERENCE

from klspec.spec import Implementation

BATCHED = frozenset({"batched"})
CONVENTIONS = frozenset({"batched", "base", "axis"})


def _normalised(x: np.ndarray) -> np.ndarray:
    return x / x.sum(axis=-1, keepdims=True)


def conventions(fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
    """Add axis= and base= to a function reducing the last axis, in nats."""

    def with_conventions(*arrays, axis=-1, base=None):
        arrays = [np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1) for a in arrays]
        value = fn(*arrays)
        return value if base is None else value / np.log(base)

    with_conventions.__name__ = fn.__name__
    return with_conventions


# --- correct, built differently from the reference ------------------------------


def textbook_kl(p, q):
    """scipy.special.rel_entr on the normalised inputs, summed, clamped at 0 (KL >= 0 is exact)."""
    return np.maximum(scipy.special.rel_entr(_normalised(p), _normalised(q)).sum(axis=-1), 0.0)


def textbook_kl_unclamped(p, q):
    """The same without the clamp: rounding makes it negative on nearly equal inputs."""
    return scipy.special.rel_entr(_normalised(p), _normalised(q)).sum(axis=-1)


def textbook_entropy(p):
    return scipy.special.entr(_normalised(p)).sum(axis=-1)


def textbook_cross_entropy(p, q):
    return -scipy.special.xlogy(_normalised(p), _normalised(q)).sum(axis=-1)


TEXTBOOK = Implementation(
    "textbook (scipy.special.rel_entr, clamped)",
    kl=conventions(textbook_kl),
    entropy=conventions(textbook_entropy),
    cross_entropy=conventions(textbook_cross_entropy),
    capabilities=CONVENTIONS,
)

SCIPY_STATS_ENTROPY = Implementation(
    "scipy.stats.entropy",
    entropy=lambda p, axis=-1, base=None: scipy.stats.entropy(p, base=base, axis=axis),
    capabilities=CONVENTIONS,
)

ACCEPTED = (TEXTBOOK, SCIPY_STATS_ENTROPY, *ACCEPTED_MODELS, *ACCEPTED_PREFERENCE)

#: Correct within rounding, yet negative on nearly equal inputs (the headline finding).
UNCLAMPED = Implementation(
    "rel_entr sum, unclamped", kl=textbook_kl_unclamped, capabilities=BATCHED
)
SCIPY_STATS_KL = Implementation(
    "scipy.stats.entropy(p, q)",
    kl=lambda p, q: scipy.stats.entropy(p, q, axis=-1),
    capabilities=BATCHED,
)


# --- broken: one bug each ---------------------------------------------------------


def swapped_arguments(p, q):
    return textbook_kl(q, p)


def log2_instead_of_ln(p, q):
    return textbook_kl(p, q) / math.log(2)


def no_zero_guard(p, q):
    P, Q = _normalised(p), _normalised(q)
    return np.sum(P * np.log(P / Q), axis=-1)


def sign_error(p, q):
    return -textbook_kl(p, q)


def in_float32(p, q):
    P, Q = _normalised(p).astype(np.float32), _normalised(q).astype(np.float32)
    return np.maximum(scipy.special.rel_entr(P, Q).sum(axis=-1), np.float32(0))


def keras_clipping(p, q):
    P, Q = np.clip(p, 1e-7, 1.0), np.clip(q, 1e-7, 1.0)
    return np.sum(P * np.log(P / Q), axis=-1)


def epsilon_smoothing(p, q):
    eps = 1e-9
    P, Q = _normalised(p), _normalised(q)
    return np.sum(P * np.log((P + eps) / (Q + eps)), axis=-1)


def flushes_subnormals(p, q):
    """What jax does on the CPU: subnormal inputs are read as 0 (here only q's)."""
    return textbook_kl(p, np.where(q < np.finfo(np.float64).tiny, 0.0, q))


def clips_q_at_1e_7(p, q):
    """q clipped to [1e-7, 1] before the formula (keras clips both; here q alone)."""
    return textbook_kl(p, np.clip(q, 1e-7, 1.0))


def symmetrised(p, q):
    return 0.5 * (textbook_kl(p, q) + textbook_kl(q, p))


def relative_bias_1e_9(p, q):
    return textbook_kl(p, q) * (1 + 1e-9)


def unnormalised_with_1e_9_bias(p, q):
    return scipy.special.rel_entr(p * (1 + 1e-9), q).sum(axis=-1)


def total_variation(p, q):
    return 0.5 * np.abs(_normalised(p) - _normalised(q)).sum(axis=-1)


def kl_returns_cross_entropy(p, q):
    """H(P) + KL(P‖Q): forgets to subtract the entropy."""
    return textbook_cross_entropy(p, q)


def skips_last_outcome(p, q):
    return textbook_kl(p[..., :-1] if p.shape[-1] > 1 else p, q[..., :-1] if q.shape[-1] > 1 else q)


def writes_log_into_q(p, q):
    log_q = np.log(q, out=q)  # saves an allocation, clobbers the caller's q
    P = _normalised(p)
    return np.maximum(np.sum(np.where(P > 0, P * (np.log(np.where(P > 0, P, 1)) - log_q), 0)), 0)


def entropy_writes_log_into_p(p):
    log_p = np.log(p, out=p, where=p > 0)
    return -np.sum(np.where(p > 0, _normalised(np.exp(log_p)) * log_p, 0.0), axis=-1)


def cross_entropy_writes_log_into_q(p, q):
    log_q = np.log(q, out=q)
    return -np.sum(_normalised(p) * log_q, axis=-1)


def torch_mean_reduction(p, q):
    """torch's reduction='mean': the sum over every element divided by their count."""
    return scipy.special.rel_entr(_normalised(p), _normalised(q)).sum() / p.size


def entropy_sign_error(p):
    return -textbook_entropy(p)


def entropy_in_bits(p):
    return textbook_entropy(p) / math.log(2)


def entropy_no_zero_guard(p):
    P = _normalised(p)
    return -np.sum(P * np.log(P), axis=-1)


def entropy_in_float32(p):
    return textbook_entropy(np.asarray(p, dtype=np.float32))


def entropy_skips_last_outcome(p):
    return textbook_entropy(p[..., :-1] if p.shape[-1] > 1 else p)


def cross_entropy_swapped(p, q):
    return textbook_cross_entropy(q, p)


def cross_entropy_clipped(p, q):
    """keras categorical_crossentropy: q clipped to [1e-7, 1 - 1e-7]."""
    return -np.sum(_normalised(p) * np.log(np.clip(q, 1e-7, 1 - 1e-7)), axis=-1)


def cross_entropy_in_float32(p, q):
    return textbook_cross_entropy(np.asarray(p, dtype=np.float32), np.asarray(q, dtype=np.float32))


def first_row_only(fn):
    """Takes a batch, returns the first row's result."""
    return lambda *arrays: fn(*(a.reshape(-1, a.shape[-1])[0] for a in arrays))


def base_ignored(fn):
    return lambda *arrays, base=None: fn(*arrays)


def axis_ignored(fn):
    return lambda *arrays, axis=-1: fn(*arrays)


def no_validation(fn):
    """Accepts anything: every bad input gives some number or a numpy error."""
    return lambda *arrays, axis=-1, base=None: conventions(fn)(*arrays, axis=axis, base=base)


def vague_errors(fn):
    """Validates, but its errors do not say which argument is wrong."""

    def validated(*arrays, axis=-1, base=None):
        try:
            arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
            ok = all(a.ndim and a.size and np.isfinite(a).all() and (a >= 0).all() for a in arrays)
            ok = ok and all(abs(a.sum(axis=axis) - 1).max() < 1e-8 for a in arrays)
            ok = ok and len({a.shape[axis] for a in arrays}) == 1
            ok = ok and (base is None or (math.isfinite(base) and base > 0 and base != 1))
        except Exception:
            ok = False
        if not ok:
            raise ValueError("invalid input")
        return conventions(fn)(*arrays, axis=axis, base=base)

    return validated


def laplace_smoothing(samples):
    """Adds one to every count before normalising."""
    counts = Counter(samples)
    outcomes = list(dict.fromkeys(samples))
    total = len(samples) + len(outcomes)
    return outcomes, np.array([(counts[o] + 1) / total for o in outcomes])


def _kl(fn, capabilities=BATCHED) -> Implementation:
    return Implementation(fn.__name__, kl=fn, capabilities=capabilities)


def _entropy(fn) -> Implementation:
    return Implementation(fn.__name__, entropy=fn, capabilities=BATCHED)


def _cross_entropy(fn) -> Implementation:
    return Implementation(fn.__name__, cross_entropy=fn, capabilities=BATCHED)


def _all_three(name: str, wrap, capabilities) -> Implementation:
    return Implementation(
        name,
        kl=wrap(textbook_kl),
        entropy=wrap(textbook_entropy),
        cross_entropy=wrap(textbook_cross_entropy),
        capabilities=capabilities,
    )


SWAPPED = _kl(swapped_arguments)
LOG2 = _kl(log2_instead_of_ln)
NO_ZERO_GUARD = _kl(no_zero_guard)
SIGN_ERROR = _kl(sign_error)
FLOAT32 = _kl(in_float32)
KERAS = _kl(keras_clipping)
EPSILON = _kl(epsilon_smoothing)
FLUSHES_SUBNORMALS = _kl(flushes_subnormals)
CLIPS_Q = _kl(clips_q_at_1e_7)
SYMMETRISED = _kl(symmetrised)
BIASED = _kl(relative_bias_1e_9)
UNNORMALISED = _kl(unnormalised_with_1e_9_bias)
TOTAL_VARIATION = _kl(total_variation)
RETURNS_CROSS_ENTROPY = _kl(kl_returns_cross_entropy)
SKIPS_LAST = _kl(skips_last_outcome)
WRITES_INPUT = _kl(writes_log_into_q)
TORCH_MEAN = _kl(torch_mean_reduction)
DECOMPOSITION_BROKEN = Implementation(
    "cross_entropy_swapped, with a correct kl and entropy",
    kl=textbook_kl,
    entropy=textbook_entropy,
    cross_entropy=cross_entropy_swapped,
)
RETURNS_CROSS_ENTROPY_ALL = Implementation(
    "kl_returns_cross_entropy, with a correct cross_entropy and entropy",
    kl=kl_returns_cross_entropy,
    entropy=textbook_entropy,
    cross_entropy=textbook_cross_entropy,
)
ENTROPY_SIGN = _entropy(entropy_sign_error)
ENTROPY_BITS = _entropy(entropy_in_bits)
ENTROPY_NO_GUARD = _entropy(entropy_no_zero_guard)
ENTROPY_FLOAT32 = _entropy(entropy_in_float32)
ENTROPY_SKIPS_LAST = _entropy(entropy_skips_last_outcome)
CE_SWAPPED = _cross_entropy(cross_entropy_swapped)
CE_CLIPPED = _cross_entropy(cross_entropy_clipped)
CE_FLOAT32 = _cross_entropy(cross_entropy_in_float32)
FIRST_ROW = _all_three("first_row_only", first_row_only, BATCHED)
BASE_IGNORED = _all_three("base_ignored", base_ignored, frozenset({"base"}))
AXIS_IGNORED = _all_three(
    "axis_ignored", lambda fn: axis_ignored(fn), frozenset({"batched", "axis"})
)
NO_VALIDATION = _all_three("no_validation", no_validation, CONVENTIONS | {"validates"})
VAGUE_ERRORS = _all_three("vague_errors", vague_errors, CONVENTIONS | {"validates"})
LAPLACE = Implementation("laplace_smoothing", empirical=laplace_smoothing)

#: check name or clause id -> implementations it must reject.
BROKEN: dict[str, tuple[Implementation, ...]] = {
    "entropy.definition": (ENTROPY_FLOAT32, ENTROPY_BITS, ENTROPY_SIGN),
    "cross_entropy.definition": (CE_SWAPPED, CE_FLOAT32),
    "kl.definition[pairs]": (FLOAT32, BIASED, UNNORMALISED, SWAPPED, LOG2, TOTAL_VARIATION),
    "kl.definition[near_equal_pairs]": (FLOAT32, UNNORMALISED),
    "units.base": (BASE_IGNORED,),
    "entropy.special.zero": (ENTROPY_NO_GUARD,),
    "entropy.special.one_hot": (ENTROPY_NO_GUARD,),
    "entropy.special.uniform": (ENTROPY_BITS,),
    "cross_entropy.special.q_zero": (CE_CLIPPED,),
    "kl.special.p_zero": (NO_ZERO_GUARD,),
    "kl.special.q_zero": (KERAS, EPSILON),
    "kl.special.both_zero": (NO_ZERO_GUARD,),
    "kl.special.subnormal_q": (FLUSHES_SUBNORMALS, NO_ZERO_GUARD),
    "kl.special.tiny_q": (CLIPS_Q, KERAS, EPSILON),
    "example.weather.forward": (SWAPPED, LOG2),
    "example.weather.reverse": (SWAPPED, LOG2),
    "example.coin_flips": (LAPLACE,),
    "kl.nonnegative": (SIGN_ERROR,),
    "kl.nonnegative[near_equal_pairs]": (SIGN_ERROR, UNCLAMPED),
    "kl.accuracy": (UNCLAMPED, FLOAT32, BIASED),
    "kl.zero_iff_equal[p == q]": (RETURNS_CROSS_ENTROPY,),
    "kl.zero_iff_equal[p != q]": (SIGN_ERROR,),
    "kl.asymmetric": (SYMMETRISED,),
    "kl.not_a_metric": (TOTAL_VARIATION,),
    "kl.decomposition": (DECOMPOSITION_BROKEN, RETURNS_CROSS_ENTROPY_ALL),
    "entropy.bounds": (ENTROPY_SIGN, ENTROPY_BITS),
    "entropy.permutation_invariant": (ENTROPY_SKIPS_LAST,),
    "kl.permutation_invariant": (SKIPS_LAST,),
    "kl.additive_independent": (TOTAL_VARIATION, EPSILON, UNNORMALISED),
    "kl.chain_rule": (TOTAL_VARIATION,),
    "kl.data_processing": (SIGN_ERROR,),
    "kl.jointly_convex": (SIGN_ERROR,),
    "kl.pinsker": (SIGN_ERROR,),
    "batching.rowwise": (FIRST_ROW,),
    "batching.rowwise[kl]": (FIRST_ROW, TORCH_MEAN),
    "batching.axis": (AXIS_IGNORED,),
    "inputs.unmodified[kl]": (WRITES_INPUT,),
    "inputs.unmodified[entropy]": (_entropy(entropy_writes_log_into_p),),
    "inputs.unmodified[cross_entropy]": (_cross_entropy(cross_entropy_writes_log_into_q),),
    "domain.validation": (NO_VALIDATION, VAGUE_ERRORS),
    **BROKEN_MODELS,
    **BROKEN_PREFERENCE,
}


def broken_for(check) -> tuple[Implementation, ...]:
    """The broken implementations a check must reject: listed under its name, else its clause."""
    return BROKEN.get(check.name) or BROKEN.get(check.clause_id, ())
