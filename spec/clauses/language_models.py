"""Clauses of language models: per-token KL, sequences and the k1/k2/k3 estimators."""

from __future__ import annotations

from klspec.spec.clauses._base import Clause

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
        topic="language_models",
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
        topic="language_models",
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
        topic="language_models",
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
        topic="language_models",
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
        topic="language_models",
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
        topic="language_models",
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
        topic="language_models",
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
        topic="language_models",
    ),
    Clause(
        "estimator.k3_nonnegative",
        "k3 ≥ 0 for every sample, however close π and π_ref are.",
        r"k_3 = (r - 1) - \log r \ge 0",
        "property",
        ("k3",),
        "Exact: no tolerance. The literal (exp(d) − 1) − d in float64 cancels for |d| < 1e-8 "
        "and returns negative values.",
        topic="language_models",
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
        topic="language_models",
    ),
    Clause(
        "estimator.k1_sign",
        "k1 is negative on some samples although its mean, KL(π‖π_ref), is not: whenever "
        "π ≠ π_ref and π_ref's support lies inside π's.",
        r"\exists t:\ k_1(t) < 0 \le E_{t\sim\pi}[k_1]",
        "property",
        ("k1",),
        "By enumeration; gated on min_t log(π_ref/π) exceeding the tolerance of k1 there.",
        topic="language_models",
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
        topic="language_models",
    ),
)

CLAUSES: tuple[Clause, ...] = (*_LANGUAGE_MODELS, *_ESTIMATORS)
