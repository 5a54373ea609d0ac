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
        "Checked against mpmath on the exact softmax of the logits as given (rounded to the "
        "target's dtype). Tolerance, the error any evaluation from logits in that dtype can "
        "make, u its unit roundoff: a log-softmax is off by "
        "e_v = 4u(|a_v| + |lse a| + 1), which moves the log-ratio t_v by e_v and P_v by a "
        "relative e_v, so Σ P_v [e_v(1 + |t_v|) + e'_v] + (2γ_n + 2u)·Σ P_v|t_v| "
        "(e'_v the same for b), plus η·Σ(|t_v| + 1) for probabilities that underflow a "
        "narrower dtype (η its smallest subnormal). It grows with the size of the logits, not "
        "of the KL. Logits drawn apart, nearly equal (relative 1e-15, or the dtype's u, to "
        "1e-3) and a few ulps apart.",
        topic="language_models",
    ),
    Clause(
        "token_kl.nonnegative",
        "token_kl(a, b) ≥ 0 at every position, and is exactly 0 where the two rows of logits "
        "are equal.",
        r"\mathrm{token\_kl}(a, b) \ge 0,\quad \mathrm{token\_kl}(a, a) = 0",
        "property",
        ("token_kl",),
        "Exact, in every dtype: no tolerance. Logits drawn equal, nearly equal (relative 1e-3 "
        "to 1e-15), a few ulps apart and far apart. float32 log_softmax followed by kl_div "
        "returns negative values here.",
        topic="language_models",
    ),
    Clause(
        "token_kl.masked",
        "A −inf logit is a token of probability 0 (a masked vocabulary): in P its term is 0, "
        "not 0·(−inf) = NaN; in Q, where P has mass, the KL is +inf; the rest is the KL over "
        "the unmasked tokens.",
        r"a_v = -\infty \Rightarrow P_v \log\frac{P_v}{Q_v} = 0;\quad"
        r" b_v = -\infty < a_v \Rightarrow \mathrm{token\_kl}(a, b) = +\infty",
        "special case",
        ("token_kl",),
        "Rows with −inf logits in P, in Q, at the same tokens in both, in every token but one "
        "or two, and in P at Q's largest logit, otherwise apart or a few ulps apart; at least "
        "one finite logit per row. Against mpmath over the unmasked tokens, with the "
        "tolerance of token_kl.definition; +inf exactly.",
        topic="language_models",
    ),
    Clause(
        "token_kl.shift_invariant",
        "Adding a constant to a row of logits does not change token_kl (softmax does not see it).",
        r"\mathrm{token\_kl}(a + c, b) = \mathrm{token\_kl}(a, b + c') = \mathrm{token\_kl}(a, b)",
        "property",
        ("token_kl",),
        "Logits are drawn on the grid 2^-30·k (|k| < 2^36) and shifted by an integer below "
        "2^20, so a + c is exact (in float32 the grid 2^-16·k below 64 and shifts below 64; in "
        "bfloat16 and float16 2^-7·k or 2^-4·k below 4 and shifts below 4); the results may "
        "differ by the sum of the two calls' value tolerances (token_kl.definition), which "
        "grow with the size of the logits.",
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
        "Elementwise against mpmath on the inputs as given (rounded to the target's dtype), "
        "within the error of a correct evaluation of the formula in that dtype, with u its "
        "unit roundoff (2⁻⁵³ float64, 2⁻²⁴ float32, 2⁻⁸ bfloat16, 2⁻¹¹ float16): "
        "d = ref_logp − logp is rounded once, so k1 is within 2u|d|, k2 within 4u·k2, and "
        "k3 = (e^d − 1) − d within 4u·(e^d(1 + |d|) + 1 + |d|) (exp and two subtractions), "
        "plus a few subnormals of the dtype for results that underflow. The literal k3 meets "
        "this but is negative for tiny |d|: estimator.k3_nonnegative. Log-ratios from the "
        "dtype's smallest subnormal to 700 in size (|d| < 0.9·log(max) so that e^d is finite "
        "in the dtype), of either sign, and the killers of the literal forms (log π a few u "
        "below 0, or near −½ and −1, with log π_ref a few ulps away), tried first on every "
        "run. A target declaring --log-ratio-range LO:HI is checked where LO ≤ d ≤ HI.",
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
        "Exact, in every dtype: no tolerance. The literal (exp(d) − 1) − d cancels for |d| "
        "below √u and returns −d when e^d rounds to 1 (log π a few u below 0, log π_ref one "
        "ulp above it), and exp(d) − d − 1 goes negative where e^d rounds down across a "
        "binade (log π near −½ or −1, log π_ref 1 to 3 ulps above): those inputs are tried "
        "first on every run, whatever the seed. expm1(d) − d cannot go negative (a correctly "
        "rounded expm1 of d never falls below d).",
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
        "By enumeration on small models with π = softmax(θ). For torch and jax targets "
        "∂k/∂logp is the target's own autograd, in its dtype, checked per token against the "
        "exact slope (k1: 1, k2: −log r, k3: 1 − r) within 4u(|slope| + …) of the dtype "
        "(and, where k3 is within its rounding error of 0, anything between 0 and the exact "
        "slope: a k3 clamped at 0 to stay non-negative has no gradient where rounding took "
        "it below 0), "
        "then weighted by the exact ∇_θ log π(t) = e_t − π; a straight-through target "
        "(--gradient-of k2: k3's value, k2's gradient) is held to the gradient it declares. "
        "For numpy targets ∂k/∂logp is a central finite difference with step h ≈ u^(1/3) "
        "(2⁻¹⁷ in float64, 2⁻⁷ in float32): numeric, not a proof, with tolerance the "
        "truncation error h²/6·max|k‴| plus the value tolerances at both points divided by "
        "the step (estimator.definitions). The right-hand sides are in closed form.",
        topic="language_models",
    ),
)

_CLAMPS = (
    Clause(
        "estimator.clamp_bias",
        "A k1/k2/k3 that clamps (its estimate, or log r) is exact only inside the range it "
        "declares; outside, the clamp biases the mean, and the report says by how much.",
        r"E_\pi[\mathrm{clamp}(k)] - E_\pi[k] \ne 0 \text{ when } \pi(\log r \notin"
        r" [\mathrm{lo}, \mathrm{hi}]) > 0",
        "property",
        ("k1", "k2", "k3"),
        "Runs only for a target that declares --log-ratio-range LO:HI. On three tokens (one "
        "with log r = HI + 1, one with LO − 1, one near 0) it compares E_π[k] of the target "
        "with E_π of the unclamped estimator (mpmath), within the per-token tolerances of "
        "estimator.definitions, and reports the bias and how much of π's mass lies outside. "
        "Advisory: clamping is a design choice, stated by the range; the range of a k3 "
        "clamped to ≤ C is [−(C + 1), x] with e^x − 1 − x = C (about [−11, 2.61] for "
        "C = 10), intersected with any clamp on log r itself.",
        level="advisory",
        topic="language_models",
    ),
)

CLAUSES: tuple[Clause, ...] = (*_LANGUAGE_MODELS, *_ESTIMATORS, *_CLAMPS)
