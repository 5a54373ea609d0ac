r"""Built-in adapters: how scipy, torch, jax, optax and keras compute KL, made checkable.

This module (with :mod:`klspec.conformance.signatures`, which translates arguments and
array types) is the only place that knows third-party conventions. Each adapter
is one small function returning an
:class:`~klspec.spec.interface.Implementation` that computes "KL(P‖Q) (or
H(P), H(P, Q)) of float64 probabilities, in nats"; its docstring states the
library's conventions and what the adapter does about them. The principle:
an adapter translates *calling conventions* (argument order, log-space
inputs, array types, which axis is reduced) and never corrects *results*: a
library that clips, loses accuracy or returns NaN shows that in the
conformance matrix.

:func:`resolve` turns a target — a registered name, an adapter name, or
``package.module:function`` with a signature — into an implementation. An
adapter whose library is not installed raises :class:`AdapterUnavailable`
with the reason; ``klspec matrix`` records it as skipped.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from klspec.conformance.conventions import (
    CROSS_ENTROPY_FOR_KL,
    GENERALISED,
    MEAN_OVER_ELEMENTS,
    UNNORMALISED,
    clipped,
)
from klspec.conformance.rlhf_libraries import LIBRARIES
from klspec.conformance.signatures import wrap
from klspec.spec.interface import Implementation


@dataclass(frozen=True)
class Adapter:
    """A built-in adapter: its target name, the libraries it needs, and how to build it."""

    name: str
    libraries: tuple[str, ...]
    build: Callable[[], Implementation]

    @property
    def conventions(self) -> str:
        """The docstring of the adapter: the library's conventions and the adapter's choices."""
        return _dedent(self.build.__doc__ or "")

    @property
    def summary(self) -> str:
        return self.conventions.split("\n\n")[0].replace("\n", " ")

    def missing(self) -> str | None:
        """Why the adapter cannot run here (a library is not installed), or None."""
        for lib in self.libraries:
            if importlib.util.find_spec(lib) is None:
                return f"{lib} is not installed (pip install {lib})"
        return None

    def versions(self) -> dict[str, str]:
        """Installed versions of numpy and the libraries the adapter calls."""
        return library_versions(("numpy", *self.libraries))


def _dedent(text: str) -> str:
    import inspect

    return inspect.cleandoc(text)


def library_versions(libraries: tuple[str, ...]) -> dict[str, str]:
    """``{library: version}`` for those installed (distribution metadata, no import)."""
    found = {}
    for lib in dict.fromkeys(libraries):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[lib] = importlib.metadata.version(lib)
    return found


#: torch.distributions takes logits as log(probs clamped to [eps, 1 − eps]) and keeps the
#: terms of zeros exact (0 where p_i = 0, inf where q_i = 0 < p_i).
TORCH_EPS_CLAMP = clipped(
    float(np.finfo(np.float64).eps),
    1 - float(np.finfo(np.float64).eps),
    "torch.distributions",
    zeros=False,
    normalise=True,
    bounds="[eps, 1 − eps] (eps = 2.2e-16)",
    low_name="eps",
)
#: keras clips both arguments, zeros included, to [epsilon, 1] (epsilon = 1e-7).
KERAS_CLIP = clipped(1e-7, 1.0, "keras")

#: Adapter name -> adapter, in the order ``klspec adapters`` and the matrix list them.
ADAPTERS: dict[str, Adapter] = {}


def _adapter(name: str, *libraries: str) -> Callable[[Callable[[], Implementation]], Adapter]:
    def register(build: Callable[[], Implementation]) -> Adapter:
        ADAPTERS[name] = Adapter(name, libraries, build)
        return ADAPTERS[name]

    return register


def _quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with numpy's floating-point warnings off (log 0, 0/0 are the formula's business)."""

    def quiet(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    quiet.__name__ = fn.__name__
    return quiet


# --- numpy and scipy -------------------------------------------------------------------


@_adapter("numpy.textbook")
def numpy_textbook() -> Implementation:
    """The textbook formulas typed into numpy: sum(p * log(p / q)), -sum(p * log p), ...

    Conventions: f(p, q) with P = p and Q = q, probabilities, no normalisation,
    no guard for p_i = 0: the term 0·log(0/q_i) evaluates to 0·(−inf) = nan (so
    does 0·log 0 in the entropy), and q_i = 0 < p_i gives inf; no clamp at 0;
    each sum reduces the last axis. The adapter adds nothing: this is the code a
    reader of the formula writes first.
    """

    def kl(p, q):
        return np.sum(p * np.log(p / q), axis=-1)

    def entropy(p):
        return -np.sum(p * np.log(p), axis=-1)

    def cross_entropy(p, q):
        return -np.sum(p * np.log(q), axis=-1)

    return Implementation(
        "numpy.textbook",
        kl=_quiet(kl),
        entropy=_quiet(entropy),
        cross_entropy=_quiet(cross_entropy),
        capabilities=frozenset({"batched"}),
        description="sum(p * log(p / q)) in numpy, literally",
        conventions=(UNNORMALISED,),
    )


@_adapter("scipy.rel_entr", "scipy")
def scipy_rel_entr() -> Implementation:
    """scipy.special.rel_entr(p, q), summed over the last axis.

    Conventions: f(x, y) with P = x and Q = y, probabilities, elementwise
    x·log(x/y) for x, y > 0 — evaluated as x·log1p((x − y)/y) when 0.5 < x/y < 2
    and as x·(log x − log y) when x/y overflows or underflows — 0 at x = 0 ≤ y,
    inf at y = 0 < x and for negative arguments, nan for nan; no normalisation
    and no reduction. The adapter sums the terms over the last axis (what users
    write: ``rel_entr(p, q).sum()``), without a clamp at 0.
    """
    import scipy.special

    return Implementation(
        "scipy.rel_entr",
        kl=lambda p, q: scipy.special.rel_entr(p, q).sum(axis=-1),
        capabilities=frozenset({"batched"}),
        description="scipy.special.rel_entr(p, q).sum(axis=-1)",
        conventions=(UNNORMALISED,),
    )


@_adapter("scipy.kl_div", "scipy")
def scipy_kl_div() -> Implementation:
    """scipy.special.kl_div(p, q), summed over the last axis.

    Conventions: f(x, y) with P = x and Q = y, probabilities, elementwise
    x·log(x/y) − x + y evaluated as written (the terms of the generalised KL of
    unnormalised measures: mathematically each ≥ 0, but a term can round to
    about −1e-16 when x ≈ y, and it is inf when x/y overflows, e.g. for a
    subnormal y), y at x = 0 ≤ y, inf at y = 0 < x; no normalisation and no
    reduction. Summed over distributions the extra −x + y terms add Σq − Σp,
    zero up to rounding. The adapter sums over the last axis.
    """
    import scipy.special

    return Implementation(
        "scipy.kl_div",
        kl=lambda p, q: scipy.special.kl_div(p, q).sum(axis=-1),
        capabilities=frozenset({"batched"}),
        description="scipy.special.kl_div(p, q).sum(axis=-1)",
        conventions=(GENERALISED,),
    )


@_adapter("scipy.stats.entropy", "scipy")
def scipy_stats_entropy() -> Implementation:
    """scipy.stats.entropy(pk, qk, base=None, axis=0): H(P) for one argument, KL(P‖Q) for two.

    Conventions: P = pk and Q = qk, each divided by its sum along ``axis`` (so
    unnormalised weights are accepted); terms via scipy.special.rel_entr / entr
    (0 at p_i = 0, inf at q_i = 0 < p_i); ``base`` divides the result by
    ln(base) (base ≤ 0 raises ValueError); the default axis is 0, so a 2-D
    array is read column by column. The adapter passes axis=-1 unless the check
    gives another axis (klspec's convention).
    """
    import scipy.stats

    def kl(p, q, axis=-1, base=None):
        return scipy.stats.entropy(p, q, base=base, axis=axis)

    def entropy(p, axis=-1, base=None):
        return scipy.stats.entropy(p, base=base, axis=axis)

    return Implementation(
        "scipy.stats.entropy",
        kl=kl,
        entropy=entropy,
        capabilities=frozenset({"batched", "base", "axis"}),
        description="scipy.stats.entropy(p, q, axis=-1) and scipy.stats.entropy(p, axis=-1)",
    )


# --- torch -------------------------------------------------------------------------------


def _torch_kl_div(reduction: str, log_target: bool = False, batch_of_one: bool = False):
    import torch.nn.functional as F

    def kl_div(log_q, target):
        if batch_of_one:
            log_q, target = log_q[None], target[None]
        with warnings.catch_warnings():
            # torch warns on every reduction='mean' call that it divides by the element
            # count; the matrix shows that, and the warning would only repeat it.
            warnings.filterwarnings("ignore", "reduction: 'mean' divides", UserWarning)
            return F.kl_div(log_q, target, reduction=reduction, log_target=log_target)

    return kl_div


@_adapter("torch.kl_div.sum", "torch")
def torch_kl_div_sum() -> Implementation:
    """torch.nn.functional.kl_div(input, target, reduction='sum'), input = log Q, target = P.

    Conventions: the arguments are in the *opposite* order to KL(P‖Q): input is
    log Q (log-probabilities), target is P (probabilities; log-probabilities
    only with log_target=True). Elementwise xlogy(target, target) − target·input,
    i.e. target·(log target − input) with 0·log 0 = 0: a term with p_i = 0 < q_i
    is 0, with p_i = q_i = 0 it is 0 − 0·(−inf) = nan, and with q_i = 0 < p_i it
    is inf. No normalisation. reduction='sum' sums every element (so on a batch
    it is the total, not per row). The adapter passes float64 tensors of one
    distribution, called as f(log_q, p).
    """
    return wrap(
        _torch_kl_div("sum"),
        name="torch.kl_div.sum",
        signature="f(log_q, p)",
        array="torch",
        description="F.kl_div(log q, p, reduction='sum')",
        conventions=(UNNORMALISED,),
    )


@_adapter("torch.kl_div.batchmean", "torch")
def torch_kl_div_batchmean() -> Implementation:
    """torch.nn.functional.kl_div(input, target, reduction='batchmean'): the sum divided by size(0).

    Conventions: as torch.kl_div.sum (input = log Q, target = P), but the sum
    over all elements is divided by input.size(0) (a 0-d input is not divided).
    That is KL averaged over a batch only when the input has shape (batch, n);
    on (n,) it divides by n, and on (B, T, V) by B alone (a per-token KL summed
    over T). The adapter passes each distribution as a batch of one, shape
    (1, n), the use torch documents, so the result is KL(P‖Q) itself; the
    reduction is not undone.
    torch.kl_div.mean shows what a reduction over the wrong count does.
    """
    return wrap(
        _torch_kl_div("batchmean", batch_of_one=True),
        name="torch.kl_div.batchmean",
        signature="f(log_q, p)",
        array="torch",
        description="F.kl_div(log q[None], p[None], reduction='batchmean')",
        conventions=(UNNORMALISED,),
    )


@_adapter("torch.kl_div.mean", "torch")
def torch_kl_div_mean() -> Implementation:
    """torch.nn.functional.kl_div(input, target) with its default reduction='mean': sum / numel.

    Conventions: as torch.kl_div.sum (input = log Q, target = P), but the sum
    is divided by the number of *elements*, so on one distribution of n
    outcomes the result is KL(P‖Q)/n. torch's docs warn that 'mean' "doesn't
    return the true KL divergence value" and recommend 'batchmean'; 'mean' is
    still the default, and a common bug. Every call with reduction='mean'
    emits a UserWarning that it "divides the total loss by both the batch size
    and the support size" (the adapter silences it). The adapter exposes the
    result as is (it does not multiply by n back), so the matrix shows this bug
    class: every value clause fails by the factor n.
    """
    return wrap(
        _torch_kl_div("mean"),
        name="torch.kl_div.mean",
        signature="f(log_q, p)",
        array="torch",
        description="F.kl_div(log q, p) (reduction='mean', the default)",
        conventions=(MEAN_OVER_ELEMENTS,),
    )


@_adapter("torch.kl_div.log_target", "torch")
def torch_kl_div_log_target() -> Implementation:
    """torch.nn.functional.kl_div(input, target, reduction='sum', log_target=True): both log.

    Conventions: input = log Q, target = log P; elementwise
    exp(target)·(target − input), so p_i = 0 (target −inf) gives 0·(−inf) = nan
    instead of 0, whatever q_i; q_i = 0 < p_i gives inf. reduction='sum' as in
    torch.kl_div.sum. The adapter calls it as f(log_q, log_p) on float64
    tensors of one distribution.
    """
    return wrap(
        _torch_kl_div("sum", log_target=True),
        name="torch.kl_div.log_target",
        signature="f(log_q, log_p)",
        array="torch",
        description="F.kl_div(log q, log p, reduction='sum', log_target=True)",
        conventions=(UNNORMALISED,),
    )


def _torch_token_kl(dtype_name: str):
    import torch
    import torch.nn.functional as F

    dtype = getattr(torch, dtype_name)

    def token_kl(logits_p, logits_q):
        log_p = F.log_softmax(logits_p.to(dtype), dim=-1)
        log_q = F.log_softmax(logits_q.to(dtype), dim=-1)
        return F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1).double()

    return token_kl


@_adapter("torch.kl_div.logits", "torch")
def torch_kl_div_logits() -> Implementation:
    """Per-token KL from logits as RLHF code writes it in torch, in float64.

    F.kl_div(F.log_softmax(logits_q, -1), F.log_softmax(logits_p, -1),
    reduction='none', log_target=True).sum(-1): KL(softmax(p)‖softmax(q)) per
    position. Conventions: log_softmax subtracts the row's logsumexp; the terms
    exp(log P)·(log P − log Q) are summed over the vocabulary; no clamp, so a
    −inf logit in P (p_i = 0) gives a nan term, as in torch.kl_div.log_target,
    and a −inf logit in Q alone gives inf. The adapter hands it float64 logits
    of shape (positions, vocabulary).
    """
    return wrap(
        _torch_token_kl("float64"),
        name="torch.kl_div.logits",
        quantity="token-kl",
        array="torch",
        description=(
            "F.kl_div(log_softmax(b), log_softmax(a), reduction='none', log_target=True)"
            ".sum(-1), float64"
        ),
    )


@_adapter("torch.kl_div.logits.float32", "torch")
def torch_kl_div_logits_float32() -> Implementation:
    """The same per-token KL from float32 logits (how models usually run it).

    Conventions: as torch.kl_div.logits, on float32 logits: log_softmax, the
    terms and the sum are float32 (the result is converted to float64). The
    checks draw float32 logits and judge the value with float32's unit roundoff
    (--dtype float32): float32 rounding is not a failure, a wrong formula is, and
    so is a negative KL or a NaN.
    """
    return wrap(
        _torch_token_kl("float32"),
        name="torch.kl_div.logits.float32",
        quantity="token-kl",
        array="torch",
        dtype="float32",
        description=(
            "F.kl_div(log_softmax(b), log_softmax(a), reduction='none', log_target=True)"
            ".sum(-1) on float32 logits"
        ),
    )


@_adapter("torch.kl_div.logits.bfloat16", "torch")
def torch_kl_div_logits_bfloat16() -> Implementation:
    """The same per-token KL from bfloat16 logits (mixed-precision training without upcasting).

    Conventions: as torch.kl_div.logits, on bfloat16 logits: log_softmax and
    kl_div run in bfloat16 (torch computes each op in float32 inside and rounds
    its result to bfloat16, 8 significant bits), the sum too. Judged with
    bfloat16's unit roundoff, 2^-8 (--dtype bfloat16).
    """
    return wrap(
        _torch_token_kl("bfloat16"),
        name="torch.kl_div.logits.bfloat16",
        quantity="token-kl",
        array="torch",
        dtype="bfloat16",
        description=(
            "F.kl_div(log_softmax(b), log_softmax(a), reduction='none', log_target=True)"
            ".sum(-1) on bfloat16 logits"
        ),
    )


@_adapter("torch.distributions", "torch")
def torch_distributions() -> Implementation:
    """torch.distributions.kl_divergence(Categorical(probs=p), Categorical(probs=q)); .entropy().

    Conventions: kl_divergence(p, q) is KL(p‖q) of two distribution objects,
    over their batch shape. Categorical(probs=...) divides probs by their sum
    along the last axis, so unnormalised weights are accepted:
    Categorical(probs=[1., 2., 3.]).probs is [1/6, 2/6, 3/6]. Argument
    validation (validate_args, on by default unless Python runs with -O)
    checks the simplex constraint (entries ≥ 0, sum within 1e-6 of 1) on the
    *normalised* probs: non-negative weights with a finite positive sum pass;
    it rejects mixed signs, nan or inf (also an overflowing sum), and a zero
    sum (0/0), while an all-negative row normalises to a valid one and passes.
    Its logits are log(probs) with probs clamped to [eps, 1 − eps] (eps =
    torch.finfo(dtype).eps, 2.2e-16 in float64). The KL terms are
    p_i·(logits_p − logits_q), set to inf where q_i = 0 and then to 0 where
    p_i = 0 (so a term with p_i = q_i = 0 is 0); a 0 < q_i < eps counts as eps,
    so such a term is capped near p_i·log(p_i/eps). entropy() is
    −Σ probs·logits, so a one-hot P has entropy −log(1 − eps) ≈ 2.2e-16, not 0.
    The adapter builds the Categoricals from float64 tensors; it is batched.
    """
    import torch
    from torch.distributions import Categorical, kl_divergence

    def kl(p, q):
        return kl_divergence(Categorical(probs=p), Categorical(probs=q))

    def entropy(p):
        return Categorical(probs=p).entropy()

    def to_torch(fn):
        def call(*arrays):
            return fn(*(torch.tensor(np.array(a)) for a in arrays)).numpy()

        call.__name__ = fn.__name__
        return call

    return Implementation(
        "torch.distributions",
        kl=to_torch(kl),
        entropy=to_torch(entropy),
        capabilities=frozenset({"batched"}),
        description="kl_divergence(Categorical(probs=p), Categorical(probs=q))",
        conventions=(TORCH_EPS_CLAMP,),
    )


# --- jax, optax, keras -----------------------------------------------------------------


@_adapter("jax.rel_entr", "jax")
def jax_rel_entr() -> Implementation:
    """jax.scipy.special.rel_entr(p, q), summed over the last axis.

    Conventions: the cases of scipy.special.rel_entr — f(x, y) with P = x,
    Q = y, probabilities, x·log(x/y) for x, y > 0 (evaluated as
    xlogy(x, x) − xlogy(x, y), i.e. x·log x − x·log y, which rounds differently
    from scipy), 0 at x = 0 ≤ y, inf at y = 0 < x and for negative arguments;
    no normalisation, no reduction. jax computes in float32 unless 64-bit mode
    is on, and on CPU it flushes subnormal numbers to zero in arithmetic and
    comparisons: rel_entr(0.5, 1e-310) is inf and rel_entr(1e-310, 0) is 0.
    The adapter passes float64 arrays with 64-bit mode on during the call, and
    sums the last axis.
    """
    return wrap(
        lambda p, q: _jax().scipy.special.rel_entr(p, q).sum(axis=-1),
        name="jax.rel_entr",
        array="jax",
        batched=True,
        description="jax.scipy.special.rel_entr(p, q).sum(axis=-1), float64",
        conventions=(UNNORMALISED,),
    )


def _jax():
    import jax
    import jax.scipy.special

    return jax


@_adapter("optax.kl_divergence", "optax")
def optax_kl_divergence() -> Implementation:
    """optax.losses.kl_divergence(log_predictions, targets, axis=-1): P = targets, log Q first.

    Conventions: the arguments are log Q (log_predictions) and P (targets,
    probabilities), in that order; terms targets·(log targets − log_predictions)
    with log targets replaced by 0 where targets = 0, so p_i = 0 gives
    0·(0 − log q_i): 0 when q_i > 0, nan when q_i = 0 too (0·inf); q_i = 0 <
    p_i gives inf. (optax's docs ask for strictly positive targets.) Sums over
    ``axis`` (default −1); no normalisation. On CPU jax flushes subnormals to
    zero, so a subnormal p_i with q_i = 0 gives nan as well. The adapter calls
    it as f(log_q, p) on float64 jax arrays.
    """
    import optax

    return wrap(
        optax.losses.kl_divergence,
        name="optax.kl_divergence",
        signature="f(log_q, p)",
        array="jax",
        batched=True,
        description="optax.losses.kl_divergence(log q, p), float64",
        conventions=(UNNORMALISED,),
    )


@_adapter("optax.kl_divergence_with_log_targets", "optax")
def optax_kl_divergence_with_log_targets() -> Implementation:
    """optax.losses.kl_divergence_with_log_targets(log_predictions, log_targets): both log.

    Conventions: log Q then log P; terms exp(log_targets)·(log_targets −
    log_predictions), so p_i = 0 gives 0·(−inf) = nan, whatever q_i; q_i = 0 <
    p_i gives inf. Sums over ``axis`` (default −1); no normalisation. The
    adapter calls it as f(log_q, log_p) on float64 jax arrays.
    """
    import optax

    return wrap(
        optax.losses.kl_divergence_with_log_targets,
        name="optax.kl_divergence_with_log_targets",
        signature="f(log_q, log_p)",
        array="jax",
        batched=True,
        description="optax.losses.kl_divergence_with_log_targets(log q, log p), float64",
        conventions=(UNNORMALISED,),
    )


@_adapter("optax.kl_divergence_with_log_targets.logits", "optax")
def optax_token_kl_from_logits() -> Implementation:
    """Per-token KL from logits with optax: kl_divergence_with_log_targets of log_softmaxes.

    optax.losses.kl_divergence_with_log_targets(jax.nn.log_softmax(logits_q),
    jax.nn.log_softmax(logits_p)), summed over the last axis: KL(softmax(p)‖
    softmax(q)) per position. Conventions: log_softmax over the last axis, the
    terms exp(log P)·(log P − log Q) summed, no clamp, so a −inf logit in P
    (p_i = 0) gives nan. The adapter hands it float64 jax arrays of shape
    (positions, vocabulary).
    """
    import jax
    import optax

    def token_kl(logits_p, logits_q):
        return optax.losses.kl_divergence_with_log_targets(
            jax.nn.log_softmax(logits_q, axis=-1), jax.nn.log_softmax(logits_p, axis=-1)
        )

    return wrap(
        token_kl,
        name="optax.kl_divergence_with_log_targets.logits",
        quantity="token-kl",
        array="jax",
        description="optax kl_divergence_with_log_targets(log_softmax(b), log_softmax(a)), float64",
    )


@_adapter("keras.kl_divergence", "keras", "jax")
def keras_kl_divergence() -> Implementation:
    """keras.losses.kl_divergence(y_true, y_pred) (keras 3, jax backend): P = y_true, Q = y_pred.

    Conventions: probabilities, both **clipped to [epsilon, 1]** (epsilon =
    keras.config.epsilon(), 1e-7 by default) before y_true·log(y_true/y_pred)
    is summed over the last axis, so a zero in q gives p_i·log(p_i/1e-7) ≤
    16.12·p_i instead of inf, a zero in p contributes 1e-7·log(1e-7/q_i)
    instead of 0, and an entry above 1 counts as 1; no normalisation. (The
    KLDivergence loss class then divides the sum of these per-row values by
    their number, reduction 'sum_over_batch_size', e.g. by B·T on (B, T, V)
    inputs, and computes in keras.config.floatx(), float32 by default, unless
    given a dtype.) The function computes in y_pred's dtype (y_true is cast to it); on
    the jax backend float64 needs jax's 64-bit mode, which the adapter switches
    on during the call, so that the matrix shows keras's clipping rather than
    float32 rounding. KERAS_BACKEND is set to jax if unset before keras is
    first imported.
    """
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras

    return wrap(
        keras.losses.kl_divergence,
        name="keras.kl_divergence",
        signature="f(p, q)",
        array="jax",
        batched=True,
        description=f"keras.losses.kl_divergence(p, q), backend {keras.backend.backend()}",
        conventions=(KERAS_CLIP,),
    )


# --- RLHF and distillation libraries ----------------------------------------------------


#: The documented conventions of the libraries' KL code, by record.
_LIBRARY_CONVENTIONS: dict[str, tuple[Any, ...]] = {
    # "ForwardKLLoss" leaves out the teacher's entropy: a cross-entropy, by design.
    "torchtune.ForwardKLLoss": (CROSS_ENTROPY_FOR_KL,),
}


def _library_adapter(record: Any) -> None:
    """Register a :class:`~klspec.conformance.rlhf_libraries.LibraryKL` as an adapter."""

    def build() -> Implementation:
        return wrap(
            record.function,
            name=record.name,
            quantity=record.quantity,
            array="torch",
            dtype=record.dtype,
            reduction=record.reduction or "none",
            gradient_of=record.gradient_of,
            log_ratio_range=record.log_ratio_range,
            beta=record.beta,
            signature=record.signature,
            description=f"{record.library}: {record.summary} ({record.dtype})",
            conventions=_LIBRARY_CONVENTIONS.get(record.name, ()),
        )

    build.__doc__ = record.doc
    build.__name__ = record.name
    ADAPTERS[record.name] = Adapter(record.name, ("torch",), build)


for _record in LIBRARIES:
    _library_adapter(_record)
