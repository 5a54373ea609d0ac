"""Implementations for the meta-tests of the model and language-model clauses.

Like implementations_under_test.py (which merges these tables into its own):
:data:`BROKEN_MODELS` maps a check name or clause id to implementations with one
bug each that the check must reject; :data:`ACCEPTED_MODELS` are correct
implementations built differently from the reference (textbook float64 code
with the clamps a careful engineer adds), which every required check must pass.
"""

from __future__ import annotations

import numpy as np
import scipy.integrate
import scipy.special
import scipy.stats

from klspec import reference
from klspec.spec import Implementation

# --- per-token KL from logits ------------------------------------------------------------


def _log_softmax(x, dtype=np.float64):
    x = np.asarray(x, dtype=dtype)
    return x - scipy.special.logsumexp(x, axis=-1, keepdims=True)


def textbook_token_kl(logits_p, logits_q):
    """float64 log_softmax, Σ P (log P − log Q) over P's unmasked tokens, clamped at 0."""
    la, lb = _log_softmax(logits_p), _log_softmax(logits_q)
    with np.errstate(invalid="ignore"):
        terms = np.where(np.isneginf(la), 0.0, np.exp(la) * (la - lb))
    return np.maximum(np.sum(terms, axis=-1), 0.0)


def token_kl_unmasked(logits_p, logits_q):
    """torch's kl_div(log_softmax(b), log_softmax(a), log_target=True): 0·(−inf) = NaN at a
    −inf logit of P."""
    la, lb = _log_softmax(logits_p), _log_softmax(logits_q)
    with np.errstate(invalid="ignore"):
        return np.maximum(np.sum(np.exp(la) * (la - lb), axis=-1), 0.0)


def token_kl_masked_fill(logits_p, logits_q):
    """Every term at a −inf logit of either row set to 0: finite where Q masks what P holds."""
    la, lb = _log_softmax(logits_p), _log_softmax(logits_q)
    masked = np.isneginf(logits_p) | np.isneginf(logits_q)
    with np.errstate(invalid="ignore"):
        return np.maximum(np.sum(np.where(masked, 0.0, np.exp(la) * (la - lb)), axis=-1), 0.0)


def token_kl_unclamped(logits_p, logits_q):
    la, lb = _log_softmax(logits_p), _log_softmax(logits_q)
    return np.sum(np.exp(la) * (la - lb), axis=-1)


def token_kl_float32(logits_p, logits_q):
    """What torch does with float32 logits: log_softmax and kl_div in float32."""
    la, lb = _log_softmax(logits_p, np.float32), _log_softmax(logits_q, np.float32)
    return np.sum(np.exp(la) * (la - lb), axis=-1).astype(np.float64)


def token_kl_swapped(logits_p, logits_q):
    return textbook_token_kl(logits_q, logits_p)


def token_kl_mean_over_vocabulary(logits_p, logits_q):
    return textbook_token_kl(logits_p, logits_q) / np.shape(logits_p)[-1]


def token_kl_naive_softmax(logits_p, logits_q):
    """softmax as exp(x)/Σexp(x) without subtracting the max: overflows for large logits."""
    with np.errstate(all="ignore"):
        P = np.exp(logits_p) / np.exp(logits_p).sum(axis=-1, keepdims=True)
        Q = np.exp(logits_q) / np.exp(logits_q).sum(axis=-1, keepdims=True)
        return np.maximum(np.sum(P * np.log(P / Q), axis=-1), 0.0)


def token_kl_floored(logits_p, logits_q):
    """A 'safe' floor: never returns exactly 0."""
    return np.maximum(textbook_token_kl(logits_p, logits_q), 1e-30)


# --- sequences -----------------------------------------------------------------------------


def textbook_sequence_log_prob(token_logprobs, mask=None):
    x = np.asarray(token_logprobs, dtype=np.float64)
    return np.sum(np.where(mask, x, 0.0) if mask is not None else x, axis=-1)


def textbook_sequence_log_ratio(logp, ref_logp, mask=None):
    d = np.asarray(logp, dtype=np.float64) - np.asarray(ref_logp, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.sum(np.where(mask, d, 0.0) if mask is not None else d, axis=-1)


def sequence_multiplies_by_mask(token_logprobs, mask=None):
    """(logp * mask).sum(): 0·(−inf) at a padded position is NaN."""
    with np.errstate(invalid="ignore"):
        return np.sum(np.asarray(token_logprobs) * mask, axis=-1)


def sequence_ignores_mask(token_logprobs, mask=None):
    return np.sum(np.nan_to_num(np.asarray(token_logprobs), neginf=-1e300), axis=-1)


def sequence_in_float32(token_logprobs, mask=None):
    x = np.where(mask, np.asarray(token_logprobs), 0.0).astype(np.float32)
    return np.sum(x, axis=-1).astype(np.float64)


def sequence_ratio_swapped(logp, ref_logp, mask=None):
    return textbook_sequence_log_ratio(ref_logp, logp, mask)


def sequence_ratio_multiplies_by_mask(logp, ref_logp, mask=None):
    with np.errstate(invalid="ignore"):
        return np.sum((np.asarray(logp) - np.asarray(ref_logp)) * mask, axis=-1)


# --- the sampled-token estimators ----------------------------------------------------------


def textbook_k1(logp, ref_logp):
    return np.asarray(logp, dtype=np.float64) - ref_logp


def textbook_k2(logp, ref_logp):
    return 0.5 * (np.asarray(ref_logp, dtype=np.float64) - logp) ** 2


def textbook_k3(logp, ref_logp):
    """expm1(d) − d, clamped at 0: accurate to rounding, never negative."""
    d = np.asarray(ref_logp, dtype=np.float64) - logp
    with np.errstate(over="ignore"):
        return np.maximum(np.expm1(d) - d, 0.0)


def k3_literal(logp, ref_logp):
    """(r − 1) − log r in float64: cancels to negative values when r is within 1e-8 of 1."""
    d = np.asarray(ref_logp, dtype=np.float64) - logp
    with np.errstate(over="ignore"):
        return (np.exp(d) - 1.0) - d


def k3_exp_minus_d_minus_1(logp, ref_logp):
    """exp(d) − d − 1 (TRL GRPO's order) in float64: negative where e^d rounds down to a
    binade edge, e.g. log π = −1 with log π_ref one ulp above."""
    d = np.asarray(ref_logp, dtype=np.float64) - logp
    with np.errstate(over="ignore"):
        return np.exp(d) - d - 1.0


def k3_literal_float32(logp, ref_logp):
    """(r − 1) − log r in float32: cancels for log-ratios below 1e-4 or so."""
    d = np.asarray(ref_logp, dtype=np.float32) - np.asarray(logp, dtype=np.float32)
    with np.errstate(over="ignore"):
        return ((np.exp(d) - np.float32(1)) - d).astype(np.float64)


def k1_sign_flipped(logp, ref_logp):
    return -textbook_k1(logp, ref_logp)


def k1_clamped(logp, ref_logp):
    """max(k1, 0): 'a KL can't be negative' applied per sample."""
    return np.maximum(textbook_k1(logp, ref_logp), 0.0)


def k1_linearised(logp, ref_logp):
    """π − π_ref instead of log π − log π_ref (first order only)."""
    return np.exp(logp) - np.exp(ref_logp)


def k2_missing_half(logp, ref_logp):
    return 2.0 * textbook_k2(logp, ref_logp)


def k2_sign_flipped(logp, ref_logp):
    return -textbook_k2(logp, ref_logp)


def k2_in_float32(logp, ref_logp):
    d = np.float32(1) * (np.asarray(ref_logp, np.float32) - np.asarray(logp, np.float32))
    return (np.float32(0.5) * d * d).astype(np.float64)


def k3_swapped(logp, ref_logp):
    """Estimates KL(π_ref‖π) instead: r = π/π_ref."""
    return textbook_k3(ref_logp, logp)


def k3_in_float32(logp, ref_logp):
    d = np.asarray(ref_logp, np.float32) - np.asarray(logp, np.float32)
    with np.errstate(over="ignore"):
        return np.maximum(np.expm1(d) - d, 0).astype(np.float64)


def k3_saturating_clamp(logp, ref_logp):
    """The log-ratio clamped to [−10, 10] before the estimator (a common 'stability' fix)."""
    d = np.clip(np.asarray(ref_logp, dtype=np.float64) - logp, -10.0, 10.0)
    return np.maximum(np.expm1(d) - d, 0.0)


def token_kl_in_place(logits_p, logits_q):
    """Normalises the caller's logits in place to save memory."""
    logits_p -= scipy.special.logsumexp(logits_p, axis=-1, keepdims=True)
    return textbook_token_kl(logits_p, logits_q)


def k_in_place(estimator):
    """Forms the log-ratio in the caller's ref_logp (ref_logp -= logp)."""

    def in_place(logp, ref_logp):
        ref_logp -= logp
        return estimator(np.zeros_like(ref_logp), ref_logp)

    in_place.__name__ = f"{estimator.__name__}_in_place"
    return in_place


def _one(name: str, **functions) -> Implementation:
    return Implementation(name, **functions)


# --- noise models ---------------------------------------------------------------------------


def textbook_gaussian_nll(y, f, sigma):
    """scipy.stats.norm.logpdf, negated and summed."""
    y, f = np.broadcast_arrays(np.asarray(y, dtype=np.float64), np.asarray(f, dtype=np.float64))
    return -np.sum(scipy.stats.norm.logpdf(y, f, np.broadcast_to(sigma, y.shape)))


def textbook_mse(y, f):
    return np.mean((np.asarray(y, dtype=np.float64) - f) ** 2)


def textbook_laplace_nll(y, f, b):
    r = np.abs(np.asarray(y, dtype=np.float64) - f)
    b = np.broadcast_to(b, r.shape)
    return np.sum(r / b + np.log(2 * b))


def textbook_mae(y, f):
    return np.mean(np.abs(np.asarray(y, dtype=np.float64) - f))


def textbook_bernoulli_nll(y, p=None, *, logits=None):
    """xlogy/xlog1py from probabilities; max(z, 0) − y z + log1p(e^−|z|) from logits."""
    y = np.asarray(y, dtype=np.float64)
    if logits is not None:
        z = np.asarray(logits, dtype=np.float64)
        return np.sum(np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z))))
    p = np.asarray(p, dtype=np.float64)
    return -np.sum(scipy.special.xlogy(y, p) + scipy.special.xlog1py(1 - y, -p))


def textbook_poisson_nll(y, rate):
    y, rate = np.asarray(y, dtype=np.float64), np.asarray(rate, dtype=np.float64)
    return np.sum(rate - scipy.special.xlogy(y, rate) + scipy.special.gammaln(y + 1))


def gaussian_nll_float32(y, f, sigma):
    y, f, s = (np.asarray(a, dtype=np.float32) for a in (y, f, sigma))
    z = (y - f) / s
    return float(np.sum(0.5 * z * z + np.log(s) + np.float32(0.5 * np.log(2 * np.pi))))


def gaussian_nll_without_constant(y, f, sigma):
    """Drops ½ log 2π per observation (fine for argmin, not for the likelihood)."""
    return textbook_gaussian_nll(y, f, sigma) - 0.5 * np.log(2 * np.pi) * np.size(y)


def gaussian_nll_log_variance_twice(y, f, sigma):
    """log(2πσ²) where ½ log(2πσ²) belongs: the variance term doubled."""
    n = np.broadcast(y, f).size
    s = np.broadcast_to(sigma, np.broadcast(y, f).shape)
    return textbook_gaussian_nll(y, f, sigma) + np.sum(np.log(s)) + 0.0 * n


def gaussian_nll_of_absolute_residuals(y, f, sigma):
    """A Laplace-shaped loss under the Gaussian's name."""
    r = np.abs(np.asarray(y, dtype=np.float64) - f)
    s = np.broadcast_to(sigma, r.shape)
    return np.sum(r / s + 0.5 * np.log(2 * np.pi * s * s))


def mse_root(y, f):
    """RMSE returned as MSE."""
    return np.sqrt(textbook_mse(y, f))


def mse_summed(y, f):
    return np.sum((np.asarray(y, dtype=np.float64) - f) ** 2)


def laplace_nll_with_2b_outside_log(y, f, b):
    r = np.abs(np.asarray(y, dtype=np.float64) - f)
    b = np.broadcast_to(b, r.shape)
    return np.sum(r / b + 2 * np.log(b))


def laplace_nll_of_squares(y, f, b):
    r = np.asarray(y, dtype=np.float64) - f
    b = np.broadcast_to(b, r.shape)
    return np.sum(r * r / b + np.log(2 * b))


def mae_median_offset(y, f):
    """|y − f| averaged after subtracting the median residual (a robust-scale slip)."""
    r = np.asarray(y, dtype=np.float64) - f
    return np.mean(np.abs(r - np.median(r)))


def bernoulli_log_one_minus_p(y, p=None, *, logits=None):
    """log(1 − p) instead of log1p(−p): loses everything for p below 1e-16."""
    if logits is not None:
        return textbook_bernoulli_nll(y, logits=logits)
    y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return -np.sum(scipy.special.xlogy(y, p) + scipy.special.xlogy(1 - y, 1 - p))


def bernoulli_clipped(y, p=None, *, logits=None):
    """keras: p clipped to [1e-7, 1 − 1e-7]."""
    if logits is not None:
        return textbook_bernoulli_nll(y, logits=logits)
    return textbook_bernoulli_nll(y, np.clip(p, 1e-7, 1 - 1e-7))


def bernoulli_naive_softplus(y, p=None, *, logits=None):
    """log(1 + e^z) − y z: overflows to inf for z > 709."""
    if logits is None:
        return textbook_bernoulli_nll(y, p)
    z = np.asarray(logits, dtype=np.float64)
    with np.errstate(over="ignore"):
        return np.sum(np.log1p(np.exp(z)) - np.asarray(y) * z)


def bernoulli_logits_float32(y, p=None, *, logits=None):
    if logits is None:
        return textbook_bernoulli_nll(y, p)
    z = np.asarray(logits, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32)
    with np.errstate(over="ignore"):
        return float(np.sum(np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))))


def poisson_without_factorial(y, rate):
    """Drops log y! (fine for the gradient in the rate, not for the likelihood)."""
    y, rate = np.asarray(y, dtype=np.float64), np.asarray(rate, dtype=np.float64)
    return np.sum(rate - scipy.special.xlogy(y, rate))


def poisson_stirling(y, rate):
    """log y! ≈ y log y − y (Stirling without its correction)."""
    y, rate = np.asarray(y, dtype=np.float64), np.asarray(rate, dtype=np.float64)
    return np.sum(rate - scipy.special.xlogy(y, rate) + scipy.special.xlogy(y, y) - y)


# --- maximum likelihood ---------------------------------------------------------------------


def _counts(samples, support):
    index = {s: i for i, s in enumerate(support)}
    return np.bincount([index[s] for s in samples], minlength=len(support)).astype(float)


def textbook_log_likelihood(samples, probs, support):
    c = _counts(samples, support)
    q = np.asarray(probs, dtype=np.float64)
    return scipy.special.xlogy(c, q).sum(axis=-1) / c.sum()


def textbook_categorical_mle(samples, support=None):
    support = list(dict.fromkeys(samples)) if support is None else list(support)
    c = _counts(samples, support)
    return support, c / c.sum()


def textbook_bernoulli_mle(y):
    return np.mean(np.asarray(y, dtype=np.float64))


def log_likelihood_total(samples, probs, support):
    """The total log-likelihood where the average is meant."""
    return textbook_log_likelihood(samples, probs, support) * len(samples)


def log_likelihood_sign_flipped(samples, probs, support):
    return -textbook_log_likelihood(samples, probs, support)


def categorical_mle_laplace(samples, support=None):
    support, _ = textbook_categorical_mle(samples, support)
    c = _counts(samples, support) + 1
    return support, c / c.sum()


def bernoulli_mle_laplace(y):
    y = np.asarray(y, dtype=np.float64)
    return (y.sum() + 1) / (y.size + 2)


# --- RLHF -----------------------------------------------------------------------------------


def textbook_rlhf_policy(ref_probs, rewards, beta):
    with np.errstate(divide="ignore"):
        return scipy.special.softmax(np.log(ref_probs) + np.asarray(rewards) / beta, axis=-1)


def textbook_rlhf_value(ref_probs, rewards, beta):
    with np.errstate(divide="ignore"):
        return beta * scipy.special.logsumexp(np.log(ref_probs) + np.asarray(rewards) / beta)


def textbook_rlhf_objective(policy, ref_probs, rewards, beta):
    kl = max(scipy.special.rel_entr(policy, ref_probs).sum(), 0.0)
    return float(np.sum(np.asarray(policy) * rewards) - beta * kl)


def rlhf_policy_naive_exp(ref_probs, rewards, beta):
    """π_ref e^{r/β} / Σ: overflows for r/β > 709."""
    with np.errstate(over="ignore", invalid="ignore"):
        w = ref_probs * np.exp(np.asarray(rewards) / beta)
        return w / w.sum()


def rlhf_policy_without_reference(ref_probs, rewards, beta):
    """softmax(r/β): forgets π_ref."""
    return scipy.special.softmax(np.asarray(rewards) / beta)


def rlhf_policy_smoothed_reference(ref_probs, rewards, beta):
    """π_ref + 1e-12 'for stability': puts mass where π_ref has none."""
    return textbook_rlhf_policy(np.asarray(ref_probs) + 1e-12, rewards, beta)


def rlhf_policy_beta_multiplies(ref_probs, rewards, beta):
    """e^{β r} where e^{r/β} belongs: the limits in β are reversed."""
    with np.errstate(divide="ignore"):
        return scipy.special.softmax(np.log(ref_probs) + beta * np.asarray(rewards), axis=-1)


def rlhf_value_without_beta(ref_probs, rewards, beta):
    return textbook_rlhf_value(ref_probs, rewards, beta) / beta


def rlhf_objective_kl_added(policy, ref_probs, rewards, beta):
    """E_π[r] + β KL: the penalty's sign flipped."""
    kl = max(scipy.special.rel_entr(policy, ref_probs).sum(), 0.0)
    return float(np.sum(np.asarray(policy) * rewards) + beta * kl)


# --- Gaussian fits ----------------------------------------------------------------------


def _moment_fit(weights, means, sds, forget_spread=False):
    w, mu, s = (np.asarray(a, dtype=np.float64) for a in (weights, means, sds))
    m = np.sum(w * mu)
    var = np.sum(w * s**2) + (0.0 if forget_spread else np.sum(w * (mu - m) ** 2))
    return float(m), float(np.sqrt(var))


def _with_kl(weights, means, sds, mean, sd, direction):
    kl = reference.mixture_gaussian_kl(weights, means, sds, mean, sd, direction=direction)
    return reference.GaussianFit(mean, sd, kl)


def fit_forgets_spread_of_means(weights, means, sds, *, direction, start=None):
    """The forward fit's variance without the spread of the means: Σ w σ² only."""
    if direction == "reverse":
        return reference.fit_gaussian_to_mixture(
            weights, means, sds, direction=direction, start=start
        )
    return _with_kl(weights, means, sds, *_moment_fit(weights, means, sds, True), direction)


def fit_reverse_is_forward(weights, means, sds, *, direction, start=None):
    """Moment matching for both directions (reverse KL treated like forward)."""
    return _with_kl(weights, means, sds, *_moment_fit(weights, means, sds), direction)


def fit_ignores_start(weights, means, sds, *, direction, start=None):
    return reference.fit_gaussian_to_mixture(weights, means, sds, direction=direction)


def fit_returns_start(weights, means, sds, *, direction, start=None):
    """No optimisation for the reverse direction: the start (or the moments) comes back."""
    if direction == "forward":
        return reference.fit_gaussian_to_mixture(weights, means, sds, direction=direction)
    mean, sd = start if start is not None else _moment_fit(weights, means, sds)
    mean, sd = mean + 0.5 * sd, sd * 1.5  # a start off the optimum, as a user would give
    return _with_kl(weights, means, sds, mean, sd, direction)


def _log_mixture(x, w, mu, s):
    return scipy.special.logsumexp(np.log(w) + scipy.stats.norm.logpdf(x[:, None], mu, s), axis=-1)


def mixture_kl_gauss_hermite(weights, means, sds, mean, sd, *, direction):
    """Gauss–Hermite with 20 nodes: blind to narrow components and to kinks of log p."""
    w, mu, s = (np.asarray(a, dtype=np.float64) for a in (weights, means, sds))
    z, h = np.polynomial.hermite_e.hermegauss(20)
    h = h / h.sum()
    if direction == "reverse":
        x = mean + sd * z
        return float(np.sum(h * (scipy.stats.norm.logpdf(x, mean, sd) - _log_mixture(x, w, mu, s))))
    total = 0.0
    for wk, mk, sk in zip(w, mu, s, strict=True):
        x = mk + sk * z
        total += wk * np.sum(h * (_log_mixture(x, w, mu, s) - scipy.stats.norm.logpdf(x, mean, sd)))
    return float(total)


def mixture_kl_on_a_grid(weights, means, sds, mean, sd, *, direction):
    """Trapezoid on a fixed grid over [−40, 40]: Q's mass escapes when Q is wide or far."""
    w, mu, s = (np.asarray(a, dtype=np.float64) for a in (weights, means, sds))
    x = np.linspace(-40.0, 40.0, 4001)
    lp, lq = _log_mixture(x, w, mu, s), scipy.stats.norm.logpdf(x, mean, sd)
    f = np.exp(lq) * (lq - lp) if direction == "reverse" else np.exp(lp) * (lp - lq)
    return float(scipy.integrate.trapezoid(f, x))  # numpy's is trapz before 2.0


# --- the tables ----------------------------------------------------------------------

TEXTBOOK_LM = Implementation(
    "textbook language-model quantities (float64, clamped)",
    token_kl=textbook_token_kl,
    sequence_log_prob=textbook_sequence_log_prob,
    sequence_log_ratio=textbook_sequence_log_ratio,
    k1=textbook_k1,
    k2=textbook_k2,
    k3=textbook_k3,
    kl=lambda p, q: np.maximum(scipy.special.rel_entr(p / p.sum(), q / q.sum()).sum(axis=-1), 0.0),
)

TEXTBOOK_MODELS = Implementation(
    "textbook models (numpy and scipy, float64)",
    gaussian_nll=textbook_gaussian_nll,
    mse=textbook_mse,
    laplace_nll=textbook_laplace_nll,
    mae=textbook_mae,
    bernoulli_nll=textbook_bernoulli_nll,
    poisson_nll=textbook_poisson_nll,
    categorical_mle=textbook_categorical_mle,
    categorical_log_likelihood=textbook_log_likelihood,
    bernoulli_mle=textbook_bernoulli_mle,
    rlhf_optimal_policy=textbook_rlhf_policy,
    rlhf_optimal_value=textbook_rlhf_value,
    rlhf_objective=textbook_rlhf_objective,
    kl=TEXTBOOK_LM.kl,
    entropy=lambda p: scipy.special.entr(p / p.sum()).sum(axis=-1),
)

ACCEPTED_MODELS = (TEXTBOOK_LM, TEXTBOOK_MODELS)

TK_UNCLAMPED = _one("token_kl_unclamped", token_kl=token_kl_unclamped)
TK_FLOAT32 = _one("token_kl_float32", token_kl=token_kl_float32)
TK_SWAPPED = _one("token_kl_swapped", token_kl=token_kl_swapped)
TK_MEAN = _one("token_kl_mean_over_vocabulary", token_kl=token_kl_mean_over_vocabulary)
TK_NAIVE = _one("token_kl_naive_softmax", token_kl=token_kl_naive_softmax)
TK_FLOORED = _one("token_kl_floored", token_kl=token_kl_floored)
TK_UNMASKED = _one("token_kl_unmasked", token_kl=token_kl_unmasked)
TK_MASK_FILL = _one("token_kl_masked_fill", token_kl=token_kl_masked_fill)
CHAIN_BROKEN = Implementation(
    "token_kl_swapped, with a correct kl",
    token_kl=token_kl_swapped,
    kl=TEXTBOOK_LM.kl,
)
CHAIN_MEAN = Implementation(
    "token_kl_mean_over_vocabulary, with a correct kl",
    token_kl=token_kl_mean_over_vocabulary,
    kl=TEXTBOOK_LM.kl,
)
SEQ_TIMES_MASK = _one("sequence_multiplies_by_mask", sequence_log_prob=sequence_multiplies_by_mask)
SEQ_NO_MASK = _one("sequence_ignores_mask", sequence_log_prob=sequence_ignores_mask)
SEQ_FLOAT32 = _one("sequence_in_float32", sequence_log_prob=sequence_in_float32)
RATIO_SWAPPED = _one("sequence_ratio_swapped", sequence_log_ratio=sequence_ratio_swapped)
RATIO_TIMES_MASK = _one(
    "sequence_ratio_multiplies_by_mask", sequence_log_ratio=sequence_ratio_multiplies_by_mask
)
K3_LITERAL = _one("k3_literal", k3=k3_literal)
K3_LITERAL_FLOAT32 = _one("k3_literal_float32", k3=k3_literal_float32)
K3_LITERAL_A = _one("k3_exp_minus_d_minus_1", k3=k3_exp_minus_d_minus_1)
K1_FLIPPED = _one("k1_sign_flipped", k1=k1_sign_flipped)
K1_CLAMPED = _one("k1_clamped", k1=k1_clamped)
K1_LINEARISED = _one("k1_linearised", k1=k1_linearised)
K2_NO_HALF = _one("k2_missing_half", k2=k2_missing_half)
K2_FLIPPED = _one("k2_sign_flipped", k2=k2_sign_flipped)
K2_FLOAT32 = _one("k2_in_float32", k2=k2_in_float32)
K3_SWAPPED = _one("k3_swapped", k3=k3_swapped)
K3_FLOAT32 = _one("k3_in_float32", k3=k3_in_float32)
K3_CLAMP = _one("k3_saturating_clamp", k3=k3_saturating_clamp)
#: Clamped estimators that declare where they are exact: the clamp biases their mean outside.
CLAMPED = {
    "k1": Implementation(
        "k1 clamped to [-10, 10]",
        k1=lambda logp, ref_logp: np.clip(textbook_k1(logp, ref_logp), -10.0, 10.0),
        log_ratio_range=(-10.0, 10.0),
    ),
    "k2": Implementation(
        "k2 clamped to <= 10",
        k2=lambda logp, ref_logp: np.minimum(textbook_k2(logp, ref_logp), 10.0),
        log_ratio_range=(-4.47, 4.47),
    ),
    "k3": K3_CLAMP.replace(
        name="k3 with log r clamped to [-10, 10]", log_ratio_range=(-10.0, 10.0)
    ),
}

TK_IN_PLACE = _one("token_kl_in_place", token_kl=token_kl_in_place)
K_IN_PLACE = {
    k: _one(f"{k}_in_place", **{k: k_in_place(fn)})
    for k, fn in (("k1", textbook_k1), ("k2", textbook_k2), ("k3", textbook_k3))
}

BROKEN_MODELS: dict[str, tuple[Implementation, ...]] = {
    "inputs.unmodified[token_kl]": (TK_IN_PLACE,),
    **{f"inputs.unmodified[{k}]": (impl,) for k, impl in K_IN_PLACE.items()},
    "token_kl.definition[logits]": (TK_FLOAT32, TK_SWAPPED, TK_MEAN),
    "token_kl.definition[near_equal_logits]": (TK_FLOAT32,),
    "token_kl.nonnegative[near_equal_logits]": (TK_UNCLAMPED, TK_FLOAT32),
    "token_kl.nonnegative[equal_logits]": (TK_FLOORED,),
    "token_kl.nonnegative[logits]": (TK_FLOORED,),
    "token_kl.shift_invariant": (TK_NAIVE,),
    "token_kl.nonnegative[ulp_apart_logits]": (TK_UNCLAMPED,),
    "token_kl.masked": (TK_UNMASKED, TK_MASK_FILL),
    **{f"estimator.clamp_bias[{k}]": (impl,) for k, impl in CLAMPED.items()},
    "sequence.log_ratio": (RATIO_SWAPPED, RATIO_TIMES_MASK),
    "sequence.log_prob": (SEQ_TIMES_MASK, SEQ_NO_MASK, SEQ_FLOAT32),
    "sequence.kl_chain_rule": (CHAIN_BROKEN, CHAIN_MEAN),
    "estimator.definitions[k1]": (K1_FLIPPED, K1_CLAMPED),
    "estimator.definitions[k2]": (K2_NO_HALF, K2_FLOAT32, K2_FLIPPED),
    "estimator.definitions[k3]": (K3_SWAPPED, K3_FLOAT32, K3_CLAMP),
    "estimator.unbiased[k1]": (K1_FLIPPED, K1_CLAMPED),
    "estimator.unbiased[k3]": (K3_SWAPPED,),
    # The killers (log π a few u below 0, or at −½ and −1, log π_ref a few ulps away) are
    # tried first on every run: the literal forms fail whatever the seed.
    "estimator.k3_nonnegative[sampled]": (K3_LITERAL, K3_LITERAL_A),
    "estimator.k3_nonnegative[tokens]": (K3_LITERAL, K3_LITERAL_A, K3_LITERAL_FLOAT32),
    "estimator.k2_bias[tokens]": (K2_NO_HALF, K2_FLIPPED),
    "estimator.k2_bias[sampled]": (K2_FLIPPED,),
    "estimator.k1_sign": (K1_CLAMPED,),
    "estimator.gradients[k1]": (K1_LINEARISED,),
    "estimator.gradients[k2]": (K2_NO_HALF,),
    "estimator.gradients[k3]": (K3_SWAPPED,),
}


def _with(name: str, base: Implementation = None, **functions) -> Implementation:
    """The textbook models with one function replaced by a broken one."""

    return (base or TEXTBOOK_MODELS).replace(name=name, **functions)


def _fits(name: str, fit=None, kl=None) -> Implementation:
    return Implementation(
        name,
        fit_gaussian_to_mixture=fit or reference.fit_gaussian_to_mixture,
        mixture_gaussian_kl=kl or reference.mixture_gaussian_kl,
        gaussian_nll=reference.gaussian_nll,
    )


NLL_FLOAT32 = _with("gaussian_nll_float32", gaussian_nll=gaussian_nll_float32)
NLL_NO_CONSTANT = _with("gaussian_nll_without_constant", gaussian_nll=gaussian_nll_without_constant)
NLL_LOG_VAR_TWICE = _with(
    "gaussian_nll_log_variance_twice", gaussian_nll=gaussian_nll_log_variance_twice
)
NLL_ABSOLUTE = _with(
    "gaussian_nll_of_absolute_residuals", gaussian_nll=gaussian_nll_of_absolute_residuals
)
MSE_ROOT = _with("mse_root", mse=mse_root)
MSE_SUMMED = _with("mse_summed", mse=mse_summed)
LAPLACE_2B = _with("laplace_nll_with_2b_outside_log", laplace_nll=laplace_nll_with_2b_outside_log)
LAPLACE_SQUARES = _with("laplace_nll_of_squares", laplace_nll=laplace_nll_of_squares)
MAE_OFFSET = _with("mae_median_offset", mae=mae_median_offset)
BERN_LOG = _with("bernoulli_log_one_minus_p", bernoulli_nll=bernoulli_log_one_minus_p)
BERN_CLIPPED = _with("bernoulli_clipped", bernoulli_nll=bernoulli_clipped)
BERN_SOFTPLUS = _with("bernoulli_naive_softplus", bernoulli_nll=bernoulli_naive_softplus)
BERN_FLOAT32 = _with("bernoulli_logits_float32", bernoulli_nll=bernoulli_logits_float32)
POISSON_NO_FACTORIAL = _with("poisson_without_factorial", poisson_nll=poisson_without_factorial)
POISSON_STIRLING = _with("poisson_stirling", poisson_nll=poisson_stirling)
LL_TOTAL = _with("log_likelihood_total", categorical_log_likelihood=log_likelihood_total)
LL_FLIPPED = _with(
    "log_likelihood_sign_flipped", categorical_log_likelihood=log_likelihood_sign_flipped
)
MLE_LAPLACE = _with("categorical_mle_laplace", categorical_mle=categorical_mle_laplace)
BERN_MLE_LAPLACE = _with("bernoulli_mle_laplace", bernoulli_mle=bernoulli_mle_laplace)
RLHF_NAIVE = _with("rlhf_policy_naive_exp", rlhf_optimal_policy=rlhf_policy_naive_exp)
RLHF_NO_REF = _with(
    "rlhf_policy_without_reference", rlhf_optimal_policy=rlhf_policy_without_reference
)
RLHF_SMOOTHED = _with(
    "rlhf_policy_smoothed_reference", rlhf_optimal_policy=rlhf_policy_smoothed_reference
)
RLHF_BETA = _with("rlhf_policy_beta_multiplies", rlhf_optimal_policy=rlhf_policy_beta_multiplies)
RLHF_VALUE = _with("rlhf_value_without_beta", rlhf_optimal_value=rlhf_value_without_beta)
RLHF_KL_ADDED = _with("rlhf_objective_kl_added", rlhf_objective=rlhf_objective_kl_added)
FIT_SPREAD = _fits("fit_forgets_spread_of_means", fit=fit_forgets_spread_of_means)
FIT_REVERSE_FORWARD = _fits("fit_reverse_is_forward", fit=fit_reverse_is_forward)
FIT_IGNORES_START = _fits("fit_ignores_start", fit=fit_ignores_start)
FIT_RETURNS_START = _fits("fit_returns_start", fit=fit_returns_start)
KL_HERMITE = _fits("mixture_kl_gauss_hermite", kl=mixture_kl_gauss_hermite)
KL_GRID = _fits("mixture_kl_on_a_grid", kl=mixture_kl_on_a_grid)
MISSPECIFIED_NLL = _fits("gaussian_nll_log_variance_twice, with the reference's fits")
MISSPECIFIED_NLL = _with(
    "gaussian_nll_log_variance_twice, with the reference's fits",
    MISSPECIFIED_NLL,
    gaussian_nll=gaussian_nll_log_variance_twice,
)

BROKEN_MODELS.update(
    {
        "noise.gaussian_nll": (NLL_FLOAT32, NLL_NO_CONSTANT, NLL_LOG_VAR_TWICE),
        "noise.mse": (MSE_ROOT, MSE_SUMMED),
        "noise.laplace_nll": (LAPLACE_2B, LAPLACE_SQUARES),
        "noise.mae": (MAE_OFFSET,),
        "noise.bernoulli_nll": (BERN_LOG, BERN_CLIPPED),
        "noise.bernoulli_logits": (BERN_SOFTPLUS, BERN_FLOAT32),
        "noise.poisson_nll": (POISSON_NO_FACTORIAL, POISSON_STIRLING),
        "noise.gaussian_mle_is_least_squares": (NLL_ABSOLUTE,),
        "noise.laplace_mle_is_least_absolute": (LAPLACE_SQUARES,),
        "mle.likelihood_plus_kl": (LL_TOTAL, LL_FLIPPED),
        "mle.argmin_kl_is_argmax_likelihood": (LL_FLIPPED,),
        "mle.categorical": (MLE_LAPLACE,),
        "mle.bernoulli": (BERN_MLE_LAPLACE,),
        "mle.misspecified_gaussian": (FIT_SPREAD, MISSPECIFIED_NLL),
        "fit.forward_moment_matching": (FIT_SPREAD,),
        "fit.divergence_value": (KL_HERMITE, KL_GRID),
        "fit.minimum": (FIT_RETURNS_START, FIT_SPREAD),
        "fit.reverse_mode_seeking": (FIT_REVERSE_FORWARD,),
        "fit.symmetric_stationary_point": (FIT_IGNORES_START,),
        "rlhf.optimal_policy": (RLHF_NAIVE, RLHF_NO_REF, RLHF_VALUE),
        "rlhf.optimum_beats_every_policy": (RLHF_KL_ADDED, RLHF_VALUE),
        "rlhf.support": (RLHF_SMOOTHED,),
        "rlhf.beta_limits": (RLHF_BETA, RLHF_NO_REF),
    }
)
