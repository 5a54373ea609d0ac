"""Clauses of the preference losses: DPO, the loss the RLHF optimum gives a pair of responses.

``dpo(logp_chosen, logp_rejected, ref_logp_chosen, ref_logp_rejected, beta)`` takes the
log-probabilities of whole responses (sums over their tokens) under π and π_ref, one
per pair, and returns one loss per pair. m is the margin
(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l)) of the four inputs,
exactly; z = β·m.
"""

from __future__ import annotations

from klspec.spec.clauses._base import Clause

#: How the value tolerance of every dpo clause is derived (klspec.spec.checks.preference).
DPO_TOLERANCE = (
    "The tolerance is the error of a correct evaluation in the target's format (u its unit "
    "roundoff): the margin formed from the four inputs, 4u·β·S in z with S = |lc| + |lr| + "
    "|rc| + |rr| (three subtractions, β applied before or after them; S, not |m|, is the "
    "conditioning: nearly cancelling sums of hundreds of log-probabilities make S/|m| "
    "large), then z = β·m (2u|z|, β's own rounding included), each moving the "
    "loss by its slope w(z) = (1 − ε)σ(−z) + εσ(z) times the change of z; then 4u·loss for "
    "the softplus, plus a few of the format's smallest subnormals. A float64 "
    "softplus(−β·m) of a float64 margin meets it; a margin formed in float32 does not."
)

_PREFERENCE = (
    Clause(
        "dpo.definition",
        "dpo(...) = −(1 − ε) log σ(β m) − ε log σ(−β m), one value per pair, from the exact "
        "margin m of the four log-probabilities (ε = label_smoothing, 0 unless given).",
        r"\mathcal L = -(1-\varepsilon)\log\sigma(\beta m) - \varepsilon\log\sigma(-\beta m),"
        r"\quad m = \log\frac{\pi(y_w)}{\pi_{ref}(y_w)} - \log\frac{\pi(y_l)}{\pi_{ref}(y_l)}",
        "definition",
        ("dpo",),
        "Against mpmath (60 digits) from the exact margin of the float inputs. "
        + DPO_TOLERANCE
        + " Drawn: typical margins, tiny ones (|βm| down to ~1e-300), extreme ones (|βm| "
        "from 20 to 1e6, beyond 745 where σ underflows), nearly cancelling sums (−1234.5678 "
        "vs −1234.5677999) and batches of up to 1024 pairs built from drawn parameters; β "
        "is the target's (--beta) or, for the reference, drawn from 1e-3 to 10. "
        "A literal −log(sigmoid(βm)) returns inf for βm < −745 and 0 for βm > 37 (where "
        "the loss is e^{−βm}); a clipped sigmoid saturates. Proved in docs/proofs/dpo.md.",
        topic="preference",
    ),
    Clause(
        "dpo.accuracy",
        "dpo(...) is within a relative 4·2⁻⁵² of the loss of the exact margin, however the "
        "log-probability sums cancel and however large |β m| is.",
        r"|\widehat{\mathcal L} - \mathcal L(m)| \le 4 \cdot 2^{-52}\, \mathcal L(m)",
        "property",
        ("dpo",),
        "Against mpmath (60 digits) from the exact margin of the float64 inputs; a loss below "
        "the smallest normal float may be off by one subnormal unit (2**-1074), and 0 is "
        "right where the loss is below half of it. Advisory: this is the reference's promise "
        "(klspec.reference.preference), beyond what correct float64 code can do: forming "
        "m and β·m in float64 rounds them (u·S and u|βm|), which moves e^{−βm} by a relative "
        "u|βm| (1.6e-13 at βm = 700) and the loss of a nearly cancelling pair by u·S·β. "
        "dpo.definition holds every implementation to the error rounding allows. Checked in "
        "float64 only.",
        "advisory",
        "preference",
    ),
    Clause(
        "dpo.limits",
        "The loss is finite and ≥ 0 for every finite margin; it → 0 as β m → +∞ "
        "(0 ≤ loss ≤ e^{−βm}) and ≈ −β m as β m → −∞ (−βm ≤ loss ≤ −βm + e^{βm}), never "
        "inf where it is finite (ε = 0).",
        r"\beta m \to +\infty:\ \mathcal L \approx e^{-\beta m} \to 0;\quad"
        r"\beta m \to -\infty:\ \mathcal L \approx -\beta m",
        "property",
        ("dpo",),
        "Margins with |βm| from 20 to 1e6 of either sign. The bounds are exact for the "
        "exact loss; each side gets the definition's tolerance. Catches the literal "
        "−log σ (inf below −745, 0 above 37) and clipped sigmoids (capped at −log ε).",
        topic="preference",
    ),
    Clause(
        "dpo.swap_symmetry",
        "Swapping chosen and rejected (in π and π_ref) maps the loss of m to that of −m: "
        "loss(m) − loss(−m) = −β m (for ε: −(1 − 2ε) β m).",
        r"\mathcal L(m) - \mathcal L(-m) = -(1 - 2\varepsilon)\,\beta m",
        "property",
        ("dpo",),
        "softplus(−z) − softplus(z) = −z exactly. Checked within the sum of the two calls' "
        "value tolerances; margins up to |βm| = 50, where both sides are representable. "
        "Catches a swapped pair (the difference has the wrong sign) and a missing β.",
        topic="preference",
    ),
    Clause(
        "dpo.shift_invariant",
        "Adding the same constant to a response's policy and reference log-probabilities "
        "(log π(y) + c, log π_ref(y) + c, for y_w or y_l) leaves the loss unchanged: only "
        "the log-ratios enter.",
        r"\mathcal L(\ell_w + c, \ell_l, \ell^{ref}_w + c, \ell^{ref}_l) = \mathcal L(\ell_w,"
        r" \ell_l, \ell^{ref}_w, \ell^{ref}_l)",
        "property",
        ("dpo",),
        "Log-probabilities on a grid of the format (the shifts are exact, so the exact "
        "margin is unchanged); the two losses agree within the sum of their value "
        "tolerances. Catches a missing reference term.",
        topic="preference",
    ),
    Clause(
        "dpo.bradley_terry",
        "The loss is the Bradley–Terry negative log-likelihood of the preference from the "
        "implicit rewards r̂(y) = β log(π(y)/π_ref(y)): bernoulli_nll(1 − ε, "
        "logits = r̂(y_w) − r̂(y_l)), in which Z(x) has cancelled.",
        r"\mathcal L = -\log P_{BT}(y_w \succ y_l) = \mathrm{BCE}\big(1 - \varepsilon,\ "
        r"\sigma(\hat r(y_w) - \hat r(y_l))\big)",
        "property",
        ("dpo",),
        "The implicit rewards and their difference in exact arithmetic, rounded once to "
        "float64 and passed to klspec.reference.bernoulli_nll (noise.bernoulli_logits) as "
        "the oracle; the allowance is the definition's tolerance plus that rounding "
        "(u|z|·w(z)). Proved in docs/proofs/dpo.md.",
        topic="preference",
    ),
    Clause(
        "dpo.gradient_weight",
        "d loss/d m = −β[(1 − ε)σ(−βm) − εσ(βm)]: a pair is weighted by σ(−βm), the "
        "probability the implicit rewards give to the wrong order (pairs DPO gets wrong "
        "count most).",
        r"\frac{\partial\mathcal L}{\partial m} = -\beta\big[(1-\varepsilon)\sigma(-\beta m)"
        r" - \varepsilon\sigma(\beta m)\big]",
        "property",
        ("dpo",),
        "By central finite differences in log π(y_w) (a step of about u^{1/3} of the format, "
        "exact in it), with an allowance for the rounding of both values over the step and "
        "the truncation (h²/6·β³/10); margins with |βm| up to 30. Catches a missing β "
        "(slope −σ(−m)) and a swapped pair.",
        topic="preference",
    ),
    Clause(
        "dpo.label_smoothing",
        "With label smoothing ε ∈ [0, ½) the loss is the mixture (1 − ε)·loss(m) + "
        "ε·loss(−m) of the unsmoothed losses of the pair and of the swapped pair "
        "(conservative DPO: the label is flipped with probability ε).",
        r"\mathcal L_\varepsilon(m) = (1-\varepsilon)\mathcal L_0(m) + \varepsilon\,"
        r"\mathcal L_0(-m)",
        "property",
        ("dpo",),
        "For targets declaring label_smoothing (a signature naming it). The target's own "
        "unsmoothed values on the pair and the swapped pair, mixed in exact arithmetic; "
        "within the three calls' value tolerances. ε in {0.05, 0.1, 0.25, 0.45}.",
        topic="preference",
    ),
)

CLAUSES: tuple[Clause, ...] = _PREFERENCE
