"""`klspec prove --module`: a user's own derivations, found, checked and reported.

The worked example (examples/label_smoothing.py) passes, and a broken step of it is
rejected; modules that cannot be imported, define nothing, or clash are usage errors.
"""

from __future__ import annotations

import argparse
import importlib
import io
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sympy as sp

from klspec.spec.derivations import check, main_prove, with_step
from klspec.spec.derivations import prove as prove_module

ROOT = Path(__file__).resolve().parent.parent

#: A module with one true and one false step, and one that is fine but clashes on id.
FALSE_STEP = textwrap.dedent(
    """
    import sympy as sp
    from klspec.spec.derivations import Chain, Derivation, Proved, Step

    x = sp.Symbol("x", positive=True)
    GOOD = Derivation(
        id="derivation.log_square", title="log x² = 2 log x", statement="s",
        assumptions=("x > 0",), symbols={"x": x}, conclusion="c",
        chains=(Chain(start=sp.log(x**2), steps=(Step(2 * sp.log(x), "split", Proved()),)),),
    )
    BAD = Derivation(
        id="derivation.log_sum", title="a false step", statement="s",
        assumptions=("x > 0",), symbols={"x": x}, conclusion="c",
        chains=(Chain(start=sp.log(x + 1), steps=(Step(sp.log(x) + 1, "wrong", Proved()),)),),
    )
"""
)


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    """Write modules into tmp_path, run from there, and forget them afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    written = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
        importlib.invalidate_caches()  # a module written after the interpreter started
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def _prove(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main_prove(list(argv), out=out), out.getvalue()


@pytest.fixture
def example(monkeypatch):
    """examples.label_smoothing, imported from the repository root as a user would."""
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT))
    from examples import label_smoothing

    return label_smoothing


def test_the_example_passes_and_lists_each_step(example):
    status, text = _prove("--module", "examples.label_smoothing")
    assert status == 0, text
    assert text.startswith("derivation.label_smoothing — ")
    for step in ("1.1", "1.2", "1.3", "1.4", "2.1", "2.2", "2.3", "2.4"):
        assert f"  {step} " in text
    assert "asserted: sift with a Kronecker delta, given the label y" in text
    assert "1 derivations, 8 steps, each at its claimed level" in text


def _uniform_part(m, weight):
    return weight * m._sum(sp.log(m.q[m.i]) / m.K)


@pytest.mark.parametrize(
    ("chain", "step", "expr"),
    [
        # Drops the constant H(t): the cross-entropy is not the KL alone.
        (0, 2, lambda m: m.KL()),
        # Forgets the weight ε on the uniform part.
        (1, 2, lambda m: -(1 - m.eps) * sp.log(m.q[m.y]) - _uniform_part(m, 1)),
        # Sifts to the wrong class.
        (1, 2, lambda m: -(1 - m.eps) * sp.log(m.q[m.K]) - _uniform_part(m, m.eps)),
    ],
    ids=["H(t,q) = KL(t||q)", "no weight on uniform", "sift to q_K"],
)
def test_a_broken_step_of_the_example_is_rejected(example, chain, step, expr):
    broken = with_step(example.LABEL_SMOOTHING, chain, step, expr=expr(example))
    result = check(broken)
    assert not result.chains[chain].steps[step].ok
    assert all(r.as_claimed for r in result.chains[chain].steps[:step])


def test_a_false_step_exits_1(user_modules):
    user_modules("false_step_mod", FALSE_STEP)
    status, text = _prove("--module", "false_step_mod")
    assert status == 1
    assert "derivation.log_square — " in text
    assert "derivation.log_sum — " in text
    assert "FAILED (claimed proved)" in text
    assert "1 of 2 steps failed" in text
    # Ids select among the module's derivations, with or without the prefix.
    assert _prove("--module", "false_step_mod", "log_square")[0] == 0
    assert _prove("--module=false_step_mod", "derivation.log_square")[0] == 0


def test_declared_derivations_come_first_and_the_cwd_is_left_as_found(user_modules):
    user_modules("declared_mod", FALSE_STEP + "\nDERIVATIONS = {'only': GOOD}\n")
    path = list(sys.path)
    status, text = _prove("--module", "declared_mod", "--list")
    assert status == 0
    assert text.split() == ["log_square", "log", "x²", "=", "2", "log", "x"]
    assert sys.path == path


def test_builtin_derivations_run_only_when_named(user_modules):
    user_modules(
        "reexport_mod",
        FALSE_STEP + "\nfrom klspec.spec.derivations.gibbs import GIBBS\nfrom klspec.spec."
        "derivations import *  # noqa: F403 - brings in klspec's own DERIVATIONS too\n",
    )
    status, text = _prove("--module", "reexport_mod", "--list")
    assert status == 0
    assert [line.split()[0] for line in text.splitlines()] == ["log_square", "log_sum"]
    status, text = _prove("--module", "reexport_mod", "gibbs", "log_square", "--list")
    assert [line.split()[0] for line in text.splitlines()] == ["gibbs", "log_square"]


def test_an_import_error_exits_2_naming_the_module(user_modules, capsys):
    user_modules("broken_mod", "import sympy\nraise RuntimeError('no\\nway')\n")
    assert _prove("--module", "broken_mod")[0] == 2
    err = capsys.readouterr().err
    assert err == "klspec prove: cannot import module 'broken_mod': RuntimeError: no way\n"
    assert _prove("--module", "no_such_mod_here")[0] == 2
    err = capsys.readouterr().err
    assert "cannot import module 'no_such_mod_here': ModuleNotFoundError" in err
    assert "run from the directory that contains no_such_mod_here" in err


def test_a_module_without_derivations_exits_2(user_modules, capsys):
    user_modules("empty_mod", "X = 1\n")
    user_modules("not_derivations_mod", "DERIVATIONS = ['gibbs']\n")
    assert _prove("--module", "empty_mod")[0] == 2
    assert "module 'empty_mod' defines no derivation" in capsys.readouterr().err
    assert _prove("--module", "not_derivations_mod")[0] == 2
    assert "not_derivations_mod.DERIVATIONS[0] is a str, not a Derivation" in (
        capsys.readouterr().err
    )


def test_an_unknown_id_exits_2_listing_the_known_ones(user_modules, capsys):
    user_modules("unknown_id_mod", FALSE_STEP)
    assert _prove("--module", "unknown_id_mod", "log_cube")[0] == 2
    err = capsys.readouterr().err
    assert "no derivation 'log_cube' in unknown_id_mod or the built-in derivations" in err
    assert "known: log_square, log_sum, gaussian_nll_mse" in err


def test_duplicate_ids_exit_2(user_modules, capsys):
    user_modules("dup_a_mod", FALSE_STEP)
    user_modules("dup_b_mod", FALSE_STEP)  # equal ids, different objects
    assert _prove("--module", "dup_a_mod,dup_b_mod")[0] == 2
    err = capsys.readouterr().err
    assert "two derivations have the id 'derivation.log_square' (in dup_a_mod and dup_b_mod)" in err
    user_modules(
        "shadow_mod",
        FALSE_STEP + "\nfrom dataclasses import replace\n"
        "OWN_GIBBS = replace(GOOD, id='derivation.gibbs')\n",
    )
    assert _prove("--module", "shadow_mod", "--list")[0] == 0  # no built-in involved
    assert _prove("--module", "shadow_mod", "gibbs")[0] == 2
    assert "two derivations have the id 'derivation.gibbs'" in capsys.readouterr().err


def test_the_cli_declares_the_arguments_main_prove_parses():
    """`klspec prove` declares its options itself (no sympy for `klspec --help`): same ones."""
    from klspec import commands

    cli = argparse.ArgumentParser()
    commands._add_prove(cli)
    own = prove_module.build_parser()

    def options(parser):
        return {(tuple(a.option_strings), a.dest, a.nargs, a.help) for a in parser._actions} - {
            (("-h", "--help"), "help", 0, "show this help message and exit")
        }

    ids_help = {a.dest: a.help for a in cli._actions}["ids"]
    assert {o for o in options(cli) if o[1] != "ids"} == {o for o in options(own) if o[1] != "ids"}
    assert ids_help
    assert cli.epilog == own.epilog == prove_module.DISCOVERY


def test_the_readme_command_works_from_a_clone():
    """`klspec prove --module examples.label_smoothing`, run as the README says.

    The console script, not ``python -m``: only the former needs the current directory
    put on sys.path by the command itself.
    """
    script = Path(sys.executable).with_name("klspec")
    if not script.is_file():
        pytest.skip(f"no klspec script beside {sys.executable}")
    done = subprocess.run(
        [str(script), "prove", "--module", "examples.label_smoothing"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "each at its claimed level" in done.stdout


def test_examples_are_not_packaged():
    """The wheel lists its packages (pyproject.toml); examples/ is for a clone only."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    listed = pyproject.split("packages = [", 1)[1].split("]", 1)[0]
    assert '"klspec.spec.derivations"' in listed
    assert "examples" not in listed
    assert '"examples"' not in pyproject


def _code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def test_the_readme_derivation_passes(user_modules):
    """The README's "Check your own derivation" code, saved as a module, is checked."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Check your own derivation", 1)[1].split("\n## ", 1)[0]
    (code,) = _code_blocks(section, "python")
    user_modules("readme_derivation_mod", code)
    status, text = _prove("--module", "readme_derivation_mod")
    assert status == 0, text
    assert "1 derivations, 1 steps, each at its claimed level" in text


def test_the_guide_names_every_rule_and_level_and_its_control_runs(example):
    from klspec.spec.derivations import Level, rules

    guide = (ROOT / "docs" / "derivations.md").read_text(encoding="utf-8")
    missing = [n for n in [*rules.__all__, *Level.__members__] if f"`{n}`" not in guide]
    assert not missing, f"docs/derivations.md does not mention {missing}"
    (control,) = _code_blocks(guide, "python")
    names: dict = {}
    exec(control, names)
    names["test_dropping_the_entropy_is_rejected"]()
