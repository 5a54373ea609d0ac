"""The klspec command: list, check, exit codes and output shape."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest

from klspec.commands import main
from klspec.spec import CATALOG, CHECKS


def run_main(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_list_shows_every_clause_and_its_checks():
    status, text = run_main("list")
    assert status == 0
    for c in CATALOG:
        assert re.search(rf"^{re.escape(c.id)}\s+{re.escape(c.kind)}\s", text, re.MULTILINE)
    for k in CHECKS:
        assert k.name in text
    from klspec.spec.interface import TOPICS

    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    assert headings == [t.title for t in TOPICS]  # grouped by topic, in reading order


def test_list_json():
    import json

    status, text = run_main("list", "--json")
    rows = json.loads(text)
    assert status == 0
    assert [r["id"] for r in rows] == [c.id for c in CATALOG]
    assert [r["topic"] for r in rows] == [c.topic for c in CATALOG]
    assert sum(len(r["checks"]) for r in rows) == len(CHECKS)


def test_check_everything_passes_with_the_fast_profile():
    status, text = run_main("check", "--profile", "fast")
    lines = text.strip().splitlines()
    assert status == 0, text
    # The reference declares no clamp: the clauses about a declared one do not apply.
    clamped = [c.id for c in CATALOG if c.id == "estimator.clamp_bias"]
    passed = len(CATALOG) - len(clamped)
    assert re.fullmatch(rf"{passed} passed, 0 failed, {len(clamped)} skipped", lines[-1])
    clause_lines = [line for line in lines if line.startswith(("PASS", "FAIL", "SKIP"))]
    # Clauses the reference cannot be checked against fold into one line.
    assert [line.split()[1] for line in clause_lines] == [
        c.id for c in CATALOG if c.id not in clamped
    ]
    assert "(1 clause about what reference does not provide" in text


def test_check_one_clause():
    status, text = run_main("check", "--clause", "kl.nonnegative", "--seed", "1")
    lines = text.strip().splitlines()
    assert status == 0
    assert lines[-1] == "1 passed, 0 failed"
    assert re.match(r"PASS\s+kl\.nonnegative\s+\(2 checks, 200 examples\)\s+\d+\.\ds$", lines[0])
    assert "seed 1" in text


def test_unknown_clause_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--clause", "kl.nonnegativ"])
    assert exit_info.value.code == 2
    assert "unknown clause 'kl.nonnegativ'; did you mean kl.nonnegative" in capsys.readouterr().err


def test_a_failing_clause_exits_1_and_reports_how_to_reproduce(monkeypatch):
    from implementations_under_test import SIGN_ERROR

    from klspec.conformance import targets

    monkeypatch.setitem(targets._TARGETS, "sign_error", lambda: SIGN_ERROR)
    status, text = run_main(
        "check", "sign_error", "--clause", "kl.nonnegative", "--profile", "fast"
    )
    assert status == 1
    assert text.strip().splitlines()[-1] == "0 passed, 1 failed"
    assert re.search(r"^FAIL\s+kl\.nonnegative", text, re.MULTILINE)
    assert "but should be >= 0 [kl.nonnegative]" in text
    assert "counterexample: Case(p=np.array(" in text
    assert (
        'reproduce: python -c "import numpy as np; from klspec.conformance import replay; replay('
        in text
    )


def test_python_dash_m_help():
    result = subprocess.run(
        [sys.executable, "-m", "klspec", "--help"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0
    assert "usage: klspec" in result.stdout
    assert "check" in result.stdout
    assert "list" in result.stdout
