"""The built-in adapters reproduce their libraries' conventions, and the matrix's findings hold.

jax, optax and keras are only ever run in a forked worker: a jax backend
initialised in this process would make every later fork unsafe (see
klspec.conformance.isolation), so the tests never compute with jax here.
"""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from klspec.conformance import run
from klspec.conformance.adapters import ADAPTERS
from klspec.conformance.rlhf_libraries import LIBRARIES
from klspec.conformance.signatures import SignatureError, parse_signature
from klspec.conformance.targets import AdapterUnavailable, resolve
from klspec.reference import entropy, kl_divergence, token_kl

P = np.array([0.7, 0.2, 0.1])
Q = np.array([0.5, 0.25, 0.25])
JAX_FAMILY = {
    name for name, a in ADAPTERS.items() if "jax" in a.libraries or "optax" in a.libraries
}
#: The RLHF libraries' records have tests of their own (tests/test_rlhf_libraries.py).
LIBRARY_RECORDS = {r.name for r in LIBRARIES}
HERE = [
    name
    for name, a in ADAPTERS.items()
    if name not in JAX_FAMILY | LIBRARY_RECORDS and not a.missing()
]


def _installed(name: str) -> None:
    reason = ADAPTERS[name].missing()
    if reason:
        pytest.skip(reason)


def test_every_adapter_states_its_conventions():
    for adapter in ADAPTERS.values():
        assert "Conventions" in adapter.conventions, adapter.name
        assert adapter.summary


def _kl_of(impl, p, q) -> float:
    """KL(P‖Q) from the adapter: kl(p, q), or token_kl of the logits log p, log q."""
    if impl.kl is not None:
        return float(impl.kl(p, q))
    return float(impl.token_kl(np.log(p)[None], np.log(q)[None])[0])


@pytest.mark.parametrize("name", HERE)
def test_adapter_computes_kl_and_entropy_in_nats(name):
    impl = resolve(name)
    want = float(kl_divergence(P, Q))
    got = _kl_of(impl, P, Q)
    if name.endswith(("float32", "bfloat16")):  # the adapter's point: its format's rounding
        fmt = impl.precision
        logits = [fmt.round(np.log(x))[None] for x in (P, Q)]
        want = float(token_kl(*logits)[0])  # the KL of the logits as the format holds them
        assert got == pytest.approx(want, rel=64 * fmt.u)
        return
    if name == "torch.kl_div.mean":  # reduction='mean' divides by the element count
        want /= P.size
    assert got == pytest.approx(want, rel=1e-14)
    if impl.entropy is not None:
        assert float(impl.entropy(P)) == pytest.approx(float(entropy(P)), rel=1e-14)


def test_torch_adapters_call_kl_div_as_documented():
    _installed("torch.kl_div.sum")
    import torch
    import torch.nn.functional as F
    from torch.distributions import Categorical
    from torch.distributions import kl_divergence as torch_kl

    p, q = torch.tensor(P), torch.tensor(Q)
    assert resolve("torch.kl_div.sum").kl(P, Q) == F.kl_div(q.log(), p, reduction="sum").item()
    assert (
        resolve("torch.kl_div.batchmean").kl(P, Q)
        == F.kl_div(q.log()[None], p[None], reduction="batchmean").item()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's notice about 'mean'
        assert resolve("torch.kl_div.mean").kl(P, Q) == F.kl_div(q.log(), p).item()
    assert (
        resolve("torch.kl_div.log_target").kl(P, Q)
        == F.kl_div(q.log(), p.log(), reduction="sum", log_target=True).item()
    )
    got = resolve("torch.distributions").kl(P, Q)
    assert got == torch_kl(Categorical(probs=p), Categorical(probs=q)).item()


def test_batched_adapters_reduce_the_last_axis():
    rows_p, rows_q = np.stack([P, Q]), np.stack([Q, P])
    for name in HERE:
        impl = resolve(name)
        if "batched" not in impl.capabilities or impl.kl is None:
            continue
        got = np.asarray(impl.kl(rows_p, rows_q))
        assert got.shape == (2,), name
        assert got[1] == pytest.approx(float(kl_divergence(Q, P)), rel=1e-14), name


def _jax_family_values(queue) -> None:
    values = {}
    for name in sorted(JAX_FAMILY):
        if not ADAPTERS[name].missing():
            values[name] = _kl_of(resolve(name), P, Q)
    import jax
    import optax

    with jax.enable_x64(True):
        log_q = jax.numpy.log(jax.numpy.asarray(Q))
        values["direct optax"] = float(optax.losses.kl_divergence(log_q, jax.numpy.asarray(P)))
        values["dtype"] = str(jax.numpy.asarray(P).dtype)
    queue.put(values)


def test_jax_optax_keras_adapters_compute_in_float64_in_a_worker():
    for lib in ("jax", "optax", "keras"):
        if importlib.util.find_spec(lib) is None:
            pytest.skip(f"{lib} is not installed")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    worker = ctx.Process(target=_jax_family_values, args=(queue,))
    worker.start()
    values = queue.get(timeout=60)
    worker.join()
    want = float(kl_divergence(P, Q))
    for name in JAX_FAMILY:
        assert values[name] == pytest.approx(want, rel=1e-14), name
    assert values["optax.kl_divergence"] == values["direct optax"]
    assert values["dtype"] == "float64"


# --- what the matrix shows, one clause at a time ------------------------------------------

#: (adapter, clause, verdict, a part of the first failure's message, a part of its cause).
FINDINGS = [
    ("scipy.rel_entr", "kl.nonnegative", "fail", "but should be >= 0", "does not normalise"),
    ("scipy.rel_entr", "kl.definition", "pass", "", ""),
    ("scipy.stats.entropy", "entropy.special.uniform", "pass", "", ""),
    ("numpy.textbook", "kl.special.p_zero", "fail", "kl(p, q)=nan", "NaN where p_i = 0 < q_i"),
    ("numpy.textbook", "kl.special.subnormal_q", "fail", "kl(p, q)=inf", "an entry is subnormal"),
    ("torch.kl_div.sum", "kl.special.both_zero", "fail", "kl(p, q)=nan", "p_i = q_i = 0"),
    ("torch.kl_div.sum", "kl.special.p_zero", "pass", "", ""),
    ("torch.kl_div.sum", "kl.special.q_zero", "pass", "", ""),
    ("torch.kl_div.sum", "inputs.unmodified", "pass", "", ""),
    ("torch.kl_div.mean", "example.weather.forward", "fail", "=0.0411", "reduction='mean'"),
    ("torch.kl_div.batchmean", "example.weather.forward", "pass", "", ""),
    ("torch.kl_div.log_target", "kl.special.p_zero", "fail", "kl(p, q)=nan", "p_i = 0 < q_i"),
    ("torch.distributions", "entropy.special.one_hot", "fail", "=2.22", "clips the nonzero"),
    ("torch.distributions", "kl.special.tiny_q", "fail", "", "clips the nonzero"),
    ("keras.kl_divergence", "kl.special.q_zero", "fail", "should be +inf", "clips p and q"),
    ("jax.rel_entr", "kl.special.q_zero", "pass", "", ""),
    ("jax.rel_entr", "kl.special.subnormal_q", "fail", "=inf", "an entry is subnormal"),
    ("optax.kl_divergence_with_log_targets", "kl.special.p_zero", "fail", "=nan", "p_i = 0"),
    ("optax.kl_divergence", "inputs.unmodified", "pass", "", ""),
]


@pytest.mark.parametrize(
    ("name", "clause_id", "verdict", "message", "cause"),
    FINDINGS,
    ids=[f"{name} {clause_id} {verdict}" for name, clause_id, verdict, _, _ in FINDINGS],
)
def test_finding(name, clause_id, verdict, message, cause):
    _installed(name)
    report = run(resolve(name), [clause_id], profile="fast", timeout=30, isolate=True)
    (result,) = report.clauses
    assert result.verdict == verdict, [r.message for r in result.failures]
    if message:
        assert message in result.failures[0].message
    if cause:
        assert cause in result.failures[0].cause.text


def test_a_missing_library_makes_the_adapter_unavailable(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(AdapterUnavailable) as info:
        resolve("torch.kl_div.sum")
    assert info.value.reason == "torch is not installed (pip install torch)"


# --- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "quantity", "positional", "keywords"),
    [
        ("f(p, q)", "kl", ("p", "q"), ()),
        ("kl_div(log_q, p)", "kl", ("log_q", "p"), ()),
        ("f(log_q, log_p)", "kl", ("log_q", "log_p"), ()),
        ("f(logits_p, logits_q)", "cross-entropy", ("logits_p", "logits_q"), ()),
        ("f(p)", "entropy", ("p",), ()),
        ("loss(y_true=p, y_pred=q)", "kl", (), (("y_true", "p"), ("y_pred", "q"))),
    ],
)
def test_signatures_parse(text, quantity, positional, keywords):
    sig = parse_signature(text, quantity)
    assert sig.positional == positional
    assert sig.keywords == keywords


@pytest.mark.parametrize(
    ("text", "quantity", "error"),
    [
        ("f(p, r)", "kl", "unknown argument 'r'"),
        ("f(p, p)", "kl", "names an argument twice"),
        ("f(p, log_p)", "kl", "must take one of p, log_p, logits_p and one of q"),
        ("f(p, q)", "entropy", "must take one of p, log_p, logits_p"),
        ("p, q", "kl", "must read like a call"),
        ("f(p, q)", "kld", "unknown quantity 'kld'"),
    ],
)
def test_bad_signatures_say_what_is_wrong(text, quantity, error):
    with pytest.raises(SignatureError, match=re_escape(error)):
        parse_signature(text, quantity)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_log_space_arguments_and_torch_tensors():
    _installed("torch.kl_div.sum")
    import torch

    seen = {}

    def fn(log_q, p):
        seen["types"] = (type(log_q), log_q.dtype, type(p), p.dtype)
        return (p * (p.log() - log_q)).sum()

    impl = resolve(fn, signature="f(log_q, p)", array="torch")
    got = impl.kl(np.array([0.5, 0.5]), np.array([0.25, 0.75]))
    assert isinstance(got, np.ndarray)
    assert float(got) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3), rel=1e-15)
    assert seen["types"] == (torch.Tensor, torch.float64, torch.Tensor, torch.float64)


# --- what each adapter's docstring says, checked against the library itself ------------------
#
# One row per convention claim, calling the library directly (not through klspec). A row's
# check returns (got, want): numbers are compared with assert_allclose (nan matches nan, inf
# matches inf; rtol=0 where the claim is how a value is evaluated), strings and bools with ==.
# The rows for jax, optax and keras run in one forked worker (see the module docstring), which
# sends their results back as plain data.

WORKER_LIBRARIES = frozenset({"jax", "optax", "keras"})
EPS64 = 2.0**-52  # torch.finfo(torch.float64).eps
INF, NAN = math.inf, math.nan


@dataclass(frozen=True)
class Claim:
    adapter: str
    says: str
    libraries: tuple[str, ...]
    check: Callable[[], tuple[Any, Any]]
    rtol: float

    @property
    def id(self) -> str:
        return f"{self.adapter}: {self.says}"

    @property
    def in_worker(self) -> bool:
        return not WORKER_LIBRARIES.isdisjoint(self.libraries)

    def missing(self) -> str | None:
        for lib in self.libraries:
            if importlib.util.find_spec(lib) is None:
                return f"{lib} is not installed"
        return None


CLAIMS: list[Claim] = []


def claim(adapter: str, says: str, rtol: float = 1e-15):
    """Register a check of what ``adapter``'s docstring ``says`` its library does."""

    def register(check: Callable[[], tuple[Any, Any]]) -> Callable[[], tuple[Any, Any]]:
        libraries = ADAPTERS[adapter].libraries or ("numpy",)
        CLAIMS.append(Claim(adapter, says, libraries, check, rtol))
        return check

    return register


def _raises(fn: Callable[[], Any]) -> str:
    """The name of the exception ``fn()`` raises, or 'no error'."""
    try:
        fn()
    except Exception as error:
        return type(error).__name__
    return "no error"


def _plain(x: Any) -> Any:
    """A result as plain data a queue can carry: str, bool, a list of str, or floats."""
    if isinstance(x, (str, bool)) or (isinstance(x, list) and all(isinstance(v, str) for v in x)):
        return x
    return np.asarray(x, dtype=np.float64).tolist()


def _assert_claim(c: Claim, got: Any, want: Any) -> None:
    if isinstance(want, (str, bool)) or (
        isinstance(want, list) and all(isinstance(v, str) for v in want)
    ):
        assert got == want, c.id
        return
    np.testing.assert_allclose(
        np.asarray(got, dtype=np.float64),
        np.asarray(want, dtype=np.float64),
        rtol=c.rtol,
        atol=0,
        err_msg=c.id,
    )


# numpy: the textbook formula ----------------------------------------------------------------


@claim("numpy.textbook", "p_i = 0 < q_i gives 0*log(0) = nan, q_i = 0 < p_i gives inf")
def _textbook_zeros():
    p, q = np.array([[0.0, 1.0], [0.5, 0.5]]), np.array([[0.5, 0.5], [1.0, 0.0]])
    return np.sum(p * np.log(p / q), axis=-1), [NAN, INF]


@claim("numpy.textbook", "the entropy's 0*log(0) is nan")
def _textbook_entropy_zero():
    p = np.array([0.0, 1.0])
    return -np.sum(p * np.log(p), axis=-1), NAN


# scipy ---------------------------------------------------------------------------------------


@claim("scipy.rel_entr", "0 at x = 0 <= y")
def _rel_entr_p_zero():
    import scipy.special

    return scipy.special.rel_entr([0.0, 0.0], [0.5, 0.0]), [0.0, 0.0]


@claim("scipy.rel_entr", "inf at y = 0 < x and for negative arguments, nan for nan")
def _rel_entr_inf():
    import scipy.special

    got = scipy.special.rel_entr([0.5, -1.0, 0.0, NAN], [0.0, 1.0, -1.0, 1.0])
    return got, [INF, INF, INF, NAN]


@claim("scipy.rel_entr", "evaluated as x*log1p((x - y)/y) when 0.5 < x/y < 2")
def _rel_entr_log1p():
    import scipy.special

    x, y = 0.3, 0.30000000000000004  # x*log(x/y) is 20% off here
    return scipy.special.rel_entr(x, y), x * math.log1p((x - y) / y)


@claim("scipy.rel_entr", "evaluated as x*(log x - log y) when x/y overflows")
def _rel_entr_overflow():
    import scipy.special

    return scipy.special.rel_entr(0.5, 1e-310), 0.5 * (math.log(0.5) - math.log(1e-310))


@claim("scipy.rel_entr", "no normalisation and no reduction", rtol=1e-14)
def _rel_entr_unnormalised():
    import scipy.special

    return scipy.special.rel_entr([1.0, 3.0], [2.0, 2.0]), [math.log(0.5), 3 * math.log(1.5)]


@claim("scipy.kl_div", "y at x = 0 <= y, inf at y = 0 < x")
def _kl_div_zeros():
    import scipy.special

    return scipy.special.kl_div([0.0, 0.0, 0.5], [0.25, 0.0, 0.0]), [0.25, 0.0, INF]


@claim("scipy.kl_div", "evaluated as written: inf when x/y overflows (subnormal y)")
def _kl_div_overflow():
    import scipy.special

    return scipy.special.kl_div(0.5, 1e-310), INF


@claim("scipy.kl_div", "a term can round below 0 when x ~= y")
def _kl_div_negative():
    import scipy.special

    rng = np.random.default_rng(0)
    x = rng.random(10_000)
    y = x * (1 + 1e-9 * rng.standard_normal(x.size))
    return bool((scipy.special.kl_div(x, y) < 0).any()), True


@claim("scipy.kl_div", "no normalisation and no reduction", rtol=1e-14)
def _kl_div_unnormalised():
    import scipy.special

    want = [math.log(0.5) - 1 + 2, 3 * math.log(1.5) - 3 + 2]
    return scipy.special.kl_div([1.0, 3.0], [2.0, 2.0]), want


@claim("scipy.stats.entropy", "normalises pk", rtol=1e-14)
def _entropy_normalises_p():
    import scipy.stats

    return scipy.stats.entropy([1.0, 2.0, 3.0]), -sum(k / 6 * math.log(k / 6) for k in (1, 2, 3))


@claim("scipy.stats.entropy", "normalises qk too", rtol=1e-14)
def _entropy_normalises_q():
    import scipy.stats

    want = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    return scipy.stats.entropy([1.0, 3.0], [2.0, 2.0]), want


@claim("scipy.stats.entropy", "the default axis is 0: a 2-D array is read by columns", rtol=1e-14)
def _entropy_axis_0():
    import scipy.stats

    want = [math.log(2), -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))]
    return scipy.stats.entropy([[1.0, 1.0], [1.0, 3.0]]), want


@claim("scipy.stats.entropy", "base divides by ln(base)")
def _entropy_base():
    import scipy.stats

    return scipy.stats.entropy([1.0, 1.0, 1.0, 1.0], base=2), 2.0


@claim("scipy.stats.entropy", "base <= 0 raises ValueError")
def _entropy_bad_base():
    import scipy.stats

    return _raises(lambda: scipy.stats.entropy([1.0, 1.0], base=0)), "ValueError"


@claim("scipy.stats.entropy", "0 at p_i = 0, inf at q_i = 0 < p_i", rtol=1e-14)
def _entropy_zeros():
    import scipy.stats

    got = [
        scipy.stats.entropy([0.0, 1.0], [0.5, 0.5]),
        scipy.stats.entropy([1.0, 1.0], [0.0, 1.0]),
        scipy.stats.entropy([0.0, 1.0]),
    ]
    return got, [math.log(2), INF, 0.0]


# torch ---------------------------------------------------------------------------------------


def _t(*values):
    import torch

    return torch.tensor(values, dtype=torch.float64)


def _seeded(*shape):
    """Seeded float64 tensors (target, input): probabilities in (0, 1) and their logs."""
    import torch

    g = torch.Generator().manual_seed(0)
    target = torch.rand(shape, generator=g, dtype=torch.float64)
    return target, torch.rand(shape, generator=g, dtype=torch.float64).log()


@claim("torch.kl_div.sum", "a term is 0 at p_i = 0 < q_i")
def _kl_div_p_zero():
    import torch.nn.functional as F

    return F.kl_div(_t(0.5).log(), _t(0.0), reduction="none"), [0.0]


@claim("torch.kl_div.sum", "a term is nan at p_i = q_i = 0")
def _kl_div_both_zero():
    import torch.nn.functional as F

    return F.kl_div(_t(0.0).log(), _t(0.0), reduction="none"), [NAN]


@claim("torch.kl_div.sum", "a term is inf at q_i = 0 < p_i")
def _kl_div_q_zero():
    import torch.nn.functional as F

    return F.kl_div(_t(0.0).log(), _t(0.5), reduction="none"), [INF]


@claim("torch.kl_div.sum", "evaluated as xlogy(target, target) - target*input", rtol=0)
def _kl_div_xlogy():
    import torch
    import torch.nn.functional as F

    target, log_q = _seeded(1000)
    got = F.kl_div(log_q, target, reduction="none")
    return got, torch.xlogy(target, target) - target * log_q


@claim("torch.kl_div.sum", "reduction='sum' sums every element of a batch")
def _kl_div_sum_all():
    import torch.nn.functional as F

    target, log_q = _seeded(2, 3)
    return F.kl_div(log_q, target, reduction="sum"), F.kl_div(log_q, target, reduction="none").sum()


@claim("torch.kl_div.sum", "no normalisation", rtol=1e-14)
def _kl_div_unnormalised():
    import torch.nn.functional as F

    got = F.kl_div(_t(2.0, 2.0).log(), _t(1.0, 3.0), reduction="sum")
    return got, math.log(0.5) + 3 * math.log(1.5)


def _reduced(reduction: str, *shape: int):
    """F.kl_div(reduction=...) on seeded tensors of ``shape``, and their elementwise sum."""
    import torch.nn.functional as F

    target, log_q = _seeded(*shape)
    return F.kl_div(log_q, target, reduction=reduction), F.kl_div(log_q, target, reduction="sum")


@claim("torch.kl_div.batchmean", "divides the sum by size(0) on (B, n)")
def _batchmean_2d():
    got, total = _reduced("batchmean", 3, 4)
    return got, total / 3


@claim("torch.kl_div.batchmean", "divides the sum by n on (n,)")
def _batchmean_1d():
    got, total = _reduced("batchmean", 4)
    return got, total / 4


@claim("torch.kl_div.batchmean", "divides the sum by B alone on (B, T, V)")
def _batchmean_3d():
    got, total = _reduced("batchmean", 2, 3, 4)
    return got, total / 2


@claim("torch.kl_div.batchmean", "does not divide a 0-d input")
def _batchmean_0d():
    return _reduced("batchmean")


@claim("torch.kl_div.mean", "'mean' divides the sum by numel")
def _mean_numel():
    got, total = _reduced("mean", 3, 4)
    return got, total / 12


@claim("torch.kl_div.mean", "reduction='mean' is the default", rtol=0)
def _mean_default():
    import torch.nn.functional as F

    target, log_q = _seeded(3, 4)
    return F.kl_div(log_q, target), F.kl_div(log_q, target, reduction="mean")


@claim("torch.kl_div.mean", "every 'mean' call warns that it divides by the support size too")
def _mean_warns():
    import torch.nn.functional as F

    target, log_q = _seeded(3, 4)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        F.kl_div(log_q, target)
    says = "divides the total loss by both the batch size and the support size"
    return any(says in str(w.message) for w in seen), True


@claim("torch.kl_div.log_target", "evaluated as exp(target)*(target - input)", rtol=0)
def _log_target_formula():
    import torch.nn.functional as F

    target, log_q = _seeded(1000)
    log_p = target.log()
    got = F.kl_div(log_q, log_p, reduction="none", log_target=True)
    return got, log_p.exp() * (log_p - log_q)


@claim("torch.kl_div.log_target", "p_i = 0 gives nan whatever q_i, q_i = 0 < p_i gives inf")
def _log_target_zeros():
    import torch.nn.functional as F

    log_q, log_p = _t(0.5, 0.0, 0.0).log(), _t(0.0, 0.0, 0.5).log()
    return F.kl_div(log_q, log_p, reduction="none", log_target=True), [NAN, NAN, INF]


def _token_kl(logits_p, logits_q, dtype):
    """The per-token KL of the torch.kl_div.logits adapters, written out with torch."""
    import torch.nn.functional as F

    log_p, log_q = F.log_softmax(logits_p.to(dtype), -1), F.log_softmax(logits_q.to(dtype), -1)
    return F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1).double()


@claim("torch.kl_div.logits", "log_softmax subtracts the row's logsumexp", rtol=1e-14)
def _log_softmax():
    import torch
    import torch.nn.functional as F

    x = _t(0.0, 1.0, 2.0, 3.0)
    return F.log_softmax(x, -1), x - torch.logsumexp(x, -1)


@claim("torch.kl_div.logits", "a -inf logit in P gives nan, a -inf logit in Q alone gives inf")
def _token_kl_zeros():
    import torch

    a, b = _t(0.0, -INF, 1.0)[None], _t(0.0, 0.0, 0.0)[None]
    return [_token_kl(a, b, torch.float64), _token_kl(b, a, torch.float64)], [[NAN], [INF]]


def _seeded_logits(scale: float, rows: int, n: int, jitter: float | None = None):
    """Seeded float64 logits (a, b): independent rows, or b = a plus a small jitter."""
    import torch

    rng = np.random.default_rng(0)
    a = scale * rng.standard_normal((rows, n))
    b = (
        a + jitter * rng.standard_normal((rows, n))
        if jitter
        else scale * rng.standard_normal((rows, n))
    )
    return torch.from_numpy(a), torch.from_numpy(b)


@claim("torch.kl_div.logits.float32", "errors are of order 1e-7 times the logits' magnitude")
def _float32_error():
    import torch

    a, b = _seeded_logits(10.0, 20, 64)
    error = (_token_kl(a, b, torch.float32) - _token_kl(a, b, torch.float64)).abs().max()
    ratio = float(error) / (2.0**-23 * float(max(a.abs().max(), b.abs().max())))
    return 0.01 < ratio < 10, True


@claim("torch.kl_div.logits.float32", "negative KL on nearly equal rows")
def _float32_negative():
    import torch

    a, b = _seeded_logits(3.0, 50, 8, jitter=1e-4)
    return bool((_token_kl(a, b, torch.float32) < 0).any()), True


@claim("torch.kl_div.logits.bfloat16", "log_softmax and kl_div run in bfloat16 (8 bits)")
def _bfloat16_runs_in_bfloat16():
    import torch

    a, b = _seeded_logits(3.0, 20, 16)
    low = _token_kl(a.bfloat16(), b.bfloat16(), torch.bfloat16)
    exact = _token_kl(a.bfloat16().double(), b.bfloat16().double(), torch.float64)
    ratio = float((low - exact).abs().max() / exact.abs().max()) / 2.0**-8
    runs_in = resolve("torch.kl_div.logits.bfloat16").dtype == "bfloat16"
    return [0.01 < ratio < 64, runs_in], [True, True]


@claim("torch.distributions", "Categorical(probs=[1, 2, 3]) is accepted and normalised")
def _categorical_normalises():
    from torch.distributions import Categorical

    return Categorical(probs=_t(1.0, 2.0, 3.0), validate_args=True).probs, [1 / 6, 2 / 6, 3 / 6]


@claim("torch.distributions", "validation is on by default and rejects mixed signs")
def _categorical_validates_by_default():
    from torch.distributions import Categorical

    return _raises(lambda: Categorical(probs=_t(-1.0, 2.0))), "ValueError"


@claim("torch.distributions", "validation rejects a zero sum, nan, inf and an overflowing sum")
def _categorical_rejects():
    from torch.distributions import Categorical

    rows = [(0.0, 0.0), (NAN, 1.0), (INF, 1.0), (1e308, 1e308)]
    got = [_raises(lambda row=row: Categorical(probs=_t(*row), validate_args=True)) for row in rows]
    return got, ["ValueError"] * len(rows)


@claim("torch.distributions", "an all-negative row normalises to a valid one and passes")
def _categorical_all_negative():
    from torch.distributions import Categorical

    return Categorical(probs=_t(-1.0, -2.0), validate_args=True).probs, [1 / 3, 2 / 3]


@claim("torch.distributions", "logits are log(probs) clamped to [eps, 1 - eps], eps = 2.2e-16")
def _categorical_logits():
    import torch
    from torch.distributions import Categorical

    assert torch.finfo(torch.float64).eps == EPS64
    return Categorical(probs=_t(1.0, 0.0)).logits, [math.log(1 - EPS64), math.log(EPS64)]


@claim("torch.distributions", "a one-hot P has entropy -log(1 - eps) ~= 2.2e-16, not 0")
def _categorical_one_hot_entropy():
    from torch.distributions import Categorical

    return Categorical(probs=_t(1.0, 0.0, 0.0)).entropy(), -math.log(1 - EPS64)


@claim(
    "torch.distributions", "KL: inf at q_i = 0 < p_i, a term with p_i = q_i = 0 is 0", rtol=1e-14
)
def _categorical_kl_zeros():
    from torch.distributions import Categorical, kl_divergence

    got = [
        kl_divergence(Categorical(probs=_t(0.5, 0.5)), Categorical(probs=_t(1.0, 0.0))),
        kl_divergence(Categorical(probs=_t(0.0, 0.5, 0.5)), Categorical(probs=_t(0.0, 0.25, 0.75))),
    ]
    return got, [INF, 0.5 * math.log(2) + 0.5 * math.log(2 / 3)]


@claim("torch.distributions", "KL: 0 < q_i < eps counts as eps", rtol=1e-14)
def _categorical_kl_tiny_q():
    from torch.distributions import Categorical, kl_divergence

    got = kl_divergence(Categorical(probs=_t(0.5, 0.5)), Categorical(probs=_t(1e-20, 1.0)))
    half = math.log(0.5)
    return got, 0.5 * (half - math.log(EPS64)) + 0.5 * (half - math.log(1 - EPS64))


@claim("torch.distributions", "KL of unnormalised probs is KL of the normalised ones", rtol=1e-14)
def _categorical_kl_unnormalised():
    from torch.distributions import Categorical, kl_divergence

    got = kl_divergence(Categorical(probs=_t(1.0, 3.0)), Categorical(probs=_t(2.0, 2.0)))
    return got, 0.25 * math.log(0.5) + 0.75 * math.log(1.5)


# jax, optax, keras: run in the worker ---------------------------------------------------------


def _x64(on: bool = True):
    """jax's 64-bit mode on (or off) inside a ``with`` block."""
    import jax

    enable = getattr(jax, "enable_x64", None)
    if enable is None:  # older jax: the experimental context manager
        from jax.experimental import enable_x64 as enable
    return enable(on)


def _rel_entr(x, y):
    import jax.numpy as jnp
    import jax.scipy.special

    return jax.scipy.special.rel_entr(jnp.asarray(x), jnp.asarray(y))


@claim("jax.rel_entr", "0 at x = 0 <= y, inf at y = 0 < x and for negative arguments")
def _jax_rel_entr_zeros():
    with _x64():
        return _rel_entr([0.0, 0.0, 0.5, -1.0], [0.5, 0.0, 0.0, 1.0]), [0.0, 0.0, INF, INF]


@claim("jax.rel_entr", "float32 unless 64-bit mode is on")
def _jax_rel_entr_dtype():
    half, quarter = np.float64(0.5), np.float64(0.25)
    with _x64(False):
        off = str(_rel_entr(half, quarter).dtype)
    with _x64():
        on = str(_rel_entr(half, quarter).dtype)
    return [off, on], ["float32", "float64"]


@claim("jax.rel_entr", "evaluated as xlogy(x, x) - xlogy(x, y)", rtol=0)
def _jax_rel_entr_formula():
    import jax.numpy as jnp
    from jax.scipy.special import xlogy

    rng = np.random.default_rng(0)
    x, y = rng.random(1000), rng.random(1000)
    with _x64():
        jx, jy = jnp.asarray(x), jnp.asarray(y)
        return _rel_entr(x, y), xlogy(jx, jx) - xlogy(jx, jy)


@claim("jax.rel_entr", "flushes subnormals: rel_entr(0.5, 1e-310) = inf, (1e-310, 0) = 0")
def _jax_rel_entr_subnormals():
    with _x64():
        return [_rel_entr(0.5, 1e-310), _rel_entr(1e-310, 0.0)], [INF, 0.0]


@claim("jax.rel_entr", "no normalisation and no reduction", rtol=1e-14)
def _jax_rel_entr_unnormalised():
    with _x64():
        return _rel_entr([1.0, 3.0], [2.0, 2.0]), [math.log(0.5), 3 * math.log(1.5)]


def _optax(name: str, *arrays, **kwargs):
    import jax.numpy as jnp
    import optax

    return getattr(optax.losses, name)(*(jnp.asarray(a) for a in arrays), **kwargs)


@claim("optax.kl_divergence", "p_i = 0 < q_i: 0, p_i = q_i = 0: nan, q_i = 0 < p_i: inf")
def _optax_zeros():
    with _x64():
        got = [
            _optax("kl_divergence", [math.log(0.5)], [0.0]),
            _optax("kl_divergence", [-INF], [0.0]),
            _optax("kl_divergence", [-INF], [0.5]),
        ]
    return got, [0.0, NAN, INF]


@claim("optax.kl_divergence", "sums over axis (default -1), no normalisation", rtol=1e-14)
def _optax_axis():
    log_q, p = np.log([[2.0, 2.0], [2.0, 2.0]]), np.array([[1.0, 3.0], [1.0, 3.0]])
    row = math.log(0.5) + 3 * math.log(1.5)
    with _x64():
        got = [_optax("kl_divergence", log_q, p), _optax("kl_divergence", log_q, p, axis=0)]
    return got, [[row, row], [2 * math.log(0.5), 6 * math.log(1.5)]]


@claim("optax.kl_divergence", "a subnormal p_i with q_i = 0 gives nan (subnormals flushed)")
def _optax_subnormal():
    with _x64():
        return _optax("kl_divergence", [-INF, 0.0], [5e-324, 1.0]), NAN


@claim("optax.kl_divergence_with_log_targets", "p_i = 0: nan whatever q_i, q_i = 0 < p_i: inf")
def _optax_log_targets_zeros():
    name = "kl_divergence_with_log_targets"
    with _x64():
        got = [
            _optax(name, [math.log(0.5)], [-INF]),
            _optax(name, [-INF], [-INF]),
            _optax(name, [-INF], [math.log(0.5)]),
        ]
    return got, [NAN, NAN, INF]


@claim(
    "optax.kl_divergence_with_log_targets",
    "sums over the last axis by default, no normalisation",
    rtol=1e-14,
)
def _optax_log_targets_sum():
    with _x64():
        got = _optax("kl_divergence_with_log_targets", np.log([[2.0, 2.0]]), np.log([[1.0, 3.0]]))
    return got, [math.log(0.5) + 3 * math.log(1.5)]


@claim("optax.kl_divergence_with_log_targets.logits", "log_softmax over the last axis", rtol=1e-14)
def _jax_log_softmax():
    import jax

    x = np.array([[0.0, 1.0, 2.0, 3.0]])
    with _x64():
        return jax.nn.log_softmax(x, axis=-1), x - np.log(np.exp(x).sum(-1, keepdims=True))


@claim("optax.kl_divergence_with_log_targets.logits", "a -inf logit in P gives nan")
def _optax_logits_p_zero():
    import jax

    logits_p, logits_q = np.array([[0.0, -INF, 1.0]]), np.zeros((1, 3))
    with _x64():
        log_p, log_q = jax.nn.log_softmax(logits_p), jax.nn.log_softmax(logits_q)
        return _optax("kl_divergence_with_log_targets", log_q, log_p), [NAN]


def _keras_kl(y_true, y_pred):
    import keras

    return keras.losses.kl_divergence(y_true, y_pred)


@claim("keras.kl_divergence", "runs on the jax backend when KERAS_BACKEND=jax")
def _keras_backend():
    import keras

    return keras.backend.backend(), "jax"


@claim("keras.kl_divergence", "epsilon is keras.config.epsilon(), 1e-7 by default")
def _keras_epsilon():
    import keras

    return keras.config.epsilon(), 1e-7


@claim("keras.kl_divergence", "a zero in q gives p_i*log(p_i/1e-7), not inf", rtol=1e-14)
def _keras_q_zero():
    with _x64():
        got = _keras_kl(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    return got, math.log(1e7) + 1e-7 * math.log(1e-7)


@claim("keras.kl_divergence", "a zero in p contributes 1e-7*log(1e-7/q_i), not 0", rtol=1e-14)
def _keras_p_zero():
    with _x64():
        got = _keras_kl(np.array([0.0, 1.0]), np.array([0.5, 0.5]))
    return got, 1e-7 * math.log(2e-7) + math.log(2)


@claim("keras.kl_divergence", "an entry above 1 counts as 1", rtol=1e-14)
def _keras_above_one():
    with _x64():
        return _keras_kl(np.array([2.0, 0.0]), np.array([1.0, 1.0])), 1e-7 * math.log(1e-7)


@claim("keras.kl_divergence", "no normalisation", rtol=1e-14)
def _keras_unnormalised():
    with _x64():
        return _keras_kl(np.array([0.5, 0.5]), np.array([0.25, 0.25])), math.log(2)


@claim("keras.kl_divergence", "computes in y_pred's dtype (y_true is cast to it)")
def _keras_dtype():
    import jax.numpy as jnp

    f32 = np.float32
    with _x64():
        got = [
            str(_keras_kl(jnp.asarray([0.5, 0.5]), jnp.asarray([0.25, 0.75], dtype=f32)).dtype),
            str(_keras_kl(jnp.asarray([0.5, 0.5], dtype=f32), jnp.asarray([0.25, 0.75])).dtype),
        ]
    return got, ["float32", "float64"]


@claim("keras.kl_divergence", "float64 needs jax's 64-bit mode")
def _keras_float64_needs_x64():
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    with _x64(False):
        off = str(_keras_kl(p, q).dtype)
    with _x64():
        on = str(_keras_kl(p, q).dtype)
    return [off, on], ["float32", "float64"]


@claim("keras.kl_divergence", "KLDivergence: reduction sum_over_batch_size, float32")
def _keras_class_defaults():
    import keras

    loss = keras.losses.KLDivergence()
    return [loss.reduction, str(loss.dtype)], ["sum_over_batch_size", "float32"]


@claim("keras.kl_divergence", "KLDivergence divides by B*T on (B, T, V)", rtol=1e-6)
def _keras_class_reduction():
    import keras

    p = np.full((2, 3, 4), 0.25)
    q = np.tile([0.1, 0.4, 0.25, 0.25], (2, 3, 1))
    with _x64():
        rows = np.asarray(_keras_kl(p, q))
        return keras.losses.KLDivergence()(p, q), rows.sum() / rows.size


def _claims_worker(queue, ids: list[str]) -> None:
    os.environ["KERAS_BACKEND"] = "jax"
    results = {}
    for c in CLAIMS:
        if c.id not in ids:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got, want = c.check()
            results[c.id] = {"got": _plain(got), "want": _plain(want)}
        except Exception as error:
            results[c.id] = {"error": f"{type(error).__name__}: {error}"}
    queue.put(results)


@pytest.fixture(scope="module")
def worker_claims() -> dict[str, dict[str, Any]]:
    """The results of every jax, optax and keras claim whose library is installed."""
    ids = [c.id for c in CLAIMS if c.in_worker and not c.missing()]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    worker = ctx.Process(target=_claims_worker, args=(queue, ids))
    worker.start()
    results = queue.get(timeout=120)
    worker.join()
    return results


@pytest.mark.parametrize("c", [c for c in CLAIMS if not c.in_worker], ids=lambda c: c.id)
def test_library_does_what_the_adapter_says(c):
    reason = c.missing()
    if reason:
        pytest.skip(reason)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        got, want = c.check()
    _assert_claim(c, got, want)


@pytest.mark.parametrize("c", [c for c in CLAIMS if c.in_worker], ids=lambda c: c.id)
def test_jax_family_library_does_what_the_adapter_says_in_a_worker(c, request):
    reason = c.missing()
    if reason:
        pytest.skip(reason)
    result = request.getfixturevalue("worker_claims")[c.id]
    assert "error" not in result, result.get("error")
    _assert_claim(c, result["got"], result["want"])


def test_every_adapter_has_its_conventions_checked():
    # The RLHF libraries' records are pinned to their sources in tests/test_rlhf_libraries.py.
    assert {c.adapter for c in CLAIMS} == set(ADAPTERS) - LIBRARY_RECORDS
    assert len({c.id for c in CLAIMS}) == len(CLAIMS)
