r"""How a step is checked: the six levels, the sound reduction to zero, obligations, rules.

A step *claims* a level by the check it carries; the checker runs that check and
reports the level only if it passes. Each check class can reach exactly one level,
and only with the means that level allows:

``Proved()``
    prev − new reduces to exactly 0 by sound transformations (:func:`reduce_to_zero`);
    for a ``⇒`` step, each equation the claim states (``sp.Eq``) reduces to 0. Claims
    of optimisers (:mod:`.claims`) need a rule that reads them.
``ByRule(rule, ..., given="")``
    new = rule(prev) for a named, reviewed :class:`Rule`; the remainder
    rule(prev) − new and the rule's side conditions are then checked. A side
    condition stated as ``given`` (a hypothesis, shown) makes the step "asserted";
    a fact the rule rests on that was checked more weakly (an induction's base case
    for sizes) caps the step at that fact's level.
``UnderConstraint(*constraints)``
    zero only after substituting the constraints (Σp = 1), each a :class:`Constraint`
    made by :func:`sums_to_one`, :func:`moments` or :func:`equations`, which also
    writes its label. The checker first tries without them: if the step needs no
    constraint it is reported as proved, so a step cannot claim a constraint it does
    not use.
``ForSizes(sizes, instantiate)``
    exact, but only for the listed concrete sizes.
``Numeric(points, dps, rtol)``
    a high-precision spot check with a relative tolerance, not a proof, so it
    establishes only "≈"; the only check that evaluates numbers.

Soundness rules the reduction keeps (see shared/notes/sympy-derivations.md):
logarithms are split only under declared positivity (``expand_log`` without
``force``); a remainder is zero only when it *is* 0 (``== 0`` after
simplification; ``Expr.equals`` is never used, because a ``True`` from it may rest
on numerical evaluation and ``None`` means undecided); exact levels refuse
floating-point numbers; bound variables are renamed with ``xreplace`` (``subs``
skips them), and their declared assumptions must hold over their whole range
(:func:`bound_range_errors`); notation is unfolded before anything is checked, so
assumptions declared on a notation are never relied on; constraints are substituted
only after logarithms are split.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import functools
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sympy as sp
from sympy.printing.str import StrPrinter

from klspec.spec.derivations.claims import Argmax, Argmin
from klspec.spec.derivations.notation import unfold

__all__ = [
    "BudgetExceeded",
    "ByRule",
    "Check",
    "Constraint",
    "ForSizes",
    "FreeOf",
    "Holds",
    "InRange",
    "Level",
    "LimitIs",
    "Minimum",
    "Numeric",
    "Obligation",
    "Outcome",
    "Positive",
    "Proved",
    "Reduction",
    "Rule",
    "RuleDoesNotApply",
    "Satisfies",
    "Solves",
    "UnderConstraint",
    "Zero",
    "bound_range_errors",
    "equations",
    "moments",
    "reduce_to_zero",
    "sums_to_one",
    "time_budget",
]


class Level(enum.IntEnum):
    """How strongly a step was checked, strongest last.

    ``ASSERTED`` is a rule applied with a side condition that is *given* (a stated
    hypothesis of the derivation, shown beside the step) rather than checked.
    """

    ASSERTED = 0
    NUMERIC = 1
    FOR_SIZES = 2
    UNDER_CONSTRAINT = 3
    BY_RULE = 4
    PROVED = 5

    @property
    def words(self) -> str:
        return self.name.lower().replace("_", " ")


#: Relations a step can state between the previous expression and its own.
RELATIONS = ("=", "≥", "≤", "≈", "⇒")


@dataclass(frozen=True)
class Outcome:
    """What one check reached: ``level`` (None if it reached nothing) and ``detail``."""

    ok: bool
    level: Level | None
    detail: str
    label: str = ""


# ---------------------------------------------------------------------------
# The sound reduction to zero
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Reduction:
    """Result of :func:`reduce_to_zero`: ``zero`` and how, or the remainder left."""

    zero: bool
    how: str
    remainder: sp.Basic


def _bound_symbol(var: sp.Symbol, depth: int) -> sp.Symbol:
    """The canonical name of a variable bound at ``depth`` (same assumptions)."""
    return sp.Symbol(f"ι{depth}", **var.assumptions0)


def canonical_bound(expr: sp.Basic, depth: int = 0) -> sp.Basic:
    """Rename every variable bound by a Sum, Product or Integral by its nesting depth.

    Σ_i f(i) and Σ_j f(j) become the same expression, so they cancel structurally.
    Renaming uses ``xreplace`` (``subs`` would skip bound variables).
    """
    if isinstance(expr, (sp.Sum, sp.Product, sp.Integral)):
        # Rename all of this construct's variables at once (through fresh dummies), so
        # that swapping names between its own limits cannot capture a variable.
        olds = [limit[0] for limit in expr.limits]
        news = [_bound_symbol(v, depth + k) for k, v in enumerate(olds)]
        dummies = [sp.Dummy() for _ in olds]
        body = expr.function.xreplace(dict(zip(olds, dummies, strict=True)))
        body = body.xreplace(dict(zip(dummies, news, strict=True)))
        limits = []
        for k, (new, limit) in enumerate(zip(news, expr.limits, strict=True)):
            bounds = [b.xreplace(dict(zip(olds[:k], news[:k], strict=True))) for b in limit[1:]]
            limits.append((new, *(canonical_bound(b, depth) for b in bounds)))
        return type(expr)(canonical_bound(body, depth + len(olds)), *limits)
    if not expr.args or isinstance(expr, (sp.Symbol, sp.Indexed, sp.IndexedBase)):
        return expr
    return expr.func(*(canonical_bound(a, depth) for a in expr.args))


def split_sums(expr: sp.Basic) -> sp.Basic:
    """Linearity of finite sums, to a normal form. Sound for every finite Sum; infinite
    ones are left whole.

    Σ(a·f + g) → a·Σf + Σg for a free of every summation index; a sum left as a
    factor inside another sum is moved in, Σ_j g(j)·Σ_i h(i, j) → Σ_j Σ_i g(j)·h(i, j)
    (a double sum, which sympy stores as one Sum with two limits). Applied bottom-up;
    a sum of a constant over independent limits becomes the constant times the count.
    """

    def one(s: sp.Sum) -> sp.Basic:
        limits = s.limits
        if any(b.is_finite is not True for lim in limits for b in lim[1:]):
            return s  # an infinite series splits only where its parts converge: not here
        bound = {lim[0] for lim in limits}
        total = sp.S.Zero
        for term in sp.Add.make_args(sp.expand(s.function)):
            coeff, dep = term.as_independent(*bound, as_Add=False)
            inner = [f for f in sp.Mul.make_args(dep) if isinstance(f, sp.Sum)]
            if len(inner) == 1 and not ({lim[0] for lim in inner[0].limits} & dep.free_symbols):
                (sub,) = inner
                rest = dep / sub
                total += coeff * one(sp.Sum(rest * sub.function, *sub.limits, *limits))
                continue
            if dep == 1 and not any(sp.Tuple(*lim[1:]).free_symbols & bound for lim in limits):
                count = sp.Mul(*(hi - lo + 1 for _, lo, hi in limits))
                total += coeff * count
                continue
            total += coeff * sp.Sum(dep, *limits)
        return total

    return expr.replace(lambda e: isinstance(e, sp.Sum), one)


#: Integrals a derivation's hypotheses say exist (``Derivation.integrable``), while it is
#: checked: merging ∫f + ∫g into ∫(f + g) is sound only when both exist.
_INTEGRABLE: contextvars.ContextVar[tuple[sp.Basic, ...]] = contextvars.ContextVar(
    "integrable", default=()
)


@contextlib.contextmanager
def integrable(forms: Iterable[sp.Integral]) -> Iterator[None]:
    """Declare, for the duration, integrals that exist (hypotheses of a derivation)."""
    token = _INTEGRABLE.set(tuple(canonical_bound(sp.sympify(f)) for f in forms))
    try:
        yield
    finally:
        _INTEGRABLE.reset(token)


def _exists(integral: sp.Integral) -> bool:
    """Whether ``integral`` is known to exist (be finite).

    An integrand with an unknown function (a density p) exists when it is a linear
    combination, with coefficients free of the variable, of integrands declared to
    (:func:`integrable`). Any other integral exists when sympy evaluates it to a finite
    value.
    """
    if integral.function.atoms(sp.core.function.AppliedUndef):
        declared = _INTEGRABLE.get()
        variables = {limit[0] for limit in integral.limits}
        body = sp.expand(sp.expand_log(integral.function, deep=True))
        for term in sp.Add.make_args(body):
            _, dep = term.as_independent(*variables, as_Add=False)
            if canonical_bound(sp.Integral(dep, *integral.limits)) not in declared:
                return False
        return True
    return _evaluates_finite(integral)


@functools.lru_cache(maxsize=256)
def _evaluates_finite(integral: sp.Integral) -> bool:
    """A sufficient test that an integral of an explicit function is finite.

    Over (−∞, ∞), [a, ∞) or (−∞, b]: f continuous on the range (sympy's
    ``continuous_domain``) and x²·f(x) → 0 at each infinite end, so |f| ≤ C/x² far
    out. Over a finite interval: f continuous on it. Otherwise sympy must evaluate it
    to a finite value.
    """
    from sympy.calculus.util import continuous_domain

    if len(integral.limits) == 1 and len(integral.limits[0]) == 3:
        t, lo, hi = integral.limits[0]
        f = sp.expand(sp.expand_log(integral.function, deep=True))  # log e^u = u, u real
        span = sp.Interval(lo, hi)
        ends = [(end, "-" if end is sp.oo else "+") for end in (lo, hi) if end in (sp.oo, -sp.oo)]
        try:
            if continuous_domain(f, t, sp.S.Reals).is_superset(span) and all(
                sp.limit(t**2 * f, t, end, side) == 0 for end, side in ends
            ):
                return True
        except (NotImplementedError, ValueError, TypeError):
            pass  # sympy cannot decide it this way: try evaluating it
    value = integral.doit()
    return not value.atoms(sp.Integral) and value.is_finite is True


def merge_integrals(expr: sp.Basic) -> sp.Basic:
    """Linearity of integrals: a·∫f + b·∫g → ∫(a·f + b·g) over the same limits.

    Sound when the integrals on the left exist, which is checked (:func:`_exists`):
    ∫₁^∞ dx/x − ∫₁^∞ dx/(x + 1) is not ∫₁^∞ dx/(x(x + 1)) = log 2, since neither
    exists. Only merges; splitting needs existence of the parts, which only a stated
    constraint (UnderConstraint) may supply.
    """
    if not isinstance(expr, sp.Basic) or not expr.args:
        return expr
    expr = expr.func(*(merge_integrals(a) for a in expr.args))
    if not isinstance(expr, sp.Add):
        return expr
    groups: dict[tuple, list[tuple[sp.Basic, sp.Integral, sp.Basic]]] = {}
    rest = []
    for term in expr.args:
        factors = sp.Mul.make_args(term)
        integrals = [f for f in factors if isinstance(f, sp.Integral)]
        if len(integrals) == 1:
            (integral,) = integrals
            coeff = sp.Mul(*(f for f in factors if f is not integral))
            if not coeff.free_symbols & {limit[0] for limit in integral.limits}:
                groups.setdefault(integral.limits, []).append((coeff, integral, term))
                continue
        rest.append(term)
    merged = []
    for limits, members in groups.items():
        if len(members) > 1 and not all(_exists(integral) for _, integral, _ in members):
            rest.extend(term for _, _, term in members)  # cannot merge: keep them apart
            continue
        merged.append(sp.Integral(sp.Add(*(c * i.function for c, i, _ in members)), *limits))
    return sp.Add(*rest, *merged)


#: A Rational whose denominator is a power of two this large is a converted binary float
#: (``Rational(0.7)`` is 3152519739159347/4503599627370496), never what a spec means.
_FLOAT_DENOMINATOR = 2**40


def _inexact(expr: sp.Basic) -> bool:
    """Floats, or rationals that are binary floats in disguise (``Rational(0.7)``)."""
    for a in sp.preorder_traversal(expr):
        if isinstance(a, sp.Float):
            return True
        if isinstance(a, sp.Rational) and a.q >= _FLOAT_DENOMINATOR and a.q & (a.q - 1) == 0:
            return True
    return False


class BudgetExceeded(BaseException):
    """A check ran out of time: undecided, so failed.

    A BaseException so that sympy's broad ``except Exception`` handlers cannot swallow it.
    """


@contextlib.contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Raise :class:`BudgetExceeded` in the block after ``seconds`` (main thread only).

    sympy can spend unbounded time on innocent-looking input (``simplify`` on
    c·log n with a huge-denominator c computes n**c); a check must end either way.
    Elsewhere than the main thread (no SIGALRM there) the block runs unbounded.
    """
    if (
        seconds is None
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
    ):
        yield
        return

    def expire(signum, frame):
        raise BudgetExceeded(f"check exceeded its {seconds:g} s budget")

    previous = signal.signal(signal.SIGALRM, expire)
    start, (outer, _) = time.monotonic(), signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:  # someone else's timer was running: give it back what is left
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))


def _simplify(expr: sp.Basic) -> sp.Basic:
    """``simplify`` without its own ``doit``: evaluation is a separate, later stage.

    Infinite series are hidden from it: ``simplify`` combines Σ a_k − Σ b_k into
    Σ (a_k − b_k), which is sound only when both converge (Σ 1/k − Σ 1/(k+1) is ∞ − ∞,
    not 1).
    """
    hidden = {
        s: sp.Dummy()
        for s in expr.atoms(sp.Sum)
        if any(b.is_finite is not True for limit in s.limits for b in limit[1:])
    }
    out = sp.simplify(expr.xreplace(hidden), doit=False)
    return out.xreplace({d: s for s, d in hidden.items()})


def _evaluate(expr: sp.Basic) -> sp.Basic:
    """``doit``, except for integrals of unknown functions, which sympy cannot evaluate
    anyway (and can spend seconds trying to)."""
    hidden = {
        i: sp.Dummy()
        for i in expr.atoms(sp.Integral)
        if i.function.atoms(sp.core.function.AppliedUndef)
    }
    out = expr.xreplace(hidden).doit()
    return out.xreplace({d: i for i, d in hidden.items()})


def _forms(expr: sp.Basic, *, evaluate: bool = True) -> Iterator[tuple[str, sp.Basic]]:
    """Ever stronger sound rewrites of ``expr``, each with a name; cheap ones first.

    ``evaluate=False`` stops before ``doit``.
    """
    e = canonical_bound(expr)
    yield "structurally", e
    e = sp.expand(sp.expand_log(split_sums(merge_integrals(e)), deep=True))
    e = canonical_bound(split_sums(e))
    yield "expand_log, expand, linearity", e
    e = _simplify(e)
    yield "simplify", e
    e = sp.expand(_simplify(e))
    yield "simplify twice", e
    if not evaluate:
        return
    d = sp.expand(sp.expand_log(_evaluate(e), deep=True))
    yield "doit (sums, integrals, derivatives), expand_log", d
    d = _simplify(canonical_bound(split_sums(d)))
    yield "doit, simplify", d
    yield "doit, simplify twice", _simplify(d)


def bound_range_errors(expr: sp.Basic) -> list[str]:
    """What is wrong with the ranges of the bound variables in ``expr`` (empty: nothing).

    sympy believes a bound variable's declared assumptions everywhere inside its sum,
    product or integral (``log`` splits, signs). They must therefore hold over the
    whole range it runs over: a positive index must start at ≥ 1 (a positive
    integration variable at ≥ 0), an integer index of a sum must start at an integer,
    and a sum or product must run upwards (sympy reads Σ_{i=a}^{b} with b < a − 1 as
    minus a sum over b + 1..a − 1, where the index takes other values). Each
    condition must be decidable from the limits' own assumptions.
    """
    errors = []
    for node in sp.preorder_traversal(expr):
        if not isinstance(node, (sp.Sum, sp.Product, sp.Integral)):
            continue
        discrete = not isinstance(node, sp.Integral)
        for limit in node.limits:
            if len(limit) != 3:
                continue  # an indefinite integral binds nothing with a range
            var, lo, hi = limit
            where = f"{var} in {type(node).__name__.lower()} over {sp.sstr(lo)}..{sp.sstr(hi)}"
            facts = var.assumptions0
            if discrete and (hi - lo + 1).is_nonnegative is not True and hi != sp.oo:
                upwards = f"{sp.sstr(hi)} ≥ {sp.sstr(lo)} − 1"
                errors.append(f"{where}: cannot show the range runs upwards ({upwards})")
            checks = []
            if facts.get("positive"):
                checks.append(((lo - 1) if discrete else lo, "nonnegative", "positive"))
            elif facts.get("nonnegative"):
                checks.append((lo, "nonnegative", "nonnegative"))
            if facts.get("negative"):
                checks.append(((-hi - 1) if discrete else -hi, "nonnegative", "negative"))
            if discrete and facts.get("integer"):
                checks.append((lo, "integer", "an integer"))
            if facts.get("real") and not discrete:
                checks.extend(
                    (b, "extended_real", "real") for b in (lo, hi) if b not in (sp.oo, -sp.oo)
                )
            for value, assumption, declared in checks:
                if getattr(value, f"is_{assumption}") is not True:
                    errors.append(
                        f"{where}: {var} is declared {declared}, which sympy cannot show "
                        "holds over the whole range"
                    )
    return list(dict.fromkeys(errors))


def reduce_to_zero(
    expr: sp.Basic,
    *,
    constraint: Callable[[sp.Basic], sp.Basic] | None = None,
    evaluate: bool = True,
) -> Reduction:
    """Reduce ``expr`` to exactly 0 with sound transformations, or say what is left.

    Notation is unfolded first. ``constraint`` (a substitution encoding e.g. Σp = 1)
    is applied to each rewritten form *after* logarithms have been split, then the
    form is expanded and simplified again. Floating-point numbers are refused: an
    exact level cannot rest on rounded arithmetic. ``evaluate=False`` skips the
    final stages that evaluate sums, integrals and derivatives (``doit``).
    """
    unfolded = unfold(sp.sympify(expr))
    if _inexact(unfolded):
        return Reduction(
            False,
            "contains a floating-point number, or a binary float turned Rational "
            "(Rational(0.7)); exact checks need exact numbers such as Rational(7, 10)",
            unfolded,
        )
    wrong = bound_range_errors(unfolded)
    if wrong:
        return Reduction(False, "; ".join(wrong), unfolded)
    last = unfolded
    for how, form in _forms(unfolded, evaluate=evaluate):
        last = form
        if form == 0:
            return Reduction(True, how, form)
        if constraint is not None:
            c = sp.expand(canonical_bound(split_sums(constraint(form))))
            if c == 0:
                return Reduction(True, f"{how}, constraint substituted", c)
            c = _simplify(c)
            if c == 0:
                return Reduction(True, f"{how}, constraint substituted, simplify", c)
            last = c
    return Reduction(False, "no sound rewrite reached 0", last)


# ---------------------------------------------------------------------------
# Obligations: the facts a check hands to sympy
# ---------------------------------------------------------------------------


class Obligation:
    """One fact sympy must establish. ``discharge()`` returns ``(ok, detail)``."""

    what: str

    def discharge(self) -> tuple[bool, str]:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Zero(Obligation):
    """``expr`` reduces to exactly 0 (:func:`reduce_to_zero`)."""

    expr: sp.Basic
    what: str = "remainder is 0"
    constraint: Callable[[sp.Basic], sp.Basic] | None = None

    def discharge(self) -> tuple[bool, str]:
        r = reduce_to_zero(self.expr, constraint=self.constraint)
        if r.zero:
            return True, f"{self.what} ({r.how})"
        return False, f"{self.what}: undecided, remainder {sp.sstr(r.remainder)} ({r.how})"


@dataclass(frozen=True)
class Positive(Obligation):
    """``expr`` > 0 by sympy's assumption system (after unfolding, then after simplify)."""

    expr: sp.Basic
    what: str = "positive"

    def discharge(self) -> tuple[bool, str]:
        e = unfold(sp.sympify(self.expr))
        if _inexact(e):
            return False, f"{self.what}: contains a floating-point number"
        wrong = bound_range_errors(e)
        if wrong:
            return False, f"{self.what}: {'; '.join(wrong)}"
        if e.is_number and not e.is_Rational:
            # sympy would decide the sign of a closed number like π − 355/113 by
            # evaluating it numerically: not a proof.
            return False, f"{self.what}: {sp.sstr(e)} is a closed number; its sign would be numeric"
        for form in (e, _simplify(e), sp.factor(_simplify(e))):
            if form.is_positive is True:
                return True, f"{self.what}: {sp.sstr(form)} > 0"
        return False, f"{self.what}: sympy cannot decide that {sp.sstr(e)} > 0"


@dataclass(frozen=True)
class Satisfies(Obligation):
    """``value`` has the sympy assumption ``assumption`` (``"positive"``, ``"real"``, ...).

    Decided by the assumption system. A closed number must be an exact rational: the
    sign of any other closed number (π − 355/113) is something sympy would decide by
    numerical evaluation, which is not a proof.
    """

    value: sp.Basic
    assumption: str
    what: str = "satisfies its assumption"

    def discharge(self) -> tuple[bool, str]:
        v = unfold(sp.sympify(self.value))
        if v.is_number and not v.is_Rational:
            return False, f"{self.what}: {sp.sstr(v)} is a closed number; its sign would be numeric"
        if getattr(v, f"is_{self.assumption}") is True:
            return True, f"{self.what}: {sp.sstr(v)} is {self.assumption}"
        return False, f"{self.what}: sympy cannot show {sp.sstr(v)} is {self.assumption}"


@dataclass(frozen=True)
class FreeOf(Obligation):
    """``expr`` (unfolded) does not contain any of ``symbols``."""

    expr: sp.Basic
    symbols: tuple[sp.Basic, ...]
    what: str = "free of the variables"

    def discharge(self) -> tuple[bool, str]:
        e = unfold(sp.sympify(self.expr))
        found = [s for s in self.symbols if e.has(s)]
        if found:
            return False, f"{self.what}: {sp.sstr(e)} contains {', '.join(map(sp.sstr, found))}"
        return True, self.what


@dataclass(frozen=True)
class Solves(Obligation):
    """``sympy.solve(equations, unknowns)`` has exactly one solution, ``expected``.

    Each solved value must reduce to the expected one exactly. With the unknowns'
    assumptions declared (``positive=True`` for a standard deviation) solve discards
    the solutions outside the domain.
    """

    equations: tuple[sp.Basic, ...]
    unknowns: tuple[sp.Symbol, ...]
    expected: Mapping[sp.Symbol, sp.Basic]
    what: str = "unique solution"

    def discharge(self) -> tuple[bool, str]:
        eqs = [unfold(sp.sympify(e)).doit() for e in self.equations]
        solutions = sp.solve(eqs, list(self.unknowns), dict=True)
        if len(solutions) != 1:
            return False, f"{self.what}: solve gave {len(solutions)} solutions {solutions}"
        (solution,) = solutions
        for var, value in self.expected.items():
            if var not in solution:
                return False, f"{self.what}: {var} left free in {solution}"
            if not reduce_to_zero(solution[var] - value).zero:
                return False, f"{self.what}: {var} = {sp.sstr(solution[var])}, not {value}"
        return True, f"{self.what}: {', '.join(f'{k} = {sp.sstr(v)}' for k, v in solution.items())}"


@dataclass(frozen=True)
class Minimum(Obligation):
    """``sympy.minimum(expr, var, domain)`` is exactly ``value``."""

    expr: sp.Basic
    var: sp.Symbol
    domain: sp.Set
    value: sp.Basic
    what: str = "minimum"

    def discharge(self) -> tuple[bool, str]:
        got = sp.minimum(unfold(self.expr), self.var, self.domain)
        if reduce_to_zero(got - self.value).zero:
            return True, f"{self.what}: min over {self.domain} is {sp.sstr(got)}"
        return False, f"{self.what}: min over {self.domain} is {sp.sstr(got)}, not {self.value}"


@dataclass(frozen=True)
class LimitIs(Obligation):
    """``sympy.limit(expr, var, point, side)`` is exactly ``value`` (``oo`` allowed)."""

    expr: sp.Basic
    var: sp.Symbol
    point: sp.Basic
    side: str
    value: sp.Basic
    what: str = "limit"

    def discharge(self) -> tuple[bool, str]:
        got = sp.limit(unfold(self.expr), self.var, self.point, self.side)
        if got == self.value or (got.is_finite and reduce_to_zero(got - self.value).zero):
            return True, f"{self.what}: limit {sp.sstr(got)}"
        return False, f"{self.what}: limit is {sp.sstr(got)}, not {sp.sstr(self.value)}"


ObligationsFn = Callable[[sp.Basic, sp.Basic], Sequence[Obligation]]


def _discharge_all(obligations: Iterable[Obligation]) -> tuple[bool, list[str]]:
    details = []
    for ob in obligations:
        ok, detail = ob.discharge()
        details.append(detail)
        if not ok:
            return False, details
    return True, details


def _weakest(obligations: Iterable[Obligation]) -> Level | None:
    """The weakest level an obligation reached by a check of its own (:class:`Holds`)."""
    levels = [ob.reached for ob in obligations if getattr(ob, "reached", None) is not None]
    return min(levels) if levels else None


class Holds(Obligation):
    """``lhs = rhs`` by ``check`` (a :class:`Check`): e.g. an induction's base case.

    The step that lists it reaches at most the level ``check`` reached.
    """

    def __init__(self, lhs: sp.Basic, rhs: sp.Basic, check: Check, what: str) -> None:
        self.lhs, self.rhs, self.check, self.what = lhs, rhs, check, what
        self.reached: Level | None = None

    def discharge(self) -> tuple[bool, str]:
        outcome = self.check.verify(self.lhs, self.rhs, "=")
        if not outcome.ok:
            return False, f"{self.what}: {outcome.detail}"
        self.reached = outcome.level
        label = outcome.label or (outcome.level.words if outcome.level is not None else "")
        return True, f"{self.what}: {label} ({outcome.detail})"


def _given_used(details: Iterable[str]) -> bool:
    """Whether a side condition was taken as given rather than checked (:class:`InRange`)."""
    return any(d.startswith(GIVEN) for d in details)


#: How the detail of a side condition taken as given begins.
GIVEN = "given: "


@dataclass(frozen=True)
class InRange(Obligation):
    """``value`` is an integer in {lo, ..., hi}: proved, or taken as ``given``.

    Decided by sympy's assumptions on value − lo and hi − value. When it can prove
    neither that the value is in range nor that it is out of range, the condition
    holds only if the step states it as a hypothesis (``given``), and the step is
    then at most "asserted". A value provably outside the range fails even so.
    """

    value: sp.Basic
    lo: sp.Basic
    hi: sp.Basic
    given: str = ""
    what: str = "in range"

    def discharge(self) -> tuple[bool, str]:
        v, lo, hi = (unfold(sp.sympify(e)) for e in (self.value, self.lo, self.hi))
        where = f"{sp.sstr(v)} ∈ {{{sp.sstr(lo)}, …, {sp.sstr(hi)}}}"
        below, above = v - lo, hi - v
        if v.is_integer is False or below.is_negative or above.is_negative:
            return False, f"{self.what}: {where} is false"
        if v.is_integer and below.is_nonnegative and above.is_nonnegative:
            return True, f"{self.what}: {where}"
        if self.given:
            return True, f"{GIVEN}{self.given} ({where}, not checked)"
        return False, f"{self.what}: sympy cannot show {where}; state it with given=..."


# ---------------------------------------------------------------------------
# Rules: named, reviewed rewrites
# ---------------------------------------------------------------------------


class RuleDoesNotApply(ValueError):
    """The expression does not have the shape the rule rewrites."""


@dataclass(frozen=True)
class Rule:
    """A named rewrite whose soundness a person reviewed (see :mod:`.rules`).

    ``statement`` is the mathematical fact the rule relies on. ``apply(prev, **params)``
    returns what the rule turns ``prev`` into (``None``: the rule only licenses the
    relation given its preconditions); ``preconditions(prev, new, **params)`` lists
    what sympy must establish for the rule to apply here. ``relation`` is the relation
    between prev and the result the rule guarantees.
    """

    name: str
    statement: str
    relation: str
    apply: Callable[..., sp.Basic] | None = None
    preconditions: Callable[..., Sequence[Obligation]] | None = None
    #: The strongest level a use can reach given its parameters (e.g. an induction whose
    #: base case is checked for sizes); None: "by rule".
    cap: Callable[..., Level] | None = None


# ---------------------------------------------------------------------------
# The checks a step can carry
# ---------------------------------------------------------------------------


class Check:
    """Base of the checks; ``verify`` returns an :class:`Outcome`."""

    level: Level

    def verify(self, prev: sp.Basic, new: sp.Basic, relation: str) -> Outcome:  # pragma: no cover
        raise NotImplementedError

    def _fail(self, detail: str) -> Outcome:
        return Outcome(False, None, detail)


@dataclass(frozen=True)
class Proved(Check):
    """prev − new reduces to 0; for ``⇒`` steps, each claimed equation's sides are equal.

    ``obligations`` add checks (they never replace these). A ``⇒`` claim of anything
    other than equations (argmin, argmax, ⇔) needs a rule (:class:`ByRule`).
    """

    obligations: ObligationsFn | None = None
    level = Level.PROVED

    def verify(self, prev, new, relation):
        # Inequalities are established only by a reviewed rule (ByRule), so that the
        # link between prev, new and what is checked is reviewed too.
        if relation not in ("=", "⇒"):
            return self._fail(f"a proof establishes '=' or '⇒', not '{relation}' (use a rule)")
        obligations: list[Obligation] = []
        if relation == "=":  # whatever else is listed, an equality is an equality
            obligations.append(Zero(prev - new, "previous − new = 0"))
        else:  # ⇒: the claim itself is what is proved, equation by equation
            equations = _claimed_equations(new)
            if equations is None:
                return self._fail(
                    "a '⇒' step proved by Proved() must claim equations (sp.Eq, or sp.And "
                    "of them) between expressions, each proved; argmin/argmax, "
                    "equivalences and other claims need a rule that reads them"
                )
            obligations.extend(
                Zero(lhs - rhs, f"claimed: {sp.sstr(lhs)} = {sp.sstr(rhs)}")
                for lhs, rhs in equations
            )
        if self.obligations is not None:
            obligations.extend(self.obligations(prev, new))
        ok, details = _discharge_all(obligations)
        return Outcome(ok, Level.PROVED if ok else None, "; ".join(details), "proved")


def _claimed_equations(claim: sp.Basic) -> list[tuple[sp.Basic, sp.Basic]] | None:
    """(lhs, rhs) of each equation of a ``⇒`` claim: ``sp.Eq`` or ``sp.And`` of them.

    None when the claim is anything else, or mentions optimiser sets (argmin): an
    equation between sets of minimisers is not something ``lhs − rhs = 0`` decides.
    """
    parts = claim.args if isinstance(claim, sp.And) else (claim,)
    if not all(isinstance(e, sp.Eq) for e in parts) or claim.has(Argmin, Argmax):
        return None
    return [(e.lhs, e.rhs) for e in parts]


@dataclass(frozen=True)
class ByRule(Check):
    """new = rule(prev) for a reviewed :class:`Rule`, remainder and preconditions proved.

    ``given`` states a side condition the rule may take without checking (a
    hypothesis of the derivation, e.g. "every sample is one of the outcomes"); a step
    that uses it reaches "asserted", not "by rule", and says so.
    """

    rule: Rule
    params: Mapping[str, Any] = field(default_factory=dict)
    obligations: ObligationsFn | None = None
    given: str = ""

    @property
    def level(self) -> Level:  # type: ignore[override]
        """What the step claims: "by rule", or less when it uses a given or a weaker fact."""
        level = Level.ASSERTED if self.given else Level.BY_RULE
        if self.rule.cap is not None:
            level = min(level, self.rule.cap(**self.params))
        return level

    def verify(self, prev, new, relation):
        rule = self.rule
        if rule.relation != relation:
            return self._fail(
                f"rule '{rule.name}' gives '{rule.relation}', the step states '{relation}'"
            )
        obligations: list[Obligation] = []
        if relation == "=" and rule.apply is None:
            return self._fail(f"rule '{rule.name}' states '=' but rewrites nothing to compare")
        params = dict(self.params)
        if self.given:
            params["given"] = self.given
        if rule.apply is not None:
            try:
                out = rule.apply(prev, **{k: v for k, v in params.items() if k != "given"})
            except RuleDoesNotApply as exc:
                return self._fail(f"rule '{rule.name}' does not apply: {exc}")
            obligations.append(Zero(out - new, f"rule({rule.name})(previous) − new = 0"))
        if rule.preconditions is not None:
            try:
                obligations.extend(rule.preconditions(prev, new, **params))
            except RuleDoesNotApply as exc:
                return self._fail(f"rule '{rule.name}' does not apply: {exc}")
            except TypeError as exc:  # a rule that takes no hypothesis
                if "given" not in str(exc):
                    raise
                return self._fail(f"rule '{rule.name}' takes nothing as given")
        if self.obligations is not None:
            obligations.extend(self.obligations(prev, new))
        if not obligations:
            return self._fail(f"rule '{rule.name}' checked nothing here")
        ok, details = _discharge_all(obligations)
        if ok and _given_used(details):
            return Outcome(
                True,
                Level.ASSERTED,
                "; ".join(details),
                f"asserted: {rule.name}, given {self.given}",
            )
        weaker = _weakest(obligations)
        if ok and weaker is not None and weaker < Level.BY_RULE:
            return Outcome(
                True, weaker, "; ".join(details), f"by rule: {rule.name}, {weaker.words}"
            )
        return Outcome(
            ok, Level.BY_RULE if ok else None, "; ".join(details), f"by rule: {rule.name}"
        )


@dataclass(frozen=True)
class Constraint:
    """A substitution a stated constraint licenses, with its label generated from it.

    Made by :func:`sums_to_one`, :func:`moments` or :func:`equations`, never from free
    text: the label a page shows is what the substitution does.
    """

    label: str
    substitute: Callable[[sp.Basic], sp.Basic]

    def __call__(self, expr: sp.Basic) -> sp.Basic:
        return self.substitute(expr)


@dataclass(frozen=True, init=False)
class UnderConstraint(Check):
    """prev − new is 0 once the ``constraints`` (:class:`Constraint` s) are applied.

    Each constraint maps an expression to the same expression with the constraint
    used (e.g. ``Σ_i p_i → 1``). They are applied only after logarithms are split. If
    prev − new is already 0 without them, the step is reported as proved instead.
    """

    constraints: tuple[Constraint, ...]
    level = Level.UNDER_CONSTRAINT

    def __init__(self, *constraints: Constraint) -> None:
        if not constraints:
            raise TypeError("UnderConstraint needs at least one constraint")
        for c in constraints:
            if not isinstance(c, Constraint):
                raise TypeError(
                    f"{c!r} is not a Constraint: make it with sums_to_one, moments or "
                    "equations, so its label is generated from what it substitutes"
                )
        object.__setattr__(self, "constraints", tuple(constraints))

    @property
    def constraint(self) -> str:
        """The constraints' labels, as the report and the docs show them."""
        return ", ".join(c.label for c in self.constraints)

    def substitute(self, expr: sp.Basic) -> sp.Basic:
        for c in self.constraints:
            expr = c(expr)
        return expr

    def verify(self, prev, new, relation):
        if relation != "=":
            return self._fail(f"a constraint check establishes '=', not '{relation}'")
        r = reduce_to_zero(prev - new, constraint=self.substitute)
        if not r.zero:
            return self._fail(
                f"not 0 even with {self.constraint}: remainder {sp.sstr(r.remainder)}"
            )
        # Does the step need its constraint at all? (Probed without evaluating sums and
        # integrals, which is where the cost is; a step that would need that to be
        # proved plainly is reported under its constraint, an understatement.)
        plain = reduce_to_zero(prev - new, evaluate=False)
        if plain.zero:
            return Outcome(True, Level.PROVED, f"needs no constraint ({plain.how})", "proved")
        return Outcome(
            True,
            Level.UNDER_CONSTRAINT,
            f"0 after {self.constraint} ({r.how}); not 0 without it",
            f"under constraint {self.constraint}",
        )


@dataclass(frozen=True)
class ForSizes(Check):
    """Exact for each listed concrete size only.

    ``instantiate(expr, size)`` builds the concrete expression for one size;
    ``constraint(expr, size)``, if given, is a substitution the definitions license
    at that size (applied after logarithms are split). ``describe`` names the sizes
    in the report, e.g. ``"|V|×T ∈ {2×1, …, 3×3}"``.
    """

    sizes: tuple
    instantiate: Callable[[sp.Basic, Any], sp.Basic]
    describe: str
    constraint: Callable[[sp.Basic, Any], sp.Basic] | None = None
    level = Level.FOR_SIZES

    def verify(self, prev, new, relation):
        if relation != "=":
            return self._fail(f"a size-by-size check establishes '=', not '{relation}'")
        if not self.sizes:
            return self._fail("no sizes listed")
        done = []
        for size in self.sizes:
            lhs, rhs = self.instantiate(prev, size), self.instantiate(new, size)
            con = None if self.constraint is None else (lambda e, s=size: self.constraint(e, s))
            r = reduce_to_zero(lhs - rhs, constraint=con)
            if not r.zero:
                return self._fail(f"size {size}: remainder {sp.sstr(r.remainder)}")
            done.append(str(size))
        return Outcome(
            True, Level.FOR_SIZES, f"exact for {len(done)} sizes", f"for sizes {self.describe}"
        )


@dataclass(frozen=True)
class Numeric(Check):
    """|prev − new| ≤ rtol·max(|prev|, |new|) at each point, with ``dps`` significant digits.

    A spot check, not a proof, so it establishes only "≈", and its label states the
    relative tolerance. ``points`` are substitutions for the free symbols (``({},)``
    for closed expressions). ``rtol`` defaults to 10^−(dps − 10). The tolerance is
    relative: an absolute one would accept e^−100 = 0.
    """

    points: tuple[Mapping[sp.Symbol, Any], ...] = ({},)
    dps: int = 50
    rtol: sp.Basic | None = None
    level = Level.NUMERIC

    def verify(self, prev, new, relation):
        if relation != "≈":
            return self._fail(f"a numeric check establishes '≈' only, not '{relation}'")
        rtol = sp.Rational(1, 10 ** (self.dps - 10)) if self.rtol is None else sp.sympify(self.rtol)
        if not (rtol.is_Rational and 0 < rtol < 1):
            return self._fail(f"the relative tolerance {rtol} is not an exact number in (0, 1)")
        worst = sp.S.Zero
        for point in self.points:
            values = []
            for e in (prev, new):
                v = unfold(e).xreplace({k: sp.sympify(x) for k, x in point.items()})
                v = sp.N(v.doit(), self.dps)
                if not v.is_number or v.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or not v.is_real:
                    return self._fail(
                        f"at {point}: does not evaluate to a finite real number ({v})"
                    )
                values.append(v)
            scale = max(abs(values[0]), abs(values[1]))
            if scale == 0:
                continue  # both exactly 0 at this precision
            error = abs(values[0] - values[1]) / scale
            if error > rtol:
                return self._fail(
                    f"at {point}: |previous − new| = {_sci(error)}·max(|previous|, |new|) "
                    f"> {_sci(rtol)}"
                )
            worst = max(worst, error)
        npts = len(self.points)
        return Outcome(
            True,
            Level.NUMERIC,
            f"|previous − new| ≤ {_sci(worst)}·max(|previous|, |new|) ≤ {_sci(rtol)} "
            f"at {npts} point(s), {self.dps} digits",
            f"numeric (relative error ≤ {_sci(rtol)}, {self.dps} digits)",
        )


def _sci(x: sp.Basic) -> str:
    """A positive number with two significant digits: ``1.0e-40``, ``0.0057``."""
    import mpmath

    with mpmath.workdps(30):
        return mpmath.nstr(mpmath.mpf(sp.N(x, 30)), 2, min_fixed=-4, max_fixed=4)


_SUPERSCRIPTS = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


class _LabelPrinter(StrPrinter):
    """sympy's str printer, with sums as Σ_{v=1..V} body."""

    def _print_Sum(self, expr):
        limits = " ".join(
            f"Σ_{{{self._print(v)}={self._print(a)}..{self._print(b)}}}" for v, a, b in expr.limits
        )
        return f"{limits} {self.parenthesize(expr.function, 40)}"


def _text(e: sp.Basic) -> str:
    """``e`` on one line of Unicode for a label: ``x²·p(x)``, ``π``, ``μ² + v``."""
    import re

    from sympy.printing.pretty.pretty_symbology import pretty_symbol

    out = _LabelPrinter({"order": "none"}).doprint(e)
    out = re.sub(r"\*\*(-?\d+)", lambda m: m.group(1).translate(_SUPERSCRIPTS), out)
    out = re.sub(r"[A-Za-z]+", lambda m: pretty_symbol(m.group(0)), out)
    return out.replace("*", "·")


def sums_to_one(base: sp.IndexedBase, lo: sp.Basic, hi: sp.Basic) -> Constraint:
    """The substitution licensed by "base sums to 1 over its last index, lo..hi".

    In Σ_v f·base[..., v] with f free of v (and no other limit depending on v), the sum
    over v is Σ_v base[..., v] = 1 and is removed, leaving f. The other indices of base
    may involve outer summation indices (a conditional c[x, ·] sums to 1 for every x).
    """

    def rewrite(e: sp.Sum) -> sp.Basic:
        limits = list(e.limits)
        factors = sp.Mul.make_args(e.function)
        for k, (v, a, b) in enumerate(limits):
            if (a, b) != (lo, hi):
                continue
            others = limits[:k] + limits[k + 1 :]
            if any(sp.Tuple(*lim[1:]).has(v) for lim in others):
                continue
            hits = [f for f in factors if f.has(v)]
            if len(hits) != 1:
                continue
            (f,) = hits
            if (
                isinstance(f, sp.Indexed)
                and f.base == base
                and f.indices[-1] == v
                and not sp.Tuple(*f.indices[:-1]).has(v)
            ):
                rest = e.function / f
                return sp.Sum(rest, *others) if others else rest
        return e

    label = f"Σ {_text(base.label)} = 1 over {_text(lo)}…{_text(hi)}"
    return Constraint(label, lambda e: e.replace(lambda x: isinstance(x, sp.Sum), rewrite))


def moments(density: sp.Basic, var: sp.Symbol, values: Mapping[int, sp.Basic]) -> Constraint:
    """∫ var^k·density d var = values[k] over the real line, for each k given.

    Integrals over (−∞, ∞) are split by linearity into multiples of these moments and
    the moments substituted; this is licensed because the moments exist (the
    constraint). An integrand term of any other form stays inside an integral.
    """

    def one(integral: sp.Integral) -> sp.Basic:
        if len(integral.limits) != 1 or tuple(integral.limits[0][1:]) != (-sp.oo, sp.oo):
            return integral
        t = integral.limits[0][0]
        d = density.xreplace({var: t})
        total, rest = sp.S.Zero, sp.S.Zero
        for term in sp.Add.make_args(sp.expand(integral.function)):
            coeff, dep = term.as_independent(t, as_Add=False)
            k = next((k for k in values if dep == d * t**k), None)
            if k is None:
                rest += term
            else:
                total += coeff * values[k]
        return total + (sp.Integral(rest, (t, -sp.oo, sp.oo)) if rest != 0 else 0)

    label = ", ".join(
        f"∫{_text(var**k * density) if k else _text(density)} = {_text(value)}"
        for k, value in sorted(values.items())
    )
    return Constraint(label, lambda e: e.replace(lambda a: isinstance(a, sp.Integral), one))


def equations(mapping: Mapping[sp.Basic, sp.Basic]) -> Constraint:
    """Replace each key by its value (``xreplace``): definitions or facts to use."""
    label = ", ".join(f"{_text(k)} = {_text(v)}" for k, v in mapping.items())
    return Constraint(label, lambda e: e.xreplace(dict(mapping)))
