"""Run checks outside pytest: against any implementation, with a report per clause.

:func:`run_check` runs one check with hypothesis (``@settings(...) @given(case=...)``
around the plain property) and returns a :class:`CheckResult`: the number of
examples that passed and, on failure, the message, the minimal counterexample
and a line that reproduces it, which calls :func:`replay` on the same arrays
(``replay('kl.nonnegative[pairs]', 'reference', p=np.array([...]), q=...)``)
inside ``python -c "..."``.

:func:`run` runs every check of the chosen clauses and reports per clause, as
each completes. Settings come from :data:`PROFILES`, plain ``hypothesis.settings``
objects (nothing is registered globally).
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import hypothesis
import numpy as np
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st

from klspec.spec import strategies
from klspec.spec._assert import literal
from klspec.spec.checks import Check, check_named, checks_for
from klspec.spec.clauses import CATALOG, Clause, clause
from klspec.spec.interface import Implementation

_COMMON = hypothesis.settings(
    database=None,
    deadline=None,
    report_multiple_bugs=False,
    # Health checks judge the strategies, not the implementation under test; timing
    # ones would make a conformance report depend on the machine.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # The explain phase reruns a shrunk failure to annotate it; reports do not use
    # that, and it can cost more than the search.
    phases=[p for p in Phase if p.name != "explain"],
)

#: Named settings for :func:`run` (``klspec check --profile``).
PROFILES: dict[str, hypothesis.settings] = {
    "fast": hypothesis.settings(_COMMON, max_examples=25, derandomize=True),
    "default": hypothesis.settings(_COMMON, max_examples=100),
    "thorough": hypothesis.settings(_COMMON, max_examples=2000),
}

#: How many inputs a profile tries while shrinking a failure (None: until hypothesis stops).
#: Shrinking the composite cases of the strategies costs ~10-30 ms per input, and a
#: failure can take hundreds; a count, unlike a time limit, keeps reports repeatable.
SHRINK_LIMITS: dict[str, int | None] = {"fast": 100, "default": 300, "thorough": None}


class _ShrinkLimit(BaseException):
    """Ends shrinking (hypothesis re-raises BaseExceptions at once)."""


Status = Literal["pass", "fail", "error", "skip"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check against one implementation.

    ``status`` is ``"pass"``, ``"fail"`` (a violation: ``message``,
    ``counterexample``, ``reproduce``, and the input itself as ``case``),
    ``"error"`` (the check itself could not run, e.g. its gate rejected every
    input) or ``"skip"`` (``reason``). ``examples`` counts inputs that passed
    before any failure. A failure's ``symptom`` says what kind it is (a key of
    :data:`klspec.spec._assert.SYMPTOMS`), and its ``cause``
    (:class:`klspec.conformance.causes.Cause`, when the run analysed it) why.
    """

    check: Check
    status: Status
    examples: int = 0
    seconds: float = 0.0
    message: str = ""
    counterexample: str = ""
    reproduce: str = ""
    reason: str = ""
    case: Any = None
    symptom: str = ""
    cause: Any = None


#: How a clause's result counts: "advisory" is an advisory clause not met, "xfail" a
#: failure listed as expected; neither decides the exit status.
Verdict = Literal["pass", "fail", "skip", "xfail", "advisory", "unfinished"]


@dataclass(frozen=True)
class ClauseResult:
    """The results of a clause's checks. It fails if any check fails or errs.

    ``expected`` maps clause ids and check names listed as expected failures
    (an xfail list) to the reason given.
    """

    clause: Clause
    results: tuple[CheckResult, ...]
    expected: Mapping[str, str] = field(default_factory=dict)

    @property
    def status(self) -> Literal["pass", "fail", "skip"]:
        statuses = {r.status for r in self.results}
        if statuses & {"fail", "error"}:
            return "fail"
        return "skip" if statuses <= {"skip"} else "pass"

    @property
    def examples(self) -> int:
        return sum(r.examples for r in self.results)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.results)

    @property
    def ran(self) -> int:
        """How many of its checks ran (were not skipped)."""
        return sum(r.status != "skip" for r in self.results)

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.status in ("fail", "error"))

    @property
    def expected_reason(self) -> str | None:
        """Why this clause's failures are expected (an xfail line), or None if they are not."""
        if self.clause.id in self.expected:
            return self.expected[self.clause.id]
        reasons = [self.expected.get(r.check.name) for r in self.failures]
        return "; ".join(dict.fromkeys(reasons)) if reasons and all(reasons) else None

    @property
    def unfinished(self) -> bool:
        """Whether the run's deadline ended one of its checks or kept it from starting."""
        from klspec.conformance.isolation import UNFINISHED

        return any(r.status == "skip" and r.reason == UNFINISHED for r in self.results)

    @property
    def verdict(self) -> Verdict:
        """How the clause counts: its status, with listed failures and advisory clauses apart.

        A clause the deadline cut short is "unfinished" unless a check already failed.
        """
        if self.status != "fail":
            return "unfinished" if self.unfinished else self.status
        if self.expected_reason is not None:
            return "xfail"
        return "advisory" if self.clause.level == "advisory" else "fail"


@dataclass(frozen=True)
class Report:
    """Every clause's result for one implementation."""

    target: str
    profile: str
    seed: int | None
    clauses: tuple[ClauseResult, ...]
    seconds: float = 0.0
    max_examples: int | None = None
    timeout: float | None = None
    #: What the implementation printed during the checks (its start and end when long).
    output: str = ""
    #: How many bytes it printed.
    output_bytes: int = 0
    deadline: float | None = None

    @property
    def counts(self) -> dict[str, int]:
        """How many clauses have each verdict (pass, fail, skip, xfail, advisory, unfinished)."""
        counts = {"pass": 0, "fail": 0, "skip": 0, "xfail": 0, "advisory": 0, "unfinished": 0}
        for c in self.clauses:
            counts[c.verdict] += 1
        return counts

    @property
    def ok(self) -> bool:
        """Whether every required clause passes (expected failures allowed)."""
        return self.counts["fail"] == 0

    @property
    def complete(self) -> bool:
        """Whether every clause was checked to the end (no deadline cut the run short)."""
        return self.counts["unfinished"] == 0

    @property
    def summary(self) -> str:
        """``N passed, M failed`` (``, K skipped``, ``, J not finished`` when any were).

        "failed" counts the clauses that decide the outcome: required ones, not
        listed as expected failures. Advisory clauses not met and expected
        failures are in :attr:`aside`; "not finished" are clauses the run's
        deadline cut short.
        """
        counts = self.counts
        text = f"{counts['pass']} passed, {counts['fail']} failed"
        text += f", {counts['skip']} skipped" if counts["skip"] else ""
        return text + (f", {counts['unfinished']} not finished" if counts["unfinished"] else "")

    @property
    def aside(self) -> str:
        """The clauses not counted as passed or failed, in words (empty if none)."""
        parts = []
        for verdict, what in (("advisory", "advisory clause"), ("xfail", "expected failure")):
            ids = [c.clause.id for c in self.clauses if c.verdict == verdict]
            if ids:
                plural = "s" * (len(ids) != 1)
                parts.append(f"{len(ids)} {what}{plural} not counted ({', '.join(ids)})")
        return "; ".join(parts)


@dataclass
class _Trace:
    last: Any = None
    examples: int = 0
    failed: bool = False
    shrinks: int = 0  #: inputs tried since the first failure
    failure: tuple[Any, AssertionError] | None = None  #: the smallest failure so far


def run_check(
    check: Check,
    impl: Implementation,
    *,
    settings: hypothesis.settings | None = None,
    seed: int | None = None,
    shrink_limit: int | None = None,
) -> CheckResult:
    """Run one check against ``impl`` and return its result (never raises for a violation).

    ``settings`` default to the "default" profile; ``database``, ``deadline``
    and ``report_multiple_bugs`` are always overridden (None, None, False).
    ``seed`` makes a non-derandomized run repeatable. ``shrink_limit`` stops
    shrinking after that many inputs and reports the smallest failure so far.
    """
    missing = impl.missing(check.needs)
    if missing:
        return CheckResult(check, "skip", reason=f"{impl.name} lacks {', '.join(sorted(missing))}")
    if not check.runs_at(impl):
        return CheckResult(
            check,
            "skip",
            reason=f"checked in float64 only (its tolerances are not derived for {impl.dtype})",
        )
    start = time.perf_counter()
    trace = _Trace()
    strategy = check.search_strategy(impl)

    def test(case: Any) -> None:
        if trace.failed:
            trace.shrinks += 1
            if shrink_limit is not None and trace.shrinks > shrink_limit:
                raise _ShrinkLimit
        trace.last = case
        try:
            check.prop(impl, case)
        except AssertionError as exc:
            trace.failed = True
            trace.failure = (case, exc)
            raise
        if not trace.failed:
            trace.examples += 1

    try:
        try:
            if strategy is None:
                test(None)
            else:
                base = settings or PROFILES["default"]
                if check.max_examples is not None and base.max_examples > check.max_examples:
                    base = hypothesis.settings(base, max_examples=check.max_examples)
                _hypothesis_test(test, strategy, base, seed, check.explicit(impl))()
        except _ShrinkLimit:
            trace.last, failure = trace.failure
            raise failure from None
    except AssertionError as exc:
        return CheckResult(
            check,
            "fail",
            examples=trace.examples,
            seconds=time.perf_counter() - start,
            message=str(exc.args[0]) if exc.args else "violated",
            counterexample="" if trace.last is None else repr(trace.last),
            reproduce=reproduction(check.name, impl, trace.last),
            case=trace.last,
            symptom=getattr(exc, "symptom", "violation"),
        )
    except Exception as exc:
        return CheckResult(
            check,
            "error",
            examples=trace.examples,
            seconds=time.perf_counter() - start,
            message=f"the check could not run: {type(exc).__name__}: {exc}",
        )
    return CheckResult(check, "pass", trace.examples, time.perf_counter() - start)


def _hypothesis_test(
    test: Callable[[Any], None],
    strategy: Any,
    base: hypothesis.settings,
    seed: int | None,
    explicit: Iterable[Any] = (),
) -> Callable[[], None]:
    overrides: dict[str, Any] = {"database": None, "deadline": None, "report_multiple_bugs": False}
    if seed is not None:
        overrides["derandomize"] = False
    inner = given(case=strategy)(test)
    for case in reversed(list(explicit)):  # tried first, in order, on every run
        inner = hypothesis.example(case=case)(inner)
    wrapped = hypothesis.settings(base, **overrides)(inner)
    return hypothesis.seed(seed)(wrapped) if seed is not None else wrapped


def reproduction(check_name: str, target: str | Implementation, case: Any) -> str:
    """A line that reruns one check on one input with :func:`replay`.

    A shell line (``python -c "..."``) for an implementation known by a target
    name, with the options that rebuild it (``signature='f(log_q, p)'``); a
    Python statement passing the function itself for one that is not (a
    function handed to :func:`klspec.conformance.check`).
    """
    impl = target if isinstance(target, Implementation) else None
    imports = "import numpy as np; from klspec.conformance import replay"
    name = impl.name if impl is not None else target
    by_name = impl is None or impl.by_name
    args = [repr(check_name), repr(name) if by_name else name]
    options = dict(impl.options) if impl is not None else {}
    args += [f"{k}={v!r}" for k, v in options.items()]
    if case is not None:
        text = repr(case)
        if text.startswith("build_case("):
            imports += "; from klspec.spec.strategies import build_case"
            args.append(f"case={text}")
        else:
            # An option that is also an array of the case (a dpo target's beta) is given once.
            args += [
                f"{key}={literal(value)}"
                for key, value in case.arrays.items()
                if key not in options
            ]
    if not by_name:
        return f"{imports}; replay({', '.join(args)})"
    return f'python -c "{imports}; replay({", ".join(args)})"'


def replay(
    check_name: str,
    target: str | Implementation | Callable[..., Any] = "reference",
    *,
    case: Any = None,
    quantity: str | None = None,
    signature: str | None = None,
    batched: bool = False,
    array: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    reduction: str | None = None,
    gradient_of: str | None = None,
    log_ratio_range: tuple[float, float] | None = None,
    beta: float | None = None,
    **arrays: Any,
) -> None:
    """Rerun one check on one input: raise its ``AssertionError`` if it fails.

    ``target`` is anything :func:`klspec.conformance.targets.resolve` takes (a
    target name, ``"module:function"`` or a function, with ``quantity``,
    ``signature``, ``batched``, ``array``, ``dtype``, ``device``, ``reduction``,
    ``gradient_of``, ``log_ratio_range`` and ``beta`` saying how to call it) or an
    :class:`Implementation`. Give the input as arrays (``p=np.array([...]),
    q=...``) or as a ``case`` (``build_case(...)``); checks with a fixed input
    take neither. Prints a line when the check passes.
    """
    check = check_named(check_name)
    if isinstance(target, Implementation):
        impl = target
    else:
        from klspec.conformance.targets import resolve

        impl = resolve(
            target,
            quantity=quantity,
            signature=signature,
            batched=batched,
            array=array,
            dtype=dtype,
            device=device,
            reduction=reduction,
            gradient_of=gradient_of,
            log_ratio_range=log_ratio_range,
            beta=beta if quantity == "dpo" else None,
        )
    if beta is not None:  # a dpo target's β is also the case's
        beta = float(np.asarray(beta, dtype=np.float64).reshape(-1)[0])
    if beta is not None and arrays and "beta" not in arrays:
        arrays["beta"] = [beta]
    missing = impl.missing(check.needs)
    if missing:
        raise LookupError(
            f"{check_name} needs {', '.join(sorted(missing))}, which {impl.name} lacks"
        )
    if not check.runs_at(impl):
        raise LookupError(
            f"{check_name} is checked in float64 only, and {impl.name} is {impl.dtype}"
        )
    if case is None and arrays:
        case = strategies.Case(**arrays)
    if case is None and check.strategy is not None:
        raise TypeError(f"{check_name} draws its input: pass it as p=..., q=... (or case=...)")
    outcome, failure = run_once(check, impl, case)
    if outcome == "fail":
        raise failure
    if outcome == "rejected":
        raise ValueError(
            f"{check_name} does not judge this input: its gate rejects it (see the check's docs)"
        )
    print(f"{check_name}: {impl.name} passes on this input")


def run_once(check: Check, impl: Implementation, case: Any) -> tuple[str, AssertionError | None]:
    """Run a check's property on one input, inside hypothesis (its gates need that).

    Returns ``("pass", None)``, ``("fail", the AssertionError)`` or ``("rejected",
    None)`` when the check's gate (``assume``) refuses the input. Anything else the
    property raises propagates.
    """
    state: dict[str, bool] = {}

    @hypothesis.settings(
        max_examples=1,
        database=None,
        deadline=None,
        phases=[Phase.explicit],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.none())
    @hypothesis.example(None)
    def once(_: None) -> None:
        check.prop(impl, case)
        state["finished"] = True

    try:
        once()
    except AssertionError as exc:
        return "fail", exc
    return ("pass", None) if state.get("finished") else ("rejected", None)


def run(
    impl: Implementation | str,
    clauses: Iterable[str] | None = None,
    *,
    profile: str | hypothesis.settings = "default",
    seed: int | None = None,
    on_result: Callable[[ClauseResult], None] | None = None,
    max_examples: int | None = None,
    timeout: float | None = None,
    isolate: bool = False,
    expected: Mapping[str, str] | None = None,
    causes: bool = True,
    deadline: float | None = None,
    memory_limit: float | Literal["default"] | None = "default",
    capture_output: bool = True,
) -> Report:
    """Run the checks of ``clauses`` (default: all, in catalog order) against ``impl``.

    ``profile`` is a name in :data:`PROFILES` or a ``hypothesis.settings``;
    ``max_examples`` overrides its number of examples per check. A profile
    that is not derandomized runs with ``seed``, or with a fresh one that the
    report records. ``on_result`` is called with each clause's result as soon
    as it completes. ``timeout`` limits each call of the implementation
    (seconds), and ``isolate`` runs the checks in a forked worker so that a
    crash fails a check instead of the run (:mod:`klspec.conformance.isolation`).
    ``causes`` analyses each failure for its root cause (:mod:`klspec.conformance.causes`).
    ``expected`` maps clause ids or check names to the reason they are
    expected to fail (an xfail list). ``deadline`` (seconds) ends the whole run:
    clauses it cuts short are "unfinished". ``memory_limit`` (megabytes, None for
    none; the default is :data:`~klspec.conformance.isolation.DEFAULT_MEMORY_LIMIT`)
    bounds an isolated worker. With ``capture_output`` what the implementation
    prints is kept out of the terminal and put in the report (:attr:`Report.output`).
    """
    from klspec.conformance.isolation import DEFAULT_MEMORY_LIMIT, Output, run_checks

    if isinstance(impl, str):
        from klspec.conformance.targets import resolve

        impl = resolve(impl)
    wanted = [clause(i) for i in clauses] if clauses is not None else list(CATALOG)
    order = {c.id: i for i, c in enumerate(CATALOG)}
    wanted = sorted(dict.fromkeys(wanted), key=lambda c: order[c.id])
    settings = PROFILES[profile] if isinstance(profile, str) else profile
    if max_examples is not None:
        settings = hypothesis.settings(settings, max_examples=max_examples)
    profile_name = profile if isinstance(profile, str) else "custom"
    if seed is None and not settings.derandomize:
        seed = random.SystemRandom().randrange(2**32)
    start = time.perf_counter()
    expected = dict(expected or {})
    checks = [k for c in wanted for k in checks_for(c.id)]
    output = Output() if capture_output else None
    outcomes = run_checks(
        impl,
        checks,
        settings=settings,
        seed=seed,
        timeout=timeout,
        isolate=isolate,
        shrink_limit=SHRINK_LIMITS.get(profile_name),
        analyse=causes,
        deadline=deadline,
        memory_limit=DEFAULT_MEMORY_LIMIT if memory_limit == "default" else memory_limit,
        output=output,
    )
    results = []
    try:
        with contextlib.closing(outcomes):  # stops a worker process if on_result raises
            for c in wanted:
                result = ClauseResult(c, tuple(next(outcomes) for _ in checks_for(c.id)), expected)
                results.append(result)
                if on_result is not None:
                    on_result(result)
        printed = (output.excerpt(), output.size) if output else ("", 0)
    finally:
        if output:
            output.close()
    return Report(
        impl.name,
        profile_name,
        seed,
        tuple(results),
        time.perf_counter() - start,
        max_examples=settings.max_examples,
        timeout=timeout,
        output=printed[0],
        output_bytes=printed[1],
        deadline=deadline,
    )
