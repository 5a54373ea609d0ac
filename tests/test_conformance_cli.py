"""``klspec check TARGET``, ``klspec adapters`` and the Python API: exit codes, output, JSON.

Most tests call ``main`` in process on one or two clauses with the fast profile;
one runs the installed console script from a directory holding the target
module, as a user would.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import nasty_targets
import numpy as np
import pytest

from klspec.commands import main
from klspec.conformance import ConformanceError, check, replay

KL_NONNEGATIVE = ("--clause", "kl.nonnegative", "--profile", "fast")
FAST_P_ZERO = ("--clause", "kl.special.p_zero", "--profile", "fast")


def run_main(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_scipy_rel_entr_fails_nonnegativity_with_a_reproduction_line():
    status, text = run_main("check", "scipy.rel_entr", *KL_NONNEGATIVE)
    lines = text.strip().splitlines()
    assert status == 1
    assert lines[-1] == "0 passed, 1 failed"
    assert re.match(r"FAIL\s+kl\.nonnegative\s+\(2 checks, \d+ examples\)", lines[0])
    assert "FAIL kl.nonnegative (required): KL(P‖Q) ≥ 0" in text
    assert re.search(r"kl\(p, q\)=-[0-9.e-]+, but should be >= 0 \[kl\.nonnegative\]", text)
    assert "counterexample: " in text
    reproduce = next(line for line in lines if "reproduce:" in line).split("reproduce: ", 1)[1]
    assert "replay('kl.nonnegative[" in reproduce
    assert "'scipy.rel_entr'" in reproduce
    # The line reproduces the failure when run.
    argv = shlex.split(reproduce)
    with pytest.raises(AssertionError, match=r"but should be >= 0 \[kl\.nonnegative\]"):
        exec(argv[2], {})


def test_last_line_counts_skips_and_advisory_clauses_are_reported_apart():
    status, text = run_main(
        "check", "scipy.rel_entr", "--clause", "kl.accuracy", "--clause", "entropy.bounds",
        "--profile", "fast",
    )  # fmt: skip
    lines = text.strip().splitlines()
    assert status == 0  # an advisory clause does not fail the run
    assert lines[-1] == "0 passed, 0 failed, 1 skipped"
    assert lines[-2] == "1 advisory clause not counted (kl.accuracy)"
    assert re.match(r"WARN\s+kl\.accuracy\s+\(advisory, 2 checks", lines[0])
    assert re.match(r"SKIP\s+entropy\.bounds\s+\(scipy\.rel_entr lacks entropy\)", lines[1])


def test_module_function_target_with_a_signature(tmp_path, monkeypatch):
    (tmp_path / "mymod.py").write_text(
        textwrap.dedent(
            """
            import numpy as np
            from klspec.reference import kl_divergence

            def kl(log_q, p):
                return float(kl_divergence(p, np.exp(log_q)))
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    status, text = run_main(
        "check", "mymod:kl", "--signature", "f(log_q, p)", "--clause", "kl.definition",
        "--profile", "fast",
    )  # fmt: skip
    assert status == 0, text
    assert text.strip().splitlines()[-1] == "1 passed, 0 failed"


def test_installed_command_from_the_target_directory(tmp_path):
    """The console script finds ./mymod.py; the reproduction line names the signature."""
    (tmp_path / "mymod.py").write_text(
        "import numpy as np\n"
        "def kl(log_q, p):\n"
        "    return float(np.sum(p * (np.log(p) - log_q)))\n"  # no zero guard: nan at p_i = 0
    )
    klspec = Path(sys.executable).with_name("klspec")
    result = subprocess.run(
        [str(klspec), "check", "mymod:kl", "--signature", "f(log_q, p)", *FAST_P_ZERO],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0 passed, 1 failed"
    reproduce = re.search(r"reproduce: (.*)", result.stdout).group(1)
    assert "replay('kl(p_i == 0 and q_i > 0) -> term 0', 'mymod:kl'" in reproduce
    assert "signature='f(log_q, p)'" in reproduce
    again = subprocess.run(
        [sys.executable, *shlex.split(reproduce)[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "kl(p, q)=nan, but should be a number [kl.special.p_zero]" in again.stderr


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["nonexistent"], "unknown target 'nonexistent'"),
        (["scipy.rel_entrr"], "did you mean scipy.rel_entr"),
        (["no_such_module_xyz:kl"], "cannot import 'no_such_module_xyz'"),
        (["nasty_targets:nothing"], "has no attribute 'nothing'"),
        (["nasty_targets:correct", "--signature", "f(p, r)"], "unknown argument 'r'"),
        (["nasty_targets:correct", "--signature", "f(p)"], "must take one of p"),
        (["scipy.rel_entr", "--signature", "f(p, q)"], "apply to module:function targets"),
        (["reference", "--timeout", "0"], "--timeout must be positive"),
        (["reference", "--deadline", "0"], "--deadline must be positive"),
        (["reference", "--memory-limit", "-1"], "--memory-limit must be a number of megabytes"),
    ],
    ids=lambda x: x if isinstance(x, str) else " ".join(x),
)
def test_usage_and_import_errors_exit_2(argv, error, capsys):
    status, text = run_main("check", *argv)
    assert status == 2
    assert error in capsys.readouterr().err
    assert text == ""


def test_missing_library_exits_2_with_the_reason(monkeypatch, capsys):
    from klspec.conformance.adapters import ADAPTERS

    monkeypatch.setattr(type(ADAPTERS["torch.kl_div.sum"]), "missing", lambda self: "gone")
    status, _ = run_main("check", "torch.kl_div.sum")
    assert status == 2
    assert "torch.kl_div.sum: gone" in capsys.readouterr().err


def test_argparse_usage_error_exits_2():
    with pytest.raises(SystemExit) as info:
        main(["check", "--profile", "slow"])
    assert info.value.code == 2


# --- xfails -----------------------------------------------------------------------------


def test_expected_failures_make_the_run_pass_and_stale_lines_are_warned(tmp_path, capsys):
    xfails = tmp_path / "xfails.txt"
    xfails.write_text(
        "# scipy's literal sum\n"
        "kl.nonnegative  # rel_entr(p, q).sum() is not clamped at 0\n"
        "\n"
        "kl.pinsker  # listed, but passes\n"
        "kl.no_such_clause  # from another version\n"
    )
    status, text = run_main(
        "check", "scipy.rel_entr", "--clause", "kl.nonnegative", "--clause", "kl.pinsker",
        "--profile", "fast", "--xfails", str(xfails),
    )  # fmt: skip
    err = capsys.readouterr().err
    lines = text.strip().splitlines()
    assert status == 0
    assert lines[-1] == "1 passed, 0 failed"
    assert lines[-2] == "1 expected failure not counted (kl.nonnegative)"
    assert re.match(r"XFAIL\s+kl\.nonnegative", lines[0])
    assert "XFAIL kl.nonnegative (expected to fail: rel_entr(p, q).sum() is not clamped" in text
    assert "'kl.no_such_clause' is no clause id or check name" in err
    assert "'kl.pinsker' is listed as an expected failure but did not fail" in err


def test_a_check_name_can_be_listed_too(tmp_path):
    xfails = tmp_path / "xfails.txt"
    xfails.write_text(
        "kl.nonnegative[near_equal_pairs]  # near-equal inputs\n"
        "kl.nonnegative[pairs]  # drawn pairs include near-equal ones\n"
    )
    status, _ = run_main("check", "scipy.rel_entr", *KL_NONNEGATIVE, "--xfails", str(xfails))
    assert status == 0


def test_an_xfail_line_without_a_reason_is_a_usage_error(tmp_path, capsys):
    xfails = tmp_path / "xfails.txt"
    xfails.write_text("kl.nonnegative\n")
    status, _ = run_main("check", "scipy.rel_entr", "--xfails", str(xfails))
    assert status == 2
    assert "xfails.txt:1: 'kl.nonnegative' has no reason" in capsys.readouterr().err


# --- JSON ---------------------------------------------------------------------------------


def test_json_report(tmp_path):
    path = tmp_path / "report.json"
    status, _ = run_main(
        "check", "nasty_targets:literal_in_torch_order", "--signature", "f(log_q, p)",
        "--clause", "kl.nonnegative", "--clause", "kl.accuracy", "--clause", "entropy.bounds",
        "--profile", "fast", "--seed", "3", "--json", str(path),
    )  # fmt: skip
    data = json.loads(path.read_text())
    assert status == 1
    assert data["target"] == "nasty_targets:literal_in_torch_order"
    assert data["quantity"] == "kl"
    assert data["signature"] == "f(log_q, p)"
    assert data["array"] == "numpy"
    assert data["batched"] is False
    assert set(data["libraries"]) >= {"numpy"}
    assert (data["profile"], data["seed"], data["max_examples"]) == ("fast", 3, 25)
    assert data["summary"] == "0 passed, 1 failed, 1 skipped"
    by_id = {c["id"]: c for c in data["clauses"]}
    assert [c["id"] for c in data["clauses"]] == ["kl.nonnegative", "kl.accuracy", "entropy.bounds"]
    nonnegative = by_id["kl.nonnegative"]
    assert nonnegative["level"] == "required"
    assert nonnegative["status"] == "fail"
    assert nonnegative["message"].startswith("kl(p, q)=")
    assert nonnegative["message"].endswith("[kl.nonnegative]")
    assert set(nonnegative["counterexample"]) == {"p", "q"}
    assert all(isinstance(x, float) for x in nonnegative["counterexample"]["p"])
    assert "signature='f(log_q, p)'" in nonnegative["reproduction"]
    assert {k["name"] for k in nonnegative["checks"]} == {
        "kl.nonnegative[pairs]",
        "kl.nonnegative[near_equal_pairs]",
    }
    assert by_id["kl.accuracy"]["level"] == "advisory"
    assert by_id["kl.accuracy"]["status"] == "advisory"
    assert by_id["entropy.bounds"]["status"] == "skip"
    reason = by_id["entropy.bounds"]["checks"][0]["reason"]
    assert reason == "nasty_targets:literal_in_torch_order lacks entropy"


# --- klspec adapters ---------------------------------------------------------------------


def test_adapters_lists_conventions_and_installation(monkeypatch):
    from klspec.conformance.adapters import ADAPTERS

    status, text = run_main("adapters")
    assert status == 0
    for name in ADAPTERS:
        assert re.search(rf"^{re.escape(name)}  \[(installed \(.*\)|skipped: .*)\]$", text, re.M)
    assert "scipy.rel_entr  [installed (numpy " in text
    assert "opposite* order to KL(P‖Q)" in text  # torch's docstring, shown in full
    assert text.strip().splitlines()[-1].startswith(f"{len(ADAPTERS)} adapters, ")
    monkeypatch.setattr(
        type(ADAPTERS["keras.kl_divergence"]),
        "missing",
        lambda self: "keras is not installed (pip install keras)",
    )
    _, text = run_main("adapters")
    assert "keras.kl_divergence  [skipped: keras is not installed (pip install keras)]" in text


def test_adapters_json():
    status, text = run_main("adapters", "--json")
    rows = json.loads(text)
    assert status == 0
    assert {"name", "installed", "reason", "libraries", "conventions"} <= set(rows[0])


# --- the Python API ------------------------------------------------------------------------


def test_check_returns_the_report_when_required_clauses_pass():
    report = check(nasty_targets.correct, clauses=["kl.definition", "kl.accuracy"], profile="fast")
    assert report.ok
    assert report.summary == "2 passed, 0 failed"


def test_check_raises_an_assertion_error_carrying_the_report():
    with pytest.raises(AssertionError) as info:
        check(nasty_targets.returns_nan, clauses=["kl.nonnegative"], profile="fast")
    error = info.value
    assert isinstance(error, ConformanceError)
    assert error.report.summary == "0 passed, 1 failed"
    assert "kl(p, q)=nan, but should be a number [kl.nonnegative]" in str(error)
    assert str(error).strip().endswith("0 passed, 1 failed")


def test_check_reproduction_of_a_function_is_a_python_statement():
    def my_kl(p, q):
        return float(np.sum(p * np.log(p / q)))

    with pytest.raises(ConformanceError) as info:
        check(my_kl, clauses=["kl.special.p_zero"], profile="fast")
    (failure,) = info.value.report.clauses[0].failures
    assert failure.reproduce.startswith(
        "import numpy as np; from klspec.conformance import replay; "
    )
    assert "replay('kl(p_i == 0 and q_i > 0) -> term 0', my_kl, p=np.array(" in failure.reproduce
    with pytest.raises(AssertionError, match=r"=nan, but should be a number"):
        exec(failure.reproduce, {"my_kl": my_kl})


def test_check_with_a_signature_and_expected_failures():
    report = check(
        nasty_targets.literal_in_torch_order,
        signature="f(log_q, p)",
        clauses=["kl.nonnegative"],
        profile="fast",
        xfails={"kl.nonnegative": "literal formula"},
    )
    assert report.clauses[0].verdict == "xfail"


def test_replay_takes_a_function_and_options(capsys):
    replay(
        "kl.definition[pairs]",
        nasty_targets.torch_order,
        signature="f(log_q, p)",
        p=np.array([0.7, 0.3]),
        q=np.array([0.5, 0.5]),
    )
    assert "torch_order passes on this input" in capsys.readouterr().out


ESTIMATORS_MODULE = """
import numpy as np
import scipy.special

def k3_literal(logp, ref_logp):
    d = ref_logp - logp
    return (np.exp(d) - 1.0) - d

def k3(logp, ref_logp):
    d = ref_logp - logp
    return np.maximum(np.expm1(d) - d, 0.0)

def k3_swapped_order(ref_logp, logp):
    return k3(logp, ref_logp)

def token_kl(logits_p, logits_q):
    la = logits_p - scipy.special.logsumexp(logits_p, axis=-1, keepdims=True)
    lb = logits_q - scipy.special.logsumexp(logits_q, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):  # a -inf logit of P is a term 0, not 0 * -inf
        terms = np.where(np.isneginf(la), 0.0, np.exp(la) * (la - lb))
    return np.maximum(np.sum(terms, axis=-1), 0.0)
"""


@pytest.fixture
def estimators(tmp_path, monkeypatch):
    (tmp_path / "estimators.py").write_text(ESTIMATORS_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_quantity_k3_rejects_the_literal_formula_with_a_reproduction(estimators):
    status, text = run_main(
        "check", "estimators:k3_literal", "--quantity", "k3", "--profile", "fast"
    )
    assert status == 1, text
    assert "FAIL estimator.k3_nonnegative (required)" in text
    assert re.search(r"k3\(logp, ref_logp\)\[\d+\]=-[0-9.e-]+, but should be >= 0", text)
    reproduce = next(line for line in text.splitlines() if "reproduce:" in line)
    assert "quantity='k3'" in reproduce
    with pytest.raises(
        AssertionError,
        match=r"but should be >= 0 \(exactly [0-9.e-]+ there\) \[estimator\.k3_nonnegative\]",
    ):
        exec(shlex.split(reproduce.split("reproduce: ", 1)[1])[2], {})
    # Only the language-model topic is listed clause by clause.
    assert "entropy.definition" not in text
    assert "clauses about what estimators:k3_literal does not provide" in text


@pytest.mark.parametrize(
    ("target", "options"),
    [
        ("estimators:k3", ("--quantity", "k3")),
        ("estimators:k3_swapped_order", ("--quantity", "k3", "--signature", "f(ref_logp, logp)")),
        ("estimators:token_kl", ("--quantity", "token-kl")),
    ],
)
def test_correct_estimators_and_token_kl_pass(estimators, target, options):
    status, text = run_main("check", target, *options, "--profile", "fast")
    assert status == 0, text
    assert re.search(r"^\d+ passed, 0 failed, \d+ skipped$", text.strip().splitlines()[-1])


def test_signature_of_a_direct_quantity_must_name_its_arguments(estimators, capsys):
    status, _ = run_main("check", "estimators:k3", "--quantity", "k3", "--signature", "f(p, q)")
    assert status == 2
    assert "unknown argument 'p'; use logp, ref_logp" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("import sys\nsys.exit(0)\n", "called sys.exit(0) while being imported"),
        ("import time\ntime.sleep(60)\n", "did not finish within 3 s"),
    ],
    ids=["exits", "hangs"],
)
def test_a_target_module_that_exits_or_hangs_when_imported_is_a_usage_error(
    tmp_path, monkeypatch, capsys, body, message
):
    """Exit 0 with no output read as a pass in CI; a hang never ended."""
    (tmp_path / "badimport.py").write_text(body + "def kl(p, q):\n    return 0.0\n")
    monkeypatch.chdir(tmp_path)
    status, _ = run_main("check", "badimport:kl", "--timeout", "0.5")
    assert status == 2
    assert message in capsys.readouterr().err


def test_a_run_the_deadline_cuts_short_exits_3_and_says_so():
    """Exit 3, not 0: a CI job must not read an unfinished run as a pass."""
    status, out = run_main(
        "check",
        "nasty_targets:slow",
        "--clause",
        "kl.definition",
        "--clause",
        "kl.pinsker",
        "--deadline",
        "0.5",
    )
    assert status == 3
    assert "CUT    kl.definition" in out
    assert "the run's deadline (0.5 s) passed before every clause was checked" in out
    assert out.strip().splitlines()[-1] == "0 passed, 0 failed, 2 not finished"
