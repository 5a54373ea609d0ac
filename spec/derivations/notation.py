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

__all__ = ["Normal", "Notation", "notation", "opaque", "unfold", "written"]


class Notation(sp.Function):
    """Base class of display notation; subclasses are made with :func:`notation`."""

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
    **assumptions: bool,
) -> type[Notation]:
    """A new notation class.

    ``latex`` renders it: a TeX string where ``#1``, ``#2``, ... stand for the printed
    arguments (as in a TeX macro), or a callable ``latex(printer, *args)`` (print each
    argument with ``printer._print(arg)`` so settings such as ``ln_notation`` carry
    over). ``body(*args)`` is what it means. ``assumptions`` are sympy assumptions the value
    satisfies (``positive=True`` for a density); they only inform how the notation is
    read: the checker never relies on them, because it unfolds every notation to its
    body before it checks anything, so positivity declared on a notation whose body is
    not positive cannot split a logarithm.
    """
    latex = _latex_function(latex)
    attrs = {
        "nargs": nargs,
        "unfold": lambda self: body(*self.args),
        "_latex": lambda self, printer: latex(printer, *self.args),
        "__module__": __name__,
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


def unfold(expr: sp.Basic) -> sp.Basic:
    """``expr`` with every notation replaced by its meaning, repeatedly."""

    def unfoldable(e: sp.Basic) -> bool:
        return isinstance(e, Notation)

    for _ in range(20):
        if not any(unfoldable(a) for a in sp.preorder_traversal(expr)):
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


def written(op: type[sp.Add] | type[sp.Mul] | type[sp.Pow], *args) -> sp.Expr:
    """``op(*args)`` printed as written: ½·2λ, not λ; (1 + (−3)²)/2, not 5.

    For arithmetic a page shows on its way to a number. Numbers are wrapped so that
    sympy neither evaluates nor reorders them; the checker's evaluation stage
    (``doit``) releases them, so the value is unchanged.
    """
    wrapped = [sp.UnevaluatedExpr(a) if sp.sympify(a).is_Number else a for a in args]
    return op(*wrapped, evaluate=False)
