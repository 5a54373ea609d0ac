r"""How a function under test is called: a signature in a small vocabulary, and array types.

Properties call ``kl(p, q)``, ``entropy(p)`` or ``cross_entropy(p, q)`` on float64
numpy arrays of probabilities and read the result in nats
(:mod:`klspec.spec.interface`). A third-party function is called
differently: torch's ``kl_div`` takes ``(log Q, P)``, optax's takes log
probabilities, a model's loss takes logits, and the arrays may have to be torch
tensors or jax arrays. :func:`wrap` turns such a function into an
:class:`~klspec.spec.interface.Implementation`, given

* a **signature** naming what each argument is, in the vocabulary
  :data:`VOCABULARY`: ``"f(p, q)"`` (the default for kl and cross-entropy),
  ``"f(log_q, p)"`` (torch's order), ``"f(log_q, log_p)"``, ``"f(p)"`` (the
  default for entropy); keyword arguments are written ``name=value``, e.g.
  ``"f(y_true=p, y_pred=q)"``. The function's name in the text is ignored.
* an **array type** (:data:`ARRAYS`): ``numpy`` (float64 arrays), ``torch``
  (float64 CPU tensors) or ``jax`` (float64 arrays, computed with jax's 64-bit
  mode switched on around the call).

What each argument receives, from the float64 probabilities ``p``, ``q``:

``p``, ``q``
    the probabilities themselves;
``log_p``, ``log_q``
    ``log p`` elementwise (``-inf`` where p_i = 0), computed in float64;
``logits_p``, ``logits_q``
    also ``log p``: unnormalised log-probabilities that a softmax maps back to
    P = p/Σp. No constant is added, because any shift rounds, and the rounding
    of a shifted ``log p_i`` moves P_i by up to 700 ulps for tiny p_i, more than
    the value tolerances allow.

Every call gets fresh, writable copies of its arguments. If the function
writes into one of them (a real bug class), the change is copied back into
the caller's array when that array is writable (through ``exp`` for log-space
arguments), so that ``inputs.unmodified`` sees it; the read-only arrays the
other checks pass are never touched. The result is converted back to a float
(or a numpy array for batched calls): tensors are detached and moved to numpy,
jax arrays converted with ``numpy.asarray``; anything else is returned as is and
judged by the checks (a string, ``None`` or a wrong shape fails them cleanly).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.util
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from klspec.spec.interface import QUANTITIES, SCALAR_ARGUMENTS, Implementation

#: The names a signature may use, and what each argument receives.
VOCABULARY: dict[str, str] = {
    "p": "the probabilities p (float64)",
    "q": "the probabilities q (float64)",
    "log_p": "log p elementwise (-inf where p_i = 0)",
    "log_q": "log q elementwise (-inf where q_i = 0)",
    "logits_p": "logits of P: log p (softmax maps them back to p/Σp)",
    "logits_q": "logits of Q: log q (softmax maps them back to q/Σq)",
}

#: Array types a function may receive: name -> (importable module, description).
ARRAYS: dict[str, tuple[str, str]] = {
    "numpy": ("numpy", "numpy arrays"),
    "torch": ("torch", "torch tensors"),
    "jax": ("jax", "jax arrays (64-bit mode on during float64 calls)"),
}

#: How a target's results are reduced over positions (``--reduction``): ``none``, one
#: value per position (or per sample); ``sum`` or ``mean``, one number for the whole
#: batch, so each position (sample) is passed alone, as a batch of one.
REDUCTIONS: tuple[str, ...] = ("none", "sum", "mean")

#: The estimators a straight-through target may take its gradient from (``--gradient-of``).
ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3")


class SignatureError(ValueError):
    """A signature, quantity or array type that cannot be used; the message says why."""


@dataclass(frozen=True)
class Signature:
    """A parsed signature: which distribution form goes to each argument."""

    text: str
    positional: tuple[str, ...]
    keywords: tuple[tuple[str, str], ...] = ()
    #: Whether the arguments are handed over as drawn (a ``direct`` function), not made from p, q.
    direct: bool = False

    @property
    def forms(self) -> tuple[str, ...]:
        """Every vocabulary name used, positional first."""
        return (*self.positional, *(v for _, v in self.keywords))

    def arguments(self, named: dict[str, np.ndarray]) -> tuple[list, dict]:
        """The positional and keyword arguments, as fresh float64 numpy arrays.

        ``named`` holds the quantity's own arguments (``p`` and ``q``, or those of a
        ``direct`` function, e.g. ``logp`` and ``ref_logp``).
        """
        made = {form: self.make(form, named) for form in self.forms}
        return [made[f] for f in self.positional], {k: made[v] for k, v in self.keywords}

    def make(self, form: str, named: dict[str, np.ndarray]) -> np.ndarray | float:
        """The array an argument of this form receives (a fresh float64 copy).

        One number for the whole call (dpo's ``beta``, ``label_smoothing``) is a Python float.
        """
        if self.direct and form in SCALAR_ARGUMENTS:
            return float(np.asarray(named[form], dtype=np.float64).reshape(-1)[0])
        if self.direct:
            return np.array(named[form], dtype=np.float64)
        return _form(form, named["p"], named.get("q"))

    def source(self, form: str) -> str:
        """Which of the quantity's arguments a form is made from."""
        return form if self.direct else ("p" if form.endswith("p") else "q")

    def inverse(self, form: str, x: np.ndarray) -> np.ndarray:
        """What the quantity's argument would be, given this form's array."""
        return x if self.direct else _inverse(form, x)


def parse_signature(text: str, quantity: str = "kl") -> Signature:
    """Parse ``"f(log_q, p)"`` for ``quantity``; :class:`SignatureError` says what is wrong."""
    if quantity not in QUANTITIES:
        raise SignatureError(f"unknown quantity {quantity!r}; use one of {', '.join(QUANTITIES)}")
    fn = QUANTITIES[quantity]
    vocabulary = (*fn.arguments, *fn.optional) if fn.direct else tuple(VOCABULARY)
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        call = None
    if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
        raise SignatureError(
            f"signature {text!r} must read like a call, e.g. 'f(p, q)' or 'f(log_q, p)'"
        )
    positional, keywords = [], []
    for node in call.args:
        positional.append(_vocabulary_name(node, text, vocabulary))
    for kw in call.keywords:
        if kw.arg is None:
            raise SignatureError(f"signature {text!r}: ** arguments are not supported")
        keywords.append((kw.arg, _vocabulary_name(kw.value, text, vocabulary)))
    sig = Signature(text.strip(), tuple(positional), tuple(keywords), fn.direct)
    forms = sig.forms
    if len(set(forms)) != len(forms):
        raise SignatureError(f"signature {text!r} names an argument twice")
    if sig.direct:
        if set(forms) - set(fn.optional) != set(fn.arguments):
            also = f" (and may take {', '.join(fn.optional)})" if fn.optional else ""
            raise SignatureError(
                f"signature {text!r} for {quantity} must take {' and '.join(fn.arguments)}{also}"
            )
        return sig
    of_p = [f for f in forms if f.endswith("p")]
    of_q = [f for f in forms if f.endswith("q")]
    wants_q = quantity != "entropy"
    if len(of_p) != 1 or len(of_q) != int(wants_q):
        need = "one of p, log_p, logits_p" + (" and one of q, log_q, logits_q" if wants_q else "")
        raise SignatureError(f"signature {text!r} for {quantity} must take {need}")
    return sig


def _vocabulary_name(node: ast.expr, text: str, vocabulary: tuple[str, ...]) -> str:
    if isinstance(node, ast.Name) and node.id in vocabulary:
        return node.id
    shown = ast.unparse(node)
    raise SignatureError(
        f"signature {text!r}: unknown argument {shown!r}; use {', '.join(vocabulary)}"
    )


def _form(form: str, p: np.ndarray, q: np.ndarray | None) -> np.ndarray:
    x = np.array(p if form.endswith("p") else q, dtype=np.float64)
    if form.startswith(("log_", "logits_")):
        with np.errstate(divide="ignore"):
            x = np.log(x)
    return x


def _inverse(form: str, x: np.ndarray) -> np.ndarray:
    """The probabilities an argument of this form stands for (exp of log-space forms)."""
    with np.errstate(all="ignore"):
        return np.exp(x) if form.startswith(("log_", "logits_")) else x


# --- array types ------------------------------------------------------------------


def missing_library(array: str) -> str | None:
    """Why ``array`` cannot be used here (its library is not installed), or None."""
    if array not in ARRAYS:
        raise SignatureError(f"unknown array type {array!r}; use one of {', '.join(ARRAYS)}")
    module = ARRAYS[array][0]
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed (pip install {module})"
    return None


def missing_dtype(array: str, dtype: str) -> str | None:
    """Why ``array`` cannot hold ``dtype`` here (bfloat16 numpy needs ml_dtypes), or None."""
    from klspec.spec.precision import precision

    precision(dtype)  # ValueError for an unknown name
    if dtype == "bfloat16" and array == "numpy" and importlib.util.find_spec("ml_dtypes") is None:
        return (
            "numpy has no bfloat16: use --array torch or --array jax, or install the "
            "ml_dtypes package (pip install ml_dtypes)"
        )
    return None


def _numpy_dtype(dtype: str) -> Any:
    if dtype == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return np.dtype(dtype)


def _to_array(array: str, x: np.ndarray, dtype: str = "float64", device: str | None = None) -> Any:
    """``x`` (float64, representable in ``dtype``) as an ``array`` of ``dtype`` on ``device``."""
    if array == "torch":
        import torch

        t = torch.from_numpy(x)  # x is a fresh writable copy: writes show in it
        if dtype != "float64" or device is not None:
            t = t.to(dtype=getattr(torch, dtype), device=device)
        return t
    if array == "jax":
        import jax
        import jax.numpy as jnp

        a = jnp.asarray(x, dtype=getattr(jnp, dtype))
        if device is not None:
            platform, _, index = device.partition(":")
            a = jax.device_put(a, jax.devices(platform)[int(index or 0)])
        return a
    return x if dtype == "float64" else x.astype(_numpy_dtype(dtype))


def _as_numpy(x: Any) -> np.ndarray | None:
    """An argument's contents after the call as float64, to detect writes (None if immutable)."""
    if isinstance(x, np.ndarray):
        return x if x.dtype == np.float64 else x.astype(np.float64)
    if type(x).__module__.startswith("torch"):
        import torch

        return x.detach().to("cpu", torch.float64).numpy()
    return None


def from_result(value: Any) -> Any:
    """A library's result as numpy: tensors detached and moved to the CPU, jax arrays converted.

    Anything else is returned unchanged, for the checks to judge.
    """
    module = type(value).__module__
    if module.startswith("torch"):
        try:
            value = value.detach().cpu()
            if value.is_floating_point() and value.dtype.itemsize < 4:
                value = value.float()  # numpy has no bfloat16; float32 holds it exactly
            return value.numpy()
        except AttributeError:
            return value
    if module.startswith(("jax", "jaxlib")):
        out = np.asarray(value)
        return out.astype(np.float32) if out.dtype.kind == "V" else out  # ml_dtypes bfloat16
    if isinstance(value, np.ndarray) and value.dtype.kind == "V":
        return value.astype(np.float32)
    return value


@contextlib.contextmanager
def float64_mode(array: str, dtype: str = "float64") -> Iterator[None]:
    """jax's 64-bit mode around a float64 call (without it jax silently computes in float32)."""
    if array != "jax" or dtype != "float64":
        yield
        return
    import jax

    enable = getattr(jax, "enable_x64", None)
    if enable is None:  # older jax: the experimental context manager
        from jax.experimental import enable_x64 as enable
    with enable(True):
        yield


# --- wrapping a function -------------------------------------------------------------


@dataclass(frozen=True)
class Calling:
    """How a target is called beyond its signature: format, device, reduction over positions."""

    array: str = "numpy"
    dtype: str = "float64"
    device: str | None = None
    reduction: str = "none"


def _handed(
    signature: Signature, calling: Calling, named: dict[str, np.ndarray]
) -> tuple[list, dict, list[np.ndarray]]:
    """The arguments in the target's array type and format, and float64 snapshots of them."""
    args, kwargs = signature.arguments(named)
    # Checks hand over values the format represents (they judge against the exact value of
    # those); other callers' values are rounded by the conversion, as the library would.
    handed = [_hand(calling, a) for a in args]
    handed_kw = {k: _hand(calling, a) for k, a in kwargs.items()}
    snapshots = [
        np.array(_as_numpy(h) if _as_numpy(h) is not None else a)
        for h, a in zip([*handed, *handed_kw.values()], [*args, *kwargs.values()], strict=True)
    ]
    return handed, handed_kw, snapshots


def _hand(calling: Calling, a: np.ndarray | float) -> Any:
    """An argument in the target's array type and format; one number stays a Python float."""
    if isinstance(a, float):
        return a
    return _to_array(calling.array, a, calling.dtype, calling.device)


def call_with(
    fn: Callable[..., Any],
    signature: Signature,
    array: str | Calling,
    named: dict[str, np.ndarray],
) -> Any:
    """Call ``fn`` as ``signature`` says, on ``array``-typed copies of the ``named`` arguments.

    ``named`` holds the quantity's arguments (p and q, say); ``array`` is an array
    type or a :class:`Calling` (format, device, reduction). Writes into the
    copies are copied back into the writable ones among them (see the module
    docs); the result is converted by :func:`from_result`. With a reduction
    other than ``none`` each position is passed alone (see :data:`REDUCTIONS`).
    """
    calling = array if isinstance(array, Calling) else Calling(array)
    if calling.reduction != "none":
        return _per_position(
            lambda part: call_with(fn, signature, _unreduced(calling), part), named, signature
        )
    with float64_mode(calling.array, calling.dtype):
        handed, handed_kw, snapshots = _handed(signature, calling, named)
        result = from_result(fn(*handed, **handed_kw))
    forms = signature.forms
    for form, before, after in zip(forms, snapshots, [*handed, *handed_kw.values()], strict=True):
        after = _as_numpy(after)
        if after is None or after.shape != before.shape:
            continue
        source = named[signature.source(form)]
        changed = before.view(np.uint64) != np.ascontiguousarray(after).view(np.uint64)
        if changed.any() and isinstance(source, np.ndarray) and source.flags.writeable:
            source[changed] = signature.inverse(form, after)[changed]
    return result


def _unreduced(calling: Calling) -> Calling:
    return Calling(calling.array, calling.dtype, calling.device, "none")


def _per_position(
    call: Callable[[dict[str, np.ndarray]], Any], named: dict[str, np.ndarray], signature: Signature
) -> Any:
    """Call once per position, each as a batch of one, and stack the single results.

    Elementwise functions (k1, k2, k3: every argument has the result's shape) are
    split into single samples; the others (token_kl, kl) into single rows of the
    last axis.
    """
    arrays = {k: np.asarray(v) for k, v in named.items()}
    scalars = {k: arrays.pop(k) for k in SCALAR_ARGUMENTS if k in arrays and signature.direct}
    first = next(iter(arrays.values()))
    elementwise = signature.direct and first.ndim <= 1 and "logits_p" not in arrays
    lead = first.shape if elementwise else first.shape[:-1]
    out = np.empty(lead)
    for index in np.ndindex(*lead):
        part = {
            k: (v[index].reshape(1) if elementwise else v[index][None, :])
            for k, v in arrays.items()
        }
        part.update(scalars)
        value = np.asarray(call(part), dtype=np.float64)
        if value.size != 1:
            raise ValueError(
                f"returned shape {value.shape} for a batch of one; a --reduction target "
                "returns one number"
            )
        out[index] = value.reshape(())
    return out if lead else float(out)


def derivative_with(
    fn: Callable[..., Any],
    signature: Signature,
    calling: Calling,
    named: dict[str, np.ndarray],
    wrt: str,
) -> np.ndarray:
    """∂(Σ fn)/∂``wrt`` by the target's own autograd (torch or jax), as float64 numpy.

    For an elementwise function that is each output's derivative with respect to
    its own input. The function runs in its format and on its device, as in
    :func:`call_with`; a result autograd cannot differentiate raises ``TypeError``.
    """
    if calling.reduction != "none":
        return _per_position(
            lambda part: derivative_with(fn, signature, _unreduced(calling), part, wrt),
            named,
            signature,
        )
    position = [*signature.positional, *(v for _, v in signature.keywords)].index(wrt)
    with float64_mode(calling.array, calling.dtype):
        handed, handed_kw, _ = _handed(signature, calling, named)
        keys = list(handed_kw)
        if calling.array == "torch":
            import torch

            leaves = [*handed, *handed_kw.values()]
            leaves[position] = leaves[position].detach().requires_grad_(True)
            out = fn(*leaves[: len(handed)], **dict(zip(keys, leaves[len(handed) :], strict=True)))
            if not isinstance(out, torch.Tensor):
                raise TypeError(
                    f"returned {type(out).__name__}, which torch autograd cannot differentiate"
                )
            if not out.requires_grad:
                return np.zeros(np.shape(named[wrt]))  # its value does not depend on wrt
            (grad,) = torch.autograd.grad(out.sum(), leaves[position], allow_unused=True)
            if grad is None:
                return np.zeros(np.shape(named[wrt]))
            return grad.detach().to("cpu", torch.float64).numpy()
        if calling.array == "jax":
            import jax
            import jax.numpy as jnp

            leaves = [*handed, *handed_kw.values()]

            def total(x: Any) -> Any:
                args = list(leaves)
                args[position] = x
                out = fn(*args[: len(handed)], **dict(zip(keys, args[len(handed) :], strict=True)))
                return jnp.sum(out)

            return np.asarray(jax.grad(total)(leaves[position]), dtype=np.float64)
    raise TypeError(f"{calling.array} arrays have no autograd")


def wrap(
    fn: Callable[..., Any],
    *,
    name: str,
    quantity: str = "kl",
    signature: str | None = None,
    batched: bool = False,
    array: str = "numpy",
    description: str = "",
    options: tuple[tuple[str, Any], ...] = (),
    conventions: tuple[Any, ...] = (),
    dtype: str = "float64",
    device: str | None = None,
    reduction: str = "none",
    gradient_of: str | None = None,
    log_ratio_range: tuple[float, float] | None = None,
    beta: float | None = None,
) -> Implementation:
    """An :class:`Implementation` of ``quantity`` that calls ``fn`` as ``signature`` says.

    ``batched`` declares that ``fn`` takes arrays of shape (..., n) and reduces
    the last axis (else only 1-D inputs are passed). ``options`` are recorded
    for reproduction lines (how :func:`klspec.conformance.replay` rebuilds it).
    ``dtype`` (float64, float32, float16, bfloat16) and ``device`` (torch and jax:
    ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ...) say what the arguments are
    made of; ``reduction`` (:data:`REDUCTIONS`) that ``fn`` returns a sum or mean
    over positions; for k1/k2/k3, ``gradient_of`` declares a straight-through
    estimator (the value of ``quantity``, the gradient of another) and
    ``log_ratio_range`` the (lo, hi) of log r where it is exact (it clamps
    outside). Torch and jax targets of k1/k2/k3 are differentiated with their own
    autograd. For dpo, ``beta`` (default 0.1) is the β it is called with and checked
    at, and a signature naming ``label_smoothing`` declares that capability; torch and
    jax dpo targets are differentiated in ``logp_chosen`` by their autograd.
    """
    if quantity not in QUANTITIES:
        raise SignatureError(f"unknown quantity {quantity!r}; use one of {', '.join(QUANTITIES)}")
    sig = parse_signature(signature or QUANTITIES[quantity].signature, quantity)
    if array not in ARRAYS:
        raise SignatureError(f"unknown array type {array!r}; use one of {', '.join(ARRAYS)}")
    try:
        reason = missing_dtype(array, dtype)
    except ValueError as exc:
        raise SignatureError(str(exc)) from None
    if reason:
        raise SignatureError(f"--dtype {dtype} with --array {array}: {reason}")
    if device is not None and array == "numpy":
        raise SignatureError(
            "--device applies to torch and jax arrays; numpy arrays live on the CPU"
        )
    if reduction not in REDUCTIONS:
        raise SignatureError(f"unknown reduction {reduction!r}; use one of {', '.join(REDUCTIONS)}")
    field = QUANTITIES[quantity].name
    estimator = field in ESTIMATORS
    if gradient_of is not None:
        if not estimator or gradient_of not in ESTIMATORS:
            raise SignatureError(
                f"--gradient-of {gradient_of}: a straight-through target computes one of "
                f"{', '.join(ESTIMATORS)} (--quantity) and takes the gradient of another"
            )
        if array == "numpy":
            raise SignatureError(
                "--gradient-of needs autograd: give a torch or jax target (--array torch|jax); "
                "a numpy function has no gradient other than its value's"
            )
    if log_ratio_range is not None:
        lo, hi = (float(x) for x in log_ratio_range)
        if not estimator:
            raise SignatureError("--log-ratio-range applies to k1, k2 and k3 targets")
        if not lo < hi:
            raise SignatureError(f"--log-ratio-range {lo:g}:{hi:g} must have LO < HI")
        log_ratio_range = (lo, hi)
    names = QUANTITIES[quantity].arguments
    calling = Calling(array, dtype, device, reduction)
    is_dpo = field == "dpo"
    if beta is not None and not is_dpo:
        raise SignatureError("--beta applies to dpo targets (--quantity dpo)")
    if is_dpo:
        beta = 0.1 if beta is None else float(beta)
        if not (math.isfinite(beta) and beta > 0):
            raise SignatureError(f"--beta {beta!r} must be a finite number > 0")
    smoothing = "label_smoothing" in sig.forms

    def named_arguments(arrays: tuple, options: dict) -> dict[str, Any]:
        named = dict(zip(names, arrays, strict=False))  # dpo's beta may come as a keyword
        named.update({k: v for k, v in options.items() if k in names or k in SCALAR_ARGUMENTS})
        if smoothing:
            named.setdefault("label_smoothing", 0.0)
        return named

    def call(*arrays, **options):
        return call_with(fn, sig, calling, named_arguments(arrays, options))

    call.__name__ = getattr(fn, "__name__", "function")
    where = f" on {device}" if device else ""
    call.__doc__ = f"{name} called as {sig.text} on {dtype} {ARRAYS[array][1]}{where}"
    derivatives = {}
    if estimator and array != "numpy":

        def derivative(*arrays):
            return derivative_with(fn, sig, calling, dict(zip(names, arrays, strict=True)), "logp")

        derivatives[field] = derivative
    if is_dpo and array != "numpy":

        def dpo_derivative(*arrays, **options):
            named = named_arguments(arrays, options)
            return derivative_with(fn, sig, calling, named, "logp_chosen")

        derivatives[field] = dpo_derivative
    capabilities = {"batched"} if batched else set()
    if smoothing:
        capabilities.add("label_smoothing")
    return Implementation(
        name=name,
        capabilities=frozenset(capabilities),
        description=description or call.__doc__,
        options=options,
        conventions=conventions,
        dtype=dtype,
        derivatives=derivatives,
        gradient_of={field: gradient_of} if gradient_of else {},
        log_ratio_range=log_ratio_range,
        beta=beta,
        **{field: call},
    )


# --- module:function targets --------------------------------------------------------


def import_function(target: str) -> Callable[..., Any]:
    """The function ``package.module:function`` (dotted attributes allowed after the colon).

    The current directory is searched too, so ``mymod:kl`` finds ./mymod.py.
    Raises :class:`ImportError` naming the target and what went wrong.
    """
    import os
    import sys

    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ImportError(f"target {target!r} must read package.module:function")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except SystemExit as exc:  # a module that exits when imported is not a target
        raise ImportError(
            f"cannot import {module_name!r} for target {target!r}: it called "
            f"sys.exit({exc.code!r}) while being imported"
        ) from None
    except Exception as exc:
        raise ImportError(f"cannot import {module_name!r} for target {target!r}: {exc}") from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not callable(obj):
        raise ImportError(f"{target!r} is {type(obj).__name__}, not a function")
    return obj
