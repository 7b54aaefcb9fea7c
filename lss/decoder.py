"""What every decoder shares: latent checks, output buffers, MD's bond lengths, the common saved state.

A decoder of the latent space simulator maps latent points ``psi`` (n_frames, m) to C-alpha structures
(n_frames, n_atoms, 3) in nm, superposed on a reference structure. :class:`lss.cwgan.CWGAN` (the
paper's) and :class:`lss.flow.FlowDecoder` (beyond it) derive from :class:`Decoder`, which holds the
parts they have in common; each implements ``fit`` and ``generate`` and adds its own networks to
:meth:`Decoder._common_state`.
"""
from __future__ import annotations

import numpy as np
import torch

from .base import Estimator
from .structure import as_coords, project_bonds_, superpose


class Decoder(Estimator):
    """Base of the decoders (not used alone).

    Fitted attributes every decoder sets: ``reference_`` (n_atoms, 3) nm and ``reference_source_``;
    ``n_atoms_``; ``n_components_`` (latent dimension m); ``cond_mean_``, ``cond_std_`` (m,), the
    standardisation of the latent condition; ``bond_mean_``, ``bond_sd_`` (n_atoms - 1,) nm, MD's
    per-bond statistics for ``fixed_bonds``; ``history_``; ``fit_time_s_``.
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

    def _fix_bonds_(self, x: torch.Tensor, g: torch.Generator) -> None:
        """In place on decoded chains (k, n_atoms * 3), nm: MD's bond lengths when ``fixed_bonds``.

        Each bond's length is drawn from N(bond_mean_, bond_sd_) with ``g`` (after the decoder's own
        draws for the same chunk), then the atoms are moved as little as possible to match.
        """
        a = self.n_atoms_
        if not self.fixed_bonds or a < 2:
            return
        dev = x.device
        mean = torch.as_tensor(self.bond_mean_, dtype=torch.float32, device=dev)
        sd = torch.as_tensor(self.bond_sd_, dtype=torch.float32, device=dev)
        lengths = torch.randn((len(x), a - 1), generator=g, device=dev).mul_(sd).add_(mean)
        project_bonds_(x.view(len(x), a, 3), lengths)

    def superpose(self, coords) -> np.ndarray:
        """Superpose structures (n_frames, n_atoms, 3), nm, on ``reference_``: the frame of the output."""
        self._check_fitted()
        x = as_coords(coords, "coords")
        if x[0].shape[1] != self.n_atoms_:
            raise ValueError(f"coords must have {self.n_atoms_} atoms, got {x[0].shape[1]}")
        return np.concatenate([superpose(xi, self.reference_) for xi in x])

    # ------------------------------------------------------------------------------- persistence
    def _common_state(self) -> dict:
        """The fitted attributes every decoder has, for ``state()``."""
        return {"params": self.get_params(), "n_atoms": self.n_atoms_, "n_components": self.n_components_,
                "reference": self.reference_, "reference_source": self.reference_source_,
                "cond_mean": self.cond_mean_, "cond_std": self.cond_std_,
                "bond_mean": self.bond_mean_, "bond_sd": self.bond_sd_,
                "history": self.history_, "fit_time_s": self.fit_time_s_}

    def _load_common(self, state: dict) -> None:
        """Set the attributes of :meth:`_common_state` from a loaded state."""
        self.n_atoms_, self.n_components_ = int(state["n_atoms"]), int(state["n_components"])
        self.reference_ = np.asarray(state["reference"], dtype=np.float32)
        self.reference_source_ = state["reference_source"]
        self.cond_mean_, self.cond_std_ = np.asarray(state["cond_mean"]), np.asarray(state["cond_std"])
        self.bond_mean_, self.bond_sd_ = np.asarray(state["bond_mean"]), np.asarray(state["bond_sd"])
        self.history_, self.fit_time_s_ = state["history"], state["fit_time_s"]
