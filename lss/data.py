"""Trp-cage datasets: the embedded Go-model default, the DESRES 2JOF loader, and the saved dataset.

Two sources feed the same :class:`TrpcageDataset` (C-alpha coordinates, scaled features, Q):

- :func:`make_go_dataset` simulates the C-alpha Go model of :mod:`lss.gomodel` with OpenMM and
  caches the trajectories under ``data/`` (DCD + C-alpha PDB + ``meta.json``), keyed by every
  parameter that changes them. Its time is *model time* (see :mod:`lss.gomodel`).
- :func:`load_desres` checks and opens D. E. Shaw Research's 2JOF trajectory (Lindorff-Larsen et
  al., Science 2011; 208 us, 1,044,000 frames every 200 ps, in chunks ``2JOF-0-protein-NNN.dcd``),
  and :func:`featurize_desres` streams it through the all-atom featurizer in bounded memory.

Notebook ``02_trpcage_data`` writes the dataset with :meth:`TrpcageDataset.save`; notebooks 03-07
read it with :meth:`TrpcageDataset.load`.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import struct
import time as _time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import mdtraj as md
import numpy as np

from . import gomodel, paths
from .features import AllAtomFeaturizer, CAFeaturizer, FeatureScaler, iter_featurize
from .trajio import iter_dcd, load_dcd, quiet_c_stdout, read_npy
from .utils import hash_file, hash_obj, jsonable, load_average

_FORMAT = "lss.trpcage_dataset/2"
_GO_CACHE_VERSION = 1
from .trajio import TIME_FACTORS_PS as _TIME_FACTORS_PS  # noqa: E402

#: How to obtain the real data; shown when it is missing.
DESRES_HELP = (
    "The 208 us all-atom Trp-cage (2JOF, TC10b K8A) trajectory of Lindorff-Larsen, Piana, Dror & Shaw, "
    "'How fast-folding proteins fold', Science 334, 517 (2011) is distributed by D. E. Shaw Research on "
    "request, for non-commercial use: ask D. E. Shaw Research for the 'DESRES-Trajectory_2JOF-0-protein' "
    "(and/or '2JOF-0-c-alpha') data set, as the paper's data-availability note says. Unpack it so that "
    "the chunks lie in {where}/2JOF-0-protein/2JOF-0-protein-000.dcd ... -104.dcd, make a PDB of the "
    "protein atoms from the shipped .mae file (see data/README.md: mdtraj cannot read .mae), and pass "
    "the directory and the PDB (notebook 02: source='desres', desres_dir=..., desres_pdb=...).")


# ------------------------------------------------------------------------------------------ dataset
@dataclass
class TrpcageDataset:
    """Trajectories of Trp-cage as C-alpha coordinates, scaled features and Q.

    Attributes
    ----------
    xyz : list of np.ndarray, each shape (n_frames_i, 20, 3), float32, nm
        C-alpha coordinates of each trajectory.
    features : list of np.ndarray, each shape (n_frames_i, n_features), float32
        Features scaled by ``scaler`` (fitted on the training trajectories only).
    feature_names : list of str
    topology : mdtraj.Topology
        C-alpha topology (20 atoms).
    frame_time : float
        Time between frames, in ``time_unit``.
    time_unit : str
        ``"ns"``, ``"ps"``, ... For the Go model this is *model time* (``meta["time"]`` says so).
    q : list of np.ndarray, each shape (n_frames_i,), float32
        Fraction of native contacts (:func:`lss.gomodel.fraction_native_contacts`).
    meta : dict
        Provenance: source, simulation or file parameters, featurizer, scaler fit set, hashes.
    scaler : FeatureScaler
    """

    xyz: list
    features: list
    feature_names: list
    topology: md.Topology
    frame_time: float
    time_unit: str
    q: list
    meta: dict = field(default_factory=dict)
    scaler: FeatureScaler | None = None

    @property
    def lengths(self) -> list[int]:
        """Frames per trajectory."""
        return [len(x) for x in self.xyz]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def frame_time_ps(self) -> float:
        return self.frame_time * _TIME_FACTORS_PS[self.time_unit]

    def __repr__(self) -> str:
        return (f"TrpcageDataset(source={self.meta.get('source')!r}, n_traj={len(self.xyz)}, "
                f"lengths={self.lengths}, n_features={self.n_features}, "
                f"frame_time={self.frame_time:g} {self.time_unit})")

    def featurizer(self):
        """The featurizer that made ``features``, rebuilt from ``meta["featurizer"]``.

        Returns a :class:`~lss.features.CAFeaturizer` on the dataset's C-alpha topology, or None for
        all-atom features (their topology is not part of the dataset).
        """
        fz = self.meta.get("featurizer", {}) or {}
        if fz.get("class") == "CAFeaturizer":
            return CAFeaturizer(self.topology, min_separation=fz.get("min_separation", 3))
        return None

    def to_mdtraj(self) -> list[md.Trajectory]:
        """The C-alpha trajectories as ``mdtraj.Trajectory`` objects (time in ps, from frame_time)."""
        dt = self.frame_time_ps
        return [md.Trajectory(x, self.topology, time=np.arange(len(x)) * dt) for x in self.xyz]

    def save(self, directory) -> Path:
        """Write the dataset to ``directory`` (created): ``dataset.json``, one ``.npy`` per array,
        ``topology.pdb`` (first frame, C-alpha) and ``scaler.lss`` (an lss archive, :mod:`lss.persist`).
        Nothing written here is a pickle; :meth:`load` reads the arrays with ``allow_pickle=False``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        files = {}
        for kind, arrays in (("xyz", self.xyz), ("features", self.features), ("q", self.q)):
            for i, a in enumerate(arrays):
                name = f"{kind}_{i:03d}.npy"
                np.save(d / name, np.ascontiguousarray(a, dtype=np.float32))
                files[name] = hash_file(d / name)[:16]
        md.Trajectory(self.xyz[0][:1], self.topology).save_pdb(str(d / "topology.pdb"))
        if self.scaler is not None:
            self.scaler.save(d / "scaler.lss")
        from .persist import package_versions

        doc = {"format": _FORMAT, "versions": package_versions(), "n_traj": len(self.xyz),
               "lengths": self.lengths, "feature_names": list(self.feature_names),
               "frame_time": self.frame_time, "time_unit": self.time_unit, "meta": self.meta, "files": files}
        (d / "dataset.json").write_text(json.dumps(jsonable(doc), indent=1, default=str) + "\n")
        return d

    @classmethod
    def load(cls, directory, mmap: bool = False) -> "TrpcageDataset":
        """Read a dataset written by :meth:`save`.

        Parameters
        ----------
        directory : path
            E.g. ``lss.paths.run_dir(profile, "02_trpcage_data")``.
        mmap : bool
            Memory-map the arrays (read-only) instead of reading them (for the 10^6-frame DESRES set).
        """
        d = Path(directory)
        if not (d / "dataset.json").exists():
            raise FileNotFoundError(
                f"no Trp-cage dataset in {d} (dataset.json missing): it is written by the notebook "
                f"02_trpcage_data; run it first, e.g. python -m lss.reproduce --profile <profile> "
                f"--only 02_trpcage_data")
        doc = json.loads((d / "dataset.json").read_text())
        if doc.get("format") != _FORMAT:
            raise ValueError(f"{d / 'dataset.json'}: format {doc.get('format')!r} is not {_FORMAT!r}; it was "
                             f"written by another lss version: rerun notebook 02_trpcage_data with this one")
        arrays = {}
        for kind in ("xyz", "features", "q"):
            out = []
            for i in range(doc["n_traj"]):
                p = d / f"{kind}_{i:03d}.npy"
                if not p.exists():
                    raise FileNotFoundError(f"{p} is missing from the dataset written by notebook "
                                            f"02_trpcage_data; rerun it")
                out.append(read_npy(p, mmap=mmap))
            arrays[kind] = out
        top = md.load_pdb(str(d / "topology.pdb")).topology
        scaler = FeatureScaler.load(d / "scaler.lss") if (d / "scaler.lss").exists() else None
        return cls(xyz=arrays["xyz"], features=arrays["features"], feature_names=doc["feature_names"],
                   topology=top, frame_time=doc["frame_time"], time_unit=doc["time_unit"], q=arrays["q"],
                   meta=doc["meta"], scaler=scaler)


def _scaled_features(raw: list[np.ndarray], fit_on) -> tuple[list[np.ndarray], FeatureScaler]:
    scaler = FeatureScaler().fit(raw, fit_on=fit_on)
    return scaler.transform(raw, inplace=True), scaler


# ----------------------------------------------------------------------------------- Go-model data
def go_cache_key(n_traj, n_steps, save_every, temperature, seed, model, timestep, friction,
                 equilibration_steps) -> str:
    """Hash of everything that determines the simulated Go-model trajectories."""
    return hash_obj({"version": _GO_CACHE_VERSION, "model": model.params(), "n_traj": int(n_traj),
                     "n_steps": int(n_steps), "save_every": int(save_every), "temperature": float(temperature),
                     "seed": int(seed), "timestep_ps": float(timestep), "friction_per_ps": float(friction),
                     "equilibration_steps": int(equilibration_steps)})


#: in a Go-model cache folder while a process simulates it: that process's id
LOCK_NAME = "simulating.pid"


def _wait_for_other_simulation(d: Path, poll_s: float = 1.0) -> None:
    """Wait while another live process simulates the cache folder ``d`` (its ``simulating.pid``).

    E.g. notebook 07 asking for its reference while the runner simulates it in the background
    (:func:`lss.reproduce.prefetch_reference`). A lock whose process is gone is ignored.
    """
    lock = d / LOCK_NAME
    told = False
    while lock.exists():
        try:
            pid = int(lock.read_text().strip() or 0)
        except (OSError, ValueError):
            pid = 0
        if pid == os.getpid() or not _alive(pid):
            return
        if not told:
            print(f"waiting for process {pid}, which is simulating {d.name} (the runner started it in the "
                  "background) ...", flush=True)
            told = True
        _time.sleep(poll_s)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        import psutil

        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - psutil missing or the process went away meanwhile
        return False


def simulate_go_cached(n_traj, n_steps, save_every, temperature, seed, cache_dir=None, force=False, progress=False,
                       n_jobs=None, model=None, timestep=0.02, friction=1.0, equilibration_steps=10_000,
                       platform="auto") -> tuple[Path, dict, bool]:
    """The trajectories of :func:`make_go_dataset`, simulated or read from the cache (arguments as there).

    Returns ``(folder, meta, cached)``: the cache folder with ``traj_NNN.dcd`` and ``ca.pdb``, its
    ``meta.json`` and whether it was there already. While it simulates, the folder holds ``simulating.pid``;
    a second process asking for the same data waits for it instead of simulating it again.
    """
    model = model or gomodel.GoModel()
    gomodel._check_sim_args(n_steps, save_every, temperature, timestep, friction)
    if int(n_traj) != n_traj or n_traj < 1:
        raise ValueError(f"n_traj must be a positive integer, got {n_traj!r}")
    cache_dir = Path(cache_dir) if cache_dir is not None else paths.data_dir()
    key = go_cache_key(n_traj, n_steps, save_every, temperature, seed, model, timestep, friction,
                       equilibration_steps)
    d = cache_dir / f"go_T{temperature:g}_{n_traj}x{n_steps}_every{save_every}_seed{seed}_{key}"
    meta_path = d / "meta.json"
    sim_meta = None
    _wait_for_other_simulation(d)
    if meta_path.exists() and not force:
        sim_meta = json.loads(meta_path.read_text())
        bad = [f for f, h in sim_meta.get("sha256", {}).items()
               if not (d / f).exists() or hash_file(d / f) != h]
        if bad or len(sim_meta.get("sha256", {})) != n_traj:
            warnings.warn(f"cached Go-model data in {d} is incomplete or changed ({bad}); simulating again")
            sim_meta = None
    cached = sim_meta is not None
    if not cached:
        d.mkdir(parents=True, exist_ok=True)
        lock = d / LOCK_NAME
        lock.write_text(str(os.getpid()))   # another process asking for the same data waits (and reads it then)
        try:
            meta_path.unlink(missing_ok=True)
            t0 = _time.perf_counter()
            infos: list = []
            trajs = gomodel.simulate_many(n_traj, n_steps, save_every, temperature=temperature, seed=seed,
                                          n_jobs=n_jobs, platform=platform, progress=progress, model=model,
                                          timestep=timestep, friction=friction,
                                          equilibration_steps=equilibration_steps, info=infos)
            wall = _time.perf_counter() - t0
            native = gomodel.native_structure()
            native.save_pdb(str(d / "ca.pdb"))
            sha = {}
            for i, t in enumerate(trajs):
                name = f"traj_{i:03d}.dcd"
                t.save_dcd(str(d / name))
                sha[name] = hash_file(d / name)
            import openmm

            from . import __version__
            sim_meta = {
                "model": "C-alpha Go model of Trp-cage (lss.gomodel.GoModel), native = PDB 2JOF model 1",
                "model_params": model.params(), "n_native_contacts": int(len(model.native_contacts())),
                "temperature_K": float(temperature), "n_traj": int(n_traj), "n_steps": int(n_steps),
                "equilibration_steps": int(equilibration_steps), "save_every": int(save_every),
                "timestep_ps": float(timestep), "friction_per_ps": float(friction),
                "frame_time_ps": float(save_every * timestep), "time": "model time of the Go model",
                "seed": int(seed), "trajectory_seeds": gomodel.trajectory_seeds(seed, n_traj),
                "platform": infos[0]["platform"], "n_jobs": min(int(n_traj), n_jobs or os.cpu_count() or 1),
                "wall_s": round(wall, 2),
                "steps_per_s_per_traj": [round(i["steps_per_s"]) for i in infos],
                "cpu_s_per_traj": [round(i["cpu_s"], 2) for i in infos],
                "load_average_1min": (lambda v: round(v, 2) if v == v else None)(load_average()[0]),  # None on Windows
                "cpu_count": os.cpu_count(),
                "sha256": sha, "content_hash": hash_obj(sha), "cache_key": key,
                "created": _dt.datetime.now().isoformat(timespec="seconds"),
                "versions": {"lss": __version__, "openmm": openmm.__version__, "mdtraj": md.__version__},
            }
            meta_path.write_text(json.dumps(sim_meta, indent=1) + "\n")
        finally:
            lock.unlink(missing_ok=True)   # also when the simulation failed: nobody waits for it then
    return d, sim_meta, cached


def make_go_dataset(n_traj: int = 1, n_steps: int = 300_000, save_every: int = 30,
                    temperature: float = 300.0, seed: int = 0, cache_dir=None, force: bool = False,
                    progress: bool = False, n_jobs: int | None = None, model: gomodel.GoModel | None = None,
                    timestep: float = 0.02, friction: float = 1.0, equilibration_steps: int = 10_000,
                    platform: str = "auto", fit_on=None, featurizer: CAFeaturizer | None = None,
                    ) -> TrpcageDataset:
    """Simulate (or reuse) Go-model trajectories of Trp-cage and featurize them.

    The trajectories are cached in ``<cache_dir>/go_<...>_<key>/`` as ``traj_NNN.dcd``, ``ca.pdb``
    (native C-alpha structure, the topology) and ``meta.json`` (model parameters, temperature,
    steps, save interval, time per frame, seeds, platform, wall time, SHA-256 of each DCD). A
    second call with the same parameters reads the cache after checking the hashes; ``force=True``
    simulates again.

    Parameters
    ----------
    n_traj : int
        Independent trajectories (run in parallel processes, see :func:`lss.gomodel.simulate_many`).
    n_steps : int
        Langevin steps per trajectory (after ``equilibration_steps``).
    save_every : int
        Steps between saved frames.
    temperature : float
        K.
    seed : int
        Master seed; trajectory seeds derive from it.
    cache_dir : path, optional
        Default ``lss.paths.data_dir()`` (``<repo>/data``, git-ignored).
    force : bool
        Ignore a valid cache.
    progress : bool
        Progress bars.
    n_jobs : int, optional
        Parallel processes (default: one per trajectory, at most the CPU count).
    model : GoModel, optional
    timestep, friction : float
        ps and 1/ps.
    equilibration_steps : int
        Discarded steps at the start of each trajectory.
    platform : str
        OpenMM platform or ``"auto"`` (fastest by measurement).
    fit_on : sequence of int, optional
        Trajectories the feature scaler is fitted on (the training data); default all.
    featurizer : CAFeaturizer, optional
        Default ``CAFeaturizer()`` (187 features).

    Returns
    -------
    TrpcageDataset
        ``frame_time`` in ns of model time; ``meta["simulation"]`` holds ``meta.json``.
    """
    model = model or gomodel.GoModel()
    d, sim_meta, cached = simulate_go_cached(n_traj, n_steps, save_every, temperature, seed, cache_dir, force,
                                             progress, n_jobs, model, timestep, friction, equilibration_steps, platform)
    # read back from the DCD files, so that a fresh and a cached dataset are identical
    top = md.load_pdb(str(d / "ca.pdb")).topology
    xyz = [load_dcd(d / f"traj_{i:03d}.dcd", top).xyz.astype(np.float32) for i in range(n_traj)]
    featurizer = featurizer or CAFeaturizer(top)
    raw = [featurizer.transform(x) for x in xyz]
    features, scaler = _scaled_features(raw, fit_on)
    q = [gomodel.fraction_native_contacts(x) for x in xyz]
    meta = {"source": "go", "cache_dir": str(d), "cached": cached, "simulation": sim_meta,
            "time": "model time of the C-alpha Go model, not physical Trp-cage time",
            "featurizer": {"class": type(featurizer).__name__, "min_separation": featurizer.min_separation,
                           "n_features": featurizer.n_features},
            "scaler_fit_on": scaler.fit_on_, "q_definition": "fraction of the 31 native C-alpha contacts "
            "(|i-j|>=3, native distance < 0.8 nm) with r < 1.2 x native distance"}
    return TrpcageDataset(xyz=xyz, features=features, feature_names=list(featurizer.feature_names), topology=top,
                          frame_time=sim_meta["frame_time_ps"] / 1000.0, time_unit="ns", q=q, meta=meta,
                          scaler=scaler)


# ------------------------------------------------------------------------------------- DESRES data
_CHUNK_RE = {"protein": re.compile(r"^2JOF-0-protein-(\d+)\.dcd$"),
             "c-alpha": re.compile(r"^2JOF-0-c-alpha-(\d+)\.dcd$")}


def dcd_header(path) -> dict:
    """Read a DCD file's header and check its size.

    Returns
    -------
    dict
        ``n_atoms``, ``n_frames_header`` (NSET), ``n_frames`` (complete frames in the file),
        ``partial_bytes`` (bytes of an incomplete last frame), ``frame_bytes``, ``header_bytes``.

    Raises
    ------
    ValueError
        The file is not a DCD file (naming it).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4096)
    for endian in ("<", ">"):
        if len(head) >= 8 and struct.unpack(endian + "i", head[:4])[0] == 84 and head[4:8] == b"CORD":
            break
    else:
        raise ValueError(f"{path}: not a DCD trajectory file (no 'CORD' header)")
    try:
        icntrl = struct.unpack(endian + "20i", head[8:88])
        pos = 92
        (len2,) = struct.unpack(endian + "i", head[pos:pos + 4])
        pos += 4 + len2 + 4
        (len3, n_atoms) = struct.unpack(endian + "ii", head[pos:pos + 8])
        pos += 12
    except struct.error:
        raise ValueError(f"{path}: DCD header is truncated ({size} bytes)") from None
    if len3 != 4 or n_atoms <= 0:
        raise ValueError(f"{path}: DCD header is damaged (atom record {len3}, {n_atoms} atoms)")
    extra = 56 if icntrl[10] else 0
    four_d = icntrl[11] != 0
    frame_bytes = extra + (4 if four_d else 3) * (4 * n_atoms + 8)
    body = size - pos
    if body < 0:
        raise ValueError(f"{path}: DCD header is truncated ({size} bytes)")
    return {"n_atoms": n_atoms, "n_frames_header": icntrl[0], "n_frames": body // frame_bytes,
            "partial_bytes": body % frame_bytes, "frame_bytes": frame_bytes, "header_bytes": pos,
            "fixed_atoms": icntrl[8]}


@dataclass
class DesresData:
    """A checked DESRES 2JOF trajectory on disk (nothing loaded yet).

    Attributes
    ----------
    directory : Path
        Folder holding the chunks.
    files : list of Path
        Chunks ``2JOF-0-<atoms>-NNN.dcd`` in numeric order: one continuous trajectory.
    frame_counts : list of int
        Frames in each chunk.
    topology : mdtraj.Topology
        Topology of the atoms stored in the chunks.
    atoms : str
        ``"protein"`` or ``"c-alpha"``.
    frame_time_ps : float
        Time between frames (DCD files carry no reliable time; DESRES: 200 ps).
    topology_pdb : Path
    """

    directory: Path
    files: list
    frame_counts: list
    topology: md.Topology
    atoms: str
    frame_time_ps: float
    topology_pdb: Path

    @property
    def n_frames(self) -> int:
        return int(sum(self.frame_counts))

    @property
    def ca_indices(self) -> np.ndarray:
        return self.topology.select("name CA")

    def iterload(self, chunk: int = 10_000, stride: int = 1):
        """Yield ``mdtraj.Trajectory`` chunks of the whole trajectory in order (time in ps)."""
        start = 0
        for f, n in zip(self.files, self.frame_counts):
            for t in iter_dcd(f, self.topology, chunk=chunk, stride=stride):
                t.time = start + np.arange(t.n_frames) * stride * self.frame_time_ps
                start = t.time[-1] + stride * self.frame_time_ps if t.n_frames else start
                yield t

    def load(self, stride: int = 1, atom_indices=None) -> md.Trajectory:
        """The whole trajectory in memory (all-atom DESRES data: about 3.3 GB at stride 1; use a stride)."""
        ts = []
        for f in self.files:
            ts.append(load_dcd(f, self.topology, stride=stride, atom_indices=atom_indices))
        t = md.join(ts, check_topology=False) if len(ts) > 1 else ts[0]
        t.time = np.arange(t.n_frames) * stride * self.frame_time_ps
        return t


def _find_chunks(directory: Path, atoms: str) -> tuple[Path, list[tuple[int, Path]]]:
    pat = _CHUNK_RE[atoms]
    for d in (directory, directory / f"2JOF-0-{atoms}", directory / f"DESRES-Trajectory_2JOF-0-{atoms}",
              directory / f"DESRES-Trajectory_2JOF-0-{atoms}" / f"2JOF-0-{atoms}"):
        if d.is_dir():
            found = sorted((int(m.group(1)), p) for p in d.iterdir() if (m := pat.match(p.name)))
            if found:
                return d, found
    return directory, []


def load_desres(directory, topology_pdb, frame_time_ps: float = 200.0, atoms: str = "protein",
                n_chunks: int | None = None) -> DesresData:
    """Find and check the chunks of the DESRES 2JOF trajectory; load nothing yet.

    Parameters
    ----------
    directory : path
        Folder with ``2JOF-0-protein-000.dcd ...`` (or ``2JOF-0-c-alpha-NNN.dcd`` when
        ``atoms="c-alpha"``), or a parent holding ``2JOF-0-<atoms>/`` or
        ``DESRES-Trajectory_2JOF-0-<atoms>/2JOF-0-<atoms>/``.
    topology_pdb : path
        PDB of the atoms in the chunks, in the same order (made from the DESRES .mae file; see
        data/README.md). With ``atoms="c-alpha"`` a full-protein PDB may be given: its CA atoms are used.
    frame_time_ps : float
        Time between frames, ps (DESRES 2JOF: 200 ps).
    atoms : {"protein", "c-alpha"}
    n_chunks : int, optional
        Number of chunks expected (the full DESRES set has 105: 000-104); fewer is an error.

    Returns
    -------
    DesresData

    Raises
    ------
    FileNotFoundError
        The directory, the chunks (or some of them, with ``n_chunks``) or the PDB are missing.
    ValueError
        A gap in the chunk numbering, a truncated or damaged DCD, or a topology whose atom count
        does not match the DCD files; each message names the file and what was expected.
    """
    if atoms not in _CHUNK_RE:
        raise ValueError(f"atoms must be 'protein' or 'c-alpha', got {atoms!r}")
    if not (frame_time_ps > 0 and math.isfinite(frame_time_ps)):
        raise ValueError(f"frame_time_ps must be a positive time in ps, got {frame_time_ps!r}")
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"DESRES data directory {directory} does not exist. "
                                + DESRES_HELP.format(where=directory))
    where, found = _find_chunks(directory, atoms)
    first = f"2JOF-0-{atoms}-000.dcd"
    if not found:
        present = sorted(p.name for p in directory.iterdir())[:10]
        raise FileNotFoundError(f"no trajectory chunks 2JOF-0-{atoms}-NNN.dcd in {directory} (expected {first}, "
                                f"2JOF-0-{atoms}-001.dcd, ...; found {present or 'an empty folder'}). "
                                + DESRES_HELP.format(where=directory))
    numbers = [n for n, _ in found]
    expected = list(range(len(found)))
    if numbers != expected:
        missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
        dup = sorted({n for n in numbers if numbers.count(n) > 1})
        what = (f"chunk 2JOF-0-{atoms}-{missing[0]:03d}.dcd is missing" if missing
                else f"chunk number {dup[0]:03d} appears twice")
        raise ValueError(f"gap in the chunk numbering in {where}: {what} (found {len(found)} chunks numbered "
                         f"{numbers[0]:03d}-{numbers[-1]:03d}; expected consecutive numbers from 000). "
                         "A partial download? Fetch the missing chunk again.")
    if n_chunks is not None and len(found) < n_chunks:
        raise FileNotFoundError(f"missing chunks in {where}: expected {n_chunks} (2JOF-0-{atoms}-000.dcd ... "
                                f"-{n_chunks - 1:03d}.dcd), found {len(found)}; the first missing is "
                                f"2JOF-0-{atoms}-{len(found):03d}.dcd")
    topology_pdb = Path(topology_pdb).expanduser()
    if not topology_pdb.exists():
        raise FileNotFoundError(f"topology PDB {topology_pdb} does not exist: make it from the DESRES .mae file "
                                "(see data/README.md, 'Making the topology PDB'); mdtraj cannot read .mae")
    top = md.load_pdb(str(topology_pdb)).topology
    headers = []
    for _, p in found:
        h = dcd_header(p)
        if h["partial_bytes"] or (h["n_frames_header"] > h["n_frames"]):
            raise ValueError(f"{p} is truncated: its header announces {h['n_frames_header']} frames of "
                             f"{h['n_atoms']} atoms ({h['frame_bytes']} bytes each), the file holds "
                             f"{h['n_frames']} complete frames and {h['partial_bytes']} bytes of an incomplete "
                             "one. Download this chunk again.")
        if h["fixed_atoms"]:
            raise ValueError(f"{p}: DCD files with fixed atoms are not supported")
        headers.append(h)
    n_dcd = headers[0]["n_atoms"]
    for h, (_, p) in zip(headers, found):
        if h["n_atoms"] != n_dcd:
            raise ValueError(f"{p} holds {h['n_atoms']} atoms per frame, but {found[0][1].name} holds {n_dcd}; "
                             "all chunks must store the same atoms")
    if top.n_atoms != n_dcd:
        sel = top.select("name CA") if atoms == "c-alpha" else top.select("protein")
        if len(sel) == n_dcd:
            top = top.subset(sel)
        else:
            raise ValueError(
                f"topology mismatch: {found[0][1]} holds {n_dcd} atoms per frame, but {topology_pdb} has "
                f"{top.n_atoms} atoms ({len(sel)} in its {'CA' if atoms == 'c-alpha' else 'protein'} "
                f"selection). The PDB must list exactly the atoms of 2JOF-0-{atoms}-NNN.dcd in their order "
                "(see data/README.md).")
    if atoms == "c-alpha" and any(a.name != "CA" for a in top.atoms):
        raise ValueError(f"topology mismatch: atoms='c-alpha' but {topology_pdb} (as matched to {n_dcd} atoms) "
                         "contains atoms other than CA")
    _check_atom_order(found[0][1], top, topology_pdb)
    return DesresData(directory=where, files=[p for _, p in found], frame_counts=[h["n_frames"] for h in headers],
                      topology=top, atoms=atoms, frame_time_ps=float(frame_time_ps), topology_pdb=topology_pdb)


def _check_atom_order(dcd_path: Path, top: md.Topology, topology_pdb: Path) -> None:
    """Same atom count is not enough: check that the PDB's C-alpha atoms sit where C-alphas are in
    the first frame of the DCD (consecutive C-alphas of a chain 0.28-0.45 nm apart)."""
    ca = [a for a in top.atoms if a.name == "CA"]
    pairs = [(a.index, b.index) for a, b in zip(ca[:-1], ca[1:])
             if a.residue.chain.index == b.residue.chain.index and b.residue.index == a.residue.index + 1]
    if not pairs:
        return
    with quiet_c_stdout():
        f = md.formats.DCDTrajectoryFile(str(dcd_path))
    with f:
        xyz = f.read(n_frames=1)[0][0] / 10.0  # Angstrom -> nm
    p = np.array(pairs)
    d = np.linalg.norm(xyz[p[:, 0]] - xyz[p[:, 1]], axis=1)
    bad = np.flatnonzero((d < 0.28) | (d > 0.45))
    if len(bad):
        a, b = (top.atom(int(i)) for i in p[bad[0]])
        raise ValueError(f"topology mismatch: in the first frame of {dcd_path}, the atoms that {topology_pdb} calls "
                         f"{a} and {b} are {d[bad[0]]:.2f} nm apart (consecutive C-alphas: 0.28-0.45 nm; "
                         f"{len(bad)} of {len(p)} pairs off). The PDB's atom order does not match the DCD's; make it "
                         "from the DESRES .mae file (see data/README.md)")


def featurize_desres(directory, topology_pdb, frame_time_ps: float = 200.0, atoms: str = "protein",
                     featurizer=None, chunk: int = 10_000, stride: int = 1, fit_on=None,
                     native_xyz: np.ndarray | None = None, n_chunks: int | None = None,
                     progress: bool = False) -> TrpcageDataset:
    """Stream the DESRES trajectory through a featurizer into a :class:`TrpcageDataset`.

    Memory: the output arrays (preallocated from the DCD headers) plus one chunk. For the full
    all-atom set (1,044,000 frames; 2JOF featurization 259 features) that is about 1.1 GB of
    features + 0.25 GB of C-alpha coordinates + 4 MB of Q + one 10,000-frame chunk (about 35 MB of
    coordinates and its features), well under 4 GB.

    Parameters
    ----------
    directory, topology_pdb, frame_time_ps, atoms, n_chunks
        As in :func:`load_desres`.
    featurizer : optional
        Default :class:`AllAtomFeaturizer` for ``atoms="protein"``, :class:`CAFeaturizer` for "c-alpha".
    chunk : int
        Frames read at a time.
    stride : int
        Keep every ``stride``-th frame of each chunk file (``frame_time`` grows accordingly).
    fit_on : optional
        Training trajectories for the scaler (the DESRES data is one trajectory: default ``[0]``).
    native_xyz : np.ndarray, shape (n_ca, 3), nm, optional
        Reference C-alpha structure for Q; default the shipped 2JOF model 1 (requires 20 C-alphas).
    progress : bool

    Returns
    -------
    TrpcageDataset
        One trajectory; ``frame_time`` in ns of physical time.
    """
    from tqdm.auto import tqdm

    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    src = load_desres(directory, topology_pdb, frame_time_ps, atoms, n_chunks=n_chunks)
    top = src.topology
    if featurizer is None:
        featurizer = AllAtomFeaturizer(top) if atoms == "protein" else CAFeaturizer(top)
    ca = src.ca_indices
    if native_xyz is None:
        if len(ca) != 20:
            raise ValueError(f"{src.topology_pdb} has {len(ca)} C-alpha atoms; Trp-cage has 20. Pass native_xyz "
                             "to compute Q against another reference")
        native_xyz = gomodel.native_structure().xyz[0]
    native_xyz = np.asarray(native_xyz, dtype=np.float32)
    contacts = gomodel.native_contacts(native=native_xyz)
    total = sum(-(-n // stride) for n in src.frame_counts)
    feats = np.empty((total, featurizer.n_features), dtype=np.float32)
    xyz = np.empty((total, len(ca), 3), dtype=np.float32)
    k = 0
    with tqdm(total=total, disable=not progress, desc="featurizing DESRES", unit="frame") as bar:
        for f_chunk, x_chunk in iter_featurize(src.files, top, featurizer, chunk=chunk, stride=stride, ca_indices=ca):
            n = len(f_chunk)
            if k + n > total:
                raise ValueError(f"the DCD files hold more frames than their headers announce ({k + n} > {total})")
            feats[k:k + n] = f_chunk
            xyz[k:k + n] = x_chunk
            k += n
            bar.update(n)
    if k != total:
        raise ValueError(f"read {k} frames from {src.directory}, but the DCD headers announce {total}")
    q = gomodel.fraction_native_contacts(xyz, contacts=contacts, native=native_xyz)
    features, scaler = _scaled_features([feats], fit_on if fit_on is not None else [0])
    ca_top = top.subset(ca)
    meta = {"source": "desres", "directory": str(src.directory), "topology_pdb": str(src.topology_pdb),
            "atoms": atoms, "files": [p.name for p in src.files], "frame_counts": src.frame_counts,
            "stride": int(stride), "frame_time_ps": float(frame_time_ps) * stride,
            "time": "physical time of the DESRES all-atom simulation (frame time set explicitly: DCD files "
                    "carry no reliable time)",
            "featurizer": {"class": type(featurizer).__name__, "min_separation": featurizer.min_separation,
                           "n_features": featurizer.n_features},
            "scaler_fit_on": scaler.fit_on_,
            "q_definition": "fraction of native C-alpha contacts (|i-j|>=3, native distance < 0.8 nm) with "
                            "r < 1.2 x native distance, native = 2JOF model 1 C-alpha"}
    return TrpcageDataset(xyz=[xyz], features=features, feature_names=list(featurizer.feature_names),
                          topology=ca_top, frame_time=float(frame_time_ps) * stride / 1000.0, time_unit="ns",
                          q=[q], meta=meta, scaler=scaler)
