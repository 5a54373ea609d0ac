"""Label smoothing is cross-entropy to a mixture target: a derivation to copy.

With weight ε over K classes, the smoothed target of a label y is
t = (1 − ε)·onehot(y) + ε·u, u the uniform distribution (u_i = 1/K). Then

- H(t, q) = D_KL(t‖q) + H(t), and H(t) does not involve the model q: minimising the
  label-smoothed cross-entropy over q is minimising the KL divergence from t;
- H(t, q) = (1 − ε)·(−log q_y) + ε·H(u, q): the usual loss plus ε times the
  cross-entropy from the uniform distribution.

Check it from the repository root with ``klspec prove --module examples.label_smoothing``.
It uses only names exported by ``klspec.spec.derivations`` (docs/derivations.md).
"""

from __future__ import annotations

import sympy as sp

from klspec.spec.derivations import (
    ByRule,
    Chain,
    Derivation,
    Proved,
    Step,
    argmin,
    notation,
    rules,
)

# Symbols carry the assumptions the steps may use: a logarithm is split only for
# arguments sympy knows are positive.
i = sp.Symbol("i", integer=True, positive=True)  # class index
K = sp.Symbol("K", integer=True, positive=True)  # number of classes, symbolic
y = sp.Symbol("y", integer=True, positive=True)  # the label
eps = sp.Symbol("epsilon", positive=True)  # smoothing weight, 0 < ε ≤ 1
q = sp.IndexedBase("q", positive=True)  # the model's probabilities, q_i > 0


def _sum(body: sp.Expr) -> sp.Expr:
    return sp.Sum(body, (i, 1, K))


# The smoothed target, written as notation: the docs print t_i, the checker unfolds it.
t = notation("t", r"t_{#1}", lambda j: (1 - eps) * sp.KroneckerDelta(j, y) + eps / K, nargs=1)
SmoothedCE = notation("SmoothedCE", r"H(t, q)", lambda: -_sum(t(i) * sp.log(q[i])))
KL = notation("KL", r"D_{\mathrm{KL}}(t \,\|\, q)", lambda: _sum(t(i) * sp.log(t(i) / q[i])))
Entropy = notation("Entropy", r"H(t)", lambda: -_sum(t(i) * sp.log(t(i))))
UniformCE = notation("UniformCE", r"H(u, q)", lambda: -_sum(sp.log(q[i]) / K))

LABEL_SMOOTHING = Derivation(
    id="derivation.label_smoothing",
    title="Label smoothing is cross-entropy to a mixture target",
    statement="For t = (1 − ε)·onehot(y) + ε·u on K classes: H(t, q) = D_KL(t‖q) + H(t) "
    "= (1 − ε)·(−log q_y) + ε·H(u, q).",
    assumptions=(
        "K ≥ 1 classes, K symbolic; the label y is one of 1, …, K",
        "0 < ε ≤ 1, so every t_i > 0",
        "q_i > 0 for every class i",
    ),
    symbols={"i": i, "K": K, "y": y, "epsilon": eps, "q": q},
    chains=(
        Chain(
            title="Cross-entropy to t is KL from t plus a constant",
            start=SmoothedCE(),
            steps=(
                Step(-_sum(t(i) * sp.log(q[i])), "definition of H(t, q)", Proved()),
                Step(
                    _sum(t(i) * sp.log(t(i) / q[i])) - _sum(t(i) * sp.log(t(i))),
                    "add and subtract Σ t_i log t_i; log(t/q) = log t − log q since q > 0",
                    Proved(),
                ),
                Step(KL() + Entropy(), "the definitions of D_KL(t‖q) and H(t)", Proved()),
                Step(
                    sp.Eq(argmin(SmoothedCE(), q), argmin(KL(), q)),
                    "H(t) does not involve q, so both have the same minimisers",
                    ByRule(rules.AFFINE_ARGMIN),
                    relation="⇒",
                ),
            ),
        ),
        Chain(
            title="The usual loss plus ε times the cross-entropy from uniform",
            start=SmoothedCE(),
            steps=(
                Step(
                    -_sum(((1 - eps) * sp.KroneckerDelta(i, y) + eps / K) * sp.log(q[i])),
                    "t_i = (1 − ε)·δ(i, y) + ε/K",
                    Proved(),
                ),
                Step(
                    -(1 - eps) * _sum(sp.KroneckerDelta(i, y) * sp.log(q[i]))
                    - eps * _sum(sp.log(q[i]) / K),
                    "split the sum",
                    Proved(),
                ),
                Step(
                    -(1 - eps) * sp.log(q[y]) - eps * _sum(sp.log(q[i]) / K),
                    "only i = y survives the delta",
                    ByRule(rules.SIFT, given="the label y is one of the classes 1, …, K"),
                ),
                Step(
                    (1 - eps) * (-sp.log(q[y])) + eps * UniformCE(),
                    "H(u, q) = −Σ (1/K) log q_i",
                    Proved(),
                ),
            ),
        ),
    ),
    conclusion="Minimising the label-smoothed cross-entropy over q minimises D_KL(t‖q), "
    "and the loss is (1 − ε) times the negative log-likelihood of the label plus ε times "
    "the cross-entropy from the uniform distribution. Sifting the one-hot is asserted: "
    "that y is one of the K classes is a hypothesis, which sympy cannot check for "
    "symbolic y and K.",
    honesty="That the label y is one of the K classes is a stated hypothesis of the sift. "
    "No step uses t_i > 0: log(t_i/q_i) = log t_i − log q_i needs only q_i > 0.",
)

#: What ``klspec prove --module examples.label_smoothing`` checks.
DERIVATIONS = (LABEL_SMOOTHING,)
