"""The conformance matrix: every built-in adapter against every clause.

:func:`collect` runs the adapters (:mod:`klspec.conformance.adapters`) with a
derandomized profile and returns plain data, which ``klspec matrix`` writes as
docs/conformance.json (:func:`to_json`: for every adapter, every clause id with its
status — ``pass``, ``fail``, ``advisory`` or ``n/a`` — and its root cause, and the
failures behind it; what tools read) and renders as docs/conformance.md
(:func:`render`): a summary per topic — each implementation with the clauses it
fails, by name, grouped by root cause — then the findings, one per bug and
library, with the clauses it breaks, a counterexample and a line to reproduce it.
The page is rendered from the JSON alone, so that

* the page can be checked against its data (nothing edited by hand),
* a run where some library is missing keeps that adapter's earlier results,
  marked with the versions that produced them, instead of dropping them — the
  page is the same whichever optional libraries are installed, and says which
  rows were not re-run and why,
* a test can tell whether the page is out of date: each row records a
  fingerprint of the sources that decided its results (:func:`fingerprint` of
  :func:`result_modules`: checks, strategies, tolerances, oracle, runner,
  adapters, reference) and the versions of the libraries involved.

Nothing time-dependent is recorded: same sources, same library versions and
the same profile give the same page.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from klspec.conformance.adapters import ADAPTERS, library_versions
from klspec.spec.clauses import CATALOG, clause
from klspec.spec.interface import TOPICS

#: Libraries whose versions decide every row (the search and the oracle).
ENVIRONMENT = ("hypothesis", "numpy", "mpmath", "scipy")
#: How a clause's verdict is published: the statuses of docs/conformance.json.
STATUS = {
    "pass": "pass",
    "fail": "fail",
    "advisory": "advisory",
    "xfail": "fail",
    "skip": "n/a",
    "unfinished": "n/a",
}


#: Where the modules deciding a row's results are found: what these import, transitively.
_RESULT_ROOTS = (
    "klspec.conformance.runner",
    "klspec.conformance.isolation",
    "klspec.conformance.targets",
)


#: Modules that the result modules import only to write docs (the derivations behind
#: ``derivation_clauses``, the docs pages): they cannot change a check's verdict.
_NOT_RESULTS = (
    "klspec.spec.derivations",
    "klspec.conformance.docs",
    "klspec.conformance.worked_pages",
    "klspec.conformance.matrix",
)


def result_modules() -> list[str]:
    """The klspec modules that decide the results: the imports of :data:`_RESULT_ROOTS`, closed.

    Found by reading the sources (``import`` statements anywhere in a module),
    so a docs or derivations module that nothing here imports does not count, and
    those only imported to write docs (:data:`_NOT_RESULTS`) are left out.
    The package ``klspec.spec`` itself only re-exports, and is left out.
    """
    import ast
    import importlib.util

    def module(name: str) -> str | None:
        if not name.startswith(("klspec.spec", "klspec.reference", "klspec.conformance")):
            return None
        if name in ("klspec.spec", "klspec.conformance"):
            return None
        if name.startswith(_NOT_RESULTS):
            return None
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            return None
        return name if spec is not None and spec.origin else None

    found, todo = set(), list(_RESULT_ROOTS)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        origin = importlib.util.find_spec(name).origin
        for node in ast.walk(ast.parse(Path(origin).read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            todo += [n for n in map(module, names) if n and n not in found]
    return sorted(found)


def fingerprint() -> str:
    """sha256 of the sources of :func:`result_modules` (their names and their text)."""
    import importlib.util

    digest = hashlib.sha256()
    for name in result_modules():
        origin = Path(importlib.util.find_spec(name).origin)
        digest.update(name.encode() + b"\0" + origin.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def collect(
    *,
    profile: str = "fast",
    adapters: Iterable[str] | None = None,
    previous: dict[str, Any] | None = None,
    timeout: float = 10.0,
    on_row: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the reference and the adapters against every clause and return the matrix data.

    ``adapters`` limits the run to those targets (default: the reference and every
    adapter). ``previous`` is the data of the existing page: the rows of targets
    not run now (not asked for, or whose library is missing here) are kept from it.
    """
    from klspec.conformance.runner import PROFILES, run
    from klspec.conformance.targets import resolve

    wanted = set(adapters) if adapters is not None else {"reference", *ADAPTERS}
    old = {row["target"]: row for row in (previous or {}).get("rows", [])}
    rows = []
    for name in ["reference", *ADAPTERS]:
        adapter = ADAPTERS.get(name)
        missing = adapter.missing() if adapter else None
        if name not in wanted or missing:
            if name in old and old[name].get("clauses"):
                row = dict(old[name])
                if missing:
                    row["kept"] = f"not re-run: {missing}"
            else:
                row = {"target": name, "skipped": missing or "not run"}
            rows.append(row)
            continue
        impl = resolve(name)
        report = run(impl, profile=profile, timeout=timeout, isolate=True)
        row = {
            "target": name,
            "description": impl.description,
            "libraries": adapter.versions() if adapter else library_versions(("numpy",)),
            "sources": fingerprint(),
            "conventions": [c.words for c in impl.conventions],
            "clauses": {c.clause.id: clause_cell(c) for c in report.clauses},
        }
        rows.append(row)
        if on_row is not None:
            on_row(row)
    settings = PROFILES[profile]
    return {
        "profile": profile,
        "max_examples": settings.max_examples,
        "timeout": timeout,
        "environment": library_versions(ENVIRONMENT),
        "rows": rows,
    }


def clause_cell(result: Any) -> dict[str, Any]:
    """One clause of one implementation: its status, its root cause(s) and the failures."""
    status = STATUS[result.verdict]
    cell: dict[str, Any] = {"status": status}
    if status == "n/a":
        cell["reason"] = result.results[0].reason if result.results else ""
    if result.failures:
        causes = [_cause_of(r) for r in result.failures]
        cell["cause"] = "; ".join(dict.fromkeys(c["text"] for c in causes))
        cell["by_convention"] = all(c["by_convention"] for c in causes)
        cell["failures"] = [
            {
                "check": r.check.name,
                "message": r.message,
                "cause": cause["text"],
                "finding": cause["title"],
                "cause_key": cause["key"],
                "by_convention": cause["by_convention"],
                "counterexample": r.counterexample,
                "reproduce": r.reproduce,
            }
            for r, cause in zip(result.failures, causes, strict=True)
        ]
    return cell


def _cause_of(result: Any) -> dict[str, Any]:
    cause = result.cause
    if cause is None:  # not analysed (the analysis broke, or the check could not run)
        text = result.message.rsplit(" [", 1)[0] if result.status == "fail" else result.message
        return {"text": text, "title": text, "key": ["message", text], "by_convention": False}
    return {
        "text": cause.text,
        "title": cause.title,
        "key": [_plain(k) for k in cause.key],
        "by_convention": cause.by_convention,
    }


def _plain(x: Any) -> Any:
    return list(x) if isinstance(x, tuple) else x


def _tuple(x: Any) -> Any:
    """A cause key read back from JSON: its lists as tuples again (hashable)."""
    return tuple(_tuple(v) for v in x) if isinstance(x, list) else x


# --- findings: one per bug and implementation ----------------------------------------------


def findings(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The row's failures grouped by root cause: one finding per cause, with its clauses.

    In catalog order of the first clause each breaks; each finding keeps the failures
    that show it, the one on the clause about its own hazard first (the most direct
    counterexample).
    """
    from klspec.conformance.causes import merged_title, same_bug

    failures = [
        (c, failure)
        for c in CATALOG
        for failure in row["clauses"].get(c.id, {}).get("failures", ())
    ]
    finding_of = same_bug(tuple(_tuple(f["cause_key"])) for _, f in failures)
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for c, failure in failures:
        key = finding_of[tuple(_tuple(failure["cause_key"]))]
        merged = key != tuple(_tuple(failure["cause_key"])) or any(
            v == key and k != key for k, v in finding_of.items()
        )
        group = groups.setdefault(
            key,
            {
                "cause": merged_title(key) if merged else failure["finding"],
                "by_convention": failure["by_convention"],
                "clauses": [],
                "failures": [],
            },
        )
        if c.id not in group["clauses"]:
            group["clauses"].append(c.id)
        group["failures"].append({"clause": c.id, "level": c.level, **failure})
    out = list(groups.values())
    for number, finding in enumerate(out, 1):
        finding["number"] = number
        finding["required"] = any(f["level"] == "required" for f in finding["failures"])
        special = [f for f in finding["failures"] if ".special." in f["clause"]]
        finding["example"] = (special or finding["failures"])[0]
    return out


# --- docs/conformance.json ----------------------------------------------------------------


def to_json(data: dict[str, Any]) -> str:
    """docs/conformance.json: the matrix data, findings included (deterministic text)."""
    from klspec import __version__

    out = {
        "klspec": __version__,
        "profile": data["profile"],
        "max_examples": data["max_examples"],
        "timeout": data["timeout"],
        "environment": data["environment"],
        "statuses": {
            "pass": "meets the clause",
            "fail": "fails a required clause",
            "advisory": "misses an advisory clause (reported, does not fail a run)",
            "n/a": "not applicable: the implementation lacks what the clause needs",
        },
        "rows": data["rows"],
    }
    return json.dumps(out, indent=1, ensure_ascii=False, sort_keys=True, allow_nan=False) + "\n"


def from_json(text: str) -> dict[str, Any]:
    """The matrix data of a docs/conformance.json."""
    return json.loads(text)


# --- the page ---------------------------------------------------------------------------------


def _anchor(*parts: str) -> str:
    return "-".join(re.sub(r"[^a-z0-9]+", "-", str(p).lower()).strip("-") for p in parts)


def render(data: dict[str, Any]) -> str:
    """The markdown page for the matrix data (deterministic: same data, same text)."""
    rows = data["rows"]
    ran = [r for r in rows if r.get("clauses")]
    found = {r["target"]: findings(r) for r in ran}
    lines = [
        "# Conformance matrix",
        "",
        "<!-- Generated by `klspec matrix` from docs/conformance.json; do not edit. -->",
        "",
        "Every built-in adapter (`klspec adapters`) checked against every clause of the spec "
        f"(`klspec list`) with the `{data['profile']}` profile ({data['max_examples']} "
        "derandomized examples per check, shrinking limited), each call limited to "
        f"{data['timeout']:g} s. Environment: " + _versions(data["environment"]) + ". "
        "The same data, for tools: [conformance.json](conformance.json).",
        "",
        "Each failure is replayed to find its root cause: the shrunk counterexample is "
        "tried with each hazard (a zero, a subnormal or tiny entry) removed, so a failure "
        "is blamed on the condition it needs; a value that is exactly what a documented "
        "convention of the library gives (no normalisation, a clip, a reduction, float32) "
        "is reported as that convention, not as inaccuracy. One bug is one finding, "
        "listed once per implementation with the clauses it breaks.",
        "",
        "✓ passes · ✗ fails a required clause · ⚠ misses an advisory clause (reported, "
        "does not fail a run) · – not applicable (the implementation lacks what the clause "
        "needs).",
        "",
        "## Summary",
        "",
    ]
    for topic in TOPICS:
        lines += _topic_summary(topic, ran, found)
    not_run = [r for r in rows if not r.get("clauses")]
    kept = [r for r in ran if r.get("kept")]
    if not_run or kept:
        lines += ["## Not run here", ""]
        for r in not_run:
            lines.append(f"- `{r['target']}`: skipped, {r['skipped']}.")
        for r in kept:
            versions = _versions(r["libraries"])
            lines.append(
                f"- `{r['target']}`: {r['kept']}; its row is from an earlier run ({versions})."
            )
        lines.append("")
    lines += ["## Findings", ""]
    for row in ran:
        lines += _findings_section(row, found[row["target"]])
    return "\n".join(lines).rstrip("\n") + "\n"


def _topic_summary(topic: Any, ran: list[dict[str, Any]], found: dict[str, Any]) -> list[str]:
    """One topic: a row per implementation with something in it, its counts and failures."""
    ids = [c.id for c in CATALOG if c.topic == topic.key]
    rows = [
        r
        for r in ran
        # inputs.unmodified runs for every function: alone it does not put a row in a topic
        if any(
            r["clauses"].get(cid, {}).get("status", "n/a") != "n/a"
            for cid in ids
            if cid != "inputs.unmodified"
        )
    ]
    if not rows:
        return []
    lines = [
        f"### {topic.title}",
        "",
        f"{len(ids)} clauses ([catalog](index.md#{_anchor(topic.title)})).",
        "",
        "| implementation | ✓ | ✗ | ⚠ | – | what fails, and why |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [row["clauses"].get(cid, {"status": "n/a"}) for cid in ids]
        counts = [sum(c["status"] == s for c in cells) for s in ("pass", "fail", "advisory", "n/a")]
        why = []
        for finding in found[row["target"]]:
            mine = [cid for cid in finding["clauses"] if cid in ids]
            if not mine:
                continue
            link = (
                f"[{_cell(_short(finding['cause']))}](#{_anchor(row['target'], finding['number'])})"
            )
            why.append(f"{link}: " + ", ".join(_clause_ref(cid, row) for cid in mine))
        target = f"[`{row['target']}`](#{_anchor(row['target'])})"
        what = "<br>".join(why) or "meets every clause"
        lines.append(f"| {target} | {' | '.join(map(str, counts))} | {what} |")
    return [*lines, ""]


def _clause_ref(cid: str, row: dict[str, Any]) -> str:
    mark = "⚠" if row["clauses"][cid]["status"] == "advisory" else "✗"
    return f"{mark} `{cid}`"


def _findings_section(row: dict[str, Any], found: list[dict[str, Any]]) -> list[str]:
    target = row["target"]
    versions = _versions(row["libraries"])
    lines = [f'<a id="{_anchor(target)}"></a>', "", f"### `{target}`", ""]
    lines += [f"{row['description']} ({versions}).", ""]
    conventions = ADAPTERS[target].conventions if target in ADAPTERS else ""
    if conventions:
        lines += ["> " + line if line else ">" for line in conventions.splitlines()]
        lines.append("")
    if not found:
        lines += ["Meets every clause it can be checked against.", ""]
    for finding in found:
        level = "" if finding["required"] else " (advisory clauses only)"
        lines += [
            f'<a id="{_anchor(target, finding["number"])}"></a>',
            "",
            f"#### {finding['number']}. {_capital(_short(finding['cause']))}{level}",
            "",
        ]
        if _short(finding["cause"]) != finding["cause"]:
            lines += [_capital(finding["cause"]) + ".", ""]
        lines += [
            "Breaks: "
            + ", ".join(
                f"[`{cid}`](index.md#{_anchor(cid)})"
                + ("" if clause(cid).level == "required" else " (advisory)")
                for cid in finding["clauses"]
            )
            + ".",
            "",
        ]
        example = finding["example"]
        lines += [f"For example `{example['check']}`: {example['message']}", ""]
        if example["counterexample"]:
            lines += ["```text", example["counterexample"], "```", ""]
        if example["reproduce"]:
            lines += ["```sh", example["reproduce"], "```", ""]
        others = [f for f in finding["failures"] if f is not example]
        if others:
            lines += ["<details><summary>The other failures with this cause</summary>", ""]
            for f in others:
                lines += [f"- `{f['check']}`: {f['message']}", ""]
                if f["reproduce"]:
                    lines += ["  ```sh", f"  {f['reproduce']}", "  ```", ""]
            lines += ["</details>", ""]
    return lines


def _short(text: str) -> str:
    """A cause's headline: up to its first colon ("by its documented convention, it ...")."""
    return text.split(": ", 1)[0]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _versions(libraries: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(libraries.items()))
