r"""The clause catalog: what klspec requires of entropy, cross-entropy and KL divergence.

A clause is stated once, here, with a stable id (``kl.nonnegative``). Checks
(:mod:`klspec.spec.checks`), the runner's report, xfail lists and the docs all
refer to clauses by id. :data:`CATALOG` is ordered for reading: definitions,
special cases, the post's worked examples, properties, then what the API
promises about inputs.

Quantities are defined on the *normalised* inputs P = p/Σp and Q = q/Σq, with
0·log 0 = 0: floating-point probability vectors sum to 1 only within rounding,
and the definition must not depend on that rounding (DESIGN.md, "Numerical
definition"). Where a clause is checked with a tolerance, its ``notes`` say how
the tolerance is derived from the inputs' conditioning (:mod:`klspec.spec.tolerances`).

Levels
------
A clause is **required** or **advisory** (:attr:`Clause.level`). Required
clauses are what every correct implementation meets: the value of the formula
within the error a correct float64 evaluation can make (so the textbook
formula in float64 passes, float32 or a relative bias of 1e-9 does not), the
conventions at zero, the theorems that follow from the definition (within
the same tolerances), and not writing into the inputs. Non-negativity is
required and exact: a negative KL is wrong however small, and clamping at
zero is a legitimate fix. Checks that need a capability (batching, ``base=``,
``axis=``) run only for implementations declaring it, so requiring them
asks only that what is offered be right. Advisory clauses are promises the
reference makes beyond that — accuracy far below the rounding of the inputs,
and validating inputs with errors that name the argument; they are reported
but do not decide a conformance run's exit status. Each advisory clause says
why in its notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from klspec.spec._expected import MPMATH_MAX_SIZE
from klspec.spec.implementations import DIVERGENCES
from klspec.spec.special_cases import SPECIAL_CASES

Kind = Literal["definition", "property", "special case", "worked example", "domain", "derivation"]
Level = Literal["required", "advisory"]
LEVELS: tuple[str, ...] = ("required", "advisory")
KINDS: tuple[str, ...] = ("definition", "special case", "worked example", "property", "domain")
#: The topics of the catalog, in reading order: each is a part of the docs and of the matrix.
TOPICS: tuple[str, ...] = (
    "divergences",
    "noise models",
    "maximum likelihood",
    "gaussian fits",
    "language models",
    "rlhf",
)
#: The functions each topic is about: ``klspec check`` lists a topic's clauses one by one
#: only for a target that has one of them (a k3 estimator is not asked about entropy).
TOPIC_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "divergences": ("entropy", "cross_entropy", "kl", "empirical"),
    "noise models": ("gaussian_nll", "mse", "laplace_nll", "mae", "bernoulli_nll", "poisson_nll"),
    "maximum likelihood": ("categorical_mle", "categorical_log_likelihood", "bernoulli_mle"),
    "gaussian fits": ("fit_gaussian_to_mixture", "mixture_gaussian_kl"),
    "language models": (
        "token_kl",
        "k1",
        "k2",
        "k3",
        "sequence_log_prob",
        "sequence_log_ratio",
    ),
    "rlhf": ("rlhf_optimal_policy", "rlhf_objective", "rlhf_optimal_value"),
}

#: The divergences, which most clauses of the first topic constrain together.
QUANTITIES: tuple[str, ...] = DIVERGENCES

_VALUE_TOLERANCE = (
    f"Checked against the exact value (mpmath on up to {MPMATH_MAX_SIZE} outcomes, else "
    "the float64 formula summed with fsum plus its error bound), within the error any "
    "correct float64 evaluation can make: (2γ_n + 4u)(M + 2) with M = Σ|t_i| (summation in "
    "any order, one rounding per ratio, log and product, normalisation), plus "
    "D(|S| + 1)(1 + 2D) for inputs whose measured sums are off from 1 by D in all (the "
    "literal formula skips the normalisation). See klspec.spec.tolerances."
)


@dataclass(frozen=True)
class Clause:
    """One requirement, stated once.

    ``id`` is stable (tests, xfail lists and docs use it); ``statement`` is one
    line of prose; ``latex`` the formula; ``kind`` one of :data:`KINDS`;
    ``quantities`` the functions it constrains; ``notes`` how it is checked
    (where a tolerance is used, how it is derived) and anything a reader of the
    post should know; ``level`` whether every correct implementation must meet
    it ("required") or it is a promise of the reference beyond that
    ("advisory", with the reason in ``notes``; see the module docs); ``topic``
    one of :data:`TOPICS`.
    """

    id: str
    statement: str
    latex: str
    kind: Kind
    quantities: tuple[str, ...]
    notes: str = ""
    level: Level = "required"
    topic: str = "divergences"


def _special_case_clauses() -> tuple[Clause, ...]:
    return tuple(
        Clause(
            id=row.clause_id,
            statement=row.statement,
            latex=row.latex,
            kind="special case",
            quantities=(row.quantity,),
            notes=(
                f"Checked as `{row.id}` on drawn inputs with the condition imposed on one "
                "outcome (or on the whole of p)."
                + (f" {_VALUE_TOLERANCE}" if row.result in ("term 0", "log n") else "")
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
        _VALUE_TOLERANCE,
    ),
    Clause(
        "cross_entropy.definition",
        "The cross-entropy of q relative to p is H(P, Q) = −Σ P_i log Q_i over the normalised "
        "inputs, with 0·log q = 0, in nats.",
        r"H(P, Q) = -\sum_i P_i \log Q_i",
        "definition",
        ("cross_entropy",),
        _VALUE_TOLERANCE,
    ),
    Clause(
        "kl.definition",
        "The KL divergence of q from p is KL(P‖Q) = Σ P_i log(P_i/Q_i) over the normalised "
        "inputs, with 0·log(0/q) = 0, in nats.",
        r"KL(P \| Q) = \sum_i P_i \log \frac{P_i}{Q_i}",
        "definition",
        ("kl",),
        _VALUE_TOLERANCE,
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
        "promise (DESIGN.md), beyond what correct float64 code of the formula can do: the "
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

_MODEL_VALUE = (
    "Checked against the exact value (mpmath at 40 digits from the same float64 inputs) "
    "within (2γ_n + 8u)·Σ|t_i| over the n terms t_i: a handful of roundings per term and "
    "summation in any order (klspec.spec.tolerances.model_tolerance)."
)

_NOISE_MODELS = (
    Clause(
        "noise.gaussian_nll",
        "gaussian_nll(y, f, σ) = −Σ log N(y_i; f_i, σ²) = SSE/(2σ²) + (n/2) log(2πσ²).",
        r"-\sum_i \log \mathcal N(y_i; f_i, \sigma^2) = \frac{\sum_i (y_i - f_i)^2}{2\sigma^2}"
        r" + \frac n2 \log(2\pi\sigma^2)",
        "definition",
        ("gaussian_nll",),
        _MODEL_VALUE + " Drawn: residuals from 1e-300 to 1e150, σ from 1e-150 to 1e150, "
        "per-observation σ_i too. Proved in docs/proofs/gaussian_nll_mse.md.",
        topic="noise models",
    ),
    Clause(
        "noise.mse",
        "mse(y, f) is the mean of the squared residuals (y_i − f_i)².",
        r"\mathrm{MSE}(y, f) = \frac1n \sum_i (y_i - f_i)^2",
        "definition",
        ("mse",),
        _MODEL_VALUE,
        topic="noise models",
    ),
    Clause(
        "noise.laplace_nll",
        "laplace_nll(y, f, b) = −Σ log Laplace(y_i; f_i, b) = Σ|y_i − f_i|/b + n log(2b).",
        r"-\sum_i \log \mathrm{Laplace}(y_i; f_i, b) = \frac{\sum_i |y_i - f_i|}{b} + n \log 2b",
        "definition",
        ("laplace_nll",),
        _MODEL_VALUE + " Proved in docs/proofs/laplace_nll_mae.md.",
        topic="noise models",
    ),
    Clause(
        "noise.mae",
        "mae(y, f) is the mean of the absolute residuals |y_i − f_i|.",
        r"\mathrm{MAE}(y, f) = \frac1n \sum_i |y_i - f_i|",
        "definition",
        ("mae",),
        _MODEL_VALUE,
        topic="noise models",
    ),
    Clause(
        "noise.bernoulli_nll",
        "bernoulli_nll(y, p) = −Σ [y_i log p_i + (1 − y_i) log(1 − p_i)] (binary cross-entropy "
        "summed), with 0·log 0 = 0; from logits z it is Σ softplus(z_i) − y_i z_i.",
        r"-\sum_i \big[y_i \log p_i + (1 - y_i)\log(1 - p_i)\big]"
        r" = \sum_i \big[\log(1 + e^{z_i}) - y_i z_i\big]",
        "definition",
        ("bernoulli_nll",),
        _MODEL_VALUE + " Called as bernoulli_nll(y, p). Probabilities are drawn down to "
        "1e-300 and up to 1 − 1e-16; half the draws are confident (hard labels, p within "
        "1e-300..1e-17 of the label), where every term is tiny and log(1 − p) written as "
        "such loses it. Proved in docs/proofs/bernoulli_nll_bce.md.",
        topic="noise models",
    ),
    Clause(
        "noise.bernoulli_logits",
        "From logits, the Bernoulli NLL is finite and accurate for every finite logit: "
        "softplus(z) − y z, not log(1 + e^z), which overflows for z > 709.",
        r"\log(1 + e^{z}) - y z = \max(z, 0) - y z + \log(1 + e^{-|z|})",
        "property",
        ("bernoulli_nll",),
        "Called as bernoulli_nll(y, logits=z). Checked against mpmath; the tolerance is "
        "(2γ_n + 8u)·Σ (max(z, 0) + |y z| + log1p(e^−|z|)), the sizes of the parts of "
        "the stable form (a one-ulp change of y moves y z by u|y z|). The form "
        "log(1 + e^z) − y z overflows for z > 709 and fails. Drawn: logits from ±1e-300 "
        "to ±1e300 and uniform in [−800, 800], labels 0, 1 and soft.",
        topic="noise models",
    ),
    Clause(
        "noise.poisson_nll",
        "poisson_nll(y, rate) = −Σ log Poisson(y_i; λ_i) = Σ [λ_i − y_i log λ_i + log y_i!], "
        "with 0·log 0 = 0.",
        r"-\sum_i \log \mathrm{Poisson}(y_i; \lambda_i)"
        r" = \sum_i \big[\lambda_i - y_i \log \lambda_i + \log y_i!\big]",
        "definition",
        ("poisson_nll",),
        "Checked against mpmath at 40 digits; the tolerance is (2γ_n + 8u) times the sizes "
        "of each term's three parts λ, |y log λ| and log y! (they cancel for large counts). "
        "Counts up to 1e6, rates from 1e-300 to 1e6. Proved in "
        "docs/proofs/poisson_nll_deviance.md.",
        topic="noise models",
    ),
    Clause(
        "noise.gaussian_mle_is_least_squares",
        "For every σ > 0, the candidate that minimises the Gaussian NLL over a model family is "
        "the one that minimises the MSE.",
        r"\arg\min_{f \in F} -\log L_\sigma(f) = \arg\min_{f \in F} \mathrm{MSE}(y, f)",
        "property",
        ("gaussian_nll", "mse"),
        "Drawn: data, a finite family of 2 to 6 candidate predictions and σ from 1e-3 to 1e3. "
        "The two argmins must be the same candidate; candidates whose MSEs are within the "
        "value tolerance of the best are ties, and either may be chosen (a gate on the MSE "
        "gap, not a tolerance on the answer). Proved in docs/proofs/gaussian_nll_mse.md.",
        topic="noise models",
    ),
    Clause(
        "noise.laplace_mle_is_least_absolute",
        "For every b > 0, the candidate that minimises the Laplace NLL over a model family is "
        "the one that minimises the MAE.",
        r"\arg\min_{f \in F} -\log L_b(f) = \arg\min_{f \in F} \mathrm{MAE}(y, f)",
        "property",
        ("laplace_nll", "mae"),
        "As for the Gaussian: ties within the value tolerance may go either way. Proved in "
        "docs/proofs/laplace_nll_mae.md.",
        topic="noise models",
    ),
)

_MAXIMUM_LIKELIHOOD = (
    Clause(
        "mle.likelihood_plus_kl",
        "For any data and any candidate Q, KL(P̂‖Q) + (1/n) log L(Q) = −H(P̂): the same "
        "constant for every candidate.",
        r"KL(\hat P \| Q_\theta) + \frac1n \sum_i \log Q_\theta(x_i) = -H(\hat P)",
        "property",
        ("categorical_log_likelihood", "kl", "entropy"),
        "Drawn: samples of 1 to 60 draws from 2 to 8 outcomes and 1 to 5 candidates, some "
        "with a zero (on or off the data: on it, the log-likelihood must be −inf exactly "
        "when KL is +inf). Tolerance: the value tolerances of KL and H plus that of the "
        "log-likelihood (Σ P̂ log Q). Proved in docs/proofs/mle_forward_kl.md.",
        topic="maximum likelihood",
    ),
    Clause(
        "mle.argmin_kl_is_argmax_likelihood",
        "Over any finite family, the candidates that minimise KL(P̂‖Q) are those that maximise "
        "the likelihood of the data (ties handled as ties).",
        r"\arg\min_\theta KL(\hat P \| Q_\theta) = \arg\max_\theta \sum_i \log Q_\theta(x_i)",
        "property",
        ("categorical_log_likelihood", "kl"),
        "Candidates within the sum of the two value tolerances of the best are ties: each "
        "side's set of best candidates must contain the other side's choice. Candidates "
        "giving an observed outcome probability 0 have likelihood 0 and KL = +inf.",
        topic="maximum likelihood",
    ),
    Clause(
        "mle.categorical",
        "The categorical MLE is the empirical frequency P̂, and no distribution Q has a smaller "
        "KL(P̂‖Q) (it is 0 there) or a larger likelihood.",
        r"\hat\theta_{\mathrm{MLE}} = \hat P = \arg\min_Q KL(\hat P \| Q)",
        "property",
        ("categorical_mle", "categorical_log_likelihood"),
        "The MLE must equal count/n exactly (one rounding each); its average log-likelihood "
        "must be at least that of every drawn Q less the value tolerance.",
        topic="maximum likelihood",
    ),
    Clause(
        "mle.bernoulli",
        "The Bernoulli MLE of 0/1 data is the fraction of ones, and it has the smallest "
        "Bernoulli NLL of all p in [0, 1].",
        r"\hat p = \frac1n \sum_i y_i = \arg\min_p -\sum_i \log \mathrm{Bern}(y_i; p)",
        "property",
        ("bernoulli_mle", "bernoulli_nll"),
        "The MLE must be count/n to one rounding; the NLL at it is compared with drawn p "
        "within the value tolerance. Proved in docs/proofs/mle_bernoulli.md.",
        topic="maximum likelihood",
    ),
    Clause(
        "mle.misspecified_gaussian",
        "The Gaussian fitted by maximum likelihood to samples of a bimodal mixture approaches "
        "the moment-matched Gaussian, the forward-KL-closest member of the family.",
        r"(\bar x, s_{ML}) \to \arg\min_{m, s} KL(P \| \mathcal N(m, s^2))",
        "property",
        ("gaussian_nll", "fit_gaussian_to_mixture"),
        "Samples of n = 20000 from ½N(−3, 1) + ½N(3, 1) and from drawn two-component mixtures "
        "(seeded). The maximiser of the implementation's Gaussian likelihood (checked: no "
        "nearby (m, s) has a smaller gaussian_nll) must be within 5 standard errors of the "
        "forward fit: SE(x̄) = s/√n, SE(s²) = √(Var(x²)/n) estimated from the fit's own "
        "fourth moment. A statistical check with a fixed seed: it fails with probability "
        "about 1e-6 per draw for a correct implementation.",
        topic="maximum likelihood",
    ),
)

_FITS = (
    Clause(
        "fit.forward_moment_matching",
        "The forward fit argmin KL(P‖Q) of a Gaussian Q to a mixture P matches its mean and "
        "variance; for ½N(−3, 1) + ½N(3, 1) it is mean 0 and variance 10, covering both modes.",
        r"\arg\min_{m, s} KL(P \| \mathcal N(m, s^2)) = \big(E_P[x],\ \mathrm{Var}_P[x]\big)",
        "property",
        ("fit_gaussian_to_mixture",),
        "Exact moments computed with Fractions; the mean may differ by 4u·√E[x²] and the "
        "variance by 16u·E[x²] (the conditioning of the moments in the inputs). Proved in "
        "docs/proofs/moment_matching.md. For the post's mixture its kl is also checked "
        "against mpmath quadrature (fit.divergence_value's accuracy).",
        topic="gaussian fits",
    ),
    Clause(
        "fit.divergence_value",
        "The kl of a fit is the divergence it minimised, at the fitted Gaussian: KL(P‖Q) "
        "forward, KL(Q‖P) reverse, accurate to 1e-9 (relative, for values above 1).",
        r"|\widehat{KL} - KL| \le 10^{-9} \max(1, KL)",
        "definition",
        ("mixture_gaussian_kl",),
        "Checked against mpmath Gauss–Legendre quadrature at 20 digits (its error estimate "
        "required below 1e-15) of the one integral without a closed "
        "form, ∫φ(z) log p(c + s z) dz, split where the mixture's dominant component changes, "
        "on drawn mixtures with modes at ±3, ±10, ±30, weights of 1e-6, widths of 1e-3 "
        "beside 1e3, and Gaussians 1e-3 or 1e3 wide. A grid that lets Q's mass escape, or "
        "Gauss–Hermite (20 nodes in the meta-test; with 200 it is still off by 1e-3 to 1.5 "
        "on such mixtures, tests/test_fitting.py), fails.",
        topic="gaussian fits",
    ),
    Clause(
        "fit.minimum",
        "Each fit is a local minimum of its divergence: no nearby (mean, sd) gives a smaller "
        "value.",
        r"KL(m^*, s^*) \le KL(m^* + \delta_m, s^* e^{\delta_s})",
        "property",
        ("fit_gaussian_to_mixture", "mixture_gaussian_kl"),
        "The fit's kl must be mixture_gaussian_kl at the fit (within twice the integral "
        "accuracy), and no larger than at eight neighbours at distance 1e-3 (in units of sd) "
        "in mean and log sd, with slack 1e-9·max(1, KL).",
        topic="gaussian fits",
    ),
    Clause(
        "fit.reverse_mode_seeking",
        "The reverse fit argmin KL(Q‖P), started near a mode of ½N(−3, 1) + ½N(3, 1), locks "
        "onto that mode: mean ≈ ±2.984, sd ≈ 1.023, KL ≈ 0.6888, just below log 2.",
        r"\arg\min_{m, s} KL(\mathcal N(m, s^2) \| P) \approx (\pm 2.984, 1.023)",
        "property",
        ("fit_gaussian_to_mixture",),
        "Started at (±2.5, 1) and (±3.5, 0.7): the fit must stay on the side it started, "
        "within 0.05 of the mode in mean and of 1 in sd, with KL within 0.01 of log 2. The "
        "other mode pulls the fit 0.0157 towards it and lowers KL by 0.0044 below log 2 "
        "(the numbers in docs/fits.md are computed by the reference).",
        topic="gaussian fits",
    ),
    Clause(
        "fit.symmetric_stationary_point",
        "Started at mean 0, the reverse fit to ½N(−3, 1) + ½N(3, 1) stays on the symmetry "
        "axis, at a third local minimum (mean 0, sd ≈ 2.744, KL ≈ 0.8406), worse than "
        "either mode fit (0.6888): reverse KL has several local minima.",
        r"\nabla KL = 0,\ \nabla^2 KL \succ 0 \text{ at } (0, 2.744)",
        "property",
        ("fit_gaussian_to_mixture", "mixture_gaussian_kl"),
        "Reported as it is, not hidden: by symmetry the gradient in the mean is 0 at mean 0, "
        "and the Hessian in (m, log s) is diag(0.1328, 8.451) — a minimum, not a saddle "
        "(measured with mpmath); its basin is wide enough that a start at (0.01, 1) ends "
        "there too. The check asks that the fit from (0, 1) has |mean| < 1e-6 and a KL "
        "more than 0.1 above the fit from (2.5, 1), and that moving its mean by ±0.1 raises "
        "KL.",
        topic="gaussian fits",
    ),
)

_LANGUAGE_MODELS = (
    Clause(
        "token_kl.definition",
        "token_kl(a, b) = KL(softmax(a)‖softmax(b)) at every position, over the vocabulary axis.",
        r"\mathrm{token\_kl}(a, b) = \sum_v \mathrm{softmax}(a)_v"
        r" \log\frac{\mathrm{softmax}(a)_v}{\mathrm{softmax}(b)_v}",
        "definition",
        ("token_kl",),
        "Checked against mpmath on the exact softmax of the float64 logits. Tolerance, the "
        "error any float64 evaluation from logits can make: a log-softmax is off by "
        "e_v = 4u(|a_v| + |lse a| + 1), which moves the log-ratio t_v by e_v and P_v by a "
        "relative e_v, so Σ P_v [e_v(1 + |t_v|) + e'_v] + (2γ_n + 2u)·Σ P_v|t_v| "
        "(e'_v the same for b). It grows with the size of the logits, not of the KL.",
        topic="language models",
    ),
    Clause(
        "token_kl.nonnegative",
        "token_kl(a, b) ≥ 0 at every position, and is exactly 0 where the two rows of logits "
        "are equal.",
        r"\mathrm{token\_kl}(a, b) \ge 0,\quad \mathrm{token\_kl}(a, a) = 0",
        "property",
        ("token_kl",),
        "Exact: no tolerance. Logits drawn equal, nearly equal (relative 1e-3 to 1e-15) and "
        "far apart. float32 log_softmax followed by kl_div returns negative values here.",
        topic="language models",
    ),
    Clause(
        "token_kl.shift_invariant",
        "Adding a constant to a row of logits does not change token_kl (softmax does not see it).",
        r"\mathrm{token\_kl}(a + c, b) = \mathrm{token\_kl}(a, b + c') = \mathrm{token\_kl}(a, b)",
        "property",
        ("token_kl",),
        "Logits are drawn on the grid 2^-30·k (|k| < 2^36) and shifted by an integer below "
        "2^20, so a + c is exact; the results may differ by the sum of the two calls' value "
        "tolerances (token_kl.definition), which grow with the size of the logits.",
        topic="language models",
    ),
    Clause(
        "sequence.log_ratio",
        "The log-ratio of a sequence under two autoregressive models is the sum of the "
        "per-token log-ratios, over the unmasked tokens only.",
        r"\log\frac{\pi(y|x)}{\pi_{ref}(y|x)} = \sum_{k:\ m_k = 1}"
        r" \big[\log\pi(y_k|x, y_{<k}) - \log\pi_{ref}(y_k|x, y_{<k})\big]",
        "property",
        ("sequence_log_ratio",),
        "Checked by enumeration on small random autoregressive models (vocabulary 2 or 3, "
        "length 1 to 3): the product of the per-token probabilities is computed exactly with "
        "mpmath. Padded positions (mask false) hold −inf, −1e300 or 0, and must not matter "
        "(0·(−inf) is NaN: padding is selected out, not multiplied by 0). Tolerance "
        "(γ_n + 3u)·Σ_k (|logp_k| + |ref_logp_k|): each given log-probability is within u "
        "of the model's, and the sum rounds. Proved in docs/proofs/autoregressive_log_ratio.md.",
        topic="language models",
    ),
    Clause(
        "sequence.log_prob",
        "The log-probability of a sequence is the sum of its per-token log-probabilities over "
        "the unmasked tokens.",
        r"\log\pi(y|x) = \sum_{k:\ m_k = 1} \log\pi(y_k|x, y_{<k})",
        "property",
        ("sequence_log_prob",),
        "As sequence.log_ratio; a masked −inf (a padding token of probability 0) must not turn "
        "the sum into NaN.",
        topic="language models",
    ),
    Clause(
        "sequence.kl_chain_rule",
        "The KL between two autoregressive models over whole sequences is the expected sum of "
        "the per-token KLs along sequences drawn from the first.",
        r"KL(\pi \| \pi_{ref}) = E_{y \sim \pi}\Big[\sum_k KL\big(\pi(\cdot|y_{<k}) \,\|\,"
        r" \pi_{ref}(\cdot|y_{<k})\big)\Big]",
        "property",
        ("token_kl", "kl"),
        "By enumeration: the joint distributions over all V^T sequences go to kl, the "
        "per-prefix logits to token_kl, and the expectation is taken with mpmath. Tolerance: "
        "the value tolerances of every call, weighted as in the identity. Proved in "
        "docs/proofs/kl_chain_rule.md.",
        topic="language models",
    ),
)

_ESTIMATORS = (
    Clause(
        "estimator.definitions",
        "With log r = ref_logp − logp per sampled token: k1 = −log r, k2 = ½ (log r)², "
        "k3 = (r − 1) − log r (Schulman's estimators of KL(π‖π_ref)).",
        r"k_1 = -\log r,\quad k_2 = \tfrac12 (\log r)^2,\quad k_3 = (r - 1) - \log r,"
        r"\quad r = \frac{\pi_{ref}(t)}{\pi(t)}",
        "definition",
        ("k1", "k2", "k3"),
        "Elementwise against mpmath on the float64 inputs, within the error of a correct "
        "float64 evaluation of the formula: d = ref_logp − logp is rounded once, so k1 is "
        "within 2u|d|, k2 within 4u·k2, and k3 = (e^d − 1) − d within "
        "4u·(e^d(1 + |d|) + 1 + |d|) (exp and two subtractions). The literal k3 meets this "
        "but is negative for tiny |d|: estimator.k3_nonnegative. Log-ratios from 1e-300 to "
        "700 in size, of either sign.",
        topic="language models",
    ),
    Clause(
        "estimator.unbiased",
        "Over tokens drawn from π, E[k1] = E[k3] = KL(π‖π_ref) exactly.",
        r"E_{t \sim \pi}[k_1] = E_{t \sim \pi}[k_3] = KL(\pi \| \pi_{ref})",
        "property",
        ("k1", "k3"),
        "By enumeration over the vocabulary (every token, weighted by π): the expectation "
        "is formed with mpmath from the implementation's per-token values and compared with "
        "the exact KL. Tolerance: Σ_t π_t·(tolerance of k at t) (estimator.definitions).",
        topic="language models",
    ),
    Clause(
        "estimator.k3_nonnegative",
        "k3 ≥ 0 for every sample, however close π and π_ref are.",
        r"k_3 = (r - 1) - \log r \ge 0",
        "property",
        ("k3",),
        "Exact: no tolerance. The literal (exp(d) − 1) − d in float64 cancels for |d| < 1e-8 "
        "and returns negative values.",
        topic="language models",
    ),
    Clause(
        "estimator.k2_bias",
        "k2 ≥ 0 for every sample; its mean is biased, E[k2] ≠ KL(π‖π_ref) in general, but the "
        "bias is of third order: |E[k2] − KL| ≤ E[|log r|³ e^{max(log r, 0)}]/6.",
        r"\big|E[k_2] - KL(\pi \| \pi_{ref})\big| \le \tfrac16 E\big[|\log r|^3"
        r" e^{(\log r)^+}\big]",
        "property",
        ("k2",),
        "k2 ≥ 0 is exact. The bound is Taylor's remainder of e^x − 1 − x − x²/2, since "
        "KL = E[k3]; checked by enumeration with mpmath, plus the tolerance of k2.",
        topic="language models",
    ),
    Clause(
        "estimator.k1_sign",
        "k1 is negative on some samples although its mean, KL(π‖π_ref), is not: whenever "
        "π ≠ π_ref and π_ref's support lies inside π's.",
        r"\exists t:\ k_1(t) < 0 \le E_{t\sim\pi}[k_1]",
        "property",
        ("k1",),
        "By enumeration; gated on min_t log(π_ref/π) exceeding the tolerance of k1 there.",
        topic="language models",
    ),
    Clause(
        "estimator.gradients",
        "As losses on samples from π, with gradients through log π only: E[∇k1] = 0, "
        "E[∇k2] = ∇KL(π‖π_ref) and E[∇k3] = ∇KL(π_ref‖π).",
        r"E_\pi[\nabla k_1] = 0,\ E_\pi[\nabla k_2] = \nabla KL(\pi \| \pi_{ref}),"
        r"\ E_\pi[\nabla k_3] = \nabla KL(\pi_{ref} \| \pi)",
        "property",
        ("k1", "k2", "k3"),
        "By enumeration on small models with π = softmax(θ): ∂k/∂logp is taken by central "
        "finite differences of the implementation (step h = 2^-17), times the exact "
        "∇_θ log π(t) = e_t − π; the right-hand sides are in closed form. Numeric, not a "
        "proof: the tolerance is the finite-difference error h²/6·max|k'''| plus the "
        "value tolerances of k at both points divided by the step (estimator.definitions), "
        "weighted by π and summed over the enumeration.",
        topic="language models",
    ),
)

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
CATALOG: tuple[Clause, ...] = tuple(
    sorted(
        (
            *_DEFINITIONS,
            *_special_case_clauses(),
            *_WORKED_EXAMPLES,
            *_PROPERTIES,
            *_DOMAIN,
            *_NOISE_MODELS,
            *_MAXIMUM_LIKELIHOOD,
            *_FITS,
            *_LANGUAGE_MODELS,
            *_ESTIMATORS,
            *_RLHF,
        ),
        key=lambda c: (TOPICS.index(c.topic), KINDS.index(c.kind)),
    )
)

_BY_ID = {c.id: c for c in CATALOG}


def derivation_clauses() -> tuple[Clause, ...]:
    """The clauses the sympy derivations establish, one per derivation, in reading order.

    They are about the mathematics, not an implementation, so they are not in
    :data:`CATALOG` (which ``klspec check`` runs against implementations): each is
    checked step by step by ``klspec prove ID`` and numerically by the test named in
    its notes. Built from the derivation objects themselves, so the statement is the
    one the checker proves. Imports sympy.
    """
    from klspec.spec.derivations import DERIVATIONS  # sympy: only when asked

    out = []
    for d in DERIVATIONS.values():
        notes = f"Checked step by step by `klspec prove {d.id.removeprefix('derivation.')}`"
        if d.numeric_crosscheck:
            notes += f"; numerically by `{d.numeric_crosscheck}`"
        if d.clause_ids:
            notes += "; also establishes " + ", ".join(f"`{c}`" for c in d.clause_ids)
        out.append(Clause(d.id, d.statement, "", "derivation", (), notes + "."))
    return tuple(out)


def clause(id: str) -> Clause:
    """The clause with this id; ``KeyError`` naming close matches if there is none."""
    try:
        return _BY_ID[id]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(id, _BY_ID, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `klspec list`"
        raise KeyError(f"unknown clause {id!r}{hint}") from None
