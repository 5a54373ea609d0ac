"""Accuracy of literal KL implementations against mpmath on nearly equal pairs.

    python benchmarks/accuracy_vs_literal.py [--trials 300] [--seed 2026]

Draws pairs q = p·(1 + ε·z) renormalised, ε = 1e-8 … 1e-15, supports of 2–200
outcomes, and reports each implementation's worst relative error against the
exact KL of the normalised inputs (klspec.spec.oracle) and how often it returned
a negative value. torch is measured when installed.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.special as sc
import scipy.stats as ss

from klspec.reference import kl_divergence
from klspec.spec.oracle import kl_exact, relative_error


def implementations() -> dict:
    impls = {
        "klspec.reference": lambda p, q: float(kl_divergence(p, q)),
        "scipy rel_entr(p, q).sum()": lambda p, q: float(sc.rel_entr(p, q).sum()),
        "scipy kl_div(p, q).sum()": lambda p, q: float(sc.kl_div(p, q).sum()),
        "scipy.stats.entropy(p, q)": lambda p, q: float(ss.entropy(p, q)),
    }
    try:
        import torch
    except ImportError:
        print("torch not installed: skipped")
    else:

        def torch_kl(p, q):
            log_q, target = torch.from_numpy(q).log(), torch.from_numpy(p)
            return float(torch.nn.functional.kl_div(log_q, target, reduction="sum"))

        impls[f"torch {torch.__version__} kl_div(log q, p, 'sum')"] = torch_kl
    return impls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    impls = implementations()
    rng = np.random.default_rng(args.seed)
    worst = dict.fromkeys(impls, 0.0)
    negative = dict.fromkeys(impls, 0)
    for _ in range(args.trials):
        n = int(rng.integers(2, 200))
        eps = 10.0 ** -int(rng.integers(8, 16))
        p = rng.random(n)
        p /= p.sum()
        q = p * (1 + eps * rng.uniform(-1, 1, n))
        q /= q.sum()
        exact = kl_exact(p, q)
        for name, f in impls.items():
            value = f(p, q)
            worst[name] = max(worst[name], relative_error(value, exact))
            negative[name] += value < 0
    print(f"{'implementation':44} {'worst rel. error':>16} {'negative':>10}")
    for name in impls:
        print(f"{name:44} {worst[name]:16.2e} {negative[name]:>5}/{args.trials}")


if __name__ == "__main__":
    main()
