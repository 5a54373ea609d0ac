"""The derivations check at their claimed levels, and the checker rejects what it must.

- Every step of every derivation passes at exactly the level it claims.
- Negative controls: for every derivation, deliberately wrong variants (a dropped factor
  of 2, a wrong sign, a missing constraint, wrong sizes) are rejected.
- Soundness of the checker itself: numerically-close-but-unequal, undecided, and
  unsound-without-positivity steps fail; a step never reports a level above its check;
  the sources never use ``force=True``.
- Rendering and the ``prove`` entry point.

Numeric cross-checks of the results are in test_derivation_crosschecks.py.
"""

from __future__ import annotations

import functools
import io
import re
import time
import tokenize
from dataclasses import replace
from pathlib import Path

import pytest
import sympy as sp

from klspec.spec.clauses import CATALOG
from klspec.spec.derivations import (
    DERIVATIONS,
    ByRule,
    Chain,
    Derivation,
    ForSizes,
    Level,
    Numeric,
    Proved,
    Step,
    UnderConstraint,
    check,
    check_step,
    dpo,
    gibbs,
    main_prove,
    mle,
    proof_pages,
    prove,
    rlhf,
    rules,
    to_latex,
    to_markdown,
    weather,
    with_step,
)
from klspec.spec.derivations import autoregressive as ar
from klspec.spec.derivations import cross_entropy as ce
from klspec.spec.derivations import gaussian_kl as gk
from klspec.spec.derivations import moment_matching as mm
from klspec.spec.derivations import noise_models as nm
from klspec.spec.derivations.checks import Zero, equations, reduce_to_zero, sums_to_one
from klspec.spec.derivations.claims import argmax, argmin
from klspec.spec.derivations.notation import notation

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "spec" / "derivations").glob("*.py"))


@functools.cache
def checked(derivation_id: str):
    return check(DERIVATIONS[derivation_id])


# ---------------------------------------------------------------------------
# Every derivation checks, every step at its claimed level
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("derivation_id", list(DERIVATIONS))
def test_every_step_passes_at_its_claimed_level(derivation_id):
    result = checked(derivation_id)
    for ci, chain in enumerate(result.chains, start=1):
        for si, r in enumerate(chain.steps, start=1):
            assert r.ok, (
                f"step {ci}.{si} ({r.step.why!r}) failed, but should pass as "
                f"{r.claimed.words} [{derivation_id}]: {r.detail}"
            )
            assert r.level == r.claimed, (
                f"step {ci}.{si} ({r.step.why!r}) reached {r.level.words}, but claims "
                f"{r.claimed.words} [{derivation_id}]: {r.detail}"
            )


def test_registry_follows_the_post_and_names_its_clauses_and_crosschecks():
    ids = list(DERIVATIONS)
    assert ids[0] == "derivation.gaussian_nll_mse"
    assert ids.index("derivation.kl_cross_entropy") < ids.index("derivation.mle_forward_kl")
    assert ids.index("derivation.mle_forward_kl") < ids.index("derivation.moment_matching")
    assert ids.index("derivation.moment_matching") < ids.index("derivation.rlhf_optimum")
    assert ids.index("derivation.rlhf_optimum") < ids.index("derivation.weather_numbers")
    crosschecks = ROOT / "tests" / "test_derivation_crosschecks.py"
    source = crosschecks.read_text(encoding="utf-8")
    catalog = {c.id for c in CATALOG}
    for d in DERIVATIONS.values():
        assert d.id.startswith("derivation."), d.id
        for clause_id in d.clause_ids:
            assert clause_id in catalog, f"{d.id} proves {clause_id!r}, which is not in CATALOG"
        path, _, name = d.numeric_crosscheck.partition("::")
        assert path == "tests/test_derivation_crosschecks.py", d.numeric_crosscheck
        assert f"def {name}(" in source, f"{d.id}: cross-check {name} does not exist"


def test_every_level_is_used_and_reported():
    reached = {r.level for d in DERIVATIONS for r in checked(d).step_results}
    assert reached == set(Level)


# ---------------------------------------------------------------------------
# Negative controls: a wrong step is rejected, for every derivation
# ---------------------------------------------------------------------------

_i, _n, _s = nm.i, nm.n, nm.sigma


def _sum_n(body):
    return sp.Sum(body, (_i, 1, _n))


def _mutant_checks_only(derivation_id, chain, step, **changes):
    d = with_step(DERIVATIONS[derivation_id], chain, step, **changes)
    result = check(d, select=lambda c, s: (c, s) == (chain, step))
    (r,) = result.step_results
    return r


_R = sp.Rational

# (derivation id, chain index, step index, readable description, changes to the step)
CONTROLS = [
    (
        "derivation.gaussian_nll_mse",
        0,
        2,
        "dropped factor 2 in 2σ²",
        {"expr": _sum_n((nm.y[_i] - nm.f[_i]) ** 2) / _s**2 + _n * sp.log(2 * sp.pi * _s**2) / 2},
    ),
    (
        "derivation.gaussian_nll_mse",
        0,
        2,
        "wrong sign of the normalising term",
        {
            "expr": _sum_n((nm.y[_i] - nm.f[_i]) ** 2) / (2 * _s**2)
            - _n * sp.log(2 * sp.pi * _s**2) / 2
        },
    ),
    (
        "derivation.gaussian_nll_mse",
        0,
        4,
        "argmin turned into argmax (needs a < 0)",
        {"check": ByRule(rules.AFFINE_ARGMIN_TO_ARGMAX)},
    ),
    (
        "derivation.kl_cross_entropy",
        0,
        2,
        "wrong sign: H(P) − H(P, Q)",
        {"expr": ce.Entropy() - ce.CrossEntropy()},
    ),
    (
        "derivation.gibbs",
        0,
        4,
        "missing constraint Σp = Σq = 1",
        {"check": Proved()},
    ),
    (
        "derivation.gibbs",
        0,
        2,
        "inequality in the wrong direction",
        {"relation": "≤"},
    ),
    (
        "derivation.gibbs",
        0,
        2,
        "log x ≤ x − 2 instead of x − 1",
        {
            "expr": -sp.Sum(
                gibbs.p[gibbs.i] * (gibbs.q(gibbs.i) / gibbs.p[gibbs.i] - 2), (gibbs.i, 1, gibbs.k)
            )
        },
    ),
    (
        "derivation.gibbs",
        0,
        5,
        "Q(supp P) ≤ 1/2 claimed: 1 − Q(supp P) ≥ 1/2",
        {"expr": _R(1, 2)},
    ),
    (
        "derivation.gibbs",
        1,
        1,
        "equality case without Q(supp P) = 1 (q = p on supp P only)",
        {
            "expr": sp.And(
                sp.Ge(gibbs.KL(), 0),
                sp.Equivalent(sp.Eq(gibbs.KL(), 0), sp.Eq(gibbs.q(gibbs.i), gibbs.p[gibbs.i])),
            )
        },
    ),
    (
        "derivation.gibbs",
        1,
        1,
        "equality case with Q(supp P) = 1/2",
        {
            "expr": gibbs.EQUALITY.xreplace(
                {sp.Eq(gibbs.QSupp(), 1): sp.Eq(gibbs.QSupp(), _R(1, 2))}
            )
        },
    ),
    (
        "derivation.gibbs",
        2,
        0,
        "the infinite case's limit claimed to be 0",
        {"expr": sp.Eq(gibbs.GIBBS.chains[2].steps[0].expr.lhs, 0)},
    ),
    (
        "derivation.mle_forward_kl",
        0,
        2,
        "dropped the 1/n",
        {"expr": -mle.Hdata() - sp.Sum(mle.Count(mle.j) * sp.log(mle.Q[mle.j]), (mle.j, 1, mle.K))},
    ),
    (
        "derivation.mle_forward_kl",
        0,
        3,
        "reordered double sum claimed as proved",
        {
            "expr": -mle.Hdata()
            - sp.Sum(
                sp.KroneckerDelta(mle.x[mle.i], mle.j) * sp.log(mle.Q[mle.j]),
                (mle.j, 1, mle.K),
                (mle.i, 1, mle.n),
            )
            / mle.n
        },
    ),
    (
        "derivation.mle_forward_kl",
        1,
        0,
        "coin frequencies swapped",
        {"expr": _R(1, 3) * sp.log(_R(1, 3) / mle.Q_H) + _R(2, 3) * sp.log(_R(2, 3) / mle.Q_T)},
    ),
    (
        "derivation.mle_bernoulli",
        0,
        3,
        "wrong minimiser b/(a + b)",
        {"expr": sp.Eq(argmin(mle.KLbern(mle.theta), mle.theta), mle.b / (mle.a + mle.b))},
    ),
    (
        "derivation.mle_bernoulli",
        0,
        1,
        "wrong sign of the derivative",
        {"check": Proved(lambda prev, new: [Zero(sp.diff(prev, mle.theta) + mle._first)])},
    ),
    (
        "derivation.gaussian_kl",
        0,
        3,
        "dropped factor 2 in 2σ₂²",
        {"expr": sp.log(gk.s2 / gk.s1) + (gk.s1**2 + (gk.mu1 - gk.mu2) ** 2) / gk.s2**2 - _R(1, 2)},
    ),
    (
        "derivation.gaussian_kl",
        0,
        2,
        "decreasing change of variables x = μ₁ − σ₁z",
        {
            "check": ByRule(
                rules.CHANGE_OF_VARIABLES, {"x": gk.x, "to": gk.mu1 - gk.s1 * gk.z, "z": gk.z}
            )
        },
    ),
    (
        "derivation.gaussian_kl",
        1,
        1,
        "equality case claimed at σ₁ = 2σ₂",
        {"expr": gk.EQUALITY.xreplace({sp.Eq(gk.s1, gk.s2): sp.Eq(gk.s1, 2 * gk.s2)})},
    ),
    (
        "derivation.gaussian_kl",
        1,
        1,
        "equality case without μ₁ = μ₂",
        {
            "expr": sp.And(
                sp.Ge(gk.KL12(), 0),
                sp.Equivalent(sp.Eq(gk.KL12(), 0), sp.Eq(gk.s1, gk.s2)),
            )
        },
    ),
    (
        "derivation.gaussian_kl",
        1,
        0,
        "log(σ₂/σ₁) read as +½ log(σ₁²/σ₂²)",
        {"expr": (gk.mu1 - gk.mu2) ** 2 / (2 * gk.s2**2) + rules.LogGap(gk.s2**2 / gk.s1**2) / 2},
    ),
    (
        "derivation.moment_matching",
        0,
        2,
        "dropped factor 2 in 2s²",
        {
            "expr": -mm.HP()
            + sp.log(2 * sp.pi * mm.s**2) / 2
            + (mm.v + (mm.mu - mm.m) ** 2) / mm.s**2
        },
    ),
    (
        "derivation.moment_matching",
        0,
        2,
        "missing constraint (the moments of P)",
        {"check": Proved()},
    ),
    (
        "derivation.moment_matching",
        4,
        2,
        "second moment of the mixture 9 instead of 10",
        {"expr": sp.Integer(9)},
    ),
    (
        "derivation.autoregressive_log_ratio",
        0,
        2,
        "wrong sign: Σ log π_ref/π",
        {"expr": sp.Sum(sp.log(ar.RefTok(ar.k) / ar.PiTok(ar.k)), (ar.k, 1, ar.T))},
    ),
    (
        "derivation.kl_chain_rule",
        0,
        3,
        "missing constraint Σ_b P(b | a) = 1",
        {"check": Proved()},
    ),
    (
        "derivation.kl_chain_rule",
        2,
        0,
        "for sizes without the normalisation of π",
        {"check": ForSizes(ar.SIZES, ar._instantiate, "|V|×T ≤ 3×3")},
    ),
    (
        "derivation.kl_chain_rule",
        2,
        0,
        "wrong sizes claim: the last token's KL dropped",
        {"expr": sp.Sum(ar.TokKL(ar.k), (ar.k, 1, ar.T - 1))},
    ),
    (
        "derivation.kl_chain_rule",
        1,
        0,
        "the last token's KL counted twice in the split",
        {"expr": ar.SeqKL(ar.T - 1) + 2 * ar.TokKL(ar.T)},
    ),
    (
        "derivation.kl_chain_rule",
        1,
        1,
        "a base case T = 1 with the token's KL doubled",
        {
            "check": ByRule(
                rules.INDUCTION,
                {
                    "claim": ar.SeqKL(ar.T),
                    "a": ar.TokKL(ar.k),
                    "k": ar.k,
                    "n": ar.T,
                    "base": UnderConstraint(
                        equations({**ar._ONE_TOKEN, ar.TokKL(1): 2 * ar._ONE_TOKEN[ar.TokKL(1)]})
                    ),
                },
            )
        },
    ),
    (
        "derivation.moment_matching",
        0,
        4,
        "ŝ at m fixed to a value nothing showed optimal",
        {"check": ByRule(rules.UNIQUE_STATIONARY_COERCIVE, {"at": {mm.m: mm.mu + 1}})},
    ),
    (
        "derivation.moment_matching",
        4,
        3,
        "the mixture fit at a variance the chains did not compute",
        {
            "expr": sp.And(mm._M_HAT.xreplace({mm.mu: 0}), mm._S_HAT.xreplace({mm.mu: 0, mm.v: 9})),
            "check": ByRule(
                rules.SPECIALISE,
                {
                    "values": {mm.mu: 0, mm.v: 9},
                    "because": {
                        mm.mu: mm._mixture_moment(1),
                        mm.v: mm._mixture_moment(2) - mm._mixture_moment(1) ** 2,
                    },
                },
            ),
        },
    ),
    (
        "derivation.dpo",
        0,
        2,
        "the reward without its β log Z",
        {"expr": dpo.beta * sp.log(dpo.PiStar(dpo.i) / dpo.rho[dpo.i])},
    ),
    (
        "derivation.dpo",
        1,
        2,
        "Z cancelled from one reward only",
        {
            "expr": dpo.Sigmoid(
                dpo.beta * sp.log(dpo.PiStar(dpo.win) / dpo.rho[dpo.win])
                + dpo.beta * sp.log(dpo.Z)
                - dpo.beta * sp.log(dpo.PiStar(dpo.lose) / dpo.rho[dpo.lose])
            )
        },
    ),
    (
        "derivation.dpo",
        3,
        0,
        "the gradient's weight with the wrong sign",
        {
            "expr": sp.Eq(
                sp.Derivative(dpo.LossOf(dpo.m), dpo.m),
                dpo.beta * dpo.Sigmoid(-dpo.beta * dpo.m),
            )
        },
    ),
    (
        "derivation.dpo",
        3,
        3,
        "a wrongly ranked pair costing +β m",
        {"expr": sp.Eq(sp.Limit(dpo.LossOf(dpo.m) - dpo.beta * dpo.m, dpo.m, -sp.oo), 0)},
    ),
    (
        "derivation.dpo",
        4,
        1,
        "label smoothing as the soft label ε instead of 1 − ε",
        {"expr": dpo.BCE(dpo.eps, dpo.Sigmoid(dpo.beta * dpo.m))},
    ),
    (
        "derivation.kl_chain_rule",
        1,
        1,
        "induction onto the wrong sum",
        {"expr": sp.Sum(ar.TokKL(ar.k), (ar.k, 1, ar.T - 1))},
    ),
    (
        "derivation.rlhf_optimum",
        1,
        5,
        "missing constraint Σπ = 1",
        {"check": Proved()},
    ),
    (
        "derivation.rlhf_optimum",
        1,
        3,
        "wrong sign of log Z",
        {
            "expr": -rlhf.beta
            * rlhf._sum(
                rlhf.pi[rlhf.i] * (sp.log(rlhf.pi[rlhf.i] / rlhf.PiStar(rlhf.i)) + sp.log(rlhf.Z()))
            )
        },
    ),
    (
        "derivation.rlhf_optimum",
        0,
        3,
        "D_KL(π‖π*) = 0 claimed from π = π* on supp π alone (Z̄ = 0 dropped)",
        {
            "expr": sp.And(
                sp.Ge(rlhf.KLstar(), 0),
                sp.Equivalent(sp.Eq(rlhf.KLstar(), 0), sp.Eq(rlhf.pi[rlhf.i], rlhf.PiStar(rlhf.i))),
            )
        },
    ),
    (
        "derivation.rlhf_optimum",
        1,
        6,
        "π_ref claimed to be the maximiser",
        {
            "expr": sp.And(
                sp.Eq(
                    argmax(rlhf.J(), rlhf.pi),
                    notation(
                        "RefPolicy",
                        r"\pi_{\mathrm{ref}}",
                        lambda: sp.Lambda(rlhf.i, rlhf.rho[rlhf.i]),
                    )(),
                ),
                sp.Eq(rlhf.Jstar(), rlhf.beta * sp.log(rlhf.Z())),
            )
        },
    ),
    (
        "derivation.rlhf_optimum",
        1,
        6,
        "the optimum's value β log Z claimed as log Z",
        {
            "expr": sp.And(
                sp.Eq(argmax(rlhf.J(), rlhf.pi), rlhf.PiStarPolicy()),
                sp.Eq(rlhf.Jstar(), sp.log(rlhf.Z())),
            )
        },
    ),
    (
        "derivation.rlhf_optimum",
        2,
        0,
        "J → +∞ claimed where π_ref → 0",
        {"expr": sp.Eq(rlhf.RLHF_OPTIMUM.chains[2].steps[0].expr.lhs, sp.oo)},
    ),
    (
        "derivation.weather_numbers",
        0,
        1,
        "30th digit off by one",
        {"expr": weather.dec("0.0822828785050518463915611582609")},
    ),
    (
        "derivation.weather_numbers",
        0,
        0,
        "Rational(0.7) (the binary float) for 7/10",
        {
            "expr": sp.Rational(float("0.7")) * sp.log(sp.Rational(float("0.7")) / _R(1, 2))
            + _R(3, 10) * sp.log(_R(3, 5))
        },
    ),
    (
        "derivation.weather_numbers",
        2,
        2,
        "the post's 0.088 as the reverse KL",
        {"expr": weather.dec("0.088")},
    ),
    (
        "derivation.weather_numbers",
        4,
        3,
        "−0.168 + 0.256 claimed to be 0.087",
        {"check": Proved(), "expr": weather.dec("0.087")},
    ),
    (
        "derivation.bernoulli_nll_bce",
        0,
        1,
        "labels swapped: y log(1 − p) + (1 − y) log p",
        {
            "expr": -_sum_n(
                nm.yb[_i] * sp.log(1 - nm.Sigmoid(nm.s[_i]))
                + (1 - nm.yb[_i]) * sp.log(nm.Sigmoid(nm.s[_i]))
            )
        },
    ),
    (
        "derivation.bernoulli_nll_bce",
        1,
        1,
        "Bradley–Terry with the wrong sign: log(1 + e^{r_w − r_l})",
        {"expr": sp.log(1 + sp.exp(nm.r_w - nm.r_l))},
    ),
    (
        "derivation.laplace_nll_mae",
        0,
        1,
        "dropped factor 2 in log(2b)",
        {"expr": _sum_n(sp.Abs(nm.y[_i] - nm.f[_i]) / nm.b + sp.log(nm.b))},
    ),
    (
        "derivation.poisson_nll_deviance",
        0,
        1,
        "deviance without the ½",
        {
            "expr": nm.TotalDeviance()
            + _sum_n(nm.yc[_i] - nm.yc[_i] * sp.log(nm.yc[_i]) + sp.log(sp.factorial(nm.yc[_i])))
        },
    ),
    (
        "derivation.poisson_nll_deviance",
        0,
        0,
        "wrong sign of y log λ",
        {
            "expr": _sum_n(
                nm.lam[_i] + nm.yc[_i] * sp.log(nm.lam[_i]) + sp.log(sp.factorial(nm.yc[_i]))
            )
        },
    ),
]


@pytest.mark.parametrize(
    ("derivation_id", "chain", "step", "changes"),
    [
        pytest.param(d, c, s, ch, id=f"{d.removeprefix('derivation.')}: {why}")
        for d, c, s, why, ch in CONTROLS
    ],
)
def test_negative_control_is_rejected(derivation_id, chain, step, changes):
    r = _mutant_checks_only(derivation_id, chain, step, **changes)
    assert not r.ok, (
        f"a wrong step passed as {r.label}, but should be rejected [{derivation_id}]: {r.detail}"
    )


def test_every_derivation_has_a_negative_control():
    assert {d for d, *_ in CONTROLS} == set(DERIVATIONS)


def test_the_controls_change_a_step_that_passes_unchanged():
    # A control is meaningful only if the original step passes: then the rejection is
    # caused by the change.
    for d, c, s, why, _ in CONTROLS:
        r = checked(d).chains[c].steps[s]
        assert r.as_claimed, f"{d} step {c + 1}.{s + 1} does not pass unchanged ({why})"


# ---------------------------------------------------------------------------
# Soundness of the checker itself
# ---------------------------------------------------------------------------

x_real, y_real = sp.symbols("x y", real=True)
a_pos, b_pos = sp.symbols("a b", positive=True)


def _one_step(prev, new, check_, relation="="):
    return check_step(prev, Step(new, "test", check_, relation))


def test_proved_rejects_a_step_that_holds_only_numerically():
    # e^{π√163} = 262537412640768743.99999999999925...: equal to 12 digits, not equal.
    near_integer = sp.exp(sp.pi * sp.sqrt(163))
    r = _one_step(near_integer, sp.Integer(262537412640768744), Proved())
    assert not r.ok, r.detail
    assert r.level is None, r.detail
    r = _one_step(sp.pi, sp.Rational(355, 113), Proved())
    assert not r.ok, r.detail
    # ... and the same step checked numerically reaches "numeric", never "proved".
    r = _one_step(sp.pi, sp.Rational(355, 113), Numeric(dps=30, rtol=sp.Rational(1, 10**6)), "≈")
    assert r.ok, r.detail
    assert r.level is Level.NUMERIC, r.detail


def test_proved_refuses_floating_point_numbers():
    r = _one_step(sp.log(sp.Rational(7, 5)), sp.Float("0.336472236621213", 15), Proved())
    assert not r.ok, r.detail
    assert "floating-point" in r.detail, r.detail


def test_an_undecided_check_fails_and_shows_the_remainder():
    # True (definition of a finite sum) but sympy cannot reduce it for symbolic T.
    k, T = sp.symbols("k T", integer=True, positive=True)
    f = sp.Function("f")
    r = _one_step(sp.Sum(f(k), (k, 1, T)), sp.Sum(f(k), (k, 1, T - 1)) + f(T), Proved())
    assert not r.ok, r.detail
    assert "remainder" in r.detail, r.detail


def test_logs_are_split_only_under_declared_positivity():
    r = _one_step(sp.log(x_real * y_real), sp.log(x_real) + sp.log(y_real), Proved())
    assert not r.ok, "log(xy) = log x + log y is false for x, y < 0 but was accepted"
    r = _one_step(sp.log(a_pos * b_pos), sp.log(a_pos) + sp.log(b_pos), Proved())
    assert r.ok, r.detail
    assert r.level is Level.PROVED, r.detail


def test_kl_decomposition_with_real_only_probabilities_is_refused():
    p, q = sp.IndexedBase("p", real=True), sp.IndexedBase("q", real=True)
    i, k = ce.i, ce.k
    prev = sp.Sum(p[i] * sp.log(p[i] / q[i]), (i, 1, k))
    new = sp.Sum(p[i] * sp.log(p[i]), (i, 1, k)) - sp.Sum(p[i] * sp.log(q[i]), (i, 1, k))
    assert not _one_step(prev, new, Proved()).ok


def test_a_constraint_step_that_needs_no_constraint_reports_proved():
    i, k, p = gibbs.i, gibbs.k, gibbs.p
    prev = sp.Sum(2 * p[i], (i, 1, k))
    r = _one_step(prev, 2 * sp.Sum(p[i], (i, 1, k)), UnderConstraint(sums_to_one(p, 1, k)))
    assert r.ok
    assert r.level is Level.PROVED
    assert r.claimed is Level.UNDER_CONSTRAINT
    assert not r.as_claimed


def test_a_constraint_is_substituted_only_where_it_applies():
    i, k, p, q = ce.i, ce.k, ce.p, ce.q
    # Σq = 1 does not follow from Σp = 1.
    r = _one_step(sp.Sum(q[i], (i, 1, k)), sp.S.One, UnderConstraint(sums_to_one(p, 1, k)))
    assert not r.ok, r.detail


def test_each_check_reaches_only_its_own_level():
    e = sp.log(a_pos * b_pos)
    split = sp.log(a_pos) + sp.log(b_pos)
    cases = [
        (Proved(), {Level.PROVED}),
        (Numeric(points=({a_pos: 2, b_pos: 3},)), {Level.NUMERIC}),
        (ForSizes((1,), lambda expr, size: expr, "n = 1"), {Level.FOR_SIZES}),
        (UnderConstraint(equations({})), {Level.PROVED}),  # needs none
        (
            ByRule(
                rules.INSTANCE,
                {"identity": (sp.log(a_pos * b_pos), split), "over": (a_pos,), "proof": Proved()},
            ),
            {Level.BY_RULE},
        ),
    ]
    for check_, allowed in cases:
        r = _one_step(e, split, check_, "≈" if isinstance(check_, Numeric) else "=")
        assert r.ok, (type(check_).__name__, r.detail)
        assert r.level in allowed, (type(check_).__name__, r.detail)


def test_relations_a_check_cannot_establish_fail():
    assert not _one_step(x_real, x_real, Numeric(), relation="≥").ok
    assert not _one_step(x_real, x_real, Numeric(), relation="=").ok  # numbers only suggest
    assert not _one_step(x_real, x_real, Proved(), relation="⇒").ok  # needs obligations
    assert not _one_step(x_real, x_real, Proved(lambda p, n: []), relation="⇒").ok  # empty
    # Inequalities only through a reviewed rule, never through free-form obligations.
    anything = Proved(lambda p, n: [Zero(sp.S.Zero)])
    assert not _one_step(x_real + 1, x_real, anything, relation="≥").ok
    assert not _one_step(x_real, x_real, ByRule(rules.LOG_LE_X_MINUS_1), relation="=").ok


def test_an_argmin_claim_cannot_be_proved_by_obligations():
    """Only a rule that reads an argmin claim can license it; Proved() proves equations."""
    anything = Proved(lambda p, n: [Zero(sp.S.Zero)])
    r = _one_step(x_real**2, sp.Eq(argmin(x_real**2, x_real), 0), anything, relation="⇒")
    assert not r.ok, r.detail
    assert "need a rule" in r.detail, r.detail
    # An equation is proved from its own sides, whatever the obligations listed.
    wrong = _one_step(
        x_real**2, sp.Eq(sp.Derivative(x_real**2, x_real), 3 * x_real), anything, relation="⇒"
    )
    assert not wrong.ok, wrong.detail
    right = _one_step(
        x_real**2, sp.Eq(sp.Derivative(x_real**2, x_real), 2 * x_real), Proved(), relation="⇒"
    )
    assert right.ok, right.detail


def test_a_rule_applied_to_the_wrong_shape_fails():
    r = _one_step(x_real + 1, x_real, ByRule(rules.REORDER_DOUBLE_SUM))
    assert not r.ok, r.detail
    assert "does not apply" in r.detail, r.detail


class _Slow(Proved):
    def verify(self, prev, new, relation):
        time.sleep(30)
        return super().verify(prev, new, relation)


def test_a_check_that_runs_out_of_time_is_undecided():
    r = check_step(x_real, Step(x_real, "slow", _Slow()), budget=0.2)
    assert not r.ok
    assert "budget" in r.detail, r.detail
    assert r.seconds < 5


def test_a_float_in_disguise_is_refused_quickly():
    # Rational(0.7) is 3152519739159347/2**52; sympy's simplify would try to compute
    # 3152519739159347**(3152519739159347/2**52). The checker refuses it up front.
    disguised = sp.Rational(float("0.7"))
    r = _one_step(
        disguised * sp.log(disguised), sp.Rational(7, 10) * sp.log(sp.Rational(7, 10)), Proved()
    )
    assert not r.ok
    assert "Rational(7, 10)" in r.detail, r.detail
    assert r.seconds < 5


def test_for_sizes_reports_its_sizes():
    (r,) = [s for s in checked("derivation.kl_chain_rule").step_results if s.sizes]
    assert r.sizes == ar.SIZES
    assert "3" in r.label


def test_proof_pages_index_every_derivation():
    results = [checked(d) for d in ("derivation.gibbs", "derivation.weather_numbers")]
    pages = proof_pages(results)
    assert set(pages) == {"README.md", "gibbs.md", "weather_numbers.md"}
    assert "| numeric |" in pages["README.md"]
    assert "under constraint" in pages["README.md"]


def test_a_numeric_check_respects_its_tolerance():
    r = _one_step(sp.pi, sp.Rational(355, 113), Numeric(dps=30, rtol=sp.Rational(1, 10**8)), "≈")
    assert not r.ok, r.detail
    assert "|previous − new| = 8.5e-8·max(|previous|, |new|) > 1.0e-8" in r.detail, r.detail


def test_a_numeric_check_is_relative_and_never_claims_equality():
    """An absolute tolerance accepted e^−100 = 0; a numeric check reads '='."""
    tiny = sp.exp(-100)
    assert not _one_step(tiny, sp.S.Zero, Numeric(), "≈").ok
    assert not _one_step(tiny, tiny * (1 + sp.Rational(1, 10**30)), Numeric(), "=").ok
    r = _one_step(tiny, tiny * (1 + sp.Rational(1, 10**45)), Numeric(), "≈")
    assert r.ok, r.detail
    assert r.label == "numeric (relative error ≤ 1.0e-40, 50 digits)"


def test_reduction_does_not_capture_bound_variables():
    # Σ_j Σ_i f(i, j) with the names swapped must stay the same double sum.
    i, j, n = sp.symbols("i j n", integer=True, positive=True)
    f = sp.Function("f")
    e = sp.Sum(f(i, j), (i, 1, n), (j, 1, n)) - sp.Sum(f(j, i), (j, 1, n), (i, 1, n))
    assert reduce_to_zero(e).zero
    wrong = sp.Sum(f(i, j), (i, 1, n), (j, 1, n)) - sp.Sum(f(i, i), (i, 1, n))
    assert not reduce_to_zero(wrong).zero


_NOT_CODE = {tokenize.COMMENT, tokenize.STRING, tokenize.ENCODING} | {
    getattr(tokenize, name) for name in ("FSTRING_MIDDLE",) if hasattr(tokenize, name)
}


def _code(path: Path) -> list[tuple[int, str]]:
    """The lines of ``path`` with comments and string literals removed."""
    lines: dict[int, list[str]] = {}
    with path.open("rb") as fh:
        for tok in tokenize.tokenize(fh.readline):
            if tok.type in _NOT_CODE:
                continue
            lines.setdefault(tok.start[0], []).append(tok.string)
    return [(n, " ".join(parts)) for n, parts in sorted(lines.items())]


def test_force_true_does_not_appear_in_the_sources():
    hits = [
        f"{path.name}:{n}"
        for path in SOURCES
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if re.search(r"force\s*=\s*True", line)
    ]
    assert not hits, f"force=True in spec/derivations: {hits}"


@pytest.mark.parametrize(
    "pattern",
    [
        r"\.\s*equals\s*\(",
        r"Rational\s*\(\s*\d*\.\d",
        r"evaluate\s*\(\s*False\s*\)",
        r"nsimplify",
        r"logcombine",
    ],
)
def test_unsound_sympy_idioms_do_not_appear_in_the_code(pattern):
    hits = [
        f"{path.name}:{n}: {line}"
        for path in SOURCES
        for n, line in _code(path)
        if re.search(pattern, line)
    ]
    assert not hits, f"{pattern!r} found in spec/derivations:\n" + "\n".join(hits)


def test_only_the_derivations_import_sympy():
    offenders = [
        str(path.relative_to(ROOT))
        for top in ("spec", "reference", "cli")
        for path in (ROOT / top).rglob("*.py")
        if "derivations" not in path.parts
        and re.search(r"^\s*(import sympy|from sympy)", path.read_text(encoding="utf-8"), re.M)
    ]
    assert not offenders, offenders


# ---------------------------------------------------------------------------
# Rendering and the prove entry point
# ---------------------------------------------------------------------------


def test_latex_prints_the_chain_with_numbered_steps_and_no_prose():
    d = DERIVATIONS["derivation.gibbs"]
    tex = to_latex(d, checked(d.id))
    assert tex.startswith("\\begin{aligned}")
    assert tex.rstrip().endswith("\\end{aligned}")
    assert r"&\ge" in tex
    assert r"&\Rightarrow" in tex
    assert "&& (1.3)" in tex
    assert r"\ln" in tex
    # Reading order: p_i ln(p_i/q_i), not sympy's ln(p_i/q_i) p_i.
    assert r"{p}_{i} \ln{\left(\frac{{p}_{i}}{{q}_{i}} \right)}" in tex
    # The justifications and levels are beside the chain, not inside it.
    assert r"\text" not in tex
    assert "termwise" not in tex


def test_markdown_puts_justifications_and_levels_beside_the_chain():
    d = DERIVATIONS["derivation.gibbs"]
    page = to_markdown(d, checked(d.id))
    assert "```math\n\\begin{aligned}" in page
    assert "$$" not in page
    assert "| 1.3 | log x ≤ x − 1 at x = q_i/p_i, times p_i > 0, summed, negated | by rule:" in page
    assert "under constraint Σ p = 1 over 1…m" in page
    unchecked = to_markdown(d)
    assert "not checked" in unchecked
    assert "| proved |" not in unchecked


def test_markdown_marks_a_failed_step():
    d = with_step(DERIVATIONS["derivation.gibbs"], 0, 4, check=Proved())
    assert "| FAILED |" in to_markdown(d, check(d, select=lambda c, s: s == 4))


def test_identical_consecutive_lines_share_one_numbered_line():
    t = sp.Symbol("t", positive=True)
    d = Derivation(
        id="derivation.same_lines",
        title="t",
        statement="t",
        assumptions=(),
        symbols={"t": t},
        chains=(
            Chain(
                start=t * (t + 1) - t,
                steps=(
                    Step(t**2 + t - t, "multiply out", Proved()),  # prints as t**2 ...
                    Step(t**2, "arithmetic", Proved()),  # ... and so does this
                ),
            ),
        ),
        conclusion="t",
    )
    assert "&= t^{2} && (1.1, 1.2)" in to_latex(d)


def test_arithmetic_a_page_shows_is_printed_as_written():
    """½·(−3) + ½·3, not sympy's evaluation 0 (which read "0 = 0" on the page)."""
    tex = to_latex(DERIVATIONS["derivation.moment_matching"])
    assert r"\frac{1}{2} \left(-3\right) + \frac{1}{2} \cdot 3" in tex
    assert r"\frac{1}{2} \cdot 2 \lambda" in to_latex(
        DERIVATIONS["derivation.poisson_nll_deviance"]
    )


def test_markdown_cells_escape_pipes_and_stars():
    from klspec.spec.derivations.render import markdown_cell, markdown_text

    assert markdown_cell("P(b | a) = n/(2*sigma**2)") == r"P(b \| a) = n/(2\*sigma\*\*2)"
    assert markdown_text("π* and p_i and _x_ and $5") == r"π\* and p_i and \_x\_ and \$5"


def test_markdown_proof_page_has_statement_levels_and_conclusion():
    from klspec.spec.derivations.render import markdown_text

    d = DERIVATIONS["derivation.weather_numbers"]
    page = to_markdown(d, checked(d.id))
    assert page.startswith("# ")
    assert "| step | justification | checked | detail |" in page
    assert "0.0871766935723888763504603430433" in page
    assert "```math" in page
    assert markdown_text(d.conclusion) in page


def test_prove_prints_levels_and_times_and_returns_zero():
    out = io.StringIO()
    assert main_prove(["kl_cross_entropy", "derivation.gibbs"], out=out) == 0
    text = out.getvalue()
    assert "derivation.gibbs" in text
    assert "under constraint Σ p = 1 over 1…m" in text
    assert re.search(r"\d+\.\d\d s", text)


def test_prove_rejects_an_unknown_id(capsys):
    assert main_prove(["no_such_derivation"]) == 2
    assert "no derivation 'no_such_derivation'" in capsys.readouterr().err


def test_prove_returns_nonzero_on_a_failed_step(monkeypatch):
    broken = with_step(DERIVATIONS["derivation.kl_cross_entropy"], 0, 2, expr=ce.Entropy())
    monkeypatch.setattr(prove, "DERIVATIONS", {broken.id: broken})
    out = io.StringIO()
    assert main_prove([broken.id], out=out) == 1
    assert "FAILED" in out.getvalue()


def test_a_derivation_is_plain_data():
    d = Derivation(
        id="derivation.example",
        title="t",
        statement="s",
        assumptions=(),
        symbols={"a": a_pos},
        chains=(Chain(start=sp.log(a_pos**2), steps=(Step(2 * sp.log(a_pos), "w", Proved()),)),),
        conclusion="c",
    )
    assert check(d).as_claimed
    assert replace(d, id="derivation.other").chains == d.chains
