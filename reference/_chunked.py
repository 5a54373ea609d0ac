r"""One pass, in cache-sized blocks: KL, entropy and cross-entropy, fast and exact.

Why a second path
-----------------
:mod:`klspec.reference.divergences` explains how the reference gets every digit
right. Done over whole arrays, that cost 1.5 GB of temporaries and 14× the time of
``scipy.special.rel_entr(p, q).sum()`` for KL at 10^7 outcomes (measured before
this module existed). This module
computes the same quantities in blocks of :data:`CHUNK` elements (buffers of the
L2 cache's order of size), reads every input once, allocates nothing that grows with the
input, checks the inputs' values on the way (validation costs no extra pass)
and reaches for the exact path only for rows where it cannot vouch for its own
accuracy.

The identities (all exact in real arithmetic; Sp = Σp, Sq = Σq)
---------------------------------------------------------------
KL. With the *unnormalised* terms T_i = p_i log(p_i/q_i) − p_i + q_i ≥ 0 and
A = Σ T_i, D = Sq − Sp,

    KL(P‖Q) = A/Sp + ψ(D/Sp),     ψ(w) = log1p(w) − w ≈ −w²/2 ≤ 0.

A needs no row sum at all: T_i is a function of p_i and q_i alone, computed
like the exact path's terms (s = (p−q)/(p+q), T = (p−q)·s·(1 + s(1+s)B(s²))
by a polynomial for |s| ≤ 1/2, and T = (p−q)·s + p·(log(p/q) − 2s) beyond),
where p − q is exact whenever s is small (Sterbenz), so no digit is lost for
nearly equal inputs. D = −Σ(p_i − q_i) only enters through ψ, which is of order
D² (1e-32 for inputs normalised to float64 precision).

Entropy. H(P) = E/Sp + log Sp with E = −Σ p_i log p_i. H moves by (1 − H)·δ
when Sp moves by δ, so Sp is summed exactly (two levels of Rump–Ogita–Oishi
extraction per block: ~2^-100 absolute). A row with an entry p_j > 1 − 2^-20
(:data:`_ONE_HOT`; one-hot up to rounding, say p_j = 1 − 1e-12 and H ~ 1e-15)
would lose H's digits twice: to the rounding of its own term p_j log p_j ~ 1e-12
in E, and to E/Sp + log Sp cancelling. Its term is left out of E (E′ = the rest)
and H is put together from non-negative pieces, with S₋ⱼ = Σ_{i≠j} p_i:

    H = (E′ + S₋ⱼ·log Sp)/Sp − P_j·log1p(−S₋ⱼ/Sp),   S₋ⱼ = (Sp_hi − p_j) + Sp_lo,

where Sp_hi − p_j is exact (Sterbenz) and the first part is Σ_{i≠j} −P_i log P_i
with |log P_i| > log 2 >> |log Sp| for every P_i < 1/2 (no cancellation).

Cross-entropy. H(P, Q) = C/Sp + log Sq with C = −Σ p_i log q_i; Sq summed
exactly, as for entropy.

When the fast path defers to the exact one
------------------------------------------
Each row gets a certificate from quantities the pass has already computed:

* KL: |ψ| ≤ A/(16 Sp) (the subtraction loses at most a factor 16/15), and the
  error ψ inherits from D's rounding (Σ|p_i − q_i| ≤ √(2.3·A) by
  Cauchy–Schwarz) is below A/(16 Sp) times float64's unit roundoff.
* entropy / cross-entropy: |log S| ≤ H/16 and (cross-entropy) no probability in the
  row above 1. Entropy rows with an entry set aside (above) are certified as they
  are: every piece is non-negative (unless two entries exceed 1 − 2^-20, which
  invalid input only can have); the others of float64 input have H ≥ 2^-20 − |log S|
  > 16·|log S| (float32 and float16 rows with a p_j near 1 may still need the second
  pass, as before).

Rows without a certificate (p ∝ q but not normalised, cross-entropy rows that are
one-hot up to rounding, and the like) get a second pass at about the first one's
cost (see "The second pass" below: KL with q rescaled by the measured Sp/Sq,
cross-entropy term by term against the exact sum); the few rows that pass cannot
vouch for either (a careful block among them) are recomputed by the exact path of
:mod:`klspec.reference.divergences` (long rows in pieces). Rows with zeros, subnormals or ratios
beyond 2^±500 are not deferred: their blocks are computed with the scaling by
2^600 and the masks of the exact path ("careful" blocks), which give the same
terms bit for bit as the fast formulas wherever both apply.

Memory
------
Blocks are made lazily and at most threads + 1 of them are in flight; rows are
totalled, finished and (where uncertified) redone in groups of about GROUP_ROWS
rows (:func:`run_groups`), so beyond the result (8 bytes a row) a call holds a
workspace of ~8 blocks per thread, a few records, one group's totals and, for
uncertified rows, the second pass's copy of at most 2^17 elements of them and its
own group: measured on two threads, 4-15 MB, and up to 23 MB when every one of
millions of short rows needs the second pass, whatever the batch shape
(tests/test_chunked.py measures it).

What depends on the blocking
----------------------------
Each term is a function of its own p_i, q_i and of the polynomial the block
chose for B (the shortest of a Taylor series and interpolants of degree 5 to 13
that covers the block's largest s²); row sums are pairwise within a block
and double-double across blocks. So results for different layouts or block
sizes agree to the accuracy bound, not always to the last bit;
tests/test_chunked.py checks both (bit for bit where the blocks coincide).
"""

from __future__ import annotations

import collections
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from klspec.reference.exact_arithmetic import two_sum

#: Elements per block (512 KiB per buffer). Chosen by measurement on the 2-core test
#: machine (2 MiB of L2 per core): 2^14 was ~10% faster on one thread, but two threads only
#: scale with blocks this large (numpy's per-call overhead holds the GIL).
CHUNK = 1 << 16

_SCALE = 2.0**600  # the exact path's scaling: subnormal inputs give normal terms
_TINY = 2.0**-500  # blocks with an entry below this (or a zero) are computed carefully
_U = 2.0**-53  # unit roundoff of float64

# B(x) = Σ_k x^k/(2k+3) = (atanh √x − √x)/x^{3/2}, for x = s² <= 1/4 (|s| <= 1/2), by
# Horner with the shortest polynomial for the block's largest x: Taylor's series below
# 2**-10, else one of these interpolants at Chebyshev nodes (computed with mpmath at
# 60 digits), each with relative error below 1.3 units of 2**-53 on [0, limit],
# Horner's rounding included; tests/test_chunked.py recomputes the bounds with mpmath.
B_POLYNOMIALS = {
    2.0**-8: (
        0.3333333333333333,
        0.20000000000000215,
        0.14285714285071202,
        0.11111111813168859,
        0.0909056281432965,
        0.07770940257879785,
    ),
    2.0**-5: (
        0.3333333333333333,
        0.2000000000000067,
        0.14285714285264073,
        0.11111111226113202,
        0.09090894686397773,
        0.07693285105148609,
        0.06630094481254124,
        0.06586857593524457,
    ),
    2.0**-4: (
        0.3333333333333333,
        0.20000000000000032,
        0.14285714285697212,
        0.11111111114598056,
        0.09090908729844124,
        0.07692329119112426,
        0.06665895156771022,
        0.05899449571380944,
        0.05036728550743751,
        0.06376785352502805,
    ),
    2.0**-3: (
        0.3333333333333333,
        0.20000000000000032,
        0.14285714285702572,
        0.11111111112853614,
        0.09090908957271183,
        0.07692313723557856,
        0.06666494706928437,
        0.058855646414098656,
        0.05223441632443474,
        0.050821750222231045,
        0.027509936295526158,
        0.08287230876597709,
    ),
    2.0**-2: (
        0.3333333333333333,
        0.20000000000000864,
        0.14285714285490106,
        0.11111111133938968,
        0.09090907881509189,
        0.07692345940270638,
        0.06665886352701884,
        0.05893099692590042,
        0.05160769881147162,
        0.05441915418234587,
        0.012292448728540531,
        0.13557903913692299,
        -0.14450491183414468,
        0.21098097885975797,
    ),
}
_TAYLOR_LIMIT_X = 2.0**-10  # below this, B's Taylor series is the shortest
_SERIES_LIMIT_X = 0.25  # |s| <= 1/2: polynomial; beyond: log(p/q)
# Entropy: a term with p_j above this is summed apart (see _dominant_rows). Any value in
# (1/2, 1) is exact; this one is close enough to 1 that few blocks of random short rows
# pay for the step (6% of blocks of rows of 2, +2% time), yet certifies the other rows of
# float64 input: H >= 2**-20 − |log Σp| > 16·|log Σp| for |Σp − 1| <= 2**-26.
_ONE_HOT = 1.0 - 2.0**-20


# ---------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------


class _Workspace:
    """Named scratch buffers of CHUNK float64 each, reused by every block of a call."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}

    def __call__(self, name: str, shape: tuple[int, int]) -> np.ndarray:
        size = shape[0] * shape[1]
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[name] = np.empty(max(size, CHUNK))
        return buffer[:size].reshape(shape)


def _mergeable(a: np.ndarray) -> bool:
    """Whether the batch axes of ``a`` (all but the last) flatten into one without a copy."""
    shape, strides = a.shape[:-1], a.strides[:-1]
    return all(
        shape[i] == 1 or shape[i + 1] == 1 or strides[i] == strides[i + 1] * shape[i + 1]
        for i in range(len(shape) - 1)
    )


def _panels(arrays: tuple[np.ndarray, ...], first_row: int = 0) -> Iterator[tuple[int, tuple]]:
    """2-D views ``(rows, n)`` covering the flattened batch, with their first row index."""
    a0 = arrays[0]
    if a0.ndim == 1:
        yield first_row, tuple(a[None, :] for a in arrays)
    elif a0.ndim == 2 or all(_mergeable(a) for a in arrays):
        yield first_row, tuple(a.reshape(-1, a.shape[-1]) for a in arrays)
    else:  # broadcast or permuted batch axes that do not flatten: one sub-panel per index
        step = math.prod(a0.shape[1:-1])
        for i in range(a0.shape[0]):
            yield from _panels(tuple(a[i] for a in arrays), first_row + i * step)


def _blocks(
    rows: int, n: int, whole_rows: bool = False, chunk: int | None = None
) -> Iterator[tuple[int, int, int, int]]:
    """(r0, r1, c0, c1) blocks of at most ``chunk`` elements: whole rows, or pieces of one
    row.

    With ``whole_rows`` a row longer than ``chunk`` is one block of its own. ``chunk``
    defaults to CHUNK (read at each call).
    """
    chunk = CHUNK if chunk is None else chunk
    if n >= chunk and not whole_rows:
        for r in range(rows):
            for c0 in range(0, n, chunk):
                yield r, r + 1, c0, min(n, c0 + chunk)
    else:
        step = max(1, chunk // n)
        for r0 in range(0, rows, step):
            yield r0, min(rows, r0 + step), 0, n


@dataclass
class _Record:
    """What a kernel reports for one block: row sums, extremes, and rows to redo exactly."""

    sums: dict[str, np.ndarray | tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    lowest: dict[str, float] = field(default_factory=dict)
    flag: bool = False


@dataclass
class _Totals:
    """Per-row double-double sums and per-call extremes, accumulated in block order."""

    rows: int
    sums: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    lowest: dict[str, float] = field(default_factory=dict)
    flagged: np.ndarray | None = None  # rows a kernel asks the exact path to redo

    def add(self, r0: int, r1: int, record: _Record) -> None:
        for name, value in record.sums.items():
            hi, lo = value if isinstance(value, tuple) else (value, 0.0)
            if name not in self.sums:
                self.sums[name] = (np.zeros(self.rows), np.zeros(self.rows))
            acc_hi, acc_lo = self.sums[name]
            with np.errstate(invalid="ignore"):
                s, e = two_sum(acc_hi[r0:r1], hi)
                e = e + lo
            acc_hi[r0:r1] = s
            acc_lo[r0:r1] += np.where(np.isfinite(s), e, 0.0)  # an inf total stays inf
        for name, v in record.lowest.items():
            # NaN never compares, so a NaN anywhere sticks (and fails validation).
            old = self.lowest.get(name, math.inf)
            self.lowest[name] = v if (v != v or v < old) else old
        if record.flag:
            if self.flagged is None:
                self.flagged = np.zeros(self.rows, dtype=bool)
            self.flagged[r0:r1] = True

    def total(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.sums[name]

    def head(self, rows: int) -> _Totals:
        """The totals of the first ``rows`` rows (views)."""
        return _Totals(
            rows=rows,
            sums={name: (hi[:rows], lo[:rows]) for name, (hi, lo) in self.sums.items()},
            lowest=self.lowest,
            flagged=None if self.flagged is None else self.flagged[:rows],
        )


Kernel = Callable[[list, "_Workspace"], _Record]


def threads() -> int:
    """Worker threads for large inputs: ``KLSPEC_NUM_THREADS``, else the usable CPUs (≤ 8).

    numpy releases the GIL inside its loops, so blocks computed on two threads run
    on two cores. Results do not depend on the number of threads: blocks are
    totalled in the same order either way.
    """
    setting = os.environ.get("KLSPEC_NUM_THREADS", "").strip()
    if setting:
        try:
            return max(1, int(setting))
        except ValueError:
            raise ValueError(
                f"KLSPEC_NUM_THREADS={setting!r} is not a whole number of threads"
            ) from None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        usable = os.cpu_count() or 1
    return max(1, min(usable, 8))


_EXECUTORS: dict[int, ThreadPoolExecutor] = {}
_EXECUTOR_LOCK = threading.Lock()
_LOCAL = threading.local()
# Below this many blocks one thread is as fast as several.
_MIN_BLOCKS_FOR_THREADS = 4


def _executor(workers: int) -> ThreadPoolExecutor:
    with _EXECUTOR_LOCK:
        if workers not in _EXECUTORS:
            _EXECUTORS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="klspec")
        return _EXECUTORS[workers]


def _tasks(arrays: tuple[np.ndarray, ...], whole_rows: bool, chunk: int = CHUNK) -> Iterator[tuple]:
    """(r0, r1, row_end, views) for every block, in order, made lazily (nothing is listed)."""
    n = arrays[0].shape[-1]
    for first_row, panel in _panels(arrays):
        for r0, r1, c0, c1 in _blocks(panel[0].shape[0], n, whole_rows, chunk):
            yield first_row + r0, first_row + r1, c1 == n, tuple(a[r0:r1, c0:c1] for a in panel)


def _records(
    arrays: tuple[np.ndarray, ...],
    kernel: Kernel,
    workers: int | None,
    whole_rows: bool,
    per_row: tuple[np.ndarray, ...] = (),
    keep_float32: bool = False,
    chunk: int | None = None,
) -> Iterator[tuple[tuple, _Record]]:
    """(task, record) for every block, in block order, with few records alive at a time.

    ``keep_float32``: C-contiguous float32 blocks reach the kernel as they are (views,
    not converted), for kernels that read float32 logits at half the cost.

    On threads, at most ``workers`` blocks are submitted ahead of the one being
    totalled, so memory is a few records and workspaces whatever the input size.
    ``per_row`` arrays (one value per row) reach the kernel after the blocks, as
    views of shape ``(r1 - r0, 1)``. ``chunk``: elements per block (whole rows may
    exceed it).
    """

    def one(task: tuple) -> _Record:
        work = getattr(_LOCAL, "work", None)
        if work is None:
            work = _LOCAL.work = _Workspace()
        blocks = []
        for i, view in enumerate(task[3]):
            kept = keep_float32 and view.dtype == np.float32
            if (view.dtype != np.float64 and not kept) or not view.flags.c_contiguous:
                buffer = work(f"in{i}", view.shape)
                np.copyto(buffer, view, casting="unsafe")
                view = buffer
            blocks.append(view)
        blocks.extend(v[task[0] : task[1], None] for v in per_row)
        with np.errstate(all="ignore"):  # invalid input is reported by validation afterwards
            return kernel(blocks, work)

    tasks = _tasks(arrays, whole_rows, chunk)
    workers = threads() if workers is None else workers
    head = list(itertools.islice(tasks, _MIN_BLOCKS_FOR_THREADS)) if workers > 1 else []
    if len(head) < _MIN_BLOCKS_FOR_THREADS:  # one thread: small inputs, or asked for
        for task in itertools.chain(head, tasks):
            yield task, one(task)
        return
    executor = _executor(workers)
    ahead: collections.deque = collections.deque()
    for task in itertools.chain(head, tasks):
        ahead.append((task, executor.submit(one, task)))
        if len(ahead) > workers:
            done, future = ahead.popleft()
            yield done, future.result()
    while ahead:
        done, future = ahead.popleft()
        yield done, future.result()


def run(
    arrays: tuple[np.ndarray, ...],
    kernel: Kernel,
    workers: int | None = None,
    *,
    whole_rows: bool = False,
    keep_float32: bool = False,
    chunk: int | None = None,
) -> _Totals:
    """Call ``kernel(blocks, work)`` on every block of the inputs and total the records.

    ``arrays`` share the shape ``(*batch, n)``; each block is a C-contiguous float64
    array of shape ``(r1 - r0, c1 - c0)`` (a view when the input already is one, else
    a copy into a reused buffer, which is where other dtypes are converted). Blocks
    run on ``workers`` threads (default :func:`threads`) and are totalled in order.
    ``whole_rows`` keeps every row in one block, for kernels that need a whole row.
    The totals hold two float64 per row and sum: :func:`run_groups` bounds that too.
    ``keep_float32``, ``chunk``: as for :func:`_records`.
    """
    totals = _Totals(rows=math.prod(arrays[0].shape[:-1]))
    records = _records(arrays, kernel, workers, whole_rows, keep_float32=keep_float32, chunk=chunk)
    for (r0, r1, _, _), record in records:
        totals.add(r0, r1, record)
    return totals


#: Rows are totalled and finished in groups of about this many rows (and at most about
#: GROUP_ELEMENTS elements, unless one row is longer): with the few named sums of a
#: kernel, a group's totals and its finishing step's temporaries stay near a few MB.
GROUP_ROWS = 1 << 13
GROUP_ELEMENTS = 1 << 21


def run_groups(
    arrays: tuple[np.ndarray, ...],
    kernel: Kernel,
    workers: int | None = None,
    *,
    whole_rows: bool = False,
    per_row: tuple[np.ndarray, ...] = (),
) -> Iterator[tuple[int, int, _Totals]]:
    """:func:`run` in bounded groups of whole rows: ``(g0, g1, totals of rows g0..g1-1)``.

    Each block is totalled exactly as by :func:`run` (the same blocks, the same
    order, the same arithmetic), so the totals of a row are the same bits; a group
    ends at the end of a block that ends a row, once it holds GROUP_ROWS rows or
    GROUP_ELEMENTS elements. Its totals hold at most GROUP_ROWS + CHUNK // n rows.
    ``per_row``: as for :func:`_records`.
    """
    n = arrays[0].shape[-1]
    capacity = GROUP_ROWS + (1 if n >= CHUNK and not whole_rows else max(1, CHUNK // n))
    totals, g0 = None, 0
    for (r0, r1, row_end, _), record in _records(arrays, kernel, workers, whole_rows, per_row):
        if totals is None:
            totals, g0 = _Totals(rows=capacity), r0
        totals.add(r0 - g0, r1 - g0, record)
        if row_end and (r1 - g0 >= GROUP_ROWS or (r1 - g0) * n >= GROUP_ELEMENTS):
            yield g0, r1, totals.head(r1 - g0)
            totals = None
    if totals is not None:  # the last block ends the last row
        yield g0, r1, totals.head(r1 - g0)


# ---------------------------------------------------------------------------
# Pieces shared by the kernels
# ---------------------------------------------------------------------------


def _exact_row_sums(
    x: np.ndarray, work: _Workspace, tag: str, levels: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Σ x along the last axis to ~2**-100 absolute for 0 <= x <= 2, as (hi, lo).

    Two levels of error-free extraction (Rump, Ogita & Oishi 2008): adding and
    subtracting a power of two σ splits x into a part on a grid that sums exactly
    and an exact remainder; the second level does the same to the remainder, and
    the final remainders (< 2**-70 each) are summed in float64. With ``levels=1``
    the first remainders are summed in float64: ~2**-68 absolute per block.
    """
    c = x.shape[-1]
    sigma1 = 2.0 ** (math.ceil(math.log2(c)) + 1)
    sigma2 = sigma1 * 2.0 ** (math.ceil(math.log2(c)) - 52)
    h = work(tag + "h", x.shape)
    r = work(tag + "r", x.shape)
    np.add(x, sigma1, out=h)
    np.subtract(h, sigma1, out=h)
    np.subtract(x, h, out=r)
    sum1 = h.sum(axis=-1)
    if levels == 1:
        return two_sum(sum1, r.sum(axis=-1))
    np.add(r, sigma2, out=h)
    np.subtract(h, sigma2, out=h)
    np.subtract(r, h, out=r)
    hi, lo = two_sum(sum1, h.sum(axis=-1))
    return hi, lo + r.sum(axis=-1)


def b_coefficients(x_max: float) -> list[float]:
    """The polynomial in x for B on [0, x_max] (x_max <= 1/4, else the one for 1/4)."""
    if x_max <= _TAYLOR_LIMIT_X:
        terms = 1
        while x_max**terms / ((2 * terms + 3) * (1 - x_max)) > 2.0**-60:
            terms += 1
        return [1.0 / (2 * k + 3) for k in range(terms)]
    limit = next((lim for lim in sorted(B_POLYNOMIALS) if x_max <= lim), _SERIES_LIMIT_X)
    return list(B_POLYNOMIALS[limit])


def horner(coefficients: list[float], x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Σ c_k x^k into ``out`` by Horner's rule, one ufunc pass per operation."""
    if len(coefficients) == 1:
        out.fill(coefficients[0])
        return out
    np.multiply(x, coefficients[-1], out=out)
    np.add(out, coefficients[-2], out=out)
    for c in reversed(coefficients[:-2]):
        np.multiply(out, x, out=out)
        np.add(out, c, out=out)
    return out


def _kl_terms(
    d: np.ndarray, pp: np.ndarray, qq: np.ndarray, work: _Workspace, careful: bool = False
) -> np.ndarray:
    """T_i = p log(p/q) − p + q >= 0 from d = p − q (exact when p/q is near 1), p, q."""
    shape = d.shape
    s = np.add(pp, qq, out=work("s", shape))
    np.divide(d, s, out=s)
    x = np.multiply(s, s, out=work("x", shape))
    x_max = float(x.max())
    ds = np.multiply(d, s, out=work("ds", shape))
    # B(x) by Horner, then T = ds + ds·(s + s²)·B.
    b = horner(b_coefficients(x_max), x, work("b", shape))
    t = np.add(s, x, out=work("t", shape))
    np.multiply(t, b, out=t)
    np.multiply(t, ds, out=t)
    np.add(t, ds, out=t)
    if not x_max <= _SERIES_LIMIT_X:  # also when x_max is NaN
        # |s| > 1/2: T = ds + p·(log(p/q) − 2s); log(p/q) − 2s = 2(atanh s − s).
        big = np.divide(pp, qq, out=b)
        # Careful blocks: where p/q over/underflows, log p − log q (only |s| > 1/2 there).
        bad = ~((big > np.finfo(np.float64).tiny) & (big < np.inf)) if careful else None
        if careful:  # terms with p = 0 or q = 0 are replaced by the caller anyway
            bad &= (pp > 0) & (qq > 0)
        np.log(big, out=big)
        if careful and bad.any():
            big[bad] = np.log(pp[bad]) - np.log(qq[bad])
        np.subtract(big, s, out=big)
        np.subtract(big, s, out=big)
        np.multiply(big, pp, out=big)
        np.add(big, ds, out=big)
        # Select by multiplying with 0 or 1 (exact; both branches are finite here, and
        # cheaper than np.where, which allocates): t = t·[x <= 1/4] + big·[x > 1/4].
        mask = np.greater(x, _SERIES_LIMIT_X, out=x)
        np.multiply(big, mask, out=big)
        np.subtract(1.0, mask, out=mask)
        np.multiply(t, mask, out=t)
        np.add(t, big, out=t)
    return t


# ---------------------------------------------------------------------------
# KL
# ---------------------------------------------------------------------------


def _kl_kernel(blocks: list, work: _Workspace) -> _Record:
    p, q = blocks
    shape = p.shape
    low_p, low_q = float(p.min()), float(q.min())
    record = _Record(lowest={"p": low_p, "q": low_q})
    record.sums["sp"] = p.sum(axis=-1)
    d = np.subtract(p, q, out=work("d", shape))
    record.sums["sd"] = d.sum(axis=-1)
    if low_p > _TINY and low_q > _TINY:
        t = _kl_terms(d, p, q, work)
        record.sums["a"] = t.sum(axis=-1) * _SCALE
        return record
    # Careful block: zeros, subnormals, huge ratios (or invalid input). Scaled by 2**600
    # the terms are the fast formula's times 2**600 exactly wherever that one applies.
    pp = np.multiply(p, _SCALE, out=work("pp", shape))
    qq = np.multiply(q, _SCALE, out=work("qq", shape))
    np.multiply(d, _SCALE, out=d)
    p_zero, q_zero = p == 0, q == 0
    both_zero = p_zero & q_zero
    # Treat 0/0 as 1/1 (s = 0); masked below. In place: no block-sized allocation.
    np.copyto(pp, 1.0, where=both_zero)
    np.copyto(qq, 1.0, where=both_zero)
    t = _kl_terms(d, pp, qq, work, careful=True)
    np.copyto(t, qq, where=p_zero)  # the term is q_i ...
    np.copyto(t, 0.0, where=both_zero)  # ... (0 when q_i = 0 too)
    np.copyto(t, np.inf, where=q_zero & (p > 0))
    record.sums["a"] = t.sum(axis=-1)
    return record


def kl_divergence_groups(
    arrays: tuple[np.ndarray, np.ndarray],
) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """``(g0, g1, result)`` for bounded groups of rows, ``result`` as :func:`kl_result`."""
    for g0, g1, totals in run_groups(arrays, _kl_kernel):
        yield g0, g1, kl_result(totals)


def kl_divergence_rows(arrays: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """KL per row (flattened batch) with the validation sums and the certificate."""
    return _joined(kl_divergence_groups(arrays))


def kl_result(totals: _Totals, delta: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """KL of the rows of ``totals`` with the validation sums and the certificate.

    ``delta``: the totals are the second pass's, for q' = (1 − δ)·q (see below).
    """
    a_hi, a_lo = totals.total("a")
    sp_hi, sp_lo = totals.total("sp")
    sd_hi, sd_lo = totals.total("sd")
    a = a_hi + a_lo  # scaled by 2**600
    sp = sp_hi + sp_lo
    d = -(sd_hi + sd_lo)  # D = Sq − Sp
    w = d / sp
    psi = _psi(w)
    kl_core = np.ldexp(a / sp, -600)
    kl = kl_core + psi
    # Certificate (module docs): little cancellation, and D's rounding harmless.
    d_error = 27 * _U * np.sqrt(2.3 * a) * 2.0**300 + 3.3 * _U * a
    if delta is not None:  # the second pass's roundings of d'_i (below)
        d_error += 4 * _U * np.sqrt(2.3 * a) * 2.0**300 + np.abs(delta) * 2.0 ** (600 - 74)
    certified = (np.abs(psi) * 16 <= kl_core) & (np.abs(d) * d_error * 16 <= a)
    certified |= np.isinf(a)
    return {
        "value": kl,
        "certified": certified,
        "sums": {"p": sp, "q": sp + d},
        "lowest": totals.lowest,
        "again": (d / (sp + d),),  # δ = D/Sq for the second pass
    }


def _psi(w: np.ndarray) -> np.ndarray:
    """log1p(w) − w without cancellation for small |w|."""
    small = np.abs(w) < 1e-3
    series = -w * w * (0.5 - w * (1 / 3 - w * (0.25 - w * (0.2 - w / 6))))
    with np.errstate(all="ignore"):
        direct = np.log1p(w) - w
    return np.where(small, series, direct)


# ---------------------------------------------------------------------------
# Entropy and cross-entropy: −Σ p log x, with x = p or x = q
# ---------------------------------------------------------------------------


def _plogx_kernel(blocks: list, work: _Workspace) -> _Record:
    """Σ p·log x per row (x = the last block) and the exact row sums of x.

    Entropy (one block): the term of a p_j > _ONE_HOT is left out of the sum and p_j
    reported on its own (``xj``, 0 in other rows; see :func:`_dominant_rows`).
    """
    p, x = blocks[0], blocks[-1]
    shape = p.shape
    low_p, low_x = float(p.min()), float(x.min())
    high_x = float(x.max())
    # A probability above 1 gives a term of the wrong sign: the exact path redoes the rows
    # (cross-entropy; entropy sums such a term apart, below, where its sign is right).
    record = _Record(lowest={"p": low_p, "x": low_x}, flag=high_x > 1.0 and len(blocks) == 2)
    if len(blocks) == 2:
        record.sums["sp"] = p.sum(axis=-1)
    record.sums["sx"] = _exact_row_sums(x, work, "x")
    log_x = np.log(x, out=work("log", shape))
    t = work("plog", shape)
    dominant = len(blocks) == 1 and high_x > _ONE_HOT  # NaN: no
    if low_p > _TINY and low_x > _TINY:
        np.multiply(log_x, p, out=t)
        if dominant:
            _set_aside_dominant(x, t, record)
        record.sums["e"] = t.sum(axis=-1) * _SCALE
        return record
    # Careful block: scaled so subnormal p give normal terms; 0·log 0 = 0; p > 0 = x is −inf.
    pp = np.multiply(p, _SCALE, out=work("pp", shape))
    np.multiply(log_x, pp, out=t)
    np.copyto(t, 0.0, where=p == 0)
    if dominant:
        _set_aside_dominant(x, t, record)
    record.sums["e"] = t.sum(axis=-1)
    return record


def _set_aside_dominant(x: np.ndarray, t: np.ndarray, record: _Record) -> None:
    """Zero the terms of entries x_j > _ONE_HOT in ``t``; report x_j per row (``xj``).

    A row one-hot up to rounding has H ~ 1e-16 next to its own term x_j log x_j ~ 1e-12:
    summed together, the big term's rounding alone is ~1e-28, all of H's digits.
    """
    n = x.shape[-1]
    hits = np.flatnonzero(x > _ONE_HOT)  # at most one per row when Σx < 2·_ONE_HOT
    weights = x.ravel()[hits]
    record.sums["xj"] = np.bincount(hits // n, weights=weights, minlength=x.shape[0])
    t.ravel()[hits] = 0.0


def plogx_groups(
    arrays: tuple[np.ndarray, ...],
) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """``(g0, g1, result)`` for bounded groups of rows, ``result`` as :func:`plogx_result`."""
    for g0, g1, totals in run_groups(arrays, _plogx_kernel):
        yield g0, g1, plogx_result(totals, len(arrays))


def plogx_rows(arrays: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    """−Σ P_i log X_i per row, X = P (entropy, one array) or X = Q (cross-entropy)."""
    return _joined(plogx_groups(arrays))


def plogx_result(totals: _Totals, count: int) -> dict[str, np.ndarray]:
    """−Σ P_i log X_i of the rows of ``totals``; ``count`` arrays (1: entropy)."""
    e_hi, e_lo = totals.total("e")
    sx_hi, sx_lo = totals.total("sx")
    if count == 2:
        sp_hi, sp_lo = totals.total("sp")
    else:
        sp_hi, sp_lo = sx_hi, sx_lo
    sp = sp_hi + sp_lo
    # log of the exactly summed Sx: Sx_hi − 1 is exact for Sx_hi in [1/2, 2].
    log_sx = np.log1p((sx_hi - 1.0) + sx_lo)
    core = np.ldexp(-(e_hi + e_lo) / sp, -600)
    value = core + log_sx
    certified = np.abs(log_sx) * 16 <= value
    if "xj" in totals.sums:  # entropy rows with an entry above _ONE_HOT, set aside
        _dominant_rows(totals, log_sx, value, certified)
    if totals.flagged is not None:
        certified &= ~totals.flagged
    sums = {"p": sp, "q": sx_hi + sx_lo} if count == 2 else {"p": sp}
    again = (sx_hi, sx_lo)  # the exact sums of x, for the second pass
    lowest = {"p": totals.lowest["p"]}
    if count == 2:
        lowest["q"] = totals.lowest["x"]
    return {
        "value": value,
        "certified": certified,
        "sums": sums,
        "lowest": lowest,
        "again": again,
    }


def _dominant_rows(
    totals: _Totals, log_s: np.ndarray, value: np.ndarray, certified: np.ndarray
) -> None:
    """H of the entropy rows whose kernel set aside a p_j > _ONE_HOT, in place (module docs).

    H = (−e + S₋ⱼ·log S)/S − P_j·log1p(−S₋ⱼ/S), with the kernel's e = Σ_{i≠j} p_i log p_i
    (scaled by 2**600) and S₋ⱼ = S − p_j; certified but for rows invalid input makes.
    """
    rows = np.flatnonzero(totals.sums["xj"][0])
    if rows.size == 0:
        return
    e_hi, e_lo = totals.total("e")
    s_hi, s_lo = totals.total("sx")
    s_hi, s_lo, e = s_hi[rows], s_lo[rows], e_hi[rows] + e_lo[rows]
    p_j = totals.sums["xj"][0][rows]
    with np.errstate(all="ignore"):
        s = s_hi + s_lo
        # 1 − P_j by its complement S₋ⱼ: S_hi − p_j is exact (Sterbenz) for p_j > S_hi/2,
        # where 1 − p_j/S would cancel to the rounding of p_j/S (all of H's digits).
        rest = (s_hi - p_j) + s_lo
        # Σ_{i≠j} −P_i log P_i with log P_i = log p_i − log S, the log S part summed apart:
        # no cancellation, since |log P_i| > log 2 >> |log S| (P_i < 1/2); all terms >= 0.
        others = np.ldexp((np.ldexp(rest, 600) * log_s[rows] - e) / s, -600)
        value[rows] = others - (p_j / s) * np.log1p(-rest / s)
    # Rows with p_j <= S/2 (only input that fails validation has them: two entries above
    # _ONE_HOT, say) go to the second pass.
    certified[rows] = (p_j > 0.5 * s_hi) & (p_j < 2 * _ONE_HOT)


# ---------------------------------------------------------------------------
# The second pass: rows the first pass could not certify
# ---------------------------------------------------------------------------
#
# Redoing such a row with the exact path of klspec.reference.divergences costs 10-30
# times the first pass. These kernels redo it at about the first pass's cost, from
# per-row quantities the first pass has measured (``again`` in its results).
#
# KL. For any c > 0, with T_i(c) = p_i log(p_i/(c q_i)) − p_i + c q_i >= 0 and
# c* = Sp/Sq, Σ T_i(c) = Sp·KL + Sp·φ(c/c*), φ(t) = t − 1 − log t, exactly (expand
# the logarithms; Σ P_i log(P_i/Q_i) = (1/Sp) Σ p_i log(p_i/q_i) − log(Sp/Sq)). The
# first pass is c = 1: φ(Sq/Sp) is then the −ψ(D/Sp) its certificate weighs, and
# rows where it rivals KL (p ∝ q but not normalised: KL ~ 1e-33, ψ ~ 1e-18) are the
# rows it defers. The second pass takes c = 1 − δ with δ = D̃/S̃q from the first
# pass's sums, so that c·Sq − Sp = D − δ·Sq is of the order of D̃'s rounding error,
# not of D, and is otherwise the first pass with q'_i = c·q_i:
#
#   d'_i = p_i − c q_i = (p_i − q_i) + δ q_i, with δ q_i exact as Σ of the four
#   products of the Dekker halves of δ and q_i (26 and 27 bits: each exact), added
#   to the exact p_i − q_i (Sterbenz) first, where they cancel;
#   D' = −Σ d'_i = c Sq − Sp, KL = A'/Sp + ψ(D'/Sp) as in the first pass.
#
# The first pass's certificate applies with A', D' (its two conditions hold now with
# ψ(D'/Sp) ~ ψ(first pass's D rounding / Sp)), its bound on D's rounding enlarged for
# the roundings of d'_i: the three additions, each ≤ u·(|d'_i| + 2^-25·|δ| q_i), and
# p_i − q_i where not exact (|s_i| > 1/3 there, where |δ| q_i << |d'_i|): ≤ 4u|d'_i|
# with Σ|d'_i| ≤ √(2.3 A') as before, plus 3u·2^-25·|δ|·Sq ≤ 2^-74·|δ| (Sq ≤ 2).
# Rows it still does not certify, and rows with a zero, a subnormal or a ratio
# beyond 2^±500 (the first pass's "careful" blocks), go to the exact path.
#
# Entropy and cross-entropy: −Σ P_i log X_i (X = P, or X = Q) term by term, with the
# exact row sum S of x (the first pass's ``sx``); since the first pass sums one-hot
# entropy rows' big term apart, this is mostly cross-entropy's (X = Q one-hot up to
# rounding, P too: Σ p_i log Sq needs Σ_{i≠j} p_i, which the pass does not sum
# exactly, so the set-aside trick is entropy's only). log X_i = log x_i − log S where
# x_i <= S/2 (then |log X_i| >= log 2 >> |log S|: no cancellation), and
# log1p((x_i − S)/S) where x_i > S/2 (x_i − S_hi is exact by Sterbenz), as the exact
# path does. Every term −P_i log X_i is >= 0, so the sum loses nothing: the result
# needs no certificate (careful blocks again go to the exact path).

_SPLITTER = 134217729.0  # 2**27 + 1: Dekker's splitting constant


def _split(x: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> None:
    """x = hi + lo exactly, each half with at most 26 significant bits (|x| < 2**996)."""
    np.multiply(x, _SPLITTER, out=hi)
    np.subtract(hi, x, out=lo)
    np.subtract(hi, lo, out=hi)
    np.subtract(x, hi, out=lo)


def _kl_again_kernel(blocks: list, work: _Workspace) -> _Record:
    """First-pass sums for q' = (1 − δ)·q; the last block holds each row's δ."""
    p, q, delta = blocks
    shape = p.shape
    low_p, low_q = float(p.min()), float(q.min())
    if not (low_p > _TINY and low_q > _TINY):  # careful blocks: the exact path
        zeros = np.zeros(shape[0])
        sums = {"sp": zeros, "sd": zeros, "a": zeros}
        return _Record(sums=sums, lowest={"p": low_p, "q": low_q}, flag=True)
    d_hi = np.empty_like(delta)
    d_lo = np.empty_like(delta)
    _split(delta, d_hi, d_lo)
    record = _Record(lowest={"p": low_p, "q": low_q})
    record.sums["sp"] = p.sum(axis=-1)
    # Scratch in buffers _kl_terms only writes later: no more workspace than the first pass.
    q_hi, q_lo = work("s", shape), work("x", shape)
    _split(q, q_hi, q_lo)
    d = np.subtract(p, q, out=work("d", shape))
    product = work("ds", shape)
    np.add(d, np.multiply(q_hi, d_hi, out=product), out=d)
    middle = np.multiply(q_lo, d_hi, out=work("b", shape))
    np.add(middle, np.multiply(q_hi, d_lo, out=product), out=middle)
    np.add(d, middle, out=d)
    np.add(d, np.multiply(q_lo, d_lo, out=product), out=d)
    record.sums["sd"] = d.sum(axis=-1)
    qq = np.multiply(q, 1.0 - delta, out=work("qq", shape))
    t = _kl_terms(d, p, qq, work)
    record.sums["a"] = t.sum(axis=-1) * _SCALE
    return record


def _plogx_again_kernel(blocks: list, work: _Workspace) -> _Record:
    """Σ p·log X per row, X = x/S with S (hi, lo) in the last two blocks."""
    p, x = blocks[0], blocks[-3]
    s_hi, s_lo = blocks[-2], blocks[-1]
    shape = p.shape
    low_p, low_x = float(p.min()), float(x.min())
    if not (low_p > _TINY and low_x > _TINY):  # careful blocks: the exact path
        return _Record(flag=True)
    record = _Record()
    if len(blocks) == 4:
        record.sums["sp"] = p.sum(axis=-1)
    log_x = np.log(x, out=work("log", shape))
    np.subtract(log_x, np.log1p((s_hi - 1.0) + s_lo), out=log_x)
    half = np.greater(x, 0.5 * s_hi, out=work("half", shape))
    if half.any():
        rows, cols = np.nonzero(half)
        big_hi, big_lo = s_hi[rows, 0], s_lo[rows, 0]
        log_x[rows, cols] = np.log1p(((x[rows, cols] - big_hi) - big_lo) / big_hi)
    t = np.multiply(log_x, p, out=work("plog", shape))
    record.sums["e"] = t.sum(axis=-1) * _SCALE
    return record


def kl_again(
    arrays: tuple[np.ndarray, ...], again: tuple[np.ndarray, ...]
) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """The second pass over rows ``arrays`` (shape (rows, n), or one row (n,)), in groups.

    ``again`` is the first pass's ``(δ,)`` for those rows. Yields ``(g0, g1, result)``
    with ``value`` and ``certified`` (False also for rows in careful blocks).
    """
    (delta,) = again
    for g0, g1, totals in run_groups(arrays, _kl_again_kernel, per_row=again):
        result = kl_result(totals, delta=delta[g0:g1])
        if totals.flagged is not None:
            result["certified"] &= ~totals.flagged
        yield g0, g1, result


def plogx_again(
    arrays: tuple[np.ndarray, ...], again: tuple[np.ndarray, ...]
) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """The second pass for entropy / cross-entropy; ``again`` = (S_hi, S_lo) of x."""
    for g0, g1, totals in run_groups(arrays, _plogx_again_kernel, per_row=again):
        rows = g1 - g0
        e_hi, e_lo = totals.sums.get("e", (np.zeros(rows), np.zeros(rows)))
        if len(arrays) == 2:
            sp_hi, sp_lo = totals.sums.get("sp", (np.ones(rows), np.zeros(rows)))
        else:
            sp_hi, sp_lo = again[0][g0:g1], again[1][g0:g1]
        value = np.ldexp(-(e_hi + e_lo) / (sp_hi + sp_lo), -600)
        certified = np.ones(rows, dtype=bool)
        if totals.flagged is not None:
            certified &= ~totals.flagged
        yield g0, g1, {"value": value, "certified": certified}


def _joined(groups: Iterator[tuple[int, int, dict]]) -> dict:
    """One result for all rows from the results of groups (for tests and small inputs)."""
    parts = [result for _, _, result in groups]
    lowest = {}
    for name in parts[0]["lowest"]:
        values = [part["lowest"][name] for part in parts]
        lowest[name] = math.nan if any(v != v for v in values) else min(values)  # NaN sticks
    return {
        "value": np.concatenate([part["value"] for part in parts]),
        "certified": np.concatenate([part["certified"] for part in parts]),
        "sums": {
            name: np.concatenate([part["sums"][name] for part in parts])
            for name in parts[0]["sums"]
        },
        "lowest": lowest,
        "again": tuple(
            np.concatenate([part["again"][i] for part in parts])
            for i in range(len(parts[0]["again"]))
        ),
    }
