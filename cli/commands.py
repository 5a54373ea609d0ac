"""The ``klspec`` command: list the clauses, check an implementation against them.

Each subcommand is a pair of functions, one adding its arguments to the parser
and one running it, registered in :data:`COMMANDS`; new options and positional
arguments (a target to check, ``--json`` reports, xfail lists) go into the
``_add_*`` functions without touching the rest.

Exit status: 0 when every required clause passes, 1 when one fails, 2 for a usage
error (``klspec check``: see :mod:`klspec.conformance_commands`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from klspec import __version__, conformance_commands


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
    parser.add_argument(
        "--derivations",
        action="store_true",
        help="also list the clauses the sympy derivations establish (imports sympy)",
    )


def _list(args: argparse.Namespace, out: TextIO) -> int:
    from klspec.spec import CATALOG
    from klspec.spec.checks import checks_for
    from klspec.spec.interface import topic_title

    rows = [
        {
            "id": c.id,
            "topic": c.topic,
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
    topic = None
    for r in rows:
        if r["topic"] != topic:
            topic = r["topic"]
            out.write(f"{'' if r is rows[0] else chr(10)}## {topic_title(topic)}\n")
        out.write(f"{r['id']:<{width}}  {r['kind']:<14}  {r['statement']}\n")
        out.write(f"{'':<{width}}  {'':<14}  checks: {', '.join(r['checks'])}\n")
    out.write(f"\n{len(rows)} clauses, {sum(len(r['checks']) for r in rows)} checks\n")
    if args.derivations:
        from klspec.spec.clauses import derivation_clauses

        derived = derivation_clauses()
        out.write("\nDerivations (checked by `klspec prove`, not against implementations):\n")
        width = max(len(d.id) for d in derived)
        for d in derived:
            out.write(f"{d.id:<{width}}  {d.statement}\n")
    return 0


# --- klspec check ------------------------------------------------------------------


def _add_check(parser: argparse.ArgumentParser) -> None:
    from klspec.conformance.runner import PROFILES

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
    conformance_commands.add_check_arguments(parser)


def _add_prove(parser: argparse.ArgumentParser) -> None:
    # The same arguments as klspec.spec.derivations.prove.build_parser (a test compares
    # them), declared here so that `klspec --help` does not import sympy.
    parser.epilog = (
        "With --module, each module is imported (the current directory is importable, as "
        "with python -m) and its derivations are checked: the module-level DERIVATIONS (an "
        "iterable or mapping of Derivation objects) if it defines one, else every module "
        "attribute that is a Derivation, in definition order (built-in derivations it "
        "imports are skipped). The built-in derivations then run only when named as IDs. "
        "Exit status: 0 when every step reached the level it claims, 1 otherwise, 2 for a "
        "module that cannot be imported or defines no derivation, an unknown ID or two "
        "derivations sharing an id. Writing your own: docs/derivations.md."
    )
    parser.add_argument(
        "ids", nargs="*", metavar="ID", help="derivation ids, e.g. gibbs (default: all)"
    )
    parser.add_argument(
        "-m",
        "--module",
        action="append",
        default=[],
        metavar="MOD[,MOD...]",
        help="check the derivations these modules define instead of the built-in ones (repeatable)",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the ids and titles; check nothing"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every check's detail")


def _prove(args: argparse.Namespace, out: TextIO) -> int:
    from klspec.spec.derivations import main_prove  # imports sympy: only for this command

    argv = [*args.ids, *(f"--module={m}" for m in args.module)]
    argv += [*(["--list"] if args.list else []), *(["-v"] if args.verbose else [])]
    return main_prove(argv, out=out)


def _add_docs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=Path("docs"), help="the docs directory (default: ./docs)"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and list the pages that are out of date",
    )


def _docs(args: argparse.Namespace, out: TextIO) -> int:
    from klspec.conformance import docs as documentation  # runs the derivations: sympy

    if args.check:
        stale = documentation.stale(args.out)
        for rel in stale:
            out.write(f"out of date: {args.out / rel}\n")
        out.write("docs are current\n" if not stale else "run `klspec docs` to regenerate\n")
        return 1 if stale else 0
    written = documentation.write(args.out)
    out.write(f"wrote {len(written)} pages under {args.out}/ (index.md, worked pages, proofs/)\n")
    return 0


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
    "check": (
        "check an implementation (default: the reference) against every clause",
        _add_check,
        conformance_commands.check,
    ),
    "adapters": (
        "list the built-in adapters, their conventions, and whether each library is installed",
        conformance_commands.add_adapters_arguments,
        conformance_commands.adapters,
    ),
    "matrix": (
        "run every installed adapter; write docs/conformance.md and docs/conformance.json",
        conformance_commands.add_matrix_arguments,
        conformance_commands.matrix,
    ),
    "prove": (
        "check the sympy derivations step by step; print each step's level and time",
        _add_prove,
        _prove,
    ),
    "docs": (
        "regenerate docs/ (index.md, proofs/) from the catalog and the derivations",
        _add_docs,
        _docs,
    ),
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


def _hypothesis_cache() -> None:
    """Keep hypothesis's files out of the working directory: a user cache directory.

    hypothesis writes ``.hypothesis/`` (with absolute paths inside) into the current
    directory unless told otherwise; ``HYPOTHESIS_STORAGE_DIRECTORY``, if the user set
    it, is kept.
    """
    from pathlib import Path

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(cache / "klspec" / "hypothesis"))


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the ``klspec`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # "--log-ratio-range -10:2.5": a value that starts with "-" would read as an option.
    for i, word in enumerate(argv[:-1]):
        if word == "--log-ratio-range" and argv[i + 1].startswith("-"):
            argv[i : i + 2] = [f"{word}={argv[i + 1]}"]
            break
    args = build_parser().parse_args(argv)
    _hypothesis_cache()
    try:
        return COMMANDS[args.command][2](args, out or sys.stdout)
    except BrokenPipeError:
        # The reader went away (`klspec list | head`): stop quietly, like other
        # Unix tools, and keep Python from complaining again at shutdown.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
