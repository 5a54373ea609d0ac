"""The pytest plugin (entry point pytest11): ``pytest --kl-impl TARGET`` runs the checks as tests.

Each test runs pytest in a subprocess, in a fresh directory holding a target
module and one ordinary test, as a user's project would.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

FAST = ["--kl-profile", "fast", "-p", "no:cacheprovider"]


@pytest.fixture
def project(tmp_path):
    (tmp_path / "mykl.py").write_text(
        textwrap.dedent(
            """
            import numpy as np

            def literal(log_q, p):
                with np.errstate(all="ignore"):
                    return float(np.sum(p * (np.log(p) - log_q)))
            """
        )
    )
    (tmp_path / "test_own.py").write_text(
        "import sys\n"
        "def test_own(request):\n"
        "    # Without --kl-impl the plugin imports nothing of klspec's machinery.\n"
        "    if request.config.getoption('kl_impl') is None:\n"
        "        assert 'klspec.spec' not in sys.modules\n"
    )
    return tmp_path


def pytest_run(cwd, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def test_without_kl_impl_the_plugin_adds_nothing(project):
    result = pytest_run(project, "-q", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip().splitlines()[-1].startswith("1 passed in ")
    assert "klspec" not in result.stdout


def test_checks_run_as_tests_with_readable_ids(project):
    result = pytest_run(
        project, "-v", "test_own.py", "--kl-impl", "mykl:literal",
        "--kl-signature", "f(log_q, p)", "--kl-clause", "kl.special.p_zero",
        "--kl-clause", "kl.accuracy", "--kl-clause", "entropy.bounds", *FAST,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 1, out
    assert "klspec: checking mykl:literal" in out
    assert re.search(r"klspec\[mykl:literal\]::kl\(p_i == 0 and q_i > 0\) -> term 0 FAILED", out)
    assert re.search(r"klspec\[mykl:literal\]::kl\.accuracy\[pairs\] XFAIL", out)
    assert re.search(r"klspec\[mykl:literal\]::entropy\.bounds\[distributions\] SKIPPED", out)
    assert "test_own.py::test_own PASSED" in out
    assert "kl(p, q)=nan, but should be a number [kl.special.p_zero]" in out
    assert "counterexample: Case(p=np.array(" in out
    assert "reproduce: python -c " in out
    assert "signature='f(log_q, p)'" in out
    assert re.search(r"1 failed, 1 passed, 1 skipped, 2 xfailed", out)


def test_xfails_file_and_xdist(project):
    pytest.importorskip("xdist")
    (project / "xfails.txt").write_text("kl.special.p_zero  # no zero guard\n")
    result = pytest_run(
        project, "-q", "-n", "2", "test_own.py", "--kl-impl", "mykl:literal",
        "--kl-signature", "f(log_q, p)", "--kl-xfails", "xfails.txt",
        "--kl-clause", "kl.special.p_zero", "--kl-clause", "example.weather.forward", *FAST,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"2 passed, 1 xfailed", result.stdout)


def test_a_bad_target_is_a_usage_error(project):
    result = pytest_run(project, "-q", "--kl-impl", "no_such_module:kl", *FAST)
    assert result.returncode == 4  # pytest's usage error
    assert "--kl-impl: cannot import 'no_such_module'" in result.stderr


def test_dtype_and_clamp_options_reach_the_checks(tmp_path):
    """--kl-dtype, --kl-array and --kl-log-ratio-range: a float32 torch k3 clamped to <= 10."""
    pytest.importorskip("torch")
    (tmp_path / "myk3.py").write_text(
        textwrap.dedent(
            """
            import torch

            def k3(logp, ref_logp):
                d = ref_logp - logp
                return torch.clamp(torch.expm1(d) - d, min=0, max=10)
            """
        )
    )
    options = ["--kl-impl", "myk3:k3", "--kl-quantity", "k3", "--kl-array", "torch"]
    options += ["--kl-dtype", "float32", "-k", "estimator", *FAST, "-q"]
    clamped = pytest_run(tmp_path, *options)
    assert "estimator.definitions" in clamped.stdout, clamped.stdout
    assert clamped.returncode == 1  # exact only where the clamp is inactive
    declared = pytest_run(tmp_path, *options, "--kl-log-ratio-range=-11:2.6")
    assert declared.returncode == 0, declared.stdout
    assert "xfailed" in declared.stdout  # estimator.clamp_bias, advisory
    bad = pytest_run(tmp_path, *options, "--kl-log-ratio-range=2.6")
    assert bad.returncode != 0
    assert "must read LO:HI" in bad.stdout + bad.stderr


def test_deadline_skips_unfinished_checks_without_a_verdict(project):
    """--kl-deadline: checks the deadline keeps from starting are skipped as not finished
    (the failing clause gives no verdict); a deadline that is not positive is a usage error."""
    options = ["--kl-impl", "mykl:literal", "--kl-signature", "f(log_q, p)"]
    options += ["--kl-clause", "kl.special.p_zero", "--kl-clause", "entropy.bounds", *FAST]
    result = pytest_run(project, "-rs", "test_own.py", *options, "--kl-deadline", "1e-9")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"1 passed, 2 skipped", out), out
    assert "not finished: the run's deadline passed" in out
    roomy = pytest_run(project, "-q", "test_own.py", *options, "--kl-deadline", "600")
    assert re.search(r"1 failed, 1 passed, 1 skipped", roomy.stdout), roomy.stdout
    bad = pytest_run(project, "-q", *options, "--kl-deadline", "0")
    assert bad.returncode == 4
    assert "--kl-deadline must be positive" in bad.stderr
