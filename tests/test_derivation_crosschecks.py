"""Numeric cross-checks of every derivation's result, with hypothesis.

Each symbolic result is evaluated (from the derivation's own expressions where they
are numeric-ready) and compared with an independent computation: the reference
implementation, scipy.stats / scipy.integrate / scipy.optimize, or mpmath. Tolerances
are stated next to each comparison.
"""

from __future__ import annotations

import decimal
import itertools
import math

import mpmath
import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import integrate, optimize, special, stats

from klspec.reference import cross_entropy, empirical_distribution, entropy, kl_divergence
from klspec.spec.derivations import DERIVATIONS, dpo, mle, rlhf
from klspec.spec.derivations import autoregressive as ar
from klspec.spec.derivations import cross_entropy as ce
from klspec.spec.derivations import gaussian_kl as gk
from klspec.spec.derivations import gibbs as gb
from klspec.spec.derivations import moment_matching as mm
from klspec.spec.derivations import noise_models as nm
from klspec.spec.derivations import weather as wx
from klspec.spec.derivations.notation import unfold

DPS = 30
SETTINGS = settings(deadline=None, max_examples=25)


def evaluate(expr, *, sizes=None, arrays=None, scalars=None, functions=None) -> float:
    """A derivation expression at a point, with sympy at 30 digits.

    ``sizes`` fix symbolic sizes, ``arrays`` give IndexedBase values (1-based in the
    expression), ``scalars`` symbol values, ``functions`` values of opaque functions
    (class → callable of the integer argument).
    """
    e = unfold(expr).xreplace(dict(sizes or {})).doit()
    arrays = arrays or {}
    e = e.replace(
        lambda a: isinstance(a, sp.Indexed) and a.base in arrays,
        lambda a: sp.Float(float(arrays[a.base][tuple(int(v) - 1 for v in a.indices)]), DPS),
    )
    for cls, fn in (functions or {}).items():
        e = e.replace(
            lambda a, c=cls: isinstance(a, c), lambda a, f=fn: sp.Float(f(int(a.args[0])), DPS)
        )
    e = e.xreplace({k: sp.Float(v, DPS) for k, v in (scalars or {}).items()})
    value = sp.N(e, DPS)
    assert value.is_number, f"did not evaluate to a number: {value}"
    return float(value)


def distribution(size: int):
    return st.lists(st.floats(1e-3, 1.0), min_size=size, max_size=size).map(
        lambda w: np.array(w) / math.fsum(w)
    )


@st.composite
def pair(draw, max_size=8):
    k = draw(st.integers(1, max_size), label="k")
    return draw(distribution(k), label="p"), draw(distribution(k), label="q")


# --- KL = H(P, Q) − H(P) -----------------------------------------------------------------


@SETTINGS
@given(pq=pair())
def test_decomposition_matches_reference(pq):
    p, q = pq
    d = DERIVATIONS["derivation.kl_cross_entropy"]
    at = {"sizes": {ce.k: len(p)}, "arrays": {ce.p: p, ce.q: q}}
    lhs, rhs = evaluate(d.start, **at), evaluate(d.result, **at)
    scale = 1 + float(np.sum(p * np.abs(np.log(q))) + np.sum(p * np.abs(np.log(p))))
    # The derivation's two sides agree to 30 digits on the same inputs...
    assert abs(lhs - rhs) <= 1e-14 * scale, f"lhs={lhs!r}, but should equal rhs={rhs!r}"
    # ... and match the reference (which also normalises p, q: a few ulps of the terms).
    ref = float(cross_entropy(p, q) - entropy(p))
    assert abs(rhs - float(kl_divergence(p, q))) <= 1e-13 * scale
    assert abs(rhs - ref) <= 1e-13 * scale


# --- Gibbs -----------------------------------------------------------------------------------


@st.composite
def pair_with_zeros(draw, max_size=8):
    """P, Q on k outcomes with exact zeros: p_i = 0 off P's support, q_i = 0 anywhere."""
    k = draw(st.integers(1, max_size), label="k")
    p = draw(
        st.lists(st.sampled_from([0.0, 1e-3, 0.2, 1.0, 3.0]), min_size=k, max_size=k), label="p"
    )
    q = draw(
        st.lists(st.sampled_from([0.0, 1e-3, 0.2, 1.0, 3.0]), min_size=k, max_size=k), label="q"
    )
    p, q = np.array(p), np.array(q)
    if p.sum() == 0:
        p[draw(st.integers(0, k - 1), label="p_nonzero")] = 1.0
    if q.sum() == 0:
        q[draw(st.integers(0, k - 1), label="q_nonzero")] = 1.0
    return p / math.fsum(p), q / math.fsum(q)


@SETTINGS
@given(pq=pair_with_zeros())
@example(pq=(np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.25, 0.5])))  # Q(supp P) = 1/2
@example(pq=(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.5, 0.0])))  # P = Q with a zero
@example(pq=(np.array([0.5, 0.5]), np.array([1.0, 0.0])))  # q_j = 0 < p_j: +∞
def test_gibbs_lower_bound_terms(pq):
    p, q = pq
    d = DERIVATIONS["derivation.gibbs"]
    reference = float(kl_divergence(p, q))
    support = p > 0
    if np.any(q[support] == 0):  # chain 3: the definition's +∞
        assert reference == math.inf, f"kl(p, q)={reference!r}, but should be inf"
        return
    # Chains 1–2 on supp P = {1..m}: q_i = q̃_i/(1 + u), q̃ = Q conditioned on supp P.
    mass = math.fsum(q[support])
    at = {
        "sizes": {gb.m: int(support.sum())},
        "arrays": {gb.p: p[support], gb.qt: q[support] / mass},
        "scalars": {gb.u: (1 - mass) / mass},
    }
    chain = d.chains[0]
    values = [evaluate(chain.start, **at)]
    relations = []
    for step in chain.steps:
        if step.relation != "⇒":
            values.append(evaluate(step.expr, **at))
            relations.append(step.relation)
    tol = 1e-13 * (1 + float(np.sum(p[support] * np.abs(np.log(q[support] / p[support])))))
    assert values[0] == pytest.approx(reference, abs=tol), "the derivation's D_KL is not kl(p, q)"
    for before, after, rel in zip(values, values[1:], relations, strict=False):
        if rel == "=":
            assert abs(before - after) <= tol, (before, after)
        else:
            assert before >= after - tol, f"{before!r} {rel} {after!r} fails"
    assert values[-1] == pytest.approx(0.0, abs=tol)
    # The equality case: D_KL = Σ p φ(q/p) + 1 − Q(supp P), and it is 0 exactly at P = Q.
    split = evaluate(d.chains[1].steps[0].expr, **at)
    assert split == pytest.approx(values[0], abs=tol)
    assert evaluate(1 - gb.QSupp(), **at) == pytest.approx(1 - mass, abs=1e-15)
    if np.array_equal(p, q):
        assert reference == 0.0
    else:
        assert reference > 0.0, f"kl(p, q)={reference!r}, but should be > 0 for P != Q"


# --- noise models -------------------------------------------------------------------------


@st.composite
def regression(draw, max_n=9):
    n = draw(st.integers(1, max_n), label="n")
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    return rng.normal(size=n) * 3, rng.normal(size=n) * 3, rng


@SETTINGS
@given(data=regression(), sigma=st.floats(0.05, 20.0))
def test_gaussian_nll_is_affine_in_mse(data, sigma):
    y, f, rng = data
    d = DERIVATIONS["derivation.gaussian_nll_mse"]
    nll = -float(np.sum(stats.norm.logpdf(y, loc=f, scale=sigma)))
    derived = evaluate(
        d.result,
        sizes={nm.n: len(y)},
        arrays={nm.y: y, nm.f: f},
        scalars={nm.sigma: sigma},
    )
    assert derived == pytest.approx(nll, rel=1e-12, abs=1e-12)
    # argmin over a linear model f = w·x is least squares, whatever σ.
    x = rng.normal(size=len(y)) + 0.5
    w_ls = float(np.dot(x, y) / np.dot(x, x))
    for s in (sigma, 1.0):
        fit = optimize.minimize_scalar(
            lambda w, s=s: -np.sum(stats.norm.logpdf(y, loc=w * x, scale=s)),
            bracket=(w_ls - 1, w_ls + 1),
            tol=1e-12,
        )
        assert fit.x == pytest.approx(w_ls, rel=1e-5, abs=1e-5)


@SETTINGS
@given(data=regression(), b=st.floats(0.05, 20.0))
def test_laplace_nll_is_affine_in_mae(data, b):
    y, f, _ = data
    d = DERIVATIONS["derivation.laplace_nll_mae"]
    nll = -float(np.sum(stats.laplace.logpdf(y, loc=f, scale=b)))
    derived = evaluate(d.result, sizes={nm.n: len(y)}, arrays={nm.y: y, nm.f: f}, scalars={nm.b: b})
    assert derived == pytest.approx(nll, rel=1e-12, abs=1e-12)
    if len(y) % 2 == 1:  # a constant prediction: the NLL's minimiser is the median
        fit = optimize.minimize_scalar(
            lambda c: -np.sum(stats.laplace.logpdf(y, loc=c, scale=b)),
            bounds=(y.min(), y.max()),
            method="bounded",
            options={"xatol": 1e-10},
        )
        assert fit.x == pytest.approx(float(np.median(y)), abs=1e-6)


@SETTINGS
@given(
    data=regression(),
    soft=st.booleans(),
)
def test_bernoulli_nll_is_bce(data, soft):
    s, _, rng = data
    y = rng.uniform(size=len(s)) if soft else rng.integers(0, 2, size=len(s)).astype(float)
    d = DERIVATIONS["derivation.bernoulli_nll_bce"]
    derived = evaluate(d.result, sizes={nm.n: len(s)}, arrays={nm.yb: y, nm.s: s})
    bce = -float(np.sum(y * special.log_expit(s) + (1 - y) * special.log_expit(-s)))
    assert derived == pytest.approx(bce, rel=1e-12, abs=1e-12)
    if not soft:
        nll = -float(np.sum(stats.bernoulli.logpmf(y, special.expit(s))))
        assert derived == pytest.approx(nll, rel=1e-9, abs=1e-12)
    # Bradley–Terry: one comparison won by w.
    bt = DERIVATIONS["derivation.bernoulli_nll_bce"].chains[1]
    margin = float(s[0])
    value = evaluate(bt.steps[-1].expr, scalars={nm.r_w: margin, nm.r_l: 0.0})
    assert value == pytest.approx(-float(special.log_expit(margin)), rel=1e-12, abs=1e-15)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8), scale=st.floats(0.1, 30.0))
def test_poisson_nll_is_half_deviance_plus_constant(seed, n, scale):
    rng = np.random.default_rng(seed)
    lam = rng.uniform(0.05, 2.0, size=n) * scale
    y = rng.poisson(lam).astype(float)
    nll = -float(np.sum(stats.poisson.logpmf(y, lam)))
    # The derived form, zero counts by the second chain (D(0, λ) = 2λ, constant 0).
    positive = y > 0
    d = DERIVATIONS["derivation.poisson_nll_deviance"]
    derived = 0.0
    if positive.any():
        derived += evaluate(
            d.chains[0].steps[1].expr,
            sizes={nm.n: int(positive.sum())},
            arrays={nm.yc: y[positive], nm.lam: lam[positive]},
        )
    derived += float(np.sum(lam[~positive]))
    deviance = 2 * (special.xlogy(y, y / lam) - (y - lam))
    constant = y - special.xlogy(y, y) + special.gammaln(y + 1)
    assert derived == pytest.approx(nll, rel=1e-10, abs=1e-10)
    assert float(np.sum(deviance / 2 + constant)) == pytest.approx(nll, rel=1e-10, abs=1e-10)


# --- MLE -------------------------------------------------------------------------------------


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), k=st.integers(1, 6))
def test_mle_identity_on_random_samples(seed, n, k):
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, k, size=n)  # repeats on purpose
    q = rng.uniform(0.05, 1.0, size=k)
    q /= q.sum()
    _, p_hat = empirical_distribution(samples.tolist(), support=range(k))
    lhs = float(kl_divergence(p_hat, q))
    rhs = -float(entropy(p_hat)) - float(np.mean(np.log(q[samples])))
    assert lhs == pytest.approx(rhs, rel=1e-12, abs=1e-13)
    # MLE over the categorical family is the empirical distribution: KL(P̂‖P̂) = 0 ≤ KL(P̂‖Q).
    assert float(kl_divergence(p_hat, p_hat)) == 0.0 <= lhs


@SETTINGS
@given(a=st.integers(1, 60), b=st.integers(1, 60))
@example(a=2, b=1)  # the post's coin, H, H, T
def test_bernoulli_mle_minimises_kl_on_a_grid(a, b):
    solution = DERIVATIONS["derivation.mle_bernoulli"].chains[0].steps[-1].expr.rhs
    theta_hat = float(solution.subs({mle.a: a, mle.b: b}))
    assert theta_hat == a / (a + b)
    p_hat = np.array([a, b], dtype=float) / (a + b)
    grid = np.linspace(1e-4, 1 - 1e-4, 4001)
    q = np.stack([grid, 1 - grid], axis=-1)
    kl = kl_divergence(np.broadcast_to(p_hat, q.shape), q)
    # 1 − θ̂ is rounded, so the reference (exact for its inputs) gives ~1e-33, not 0.
    best = float(kl_divergence(p_hat, [theta_hat, 1 - theta_hat]))
    assert best <= 1e-30
    assert float(kl.min()) >= best
    assert abs(grid[int(np.argmin(kl))] - theta_hat) <= 2.5e-4
    # The derived second derivative matches a finite difference of the reference KL.
    second = DERIVATIONS["derivation.mle_bernoulli"].chains[0].steps[2].expr.rhs
    for t in (0.2, 0.5, 0.8):
        h = 1e-4
        kls = [float(kl_divergence(p_hat, [u, 1 - u])) for u in (t - h, t, t + h)]
        fd = (kls[0] - 2 * kls[1] + kls[2]) / h**2
        formula = float(second.subs({mle.a: a, mle.b: b, mle.theta: t}))
        assert formula > 0
        assert fd == pytest.approx(formula, rel=1e-5)


# --- the normal closed form and moment matching ---------------------------------------------

_CLOSED = sp.lambdify((gk.mu1, gk.s1, gk.mu2, gk.s2), gk.CLOSED_FORM, "math")


@SETTINGS
@given(
    mu1=st.floats(-5, 5),
    mu2=st.one_of(st.just(0.0), st.floats(-5, 5)),  # μ₂ = 0 trips the naive sympy form
    s1=st.floats(0.2, 5),
    s2=st.floats(0.2, 5),
)
@example(mu1=6.772847447124767e-182, mu2=0.0, s1=1.0, s2=1.0)  # KL ~ 2e-363: still > 0
def test_gaussian_kl_closed_form_matches_quadrature(mu1, mu2, s1, s2):
    assert DERIVATIONS["derivation.gaussian_kl"].result == gk.CLOSED_FORM
    closed = _CLOSED(mu1, s1, mu2, s2)

    def integrand(x):
        return stats.norm.pdf(x, mu1, s1) * (
            stats.norm.logpdf(x, mu1, s1) - stats.norm.logpdf(x, mu2, s2)
        )

    quad, err = integrate.quad(integrand, mu1 - 40 * s1, mu1 + 40 * s1, limit=200, epsabs=1e-12)
    assert closed == pytest.approx(quad, rel=1e-8, abs=1e-10), f"quad error estimate {err}"
    # Chain 2: the split into (μ₁ − μ₂)²/(2σ₂²) + φ(σ₁²/σ₂²)/2, ≥ 0 and 0 only at equal
    # parameters (φ(1) = 0 exactly; elsewhere both parts are ≥ 0 and one is > 0).
    at = {"scalars": {gk.mu1: mu1, gk.mu2: mu2, gk.s1: s1, gk.s2: s2}}
    split = evaluate(DERIVATIONS["derivation.gaussian_kl"].chains[1].steps[0].expr, **at)
    assert split == pytest.approx(closed, rel=1e-12, abs=1e-14)
    assert closed >= 0.0
    assert _CLOSED(mu1, s1, mu1, s1) == 0.0
    if (mu1, s1) != (mu2, s2):
        # > 0, in chain 2's split: the mean part is exact (mpmath's exponent is unbounded,
        # so a 1e-182 difference stays > 0), and φ(t) at 60 digits resolves a 1-ulp t − 1.
        m1, m2, sd1, sd2 = (mpmath.mpf(v) for v in (mu1, mu2, s1, s2))
        with mpmath.workdps(60):
            t = sd1**2 / sd2**2
            exact = (m1 - m2) ** 2 / (2 * sd2**2) + (t - 1 - mpmath.log(t)) / 2
        assert exact > 0, f"KL={exact}, but should be > 0 when the parameters differ"


def _grid_fit(density, lo, hi, start):
    """Minimise −∫ p log 𝒩(x | m, s²) dx (forward KL up to H(P)) over (m, log s)."""
    x = np.linspace(lo, hi, 40001)
    px = density(x)

    def cross_entropy_(theta):
        m, log_s = theta
        return -integrate.trapezoid(px * stats.norm.logpdf(x, m, math.exp(log_s)), x)

    fit = optimize.minimize(
        cross_entropy_,
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000},
    )
    return fit.x[0], math.exp(fit.x[1])


@settings(deadline=None, max_examples=10)
@given(
    w=st.floats(0.1, 0.9),
    c1=st.floats(-5, 5),
    c2=st.floats(-5, 5),
    sd1=st.floats(0.3, 3),
    sd2=st.floats(0.3, 3),
)
@example(w=0.5, c1=-3.0, c2=3.0, sd1=1.0, sd2=1.0)  # the post's mixture: 𝒩(0, 10)
def test_forward_kl_fit_of_the_mixture_is_moment_matching(w, c1, c2, sd1, sd2):
    def density(x):
        return w * stats.norm.pdf(x, c1, sd1) + (1 - w) * stats.norm.pdf(x, c2, sd2)

    # The derived optimum: m = mean of P, s² = variance of P, with the component
    # moments from the derivation's chains (∫x𝒩(x|c,1) = c, ∫x²𝒩(x|c,1) = 1 + c²,
    # scaled to standard deviation sd).
    first = [sd * 0 + float(mm.FIRST_MOMENT[1].subs(mm.c, c)) for c, sd in ((c1, sd1), (c2, sd2))]
    second = [
        sd**2 * float(mm.SECOND_MOMENT[1].subs(mm.c, c / sd)) for c, sd in ((c1, sd1), (c2, sd2))
    ]
    mean = w * first[0] + (1 - w) * first[1]
    var = w * second[0] + (1 - w) * second[1] - mean**2
    lo, hi = min(c1, c2) - 15 * max(sd1, sd2), max(c1, c2) + 15 * max(sd1, sd2)
    m, s = _grid_fit(density, lo, hi, start=(0.0, 0.0))
    assert m == pytest.approx(mean, abs=1e-5)
    assert s**2 == pytest.approx(var, rel=1e-5)
    if (w, c1, c2, sd1, sd2) == (0.5, -3.0, 3.0, 1.0, 1.0):
        assert (mean, var) == pytest.approx((0.0, 10.0))


def test_reverse_kl_fit_seeks_a_mode():
    """Numeric only (not derived): reverse KL locks onto one mode of ½𝒩(−3,1) + ½𝒩(3,1)."""
    x = np.linspace(-25, 25, 50001)
    log_p = np.logaddexp(stats.norm.logpdf(x, -3, 1), stats.norm.logpdf(x, 3, 1)) - math.log(2)

    def reverse_kl(theta):
        m, log_s = theta
        log_q = stats.norm.logpdf(x, m, math.exp(log_s))
        return integrate.trapezoid(np.exp(log_q) * (log_q - log_p), x)

    fit = optimize.minimize(
        reverse_kl, (1.0, 0.0), method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12}
    )
    m, s = fit.x[0], math.exp(fit.x[1])
    # Near, not at, 𝒩(3, 1): the other mode's tail pulls slightly (m ≈ 2.98, s ≈ 1.02).
    assert m == pytest.approx(3.0, abs=0.05)
    assert s == pytest.approx(1.0, abs=0.05)
    assert fit.fun == pytest.approx(math.log(2), abs=0.01)
    # The forward-KL fit 𝒩(0, 10) is much worse in the reverse direction.
    assert reverse_kl((0.0, 0.5 * math.log(10))) > fit.fun + 0.2


# --- autoregressive models ------------------------------------------------------------------


def _toy_model(rng, vocab, length):
    """Random conditionals π(· | prefix) for every prefix shorter than ``length``."""
    return {
        u: rng.dirichlet(np.ones(vocab))
        for n in range(length)
        for u in itertools.product(range(vocab), repeat=n)
    }


def _joint(model, vocab, length):
    seqs = list(itertools.product(range(vocab), repeat=length))
    probs = np.array([math.prod(model[y[:k]][y[k]] for k in range(length)) for y in seqs])
    return seqs, probs


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), vocab=st.integers(1, 4), length=st.integers(1, 4))
def test_autoregressive_log_ratio_is_token_sum(seed, vocab, length):
    rng = np.random.default_rng(seed)
    pi, ref = _toy_model(rng, vocab, length), _toy_model(rng, vocab, length)
    seqs, p_joint = _joint(pi, vocab, length)
    _, r_joint = _joint(ref, vocab, length)
    j = int(rng.integers(len(seqs)))
    y = seqs[j]
    tok_pi = [pi[y[:k]][y[k]] for k in range(length)]
    tok_ref = [ref[y[:k]][y[k]] for k in range(length)]
    derived = evaluate(
        DERIVATIONS["derivation.autoregressive_log_ratio"].result,
        sizes={ar.T: length},
        functions={ar.PiTok: lambda k: tok_pi[k - 1], ar.RefTok: lambda k: tok_ref[k - 1]},
    )
    assert derived == pytest.approx(math.log(p_joint[j] / r_joint[j]), rel=1e-12, abs=1e-12)


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), vocab=st.integers(1, 4), length=st.integers(1, 4))
def test_sequence_kl_is_expected_token_kl_sum(seed, vocab, length):
    rng = np.random.default_rng(seed)
    pi, ref = _toy_model(rng, vocab, length), _toy_model(rng, vocab, length)
    _, p_joint = _joint(pi, vocab, length)
    _, r_joint = _joint(ref, vocab, length)
    sequence_kl = float(kl_divergence(p_joint, r_joint))
    token_sum = 0.0
    for k in range(length):
        for u in itertools.product(range(vocab), repeat=k):
            weight = math.prod(pi[u[:n]][u[n]] for n in range(k))
            token_sum += weight * float(kl_divergence(pi[u], ref[u]))
    assert sequence_kl == pytest.approx(token_sum, rel=1e-12, abs=1e-14)
    # The two-variable step (first chain), evaluated from the derivation, on (X, Y) =
    # (first token, second token) of the same models.
    if length >= 2 and vocab >= 1:
        marg_p, marg_q = pi[()], ref[()]
        cond_p = np.array([pi[(a,)] for a in range(vocab)])
        cond_q = np.array([ref[(a,)] for a in range(vocab)])
        d = DERIVATIONS["derivation.kl_chain_rule"]
        at = {
            "sizes": {ar.A: vocab, ar.B: vocab},
            "arrays": {ar.p: marg_p, ar.q: marg_q, ar.c: cond_p, ar.d: cond_q},
        }
        joint_p = (marg_p[:, None] * cond_p).ravel()
        joint_q = (marg_q[:, None] * cond_q).ravel()
        want = float(kl_divergence(joint_p, joint_q))
        assert evaluate(d.chains[0].steps[-1].expr, **at) == pytest.approx(
            want, rel=1e-12, abs=1e-14
        )
        assert evaluate(d.chains[0].start, **at) == pytest.approx(want, rel=1e-12, abs=1e-14)


# --- RLHF --------------------------------------------------------------------------------------


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 8),
    beta=st.floats(0.05, 5.0),
    ref_zeros=st.integers(0, 3),
    policy_zeros=st.integers(0, 3),
)
def test_rlhf_optimum_beats_random_policies(seed, k, beta, ref_zeros, policy_zeros):
    rng = np.random.default_rng(seed)
    rho = rng.dirichlet(np.ones(k))
    rho[rng.permutation(k)[: min(ref_zeros, k - 1)]] = 0.0  # π_ref with zeros
    rho /= rho.sum()
    r = rng.uniform(-5, 5, size=k)
    ref = rho > 0
    with np.errstate(divide="ignore"):
        log_rho = np.log(rho)
    log_z = float(special.logsumexp(log_rho[ref] + r[ref] / beta))
    star = np.where(ref, np.exp(log_rho + r / beta - log_z), 0.0)  # 0 where π_ref is 0

    def objective(pi):
        return float(pi @ r) - beta * float(kl_divergence(pi, rho))

    assert objective(star) == pytest.approx(beta * log_z, rel=1e-10, abs=1e-10)
    d = DERIVATIONS["derivation.rlhf_optimum"]
    for _ in range(5):
        pi = rng.dirichlet(np.ones(k) * 0.5)
        pi[rng.permutation(k)[: min(policy_zeros, k - 1)]] = 0.0  # the closed simplex
        pi /= pi.sum()
        j = objective(pi)
        if np.any(pi[~ref] > 0):  # mass where π_ref is 0: D_KL = +∞, J = −∞
            assert j == -math.inf
            continue
        assert j <= beta * log_z + 1e-9
        assert j == pytest.approx(beta * log_z - beta * float(kl_divergence(pi, star)), abs=1e-8)
        # The derivation, on supp π = {1..K} with Z̄ = Z's part from supp π_ref \ supp π.
        inside, outside = pi > 0, ref & (pi == 0)
        zbar = float(np.sum(rho[outside] * np.exp(r[outside] / beta)))
        at = {
            "sizes": {rlhf.K: int(inside.sum())},
            "arrays": {rlhf.pi: pi[inside], rlhf.rho: rho[inside], rlhf.r: r[inside]},
            "scalars": {rlhf.beta: beta, rlhf.Zbar: zbar},
        }
        assert evaluate(rlhf.Z(), **at) == pytest.approx(math.exp(log_z), rel=1e-12)
        j_start = evaluate(rlhf.J(), **at)
        j_end = evaluate(d.chains[1].steps[5].expr, **at)  # β log Z − β D_KL(π‖π*)
        assert j_start == pytest.approx(j, rel=1e-9, abs=1e-9)
        assert j_end == pytest.approx(j_start, rel=1e-12, abs=1e-12)
        # Gibbs with supports: D_KL(π‖π*) = Σ π φ(π*/π) + Z̄/Z ≥ Z̄/Z, 0 only at π = π*.
        gap = evaluate(d.chains[0].steps[2].expr, **at)
        assert gap == pytest.approx(float(kl_divergence(pi, star)), rel=1e-9, abs=1e-12)
        assert gap >= zbar / math.exp(log_z) - 1e-12


# --- the post's numbers ----------------------------------------------------------------------


def test_weather_numbers_match_the_reference():
    p, q = [0.7, 0.3], [0.5, 0.5]
    cases = [
        (wx.FORWARD_NATS, kl_divergence(p, q)),
        (wx.FORWARD_BITS, kl_divergence(p, q, base=2)),
        (wx.REVERSE_NATS, kl_divergence(q, p)),
        (wx.REVERSE_BITS, kl_divergence(q, p, base=2)),
    ]
    for text, ref in cases:
        assert float(ref) == pytest.approx(float(text), rel=1e-15)
    # The 30 digits, independently with mpmath at 50 digits.
    with mpmath.workdps(50):
        fwd = mpmath.mpf(7) / 10 * mpmath.log(mpmath.mpf(7) / 5) + mpmath.mpf(3) / 10 * mpmath.log(
            mpmath.mpf(3) / 5
        )
        rev = mpmath.log(mpmath.mpf(25) / 21) / 2
        for text, value in (
            (wx.FORWARD_NATS, fwd),
            (wx.FORWARD_BITS, fwd / mpmath.log(2)),
            (wx.REVERSE_NATS, rev),
            (wx.REVERSE_BITS, rev / mpmath.log(2)),
        ):
            assert (
                mpmath.nstr(value, 30, strip_zeros=False)
                == text.lstrip("0").rjust(len(text) - 1, "0")
                or abs(value - mpmath.mpf(text))
                <= mpmath.mpf(10) ** (-(len(text.split(".")[1]))) / 2
            )
        # The post's three-place logs and its rounding of 0.2555 up to 0.256.
        assert mpmath.nstr(mpmath.log(mpmath.mpf(5) / 3), 3) == "0.511"
        assert mpmath.nstr(mpmath.log(mpmath.mpf(5) / 7), 3) == "-0.336"
    half_up = decimal.Decimal("0.5") * decimal.Decimal("0.511")
    assert half_up == decimal.Decimal("0.2555")
    rounded = half_up.quantize(decimal.Decimal("0.001"), rounding=decimal.ROUND_HALF_UP)
    assert rounded - decimal.Decimal("0.168") == decimal.Decimal("0.088")
    assert round(float(kl_divergence(q, p)), 3) == 0.087
    assert round(float(kl_divergence(p, q)), 3) == 0.082


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    beta=st.floats(0.01, 5.0),
    log_z=st.floats(-50.0, 50.0),
)
def test_dpo_loss_is_the_bradley_terry_nll_of_implicit_rewards(seed, beta, log_z):
    """−log σ(r_w − r_l) with r = β log(π/π_ref) + β log Z is the DPO loss, whatever Z.

    Computed with mpmath at 30 digits from random probabilities: the Bradley–Terry NLL of
    the implicit rewards (with an arbitrary log Z, which must cancel) against the
    derivation's last expression, softplus(−β m), evaluated by sympy. Relative 1e-25.
    """
    rng = np.random.default_rng(seed)
    values = [float(v) for v in rng.uniform(1e-6, 1.0, size=4)]
    with mpmath.workdps(DPS):
        pw, pl, qw, ql = (mpmath.mpf(v) for v in values)
        b, z = mpmath.mpf(beta), mpmath.mpf(log_z)
        rw, rl = b * mpmath.log(pw / qw) + b * z, b * mpmath.log(pl / ql) + b * z
        bt_nll = -mpmath.log(1 / (1 + mpmath.exp(-(rw - rl))))
    d = DERIVATIONS["derivation.dpo"]
    symbols = (dpo.pi[dpo.win], dpo.pi[dpo.lose], dpo.rho[dpo.win], dpo.rho[dpo.lose])
    at = {k: sp.Float(v, DPS) for k, v in zip(symbols, values, strict=True)} | {
        dpo.beta: sp.Float(beta, DPS)
    }
    loss = sp.N(unfold(d.chains[2].steps[-1].expr).xreplace(at), DPS)
    with mpmath.workdps(DPS):
        assert abs(mpmath.mpf(str(loss)) - bt_nll) <= mpmath.mpf("1e-25") * max(1, abs(bt_nll))
