"""``klspec check TARGET``, ``klspec adapters`` and ``klspec matrix``: conformance from the shell.

The command-line face of :mod:`klspec.conformance`, registered in
:data:`klspec.commands.COMMANDS`. Exit status of ``check``: 0 when
every required clause passes (expected failures allowed), 1 when one fails, 2
for a usage error, a target that cannot be imported or an adapter whose
library is missing, 3 when none failed but ``--deadline`` ended the run before
every clause was checked. The last line of its output is ``N passed, M failed``
(``, K skipped`` when any were), where "failed" counts exactly the clauses that
make the exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path
from typing import TextIO


class UsageError(Exception):
    """A problem with the command line: exit status 2, message on stderr."""


# --- klspec check ------------------------------------------------------------------

#: Importing the target may take this many times --timeout (a library's first import is
#: slow: torch takes seconds); beyond, the import is a usage error, not a hang.
IMPORT_FACTOR = 6


class _ImportTimeout(BaseException):
    """Raised by the alarm (a BaseException, so the importer's handlers let it through)."""


@contextlib.contextmanager
def _import_deadline(seconds: float, target: str):
    """Raise TargetError if the block (importing the target) runs longer than ``seconds``.

    Uses SIGALRM, so only in the main thread of a Unix process; elsewhere no limit.
    """
    from klspec.conformance.targets import TargetError

    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise _ImportTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _ImportTimeout:
        raise TargetError(
            f"importing {target} did not finish within {seconds:g} s ({IMPORT_FACTOR} × "
            "--timeout); does the module do work when imported?"
        ) from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _log_ratio_range(text: str) -> tuple[float, float]:
    """``"-10:2.5"`` -> (-10.0, 2.5); argparse turns the ValueError into a usage error."""
    lo, sep, hi = text.partition(":")
    try:
        if not sep:
            raise ValueError
        bounds = float(lo), float(hi)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} must read LO:HI, e.g. -11:2.61 (write --log-ratio-range=-11:2.61 "
            "if your shell or tool splits it)"
        ) from None
    if not bounds[0] < bounds[1]:
        raise argparse.ArgumentTypeError(f"{text!r}: LO must be below HI")
    return bounds


def add_check_arguments(parser: argparse.ArgumentParser) -> None:
    """The target and its options, and the run options beyond --clause/--profile/--seed."""
    from klspec.conformance.isolation import DEFAULT_MEMORY_LIMIT, DEFAULT_TIMEOUT
    from klspec.conformance.signatures import ARRAYS, ESTIMATORS, REDUCTIONS
    from klspec.spec.interface import QUANTITIES
    from klspec.spec.precision import PRECISIONS

    parser.add_argument(
        "target",
        nargs="?",
        default="reference",
        help="a built-in adapter (see `klspec adapters`) or package.module:function "
        "(importable from the current directory too); default: the reference",
    )
    target = parser.add_argument_group("how a module:function target is called")
    target.add_argument(
        "--quantity",
        choices=list(QUANTITIES),
        help="what the function computes, in nats (default: kl): kl, entropy and "
        "cross-entropy reduce the last axis of probabilities; token-kl takes logits "
        "(positions, vocabulary) and returns a KL per position; k1, k2, k3 take the "
        "log-probabilities of sampled tokens under π and π_ref and return an estimate of "
        "KL(π‖π_ref) per token; dpo takes the log-probabilities of whole responses "
        "(chosen, rejected, under π and π_ref) and β, and returns one loss per pair",
    )
    target.add_argument(
        "--signature",
        metavar="SIG",
        help="its arguments in the vocabulary p, q, log_p, log_q, logits_p, logits_q: "
        "'f(p, q)' (default for kl and cross-entropy), 'f(log_q, p)' (torch's order), "
        "'f(log_q, log_p)', 'f(p)' (default for entropy); for token-kl the names "
        "logits_p, logits_q (default 'f(logits_p, logits_q)'), for k1/k2/k3 logp, ref_logp "
        "(default 'f(logp, ref_logp)'), for dpo logp_chosen, logp_rejected, ref_logp_chosen, "
        "ref_logp_rejected, beta and optionally label_smoothing (default 'f(logp_chosen, "
        "logp_rejected, ref_logp_chosen, ref_logp_rejected, beta)'), in any order or as "
        "keywords",
    )
    target.add_argument(
        "--batched",
        action="store_true",
        help="it takes arrays of shape (..., n) and reduces the last axis "
        "(without it only 1-D inputs are passed)",
    )
    target.add_argument(
        "--array",
        choices=list(ARRAYS),
        help="the array type it receives (default: numpy)",
    )
    target.add_argument(
        "--dtype",
        choices=list(PRECISIONS),
        help="the floating-point format of its arguments (default float64): inputs are "
        "drawn, rounded to it and passed in it; the truth is computed exactly from the "
        "rounded inputs and value tolerances come from its unit roundoff (bfloat16 needs "
        "--array torch or jax, or the ml_dtypes package)",
    )
    target.add_argument(
        "--device",
        metavar="DEV",
        help="torch or jax device for its arguments (cpu, cuda, cuda:1, mps, ...); "
        "results come back to the CPU",
    )
    target.add_argument(
        "--reduction",
        choices=list(REDUCTIONS),
        help="it returns the sum or the mean over positions, not one value per position "
        "(most shipped losses do): each position is then passed alone (default: none)",
    )
    target.add_argument(
        "--gradient-of",
        choices=list(ESTIMATORS),
        metavar="K",
        help="a straight-through k1/k2/k3 (torch or jax): its value is --quantity's "
        "estimator, its autograd gradient that of K (k1, k2 or k3)",
    )
    target.add_argument(
        "--log-ratio-range",
        type=_log_ratio_range,
        metavar="LO:HI",
        help="a k1/k2/k3 that clamps by design and is exact only where log r = "
        "ref_logp - logp lies in [LO, HI]: value and gradient clauses are checked there, "
        "and estimator.clamp_bias reports what the clamp does outside (a k3 clamped to "
        "<= 10 is exact on about -11:2.61)",
    )
    target.add_argument(
        "--beta",
        type=float,
        metavar="B",
        help="dpo: the β the function is called with, as given, and every dpo clause is "
        "checked at (default 0.1)",
    )
    parser.add_argument(
        "--max-examples", type=int, metavar="N", help="examples per check (overrides the profile)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"limit on each call of the target (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--deadline",
        type=float,
        metavar="SECONDS",
        help="limit on the whole run: clauses not checked by then are reported as not "
        "finished (exit status 3 when nothing failed)",
    )
    parser.add_argument(
        "--memory-limit",
        type=float,
        default=DEFAULT_MEMORY_LIMIT,
        metavar="MB",
        help="the most memory the target may hold (megabytes, resident, with the processes "
        f"it starts; 0 for no limit; default {DEFAULT_MEMORY_LIMIT}): beyond it the check "
        "fails and its worker is killed",
    )
    parser.add_argument(
        "--xfails",
        type=Path,
        metavar="FILE",
        help="expected failures: lines 'clause-id  # reason' (or a check name); "
        "a reason is required, ids that do not fail are warned about",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the report as JSON")


def check(args: argparse.Namespace, out: TextIO) -> int:
    """Run ``klspec check``; returns the exit status."""
    from klspec.conformance.report import XfailError, read_xfails, unmatched
    from klspec.conformance.signatures import SignatureError
    from klspec.conformance.targets import TargetError, resolve

    options = {
        "quantity": args.quantity,
        "signature": args.signature,
        "batched": args.batched,
        "array": args.array,
        "dtype": args.dtype,
        "device": args.device,
        "reduction": args.reduction,
        "gradient_of": args.gradient_of,
        "log_ratio_range": args.log_ratio_range,
        "beta": args.beta,
    }
    try:
        if args.max_examples is not None and args.max_examples < 1:
            raise UsageError("--max-examples must be at least 1")
        if args.timeout is not None and args.timeout <= 0:
            raise UsageError("--timeout must be positive")
        if args.deadline is not None and not args.deadline > 0:
            raise UsageError("--deadline must be positive")
        if not args.memory_limit >= 0:
            raise UsageError("--memory-limit must be a number of megabytes (0 for no limit)")
        xfails = read_xfails(args.xfails) if args.xfails else None
        with _import_deadline(IMPORT_FACTOR * (args.timeout or 10.0), args.target):
            impl = resolve(args.target, **options)
    except (UsageError, TargetError, SignatureError, XfailError) as exc:
        sys.stderr.write(f"klspec check: error: {exc}\n")
        return 2
    for warning in xfails.warnings if xfails else ():
        sys.stderr.write(f"klspec check: warning: {warning}\n")
    array = wrong_array(impl, args.target, options, args.timeout)
    if array is not None:
        sys.stderr.write(
            f"klspec check: error: {args.target} raises TypeError or AttributeError on numpy "
            f"arrays, and runs on {array} arrays: pass --array {array}\n"
        )
        return 2
    expected = xfails.expected if xfails else {}
    report = run_report(impl, args, expected, out)
    for name in unmatched(expected, report):
        sys.stderr.write(
            f"klspec check: warning: {args.xfails}: {name!r} is listed as an expected failure "
            "but did not fail in this run\n"
        )
    if args.json:
        write_json(args.json, report, impl)
    if not report.ok:
        return 1
    return 0 if report.complete else 3


def run_report(impl, args: argparse.Namespace, expected: dict[str, str], out: TextIO):
    """Run the checks with progress lines, then print the failures and the summary.

    Clauses the target cannot be checked against (it lacks their function, or they
    are checked in float64 only and the target is not) fold into one line each.
    """
    from klspec.conformance.report import clause_line, describe
    from klspec.conformance.runner import run
    from klspec.spec.clauses import CATALOG

    width = max(len(c.id) for c in CATALOG)
    lacking, float64_only = [], []

    def progress(result) -> None:
        if result.status == "skip" and not args.clause:  # clauses asked for by name are shown
            lacks = [r.reason.startswith(f"{impl.name} lacks") for r in result.results]
            only = [r.reason.startswith("checked in float64 only") for r in result.results]
            if all(a or b for a, b in zip(lacks, only, strict=True)):
                (float64_only if any(only) else lacking).append(result.clause.id)
                return
        out.write(clause_line(result, width) + "\n")
        out.flush()

    report = run(
        impl,
        args.clause,
        profile=args.profile,
        seed=args.seed,
        on_result=progress,
        max_examples=args.max_examples,
        timeout=args.timeout,
        isolate=True,
        expected=expected,
        deadline=args.deadline,
        memory_limit=args.memory_limit or None,
    )
    if float64_only:
        out.write(
            f"({len(float64_only)} clause{'s' * (len(float64_only) != 1)} checked in float64 "
            f"only, not run for {impl.dtype}: {', '.join(float64_only)})\n"
        )
    if lacking:
        out.write(
            f"({len(lacking)} clause{'s' * (len(lacking) != 1)} about what {impl.name} does not "
            "provide (a function, a declared clamp) not shown; `klspec list` has them all)\n"
        )
    out.write("\n" + describe(report))
    return report


def wrong_array(impl, target: str, options: dict, timeout: float | None) -> str | None:
    """The array type a module:function target needs, when numpy arrays make it raise.

    A function written for torch or jax raises TypeError (or AttributeError:
    ``'numpy.ndarray' object has no attribute 'float'``) on numpy input, which would
    read as a failure of every clause. One check is run (in a forked worker) with
    numpy arrays; if it raises so and the same check runs with torch tensors or jax
    arrays, that array type is the answer. None when no --array would help.
    """
    from klspec.conformance.runner import run
    from klspec.conformance.signatures import missing_library
    from klspec.conformance.targets import resolve
    from klspec.spec.checks import checks_for
    from klspec.spec.clauses import CATALOG

    if options.get("array") or ":" not in target:
        return None
    probe = next(
        (
            c.id
            for c in CATALOG
            if c.kind == "definition" and any(not impl.missing(k.needs) for k in checks_for(c.id))
        ),
        None,
    )
    if probe is None:
        return None

    def raises_on_type(candidate) -> bool:
        report = run(
            candidate,
            [probe],
            profile="fast",
            max_examples=2,
            timeout=timeout,
            isolate=True,
            causes=False,
        )
        failures = [r for c in report.clauses for r in c.failures]
        return bool(failures) and all(
            r.symptom == "raises" and ("TypeError" in r.message or "AttributeError" in r.message)
            for r in failures
        )

    if not raises_on_type(impl):
        return None
    for array in ("torch", "jax"):
        if missing_library(array):
            continue
        try:
            other = resolve(target, **{**options, "array": array})
        except Exception:
            continue
        if not raises_on_type(other):
            return array
    return None


# --- expected failures ---------------------------------------------------------------


# --- JSON ----------------------------------------------------------------------------------


def write_json(path: Path, report, impl) -> None:
    from klspec.conformance.report import report_data

    data = report_data(report, impl)
    path.write_text(
        json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )


# --- klspec adapters --------------------------------------------------------------------


def add_adapters_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the adapters as JSON")


def adapters(args: argparse.Namespace, out: TextIO) -> int:
    """List the built-in adapters, their conventions, and whether their library is installed."""
    from klspec.conformance.adapters import ADAPTERS

    rows = []
    for adapter in ADAPTERS.values():
        missing = adapter.missing()
        rows.append(
            {
                "name": adapter.name,
                "installed": missing is None,
                "reason": missing or "",
                "libraries": adapter.versions(),
                "conventions": adapter.conventions,
            }
        )
    if args.json:
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    for row in rows:
        versions = ", ".join(f"{k} {v}" for k, v in row["libraries"].items())
        state = f"installed ({versions})" if row["installed"] else f"skipped: {row['reason']}"
        out.write(f"{row['name']}  [{state}]\n")
        for line in row["conventions"].splitlines():
            out.write(f"    {line}\n".rstrip() + "\n")
        out.write("\n")
    installed = sum(r["installed"] for r in rows)
    out.write(f"{len(rows)} adapters, {installed} installed\n")
    return 0


# --- klspec matrix ----------------------------------------------------------------------


def add_matrix_arguments(parser: argparse.ArgumentParser) -> None:
    from klspec.conformance.adapters import ADAPTERS
    from klspec.conformance.runner import PROFILES

    parser.add_argument(
        "--output",
        type=Path,
        default=Path("docs/conformance.md"),
        metavar="PATH",
        help="the page to write (default docs/conformance.md), with its data beside it "
        "(docs/conformance.json) and docs/rlhf_libraries.md; rows the data has for adapters "
        "not run now are kept",
    )
    parser.add_argument(
        "--profile", choices=list(PROFILES), default="fast", help="default: fast (derandomized)"
    )
    parser.add_argument(
        "--adapter",
        action="append",
        choices=["reference", *ADAPTERS],
        metavar="NAME",
        help="re-run only this row (repeatable); the other rows are kept from the page",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="limit on each call"
    )


def matrix(args: argparse.Namespace, out: TextIO) -> int:
    """Run every installed adapter; write the page and its JSON twin beside it."""
    import time

    from klspec.conformance import matrix as matrix_page
    from klspec.conformance import rlhf_libraries_page as libraries_page

    data_path = args.output.with_suffix(".json")
    previous = None
    if data_path.exists():
        previous = matrix_page.from_json(data_path.read_text(encoding="utf-8"))
    if previous is not None and previous.get("profile") != args.profile:
        previous = None  # rows from another profile would be mislabelled: run them all
    start = time.perf_counter()

    def progress(row) -> None:
        cells = row["clauses"].values()
        failed = sum(cell["status"] == "fail" for cell in cells)
        found = len(matrix_page.findings(row))
        out.write(
            f"{row['target']}: {failed} required clauses failed, {found} findings "
            f"({time.perf_counter() - start:.0f} s)\n"
        )
        out.flush()

    data = matrix_page.collect(
        profile=args.profile,
        adapters=args.adapter,
        previous=previous,
        timeout=args.timeout,
        on_row=progress,
    )
    for row in data["rows"]:
        if row.get("skipped") or row.get("kept"):
            out.write(f"{row['target']}: {row.get('skipped') or row.get('kept')}\n")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    data_path.write_text(matrix_page.to_json(data), encoding="utf-8")
    args.output.write_text(matrix_page.render(data), encoding="utf-8")
    libraries = args.output.parent / "rlhf_libraries.md"
    libraries.write_text(libraries_page.render(data), encoding="utf-8")
    out.write(
        f"wrote {args.output}, {data_path} and {libraries} in {time.perf_counter() - start:.0f} s\n"
    )
    return 0
