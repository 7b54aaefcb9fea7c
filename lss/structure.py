"""Structure geometry of C-alpha chains: superposition (one Kabsch), RMSD, bonds, fixed bonds and angles.

Shapes follow mdtraj: ``xyz`` is ``(n_frames, n_atoms, 3)`` in nm.

:func:`project_bonds_` serves the decoders: the C-alpha virtual bonds of a structure-based model (and
of real proteins) are stiff, 0.38 nm with an sd of about 0.01 nm whatever the conformation. A density
model on Cartesian coordinates spreads its errors over all directions, so its bonds come out several
times broader than MD's. The projection moves the atoms as little as possible (equal masses,
Newton steps of the constrained projection) until every bond has a prescribed length, e.g. one drawn
from MD's per-bond distribution: the decoder learns the conformation, the chain geometry that MD
holds fixed is imposed. :func:`project_chain_` does the same for the bonds and the ``i, i+2`` distances
together, i.e. bonds and bond angles (the decoders' ``fixed_angles``): only the torsions stay free.
"""
from __future__ import annotations

import functools
import threading

import numpy as np
import torch

from .utils import as_trajs


def superpose(xyz: np.ndarray, reference: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Superpose frames on a reference structure (optimal rotation and translation, Kabsch).

    Parameters
    ----------
    xyz : np.ndarray, shape (n_frames, n_atoms, 3), nm
    reference : np.ndarray, shape (n_atoms, 3), nm

    Returns
    -------
    aligned : np.ndarray, shape (n_frames, n_atoms, 3), float32, nm
        Each frame rotated (proper rotations only, no reflection) and translated so that its
        RMSD to ``reference`` is minimal; the centroid of each aligned frame is the reference's.
    """
    xyz = np.asarray(xyz)
    ref = np.asarray(reference, dtype=np.float64)
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"xyz must have shape (n_frames, n_atoms, 3), got {xyz.shape}")
    if ref.shape != xyz.shape[1:]:
        raise ValueError(f"reference must have shape {xyz.shape[1:]}, got {ref.shape}")
    ref_c = ref.mean(0)
    ref0 = ref - ref_c
    out = np.empty(xyz.shape, dtype=np.float32)
    for i in range(0, len(xyz), chunk):
        x = xyz[i:i + chunk].astype(np.float64)
        x = x - x.mean(1, keepdims=True)
        h = np.einsum("nai,aj->nij", x, ref0)  # covariance (n, 3, 3)
        u, _, vt = np.linalg.svd(h)
        d = np.sign(np.linalg.det(u @ vt))
        u[:, :, 2] *= d[:, None]  # proper rotation: flip the weakest axis when det < 0
        out[i:i + chunk] = (x @ (u @ vt) + ref_c).astype(np.float32)
    return out


def bond_lengths(xyz: np.ndarray) -> np.ndarray:
    """Consecutive-atom distances; xyz (n_frames, n_atoms, 3) nm -> (n_frames, n_atoms - 1) nm."""
    xyz = np.asarray(xyz)
    return np.linalg.norm(np.diff(xyz, axis=1), axis=-1)


@torch.no_grad()
def project_bonds_(x: torch.Tensor, lengths: torch.Tensor, n_iter: int = 3) -> torch.Tensor:
    """In place: move atoms minimally so that bond ``i`` (atoms i, i+1) has length ``lengths[..., i]``.

    Each iteration is one Newton step of the constrained projection with equal masses: the
    minimal-norm displacement ``dx = J^T lam`` that zeroes the linearised bond errors ``g``, with
    ``(J J^T) lam = -g`` a tridiagonal system per frame (diagonal 2, off-diagonals ``-u_i . u_{i+1}``
    of the unit bond vectors) solved by elimination along the chain. Convergence is quadratic:
    measured on random 20-atom chains with bonds 0.02 and 0.06 nm off on average, the largest
    residual after 1, 2, 3 iterations is 0.008 / 4e-5 / 3e-7 nm and 0.05 / 1e-3 / 1e-6 nm. The
    corrections are internal forces: the centroid does not move. Cost on one idle core: about 15 ms
    per 16,384 frames of 20 atoms (1e6 frames in about 1 s).

    Parameters
    ----------
    x : torch.Tensor, shape (n_frames, n_atoms, 3), nm
    lengths : torch.Tensor, shape (n_frames, n_atoms - 1) or (n_atoms - 1,), nm
    n_iter : int

    Returns
    -------
    x : the same tensor.
    """
    n_frames, n_atoms = x.shape[:2]
    nb = n_atoms - 1
    if nb < 1:
        return x
    # coordinate-major layout (xyz, atom, frame): every operation below runs over contiguous rows of
    # frames (a norm over a middle axis of length 3 is slow in torch: 30 ms per 16,384 frames)
    y = x.permute(2, 1, 0).contiguous()                                # (3, n_atoms, n_frames)
    target = lengths.expand(n_frames, nb).t().contiguous()            # (nb, n_frames)
    for _ in range(n_iter):
        d = y[:, 1:] - y[:, :-1]                                       # (3, nb, n_frames)
        r = (d[0] * d[0]).add_(d[1] * d[1]).add_(d[2] * d[2]).sqrt_().clamp_min_(1e-6)   # (nb, n_frames)
        u = d.div_(r)
        lam = target - r                                               # -g, then the multipliers
        off = (u[:, 1:] * u[:, :-1]).sum(0).neg_()                     # (nb - 1, n_frames)
        # tridiagonal elimination (Thomas); diagonally dominant (|off| <= 1 < 2), no pivoting
        cp = torch.empty_like(r)
        lam[0].div_(2.0)
        if nb > 1:
            torch.div(off[0], 2.0, out=cp[0])
        for i in range(1, nb):
            denom = 2.0 - off[i - 1] * cp[i - 1]
            if i < nb - 1:
                torch.div(off[i], denom, out=cp[i])
            lam[i].sub_(off[i - 1] * lam[i - 1]).div_(denom)
        for i in range(nb - 2, -1, -1):
            lam[i].sub_(cp[i] * lam[i + 1])
        f = u.mul_(lam)                                                # (3, nb, n_frames)
        y[:, 1:] += f
        y[:, :-1] -= f
    x.copy_(y.permute(2, 1, 0))
    return x


def project_bonds(xyz: np.ndarray, lengths, n_iter: int = 3) -> np.ndarray:
    """:func:`project_bonds_` on a copy; xyz (n_frames, n_atoms, 3) nm; lengths (n_atoms - 1,) or per frame."""
    x = torch.as_tensor(np.array(xyz, dtype=np.float32))
    ln = torch.as_tensor(np.asarray(lengths, dtype=np.float32))
    return project_bonds_(x, ln, n_iter).numpy()


@functools.lru_cache(maxsize=16)
def chain_constraints(n_atoms: int) -> tuple[np.ndarray, int, np.ndarray]:
    """The constraints of a chain with fixed bonds and fixed ``i, i+2`` distances, in banded order.

    Constraint ``2k`` is the bond ``(k, k+1)``, constraint ``2k + 1`` the distance ``(k, k+2)``; in this
    order the matrix ``J J^T`` of their gradients is banded.

    Returns
    -------
    pairs : np.ndarray, shape (2 n_atoms - 3, 2), int
        The atom pair ``(i, j)``, ``i < j``, of each constraint.
    bandwidth : int
        Largest ``|p - q|`` with ``(J J^T)[p, q] != 0`` (4 from 4 atoms on).
    signs : np.ndarray, shape (bandwidth + 1, 2 n_atoms - 3), float32
        ``(J J^T)[p, p - d] = signs[d, p] * (e_p . e_{p-d})`` with ``e`` the unit vector of each pair:
        +1 when the two pairs share their first or their last atom, -1 when the last atom of one is
        the first of the other, 0 when they share none (``signs[0]`` is 2, the diagonal).

    Cached per ``n_atoms`` (the arrays are read-only): the decoders call it for every chunk.
    """
    pairs = []
    for k in range(n_atoms - 1):
        pairs.append((k, k + 1))
        if k + 2 < n_atoms:
            pairs.append((k, k + 2))
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    n = len(pairs)
    s = np.zeros((n, n), dtype=np.float32)
    for p, (a, b) in enumerate(pairs):
        for q, (c, d) in enumerate(pairs):
            s[p, q] = int(b == d) + int(a == c) - int(b == c) - int(a == d)
    off = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    bandwidth = int(off[s != 0].max()) if n else 0
    signs = np.zeros((bandwidth + 1, n), dtype=np.float32)
    for d in range(bandwidth + 1):
        signs[d, d:] = np.diagonal(s, -d)
    pairs.setflags(write=False)
    signs.setflags(write=False)
    return pairs, bandwidth, signs


#: frames per block of :func:`project_chain_` on a CPU (larger inputs are projected block by block):
#: the fastest per frame, measured 0.78 us of CPU per frame and Gauss-Newton step (20 atoms), within 5 %
#: from 4,096 to 16,384 frames, 1.0 us at 2,048, 1.6 us at 1,024 (the cost of each of the ~700 row
#: operations per step, ~1.5 us, dominates); its work arrays take 24 MB of float32 per thread
CHAIN_BLOCK = 8192
#: blocks of at most this many frames solve ``J J^T`` as dense matrices (batched Cholesky, ~6.5 us per
#: frame and step) instead of the band solver, whose ~700 row operations cost ~1.2 ms per step whatever
#: the number of frames (measured crossover ~150 frames)
CHAIN_DENSE_FRAMES = 128
#: the nonzero entries of the band of ``J J^T`` (:func:`chain_constraints`): ``(k, first row, row step)``
#: of the ``(J J^T)(p, p - k)``, +1 times ``e_p . e_{p-k}`` for ``k = 1``, -1 times it for ``k >= 2``
_BAND_ROWS = ((1, 1, 1), (2, 2, 2), (3, 3, 1), (4, 5, 2))


@functools.lru_cache(maxsize=16)
def _chain_ldl_plan(n_atoms: int) -> tuple[int, int, tuple, tuple]:
    """Symbolic banded LDL^T of the chain constraints (:func:`chain_constraints`): which entries of
    ``L`` are nonzero (the band of ``J J^T`` without its structural zeros, plus the fill-in).

    Returns
    -------
    bw, n : int
        Bandwidth and number of constraints.
    rows : tuple
        Per row ``p``: ``((k, fills), ...)`` for each nonzero ``L(p, p - k)``, ``k`` descending, with
        ``fills`` the pairs ``(p - j, q - j)`` of the ``j < q = p - k`` where ``L(p, j) L(q, j) != 0``.
    cols : tuple
        Per column ``q``: the ``k`` of the nonzero ``L(q + k, q)`` (back substitution).
    """
    pairs, bw, signs = chain_constraints(n_atoms)
    n = len(pairs)
    for k, start, step in _BAND_ROWS[:bw]:                             # the band as the solver builds it
        expect = np.zeros(n)
        expect[start::step] = 1.0 if k == 1 else -1.0
        if not np.array_equal(signs[k], expect):
            raise AssertionError(f"the band of J J^T is not the one _BAND_ROWS describes (k = {k})")
    nz = np.zeros((n, n), dtype=bool)                                  # nz[p, q]: L(p, q) != 0, q < p
    for k in range(1, bw + 1):
        nz[np.arange(k, n), np.arange(n - k)] = signs[k, k:] != 0
    for q in range(n):                                                 # fill-in, column by column
        for p in range(q + 1, min(n, q + bw + 1)):
            nz[p, q] |= any(nz[p, j] and nz[q, j] for j in range(max(0, p - bw), q))
    rows = tuple(tuple((k, tuple((p - j, p - k - j) for j in range(max(0, p - bw), p - k)
                                 if nz[p, j] and nz[p - k, j]))
                       for k in range(min(p, bw), 0, -1) if nz[p, p - k]) for p in range(n))
    cols = tuple(tuple(k for k in range(1, min(n - 1 - q, bw) + 1) if nz[q + k, q]) for q in range(n))
    return bw, n, rows, cols


class _ChainWork:
    """Work arrays of :func:`project_chain_` for up to ``capacity`` frames, reused from call to call
    (one set per thread, dtype and atom count, on the CPU): fresh arrays of several MB cost page
    faults at every call (measured 3.5 ms per pair of 6 MB arrays, as much as a Gauss-Newton step)."""

    def __init__(self, n_atoms: int, capacity: int, dtype, device):
        bw, n, _, _ = _chain_ldl_plan(n_atoms)
        new = functools.partial(torch.empty, dtype=dtype, device=device)
        self.n_atoms, self.capacity, self.frames, self.program = n_atoms, capacity, None, None
        self.y = new((3, n_atoms, capacity))                           # coordinates, (xyz, atom, frame)
        self.target = new((n, capacity))
        self.d = new((3, n, capacity))                                 # pair vectors, then unit vectors
        self.nx = new((n, capacity))                                   # -(x component of the unit vectors)
        self.r = new((n, capacity))                                    # pair distances
        self.rhs = new((n, capacity))                                  # -g, then the multipliers
        self.band = new((bw + 1, n, capacity))                         # (J J^T)(p, p - k), then W
        self.low = new((bw + 1, n, capacity))                          # L(p, p - k)
        self.inv = new((n, capacity))                                  # 1 / D(p)

    def ldl_program(self, f: int):
        """The row operations of the band solver on ``f`` frames as lists of row views (rebuilt when
        ``f`` changes; indexing inside the loops would cost more than the arithmetic).

        Returns ``(factor, back)``: ``factor[p] = (D(p), 1/D(p), lam(p), entries)`` with ``entries``
        ``(W(p, q), L(p, q), 1/D(q), lam(q), fills)`` for each nonzero ``L(p, q = p - k)`` and ``fills``
        the row pairs ``(W(p, j), L(q, j))``; ``back[q] = (lam(q), ((L(q + k, q), lam(q + k)), ...))``.
        """
        if self.frames != f:
            bw, n, plan, cols = _chain_ldl_plan(self.n_atoms)
            c = self.capacity
            B, L, inv, lam = (a.view(-1, c)[:, :f].unbind(0) for a in (self.band, self.low, self.inv, self.rhs))
            factor = tuple((B[p], inv[p], lam[p],
                            tuple((B[k * n + p], L[k * n + p], inv[p - k], lam[p - k],
                                   tuple((B[a * n + p], L[b * n + p - k]) for a, b in fills))
                                  for k, fills in row))
                           for p, row in enumerate(plan))
            back = tuple((lam[q], tuple((L[k * n + q + k], lam[q + k]) for k in cols[q])) for q in range(n - 1))
            self.program, self.frames = (factor, back[::-1]), f
        return self.program


_CHAIN_WORK = threading.local()


def _chain_work(n_atoms: int, frames: int, dtype, device) -> _ChainWork:
    """This thread's work arrays for ``frames`` frames on a CPU (grown when too small); new ones elsewhere."""
    if device.type != "cpu":                                           # the caching allocator reuses memory
        return _ChainWork(n_atoms, frames, dtype, device)
    cache = _CHAIN_WORK.__dict__.setdefault("work", {})
    key = (n_atoms, dtype, torch.is_inference_mode_enabled())   # inference tensors are no use outside it
    w = cache.get(key)
    if w is None or w.capacity < frames:
        w = cache[key] = _ChainWork(n_atoms, max(frames, min(CHAIN_BLOCK, 1024)), dtype, device)
    return w


@torch.no_grad()
def project_chain_(x: torch.Tensor, bonds: torch.Tensor, seconds: torch.Tensor, n_iter: int = 8,
                   tol: float = 1e-5, damping: float = 1e-6, stop_early: bool = True) -> torch.Tensor:
    """In place: move atoms minimally so that bonds ``(i, i+1)`` and distances ``(i, i+2)`` are prescribed.

    Fixing the bonds and the ``i, i+2`` distances fixes the bond angles (law of cosines); the torsions,
    and so the conformation, stay free. Gauss-Newton steps of the constrained projection with equal
    masses, as :func:`project_bonds_`: each step is the minimal-norm displacement ``dx = J^T lam`` that
    zeroes the linearised errors of all ``2 n_atoms - 3`` constraints, ``(J J^T + damping) lam = -g``, a
    symmetric positive definite band matrix (bandwidth 4, :func:`chain_constraints`) factorised per
    frame by a banded LDL^T along the chain (its structural zeros skipped), batched over frames: one
    torch operation per entry of the factor, on a row of frames. The frames are projected in blocks of
    :data:`CHAIN_BLOCK`; a block of at most :data:`CHAIN_DENSE_FRAMES` frames (the few frames that need
    more steps) solves the same system as dense matrices instead (batched Cholesky), which costs less
    than the row operations there. Iterations stop early once every frame of a block is within ``tol``
    (``stop_early``; without it each frame's result does not depend on the other frames, which the
    decoders need for output independent of chunking). ``damping`` keeps the system regular for a
    straight angle (a bond and its ``i, i+2`` distance parallel). Frames that are not within ``tol``
    after ``n_iter`` steps (or became NaN) are reported, not fixed: the caller decides (the decoders
    fall back to bonds only).

    Convergence, measured on 8,192 random 20-atom chains with Cartesian noise of 0.03 nm and every
    angle target moved by 0.2 rad (sd): the median bond error after 2, 3, 4 steps is 2.5e-3, 1.5e-5,
    1e-7 nm (quadratic), but the frames with the largest corrections take longer: 19 %, 1 %, 0.2 %
    and 0.05 % of the frames are above 1e-4 nm after 3, 4, 5 and 6 steps. On the cpu profile's flow
    decoder 9.8 %, 1.1 %, 0.2 % and 0.02 % after 4, 5, 6 and 8 steps. Cost per step on one core, 20
    atoms, measured on flow-decoded chains (interleaved with the previous implementation, which built
    new arrays and indexed rows inside the loops at every call): 6.6 ms for 8,192 frames (previously
    12.3 ms), 1.6 ms for 1,000 (4.3 ms), 0.27 ms for 5 (3.7 ms); see :class:`lss.decoder.Decoder`
    (``fixed_angles``). The work arrays are kept from call to call, one set per thread (24 MB for a
    block of 20-atom frames).

    Parameters
    ----------
    x : torch.Tensor, shape (n_frames, n_atoms, 3), float32, nm
    bonds : torch.Tensor, shape (n_frames, n_atoms - 1) or (n_atoms - 1,), nm
        Length of bond ``(i, i+1)``.
    seconds : torch.Tensor, shape (n_frames, n_atoms - 2) or (n_atoms - 2,), nm
        Distance ``(i, i+2)``; with bonds ``b_i``, ``b_{i+1}`` and angle ``theta_i`` at atom ``i + 1``:
        ``sqrt(b_i^2 + b_{i+1}^2 - 2 b_i b_{i+1} cos theta_i)``.
    n_iter : int
        Most Gauss-Newton steps.
    tol : float, nm
        Largest constraint error of a converged frame.
    damping : float
        Added to the diagonal of ``J J^T`` (whose diagonal is 2).
    stop_early : bool
        Stop once every frame of a block is within ``tol``; False: always ``n_iter`` steps.

    Returns
    -------
    converged : torch.Tensor, shape (n_frames,), bool
        Frames whose every constraint is met to ``tol``; the others hold the last iterate.
    """
    n_frames, n_atoms = x.shape[:2]
    if n_atoms < 3:
        if n_atoms == 2:
            project_bonds_(x, bonds)
        return torch.ones(n_frames, dtype=torch.bool, device=x.device)
    bonds = bonds.expand(n_frames, n_atoms - 1)
    seconds = seconds.expand(n_frames, n_atoms - 2)
    block = n_frames if x.device.type != "cpu" else CHAIN_BLOCK
    ok = torch.empty(n_frames, dtype=torch.bool, device=x.device)
    for i in range(0, n_frames, block):
        j = min(n_frames, i + block)
        ok[i:j] = _project_chain_block_(x[i:j], bonds[i:j], seconds[i:j], n_iter, tol, damping, stop_early)
    return ok


def _project_chain_block_(x, bonds, seconds, n_iter, tol, damping, stop_early) -> torch.Tensor:
    """:func:`project_chain_` on one block of frames (arguments as there, ``bonds`` and ``seconds`` per frame)."""
    f, n_atoms = x.shape[:2]
    bw, n, _, _ = _chain_ldl_plan(n_atoms)
    dev, dt = x.device, x.dtype
    w = _chain_work(n_atoms, f, dt, dev)
    # coordinate-major layout (xyz, atom, frame), as project_bonds_: every operation below runs over
    # contiguous rows of frames; slices, not index_select (10x slower)
    y, target, d, nx, r, rhs, band = (a[..., :f] for a in (w.y, w.target, w.d, w.nx, w.r, w.rhs, w.band))
    y.copy_(x.permute(2, 1, 0))
    target[0::2] = bonds.t()
    target[1::2] = seconds.t()
    dense = f <= CHAIN_DENSE_FRAMES
    if dense:
        pq = [(p, p - k) for k in range(1, bw + 1) for p in range(k, n)]
        mat_p, mat_q = torch.tensor(pq, device=dev).t()                # the band below the diagonal
        mat = torch.zeros((f, n, n), dtype=dt, device=dev)
        mat.diagonal(dim1=1, dim2=2).fill_(2.0 + damping)
    else:
        factor, back = w.ldl_program(f)
        inv = w.inv[:, :f]

    def residual():
        torch.sub(y[:, 1:], y[:, :-1], out=d[:, 0::2])                 # bonds
        torch.sub(y[:, 2:], y[:, :-2], out=d[:, 1::2])                 # i, i+2
        torch.mul(d[0], d[0], out=r).addcmul_(d[1], d[1]).addcmul_(d[2], d[2]).sqrt_().clamp_min_(1e-6)
        return torch.sub(target, r, out=rhs)                           # -g

    for _ in range(n_iter):
        residual()
        if stop_early and float(rhs.abs().max()) < tol:
            break
        e = d.div_(r)                                                  # unit vectors (3, n, f)
        # (J J^T)(p, p - k) = sign e_p . e_{p-k} (chain_constraints): +1 for k = 1, -1 for k >= 2, and
        # structurally 0 for k = 2, p odd (two i, i+2 distances) and k = 4, p even (two bonds)
        torch.neg(e[0], out=nx)
        ex, ey, ez = e
        for k, start, step in _BAND_ROWS[:bw]:
            s, sq = slice(start, None, step), slice(start - k, n - k, step)
            xp, v = (ex, 1.0) if k == 1 else (nx, -1.0)
            torch.mul(xp[s], ex[sq], out=band[k, s]).addcmul_(ey[s], ey[sq], value=v).addcmul_(ez[s], ez[sq], value=v)
        if dense:
            for k, start, step in _BAND_ROWS[:bw]:
                if step == 2:
                    band[k, start - 1::2] = 0.0
            # the lower triangle, all that the Cholesky factorisation reads
            mat[:, mat_p, mat_q] = torch.cat([band[k, k:] for k in range(1, bw + 1)]).t()
            chol = torch.linalg.cholesky_ex(mat)[0]
            rhs.copy_(torch.cholesky_solve(rhs.t().unsqueeze(-1), chol).squeeze(-1).t())
        else:
            # banded LDL^T with the forward substitution L z = -g: W(p, p-k) = L(p, p-k) D(p-k)
            # overwrites (J J^T)(p, p-k), D(p) its diagonal
            band[0].fill_(2.0 + damping)
            if bw >= 2:
                band[2, 3::2] = 0.0                                    # fill-in
            for dp, inv_p, lp, entries in factor:
                for wpq, lpq, inv_q, lq, fills in entries:
                    for a, b in fills:                                 # W(p, j) L(q, j)
                        wpq.addcmul_(a, b, value=-1.0)
                    torch.mul(wpq, inv_q, out=lpq)
                    dp.addcmul_(wpq, lpq, value=-1.0)
                    lp.addcmul_(lpq, lq, value=-1.0)
                torch.reciprocal(dp, out=inv_p)
            rhs.mul_(inv)                                              # D^-1 z
            for lq, terms in back:                                     # L^T lam = D^-1 z
                for lpq, lp in terms:
                    lq.addcmul_(lpq, lp, value=-1.0)
        # dx = J^T lam: the two atoms of each pair move along its unit vector, in opposite directions
        y[:, 1:].addcmul_(e[:, 0::2], rhs[0::2])
        y[:, :-1].addcmul_(e[:, 0::2], rhs[0::2], value=-1.0)
        y[:, 2:].addcmul_(e[:, 1::2], rhs[1::2])
        y[:, :-2].addcmul_(e[:, 1::2], rhs[1::2], value=-1.0)
    residual()
    x.copy_(y.permute(2, 1, 0))
    return rhs.abs_().amax(0) <= tol


def chain_angles(x: torch.Tensor) -> torch.Tensor:
    """Bond angles ``(i, i+1, i+2)`` (rad) of chains (n_frames, n_atoms, 3), nm -> (n_frames, n_atoms - 2).

    Computed in the coordinate-major layout (xyz, atom, frame), as :func:`project_chain_`: sums over an
    axis of length 3 are slow in torch (measured on 8,192 frames of 20 atoms: 3.2 ms, 1.4 ms this way).
    The result is the transpose of a contiguous (n_atoms - 2, n_frames) tensor.
    """
    y = x.permute(2, 1, 0).contiguous()                                # (3, n_atoms, n_frames)
    u = y[:, :-2] - y[:, 1:-1]
    v = y[:, 2:] - y[:, 1:-1]
    dot = (u[0] * v[0]).addcmul_(u[1], v[1]).addcmul_(u[2], v[2])
    nu = (u[0] * u[0]).addcmul_(u[1], u[1]).addcmul_(u[2], u[2]).sqrt_()
    nv = (v[0] * v[0]).addcmul_(v[1], v[1]).addcmul_(v[2], v[2]).sqrt_()
    cos = dot.div_(nu.mul_(nv).clamp_min_(1e-12))
    return cos.clamp_(-1.0, 1.0).arccos_().t()


def second_distances(bonds: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Distances ``(i, i+2)`` (nm) from bonds (..., n_atoms - 1) nm and angles (..., n_atoms - 2) rad."""
    b1, b2 = bonds[..., :-1], bonds[..., 1:]
    return (b1 * b1 + b2 * b2 - 2 * b1 * b2 * torch.cos(angles)).clamp_min(0).sqrt()


def project_chain(xyz: np.ndarray, bonds, angles, n_iter: int = 8, tol: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """:func:`project_chain_` on a copy, with angles instead of ``i, i+2`` distances.

    Parameters
    ----------
    xyz : np.ndarray, shape (n_frames, n_atoms, 3), nm
    bonds : array, shape (n_atoms - 1,) or (n_frames, n_atoms - 1), nm
    angles : array, shape (n_atoms - 2,) or (n_frames, n_atoms - 2), rad

    Returns
    -------
    xyz : np.ndarray, shape (n_frames, n_atoms, 3), float32, nm
    converged : np.ndarray, shape (n_frames,), bool
    """
    x = torch.as_tensor(np.array(xyz, dtype=np.float32))
    b = torch.as_tensor(np.asarray(bonds, dtype=np.float32)).expand(len(x), x.shape[1] - 1)
    a = torch.as_tensor(np.asarray(angles, dtype=np.float32))
    ok = project_chain_(x, b, second_distances(b, a), n_iter=n_iter, tol=tol)
    return x.numpy(), ok.numpy()


# -------------------------------------------------------------------------------- input checks
def as_coords(coords, name: str = "coords") -> list[np.ndarray]:
    """Structures as a list of float32 arrays (n_frames, n_atoms, 3), nm, one per trajectory.

    Accepts one array (n_frames, n_atoms, 3), a stack (n_traj, n_frames, n_atoms, 3) or a list; a bad
    shape, an empty input, NaN/inf or trajectories with different atom counts raise ``ValueError``
    naming ``name``.
    """
    if isinstance(coords, np.ndarray) or hasattr(coords, "shape"):
        coords = np.asarray(coords)
        coords = [coords] if coords.ndim == 3 else list(coords) if coords.ndim == 4 else [coords]
    out = []
    for i, x in enumerate(coords):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 3 or x.shape[2] != 3 or x.shape[1] < 1:
            raise ValueError(f"{name}[{i}] must have shape (n_frames, n_atoms, 3), got {x.shape}")
        if len(x) < 1:
            raise ValueError(f"{name}[{i}] has no frames")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name}[{i}] contains NaN or inf values")
        out.append(x)
    if not out:
        raise ValueError(f"{name} is empty")
    atoms = {x.shape[1] for x in out}
    if len(atoms) != 1:
        raise ValueError(f"{name}: trajectories have different numbers of atoms {sorted(atoms)}")
    return out


def as_coords_and_latent(coords, latent) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Training pairs of a decoder: structures (:func:`as_coords`) and latent points (n_frames, m) of
    the same frames, trajectory by trajectory; mismatched counts raise ``ValueError``."""
    coords = as_coords(coords, "coords")
    latent = as_trajs(latent, "latent", min_len=1, stack=True)
    if len(coords) != len(latent):
        raise ValueError(f"latent has {len(latent)} trajectories but coords has {len(coords)}")
    for i, (x, c) in enumerate(zip(coords, latent)):
        if len(x) != len(c):
            raise ValueError(f"latent[{i}] has {len(c)} frames but coords[{i}] has {len(x)}")
    return coords, latent


def choose_reference(coords: list[np.ndarray], reference, mode: str) -> tuple[np.ndarray, str]:
    """The structure a decoder superposes on: ``reference`` when given (``'given'``), else the first
    frame (``mode='first'``); ``mode='native'`` without a reference is a ``ValueError``."""
    n_atoms = coords[0].shape[1]
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float32)
        if ref.shape != (n_atoms, 3) or not np.all(np.isfinite(ref)):
            raise ValueError(f"reference must be a finite array of shape ({n_atoms}, 3), got {ref.shape}")
        return ref, "given"
    if mode == "native":
        raise ValueError("reference: reference='native' needs the native structure; pass "
                         "fit(coords, latent, reference=xyz_native) or use reference='first'")
    return coords[0][0].copy(), "first"


# ------------------------------------------------------------------ ensembles of structures
def _xyz(x, name: str, dtype=np.float32) -> np.ndarray:
    """C-alpha coordinates in any accepted form -> one ``dtype`` array ``(n_frames, n_atoms, 3)``, nm.

    The one coercer of structures given as an array (one frame, frames, or a stack), an
    mdtraj.Trajectory, or a list of them (laid end to end); ``ValueError`` naming ``name``.
    """
    import mdtraj as md

    if isinstance(x, md.Trajectory):
        arr = x.xyz
    elif isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{name} is empty")
        parts = [_xyz(t, f"{name}[{i}]", dtype) for i, t in enumerate(x)]
        if len({p.shape[1] for p in parts}) != 1:
            raise ValueError(f"{name}: trajectories have different numbers of atoms")
        arr = np.concatenate(parts)
    else:
        arr = np.asarray(x)
    arr = np.asarray(arr, dtype=dtype)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4:
        arr = arr.reshape(-1, *arr.shape[2:])
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (n_frames, n_atoms, 3) in nm, got {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values")
    return arr


_TOPOLOGIES: dict[int, object] = {}


def _ca_topology(n_atoms: int):
    """A C-alpha-only mdtraj topology of ``n_atoms`` residues (one chain), for geometry on bare arrays."""
    import mdtraj as md

    if n_atoms not in _TOPOLOGIES:
        top = md.Topology()
        chain = top.add_chain()
        for i in range(n_atoms):
            top.add_atom("CA", md.element.carbon, top.add_residue("ALA", chain, resSeq=i + 1))
        _TOPOLOGIES[n_atoms] = top
    return _TOPOLOGIES[n_atoms]


def _as_mdtraj(x, name: str):
    import mdtraj as md

    if isinstance(x, md.Trajectory):
        return x
    arr = _xyz(x, name)
    return md.Trajectory(arr, _ca_topology(arr.shape[1]))


def radius_of_gyration(xyz, masses=None) -> np.ndarray:
    """Radius of gyration of each frame (``mdtraj.compute_rg``).

    Parameters
    ----------
    xyz : array (n_frames, n_atoms, 3) nm, mdtraj.Trajectory, list of them, or a stack
    masses : array (n_atoms,), optional
        Weights; default equal (for C-alpha models every bead counts the same).

    Returns
    -------
    np.ndarray (n_frames,), nm
    """
    import mdtraj as md

    return np.asarray(md.compute_rg(_as_mdtraj(xyz, "xyz"), masses=masses), dtype=np.float64)


def rmsd_to_reference(xyz, ref_xyz, atom_indices=None) -> np.ndarray:
    """RMSD of each frame to one reference structure after optimal superposition (``mdtraj.rmsd``).

    Parameters
    ----------
    xyz : array (n_frames, n_atoms, 3) nm, mdtraj.Trajectory, list of them, or a stack
    ref_xyz : array (n_atoms, 3) or (1, n_atoms, 3) nm, or an mdtraj.Trajectory (its first frame)
        E.g. the native C-alpha structure (2JOF).
    atom_indices : array of int, optional
        Atoms to superpose and compare (default all).

    Returns
    -------
    np.ndarray (n_frames,), nm
    """
    import mdtraj as md

    t = _as_mdtraj(xyz, "xyz")
    r = _as_mdtraj(ref_xyz, "ref_xyz")
    if r.n_atoms != t.n_atoms:
        raise ValueError(f"ref_xyz has {r.n_atoms} atoms, xyz has {t.n_atoms}")
    return np.asarray(md.rmsd(t, r, 0, atom_indices=atom_indices), dtype=np.float64)


def nearest_rmsd(xyz, pool) -> np.ndarray:
    """RMSD of each frame of ``xyz`` to its nearest frame of ``pool`` (optimal superposition, ``mdtraj.rmsd``).

    The copying test of a generative model: a decoder that returns training frames scores 0, held-out
    MD frames score what new MD does. Cost: one ``mdtraj.rmsd`` call over the whole pool per frame.

    Parameters
    ----------
    xyz : array (n_frames, n_atoms, 3) nm
    pool : array (n_pool, n_atoms, 3) nm, e.g. the training frames

    Returns
    -------
    np.ndarray (n_frames,), nm
    """
    import mdtraj as md

    t = _as_mdtraj(xyz, "xyz")
    p = _as_mdtraj(pool, "pool")
    if p.n_atoms != t.n_atoms:
        raise ValueError(f"pool has {p.n_atoms} atoms, xyz has {t.n_atoms}")
    p.center_coordinates()
    t.center_coordinates()
    return np.array([md.rmsd(p, t, i, precentered=True).min() for i in range(t.n_frames)], dtype=np.float64)


def pair_rmsd(xyz_a, xyz_b) -> np.ndarray:
    """RMSD between frame ``k`` of ``xyz_a`` and frame ``k`` of ``xyz_b`` after optimal superposition.

    The same numbers as ``mdtraj.rmsd(a[k], b[k])`` (tested), computed for all pairs at once by the
    Kabsch method (batched SVD of the 3x3 correlation matrices, with the reflection correction);
    ``mdtraj.rmsd`` superposes onto one reference frame per call, which costs milliseconds per pair.

    Parameters
    ----------
    xyz_a, xyz_b : array (n_pairs, n_atoms, 3), nm

    Returns
    -------
    np.ndarray (n_pairs,), nm
    """
    a = np.asarray(xyz_a, dtype=np.float64)
    b = np.asarray(xyz_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"xyz_a and xyz_b must both have shape (n_pairs, n_atoms, 3), got {a.shape}, {b.shape}")
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    h = np.einsum("nki,nkj->nij", a, b)
    u, s, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    s[:, 2] *= d
    msd = ((a ** 2).sum((1, 2)) + (b ** 2).sum((1, 2)) - 2 * s.sum(1)) / a.shape[1]
    return np.sqrt(np.clip(msd, 0.0, None))


def ensemble_rmsd(xyz_a, xyz_b, n_pairs: int = 1000, rng=None, return_all: bool = False):
    """Mean RMSD between random pairs of structures, one from each ensemble (superposed pairwise).

    The paper's "relative C-alpha RMSD" of MD and LSS structures in a region of the latent space:
    ``n_pairs`` frames ``i`` of ``xyz_a`` and ``j`` of ``xyz_b`` are drawn uniformly with replacement
    and each pair is superposed (:func:`pair_rmsd`, equal to ``mdtraj.rmsd``). Compare with
    ``ensemble_rmsd(a, a)``, the spread within one ensemble, which is the floor of this number.

    Parameters
    ----------
    xyz_a, xyz_b : array (n_frames, n_atoms, 3) nm, mdtraj.Trajectory or list of them
        The two ensembles (e.g. MD and LSS frames selected by :func:`select_region`).
    n_pairs : int
        Number of random pairs.
    rng : numpy.random.Generator or int, optional
        Random source (or its seed).
    return_all : bool
        Return the array (n_pairs,) of pair RMSDs instead of their mean.

    Returns
    -------
    float (nm), or np.ndarray (n_pairs,) nm
    """
    a, b = _xyz(xyz_a, "xyz_a"), _xyz(xyz_b, "xyz_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"xyz_a has {a.shape[1]} atoms, xyz_b has {b.shape[1]}")
    if int(n_pairs) != n_pairs or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    rng = np.random.default_rng(rng)
    i = rng.integers(len(a), size=int(n_pairs))
    j = rng.integers(len(b), size=int(n_pairs))
    out = np.concatenate([pair_rmsd(a[i[k:k + 50_000]], b[j[k:k + 50_000]]) for k in range(0, len(i), 50_000)])
    return out if return_all else float(out.mean())


def ca_distances(xyz, min_separation: int = 1, chunk: int = 100_000) -> np.ndarray:
    """All C-alpha pair distances ``|r_i - r_j|`` with ``j - i >= min_separation`` (TICA features).

    Parameters
    ----------
    xyz : array (n_frames, n_atoms, 3) nm, mdtraj.Trajectory, list of them, or a stack
        MD or decoded LSS structures.
    min_separation : int
        Smallest sequence separation ``j - i`` (1: all ``n (n - 1) / 2`` pairs).
    chunk : int
        Frames per step (memory stays bounded).

    Returns
    -------
    np.ndarray (n_frames, n_pairs), float32, nm
        Pairs ``(i, j)`` in row-major order of ``i < j``.
    """
    x = _xyz(xyz, "xyz")
    n = x.shape[1]
    if int(min_separation) != min_separation or not 1 <= min_separation < n:
        raise ValueError(f"min_separation must be an integer in [1, {n}), got {min_separation!r}")
    import mdtraj as md

    i, j = np.triu_indices(n, k=int(min_separation))
    pairs = np.stack([i, j], 1)
    out = np.empty((len(x), len(i)), dtype=np.float32)
    for a in range(0, len(x), int(chunk)):
        # mdtraj's C loop: the same numbers as norm(x_i - x_j), measured 15x faster (0.14 s of CPU for
        # 80,000 frames x 190 pairs) without the (n, n_pairs, 3) temporaries
        t = _writable(md.Trajectory(x[a:a + int(chunk)], _ca_topology(n)))
        out[a:a + len(t)] = md.compute_distances(t, pairs, periodic=False)
    return out


# ------------------------------------------------------------- internal coordinates, native contacts
def _writable(t):
    """mdtraj's C geometry needs writable coordinates (memory-mapped or read-only arrays are copied)."""
    import mdtraj as md

    return t if t.xyz.flags.writeable else md.Trajectory(np.array(t.xyz), t.topology)


def ca_angles(xyz) -> np.ndarray:
    """C-alpha pseudo-bond angles ``(i, i+1, i+2)`` of each frame (``mdtraj.compute_angles``).

    Parameters
    ----------
    xyz : array (n_frames, n_atoms, 3) nm, mdtraj.Trajectory, list of them, or a stack

    Returns
    -------
    np.ndarray (n_frames, n_atoms - 2), float32, rad in [0, pi]
    """
    import mdtraj as md

    t = _writable(_as_mdtraj(xyz, "xyz"))
    i = np.arange(t.n_atoms - 2)
    return md.compute_angles(t, np.stack([i, i + 1, i + 2], 1), periodic=False).astype(np.float32)


def ca_torsions(xyz) -> np.ndarray:
    """C-alpha pseudo-torsions ``(i, i+1, i+2, i+3)`` of each frame (``mdtraj.compute_dihedrals``).

    The torsion of four consecutive C-alpha atoms is the chain's backbone conformation at residue
    level (about +50 degrees in an alpha-helix, about -170 degrees in a strand).

    Parameters
    ----------
    xyz : array (n_frames, n_atoms, 3) nm, mdtraj.Trajectory, list of them, or a stack

    Returns
    -------
    np.ndarray (n_frames, n_atoms - 3), float32, rad in [-pi, pi]
    """
    import mdtraj as md

    t = _writable(_as_mdtraj(xyz, "xyz"))
    i = np.arange(t.n_atoms - 3)
    return md.compute_dihedrals(t, np.stack([i, i + 1, i + 2, i + 3], 1), periodic=False).astype(np.float32)


def native_contact_pairs(native, cutoff: float = 0.8, min_separation: int = 3) -> np.ndarray:
    """Native contacts of any C-alpha structure: pairs ``(i, j)``, ``j - i >= min_separation``, closer
    than ``cutoff`` nm in ``native`` (:func:`lss.gomodel.native_contacts` is this with the 2JOF structure).

    Parameters
    ----------
    native : array (n_atoms, 3) or (1, n_atoms, 3) nm, or an mdtraj.Trajectory (its first frame)
    cutoff : float
        nm.
    min_separation : int

    Returns
    -------
    np.ndarray (n_contacts, 2), int
        Atom index pairs, ``i < j``, sorted.
    """
    if not cutoff > 0:
        raise ValueError(f"cutoff must be a positive distance in nm, got {cutoff!r}")
    if int(min_separation) != min_separation or min_separation < 1:
        raise ValueError(f"min_separation must be a positive integer, got {min_separation!r}")
    ref = _xyz(native, "native")[0].astype(np.float64)
    i, j = np.triu_indices(len(ref), k=int(min_separation))
    d = np.linalg.norm(ref[i] - ref[j], axis=1)
    return np.stack([i, j], 1)[d < cutoff]


def fraction_native_contacts(xyz, native, cutoff: float = 0.8, min_separation: int = 3, ratio: float = 1.2,
                             chunk: int = 100_000, contacts=None) -> np.ndarray:
    """Fraction Q of the native contacts (:func:`native_contact_pairs`) formed in each frame.

    A contact of native distance ``s`` is formed when ``r < ratio * s`` (float32 distances; the same
    1.2 factor as the switch of the Go model's many-body term); Q(native) = 1. The one implementation
    of Q: :func:`lss.gomodel.fraction_native_contacts` is this with the 2JOF C-alpha structure.

    Parameters
    ----------
    xyz : array (n_frames, n_atoms, 3) or (n_atoms, 3) nm, mdtraj.Trajectory, list of them, or a stack
    native : array (n_atoms, 3) nm, or an mdtraj.Trajectory
    cutoff, min_separation, ratio : see above (nm, residues, 1)
    chunk : int
        Frames per step (keeps memory flat for long trajectories).
    contacts : np.ndarray (n_contacts, 2) int, optional
        Pairs to use instead of :func:`native_contact_pairs` of ``native``.

    Returns
    -------
    np.ndarray (n_frames,), float32
    """
    x = _xyz(xyz, "xyz")
    ref = _xyz(native, "native")[0]
    if ref.shape != x.shape[1:]:
        raise ValueError(f"xyz must have shape (n_frames, {len(ref)}, 3) in nm (the atoms of native), got {x.shape}")
    c = native_contact_pairs(ref, cutoff, min_separation) if contacts is None else np.asarray(contacts, dtype=int)
    if not len(c):
        raise ValueError(f"native has no contacts closer than {cutoff} nm at separation >= {min_separation}")
    s = np.linalg.norm(ref[c[:, 0]] - ref[c[:, 1]], axis=1)
    out = np.empty(len(x), dtype=np.float32)
    for a in range(0, len(x), int(chunk)):
        r = np.linalg.norm(x[a:a + int(chunk), c[:, 0]] - x[a:a + int(chunk), c[:, 1]], axis=2)
        out[a:a + int(chunk)] = (r < ratio * s).mean(axis=1)
    return out


def time_coherence(trajs, step: int = 1, max_pairs: int = 20_000, seed: int = 0) -> dict:
    """How much consecutive frames of a trajectory resemble each other: frames ``step`` apart.

    A decoder that draws each frame independently writes trajectories whose fast motions are
    uncorrelated from one step to the next; MD's carry memory. Compared at one propagator lag
    (``step = tau`` for MD, ``1`` for an LSS trajectory).

    Parameters
    ----------
    trajs : list of array (n_frames_i, n_atoms, 3) nm, or a stack
    step : int
        Frames between the two frames of a pair.
    max_pairs : int
        At most this many pairs (drawn at random) for the RMSD.

    Returns
    -------
    dict: ``rmsd`` (n_pairs,) nm, the C-alpha RMSD between frames ``t`` and ``t + step``;
    ``rmsd_median`` nm; ``distance_acf``: the correlation of every C-alpha pair distance with itself
    ``step`` later, averaged over pairs (1: no change in a step, 0: no memory).
    """
    rng = np.random.default_rng(seed)
    trajs = [np.asarray(x, dtype=np.float32) for x in trajs]
    a = np.concatenate([x[:-step] for x in trajs if len(x) > step])
    b = np.concatenate([x[step:] for x in trajs if len(x) > step])
    pick = rng.choice(len(a), min(max_pairs, len(a)), replace=False)
    r = pair_rmsd(a[pick], b[pick])
    da, db = ca_distances(a[pick]), ca_distances(b[pick])
    da, db = da - da.mean(0), db - db.mean(0)
    acf = (da * db).sum(0) / np.sqrt((da ** 2).sum(0) * (db ** 2).sum(0))
    return {"rmsd": r, "rmsd_median": float(np.median(r)), "distance_acf": float(np.mean(acf))}


def representatives(xyz, k: int = 3, n: int = 300, seed: int = 0, n_iter: int = 10) -> np.ndarray:
    """``k`` representative structures of a set: the medoids of a k-medoids clustering by RMSD.

    ``n`` frames drawn at random are clustered (pairwise RMSD after superposition, ``mdtraj.rmsd``;
    k-means++ seeding, then alternating assignment and medoid update); the medoids are returned
    largest cluster first, so ``k = 1`` gives the frame closest on average to the others.

    Parameters
    ----------
    xyz : array (n_frames, n_atoms, 3) nm

    Returns
    -------
    np.ndarray (min(k, n_frames), n_atoms, 3) nm
    """
    import mdtraj as md

    rng = np.random.default_rng(seed)
    xyz = np.asarray(xyz, dtype=np.float32)
    pick = rng.choice(len(xyz), min(n, len(xyz)), replace=False)
    t = _as_mdtraj(xyz[pick], "xyz")
    t.center_coordinates()
    D = np.stack([md.rmsd(t, t, i, precentered=True) for i in range(t.n_frames)])
    k = min(int(k), len(pick))
    med = [int(np.argmin(D.mean(1)))]
    while len(med) < k:                               # k-means++ seeding on the RMSD
        d2 = D[:, med].min(1) ** 2
        med.append(int(rng.choice(len(d2), p=d2 / d2.sum())) if d2.sum() > 0 else int(rng.integers(len(d2))))
    for _ in range(n_iter):
        lab = np.argmin(D[:, med], 1)
        new = [int(np.flatnonzero(lab == c)[np.argmin(D[np.ix_(lab == c, lab == c)].sum(1))]) if (lab == c).any()
               else med[c] for c in range(k)]
        if new == med:
            break
        med = new
    sizes = np.bincount(np.argmin(D[:, med], 1), minlength=k)
    return xyz[pick[np.asarray(med)[np.argsort(-sizes)]]]

