"""Nothing an implementation under test does stops the run or loses the report.

Each nasty target (tests/nasty_targets.py) misbehaves in one way; checked in a
forked worker with a short per-call timeout, each becomes a clean failure of the
clause being checked, with the input it happened on, and the clauses after it
still run.
"""

from __future__ import annotations

import nasty_targets
import numpy as np
import pytest

from klspec.conformance import isolation, run
from klspec.conformance.isolation import can_isolate
from klspec.conformance.targets import resolve

pytestmark = pytest.mark.skipif(not can_isolate(), reason="needs fork")

#: One clause with one check, then one that must still run after a crash or hang.
CLAUSES = ["kl.pinsker", "example.weather.forward"]


def _run(fn, clauses=CLAUSES, **options):
    impl = resolve(fn, **options)
    return run(impl, clauses, profile="fast", timeout=0.5, isolate=True)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (
            nasty_targets.raises,
            "kl(p, q) raised ZeroDivisionError('oops'), but should return a value",
        ),
        (nasty_targets.returns_nan, "kl(p, q)=nan, but should be a number"),
        (
            nasty_targets.returns_text,
            "kl(p, q) returned str '0.1', but should return a real number",
        ),
        (nasty_targets.wrong_shape, "kl(p, q) has shape (3,), but should have shape ()"),
        (nasty_targets.hangs, "kl(p, q) did not return within 0.5 s, but should return a value"),
        (nasty_targets.sleeps, "kl(p, q) did not return within 0.5 s, but should return a value"),
        (
            nasty_targets.calls_sys_exit,
            "kl(p, q) raised SystemExit(4), but should return a value",
        ),
        (
            nasty_targets.exits_the_process,
            "kl(p, q) ended its process (exit status 3), but should return a value",
        ),
        (
            nasty_targets.segfaults,
            "kl(p, q) crashed its process (killed by SIGSEGV), but should return a value",
        ),
        (
            nasty_targets.returns_unprintable,
            "kl(p, q) returned _Unprintable <unprintable: its __repr__ raised RuntimeError>, "
            "but should return a real number",
        ),
        (
            nasty_targets.raises_unprintable,
            "kl(p, q) raised Mute('<its message could not be printed: RuntimeError>'), "
            "but should return a value",
        ),
        (
            nasty_targets.ignores_the_alarm,
            "kl(p, q) did not return within 0.5 s and ignored the timeout signal (its process "
            "was killed), but should return a value",
        ),
    ],
    ids=lambda x: getattr(x, "__name__", "")[:30],
)
def test_misbehaviour_is_a_clean_failure_of_the_clause(target, message, monkeypatch):
    monkeypatch.setattr(isolation, "GRACE", 0.5)  # how long a stuck worker gets past the timeout
    report = _run(target)
    second, first = report.clauses  # in catalog order: the worked example comes first
    assert first.verdict == "fail"
    (failure,) = first.failures
    assert failure.message == f"{message} [kl.pinsker]"
    assert failure.counterexample.startswith(("Case(", "build_case("))
    assert "replay('kl.pinsker[pairs]'" in failure.reproduce
    # Every clause was checked (after a crash or hang, by a new worker).
    assert second.verdict == "fail"
    assert second.failures[0].message.endswith("[example.weather.forward]")


def test_writing_into_the_inputs_fails_inputs_unmodified_only():
    report = _run(nasty_targets.writes_into_q, ["kl.definition", "inputs.unmodified"])
    definition, unmodified = report.clauses
    assert definition.verdict == "pass"
    assert unmodified.verdict == "fail"
    assert "kl(p, q) changed q[" in unmodified.failures[0].message


def test_writing_into_a_log_space_argument_shows_in_the_caller_q():
    report = _run(nasty_targets.writes_into_log_q, ["inputs.unmodified"], signature="f(log_q, p)")
    (unmodified,) = report.clauses
    assert unmodified.verdict == "fail"
    assert "kl(p, q) changed q[" in unmodified.failures[0].message


def test_timeouts_work_without_a_worker_process_too():
    impl = resolve(nasty_targets.hangs)
    report = run(impl, ["kl.pinsker"], profile="fast", timeout=0.3, isolate=False)
    assert report.clauses[0].failures[0].message == (
        "kl(p, q) did not return within 0.3 s, but should return a value [kl.pinsker]"
    )


def test_a_crash_loses_no_report_of_the_clauses_already_checked():
    seen = []
    report = run(
        resolve(nasty_targets.segfaults),
        ["example.weather.forward", "kl.pinsker", "kl.nonnegative"],
        profile="fast",
        timeout=0.5,
        isolate=True,
        on_result=lambda r: seen.append(r.clause.id),
    )
    assert seen == ["example.weather.forward", "kl.nonnegative", "kl.pinsker"]  # catalog order
    assert report.summary == "0 passed, 3 failed"


def test_a_correct_function_passes_in_a_worker():
    report = _run(nasty_targets.correct)
    assert report.ok
    assert report.summary == "2 passed, 0 failed"


def test_signature_translates_arguments():
    report = _run(nasty_targets.torch_order, ["kl.definition"], signature="f(log_q, p)")
    assert report.ok, report.clauses[0].failures


def test_entropy_signature():
    impl = resolve(nasty_targets.correct_entropy, quantity="entropy")
    assert impl.entropy is not None
    assert impl.kl is None
    assert impl.entropy(np.array([0.5, 0.5])) == pytest.approx(np.log(2))


def test_a_target_setting_numpy_error_state_does_not_break_the_checks():
    """np.seterr(all="raise") inside the target must not make the checks' own arithmetic
    raise (it made 13 clauses 'could not run', blamed on the checks)."""
    import numpy as np

    from klspec.conformance import resolve, run
    from klspec.reference import kl_divergence

    def raising_kl(p, q):
        np.seterr(all="raise")
        np.set_printoptions(precision=2)
        return float(kl_divergence(p, q))

    before = np.geterr(), np.get_printoptions()
    try:
        report = run(
            resolve(raising_kl), ["kl.definition", "kl.nonnegative", "kl.special.p_zero"], seed=1
        )
    finally:
        np.seterr(**before[0])
        np.set_printoptions(**before[1])
    assert report.ok, [r.message for c in report.clauses for r in c.failures]


def _gone(pid: int, within: float = 5.0) -> bool:
    """Whether process ``pid`` has ended (or is a zombie) within ``within`` seconds."""
    import os
    import time

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        except OSError:
            os.kill(pid, 0)  # no /proc: ProcessLookupError once it is gone
        time.sleep(0.05)
    return False


def test_a_target_that_forks_fails_its_check_and_leaves_no_process(tmp_path):
    """Two processes writing results into one pipe made the runner crash with an
    UnpicklingError and no report, and the fork outlived the run."""
    import os

    pids = tmp_path / "pids"

    def forks(p, q):
        if not pids.exists():  # once: the fork goes on running the checks too
            child = os.fork()
            if child:
                pids.write_text(f"{child}\n")
        return float(np.sum(p * np.log(p / q)))

    report = _run(forks, ["kl.definition", "example.weather.forward"])
    assert report.clauses[0].status == "fail"
    children = [int(x) for x in pids.read_text().split()]
    assert children
    assert all(_gone(pid) for pid in children)


def test_the_worker_ends_when_the_run_is_killed(tmp_path):
    """Killing `klspec check` left its worker blocked forever in a pipe write."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "slowkl.py").write_text(
        "import os, time\n"
        "def kl(p, q):\n"
        f"    open({str(tmp_path / 'worker')!r}, 'w').write(str(os.getpid()))\n"
        "    time.sleep(0.05)\n"
        "    return 0.0\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-m", "klspec", "check", "slowkl:kl", "--profile", "thorough"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "worker").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        worker = int((tmp_path / "worker").read_text())
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
        assert _gone(worker)
    finally:
        run.kill()


def _resident_mb() -> float:
    with open("/proc/self/statm") as f:
        import os

        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not __import__("os").path.exists("/proc/self/statm"), reason="needs /proc")
def test_a_target_holding_more_than_the_memory_limit_fails_its_check():
    """A target leaking 1 GiB per call grew the worker to 7.4 GB: nothing bounded it."""
    limit = _resident_mb() + 400  # the worker starts as a copy of this process
    impl = resolve(nasty_targets.leaks)
    report = run(impl, CLAUSES, profile="fast", timeout=5, isolate=True, memory_limit=limit)
    first = report.clauses[1].failures[0]  # kl.pinsker, after the worked example
    assert f"used more than {limit:g} MB of memory (the memory limit; its process was killed)" in (
        first.message
    )
    assert first.counterexample


def test_the_deadline_ends_the_run_without_a_verdict():
    """At 1 s per call a run took ~51 min and nothing bounded it."""
    import time

    impl = resolve(nasty_targets.slow)
    clauses = ["kl.definition", "kl.nonnegative", "kl.pinsker", "kl.zero_iff_equal"]
    start = time.monotonic()
    report = run(impl, clauses, profile="fast", timeout=5, isolate=True, deadline=1.0)
    assert time.monotonic() - start < 1.0 + 5  # the deadline, plus starting workers
    assert not report.complete
    assert report.ok
    assert report.counts["unfinished"] == 4
    assert all(c.verdict == "unfinished" for c in report.clauses)
    assert report.summary == "0 passed, 0 failed, 4 not finished"


def test_the_deadline_works_without_a_worker_process_too():
    report = run(
        resolve(nasty_targets.slow),
        ["kl.definition", "kl.pinsker"],
        profile="fast",
        timeout=5,
        isolate=False,
        deadline=0.5,
    )
    assert [c.verdict for c in report.clauses] == ["unfinished", "unfinished"]


@pytest.mark.parametrize("isolate", [True, False], ids=["worker", "in-process"])
def test_what_the_target_prints_is_captured_and_shown_last(isolate, capfd):
    """50 MB of a target's stdout mixed into the report."""
    from klspec.conformance.report import describe

    report = run(resolve(nasty_targets.prints), ["kl.definition"], profile="fast", isolate=isolate)
    printed = capfd.readouterr()
    assert "from the target" not in printed.out + printed.err
    for text in ("print from the target", "fd 1 from the target", "stderr from the target"):
        assert text in report.output
    assert report.output_bytes > 0
    lines = describe(report).splitlines()
    assert lines[0].startswith("output of ")
    assert lines[-1] == report.summary  # the summary stays the last line


def test_processes_a_target_starts_do_not_outlive_the_run(tmp_path):
    """Spawned children outlived the run."""
    import subprocess

    pids = tmp_path / "pids"

    def spawns(p, q):
        if not pids.exists():
            child = subprocess.Popen(["sleep", "300"])
            pids.write_text(f"{child.pid}\n")
        return float(np.sum(p * np.log(p / q)))

    report = _run(spawns, ["kl.definition"])
    assert report.clauses[0].results
    children = [int(x) for x in pids.read_text().split()]
    assert all(_gone(pid) for pid in children)
