"""Worst relative error of the reference against mpmath, per hard regime.

    python benchmarks/reference_accuracy.py [--cases 300] [--seed 0]

Each regime draws ``--cases`` seeded inputs and reports the worst relative error
of kl_divergence, entropy and cross_entropy against the exact value of the
exactly normalised inputs (klspec.spec.oracle.accuracy_error: relative, with one
unit of the subnormal grid allowed where the truth itself underflows). The bound
the tests enforce is 1e-15 (tests/test_accuracy.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from klspec.reference import cross_entropy, entropy, kl_divergence
from klspec.spec.oracle import accuracy_error, cross_entropy_exact, entropy_exact, kl_exact

Pair = tuple[np.ndarray, np.ndarray]


def _norm(x: np.ndarray) -> np.ndarray:
    return x / x.sum()


def near_equal(rng: np.random.Generator) -> Pair:
    n = int(rng.integers(2, 200))
    p = _norm(rng.random(n))
    eps = 10.0 ** -rng.uniform(2, 15.5)
    return p, _norm(p * (1 + eps * rng.uniform(-1, 1, n)))


def one_ulp(rng: np.random.Generator) -> Pair:
    n = int(rng.integers(2, 100))
    p = _norm(rng.random(n))
    q = p.copy()
    i = int(rng.integers(n))
    q[i] = np.nextafter(q[i], 2.0)
    q[(i + 1) % n] = np.nextafter(q[(i + 1) % n], -1.0)
    return p, q


def dynamic_range(rng: np.random.Generator) -> Pair:
    n = int(rng.integers(2, 50))
    return _norm(10.0 ** rng.uniform(-300, 0, n)), _norm(10.0 ** rng.uniform(-300, 0, n))


def subnormal(rng: np.random.Generator) -> Pair:
    n = int(rng.integers(3, 30))
    p = _norm(rng.random(n))
    p[rng.integers(n, size=2)] = 5e-324 * rng.integers(1, 10**6, size=2)
    return _norm(p), _norm(rng.random(n) + 1e-3)


def zeros(rng: np.random.Generator) -> Pair:
    n = int(rng.integers(2, 60))
    p = rng.random(n) * (rng.random(n) < 0.6)
    p[0] = max(p[0], 0.1)
    q = rng.random(n) * ((p > 0) | (rng.random(n) < 0.5))
    return _norm(p), _norm(q + (p > 0) * 1e-3)


def ratio_sweep(rng: np.random.Generator) -> Pair:
    s = rng.uniform(-0.99, 0.99)
    r = (1 + s) / (1 - s)
    q0 = rng.uniform(0.001, min(0.999, 0.999 / r))
    return np.array([r * q0, 1 - r * q0]), np.array([q0, 1 - q0])


def one_hot(rng: np.random.Generator) -> Pair:
    n = int(rng.integers(1, 100))
    p = np.zeros(n)
    p[rng.integers(n)] = 1.0
    return p, _norm(rng.random(n) + 1e-3)


REGIMES: dict[str, Callable[[np.random.Generator], Pair]] = {
    "near-equal 1e-2..1e-15": near_equal,
    "one ulp apart": one_ulp,
    "300 decades": dynamic_range,
    "subnormal entries": subnormal,
    "exact zeros": zeros,
    "s = (r-1)/(r+1) sweep": ratio_sweep,
    "one-hot p": one_hot,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'regime':26} {'kl':>10} {'entropy':>10} {'cross-ent.':>10}")
    overall = 0.0
    for name, draw in REGIMES.items():
        rng = np.random.default_rng(args.seed)
        worst = [0.0, 0.0, 0.0]
        for _ in range(args.cases):
            p, q = draw(rng)
            errors = (
                accuracy_error(float(kl_divergence(p, q)), kl_exact(p, q)),
                accuracy_error(float(entropy(p)), entropy_exact(p)),
                accuracy_error(float(cross_entropy(p, q)), cross_entropy_exact(p, q)),
            )
            worst = [max(w, e) for w, e in zip(worst, errors, strict=True)]
        overall = max(overall, *worst)
        print(f"{name:26} {worst[0]:10.2e} {worst[1]:10.2e} {worst[2]:10.2e}")
    print(f"worst overall: {overall:.2e} (bound 1e-15)")


if __name__ == "__main__":
    main()
