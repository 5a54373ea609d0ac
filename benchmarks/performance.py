"""Speed and memory of the reference against its peers, on the same inputs, in one process.

    python benchmarks/performance.py [--quick] [--case NAME ...] [--repeat N]
                                     [--peers LIB ...] [--json PATH] [--markdown PATH]

For every case (--help lists them) the reference (klspec.reference) and every
installed peer (numpy written literally, scipy.special, torch, jax) get the same inputs.
Each row reports:

- the median of N timed calls (default 5, --quick 2) after one untimed warm-up call
  (for jax, after ahead-of-time compilation), taken in rounds of one call of each
  implementation (interleaved, so a change in the machine's load lands on all alike);
  converting the inputs to a library's array type (torch.from_numpy, jax.device_put)
  happens before and is not timed;
- peer ÷ ref, the peer's median time over the reference's (> 1: the peer is slower),
  and ref ÷ peer, its inverse: issue 6's target is ref ÷ peer <= 1.0;
- the peak extra memory of one call, measured in a fresh process per row: by
  tracemalloc for numpy-based rows (numpy reports its array allocations to it), by
  peak RSS growth for torch and jax rows (their allocators are invisible to
  tracemalloc): ru_maxrss after the call minus ru_maxrss just before it, with the
  peak reset through /proc/self/clear_refs where Linux allows it;
- the largest relative difference of the result from the reference's.

The memory probes run first, while this process is small: a child process inherits
its parent's peak RSS through exec, so probing after the large timing runs would
hide every child's growth. jax is imported only when a jax row is measured.

Not part of the test suite; tests/test_benchmark_smoke.py runs it on tiny inputs.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import klspec.reference as ref

SCRIPT = Path(__file__).resolve()
PEER_LIBRARIES = ("numpy", "scipy", "torch", "jax")
REFERENCE_LIBRARY = "klspec"
# Memory is measured by tracemalloc for these libraries, by peak RSS for the others.
TRACEMALLOC_LIBRARIES = frozenset({"klspec", "numpy", "scipy"})
MB = 1e6
PROBE_TIMEOUT_S = 3600


# ---------------------------------------------------------------------------
# Sizes and inputs
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """Input sizes: ``n`` for the 1-D cases, ``batch`` (rows, support), ``logits`` (B, T, V)."""

    n: int
    batch: tuple[int, int]
    logits: tuple[int, int, int]


FULL = Sizes(n=10**7, batch=(1000, 10**4), logits=(8, 256, 32000))
QUICK = Sizes(n=10**5, batch=(100, 1000), logits=(2, 64, 1000))
#: The token_kl sweep's long vocabularies (Qwen's 152,064 and 262,144): (B, T) of their
#: logits, a batch of about as many logits as the (8, 256, 32000) cases; --quick: (1, 4).
LONG_VOCABULARIES = (152_064, 262_144)
LONG_VOCABULARY_BATCH = {False: (1, 256), True: (1, 4)}
# Tiny inputs for a memory probe's first call: they load each library's kernels and
# thread pools without touching the peak the measured call is about.
WARM_UP = Sizes(n=1000, batch=(4, 100), logits=(1, 4, 50))


def _distribution(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Positive probabilities along the last axis, built in place (no transient copies)."""
    x = rng.random(shape)
    np.subtract(1.0, x, out=x)  # (0, 1]: no zero entries, so literal logs stay finite
    x /= x.sum(axis=-1, keepdims=True)
    return x


def _perturbed(rng: np.random.Generator, p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """q = p·(1 + eps·u), u uniform in [-1, 1], renormalised; built in place."""
    q = rng.uniform(-1.0, 1.0, p.shape)
    q *= eps
    q += 1.0
    q *= p
    q /= q.sum(axis=-1, keepdims=True)
    return q


def unrelated_pair(sizes: Sizes, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"p": _distribution(rng, (sizes.n,)), "q": _distribution(rng, (sizes.n,))}


def nearly_equal_pair(sizes: Sizes, rng: np.random.Generator) -> dict[str, np.ndarray]:
    p = _distribution(rng, (sizes.n,))
    return {"p": p, "q": _perturbed(rng, p)}


def batch_pair(sizes: Sizes, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"p": _distribution(rng, sizes.batch), "q": _distribution(rng, sizes.batch)}


def logits_pair(sizes: Sizes, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """float32 logits a (policy) and b = a + 0.1·noise (a nearby reference model)."""
    a = rng.standard_normal(sizes.logits, dtype=np.float32)
    a *= 2.0
    b = rng.standard_normal(sizes.logits, dtype=np.float32)
    b *= 0.1
    b += a
    return {"a": a, "b": b}


@dataclass(frozen=True)
class LogitsSweep:
    """token_kl sweep inputs: a ~ N(0, 3²) and b by ``kind`` (a σ as text, "unrelated" or
    "moved20": b = a but one token per row 20 higher, or "masked": b = a + 0.1·noise with
    the last eighth of the vocabulary −inf in both and one token in 64 −inf in a only), in
    ``dtype``, of the sizes' logits
    shape or (B, T, ``vocabulary``)."""

    kind: str
    dtype: str = "float32"
    vocabulary: int | None = None

    def shape(self, sizes: Sizes) -> tuple[int, int, int]:
        if self.vocabulary is None:
            return sizes.logits
        quick = sizes.logits[-1] < 32000  # --quick or a smaller override
        return (*LONG_VOCABULARY_BATCH[quick], self.vocabulary)

    def __call__(self, sizes: Sizes, rng: np.random.Generator) -> dict[str, np.ndarray]:
        shape, dtype = self.shape(sizes), np.dtype(self.dtype)
        a = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
        a *= 3.0
        if self.kind == "unrelated":
            b = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
            b *= 3.0
        elif self.kind == "moved20":
            b = a.copy()
            rows = b.reshape(-1, shape[-1])
            tokens = rng.integers(shape[-1], size=rows.shape[0])
            rows[np.arange(rows.shape[0]), tokens] += 20.0
        elif self.kind == "masked":  # a padded vocabulary, and tokens the policy bans
            b = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
            b *= 0.1
            b += a
            a[..., shape[-1] - shape[-1] // 8 :] = -np.inf
            b[..., shape[-1] - shape[-1] // 8 :] = -np.inf
            a[..., 5::64] = -np.inf
        else:
            b = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
            b *= float(self.kind)
            b += a
        return {"a": a, "b": b}

    def text(self, sizes: Sizes) -> str:
        return f"{self.dtype} logits of shape {self.shape(sizes)}"


def describe_inputs(case: Case, sizes: Sizes) -> str:
    if isinstance(case.build, LogitsSweep):
        return f"{case.description}, {case.build.text(sizes)}"
    shape = {
        unrelated_pair: f"n = {sizes.n:,}",
        nearly_equal_pair: f"n = {sizes.n:,}",
        batch_pair: f"shape {sizes.batch}",
        logits_pair: f"float32 logits of shape {sizes.logits}",
    }[case.build]
    return f"{case.description}, {shape}"


# ---------------------------------------------------------------------------
# Implementations
# ---------------------------------------------------------------------------

Inputs = dict[str, np.ndarray]
Call = Callable[[], object]


@dataclass(frozen=True)
class Impl:
    """One implementation of a case: ``prepare(inputs)`` returns the call to measure."""

    key: str  # short id, used by the memory probe
    library: str  # "klspec" for the reference, else the peer's library
    label: str  # shown in the report
    prepare: Callable[[Inputs], Call]


def _torch():
    import torch

    return torch


def _jax():
    """jax with float64 enabled; called only when a jax row is measured.

    jax starts threads when initialised and must not be initialised in a process that
    later forks; this script only starts children through exec (subprocess).
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax


def _jitted(fn: Callable, *arrays: np.ndarray) -> Call:
    """``fn`` compiled ahead of time for these arrays (copied to jax buffers first)."""
    jax = _jax()
    args = [jax.device_put(x) for x in arrays]
    compiled = jax.jit(fn).lower(*args).compile()
    return lambda: compiled(*args).block_until_ready()


def _torch_args(*arrays: np.ndarray):
    torch = _torch()
    return torch, [torch.from_numpy(x) for x in arrays]  # zero-copy views


# kl (1-D and batch: every sum is over the last axis)


def _kl_reference(x: Inputs) -> Call:
    return lambda: ref.kl_divergence(x["p"], x["q"], axis=-1)


def _kl_scipy(x: Inputs) -> Call:
    from scipy.special import rel_entr

    return lambda: rel_entr(x["p"], x["q"]).sum(axis=-1)


def _kl_numpy(x: Inputs) -> Call:
    p, q = x["p"], x["q"]
    return lambda: np.sum(p * np.log(p / q), axis=-1)


def _kl_torch(x: Inputs) -> Call:
    torch, (p, q) = _torch_args(x["p"], x["q"])
    kl_div = torch.nn.functional.kl_div
    if p.ndim == 1:
        return lambda: kl_div(q.log(), p, reduction="sum")
    return lambda: kl_div(q.log(), p, reduction="none").sum(-1)


def _kl_jax(x: Inputs) -> Call:
    jax = _jax()
    return _jitted(lambda p, q: jax.scipy.special.rel_entr(p, q).sum(-1), x["p"], x["q"])


def kl_impls(batched: bool) -> tuple[Impl, ...]:
    axis = ", axis=-1" if batched else ""
    s = "(-1)" if batched else "()"
    torch_label = (
        "torch kl_div(q.log(), p, reduction='none').sum(-1)"
        if batched
        else "torch kl_div(q.log(), p, reduction='sum')"
    )
    return (
        Impl("reference", REFERENCE_LIBRARY, f"klspec kl_divergence(p, q{axis})", _kl_reference),
        Impl("scipy", "scipy", f"scipy rel_entr(p, q).sum{s}", _kl_scipy),
        Impl("numpy", "numpy", f"numpy np.sum(p * np.log(p / q){axis})", _kl_numpy),
        Impl("torch", "torch", torch_label, _kl_torch),
        Impl("jax", "jax", f"jax jit(rel_entr(p, q).sum{s})", _kl_jax),
    )


# entropy


def _entropy_scipy(x: Inputs) -> Call:
    from scipy.special import entr

    return lambda: entr(x["p"]).sum()


def _entropy_numpy(x: Inputs) -> Call:
    p = x["p"]
    return lambda: -np.sum(p * np.log(p))


def _entropy_torch(x: Inputs) -> Call:
    torch, (p,) = _torch_args(x["p"])
    return lambda: torch.special.entr(p).sum()


def _entropy_jax(x: Inputs) -> Call:
    jax = _jax()
    return _jitted(lambda p: jax.scipy.special.entr(p).sum(), x["p"])


ENTROPY_IMPLS = (
    Impl(
        "reference", REFERENCE_LIBRARY, "klspec entropy(p)", lambda x: lambda: ref.entropy(x["p"])
    ),
    Impl("scipy", "scipy", "scipy entr(p).sum()", _entropy_scipy),
    Impl("numpy", "numpy", "numpy -np.sum(p * np.log(p))", _entropy_numpy),
    Impl("torch", "torch", "torch special.entr(p).sum()", _entropy_torch),
    Impl("jax", "jax", "jax jit(entr(p).sum())", _entropy_jax),
)


# cross-entropy


def _cross_entropy_scipy(x: Inputs) -> Call:
    from scipy.special import xlogy

    return lambda: -xlogy(x["p"], x["q"]).sum()


def _cross_entropy_numpy(x: Inputs) -> Call:
    p, q = x["p"], x["q"]
    return lambda: -np.sum(p * np.log(q))


def _cross_entropy_torch(x: Inputs) -> Call:
    torch, (p, q) = _torch_args(x["p"], x["q"])
    return lambda: -torch.special.xlogy(p, q).sum()


def _cross_entropy_jax(x: Inputs) -> Call:
    jax = _jax()
    return _jitted(lambda p, q: -jax.scipy.special.xlogy(p, q).sum(), x["p"], x["q"])


CROSS_ENTROPY_IMPLS = (
    Impl(
        "reference",
        REFERENCE_LIBRARY,
        "klspec cross_entropy(p, q)",
        lambda x: lambda: ref.cross_entropy(x["p"], x["q"]),
    ),
    Impl("scipy", "scipy", "scipy -xlogy(p, q).sum()", _cross_entropy_scipy),
    Impl("numpy", "numpy", "numpy -np.sum(p * np.log(q))", _cross_entropy_numpy),
    Impl("torch", "torch", "torch -special.xlogy(p, q).sum()", _cross_entropy_torch),
    Impl("jax", "jax", "jax jit(-xlogy(p, q).sum())", _cross_entropy_jax),
)


# token_kl: KL(softmax(a) ‖ softmax(b)) per position, in the logits' float32 for peers


def _token_kl_scipy(x: Inputs) -> Call:
    from scipy.special import log_softmax

    def call():
        la, lb = log_softmax(x["a"], axis=-1), log_softmax(x["b"], axis=-1)
        return np.sum(np.exp(la) * (la - lb), axis=-1)

    return call


def _token_kl_torch(x: Inputs) -> Call:
    torch, (a, b) = _torch_args(x["a"], x["b"])
    f = torch.nn.functional
    return lambda: f.kl_div(
        f.log_softmax(b, -1), f.log_softmax(a, -1), reduction="none", log_target=True
    ).sum(-1)


def _token_kl_jax(x: Inputs) -> Call:
    jax = _jax()

    def token_kl(a, b):
        la, lb = jax.nn.log_softmax(a, axis=-1), jax.nn.log_softmax(b, axis=-1)
        return (jax.numpy.exp(la) * (la - lb)).sum(-1)

    return _jitted(token_kl, x["a"], x["b"])


TOKEN_KL_IMPLS = (
    Impl(
        "reference",
        REFERENCE_LIBRARY,
        "klspec token_kl(a, b)",
        lambda x: lambda: ref.token_kl(x["a"], x["b"]),
    ),
    Impl(
        "scipy",
        "scipy",
        "scipy log_softmax, np.sum(exp(la) * (la - lb), -1)",
        _token_kl_scipy,
    ),
    Impl(
        "torch",
        "torch",
        "torch kl_div(log_softmax(b), log_softmax(a), 'none', log_target=True).sum(-1)",
        _token_kl_torch,
    ),
    Impl("jax", "jax", "jax jit(sum(exp(la) * (la - lb), -1)), log_softmax", _token_kl_jax),
)


# validation: what checking the values costs inside kl_divergence


def _validation_only(x: Inputs) -> Call:
    """The validation kl_divergence does, alone: the shape rules, then a pass over the
    same blocks on the same threads taking each block's minima and row sums (an upper
    bound: the row sums of p also serve the KL itself)."""
    from klspec.reference import _chunked
    from klspec.reference.validation import prepare_distributions

    def kernel(blocks, work):
        p, q = blocks
        return _chunked._Record(
            sums={"sp": p.sum(axis=-1), "sq": q.sum(axis=-1)},
            lowest={"p": float(p.min()), "q": float(q.min())},
        )

    def call():
        arrays, _ = prepare_distributions({"p": x["p"], "q": x["q"]}, axis=-1)
        return _chunked.run(arrays, kernel)

    return call


VALIDATION_IMPLS = (
    Impl(
        "reference",
        REFERENCE_LIBRARY,
        "klspec kl_divergence(p, q) (whole call)",
        _kl_reference,
    ),
    Impl(
        "validate",
        REFERENCE_LIBRARY,
        "its validation alone: shape rules + blockwise minima and row sums",
        _validation_only,
    ),
)


@dataclass(frozen=True)
class Case:
    name: str
    description: str
    build: Callable[[Sizes, np.random.Generator], Inputs]
    impls: tuple[Impl, ...]  # impls[0] is the reference: the ratios' denominator
    comparable: bool = True  # whether results are compared with the reference's
    target: str | None = "scipy"  # the peer issue 6 sets the target against
    target_ratio: float = 1.0  # the issue-6 target for ref ÷ target peer


def _sweep_cases() -> tuple[Case, ...]:
    """token_kl at every distance of issue 15: klspec against torch (the target, 1.0×)."""
    impls = (TOKEN_KL_IMPLS[0], TOKEN_KL_IMPLS[2])
    a = "a ~ N(0, 3²)"
    specs = [
        *(
            (f"token_kl_s{kind}", f"token_kl, b = a + {kind}·noise, {a}", LogitsSweep(kind))
            for kind in SWEEP_SIGMAS
        ),
        ("token_kl_unrelated", f"token_kl, unrelated rows, {a} and b alike",
         LogitsSweep("unrelated")),
        ("token_kl_moved20", f"token_kl, b = a but one token per row + 20, {a}",
         LogitsSweep("moved20")),
        ("token_kl_masked", f"token_kl, −inf masks: b = a + 0.1·noise, {a}, the last eighth "
         "of the vocabulary −inf in both, every 64th token −inf in a", LogitsSweep("masked")),
        *(
            (f"token_kl_v{v}", f"token_kl, vocabulary {v:,}, b = a + 1·noise, {a}",
             LogitsSweep("1", vocabulary=v))
            for v in LONG_VOCABULARIES
        ),
        ("token_kl_f64_s1", f"token_kl, float64 logits, b = a + 1·noise, {a}",
         LogitsSweep("1", dtype="float64")),
        ("token_kl_f64_s0.01", f"token_kl, float64 logits, b = a + 0.01·noise, {a}",
         LogitsSweep("0.01", dtype="float64")),
    ]  # fmt: skip
    return tuple(
        Case(name, text, build, impls, target="torch", target_ratio=1.0)
        for name, text, build in specs
    )


SWEEP_SIGMAS = ("0.01", "0.1", "0.5", "1", "3")
SWEEP_CASES = _sweep_cases()
SWEEP_NAMES = frozenset(case.name for case in SWEEP_CASES)

CASES = {
    case.name: case
    for case in (
        Case("kl_unrelated", "KL(p‖q), two unrelated float64 distributions", unrelated_pair,
             kl_impls(batched=False)),
        Case("kl_nearly_equal", "KL(p‖q), q = p·(1 + 1e-6·u) renormalised", nearly_equal_pair,
             kl_impls(batched=False)),
        Case("entropy", "H(p), float64", unrelated_pair, ENTROPY_IMPLS),
        Case("cross_entropy", "H(p, q), two unrelated float64 distributions", unrelated_pair,
             CROSS_ENTROPY_IMPLS),
        Case("kl_batch", "KL(p‖q) per row (axis=-1), unrelated float64 rows", batch_pair,
             kl_impls(batched=True)),
        Case("token_kl", "per-token KL(softmax(a)‖softmax(b)), b = a + 0.1·noise",
             logits_pair, TOKEN_KL_IMPLS, target="torch", target_ratio=0.8),
        Case("validation", "validation's share of kl_divergence (ratio = share)",
             unrelated_pair, VALIDATION_IMPLS, comparable=False, target=None),
        *SWEEP_CASES,
    )
}  # fmt: skip


def find_impl(case: Case, key: str) -> Impl:
    for impl in case.impls:
        if impl.key == key:
            return impl
    raise KeyError(f"case {case.name} has no implementation {key!r}")


def unavailable_reason(impl: Impl, peers: Sequence[str]) -> str | None:
    """Why ``impl`` is skipped (not selected, or not installed), or None to run it."""
    if impl.library == REFERENCE_LIBRARY:
        return None
    if impl.library not in peers:
        return f"{impl.library} not selected (--peers {' '.join(peers)})"
    if importlib.util.find_spec(impl.library) is None:
        return f"{impl.library} is not installed"
    return None


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------


def time_calls(call: Call, repeat: int) -> tuple[object, list[float]]:
    """The warm-up call's result and ``repeat`` timings (seconds) of later calls."""
    result = call()
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: a collection would land in one call's time
    try:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
    finally:
        if was_enabled:
            gc.enable()
    return result, times


def time_interleaved(calls: dict[str, Call], repeat: int) -> dict[str, list[float]]:
    """``repeat`` timings (seconds) of each call, taken in rounds of one call each."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: a collection would land in one call's time
    times: dict[str, list[float]] = {key: [] for key in calls}
    try:
        for _ in range(repeat):
            for key, call in calls.items():
                start = time.perf_counter()
                call()
                times[key].append(time.perf_counter() - start)
    finally:
        if was_enabled:
            gc.enable()
    return times


def _max_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _current_rss_kib() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS to its current RSS (Linux >= 4.0), if allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def memory_probe(case_name: str, impl_key: str, sizes: Sizes, seed: int) -> dict:
    """Peak extra memory of one call; meant to run in a fresh process (--_memory-probe).

    The peak RSS of a process is a high-water mark (and inherits the parent's through
    exec), so the baseline is taken after building the inputs, preparing the call and a
    warm-up on tiny inputs, right after resetting the peak where Linux allows it. If
    the baseline still exceeds the current RSS, the growth is only a lower bound.
    """
    case = CASES[case_name]
    impl = find_impl(case, impl_key)
    impl.prepare(case.build(WARM_UP, np.random.default_rng(seed)))()
    inputs = case.build(sizes, np.random.default_rng(seed))
    call = impl.prepare(inputs)
    gc.collect()
    reset = _reset_peak_rss()
    base_kib, current_kib = _max_rss_kib(), _current_rss_kib()
    tracemalloc.start()
    traced_before = tracemalloc.get_traced_memory()[0]
    result = call()
    traced_peak = tracemalloc.get_traced_memory()[1]
    peak_kib = _max_rss_kib()
    tracemalloc.stop()
    del result
    excess_kib = None if current_kib is None else max(0, base_kib - current_kib)
    return {
        "tracemalloc_bytes": traced_peak - traced_before,
        "rss_growth_bytes": (peak_kib - base_kib) * 1024,
        "rss_baseline_bytes": base_kib * 1024,
        "rss_peak_reset": reset,
        # > 0: the baseline was an earlier high-water mark, so the growth is a lower bound
        "rss_baseline_excess_bytes": None if excess_kib is None else excess_kib * 1024,
        "input_bytes": sum(x.nbytes for x in inputs.values()),
    }


def run_memory_probe(case: Case, impl: Impl, sizes: Sizes, seed: int) -> dict:
    """memory_probe in a fresh interpreter running this script with the hidden flag."""
    spec = {"case": case.name, "impl": impl.key, "sizes": sizes.__dict__, "seed": seed}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--_memory-probe", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return {"error": f"memory probe exited with {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def memory_summary(library: str, probe: dict | None) -> dict | None:
    """The number the report shows for a row, with the method that measured it."""
    if probe is None or "error" in probe:
        return probe
    if library in TRACEMALLOC_LIBRARIES:
        method, extra, lower_bound = "tracemalloc", probe["tracemalloc_bytes"], False
    else:
        method, extra = "RSS", probe["rss_growth_bytes"]
        lower_bound = (probe["rss_baseline_excess_bytes"] or 0) > 1 << 20
    return {
        "method": method,
        "extra_bytes": extra,
        "lower_bound": lower_bound,
        "per_input_byte": extra / probe["input_bytes"],
        "probe": probe,
    }


def relative_difference(value: object, reference: object) -> float | None:
    """max |value − reference| / |reference| over the entries (0 where they are equal)."""
    x = np.asarray(value, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if x.shape != r.shape:
        return None
    with np.errstate(all="ignore"):
        diff = np.where(x == r, 0.0, np.abs(x - r) / np.abs(r))
    return float(np.max(diff)) if diff.size else 0.0


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_revision() -> str | None:
    root = SCRIPT.parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}{' with local changes' if dirty else ''}"


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    memory_bytes = None
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory_bytes = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    os_name = platform.platform()
    with contextlib.suppress(OSError, KeyError, AttributeError):  # not Linux, or Python < 3.10
        os_name += f" ({platform.freedesktop_os_release()['PRETTY_NAME']})"
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory_bytes": memory_bytes,
        "os": os_name,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def versions() -> dict:
    """Library versions from their metadata (importing torch or jax here would grow RSS)."""
    found = {"python": platform.python_version()}
    for dist in ("numpy", "scipy", "torch", "jax", "jaxlib", "klspec"):
        found[dist] = _version(dist)
    found["klspec_git"] = _git_revision()
    from klspec.reference import _chunked

    found["klspec_threads"] = _chunked.threads()
    return found


def _parse_shape(text: str, length: int) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != length or min(shape) < 1:
        raise argparse.ArgumentTypeError(
            f"expected {length} positive integers separated by commas, got {text!r}"
        )
    return shape


def build_parser() -> argparse.ArgumentParser:
    cases = "\n".join(f"  {c.name:16} {c.description}" for c in CASES.values())
    parser = argparse.ArgumentParser(
        prog="python benchmarks/performance.py",
        description=__doc__.split("\n\n", 2)[2].split("\n\nThe memory probes")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"cases:\n{cases}\n\n"
            f"sizes: full n = {FULL.n:,}, batch {FULL.batch}, logits {FULL.logits}\n"
            f"  (~{np.prod(FULL.logits) * 4 / MB:.0f} MB per input); --quick n = {QUICK.n:,}, "
            f"batch {QUICK.batch}, logits {QUICK.logits}.\n"
            "A full run takes several minutes. The reference runs on KLSPEC_NUM_THREADS\n"
            "threads (default: every usable CPU); set it to 1 to measure one core."
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="small inputs and 2 repeats (a minute at most)"
    )
    parser.add_argument(
        "--case", nargs="+", choices=list(CASES), metavar="NAME",
        help="run only these cases (default: all; names below)",
    )  # fmt: skip
    parser.add_argument(
        "--repeat", type=int, metavar="N",
        help="timed calls per row, after one warm-up (default 5, --quick 2)",
    )  # fmt: skip
    parser.add_argument(
        "--peers", nargs="+", choices=PEER_LIBRARIES, default=list(PEER_LIBRARIES),
        metavar="LIB", help=f"peer libraries to run (default: all of {', '.join(PEER_LIBRARIES)})",
    )  # fmt: skip
    parser.add_argument("--n", type=int, help="override the support size of the 1-D cases")
    parser.add_argument(
        "--batch-shape", type=lambda s: _parse_shape(s, 2), metavar="ROWS,N",
        help="override the kl_batch shape",
    )  # fmt: skip
    parser.add_argument(
        "--logits-shape", type=lambda s: _parse_shape(s, 3), metavar="B,T,V",
        help="override the token_kl logits shape",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=2026, help="input seed (default 2026)")
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the memory probes (no subprocesses)"
    )
    parser.add_argument(
        "--memory-of", nargs="+", choices=(REFERENCE_LIBRARY, *PEER_LIBRARIES), metavar="LIB",
        help="probe the memory of these libraries' rows only (default: every row)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the report as JSON")
    parser.add_argument(
        "--markdown", type=Path, metavar="PATH", help="write the markdown report to a file"
    )
    parser.add_argument("--_memory-probe", dest="memory_probe", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the benchmark; print the markdown report and return the report as a dict."""
    args = build_parser().parse_args(argv)
    if args.memory_probe is not None:
        spec = json.loads(args.memory_probe)
        sizes = Sizes(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in spec["sizes"].items()}
        )
        result = memory_probe(spec["case"], spec["impl"], sizes, spec["seed"])
        print(json.dumps(result))
        return result

    base = QUICK if args.quick else FULL
    sizes = Sizes(
        n=args.n or base.n,
        batch=args.batch_shape or base.batch,
        logits=args.logits_shape or base.logits,
    )
    repeat = args.repeat or (2 if args.quick else 5)
    if repeat < 1:
        build_parser().error("--repeat must be at least 1")
    cases = [CASES[name] for name in (args.case or CASES)]
    report = {
        "command": shlex.join(
            ["python", "benchmarks/performance.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "machine": machine_info(),
        "versions": versions(),
        "settings": {
            "quick": args.quick,
            "repeat": repeat,
            "warm_up_calls": 1,
            "sizes": sizes.__dict__,
            "seed": args.seed,
            "peers": list(args.peers),
        },
        "rows": [],
    }
    rows = {}
    for case in cases:
        for impl in case.impls:
            reason = unavailable_reason(impl, args.peers)
            rows[case.name, impl.key] = {
                "case": case.name,
                "implementation": impl.label,
                "key": impl.key,
                "library": impl.library,
                "status": "skipped" if reason else "pending",
                "reason": reason,
            }
    report["rows"] = list(rows.values())
    runnable = [
        (c, i) for c in cases for i in c.impls if rows[c.name, i.key]["status"] != "skipped"
    ]

    # Memory first, while this process has not grown (see the module docstring).
    if not args.no_memory:
        probed = [
            (c, i) for c, i in runnable if args.memory_of is None or i.library in args.memory_of
        ]
        for k, (case, impl) in enumerate(probed, 1):
            _progress(f"[memory {k}/{len(probed)}] {case.name}: {impl.label}")
            start = time.perf_counter()
            probe = run_memory_probe(case, impl, sizes, args.seed)
            rows[case.name, impl.key]["memory"] = memory_summary(impl.library, probe)
            _progress(f"    {_format_memory(rows[case.name, impl.key]['memory'])} "
                      f"({time.perf_counter() - start:.1f} s)")  # fmt: skip

    for case in cases:
        _progress(f"[time] {case.name}: {describe_inputs(case, sizes)}")
        inputs = case.build(sizes, np.random.default_rng(args.seed))
        reference_result = None
        calls = {}
        for impl in case.impls:  # prepare and warm up every implementation first
            row = rows[case.name, impl.key]
            if row["status"] == "skipped":
                _progress(f"    skipped {impl.label}: {row['reason']}")
                continue
            try:
                call = impl.prepare(inputs)
                result = call()
            except Exception as exc:  # a peer that fails is reported, not fatal
                row.update(status="error", reason=f"{type(exc).__name__}: {exc}")
                _progress(f"    error in {impl.label}: {row['reason']}")
                continue
            calls[impl.key] = call
            if impl is case.impls[0]:
                reference_result = result
            elif case.comparable and reference_result is not None:
                row["max_relative_difference"] = relative_difference(result, reference_result)
            del result
        # Interleaved: one call of each implementation per round, so a change in the
        # machine's load lands on all of them alike.
        times = time_interleaved(calls, repeat)
        for key, measured in times.items():
            row = rows[case.name, key]
            row.update(status="ok", times_s=measured, median_s=float(np.median(measured)))
            _progress(f"    {_format_time(row['median_s'])}  {row['implementation']}")
        del inputs, reference_result, calls
        gc.collect()
        _add_ratios([rows[case.name, i.key] for i in case.impls])

    if importlib.util.find_spec("torch") is None:
        _progress("torch is not installed: its rows are skipped and the sweep has no ratios")
    if "torch" in sys.modules:
        report["versions"]["torch_threads"] = sys.modules["torch"].get_num_threads()
    report["cases"] = {c.name: describe_inputs(c, sizes) for c in cases}
    markdown = render_markdown(report)
    print(markdown)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown)
    return report


def _add_ratios(case_rows: list[dict]) -> None:
    reference = case_rows[0]
    for row in case_rows:
        if row["status"] == "ok" and reference["status"] == "ok":
            row["peer_over_reference"] = row["median_s"] / reference["median_s"]
            row["reference_over_peer"] = reference["median_s"] / row["median_s"]


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


def _format_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3g} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def _format_memory(memory: dict | None) -> str:
    if memory is None:
        return "not measured"
    if "error" in memory:
        return f"error: {memory['error']}"
    bound = "≥ " if memory["lower_bound"] else ""
    return f"{bound}{memory['extra_bytes'] / MB:,.1f} MB [{memory['method']}]"


def _format_ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def render_markdown(report: dict) -> str:
    m, v, s = report["machine"], report["versions"], report["settings"]
    torch_threads = f" ({v['torch_threads']} threads)" if "torch_threads" in v else ""
    jax = f"{v['jax']} (jaxlib {v['jaxlib']})" if v["jax"] else None
    git = f" (git {v['klspec_git']})" if v["klspec_git"] else ""
    load = ", ".join(f"{x:.2f}" for x in m["load_average_at_start"] or [])
    memory = f", {m['memory_bytes'] / 2**30:.1f} GiB RAM" if m["memory_bytes"] else ""
    lines = [
        "# klspec performance: the reference against its peers",
        "",
        f"- Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs ({m['usable_cpus']} usable)"
        f"{memory}; {m['os']}; load average at start {load or 'unknown'}",
        f"- Versions: python {v['python']}, numpy {v['numpy']}, scipy {v['scipy'] or '—'}, "
        f"torch {v['torch'] or '—'}{torch_threads}, jax {jax or '—'}, klspec {v['klspec']}{git}"
        f" ({v.get('klspec_threads', '?')} threads)",
        f"- Command: `{report['command']}`",
        f"- Time: median of {s['repeat']} timed calls after {s['warm_up_calls']} warm-up call, "
        "inputs already converted to each library's arrays (jax: compiled ahead of time).",
        "- `peer ÷ ref` = peer time / reference time (> 1: the peer is slower); `ref ÷ peer` = "
        "reference time / peer time, the issue-6 target is ref ÷ peer ≤ 1.0.",
        "- Peak extra memory: one call on top of its inputs, in a fresh process per row. "
        "[tracemalloc] = tracemalloc's peak during the call (numpy reports its arrays to it; "
        "reference, numpy and scipy rows). [RSS] = ru_maxrss after the call − ru_maxrss just "
        "before it, peak reset via /proc/self/clear_refs (torch and jax rows, whose allocations "
        "tracemalloc cannot see; ≥ marks a lower bound). × inputs = extra / bytes of the inputs.",
        "- rel. diff = max relative difference from the reference's result (the reference is "
        "exact to 1e-15).",
        "",
        "## Summary",
        "",
        "| case | reference | target peer | ref ÷ target (goal) | met | fastest peer "
        "| ref ÷ fastest |",
        "|---|---:|---|---:|---|---|---:|",
    ]
    by_case: dict[str, list[dict]] = {}
    for row in report["rows"]:
        by_case.setdefault(row["case"], []).append(row)
    for name, rows in by_case.items():
        reference = rows[0]
        if name == "validation" or name in SWEEP_NAMES or reference["status"] != "ok":
            continue
        peers = [r for r in rows[1:] if r["status"] == "ok"]
        fastest = min(peers, key=lambda r: r["median_s"], default=None)
        case = CASES.get(name)
        target = next((r for r in peers if case and r["key"] == case.target), None)
        if target:
            ratio = target["reference_over_peer"]
            target_cells = (
                f"{target['implementation']} ({_format_time(target['median_s'])}) | "
                f"{_format_ratio(ratio)} (≤ {case.target_ratio:g}) | "
                f"{'yes' if ratio <= case.target_ratio else '**no**'} | "
            )
        else:
            target_cells = "— | — | — | "
        lines.append(
            f"| {name} | {_format_time(reference['median_s'])} | "
            + target_cells
            + (
                f"{fastest['implementation']} ({_format_time(fastest['median_s'])}) | "
                f"{_format_ratio(fastest['reference_over_peer'])} |"
                if fastest
                else "— | — |"
            )
        )
    lines += sweep_summary(by_case, report["cases"])
    lines += where_the_time_goes(by_case, v.get("klspec_threads"))
    for name, rows in by_case.items():
        lines += [
            "",
            f"## {name}: {report['cases'][name]}",
            "",
            "| implementation | median time | peer ÷ ref | ref ÷ peer | peak extra memory "
            "| × inputs | rel. diff |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        skipped = []
        for row in rows:
            if row["status"] == "skipped":
                skipped.append(f"{row['implementation']}: {row['reason']}")
                continue
            if row["status"] == "error":
                lines.append(f"| {row['implementation']} | error: {row['reason']} ||||||")
                continue
            memory = row.get("memory")
            per_input = (
                f"{memory['per_input_byte']:.2g}" if memory and "error" not in memory else "—"
            )
            diff = row.get("max_relative_difference")
            lines.append(
                f"| {row['implementation']} | {_format_time(row['median_s'])} | "
                f"{_format_ratio(row.get('peer_over_reference'))} | "
                f"{_format_ratio(row.get('reference_over_peer'))} | {_format_memory(memory)} | "
                f"{per_input} | {'—' if diff is None else f'{diff:.1e}'} |"
            )
        if name == "validation" and len(rows) == 2 and rows[1].get("peer_over_reference"):
            lines += ["", f"Validation is {rows[1]['peer_over_reference']:.1%} of the "
                          "kl_divergence call."]  # fmt: skip
        if skipped:
            lines += ["", "Skipped: " + "; ".join(skipped) + "."]
    return "\n".join(lines) + "\n"


def sweep_summary(by_case: dict[str, list[dict]], cases: dict[str, str]) -> list[str]:
    """The token_kl sweep of issue 15 in one table: each case's ratio to torch and memory."""
    names = [name for name in by_case if name in SWEEP_NAMES]
    if not names:
        return []
    lines = [
        "",
        "## token_kl sweep: klspec against torch (issue 15)",
        "",
        "torch = `kl_div(log_softmax(b), log_softmax(a), reduction='none', "
        "log_target=True).sum(-1)` in the logits' dtype. Goal: klspec ÷ torch ≤ 1.0 (at "
        "worst 1.5) and ≤ 64 MB of extra memory.",
        "",
        "| case | inputs | klspec | torch | klspec ÷ torch | ≤ 1.0 | ≤ 1.5 | klspec memory "
        "| torch memory | rel. diff of torch |",
        "|---|---|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    absent = []
    for name in names:
        rows = by_case[name]
        ref_row, torch_row = _ok(rows, "reference"), _ok(rows, "torch")
        if ref_row is None:
            continue
        if torch_row is None:
            reason = next((r.get("reason") for r in rows if r["key"] == "torch"), None)
            absent.append(f"{name}: {reason or 'torch did not run'}")
        ratio = (
            ref_row.get("reference_over_peer")
            if torch_row is None
            else (ref_row["median_s"] / torch_row["median_s"])
        )
        inputs = cases[name].split(", ", 1)[1] if ", " in cases[name] else cases[name]
        diff = torch_row.get("max_relative_difference") if torch_row else None
        lines.append(
            f"| {name} | {inputs} | {_format_time(ref_row['median_s'])} | "
            f"{_format_time(torch_row['median_s']) if torch_row else '—'} | "
            f"{_format_ratio(ratio if torch_row else None)} | "
            f"{('yes' if ratio <= 1.0 else 'no') if torch_row else '—'} | "
            f"{('yes' if ratio <= 1.5 else '**no**') if torch_row else '—'} | "
            f"{_format_memory(ref_row.get('memory'))} | "
            f"{_format_memory(torch_row.get('memory')) if torch_row else '—'} | "
            f"{'—' if diff is None else f'{diff:.1e}'} |"
        )
    if absent:
        lines += ["", "torch is absent, so the sweep has no ratios: " + "; ".join(absent) + "."]
    return lines


def _ok(rows: list[dict], key: str) -> dict | None:
    return next((r for r in rows if r["key"] == key and r["status"] == "ok"), None)


def where_the_time_goes(by_case: dict[str, list[dict]], threads: int | None) -> list[str]:
    """The paragraph docs/performance.md asks for, with this run's numbers in it."""
    lines = ["", "## Where the time goes", ""]
    floors = []
    for name in ("kl_unrelated", "kl_nearly_equal", "entropy", "cross_entropy", "kl_batch"):
        rows = by_case.get(name, [])
        ref, literal = _ok(rows, "reference"), _ok(rows, "numpy")
        if ref and literal:
            floors.append(f"{name} {ref['median_s'] / literal['median_s']:.2g}×")
    if floors:
        lines.append(
            f"KL, entropy and cross-entropy make one pass over their inputs in blocks of "
            f"65,536 elements (512 KiB buffers), on {threads or '?'} thread(s), with "
            "a few MB of buffers whatever the input size; validation is folded into the same "
            "pass. Every operation is a numpy pass over a block: the literal formula "
            "`Σ p·log(p/q)` needs 3 per element, the reference ~20 for nearly equal inputs "
            "(s = (p−q)/(p+q), a short polynomial in s², the sums) and ~50 for unrelated ones "
            "(a polynomial of degree 13 where |s| <= 1/2, a division and a logarithm beyond, "
            "and exact row sums where the result is sensitive to them). The literal formula "
            "is the practical floor (and is not exact); the reference's time over the "
            "literal formula's, the distance from that floor: " + ", ".join(floors) + "."
        )
    val = by_case.get("validation", [])
    whole, alone = _ok(val, "reference"), _ok(val, "validate")
    if whole and alone:
        lines += [
            "",
            f"Validation (shape rules, then each block's minima and row sums) is "
            f"{alone['median_s'] / whole['median_s']:.0%} of a kl_divergence call.",
        ]
    sweep = [
        (name, _ok(rows, "reference"), _ok(rows, "torch"))
        for name, rows in by_case.items()
        if name in SWEEP_NAMES or name == "token_kl"
    ]
    ratios = {name: r["median_s"] / t["median_s"] for name, r, t in sweep if r and t}
    if ratios:
        memory = [(r.get("memory") or {}).get("extra_bytes") or 0 for name, r, _ in sweep if r]
        lo, hi = min(ratios, key=ratios.get), max(ratios, key=ratios.get)
        lines += [
            "",
            f"token_kl takes {ratios[lo]:.2g}× (at best, {lo}) to {ratios[hi]:.2g}× (at worst, "
            f"{hi}) torch's time, with at most {max(memory) / MB:.0f} MB of extra memory. "
            "Blocks hold whole rows, 131,072 logits or one longer row (rows longer than "
            "262,144 logits: pieces of 65,536, in three passes): on blocks of two rows of "
            "32,000 the two threads waited on each other's hold of the GIL between numpy "
            "calls (1.35× from the second core; four rows: 1.5–1.6×, torch 1.7–1.8×). "
            "float32 logits are read as they are (maxima and checks at half "
            "the cost), and KL = Σ P·h(t), h(t) = t − 1 + e^{−t} ≥ 0, t = log(P/Q), a sum of "
            "non-negative terms. The cost is the exponentials — numpy's float64 exp has no "
            "SIMD form on this machine (AVX2, no AVX-512): ~8 ns a logit on one core, about "
            "half of torch's whole float32 computation (16 ns a logit on one thread) — and "
            "a polynomial for h near t = 0 "
            "(two passes a degree, each ~0.45 ns a logit, more once the two threads' buffers "
            "outgrow the cache). `python benchmarks/token_kl_floor.py` measures these "
            "primitives and both libraries on one and two threads. So each row takes the "
            "cheapest method its distance "
            "allows: rows nearly equal (σ ≤ 0.1: δ = α − β spans < 1) one exponential and "
            "the series everywhere (degree 7 to 11), with no normaliser of Q at all (KL = "
            "X − ψ(X − μ₁) from the series' sums, for any shift); rows far apart with KL ≥ "
            "2.5 (σ = 3, unrelated rows, most rows with a token moved by 20) two float64 "
            "exponentials and the direct form E·(t − 1) + e^c·F everywhere, no polynomial; "
            "rows in between (σ = 1, small-KL moved rows) both and the series where "
            "−1.5 ≤ t ≤ 1 (degree 15, or 7 when all but a few tokens lie close to each "
            "other); rows with few tokens outside that region (σ = 0.5, −inf masks) the "
            "series with e^β only for those. "
            "For float64 logits torch's own exp is slower and the gap narrows; they take "
            "the older TwoSum method (the sweep's are genuine float64: 3·x and a + σ·noise "
            "computed in float64), unless they hold float32 values. "
            "Rows the certificates reject (KL below ~1e-11, logits beyond 2**500) take "
            "the whole-row method.",
        ]
    return lines


if __name__ == "__main__":
    main()
