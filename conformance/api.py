"""Checking any implementation against the spec from Python: :func:`check`.

The entry point for a user's own test suite::

    from klspec.conformance import check
    check(my_kl)                                   # f(p, q) -> KL(P‖Q) in nats
    check(my_loss, signature="f(log_q, p)", array="torch", batched=True)
    check(my_k3, "k3", array="torch", dtype="bfloat16")   # judged as bfloat16 code

It runs every clause (in a forked worker, with a per-call timeout: see
:mod:`klspec.conformance.isolation`), returns the
:class:`~klspec.conformance.runner.Report` when every required clause passes, and
raises an ``AssertionError`` carrying it (``exc.report``) otherwise, with the
failures written out as ``klspec check`` writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from klspec.conformance.isolation import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
from klspec.conformance.report import describe
from klspec.conformance.runner import Report, run
from klspec.conformance.targets import resolve


class ConformanceError(AssertionError):
    """An implementation fails a required clause; ``report`` is the whole :class:`Report`."""

    def __init__(self, message: str, report: Report) -> None:
        super().__init__(message)
        self.report = report


def check(
    target: Callable[..., Any] | str,
    quantity: str = "kl",
    signature: str | None = None,
    *,
    batched: bool = False,
    array: str = "numpy",
    dtype: str = "float64",
    device: str | None = None,
    reduction: str = "none",
    gradient_of: str | None = None,
    log_ratio_range: tuple[float, float] | None = None,
    beta: float | None = None,
    clauses: Iterable[str] | None = None,
    profile: str = "default",
    max_examples: int | None = None,
    seed: int | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    xfails: Mapping[str, str] | None = None,
    isolate: bool = True,
    deadline: float | None = None,
    memory_limit: float | None = DEFAULT_MEMORY_LIMIT,
) -> Report:
    """Check a function (or a target name) against the spec; raise if a required clause fails.

    ``quantity`` is "kl", "entropy", "cross-entropy", "token-kl", "k1", "k2", "k3"
    or "dpo" (:data:`klspec.conformance.signatures.QUANTITIES`); ``signature`` says how the
    function is called, in the vocabulary ``p, q, log_p, log_q, logits_p,
    logits_q`` (default ``"f(p, q)"``, or ``"f(p)"`` for entropy), or for token-kl
    and the estimators by their own argument names (``"f(logp, ref_logp)"``);
    ``batched`` that it reduces the last axis of (..., n) arrays; ``array``
    what it receives ("numpy", "torch" or "jax"), ``dtype`` in which format
    ("float64", "float32", "float16", "bfloat16": inputs are rounded to it and
    tolerances come from its unit roundoff) and ``device`` where (torch and jax);
    ``reduction`` ("sum", "mean") that it returns one number over positions;
    ``gradient_of`` that a k1/k2/k3 is straight-through (its autograd gradient is
    another estimator's); ``log_ratio_range`` the (lo, hi) of log r where a clamped
    k1/k2/k3 is exact; ``beta`` the β a dpo target is called with (default 0.1). ``clauses``
    restricts the run to those clause ids; ``profile``, ``max_examples`` and
    ``seed`` set the search; ``timeout`` limits each call (seconds);
    ``xfails`` maps clause ids or check names to the reason they are expected
    to fail; ``isolate`` runs the checks in a forked worker, which is killed
    (failing the check) when it holds more than ``memory_limit`` megabytes
    (None: no limit); ``deadline`` limits the whole run (seconds): clauses it
    cuts short are "unfinished" (:attr:`Report.complete` is False), which does
    not raise. What the target prints is captured into :attr:`Report.output`.

    Returns the report; raises :class:`ConformanceError` (an AssertionError
    whose ``report`` attribute is the report) when a required clause fails.
    """

    options = {
        "quantity": quantity,
        "signature": signature,
        "batched": batched,
        "array": array,
        "dtype": dtype,
        "device": device,
        "reduction": reduction,
        "gradient_of": gradient_of,
        "log_ratio_range": log_ratio_range,
        "beta": beta,
    }
    if isinstance(target, str) and (":" not in target):
        options = {}  # a built-in target keeps its own conventions
    impl = resolve(target, **{k: v for k, v in options.items() if v not in (None, False)})
    report = run(
        impl,
        clauses,
        profile=profile,
        seed=seed,
        max_examples=max_examples,
        timeout=timeout,
        isolate=isolate,
        expected=xfails,
        deadline=deadline,
        memory_limit=memory_limit,
    )
    if not report.ok:
        raise ConformanceError(describe(report), report)
    return report
