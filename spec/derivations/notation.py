"""Readable notation for derivation steps: 𝒩(y | μ, σ²), D_KL(P‖Q), H(P, Q), ...

A notation is a sympy ``Function`` subclass that prints as the reader expects
(``_latex``) and knows what it stands for (``unfold``). Steps are written with
notation so the docs stay readable; the checker replaces every notation by its
unfolding (:func:`unfold`) before it reduces anything, so a notation can never hide
a term from a check.
"""

from __future__ import annotations

from collections.abc import Callable

import sympy as sp

__all__ = ["Normal", "Notation", "claim", "has_atomic", "notation", "opaque", "unfold"]


class Notation(sp.Function):
    """Base class of display notation; subclasses are made with :func:`notation`."""

    atomic = False

    def unfold(self) -> sp.Expr:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def doit(self, **hints):
        body = self.unfold()
        return body.doit(**hints) if hints.get("deep", True) else body

    def _sympystr(self, printer) -> str:
        return f"{type(self).__name__}({', '.join(printer._print(a) for a in self.args)})"


def notation(
    name: str,
    latex: str | Callable[..., str],
    body: Callable[..., sp.Expr],
    *,
    nargs: int = 0,
    atomic: bool = False,
    **assumptions: bool,
) -> type[Notation]:
    """A new notation class.

    ``latex`` renders it: a TeX string where ``#1``, ``#2``, ... stand for the printed
    arguments (as in a TeX macro), or a callable ``latex(printer, *args)`` (print each
    argument with ``printer._print(arg)`` so settings such as ``ln_notation`` carry
    over). ``body(*args)`` is what it means. ``assumptions`` are sympy assumptions the value
    always satisfies (``positive=True`` for a density): give only what ``body`` makes
    true, since the checker relies on them when it splits logarithms.

    ``atomic=True`` marks a quantity whose assumptions matter more than its body
    (a count c_j > 0 that unfolds to a sum of Kronecker deltas sympy cannot see is
    positive): the checker first tries to reduce with it kept as an opaque function
    carrying its assumptions, then with it unfolded. Both are sound.
    """
    latex = _latex_function(latex)
    attrs = {
        "nargs": nargs,
        "unfold": lambda self: body(*self.args),
        "_latex": lambda self, printer: latex(printer, *self.args),
        "__module__": __name__,
        "atomic": atomic,
    }
    for key, value in assumptions.items():
        attrs[f"is_{key}"] = value
    return type(name, (Notation,), attrs)


def _latex_function(latex: str | Callable[..., str]) -> Callable[..., str]:
    if not isinstance(latex, str):
        return latex
    template = latex

    def render(printer, *args):
        out = template
        for k in range(len(args), 0, -1):
            out = out.replace(f"#{k}", printer._print(args[k - 1]))
        return out

    return render


def opaque(name: str, latex: str | Callable[..., str], *, nargs: int, **assumptions: bool):
    """An uninterpreted function with readable notation (π(t_k | x, t_<k)).

    Unlike :func:`notation` it has no body: the checker treats it as an unknown
    function carrying only ``assumptions``, so whatever is proved about it holds for
    every function with those assumptions.
    """
    render = _latex_function(latex)
    attrs = {
        "nargs": nargs,
        "_latex": lambda self, printer: render(printer, *self.args),
        "__module__": __name__,
    }
    for key, value in assumptions.items():
        attrs[f"is_{key}"] = value
    return type(name, (sp.Function,), attrs)


def unfold(expr: sp.Basic, *, keep_atomic: bool = False) -> sp.Basic:
    """``expr`` with every notation replaced by its meaning, repeatedly.

    With ``keep_atomic``, notation declared ``atomic`` stays (as an opaque function
    with its assumptions).
    """

    def unfoldable(e: sp.Basic) -> bool:
        return isinstance(e, Notation) and not (keep_atomic and e.atomic)

    for _ in range(20):
        if not expr.has(Notation) or not any(unfoldable(a) for a in sp.preorder_traversal(expr)):
            return expr
        expr = expr.replace(unfoldable, lambda e: e.unfold())
    raise RecursionError("notation keeps unfolding into notation (20 levels); is one circular?")


def _normal_density(y: sp.Expr, mean: sp.Expr, variance: sp.Expr) -> sp.Expr:
    return sp.exp(-((y - mean) ** 2) / (2 * variance)) / sp.sqrt(2 * sp.pi * variance)


#: 𝒩(y | μ, σ²), the normal density; positive everywhere.
Normal = notation(
    "Normal",
    r"\mathcal{N}\left(#1 \mid #2, #3\right)",
    _normal_density,
    nargs=3,
    positive=True,
)


def claim(name: str, tex: str) -> sp.Expr:
    """A display-only statement for a ``⇒`` step (an argmin, a solution).

    It has no meaning to unfold: a check that tries to reduce it fails, so a
    consequence can only be checked through the obligations its step lists.
    """

    def body():
        raise TypeError(f"{name} is a statement for display; its step checks obligations")

    return notation(name, tex, body)()


def has_atomic(expr: sp.Basic) -> bool:
    """Whether ``expr`` contains notation declared ``atomic``."""
    return any(isinstance(a, Notation) and a.atomic for a in sp.preorder_traversal(expr))
