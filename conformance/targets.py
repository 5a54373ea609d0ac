"""Targets: what ``klspec check TARGET`` can check, turned into an :class:`Implementation`.

A target is a name registered here (``"reference"``, and whatever a test suite
registers with :func:`register`), a built-in adapter
(:data:`klspec.conformance.adapters.ADAPTERS`), a ``"package.module:function"``
string, or a function object. :func:`resolve` turns any of them into an
:class:`~klspec.spec.interface.Implementation`; a function is wrapped as its
signature says (:mod:`klspec.conformance.signatures`).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import Any

from klspec.conformance.adapters import ADAPTERS, library_versions
from klspec.conformance.signatures import (
    SignatureError,
    import_function,
    missing_library,
    wrap,
)
from klspec.spec.interface import CAPABILITIES, FUNCTIONS, QUANTITIES, Implementation

#: The keyword options of a module:function target (``klspec check --signature ...``).
OPTIONS = (
    "quantity",
    "signature",
    "batched",
    "array",
    "dtype",
    "device",
    "reduction",
    "gradient_of",
    "log_ratio_range",
    "beta",
)


class TargetError(LookupError):
    """A target that cannot be checked: unknown, not importable, or its library is missing."""


class AdapterUnavailable(TargetError):
    """A built-in adapter whose library is not installed; ``reason`` says which."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.reason = reason


def reference_implementation() -> Implementation:
    """:mod:`klspec.reference`, with every function of the spec and every capability."""
    from klspec import reference

    functions = {}
    for f in FUNCTIONS:
        name, _, option = f.reference.partition(":")
        fn = getattr(reference, name)
        if option:
            key, _, value = option.partition("=")
            fn = functools.partial(fn, **{key: value})
        functions[f.name] = fn
    return Implementation(
        "reference",
        capabilities=CAPABILITIES,
        description="klspec.reference: exact in every numerical regime",
        **functions,
    )


#: Target name -> zero-argument factory, for implementations defined in Python.
_TARGETS: dict[str, Callable[[], Implementation]] = {"reference": reference_implementation}


def register(name: str, factory: Callable[[], Implementation]) -> None:
    """Make ``name`` a target (for reproduction lines of implementations built in Python)."""
    _TARGETS[name] = factory


def resolve(target: str | Callable[..., Any], **options: Any) -> Implementation:
    """The implementation ``target`` stands for.

    ``target`` is a registered name (``"reference"``), a built-in adapter
    (:data:`~klspec.conformance.adapters.ADAPTERS`), a
    ``"package.module:function"`` string (importable from the current directory
    too), or a function. Functions and module:function targets take the
    options ``quantity`` (a key of :data:`~klspec.spec.interface.QUANTITIES`:
    "kl", "entropy", "cross-entropy", "token-kl", "k1", "k2", "k3", "dpo"),
    ``signature``, ``batched``, ``array`` ("numpy", "torch" or "jax"), ``dtype``
    ("float64", "float32", "float16", "bfloat16"), ``device`` (torch and jax),
    ``reduction`` ("none", "sum", "mean"), ``gradient_of`` and ``log_ratio_range``
    (k1/k2/k3), ``beta`` (dpo: the β it is called with, default 0.1); see
    :func:`klspec.conformance.signatures.wrap`.

    Raises :class:`TargetError` (or :class:`AdapterUnavailable`) for a target
    that cannot be checked, :class:`~klspec.conformance.signatures.SignatureError`
    for bad options.
    """
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise TypeError(f"unknown options {sorted(unknown)}; known: {', '.join(OPTIONS)}")
    # β = 0 is a value (an error for dpo), not an option left out.
    given = {
        k: v
        for k, v in options.items()
        if v not in (None, False) or (k == "beta" and v is not None)
    }
    builtin = isinstance(target, str) and (target in _TARGETS or target in ADAPTERS)
    if builtin and given:
        raise SignatureError(
            f"{', '.join(sorted(given))} apply to module:function targets; {target} has "
            "its own conventions (see `klspec adapters`)"
        )
    # Defaults are dropped so that reproduction lines show only what differs from them.
    quantity = given.get("quantity", "kl")
    for key, default in (
        ("quantity", "kl"),
        ("array", "numpy"),
        ("dtype", "float64"),
        ("reduction", "none"),
        ("beta", 0.1),
    ):
        if given.get(key) == default:
            del given[key]
    if quantity in QUANTITIES and given.get("signature") == QUANTITIES[quantity].signature:
        del given["signature"]
    if callable(target):
        name = getattr(target, "__qualname__", "")
        if not name.isidentifier():  # a local function: its own name, as the caller has it
            name = getattr(target, "__name__", "")
        return _wrap_function(target, name if name.isidentifier() else "fn", given, by_name=False)
    if builtin:
        if target in _TARGETS:
            return _TARGETS[target]()
        adapter = ADAPTERS[target]
        reason = adapter.missing()
        if reason:
            raise AdapterUnavailable(target, reason)
        return adapter.build()
    if ":" in target:
        try:
            fn = import_function(target)
        except ImportError as exc:
            raise TargetError(str(exc)) from exc
        return _wrap_function(fn, target, given, by_name=True)
    close = difflib.get_close_matches(target, [*_TARGETS, *ADAPTERS], n=3)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise TargetError(
        f"unknown target {target!r}; {hint}give a built-in adapter (`klspec adapters`) or "
        "package.module:function"
    )


def _wrap_function(
    fn: Callable[..., Any], name: str, options: dict[str, Any], *, by_name: bool
) -> Implementation:
    quantity = options.get("quantity", "kl")
    if quantity not in QUANTITIES:
        raise SignatureError(f"unknown quantity {quantity!r}; use one of {', '.join(QUANTITIES)}")
    array = options.get("array", "numpy")
    reason = missing_library(array)
    if reason:
        raise TargetError(f"--array {array}: {reason}")
    impl = wrap(
        fn,
        name=name,
        quantity=quantity,
        signature=options.get("signature"),
        batched=bool(options.get("batched")),
        array=array,
        options=tuple(sorted(options.items())),
        dtype=options.get("dtype", "float64"),
        device=options.get("device"),
        reduction=options.get("reduction", "none"),
        gradient_of=options.get("gradient_of"),
        log_ratio_range=options.get("log_ratio_range"),
        beta=options.get("beta"),
    )
    return impl if by_name else impl.replace(by_name=False)


def versions_for(impl: Implementation) -> dict[str, str]:
    """Versions of the libraries an implementation depends on, as far as klspec can tell."""
    if impl.name in ADAPTERS:
        return ADAPTERS[impl.name].versions()
    libraries = ["numpy"]
    array = dict(impl.options).get("array")
    if array and array != "numpy":
        libraries.append(array)
    if ":" in impl.name:
        top = impl.name.split(":")[0].split(".")[0]
        libraries.append(top)
    return library_versions(tuple(libraries))
