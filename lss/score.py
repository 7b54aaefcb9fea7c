"""One scorecard for any generated ensemble of molecular trajectories, with MD's own noise beside every number.

The *reference* is the yardstick: MD as long as can be had (a converged run). Everything else is a
named *candidate*, the training MD included, and every number is shown beside two floors:

- **equal-length MD** (the floor): independent MD of the training length, scored the same way. The
  reference is cut into pieces of the training MD's length (``training``) (laid end to end); each piece is scored
  against the whole reference and the floor is the mean over pieces (``details`` keeps each and their
  spread). The ratio ``value / floor`` is what the card colours: an independent MD run of that length
  scores about 1 (a little below: each piece is part of the reference, so with ``N`` pieces it sits
  about ``sqrt((N - 1) / (N + 1))`` of an independent run, 0.9 at 20 pieces); a generator trained on
  that much MD that scores below 1 is worth more than its data on that metric, and the MD scored against
  itself is 0.
- **MSM baseline** (the classical method on the same latent space): k-means states of the latent
  space of the training MD and a reversible MSM at the common time step
  (:class:`lss.msm.MSMBaseline`), sampled into trajectories whose frames are that candidate's frames
  (each sampled state is a random frame of it); it is scored like any candidate. It **replays training
  frames**: its ensemble and structure numbers are those of the training MD reweighted by the MSM's
  stationary distribution; a generator should beat it on what an MSM cannot give (new structures,
  dynamics inside the states).

The card (:class:`ScoreCard`, every metric a non-negative *discrepancy*, 0 for a perfect match):

- ensemble: Jensen-Shannon **distance** (the square root of the JS divergence, natural log, so in
  ``[0, sqrt(ln 2) = 0.833]``) between the candidate's and the MD's histograms, on the MD's binning
  (``n_bins`` bins over the MD's range plus one overflow bin on each side), for every C-alpha
  pseudo-torsion and pair distance (the card shows the mean over them; ``details`` holds each), for
  TIC1 and the TIC1-TIC2 plane (TICA of the MD's C-alpha distances, :func:`lss.analysis.fit_tica`);
  free-energy RMSE (kT) of the TIC1-TIC2 surface and of the slowest latent coordinate, after the
  best constant shift, over the MD's bins within ``max_dF`` of its minimum, and the fraction of
  those bins the candidate misses;
- structure: JS distances of Q (fraction of native contacts, when a native structure is given), Rg,
  RMSD to the native structure, C-alpha bond lengths and bond angles (all bonds pooled);
- kinetics, all at the same physical times: the common time step ``dt`` is the longest frame time
  among the ensembles (each must divide it), the MD is fitted on lags that are multiples of it.
  ``|ln(candidate / MD)|`` of the slowest implied timescale (MSM on the MSM baseline's states,
  averaged over ``its_lags``), of the decorrelation times of TIC1 and of the slowest latent
  coordinate (:func:`lss.kinetics.relaxation_times`), of the two core-to-core mean first-passage
  times (:func:`lss.kinetics.mean_first_passage_times`) and of the TPT reactive flux between the two
  PCCA+ metastable sets of the MD's MSM; the Chapman-Kolmogorov error (:func:`lss.msm.chapman_kolmogorov`:
  the RMS difference between the candidate's set-to-set transition probabilities at ``k dt`` and
  the reference's, both counted, averaged over ``k = 1 ... ck_steps``).

The latent space: the ensembles' own latent trajectories where every ensemble has them (the LSS
writes its own; MD's come from the encoder, which also encodes any candidate without one when given
as ``encoder``); otherwise TICA (kinetic map, ``tica_dim`` components) of the MD's C-alpha
distances for all.

Units: lengths nm, angles rad, free energies kT, times in the reference's ``time_unit``.
Cost: the paper-sized ensemble (1,044,100 frames of 20 atoms) against 80,000 MD frames, see
``benchmarks/score.py``.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import analysis, kinetics, structure
from .msm import MSMBaseline, chapman_kolmogorov, estimate_msm, msm_timescales_vs_lag
from .stats import cut_pieces, split_blocks
from .trajio import time_factor_ps
from .utils import jsonable

__all__ = ["FORMAT", "METRICS", "Ensemble", "ScoreCard", "js_distance", "score", "prepare", "ensemble_stage",
           "structure_stage", "kinetics_stage", "assemble"]

FORMAT = "lss.score/1"
LN_RATIO = "|ln(candidate / MD)|"

#: key -> (group, label, unit, how)
METRICS = {
    "js_torsions": ("ensemble", "JS torsions", "1", "mean over C-alpha pseudo-torsions of the JS distance (natural log) of each torsion's histogram"),
    "js_distances": ("ensemble", "JS distances", "1", "mean over C-alpha pair distances of the JS distance (natural log) of each distance's histogram"),
    "js_tic1": ("ensemble", "JS TIC1", "1", "JS distance (natural log) of the TIC1 histogram"),
    "js_tic12": ("ensemble", "JS TIC1-2", "1", "JS distance (natural log) of the TIC1-TIC2 2-D histogram"),
    "fe_tic12": ("ensemble", "F(TIC1,2) RMSE", "kT", "RMSE of F(TIC1, TIC2) after the best constant shift, over the MD's bins within max_dF of its minimum"),
    "missed_tic12": ("ensemble", "missed TIC bins", "1", "fraction of those MD bins of F(TIC1, TIC2) the candidate never visits"),
    "fe_tic13": ("ensemble", "F(TIC1,3) RMSE", "kT", "RMSE of F(TIC1, TIC3) after the best constant shift, over the MD's bins within max_dF of its minimum"),
    "fe_latent1": ("ensemble", "F(latent1) RMSE", "kT", "RMSE of F(slowest latent coordinate) after the best constant shift, over the MD's bins within max_dF"),
    "js_q": ("structure", "JS Q", "1", "JS distance of the histogram of Q, the fraction of native contacts (structure.fraction_native_contacts)"),
    "js_rg": ("structure", "JS Rg", "1", "JS distance of the radius-of-gyration histogram"),
    "js_rmsd": ("structure", "JS RMSD native", "1", "JS distance of the histogram of the C-alpha RMSD to the native structure (Kabsch)"),
    "js_bonds": ("structure", "JS bonds", "1", "JS distance of the histogram of all C-alpha bond lengths pooled"),
    "js_angles": ("structure", "JS angles", "1", "JS distance of the histogram of all C-alpha bond angles pooled"),
    "its": ("kinetics", "implied timescale", "1", LN_RATIO + " of the slowest MSM implied timescale, mean over its_lags"),
    "tdecor_tic1": ("kinetics", "t decor TIC1", "1", LN_RATIO + " of the TIC1 decorrelation time (exponential fit to the autocorrelation)"),
    "tdecor_latent1": ("kinetics", "t decor latent1", "1", LN_RATIO + " of the decorrelation time of the slowest latent coordinate"),
    "mfpt_lo_hi": ("kinetics", "MFPT lo->hi", "1", LN_RATIO + " of the mean first-passage time from the low to the high core"),
    "mfpt_hi_lo": ("kinetics", "MFPT hi->lo", "1", LN_RATIO + " of the mean first-passage time from the high to the low core"),
    "flux": ("kinetics", "TPT flux A->B", "1", LN_RATIO + " of the TPT reaction rate between the two PCCA+ metastable sets (MSM at dt)"),
    "ck": ("kinetics", "CK error", "1", "RMS difference of the counted set-to-set transition probabilities at k dt from the reference's, mean over k"),
}
FLOOR = "equal-length MD"
MSM_ROW = "MSM baseline"


# ------------------------------------------------------------------------------------ ensembles
@dataclass
class Ensemble:
    """Trajectories of C-alpha structures with their time step and, optionally, latent coordinates.

    Attributes
    ----------
    xyz : list of np.ndarray (n_frames_i, n_atoms, 3), nm
        A stack ``(n_traj, n_frames, n_atoms, 3)`` or one array ``(n_frames, n_atoms, 3)`` is turned
        into the list; arrays are not copied (memory maps stay memory maps).
    frame_time : float
        Time between frames, in ``time_unit``.
    time_unit : str
        ``fs``, ``ps``, ``ns``, ``us`` or ``ms``.
    latent : list of np.ndarray (n_frames_i, m), optional
        Latent coordinates of the same frames (column 0 the slowest), e.g. SRV coordinates of MD.
    name : str
    """

    xyz: list
    frame_time: float
    time_unit: str = "ps"
    latent: list | None = None
    name: str = "ensemble"
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.xyz = _traj_list(self.xyz, f"{self.name}.xyz", 3)
        if len({x.shape[1:] for x in self.xyz}) != 1 or self.xyz[0].shape[-1] != 3:
            raise ValueError(f"{self.name}.xyz: every trajectory must have shape (n_frames, n_atoms, 3)")
        if not (isinstance(self.frame_time, (int, float, np.floating)) and self.frame_time > 0):
            raise ValueError(f"{self.name}: frame_time must be a positive time, got {self.frame_time!r}")
        time_factor_ps(self.time_unit)
        if self.latent is not None:
            self.latent = _traj_list(self.latent, f"{self.name}.latent", 2)
            if [len(z) for z in self.latent] != [len(x) for x in self.xyz]:
                raise ValueError(f"{self.name}: latent has trajectory lengths {[len(z) for z in self.latent]}, "
                                 f"xyz {[len(x) for x in self.xyz]}")

    @property
    def frame_time_ps(self) -> float:
        return float(self.frame_time) * time_factor_ps(self.time_unit)

    @property
    def n_frames(self) -> int:
        return sum(len(x) for x in self.xyz)

    @property
    def n_atoms(self) -> int:
        return int(self.xyz[0].shape[1])

    @classmethod
    def from_files(cls, paths, topology=None, frame_time: float | None = None, time_unit: str = "ps",
                   name: str = "ensemble", latent=None, stride: int = 1, skip: int = 0) -> Ensemble:
        """Read trajectories (DCD, XTC, HDF5, or a directory written by ``lss generate``).

        Only C-alpha atoms are kept (atoms named CA, when the topology has others).

        Parameters
        ----------
        paths : path or list of paths
            One trajectory per file; a directory with ``generation.json`` is read with its time step
            and latent trajectories.
        topology : path or mdtraj.Topology, optional
            PDB (or any file mdtraj reads a topology from); not needed for HDF5 and directories.
        frame_time : float, optional
            Time between frames in ``time_unit`` (of the file, before ``stride``). Required for DCD
            files, which store none; XTC and HDF5 files store times, and a given value overrides them.
        time_unit : str
        name : str
        latent : path to a ``.npy`` (n_traj, n_frames, m) or array, optional
        stride : int
            Keep every ``stride``-th frame (the frame time grows accordingly).
        skip : int
            Frames dropped at the start of every trajectory (e.g. the LSS's relaxation from its
            start structures), before ``stride``.

        Raises
        ------
        ValueError
            A file without a time step and no ``frame_time``; files with different time steps.
        """
        import mdtraj as md

        from .trajio import load_dcd, read_generation, read_npy

        if isinstance(paths, (str, Path)):
            paths = [paths]
        paths = [Path(p) for p in paths]
        if len(paths) == 1 and paths[0].is_dir():
            gen = read_generation(paths[0])
            lat = gen.latent() if gen.meta.get("latent") and latent is None else latent
            ens = cls([t.xyz for t in gen], frame_time if frame_time is not None else gen.timestep,
                      time_unit if frame_time is not None else gen.time_unit,
                      latent=None if lat is None else [np.asarray(z) for z in lat], name=name)
            return ens._strided(stride, skip)
        if isinstance(topology, (str, Path)):
            topology = md.load_topology(str(topology))
        xyz, steps = [], []
        for p in paths:
            if not p.exists():
                raise FileNotFoundError(f"{name}: {p} does not exist")
            ext = p.suffix.lower()
            if ext in (".h5", ".hdf5"):
                t = md.load_hdf5(str(p))
            else:
                if topology is None:
                    raise ValueError(f"{name}: {p} needs a topology (a PDB of the same atoms)")
                t = load_dcd(p, topology) if ext == ".dcd" else md.load(str(p), top=topology)
            ca = t.topology.select("name CA")
            if 0 < len(ca) < t.n_atoms:
                t = t.atom_slice(ca)
            xyz.append(t.xyz)
            if frame_time is None:
                steps.append(_file_time_step(t, p, ext, name))
        if frame_time is None:
            if max(steps) - min(steps) > 1e-6 * max(steps):
                raise ValueError(f"{name}: the files have different time steps ({sorted(set(steps))} ps); "
                                 f"give the time step explicitly")
            frame_time, time_unit = float(np.mean(steps)), "ps"
        if isinstance(latent, (str, Path)):
            latent = read_npy(latent)
        lat = None if latent is None else [np.asarray(z) for z in latent]
        return cls(xyz, frame_time, time_unit, latent=lat, name=name)._strided(stride, skip)

    def _strided(self, stride: int, skip: int = 0) -> Ensemble:
        if int(stride) != stride or stride < 1 or int(skip) != skip or skip < 0:
            raise ValueError(f"stride must be a positive and skip a non-negative integer, got {stride!r}, {skip!r}")
        if stride == 1 and skip == 0:
            return self
        cut = slice(int(skip), None, int(stride))
        lat = None if self.latent is None else [z[cut] for z in self.latent]
        return Ensemble([x[cut] for x in self.xyz], self.frame_time * stride, self.time_unit, lat, self.name)


def _file_time_step(t, path: Path, ext: str, name: str) -> float:
    """Time between frames (ps) stored in a trajectory file; ValueError when it stores none."""
    hint = (f"give the time between frames: lss score --dt {name}=VALUE (e.g. {name}=3ps), or "
            f"Ensemble.from_files(..., frame_time=VALUE, time_unit='ps')")
    if ext == ".dcd":
        raise ValueError(f"{name}: {path} is a DCD file, which stores no time step; {hint}")
    time = np.asarray(t.time, dtype=np.float64)
    dt = np.diff(time)
    if len(dt) == 0 or not np.all(dt > 0) or np.ptp(dt) > 1e-3 * dt.mean() + 1e-6:
        raise ValueError(f"{name}: {path} stores no uniform time step (times {time[:3].tolist()}...); {hint}")
    return float(dt.mean())


def _traj_list(x, name: str, ndim: int) -> list:
    """A list of per-trajectory arrays with ``ndim`` dimensions (a stack of ``ndim + 1`` is split)."""
    if isinstance(x, np.ndarray) or hasattr(x, "shape"):
        a = x if isinstance(x, np.ndarray) else np.asarray(x)
        if a.ndim == ndim + 1:
            x = list(a)
        elif a.ndim == ndim:
            x = [a]
        else:
            raise ValueError(f"{name}: expected {ndim}-D trajectories or a stack of them, got shape {a.shape}")
    out = [t if isinstance(t, np.ndarray) else np.asarray(t) for t in x]
    if not out or any(t.ndim != ndim or len(t) < 2 for t in out):
        raise ValueError(f"{name}: expected a non-empty list of {ndim}-D trajectories of at least 2 frames")
    return out


# ----------------------------------------------------------------------------------- histograms
def js_distance(p, q, axis: int = -1) -> np.ndarray:
    """Jensen-Shannon distance ``sqrt(JS(p || q))`` with the natural log, of histograms on the same bins.

    ``JS = (KL(p || m) + KL(q || m)) / 2`` with ``m = (p + q) / 2``; counts are normalised along
    ``axis`` (``scipy.spatial.distance.jensenshannon``). 0 for equal distributions, ``sqrt(ln 2) =
    0.833`` for disjoint ones.

    Parameters
    ----------
    p, q : array (..., n_bins)
        Counts or probabilities.

    Returns
    -------
    np.ndarray (...), or a float for 1-D input
    """
    from scipy.spatial.distance import jensenshannon

    d = jensenshannon(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64), axis=axis)
    return float(d) if np.ndim(d) == 0 else d


class _Hist:
    """Histograms of ``k`` columns on fixed uniform bins (plus an overflow bin at each end), per group."""

    def __init__(self, lo, hi, n_bins: int, n_groups: int = 1):
        self.lo = np.asarray(lo, dtype=np.float32)
        hi = np.asarray(hi, dtype=np.float32)
        span = np.maximum(hi - self.lo, 1e-6)
        self.inv = (n_bins / (span * (1 + 1e-6))).astype(np.float32)
        self.nb, self.k, self.g = int(n_bins), len(self.lo), int(n_groups)
        self.counts = np.zeros((self.g, self.k, self.nb + 2))
        self._args = (lo, hi)

    def like(self, n_groups: int) -> _Hist:
        """Empty histograms on the same bins, for ``n_groups`` groups."""
        return _Hist(*self._args, self.nb, n_groups)

    def add(self, v, group=None, weights=None):
        v = np.asarray(v, dtype=np.float32).reshape(len(v), self.k)
        idx = np.floor((v - self.lo) * self.inv).astype(np.int64) + 1
        np.clip(idx, 0, self.nb + 1, out=idx)
        idx += np.arange(self.k) * (self.nb + 2)
        if group is not None:
            idx += np.asarray(group, dtype=np.int64)[:, None] * (self.k * (self.nb + 2))
        w = None if weights is None else np.repeat(np.asarray(weights, dtype=np.float64), self.k)
        self.counts += np.bincount(idx.ravel(), weights=w, minlength=self.counts.size).reshape(self.counts.shape)


def _hist1(x, edges) -> np.ndarray:
    """Counts of ``x`` on ``edges`` plus an overflow bin at each end, (n_bins + 2,)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    h = np.histogram(x, bins=edges)[0]
    return np.concatenate([[np.count_nonzero(x < edges[0])], h, [len(x) - h.sum() - np.count_nonzero(x < edges[0])]])


def _hist2(a, b, ea, eb) -> np.ndarray:
    """2-D counts on ``ea x eb`` flattened, plus one bin for everything outside, (n_a n_b + 1,)."""
    h = np.histogram2d(np.ravel(a), np.ravel(b), bins=(ea, eb))[0].ravel()
    return np.concatenate([h, [np.size(a) - h.sum()]])


# ---------------------------------------------------------------------------------- the feature pass
@dataclass
class _Described:
    """What the scorecard needs of one ensemble: per-frame series (per trajectory) and histograms."""

    series: dict            # name -> list of arrays (n_frames_i,) or (n_frames_i, d)
    hists: dict             # family -> counts (n_groups, k, n_bins + 2)
    frame_time: float       # in the reference's unit
    stride: int             # frames per common time step
    n_frames: int
    meta: dict = field(default_factory=dict)


def _families(md_xyz: list, n_bins: int, n_groups: int, chunk: int) -> dict:
    """Histogram families with the MD's ranges: pair distances, torsions, bond angles, bond lengths."""
    n = md_xyz[0].shape[1]
    k = n * (n - 1) // 2
    lo = {"distances": np.full(k, np.inf), "angles": np.full(n - 2, np.inf), "bonds": np.array([np.inf])}
    hi = {key: np.full_like(v, -np.inf) for key, v in lo.items()}
    for x in md_xyz:
        for a in range(0, len(x), chunk):
            b = np.array(x[a:a + chunk], dtype=np.float32)  # a writable copy (mdtraj C code refuses memory maps)
            for key, v in (("distances", structure.ca_distances(b)), ("angles", structure.ca_angles(b)),
                           ("bonds", structure.bond_lengths(b).reshape(-1, 1))):
                lo[key] = np.minimum(lo[key], v.min(0))
                hi[key] = np.maximum(hi[key], v.max(0))
    fam = {key: _Hist(lo[key], hi[key], n_bins, n_groups) for key in lo}
    fam["torsions"] = _Hist(np.full(n - 3, -np.pi), np.full(n - 3, np.pi), n_bins, n_groups)
    return fam


def _describe(xyz: list, fam_template: dict, tica, native, n_bins: int, chunk: int, groups=None, n_groups=1,
              msm_weights=None) -> tuple[dict, dict]:
    """One pass over the structures: histograms of the families and per-frame TIC, Q, Rg, RMSD series.

    ``groups``: per trajectory, the group (MD quarter) of each frame; ``msm_weights``: per frame of
    all trajectories laid end to end, how often the MSM baseline drew it (an extra histogram set).
    """
    fams = {key: h.like(n_groups) for key, h in fam_template.items()}
    wfams = None if msm_weights is None else {key: h.like(1) for key, h in fam_template.items()}
    series = {"tic": [], "rg": []} | ({"q": [], "rmsd": []} if native is not None else {})
    offset = 0
    for i, x in enumerate(xyz):
        parts = {key: [] for key in series}
        for a in range(0, len(x), chunk):
            b = np.array(x[a:a + chunk], dtype=np.float32)  # a writable copy (mdtraj C code refuses memory maps)
            g = None if groups is None else groups[i][a:a + len(b)]
            w = None if msm_weights is None else msm_weights[offset + a:offset + a + len(b)]
            d = structure.ca_distances(b)
            values = {"distances": d, "torsions": structure.ca_torsions(b), "angles": structure.ca_angles(b),
                      "bonds": structure.bond_lengths(b).reshape(-1, 1)}
            for key, v in values.items():
                if key == "bonds":
                    fams[key].add(v, None if g is None else np.repeat(g, b.shape[1] - 1))
                else:
                    fams[key].add(v, g)
                if wfams is not None:
                    wfams[key].add(v, None, np.repeat(w, b.shape[1] - 1) if key == "bonds" else w)
            parts["tic"].append(np.asarray(tica.transform(d.astype(np.float64)), dtype=np.float32))
            parts["rg"].append(structure.radius_of_gyration(b).astype(np.float32))
            if native is not None:
                parts["q"].append(structure.fraction_native_contacts(b, native))
                # optimal superposition by mdtraj's QCP (the Kabsch RMSD without building the rotated frames)
                parts["rmsd"].append(structure.rmsd_to_reference(b, native).astype(np.float32))
        for key in series:
            series[key].append(np.concatenate(parts[key]))
        offset += len(x)
    hists = {key: h.counts for key, h in fams.items()}
    if wfams is not None:
        hists = {key: (v, wfams[key].counts[0]) for key, v in hists.items()}
    return series, hists


# ------------------------------------------------------------------------------------ kinetics
def _its(dtrajs, stride: int, lags, frame_time: float, k: int, n_blocks: int | None):
    """Implied timescales (n_lags, k) in time units at lags ``lags`` common steps, and block errors
    (:func:`lss.msm.msm_timescales_vs_lag`)."""
    res = msm_timescales_vs_lag(dtrajs, [int(L) * stride for L in lags], k=k, n_blocks=n_blocks)
    return res["timescales"] * frame_time, res["timescales_err"] * frame_time


def _flux_rate(dtrajs, stride: int, frame_time: float, sets) -> float:
    """TPT rate (reactions per time unit) from metastable set A to set B of an MSM at one common step."""
    try:
        msm = estimate_msm(dtrajs, stride)
    except Exception:  # noqa: BLE001
        return float("nan")
    active = np.asarray(msm.count_model.state_symbols, dtype=int)
    a = np.nonzero(np.isin(active, sets[0]))[0]
    b = np.nonzero(np.isin(active, sets[1]))[0]
    if not len(a) or not len(b):
        return float("nan")
    return float(msm.reactive_flux(a, b).rate) / (stride * frame_time)


def _ln_ratio(c, r) -> float:
    """``|ln(c / r)|``; inf when the candidate has no finite positive value and MD has one."""
    c, r = float(c), float(r)
    if not (np.isfinite(r) and r > 0):
        return float("nan")
    if not (np.isfinite(c) and c > 0):
        return float("inf")
    return abs(math.log(c / r))


# ----------------------------------------------------------------------------------- the card
@dataclass
class ScoreCard:
    """The scores of the candidates, the MSM baseline and the MD-halves floor on every metric.

    Attributes
    ----------
    rows : dict name -> dict metric -> float
        Discrepancies (0: perfect; see :data:`METRICS` for each one's unit and definition); the first
        row is ``"equal-length MD"``, the floor.
    details : dict name -> dict
        The underlying numbers: per-feature JS distances, means with standard errors, implied
        timescales per lag with intervals, decorrelation and first-passage times with intervals,
        fluxes, CK errors per step; ``details["MD"]`` holds the reference's own.
    meta : dict
        Common time step, latent space, cores, sizes, parameters, timings.
    """

    rows: dict
    details: dict
    meta: dict
    tica: object = field(default=None, repr=False, compare=False)   # the TICA every ensemble was projected on

    @property
    def floor(self) -> dict:
        return self.rows[FLOOR]

    def ratio(self, name: str) -> dict:
        """``value / floor`` of every metric of row ``name`` (NaN where the floor is 0 or NaN)."""
        out = {}
        for k, v in self.rows[name].items():
            f = self.floor.get(k, np.nan)
            out[k] = float(v / f) if np.isfinite(f) and f > 0 and not np.isnan(v) else float("nan")
        return out

    def passes(self, name: str, factor: float = 3.0) -> dict:
        """Per metric: True where the row is within ``factor`` times the MD-halves floor."""
        return {k: bool(r <= factor) for k, r in self.ratio(name).items() if not np.isnan(r)}

    def to_dict(self) -> dict:
        metrics = {k: {"group": g, "label": lab, "unit": u, "how": how} for k, (g, lab, u, how) in METRICS.items()
                   if k in self.floor}
        rows = {name: {k: {"value": v, "ratio_to_floor": self.ratio(name)[k]} for k, v in r.items()}
                for name, r in self.rows.items()}
        return jsonable({"format": FORMAT, "metrics": metrics, "floors": {
            FLOOR: "independent MD of the training length: pieces of the reference of that length, each scored "
                   "against the whole reference; mean over pieces (details: each piece and the spread)",
            MSM_ROW: "a Markov state model of the training MD's latent space (k-means, reversible MSM at the "
                     "common time step) sampled into training frames (it replays them), scored like a candidate"},
            "rows": rows, "details": self.details, "meta": self.meta}, nonfinite_as_str=True)

    def to_json(self, path) -> Path:
        """Write ``score.json``: every number with its unit and how it was computed."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=True) + "\n")
        return path

    def markdown(self) -> str:
        """A markdown table: metrics as rows, ensembles as columns, ``value (x ratio to the equal-length floor)``."""
        names = list(self.rows)
        head = "| metric | unit | " + " | ".join(names) + " |"
        lines = [head, "|" + "---|" * (len(names) + 2)]
        for k in self.floor:
            g, lab, u, _ = METRICS[k]
            cells = []
            for n in names:
                v, r = self.rows[n][k], self.ratio(n)[k]
                cells.append(f"{v:.3g}" if n == FLOOR or np.isnan(r) else f"{v:.3g} (x{r:.2g})")
            lines.append(f"| {g}: {lab} | {u} | " + " | ".join(cells) + " |")
        m = self.meta
        lines.append("")
        lines.append(f"Common time step {m['dt']:g} {m['time_unit']}; latent space: {m['latent_space']}; "
                     f"JS: Jensen-Shannon distance, natural log (0 ... 0.833); (x r): ratio to the floor, independent MD of "
                     f"{m['floor_frames']:,} frames against the reference ({m['reference']}, {m['n_frames'][m['reference']]:,} "
                     f"frames); {MSM_ROW}: replays the frames of {m['msm_from']}.")
        return "\n".join(lines)

    def figure(self, path=None, max_ratio: float = 10.0):
        """One page: ensembles as rows, metrics as columns, coloured by ``value / floor`` on a log scale.

        Dark green at ``1 / max_ratio`` of the floor (far better than independent MD of the training
        length), pale at the floor (1), red at ``max_ratio`` times it or more; each cell shows the value.
        Returns the matplotlib figure (saved to ``path`` when given).
        """
        import matplotlib.pyplot as plt
        from matplotlib.colors import LinearSegmentedColormap, LogNorm

        names = list(self.rows)
        keys = list(self.floor)
        R = np.array([[self.ratio(n)[k] if n != FLOOR else 1.0 for k in keys] for n in names])
        V = np.array([[self.rows[n][k] for k in keys] for n in names])
        cmap = LinearSegmentedColormap.from_list(
            "floor", [(0.0, "#00441b"), (0.35, "#41ab5d"), (0.5, "#f7fcb9"), (0.68, "#fdae61"), (1.0, "#a50026")])
        fig, ax = plt.subplots(figsize=(max(8.0, 0.62 * len(keys) + 2), 0.55 * len(names) + 2.6), layout="constrained")
        Rp = np.where(np.isfinite(R), np.clip(R, 1 / max_ratio, max_ratio), np.where(np.isnan(R), np.nan, max_ratio))
        im = ax.imshow(np.ma.masked_invalid(Rp), cmap=cmap, norm=LogNorm(1.0 / max_ratio, max_ratio), aspect="auto")
        for i in range(len(names)):
            for j in range(len(keys)):
                v, r = V[i, j], Rp[i, j]
                dark = np.isfinite(r) and (r < 0.2 or r > 5)
                ax.text(j, i, "n/a" if np.isnan(v) else ("inf" if np.isinf(v) else f"{v:.2g}"),
                        ha="center", va="center", fontsize=7, color="white" if dark else "black")
        ax.set_xticks(range(len(keys)), [METRICS[k][1] for k in keys], rotation=50, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=9)
        groups = [METRICS[k][0] for k in keys]
        for j in range(1, len(keys)):
            if groups[j] != groups[j - 1]:
                ax.axvline(j - 0.5, color="k", lw=1.5)
        ax.axhline(0.5, color="k", lw=1.0)
        m = self.meta
        ax.set_title(f"scorecard against {m['reference']} ({m['n_frames'][m['reference']]:,} frames); floor: "
                     f"independent MD of {m['floor_frames']:,} frames; common time step {m['dt']:g} {m['time_unit']}",
                     fontsize=9)
        cb = fig.colorbar(im, ax=ax, label="value / floor (1: as good as independent MD of the training length)",
                          shrink=0.8)
        cb.set_ticks([0.1, 0.3, 1, 3, 10], labels=["0.1", "0.3", "1", "3", "10"])
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=150)
        return fig

    def save(self, directory, stem: str = "score") -> dict:
        """Write ``score.json``, ``score.md`` and ``score.png`` to ``directory``; returns their paths."""
        import matplotlib.pyplot as plt

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        paths = {"json": self.to_json(d / f"{stem}.json"), "markdown": d / f"{stem}.md", "figure": d / f"{stem}.png"}
        paths["markdown"].write_text(self.markdown() + "\n")
        plt.close(self.figure(paths["figure"]))
        return paths


# ---------------------------------------------------------------------------------------- score
@dataclass
class Prepared:
    """What the stages of :func:`score` share, made once by :func:`prepare`.

    Attributes
    ----------
    desc : dict name -> _Described
        Per row (``"MD"`` is the reference, then the candidates and the MSM baseline): per-frame series
        (``tic`` (n, tica_dim), ``rg`` nm, ``q``, ``rmsd`` nm, ``latent`` (n, m)), histograms of every
        feature family, frame time, frames per common step; ``meta["dtrajs"]`` its states of the MSM.
    hists : dict name -> dict
        Per row, the histograms and free-energy surfaces every ensemble and structure metric reads
        (:func:`_hist_stats`); ``"piece <p>"`` for each piece of the floor.
    edges : dict
        Bin edges of ``tic1``, ``tic2``, ``tic3``, ``rg``, ``latent1`` (and ``q``, ``rmsd``): the reference's range.
    base, sets
        The reference's MSM (:class:`lss.msm.MSMBaseline`) and its PCCA+ metastable sets.
    lo_hi : (float, float)
        Cores of the first-passage times on the core coordinate.
    floor_frames, n_pieces : int
        Length (reference frames) and number of the floor's pieces; ``pieces`` their latent, TIC, core
        and discrete trajectories.
    acf_steps : int
        Largest autocorrelation lag, common time steps.
    dt : float
        The common time step, ``time_unit``.
    """

    desc: dict
    hists: dict
    edges: dict
    native: np.ndarray | None
    tica: object
    base: MSMBaseline
    sets: list
    lo_hi: tuple
    floor_frames: int
    n_pieces: int
    pieces: dict
    acf_steps: int
    dt: float
    params: dict
    meta: dict
    timings: dict

    @property
    def names(self) -> list:
        """Rows scored against the reference: the MSM baseline, then the candidates."""
        rest = [n for n in self.desc if n != "MD"]
        return ([MSM_ROW] if MSM_ROW in rest else []) + [n for n in rest if n != MSM_ROW]


def prepare(reference: Ensemble, candidates: dict, native=None, encoder=None, msm_baseline: bool = True,
            n_states: int = 100, n_sets: int = 2, n_bins: int = 40, its_lags=(1, 2, 3, 4, 5), n_its: int = 3,
            acf_max_steps: int | None = None, core_coordinate: str = "latent", cores=None, ck_steps: int = 5,
            max_dF: float = 6.0, tica_dim: int = 3, tica_lag: int | None = None, n_blocks: int = 5,
            n_boot: int = 1000, msm_size=None, random_state: int = 0, chunk: int = 50_000,
            training: str | None = None, floor_frames: int | None = None, msm_replay=None) -> Prepared:
    """The first stage of :func:`score` (same parameters): common time grid, latent space, TICA, the
    reference's MSM, the floor's pieces, the MSM baseline and one feature pass over every ensemble."""
    import time

    t0 = time.perf_counter()
    timings = {}
    if not isinstance(reference, Ensemble) or not all(isinstance(c, Ensemble) for c in candidates.values()):
        raise TypeError("reference and every candidate must be an lss.score.Ensemble")
    if not candidates:
        raise ValueError("candidates is empty: give at least one ensemble to score")
    reserved = {FLOOR, "MD"} | ({MSM_ROW} if msm_baseline else set())
    for name, cand in candidates.items():
        if name in reserved:
            raise ValueError(f"candidate name {name!r} is reserved (rows {sorted(reserved)})")
        if cand.n_atoms != reference.n_atoms:
            raise ValueError(f"{name} has {cand.n_atoms} atoms, the reference {reference.n_atoms}")
    if core_coordinate not in ("latent", "tic1", "q") or (core_coordinate == "q" and native is None):
        raise ValueError(f"core_coordinate must be 'latent', 'tic1' or 'q' (with native), got {core_coordinate!r}")
    unit = reference.time_unit
    to_unit = 1.0 / time_factor_ps(unit)
    ens = {"MD": reference} | dict(candidates)
    dt_ps = max(e.frame_time_ps for e in ens.values())
    stride = {}
    for n, e in ens.items():
        s = dt_ps / e.frame_time_ps
        if abs(s - round(s)) > 1e-6 * s:
            raise ValueError(f"{n}: frame time {e.frame_time_ps:g} ps does not divide the common time step "
                             f"{dt_ps:g} ps (the longest frame time); kinetics need a common time grid")
        stride[n] = round(s)
    dt = dt_ps * to_unit
    s_md = stride["MD"]
    if native is not None:
        native = structure._xyz(native, "native")[0]

    # latent space (the ensembles are not modified)
    lat_of = {n: e.latent for n, e in ens.items()}
    if encoder is not None:
        for n, e in ens.items():
            if e.latent is None:
                lat_of[n] = [np.asarray(encoder.transform(np.asarray(x)), dtype=np.float32) for x in e.xyz]
    latent_mode = "given" if all(v is not None for v in lat_of.values()) else "tica"
    if latent_mode == "tica" and any(v is not None for v in lat_of.values()):
        warnings.warn(f"{[n for n, v in lat_of.items() if v is None]} have no latent trajectories and no "
                      f"encoder was given: every ensemble is scored on TICA of the MD's C-alpha distances instead",
                      RuntimeWarning, stacklevel=3)

    # TICA of the MD's C-alpha distances, fitted on at most ~10,000 pairs (x_t, x_t+lag): the components
    # hardly change and memory stays bounded for 10^6-frame MD (frames every gcd(lag, stride) only)
    md_xyz = reference.xyz
    lag_t = int(tica_lag) if tica_lag is not None else max(1, s_md)
    step = max(1, lag_t // 5, reference.n_frames // 10_000)
    g = math.gcd(lag_t, step)
    tica = analysis.fit_tica([structure.ca_distances(x[::g]) for x in md_xyz if len(x[::g]) > lag_t // g],
                             lag=lag_t // g, dim=tica_dim, stride=step // g)

    def project(x):
        return np.concatenate([np.asarray(tica.transform(structure.ca_distances(x[a:a + chunk]).astype(np.float64)),
                                          dtype=np.float32) for a in range(0, len(x), chunk)])

    md_tic = [project(x) for x in md_xyz]
    tica_frames = np.asarray(tica.timescales(lag_t // g))[:3] * g     # implied timescales of the TICs, MD frames
    timings["tica_s"] = time.perf_counter() - t0

    def latent_of(n, tic):
        return [np.asarray(z, dtype=np.float32) for z in lat_of[n]] if latent_mode == "given" else tic

    md_lat = latent_of("MD", md_tic)

    # the floor: the reference cut into pieces of floor_frames (frames laid end to end, the remainder
    # left out); frame group = its piece (group n_pieces: the remainder)
    n_md = reference.n_frames
    if training is not None and training not in candidates:
        raise ValueError(f"training={training!r} is not a candidate ({list(candidates)})")
    if floor_frames is not None:
        L = int(floor_frames)
    elif training is not None:
        L = int(round(candidates[training].n_frames * candidates[training].frame_time_ps / reference.frame_time_ps))
        if 2 * L > n_md:
            warnings.warn(f"the reference ({n_md} frames) holds fewer than two pieces of the training MD's length ({L} "
                          f"frames): the floor is taken from its halves, which flatters nothing but is noisier than an "
                          f"independent run of the training length", RuntimeWarning, stacklevel=3)
            L = n_md // 2
    else:
        L = n_md // 4
    n_pieces = n_md // max(L, 1)
    if L < 2 or n_pieces < 2:
        raise ValueError(f"floor_frames={floor_frames} leaves fewer than 2 pieces of the reference ({n_md} frames): "
                         f"give at most half the reference's length")
    starts = np.concatenate([[0], np.cumsum([len(x) for x in md_xyz])])
    groups = [np.minimum(np.arange(starts[i], starts[i + 1]) // L, n_pieces) for i in range(len(md_xyz))]

    # MSM on the reference's latent space: the states and sets of every kinetic metric
    t1 = time.perf_counter()
    base = MSMBaseline(n_states=n_states, lag=s_md, random_state=random_state,
                       stride=max(1, sum(map(len, md_lat)) // 20_000)).fit(md_lat)  # k-means on <= ~20,000 frames
    sets = base.metastable_sets(n_sets)
    # the MSM baseline: an MSM of ``msm_from``'s latent space sampled into its frames
    src = "MD" if training is None else training
    if msm_replay is not None:      # the caller's MSM baseline, made the same way (lss.compare.ensembles)
        draws = [np.asarray(r, dtype=np.int64) for r in msm_replay] if msm_baseline else []
        n_traj_msm, n_frames_msm = np.shape(msm_replay)
    else:
        src_lat = md_lat if src == "MD" else latent_of(
            src, [project(x) for x in ens[src].xyz] if latent_mode == "tica" else None)
        src_base = base if src == "MD" else MSMBaseline(
            n_states=n_states, lag=stride[src], random_state=random_state,
            stride=max(1, sum(map(len, src_lat)) // 20_000)).fit(src_lat)
        sizes = [(len(e.xyz), max(len(x) for x in e.xyz) // stride[n]) for n, e in candidates.items()]
        n_traj_msm, n_frames_msm = msm_size if msm_size is not None else max(sizes, key=lambda s: s[0] * s[1])
        draws = [src_base.sample(n_frames_msm - 1, random_state=random_state + 1 + i, return_index=True)[1]
                 for i in range(int(n_traj_msm))] if msm_baseline else []
    msm_idx = np.concatenate(draws) if draws else None
    weights = (np.bincount(msm_idx, minlength=ens[src].n_frames).astype(np.float64)
               if msm_idx is not None else None)
    timings["msm_s"] = time.perf_counter() - t1

    # the feature pass
    t1 = time.perf_counter()
    fam = _families(md_xyz, n_bins, 1, chunk)
    desc = {}
    md_series, md_hists = _describe(md_xyz, fam, tica, native, n_bins, chunk, groups, n_pieces + 1,
                                    weights if src == "MD" else None)
    md_series["tic"] = md_tic
    md_series["latent"] = md_lat
    desc["MD"] = _Described(md_series, md_hists, reference.frame_time_ps * to_unit, s_md, n_md)
    for n, e in candidates.items():
        ser, hists = _describe(e.xyz, fam, tica, native, n_bins, chunk, msm_weights=weights if n == src else None)
        ser["latent"] = latent_of(n, ser["tic"])
        desc[n] = _Described(ser, hists, e.frame_time_ps * to_unit, stride[n], e.n_frames)
    if msm_idx is not None:
        d_src = desc[src]
        desc[MSM_ROW] = _Described(
            {k: np.split(np.concatenate(v)[msm_idx], len(draws)) for k, v in d_src.series.items()},
            {k: v[1][None] for k, v in d_src.hists.items()}, dt, 1, len(msm_idx))
        d_src.hists = {k: v[0] for k, v in d_src.hists.items()}
    timings["features_s"] = time.perf_counter() - t1

    # discrete trajectories on the reference MSM's states
    for n, d in desc.items():
        d.meta["dtrajs"] = base.transform(d.series["latent"])
        if isinstance(d.meta["dtrajs"], np.ndarray):
            d.meta["dtrajs"] = [d.meta["dtrajs"]]

    # edges of the scalar series (the MD's range)
    md_cat = {k: np.concatenate(v) for k, v in md_series.items()}

    def edges(x):
        lo, hi = float(np.min(x)), float(np.max(x))
        return np.linspace(lo, hi + 1e-9 * max(1.0, abs(hi - lo)), n_bins + 1)

    E = {f"tic{i + 1}": edges(md_cat["tic"][:, i]) for i in range(min(3, md_cat["tic"].shape[1]))}
    E |= {"rg": edges(md_cat["rg"]), "latent1": edges(md_cat["latent"][:, 0])}
    if native is not None:
        nc = len(structure.native_contact_pairs(native))
        E["q"] = (np.arange(nc + 2) - 0.5) / nc
        E["rmsd"] = edges(md_cat["rmsd"])
    core_md = {"q": lambda: md_cat["q"], "tic1": lambda: md_cat["tic"][:, 0],
               "latent": lambda: md_cat["latent"][:, 0]}[core_coordinate]()
    lo_hi = tuple(float(v) for v in (cores if cores is not None else np.quantile(core_md, [0.2, 0.8])))

    # autocorrelation range, common steps
    def shortest_block(trajs, nb):
        return min(max(len(p) for p in b) for b in split_blocks(trajs, nb))

    pieces = {key: cut_pieces(v, L, n_pieces) for key, v in
              (("lat", md_lat), ("tic", md_tic), ("core", _core_series(md_series, core_coordinate)),
               ("dtrajs", desc["MD"].meta["dtrajs"]))}
    cap = min([(shortest_block(d.series["latent"], n_blocks) - 1) // d.stride for d in desc.values()]
              + [(min(max(len(x) for x in p) for p in pieces["lat"]) - 1) // s_md])
    if acf_max_steps is None:
        c = kinetics.autocorrelation([z[:, 0] for z in md_lat], max(1, cap * s_md))[::s_md]
        below = np.nonzero(c < math.exp(-2))[0]
        acf_max_steps = int(min(cap, max(3, 3 * below[0]))) if len(below) else int(cap)
    M = int(min(acf_max_steps, cap))
    if M < 2:
        raise ValueError(f"the trajectories are too short for autocorrelations of at least 2 common time steps "
                         f"({dt:g} {unit}) in {n_blocks} blocks")
    params = {"n_bins": n_bins, "its_lags_steps": list(its_lags), "n_its": n_its, "acf_max_steps": M, "ck_steps": ck_steps,
              "max_dF_kT": max_dF, "n_blocks": n_blocks, "n_boot": n_boot, "random_state": random_state,
              "core_coordinate": core_coordinate}
    meta = {"reference": reference.name, "candidates": list(candidates), "time_unit": unit, "dt": dt,
            "floor_frames": L, "msm_from": reference.name if src == "MD" else src, "training": training,
            "strides": dict(stride),
            "latent_space": "the ensembles' own latent trajectories" if latent_mode == "given"
            else f"TICA (kinetic map) of the MD's C-alpha distances ({tica_dim} components, lag {lag_t} frames)",
            "cores": {"coordinate": core_coordinate, "lo": lo_hi[0], "hi": lo_hi[1],
                      "how": "given" if cores is not None else "MD's 20th and 80th percentiles"},
            "n_frames": {reference.name: n_md} | {n: d.n_frames for n, d in desc.items() if n != "MD"},
            "msm": {"n_states": n_states, "active": len(base.active_set_), "lag_frames": s_md, "n_sets": n_sets,
                    "sample": [int(n_traj_msm), int(n_frames_msm)] if msm_baseline else None},
            "params": params, "edges": E, "tica_timescales_frames": tica_frames}
    p = Prepared(desc, {}, E, native, tica, base, sets, lo_hi, L, n_pieces, pieces, M, dt, params, meta, timings)
    t1 = time.perf_counter()
    md_group = np.concatenate(groups)
    md_hists = desc["MD"].hists     # (the MSM baseline's weighted copies split off above)
    p.hists["MD"] = _hist_stats(p, md_series, {k: v[:n_pieces + 1].sum(0) for k, v in md_hists.items()})
    for i in range(n_pieces):
        p.hists[f"piece {i}"] = _hist_stats(p, md_series, {k: v[i] for k, v in md_hists.items()}, md_group == i)
    for n, d in desc.items():
        if n != "MD":
            p.hists[n] = _hist_stats(p, d.series, {k: v.sum(0) for k, v in d.hists.items()})
    timings["histograms_s"] = time.perf_counter() - t1
    return p


def _core_series(ser: dict, core_coordinate: str) -> list:
    key = {"q": "q", "tic1": "tic", "latent": "latent"}[core_coordinate]
    return [np.asarray(x if x.ndim == 1 else x[:, 0], dtype=np.float64) for x in ser[key]]


def _hist_stats(p: Prepared, ser: dict, family_hists: dict, group_mask=None) -> dict:
    """Histograms and free-energy profiles of one ensemble (or of the reference's frames in ``group_mask``)."""
    def cat(key, col=None):
        v = np.concatenate(ser[key])
        v = v if col is None else v[:, col]
        return v if group_mask is None else v[group_mask]

    E = p.edges
    h = {"tic1": _hist1(cat("tic", 0), E["tic1"]), "rg": _hist1(cat("rg"), E["rg"]),
         "tic12": _hist2(cat("tic", 0), cat("tic", 1), E["tic1"], E["tic2"])}
    if p.native is not None:
        h["q"] = _hist1(cat("q"), E["q"])
        h["rmsd"] = _hist1(cat("rmsd"), E["rmsd"])
    for b in [i for i in (1, 2) if f"tic{i + 1}" in E]:
        h[f"F_tic1{b + 1}"] = analysis.free_energy_2d(cat("tic", 0), cat("tic", b), bins=(E["tic1"], E[f"tic{b + 1}"]))[2]
    h["profile_latent1"] = analysis.free_energy_profile(cat("latent", 0), bins=E["latent1"], n_blocks=p.params["n_blocks"])
    h["F_latent1"] = h["profile_latent1"][1]
    h.update(family_hists)
    return h


def _aligned(b, a, max_dF: float) -> tuple[float, float]:
    """Aligned RMSE of free energy ``a`` against ``b`` over ``b``'s bins within ``max_dF``, and the
    fraction of those bins ``a`` misses."""
    region = analysis.sampled_region(b, max_dF=max_dF)
    ok = region & np.isfinite(a)
    return (analysis.aligned_rmse(b, a, mask=ok) if ok.any() else float("nan")), float(1 - ok.sum() / region.sum())


def ensemble_stage(p: Prepared) -> dict:
    """Ensemble metrics of every row and floor piece against the reference (JS distances of torsions,
    distances, TIC1 and TIC1-TIC2; free-energy RMSEs of TIC1-TIC2 and of the slowest latent coordinate).

    Returns ``{"values": name -> metric -> float, "details": name -> per-feature JS distances}``
    (``"piece <i>"`` for the floor's pieces) and, per row and the reference (``"MD"``), ``profile_latent1``
    (centres, F, block standard error of F) and the surfaces ``F_tic12``, ``F_tic13`` on ``meta["edges"]``."""
    b = p.hists["MD"]
    values, details = {}, {}
    for n in [k for k in p.hists if k != "MD"]:
        a = p.hists[n]
        det = {"js_torsions": js_distance(a["torsions"], b["torsions"]),
               "js_distances": js_distance(a["distances"], b["distances"])}
        out = {k: float(np.mean(v)) for k, v in det.items()}
        out["js_tic1"] = js_distance(a["tic1"], b["tic1"])
        out["js_tic12"] = js_distance(a["tic12"], b["tic12"])
        out["fe_tic12"], out["missed_tic12"] = _aligned(b["F_tic12"], a["F_tic12"], p.params["max_dF_kT"])
        if "F_tic13" in b:
            out["fe_tic13"] = _aligned(b["F_tic13"], a["F_tic13"], p.params["max_dF_kT"])[0]
        out["fe_latent1"] = _aligned(b["F_latent1"], a["F_latent1"], p.params["max_dF_kT"])[0]
        values[n], details[n] = out, det
    for n in ["MD"] + p.names:       # what Fig. 3 and Fig. 4 draw: F(latent1) with block errors, the TIC surfaces
        details.setdefault(n, {}).update({k: p.hists[n][k] for k in ("profile_latent1", "F_tic12", "F_tic13")
                                          if k in p.hists[n]})
    return {"values": values, "details": details}


def structure_stage(p: Prepared) -> dict:
    """Structure metrics of every row and floor piece: JS distances of Q, Rg, RMSD to native, bonds and
    bond angles; ``details``: means of Rg (and Q, RMSD) with block standard errors per row."""
    b = p.hists["MD"]
    values = {}
    for n in [k for k in p.hists if k != "MD"]:
        a = p.hists[n]
        out = {"js_q": js_distance(a["q"], b["q"])} if p.native is not None else {}
        out["js_rg"] = js_distance(a["rg"], b["rg"])
        if p.native is not None:
            out["js_rmsd"] = js_distance(a["rmsd"], b["rmsd"])
        out["js_bonds"] = float(js_distance(a["bonds"], b["bonds"])[0])
        out["js_angles"] = js_distance(a["angles"].sum(0), b["angles"].sum(0))
        values[n] = out
    details = {n: {"means": _means(d.series, p.native, p.params["n_blocks"])} for n, d in p.desc.items()}
    return {"values": values, "details": details}


def _kinetic_stats(p: Prepared, lat, tic, core, dtrajs, s, ft, blocks: bool, seed: int, table: bool = False) -> dict:
    """Kinetic numbers of one ensemble (trajectory lists), at ``s`` frames per common step."""
    nb = p.params["n_blocks"] if blocks else None
    M = p.acf_steps
    k = {}
    k["its"], k["its_err"] = _its(dtrajs, s, p.params["its_lags_steps"], ft, p.params["n_its"], nb)
    x = [np.stack([z[:, 0], t[:, 0]], 1).astype(np.float64) for z, t in zip(lat, tic)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t, err = kinetics.relaxation_times(x, M * s, ft, nb, lag_step=s)
        if table:   # Table 1: every latent coordinate, with the autocorrelations the fits saw
            z = [np.asarray(v, dtype=np.float64) for v in lat]
            k["relax"] = kinetics.relaxation_table(z, M * s, ft, lag_step=s, n_blocks=p.params["n_blocks"], min_points=5)
            k["acf"] = kinetics.autocorrelation(z, M * s)[::s]
    k["tdecor_latent1"], k["tdecor_tic1"] = float(t[0]), float(t[1])
    k["tdecor_latent1_err"], k["tdecor_tic1_err"] = float(err[0]), float(err[1])
    k["mfpt"] = kinetics.mean_first_passage_times([c[::s] for c in core], *p.lo_hi, frame_time=ft * s,
                                                  n_boot=p.params["n_boot"], random_state=seed)
    k["flux_rate"] = _flux_rate(dtrajs, s, ft, p.sets)
    return k


def _kinetic_metrics(a, b) -> dict:
    return {"its": float(np.nanmean([_ln_ratio(x, y) for x, y in zip(a["its"][:, 0], b["its"][:, 0])])),
            "tdecor_tic1": _ln_ratio(a["tdecor_tic1"], b["tdecor_tic1"]),
            "tdecor_latent1": _ln_ratio(a["tdecor_latent1"], b["tdecor_latent1"]),
            "mfpt_lo_hi": _ln_ratio(a["mfpt"]["lo_to_hi"]["mean"], b["mfpt"]["lo_to_hi"]["mean"]),
            "mfpt_hi_lo": _ln_ratio(a["mfpt"]["hi_to_lo"]["mean"], b["mfpt"]["hi_to_lo"]["mean"]),
            "flux": _ln_ratio(a["flux_rate"], b["flux_rate"])}


def _ck(p: Prepared, d_other, other_lag, blocks: bool = False) -> dict:
    """The counted set-to-set probabilities of the reference and of ``d_other`` at k dt (the CK test), and
    their RMS difference per k (``per_step``) and mean over k (``error``)."""
    r = chapman_kolmogorov(p.desc["MD"].meta["dtrajs"], d_other, lag=p.desc["MD"].stride, n_steps=p.params["ck_steps"],
                           other_lag=other_lag, sets=p.sets, n_blocks=p.params["n_blocks"] if blocks else None)
    diff = (r["other"] - r["reference"]).reshape(len(r["k"]), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_step = np.sqrt(np.nanmean(diff ** 2, axis=1))
    r["per_step"] = per_step
    r["error"] = float(np.nanmean(per_step)) if np.isfinite(per_step).any() else float("inf")
    return r


def kinetics_stage(p: Prepared) -> dict:
    """Kinetic metrics of every row and floor piece: implied timescales, decorrelation times, first-passage
    times, TPT flux, CK error (all ``|ln(candidate / reference)|`` but the CK error).

    ``details`` per row: implied timescales per lag, decorrelation and first-passage times with 95 %
    intervals, flux, ``relax`` (the relaxation table of every latent coordinate, Table 1) and ``acf``
    (their autocorrelations on the common grid), and ``ck`` (the CK test's probabilities)."""
    rs = p.params["random_state"]
    core = {n: _core_series(d.series, p.params["core_coordinate"]) for n, d in p.desc.items()}
    d_md = p.desc["MD"]
    stats = {n: _kinetic_stats(p, d.series["latent"], d.series["tic"], core[n], d.meta["dtrajs"], d.stride,
                               d.frame_time, True, rs, table=True) for n, d in p.desc.items()}
    values, details = {}, {}
    for i in range(p.n_pieces):
        kp = _kinetic_stats(p, p.pieces["lat"][i], p.pieces["tic"][i], p.pieces["core"][i], p.pieces["dtrajs"][i],
                            d_md.stride, d_md.frame_time, False, rs + i)
        values[f"piece {i}"] = _kinetic_metrics(kp, stats["MD"]) | {"ck": _ck(p, p.pieces["dtrajs"][i], d_md.stride)["error"]}
    for n, d in p.desc.items():
        details[n] = _kin_details(stats[n], p.params["its_lags_steps"], p.dt) | {
            "relax": stats[n]["relax"], "acf": stats[n]["acf"]}
        if n != "MD":
            ck = _ck(p, d.meta["dtrajs"], d.stride, blocks=True)
            values[n] = _kinetic_metrics(stats[n], stats["MD"]) | {"ck": ck["error"]}
            details[n] |= {"ck": ck, "ck_per_step": ck["per_step"]}
    return {"values": values, "details": details}


def score(reference: Ensemble, candidates: dict, **kwargs) -> ScoreCard:
    """Score candidate ensembles against a reference (converged MD), each metric beside the equal-length floor.

    See the module docstring for the metrics and the floors. The stages can be called one by one
    (:func:`prepare`, then :func:`ensemble_stage`, :func:`structure_stage`, :func:`kinetics_stage`),
    e.g. by a notebook that draws their details.

    Parameters
    ----------
    reference : Ensemble
        The yardstick: MD as long as can be had (the converged reference); the training MD is a candidate.
    candidates : dict name -> Ensemble
        Generated ensembles (same atoms). Their frame times must divide the common time step ``dt``
        (the longest frame time of all), e.g. LSS frames one propagator lag apart.
    native : array (n_atoms, 3) nm or mdtraj.Trajectory, optional
        Native structure: Q and RMSD to it are scored (skipped without it).
    encoder : object with ``transform(xyz) -> (n_frames, m)``, optional
        Encodes ensembles that have no latent trajectories (e.g. :class:`lss.features.Encoder`).
    msm_baseline : bool
        Score the MSM baseline (row ``"MSM baseline"``).
    n_states, n_sets : int
        k-means states of the MSM (implied timescales, flux, CK test, baseline) and PCCA+ sets.
    n_bins : int
        Bins per axis of every histogram (JS distances, free energies), over the MD's range.
    its_lags : sequence of int
        Lags of the implied timescales, in common time steps ``dt``.
    n_its : int
        Implied timescales kept per lag (the card scores the slowest).
    acf_max_steps : int, optional
        Largest autocorrelation lag for the decorrelation times, in ``dt``; default three times the
        first lag where the MD's autocorrelation of the slowest latent coordinate drops below e^-2,
        within what the blocks allow.
    core_coordinate : {"latent", "tic1", "q"}
        Coordinate of the cores of the first-passage times (``"q"`` needs ``native``).
    cores : (float, float), optional
        ``(lo, hi)`` core cutoffs on it (e.g. (0.45, 0.85) on Q); default the MD's 20th and 80th
        percentiles.
    ck_steps : int
        CK test up to ``ck_steps`` common time steps.
    max_dF : float
        Free energies are compared where the MD's is within ``max_dF`` kT of its minimum.
    tica_dim, tica_lag : int
        TICA components, and lag in MD frames (default one common time step).
    n_blocks : int
        Contiguous blocks for the errors of implied timescales and decorrelation times.
    n_boot : int
        Bootstrap samples of the first-passage intervals (blocks of :mod:`lss.kinetics`).
    msm_size : (int, int), optional
        Trajectories and frames of the MSM baseline; default those of the largest candidate (on ``dt``).
    random_state : int
        Seeds the MSM baseline and the bootstraps.
    chunk : int
        Frames per step of the feature pass.
    training : str, optional
        The candidate that is the training MD: the floor's pieces have its length (in time), so the
        floor is what an independent MD run of that length scores, and the MSM baseline replays its
        frames. Default: pieces of a quarter of the reference, the MSM replaying reference frames.
    floor_frames : int, optional
        Length of the floor's pieces in reference frames (overrides the one ``training`` implies).
    msm_replay : array (n_traj, n_frames) int, optional
        The MSM baseline's trajectories as indices of the frames it replays (of ``training``'s frames laid
        end to end, or the reference's without ``training``), when the caller has sampled them already
        (made the way this function would: ``lss.compare.ensembles``); the MSM is then not fitted again.

    Returns
    -------
    ScoreCard
    """
    import time

    t0 = time.perf_counter()
    p = prepare(reference, candidates, **kwargs)
    stages = {}
    for name, stage in (("ensemble", ensemble_stage), ("structure", structure_stage), ("kinetics", kinetics_stage)):
        t1 = time.perf_counter()
        stages[name] = stage(p)
        p.timings[f"{name}_s"] = time.perf_counter() - t1
    return assemble(p, stages, time.perf_counter() - t0)


def assemble(p: Prepared, stages: dict, seconds: float = float("nan")) -> ScoreCard:
    """The :class:`ScoreCard` of the stages' results: the floor (mean over pieces) and every row."""
    piece_keys = [f"piece {i}" for i in range(p.n_pieces)]
    merged = {n: {} for n in piece_keys + p.names}
    for st in stages.values():
        for n, v in st["values"].items():
            merged[n] |= v
    floor_vals = [merged[k] for k in piece_keys]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        floor = {key: float(np.nanmean([v[key] for v in floor_vals])) for key in floor_vals[0]}
        floor_sd = {key: float(np.nanstd([v[key] for v in floor_vals], ddof=1)) for key in floor_vals[0]}
    keys = [k for k in METRICS if k in floor]
    rows = {FLOOR: {k: floor[k] for k in keys}} | {n: {k: merged[n][k] for k in keys} for n in p.names}
    details = {n: {} for n in ["MD"] + p.names}
    for st in stages.values():
        for n, v in st["details"].items():
            if n in details:
                details[n] |= v
    details[FLOOR] = {"piece_frames": p.floor_frames, "n_pieces": p.n_pieces, "values": floor_vals,
                      "sd": {k: floor_sd[k] for k in keys}}
    for key in ("js_torsions", "js_distances"):   # per-feature floors, mean over the pieces
        details[FLOOR][key] = np.mean([stages["ensemble"]["details"][k][key] for k in piece_keys], 0)
    for n in ["MD"] + p.names:
        details[n] |= {"n_frames": p.desc[n].n_frames, "frame_time": p.desc[n].frame_time}
    timings = dict(p.timings) | {"total_s": seconds}
    return ScoreCard(rows, details, p.meta | {"timings_s": timings}, tica=p.tica)


def _kin_details(k: dict, lags, dt: float) -> dict:
    """Kinetic numbers with intervals (95 %: +/- 1.96 block standard errors, bootstrap for passages)."""
    z = 1.96
    return {"its_lag_times": [float(L * dt) for L in lags], "its": k["its"],
            "its_low": k["its"] - z * k["its_err"], "its_high": k["its"] + z * k["its_err"],
            "tdecor_tic1": [k["tdecor_tic1"], k["tdecor_tic1"] - z * k["tdecor_tic1_err"],
                            k["tdecor_tic1"] + z * k["tdecor_tic1_err"]],
            "tdecor_latent1": [k["tdecor_latent1"], k["tdecor_latent1"] - z * k["tdecor_latent1_err"],
                               k["tdecor_latent1"] + z * k["tdecor_latent1_err"]],
            "mfpt": k["mfpt"], "flux_rate": k["flux_rate"]}


def _means(ser: dict, native, n_blocks: int) -> dict:
    """Mean and block standard error of Rg (nm), and of Q and RMSD to native when scored."""
    from .stats import block_average

    out = {"rg_nm": block_average(np.concatenate(ser["rg"]), n_blocks)}
    if native is not None:
        out["q"] = block_average(np.concatenate(ser["q"]), n_blocks)
        out["rmsd_native_nm"] = block_average(np.concatenate(ser["rmsd"]), n_blocks)
    return out
