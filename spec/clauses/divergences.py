"""Clauses of the divergences: entropy, cross-entropy and KL of probability vectors."""

from __future__ import annotations

from klspec.spec.clauses._base import VALUE_TOLERANCE, Clause
from klspec.spec.interface import DIVERGENCES
from klspec.spec.special_cases import SPECIAL_CASES, Outcome

#: The divergences, which most clauses of this topic constrain together.
QUANTITIES: tuple[str, ...] = DIVERGENCES


def _special_case_clauses() -> tuple[Clause, ...]:
    return tuple(
        Clause(
            id=row.clause_id,
            statement=row.statement,
            latex=row.latex,
            kind="special case",
            quantities=(row.quantity,),
            notes=(
                f"Checked as `{row.id}`"
                + (
                    " on drawn inputs free of every other hazard (every entry of p and q at "
                    "least 3e-6: no other zero, no subnormal, nothing below 1e-7) with one more "
                    "outcome where the condition holds, so a failure is about this condition "
                    "alone (klspec.spec.hazards)."
                    if isinstance(row.condition, Outcome)
                    else " on one-hot or uniform p of 1 to 10**5 outcomes."
                )
                + (f" {VALUE_TOLERANCE}" if row.result in ("term 0", "exact term", "log n") else "")
            ),
        )
        for row in SPECIAL_CASES
    )


_DEFINITIONS = (
    Clause(
        "entropy.definition",
        "The entropy of p is H(P) = −Σ P_i log P_i over P = p/Σp, with 0·log 0 = 0, in nats.",
        r"H(P) = -\sum_i P_i \log P_i",
        "definition",
        ("entropy",),
        VALUE_TOLERANCE,
    ),
    Clause(
        "cross_entropy.definition",
        "The cross-entropy of q relative to p is H(P, Q) = −Σ P_i log Q_i over the normalised "
        "inputs, with 0·log q = 0, in nats.",
        r"H(P, Q) = -\sum_i P_i \log Q_i",
        "definition",
        ("cross_entropy",),
        VALUE_TOLERANCE,
    ),
    Clause(
        "kl.definition",
        "The KL divergence of q from p is KL(P‖Q) = Σ P_i log(P_i/Q_i) over the normalised "
        "inputs, with 0·log(0/q) = 0, in nats.",
        r"KL(P \| Q) = \sum_i P_i \log \frac{P_i}{Q_i}",
        "definition",
        ("kl",),
        VALUE_TOLERANCE,
    ),
    Clause(
        "units.base",
        "A result in base b is the result in nats divided by ln b (base 2 gives bits).",
        r"KL_b(P \| Q) = \frac{KL(P \| Q)}{\ln b}",
        "definition",
        QUANTITIES,
        "Checked for b = 2, e and 10 against the exact nats value divided by ln b; the "
        "value tolerance is divided by ln b too, plus two roundings of the result.",
    ),
)

_WORKED_EXAMPLES = (
    Clause(
        "example.weather.forward",
        "Sunny 70% / rainy 30% against a 50/50 forecast: KL(P‖Q) = 0.7 ln(7/5) + 0.3 ln(3/5) "
        "≈ 0.0823 nats.",
        r"KL\big((0.7, 0.3) \,\|\, (0.5, 0.5)\big) = 0.7 \ln\tfrac75 + 0.3 \ln\tfrac35"
        r" \approx 0.0823",
        "worked example",
        ("kl",),
        "The post's weather example; it prints 0.082, correct to its three digits (0.08228...). "
        "The "
        "expected value is computed from the formula with mpmath at check time.",
    ),
    Clause(
        "example.weather.reverse",
        "The same pair the other way round: KL(Q‖P) = 0.5 ln(5/7) + 0.5 ln(5/3) ≈ 0.0872 nats.",
        r"KL\big((0.5, 0.5) \,\|\, (0.7, 0.3)\big) = 0.5 \ln\tfrac57 + 0.5 \ln\tfrac53"
        r" \approx 0.0872",
        "worked example",
        ("kl",),
        "The post prints 0.088, an artefact of rounding: it rounds the logs to three digits "
        "(0.511, 0.336) and the products again (0.5 × 0.511 ≈ 0.256, 0.5 × 0.336 = 0.168), "
        "and 0.256 − 0.168 = 0.088. The true value is 0.0872 nats (0.08717669...). The "
        "expected value is computed with mpmath at check time.",
    ),
    Clause(
        "example.coin_flips",
        "The empirical distribution of the flips H, H, T is exactly (2/3, 1/3).",
        r"\hat P(H) = \tfrac23,\ \hat P(T) = \tfrac13",
        "worked example",
        ("empirical",),
        "Each probability is count/n rounded once, so it equals the float nearest 2/3 "
        "(and 1/3) exactly; outcomes come in order of first appearance.",
    ),
)

_PROPERTIES = (
    Clause(
        "kl.nonnegative",
        "KL(P‖Q) ≥ 0 (Gibbs' inequality); any negative result is wrong, however small.",
        r"KL(P \| Q) \ge 0",
        "property",
        ("kl",),
        "Exact: no tolerance. A literal Σ p log(p/q) returns tiny negative values on nearly "
        "equal inputs because the inputs' sums are 1 only within rounding. Required: Gibbs' "
        "inequality is the property users rely on (KL as a loss or a distance-like penalty), and "
        "clamping at zero meets it at no cost in accuracy.",
    ),
    Clause(
        "kl.accuracy",
        "KL(P‖Q) is within a relative 1e-15 of its exact value, however small the value.",
        r"|\widehat{KL} - KL(P \| Q)| \le 10^{-15}\, KL(P \| Q)",
        "property",
        ("kl",),
        "Checked against mpmath (klspec.spec.oracle) on supports of up to 32 outcomes, on "
        "drawn and on nearly equal pairs; a value below the smallest normal float (2.2e-308) "
        "may be off by one more subnormal unit (2**-1074). Advisory: this is the reference's "
        "promise (docs/design.md), beyond what correct float64 code of the formula can do: the "
        "inputs sum to 1 only within ~1e-16, so any literal Σ p log(p/q) is off by ~1e-16 "
        "absolute, a relative error of 1e8 when KL ~ 1e-24 (nearly equal inputs). "
        "kl.definition holds every implementation to the error that rounding allows.",
        "advisory",
    ),
    Clause(
        "kl.zero_iff_equal",
        "KL(P‖P) = 0 exactly, and KL(P‖Q) > 0 whenever P ≠ Q.",
        r"KL(P \| Q) = 0 \iff P = Q",
        "property",
        ("kl",),
        "KL(P‖P) == 0 is exact. For P ≠ Q the check asks for KL > 0 only where Pinsker's "
        "lower bound ½‖P − Q‖₁² exceeds the value tolerance: closer pairs are outside "
        "what float64 can resolve, and are skipped (a gate, not a wider tolerance).",
    ),
    Clause(
        "kl.asymmetric",
        "KL is not symmetric: there are P, Q with KL(P‖Q) ≠ KL(Q‖P).",
        r"\exists P, Q:\ KL(P \| Q) \ne KL(Q \| P)",
        "property",
        ("kl",),
        "Witness: the weather example, 0.0823 vs 0.0872 nats. The two results must differ "
        "by more than the sum of their value tolerances.",
    ),
    Clause(
        "kl.not_a_metric",
        "KL violates the triangle inequality, so it is not a distance.",
        r"\exists P, Q, R:\ KL(P \| R) > KL(P \| Q) + KL(Q \| R)",
        "property",
        ("kl",),
        "Witness: P = (0.9, 0.1), Q = (0.5, 0.5), R = (0.1, 0.9): 1.758 > 0.368 + 0.511. "
        "The violation must exceed the sum of the three value tolerances.",
    ),
    Clause(
        "kl.decomposition",
        "KL is cross-entropy minus entropy: KL(P‖Q) = H(P, Q) − H(P).",
        r"KL(P \| Q) = H(P, Q) - H(P)",
        "property",
        QUANTITIES,
        "Compares three results of the implementation; the tolerance is the sum of their "
        "value tolerances (M of H(P, Q) and H(P) can far exceed KL's: that is the "
        "cancellation the identity hides, and why KL is not computed this way).",
    ),
    Clause(
        "entropy.bounds",
        "0 ≤ H(P) ≤ log n on n outcomes.",
        r"0 \le H(P) \le \log n",
        "property",
        ("entropy",),
        "0 ≤ H is exact (every term −P_i log P_i is ≥ 0 for 0 ≤ P_i ≤ 1). The upper "
        "bound allows the value tolerance of H plus one rounding of log n.",
    ),
    Clause(
        "entropy.permutation_invariant",
        "Relabelling the outcomes does not change H(P).",
        r"H(P \circ \pi) = H(P)",
        "property",
        ("entropy",),
        "The two results may differ by twice the value tolerance (a different summation "
        "order rounds differently).",
    ),
    Clause(
        "kl.permutation_invariant",
        "Relabelling the outcomes of P and Q alike does not change KL(P‖Q).",
        r"KL(P \circ \pi \,\|\, Q \circ \pi) = KL(P \| Q)",
        "property",
        ("kl",),
        "The two results may differ by twice the value tolerance.",
    ),
    Clause(
        "kl.additive_independent",
        "KL of independent joint distributions is the sum: KL(P₁⊗P₂‖Q₁⊗Q₂) = KL(P₁‖Q₁) + "
        "KL(P₂‖Q₂).",
        r"KL(P_1 \otimes P_2 \| Q_1 \otimes Q_2) = KL(P_1 \| Q_1) + KL(P_2 \| Q_2)",
        "property",
        ("kl",),
        "Tolerance: the three value tolerances plus the effect of rounding each product "
        "P₁ᵢP₂ⱼ (relative u; tolerances.perturbation_error). Gate: products must not "
        "underflow (a product below the smallest normal float has lost its digits).",
    ),
    Clause(
        "kl.chain_rule",
        "For joint distributions of (X, Y): KL(P_XY‖Q_XY) = KL(P_X‖Q_X) + "
        "Σ_x P_X(x)·KL(P_Y|x‖Q_Y|x).",
        r"KL(P_{XY} \| Q_{XY}) = KL(P_X \| Q_X)"
        r" + \sum_x P_X(x)\, KL(P_{Y|x} \| Q_{Y|x})",
        "property",
        ("kl",),
        "Tolerance: the value tolerances of every call, weighted as in the identity, plus "
        "the rounding of the marginals (u) and conditionals (2u). Gate: every positive "
        "marginal must be a normal float (dividing by a subnormal loses digits).",
    ),
    Clause(
        "kl.data_processing",
        "Merging outcomes never increases KL (the data-processing inequality).",
        r"KL(P \circ g^{-1} \| Q \circ g^{-1}) \le KL(P \| Q)",
        "property",
        ("kl",),
        "Merged KL may exceed the original by the two value tolerances plus the rounding "
        "of the merged sums (relative u).",
    ),
    Clause(
        "kl.jointly_convex",
        "KL is jointly convex: KL(λP₁ + (1−λ)P₂‖λQ₁ + (1−λ)Q₂) ≤ λKL(P₁‖Q₁) + (1−λ)KL(P₂‖Q₂).",
        r"KL(\lambda P_1 + \bar\lambda P_2 \| \lambda Q_1 + \bar\lambda Q_2)"
        r" \le \lambda KL(P_1 \| Q_1) + \bar\lambda KL(P_2 \| Q_2)",
        "property",
        ("kl",),
        "Checked for λ = 1/4, 1/2, 3/4 with (P₁, Q₁, P₂, Q₂) = (p, q, q, r) from drawn "
        "triples; slack: the value tolerances plus the rounding of the mixtures (2u).",
    ),
    Clause(
        "kl.pinsker",
        "Pinsker's inequality: KL(P‖Q) ≥ ½‖P − Q‖₁² (nats).",
        r"KL(P \| Q) \ge \tfrac12 \|P - Q\|_1^2",
        "property",
        ("kl",),
        "Slack: KL's value tolerance plus the rounding of the norm (computed with fsum).",
    ),
    Clause(
        "batching.rowwise",
        "A batched call, shape (..., n), equals the row-by-row calls, with the batch shape.",
        r"f(p)[b] = f(p[b])",
        "property",
        QUANTITIES,
        "Each element may differ from its row's result by twice that row's value tolerance.",
    ),
    Clause(
        "batching.axis",
        "axis=k reduces along axis k: the same as moving that axis last.",
        r"f(p, \mathrm{axis}=k) = f(\mathrm{moveaxis}(p, k, -1))",
        "property",
        ("kl",),
        "Each element may differ by twice its row's value tolerance.",
    ),
    Clause(
        "inputs.unmodified",
        "An implementation never writes into its arguments.",
        r"",
        "property",
        (*QUANTITIES, "token_kl", "k1", "k2", "k3"),
        "Checked bit for bit on writable copies of the inputs, for each function the "
        "implementation has among the divergences, token_kl and the estimators.",
    ),
)

_DOMAIN = (
    Clause(
        "domain.validation",
        "Bad input raises ValueError or TypeError whose message names the argument: negative, "
        "NaN or infinite entries, a sum off from 1, an empty support, supports of different "
        "sizes, ragged nesting, a 0-d input, a bad base, a bad axis.",
        r"",
        "domain",
        QUANTITIES,
        "A promise of the reference's API (implementations declaring the 'validates' "
        "capability); bases and axes only for the 'base' and 'axis' capabilities. Advisory: "
        "numpy, scipy and torch compute on whatever they are given and are not wrong to; "
        "rejecting bad input with a useful error is an API choice klspec recommends.",
        "advisory",
    ),
)

CLAUSES: tuple[Clause, ...] = (
    *_DEFINITIONS,
    *_special_case_clauses(),
    *_WORKED_EXAMPLES,
    *_PROPERTIES,
    *_DOMAIN,
)
