"""Deliberately nasty implementations for the conformance runner's robustness tests.

Each misbehaves in one way an implementation under test can: raise, return the
wrong thing, hang, crash its process, exit, or write into its inputs. The runner
must turn each into a clean failure of the clause being checked.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

import numpy as np

from klspec.reference import kl_divergence


def correct(p, q):
    return float(kl_divergence(p, q))


def raises(p, q):
    raise ZeroDivisionError("oops")


def returns_nan(p, q):
    return float("nan")


def returns_text(p, q):
    return "0.1"


def wrong_shape(p, q):
    return np.zeros(3)


def hangs(p, q):
    while True:
        pass


def sleeps(p, q):
    time.sleep(60)


def ignores_the_alarm(p, q):
    """A loop the timeout signal cannot interrupt (as a loop in C code holding the GIL)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
    while True:
        pass


def exits_the_process(p, q):
    os._exit(3)


def segfaults(p, q):
    ctypes.string_at(0)


def calls_sys_exit(p, q):
    sys.exit(4)


class _Unprintable:
    def __repr__(self):
        raise RuntimeError("no repr")


def returns_unprintable(p, q):
    return _Unprintable()


class Mute(Exception):
    def __str__(self):
        raise RuntimeError("no str")


def raises_unprintable(p, q):
    raise Mute


def prints(p, q):
    """Correct, and talks: print, a raw write to fd 1, and stderr."""
    print("print from the target")
    os.write(1, b"fd 1 from the target\n")
    sys.stderr.write("stderr from the target\n")
    return correct(p, q)


_LEAK: list = []


def leaks(p, q):
    """Correct, and keeps 64 MB more on every call."""
    _LEAK.append(np.ones(2**23))
    return correct(p, q)


def slow(p, q):
    time.sleep(0.3)
    return correct(p, q)


def writes_into_q(p, q):
    q /= q.sum()  # "normalises" in place: the caller's q changes
    return correct(p, q)


def writes_into_log_q(log_q, p):
    log_q -= 1.0  # rescales Q in place: the caller's q must show the change
    return correct(p, np.exp(log_q) / np.exp(log_q).sum())


def torch_order(log_q, p):
    """A correct KL taking torch's argument order, (log Q, P), on numpy arrays."""
    return correct(p, np.exp(log_q))


def correct_entropy(p):
    from klspec.reference import entropy

    return float(entropy(p))


def literal_in_torch_order(log_q, p):
    """Σ p·(log p − log q), literally: NaN at p_i = 0, negative on nearly equal inputs."""
    with np.errstate(all="ignore"):
        return float(np.sum(p * (np.log(p) - log_q)))
