"""categorical_mle, categorical_log_likelihood, bernoulli_mle and empirical_distribution.

BOUNDS (u = 2**-53):

* categorical_log_likelihood against mpmath (60 digits beyond the dynamic range of
  probs): relative error <= LL_BOUND = 4u (measured max 2.4u over 12000
  candidates), including near-certain outcomes (Q = 1 − 1e-12), subnormal
  probabilities and n up to 10^5.
* ℓ̄(Q) + KL(P̂‖Q) = −H(P̂) with kl_divergence and entropy of the reference:
  |ℓ̄ + KL + H| <= IDENTITY_BOUND·(H + KL) = 8u·|ℓ̄| (measured max 4.9u). All three
  are non-negative in size, so nothing cancels but the identity itself.
* categorical_mle's likelihood is at least that of every candidate, less the
  rounding of the two values (4u each).

Each property has a meta-test (at the end) showing that a deliberately broken
implementation is rejected by it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import mpmath
import numpy as np
import pytest
from hypothesis import Phase, example, given, settings
from hypothesis import strategies as st

from klspec.reference import empirical_distribution, entropy, kl_divergence
from klspec.reference.likelihood import (
    bernoulli_mle,
    categorical_log_likelihood,
    categorical_mle,
)

U = 2.0**-53
LL_BOUND = 4 * U
IDENTITY_BOUND = 8 * U
MLE_SLACK = 4 * U


@dataclass(frozen=True)
class Data:
    """Samples (ints 0..k-1, support range(k)) and candidate distributions (m, k)."""

    samples: list[int]
    support: list[int]
    candidates: np.ndarray

    def __repr__(self) -> str:
        return (
            f"Data(samples={self.samples!r}, support={self.support!r}, "
            f"candidates=np.array({self.candidates.tolist()!r}))"
        )


@dataclass(frozen=True)
class Mle:
    """The functions under test (the reference, or a broken one for meta-tests)."""

    name: str
    log_likelihood: Callable = categorical_log_likelihood
    mle: Callable = categorical_mle


REFERENCE = Mle("reference")

CANDIDATE_KINDS = ("dirichlet", "zeros_off_data", "near_mle", "near_certain", "tiny")


def build(seed: int, n: int, k: int, m: int, kind: str) -> Data:
    """n samples from k outcomes and m candidates of one kind, rebuilt from the parameters."""
    rng = np.random.default_rng(seed)
    samples = rng.choice(k, size=n, p=rng.dirichlet(np.ones(k))).tolist()
    counts = np.bincount(samples, minlength=k)
    q = rng.dirichlet(np.ones(k), size=m)
    if kind == "zeros_off_data":
        q[:, counts == 0] = 0.0
        q[:, int(np.argmax(counts))] += 0.1
    elif kind == "near_mle":
        q = counts / n * (1 + 10.0 ** -rng.uniform(1, 15, (m, 1)) * rng.uniform(-1, 1, (m, k)))
        q[:, counts == 0] = 10.0 ** -rng.uniform(1, 15)
    elif kind == "near_certain":  # one outcome within 1e-12 of 1: log Q from log1p
        q = rng.dirichlet(np.ones(k), size=m) * 10.0 ** -rng.uniform(3, 12, (m, 1))
        q[:, int(rng.integers(0, k))] = 1.0
    elif kind == "tiny":  # 300 decades, subnormals
        q *= 10.0 ** -rng.uniform(0, 320, (m, k))
        q[q == 0] = 5e-324
        q[:, int(rng.integers(0, k))] += 1.0
    q = q / q.sum(axis=-1, keepdims=True)
    return Data(samples, list(range(k)), q)


@st.composite
def data(draw) -> Data:
    return build(
        draw(st.integers(0, 2**32 - 1), label="seed"),
        draw(st.integers(1, 60), label="n"),
        draw(st.integers(2, 8), label="k"),
        draw(st.integers(1, 5), label="m"),
        draw(st.sampled_from(CANDIDATE_KINDS), label="kind"),
    )


@st.composite
def small_data(draw) -> Data:
    """Element-wise, so failures shrink to a handful of samples and a short q."""
    k = draw(st.integers(1, 4), label="k")
    samples = draw(st.lists(st.integers(0, k - 1), min_size=1, max_size=6), label="samples")
    weights = draw(
        st.lists(st.sampled_from([1e-300, 1e-9, 0.1, 0.5, 1.0, 3.0]), min_size=k, max_size=k),
        label="weights",
    )
    q = np.array(weights)
    return Data(samples, list(range(k)), (q / q.sum())[None, :])


all_data = st.one_of(small_data(), data())


def exact_log_likelihood(samples: list, q: np.ndarray, support: list) -> mpmath.mpf:
    """(1/n) Σ_i log Q(x_i) with Q = q/Σq, at 60 digits beyond q's dynamic range."""
    positive = q[q > 0]
    digits = 60 + int(-math.log10(float(positive.min()))) if positive.size else 60
    with mpmath.workdps(digits):
        values = [mpmath.mpf(float(x)) for x in q]
        total = mpmath.fsum(values)
        counts = Counter(samples)  # Σ_i log Q(x_i) = Σ_x n_x log Q(x), exactly
        index = {o: i for i, o in enumerate(support)}
        if any(values[index[s]] == 0 for s in counts):
            return mpmath.mpf("-inf")
        terms = (c * mpmath.log(values[index[s]] / total) for s, c in counts.items())
        return +(mpmath.fsum(terms) / len(samples))


# --- property checks (each takes the implementation under test) ------------------------


def check_likelihood_plus_kl(impl: Mle, d: Data) -> None:
    """ℓ̄(Q) + KL(P̂‖Q) = −H(P̂) for every candidate, within IDENTITY_BOUND·(H + KL)."""
    __tracebackhide__ = True
    _, p_hat = empirical_distribution(d.samples, d.support)
    ll = np.atleast_1d(np.asarray(impl.log_likelihood(d.samples, d.candidates, d.support)))
    h = float(entropy(p_hat))
    for i, q in enumerate(d.candidates):
        kl = float(kl_divergence(p_hat, q))
        if math.isinf(kl):
            assert ll[i] == -math.inf, (
                f"categorical_log_likelihood(samples, probs, support)[{i}]={ll[i]!r}, but should "
                f"be -inf (an observed outcome has probability 0) [mle.likelihood_plus_kl] {d!r}"
            )
            continue
        off = abs(float(ll[i]) + kl + h)
        bound = IDENTITY_BOUND * (h + kl)
        assert off <= bound, (
            f"categorical_log_likelihood(samples, probs, support)[{i}] + kl(p_hat, q)="
            f"{float(ll[i]) + kl!r}, but should be -entropy(p_hat)={-h!r} within {bound:.3g} "
            f"[mle.likelihood_plus_kl] {d!r}"
        )


def check_mle_beats_every_candidate(impl: Mle, d: Data) -> None:
    """categorical_mle is count/n exactly, and no candidate has a larger likelihood."""
    __tracebackhide__ = True
    support, q_hat = impl.mle(d.samples, d.support)
    q_hat = np.asarray(q_hat, dtype=np.float64)
    n = len(d.samples)
    exact = np.array([float(Fraction(d.samples.count(o), n)) for o in d.support])
    assert list(support) == d.support, (
        f"categorical_mle(samples, support)[0]={support!r}, but should be {d.support!r} "
        f"[mle.categorical] {d!r}"
    )
    assert (q_hat == exact).all(), (
        f"categorical_mle(samples, support)={q_hat.tolist()!r}, but should be exactly "
        f"count/n={exact.tolist()!r} [mle.categorical] {d!r}"
    )
    best = float(categorical_log_likelihood(d.samples, q_hat, d.support))
    others = np.atleast_1d(categorical_log_likelihood(d.samples, d.candidates, d.support))
    for i, ll in enumerate(others):
        assert ll <= best + MLE_SLACK * (abs(best) + abs(ll)), (
            f"categorical_log_likelihood(samples, probs[{i}], support)={float(ll)!r}, but "
            f"should be <= that of the MLE, {best!r} [mle.categorical] {d!r}"
        )


def check_accuracy(impl: Mle, d: Data) -> None:
    """Each candidate's average log-likelihood within LL_BOUND relative of mpmath's."""
    __tracebackhide__ = True
    got = np.atleast_1d(np.asarray(impl.log_likelihood(d.samples, d.candidates, d.support)))
    for i, q in enumerate(d.candidates):
        exact = exact_log_likelihood(d.samples, q, d.support)
        if mpmath.isinf(exact):
            err = 0.0 if got[i] == -math.inf else math.inf
        elif exact == 0:
            err = 0.0 if got[i] == 0 else math.inf
        else:
            err = float(abs(mpmath.mpf(float(got[i])) - exact) / abs(exact))
        assert err <= LL_BOUND, (
            f"categorical_log_likelihood(samples, probs, support)[{i}]={float(got[i])!r}, but "
            f"should be {mpmath.nstr(exact, 20)} (relative error {err / U:.1f}u > "
            f"{LL_BOUND / U:g}u) [mle.likelihood_plus_kl] {d!r}"
        )


# --- tests of the reference -----------------------------------------------------------


@given(d=all_data)
@example(d=Data([0, 0, 1], [0, 1], np.array([[0.5, 0.5], [2 / 3, 1 / 3], [0.9, 0.1]])))
def test_likelihood_plus_kl_is_minus_entropy(d):
    check_likelihood_plus_kl(REFERENCE, d)


@given(d=all_data)
def test_mle_beats_every_candidate(d):
    check_mle_beats_every_candidate(REFERENCE, d)


@given(d=all_data)
@example(d=Data([0] * 7 + [1], [0, 1], np.array([[1 - 1e-12, 1e-12], [5e-324, 1.0]])))
@example(d=Data([1, 1], [0, 1], np.array([[0.0, 1.0]])))  # exactly 0
def test_log_likelihood_against_mpmath(d):
    check_accuracy(REFERENCE, d)


@pytest.mark.parametrize("n", [10**3, 10**5])
def test_log_likelihood_against_mpmath_on_many_samples(n):
    rng = np.random.default_rng(n)
    k = 50
    samples = rng.integers(0, k, size=n).tolist()
    q = rng.dirichlet(np.full(k, 0.3), size=3)
    check_accuracy(REFERENCE, Data(samples, list(range(k)), q))


def test_the_posts_coin_flips_give_exactly_two_thirds():
    for fn in (categorical_mle, empirical_distribution):
        support, q = fn(["H", "H", "T"])
        assert support == ["H", "T"]
        assert q.tolist() == [2 / 3, 1 / 3]
        assert q.dtype == np.float64
    assert bernoulli_mle([1, 1, 0]) == 2 / 3
    assert bernoulli_mle(np.array([True, True, False])) == 2 / 3
    assert bernoulli_mle([1.0, 1.0, 0.0]) == 2 / 3
    assert isinstance(bernoulli_mle([1, 0]), np.float64)


def test_fixed_support_keeps_its_order_and_unobserved_outcomes():
    support, q = categorical_mle("HHT", support=["T", "X", "H"])
    assert support == ["T", "X", "H"]
    assert q.tolist() == [1 / 3, 0.0, 2 / 3]
    assert empirical_distribution("HHT", support=("T", "X", "H"))[1].tolist() == q.tolist()


def test_empirical_distribution_takes_support_not_outcomes():
    with pytest.raises(TypeError, match="outcomes"):
        empirical_distribution(["H"], outcomes=["H"])


def test_bernoulli_mle_is_the_categorical_mle_on_zero_and_one():
    rng = np.random.default_rng(5)
    for n in (1, 2, 7, 1000):
        y = rng.integers(0, 2, size=n)
        _, q = categorical_mle(y.tolist(), support=[0, 1])
        assert bernoulli_mle(y) == q[1]
    assert bernoulli_mle([0, 0]) == 0.0
    assert bernoulli_mle([[1], [1]]) == 1.0


def test_log_likelihood_is_minus_inf_only_for_impossible_observations():
    samples = ["a", "b", "a"]
    probs = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])
    got = categorical_log_likelihood(samples, probs, ["a", "b", "c"])
    assert got[0] == pytest.approx(math.log(0.5), rel=2 * U)
    assert got[1] == got[2] == -math.inf


def test_log_likelihood_batches_over_candidates():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(4), size=(2, 3))
    samples = rng.integers(0, 4, size=20).tolist()
    got = categorical_log_likelihood(samples, probs, range(4))
    assert got.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            assert got[i, j] == categorical_log_likelihood(samples, probs[i, j], range(4))
    assert isinstance(categorical_log_likelihood(samples, probs[0, 0], range(4)), np.float64)


def test_log_likelihood_does_not_modify_its_inputs():
    probs = np.array([[0.25, 0.75], [0.5, 0.5]])
    samples, support = [0, 1, 1], [0, 1]
    copies = probs.copy(), list(samples), list(support)
    categorical_log_likelihood(samples, probs, support)
    assert (probs == copies[0]).all()
    assert probs.flags.writeable
    assert samples == copies[1]
    assert support == copies[2]


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: empirical_distribution([]),
            ValueError,
            r"samples is empty; the empirical distribution needs at least one sample",
        ),
        (
            lambda: categorical_mle(iter(())),
            ValueError,
            r"samples is empty; the empirical distribution needs at least one sample",
        ),
        (
            lambda: empirical_distribution("HHT", support=["H", "T", "H"]),
            ValueError,
            r"support lists 'H' more than once; each outcome must be listed once",
        ),
        (
            lambda: categorical_mle("HHTX", support=["H", "T"]),
            ValueError,
            r"samples contains 'X', which is not in support; list every possible outcome in "
            r"support or leave support=None",
        ),
        (
            lambda: categorical_log_likelihood([], [0.5, 0.5], ["H", "T"]),
            ValueError,
            r"samples is empty; the log-likelihood needs at least one sample",
        ),
        (
            lambda: categorical_log_likelihood("HX", [0.5, 0.5], ["H", "T"]),
            ValueError,
            r"samples contains 'X', which is not in support; list every possible outcome in "
            r"support$",
        ),
        (
            lambda: categorical_log_likelihood("HT", [0.5, 0.5], ["H", "H"]),
            ValueError,
            r"support lists 'H' more than once",
        ),
        (
            lambda: categorical_log_likelihood("HT", [0.2, 0.3, 0.5], ["H", "T"]),
            ValueError,
            r"probs has 3 outcomes on its last axis but support lists 2; probs\[\.\.\., k\] is "
            r"the probability of support\[k\]",
        ),
        (
            lambda: categorical_log_likelihood("HT", [0.5, 0.5], None),
            TypeError,
            r"support is required",
        ),
        (
            lambda: categorical_log_likelihood("HT", [0.5, 0.6], ["H", "T"]),
            ValueError,
            r"probs sums to 1.1, off from 1 by 0.1",
        ),
        (
            lambda: categorical_log_likelihood("HT", [[0.5, 0.5], [1.5, -0.5]], ["H", "T"]),
            ValueError,
            r"probs\[1, 1\] is negative \(-0.5\); probabilities must be >= 0",
        ),
        (
            lambda: bernoulli_mle([1, 0, 0.5]),
            ValueError,
            r"y\[2\] is 0.5; observations must be 0 or 1",
        ),
        (
            lambda: bernoulli_mle([[1, 0], [np.nan, 1]]),
            ValueError,
            r"y\[1, 0\] is nan; observations must be 0 or 1",
        ),
        (
            lambda: bernoulli_mle([1, 2, 3]),
            ValueError,
            r"y\[1\] is 2 \(and 1 more\); observations must be 0 or 1",
        ),
        (
            lambda: bernoulli_mle([]),
            ValueError,
            r"y is empty; the Bernoulli MLE needs at least one observation",
        ),
        (lambda: bernoulli_mle(1), ValueError, r"y is 0-d"),
        (lambda: bernoulli_mle(["H", "T"]), TypeError, r"y has dtype <U1"),
    ],
    ids=[
        "empirical-empty",
        "mle-empty",
        "empirical-duplicate-support",
        "mle-sample-not-in-support",
        "loglik-empty",
        "loglik-sample-not-in-support",
        "loglik-duplicate-support",
        "loglik-support-size",
        "loglik-no-support",
        "loglik-probs-not-normalised",
        "loglik-probs-negative",
        "bernoulli-half",
        "bernoulli-nan",
        "bernoulli-counts",
        "bernoulli-empty",
        "bernoulli-scalar",
        "bernoulli-text",
    ],
)
def test_bad_input_is_rejected_with_a_message_naming_it(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --- meta-tests: every property check rejects a deliberately broken implementation ------


def sum_not_average(samples, probs, support):
    """Σ log Q(x_i): the total, not the average."""
    return categorical_log_likelihood(samples, probs, support) * len(list(samples))


def unnormalised_log_likelihood(samples, probs, support):
    """Skips Q = q/Σq and sums log q_i literally in float32."""
    index = {o: i for i, o in enumerate(support)}
    q = np.asarray(probs, dtype=np.float32)
    with np.errstate(divide="ignore"):
        logs = np.log(q[..., [index[s] for s in samples]])
    return np.mean(logs, axis=-1).astype(np.float64)


def log_likelihood_of_uniform(samples, probs, support):
    """Ignores the candidate: the log-likelihood of the uniform distribution."""
    k = np.asarray(probs).shape[-1]
    return np.full(np.asarray(probs).shape[:-1], -math.log(k))[()]


def laplace_mle(samples, support=None):
    """Add-one smoothing: a fine estimator, but not the maximum-likelihood one."""
    support, counts = empirical_distribution(samples, support)
    n = len(list(samples))
    return support, (counts * n + 1) / (n + len(support))


def mle_of_float32(samples, support=None):
    support, q = categorical_mle(samples, support)
    return support, q.astype(np.float32).astype(np.float64)


META = [
    ("likelihood_plus_kl", check_likelihood_plus_kl, Mle("sum", log_likelihood=sum_not_average)),
    (
        "likelihood_plus_kl",
        check_likelihood_plus_kl,
        Mle("uniform", log_likelihood=log_likelihood_of_uniform),
    ),
    ("accuracy", check_accuracy, Mle("float32", log_likelihood=unnormalised_log_likelihood)),
    ("mle_beats", check_mle_beats_every_candidate, Mle("laplace", mle=laplace_mle)),
    ("mle_beats", check_mle_beats_every_candidate, Mle("float32", mle=mle_of_float32)),
]


@pytest.mark.parametrize(
    ("check", "impl"),
    [(check, impl) for _, check, impl in META],
    ids=[f"{name}-{impl.name}" for name, _, impl in META],
)
def test_property_rejects_broken_implementation(check, impl):
    run = settings(
        max_examples=200,
        phases=[Phase.explicit, Phase.generate],
        database=None,
        deadline=None,
        report_multiple_bugs=False,
    )(given(d=all_data)(lambda d: check(impl, d)))
    with pytest.raises(AssertionError, match=r"but should be"):
        run()


PROPERTIES = {name: check for name, check, _ in META}


@pytest.mark.parametrize("check", PROPERTIES.values(), ids=PROPERTIES.keys())
def test_property_accepts_the_reference(check):
    settings(max_examples=20, database=None, deadline=None)(
        given(d=all_data)(lambda d: check(REFERENCE, d))
    )()
