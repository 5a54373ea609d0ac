"""The named rewrites a derivation may use, each reviewed here once.

A rule is trusted for what its ``statement`` says, and for nothing else: its
``apply`` only rewrites expressions of the exact shape the statement covers (and
raises :class:`RuleDoesNotApply` otherwise), and whatever the statement needs of
the expression (positivity, independence of a variable, a lemma) is listed as
preconditions, which sympy must establish at every use.
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy as sp

from klspec.spec.derivations.checks import (
    Check,
    FreeOf,
    Holds,
    InRange,
    Level,
    LimitIs,
    Minimum,
    Obligation,
    Positive,
    Rule,
    RuleDoesNotApply,
    Satisfies,
    Solves,
    Zero,
    bound_range_errors,
    reduce_to_zero,
)
from klspec.spec.derivations.claims import Argmax, Argmin, argmin, components, context
from klspec.spec.derivations.notation import Notation, notation, unfold

__all__ = [
    "AFFINE_ARGMIN",
    "AFFINE_ARGMIN_TO_ARGMAX",
    "CHANGE_OF_VARIABLES",
    "CONVEX_STATIONARY_POINT",
    "DROP_KL",
    "DROP_NONNEGATIVE",
    "INDUCTION",
    "INSTANCE",
    "LIMIT_OF_CHAIN",
    "LOG_LE_X_MINUS_1",
    "OPTIMUM_BY_GIBBS",
    "REORDER_DOUBLE_SUM",
    "SIFT",
    "SPECIALISE",
    "SPLIT_LAST_TOKEN",
    "UNIQUE_STATIONARY_COERCIVE",
    "ZERO_IFF_PARTS_ZERO",
]


def _affine_parts(prev: sp.Basic, of: sp.Basic) -> tuple[sp.Basic, sp.Basic]:
    """prev = a·of + b: return (a, b), or raise if prev is not affine in ``of``."""
    d = sp.Dummy("g")
    e = sp.expand(prev.xreplace({of: d}))
    if not e.has(d):
        raise RuleDoesNotApply(f"{sp.sstr(of)} does not occur in {sp.sstr(prev)}")
    a = sp.diff(e, d)
    if a.has(d):
        raise RuleDoesNotApply(f"{sp.sstr(prev)} is not affine in {sp.sstr(of)}")
    return a, e.xreplace({d: 0})


class OnChain(Obligation):
    """``expr`` is the chain's own expression.

    It is, in this order: one the chain has shown equal to the previous line
    (``context().same``, each with ``at`` substituted), or a notation defined as one
    (a short name for the chain's expression is it), or an earlier all-"=" chain's
    start whose result is one (``context().known``); failing all that, ``expr`` must
    reduce to the previous line (with ``at``) exactly.
    """

    def __init__(self, expr: sp.Basic, prev: sp.Basic, what: str, at=None) -> None:
        self.expr, self.prev, self.what, self.at = expr, prev, what, dict(at or {})

    def discharge(self) -> tuple[bool, str]:
        ctx = context()
        same = [e.xreplace(self.at) for e in (ctx.same or (self.prev,))]
        names = [self.expr]
        while isinstance(names[-1], Notation):
            names.append(names[-1].unfold())
        for e in names:
            if e in same:
                return True, f"{self.what}: {sp.sstr(self.expr)} is the chain's expression"
            if e in ctx.known and ctx.known[e].xreplace(self.at) in same:
                return True, (
                    f"{self.what}: {sp.sstr(self.expr)} = {sp.sstr(ctx.known[e])} by an "
                    "earlier chain, which this chain starts from"
                )
        r = reduce_to_zero(self.expr - self.prev.xreplace(self.at))
        if r.zero:
            return True, f"{self.what}: {sp.sstr(self.expr)} = the previous line ({r.how})"
        return False, f"{self.what}: {sp.sstr(self.expr)} is not the chain's expression"


def _optimum_claim(new: sp.Basic, kind: type) -> tuple[sp.Basic, tuple, sp.Basic]:
    """(objective, variables, right-hand side) of the claim ``Eq(kind(F, vars), rhs)``."""
    if not (isinstance(new, sp.Eq) and isinstance(new.lhs, kind)):
        raise RuleDoesNotApply(
            f"the claim must read {kind.__name__.lower()}(F, vars) = ..., not {sp.sstr(new)}"
        )
    return new.lhs.objective, new.lhs.over, new.rhs


def _affine_argmin(prev, new, *, sign):
    objective, over, right = _optimum_claim(new, Argmin)
    kind = Argmin if sign > 0 else Argmax
    if not isinstance(right, kind) or right.over != over:
        raise RuleDoesNotApply(
            f"the claim's right side must be {kind.__name__.lower()} over {over}, "
            f"not {sp.sstr(right)}"
        )
    of = right.objective
    a, c = _affine_parts(prev, of)
    names = ", ".join(map(sp.sstr, over))
    return [
        OnChain(objective, prev, "the objective minimised is the chain's"),
        Positive(sign * a, f"coefficient {'' if sign > 0 else '−'}a = {sp.sstr(sign * a)} > 0"),
        FreeOf(a, over, f"a = {sp.sstr(a)} does not depend on {names}"),
        FreeOf(c, over, f"c = {sp.sstr(c)} does not depend on {names}"),
    ]


#: argmin_θ F = argmin_θ g when F = a·g(θ) + c, a > 0 and a, c do not depend on θ.
AFFINE_ARGMIN = Rule(
    name="argmin unchanged by a·g + c, a > 0",
    statement="If a > 0 and a, c do not depend on θ, then a·g(θ) + c and g(θ) have the "
    "same minimisers: t ↦ a·t + c is strictly increasing. The claim argmin_θ F = "
    "argmin_θ g is read as written: F must be the chain's expression and the previous "
    "line a·g + c, with g and θ taken from the claim.",
    relation="⇒",
    preconditions=lambda prev, new: _affine_argmin(prev, new, sign=1),
)

#: argmin_θ F = argmax_θ g when F = a·g(θ) + c, a < 0 and a, c do not depend on θ.
AFFINE_ARGMIN_TO_ARGMAX = Rule(
    name="argmin of a·g + c is argmax of g, a < 0",
    statement="If a < 0 and a, c do not depend on θ, the minimisers of a·g(θ) + c are the "
    "maximisers of g(θ): t ↦ a·t + c is strictly decreasing. The claim argmin_θ F = "
    "argmax_θ g is read as written, as for the rule above.",
    relation="⇒",
    preconditions=lambda prev, new: _affine_argmin(prev, new, sign=-1),
)


def _reorder(prev: sp.Basic) -> sp.Basic:
    def swap(s: sp.Sum) -> sp.Basic:
        (i, a, b), (j, c, d) = s.limits
        if sp.Tuple(c, d).has(i) or sp.Tuple(a, b).has(j):
            raise RuleDoesNotApply("the limits of one index depend on the other")
        return sp.Sum(s.function, (j, c, d), (i, a, b))

    out = prev.replace(lambda e: isinstance(e, sp.Sum) and len(e.limits) == 2, swap)
    if out == prev:
        raise RuleDoesNotApply("no finite double sum to reorder")
    return out


def _double_sums(prev: sp.Basic) -> list[sp.Sum]:
    return [e for e in prev.atoms(sp.Sum) if len(e.limits) == 2]


def _reorder_preconditions(prev, new):
    """Every limit of every double sum reordered is a finite integer: finitely many terms."""
    return [
        Satisfies(bound, "integer", f"the limit {sp.sstr(bound)} is a (finite) integer")
        for s in sorted(_double_sums(prev), key=sp.default_sort_key)
        for limit in s.limits
        for bound in limit[1:]
    ]


#: Σ_i Σ_j f(i, j) = Σ_j Σ_i f(i, j) for finite sums whose limits do not depend on the other index.
REORDER_DOUBLE_SUM = Rule(
    name="reorder a finite double sum",
    statement="Σ_{i=c}^{d} Σ_{j=a}^{b} f(i, j) = Σ_{j=a}^{b} Σ_{i=c}^{d} f(i, j) when the "
    "limits are integers (so finitely many terms: an infinite sum may be reordered only "
    "when it converges absolutely, which this rule does not check) that do not depend on "
    "the other index.",
    relation="=",
    apply=_reorder,
    preconditions=_reorder_preconditions,
)


def _sift(prev: sp.Basic) -> sp.Basic:
    def one(s: sp.Sum) -> sp.Basic:
        limits = list(s.limits)
        j = limits[0][0]  # the innermost index
        deltas = [f for f in sp.Mul.make_args(s.function) if isinstance(f, sp.KroneckerDelta)]
        if len(deltas) != 1 or j not in deltas[0].args:
            return s
        (delta,) = deltas
        (a,) = [arg for arg in delta.args if arg != j] or [j]
        if a.has(j) or any(sp.Tuple(*lim[1:]).has(j) for lim in limits[1:]):
            return s
        body = (s.function / delta).xreplace({j: a})
        return sp.Sum(body, *limits[1:]) if len(limits) > 1 else body

    out = prev.replace(lambda e: isinstance(e, sp.Sum), one)
    if out == prev:
        raise RuleDoesNotApply("no Σ_j δ(a, j)·g(j) to sift")
    return out


def _sift_points(prev: sp.Basic) -> list[tuple[sp.Basic, sp.Basic, sp.Basic]]:
    """(a, lo, hi) of every Σ_{j=lo}^{hi} δ(a, j)·g(j) that :func:`_sift` rewrites."""
    points = []
    for s in sorted(prev.atoms(sp.Sum), key=sp.default_sort_key):
        j, lo, hi = s.limits[0]
        deltas = [f for f in sp.Mul.make_args(s.function) if isinstance(f, sp.KroneckerDelta)]
        if len(deltas) == 1 and j in deltas[0].args:
            (a,) = [arg for arg in deltas[0].args if arg != j] or [j]
            points.append((a, lo, hi))
    return points


def _sift_preconditions(prev, new, *, given=""):
    return [
        InRange(a, lo, hi, given, "the delta's point is in the range summed over")
        for a, lo, hi in _sift_points(prev)
    ]


#: Σ_{j=1}^{K} δ(a, j)·g(j) = g(a) when a is one of 1, ..., K.
SIFT = Rule(
    name="sift with a Kronecker delta",
    statement="Σ_{j=lo}^{hi} δ(a, j)·g(j) = g(a) when a ∈ {lo, ..., hi}: exactly one term "
    "has δ = 1 (otherwise the sum is 0). That a is in the range is checked, or, where "
    "sympy cannot decide it, stated by the step as a hypothesis (then the step is "
    "'asserted').",
    relation="=",
    apply=_sift,
    preconditions=_sift_preconditions,
)


def _log_le_x_minus_1(prev: sp.Basic) -> sp.Basic:
    coeff, rest = prev.as_coeff_Mul()
    if not (coeff.is_negative and isinstance(rest, sp.Sum) and len(rest.limits) == 1):
        raise RuleDoesNotApply("expected −c·Σ_i w_i·log(u_i) with c > 0")
    logs = [f for f in sp.Mul.make_args(rest.function) if isinstance(f, sp.log)]
    if len(logs) != 1:
        raise RuleDoesNotApply("expected exactly one log factor in the summand")
    (lg,) = logs
    w = rest.function / lg
    return coeff * sp.Sum(w * (lg.args[0] - 1), rest.limits[0])


def _log_lemma_preconditions(prev: sp.Basic, new: sp.Basic):
    _, rest = prev.as_coeff_Mul()
    (lg,) = [f for f in sp.Mul.make_args(rest.function) if isinstance(f, sp.log)]
    w, u = rest.function / lg, lg.args[0]
    x = sp.Symbol("x", positive=True)
    _, lo, hi = rest.limits[0]
    return [
        Minimum(x - 1 - sp.log(x), x, sp.Interval.open(0, sp.oo), 0, "lemma: x − 1 − log x ≥ 0"),
        Positive(w, f"weight {sp.sstr(w)} > 0"),
        Positive(u, f"argument {sp.sstr(u)} > 0"),
        # Σ_{i=lo}^{hi} with hi < lo − 1 is, to sympy, minus a sum over hi+1..lo−1: the
        # termwise inequality would flip.
        Satisfies(
            hi - lo + 1, "nonnegative", f"the sum runs upwards ({sp.sstr(lo)} ≤ {sp.sstr(hi)} + 1)"
        ),
    ]


#: −Σ w_i log u_i ≥ −Σ w_i (u_i − 1) for w_i > 0, u_i > 0, from log x ≤ x − 1.
LOG_LE_X_MINUS_1 = Rule(
    name="log x ≤ x − 1, termwise",
    statement="For x > 0, log x ≤ x − 1 (sympy: the minimum of x − 1 − log x over x > 0 is "
    "0). Multiplying by w_i > 0, summing and negating: −Σ w_i log u_i ≥ −Σ w_i (u_i − 1).",
    relation="≥",
    apply=_log_le_x_minus_1,
    preconditions=lambda prev, new: _log_lemma_preconditions(prev, new),
)


def _drop_kl(prev: sp.Basic, *, term: sp.Basic, **_) -> sp.Basic:
    _, b = _affine_parts(prev, term)
    return b


def _kl_parts(term: sp.Basic):
    """(P_i, Q_i, (i, lo, hi)) when ``term`` unfolds to Σ_i P_i log(P_i/Q_i); else raise."""
    e = unfold(term)
    if not (isinstance(e, sp.Sum) and len(e.limits) == 1):
        raise RuleDoesNotApply(f"{sp.sstr(term)} is not a sum Σ_i P_i log(P_i/Q_i)")
    factors = sp.Mul.make_args(e.function)
    logs = [f for f in factors if isinstance(f, sp.log)]
    if len(logs) != 1:
        raise RuleDoesNotApply(f"{sp.sstr(term)} is not a sum Σ_i P_i log(P_i/Q_i)")
    weight = e.function / logs[0]
    ratio = logs[0].args[0]
    q = sp.simplify(weight / ratio)
    if sp.simplify(ratio - weight / q) != 0:  # pragma: no cover - defensive
        raise RuleDoesNotApply(f"{sp.sstr(term)} is not a sum Σ_i P_i log(P_i/Q_i)")
    return weight, q, e.limits[0]


def _drop_kl_preconditions(prev, new, *, term, p_sums_to_one):
    a, _ = _affine_parts(prev, term)
    weight, q, (i, lo, hi) = _kl_parts(term)
    if not isinstance(p_sums_to_one, Check):
        raise RuleDoesNotApply("P's normalisation needs the check that shows it (a Check)")
    return [
        Positive(-a, f"the KL term has coefficient {sp.sstr(a)} < 0"),
        Positive(weight, f"P_{i} = {sp.sstr(weight)} > 0"),
        Positive(q, f"Q_{i} = {sp.sstr(q)} > 0"),
        Zero(sp.Sum(q, (i, lo, hi)) - 1, f"Q sums to 1: Σ_{i} {sp.sstr(q)} = 1"),
        Holds(sp.Sum(weight, (i, lo, hi)), sp.S.One, p_sums_to_one, "P sums to 1"),
    ]


#: A − c·D_KL(P‖Q) ≤ A for c > 0 (Gibbs' inequality), with equality at P = Q.
DROP_KL = Rule(
    name="Gibbs: D_KL ≥ 0, = 0 iff P = Q",
    statement="For distributions P, Q with positive entries: D_KL(P‖Q) ≥ 0 with equality "
    "iff P = Q (derivation.gibbs). So A − c·D_KL(P‖Q) ≤ A for c > 0, with equality iff "
    "P = Q. At every use the term is read as Σ_i P_i log(P_i/Q_i) and P, Q are checked: "
    "positive, Q sums to 1, and P sums to 1 by the check the step names.",
    relation="≤",
    apply=_drop_kl,
    preconditions=_drop_kl_preconditions,
    cap=lambda **params: (
        min(Level.BY_RULE, params["p_sums_to_one"].level)
        if isinstance(params.get("p_sums_to_one"), Check)
        else Level.BY_RULE
    ),
)


def _change_of_variables(prev: sp.Basic, *, x: sp.Symbol, to: sp.Basic, z: sp.Symbol):
    found = [False]

    def one(integral: sp.Integral) -> sp.Basic:
        if integral.limits[0][0] != x:
            return integral
        found[0] = True
        return integral.transform(x, (to, z))

    out = prev.replace(lambda e: isinstance(e, sp.Integral), one)
    if not found[0]:
        raise RuleDoesNotApply(f"no integral over {x}")
    return out


#: ∫ f(x) dx = ∫ f(g(z)) g'(z) dz for increasing g (sympy's Integral.transform).
CHANGE_OF_VARIABLES = Rule(
    name="change of variables",
    statement="∫_{−∞}^{∞} f(x) dx = ∫_{−∞}^{∞} f(g(z)) g′(z) dz for a strictly increasing "
    "affine g (sympy's Integral.transform, which also maps the limits).",
    relation="=",
    apply=_change_of_variables,
    preconditions=lambda prev, new, *, x, to, z: [
        Positive(sp.diff(to, z), f"{x} = {sp.sstr(to)} is increasing in {z}")
    ],
)


def _wild(identity: tuple[sp.Basic, sp.Basic], over: tuple[sp.Symbol, ...]):
    wilds = {v: sp.Wild(f"w_{v}") for v in over}
    lhs, rhs = identity
    return lhs.xreplace(wilds), rhs.xreplace(wilds), wilds


def _instance(prev: sp.Basic, *, identity, over, proof=None):
    pattern, template, _ = _wild(identity, over)
    out = prev.replace(pattern, template)
    if out == prev:
        raise RuleDoesNotApply(f"no instance of {sp.sstr(identity[0])} to rewrite")
    return out


def _instance_preconditions(prev, new, *, identity, over, proof):
    if not isinstance(proof, Check):
        raise RuleDoesNotApply("the identity needs the check that proves it (proof=...)")
    lhs, rhs = identity
    pattern, _, wilds = _wild(identity, over)
    out: list = [Holds(lhs, rhs, proof, f"the identity {sp.sstr(lhs)} = {sp.sstr(rhs)}")]
    # prev.find returns a set: sort it so the report (and the generated docs) is stable.
    for found in sorted(prev.find(pattern), key=sp.default_sort_key):
        match = found.match(pattern)
        for v in over:
            value = match[wilds[v]]
            for name in ("positive", "real", "integer"):
                if v.assumptions0.get(name):
                    out.append(
                        Satisfies(value, name, f"{v} = {sp.sstr(value)} is {name}, as declared")
                    )
    return out


#: Use an identity proved for symbolic parameters at particular values.
INSTANCE = Rule(
    name="instance of an identity proved for all parameter values",
    statement="An identity lhs(c) = rhs(c) proved for symbolic parameters c (under their "
    "declared assumptions) holds at every value meeting those assumptions. The identity "
    "is proved again at every use, by the check the step names (``proof``), and each "
    "value used is checked against each assumption; the step reaches at most the level "
    "of that proof.",
    relation="=",
    apply=_instance,
    preconditions=_instance_preconditions,
    cap=lambda **params: (
        min(Level.BY_RULE, params["proof"].level)
        if isinstance(params.get("proof"), Check)
        else Level.BY_RULE
    ),
)


def _induction(prev: sp.Basic, *, claim: sp.Basic, a: sp.Basic, k: sp.Symbol, n: sp.Basic, base):
    """prev = F(n − 1) + a(n), with F(n − 1) the claim at n − 1 → Σ_{k=1}^{n} a(k)."""
    hypothesis = claim.xreplace({n: n - 1})
    last = a.xreplace({k: n})
    if sp.expand(prev - hypothesis - last) != 0:
        raise RuleDoesNotApply(
            f"expected the claim at n − 1 plus the last term, {sp.sstr(hypothesis)} + "
            f"{sp.sstr(last)}, got {sp.sstr(prev)}"
        )
    return sp.Sum(a, (k, 1, n))


def _induction_preconditions(prev, new, *, claim, a, k, n, base):
    if not isinstance(base, Check):
        raise RuleDoesNotApply("the base case needs a check (Proved(), ForSizes(...), ...)")
    return [
        Holds(
            claim.xreplace({n: 1}),
            a.xreplace({k: 1}),
            base,
            f"base case: {sp.sstr(claim.xreplace({n: 1}))} = {sp.sstr(a.xreplace({k: 1}))}",
        ),
        Satisfies(n, "integer", f"{n} is an integer"),
        Satisfies(n, "positive", f"{n} ≥ 1"),
    ]


def _split_last_token(prev: sp.Basic, *, whole, parts, identity, instance) -> sp.Basic:
    if not prev.has(whole):
        raise RuleDoesNotApply(f"{sp.sstr(whole)} does not occur")
    return prev.xreplace({whole: parts})


def _split_preconditions(prev, new, *, whole, parts, identity, instance):
    if not isinstance(instance, Check):
        raise RuleDoesNotApply("the instance needs the check that shows it (instance=...)")
    lhs, rhs = identity
    proved = context().known.get(lhs)
    return [
        _Fact(
            proved is not None and proved == rhs,
            f"the two-variable chain rule {sp.sstr(lhs)} = {sp.sstr(rhs)} is a chain above",
        ),
        Holds(whole, parts, instance, f"its instance {sp.sstr(whole)} = {sp.sstr(parts)}"),
    ]


#: Sequence KL = prefix KL + E_prefix[last-token KL]: the two-variable chain rule.
SPLIT_LAST_TOKEN = Rule(
    name="two-variable chain rule with X = t_<T, Y = t_T",
    statement="A sequence t_1..t_T is the pair (X, Y) = (t_<T, t_T), with |X| = |V|^(T−1) "
    "and |Y| = |V|. The two-variable chain rule (``identity``, which must be the result "
    "of a chain above, proved for symbolic sizes) then reads: sequence KL = prefix KL + "
    "E_{t<T∼π}[KL of the last token's conditionals]. That the sequence quantities are "
    "this instance is not something sympy can see for symbolic T: the instance "
    "whole = parts is checked by the check given as ``instance``, and the step reaches "
    "at most that check's level.",
    relation="=",
    apply=_split_last_token,
    preconditions=_split_preconditions,
    cap=lambda **params: (
        min(Level.BY_RULE, params["instance"].level)
        if isinstance(params.get("instance"), Check)
        else Level.BY_RULE
    ),
)


#: If F(1) = a(1) and F(T) = F(T − 1) + a(T), then F(T) = Σ_{k=1}^{T} a(k).
INDUCTION = Rule(
    name="induction on the length",
    statement="If F(1) = a(1) and F(n) = F(n − 1) + a(n) for n ≥ 2, then F(n) = "
    "Σ_{k=1}^{n} a(k) for every integer n ≥ 1. The hypothesis used is the claim F itself "
    "at n − 1 (given as ``claim``, F(n)); the base case F(1) = a(1) is checked at every "
    "use by the check given as ``base``, and the step reaches at most the level the base "
    "case reached.",
    relation="=",
    apply=_induction,
    preconditions=_induction_preconditions,
    cap=lambda **params: min(Level.BY_RULE, params["base"].level),
)


def _stationary_claim(prev, new):
    """(objective, var, solution) of ``Eq(argmin(F, var), solution)``, F the chain's."""
    objective, over, solution = _optimum_claim(new, Argmin)
    if len(over) != 1:
        raise RuleDoesNotApply(f"one variable at a time, not {over}")
    return objective, over[0], solution


def _convex_preconditions(prev, new, *, interval=None, onto_domain=None):
    """Obligations of :data:`CONVEX_STATIONARY_POINT`; see its statement."""
    objective, var, solution = _stationary_claim(prev, new)
    f = unfold(prev)
    second = sp.diff(f, var, 2)
    checks: list = [
        OnChain(objective, prev, "the objective is the chain's"),
        Solves((sp.diff(f, var),), (var,), {var: solution}, f"∂f/∂{var} = 0 only at {solution}"),
    ]
    if interval is None:
        if onto_domain is not None:
            raise RuleDoesNotApply("a parametrisation needs the interval it covers (interval=)")
        domain = "(0, ∞)" if var.is_positive else "ℝ" if var.is_real else None
        if domain is None:
            raise RuleDoesNotApply(f"{var} is declared neither real nor positive")
        checks.append(
            Positive(second, f"∂²f/∂{var}² > 0 for every {var} in {domain} (its assumptions)")
        )
        if var.is_positive:
            checks.append(Positive(solution, f"{sp.sstr(solution)} lies in the domain: > 0"))
        return checks
    lo, hi = interval
    if onto_domain is None:
        raise RuleDoesNotApply("an interval needs a parametrisation by t > 0 (onto_domain=)")
    t, image = onto_domain
    where = f"{var} = {sp.sstr(image)}, {t} > 0"
    return [
        *checks,
        Positive(
            second.xreplace({var: image}), f"∂²f/∂{var}² > 0 on all of ({lo}, {hi}) ({where})"
        ),
        Positive(sp.diff(image, t), f"{sp.sstr(image)} increases with {t}"),
        LimitIs(image, t, 0, "+", lo, f"{sp.sstr(image)} → {lo} as {t} → 0⁺"),
        LimitIs(image, t, sp.oo, "-", hi, f"{sp.sstr(image)} → {hi} as {t} → ∞"),
        *(
            Positive(e, f"{sp.sstr(solution)} lies in ({lo}, {hi}): {sp.sstr(e)} > 0")
            for e in (solution - lo, hi - solution)
            if e.is_finite is not False
        ),
    ]


#: A stationary point of a strictly convex function on an interval is its unique minimiser.
CONVEX_STATIONARY_POINT = Rule(
    name="stationary point of a strictly convex function",
    statement="If f″ > 0 on an open interval I and f′(x̂) = 0 at x̂ ∈ I, then x̂ is the "
    "unique minimiser of f on I. The claim argmin_x F = x̂ is read as written: F is the "
    "chain's expression (checked) and f the previous line. I is the domain the "
    "variable's assumptions give (ℝ, or (0, ∞) for a positive one), or an interval "
    "(lo, hi) with a parametrisation by t > 0 that is checked to cover it (increasing, "
    "tending to lo and hi; e.g. θ = t/(1 + t) for (0, 1)); f″ > 0 is checked on all of "
    "I, and x̂ ∈ I.",
    relation="⇒",
    preconditions=_convex_preconditions,
)


class Established(Obligation):
    """One of ``claims`` was checked earlier in this derivation (``context().established``)."""

    def __init__(self, claims: Sequence[sp.Basic], what: str) -> None:
        self.claims, self.what = tuple(claims), what

    def discharge(self) -> tuple[bool, str]:
        for claim in self.claims:
            if claim in context().established:
                return True, f"{self.what}: {sp.sstr(claim)}, checked above"
        return False, f"{self.what}: no such consequence was established above"


def _coercive_preconditions(prev, new, *, at=None):
    """Obligations of :data:`UNIQUE_STATIONARY_COERCIVE`; see its statement."""
    at = dict(at or {})
    objective, var, solution = _stationary_claim(prev, new)
    if var.is_positive:
        ends = ((0, "+"), (sp.oo, "-"))
    elif var.is_real:
        ends = ((-sp.oo, "+"), (sp.oo, "-"))
    else:
        raise RuleDoesNotApply(f"{var} is declared neither real nor positive")
    # Terms free of var shift f without moving its minimiser (they must be finite,
    # which the derivation assumes); limits are taken of the rest.
    f = unfold(prev.xreplace(at)).as_independent(var, as_Add=True)[1]
    return [
        *(
            Established(
                [sp.Eq(argmin(e, other), value) for e in context().same or (prev,)],
                f"{other} = {sp.sstr(value)} minimises for every {var}",
            )
            for other, value in at.items()
        ),
        OnChain(objective, prev, f"the objective is the chain's at {at or 'no fixed values'}", at),
        Solves((sp.diff(f, var),), (var,), {var: solution}, f"∂f/∂{var} = 0 only at {solution}"),
        *(
            LimitIs(f, var, point, side, sp.oo, f"f → +∞ as {var} → {point}{side}")
            for point, side in ends
        ),
    ]


#: A differentiable function on (a, b) tending to +∞ at both ends with one stationary
#: point is minimised there.
UNIQUE_STATIONARY_COERCIVE = Rule(
    name="single stationary point of a function that blows up at both ends",
    statement="If f is differentiable on (a, b), f → +∞ at both ends, and f′ vanishes at "
    "exactly one point x̂, then f attains its minimum over (a, b) at x̂, uniquely (a "
    "minimum exists by the limits; it is a stationary point). (a, b) is the variable's "
    "whole domain ((0, ∞) for a positive one, ℝ for a real one). The claim argmin_x F = "
    "x̂ is read as written; F may be the chain's expression with other variables fixed "
    "at values ``at`` that a consequence checked above shows minimise it for every x "
    "(a joint minimum, one variable at a time). Finite additive terms free of x are "
    "dropped before taking the limits.",
    relation="⇒",
    preconditions=_coercive_preconditions,
)


def _specialise_preconditions(prev, new, *, values, because):
    """Obligations of :data:`SPECIALISE`; see its statement."""
    if set(because) != set(values):
        raise RuleDoesNotApply("every value needs the quantity it is (because=)")
    established = context().established
    known = context().known
    out: list = []
    for part in components(new):
        general = [e for e in established if e.xreplace(values) == part]
        out.append(
            _Fact(
                bool(general),
                f"{sp.sstr(part)} is a consequence checked above at "
                f"{', '.join(f'{k} = {sp.sstr(v)}' for k, v in values.items())}",
            )
        )
    for var, value in values.items():
        # Earlier chains' results, and this chain's own expressions (each equal to prev).
        facts = {**known, **{e: prev for e in context().same if e != prev}}
        out.append(
            Zero(
                because[var].xreplace(facts) - value,
                f"{var} = {sp.sstr(value)}: {sp.sstr(because[var])}, by the chains above",
            )
        )
        out.extend(
            Satisfies(value, name, f"{var} = {sp.sstr(value)} is {name}, as declared")
            for name in ("positive", "real", "integer")
            if var.assumptions0.get(name)
        )
    return out


class _Fact(Obligation):
    def __init__(self, ok: bool, what: str) -> None:
        self.ok, self.what = ok, what

    def discharge(self) -> tuple[bool, str]:
        return self.ok, self.what if self.ok else f"not so: {self.what}"


#: A consequence proved for symbolic parameters holds at values meeting their assumptions.
SPECIALISE = Rule(
    name="a consequence proved for all parameter values, at given values",
    statement="A consequence derived for symbolic parameters under their declared "
    "assumptions holds at any values meeting those assumptions. Each part of the claim "
    "must be a consequence checked above with the values substituted; each value must "
    "be what the quantity it stands for (``because``) reduces to, given the results of "
    "the chains above; and each value meets its parameter's declared assumptions.",
    relation="⇒",
    preconditions=_specialise_preconditions,
)


# ---------------------------------------------------------------------------
# Sums of nonnegative parts, optima and limits read from structured claims
# (derivation.gibbs, derivation.rlhf_optimum, derivation.gaussian_kl)
# ---------------------------------------------------------------------------


#: φ(x) = x − 1 − log x, the gap in log x ≤ x − 1: φ ≥ 0 on x > 0, = 0 only at x = 1.
LogGap = notation(
    "LogGap",
    lambda printer, x: rf"\varphi\left({printer._print(x)}\right)",
    lambda x: x - 1 - sp.log(x),
    nargs=1,
)


def _finite_upward(limit) -> list[Obligation]:
    _, lo, hi = limit
    return [
        Satisfies(hi - lo, "integer", f"the sum over {sp.sstr(lo)}..{sp.sstr(hi)} is finite"),
        Satisfies(
            hi - lo + 1, "nonnegative", f"the sum runs upwards ({sp.sstr(lo)} ≤ {sp.sstr(hi)} + 1)"
        ),
    ]


def _hide_sums(e: sp.Basic) -> sp.Basic:
    """``e`` with each finite sum running upwards whose terms are > 0 replaced by a
    symbol ≥ 0 (> 0 when the sum has at least one term), innermost first."""

    def hide(s: sp.Sum) -> sp.Basic:
        lengths = [hi - lo + 1 for _, lo, hi in s.limits]
        if not all(n.is_integer and n.is_nonnegative for n in lengths):
            return s
        if s.function.is_positive is not True:
            return s
        if all(n.is_positive for n in lengths):
            return sp.Dummy(positive=True)
        return sp.Dummy(nonnegative=True)

    return e.replace(lambda a: isinstance(a, sp.Sum), hide)


class Sign(Obligation):
    """``expr`` > 0 (``strict``) or ≥ 0 by sympy's assumptions, where a finite sum
    running upwards whose terms are > 0 counts as > 0, or as ≥ 0 when it may be empty:
    sympy does not know that Σ_{j=1}^{L} a_j ≥ 0 for a_j > 0 and L ≥ 0."""

    def __init__(self, expr: sp.Basic, what: str, *, strict: bool = False) -> None:
        self.expr, self.what, self.strict = expr, what, strict

    def discharge(self) -> tuple[bool, str]:
        e = unfold(sp.sympify(self.expr))
        wrong = bound_range_errors(e)
        if wrong:
            return False, f"{self.what}: {'; '.join(wrong)}"
        if e.is_number and not e.is_Rational:
            return False, f"{self.what}: {sp.sstr(e)} is a closed number; its sign would be numeric"
        sign, word = ("is_positive", ">") if self.strict else ("is_nonnegative", "≥")
        hidden = _hide_sums(e)
        for form in (hidden, sp.simplify(hidden), sp.factor(sp.simplify(hidden))):
            if getattr(form, sign) is True:
                return True, f"{self.what}: {sp.sstr(e)} {word} 0"
        return False, f"{self.what}: sympy cannot decide that {sp.sstr(e)} {word} 0"


def Nonnegative(expr: sp.Basic, what: str) -> Sign:
    """``expr`` ≥ 0 (:class:`Sign`)."""
    return Sign(expr, what)


#: A ≥ B when A − B ≥ 0 by the declared assumptions.
DROP_NONNEGATIVE = Rule(
    name="drop a nonnegative term",
    statement="A ≥ B when A − B ≥ 0, which sympy's assumption system decides from the "
    "declared assumptions (a finite sum of terms ≥ 0 counts as ≥ 0).",
    relation="≥",
    preconditions=lambda prev, new: [
        Nonnegative(prev - new, f"previous − new = {sp.sstr(prev - new)} ≥ 0")
    ],
)


def _divides_as_zero(part: sp.Basic, cond: sp.Basic, powers=(1,)):
    """h with part = h·d, h > 0 and d one of ±(L − R)^k (k in ``powers``), or None.

    Then part = 0 exactly when L = R (the condition ``cond``, an ``Eq``).
    """
    if not isinstance(cond, sp.Eq):
        return None
    for d in [s * (cond.lhs - cond.rhs) ** k for k in powers for s in (1, -1)]:
        h = sp.factor(sp.simplify(unfold(part) / unfold(d)))
        if sp.simplify(_hide_sums(h)).is_positive is True:
            return h, d
    return None


def _zero_iff_claim(new: sp.Basic):
    """(D, conditions) from And(D ≥ 0, Equivalent(D = 0, And(conditions)))."""
    parts = components(new)
    ge = [c for c in parts if isinstance(c, sp.GreaterThan) and c.rhs == 0]
    eqv = [c for c in parts if isinstance(c, sp.Equivalent)]
    if len(parts) != 2 or len(ge) != 1 or len(eqv) != 1:
        raise RuleDoesNotApply(
            f"the claim must read D ≥ 0 ∧ (D = 0 ⟺ conditions), not {sp.sstr(new)}"
        )
    d = ge[0].lhs
    sides = list(eqv[0].args)
    zero = [s for s in sides if isinstance(s, sp.Eq) and s.lhs == d and s.rhs == 0]
    if len(sides) != 2 or not zero:
        raise RuleDoesNotApply(f"the equivalence must read {sp.sstr(d)} = 0 ⟺ conditions")
    sides.remove(zero[0])
    conds = list(components(sides[0]))
    if not all(isinstance(c, sp.Eq) for c in conds):
        raise RuleDoesNotApply(f"each condition must be an equation L = R, not {sp.sstr(sides[0])}")
    return d, conds


def _gap_terms(prev: sp.Basic):
    """[(term, weight, x, limit or None)] for the terms w·φ(x) or Σ w·φ(x) of prev."""
    out = []
    for term in sp.Add.make_args(prev):
        sums = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Sum)]
        if len(sums) == 1 and len(sums[0].limits) == 1:
            outer = term / sums[0]
            body, limit = sums[0].function, sums[0].limits[0]
        else:
            outer, body, limit = sp.S.One, term, None
        gaps = [f for f in sp.Mul.make_args(body) if isinstance(f, LogGap)]
        if len(gaps) == 1:
            out.append((term, outer * body / gaps[0], gaps[0].args[0], limit))
    return out


def _zero_iff_preconditions(prev, new):
    d, conds = _zero_iff_claim(new)
    x = sp.Symbol("x", positive=True)
    checks: list[Obligation] = [
        OnChain(d, prev, "D is the chain's expression"),
        Minimum(LogGap(x), x, sp.Interval.open(0, sp.oo), 0, "lemma: φ(x) = x − 1 − log x ≥ 0"),
        Solves((LogGap(x),), (x,), {x: sp.S.One}, "lemma: φ(x) = 0 only at x = 1"),
    ]
    terms = _gap_terms(prev)
    rest = prev - sum((t for t, *_ in terms), sp.S.Zero)
    unused = list(conds)

    def match(part, powers, what):
        for c in unused:
            found = _divides_as_zero(part, c, powers)
            if found is not None:
                h, dd = found
                unused.remove(c)
                checks.append(Zero(part - h * dd, f"{what} = {sp.sstr(h)}·({sp.sstr(dd)})"))
                checks.append(Sign(h, f"so {what} = 0 exactly when {sp.sstr(c)}", strict=True))
                return
        raise RuleDoesNotApply(f"no condition of the claim says when {what} = {sp.sstr(part)} is 0")

    for _, weight, arg, limit in terms:
        checks.append(Sign(weight, f"weight {sp.sstr(weight)} > 0", strict=True))
        checks.append(Sign(arg, f"φ's argument {sp.sstr(arg)} > 0", strict=True))
        if limit is not None:
            checks.extend(_finite_upward(limit))
        match(arg - 1, (1,), f"{sp.sstr(arg)} − 1")
    if rest != 0:
        checks.append(Nonnegative(rest, f"the rest {sp.sstr(rest)} ≥ 0"))
        match(rest, (1, 2), "the rest")
    if unused:
        raise RuleDoesNotApply(f"conditions {', '.join(map(sp.sstr, unused))} match no part")
    if not terms:
        raise RuleDoesNotApply("no term w·φ(x) or Σ w·φ(x) in the previous line")
    return checks


#: D = Σ w_i φ(x_i) + rest with w_i > 0 and rest ≥ 0: D ≥ 0, and D = 0 iff every x_i = 1
#: and rest = 0.
ZERO_IFF_PARTS_ZERO = Rule(
    name="sum of nonnegative parts: ≥ 0, = 0 iff each part is 0",
    statement="φ(x) = x − 1 − log x ≥ 0 for x > 0, with φ(x) = 0 only at x = 1 (sympy: "
    "its minimum over x > 0 is 0 and φ = 0 has the single root 1). If the previous line "
    "D is a sum of terms w·φ(x) and finite sums Σ_i w_i φ(x_i) (running upwards) with "
    "weights w > 0, plus a rest ≥ 0, then D ≥ 0, and D = 0 exactly when every x = 1 "
    "and the rest is 0. The claim D ≥ 0 ∧ (D = 0 ⟺ conditions) is read as written: D "
    "must be the chain's expression (or an earlier chain's start whose result it is, or "
    "a notation defined as one of these), "
    "and each condition L = R must be equivalent to one part vanishing, checked as "
    "x − 1 = h·(±(L − R)) or rest = h·(±(L − R))^k with h > 0, k ∈ {1, 2}; every "
    "part has exactly one condition. A condition with a free index holds for every "
    "index of its sum.",
    relation="⇒",
    preconditions=_zero_iff_preconditions,
)


def _optimum_by_gibbs(prev, new, *, term, established):
    parts = components(new)
    opt = [c for c in parts if isinstance(c, sp.Eq) and isinstance(c.lhs, Argmax)]
    value = [c for c in parts if c not in opt]
    if len(parts) != 2 or len(opt) != 1 or len(value) != 1 or not isinstance(value[0], sp.Eq):
        raise RuleDoesNotApply(
            f"the claim must read argmax(F, vars) = S ∧ F(S) = V, not {sp.sstr(new)}"
        )
    (opt,), (value,) = opt, value
    objective, over, best = opt.lhs.objective, opt.lhs.over, opt.rhs
    if established not in context().established:
        raise RuleDoesNotApply("the KL's sign and equality case must be a claim checked earlier")
    d, conds = _zero_iff_claim(established)
    if d != term:
        raise RuleDoesNotApply(f"the established claim is about {sp.sstr(d)}, not {sp.sstr(term)}")
    a, c = _affine_parts(prev, term)
    names = ", ".join(map(sp.sstr, over))
    index = [v for v in over if isinstance(v, sp.IndexedBase)]
    componentwise = [
        cond
        for cond in conds
        for base in index
        if any(isinstance(s, sp.Indexed) and s.base == base for s in (cond.lhs, cond.rhs))
    ]
    if len(componentwise) != 1:
        raise RuleDoesNotApply(f"no condition of the established claim fixes {names}")
    (cond,) = componentwise
    (var,) = [s for s in (cond.lhs, cond.rhs) if isinstance(s, sp.Indexed) and s.base in index]
    other = cond.rhs if var == cond.lhs else cond.lhs
    if not isinstance(unfold(best), sp.Lambda):
        raise RuleDoesNotApply(f"the maximiser {sp.sstr(best)} must unfold to i ↦ S_i")
    # At the maximiser D = 0, so the other conditions hold there: a condition s = v on a
    # symbol (a support's mass) is substituted before the value is compared.
    at = {
        cond.lhs: cond.rhs
        for cond in conds
        if cond not in componentwise and isinstance(cond.lhs, sp.Symbol)
    }
    where = (
        f" where {', '.join(f'{sp.sstr(k)} = {sp.sstr(v)}' for k, v in at.items())}" if at else ""
    )
    return [
        OnChain(objective, prev, "the objective maximised is the chain's"),
        Established([established], f"{sp.sstr(term)} ≥ 0, = 0 exactly under its conditions"),
        Positive(-a, f"the KL term's coefficient {sp.sstr(a)} < 0"),
        FreeOf(c, over, f"the rest {sp.sstr(c)} does not depend on {names}"),
        Zero(unfold(best)(*var.indices) - other, f"the claimed maximiser is {sp.sstr(other)}"),
        Zero(
            unfold(value.lhs - value.rhs).xreplace(at),
            f"{sp.sstr(value.lhs)} = {sp.sstr(value.rhs)}{where}",
        ),
        Zero(unfold(value.rhs - c).xreplace(at), f"the value is the rest {sp.sstr(c)}{where}"),
    ]


#: F = c − a·D with a > 0 and D ≥ 0, = 0 exactly when P = Q: argmax F = Q, max F = c.
OPTIMUM_BY_GIBBS = Rule(
    name="maximiser of c − a·D_KL(P‖Q), a > 0",
    statement="If F(P) = c − a·D(P) with a > 0 and c free of P, and D(P) ≥ 0 with D(P) "
    "= 0 exactly under stated conditions (a claim checked earlier in the derivation, "
    "e.g. by Gibbs' inequality), then F ≤ c, and the maximisers of F are the P meeting "
    "those conditions. The claim argmax_P F = S ∧ F(S) = V is read as written: F must "
    "be the chain's expression and the previous line c − a·D; the one condition on P's "
    "entries must be P_i = S_i; V must equal both F(S), written out, and c, where the "
    "earlier claim's other conditions (s = v on a symbol, e.g. a support's missing mass "
    "= 0) hold. Those other conditions are taken from the earlier claim as part of what "
    "P = S means; this rule does not re-derive them.",
    relation="⇒",
    preconditions=_optimum_by_gibbs,
)


def _limit_preconditions(prev, new):
    if not (isinstance(new, sp.Eq) and isinstance(new.lhs, sp.Limit)):
        raise RuleDoesNotApply(f"the claim must read lim F = L, not {sp.sstr(new)}")
    f, var, point, side = new.lhs.args
    return [
        OnChain(f, prev, "F is the chain's expression"),
        LimitIs(f, var, point, str(side), new.rhs, f"lim {var} → {point}{side} of F"),
    ]


#: lim F = L, computed by sympy, for the chain's F.
LIMIT_OF_CHAIN = Rule(
    name="a limit sympy computes",
    statement="lim_{t→t₀} F(t) = L where F is the chain's expression and sympy's limit "
    "of F is exactly L (+∞ allowed).",
    relation="⇒",
    preconditions=_limit_preconditions,
)
