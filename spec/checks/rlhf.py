r"""Checks of the RLHF clauses: the KL-regularised optimum.

Called like :mod:`klspec.reference.rlhf`: ``rlhf_optimal_policy(ref_probs,
rewards, beta)``, ``rlhf_objective(policy, ref_probs, rewards, beta)``,
``rlhf_optimal_value(ref_probs, rewards, beta)``.

Exact values come from mpmath on the float64 inputs.
"""

from __future__ import annotations

import functools
import math

import mpmath
import numpy as np
from hypothesis import strategies as st

from klspec.spec import _expected
from klspec.spec._assert import mp, observe, require, require_close, show
from klspec.spec.checks._registry import check
from klspec.spec.interface import Implementation
from klspec.spec.strategies import Case
from klspec.spec.tolerances import U, gamma

# --- RLHF ---------------------------------------------------------------------------------


@st.composite
def rlhf_problems(draw: st.DrawFn, *, zeros: bool = False) -> Case:
    """π_ref (zeros allowed), rewards up to 1e4 in size and β from 1e-3 to 1e2."""
    n = draw(st.integers(1, 8), label="responses")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    ref = rng.dirichlet(np.ones(n))
    if zeros and n > 1:
        ref[rng.integers(0, n)] = 0.0
    ref = ref / math.fsum(ref)
    scale = draw(st.sampled_from([1e-3, 1.0, 1e4]), label="reward scale")
    rewards = rng.normal(0, scale, n)
    if zeros:
        rewards = np.where(ref == 0, 1e300, rewards)
    beta = draw(st.sampled_from([1e-3, 0.1, 1.0, 100.0]), label="beta")
    return Case(ref_probs=ref, rewards=rewards, beta=[beta])


def _optimum_exact(case: Case) -> tuple[list[mpmath.mpf], mpmath.mpf]:
    beta = mp(case.beta[0])
    ref = [mp(x) for x in case.ref_probs]
    total = mpmath.fsum(ref)
    logs = [
        mpmath.log(p / total) + mp(r) / beta
        for p, r in zip(ref, case.rewards, strict=True)
        if p > 0
    ]
    top = max(logs)
    z = mpmath.fsum(mpmath.exp(v - top) for v in logs)
    policy = []
    for p, r in zip(ref, case.rewards, strict=True):
        policy.append(
            mpmath.exp(mpmath.log(p / total) + mp(r) / beta - top) / z if p > 0 else mpmath.mpf(0)
        )
    return policy, beta * (top + mpmath.log(z))


def _exponent_scale(case: Case) -> float:
    beta = float(case.beta[0])
    live = case.rewards[case.ref_probs > 0]
    return float(np.max(np.abs(live))) / beta + 1.0


@check(
    "rlhf.optimal_policy",
    needs={"rlhf_optimal_policy", "rlhf_optimal_value"},
    on={"problems": rlhf_problems},
)
def rlhf_optimal_policy(impl: Implementation, case: Case) -> None:
    """rlhf_optimal_policy is π_ref e^{r/β}/Z entry by entry, rlhf_optimal_value is β log Z."""
    args = (case.ref_probs, case.rewards, float(case.beta[0]))
    n = case.ref_probs.size
    policy = observe(
        impl,
        "rlhf_optimal_policy",
        *args,
        call="rlhf_optimal_policy(ref_probs, rewards, beta)",
        shape=(n,),
    )
    value = observe(
        impl, "rlhf_optimal_value", *args, call="rlhf_optimal_value(ref_probs, rewards, beta)"
    )
    with mpmath.workdps(40):
        want, log_z = _optimum_exact(case)
    # r/β is rounded (relative u): the exponent moves by u·|r/β|, each π* by that, relatively.
    relative = (8 + 2 * n) * U + 4 * U * _exponent_scale(case)
    want = np.array([float(x) for x in want])
    require_close(
        "rlhf_optimal_policy(ref_probs, rewards, beta)", policy, want, relative * want + 1e-300
    )
    beta = float(case.beta[0])
    require_close(
        "rlhf_optimal_value(ref_probs, rewards, beta)",
        value,
        float(log_z),
        4 * U * beta * _exponent_scale(case) + 8 * U * abs(float(log_z)),
        expected_text="β log Z",
    )


@check(
    "rlhf.optimum_beats_every_policy",
    needs={"rlhf_objective", "rlhf_optimal_value"},
    on={"problems": rlhf_problems},
)
def rlhf_optimum_beats_every_policy(impl: Implementation, case: Case) -> None:
    """rlhf_objective(π) <= rlhf_optimal_value for drawn π and for π* (which attains it)."""
    beta = float(case.beta[0])
    args = (case.ref_probs, case.rewards, beta)
    best = observe(
        impl, "rlhf_optimal_value", *args, call="rlhf_optimal_value(ref_probs, rewards, beta)"
    )
    with mpmath.workdps(40):
        optimum, _ = _optimum_exact(case)
    star = np.array([float(x) for x in optimum])
    rng = np.random.default_rng(int(case.ref_probs.size))
    candidates = {"π*": star}
    for k in range(3):
        pi = rng.dirichlet(np.ones(case.ref_probs.size)) * (case.ref_probs > 0)
        candidates[f"π_{k}"] = pi / math.fsum(pi)
    mixed = 0.999 * star + 0.001 * candidates["π_0"]
    candidates["π* perturbed"] = mixed / math.fsum(mixed)
    value_tol = 4 * U * beta * _exponent_scale(case) + 8 * U * abs(best)
    for name, pi in candidates.items():
        call = f"rlhf_objective({name}, ref_probs, rewards, beta)"
        j = observe(impl, "rlhf_objective", pi, *args, call=call)
        kl_tol = beta * _expected.of("kl", pi, case.ref_probs, exact=False).tolerance
        reward_tol = (gamma(pi.size) + 4 * U) * math.fsum(np.abs(pi * case.rewards))
        require(
            j <= best + value_tol + kl_tol + reward_tol,
            call,
            j,
            f"<= rlhf_optimal_value = {show(best)}",
        )
        if name == "π*":
            # J is stationary at π*: rounding π* moves J only to second order.
            require_close(call, j, best, value_tol + kl_tol + reward_tol, expected_text="β log Z")


@check(
    "rlhf.support",
    needs={"rlhf_optimal_policy"},
    on={"problems": functools.partial(rlhf_problems, zeros=True)},
)
def rlhf_support(impl: Implementation, case: Case) -> None:
    """π* is exactly 0 wherever π_ref is 0, even where the reward is 1e300."""
    n = case.ref_probs.size
    policy = observe(
        impl,
        "rlhf_optimal_policy",
        case.ref_probs,
        case.rewards,
        float(case.beta[0]),
        call="rlhf_optimal_policy(ref_probs, rewards, beta)",
        shape=(n,),
    )
    require(
        (case.ref_probs > 0) | (policy == 0),
        "rlhf_optimal_policy(ref_probs, rewards, beta)",
        policy,
        "0 where ref_probs is 0",
    )


@st.composite
def separated_rewards(draw: st.DrawFn) -> Case:
    """Rewards on a grid of 1e-3 (distinct or tied exactly) and a π_ref without zeros."""
    n = draw(st.integers(2, 6), label="responses")
    levels = draw(
        st.lists(st.integers(-1000, 1000), min_size=n, max_size=n), label="rewards / 1e-3"
    )
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    ref = np.random.default_rng(seed).dirichlet(np.ones(n))
    return Case(ref_probs=ref / math.fsum(ref), rewards=np.array(levels) * 1e-3)


@check("rlhf.beta_limits", needs={"rlhf_optimal_policy", "kl"}, on={"rewards": separated_rewards})
def rlhf_beta_limits(impl: Implementation, case: Case) -> None:
    """KL(π*_β‖π_ref) falls as β grows; π* → π_ref as β → ∞ and → the argmax as β → 0."""
    n = case.ref_probs.size

    def optimum(beta: float) -> np.ndarray:
        return observe(
            impl,
            "rlhf_optimal_policy",
            case.ref_probs,
            case.rewards,
            beta,
            call=f"rlhf_optimal_policy(ref_probs, rewards, {beta:g})",
            shape=(n,),
        )

    previous, previous_tol = math.inf, 0.0
    for k in range(-6, 7):
        beta = 10.0**k
        pi = optimum(beta)
        kl = observe(impl, "kl", pi, case.ref_probs, call=f"kl(π*_{beta:g}, π_ref)")
        tol = _expected.of("kl", pi, case.ref_probs, exact=False).tolerance
        require(
            kl <= previous + tol + previous_tol,
            f"kl(π*_{beta:g}, π_ref)",
            kl,
            f"<= {show(previous)} at β = {beta / 10:g} (it must fall as β grows)",
        )
        previous, previous_tol = kl, tol
    far = optimum(1e12)
    require_close(
        "rlhf_optimal_policy(ref_probs, rewards, 1e12)",
        far,
        case.ref_probs,
        1e-9,
        expected_text="ref_probs",
    )
    near = optimum(1e-12)
    top = case.rewards == case.rewards.max()
    want = np.where(top, case.ref_probs, 0.0)
    want = want / math.fsum(want)
    # r/β ~ 1e9 here: its rounding moves each π* by a relative u·|r|/β (rlhf.optimal_policy).
    relative = (8 + 2 * n) * U + 4 * U * (float(np.max(np.abs(case.rewards))) / 1e-12 + 1)
    require_close(
        "rlhf_optimal_policy(ref_probs, rewards, 1e-12)",
        near,
        want,
        relative * want + 1e-300,
        expected_text="π_ref restricted to the argmax",
    )
