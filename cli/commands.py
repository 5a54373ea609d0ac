"""The ``klspec`` command: list the clauses, check an implementation against them.

Each subcommand is a pair of functions, one adding its arguments to the parser
and one running it, registered in :data:`COMMANDS`; new options and positional
arguments (a target to check, ``--json`` reports, xfail lists) go into the
``_add_*`` functions without touching the rest.

Exit status: 0 when every clause passes, 1 when any fails, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from klspec import __version__


def _clause_id(text: str) -> str:
    """argparse type for --clause: a known clause id (else a usage error naming close matches)."""
    from klspec.spec import clause

    try:
        return clause(text).id
    except KeyError as exc:
        raise argparse.ArgumentTypeError(exc.args[0]) from None


# --- klspec list -------------------------------------------------------------------


def _add_list(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the catalog as JSON")


def _list(args: argparse.Namespace, out: TextIO) -> int:
    from klspec.spec import CATALOG
    from klspec.spec.checks import checks_for

    rows = [
        {
            "id": c.id,
            "kind": c.kind,
            "statement": c.statement,
            "latex": c.latex,
            "quantities": list(c.quantities),
            "notes": c.notes,
            "checks": [k.name for k in checks_for(c.id)],
        }
        for c in CATALOG
    ]
    if args.json:
        json.dump(rows, out, indent=2, ensure_ascii=False)
        out.write("\n")
        return 0
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        out.write(f"{r['id']:<{width}}  {r['kind']:<14}  {r['statement']}\n")
        out.write(f"{'':<{width}}  {'':<14}  checks: {', '.join(r['checks'])}\n")
    out.write(f"\n{len(rows)} clauses, {sum(len(r['checks']) for r in rows)} checks\n")
    return 0


# --- klspec check ------------------------------------------------------------------


def _add_check(parser: argparse.ArgumentParser) -> None:
    from klspec.spec.runner import PROFILES

    parser.add_argument(
        "--clause",
        action="append",
        type=_clause_id,
        metavar="ID",
        help="check only this clause (repeatable; see `klspec list`)",
    )
    parser.add_argument(
        "--profile",
        choices=list(PROFILES),
        default="default",
        help="how hard to search: fast (25 derandomized examples per check), "
        "default (100), thorough (2000)",
    )
    parser.add_argument("--seed", type=int, help="random seed, to repeat a run")


def _check(args: argparse.Namespace, out: TextIO) -> int:
    from klspec.spec import CATALOG, reference_implementation, run

    impl = reference_implementation()
    width = max(len(c.id) for c in CATALOG)

    def progress(result) -> None:
        out.write(_clause_line(result, width) + "\n")
        for r in result.results:
            if r.status in ("fail", "error"):
                out.write(_failure(r))
        out.flush()

    report = run(impl, args.clause, profile=args.profile, seed=args.seed, on_result=progress)
    seed = f", seed {report.seed}" if report.seed is not None else ""
    out.write(
        f"\nchecked {report.target} (profile {report.profile}{seed}) in {report.seconds:.1f}s\n"
    )
    out.write(report.summary + "\n")
    return 0 if report.ok else 1


def _clause_line(result, width: int) -> str:
    status = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}[result.status]
    n = len(result.results)
    if result.status == "skip":
        detail = f"({result.results[0].reason})"
    else:
        detail = f"({n} check{'s' * (n != 1)}, {result.examples} examples)"
    return f"{status}  {result.clause.id:<{width}}  {detail:<30}  {result.seconds:.1f}s"


def _failure(r) -> str:
    lines = [f"      {r.check.name}: {r.message}"]
    if r.counterexample:
        lines.append(f"      counterexample: {r.counterexample}")
    if r.reproduce:
        lines.append(f"      reproduce: {r.reproduce}")
    return "\n".join(lines) + "\n"


#: name -> (help, add arguments, run)
COMMANDS: dict[
    str,
    tuple[
        str,
        Callable[[argparse.ArgumentParser], None],
        Callable[[argparse.Namespace, TextIO], int],
    ],
] = {
    "list": ("list the clauses and the checks covering each", _add_list, _list),
    "check": ("check the reference against every clause", _add_check, _check),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="klspec",
        description="An executable specification of KL divergence, entropy and cross-entropy.",
    )
    parser.add_argument("--version", action="version", version=f"klspec {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(commands.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the ``klspec`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][2](args, out or sys.stdout)
    except BrokenPipeError:
        # The reader went away (`klspec list | head`): stop quietly, like other
        # Unix tools, and keep Python from complaining again at shutdown.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
