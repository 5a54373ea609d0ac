r"""The KL code of five RLHF / distillation libraries, re-implemented in torch from their source.

verl, OpenRLHF, TRL, torchtune and NeMo-RL each compute the KL penalty of a policy
π against a reference π_ref (or a teacher in distillation) in a few lines of torch.
Those libraries are heavy to install (ray, deepspeed, vllm, megatron), so this
module re-implements each of those few lines in torch alone, operation by
operation in the library's order, with its casts, clamps, ``detach()`` tricks and
reductions, from the public source at the commit named in each record. Nothing of
the libraries is imported.

The principle is that of :mod:`klspec.conformance.adapters`: a record translates
*calling conventions* (argument order, which of teacher and student is P, the
shape the library expects, labels that ignore nothing) and never corrects
*results*: a clamp that saturates, a k3 that rounds negative, a NaN from
0·(−inf), a cross-entropy called a KL are all reproduced.

Calling conventions of :attr:`LibraryKL.function`:

* quantity ``"k1"``, ``"k2"``, ``"k3"``: ``f(logp, ref_logp)``, torch tensors of one
  shape, ``logp = log π(token)`` (the policy being trained, the token sampled from
  it) and ``ref_logp = log π_ref(token)``; it returns the library's per-token
  estimate of KL(π‖π_ref), same shape, differentiable in ``logp``. Write
  d = log r = ref_logp − logp: k1 = −d, k2 = d²/2, k3 = (e^d − 1) − d
  (Schulman, "Approximating KL divergence", 2020).
* quantity ``"token-kl"``: ``f(logits_p, logits_q)``, tensors of shape
  (positions, vocabulary); the library's KL(softmax(logits_p)‖softmax(logits_q))
  per position, or, where the library only returns a reduction
  (``reduction`` set), that scalar. Temperature 1; labels ignore no position.
* quantity ``"dpo"``: ``f(logp_chosen, logp_rejected, ref_logp_chosen,
  ref_logp_rejected, beta)`` (and ``label_smoothing`` where the loss takes it),
  tensors of one shape holding the log-probabilities of whole responses, β a float;
  the library's DPO loss per pair, before its mean over the batch.

Every record is checked in float32 (``dtype``): the libraries run in float32 or
cast to it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["K2_CLAMP_RANGE", "K3_CLAMP_RANGE", "LIBRARIES", "LibraryKL", "by_name"]


@dataclass(frozen=True)
class LibraryKL:
    """One library's KL computation, callable in klspec's convention (module docstring)."""

    #: Target name, e.g. "verl.low_var_kl", "trl.gkd.forward".
    name: str
    #: "verl", "OpenRLHF", "TRL", "torchtune" or "NeMo-RL".
    library: str
    #: "k1", "k2", "k3" or "token-kl".
    quantity: str
    #: f(logp, ref_logp) or f(logits_p, logits_q); see the module docstring.
    function: Callable[..., Any]
    #: The dtype the record is checked in.
    dtype: str
    #: "owner/repo@<40-hex commit> path function".
    source: str
    #: None: one value per token/position; "mean" or "sum": a reduction over positions.
    reduction: str | None = None
    #: [LO, HI] of d = ref_logp − logp on which every clamp is inactive; None: no clamp.
    log_ratio_range: tuple[float, float] | None = None
    #: Straight-through estimators: the estimator whose gradient flows back; else None.
    gradient_of: str | None = None
    #: The adapter docstring: summary line, then conventions, source, advice.
    doc: str = ""
    #: dpo records: the β they are checked at (the library's default), and the signature
    #: when it differs from the default (one naming label_smoothing).
    beta: float | None = None
    signature: str | None = None

    @property
    def summary(self) -> str:
        return self.doc.split("\n\n")[0].replace("\n", " ")


# --- where the clamps are inactive ---------------------------------------------------------
#
# A clamp of k3 = e^d − d − 1 to [−10, 10] is inactive where e^d − d − 1 <= 10 (k3 >= 0),
# i.e. d in [−10.99998329802…, 2.61086863814…] (roots by mpmath). A clamp of k2 = d²/2 to
# [−10, 10] is inactive for |d| <= √20 = 4.47213595499…; of k1 = −d, for |d| <= 10. The
# bounds below are rounded *inward* by several float32 ulps of the clamped value, so that
# the float32 estimate, rounding included, stays below the clamp on the whole range.

#: d where a [−10, 10] clamp of k3 is inactive (inward-rounded roots of e^d − d − 1 = 10).
K3_CLAMP_RANGE: tuple[float, float] = (-10.99998, 2.610868)
#: d where a [−10, 10] clamp of k2 = d²/2 is inactive (±√20, rounded inward).
K2_CLAMP_RANGE: tuple[float, float] = (-4.472135, 4.472135)
#: d where a [−10, 10] clamp of k1 = −d is inactive.
K1_CLAMP_RANGE: tuple[float, float] = (-10.0, 10.0)


def _doc(text: str, common: str = "", source: str = "") -> str:
    """An adapter docstring: ``text`` (summary, conventions), a shared block, a source line."""
    doc = inspect.cleandoc(text)
    if common:
        doc += "\n" + inspect.cleandoc(common)
    if source:
        doc += "\n\nSource: " + inspect.cleandoc(source)
    return doc


# --- verl ----------------------------------------------------------------------------------

_VERL = "verl-project/verl@1dda039b9c6311889a9c9a26040677e1254814f9"
#: v0.7.1, the last release before the '+' suffix was stripped (verl-project/verl#6058).
_VERL_071 = "verl-project/verl@bec9ef74768dd201881cd4e54cd0385e87caae27"
_VERL_FILE = "verl/trainer/ppo/core_algos.py"


def _verl_kl_penalty_forward(logprob, ref_logprob, kl_penalty: str):
    """verl's kl_penalty_forward: the value of the estimator named by ``kl_penalty``."""
    import torch

    if kl_penalty in ("kl", "k1"):
        return logprob - ref_logprob
    if kl_penalty == "abs":
        return (logprob - ref_logprob).abs()
    if kl_penalty in ("mse", "k2"):
        return 0.5 * (logprob - ref_logprob).square()
    if kl_penalty in ("low_var_kl", "k3"):
        log_ratio = torch.clamp(ref_logprob - logprob, min=-20, max=20)
        estimate = (torch.exp(log_ratio) - log_ratio - 1).contiguous()
        return torch.clamp(estimate, min=-10, max=10)
    # "full" and every other name, including a name with a '+' suffix left on.
    raise NotImplementedError


def _verl_kl_penalty(logprob, ref_logprob, kl_penalty: str, *, strip_plus: bool = True):
    """verl's kl_penalty: a '+' suffix keeps the value and takes the gradient of k2.

    ``strip_plus=False`` is the code of #2953 up to v0.7.1, which passed the suffixed name
    on to kl_penalty_forward, so that every '+' name raised NotImplementedError.
    """
    suffixed = kl_penalty.endswith("+")
    base = kl_penalty[:-1] if strip_plus and suffixed else kl_penalty
    forward_score = _verl_kl_penalty_forward(logprob, ref_logprob, base)
    if not suffixed or kl_penalty in ("mse", "k2"):
        return forward_score
    backward_score = 0.5 * (logprob - ref_logprob).square()
    return backward_score - backward_score.detach() + forward_score.detach()


def _verl(mode: str, *, strip_plus: bool = True) -> Callable[..., Any]:
    def kl(logp, ref_logp):
        return _verl_kl_penalty(logp, ref_logp, mode, strip_plus=strip_plus)

    kl.__name__ = f"verl_{mode}"
    return kl


_VERL_COMMON = """
    Called as kl_penalty(logprob, ref_logprob, kl_penalty=MODE), in klspec's order (the
    policy first). verl uses it in two places: algorithm.kl_penalty (default "kl") for
    the KL in the reward, computed on old_log_probs, and actor.kl_loss_type (default
    "low_var_kl") for the KL loss, aggregated by agg_loss over the response mask. No
    cast: the estimate has the inputs' dtype (float32 log-probs from
    logprobs_from_logits).
"""

_VERL_RECORDS = (
    LibraryKL(
        name="verl.k1",
        library="verl",
        quantity="k1",
        function=_verl("k1"),
        dtype="float32",
        source=f"{_VERL} {_VERL_FILE} kl_penalty_forward",
        doc=_doc(
            """
            verl's k1 (kl_penalty "kl" or "k1"): logprob − ref_logprob, no clamp.

            Conventions: kl_penalty_forward returns logprob − ref_logprob as is: no
            clamp, no cast, so logprob = −inf gives −inf and −inf in both gives nan.
            Unbiased for KL(π‖π_ref) over tokens sampled from π but negative on about
            half of them; as a loss its expected gradient is 0. The other accepted
            name "abs" returns |logprob − ref_logprob| (not recorded: it estimates no
            KL).
            """,
            _VERL_COMMON,
            f"""
            {_VERL} {_VERL_FILE}, kl_penalty / kl_penalty_forward.
            """,
        ),
    ),
    LibraryKL(
        name="verl.k2",
        library="verl",
        quantity="k2",
        function=_verl("k2"),
        dtype="float32",
        source=f"{_VERL} {_VERL_FILE} kl_penalty_forward",
        doc=_doc(
            """
            verl's k2 (kl_penalty "mse" or "k2"): 0.5 * (logprob − ref_logprob).square().

            Conventions: ½(logprob − ref_logprob)², no clamp, no cast; ∞ at a −inf
            log-prob, nan with −inf in both. Biased (E[k2] − KL is of third order in
            d), never negative; its gradient is ∇KL(π‖π_ref) in expectation, which is
            why the '+' names borrow it.
            """,
            _VERL_COMMON,
            f"""
            {_VERL} {_VERL_FILE}, kl_penalty / kl_penalty_forward.
            """,
        ),
    ),
    LibraryKL(
        name="verl.low_var_kl",
        library="verl",
        quantity="k3",
        function=_verl("low_var_kl"),
        dtype="float32",
        source=f"{_VERL} {_VERL_FILE} kl_penalty_forward",
        log_ratio_range=K3_CLAMP_RANGE,
        doc=_doc(
            """
            verl's k3 (kl_penalty "low_var_kl" or "k3"): d clamped to ±20, k3 clamped to ±10.

            Conventions: d = ref_logprob − logprob, then torch.clamp(d, −20, 20),
            ratio = exp(d), k3 = (ratio − d) − 1 (in that order), then
            torch.clamp(k3, −10, 10). The clamps are inactive for d in
            [−10.99998, 2.61087] (k3 <= 10; the clamp of d is never the binding one):
            beyond, the value is 10 and the gradient 0, so a token whose policy
            log-prob fell more than ~2.6 nats below the reference's stops being
            pulled back. A −inf logprob gives 10 (d clamps to 20), not inf; nan in
            gives nan. No cast. Rounding: (ratio − d) − 1 is 0 for |d| < 2^-25 in
            float32 and −2^-24 (negative) for d slightly above 2^-25, e.g. d = 3e-8;
            in float64, d = 2^-53 gives −2^-53. This is the default actor.kl_loss_type;
            as a loss its expected gradient is ∇KL(π_ref‖π), not ∇KL(π‖π_ref).
            """,
            _VERL_COMMON,
            f"""
            {_VERL} {_VERL_FILE}, kl_penalty / kl_penalty_forward.
            """,
        ),
    ),
    LibraryKL(
        name="verl.k1+",
        library="verl",
        quantity="k1",
        function=_verl("k1+"),
        dtype="float32",
        source=f"{_VERL} {_VERL_FILE} kl_penalty",
        gradient_of="k2",
        doc=_doc(
            """
            verl's straight-through "k1+": the value of k1, the gradient of k2.

            Conventions: kl_penalty strips the '+' (since verl-project/verl#6058,
            April 2026), computes the k1 value f = logprob − ref_logprob, and returns
            b − b.detach() + f.detach() with b = 0.5 * (logprob − ref_logprob).square():
            the value is (b − b) + f = f exactly while b is finite, the gradient is
            logprob − ref_logprob (that of k2). Where b is inf (a −inf log-prob) b − b
            is nan, so the value is nan where "k1" gives −inf. Up to v0.7.1 this name
            raised NotImplementedError (see verl.k3+@v0.7.1). No clamp, no cast.
            """,
            _VERL_COMMON,
            f"""
            {_VERL} {_VERL_FILE}, kl_penalty.
            """,
        ),
    ),
    LibraryKL(
        name="verl.k3+",
        library="verl",
        quantity="k3",
        function=_verl("k3+"),
        dtype="float32",
        source=f"{_VERL} {_VERL_FILE} kl_penalty",
        log_ratio_range=K3_CLAMP_RANGE,
        gradient_of="k2",
        doc=_doc(
            """
            verl's straight-through "k3+" ("low_var_kl+"): low_var_kl's value, k2's gradient.

            Conventions: kl_penalty strips the '+' (since verl-project/verl#6058, April
            2026), computes f = low_var_kl (d clamped to ±20, k3 clamped to ±10, as
            verl.low_var_kl) and returns b − b.detach() + f.detach() with
            b = 0.5 * (logprob − ref_logprob).square(). The value is f exactly (clamps
            included: 10 beyond d = 2.61087), the gradient is logprob − ref_logprob,
            that of k2, *whatever the clamps*: unlike low_var_kl, a token far from the
            reference keeps a gradient. At a −inf logprob b is inf and b − b is nan:
            the value is nan where low_var_kl gives 10. Same float32 rounding of the
            value as verl.low_var_kl. The expected gradient is ∇KL(π‖π_ref).
            """,
            _VERL_COMMON,
            f"""
            {_VERL} {_VERL_FILE}, kl_penalty (the '+' branch).
            """,
        ),
    ),
    LibraryKL(
        name="verl.k3+@v0.7.1",
        library="verl",
        quantity="k3",
        function=_verl("k3+", strip_plus=False),
        dtype="float32",
        source=f"{_VERL_071} {_VERL_FILE} kl_penalty",
        log_ratio_range=K3_CLAMP_RANGE,
        gradient_of="k2",
        doc=_doc(
            """
            verl v0.6.0–v0.7.1's "k3+": raises NotImplementedError on every call.

            Conventions: the straight-through '+' names were added in
            volcengine/verl#2953 (August 2025): kl_penalty passed the name, suffix
            included, to kl_penalty_forward, which knows no "k3+" and raises
            NotImplementedError (no message) before any value is computed. So did
            "k1+", "kl+", "abs+", "low_var_kl+" and even "k2+"/"mse+". The docs
            advertised them all along; the first training step that touched the KL
            crashed. Fixed by verl-project/verl#6058 (7e80ab0c, April 2026, after
            v0.7.1): see verl.k3+. Had it run, it would have behaved as verl.k3+.
            """,
            _VERL_COMMON,
            f"""
            {_VERL_071} {_VERL_FILE}, kl_penalty (tag v0.7.1; the same code in
            volcengine/verl@b178a3cd56f58b2d502255daba591e92833930a7).
            """,
        ),
    ),
)


# --- OpenRLHF ------------------------------------------------------------------------------

_OPENRLHF = "OpenRLHF/OpenRLHF@3c3be6234e0cb353e76bb8019947db9dfe99fca7"
_OPENRLHF_FILE = "openrlhf/models/utils.py"


def _openrlhf_compute_approx_kl(log_probs, log_probs_base, kl_estimator: str = "k1"):
    """OpenRLHF's compute_approx_kl: float32 log-ratio, an estimator, a clamp to ±10."""
    log_ratio = log_probs.float() - log_probs_base.float()
    if kl_estimator == "k1":
        pass
    elif kl_estimator == "k2":
        log_ratio = log_ratio**2 / 2.0
    elif kl_estimator == "k3":
        log_ratio = (-log_ratio).exp() - 1 + log_ratio
    else:
        raise ValueError(f"Unknown kl_estimator: {kl_estimator}")
    return log_ratio.clamp(min=-10, max=10)


def _openrlhf(estimator: str) -> Callable[..., Any]:
    def kl(logp, ref_logp):
        return _openrlhf_compute_approx_kl(logp, ref_logp, kl_estimator=estimator)

    kl.__name__ = f"openrlhf_{estimator}"
    return kl


_OPENRLHF_COMMON = """
    Called as compute_approx_kl(log_probs, log_probs_base, kl_estimator=NAME), the
    policy first as in klspec. Both inputs are cast with .float() *before* the
    subtraction, so bfloat16 or float64 log-probs are estimated in float32 and the
    result is always float32 (float64 inputs closer than a float32 ulp give 0).
    Every estimator's output is clamped to [−10, 10], value and gradient. OpenRLHF
    uses it for the KL in the reward (experience_maker) and, with --algo.kl.use_loss,
    as the actor's KL loss (ppo_actor); --algo.kl.estimator defaults to "k1".
"""

_OPENRLHF_RECORDS = (
    LibraryKL(
        name="openrlhf.k1",
        library="OpenRLHF",
        quantity="k1",
        function=_openrlhf("k1"),
        dtype="float32",
        source=f"{_OPENRLHF} {_OPENRLHF_FILE} compute_approx_kl",
        log_ratio_range=K1_CLAMP_RANGE,
        doc=_doc(
            """
            OpenRLHF's k1: log_probs.float() − log_probs_base.float(), clamped to ±10.

            Conventions: k1 = −d in float32, then clamp(−10, 10): inactive for
            d in [−10, 10]; beyond, ±10 and no gradient. A −inf log-prob gives −10,
            nan gives nan.
            """,
            _OPENRLHF_COMMON,
            f"""
            {_OPENRLHF} {_OPENRLHF_FILE}, compute_approx_kl.
            """,
        ),
    ),
    LibraryKL(
        name="openrlhf.k2",
        library="OpenRLHF",
        quantity="k2",
        function=_openrlhf("k2"),
        dtype="float32",
        source=f"{_OPENRLHF} {_OPENRLHF_FILE} compute_approx_kl",
        log_ratio_range=K2_CLAMP_RANGE,
        doc=_doc(
            """
            OpenRLHF's k2: (log-ratio)**2 / 2.0 in float32, clamped to ±10.

            Conventions: k2 = (−d)²/2 in float32, then clamp(−10, 10): inactive for
            |d| <= √20 ≈ 4.4721; beyond, 10 and no gradient. A −inf log-prob gives 10.
            """,
            _OPENRLHF_COMMON,
            f"""
            {_OPENRLHF} {_OPENRLHF_FILE}, compute_approx_kl.
            """,
        ),
    ),
    LibraryKL(
        name="openrlhf.k3",
        library="OpenRLHF",
        quantity="k3",
        function=_openrlhf("k3"),
        dtype="float32",
        source=f"{_OPENRLHF} {_OPENRLHF_FILE} compute_approx_kl",
        log_ratio_range=K3_CLAMP_RANGE,
        doc=_doc(
            """
            OpenRLHF's k3: (−x).exp() − 1 + x with x = logp − ref in float32, clamped to ±10.

            Conventions: x = logp.float() − ref_logp.float() = −d, then
            ((−x).exp() − 1) + x, i.e. (e^d − 1) − d (the older form negated x first,
            then x.exp() − 1 − x: the same float operations), then clamp(−10, 10):
            inactive for d in [−10.99998, 2.61087]; beyond, 10 and no gradient. No
            clamp on d itself: a −inf log-prob gives exp(inf) − 1 + (−inf) = nan, not
            10 (verl and NeMo-RL clamp d first). Rounding: e^d rounds to 1 for
            0 < d < 2^-24 in float32, so k3 = −d exactly, *negative* (d = 2^-30 gives
            −2^-30, true ≈ 2^-61); in float64, d = 2^-53 gives −2^-53.
            """,
            _OPENRLHF_COMMON,
            f"""
            {_OPENRLHF} {_OPENRLHF_FILE}, compute_approx_kl.
            """,
        ),
    ),
)


# --- TRL -----------------------------------------------------------------------------------

_TRL = "huggingface/trl@f2cd57710ae345ea6428ae95363267fcf38a3dc8"
_TRL_GRPO = "trl/trainer/grpo_trainer.py"
_TRL_PPO = "trl/experimental/ppo/ppo_trainer.py"
_TRL_GKD = "trl/experimental/gkd/gkd_trainer.py"
_TRL_DPO = "trl/trainer/dpo_trainer.py"
#: The last commit before "Refactor DPO (#3906)" (e3b7897), which removed DPOTrainer.dpo_loss
#: and with it label smoothing from the "sigmoid" loss.
_TRL_BEFORE_REFACTOR = "huggingface/trl@a68fb896f008f58a3d37abf11ae665357b7c679a"


def _trl_grpo_k3(logp, ref_logp):
    """GRPOTrainer._compute_loss: per_token_kl, TRL's k3 with no clamp."""
    import torch

    return torch.exp(ref_logp - logp) - (ref_logp - logp) - 1


def _trl_grpo_k3_bias_corrected(logp, ref_logp):
    """The same, times coef_1 = exp(logp − old_logp), on policy: old_logp = logp.detach()."""
    import torch

    per_token_kl = torch.exp(ref_logp - logp) - (ref_logp - logp) - 1
    coef_1 = torch.exp(logp - logp.detach())
    return per_token_kl * coef_1


def _trl_ppo(estimator: str) -> Callable[..., Any]:
    def kl(logp, ref_logp):
        logr = ref_logp - logp
        return -logr if estimator == "k1" else (logr.exp() - 1) - logr

    kl.__name__ = f"trl_ppo_{estimator}"
    return kl


def _trl_dpo_sigmoid(logp_chosen, logp_rejected, ref_logp_chosen, ref_logp_rejected, beta):
    """DPOTrainer._compute_loss, loss_type "sigmoid", f_divergence_type "reverse_kl"."""
    import torch.nn.functional as F

    chosen_logratios = logp_chosen - ref_logp_chosen
    rejected_logratios = logp_rejected - ref_logp_rejected
    delta_score = chosen_logratios - rejected_logratios
    return -F.logsigmoid(beta * delta_score)


def _trl_dpo_robust(logp_chosen, logp_rejected, ref_logp_chosen, ref_logp_rejected, beta):
    """DPOTrainer._compute_loss, loss_type "robust" at label_smoothing = 0 (its default)."""
    import torch.nn.functional as F

    label_smoothing = 0.0
    delta_score = (logp_chosen - ref_logp_chosen) - (logp_rejected - ref_logp_rejected)
    clean_loss_term = -(1 - label_smoothing) * F.logsigmoid(beta * delta_score)
    flipped_loss_term = -label_smoothing * F.logsigmoid(-beta * delta_score)
    return (clean_loss_term - flipped_loss_term) / (1 - 2 * label_smoothing)


def _trl_dpo_loss_sigmoid(
    logp_chosen, logp_rejected, ref_logp_chosen, ref_logp_rejected, beta, label_smoothing
):
    """DPOTrainer.dpo_loss before the refactor: loss_type "sigmoid" with label smoothing."""
    import torch.nn.functional as F

    logratios = logp_chosen - logp_rejected
    ref_logratios = ref_logp_chosen - ref_logp_rejected
    logits = logratios - ref_logratios
    return (
        -F.logsigmoid(beta * logits) * (1 - label_smoothing)
        - F.logsigmoid(-beta * logits) * label_smoothing
    )


def _trl_generalized_jsd_loss(student_logits, teacher_logits, labels, beta: float):
    """GKDTrainer.generalized_jsd_loss at beta 0 or 1, temperature 1, reduction 'batchmean'."""
    import torch.nn.functional as F

    temperature = 1.0
    student_log_probs = F.log_softmax(student_logits / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(teacher_logits / temperature, dim=-1)
    if beta == 0:
        jsd = F.kl_div(student_log_probs, teacher_log_probs, reduction="none", log_target=True)
    elif beta == 1:
        jsd = F.kl_div(teacher_log_probs, student_log_probs, reduction="none", log_target=True)
    else:  # the mixture branch (0 < beta < 1) is not reproduced here
        raise NotImplementedError("only beta = 0 and beta = 1 are reproduced")
    mask = labels != -100
    jsd = jsd[mask]
    return jsd.sum() / mask.sum().clamp_min(1)


def _as_batch(logits):
    """(positions, vocabulary) -> (1, positions, vocabulary), the (batch, seq, vocab) of TRL."""
    return logits.reshape(1, -1, logits.shape[-1])


def _no_ignored_labels(batch_logits):
    import torch

    return torch.zeros(batch_logits.shape[:-1], dtype=torch.long, device=batch_logits.device)


def _trl_gkd_forward(logits_p, logits_q):
    """KL(teacher‖student), beta = 0: P is the teacher."""
    teacher, student = _as_batch(logits_p), _as_batch(logits_q)
    return _trl_generalized_jsd_loss(student, teacher, _no_ignored_labels(student), beta=0.0)


def _trl_gkd_reverse(logits_p, logits_q):
    """KL(student‖teacher), beta = 1: P is the student."""
    student, teacher = _as_batch(logits_p), _as_batch(logits_q)
    return _trl_generalized_jsd_loss(student, teacher, _no_ignored_labels(student), beta=1.0)


_TRL_GKD_COMMON = """
    generalized_jsd_loss(student_logits, teacher_logits, labels, beta, temperature=1.0,
    reduction="batchmean") takes (batch, seq, vocab) logits; both are divided by the
    temperature and log_softmax'ed in their own dtype (no cast). beta == 0 and
    beta == 1 (exact comparisons) are special-cased to one F.kl_div(input, target,
    reduction="none", log_target=True), whose terms are exp(target)·(target − input);
    any other beta mixes the two through logsumexp (the default, beta = 0.5, is the
    generalised JSD). Positions with labels == −100 are dropped (jsd[mask]); the
    "batchmean" reduction is then the sum over kept positions and the vocabulary
    divided by the number of kept positions (mask.sum().clamp_min(1)): the mean
    per-position KL, which is what the adapter returns (reduction "mean"). It passes
    one batch of shape (1, positions, vocab) with labels 0 everywhere (nothing
    ignored). Beware: without labels, "batchmean" divides by size(0), the batch
    size, not the number of tokens (a sum over the sequence); and the trainer passes
    num_items_in_batch, which replaces the denominator. GKDConfig says beta = 0 is
    "the KL divergence" and beta = 1 "the Inverse KL Divergence".
"""

_TRL_RECORDS = (
    LibraryKL(
        name="trl.grpo.k3",
        library="TRL",
        quantity="k3",
        function=_trl_grpo_k3,
        dtype="float32",
        source=f"{_TRL} {_TRL_GRPO} GRPOTrainer._compute_loss",
        doc=_doc(
            """
            TRL GRPO's per-token KL: torch.exp(ref − logp) − (ref − logp) − 1, no clamp.

            Conventions: per_token_kl = exp(d) − d − 1 evaluated left to right,
            (e^d − d) − 1, on per_token_logps and ref_per_token_logps as they come
            (no cast, no clamp), added as beta * per_token_kl to the per-token loss
            (beta defaults to 0.0 in recent TRL: the KL is then not computed at all).
            exp(d) overflows to inf in float32 for d > 88.7; a −inf logp gives
            inf − inf = nan (d = +inf); ref = −inf gives inf. Rounding: 0 for
            |d| < 2^-25 in float32, −2^-24 (negative) for d just above 2^-25 (e.g.
            d = 3e-8); in float64, d = 2^-53 gives −2^-53. As a loss its expected
            gradient is ∇KL(π_ref‖π) (TRL's use_bias_correction_kl changes that: see
            trl.grpo.k3.bias_correction).
            """,
            "",
            f"""
            {_TRL} {_TRL_GRPO}, GRPOTrainer._compute_loss.
            """,
        ),
    ),
    LibraryKL(
        name="trl.grpo.k3.bias_correction",
        library="TRL",
        quantity="k3",
        function=_trl_grpo_k3_bias_corrected,
        dtype="float32",
        source=f"{_TRL} {_TRL_GRPO} GRPOTrainer._compute_loss",
        gradient_of="k2",
        doc=_doc(
            """
            TRL GRPO's k3 with use_bias_correction_kl, on policy: k3 · exp(logp − logp.detach()).

            Conventions: per_token_kl as trl.grpo.k3, multiplied by
            coef_1 = exp(per_token_logps − old_per_token_logps) (token-level
            importance sampling, the default). On policy (num_iterations = 1, no
            vLLM) TRL sets old_per_token_logps = per_token_logps.detach(), which the
            adapter does: coef_1 is exactly 1, so the value is k3, while the gradient
            gains k3·∇logp: d/dlogp = k3 + 1 − e^d = −d, the gradient of k2, whose
            expectation is ∇KL(π‖π_ref) (the DeepSeek-V3.2 correction). Autograd forms
            it as k3 + (1 − e^d), which cancels for large d: in float32, d = 25 gives
            a gradient of 0 instead of −25 (no clamp limits d here). Off policy
            (old_per_token_logps from another forward pass) the value is k3 · r.
            Not the default (use_bias_correction_kl = False). A −inf logp gives
            exp(nan) = nan.
            """,
            "",
            f"""
            {_TRL} {_TRL_GRPO}, GRPOTrainer._compute_loss (coef_1 and the
            use_bias_correction_kl branch).
            """,
        ),
    ),
    LibraryKL(
        name="trl.ppo.k1",
        library="TRL",
        quantity="k1",
        function=_trl_ppo("k1"),
        dtype="float32",
        source=f"{_TRL} {_TRL_PPO} PPOTrainer.train",
        doc=_doc(
            """
            TRL PPO's k1 (kl_estimator="k1", the default): −logr, logr = ref_logprobs − logprobs.

            Conventions: logr = ref − logp; kl = −logr, bitwise equal to logp − ref;
            no clamp, no cast. TRL computes it inside torch.no_grad() as the
            per-token reward penalty −kl_coef·kl (never backpropagated); the adapter
            keeps autograd on so that a gradient check sees the formula's gradient.
            Padding positions hold INVALID_LOGPROB = 1.0 in both inputs (k1 = 0 there).
            PPOTrainer moved from trl/trainer/ppo_trainer.py to trl.experimental.ppo
            in November 2025.
            """,
            "",
            f"""
            {_TRL} {_TRL_PPO}, PPOTrainer.train ("4. compute rewards").
            """,
        ),
    ),
    LibraryKL(
        name="trl.ppo.k3",
        library="TRL",
        quantity="k3",
        function=_trl_ppo("k3"),
        dtype="float32",
        source=f"{_TRL} {_TRL_PPO} PPOTrainer.train",
        doc=_doc(
            """
            TRL PPO's k3 (kl_estimator="k3"): (logr.exp() − 1) − logr, no clamp.

            Conventions: logr = ref − logp = d; kl = (e^d − 1) − d, grouped unlike
            GRPO's (e^d − d) − 1; no clamp, no cast; computed under torch.no_grad()
            for the reward (the adapter keeps autograd on, as trl.ppo.k1). Overflow
            to inf for d > 88.7 in float32; a −inf logp gives nan. Rounding: e^d
            rounds to 1 for 0 < d < 2^-24 in float32, so kl = −d exactly, *negative*
            (d = 2^-30 gives −2^-30, true ≈ 2^-61); in float64, d = 2^-53 gives −2^-53.
            """,
            "",
            f"""
            {_TRL} {_TRL_PPO}, PPOTrainer.train ("4. compute rewards").
            """,
        ),
    ),
    LibraryKL(
        name="trl.gkd.forward",
        library="TRL",
        quantity="token-kl",
        function=_trl_gkd_forward,
        dtype="float32",
        source=f"{_TRL} {_TRL_GKD} GKDTrainer.generalized_jsd_loss",
        reduction="mean",
        doc=_doc(
            """
            TRL GKD's generalized_jsd_loss at beta = 0: KL(teacher‖student), mean over positions.

            Conventions: beta == 0 computes F.kl_div(student_log_probs,
            teacher_log_probs, log_target=True): terms exp(t)·(t − s) with t, s the
            teacher's and student's log-softmax, i.e. KL(teacher‖student), the forward
            KL; so logits_p is the teacher's, logits_q the student's. A −inf teacher
            logit gives exp(−inf)·(−inf − s) = 0·(−inf) = nan (the term should be 0)
            and the whole mean is nan; a −inf student logit under teacher mass gives
            inf (correct).
            """,
            _TRL_GKD_COMMON,
            f"""
            {_TRL} {_TRL_GKD}, GKDTrainer.generalized_jsd_loss (GKDTrainer
            moved from trl/trainer/gkd_trainer.py to trl.experimental.gkd in November
            2025).
            """,
        ),
    ),
    LibraryKL(
        name="trl.gkd.reverse",
        library="TRL",
        quantity="token-kl",
        function=_trl_gkd_reverse,
        dtype="float32",
        source=f"{_TRL} {_TRL_GKD} GKDTrainer.generalized_jsd_loss",
        reduction="mean",
        doc=_doc(
            """
            TRL GKD's generalized_jsd_loss at beta = 1: KL(student‖teacher), mean over positions.

            Conventions: beta == 1 computes F.kl_div(teacher_log_probs,
            student_log_probs, log_target=True): terms exp(s)·(s − t), i.e.
            KL(student‖teacher), the reverse KL; so logits_p is the student's,
            logits_q the teacher's. A −inf student logit gives 0·(−inf) = nan (the
            term should be 0) and the mean is nan; a −inf teacher logit under student
            mass gives inf (correct).
            """,
            _TRL_GKD_COMMON,
            f"""
            {_TRL} {_TRL_GKD}, GKDTrainer.generalized_jsd_loss.
            """,
        ),
    ),
    LibraryKL(
        name="trl.dpo.sigmoid",
        library="TRL",
        quantity="dpo",
        function=_trl_dpo_sigmoid,
        dtype="float32",
        source=f"{_TRL} {_TRL_DPO} DPOTrainer._compute_loss",
        beta=0.1,
        doc=_doc(
            """
            TRL's DPO loss (loss_type "sigmoid"): −F.logsigmoid(β·Δ), Δ the margin of log-ratios.

            Conventions: chosen_logratios = chosen_logps − ref_chosen_logps and
            rejected_logratios likewise (f_divergence_type "reverse_kl", the
            default), delta_score = their difference, per_sequence_loss =
            −F.logsigmoid(self.beta * delta_score), then loss = per_sequence_loss.mean()
            over the batch (the record returns the per-pair values, before the mean).
            β defaults to 0.1 (DPOConfig.beta), the β the record is checked at. The
            log-probabilities are sums of per-token log-probabilities over the
            completion (selective_log_softmax, masked), in the model's dtype:
            float32 here. F.logsigmoid is the stable softplus form: no overflow for
            any finite margin. Since the refactor of DPOTrainer (#3906) the "sigmoid"
            loss takes no label smoothing (see trl.dpo.sigmoid.label_smoothing for
            the code before it).
            """,
            "",
            f"""
            {_TRL} {_TRL_DPO}, DPOTrainer._compute_loss (loss_type == "sigmoid").
            """,
        ),
    ),
    LibraryKL(
        name="trl.dpo.robust",
        library="TRL",
        quantity="dpo",
        function=_trl_dpo_robust,
        dtype="float32",
        source=f"{_TRL} {_TRL_DPO} DPOTrainer._compute_loss",
        beta=0.1,
        doc=_doc(
            """
            TRL's robust DPO loss (loss_type "robust") at label_smoothing = 0, where it is DPO.

            Conventions: per_sequence_loss = (−(1 − ε)·F.logsigmoid(β·Δ) +
            ε·F.logsigmoid(−β·Δ)) / (1 − 2ε) with ε = label_smoothing (default 0.0):
            at ε = 0 the DPO loss, computed through the same lines (the record fixes
            ε = 0). For ε > 0 it is rDPO's unbiased estimate under label noise, not
            conservative DPO's mixture, so it is not checked as dpo there (it can be
            negative). β = 0.1, float32, per pair before the batch mean.
            """,
            "",
            f"""
            {_TRL} {_TRL_DPO}, DPOTrainer._compute_loss (loss_type == "robust").
            """,
        ),
    ),
    LibraryKL(
        name="trl.dpo.sigmoid.label_smoothing",
        library="TRL",
        quantity="dpo",
        function=_trl_dpo_loss_sigmoid,
        dtype="float32",
        source=f"{_TRL_BEFORE_REFACTOR} {_TRL_DPO} DPOTrainer.dpo_loss",
        beta=0.1,
        signature=(
            "f(logp_chosen, logp_rejected, ref_logp_chosen, ref_logp_rejected, beta, "
            "label_smoothing)"
        ),
        doc=_doc(
            """
            TRL's DPO loss before the refactor: "sigmoid" with label smoothing (cDPO).

            Conventions: logratios = chosen_logps − rejected_logps, ref_logratios =
            ref_chosen_logps − ref_rejected_logps, logits = logratios −
            ref_logratios (the margin, formed in this order), losses =
            −F.logsigmoid(β·logits)·(1 − ε) − F.logsigmoid(−β·logits)·ε with
            ε = self.label_smoothing: the conservative-DPO mixture, one loss per
            pair (dpo_loss returned losses, chosen_rewards, rejected_rewards).
            β = 0.1 (the default), float32. This is the code of TRL releases up to
            the refactor of DPOTrainer ("Refactor DPO (#3906)", commit e3b7897,
            February 2026), which removed dpo_loss.
            """,
            "",
            f"""
            {_TRL_BEFORE_REFACTOR} {_TRL_DPO}, DPOTrainer.dpo_loss
            (loss_type == "sigmoid").
            """,
        ),
    ),
)


# --- torchtune -----------------------------------------------------------------------------

_TORCHTUNE = "pytorch/torchtune@bd2a0fc7c31430972728494fa01aaeeb0ebf1ba1"
_TORCHTUNE_FILE = "torchtune/modules/loss/kd_losses.py"


def _torchtune_forward_kl_loss(student_logits, teacher_logits, labels, ignore_index=-100):
    """ForwardKLLoss.forward with normalize=True: −Σ teacher_prob·student_logprob, averaged."""
    import torch
    import torch.nn.functional as F

    teacher_prob = F.softmax(teacher_logits, dim=-1, dtype=torch.float32)
    inf_mask = torch.isinf(student_logits)
    student_logprob = F.log_softmax(student_logits, dim=-1, dtype=torch.float32)
    prod_probs = torch.masked_fill(teacher_prob * student_logprob, inf_mask, 0)
    x = torch.sum(prod_probs, dim=-1).view(-1)
    mask = (labels != ignore_index).int()
    if torch.sum(mask.view(-1), dim=0) == 0:
        return torch.tensor(0.0, device=x.device)
    return -torch.sum(x * mask.view(-1), dim=0) / torch.sum(mask.view(-1), dim=0)


def _torchtune_reverse_kl_loss(student_logits, teacher_logits, labels, ignore_index=-100):
    """ReverseKLLoss.forward with normalize=True: Σ s·(log s − log t), masked, averaged."""
    import torch
    import torch.nn.functional as F

    student_prob = F.softmax(student_logits, dim=-1, dtype=torch.float32)
    student_logprob = F.log_softmax(student_logits, dim=-1, dtype=torch.float32)
    teacher_logprob = F.log_softmax(teacher_logits, dim=-1, dtype=torch.float32)
    inf_mask = torch.isinf(student_logits) | torch.isinf(teacher_logits)
    prod_probs = torch.masked_fill(student_prob * teacher_logprob, inf_mask, 0)
    prod_probs -= torch.masked_fill(student_prob * student_logprob, inf_mask, 0)
    x = torch.sum(prod_probs, dim=-1).view(-1)
    mask = (labels != ignore_index).int()
    if torch.sum(mask.view(-1), dim=0) == 0:
        return torch.tensor(0.0, device=x.device)
    return -torch.sum(x * mask.view(-1), dim=0) / torch.sum(mask.view(-1), dim=0)


def _as_rows(logits):
    """(positions, vocabulary) as torchtune takes it: (batch_size*num_tokens, vocab_size)."""
    return logits.reshape(-1, logits.shape[-1])


def _torchtune_forward(logits_p, logits_q):
    """ForwardKLLoss aims at KL(teacher‖student): P is the teacher."""
    import torch

    teacher, student = _as_rows(logits_p), _as_rows(logits_q)
    labels = torch.zeros(student.shape[0], dtype=torch.long, device=student.device)
    return _torchtune_forward_kl_loss(student, teacher, labels)


def _torchtune_reverse(logits_p, logits_q):
    """ReverseKLLoss is KL(student‖teacher): P is the student."""
    import torch

    student, teacher = _as_rows(logits_p), _as_rows(logits_q)
    labels = torch.zeros(student.shape[0], dtype=torch.long, device=student.device)
    return _torchtune_reverse_kl_loss(student, teacher, labels)


_TORCHTUNE_COMMON = """
    forward(student_logits, teacher_logits, labels, normalize=True) takes rows of shape
    (batch_size*num_tokens, vocab_size) and labels of batch_size*num_tokens entries
    (its docstring says (batch_size, vocab_size)); softmax and log_softmax are taken
    with dtype=torch.float32, so the result is float32 whatever the logits' dtype.
    The per-row sums are multiplied by (labels != ignore_index) and, with
    normalize=True (the default), divided by the number of kept rows: the mean over
    positions, a 0-d tensor (0.0 when every label is ignored); normalize=False
    returns the sum. The adapter passes labels 0 everywhere (nothing ignored) and
    returns that mean (reduction "mean"). The KD recipes use
    ForwardKLWithChunkedOutputLoss, which applies ForwardKLLoss chunk by chunk.
"""

_TORCHTUNE_RECORDS = (
    LibraryKL(
        name="torchtune.ForwardKLLoss",
        library="torchtune",
        quantity="token-kl",
        function=_torchtune_forward,
        dtype="float32",
        source=f"{_TORCHTUNE} {_TORCHTUNE_FILE} ForwardKLLoss.forward",
        reduction="mean",
        doc=_doc(
            """
            torchtune's ForwardKLLoss: −Σ teacher_prob·student_logprob, a cross-entropy, not a KL.

            Conventions: per row, x = Σ_i masked_fill(t_i·log s_i, isinf(student
            logit i), 0) with t = softmax(teacher), s = softmax(student), and the loss
            is −x averaged over rows: H(teacher, student) = KL(teacher‖student) +
            H(teacher). The teacher's entropy is never subtracted, so the value is too
            large by H(teacher) (it has the same gradient in the student, which is
            what distillation trains on, but it is not 0 when student = teacher). P is
            the teacher: logits_p is the teacher's, logits_q the student's. The mask
            zeroes the term of a ±inf *student* logit: where the student's logit is
            −inf under teacher mass the true value is inf and the loss stays finite;
            a −inf teacher logit gives a 0 term (t_i = 0, correct).
            """,
            _TORCHTUNE_COMMON,
            f"""
            {_TORCHTUNE} {_TORCHTUNE_FILE}, ForwardKLLoss.forward.
            """,
        ),
    ),
    LibraryKL(
        name="torchtune.ReverseKLLoss",
        library="torchtune",
        quantity="token-kl",
        function=_torchtune_reverse,
        dtype="float32",
        source=f"{_TORCHTUNE} {_TORCHTUNE_FILE} ReverseKLLoss.forward",
        reduction="mean",
        doc=_doc(
            """
            torchtune's ReverseKLLoss: Σ s·(log s − log t) with ±inf logits masked to 0, averaged.

            Conventions: s = softmax(student), log s, log t = log_softmax(student,
            teacher), all float32; inf_mask = isinf(student logit) | isinf(teacher
            logit); the row sum of masked_fill(s·log t, mask, 0) −
            masked_fill(s·log s, mask, 0), negated and averaged over rows: KL(student‖
            teacher), so logits_p is the student's and logits_q the teacher's. The
            mask removes the 0·(−inf) = nan of a −inf student logit (correct), but it
            also removes the term of a −inf *teacher* logit where the student has
            mass, whose true value is inf: the loss stays finite and can be negative
            (student logits (0, 0), teacher (−inf, 0): KL = inf, the loss returns
            ½·log ½ ≈ −0.3466).
            """,
            _TORCHTUNE_COMMON,
            f"""
            {_TORCHTUNE} {_TORCHTUNE_FILE}, ReverseKLLoss.forward.
            """,
        ),
    ),
)


# --- NeMo-RL -------------------------------------------------------------------------------

_NEMO = "NVIDIA-NeMo/RL@7ea279abfbeb698b092856d0dab61e7cf39bc909"
_NEMO_UTILS = "nemo_rl/algorithms/utils.py"
_NEMO_LOSS = "nemo_rl/algorithms/loss/loss_functions.py"


def _nemo_calculate_kl(
    logprobs,
    logprobs_reference,
    kl_type: str = "k3",
    input_clamp_value: float | None = 20.0,
    output_clamp_value: float | None = 10.0,
    importance_sampling_weights=None,
):
    """NeMo-RL's calculate_kl: d clamped, an estimator, weights, the estimate clamped."""
    import torch

    logr = logprobs_reference - logprobs
    if input_clamp_value is not None:
        clamped = logr.clamp(min=-input_clamp_value, max=input_clamp_value)
        if importance_sampling_weights is not None:
            # A token whose log-ratio was clamped passes no gradient through its weight.
            importance_sampling_weights = torch.where(
                logr == clamped, importance_sampling_weights, importance_sampling_weights.detach()
            )
        logr = clamped
    if kl_type == "k1":
        kl = -logr
    elif kl_type == "k2":
        kl = torch.square(logr) / 2
    elif kl_type == "k3":
        kl = torch.exp(logr) - 1 - logr
    else:
        raise ValueError(f"Invalid KL type: {kl_type}")
    if importance_sampling_weights is not None:
        kl = importance_sampling_weights * kl
    if output_clamp_value is not None:
        kl = kl.clamp(min=-output_clamp_value, max=output_clamp_value)
    return kl


def _nemo(kl_type: str) -> Callable[..., Any]:
    def kl(logp, ref_logp):
        return _nemo_calculate_kl(logp, ref_logp, kl_type)

    kl.__name__ = f"nemo_rl_{kl_type}"
    return kl


def _nemo_loss_k3(logp, ref_logp):
    """ClippedPGLossFn's KL term per token (without reference_policy_kl_penalty), on policy."""
    import torch

    weights = torch.exp(logp - logp.detach())
    weights = torch.nan_to_num(weights, nan=0.0, posinf=0.0, neginf=0.0)
    return _nemo_calculate_kl(logp, ref_logp, "k3", 20.0, 10.0, importance_sampling_weights=weights)


_NEMO_COMMON = """
    calculate_kl(logprobs, logprobs_reference, kl_type, input_clamp_value=20.0,
    output_clamp_value=10.0, importance_sampling_weights=None): the policy first, as in
    klspec. logr = ref − logp is clamped to ±input_clamp_value, the estimator is
    computed, then clamped to ±output_clamp_value (both clamps on by default and in
    ClippedPGLossConfig: kl_input_clamp_value 20, kl_output_clamp_value 10;
    reference_policy_kl_type "k3"). No cast. The advantage estimators call it with
    the defaults for the KL in the reward (use_kl_in_reward).
"""

_NEMO_RECORDS = (
    LibraryKL(
        name="nemo_rl.k1",
        library="NeMo-RL",
        quantity="k1",
        function=_nemo("k1"),
        dtype="float32",
        source=f"{_NEMO} {_NEMO_UTILS} calculate_kl",
        log_ratio_range=K1_CLAMP_RANGE,
        doc=_doc(
            """
            NeMo-RL's k1: −clamp(ref − logp, ±20), clamped to ±10.

            Conventions: k1 = −logr after the input clamp, then the output clamp:
            inactive for d in [−10, 10] (the ±10 output clamp binds first); beyond,
            ±10 and no gradient. A −inf logp gives −10.
            """,
            _NEMO_COMMON,
            f"""
            {_NEMO} {_NEMO_UTILS}, calculate_kl.
            """,
        ),
    ),
    LibraryKL(
        name="nemo_rl.k2",
        library="NeMo-RL",
        quantity="k2",
        function=_nemo("k2"),
        dtype="float32",
        source=f"{_NEMO} {_NEMO_UTILS} calculate_kl",
        log_ratio_range=K2_CLAMP_RANGE,
        doc=_doc(
            """
            NeMo-RL's k2: torch.square(clamp(ref − logp, ±20)) / 2, clamped to ±10.

            Conventions: inactive clamps for |d| <= √20 ≈ 4.4721; beyond, 10 and no
            gradient. A −inf logp gives 10.
            """,
            _NEMO_COMMON,
            f"""
            {_NEMO} {_NEMO_UTILS}, calculate_kl.
            """,
        ),
    ),
    LibraryKL(
        name="nemo_rl.k3",
        library="NeMo-RL",
        quantity="k3",
        function=_nemo("k3"),
        dtype="float32",
        source=f"{_NEMO} {_NEMO_UTILS} calculate_kl",
        log_ratio_range=K3_CLAMP_RANGE,
        doc=_doc(
            """
            NeMo-RL's k3: exp(d) − 1 − d with d = clamp(ref − logp, ±20), clamped to ±10.

            Conventions: (e^d − 1) − d after the input clamp, then the output clamp:
            both inactive for d in [−10.99998, 2.61087]; beyond, 10 and no gradient. A
            −inf logp gives 10 (d clamps to 20). Rounding: e^d rounds to 1 for
            0 < d < 2^-24 in float32, so k3 = −d exactly, *negative* (d = 2^-30 gives
            −2^-30, true ≈ 2^-61); in float64, d = 2^-53 gives −2^-53. The training
            loss does not call it this way (see nemo_rl.loss.k3).
            """,
            _NEMO_COMMON,
            f"""
            {_NEMO} {_NEMO_UTILS}, calculate_kl.
            """,
        ),
    ),
    LibraryKL(
        name="nemo_rl.loss.k3",
        library="NeMo-RL",
        quantity="k3",
        function=_nemo_loss_k3,
        dtype="float32",
        source=f"{_NEMO} {_NEMO_LOSS} ClippedPGLossFn.__call__",
        log_ratio_range=K3_CLAMP_RANGE,
        gradient_of="k2",
        doc=_doc(
            """
            NeMo-RL's KL loss term: calculate_kl's k3 weighted by exp(logp − logp.detach()).

            Conventions: ClippedPGLossFn (use_on_policy_kl_approximation False, the
            default) computes w = nan_to_num(exp(curr − curr.detach()), nan/±inf -> 0)
            and calls calculate_kl(curr, ref, "k3", 20, 10, importance_sampling_weights=w),
            which detaches w where the input clamp was active, multiplies w·k3 and
            then clamps to ±10; the loss adds reference_policy_kl_penalty (0.01) times
            its masked mean (the adapter returns the per-token term without the
            coefficient). w is exactly 1, so the value is that of nemo_rl.k3, but the
            gradient gains k3·∇logp: d/dlogp = k3 + 1 − e^d = −d, the gradient of k2
            (expectation ∇KL(π‖π_ref)), where both clamps are inactive, and 0 where
            either is active. At a −inf logp, curr − curr.detach() is nan, w becomes
            0 and the value is 0 (nemo_rl.k3 gives 10). With
            use_on_policy_kl_approximation, w = exp(curr − generation_logprobs)
            instead (not recorded).
            """,
            _NEMO_COMMON,
            f"""
            {_NEMO} {_NEMO_LOSS}, ClippedPGLossFn.__call__ ("Calculate KL
            regularization"), and {_NEMO_UTILS}, calculate_kl.
            """,
        ),
    ),
)


#: Every record, in the order: verl, OpenRLHF, TRL, torchtune, NeMo-RL.
LIBRARIES: tuple[LibraryKL, ...] = (
    *_VERL_RECORDS,
    *_OPENRLHF_RECORDS,
    *_TRL_RECORDS,
    *_TORCHTUNE_RECORDS,
    *_NEMO_RECORDS,
)


def by_name(name: str) -> LibraryKL:
    """The record called ``name`` (KeyError with the known names otherwise)."""
    for record in LIBRARIES:
        if record.name == name:
            return record
    raise KeyError(f"no library KL called {name!r}; known: {[r.name for r in LIBRARIES]}")
