"""Smoke run of benchmarks/performance.py: tiny inputs, numpy and scipy peers only.

The full benchmark is not part of the test suite (it takes minutes and gigabytes);
this runs its main function on --quick sizes for two cases, kl_unrelated and
token_kl, and checks the shape of the report: the expected rows, positive times,
ratios that follow from the medians, memory measured by the stated method, and
results that agree with the reference. Timings vary; what is checked does not.
torch and jax are left out (--peers) to keep the run short and the process free of
jax's threads.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "performance.py"
CASES = ("kl_unrelated", "token_kl")
PEERS = ("numpy", "scipy")


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("klspec_benchmark_performance", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load_benchmark()


@pytest.fixture(scope="module")
def run(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("benchmark")
    argv = [
        "--quick",
        "--case", *CASES,
        "--peers", *PEERS,
        "--repeat", "2",
        "--n", "20000",
        "--logits-shape", "2,8,500",
        "--json", str(out / "report.json"),
        "--markdown", str(out / "report.md"),
    ]  # fmt: skip
    report = bench.main(argv)
    return report, out


def _rows(report, case):
    return {row["key"]: row for row in report["rows"] if row["case"] == case}


def test_every_case_has_the_expected_rows(bench, run):
    report, _ = run
    assert {row["case"] for row in report["rows"]} == set(CASES)
    for case in CASES:
        rows = _rows(report, case)
        expected = {impl.key for impl in bench.CASES[case].impls}
        assert set(rows) == expected, f"rows of {case}={sorted(rows)}, but should be {expected}"
        for key, row in rows.items():
            library = row["library"]
            if library in ("klspec", *PEERS):
                assert row["status"] == "ok", f"{case}/{key}: {row.get('reason')}"
            else:
                assert row["status"] == "skipped", f"{case}/{key} ran, but --peers left it out"
                assert "not selected" in row["reason"]


def test_times_are_positive_and_ratios_follow_from_the_medians(run):
    report, _ = run
    for case in CASES:
        rows = _rows(report, case)
        ref_median = rows["reference"]["median_s"]
        for key, row in rows.items():
            if row["status"] != "ok":
                continue
            assert len(row["times_s"]) == 2, f"{case}/{key} times={row['times_s']}, but 2 repeats"
            assert all(t > 0 for t in row["times_s"]), f"{case}/{key} times={row['times_s']}"
            assert row["median_s"] == pytest.approx(sum(row["times_s"]) / 2)  # median of two
            assert row["peer_over_reference"] == pytest.approx(row["median_s"] / ref_median)
            assert row["reference_over_peer"] == pytest.approx(ref_median / row["median_s"])
        assert rows["reference"]["peer_over_reference"] == 1.0


def test_memory_is_measured_by_the_stated_method(run):
    report, _ = run
    for case in CASES:
        for key, row in _rows(report, case).items():
            if row["status"] != "ok":
                continue
            memory = row["memory"]
            assert "error" not in memory, f"{case}/{key}: {memory}"
            assert memory["method"] == "tracemalloc", f"{case}/{key} ({row['library']})"
            # Every row allocates at least one temporary the size of a result or input.
            assert memory["extra_bytes"] > 0, f"{case}/{key} extra={memory['extra_bytes']}"
            assert memory["probe"]["rss_growth_bytes"] >= 0


def test_peers_compute_the_same_quantity_as_the_reference(run):
    report, _ = run
    # float64 sums of unrelated distributions agree to rounding; float32 log_softmax
    # keeps ~4 digits of a per-token KL of ~5e-3.
    bounds = {"kl_unrelated": 1e-12, "token_kl": 1e-2}
    for case, bound in bounds.items():
        for key, row in _rows(report, case).items():
            if row["status"] != "ok" or key == "reference":
                continue
            diff = row["max_relative_difference"]
            assert diff <= bound, f"{case}/{key} rel. diff={diff:.2e}, but should be <= {bound}"


def test_json_and_markdown_carry_the_report(run):
    report, out = run
    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    markdown = (out / "report.md").read_text()
    assert "ref ÷ peer" in markdown
    assert "[tracemalloc]" in markdown
    for row in report["rows"]:
        assert row["implementation"] in markdown
    for key in ("numpy", "scipy"):
        assert report["versions"][key], f"version of {key} missing"


def test_help_lists_every_case(bench, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for name in bench.CASES:
        assert name in help_text


def test_no_ratio_without_a_reference_time(bench):
    rows = [{"status": "error"}, {"status": "ok", "median_s": 1.0}]
    bench._add_ratios(rows)
    assert "peer_over_reference" not in rows[1], "a ratio to a reference that did not run"


def test_markdown_explains_where_the_time_goes_with_this_runs_numbers(bench, run):
    report, out = run
    markdown = (out / "report.md").read_text()
    assert "## Where the time goes" in markdown
    rows = _rows(report, "kl_unrelated")
    floor = rows["reference"]["median_s"] / rows["numpy"]["median_s"]
    assert f"kl_unrelated {floor:.2g}×" in markdown


def test_the_published_performance_page_is_a_full_run_of_this_script(bench):
    """docs/performance.md is the script's own report, at full size, with every case."""
    page = (SCRIPT.parent.parent / "docs" / "performance.md").read_text()
    assert page.startswith("# klspec performance: the reference against its peers")
    assert "- Command: `python benchmarks/performance.py" in page
    assert "--quick" not in page.split("- Command:")[1].splitlines()[0]
    for name in bench.CASES:
        assert f"\n## {name}: " in page, f"case {name} missing from docs/performance.md"
    assert "## Where the time goes" in page
