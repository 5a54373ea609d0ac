"""Time per element of kl_divergence, entropy and cross_entropy, by input class.

    python benchmarks/divergence_classes.py [--shapes 1000x32000 100000x100 1x10000000]
                                            [--classes NAME ...] [--repeat N]

Issue 15 asks that no input class cost more than 2× the common case (random,
Dirichlet-like rows). The classes, one array pair (p, q) of the given shape each:

- ``dirichlet``: p and q drawn from Dirichlet(1) — the common case;
- ``near``: q = p·(1 + 1e-12·u), renormalised (KL ~ 1e-25);
- ``onehot``: p = [1 − 1e-12, 1e-17/(n−1), ...], one-hot up to rounding (and summing to
  1 − 1e-12, within the tolerance: H ≈ 1e-15 next to log Σp ≈ −1e-12);
- ``proportional``: p = q·(1 + 1e-9), not normalised (true KL ~ 1e-33);
- ``zeros``: a third of p and a sixth of q are 0;
- ``subnormal``: a quarter of p is 5e-320.

Each cell is the median of N calls (default 3) in nanoseconds per element of p,
and the ratio to the ``dirichlet`` row of the same function and shape.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from klspec.reference import cross_entropy, entropy, kl_divergence

CLASSES = ("dirichlet", "near", "onehot", "proportional", "zeros", "subnormal")


def _normalised(x: np.ndarray) -> np.ndarray:
    x /= x.sum(axis=-1, keepdims=True)
    return x


def make(cls: str, shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The (p, q) pair of one class."""
    rng = np.random.default_rng(seed)
    n = shape[-1]
    p = _normalised(rng.standard_exponential(shape))  # Dirichlet(1) rows
    q = _normalised(rng.standard_exponential(shape))
    if cls == "near":
        q = _normalised(p * (1 + 1e-12 * rng.uniform(-1, 1, shape)))
    elif cls == "onehot":
        p[...] = 1e-17 / max(1, n - 1)
        p[..., 0] = 1 - 1e-12
    elif cls == "proportional":
        p = q * (1 + 1e-9)
    elif cls == "zeros":
        p[..., ::3] = 0.0
        q[..., ::6] = 0.0
        p, q = _normalised(p), _normalised(q)
    elif cls == "subnormal":
        p[..., 1::4] = 5e-320
        p = _normalised(p)
    return p, q


def _median_time(f, repeat: int) -> float:
    f()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["1000x32000", "100000x100", "1x10000000"])
    parser.add_argument("--classes", nargs="+", default=list(CLASSES), choices=CLASSES)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    functions = {
        "kl": lambda p, q: kl_divergence(p, q),
        "entropy": lambda p, q: entropy(p),
        "cross": lambda p, q: cross_entropy(p, q),
    }
    print(f"{'shape':>12} {'class':>13}" + "".join(f" {name:>18}" for name in functions))
    for text in args.shapes:
        shape = tuple(int(float(v)) for v in text.split("x"))
        base: dict[str, float] = {}
        for cls in ("dirichlet", *[c for c in args.classes if c != "dirichlet"]):
            p, q = make(cls, shape)
            cells = []
            for name, f in functions.items():
                ns = _median_time(lambda f=f, p=p, q=q: f(p, q), args.repeat) / p.size * 1e9
                base.setdefault(name, ns)
                cells.append(f"{ns:7.2f} ns ({ns / base[name]:4.1f}×)")
            print(f"{text:>12} {cls:>13}" + "".join(f" {c:>18}" for c in cells), flush=True)
            del p, q


if __name__ == "__main__":
    main()
