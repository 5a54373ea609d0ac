"""DPO implementations for the meta-tests of the preference clauses.

Like model_implementations_under_test.py (implementations_under_test.py merges these
tables into its own): :data:`BROKEN_PREFERENCE` maps a check name or clause id to DPO
losses with one bug each that the check must reject; :data:`ACCEPTED_PREFERENCE` are
correct ones built differently from the reference (the stable forms people write:
torch's ``-F.logsigmoid`` in float64, numpy's ``logaddexp``), which every required
check must pass.

Each function is called like a ``klspec check --quantity dpo`` target:
``f(logp_chosen, logp_rejected, ref_logp_chosen, ref_logp_rejected, beta)``, plus
``label_smoothing=`` for the ones that take it; one loss per pair.
"""

from __future__ import annotations

import numpy as np

from klspec.spec import Implementation


def _margin(lc, lr, rc, rr, dtype=np.float64):
    lc, lr, rc, rr = (np.asarray(x, dtype=dtype) for x in (lc, lr, rc, rr))
    return (lc - rc) - (lr - rr)  # TRL's order: chosen log-ratio minus rejected log-ratio


# --- correct, built differently --------------------------------------------------------


def logaddexp_dpo(lc, lr, rc, rr, beta, label_smoothing=0.0):
    """softplus(∓βm) with np.logaddexp, the margin in float64 (no compensation)."""
    z = beta * _margin(lc, lr, rc, rr)
    eps = label_smoothing
    return (1 - eps) * np.logaddexp(0.0, -z) + eps * np.logaddexp(0.0, z)


def torch_logsigmoid_dpo(lc, lr, rc, rr, beta, label_smoothing=0.0):
    """TRL's sigmoid loss: −F.logsigmoid(βm)(1 − ε) − F.logsigmoid(−βm)ε, torch float64."""
    import torch
    import torch.nn.functional as F

    chosen = torch.as_tensor(lc) - torch.as_tensor(rc)
    rejected = torch.as_tensor(lr) - torch.as_tensor(rr)
    logits = chosen - rejected
    eps = label_smoothing
    out = -F.logsigmoid(beta * logits) * (1 - eps) - F.logsigmoid(-beta * logits) * eps
    return out


# --- broken, one bug each ------------------------------------------------------------------


def literal_dpo(lc, lr, rc, rr, beta):
    """−log(sigmoid(βm)) as written: σ under/overflows, inf and 0 at large |βm|."""
    with np.errstate(over="ignore", divide="ignore"):
        return -np.log(1.0 / (1.0 + np.exp(-beta * _margin(lc, lr, rc, rr))))


def clipped_sigmoid_dpo(lc, lr, rc, rr, beta):
    """σ clipped to [1e-7, 1 − 1e-7] before the log: the loss saturates at 16.1 and 1e-7."""
    with np.errstate(over="ignore"):
        s = 1.0 / (1.0 + np.exp(-beta * _margin(lc, lr, rc, rr)))
    return -np.log(np.clip(s, 1e-7, 1 - 1e-7))


def swapped_dpo(lc, lr, rc, rr, beta):
    """Chosen and rejected swapped: the loss of −m."""
    return np.logaddexp(0.0, beta * _margin(lc, lr, rc, rr))


def no_reference_dpo(lc, lr, rc, rr, beta):
    """The reference model left out: the margin is log π(y_w) − log π(y_l)."""
    return np.logaddexp(0.0, -beta * (np.asarray(lc) - np.asarray(lr)))


def no_beta_dpo(lc, lr, rc, rr, beta):
    """β left out: softplus(−m)."""
    return np.logaddexp(0.0, -_margin(lc, lr, rc, rr))


def float32_margin_dpo(lc, lr, rc, rr, beta):
    """The margin formed from float32 sums (as a float32 model returns them), then float64."""
    m = _margin(lc, lr, rc, rr, dtype=np.float32).astype(np.float64)
    return np.logaddexp(0.0, -beta * m)


def mean_dpo(lc, lr, rc, rr, beta):
    """The mean over the batch instead of one loss per pair (a trainer's reduction)."""
    return np.mean(np.logaddexp(0.0, -beta * _margin(lc, lr, rc, rr)))


def smoothing_ignored_dpo(lc, lr, rc, rr, beta, label_smoothing=0.0):
    """Takes label_smoothing and ignores it."""
    return np.logaddexp(0.0, -beta * _margin(lc, lr, rc, rr))


def smoothing_half_dpo(lc, lr, rc, rr, beta, label_smoothing=0.0):
    """Label smoothing as a scale only: (1 − ε)·softplus(−z), the flipped label's term lost."""
    return (1 - label_smoothing) * np.logaddexp(0.0, -beta * _margin(lc, lr, rc, rr))


def _dpo(name: str, fn, smoothing: bool = False) -> Implementation:
    return Implementation(name, dpo=fn, capabilities={"label_smoothing"} if smoothing else ())


LOGADDEXP = _dpo("np.logaddexp(0, -beta*m), float64 margin", logaddexp_dpo, smoothing=True)
TORCH_LOGSIGMOID = _dpo("-F.logsigmoid(beta*m), torch float64", torch_logsigmoid_dpo, True)
LITERAL = _dpo("-log(sigmoid(beta*m))", literal_dpo)
CLIPPED = _dpo("sigmoid clipped to [1e-7, 1-1e-7]", clipped_sigmoid_dpo)
SWAPPED = _dpo("chosen and rejected swapped", swapped_dpo)
NO_REFERENCE = _dpo("reference log-probabilities left out", no_reference_dpo)
NO_BETA = _dpo("beta left out", no_beta_dpo)
FLOAT32_MARGIN = _dpo("margin of float32 sums", float32_margin_dpo)
MEAN = _dpo("mean over the batch", mean_dpo)
SMOOTHING_IGNORED = _dpo("label_smoothing ignored", smoothing_ignored_dpo, smoothing=True)
SMOOTHING_HALF = _dpo("label_smoothing as (1 - eps) * loss", smoothing_half_dpo, smoothing=True)

ACCEPTED_PREFERENCE: tuple[Implementation, ...] = (LOGADDEXP, TORCH_LOGSIGMOID)

#: check name or clause id -> implementations it must reject.
BROKEN_PREFERENCE: dict[str, tuple[Implementation, ...]] = {
    "dpo.definition": (
        LITERAL,
        CLIPPED,
        SWAPPED,
        NO_REFERENCE,
        NO_BETA,
        FLOAT32_MARGIN,
        MEAN,
        SMOOTHING_IGNORED,
    ),
    "dpo.accuracy": (LOGADDEXP, FLOAT32_MARGIN),
    "dpo.limits": (LITERAL, CLIPPED, SWAPPED),
    "dpo.swap_symmetry": (SWAPPED, NO_BETA, CLIPPED),
    "dpo.shift_invariant": (NO_REFERENCE,),
    "dpo.bradley_terry": (SWAPPED, NO_BETA, NO_REFERENCE, LITERAL),
    "dpo.gradient_weight": (NO_BETA, SWAPPED),
    "dpo.label_smoothing": (SMOOTHING_IGNORED, SMOOTHING_HALF),
}
