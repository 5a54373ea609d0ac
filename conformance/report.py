"""How a report reads: the text ``klspec check`` prints, its JSON form, and xfail lists.

``klspec check``, the pytest plugin, :func:`klspec.conformance.check` and ``klspec
matrix`` share the text and JSON forms defined here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from klspec.conformance.runner import CheckResult, ClauseResult, Report

STATUS = {
    "pass": "PASS",
    "fail": "FAIL",
    "skip": "SKIP",
    "advisory": "WARN",
    "xfail": "XFAIL",
    "unfinished": "CUT",
}


# --- how a report reads ------------------------------------------------------------------


def clause_line(result: ClauseResult, width: int) -> str:
    """``PASS   kl.nonnegative   (2 checks, 200 examples)   0.3s``: one clause, as it completes."""
    n = len(result.results)
    if not result.results:
        detail = "(no checks)"
    elif result.verdict == "unfinished":
        detail = f"({UNFINISHED_TEXT})"
    elif result.status == "skip":
        detail = f"({result.results[0].reason})"
    else:
        level = "advisory, " if result.clause.level == "advisory" else ""
        detail = f"({level}{n} check{'s' * (n != 1)}, {result.examples} examples)"
    status = STATUS[result.verdict]
    return f"{status:<5}  {result.clause.id:<{width}}  {detail:<30}  {result.seconds:.1f}s"


def failure_text(result: ClauseResult) -> str:
    """A failing clause: id, level, statement, then each failing check with its details."""
    verdict = result.verdict
    why = {
        "fail": "required",
        "advisory": "advisory: reported, does not fail the run",
        "xfail": f"expected to fail: {result.expected_reason}",
    }[verdict]
    lines = [f"{STATUS[verdict]} {result.clause.id} ({why}): {result.clause.statement}"]
    for r in result.failures:
        lines.append(f"  {r.check.name}: {r.message}")
        lines += [f"    {line}" for line in details(r)]
    return "\n".join(lines) + "\n"


def details(result: CheckResult) -> list[str]:
    """A failed check's cause, counterexample and reproduction, one line each (as present)."""
    lines = []
    if result.cause is not None:
        lines.append(f"cause: {result.cause.text}")
    if result.counterexample:
        lines.append(f"counterexample: {result.counterexample}")
    if result.reproduce:
        lines.append(f"reproduce: {result.reproduce}")
    return lines


def describe(report: Report) -> str:
    """The failures of a report, its root causes, then its summary (how ``klspec check`` ends)."""
    parts = [failure_text(c) for c in report.clauses if c.failures]
    causes = root_causes(report)
    if causes:
        plural = "s" * (len(causes) != 1)
        parts.append(
            f"{len(causes)} root cause{plural} (one per bug, with the clauses it breaks):\n"
            + "".join(
                f"  {number}. {title} [{', '.join(ids)}]\n"
                for number, (title, ids) in enumerate(causes, 1)
            )
        )
    if report.output_bytes:
        parts.append(output_text(report))
    seed = f", seed {report.seed}" if report.seed is not None else ""
    tail = [f"checked {report.target} (profile {report.profile}{seed}) in {report.seconds:.1f}s"]
    if not report.complete:
        tail.append(
            f"the run's deadline ({report.deadline:g} s) passed before every clause was "
            f"checked: {report.counts['unfinished']} not finished"
        )
    if report.aside:
        tail.append(report.aside)
    tail.append(report.summary)
    return "\n".join(parts) + ("\n" if parts else "") + "\n".join(tail) + "\n"


#: Lines of the implementation's output shown from its start, and as many from its end.
OUTPUT_LINES = 8
#: How a clause the deadline cut short reads in its line.
UNFINISHED_TEXT = "not finished: the run's deadline passed"


def output_text(report: Report) -> str:
    """What the implementation printed during the checks: its first and last lines."""
    from klspec.conformance.isolation import CUT

    size = report.output_bytes
    lines = [
        line if len(line) <= 160 else line[:157] + "..."
        for line in report.output.rstrip("\n").split("\n")
        if line != CUT
    ]
    head, tail = lines[:OUTPUT_LINES], lines[OUTPUT_LINES:][-OUTPUT_LINES:]
    left = size - sum(len(line.encode()) + 1 for line in head + tail)
    if left > 0:
        head.append(f"[... {left:,} bytes left out ...]")
    return (
        f"output of {report.target} during the checks ({size:,} byte{'s' * (size != 1)}, "
        "its stdout and stderr):\n" + "".join(f"  | {line}\n" for line in head + tail)
    )


def root_causes(report: Report) -> list[tuple[str, list[str]]]:
    """The distinct root causes of a report's failures, each with the clauses it breaks."""
    from klspec.conformance.causes import merged_title, same_bug

    failures = [(c, r) for c in report.clauses for r in c.failures if r.cause is not None]
    finding_of = same_bug(r.cause.key for _, r in failures)
    merged = {v for k, v in finding_of.items() if k != v}
    groups: dict[Any, tuple[str, list[str]]] = {}
    for c, r in failures:
        key = finding_of[r.cause.key]
        title = merged_title(key) if key in merged else r.cause.title
        _, ids = groups.setdefault(key, (title, []))
        if c.clause.id not in ids:
            ids.append(c.clause.id)
    return list(groups.values())


# --- expected failures -------------------------------------------------------------------


class XfailError(ValueError):
    """An xfail file that cannot be used (a line without a reason); the message says where."""


@dataclass(frozen=True)
class Xfails:
    """Expected failures read from a file: ``{id: reason}`` and warnings about unknown ids."""

    expected: dict[str, str]
    warnings: tuple[str, ...]


def read_xfails(path: Path) -> Xfails:
    """Read an xfail file: lines ``clause-id  # reason`` (or a check name instead of a clause id).

    Blank lines and lines starting with ``#`` are ignored. A line without a
    reason is an :class:`XfailError`; an id that is neither a clause nor a check
    is kept (one file can serve several versions of klspec) and warned about.
    """
    from klspec.spec.checks import CHECKS
    from klspec.spec.clauses import CATALOG

    known = {c.id for c in CATALOG} | {k.name for k in CHECKS}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise XfailError(f"cannot read {path}: {exc.strerror}") from None
    expected, warnings = {}, []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, _, reason = text.partition("#")
        name, reason = name.strip(), reason.strip()
        if not reason:
            raise XfailError(
                f"{path}:{number}: {name!r} has no reason; write it as '{name}  # why it fails'"
            )
        if name not in known:
            warnings.append(f"{path}:{number}: {name!r} is no clause id or check name")
        expected[name] = reason
    return Xfails(expected, tuple(warnings))


def unmatched(expected: Mapping[str, str], report: Report) -> list[str]:
    """The expected failures that did not fail in this run (passed, skipped or not run)."""
    matched = set()
    for c in report.clauses:
        if c.verdict == "xfail":
            matched.add(c.clause.id)
            matched.update(r.check.name for r in c.failures)
    return [name for name in expected if name not in matched]


# --- as data ----------------------------------------------------------------------------------


def report_data(report: Report, impl: Any) -> dict[str, Any]:
    """The report as JSON-ready data: the target, how it was called and searched, per clause."""
    from klspec import __version__
    from klspec.conformance.targets import versions_for
    from klspec.spec.interface import QUANTITIES

    options = dict(impl.options)
    called = bool(options) or ":" in report.target  # a function called as its signature says
    quantity = options.get("quantity", "kl")
    return {
        "klspec": __version__,
        "target": report.target,
        "description": impl.description,
        "quantity": quantity if called else None,
        "signature": (options.get("signature") or QUANTITIES[quantity].signature)
        if called
        else None,
        "quantities": list(impl.functions),
        "batched": "batched" in impl.capabilities,
        "array": options.get("array", "numpy"),
        "libraries": versions_for(impl),
        "profile": report.profile,
        "seed": report.seed,
        "max_examples": report.max_examples,
        "timeout": report.timeout,
        "seconds": round(report.seconds, 3),
        "ok": report.ok,
        "counts": report.counts,
        "summary": report.summary,
        "complete": report.complete,
        "output": report.output,
        "output_bytes": report.output_bytes,
        "clauses": [_clause_data(c) for c in report.clauses],
    }


def _clause_data(c: ClauseResult) -> dict[str, Any]:
    first = c.failures[0] if c.failures else None
    return {
        "id": c.clause.id,
        "level": c.clause.level,
        "status": c.verdict,
        "examples": c.examples,
        "seconds": round(c.seconds, 3),
        "message": first.message if first else "",
        "cause": cause_text(first),
        "counterexample": case_lists(first.case) if first else None,
        "reproduction": first.reproduce if first else "",
        "expected_reason": c.expected_reason,
        "checks": [
            {
                "name": r.check.name,
                "status": r.status,
                "examples": r.examples,
                "message": r.message,
                "cause": cause_text(r),
                "counterexample": case_lists(r.case),
                "reproduction": r.reproduce,
                "reason": r.reason,
            }
            for r in c.results
        ],
    }


def cause_text(result: Any) -> str:
    """A failure's root cause in words ("" when it has none: it passed, or was not analysed)."""
    cause = getattr(result, "cause", None)
    return cause.text if cause is not None else ""


def case_lists(case: Any) -> dict[str, Any] | None:
    """A counterexample's arrays as (nested) lists of floats, by name; None without one.

    Inputs are finite, so the lists are plain JSON; a non-finite entry would be
    written as a string ("inf", "nan").
    """
    arrays = getattr(case, "arrays", None)
    if not arrays:
        return None
    return {name: _finite(a.tolist()) for name, a in arrays.items()}


def _finite(x: Any) -> Any:
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x if math.isfinite(x) else str(x)
