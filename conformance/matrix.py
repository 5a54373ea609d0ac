"""The conformance matrix: every built-in adapter against every clause, as docs/conformance.md.

:func:`collect` runs the adapters (:mod:`klspec.conformance.adapters`) with a
derandomized profile and returns plain data; :func:`render` turns that data
into the page: a table with a row per implementation and a column per clause,
each failing cell linking to its counterexample and explanation further down.
The data is embedded in the page (an HTML comment at the end), so that

* the page can be checked against its own data (nothing edited by hand),
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
_DATA = re.compile(r"<!-- klspec-matrix-data\n(.*)\n-->\n\Z", re.DOTALL)
_MARK = {"pass": "✓", "fail": "✗", "advisory": "⚠", "xfail": "✗", "skip": "–"}


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
            "clauses": {c.clause.id: _clause_cell(c) for c in report.clauses},
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


def _clause_cell(result: Any) -> dict[str, Any]:
    cell: dict[str, Any] = {"verdict": result.verdict}
    if result.verdict == "skip":
        cell["reason"] = result.results[0].reason
    if result.failures:
        cell["failures"] = [
            {
                "check": r.check.name,
                "message": r.message,
                "counterexample": r.counterexample,
                "reproduce": r.reproduce,
            }
            for r in result.failures
        ]
    return cell


# --- the page ---------------------------------------------------------------------------------


def _anchor(*parts: str) -> str:
    return "-".join(re.sub(r"[^a-z0-9]+", "-", p.lower()).strip("-") for p in parts)


def render(data: dict[str, Any]) -> str:
    """The markdown page for the matrix data (deterministic: same data, same text)."""
    rows = data["rows"]
    ran = [r for r in rows if r.get("clauses")]
    lines = [
        "# Conformance matrix",
        "",
        "<!-- Generated by `klspec matrix` from the data at the end of this page; do not edit. -->",
        "",
        "Every built-in adapter (`klspec adapters`) checked against every clause of the spec "
        f"(`klspec list`) with the `{data['profile']}` profile ({data['max_examples']} "
        "derandomized examples per check, shrinking limited), each call limited to "
        f"{data['timeout']:g} s. Environment: " + _versions(data["environment"]) + ".",
        "",
        "✓ passes · ✗ fails a required clause · ⚠ misses an advisory clause (reported, "
        "does not fail a run) · – not applicable (the implementation lacks what the clause "
        "needs). Each ✗ and ⚠ links to the counterexample and the explanation below. "
        "Reproduce any row with `klspec check TARGET`. One table per topic of the catalog, "
        "with the implementations that have something in it (the reference has everything).",
        "",
    ]
    for topic in TOPICS:
        lines += _topic_table(topic, ran)
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
        lines += _findings(row)
    lines.append(_embedded(data))
    return "\n".join(lines)


def _topic_table(topic: Any, ran: list[dict[str, Any]]) -> list[str]:
    """One topic's table: its clauses as columns, the rows for which one of them applies."""
    columns = [
        c.id for c in CATALOG if c.topic == topic.key and any(c.id in r["clauses"] for r in ran)
    ]
    rows = [
        r
        for r in ran
        if any(r["clauses"].get(cid, {"verdict": "skip"})["verdict"] != "skip" for cid in columns)
        # inputs.unmodified runs for every function: alone it does not put a row in a topic
        and any(
            r["clauses"].get(cid, {"verdict": "skip"})["verdict"] != "skip"
            for cid in columns
            if cid != "inputs.unmodified"
        )
    ]
    if not columns or not rows:
        return []
    title = topic.title
    lines = [f"## {title}", ""]
    lines.append("| implementation | " + " | ".join(f"`{c}`" for c in columns) + " |")
    lines.append("|---|" + "---|" * len(columns))
    for row in rows:
        cells = []
        for cid in columns:
            cell = row["clauses"].get(cid, {"verdict": "skip"})
            mark = _MARK[cell["verdict"]]
            if cell.get("failures"):
                mark = f"[{mark}](#{_anchor(row['target'], cid)})"
            cells.append(mark)
        lines.append(
            f"| [`{row['target']}`](#{_anchor(row['target'])}) | " + " | ".join(cells) + " |"
        )
    return [*lines, ""]


def _findings(row: dict[str, Any]) -> list[str]:
    target = row["target"]
    versions = _versions(row["libraries"])
    lines = [f'<a id="{_anchor(target)}"></a>', "", f"### `{target}`", ""]
    lines += [f"{row['description']} ({versions}).", ""]
    conventions = ADAPTERS[target].conventions if target in ADAPTERS else ""
    if conventions:
        lines += ["> " + line if line else ">" for line in conventions.splitlines()]
        lines.append("")
    cells = row["clauses"]
    failing = [(c.id, cells[c.id]) for c in CATALOG if cells.get(c.id, {}).get("failures")]
    if not failing:
        lines += ["Meets every clause it can be checked against.", ""]
    for cid, cell in failing:
        c = clause(cid)
        level = "advisory, reported only" if cell["verdict"] == "advisory" else "required"
        lines += [
            f'<a id="{_anchor(target, cid)}"></a>',
            "",
            f"#### `{target}` · `{cid}` ({level})",
            "",
            f"**Clause:** {c.statement}",
            "",
        ]
        if c.notes:
            lines += [f"**How it is checked:** {c.notes}", ""]
        for f in cell["failures"]:
            lines += [f"- `{f['check']}`: {f['message']}", ""]
            if f["counterexample"]:
                lines += ["  ```text", f"  {f['counterexample']}", "  ```", ""]
            if f["reproduce"]:
                lines += ["  ```sh", f"  {f['reproduce']}", "  ```", ""]
    return lines


def _versions(libraries: dict[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(libraries.items()))


def _embedded(data: dict[str, Any]) -> str:
    text = json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True, allow_nan=False)
    return "<!-- klspec-matrix-data\n" + text.replace("-->", "--\\u003e") + "\n-->\n"


def read(page: str) -> dict[str, Any] | None:
    """The data embedded in a rendered page, or None if there is none."""
    found = _DATA.search(page)
    return json.loads(found.group(1)) if found else None
