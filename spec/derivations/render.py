r"""Render derivations for the docs: LaTeX ``aligned`` blocks and Markdown proof pages.

Each step is one row, ``&= e && \text{why — level}``, and the level printed is the
level the checker reached (or "not checked" when rendered without a result), so a
page never claims more than was checked. GitHub renders ``$$ \begin{aligned} ...
\end{aligned} $$``.
"""

from __future__ import annotations

import sympy as sp

from klspec.spec.clauses import clause_anchor
from klspec.spec.derivations._core import ChainResult, Derivation, DerivationResult, StepResult
from klspec.spec.derivations.checks import Level

__all__ = ["latex", "proof_pages", "to_latex", "to_markdown"]

_REL = {"=": "=", "≥": r"\ge", "≤": r"\le", "≈": r"\approx", "⇒": r"\Rightarrow"}
_TEXT_ESCAPES = {
    "\\": r"\backslash{}",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    "^": r"\^{}",
    "~": r"\~{}",
}


def latex(expr: sp.Basic) -> str:
    """How every expression in the docs is printed."""
    return sp.latex(expr, ln_notation=True)


def _text(words: str) -> str:
    return r"\text{" + "".join(_TEXT_ESCAPES.get(ch, ch) for ch in words) + "}"


def _level(result: StepResult | None) -> str:
    if result is None:
        return "not checked"
    return result.label if result.ok else "FAILED"


def _aligned(chain_result: ChainResult) -> str:
    chain = chain_result.chain
    rows = []
    first = latex(chain.lhs) if chain.lhs is not None else latex(chain.start)
    if chain.lhs is not None:
        rows.append(f"{first} &= {latex(chain.start)}")
        first = ""
    for k, (step, result) in enumerate(zip(chain.steps, chain_result.steps, strict=True)):
        lead = first if k == 0 else ""
        rel = _REL[step.relation]
        sep = r"\ " if step.relation == "⇒" else " "
        rows.append(
            f"{lead} &{rel}{sep}{latex(step.expr)} && {_text(f'{step.why} — {_level(result)}')}"
        )
    return "$$\n\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}\n$$"


def _chain_results(derivation: Derivation, result: DerivationResult | None) -> list[ChainResult]:
    if result is not None:
        return list(result.chains)
    return [ChainResult(c, tuple(None for _ in c.steps)) for c in derivation.chains]


def to_latex(derivation: Derivation, result: DerivationResult | None = None) -> str:
    """One ``$$ \\begin{aligned} ... \\end{aligned} $$`` block per chain."""
    return "\n\n".join(_aligned(c) for c in _chain_results(derivation, result))


def to_markdown(derivation: Derivation, result: DerivationResult | None = None) -> str:
    """A proof page: statement, assumptions, the checked chains, levels, conclusion."""
    out = [f"# {derivation.title}", "", f"`{derivation.id}`", "", derivation.statement, ""]
    out += ["**Assumptions**", ""] + [f"- {a}" for a in derivation.assumptions] + [""]
    for k, chain_result in enumerate(_chain_results(derivation, result)):
        title = chain_result.chain.title
        if title:
            out += [f"**{title}**", ""]
        out += [_aligned(chain_result), ""]
        if result is not None:
            # No times here: pages are generated docs and must not change between runs
            # (`klspec prove` prints the times).
            out += ["| step | checked | detail |", "|---|---|---|"]
            for s, r in enumerate(chain_result.steps, start=1):
                if r is None:
                    continue
                detail = r.detail.replace("|", r"\|").replace("\n", " ")
                out.append(f"| {k + 1}.{s} | {_level(r)} | {detail} |")
            out.append("")
    out += ["**Conclusion.** " + derivation.conclusion, ""]
    if result is not None:
        weaker = [
            f"{k}.{s} ({_level(r)})"
            for k, chain in enumerate(result.chains, start=1)
            for s, r in enumerate(chain.steps, start=1)
            if r is not None and r.level is not Level.PROVED
        ]
        if weaker:
            out += ["**Not proved outright:** steps " + ", ".join(weaker) + ".", ""]
    if derivation.honesty:
        out += [derivation.honesty, ""]
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
        rows.append(f"| [{r.derivation.title}]({name}) | {len(levels)} | {weakest} |")
    pages["README.md"] = "\n".join(rows) + "\n"
    return pages
