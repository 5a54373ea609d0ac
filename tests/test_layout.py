"""The layout holds: imports run one way, and the README's layout section lists every module.

docs/design.md states the direction: cli → conformance → spec → reference, with
the reference importing nothing of klspec, and conformance → reference only for
targets and worked pages. These tests read the sources (``ast``), so an import
against the direction fails here whether or not any test exercises it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Repository folder -> the package it installs as.
PACKAGES = {
    "cli": "klspec",
    "spec": "klspec.spec",
    "reference": "klspec.reference",
    "conformance": "klspec.conformance",
}

#: Package -> the klspec packages its modules may import.
ALLOWED = {
    "klspec.reference": {"klspec.reference"},
    "klspec.spec": {"klspec.spec", "klspec.reference"},
    "klspec.conformance": {"klspec.conformance", "klspec.spec", "klspec.reference"},
    "klspec": {"klspec", "klspec.conformance", "klspec.spec", "klspec.reference"},
}

#: (module, imported package) -> why this one edge against the direction is allowed.
EXCEPTIONS = {
    ("klspec.spec", "klspec.conformance"): "the deprecated forwarding of names that moved "
    "(klspec.spec.check etc.), resolved only when such a name is asked for",
}


def _modules():
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield path, ".".join((package, *parts))


def _package(module: str) -> str:
    """The klspec package a module belongs to (the longest match of PACKAGES' values)."""
    return max((p for p in PACKAGES.values() if module == p or module.startswith(p + ".")), key=len)


def _imports(path: Path, module: str):
    """Every klspec module imported by ``path``: import statements and import_module("...")."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1]])
                base = f"{base}.{node.module}" if node.module else base
            # ``from klspec import reference`` imports the module klspec.reference.
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in NAMES]
            yield from submodules or [base]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield node.args[0].value


MODULES = list(_modules())
NAMES = {module for _, module in MODULES}


@pytest.mark.parametrize(("path", "module"), MODULES, ids=[m for _, m in MODULES])
def test_imports_run_one_way(path, module):
    own = _package(module)
    wrong = []
    for name in _imports(path, module):
        # The root package only holds __version__: anything may read it.
        if not name.startswith("klspec."):
            continue
        target = _package(name)
        if target in ALLOWED[own] or (own, target) in EXCEPTIONS:
            continue
        wrong.append(name)
    assert not wrong, f"{module} imports {wrong}: against the direction in docs/design.md"


def test_the_one_exception_is_still_needed_and_documented():
    """An allowed edge that nothing uses any more must be removed from EXCEPTIONS."""
    used = {
        (_package(module), _package(name))
        for path, module in MODULES
        for name in _imports(path, module)
        if name.startswith("klspec.")
    }
    assert set(EXCEPTIONS) <= used
    design = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    assert "DeprecationWarning" in design


def test_the_reference_imports_nothing_else_of_klspec():
    for path, module in MODULES:
        if _package(module) == "klspec.reference":
            others = [n for n in _imports(path, module) if n.startswith("klspec.")]
            assert all(n.startswith("klspec.reference") for n in others), (module, others)


def _layout_section() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"## Layout\n.*?```\n(.*?)```", readme, re.DOTALL)
    assert found, "README.md has no '## Layout' section with the tree in a code block"
    return found.group(1)


def test_readme_layout_lists_every_module():
    layout = _layout_section()
    listed = set(re.findall(r"[\w/]+\.py", layout))
    missing = []
    for path, _ in MODULES:
        rel = path.relative_to(ROOT).as_posix()
        if path.name not in listed and rel not in listed:
            missing.append(rel)
    assert not missing, f"README.md's layout section does not list {missing}"


def test_readme_layout_names_no_module_that_does_not_exist():
    names = {p.name for p, _ in MODULES} | {p.relative_to(ROOT).as_posix() for p, _ in MODULES}
    listed = re.findall(r"[\w/]+\.py", _layout_section())
    gone = [n for n in listed if n not in names and not (ROOT / n).is_file()]
    assert not gone, f"README.md's layout section lists modules that do not exist: {gone}"


def test_no_citation_of_design_files_outside_the_repository():
    """DESIGN.md and STYLE.md are not in the repository: code and docs cite docs/design.md."""
    cited = []
    for path in [*ROOT.glob("*.toml"), *ROOT.glob("*.md"), *(p for p, _ in MODULES)]:
        text = path.read_text(encoding="utf-8")
        if re.search(r"(?<![\w/])(DESIGN|STYLE)\.md", text):
            cited.append(path.relative_to(ROOT).as_posix())
    for path in (ROOT / "docs").rglob("*.md"):
        if re.search(r"(?<![\w/])(DESIGN|STYLE)\.md", path.read_text(encoding="utf-8")):
            cited.append(path.relative_to(ROOT).as_posix())
    for path in (ROOT / "tests").glob("*.py"):
        if path.name != "test_layout.py" and re.search(
            r"(?<![\w/])(DESIGN|STYLE)\.md", path.read_text(encoding="utf-8")
        ):
            cited.append(path.relative_to(ROOT).as_posix())
    assert not cited, f"these cite DESIGN.md or STYLE.md, which are not in the repository: {cited}"


@pytest.mark.parametrize("name", ["check", "run", "replay", "ConformanceError"])
def test_names_that_moved_to_conformance_still_resolve_with_a_warning(name):
    import klspec.conformance as conformance
    import klspec.spec as spec

    with pytest.warns(DeprecationWarning, match=f"klspec.conformance.{name}"):
        moved = getattr(spec, name)
    assert moved is getattr(conformance, name)


def test_an_unknown_name_is_an_attribute_error():
    import klspec.spec as spec

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        spec.nothing  # noqa: B018
