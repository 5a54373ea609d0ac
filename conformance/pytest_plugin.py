"""pytest plugin: ``pytest --kl-impl TARGET`` runs klspec's checks as tests.

Registered through the ``pytest11`` entry point, so it is active wherever
klspec is installed. Without ``--kl-impl`` it only adds its options: it
imports nothing else and collects nothing, so other test runs are unchanged.

With ``--kl-impl`` every check of the spec becomes one test item named by the
check (``kl.nonnegative[pairs]``, ``kl(p_i == 0 and q_i > 0) -> term 0``) under
``klspec[TARGET]``; ``-k`` selects among them, and pytest-xdist distributes
them (every worker collects the same items). TARGET is what ``klspec check``
takes: a built-in adapter or ``package.module:function``, with
``--kl-signature``, ``--kl-quantity``, ``--kl-batched``, ``--kl-array``,
``--kl-dtype``, ``--kl-device``, ``--kl-reduction``, ``--kl-gradient-of``,
``--kl-log-ratio-range`` and ``--kl-beta`` saying how the function is called. Each check runs in a
forked worker with a per-call timeout (:mod:`klspec.conformance.isolation`), as
``klspec check`` runs it. A check of an implementation lacking what it needs is
skipped with the reason; a failure of an advisory clause, or one listed in
``--kl-xfails``, is reported as xfailed. ``--kl-deadline SECONDS`` limits the
checks' whole run, as ``klspec check --deadline`` does: checks it ends or keeps
from starting are skipped as "not finished: the run's deadline passed", which is
no verdict on the target (under pytest-xdist each worker counts from its start).
"""

from __future__ import annotations

import time
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("klspec", "klspec: check a KL implementation against the spec")
    group.addoption(
        "--kl-impl",
        metavar="TARGET",
        help="run klspec's checks against TARGET: a built-in adapter (`klspec adapters`) "
        "or package.module:function",
    )
    group.addoption(
        "--kl-quantity",
        metavar="Q",
        help="kl (default), entropy, cross-entropy, token-kl, k1, k2 or k3 (as `klspec check "
        "--quantity`)",
    )
    group.addoption(
        "--kl-signature",
        metavar="SIG",
        help="how TARGET is called, e.g. 'f(p, q)' (default), 'f(log_q, p)', 'f(p)'",
    )
    group.addoption(
        "--kl-batched", action="store_true", help="TARGET reduces the last axis of (..., n) arrays"
    )
    group.addoption("--kl-array", metavar="TYPE", help="numpy (default), torch or jax")
    group.addoption(
        "--kl-dtype",
        metavar="DTYPE",
        help="float64 (default), float32, float16 or bfloat16: the format of TARGET's arguments",
    )
    group.addoption("--kl-device", metavar="DEV", help="torch or jax device (cpu, cuda, ...)")
    group.addoption(
        "--kl-reduction", metavar="R", help="none (default), sum or mean over positions"
    )
    group.addoption(
        "--kl-gradient-of",
        metavar="K",
        help="a straight-through k1/k2/k3: its autograd gradient is that of K",
    )
    group.addoption(
        "--kl-log-ratio-range",
        metavar="LO:HI",
        help="a clamped k1/k2/k3, exact where log r lies in [LO, HI] "
        "(e.g. --kl-log-ratio-range=-11:2.61)",
    )
    group.addoption(
        "--kl-beta",
        type=float,
        metavar="B",
        help="dpo: the β the function is called with (default 0.1)",
    )
    group.addoption("--kl-profile", default="default", help="fast, default or thorough")
    group.addoption("--kl-max-examples", type=int, metavar="N", help="examples per check")
    group.addoption("--kl-seed", type=int, metavar="N", help="random seed, to repeat a run")
    group.addoption(
        "--kl-timeout", type=float, default=10.0, metavar="SECONDS", help="limit on each call"
    )
    group.addoption(
        "--kl-deadline",
        type=float,
        metavar="SECONDS",
        help="limit on the checks' whole run; those it ends or keeps from starting are "
        "skipped as not finished (no verdict)",
    )
    group.addoption(
        "--kl-clause", action="append", metavar="ID", help="only this clause (repeatable)"
    )
    group.addoption(
        "--kl-xfails", metavar="FILE", help="expected failures: lines 'clause-id  # reason'"
    )


class _Target:
    """The implementation under test and how to search, resolved once per session."""

    def __init__(self, config: pytest.Config) -> None:
        from klspec.conformance.report import XfailError, read_xfails
        from klspec.conformance.runner import PROFILES, SHRINK_LIMITS
        from klspec.conformance.signatures import SignatureError
        from klspec.conformance.targets import TargetError, resolve

        option = config.getoption
        try:
            self.impl = resolve(
                option("kl_impl"),
                quantity=option("kl_quantity"),
                signature=option("kl_signature"),
                batched=option("kl_batched"),
                array=option("kl_array"),
                dtype=option("kl_dtype"),
                device=option("kl_device"),
                reduction=option("kl_reduction"),
                gradient_of=option("kl_gradient_of"),
                log_ratio_range=_range(option("kl_log_ratio_range")),
                beta=option("kl_beta"),
            )
            profile = option("kl_profile")
            if profile not in PROFILES:
                raise SignatureError(f"--kl-profile must be one of {', '.join(PROFILES)}")
            self.expected = read_xfails(option("kl_xfails")).expected if option("kl_xfails") else {}
            deadline = option("kl_deadline")
            if deadline is not None and not deadline > 0:
                raise SignatureError(f"--kl-deadline must be positive, got {deadline}")
        except (TargetError, SignatureError, XfailError) as exc:
            raise pytest.UsageError(f"--kl-impl: {exc}") from None
        self.settings = PROFILES[profile]
        if option("kl_max_examples"):
            import hypothesis

            self.settings = hypothesis.settings(
                self.settings, max_examples=option("kl_max_examples")
            )
        self.profile = profile
        self.shrink_limit = SHRINK_LIMITS[profile]
        self.seed = option("kl_seed")
        self.timeout = option("kl_timeout")
        # The run's end on the monotonic clock: each check gets the time left.
        self.end = None if deadline is None else time.monotonic() + deadline
        self.clauses = option("kl_clause")

    def checks(self) -> list[Any]:
        from klspec.spec.checks import CHECKS
        from klspec.spec.clauses import clause

        if not self.clauses:
            return list(CHECKS)
        try:
            wanted = {clause(i).id for i in self.clauses}
        except KeyError as exc:
            raise pytest.UsageError(f"--kl-clause: {exc.args[0]}") from None
        return [k for k in CHECKS if k.clause_id in wanted]

    def run(self, check: Any) -> Any:
        from klspec.conformance.isolation import run_checks

        results = run_checks(
            self.impl,
            [check],
            settings=self.settings,
            seed=self.seed,
            timeout=self.timeout,
            shrink_limit=self.shrink_limit,
            analyse=True,
            deadline=None if self.end is None else max(self.end - time.monotonic(), 0.0),
        )
        return next(iter(results))


def _range(text: str | None) -> tuple[float, float] | None:
    """``"-11:2.61"`` -> (-11.0, 2.61); a SignatureError (a usage error) if it does not read so."""
    if text is None:
        return None
    from klspec.conformance.signatures import SignatureError

    lo, sep, hi = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(lo), float(hi)
    except ValueError:
        raise SignatureError(f"--kl-log-ratio-range {text!r} must read LO:HI") from None


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("kl_impl"):
        config.stash[_TARGET] = _Target(config)


_TARGET = pytest.StashKey[_Target]()


def pytest_report_header(config: pytest.Config) -> str | None:
    if _TARGET not in config.stash:
        return None
    target = config.stash[_TARGET]
    impl = target.impl
    return f"klspec: checking {impl.name} ({impl.description}), profile {target.profile}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    if _TARGET not in config.stash:
        return
    target = config.stash[_TARGET]
    name = f"klspec[{target.impl.name}]"
    parent = KlspecTarget.from_parent(session, name=name, nodeid=name)
    items.extend(CheckItem.from_parent(parent, name=k.name, check=k) for k in target.checks())


class KlspecTarget(pytest.Collector):
    """The node grouping the checks of one target: ``klspec[scipy.rel_entr]``."""

    def collect(self) -> list[pytest.Item]:  # the items are created in collection_modifyitems
        return []


class CheckFailed(AssertionError):
    """A check's violation; the report shows its message, counterexample and reproduction."""

    def __init__(self, result: Any) -> None:
        super().__init__(result.message)
        self.result = result


class CheckItem(pytest.Item):
    """One klspec check against the target."""

    def __init__(self, *, check: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def runtest(self) -> None:
        from klspec.spec.clauses import clause

        target = self.config.stash[_TARGET]
        result = target.run(self.check)
        if result.status == "skip":
            pytest.skip(result.reason)
        if result.status == "pass":
            return
        reason = target.expected.get(self.check.name) or target.expected.get(self.check.clause_id)
        if reason:
            pytest.xfail(f"expected: {reason}")
        if clause(self.check.clause_id).level == "advisory":
            pytest.xfail(f"advisory clause {self.check.clause_id} not met: {result.message}")
        raise CheckFailed(result)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> Any:
        if isinstance(excinfo.value, CheckFailed):
            from klspec.conformance.report import details
            from klspec.spec.clauses import clause

            r = excinfo.value.result
            statement = clause(self.check.clause_id).statement
            return "\n".join([f"{self.check.clause_id}: {statement}", r.message, *details(r)])
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"{self.parent.name}::{self.name}"
