"""Roto-translationally invariant features of Trp-cage frames, and their scaling.

Two featurizers, both computed with mdtraj, both returning float32 arrays ``(n_frames, n_features)``:

- :class:`CAFeaturizer` (C-alpha data, the default embedded dataset): C-alpha pairwise distances
  (nm) for ``|i - j| >= 3`` plus (cos, sin) of the C-alpha pseudo-dihedrals ``CA_i..CA_i+3``, the
  C-alpha analogue of backbone torsions. Pairs ``|i - j| = 1`` are excluded because they are bonds
  (nearly constant), ``|i - j| = 2`` because they only encode the C-alpha bond angle, which the
  pseudo-dihedrals and longer distances already constrain; neither carries slow information. For
  Trp-cage (20 residues): 153 distances + 2 x 17 pseudo-dihedrals = 187 features.
- :class:`AllAtomFeaturizer` (the paper, DESRES data): backbone phi and psi and side-chain chi1 as
  (cos, sin), plus the same C-alpha distances (``|i - j| >= 3``). For a 20-residue Trp-cage: 19 phi,
  19 psi, one chi1 per residue with a gamma atom (mdtraj's definition, prolines included: 15 for
  2JOF's DAYAQWLKDGGPSSGRPPPS, 14 if residue 8 is Ala as in the "K8A" variant the paper names) and
  153 distances: 2 x (19 + 19 + 15) + 153 = 259 features (257 with Ala8). ``n_features`` and
  ``feature_names`` give the exact list for a topology.

Torsions enter as (cos, sin) so that features are continuous across the +-pi branch cut.
:class:`FeatureScaler` standardises features with the mean and standard deviation of the
*training* trajectories only, and is saved with the dataset.

:class:`Encoder` is the whole map from structures to the latent space, saved as one file:
featurizer -> scaler -> SRV. Notebooks 05-07 and the simulator use it instead of chaining the three.
(Reading trajectory files lives in :mod:`lss.trajio`; ``load_dcd`` and ``iter_dcd`` are re-exported.)
"""
from __future__ import annotations

import time
from typing import Iterator

import mdtraj as md
import numpy as np

from .base import Estimator
from .persist import object_from, state_of
from .srv import SRV
from .structure import _xyz
from .trajio import iter_dcd, load_dcd, quiet_c_stdout, topology_from_dict, topology_to_dict  # noqa: F401


def _ca_pairs(n: int, min_separation: int) -> np.ndarray:
    if int(min_separation) != min_separation or min_separation < 1:
        raise ValueError(f"min_separation must be a positive integer, got {min_separation!r}")
    return np.array([(i, j) for i in range(n) for j in range(i + int(min_separation), n)],
                    dtype=int).reshape(-1, 2)


def _residue_label(atom) -> str:
    r = atom.residue
    return f"{r.name}{r.resSeq}"


def _cos_sin(angles: np.ndarray) -> np.ndarray:
    """(n_frames, k) radians -> (n_frames, 2k) interleaved cos, sin."""
    out = np.empty((angles.shape[0], 2 * angles.shape[1]), dtype=np.float32)
    out[:, 0::2] = np.cos(angles)
    out[:, 1::2] = np.sin(angles)
    return out


class _Featurizer:
    """Shared parts: input normalisation, names, counts."""

    topology: md.Topology
    feature_names: list[str]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def _as_traj(self, traj_or_xyz) -> md.Trajectory:
        t = traj_or_xyz if isinstance(traj_or_xyz, md.Trajectory) else None
        xyz = _xyz(traj_or_xyz, "traj_or_xyz") if t is None else t.xyz
        if xyz.shape[1] != self.topology.n_atoms:
            raise ValueError(f"traj_or_xyz has {xyz.shape[1]} atoms; it must have shape (n_frames, "
                             f"{self.topology.n_atoms}, 3) in nm, this featurizer's topology")
        return t if t is not None else md.Trajectory(xyz, self.topology)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_atoms={self.topology.n_atoms}, n_features={self.n_features})"

    def state(self) -> dict:
        """JSON description (class, ``min_separation``, topology): enough to rebuild it exactly."""
        return {"kind": type(self).__name__, "min_separation": int(self.min_separation),
                "topology": topology_to_dict(self.topology)}


def featurizer_from_state(d: dict | None):
    """Inverse of ``featurizer.state()``; only the featurizers of this module (an explicit list)."""
    if d is None:
        return None
    kinds = {"CAFeaturizer": CAFeaturizer, "AllAtomFeaturizer": AllAtomFeaturizer}
    if d.get("kind") not in kinds:
        raise ValueError(f"unknown featurizer {d.get('kind')!r}; this lss knows {sorted(kinds)}")
    return kinds[d["kind"]](topology_from_dict(d["topology"]), min_separation=int(d["min_separation"]))


class CAFeaturizer(_Featurizer):
    """C-alpha pairwise distances and (cos, sin) of C-alpha pseudo-dihedrals.

    Parameters
    ----------
    topology : mdtraj.Topology, optional
        A C-alpha-only topology (one atom per residue); default: the 20 C-alpha atoms of 2JOF
        (:func:`lss.gomodel.native_structure`).
    min_separation : int
        Distances between atoms ``i < j`` with ``j - i >= min_separation`` are kept (default 3).

    Attributes
    ----------
    pairs : np.ndarray, shape (n_distances, 2)
    quadruples : np.ndarray, shape (n_dihedrals, 4)
    feature_names : list of str
        ``d(ASP1,ALA4)`` ... (nm), then ``cos(ca_dih ASP1-GLN4)``, ``sin(...)`` interleaved.
    """

    def __init__(self, topology: md.Topology | None = None, min_separation: int = 3):
        if topology is None:
            from .gomodel import native_structure

            topology = native_structure().topology
        self.topology = topology
        self.min_separation = min_separation
        n = topology.n_atoms
        if n < 4:
            raise ValueError(f"topology has {n} atoms; a C-alpha featurization needs at least 4")
        self.pairs = _ca_pairs(n, min_separation)
        self.quadruples = np.array([[i, i + 1, i + 2, i + 3] for i in range(n - 3)], dtype=int)
        atoms = list(topology.atoms)
        lab = [_residue_label(a) for a in atoms]
        self.feature_names = [f"d({lab[i]},{lab[j]})" for i, j in self.pairs]
        for q in self.quadruples:
            for f in ("cos", "sin"):
                self.feature_names.append(f"{f}(ca_dih {lab[q[0]]}-{lab[q[3]]})")

    def transform(self, traj_or_xyz) -> np.ndarray:
        """Features of each frame.

        Parameters
        ----------
        traj_or_xyz : mdtraj.Trajectory or np.ndarray, shape (n_frames, n_atoms, 3), nm

        Returns
        -------
        np.ndarray, shape (n_frames, n_features), float32
            Distances in nm, then cos/sin pairs (dimensionless).
        """
        t = self._as_traj(traj_or_xyz)
        d = md.compute_distances(t, self.pairs, periodic=False)
        phi = md.compute_dihedrals(t, self.quadruples, periodic=False)
        return np.concatenate([d.astype(np.float32), _cos_sin(phi)], axis=1)


class AllAtomFeaturizer(_Featurizer):
    """Backbone phi/psi and side-chain chi1 torsions as (cos, sin), plus C-alpha distances (paper).

    Parameters
    ----------
    topology : mdtraj.Topology
        Topology of the frames to featurize (e.g. the protein atoms of DESRES 2JOF).
    min_separation : int
        C-alpha distances between residues ``j - i >= min_separation`` (default 3, as for
        :class:`CAFeaturizer`).

    Attributes
    ----------
    torsion_indices : np.ndarray, shape (n_torsions, 4)
        phi (all residues but the first), psi (all but the last), chi1 (residues with a gamma atom),
        in this order.
    ca_indices : np.ndarray, shape (n_residues,)
    pairs : np.ndarray, shape (n_distances, 2)
        Pairs of C-alpha *atom indices*.
    feature_names : list of str
        ``cos(phi ALA2)``, ``sin(phi ALA2)``, ... ``cos(chi1 TYR3)`` ..., ``d(ASP1,ALA4)`` ...
    """

    def __init__(self, topology: md.Topology, min_separation: int = 3):
        if not isinstance(topology, md.Topology):
            raise ValueError(f"topology must be an mdtraj.Topology, got {type(topology).__name__}")
        self.topology = topology
        self.min_separation = min_separation
        dummy = md.Trajectory(np.zeros((1, topology.n_atoms, 3), dtype=np.float32), topology)
        blocks, names = [], []
        for kind, fn in (("phi", md.compute_phi), ("psi", md.compute_psi), ("chi1", md.compute_chi1)):
            idx, _ = fn(dummy)
            blocks.append(np.asarray(idx, dtype=int).reshape(-1, 4))
            for q in idx:
                # phi is attributed to the residue of its CA (atom 2), psi and chi1 to atom 1's residue
                res_atom = topology.atom(int(q[2] if kind == "phi" else q[1]))
                names += [f"cos({kind} {_residue_label(res_atom)})", f"sin({kind} {_residue_label(res_atom)})"]
        self.torsion_indices = np.concatenate(blocks)
        self.n_torsions = {k: len(b) for k, b in zip(("phi", "psi", "chi1"), blocks)}
        self.ca_indices = topology.select("name CA")
        if len(self.ca_indices) < 4:
            raise ValueError(f"topology has {len(self.ca_indices)} C-alpha atoms; at least 4 are needed")
        rel = _ca_pairs(len(self.ca_indices), min_separation)
        self.pairs = self.ca_indices[rel]
        lab = [_residue_label(topology.atom(int(i))) for i in self.ca_indices]
        names += [f"d({lab[i]},{lab[j]})" for i, j in rel]
        self.feature_names = names

    def transform(self, traj_or_xyz) -> np.ndarray:
        """Features of each frame.

        Parameters
        ----------
        traj_or_xyz : mdtraj.Trajectory or np.ndarray, shape (n_frames, n_atoms, 3), nm

        Returns
        -------
        np.ndarray, shape (n_frames, n_features), float32
            cos/sin pairs of the torsions, then C-alpha distances in nm.
        """
        t = self._as_traj(traj_or_xyz)
        ang = md.compute_dihedrals(t, self.torsion_indices, periodic=False)
        d = md.compute_distances(t, self.pairs, periodic=False)
        return np.concatenate([_cos_sin(ang), d.astype(np.float32)], axis=1)


# ------------------------------------------------------------------------------------------ scaling
class FeatureScaler(Estimator):
    """Standardise features: ``(x - mean_) / scale_``, fitted on training trajectories only.

    Mean and variance are accumulated in float64 over chunks, so fitting 10^6 frames needs no
    float64 copy of the data. A feature with zero variance in the training data gets
    ``scale_ = 1`` (it is only centred).

    Attributes
    ----------
    mean_, scale_ : np.ndarray, shape (n_features,), float64
    n_features_in_ : int
    n_samples_ : int
        Frames the statistics were computed from.
    fit_on_ : list of int
        Indices of the trajectories fitted on.
    fit_time_s_ : float
        Wall time of :meth:`fit`, seconds.
    """

    _format = "lss.features.FeatureScaler/2"
    _fitted_attr = "mean_"

    def __init__(self, chunk: int = 65536):
        self.chunk = chunk

    def fit(self, trajs, fit_on=None) -> "FeatureScaler":
        """Fit on a list of arrays ``(n_frames, n_features)`` (or one array).

        Parameters
        ----------
        trajs : list of np.ndarray or np.ndarray
        fit_on : sequence of int, optional
            Indices of the trajectories that are training data; default all of them.
        """
        t_start = time.perf_counter()
        if isinstance(trajs, np.ndarray):
            trajs = [trajs]
        trajs = list(trajs)
        if not trajs:
            raise ValueError("trajs is empty")
        sel = range(len(trajs)) if fit_on is None else list(fit_on)
        for i in sel:
            if not 0 <= int(i) < len(trajs):
                raise ValueError(f"fit_on contains {i}, but there are {len(trajs)} trajectories")
        width = {np.shape(trajs[i])[-1] for i in sel}
        if len(width) != 1:
            raise ValueError(f"trajs: trajectories have different numbers of features {sorted(width)}")
        d = width.pop()
        n, s1 = 0, np.zeros(d)
        for i in sel:
            x = trajs[i]
            for a in range(0, len(x), self.chunk):
                c = np.asarray(x[a:a + self.chunk], dtype=np.float64)
                if not np.all(np.isfinite(c)):
                    raise ValueError(f"trajs[{i}] contains NaN or inf values")
                s1 += c.sum(0)
                n += len(c)
        if n < 2:
            raise ValueError(f"need at least 2 training frames to fit a scaler, got {n}")
        mean = s1 / n
        s2 = np.zeros(d)
        for i in sel:
            x = trajs[i]
            for a in range(0, len(x), self.chunk):
                c = np.asarray(x[a:a + self.chunk], dtype=np.float64) - mean
                s2 += (c * c).sum(0)
        std = np.sqrt(s2 / n)
        self.mean_ = mean
        self.scale_ = np.where(std > 1e-12, std, 1.0)
        self.n_features_in_ = int(d)
        self.n_samples_ = int(n)
        self.fit_on_ = [int(i) for i in sel]
        self.fit_time_s_ = time.perf_counter() - t_start
        return self

    def _check(self, x):
        self._check_fitted()
        if np.shape(x)[-1] != len(self.mean_):
            raise ValueError(f"x has {np.shape(x)[-1]} features; the scaler was fitted on {len(self.mean_)}")

    def transform(self, x, inplace: bool = False):
        """Scale one array ``(n_frames, n_features)`` or a list of them; float32 out.

        ``inplace=True`` overwrites float32 inputs chunk by chunk (no extra memory).
        """
        if isinstance(x, (list, tuple)):
            return [self.transform(a, inplace) for a in x]
        self._check(x)
        out = x if (inplace and isinstance(x, np.ndarray) and x.dtype == np.float32) else \
            np.empty(np.shape(x), dtype=np.float32)
        m, s = self.mean_, self.scale_
        for a in range(0, len(x), self.chunk):
            out[a:a + self.chunk] = (np.asarray(x[a:a + self.chunk], dtype=np.float64) - m) / s
        return out

    def inverse_transform(self, x):
        """Undo :meth:`transform` (float32 out)."""
        if isinstance(x, (list, tuple)):
            return [self.inverse_transform(a) for a in x]
        self._check(x)
        return (np.asarray(x, dtype=np.float64) * self.scale_ + self.mean_).astype(np.float32)

    _state = {"mean": "mean_", "scale": "scale_", "n_samples": "n_samples_", "fit_on": "fit_on_",
              "fit_time_s": "fit_time_s_"}

    def _restored(self):
        self.n_features_in_, self.n_samples_ = len(self.mean_), int(self.n_samples_)
        self.fit_on_ = [int(i) for i in self.fit_on_]


# ------------------------------------------------------------------------------------------ encoder
class Encoder(Estimator):
    """Structures -> latent points: featurizer, then scaler, then SRV, saved together in one file.

    Parameters
    ----------
    featurizer : CAFeaturizer or AllAtomFeaturizer
        Computes the (unscaled) features from structures in its topology.
    scaler : FeatureScaler, optional
        Fitted scaler applied to the features (None: the SRV takes raw features).
    srv : lss.srv.SRV
        The encoder network (fitted, or fitted by :meth:`fit`).

    Attributes
    ----------
    n_components_ : int
        The latent dimension ``m`` (the SRV's).
    n_features_in_ : int
        Number of features (the featurizer's).
    n_atoms_ : int
        Atoms per structure expected (the featurizer topology's).

    Examples
    --------
    >>> enc = Encoder(CAFeaturizer(top), ds.scaler, srv)          # doctest: +SKIP
    >>> z = enc.transform(xyz)                                    # (n_frames, m) float32
    >>> enc.save("encoder.lss"); Encoder.load("encoder.lss")      # one file, no pickle
    """

    _format = "lss.encoder/1"
    _fitted_attr = "n_components_"

    def __init__(self, featurizer=None, scaler: FeatureScaler | None = None, srv: SRV | None = None):
        self.featurizer = featurizer
        self.scaler = scaler
        self.srv = srv
        if featurizer is not None and srv is not None and hasattr(srv, "net_"):
            self._set_fitted()

    def _set_fitted(self):
        if self.featurizer is None or self.srv is None:
            raise ValueError("an Encoder needs a featurizer and an SRV")
        self.srv._check_fitted()
        n = self.featurizer.n_features
        if self.scaler is not None:
            self.scaler._check_fitted()
            if self.scaler.n_features_in_ != n:
                raise ValueError(f"the scaler was fitted on {self.scaler.n_features_in_} features; the "
                                 f"featurizer makes {n}")
        if self.srv.n_features_in_ != n:
            raise ValueError(f"the SRV was fitted on {self.srv.n_features_in_} features; the featurizer makes {n}")
        self.n_features_in_ = n
        self.n_atoms_ = self.featurizer.topology.n_atoms
        self.n_components_ = self.srv.n_components_

    def features(self, structures) -> np.ndarray:
        """Scaled features of structures, (n_frames, n_features) float32.

        Parameters
        ----------
        structures : mdtraj.Trajectory or np.ndarray, shape (n_frames, n_atoms, 3) or (n_atoms, 3), nm
            An all-atom trajectory is reduced to its C-alpha atoms when the featurizer is C-alpha only.
        """
        if self.featurizer is None:
            raise ValueError("this Encoder has no featurizer")
        n = self.featurizer.topology.n_atoms
        if isinstance(structures, md.Trajectory):
            ca = structures.topology.select("name CA")
            if structures.n_atoms != n and len(ca) == n and all(a.name == "CA" for a in self.featurizer.topology.atoms):
                structures = structures.atom_slice(ca)
        else:
            structures = np.asarray(structures, dtype=np.float32)
            if structures.ndim == 2:
                structures = structures[None]
        f = self.featurizer.transform(structures)
        return np.asarray(self.scaler.transform(f) if self.scaler is not None else f, dtype=np.float32)

    def fit(self, structures) -> "Encoder":
        """Fit the scaler (if given unfitted) and the SRV on structures.

        Parameters
        ----------
        structures : list of mdtraj.Trajectory or of np.ndarray (n_frames, n_atoms, 3), nm
            Training trajectories; the SRV's ``lag`` is in their frames.
        """
        t_start = time.perf_counter()
        if isinstance(structures, (np.ndarray, md.Trajectory)):
            structures = [structures]
        raw = [self.featurizer.transform(s) for s in structures]
        if self.scaler is not None and not self.scaler._is_fitted():
            self.scaler.fit(raw)
        feats = [self.scaler.transform(f) for f in raw] if self.scaler is not None else raw
        self.srv.fit(feats)
        self._set_fitted()
        self.fit_time_s_ = time.perf_counter() - t_start
        return self

    def transform(self, structures) -> np.ndarray:
        """Latent points of structures (see :meth:`features`): (n_frames, m) float32."""
        self._check_fitted()
        return np.asarray(self.srv.transform(self.features(structures)), dtype=np.float32)

    def transform_features(self, features):
        """Latent points of *unscaled* features (n_frames, n_features) or a list of them."""
        self._check_fitted()
        f = self.scaler.transform(features) if self.scaler is not None else features
        return self.srv.transform(f)

    def to(self, device) -> "Encoder":
        """Move the SRV to ``device``."""
        if self.srv is not None:
            self.srv.to(device)
        return self

    def state(self) -> dict:
        """Featurizer (JSON), scaler and SRV states, each SRV/scaler with its own format tag."""
        self._check_fitted()
        return {"featurizer": self.featurizer.state(), "scaler": state_of(self.scaler, "scaler"),
                "srv": state_of(self.srv, "srv")}

    @classmethod
    def from_state(cls, state: dict) -> "Encoder":
        return cls(featurizer=featurizer_from_state(state["featurizer"]),
                   scaler=object_from(state["scaler"], "scaler"), srv=object_from(state["srv"], "srv"))

    def __repr__(self) -> str:
        m = getattr(self, "n_components_", None)
        return (f"Encoder({type(self.featurizer).__name__} -> {type(self.scaler).__name__} -> "
                f"{type(self.srv).__name__}, m={m})")


def iter_featurize(files, topology: md.Topology, featurizer, chunk: int = 10_000, stride: int = 1,
                   ca_indices=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Featurize DCD files chunk by chunk: memory is one chunk, not the data.

    Parameters
    ----------
    files : list of path
        Trajectory files, read in the given order as one continuous trajectory.
    topology : mdtraj.Topology
        Topology of the atoms stored in the files.
    featurizer : CAFeaturizer or AllAtomFeaturizer
        Built on ``topology``.
    chunk : int
        Frames read at a time (10,000 all-atom frames of Trp-cage are about 35 MB).
    stride : int
        Keep every ``stride``-th frame of each file.
    ca_indices : array of int, optional
        Atoms whose coordinates are returned alongside (default: the C-alpha atoms).

    Yields
    ------
    features : np.ndarray, shape (n_chunk, n_features), float32
    ca_xyz : np.ndarray, shape (n_chunk, n_ca, 3), float32, nm
    """
    if ca_indices is None:
        ca_indices = topology.select("name CA")
    for f in files:
        for t in iter_dcd(f, topology, chunk=chunk, stride=stride):
            yield featurizer.transform(t), np.ascontiguousarray(t.xyz[:, ca_indices], dtype=np.float32)
