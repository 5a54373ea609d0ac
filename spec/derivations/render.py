r"""Render derivations for the docs: Markdown proof pages with ```` ```math ```` fences.

Each chain is one ```` ```math ```` block (GitHub typesets it with MathJax and, unlike a
``$$`` block, applies no Markdown escapes inside it) holding only the expressions, one
step a line, each numbered ``(chain.step)``. The justifications, the level the checker
reached (or "not checked" when rendered without a result) and the checker's detail
sit beside the chain in a table keyed by those numbers, so a page never claims more
than was checked and no prose goes through ``\text{}``.

Expressions are printed in reading order (p_i ln(p_i/q_i): numbers, then symbols, then
functions, then sums and integrals; positive terms first), an unevaluated expression
(``evaluate=False``) in the order it was written, and a line too wide for a 900 px
column is broken at its top-level ``+`` / ``−``. Consecutive steps whose expressions
are identical share one line, numbered with both steps.
"""

from __future__ import annotations

import re

import sympy as sp
from sympy.printing.latex import LatexPrinter

from klspec.spec.clauses import clause_anchor
from klspec.spec.derivations._core import ChainResult, Derivation, DerivationResult, StepResult
from klspec.spec.derivations.checks import Level

__all__ = ["latex", "markdown_cell", "markdown_text", "proof_pages", "to_latex", "to_markdown"]

_REL = {"=": "=", "≥": r"\ge", "≤": r"\le", "≈": r"\approx", "⇒": r"\Rightarrow"}

#: Width of a line of a chain (the expression; its number is extra), in the units of
#: :func:`tex_width`. MathJax draws one unit as 16-23 px (20 px typically, measured with
#: tests/test_docs_render.py), so 33 units stay within a 900 px column with room for
#: the step numbers.
LINE_EM = 33.0


# ---------------------------------------------------------------------------
# Printing expressions
# ---------------------------------------------------------------------------


def _is_evaluated(expr: sp.Basic) -> bool:
    """Whether ``expr`` (an Add or a Mul) is in sympy's canonical, evaluated form."""
    try:
        return type(expr)(*expr.args) == expr
    except Exception:  # pragma: no cover - a class that cannot be rebuilt: keep it as is
        return False


def _factor_rank(factor: sp.Basic) -> int:
    """Reading order of a product's factors: 2 p_i ln(p_i/q_i) Σ..."""
    base = factor.base if isinstance(factor, sp.Pow) else factor
    if factor.is_Number or isinstance(base, sp.NumberSymbol):  # 2 π s², not 2 s² π
        return 0
    if isinstance(
        base, (sp.Symbol, sp.Indexed, sp.IndexedBase, sp.Dummy, sp.core.function.AppliedUndef)
    ):
        return 1
    if isinstance(factor, (sp.Sum, sp.Integral, sp.Product)):
        return 4
    if isinstance(factor, sp.Add) or isinstance(base, sp.Add):
        return 3
    return 2


class _ReadingPrinter(LatexPrinter):
    """sympy's LaTeX printer, with products and sums in reading order."""

    def _with_order(self, method, expr, **kwargs) -> str:
        saved = self._settings["order"]
        self._settings["order"] = "none"
        try:
            return method(expr, **kwargs)
        finally:
            self._settings["order"] = saved

    def _print_Add(self, expr, order=None):
        if _is_evaluated(expr):
            terms = list(expr.as_ordered_terms())
            plus = [t for t in terms if not t.could_extract_minus_sign()]
            minus = [t for t in terms if t.could_extract_minus_sign()]
            expr = sp.Add(*(plus + minus), evaluate=False)
        return self._with_order(super()._print_Add, expr, order="none")

    def _print_Mul(self, expr):
        if not _is_evaluated(expr):
            return self._with_order(super()._print_Mul, expr)
        coeff, rest = expr.as_coeff_Mul()
        if coeff.is_negative:
            inner = sp.Mul(-coeff, rest)
            tex = self._print(inner)
            if isinstance(inner, sp.Add):
                tex = rf"\left({tex}\right)"
            return "- " + tex
        factors = sorted(sp.Mul.make_args(expr), key=_factor_rank)
        return self._with_order(super()._print_Mul, sp.Mul(*factors, evaluate=False))

    def _print_And(self, expr):
        # A claim made of several equations ("m̂ = 0 and ŝ = √10"): listed, in the order
        # of what they solve for, rather than joined by ∧ in sympy's internal order.
        def key(e):
            lhs = getattr(e, "lhs", e)
            return (str(getattr(lhs, "over", "")), sp.default_sort_key(lhs))

        parts = sorted(expr.args, key=key)
        return r",\quad ".join(self._print(p) for p in parts)


def latex(expr: sp.Basic) -> str:
    """How every expression in the docs is printed."""
    return _ReadingPrinter({"ln_notation": True}).doprint(expr)


# ---------------------------------------------------------------------------
# Estimating the width of TeX, to break lines that would not fit
# ---------------------------------------------------------------------------

_TOKEN = re.compile(r"\\[A-Za-z]+\*?|\\.|[{}^_]|\s+|.", re.S)
_SPACE = {r"\,": 0.17, r"\:": 0.22, r"\;": 0.28, r"\ ": 0.25, r"\!": -0.17, r"\quad": 1.0}
_SPACE[r"\qquad"] = 2.0
_RELATION = {
    r"\le", r"\ge", r"\leq", r"\geq", r"\approx", r"\sim", r"\in", r"\to", r"\mid",
    r"\Rightarrow", r"\iff", r"\Leftarrow", r"\implies", r"\ne", r"\neq",
}  # fmt: skip
_BINARY = {r"\cdot", r"\times", r"\pm", r"\mp", r"\circ"}
_BIG = {r"\sum", r"\prod", r"\int", r"\iint", r"\bigcup", r"\bigcap"}
_WORD = {r"\ln", r"\log", r"\exp", r"\sin", r"\cos", r"\max", r"\min", r"\lim", r"\det"}
_ONE_ARG_TEXT = {r"\mathrm", r"\operatorname", r"\operatorname*", r"\text", r"\mathbf"}
_ONE_ARG_SAME = {r"\mathcal", r"\mathbb", r"\hat", r"\bar", r"\tilde", r"\boldsymbol"}
_IGNORE = {r"\left", r"\right", r"\limits", r"\displaystyle", r"\bigl", r"\bigr", r"\Big"}


def tex_width(tex: str) -> float:
    """A rough width, in em, of one line of display TeX (for line breaking only)."""
    tokens = [t for t in _TOKEN.findall(tex) if not t.isspace()]
    width, _ = _width(tokens, 0, top=True)
    return width


def _group(tokens: list[str], i: int) -> tuple[list[str], int]:
    """The tokens of the argument starting at ``tokens[i]`` (a braced group or one token)."""
    if i >= len(tokens):
        return [], i
    if tokens[i] != "{":
        return [tokens[i]], i + 1
    depth, j = 0, i
    while j < len(tokens):
        depth += {"{": 1, "}": -1}.get(tokens[j], 0)
        if depth == 0:
            return tokens[i + 1 : j], j + 1
        j += 1
    return tokens[i + 1 :], len(tokens)


def _w(tokens: list[str]) -> float:
    return _width(tokens, 0, top=False)[0]


def _width(tokens: list[str], i: int, *, top: bool) -> tuple[float, int]:
    total, big = 0.0, None  # big: width of the last big operator, whose limits stack
    while i < len(tokens):
        t = tokens[i]
        i += 1
        if t in "^_":
            arg, i = _group(tokens, i)
            script = 0.7 * _w(arg)
            if big is not None:
                total += max(0.0, script - big)
                big = max(big, script)
            else:
                total += script
            continue
        big = None
        if t == "{":
            arg, i = _group(tokens, i - 1)
            total += _w(arg)
        elif t in (r"\frac", r"\dfrac", r"\tfrac"):
            num, i = _group(tokens, i)
            den, i = _group(tokens, i)
            total += max(_w(num), _w(den)) + 0.25
        elif t == r"\substack":
            arg, i = _group(tokens, i)
            lines = " ".join(arg).split(r"\\")
            total += max(tex_width(line) for line in lines)
        elif t == r"\sqrt":
            arg, i = _group(tokens, i)
            total += _w(arg) + 0.9
        elif t in _ONE_ARG_TEXT:
            arg, i = _group(tokens, i)
            total += 0.5 * len("".join(a for a in arg if not a.startswith("\\"))) + 0.15
        elif t in _ONE_ARG_SAME:
            arg, i = _group(tokens, i)
            total += _w(arg) + 0.1
        elif t in _BIG:
            big = 1.45 if t != r"\int" else 0.6
            total += big + 0.17
        elif t in _WORD:
            total += 0.5 * (len(t) - 1) + 0.17
        elif t in _SPACE:
            total += _SPACE[t]
        elif t in _IGNORE or t in ("&", r"\\", "}"):
            continue
        elif t in _RELATION or t in ("=", "<", ">"):
            total += 1.35 if t not in (r"\Rightarrow", r"\iff") else 1.9
        elif t in _BINARY or t in ("+", "-"):
            total += 1.2
        elif t in (r"\|", r"\parallel", "|", "(", ")", "[", "]", r"\{", r"\}", ","):
            total += 0.45
        elif t in (".", "!", "'", ":", ";"):
            total += 0.3
        elif t.startswith("\\"):
            total += 0.65  # a Greek letter or a symbol
        else:
            total += 0.55 if not t.isdigit() else 0.5
    return total, i


# ---------------------------------------------------------------------------
# Chains as math
# ---------------------------------------------------------------------------


def _level(result: StepResult | None) -> str:
    if result is None:
        return "not checked"
    return result.label if result.ok else "FAILED"


def _pieces(expr: sp.Basic, width: float) -> list[str]:
    """``expr`` printed as one or more lines of at most ``width`` em, broken at its
    top-level ``+`` / ``−`` where it is a sum (a product's lines are never split)."""
    whole = latex(expr)
    if tex_width(whole) <= width or not isinstance(expr, sp.Add):
        return [whole]
    lines, current = [], ""
    for term in _add_terms(expr):
        candidate = f"{current} {term}".strip()
        if current and tex_width(candidate) > width:
            lines.append(current)
            current = term
        else:
            current = candidate
    lines.append(current)
    return lines


def _add_terms(expr: sp.Add) -> list[str]:
    """The top-level terms of a sum, printed in reading order, each with its sign."""
    printer = _ReadingPrinter({"ln_notation": True})
    if _is_evaluated(expr):
        terms = list(expr.as_ordered_terms())
        terms = [t for t in terms if not t.could_extract_minus_sign()] + [
            t for t in terms if t.could_extract_minus_sign()
        ]
    else:
        terms = list(expr.args)
    out = []
    for k, term in enumerate(terms):
        if term.could_extract_minus_sign():
            tex = printer._print(-term)
            if isinstance(-term, sp.Add):
                tex = rf"\left({tex}\right)"
            out.append(("- " if k else "-") + tex)
        else:
            tex = printer._print(term)
            out.append(("+ " if k else "") + tex)
    return out


def _math(chain_result: ChainResult, number: int) -> str:
    """One chain as a LaTeX ``aligned`` block: the expressions only, each line numbered."""
    chain = chain_result.chain
    # (relation, expression, step numbers); identical consecutive lines are merged.
    lines: list[tuple[str, sp.Basic, list[str]]] = []
    if chain.lhs is not None:
        lines.append(("=", chain.start, []))
    last = chain.start
    for s, step in enumerate(chain.steps, start=1):
        label = f"{number}.{s}"
        if lines and step.relation == "=" and step.expr == last and lines[-1][0] != "⇒":
            lines[-1][2].append(label)
        else:
            lines.append((step.relation, step.expr, [label]))
        if step.relation != "⇒":
            last = step.expr
    lhs = latex(chain.lhs if chain.lhs is not None else chain.start)
    lhs_em = tex_width(lhs)

    def rel_tex(relation: str) -> str:
        return _REL[relation] + (r"\ " if relation == "⇒" else " ")

    beside = LINE_EM - lhs_em - 1.5
    same_line = all(tex_width(latex(e)) <= beside for _, e, _ in lines)
    width = beside if same_line else LINE_EM - 3.0
    rows = [] if same_line else [f"&{lhs}"]
    for k, (relation, expr, labels) in enumerate(lines):
        tag = f" && ({', '.join(labels)})" if labels else ""
        pieces = _pieces(expr, width)
        lead = (lhs + " ") if (same_line and k == 0) else ""
        indent = "" if same_line else r"\quad "
        rows.append(f"{lead}&{indent}{rel_tex(relation)}{pieces[0]}{tag}")
        for piece in pieces[1:]:
            rows.append(rf"&{indent}\qquad {piece}")
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


def _chain_results(derivation: Derivation, result: DerivationResult | None) -> list[ChainResult]:
    if result is not None:
        return list(result.chains)
    return [ChainResult(c, tuple(None for _ in c.steps)) for c in derivation.chains]


def to_latex(derivation: Derivation, result: DerivationResult | None = None) -> str:
    """The chains' TeX, one ``aligned`` block per chain, each line numbered by its step;
    :func:`to_markdown` puts the justifications and levels beside them."""
    return "\n\n".join(
        _math(c, k) for k, c in enumerate(_chain_results(derivation, result), start=1)
    )


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------

_MD_SPECIAL = re.compile(r"[\\*`$<]|_|\](?=[(\[:])")


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown: nothing in it becomes emphasis, code, a link, HTML
    or ($…$) math. ``_`` between two letters (p_i) and brackets that cannot close a link
    (E[r]) are left alone, so the Markdown stays readable."""

    def escape(m: re.Match) -> str:
        ch, k = m.group(0), m.start()
        if ch == "_":
            before, after = text[k - 1 : k], text[k + 1 : k + 2]
            if before.isalnum() and after.isalnum():
                return ch
        return "\\" + ch

    return _MD_SPECIAL.sub(escape, text)


def markdown_cell(text: str) -> str:
    """``text`` as one cell of a Markdown table: literal, ``|`` escaped, on one line."""
    return markdown_text(" ".join(text.split())).replace("|", r"\|")


def _steps_table(chain_result: ChainResult, number: int, checked: bool) -> list[str]:
    head = ["| step | justification | checked |" + (" detail |" if checked else "")]
    head.append("|---|---|---|" + ("---|" if checked else ""))
    rows = []
    for s, (step, r) in enumerate(
        zip(chain_result.chain.steps, chain_result.steps, strict=True), start=1
    ):
        if checked and r is None:
            continue
        cells = [f"{number}.{s}", markdown_cell(step.why), markdown_cell(_level(r))]
        if checked:
            cells.append(markdown_cell(r.detail))
        rows.append("| " + " | ".join(cells) + " |")
    return head + rows


def to_markdown(derivation: Derivation, result: DerivationResult | None = None) -> str:
    """A proof page: statement, assumptions, the checked chains, levels, conclusion."""
    out = [f"# {markdown_text(derivation.title)}", "", f"`{derivation.id}`", ""]
    out += [markdown_text(derivation.statement), ""]
    out += ["**Assumptions**", ""]
    out += [f"- {markdown_text(a)}" for a in derivation.assumptions] + [""]
    for k, chain_result in enumerate(_chain_results(derivation, result), start=1):
        title = chain_result.chain.title
        if title:
            out += [f"**{markdown_text(title)}**", ""]
        out += ["```math", _math(chain_result, k), "```", ""]
        # No times here: pages are generated docs and must not change between runs
        # (`klspec prove` prints the times).
        out += [*_steps_table(chain_result, k, result is not None), ""]
    out += ["**Conclusion.** " + markdown_text(derivation.conclusion), ""]
    if result is not None:
        weaker = [
            f"{k}.{s} ({_level(r)})"
            for k, chain in enumerate(result.chains, start=1)
            for s, r in enumerate(chain.steps, start=1)
            if r is not None and r.level is not Level.PROVED
        ]
        if weaker:
            out += ["**Not proved outright:** steps " + markdown_text(", ".join(weaker)) + ".", ""]
    if derivation.honesty:
        out += [markdown_text(derivation.honesty), ""]
    if derivation.clause_ids:
        links = ", ".join(f"[`{c}`](../index.md#{clause_anchor(c)})" for c in derivation.clause_ids)
        out += ["Also checks the clauses " + links, ""]
    if derivation.numeric_crosscheck:
        path = derivation.numeric_crosscheck.split("::")[0]
        out += [f"Numeric cross-check: [`{derivation.numeric_crosscheck}`](../../{path})", ""]
    return "\n".join(out)


def proof_pages(results: list[DerivationResult]) -> dict[str, str]:
    """File name → Markdown for a docs/proofs directory: one page per derivation and an
    index (README.md) listing each with its weakest level."""
    pages = {}
    rows = [
        "# Proofs",
        "",
        "Each derivation is checked step by step by sympy; a step's level is "
        "the one the checker reached (`klspec prove`).",
        "",
        "| derivation | steps | weakest level |",
        "|---|---|---|",
    ]
    for r in results:
        name = r.derivation.id.removeprefix("derivation.") + ".md"
        pages[name] = to_markdown(r.derivation, r)
        levels = [s.level for s in r.step_results]
        weakest = "FAILED" if None in levels else min(levels).words
        title = markdown_cell(r.derivation.title)
        rows.append(f"| [{title}]({name}) | {len(levels)} | {markdown_cell(weakest)} |")
    pages["README.md"] = "\n".join(rows) + "\n"
    return pages
