"""Where token_kl's time goes: numpy's primitives and the two libraries per logit.

    python benchmarks/token_kl_floor.py [--shape B,T,V] [--kinds 0.01 1 unrelated ...]
                                        [--repeat N]

Issue 15 asks token_kl to run within 1.5x torch's time on float32 logits. This script
measures, on this machine and in one process, what bounds that from below:

- numpy's primitives per element, on one thread and on arrays of one token_kl block
  (_token_kl.BLOCK float64 elements): exp and log in float64 and float32, one
  elementwise float64 operation (a "pass"), one float64 row sum;
- per logit, for each kind of the issue-15 sweep (benchmarks/performance.py's
  LogitsSweep): klspec.reference.token_kl on 1 and on 2 threads (KLSPEC_NUM_THREADS),
  and torch (log_softmax + kl_div with log_target, as the benchmark times it) on 1 and
  2 threads, with each one's speed-up from the second core.

The reference needs float64 exponentials to keep its accuracy bound (about 1e-15
relative): e^α for every logit, and e^β where the series does not cover a token.
Each costs numpy's float64 exp (no SIMD form without AVX-512), so "exp floor" is that
cost times the exponentials a kind needs per logit (EXPONENTIALS), halved for two
cores as if they scaled perfectly, next to torch's whole two-thread time: a lower
bound on klspec ÷ torch for this method in numpy, before any other pass. Median of N
calls (default 3) after one warm-up. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from performance import LogitsSweep

from klspec.reference import _token_kl, token_kl

KINDS = ("0.01", "0.1", "0.5", "1", "3", "unrelated", "moved20", "masked")

#: float64 exponentials per logit the reference's method needs at least, by kind: e^α
#: for every logit; e^β too where the series does not cover most tokens (σ = 1: a third
#: of them lie outside −3/2 <= t <= 1; σ = 3, unrelated and moved rows: most).
EXPONENTIALS = {
    "0.01": 1,
    "0.1": 1,
    "0.5": 1,
    "masked": 1,
    "1": 2,
    "3": 2,
    "unrelated": 2,
    "moved20": 2,
}


def _median_time(f, repeat: int) -> float:
    f()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def primitives(repeat: int) -> list[tuple[str, float]]:
    """(name, ns per element) of numpy's primitives on one block-sized array."""
    n = _token_kl.BLOCK
    rng = np.random.default_rng(0)
    x64 = rng.normal(-12.0, 3.0, n)
    x32 = x64.astype(np.float32)
    o64, o32 = np.empty(n), np.empty(n, dtype=np.float32)
    pos = np.abs(x64) + 0.5
    loops = 20
    cases = [
        ("np.exp float64", lambda: np.exp(x64, out=o64)),
        ("np.exp float32", lambda: np.exp(x32, out=o32)),
        ("np.log float64", lambda: np.log(pos, out=o64)),
        ("one float64 pass (x*y)", lambda: np.multiply(x64, pos, out=o64)),
        ("one float64 row sum", lambda: x64.sum()),
    ]
    return [
        (name, _median_time(lambda f=f: [f() for _ in range(loops)], repeat) / (loops * n) * 1e9)
        for name, f in cases
    ]


def per_logit(kind: str, shape: tuple[int, int, int], repeat: int, torch) -> dict[str, float]:
    """ns per logit of klspec and torch on 1 and 2 threads for one kind of logits."""

    class Sizes:
        logits = shape

    pair = LogitsSweep(kind)(Sizes, np.random.default_rng(2026))
    a, b = pair["a"], pair["b"]
    out: dict[str, float] = {}
    old = os.environ.get("KLSPEC_NUM_THREADS")
    try:
        for threads in (1, 2):
            os.environ["KLSPEC_NUM_THREADS"] = str(threads)
            out[f"klspec{threads}"] = _median_time(lambda: token_kl(a, b), repeat) / a.size * 1e9
    finally:
        if old is None:
            os.environ.pop("KLSPEC_NUM_THREADS", None)
        else:
            os.environ["KLSPEC_NUM_THREADS"] = old
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        f = torch.nn.functional

        def run():
            return f.kl_div(
                f.log_softmax(tb, -1), f.log_softmax(ta, -1), reduction="none", log_target=True
            ).sum(-1)

        before = torch.get_num_threads()
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out[f"torch{threads}"] = _median_time(run, repeat) / a.size * 1e9
        torch.set_num_threads(before)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="8,256,32000", help="logits shape B,T,V")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    shape = tuple(int(s) for s in args.shape.split(","))
    try:
        import torch
    except ImportError:
        torch = None
        print("torch is not installed: its columns are left out")
    print(f"numpy {np.__version__}, one thread, arrays of {_token_kl.BLOCK:,} elements:")
    prims = dict(primitives(args.repeat))
    for name, ns in prims.items():
        print(f"  {name:26s} {ns:6.2f} ns an element")
    exp = prims["np.exp float64"]
    print(f"\nper logit, float32 logits of shape {shape}:")
    head = "kind        klspec 1t  klspec 2t  speed-up"
    if torch is not None:
        head += "  torch 1t  torch 2t  speed-up  ratio 2t  exp floor ÷ torch 2t"
    print(head)
    for kind in args.kinds:
        r = per_logit(kind, shape, args.repeat, torch)
        one, two = r["klspec1"], r["klspec2"]
        line = f"{kind:10s} {one:9.1f} {two:10.1f} {one / two:9.2f}"
        if torch is not None:
            exps = EXPONENTIALS[kind]
            floor = exps * exp / 2.0
            line += (
                f" {r['torch1']:9.1f} {r['torch2']:9.1f} {r['torch1'] / r['torch2']:9.2f}"
                f" {r['klspec2'] / r['torch2']:9.2f} {floor / r['torch2']:10.2f} ({exps} exp)"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
