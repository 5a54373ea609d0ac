"""The built-in adapters reproduce their libraries' conventions, and the matrix's findings hold.

jax, optax and keras are only ever run in a forked worker: a jax backend
initialised in this process would make every later fork unsafe (see
klspec.conformance.isolation), so the tests never compute with jax here.
"""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
import warnings

import numpy as np
import pytest

from klspec.conformance import run
from klspec.conformance.adapters import ADAPTERS
from klspec.conformance.signatures import SignatureError, parse_signature
from klspec.conformance.targets import AdapterUnavailable, resolve
from klspec.reference import entropy, kl_divergence

P = np.array([0.7, 0.2, 0.1])
Q = np.array([0.5, 0.25, 0.25])
JAX_FAMILY = {
    name for name, a in ADAPTERS.items() if "jax" in a.libraries or "optax" in a.libraries
}
HERE = [name for name, a in ADAPTERS.items() if name not in JAX_FAMILY and not a.missing()]


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
    if name.endswith("float32"):  # the adapter's point: float32 rounding
        assert got == pytest.approx(want, rel=1e-6)
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

FINDINGS = [
    ("scipy.rel_entr", "kl.nonnegative", "fail", "but should be >= 0"),
    ("scipy.rel_entr", "kl.definition", "pass", ""),
    ("scipy.stats.entropy", "entropy.special.uniform", "pass", ""),
    ("numpy.textbook", "kl.special.p_zero", "fail", "kl(p, q)=nan, but should be a number"),
    ("torch.kl_div.sum", "kl.special.both_zero", "fail", "kl(p, q)=nan"),
    ("torch.kl_div.mean", "example.weather.forward", "fail", "=0.0411"),
    ("torch.kl_div.batchmean", "example.weather.forward", "pass", ""),
    ("torch.kl_div.log_target", "kl.special.p_zero", "fail", "kl(p, q)=nan"),
    ("torch.distributions", "entropy.special.one_hot", "fail", "=2.22"),
    ("keras.kl_divergence", "kl.special.q_zero", "fail", "but should be +inf"),
    ("jax.rel_entr", "kl.special.q_zero", "fail", "=0.0, but should be +inf"),
    ("optax.kl_divergence_with_log_targets", "kl.special.p_zero", "fail", "=nan"),
]


@pytest.mark.parametrize(
    ("name", "clause_id", "verdict", "message"),
    FINDINGS,
    ids=[f"{name} {clause_id} {verdict}" for name, clause_id, verdict, _ in FINDINGS],
)
def test_finding(name, clause_id, verdict, message):
    _installed(name)
    report = run(resolve(name), [clause_id], profile="fast", timeout=30, isolate=True)
    (result,) = report.clauses
    assert result.verdict == verdict, [r.message for r in result.failures]
    if message:
        assert message in result.failures[0].message


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
