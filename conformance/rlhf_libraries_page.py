"""docs/rlhf_libraries.md: what the checks find in the KL code of RLHF and distillation libraries.

Written by ``klspec matrix`` from the same data as docs/conformance.md: the rows of
the adapters built from :mod:`klspec.conformance.rlhf_libraries` (verl, OpenRLHF,
TRL, torchtune, NeMo-RL, each re-implemented in torch from its source at a named
commit) and the float32 and bfloat16 rows of torch's ``kl_div``. Every finding is
the matrix's, with its counterexample, the value returned and the exact one; what a
user of the library should do about it (:data:`ADVICE`) is prose, tested against
the findings it speaks of (tests/test_conformance_matrix.py).
"""

from __future__ import annotations

from typing import Any

from klspec.conformance.matrix import findings
from klspec.conformance.rlhf_libraries import LIBRARIES
from klspec.spec.clauses import CATALOG, clause

#: The torch rows in the formats the libraries' token KLs run in.
TORCH_ROWS = ("torch.kl_div.logits.float32", "torch.kl_div.logits.bfloat16")

#: What a user of each library should do, in view of its findings: (library, advice,
#: the clause ids the advice is about; each must fail, or be advisory, in some row).
ADVICE: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "verl",
        "low_var_kl (the default `kl_loss_type`) and k3+ compute (ratio − kl) − 1 in float32, "
        "which is negative on tokens whose two log-probabilities are a few float32 ulps "
        "apart (−6e-8 at log π = −½): a KL metric averaged over many such tokens can read "
        "below zero. Compute it as `torch.expm1(kl) - kl` (never negative) or clamp the "
        "result at 0. The ±10 clamp is exact only for log r in [−11.0, 2.61]; beyond, it "
        "caps the penalty and its gradient (the example shows a mean biased by −0.8). "
        "The '+' modes raise NotImplementedError up to v0.7.1: use a verl with "
        "verl-project/verl#6058 for k3+.",
        ("estimator.k3_nonnegative", "estimator.clamp_bias", "estimator.definitions"),
    ),
    (
        "OpenRLHF",
        "compute_approx_kl's k3 is (e^d − 1) − d in float32, which returns −d for "
        "0 < d < 2⁻²⁴ (−9e-16 for a token whose probability is within a few ulps of 1): "
        "write it `torch.expm1(d) - d`. Its clamp to [−10, 10] applies to every estimator: "
        "k1 is exact only for |log r| ≤ 10, k2 for |log r| ≤ 4.47, k3 for log r in "
        "[−11.0, 2.61]; outside, the mean is biased (−0.5, −2.5 and −0.8 on the examples).",
        ("estimator.k3_nonnegative", "estimator.clamp_bias"),
    ),
    (
        "TRL",
        "GRPO's per_token_kl = exp(d) − d − 1 and PPO's k3 = (e^d − 1) − d go negative in "
        "float32 on log-probabilities a few ulps apart: use `torch.expm1(d) - d`. With "
        "`use_bias_correction_kl` the k2 gradient is formed as (1 − e^d) + (e^d − 1 − d), "
        "which cancels: its absolute error is about u·e^d rather than u·|d|, so its "
        "relative error grows like u/|log r| (measured in float32: up to 0.15% at "
        "|log r| = 1e-5, up to 6% at 1e-6). GKD's "
        "generalized_jsd_loss returns NaN as soon as a logit is −inf (0·(−inf) inside "
        "kl_div with log_target) and goes negative on nearly equal rows: replace −inf "
        "logits by a large negative finite number (or mask the terms) before the loss, "
        "and clamp the per-token KL at 0 if it is logged.",
        (
            "estimator.k3_nonnegative",
            "estimator.gradients",
            "token_kl.masked",
            "token_kl.nonnegative",
        ),
    ),
    (
        "torchtune",
        "ForwardKLLoss returns the cross-entropy H(teacher, student), the KL plus the "
        "teacher's entropy: right for training (the gradient in the student is the KL's), "
        "not a KL to log or compare across teachers (0.69 for identical 2-token rows). "
        "ReverseKLLoss sets every term at a −inf logit of either model to 0, so a student "
        "that puts mass where the teacher has none is not penalised: it returns a finite, "
        "even negative, value where the KL is +inf; and it goes slightly negative on "
        "nearly equal rows in float32.",
        ("token_kl.definition", "token_kl.masked", "token_kl.nonnegative"),
    ),
    (
        "NeMo-RL",
        "calculate_kl's k3 (and the loss's, which adds k2's gradient) is (e^d − 1) − d in "
        "float32: negative for 0 < d < 2⁻²⁴; write `torch.expm1(d) - d`. Its output clamp "
        "(±10 by default) biases every estimator outside log r in [−10, 10] (k1), "
        "|log r| ≤ 4.47 (k2) and [−11.0, 2.61] (k3).",
        ("estimator.k3_nonnegative", "estimator.clamp_bias"),
    ),
    (
        "torch",
        "log_softmax followed by kl_div(log_target=True) returns NaN at a −inf logit of P "
        "(0·(−inf)) and, without a clamp, negative values on nearly equal rows: −8e-8 in "
        "float32, −1e-3 in bfloat16. Mask −inf terms with `torch.where` (testing the "
        "log-probabilities, not the probabilities) and clamp the sum at 0; upcast bfloat16 "
        "logits to float32 before the log_softmax.",
        ("token_kl.masked", "token_kl.nonnegative"),
    ),
)


def _anchor(text: str) -> str:
    text = text.lower().replace("+", "-plus")  # verl.k1 and verl.k1+ apart
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")


def _source_link(source: str) -> str:
    """``owner/repo@commit path function`` as a link to the file at that commit."""
    where, _, rest = source.partition(" ")
    path, _, function = rest.partition(" ")
    repo, _, commit = where.partition("@")
    url = f"https://github.com/{repo}/blob/{commit}/{path}"
    return f"[`{repo}` {path}]({url}) at `{commit[:12]}`" + (f", {function}" if function else "")


def _counts(row: dict[str, Any]) -> tuple[int, int, int]:
    cells = [row["clauses"].get(c.id, {"status": "n/a"}) for c in CATALOG]
    return tuple(sum(c["status"] == s for c in cells) for s in ("pass", "fail", "advisory"))


def _declared(record: Any) -> str:
    parts = [f"checked in {record.dtype}"]
    if record.log_ratio_range:
        lo, hi = record.log_ratio_range
        parts.append(f"exact for log r in [{lo:g}, {hi:g}] (`--log-ratio-range`)")
    if record.gradient_of:
        parts.append(f"straight-through: the gradient of {record.gradient_of} (`--gradient-of`)")
    if record.reduction:
        parts.append(f"returns the {record.reduction} over positions (`--reduction`)")
    if record.beta is not None:
        parts.append(f"at β = {record.beta:g} (`--beta`)")
    if record.signature and "label_smoothing" in record.signature:
        parts.append("with label smoothing (named in `--signature`)")
    return "; ".join(parts)


def _finding_lines(finding: dict[str, Any]) -> list[str]:
    level = "" if finding["required"] else " (advisory)"
    cause = finding["cause"]
    lines = [f"{finding['number']}. **{cause[:1].upper() + cause[1:]}**{level}. Breaks "]
    lines[-1] += (
        ", ".join(
            f"[`{cid}`](index.md#{_anchor(cid)})"
            + ("" if clause(cid).level == "required" else " (advisory)")
            for cid in finding["clauses"]
        )
        + "."
    )
    example = finding["example"]
    lines += ["", f"   `{example['check']}`: {example['message']}", ""]
    if example["counterexample"]:
        lines += ["   ```text", f"   {example['counterexample']}", "   ```", ""]
    if example["reproduce"]:
        lines += ["   ```sh", f"   {example['reproduce']}", "   ```", ""]
    return lines


def _row_section(name: str, row: dict[str, Any] | None, record: Any = None) -> list[str]:
    lines = [f"#### `{name}`", ""]
    if record is not None:
        lines += [
            f"{record.summary} Source: {_source_link(record.source)}; {_declared(record)}.",
            "",
        ]
    if row is None:
        return [*lines, "Not run here (torch is not installed).", ""]
    if record is None:
        lines += [f"{row['description']}.", ""]
    found = findings(row)
    if not found:
        return [*lines, "Meets every clause it can be checked against.", ""]
    for finding in found:
        lines += _finding_lines(finding)
    return lines


def render(data: dict[str, Any]) -> str:
    """The page, from the matrix data (deterministic: same data, same text)."""
    rows = {r["target"]: r for r in data["rows"] if r.get("clauses")}
    libraries = list(dict.fromkeys(r.library for r in LIBRARIES))
    lines = [
        "# The KL code of RLHF and distillation libraries",
        "",
        "<!-- Generated by `klspec matrix` from docs/conformance.json; do not edit. -->",
        "",
        "verl, OpenRLHF, TRL, torchtune and NeMo-RL each compute the KL penalty of a policy "
        "against a reference (or a student against its teacher) in a few lines of torch. "
        "klspec re-implements those lines in torch alone, operation by operation, with the "
        "library's casts, clamps, `detach()` tricks and reductions, from its public source at "
        "the commit named below ([conformance/rlhf_libraries.py]"
        "(../conformance/rlhf_libraries.py); nothing of the libraries is imported), and "
        "checks them as float32 code: inputs drawn in float32, tolerances from float32's unit "
        "roundoff, gradients from torch's autograd, each clamp declared with the range of "
        "log r where it is inactive, each straight-through estimator with the gradient it "
        f"declares. Profile `{data['profile']}` ({data['max_examples']} derandomized examples "
        "per check), as in [the conformance matrix](conformance.md). Each row is a built-in "
        "target: `klspec check verl.low_var_kl` reruns it.",
        "",
        "The estimators are Schulman's, with d = log r = ref_logp − logp per sampled token: "
        "k1 = −d, k2 = d²/2, k3 = (eᵈ − 1) − d; the token KLs are KL(softmax(a)‖softmax(b)) "
        "per position ([catalog](index.md#language-models)). TRL's DPO losses are checked "
        "as the DPO loss of a pair, −log σ(β·m) from the margin m of the log-probabilities "
        "of whole responses ([catalog](index.md#preference-losses), [worked](dpo.md)).",
        "",
        "## Summary",
        "",
        "| target | computes | ✓ | ✗ | ⚠ | findings |",
        "|---|---|---|---|---|---|",
    ]
    names = [r.name for r in LIBRARIES] + list(TORCH_ROWS)
    for name in names:
        row = rows.get(name)
        record = next((r for r in LIBRARIES if r.name == name), None)
        what = record.quantity if record is not None else "token-kl"
        if row is None:
            lines.append(f"| `{name}` | {what} | | | | not run here |")
            continue
        passed, failed, advisory = _counts(row)
        causes = "; ".join(f["cause"].split(": ", 1)[0] for f in findings(row)) or "none"
        lines.append(
            f"| [`{name}`](#{_anchor(name)}) | {what} | {passed} | {failed} | {advisory} "
            f"| {causes.replace('|', chr(92) + '|')} |"
        )
    lines.append("")
    for library in libraries:
        lines += [f"## {library}", ""]
        for _, advice, _ in (a for a in ADVICE if a[0] == library):
            lines += [f"**What to do.** {advice}", ""]
        for record in (r for r in LIBRARIES if r.library == library):
            lines += [f'<a id="{_anchor(record.name)}"></a>', ""]
            lines += _row_section(record.name, rows.get(record.name), record)
    lines += ["## torch.kl_div in float32 and bfloat16", ""]
    for _, advice, _ in (a for a in ADVICE if a[0] == "torch"):
        lines += [f"**What to do.** {advice}", ""]
    for name in TORCH_ROWS:
        lines += [f'<a id="{_anchor(name)}"></a>', ""]
        lines += _row_section(name, rows.get(name))
    return "\n".join(lines).rstrip("\n") + "\n"
