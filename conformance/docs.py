"""Generate docs/ from the clause catalog and the checked derivations.

``klspec docs`` writes, and the test suite compares against, exactly what
:func:`pages` returns: docs/index.md (what klspec is, a reading order that follows
the post, the clause catalog as tables by topic), the worked pages with numbers
computed by the reference (:mod:`klspec.conformance.worked_pages`: fitting.md,
language_models.md, rlhf.md, dpo.md), the picture of the fits (fits.md, fits.svg: plain SVG
drawn here, the same bytes on every machine) and docs/proofs/ (one page per derivation,
rendered with the level the checker reached). Nothing here is
written by hand, so the docs cannot drift from the code: a test fails when
docs/ is out of date. docs/conformance.md is generated separately by
``klspec matrix``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from klspec.spec.checks import checks_for
from klspec.spec.clauses import CATALOG, Clause, clause_anchor, derivation_clauses
from klspec.spec.interface import TOPICS

#: The reading order, following the post: (section title, what it argues, derivation ids,
#: clause ids). Derivation ids are without the ``derivation.`` prefix.
READING_ORDER: tuple[tuple[str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "Where MSE comes from",
        "Squared error is not a law of nature: it is the negative log-likelihood of "
        "independent Gaussian noise, up to a constant and a positive factor, so it has "
        "the same minimiser for every noise level. Other noise models give other "
        "losses: Bernoulli outcomes give binary cross-entropy (the logistic loss of "
        "Bradley–Terry), Laplace noise gives absolute error, Poisson counts give the "
        "Poisson deviance.",
        ("gaussian_nll_mse", "bernoulli_nll_bce", "laplace_nll_mae", "poisson_nll_deviance"),
        (
            "noise.gaussian_nll",
            "noise.mse",
            "noise.gaussian_mle_is_least_squares",
            "noise.laplace_nll",
            "noise.mae",
            "noise.laplace_mle_is_least_absolute",
            "noise.bernoulli_nll",
            "noise.bernoulli_logits",
            "noise.poisson_nll",
        ),
    ),
    (
        "What KL measures",
        "KL(P‖Q) is the expected extra surprise −log Q(x) over −log P(x) when outcomes "
        "come from P: cross-entropy minus entropy. It is never negative (Gibbs' "
        "inequality), zero only when P = Q, not symmetric, and not a distance. The "
        "weather example: 70/30 weather against a 50/50 forecast costs 0.0823 nats a "
        "day; the other way round it is 0.0872 nats (0.088 in the post is a rounding "
        "artefact of its three-place logarithms).",
        ("kl_cross_entropy", "gibbs", "weather_numbers"),
        (
            "entropy.definition",
            "cross_entropy.definition",
            "kl.definition",
            "units.base",
            "kl.decomposition",
            "kl.nonnegative",
            "kl.zero_iff_equal",
            "kl.asymmetric",
            "kl.not_a_metric",
            "example.weather.forward",
            "example.weather.reverse",
        ),
    ),
    (
        "Maximum likelihood is forward-KL minimisation",
        "With P̂ the empirical distribution of the data, KL(P̂‖Q_θ) is the entropy of "
        "the data (fixed) minus the average log-likelihood of θ, so the θ that "
        "maximises the likelihood is the θ that minimises KL from the data to the "
        "model. For coin flips the optimum is the observed frequency.",
        ("mle_forward_kl", "mle_bernoulli"),
        (
            "example.coin_flips",
            "mle.likelihood_plus_kl",
            "mle.argmin_kl_is_argmax_likelihood",
            "mle.categorical",
            "mle.bernoulli",
            "mle.misspecified_gaussian",
        ),
    ),
    (
        "Forward against reverse KL",
        "The direction decides what a fit does. Minimising KL(P‖Q) over Gaussians Q "
        "matches P's mean and variance, so a single Gaussian fitted to two modes at ±3 "
        "sits between them as N(0, 10), covering both. Minimising KL(Q‖P) instead locks "
        "onto one mode; that part is shown numerically, not proved, on the worked page "
        "[Forward against reverse KL](fitting.md), which also shows a third, symmetric local "
        "minimum of the reverse fit.",
        ("gaussian_kl", "moment_matching"),
        (
            "fit.divergence_value",
            "fit.forward_moment_matching",
            "fit.minimum",
            "fit.reverse_mode_seeking",
            "fit.symmetric_stationary_point",
        ),
    ),
    (
        "KL in RLHF",
        "A language model's probability of a response is a product of per-token "
        "probabilities, so its log-ratio against a reference model is a sum of "
        "per-token log-ratios, and the sequence-level KL is the expected sum of "
        "per-token KLs. The KL-regularised objective E_π[r] − β KL(π‖π_ref) equals "
        "β log Z − β KL(π‖π*), so its optimum is π* ∝ π_ref·e^{r/β}. Worked pages: "
        "[KL for language models](language_models.md) (per-token KL from logits, the "
        "k1/k2/k3 estimators), [the RLHF optimum](rlhf.md), and what the checks find in "
        "[the KL code of RLHF libraries](rlhf_libraries.md), checked as the float32 code "
        "it is.",
        ("autoregressive_log_ratio", "kl_chain_rule", "rlhf_optimum"),
        (
            "kl.chain_rule",
            "sequence.log_prob",
            "sequence.log_ratio",
            "sequence.kl_chain_rule",
            "token_kl.definition",
            "token_kl.nonnegative",
            "token_kl.masked",
            "token_kl.shift_invariant",
            "estimator.definitions",
            "estimator.unbiased",
            "estimator.k3_nonnegative",
            "estimator.k2_bias",
            "estimator.k1_sign",
            "estimator.gradients",
            "estimator.clamp_bias",
            "rlhf.optimal_policy",
            "rlhf.optimum_beats_every_policy",
            "rlhf.support",
            "rlhf.beta_limits",
        ),
    ),
    (
        "From the RLHF optimum to DPO",
        "Solved for the reward, the optimum gives r = β log(π*/π_ref) + β log Z. Put into "
        "the Bradley–Terry likelihood of a preference pair, σ(r_w − r_l), the partition "
        "function Z cancels, and with the trained policy in the place of π* the negative "
        "log-likelihood is the DPO loss −log σ(β m), a softplus of the margin of "
        "log-ratios. Its gradient weights each pair by σ(−β m), so the pairs the policy "
        "ranks wrongly dominate.",
        ("dpo",),
        (
            "dpo.definition",
            "dpo.accuracy",
            "dpo.limits",
            "dpo.swap_symmetry",
            "dpo.shift_invariant",
            "dpo.bradley_terry",
            "dpo.gradient_weight",
            "dpo.label_smoothing",
        ),
    ),
)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", r"\|").replace("\n", " ")


def _clause_row(clause: Clause) -> str:
    checks = ", ".join(f"`{c.name}`" for c in checks_for(clause.id))
    anchor = f'<a id="{clause_anchor(clause.id)}"></a>`{clause.id}`'
    formula = f"${_cell(clause.latex)}$" if clause.latex else ""
    return f"| {anchor} | {clause.kind} | {_cell(clause.statement)} | {formula} | {checks} |"


def index_page(derivation_titles: dict[str, str]) -> str:
    """docs/index.md: what klspec is, the reading order, the clause catalog."""
    out = [
        "# klspec",
        "",
        "<!-- Generated by `klspec docs` from the clause catalog and the derivations;"
        " do not edit. -->",
        "",
        "klspec states what KL divergence and its neighbours are, as clauses a machine "
        "checks. Every clause below is a property that `klspec check` tests against an "
        "implementation with hypothesis; every derivation is checked step by step by "
        "sympy, and its page says, for each step, whether it was proved symbolically, "
        "by a named rewrite rule, under a stated constraint, for small sizes only, or "
        "numerically only.",
        "",
        "- [Proofs](proofs/README.md): the derivations, with the level each step reached.",
        "- [Conformance](conformance.md): how scipy, torch, jax, optax and keras fare "
        "against the clauses.",
        "- Worked pages, every number computed by the reference: "
        "[forward against reverse KL](fitting.md) (and [its picture](fits.md)), "
        "[KL for language models](language_models.md), "
        "[the RLHF optimum](rlhf.md), [DPO](dpo.md).",
        "",
        "## Reading order",
        "",
    ]
    for n, (title, argument, derivation_ids, clause_ids) in enumerate(READING_ORDER, start=1):
        out += [f"### {n}. {title}", "", argument, ""]
        for d in derivation_ids:
            out.append(f"- Proof: [{derivation_titles[d]}](proofs/{d}.md)")
        for c in clause_ids:
            out.append(f"- Clause: [`{c}`](#{clause_anchor(c)})")
        out.append("")
    out += [
        "## Clause catalog",
        "",
        "Generated from `klspec.spec.CATALOG` (`klspec list`). Tolerances, where a clause "
        "has one, are derived from the inputs' conditioning and documented in the "
        "clause's notes (`klspec.spec.tolerances`).",
        "",
    ]
    for topic in TOPICS:
        out += [
            f"### {topic.title}",
            "",
            "| clause | kind | statement | formula | checks |",
            "|---|---|---|---|---|",
        ]
        out += [_clause_row(c) for c in CATALOG if c.topic == topic.key]
        out.append("")
    out += [
        "## Derivation clauses",
        "",
        "What the derivations establish about the mathematics, checked by `klspec prove` "
        "(step by step, at the levels shown on each proof page) and by a numeric "
        "cross-check, not against implementations.",
        "",
        "| clause | statement | proof | checked |",
        "|---|---|---|---|",
    ]
    for c in derivation_clauses():
        name = c.id.removeprefix("derivation.")
        anchor = f'<a id="{clause_anchor(c.id)}"></a>`{c.id}`'
        proof = f"[{_cell(derivation_titles[name])}](proofs/{name}.md)"
        out.append(f"| {anchor} | {_cell(c.statement)} | {proof} | {_cell(c.notes)} |")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------
# docs/fits.md and docs/fits.svg: the picture of forward against reverse fits
# ---------------------------------------------------------------------------

#: (label, colour, dash) of each curve in the picture.
_CURVES = (
    ("P = ½N(−3, 1) + ½N(3, 1)", "#1f2328", ""),
    ("forward fit, argmin KL(P‖Q)", "#0969da", ""),
    ("reverse fit from (2.5, 1)", "#cf222e", "7 4"),
    ("reverse fit from (−2.5, 1)", "#8250df", "2 3"),
)


def _fits() -> list[tuple[float, float]]:
    """(mean, sd) of the forward fit and of the reverse fits started near each mode."""
    from klspec import reference

    mixture = ([0.5, 0.5], [-3.0, 3.0], [1.0, 1.0])
    forward = reference.fit_gaussian_to_mixture(*mixture, direction="forward")
    right = reference.fit_gaussian_to_mixture(*mixture, direction="reverse", start=(2.5, 1.0))
    left = reference.fit_gaussian_to_mixture(*mixture, direction="reverse", start=(-2.5, 1.0))
    return [(f.mean, f.sd) for f in (forward, right, left)]


def _normal_pdf(x: float, mean: float, sd: float) -> float:
    import math

    return math.exp(-((x - mean) ** 2) / (2 * sd**2)) / (sd * math.sqrt(2 * math.pi))


def fits_svg(fits: list[tuple[float, float]] | None = None) -> str:
    """docs/fits.svg: P and its three Gaussian fits, drawn as plain SVG.

    Written by hand rather than with a plotting library so that it needs nothing
    beyond the reference and is the same bytes on every machine (coordinates are
    rounded to 0.1 px), which keeps the docs-current test exact.
    """
    fits = _fits() if fits is None else fits
    width, height, left, right, top, bottom = 720, 360, 56, 16, 16, 44
    x_lo, x_hi, y_hi = -8.0, 8.0, 0.5
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return top + (1 - y / y_hi) * plot_h

    def mixture(x: float) -> float:
        return 0.5 * _normal_pdf(x, -3, 1) + 0.5 * _normal_pdf(x, 3, 1)

    densities = [mixture] + [(lambda x, m=m, s=s: _normal_pdf(x, m, s)) for m, s in fits]
    xs = [x_lo + k * (x_hi - x_lo) / 400 for k in range(401)]
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, '
        'sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for k in range(-8, 9, 2):  # x axis
        x = px(k)
        out.append(
            f'<line x1="{x:.1f}" y1="{py(0):.1f}" x2="{x:.1f}" y2="{py(0) + 4:.1f}" '
            'stroke="#57606a"/>'
        )
        label = str(k).replace("-", "−")
        out.append(
            f'<text x="{x:.1f}" y="{py(0) + 17:.1f}" text-anchor="middle" '
            f'fill="#57606a">{label}</text>'
        )
    for k in range(6):  # y axis
        y, value = py(k / 10), f"{k / 10:.1f}"
        out.append(
            f'<line x1="{left - 4}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="{"#57606a" if k == 0 else "#d8dee4"}"/>'
        )
        out.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" fill="#57606a">{value}</text>'
        )
    out.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle" '
        'fill="#57606a">x</text>'
    )
    for (label, colour, dash), density in zip(_CURVES, densities, strict=True):
        points = " ".join(f"{px(x):.1f},{py(min(density(x), y_hi)):.1f}" for x in xs)
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"'
            f"{dashing}><title>{label}</title></polyline>"
        )
    for k, (label, colour, dash) in enumerate(_CURVES):  # legend, above the peaks
        y, x0 = top + 8 + 15 * k, px(-2.4)
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{x0:.1f}" y1="{y - 4}" x2="{x0 + 30:.1f}" y2="{y - 4}" '
            f'stroke="{colour}" stroke-width="2"{dashing}/>'
        )
        out.append(f'<text x="{x0 + 36:.1f}" y="{y}" fill="#1f2328">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def fits_picture_page(fits: list[tuple[float, float]] | None = None) -> str:
    """docs/fits.md: the picture the post describes, with its numbers."""
    (fm, fs), (rm, rs), (lm, ls) = _fits() if fits is None else fits

    def g(x: float) -> str:
        return f"{x:.3g}".replace("-", "−")

    return "\n".join(
        [
            "# The picture: one Gaussian fitted to two modes, both ways",
            "",
            "<!-- Generated by `klspec docs` from klspec.reference; do not edit. -->",
            "",
            "![P = ½N(−3, 1) + ½N(3, 1) with the forward fit, which covers both modes, "
            "and the two reverse fits, each on one mode](fits.svg)",
            "",
            f"- **Forward fit** (argmin KL(P‖Q), blue): N({g(fm)}, {g(fs)}²), the mean and "
            "variance of P; it covers both modes and puts its mass in the valley between "
            "them ([proof](proofs/moment_matching.md)).",
            f"- **Reverse fits** (argmin KL(Q‖P), dashed): N({g(rm)}, {g(rs)}²) from a start "
            f"near the right mode, N({g(lm)}, {g(ls)}²) from one near the left; each locks "
            "onto one mode.",
            "",
            "Every curve is computed by `klspec.reference.fit_gaussian_to_mixture` when the "
            "docs are generated; the numbers, the third (symmetric) reverse fit and the "
            "densities at a few points are on [forward against reverse KL](fitting.md).",
            "",
        ]
    )


@cache
def pages() -> dict[str, str]:
    """Relative path under docs/ -> content, for every page ``klspec docs`` generates.

    Runs every derivation (a few seconds) so each page shows the level reached;
    cached for the process (the result depends only on the code). Do not mutate it.
    """
    from klspec.spec.derivations import proof_pages, run  # sympy: imported only here

    results = run()
    titles = {r.derivation.id.removeprefix("derivation."): r.derivation.title for r in results}
    from klspec.conformance.worked_pages import (
        dpo_page,
        fits_page,
        language_models_page,
        rlhf_page,
    )

    out = {
        "index.md": index_page(titles),
        "fitting.md": fits_page(),
        "fits.md": fits_picture_page(),
        "fits.svg": fits_svg(),
        "language_models.md": language_models_page(),
        "rlhf.md": rlhf_page(),
        "dpo.md": dpo_page(),
    }
    out.update({f"proofs/{name}": text for name, text in proof_pages(results).items()})
    return out


def write(root: Path) -> list[Path]:
    """Write :func:`pages` under ``root`` (docs/), removing stale proof pages; returns paths."""
    generated = pages()
    proofs = root / "proofs"
    if proofs.is_dir():
        for old in proofs.glob("*.md"):
            if f"proofs/{old.name}" not in generated:
                old.unlink()
    written = []
    for rel, text in generated.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def stale(root: Path) -> list[str]:
    """Pages under ``root`` that differ from what :func:`pages` generates (or are extra)."""
    generated = pages()
    differ = [
        rel
        for rel, text in generated.items()
        if not (root / rel).is_file() or (root / rel).read_text(encoding="utf-8") != text
    ]
    proofs = root / "proofs"
    extra = [
        f"proofs/{p.name}"
        for p in (proofs.glob("*.md") if proofs.is_dir() else ())
        if f"proofs/{p.name}" not in generated
    ]
    return sorted(differ + extra)
