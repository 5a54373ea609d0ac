"""The interface the spec is stated against: the one list of functions, and :class:`Implementation`.

:data:`FUNCTIONS` names every function a clause can be about, once: its arguments
(how a call reads in messages: ``k3(logp, ref_logp)``), its topic, the
:mod:`klspec.reference` function that computes it and, for the functions a user's
``module:function`` can be checked as, its default signature. Everything else that
needs the names is derived from it: :data:`ARGUMENTS`, :data:`QUANTITIES` (the
spellings ``klspec check --quantity`` takes), each topic's functions, the
reference target (:mod:`klspec.conformance.targets`).

:data:`TOPICS` are the parts of the catalog. A topic's key names, in one hop, the
module of its clauses (``klspec.spec.clauses.<key>``), of its checks
(``klspec.spec.checks.<key>``), of the reference (``klspec.reference.<key>``) and
its docs page where it has a worked one (``docs/<key>.md``).

Calling convention
------------------
Properties see only an :class:`Implementation`, never a library: ``kl(p, q)``,
``entropy(p)`` and ``cross_entropy(p, q)`` take float64 numpy arrays (read-only
ones: an implementation must not write into its inputs) and return the value in
nats: a float for 1-D input, an array of the batch shape for input of shape
``(..., n)`` when the implementation is ``"batched"``. They are called with keyword
``base=`` only if it declares ``"base"``, ``axis=`` only if it declares
``"axis"``. With ``"validates"`` they must raise ``ValueError`` or ``TypeError``
naming the argument on bad input (which may then be any array-like, a ragged list
say). ``empirical(samples)`` returns ``(outcomes, probabilities)`` like
:func:`klspec.reference.empirical_distribution`. The other functions are called
like the :mod:`klspec.reference` function of the same name. Anything that knows a
third party's conventions is an adapter (:mod:`klspec.conformance.adapters`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Topic:
    """A part of the catalog: ``key`` names its modules and page, ``title`` heads them."""

    key: str
    title: str


#: The topics of the catalog, in reading order: each is a part of the docs and of the matrix.
TOPICS: tuple[Topic, ...] = (
    Topic("divergences", "Divergences"),
    Topic("noise_models", "Noise models"),
    Topic("likelihood", "Maximum likelihood"),
    Topic("fitting", "Gaussian fits"),
    Topic("language_models", "Language models"),
    Topic("rlhf", "RLHF"),
    Topic("preference", "Preference losses"),
)

TOPIC_KEYS: tuple[str, ...] = tuple(t.key for t in TOPICS)


@dataclass(frozen=True)
class Function:
    """One function the spec is about.

    ``name`` is the :class:`Implementation` attribute and what checks need;
    ``arguments`` how a call reads; ``topic`` a key of :data:`TOPICS`;
    ``reference`` the :mod:`klspec.reference` function computing it (a keyword
    option after a colon: ``kl_estimate:estimator=k1``); ``signature`` the
    default signature of a ``module:function`` target computing it (None: not
    offered as a ``--quantity``); ``direct`` whether a target's arguments are
    handed over as the checks draw them (logits, log-probabilities) rather than
    made from probabilities p and q.
    """

    name: str
    arguments: tuple[str, ...]
    topic: str
    reference: str
    signature: str | None = None
    direct: bool = False
    #: Arguments a signature may name beyond ``arguments`` (a target that takes them declares
    #: the capability of the same name): dpo's ``label_smoothing``.
    optional: tuple[str, ...] = ()

    @property
    def quantity(self) -> str:
        """The spelling ``klspec check --quantity`` takes: ``cross-entropy``, ``token-kl``."""
        return self.name.replace("_", "-")


#: Every function a clause can be about, by topic.
FUNCTIONS: tuple[Function, ...] = (
    Function("entropy", ("p",), "divergences", "entropy", "f(p)"),
    Function("cross_entropy", ("p", "q"), "divergences", "cross_entropy", "f(p, q)"),
    Function("kl", ("p", "q"), "divergences", "kl_divergence", "f(p, q)"),
    Function("empirical", ("samples",), "divergences", "empirical_distribution"),
    Function("gaussian_nll", ("y", "f", "sigma"), "noise_models", "gaussian_nll"),
    Function("mse", ("y", "f"), "noise_models", "mse"),
    Function("laplace_nll", ("y", "f", "b"), "noise_models", "laplace_nll"),
    Function("mae", ("y", "f"), "noise_models", "mae"),
    Function("bernoulli_nll", ("y", "p"), "noise_models", "bernoulli_nll"),
    Function("poisson_nll", ("y", "rate"), "noise_models", "poisson_nll"),
    Function("categorical_mle", ("samples",), "likelihood", "categorical_mle"),
    Function(
        "categorical_log_likelihood",
        ("samples", "probs", "support"),
        "likelihood",
        "categorical_log_likelihood",
    ),
    Function("bernoulli_mle", ("y",), "likelihood", "bernoulli_mle"),
    Function(
        "fit_gaussian_to_mixture", ("weights", "means", "sds"), "fitting", "fit_gaussian_to_mixture"
    ),
    Function(
        "mixture_gaussian_kl",
        ("weights", "means", "sds", "mean", "sd"),
        "fitting",
        "mixture_gaussian_kl",
    ),
    Function(
        "token_kl",
        ("logits_p", "logits_q"),
        "language_models",
        "token_kl",
        "f(logits_p, logits_q)",
        direct=True,
    ),
    *(
        Function(
            k,
            ("logp", "ref_logp"),
            "language_models",
            f"kl_estimate:estimator={k}",
            "f(logp, ref_logp)",
            direct=True,
        )
        for k in ("k1", "k2", "k3")
    ),
    Function("sequence_log_prob", ("token_logprobs",), "language_models", "sequence_log_prob"),
    Function("sequence_log_ratio", ("logp", "ref_logp"), "language_models", "sequence_log_ratio"),
    Function(
        "rlhf_optimal_policy", ("ref_probs", "rewards", "beta"), "rlhf", "rlhf_optimal_policy"
    ),
    Function(
        "rlhf_objective", ("policy", "ref_probs", "rewards", "beta"), "rlhf", "rlhf_objective"
    ),
    Function("rlhf_optimal_value", ("ref_probs", "rewards", "beta"), "rlhf", "rlhf_optimal_value"),
    Function(
        "dpo",
        ("logp_chosen", "logp_rejected", "ref_logp_chosen", "ref_logp_rejected", "beta"),
        "preference",
        "dpo_loss",
        "f(logp_chosen, logp_rejected, ref_logp_chosen, ref_logp_rejected, beta)",
        direct=True,
        optional=("label_smoothing",),
    ),
)

_BY_NAME: dict[str, Function] = {f.name: f for f in FUNCTIONS}

#: Every function an implementation may provide, with the names of its arguments.
ARGUMENTS: dict[str, tuple[str, ...]] = {f.name: f.arguments for f in FUNCTIONS}

#: The divergences: what adapters of probability-vector KL code provide.
DIVERGENCES: tuple[str, ...] = ("entropy", "cross_entropy", "kl")

#: What ``klspec check --quantity`` takes (``cross-entropy``) -> the function it names.
QUANTITIES: dict[str, Function] = {f.quantity: f for f in FUNCTIONS if f.signature}

#: Conventions an implementation may declare, and what each promises.
CAPABILITIES: dict[str, str] = {
    "batched": "accepts inputs of shape (..., n) and reduces the last axis",
    "base": "accepts base= (the result is divided by ln base)",
    "axis": "accepts axis= (the axis holding the outcomes)",
    "validates": "raises ValueError/TypeError naming the argument on bad input",
    "log_ratio_range": "k1/k2/k3 exact only where log r lies in a declared range (clamped outside)",
    "label_smoothing": "dpo accepts label_smoothing= (the conservative-DPO mixture)",
}

#: Arguments of a direct function that are one number for the whole call, not an array per
#: position: handed to a target as a Python float, whatever its array type and format.
SCALAR_ARGUMENTS: tuple[str, ...] = ("beta", "label_smoothing")


def function(name: str) -> Function:
    """The function named ``name`` (``"kl"``, or its ``--quantity`` spelling ``"token-kl"``)."""
    found = _BY_NAME.get(name) or QUANTITIES.get(name)
    if found is None:
        raise KeyError(f"unknown function {name!r}; known: {', '.join(_BY_NAME)}")
    return found


def topic_functions(topic: str) -> tuple[str, ...]:
    """The names of the functions of a topic, in :data:`FUNCTIONS` order."""
    return tuple(f.name for f in FUNCTIONS if f.topic == topic)


def topic_title(key: str) -> str:
    """The heading of a topic (``"Gaussian fits"`` for ``"fitting"``)."""
    return next(t.title for t in TOPICS if t.key == key)


class Implementation:
    """An implementation under test: a name, the functions it has and the conventions it keeps.

    ``Implementation("mine", kl=my_kl, capabilities={"batched"})``: give only the
    functions that exist, by their names in :data:`FUNCTIONS`; checks needing a
    missing one, or a capability not declared, are skipped with the reason.
    ``options`` are the keyword options that rebuild it from its name as a target
    (``signature=...``), for reproduction lines; ``by_name`` says whether ``name``
    is a target :func:`klspec.conformance.resolve` knows (when it is not, e.g. a
    function object handed to :func:`klspec.conformance.check`, reproduction
    lines pass the function itself). ``conventions`` are the documented
    departures from the clauses that the library chose on purpose (see
    :mod:`klspec.conformance.conventions`), so that a report can say a value
    differs *by convention* rather than call it wrong.

    How it computes, for the checks that adapt to it:

    ``dtype``
        the floating-point format it computes in (a key of
        :data:`klspec.spec.precision.PRECISIONS`, default ``"float64"``): checks round
        their inputs to it and derive tolerances from its unit roundoff;
    ``derivatives``
        ``{name: d(logp, ref_logp)}``, the gradient of a per-sample function with
        respect to its first argument as the implementation's own autograd computes it
        (the ``estimator.gradients`` checks use it instead of finite differences);
    ``gradient_of``
        ``{name: other}`` for a straight-through estimator: the value of ``name``,
        the gradient of ``other`` (``{"k3": "k2"}``);
    ``log_ratio_range``
        ``(lo, hi)``: k1/k2/k3 are exact only where log r = ref_logp − logp lies in
        [lo, hi] (a clamp by design); value and gradient checks draw there, and the
        capability ``log_ratio_range`` is declared.
    ``beta``
        the β a dpo target is checked at (``klspec check --beta``): a target whose β is
        fixed (a trainer's config) is called with it, and every dpo check draws its pairs
        for it; None (the reference) lets the checks draw β too.
    """

    __slots__ = (
        "beta",
        "by_name",
        "capabilities",
        "conventions",
        "derivatives",
        "description",
        "dtype",
        "functions",
        "gradient_of",
        "log_ratio_range",
        "name",
        "options",
    )

    def __init__(
        self,
        name: str,
        *,
        capabilities: Iterable[str] = (),
        description: str = "",
        options: tuple[tuple[str, Any], ...] = (),
        by_name: bool = True,
        conventions: tuple[Any, ...] = (),
        dtype: str = "float64",
        derivatives: dict[str, Callable[..., Any]] | None = None,
        gradient_of: dict[str, str] | None = None,
        log_ratio_range: tuple[float, float] | None = None,
        beta: float | None = None,
        **functions: Callable[..., Any] | None,
    ) -> None:
        unknown = sorted(set(functions) - ARGUMENTS.keys())
        if unknown:
            raise TypeError(
                f"implementation {name!r}: unknown functions {unknown}; known: "
                f"{', '.join(ARGUMENTS)}"
            )
        caps = (frozenset(capabilities) - {"log_ratio_range"}) | (
            {"log_ratio_range"} if log_ratio_range is not None else set()
        )
        bad = caps - CAPABILITIES.keys()
        if bad:
            raise ValueError(
                f"unknown capabilities {sorted(bad)} for implementation {name!r}; "
                f"known: {sorted(CAPABILITIES)}"
            )
        given = {k: fn for k, fn in functions.items() if fn is not None}
        if not given:
            raise ValueError(f"implementation {name!r} provides no function at all")
        for attribute, value in (
            ("name", name),
            ("functions", given),
            ("capabilities", caps),
            ("description", description),
            ("options", tuple(options)),
            ("by_name", by_name),
            ("conventions", tuple(conventions)),
            ("dtype", str(dtype)),
            ("derivatives", dict(derivatives or {})),
            ("gradient_of", dict(gradient_of or {})),
            ("log_ratio_range", None if log_ratio_range is None else tuple(log_ratio_range)),
            ("beta", None if beta is None else float(beta)),
        ):
            object.__setattr__(self, attribute, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not slots: the functions, by name.
        if name in ARGUMENTS:
            return object.__getattribute__(self, "functions").get(name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Implementation is immutable; use replace()")

    def __repr__(self) -> str:
        return f"Implementation({self.name!r}, {', '.join(self.functions)})"

    def replace(self, **changes: Any) -> Implementation:
        """A copy with some fields or functions changed (``impl.replace(kl=other)``)."""
        fields = {
            "capabilities": self.capabilities,
            "description": self.description,
            "options": self.options,
            "by_name": self.by_name,
            "conventions": self.conventions,
            "dtype": self.dtype,
            "derivatives": self.derivatives,
            "gradient_of": self.gradient_of,
            "log_ratio_range": self.log_ratio_range,
            "beta": self.beta,
            **self.functions,
        }
        fields.update(changes)
        return Implementation(
            changes.get("name", self.name), **{k: v for k, v in fields.items() if k != "name"}
        )

    @property
    def precision(self) -> Any:
        """The :class:`~klspec.spec.precision.Precision` of :attr:`dtype`."""
        from klspec.spec.precision import precision

        return precision(self.dtype)

    @property
    def provides(self) -> frozenset[str]:
        """The functions it has and the capabilities it declares."""
        return frozenset(self.functions) | self.capabilities

    def missing(self, needs: Iterable[str]) -> frozenset[str]:
        """Which of ``needs`` (functions and capabilities) it lacks."""
        return frozenset(needs) - self.provides

    def function(self, name: str) -> Callable[..., Any]:
        """The function computing ``name``; ``LookupError`` if it has none."""
        fn = self.functions.get(name)
        if fn is None:
            raise LookupError(f"implementation {self.name!r} has no {name}")
        return fn
