"""What every decoder shares: latent checks, output buffers, MD's bond lengths, the common saved state.

A decoder of the latent space simulator maps latent points ``psi`` (n_frames, m) to C-alpha structures
(n_frames, n_atoms, 3) in nm, superposed on a reference structure. :class:`lss.cwgan.CWGAN` (the
paper's) and :class:`lss.flow.FlowDecoder` (beyond it) derive from :class:`Decoder`, which holds the
parts they have in common; each implements ``fit`` and ``generate`` and adds its own networks to
the saved state ``Decoder._state`` (:mod:`lss.base`).

Fixed geometry. A decoder on Cartesian coordinates spreads its errors over all directions, so the
C-alpha virtual bonds and bond angles, which the Go model (and a protein) holds stiff, come out broad:
measured on the cpu profile's flow decoder, bond angles 92 +/- 22.5 degrees against MD's 92 +/- 10.2.
``fixed_bonds`` draws each bond's length from MD's per-bond normal distribution; ``fixed_angles`` maps
each decoded angle ``theta_j`` through the monotone quantile map ``F_MD,j^-1(F_dec,j(theta_j))`` (the
decoder's own angle distribution, measured once at fit time on decoded training points, onto MD's):
the map keeps the order of the decoded angles, so what the decoder learned about the conformation
stays, and gives each angle MD's marginal distribution. The chain is then projected onto the bonds and
the ``i, i+2`` distances of those angles together, moving the atoms as little as possible
(:func:`lss.structure.project_chain_`).
"""
from __future__ import annotations

import numpy as np
import torch

from .base import Estimator
from .structure import (
    as_coords,
    chain_angles,
    project_bonds_,
    project_chain_,
    second_distances,
    superpose,
)
from .utils import torch_threads

#: probability levels of the angle quantile tables of ``fixed_angles`` (0, 0.01, ..., 1)
ANGLE_LEVELS = np.linspace(0.0, 1.0, 101)
#: decoded training points that measure the decoder's own angle distribution at fit time
N_ANGLE_FRAMES = 50_000
#: largest bond or ``i, i+2`` distance error (nm) of a chain with ``fixed_angles``
GEOMETRY_TOL = 1e-4


def quantile_map(values: torch.Tensor, q_from: torch.Tensor, q_to: torch.Tensor) -> torch.Tensor:
    """Monotone map of each column from one distribution onto another: ``F_to^-1(F_from(v))``.

    Both distributions are given by their quantiles at the same, evenly spaced probability levels; the
    cumulative distribution and its inverse are piecewise linear between them, and values outside the
    ``q_from`` range go to the ends of ``q_to``. When ``q_from`` equals ``q_to`` the map is the identity
    on their range.

    Parameters
    ----------
    values : torch.Tensor, shape (n_frames, n_columns)
    q_from, q_to : torch.Tensor, shape (n_columns, n_levels)
        Non-decreasing quantiles of each column (same unit as ``values``), ``n_levels >= 2``.

    Returns
    -------
    torch.Tensor, shape (n_frames, n_columns), the dtype of ``values``
    """
    n_levels = q_from.shape[1]
    v = values.t().contiguous()                                        # (n_columns, n_frames)
    qf, qt = q_from.to(v.dtype).contiguous(), q_to.to(v.dtype).contiguous()
    hi = sorted_brackets(qf, v).clamp_(1, n_levels - 1)
    lo = hi - 1
    lo_v, hi_v = qf.gather(1, lo), qf.gather(1, hi)
    t = (v - lo_v).div_((hi_v - lo_v).clamp_min_(1e-12)).clamp_(0.0, 1.0)   # position between the levels
    a, b = qt.gather(1, lo), qt.gather(1, hi)
    return b.sub_(a).mul_(t).add_(a).t()


def sorted_brackets(sorted_rows: torch.Tensor, values: torch.Tensor, cells: int = 2048) -> torch.Tensor:
    """``torch.searchsorted(sorted_rows, values)`` (the number of entries below each value, row by row),
    found through a uniform grid over each row's range instead of a binary search.

    The grid's cells give each value a first guess (the entries below its cell's left neighbour); as many
    steps as a window of three cells holds entries (1 for the angle tables of ``fixed_angles``) finish it.
    The same indices as ``torch.searchsorted`` (tested, with ties and values outside the range), measured
    3x faster on 18 columns x 8,192 frames (2.5 ms instead of 8.2 ms: the binary search mispredicts
    its branches).

    Parameters
    ----------
    sorted_rows : torch.Tensor, shape (n_rows, n)
        Non-decreasing rows.
    values : torch.Tensor, shape (n_rows, m)
        Values (NaN gives 0).
    cells : int
        Grid cells per row.

    Returns
    -------
    torch.Tensor, shape (n_rows, m), int64, in ``[0, n]``
    """
    r, n = sorted_rows.shape
    dev = sorted_rows.device
    lo = sorted_rows[:, :1]
    scale = cells / (sorted_rows[:, -1:] - lo).clamp_min(1e-30)
    edges = lo + torch.arange(cells + 1, dtype=sorted_rows.dtype, device=dev) / scale
    below = torch.cat([torch.searchsorted(sorted_rows, edges),           # entries below each left edge
                       torch.full((r, 1), n, dtype=torch.long, device=dev)], 1)
    c = torch.arange(cells, device=dev)
    steps = int((below[:, (c + 2).clamp(max=cells + 1)] - below[:, (c - 1).clamp(min=0)]).max())
    # the cell's left neighbour: a rounding error of one cell either way stays inside the window
    cell = (values - lo).mul_(scale).floor_().clamp_(1, cells - 1).nan_to_num_(1.0)   # NaN: 0, as below the range
    idx = below.gather(1, cell.long().sub_(1))
    for _ in range(steps):
        idx += (sorted_rows.gather(1, idx.clamp(max=n - 1)) < values) & (idx < n)
    return idx


def angle_quantiles(xyz: np.ndarray, levels: np.ndarray = ANGLE_LEVELS, chunk: int = 65536) -> np.ndarray:
    """Quantiles of each bond angle ``(i, i+1, i+2)`` over frames (n_frames, n_atoms, 3), nm.

    Returns
    -------
    np.ndarray, shape (n_atoms - 2, len(levels)), float64, rad
    """
    ang = np.concatenate([chain_angles(torch.as_tensor(np.asarray(xyz[i:i + chunk], np.float32))).numpy()
                          for i in range(0, len(xyz), chunk)])
    return np.quantile(ang.astype(np.float64), levels, axis=0).T


class Decoder(Estimator):
    """Base of the decoders (not used alone).

    Fitted attributes every decoder sets: ``reference_`` (n_atoms, 3) nm and ``reference_source_``;
    ``n_atoms_``; ``n_components_`` (latent dimension m); ``cond_mean_``, ``cond_std_`` (m,), the
    standardisation of the latent condition; ``bond_mean_``, ``bond_sd_`` (n_atoms - 1,) nm, MD's
    per-bond statistics for ``fixed_bonds``; ``angle_quantiles_md_``, ``angle_quantiles_decoded_``
    (n_atoms - 2, 101) rad or None, the quantiles of each bond angle in the training frames and in the
    decoder's own output (decoded at up to 50,000 training points without fixed geometry) for
    ``fixed_angles`` (None: fewer than 3 atoms, or a file written before ``fixed_angles``: bonds only);
    ``history_``; ``fit_time_s_``. ``angle_fallbacks_`` counts the frames decoded since fit or load whose
    angle projection did not converge (they keep the decoded angles, with fixed bonds).

    ``fixed_angles`` acts with ``fixed_bonds`` only (the ``i, i+2`` distances are set with the fixed
    bond lengths). Cost: 4 Gauss-Newton steps of :func:`lss.structure.project_chain_` on every frame,
    4 more on the ~12 % that need them (cpu profile), about 4 us of CPU per 20-atom frame in all, far
    more than the bonds alone (each step is ~700 torch operations on rows of frames). Measured on one
    core with the cpu profile's flow decoder (``benchmarks/generation.py --projection-only``, 1e6
    frames in batches of 8,192, median of 3 interleaved repeats, load average 0.7-0.8): the fixed
    geometry costs 0.9 s of CPU per 1e6 frames with bonds only, 4.3 s with ``fixed_angles`` (9.9 s with
    the previous projection); decoding alone costs ~8.4 s. The paper-sized ensemble (1,044,100 frames,
    ``LatentSpaceSimulator.generate`` on 2 cores at load 0.7-1.6, interleaved) took 11.1-12.1 s, against
    22.8-25.5 s with the previous projection, angle map and decoder schedule. The projection runs on one
    intra-op thread: on a loaded machine two threads were 4x slower (idle: 1.5x faster).
    """

    # ------------------------------------------------------------------------------ fitting helpers
    def _check_common(self, counts: tuple[str, ...], choices: dict) -> None:
        """``ValueError`` naming the parameter: ``counts`` must be positive integers, ``hidden`` a
        non-empty tuple of positive widths, ``reference`` and the keys of ``choices`` one of their values."""
        for name in counts:
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.hidden or any(int(h) != h or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty tuple of positive widths, got {self.hidden!r}")
        for name, allowed in {"reference": ("first", "native"), **choices}.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {tuple(allowed)}, got {getattr(self, name)!r}")

    @staticmethod
    def _bond_stats(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd (nm) of each bond i, i+1 over frames (n_frames, n_atoms, 3); empty for one atom."""
        if xyz.shape[1] < 2:
            return np.zeros(0), np.zeros(0)
        bonds = np.linalg.norm(np.diff(xyz, axis=1), axis=-1).astype(np.float64)
        return bonds.mean(0), bonds.std(0)

    # --------------------------------------------------------------------------- inference helpers
    def _check_latent(self, latent) -> np.ndarray:
        """Latent points as float32 (n_frames, m); one point (m,) is accepted; NaN/inf refused."""
        c = np.asarray(latent, dtype=np.float32)
        m = self.n_components_
        if c.ndim == 1 and m == 1:
            c = c[:, None]
        if c.ndim == 1 and c.shape[0] == m:
            c = c[None, :]
        if c.ndim != 2 or c.shape[1] != m:
            raise ValueError(f"latent must have shape (n_frames, {m}), got {np.shape(latent)}")
        if not np.all(np.isfinite(c)):
            raise ValueError("latent contains NaN or inf values")
        return c

    def _output(self, n: int, out: np.ndarray | None) -> np.ndarray:
        """The (n, n_atoms, 3) float32 array to fill: ``out`` checked, or a new one."""
        shape = (n, self.n_atoms_, 3)
        if out is None:
            return np.empty(shape, dtype=np.float32)
        if out.shape != shape or out.dtype != np.float32:
            raise ValueError(f"out must be a float32 array of shape {shape}, got {out.dtype} {out.shape}")
        return out

    @staticmethod
    def _batch(batch_size, dev, cpu_default: int) -> int:
        if batch_size is None:
            return 262144 if dev.type == "cuda" else cpu_default
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        return int(batch_size)

    def _angles_on(self) -> bool:
        return (bool(self.fixed_bonds) and bool(getattr(self, "fixed_angles", False))
                and getattr(self, "angle_quantiles_md_", None) is not None)

    def _fix_geometry_(self, x: torch.Tensor, g: torch.Generator) -> None:
        """In place on decoded chains (k, n_atoms * 3), nm: MD's bonds (``fixed_bonds``) and angles (``fixed_angles``).

        Each bond's length is drawn from N(bond_mean_, bond_sd_) with ``g`` (after the decoder's own
        draws for the same chunk; the angles draw nothing, so the random stream is that of bonds
        only); each angle target is the quantile map of the decoded angle; then the atoms are moved as
        little as possible to match: 4 Gauss-Newton steps, 4 more for the frames not within
        :data:`GEOMETRY_TOL` after them, 8 more (16 in all) for those still not within it; frames that do
        not converge then get the bond projection of their decoded chain instead and are counted in
        ``angle_fallbacks_``.
        """
        a = self.n_atoms_
        if not self.fixed_bonds or a < 2:
            return
        dev = x.device
        mean = torch.as_tensor(self.bond_mean_, dtype=torch.float32, device=dev)
        sd = torch.as_tensor(self.bond_sd_, dtype=torch.float32, device=dev)
        lengths = torch.randn((len(x), a - 1), generator=g, device=dev).mul_(sd).add_(mean)
        xv = x.view(len(x), a, 3)
        if not self._angles_on() or a < 3:
            project_bonds_(xv, lengths)
            return
        q_dec = torch.as_tensor(self.angle_quantiles_decoded_, dtype=torch.float32, device=dev)
        q_md = torch.as_tensor(self.angle_quantiles_md_, dtype=torch.float32, device=dev)
        seconds = second_distances(lengths, quantile_map(chain_angles(xv), q_dec, q_md))
        # one intra-op thread: ~700 small operations per step, which extra threads only synchronise
        # (measured: 4x slower on 2 threads of a loaded machine)
        with torch_threads(1 if dev.type == "cpu" else None):
            raw = xv.clone()
            # a fixed number of steps, so that each frame's result does not depend on its batch
            ok = project_chain_(xv, lengths, seconds, n_iter=4, tol=GEOMETRY_TOL, stop_early=False)
            if bool(ok.all()):
                return
            # the frames with the largest corrections (about 10 % on the cpu profile): 4 more steps,
            # then 8 more (16 from the decoded chain), then bonds only
            bad = (~ok).nonzero().squeeze(1)
            y = xv[bad]
            ok2 = project_chain_(y, lengths[bad], seconds[bad], n_iter=4, tol=GEOMETRY_TOL, stop_early=False)
            if not bool(ok2.all()):
                worse = (~ok2).nonzero().squeeze(1)
                idx = bad[worse]
                z = y[worse]
                ok3 = project_chain_(z, lengths[idx], seconds[idx], n_iter=8, tol=GEOMETRY_TOL, stop_early=False)
                if not bool(ok3.all()):
                    fail = (~ok3).nonzero().squeeze(1)
                    z[fail] = project_bonds_(raw[idx[fail]], lengths[idx[fail]])
                    self.angle_fallbacks_ += len(fail)
                y[worse] = z
            xv[bad] = y

    def _fit_angle_map(self, latent: np.ndarray, xyz_md: np.ndarray, seed: int) -> None:
        """Set the angle quantile tables of ``fixed_angles`` (after training, on a fitted decoder).

        Parameters
        ----------
        latent : np.ndarray, shape (n, m)
            Training latent points to decode (at most :data:`N_ANGLE_FRAMES`), one structure each,
            without fixed geometry (the decoder's own angles, as :meth:`_fix_geometry_` sees them).
        xyz_md : np.ndarray, shape (n_md, n_atoms, 3), nm
            Training frames: MD's angles.
        seed : int
            Seed of the decoding.
        """
        self.angle_quantiles_md_ = self.angle_quantiles_decoded_ = None
        self.angle_fallbacks_ = 0
        if self.n_atoms_ < 3:
            return
        keep = self.fixed_bonds
        self.fixed_bonds = False
        try:
            raw = self.generate(latent, random_state=seed)
        finally:
            self.fixed_bonds = keep
        self.angle_quantiles_decoded_ = angle_quantiles(raw)
        self.angle_quantiles_md_ = angle_quantiles(xyz_md)

    def superpose(self, coords) -> np.ndarray:
        """Superpose structures (n_frames, n_atoms, 3), nm, on ``reference_``: the frame of the output."""
        self._check_fitted()
        x = as_coords(coords, "coords")
        if x[0].shape[1] != self.n_atoms_:
            raise ValueError(f"coords must have {self.n_atoms_} atoms, got {x[0].shape[1]}")
        return np.concatenate([superpose(xi, self.reference_) for xi in x])

    # ------------------------------------------------------------------------------- persistence
    #: The fitted attributes every decoder saves (its networks and own arrays are added by each class).
    _state = {"n_atoms": "n_atoms_", "n_components": "n_components_", "reference": "reference_",
              "reference_source": "reference_source_", "cond_mean": "cond_mean_", "cond_std": "cond_std_",
              "bond_mean": "bond_mean_", "bond_sd": "bond_sd_", "angle_quantiles_md": "angle_quantiles_md_",
              "angle_quantiles_decoded": "angle_quantiles_decoded_", "history": "history_",
              "fit_time_s": "fit_time_s_"}

    def _restored(self):
        # files written before fixed_angles have no angle tables (None): bonds only
        self.n_atoms_, self.n_components_ = int(self.n_atoms_), int(self.n_components_)
        self.angle_fallbacks_ = 0
