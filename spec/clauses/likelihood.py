"""Clauses of maximum likelihood: MLE is forward-KL minimisation."""

from __future__ import annotations

from klspec.spec.clauses._base import Clause

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
        topic="likelihood",
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
        topic="likelihood",
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
        topic="likelihood",
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
        topic="likelihood",
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
        topic="likelihood",
    ),
)

CLAUSES: tuple[Clause, ...] = _MAXIMUM_LIKELIHOOD
