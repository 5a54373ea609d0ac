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

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import hypothesis
from hypothesis import HealthCheck, given
from hypothesis.errors import UnsatisfiedAssumption

from klspec.spec import strategies
from klspec.spec._assert import literal
from klspec.spec.checks import Check, check_named, checks_for
from klspec.spec.clauses import CATALOG, Clause, clause
from klspec.spec.implementations import Implementation, implementation

_COMMON = hypothesis.settings(
    database=None,
    deadline=None,
    report_multiple_bugs=False,
    # Health checks judge the strategies, not the implementation under test; timing
    # ones would make a conformance report depend on the machine.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Named settings for :func:`run` (``klspec check --profile``).
PROFILES: dict[str, hypothesis.settings] = {
    "fast": hypothesis.settings(_COMMON, max_examples=25, derandomize=True),
    "default": hypothesis.settings(_COMMON, max_examples=100),
    "thorough": hypothesis.settings(_COMMON, max_examples=2000),
}

Status = Literal["pass", "fail", "error", "skip"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check against one implementation.

    ``status`` is ``"pass"``, ``"fail"`` (a violation: ``message``,
    ``counterexample``, ``reproduce``), ``"error"`` (the check itself could not
    run, e.g. its gate rejected every input) or ``"skip"`` (``reason``).
    ``examples`` counts inputs that passed before any failure.
    """

    check: Check
    status: Status
    examples: int = 0
    seconds: float = 0.0
    message: str = ""
    counterexample: str = ""
    reproduce: str = ""
    reason: str = ""


@dataclass(frozen=True)
class ClauseResult:
    """The results of a clause's checks. It fails if any check fails or errs."""

    clause: Clause
    results: tuple[CheckResult, ...]

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


@dataclass(frozen=True)
class Report:
    """Every clause's result for one implementation."""

    target: str
    profile: str
    seed: int | None
    clauses: tuple[ClauseResult, ...]
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        """How many clauses passed, failed and were skipped."""
        counts = {"pass": 0, "fail": 0, "skip": 0}
        for c in self.clauses:
            counts[c.status] += 1
        return counts

    @property
    def ok(self) -> bool:
        return self.counts["fail"] == 0

    @property
    def summary(self) -> str:
        """``N passed, M failed`` (``, K skipped`` when any were)."""
        counts = self.counts
        text = f"{counts['pass']} passed, {counts['fail']} failed"
        return text + (f", {counts['skip']} skipped" if counts["skip"] else "")


@dataclass
class _Trace:
    last: Any = None
    examples: int = 0
    failed: bool = False


def run_check(
    check: Check,
    impl: Implementation,
    *,
    settings: hypothesis.settings | None = None,
    seed: int | None = None,
) -> CheckResult:
    """Run one check against ``impl`` and return its result (never raises for a violation).

    ``settings`` default to the "default" profile; ``database``, ``deadline``
    and ``report_multiple_bugs`` are always overridden (None, None, False).
    ``seed`` makes a non-derandomized run repeatable.
    """
    missing = impl.missing(check.needs)
    if missing:
        return CheckResult(check, "skip", reason=f"{impl.name} lacks {', '.join(sorted(missing))}")
    start = time.perf_counter()
    trace = _Trace()
    strategy = check.search_strategy()

    def test(case: Any) -> None:
        trace.last = case
        try:
            check.prop(impl, case)
        except AssertionError:
            trace.failed = True
            raise
        if not trace.failed:
            trace.examples += 1

    try:
        if strategy is None:
            test(None)
        else:
            _hypothesis_test(test, strategy, settings or PROFILES["default"], seed)()
    except AssertionError as exc:
        return CheckResult(
            check,
            "fail",
            examples=trace.examples,
            seconds=time.perf_counter() - start,
            message=str(exc.args[0]) if exc.args else "violated",
            counterexample="" if trace.last is None else repr(trace.last),
            reproduce=reproduction(check.name, impl.name, trace.last),
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
) -> Callable[[], None]:
    overrides: dict[str, Any] = {"database": None, "deadline": None, "report_multiple_bugs": False}
    if seed is not None:
        overrides["derandomize"] = False
    wrapped = hypothesis.settings(base, **overrides)(given(case=strategy)(test))
    return hypothesis.seed(seed)(wrapped) if seed is not None else wrapped


def reproduction(check_name: str, target: str, case: Any) -> str:
    """A shell line that reruns one check on one input with :func:`replay`."""
    imports = "import numpy as np; from klspec.spec import replay"
    args = [repr(check_name), repr(target)]
    if case is not None:
        text = repr(case)
        if text.startswith("build_case("):
            imports += "; from klspec.spec.strategies import build_case"
            args.append(f"case={text}")
        else:
            args += [f"{name}={literal(value)}" for name, value in case.arrays.items()]
    return f'python -c "{imports}; replay({", ".join(args)})"'


def replay(
    check_name: str, target: str | Implementation = "reference", *, case: Any = None, **arrays: Any
) -> None:
    """Rerun one check on one input: raise its ``AssertionError`` if it fails.

    Give the input as arrays (``p=np.array([...]), q=...``) or as a ``case``
    (``build_case(...)``); checks with a fixed input take neither. Prints a line
    when the check passes.
    """
    check = check_named(check_name)
    impl = target if isinstance(target, Implementation) else implementation(target)
    missing = impl.missing(check.needs)
    if missing:
        raise LookupError(
            f"{check_name} needs {', '.join(sorted(missing))}, which {impl.name} lacks"
        )
    if case is None and arrays:
        case = strategies.Case(**arrays)
    if case is None and check.strategy is not None:
        raise TypeError(f"{check_name} draws its input: pass it as p=..., q=... (or case=...)")
    try:
        check.prop(impl, case)
    except UnsatisfiedAssumption:
        raise ValueError(
            f"{check_name} does not judge this input: its gate rejects it (see the check's docs)"
        ) from None
    print(f"{check_name}: {impl.name} passes on this input")


def run(
    impl: Implementation | str,
    clauses: Iterable[str] | None = None,
    *,
    profile: str | hypothesis.settings = "default",
    seed: int | None = None,
    on_result: Callable[[ClauseResult], None] | None = None,
) -> Report:
    """Run the checks of ``clauses`` (default: all, in catalog order) against ``impl``.

    ``profile`` is a name in :data:`PROFILES` or a ``hypothesis.settings``. A
    profile that is not derandomized runs with ``seed``, or with a fresh one
    that the report records. ``on_result`` is called with each clause's result
    as soon as it completes.
    """
    impl = implementation(impl) if isinstance(impl, str) else impl
    wanted = [clause(i) for i in clauses] if clauses is not None else list(CATALOG)
    order = {c.id: i for i, c in enumerate(CATALOG)}
    wanted = sorted(dict.fromkeys(wanted), key=lambda c: order[c.id])
    settings = PROFILES[profile] if isinstance(profile, str) else profile
    profile_name = profile if isinstance(profile, str) else "custom"
    if seed is None and not settings.derandomize:
        seed = random.SystemRandom().randrange(2**32)
    start = time.perf_counter()
    results = []
    for c in wanted:
        result = ClauseResult(
            c, tuple(run_check(k, impl, settings=settings, seed=seed) for k in checks_for(c.id))
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
    return Report(impl.name, profile_name, seed, tuple(results), time.perf_counter() - start)
