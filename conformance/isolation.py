"""Running checks so that nothing the implementation under test does can stop the report.

:func:`run_checks` runs checks one after another and yields each
:class:`~klspec.conformance.runner.CheckResult` as it completes. Exceptions, wrong
types and shapes, NaN and writes into the inputs are turned into violations
by the checks themselves (``_assert.observe`` and ``inputs.unmodified``).
What they cannot handle is handled here:

* **A hang.** Every call of the implementation gets ``timeout`` seconds
  (``SIGALRM``, in the main thread); a call that runs out fails the check with
  ``kl(p, q) did not return within 2 s``, on that input. The check then stops
  (no shrinking: every shrink step could hang as long again).
* **A crash.** With ``isolate=True`` (the default where ``fork`` exists)
  the checks run in a forked worker process that streams results back. If the
  worker dies — ``os._exit``, a segfault, the out-of-memory killer — or a call
  ignores the timeout signal (a loop in C holding the GIL) and the worker is
  killed after a grace period, the check it was running fails with what
  happened and the last input it was given, and a new worker carries on with
  the next check.
* **An exit.** ``SystemExit`` raised by the implementation is a failure of the
  call, not of the runner.
* **Memory.** The parent watches the worker's resident memory (with every process
  it started) and kills it past ``memory_limit`` megabytes (default
  :data:`DEFAULT_MEMORY_LIMIT`): the check fails with ``kl(p, q) used more than
  4096 MB of memory``. Linux only (it reads ``/proc``); without a worker there is
  no limit.
* **A run that goes on too long.** ``deadline`` (seconds, for the whole run)
  ends the run: the check in progress and those after it are reported as not
  finished (:data:`UNFINISHED`), which is no verdict on the implementation.
* **Output.** What the implementation prints (its stdout and stderr, at the level
  of file descriptors, so C code's output too) goes to an :class:`Output`
  instead of the terminal, and the report shows it last.

What isolation is not: a sandbox. The implementation runs with the caller's
privileges, and in the worker it can reach everything the checks use; code that
wants to lie (patch klspec's checks, forge results) can make a violated clause
pass. The runner defends against mistakes, not against an adversary: run code
you do not trust in a container, as you would run its tests.

``fork`` keeps closures and lambdas usable as targets (nothing is pickled but
results and inputs). Libraries that start threads are safe to fork only before
they have done any work; jax is the one that matters: the parent must not
initialise a jax backend before forking (the adapters import jax only in the
worker, when first called).
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import math
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import hypothesis

from klspec.spec._assert import NoResult
from klspec.spec.checks import Check
from klspec.spec.interface import ARGUMENTS, Implementation

#: Extra seconds the parent waits past the timeout before killing a worker stuck in a call.
GRACE = 2.0
#: Default per-call timeout (seconds) of ``klspec check`` and :func:`klspec.conformance.check`.
DEFAULT_TIMEOUT = 10.0


def _default_memory_limit() -> int:
    """4096 MB, or half the machine's memory when that is less (at least 1024 MB)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (AttributeError, ValueError, OSError):
        return 4096
    return max(1024, min(4096, total // 2))


#: Default memory limit (megabytes) of a worker: what it holds resident, with its children.
DEFAULT_MEMORY_LIMIT = _default_memory_limit()
#: The reason a check reads when the run's deadline ended it or kept it from starting.
UNFINISHED = "not finished: the run's deadline passed"
#: How often (seconds) the parent reads the worker's memory.
_MEMORY_POLL = 0.05
#: Bytes of the implementation's output kept for the report (its start and its end).
OUTPUT_KEPT = 2048
#: The line that marks where :meth:`Output.excerpt` left the middle out.
CUT = "[...]"


class _Timeout(BaseException):
    """Raised by the alarm inside a call; a BaseException so ``except Exception`` can't eat it."""


class _StopCheck(BaseException):
    """Ends a check whose call timed out: hypothesis re-raises BaseExceptions without shrinking."""


class _DeadlineReached(BaseException):
    """Ends the check in progress when the run's deadline has passed."""


class Output:
    """Where the implementation's output goes: a temporary file shared with the workers.

    Around every call of the implementation, file descriptors 1 and 2 (and
    ``sys.stdout``, ``sys.stderr``) point into the file, so neither Python's
    ``print`` nor a C library's ``printf`` reaches the report. The file is
    created before the workers are forked; they write into the same open file.
    """

    def __init__(self) -> None:
        import tempfile

        self.file = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the run)
        self._text: Any = None

    @property
    def size(self) -> int:
        """How many bytes the implementation has written."""
        return os.fstat(self.file.fileno()).st_size

    def excerpt(self, kept: int = OUTPUT_KEPT) -> str:
        """The output, or its first and last ``kept // 2`` bytes with what was left out."""
        size, fd = self.size, self.file.fileno()
        if size <= kept:
            return os.pread(fd, size, 0).decode("utf-8", "replace")
        half = kept // 2
        head = os.pread(fd, half, 0).decode("utf-8", "replace")
        tail = os.pread(fd, half, size - half).decode("utf-8", "replace")
        return f"{head}\n{CUT}\n{tail}"

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """Fds 1 and 2 and sys.stdout and sys.stderr into the file, for the duration."""
        import io
        import sys

        if self._text is None or self._text.closed:
            self._text = io.TextIOWrapper(
                open(self.file.fileno(), "wb", buffering=0, closefd=False),  # noqa: SIM115
                encoding="utf-8",
                errors="replace",
                write_through=True,
            )
        streams = sys.stdout, sys.stderr
        for stream in streams:
            with contextlib.suppress(Exception):
                stream.flush()
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(self.file.fileno(), 1)
            os.dup2(self.file.fileno(), 2)
            sys.stdout = sys.stderr = self._text
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            sys.stdout, sys.stderr = streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.file.close()


def can_isolate() -> bool:
    """Whether checks can run in a forked worker here (POSIX)."""
    return "fork" in multiprocessing.get_all_start_methods()


_CALLS = tuple(ARGUMENTS)


class _Clock:
    """When the current call started and what it computes, shared with the parent process."""

    def __init__(self, shared: bool) -> None:
        if shared:
            ctx = multiprocessing.get_context("fork")
            self._started = ctx.RawValue("d", 0.0)
            self._quantity = ctx.RawValue("i", -1)
        else:
            self._started = _Cell(0.0)
            self._quantity = _Cell(-1)

    def start(self, quantity: str) -> None:
        self._quantity.value = _CALLS.index(quantity)
        self._started.value = time.monotonic()

    def stop(self) -> None:
        self._started.value = 0.0

    def running_for(self) -> float:
        started = self._started.value
        return time.monotonic() - started if started else 0.0

    @property
    def in_call(self) -> bool:
        return bool(self._started.value)

    @property
    def call(self) -> str:
        """How the call in progress (or the last one) reads: ``kl(p, q)``."""
        index = self._quantity.value
        if index < 0:
            return "the implementation"
        name = _CALLS[index]
        return f"{name}({', '.join(ARGUMENTS[name])})"


@dataclasses.dataclass
class _Cell:
    value: Any


class _Guard:
    """Wraps an implementation's functions with the per-call timeout and the exit guard."""

    def __init__(
        self,
        timeout: float | None,
        clock: _Clock,
        deadline: float | None = None,
        output: Output | None = None,
    ) -> None:
        self.timeout = timeout
        self.clock = clock
        self.deadline = deadline  # time.monotonic() at which the run ends
        self.output = output
        main = threading.current_thread() is threading.main_thread()
        self.alarm = (bool(timeout) or deadline is not None) and main
        self.expired: tuple[str, Any] | None = None  # (message, case) of the first timeout
        self.timed_out = False

    def past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def _alarm_in(self) -> float:
        """Seconds until the alarm: the timeout, or the deadline when it comes first."""
        left = math.inf if self.deadline is None else self.deadline - time.monotonic()
        return max(1e-3, min(self.timeout or math.inf, left))

    def wrap(self, impl: Implementation) -> Implementation:
        return impl.replace(**{q: self._guarded(fn, q) for q, fn in impl.functions.items()})

    def _guarded(self, fn: Callable[..., Any], quantity: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self.timed_out:
                raise _StopCheck
            if self.past_deadline():
                raise _DeadlineReached
            self.clock.start(quantity)
            output = self.output.capturing() if self.output else contextlib.nullcontext()
            try:
                with output:
                    if self.alarm:
                        signal.setitimer(signal.ITIMER_REAL, self._alarm_in())
                    try:
                        return fn(*args, **kwargs)
                    finally:
                        if self.alarm:
                            signal.setitimer(signal.ITIMER_REAL, 0)
            except _Timeout:
                if self.past_deadline():
                    raise _DeadlineReached from None
                self.timed_out = True
                raise NoResult(f"did not return within {self.timeout:g} s") from None
            except SystemExit as exc:
                raise NoResult(f"raised SystemExit({exc.code!r})") from None
            finally:
                if self.alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                self.clock.stop()

        call.__name__ = getattr(fn, "__name__", quantity)
        return call

    def recording(self, check: Check) -> Check:
        """``check`` whose property remembers the input and message of the first timeout."""

        def prop(impl: Implementation, case: Any) -> None:
            try:
                check.prop(impl, case)
            except AssertionError as exc:
                if self.timed_out and self.expired is None:
                    self.expired = (str(exc.args[0]) if exc.args else "violated", case)
                raise

        return dataclasses.replace(check, prop=prop)

    @contextlib.contextmanager
    def alarms(self) -> Iterator[None]:
        """The SIGALRM handler, installed for the duration."""
        if not self.alarm:
            yield
            return

        def on_alarm(signum: int, frame: Any) -> None:
            raise _Timeout

        previous = signal.signal(signal.SIGALRM, on_alarm)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _run_guarded(
    check: Check,
    impl: Implementation,
    guard: _Guard,
    settings: hypothesis.settings,
    seed: int | None,
    shrink_limit: int | None,
    on_case: Callable[[Any], None] | None = None,
    analyse: bool = False,
    on_failure: Callable[[Any], None] | None = None,
):
    """Run one check with the guard in place; a timeout ends it with a failure on that input.

    With ``analyse``, a failure gets its cause (:mod:`klspec.conformance.causes`),
    found through the same guard; ``on_failure`` receives the result first, so that
    a crash during the analysis cannot lose it.
    """
    from klspec.conformance.runner import CheckResult, reproduction, run_check

    guard.timed_out, guard.expired = False, None
    recorded = guard.recording(check)
    if on_case is not None:
        inner = recorded.prop

        def prop(impl: Implementation, case: Any) -> None:
            on_case(case)
            inner(impl, case)

        recorded = dataclasses.replace(recorded, prop=prop)
    start = time.perf_counter()
    if guard.past_deadline():
        return CheckResult(check, "skip", reason=UNFINISHED)
    try:
        result = run_check(
            recorded, guard.wrap(impl), settings=settings, seed=seed, shrink_limit=shrink_limit
        )
    except _DeadlineReached:
        return CheckResult(check, "skip", seconds=time.perf_counter() - start, reason=UNFINISHED)
    except _StopCheck:
        message, case = guard.expired or (f"{guard.clock.call} did not return", None)
        return CheckResult(
            check,
            "fail",
            seconds=time.perf_counter() - start,
            message=message,
            counterexample="" if case is None else repr(case),
            reproduce=reproduction(check.name, impl, case),
            case=case,
            symptom="no_result",
        )
    result = dataclasses.replace(result, check=check)
    if analyse and result.status == "fail":
        if on_failure is not None:
            on_failure(result)
        result = dataclasses.replace(result, cause=_cause(check, impl, guard, result))
    return result


def _cause(check: Check, impl: Implementation, guard: _Guard, result: Any) -> Any:
    """The failure's cause, replayed through the guard; None if the analysis itself broke."""
    from klspec.conformance.causes import analyse

    guard.timed_out, guard.expired = False, None
    try:
        return analyse(check, guard.wrap(impl), result.case, result.symptom, result.message)
    except (_StopCheck, _DeadlineReached):
        return None
    except Exception:  # an analysis that cannot finish says nothing, rather than something wrong
        return None


def run_checks(
    impl: Implementation,
    checks: Sequence[Check],
    *,
    settings: hypothesis.settings,
    seed: int | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    isolate: bool = True,
    shrink_limit: int | None = None,
    analyse: bool = False,
    deadline: float | None = None,
    memory_limit: float | None = DEFAULT_MEMORY_LIMIT,
    output: Output | None = None,
) -> Iterator[Any]:
    """Run ``checks`` against ``impl``, yielding each CheckResult in order as it completes.

    ``timeout`` is per call of the implementation (None: no limit). With
    ``isolate`` (ignored where fork does not exist) the checks run in a forked
    worker, so a crash or a hang the alarm cannot break fails one check and the
    run goes on, and a worker holding more than ``memory_limit`` megabytes
    (None: no limit) is killed. ``deadline`` (seconds from now, None: none) ends
    the run: unfinished checks are skipped with the reason :data:`UNFINISHED`.
    ``output`` receives what the implementation prints (None: it is not captured).
    With ``analyse`` each failure gets its cause.
    """
    from klspec.conformance.runner import CheckResult

    ends = None if deadline is None else time.monotonic() + deadline
    runnable = []
    for check in checks:
        missing = impl.missing(check.needs)
        if missing:
            reason = f"{impl.name} lacks {', '.join(sorted(missing))}"
            runnable.append(CheckResult(check, "skip", reason=reason))
        else:
            runnable.append(check)
    if isolate and can_isolate():
        limits = _Limits(timeout, ends, memory_limit, output)
        yield from _isolated(impl, runnable, (settings, seed, shrink_limit), limits, analyse)
        return
    guard = _Guard(timeout, _Clock(shared=False), ends, output)
    with guard.alarms():
        for item in runnable:
            if isinstance(item, CheckResult):
                yield item
            else:
                yield _run_guarded(item, impl, guard, settings, seed, shrink_limit, analyse=analyse)


@dataclasses.dataclass(frozen=True)
class _Limits:
    """What bounds a worker: the per-call timeout, the run's end, its memory, its output."""

    timeout: float | None
    deadline: float | None  # time.monotonic() at which the run ends
    memory: float | None  # megabytes
    output: Output | None


# --- the worker process ------------------------------------------------------------


def _wire(result: Any) -> dict[str, Any]:
    """A CheckResult as plain data (its Check holds closures, which do not pickle)."""
    import pickle

    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    del fields["check"]
    try:
        pickle.dumps(fields["case"])
    except Exception:
        fields["case"] = None
    return fields


def _die_with_parent(parent: int) -> None:
    """End this worker, and every process it started, when the parent process is gone.

    The worker leads its own process group, so one signal reaches the children an
    implementation may have spawned; a daemon thread watches the parent (a worker
    blocked writing into a pipe nobody reads would otherwise wait forever).
    """
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)

    def watch() -> None:
        # The per-call alarm is the main thread's business: it must not land here.
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
        while os.getppid() == parent:
            time.sleep(0.2)
        with contextlib.suppress(OSError):
            os.killpg(0, signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker(conn, impl, checks, search, limits, clock, analyse, parent, unused) -> None:
    """The body of a worker: run the checks, send ("case", case) per input and ("done", result).

    A failure is sent as ("failed", result) before its cause is analysed, then again
    with the cause as ("done", result). ``unused`` is the parent's end of the pipe,
    closed here so that the pipe breaks when the parent goes.
    """
    try:
        unused.close()
        _die_with_parent(parent)
        # A crash is reported as a failure with its input; a faulthandler traceback of
        # the worker (pytest enables it) would only bury that report.
        faulthandler.disable()
        guard = _Guard(limits.timeout, clock, limits.deadline, limits.output)

        def on_case(case: Any) -> None:
            try:
                conn.send(("case", case))
            except Exception:
                conn.send(("case", None))

        with guard.alarms():
            for check in checks:
                conn.send(("start", check.name))
                result = _run_guarded(
                    check,
                    impl,
                    guard,
                    *search,
                    on_case,
                    analyse=analyse,
                    on_failure=lambda r: conn.send(("failed", _wire(r))),
                )
                conn.send(("done", _wire(result)))
    except BaseException as exc:  # report, then leave without running the parent's atexit
        with contextlib.suppress(Exception):
            conn.send(("broken", f"{type(exc).__name__}: {exc}"))
    finally:
        with contextlib.suppress(Exception):
            conn.close()
        os._exit(0)


def _isolated(impl, items, search, limits, analyse=False) -> Iterator[Any]:
    from klspec.conformance.runner import CheckResult

    position = 0
    while position < len(items):
        if isinstance(items[position], CheckResult):
            yield items[position]
            position += 1
            continue
        if limits.deadline is not None and time.monotonic() >= limits.deadline:
            yield CheckResult(items[position], "skip", reason=UNFINISHED)
            position += 1
            continue
        batch = []
        for item in items[position:]:
            if isinstance(item, CheckResult):
                break
            batch.append(item)
        for result in _one_worker(impl, batch, search, limits, analyse):
            yield result
            position += 1
        # A worker that died before finishing its batch is replaced by the loop.


def _one_worker(impl, checks, search, limits, analyse=False) -> Iterator[Any]:
    """Run ``checks`` in one forked worker; yield their results until they are done or it dies."""
    from klspec.conformance.runner import CheckResult, reproduction

    ctx = multiprocessing.get_context("fork")
    clock = _Clock(shared=True)
    grace, timeout = GRACE, limits.timeout
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_worker,
        args=(send, impl, checks, search, limits, clock, analyse, os.getpid(), receive),
        daemon=True,
    )
    process.start()
    send.close()
    by_name = {c.name: c for c in checks}
    current: Check | None = None
    pending: Any = None  # a failure whose cause is being analysed
    done = 0
    case: Any = None
    started = time.perf_counter()
    what = ""
    unfinished = False  # killed at the run's deadline: no verdict
    memory = _Memory(process.pid, limits.memory)
    try:
        while True:
            if receive.poll(0.05):
                try:
                    kind, payload = receive.recv()
                except (EOFError, OSError):
                    break
                except Exception as exc:  # bytes that are not the worker's results
                    what = (
                        f"the results of the check could not be read ({type(exc).__name__}): "
                        "did the implementation fork, or write into klspec's pipe? It should "
                        "return a value"
                    )
                    break
                if kind == "start":
                    current, case, started = by_name[payload], None, time.perf_counter()
                elif kind == "case":
                    case = payload
                elif kind == "failed":
                    pending = CheckResult(current, **payload)
                elif kind == "done":
                    yield CheckResult(current, **payload)
                    current, done, pending = None, done + 1, None
                elif kind == "broken":
                    what = f"the worker running the check failed ({payload})"
                    break
                continue
            if not process.is_alive() and not receive.poll(0):
                break
            if timeout and clock.running_for() > timeout + grace:
                what = (
                    f"{clock.call} did not return within {timeout:g} s and ignored the timeout "
                    "signal (its process was killed), but should return a value"
                )
                process.kill()
                break
            if limits.deadline is not None and time.monotonic() > limits.deadline + grace:
                unfinished, what = True, UNFINISHED  # a call that ignores the alarm
                break
            if memory.exceeded():
                who = clock.call if clock.in_call else "the process running the check"
                what = (
                    f"{who} used more than {limits.memory:g} MB of memory (the memory limit; "
                    f"its process was killed), but should return a value"
                )
                break
    finally:
        if what:  # a worker that cannot report any more: end it and whatever it started
            _kill_group(process)
        process.join(5)
        if process.is_alive():
            process.kill()
            process.join()
        _kill_group(process)  # children an implementation spawned must not outlive the run
        receive.close()
    if done == len(checks):
        return
    if pending is not None:  # it died analysing a failure: the failure stands, without a cause
        yield pending
        return
    check = current or checks[done]
    if unfinished:
        yield CheckResult(check, "skip", seconds=time.perf_counter() - started, reason=what)
        return
    symptom = "no_result" if what else "crash"
    if not what:
        death = _death(process.exitcode)
        what = (
            f"{clock.call} {death}, but should return a value"
            if clock.in_call
            else f"the process running the check {death} outside any call of the implementation"
        )
    yield CheckResult(
        check,
        "fail",
        seconds=time.perf_counter() - started,
        message=f"{what} [{check.clause_id}]",
        counterexample="" if case is None else repr(case),
        reproduce=reproduction(check.name, impl, case),
        case=case,
        symptom=symptom,
    )


class _Memory:
    """The resident memory of a worker and of the processes it started, read from /proc."""

    def __init__(self, pid: int | None, limit_mb: float | None) -> None:
        self.pid = pid
        self.limit = None if not limit_mb else limit_mb * 2**20
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.next = 0.0
        self.works = self.limit is not None and os.path.exists(f"/proc/{pid}/statm")

    def exceeded(self) -> bool:
        """Whether the worker holds more than the limit (read at most every _MEMORY_POLL s)."""
        if not self.works or time.monotonic() < self.next:
            return False
        self.next = time.monotonic() + _MEMORY_POLL
        return self.resident() > self.limit

    def resident(self) -> int:
        total, todo, seen = 0, [self.pid], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * self.page
                for task in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{task}/children") as f:
                        todo += [int(c) for c in f.read().split()]
            except (OSError, ValueError, IndexError):
                continue  # it ended meanwhile
        return total


def _kill_group(process: Any) -> None:
    """SIGKILL the worker's process group (the worker and the processes it started).

    The worker made itself the leader of a group with its own pid; the group lives on
    after the worker has ended, as long as a process it started is in it.
    """
    with contextlib.suppress(OSError, TypeError):
        if process.pid:
            os.killpg(process.pid, signal.SIGKILL)


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"crashed its process (killed by {name})"
    return f"ended its process (exit status {exitcode})"
