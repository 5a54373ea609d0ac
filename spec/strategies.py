"""Hypothesis strategies that reach the hard numerical regions on purpose.

CONTRACT (stub; being implemented). Every strategy draws a :class:`Case`.

``Case``
    Immutable bundle of named float64 arrays (``case.p``, ``case.q``, ``case.r`` …,
    also ``case.arrays`` -> dict name -> array, in order) plus ``case.regime`` (a
    short tag such as ``"near_equal(1e-12)"``) and an optional ``recipe``.
    ``repr(case)`` is a Python expression that rebuilds the arrays bit for bit:
    ``Case(p=np.array([0.7, 0.3]), q=np.array([0.5, 0.5]))`` for small arrays
    (floats printed with ``repr(float(x))``, which round-trips), or
    ``build_case('near_equal', n=20000, seed=3, exponent=-12)`` for large ones.
    Arrays are read-only (``flags.writeable = False``) so a buggy implementation
    under test cannot corrupt the drawn case.

Strategies (all return ``SearchStrategy[Case]``; arrays are 1-D unless batched):
    distributions(min_size=1, max_size=None)   -> Case(p)
    pairs(min_size=1, max_size=None)            -> Case(p, q): every regime mixed
    near_equal_pairs()                          -> Case(p, q), q = p perturbed by 1e-2..1e-15
    pairs_with_zeros()                          -> Case(p, q) with p_i = 0 somewhere (q_i > 0 or = 0)
    pairs_q_zero_where_p_positive()             -> Case(p, q) with some q_i = 0 < p_i
    batched_pairs()                             -> Case(p, q) with shape (*batch, n), batch ndim 1..3
    triples()                                   -> Case(p, q, r) (for convexity, triangle witnesses)
Regimes covered by pairs()/distributions(): exact zeros, zeros in q where p is
zero, subnormal probabilities, dynamic range over 300 decades, nearly equal pairs
(perturbations 1e-2 .. 1e-15), large supports (seeded, up to 10**5 elements),
one-hot, uniform, generic. Every distribution sums to 1 within float64 rounding
and has at least one positive entry (and, for q in pairs(), q_i > 0 wherever
p_i > 0 unless the strategy says otherwise).

build_case(regime, *, n, seed, **params) -> Case
    Rebuild a large seeded case from its parameters (what a reproduction line calls).
"""
