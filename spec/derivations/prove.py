"""Run the derivations: :func:`run` for programs, :func:`main_prove` for ``klspec prove``.

``klspec prove --module mypkg.derivations`` checks a user's own derivations: the
module is imported and its derivations found by :func:`discover` (a module-level
``DERIVATIONS``, else every :class:`~klspec.spec.derivations.Derivation` it holds);
:func:`run_derivations` checks any derivations given as objects.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import ModuleType

from klspec.spec.derivations._core import Derivation, DerivationResult, check
from klspec.spec.derivations.registry import DERIVATIONS

__all__ = [
    "DISCOVERY",
    "DerivationLookupError",
    "discover",
    "load_modules",
    "main_prove",
    "resolve",
    "run",
    "run_derivations",
]

#: How ``--module`` finds the derivations of a module (also the ``--help`` text).
DISCOVERY = (
    "With --module, each module is imported (the current directory is importable, as "
    "with python -m) and its derivations are checked: the module-level DERIVATIONS (an "
    "iterable or mapping of Derivation objects) if it defines one, else every module "
    "attribute that is a Derivation, in definition order (built-in derivations it "
    "imports are skipped). The built-in derivations then run only when named as IDs. "
    "Exit status: 0 when every step reached the level it claims, 1 otherwise, 2 for a "
    "module that cannot be imported or defines no derivation, an unknown ID or two "
    "derivations sharing an id. Writing your own: docs/derivations.md."
)


class DerivationLookupError(KeyError):
    """A usage error of ``klspec prove`` (exit status 2); the message says what to do."""


def _short(derivation_id: str) -> str:
    return derivation_id.removeprefix("derivation.")


def _select(ids: Iterable[str], pool: Mapping[str, Derivation], where: str) -> list[Derivation]:
    """The derivations of ``pool`` (keyed by short id) named by ``ids``, in that order."""
    out = []
    for name in ids:
        derivation = pool.get(_short(name))
        if derivation is None:
            known = ", ".join(pool)
            raise DerivationLookupError(f"no derivation {name!r}{where}; known: {known}")
        out.append(derivation)
    return out


def resolve(ids: Iterable[str] | None) -> list[str]:
    """Full ids of the built-in ``ids`` (``gibbs`` or ``derivation.gibbs``); all when ``None``."""
    if ids is None:
        return list(DERIVATIONS)
    pool = {_short(full): derivation for full, derivation in DERIVATIONS.items()}
    return [d.id for d in _select(ids, pool, "")]


def discover(module: ModuleType) -> list[Derivation]:
    """The derivations ``module`` defines, by the rule in :data:`DISCOVERY`.

    A ``DERIVATIONS`` that is klspec's own registry (``from klspec.spec.derivations
    import *`` brings it in) does not count, and neither do built-in derivations found
    as attributes; an object bound to two names counts once.
    """
    name = module.__name__
    declared = getattr(module, "DERIVATIONS", None)
    if declared is not None and declared is not DERIVATIONS:
        try:
            items = list(declared.values() if isinstance(declared, Mapping) else declared)
        except TypeError:
            raise DerivationLookupError(
                f"{name}.DERIVATIONS is a {type(declared).__name__}, not an iterable or "
                f"mapping of Derivation objects"
            ) from None
        for k, item in enumerate(items):
            if not isinstance(item, Derivation):
                raise DerivationLookupError(
                    f"{name}.DERIVATIONS[{k}] is a {type(item).__name__}, not a Derivation"
                )
        found = items
    else:
        builtin = {id(d) for d in DERIVATIONS.values()}
        found = [
            value
            for value in vars(module).values()
            if isinstance(value, Derivation) and id(value) not in builtin
        ]
    unique: dict[int, Derivation] = {}
    for derivation in found:
        unique.setdefault(id(derivation), derivation)
    return list(unique.values())


@contextlib.contextmanager
def _cwd_importable() -> Iterator[None]:
    """The current directory on sys.path (first) for the duration, as ``python -m`` has it."""
    cwd = os.getcwd()
    if cwd in sys.path or "" in sys.path:
        yield
        return
    sys.path.insert(0, cwd)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(cwd)


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except (Exception, SystemExit) as exc:
        text = " ".join(str(exc).split()) or "(no message)"
        hint = ""
        missing = getattr(exc, "name", None)
        if (
            isinstance(exc, ModuleNotFoundError)
            and missing
            and f"{name}.".startswith(f"{missing}.")
        ):
            hint = f" (run from the directory that contains {missing}, or install it)"
        raise DerivationLookupError(
            f"cannot import module {name!r}: {type(exc).__name__}: {text}{hint}"
        ) from exc


def load_modules(names: Iterable[str]) -> dict[str, Derivation]:
    """Import each module and discover its derivations: short id → derivation, in order.

    Raises :class:`DerivationLookupError` for a module that cannot be imported or
    defines no derivation, and for two different derivations with the same id.
    """
    found: dict[str, Derivation] = {}
    where: dict[str, str] = {}
    for name in names:
        derivations = discover(_import(name))
        if not derivations:
            raise DerivationLookupError(
                f"module {name!r} defines no derivation: define DERIVATIONS = (...) or "
                f"module-level Derivation objects"
            )
        for derivation in derivations:
            key = _short(derivation.id)
            if key in found and found[key] is not derivation:
                raise DerivationLookupError(
                    f"two derivations have the id {derivation.id!r} (in {where[key]} and "
                    f"{name}); give each its own id"
                )
            found.setdefault(key, derivation)
            where.setdefault(key, name)
    return found


def run_derivations(
    derivations: Iterable[Derivation],
    on_result: Callable[[DerivationResult], None] | None = None,
) -> list[DerivationResult]:
    """Check each of ``derivations`` (Derivation objects, e.g. your own), in order."""
    results = []
    for derivation in derivations:
        result = check(derivation)
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results


def run(
    ids: Iterable[str] | None = None,
    on_result: Callable[[DerivationResult], None] | None = None,
) -> list[DerivationResult]:
    """Check the built-in derivations ``ids`` (all by default), in reading order."""
    return run_derivations((DERIVATIONS[full] for full in resolve(ids)), on_result)


def _print_result(result: DerivationResult, *, verbose: bool, out) -> None:
    d = result.derivation
    print(f"{d.id} — {d.title}", file=out)
    for ci, chain in enumerate(result.chains, start=1):
        for si, r in enumerate(chain.steps, start=1):
            if r is None:
                continue
            rel = r.step.relation
            if not r.ok:
                status = f"FAILED (claimed {r.claimed.words})"
            elif r.level != r.claimed:
                status = f"{r.label} — but claimed {r.claimed.words}"
            else:
                status = r.label
            print(f"  {ci}.{si:<2} {rel} {status:<58} {r.seconds:6.2f} s  {r.step.why}", file=out)
            if verbose or not r.as_claimed:
                print(f"        {r.detail}", file=out)
    n = len(result.step_results)
    verdict = "ok" if result.as_claimed else "FAILED"
    print(f"  {verdict}: {n} steps in {result.seconds:.2f} s", file=out)


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``klspec prove`` (the CLI declares the same; a test keeps them so)."""
    parser = argparse.ArgumentParser(
        prog="klspec prove",
        description="Check the sympy derivations step by step and report each step's level.",
        epilog=DISCOVERY,
    )
    parser.add_argument(
        "ids", nargs="*", metavar="ID", help="derivation ids (default: all), e.g. gibbs"
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
    return parser


def _selected(ids: list[str], modules: list[str]) -> list[Derivation]:
    """What ``klspec prove [ID ...] [--module MOD ...]`` checks."""
    if not modules:
        return [DERIVATIONS[full] for full in resolve(ids or None)]
    own = load_modules(modules)
    if not ids:
        return list(own.values())
    # Named ids select among the modules' derivations and the built-in ones.
    pool = dict(own)
    for full, derivation in DERIVATIONS.items():
        key = _short(full)
        if key in pool and pool[key] is not derivation:
            raise DerivationLookupError(
                f"two derivations have the id {full!r} (a built-in one and one in "
                f"{', '.join(modules)}); give yours another id"
            )
        pool.setdefault(key, derivation)
    return _select(ids, pool, f" in {', '.join(modules)} or the built-in derivations")


def main_prove(argv: list[str] | None = None, *, out=None) -> int:
    """``klspec prove [ID ...] [--module MOD] [--list] [-v]``: check derivations.

    Prints each step's level and time. Returns 0 when every step passed at the level
    it claims, 1 otherwise, 2 for a usage error (see :data:`DISCOVERY`), whose message
    goes to stderr.
    """
    out = sys.stdout if out is None else out
    args = build_parser().parse_args(argv)
    modules = [m.strip() for arg in args.module for m in arg.split(",") if m.strip()]
    with _cwd_importable():
        try:
            derivations = _selected(args.ids, modules)
        except DerivationLookupError as exc:
            print(f"klspec prove: {exc.args[0]}", file=sys.stderr)
            return 2
        if args.list:
            width = max((len(_short(d.id)) for d in derivations), default=0)
            for d in derivations:
                print(f"{_short(d.id):<{width}}  {d.title}", file=out)
            return 0
        return _check_and_report(derivations, verbose=args.verbose, out=out)


def _check_and_report(derivations: list[Derivation], *, verbose: bool, out) -> int:
    t0 = time.perf_counter()
    results = run_derivations(
        derivations, on_result=lambda r: _print_result(r, verbose=verbose, out=out)
    )
    steps = [s for r in results for s in r.step_results]
    bad = [s for s in steps if not s.as_claimed]
    total = time.perf_counter() - t0
    if bad:
        print(
            f"{len(bad)} of {len(steps)} steps failed or reached another level than claimed "
            f"({total:.1f} s)",
            file=out,
        )
        return 1
    print(
        f"{len(results)} derivations, {len(steps)} steps, each at its claimed level "
        f"({total:.1f} s)",
        file=out,
    )
    print(f"  {level_counts(steps)}", file=out)
    return 0


def level_counts(steps) -> str:
    """``82 proved, 21 by rule, ...``: how many steps reached each level, strongest first."""
    from klspec.spec.derivations.checks import Level

    counts = {level: 0 for level in sorted(Level, reverse=True)}
    for s in steps:
        if s.level is not None:
            counts[s.level] += 1
    return ", ".join(f"{n} {level.words}" for level, n in counts.items() if n)
