"""Clauses of the KL-regularised RLHF objective and its optimum."""

from __future__ import annotations

from klspec.spec.clauses._base import Clause

_RLHF = (
    Clause(
        "rlhf.optimal_policy",
        "The maximiser of E_π[r] − β KL(π‖π_ref) is π*(y) = π_ref(y) e^{r(y)/β}/Z, and its "
        "objective is β log Z.",
        r"\pi^* = \frac{\pi_{ref}\, e^{r/\beta}}{Z},\quad J(\pi^*) = \beta \log Z,"
        r"\quad Z = \sum_y \pi_{ref}(y) e^{r(y)/\beta}",
        "definition",
        ("rlhf_optimal_policy", "rlhf_optimal_value"),
        "Against mpmath: each π*(y) within a relative (8 + 2n)u + 4u(max|r|/β + 1) (r/β is "
        "rounded, relative u, and every π* moves with it), β log Z within "
        "4uβ(max|r|/β + 1) + 8u|β log Z|. Rewards up to 1e4 with β down to 1e-3 (r/β up to "
        "1e7: a naive exp overflows). Proved in docs/proofs/rlhf_optimum.md.",
        topic="rlhf",
    ),
    Clause(
        "rlhf.optimum_beats_every_policy",
        "No policy has a larger objective than π*: J(π) ≤ J(π*) = β log Z for every π.",
        r"J(\pi) = E_\pi[r] - \beta KL(\pi \| \pi_{ref}) \le \beta \log Z",
        "property",
        ("rlhf_objective", "rlhf_optimal_value"),
        "Drawn π (including π* itself, slightly perturbed): the gap β KL(π‖π*) ≥ 0, so only "
        "the value tolerances of J and β log Z are allowed.",
        topic="rlhf",
    ),
    Clause(
        "rlhf.support",
        "π* puts no mass where π_ref has none, whatever the reward there: reverse KL keeps the "
        "policy inside the base model's support.",
        r"\pi_{ref}(y) = 0 \implies \pi^*(y) = 0",
        "property",
        ("rlhf_optimal_policy",),
        "Exact: zeros must be exact zeros, even with reward 1e300 there.",
        topic="rlhf",
    ),
    Clause(
        "rlhf.beta_limits",
        "KL(π*‖π_ref) decreases as β grows; π* → π_ref as β → ∞ and → the reward argmax "
        "(within π_ref's support, ties shared in proportion to π_ref) as β → 0.",
        r"\beta \to \infty:\ \pi^* \to \pi_{ref};\quad \beta \to 0:\ \pi^* \to"
        r" \pi_{ref}|_{\arg\max r}",
        "property",
        ("rlhf_optimal_policy", "kl"),
        "On a geometric grid of β from 1e-6 to 1e6: KL non-increasing within its value "
        "tolerance; at β = 1e12 within 1e-9 of π_ref; at β = 1e-12 all mass on the argmax "
        "(rewards on a grid of 1e-3, so e^{-gap/β} underflows), in proportion to π_ref within "
        "the tolerance of rlhf.optimal_policy (r/β ~ 1e9 is rounded: a relative 4u·|r|/β).",
        topic="rlhf",
    ),
)

#: Every clause, ordered for reading: by topic, then by kind.

CLAUSES: tuple[Clause, ...] = _RLHF
