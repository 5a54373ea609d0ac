"""Clauses of the noise models: losses as negative log-likelihoods."""

from __future__ import annotations

from klspec.spec.clauses._base import MODEL_VALUE, Clause

_NOISE_MODELS = (
    Clause(
        "noise.gaussian_nll",
        "gaussian_nll(y, f, σ) = −Σ log N(y_i; f_i, σ²) = SSE/(2σ²) + (n/2) log(2πσ²).",
        r"-\sum_i \log \mathcal N(y_i; f_i, \sigma^2) = \frac{\sum_i (y_i - f_i)^2}{2\sigma^2}"
        r" + \frac n2 \log(2\pi\sigma^2)",
        "definition",
        ("gaussian_nll",),
        MODEL_VALUE + " Drawn: residuals from 1e-300 to 1e150, σ from 1e-150 to 1e150, "
        "per-observation σ_i too. Proved in docs/proofs/gaussian_nll_mse.md.",
        topic="noise_models",
    ),
    Clause(
        "noise.mse",
        "mse(y, f) is the mean of the squared residuals (y_i − f_i)².",
        r"\mathrm{MSE}(y, f) = \frac1n \sum_i (y_i - f_i)^2",
        "definition",
        ("mse",),
        MODEL_VALUE,
        topic="noise_models",
    ),
    Clause(
        "noise.laplace_nll",
        "laplace_nll(y, f, b) = −Σ log Laplace(y_i; f_i, b) = Σ|y_i − f_i|/b + n log(2b).",
        r"-\sum_i \log \mathrm{Laplace}(y_i; f_i, b) = \frac{\sum_i |y_i - f_i|}{b} + n \log 2b",
        "definition",
        ("laplace_nll",),
        MODEL_VALUE + " Proved in docs/proofs/laplace_nll_mae.md.",
        topic="noise_models",
    ),
    Clause(
        "noise.mae",
        "mae(y, f) is the mean of the absolute residuals |y_i − f_i|.",
        r"\mathrm{MAE}(y, f) = \frac1n \sum_i |y_i - f_i|",
        "definition",
        ("mae",),
        MODEL_VALUE,
        topic="noise_models",
    ),
    Clause(
        "noise.bernoulli_nll",
        "bernoulli_nll(y, p) = −Σ [y_i log p_i + (1 − y_i) log(1 − p_i)] (binary cross-entropy "
        "summed), with 0·log 0 = 0; from logits z it is Σ softplus(z_i) − y_i z_i.",
        r"-\sum_i \big[y_i \log p_i + (1 - y_i)\log(1 - p_i)\big]"
        r" = \sum_i \big[\log(1 + e^{z_i}) - y_i z_i\big]",
        "definition",
        ("bernoulli_nll",),
        MODEL_VALUE + " Called as bernoulli_nll(y, p). Probabilities are drawn down to "
        "1e-300 and up to 1 − 1e-16; half the draws are confident (hard labels, p within "
        "1e-300..1e-17 of the label), where every term is tiny and log(1 − p) written as "
        "such loses it. Proved in docs/proofs/bernoulli_nll_bce.md.",
        topic="noise_models",
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
        topic="noise_models",
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
        topic="noise_models",
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
        topic="noise_models",
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
        topic="noise_models",
    ),
)

CLAUSES: tuple[Clause, ...] = _NOISE_MODELS
