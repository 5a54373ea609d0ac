"""Run the derivations: :func:`run` for programs, :func:`main_prove` for ``klspec prove``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable

from klspec.spec.derivations._core import DerivationResult, check
from klspec.spec.derivations.registry import DERIVATIONS

__all__ = ["main_prove", "resolve", "run"]


def resolve(ids: Iterable[str] | None) -> list[str]:
    """Full ids for ``ids`` (``gibbs`` or ``derivation.gibbs``); all when ``None``."""
    if ids is None:
        return list(DERIVATIONS)
    out = []
    for name in ids:
        full = name if name.startswith("derivation.") else f"derivation.{name}"
        if full not in DERIVATIONS:
            known = ", ".join(d.removeprefix("derivation.") for d in DERIVATIONS)
            raise KeyError(f"no derivation {name!r}; known: {known}")
        out.append(full)
    return out


def run(
    ids: Iterable[str] | None = None,
    on_result: Callable[[DerivationResult], None] | None = None,
) -> list[DerivationResult]:
    """Check the derivations ``ids`` (all by default), in reading order."""
    results = []
    for full in resolve(ids):
        result = check(DERIVATIONS[full])
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results


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


def main_prove(argv: list[str] | None = None, *, out=None) -> int:
    """``klspec prove [ID ...] [-v]``: check derivations, print each step's level and time.

    Returns 0 when every step passed at the level it claims, 1 otherwise, 2 for an
    unknown id.
    """
    out = sys.stdout if out is None else out
    parser = argparse.ArgumentParser(
        prog="klspec prove",
        description="Check the sympy derivations step by step and report each step's level.",
    )
    parser.add_argument("ids", nargs="*", help="derivation ids (default: all), e.g. gibbs")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every check's detail")
    args = parser.parse_args(argv)
    try:
        ids = resolve(args.ids or None)
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    results = run(ids, on_result=lambda r: _print_result(r, verbose=args.verbose, out=out))
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
    return 0
