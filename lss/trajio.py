"""Trajectory files: reading and writing DCD, XTC and HDF5, topologies, and generated ensembles.

Everything lss reads or writes as molecular trajectories goes through here:

- :func:`load_dcd`, :func:`iter_dcd`: DCD files (whole or in chunks), without the DCD plugin's
  console notes (:func:`quiet_c_stdout`);
- :func:`topology_to_dict` / :func:`topology_from_dict`: an exact JSON form of an mdtraj topology (how
  model files store topologies, with no pickle), :func:`pdb_text`;
- :class:`TrajectoryWriter` (:class:`DCDAppender`): one file per trajectory, appended block by block;
- :func:`read_generation` / :class:`Generation`: the directory that
  :meth:`lss.simulator.LatentSpaceSimulator.generate_to_disk` writes (trajectory files, topology,
  latent trajectories and ``generation.json`` with the time step), read back as mdtraj trajectories
  with their times.

Time: trajectories carry the time of each frame in ps (``mdtraj.Trajectory.time``); frame counts are
integers, the time step of a generated ensemble is ``timestep`` in ``time_unit``.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import mdtraj as md
import numpy as np

#: Trajectory formats written by :class:`TrajectoryWriter`.
FORMATS = ("dcd", "xtc", "h5")
#: Format tag of ``generation.json``.
GENERATION_FORMAT = "lss.simulator.generation/2"
TIME_FACTORS_PS = {"fs": 1e-3, "ps": 1.0, "ns": 1e3, "us": 1e6, "µs": 1e6, "ms": 1e9}


def time_factor_ps(unit: str) -> float:
    """Picoseconds per ``unit`` (``'fs'``, ``'ps'``, ``'ns'``, ``'us'``, ``'ms'``)."""
    if unit not in TIME_FACTORS_PS:
        raise ValueError(f"time_unit must be one of {sorted(TIME_FACTORS_PS)}, got {unit!r}")
    return TIME_FACTORS_PS[unit]


# ------------------------------------------------------------------------------------------ reading
@contextlib.contextmanager
def quiet_c_stdout():
    """Hide what C code prints on file descriptor 1 (mdtraj's DCD plugin notes each file it opens)."""
    try:
        sys.stdout.flush()
        libc = ctypes.CDLL(None)
        saved, devnull = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    except (OSError, AttributeError, ValueError):  # no usable fd 1: nothing to hide
        yield
        return
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        libc.fflush(None)
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def load_dcd(path, topology: md.Topology, stride: int = 1, atom_indices=None) -> md.Trajectory:
    """``mdtraj.load_dcd`` without the plugin's console notes."""
    with quiet_c_stdout():
        return md.load_dcd(str(path), top=topology, stride=stride, atom_indices=atom_indices)


def iter_dcd(path, topology: md.Topology, chunk: int = 10_000, stride: int = 1,
             atom_indices=None) -> Iterator[md.Trajectory]:
    """Chunks of ``chunk`` frames of one DCD file (as ``mdtraj.iterload``; quiet)."""
    with quiet_c_stdout():
        f = md.formats.DCDTrajectoryFile(str(path))
    with f:
        while True:
            t = f.read_as_traj(topology, n_frames=chunk, stride=stride, atom_indices=atom_indices)
            if len(t) == 0:
                return
            yield t



def topology_to_dict(top: md.Topology) -> dict:
    """An exact, JSON-able description of an mdtraj topology (chains, residues, atoms, bonds)."""
    chains = []
    for c in top.chains:
        residues = []
        for r in c.residues:
            residues.append({"name": r.name, "resSeq": int(r.resSeq), "segment_id": r.segment_id,
                             "atoms": [[a.name, a.element.symbol if a.element is not None else ""]
                                       for a in r.atoms]})
        chains.append({"chain_id": getattr(c, "chain_id", None), "residues": residues})
    return {"chains": chains, "bonds": [[int(a.index), int(b.index)] for a, b in top.bonds]}


def topology_from_dict(d: dict) -> md.Topology:
    """Inverse of :func:`topology_to_dict`."""
    top = md.Topology()
    for c in d["chains"]:
        chain = top.add_chain(chain_id=c.get("chain_id"))
        for r in c["residues"]:
            res = top.add_residue(r["name"], chain, resSeq=r["resSeq"], segment_id=r.get("segment_id", ""))
            for name, sym in r["atoms"]:
                el = md.element.get_by_symbol(sym) if sym else md.element.virtual
                top.add_atom(name, el, res)
    atoms = list(top.atoms)
    for i, j in d["bonds"]:
        top.add_bond(atoms[i], atoms[j])
    return top


def pdb_text(top: md.Topology, xyz: np.ndarray | None = None) -> str:
    """PDB text of one structure (``xyz`` (n_atoms, 3) nm, zeros when None)."""
    import tempfile

    x = np.zeros((1, top.n_atoms, 3), np.float32) if xyz is None else np.asarray(xyz, np.float32)[None]
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.pdb")
        md.Trajectory(x, top).save_pdb(p)
        return Path(p).read_text()


# ------------------------------------------------------------------------------------------ writing
class DCDAppender:
    """A DCD file written frame block by frame block with one ``write`` call per block.

    mdtraj's DCD writer issues about 14 unbuffered system calls per frame (three Fortran records and
    a header update): measured here about 12 us of CPU per frame, 12 s for the paper-sized ensemble,
    more than generating it. Here mdtraj writes the
    header and the first frame (so the header is exactly mdtraj's), further frames are appended as
    one contiguous buffer of records ``[4N][x_1..x_N][4N][4N][y...][4N][4N][z...][4N]`` (angstroms,
    native byte order, no unit cell), and the frame count fields (NSET at byte 8, NSTEP at byte 20)
    are updated on close; the file is byte-identical to mdtraj's.
    """

    def __init__(self, path: Path):
        self.path, self.f, self.n = Path(path), None, 0

    def write(self, xyz_nm: np.ndarray):
        x = np.asarray(xyz_nm, dtype=np.float32) * np.float32(10.0)  # nm -> angstrom
        if self.f is None:
            with md.formats.DCDTrajectoryFile(str(self.path), "w") as f:
                f.write(x[:1])
            self.f = open(self.path, "r+b")
            self.f.seek(12)
            self.istart, self.nsavc = np.frombuffer(self.f.read(8), dtype=np.int32)
            self.f.seek(0, os.SEEK_END)
            self.n, x = 1, x[1:]
        k, n_atoms = x.shape[:2]
        if k == 0:
            return
        rec = np.empty((k, 3, n_atoms + 2), dtype=np.float32)
        marks = rec.view(np.int32)
        marks[:, :, 0] = marks[:, :, -1] = 4 * n_atoms
        rec[:, :, 1:-1] = x.transpose(0, 2, 1)
        self.f.write(memoryview(rec).cast("B"))
        self.n += k

    def close(self):
        if self.f is None:
            return
        self.f.seek(8)
        self.f.write(np.array([self.n], dtype=np.int32).tobytes())
        self.f.seek(20)
        self.f.write(np.array([int(self.istart) + self.n * int(self.nsavc)], dtype=np.int32).tobytes())
        self.f.close()
        self.f = None


class TrajectoryWriter:
    """Appends frames to one trajectory file per trajectory (DCD, XTC or HDF5).

    Parameters
    ----------
    paths : list of Path
        One file per trajectory.
    fmt : {'dcd', 'xtc', 'h5'}
    topology : mdtraj.Topology
        Stored in HDF5 files (DCD and XTC files hold coordinates only).
    """

    def __init__(self, paths: list[Path], fmt: str, topology: md.Topology):
        if fmt not in FORMATS:
            raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
        self.fmt = fmt
        self.files = []
        for p in paths:
            if fmt == "dcd":
                f = DCDAppender(p)
            elif fmt == "xtc":
                f = md.formats.XTCTrajectoryFile(str(p), "w")
            else:
                f = md.formats.HDF5TrajectoryFile(str(p), "w")
                f.topology = topology
            self.files.append(f)

    def write(self, i: int, xyz: np.ndarray, time_ps: np.ndarray, steps: np.ndarray):
        """Append frames ``xyz`` (k, n_atoms, 3), nm, at times ``time_ps`` (k,) to file ``i``."""
        f = self.files[i]
        if self.fmt == "dcd":
            f.write(xyz)
        elif self.fmt == "xtc":
            f.write(xyz, time=time_ps.astype(np.float32), step=steps.astype(np.int32))
        else:
            f.write(coordinates=xyz, time=time_ps)

    def close(self):
        for f in self.files:
            f.close()


# ---------------------------------------------------------------------------------- generated ensembles
@dataclass
class Generation:
    """A generated ensemble on disk, as written by ``LatentSpaceSimulator.generate_to_disk``.

    Attributes
    ----------
    directory : Path
    meta : dict
        The content of ``generation.json`` (seed, sizes, timings, model fingerprint, versions).
    topology : mdtraj.Topology
    timestep : float
        Time between frames (one propagator lag), in ``time_unit``.
    time_unit : str
    files : list of str
        Trajectory file names, relative to ``directory``.
    """

    directory: Path
    meta: dict
    topology: md.Topology
    timestep: float
    time_unit: str
    files: list = field(default_factory=list)

    @property
    def n_traj(self) -> int:
        return len(self.files)

    @property
    def n_frames(self) -> int:
        """Frames per trajectory (``n_steps + 1``)."""
        return int(self.meta["n_frames"])

    @property
    def timestep_ps(self) -> float:
        return self.timestep * time_factor_ps(self.time_unit)

    @property
    def time(self) -> np.ndarray:
        """Time of each frame, ps, shape (n_frames,)."""
        return np.arange(self.n_frames) * self.timestep_ps

    def trajectory(self, i: int, stride: int = 1) -> md.Trajectory:
        """Trajectory ``i`` (C-alpha, nm) with the time of each frame in ps (every ``stride``-th frame)."""
        path = self.directory / self.files[i]
        fmt = self.meta.get("trajectory_format", path.suffix.lstrip("."))
        if fmt == "dcd":
            t = load_dcd(path, self.topology, stride=stride)
        elif fmt == "h5":
            t = md.load_hdf5(str(path), stride=stride)
        else:
            t = md.load(str(path), top=self.topology, stride=stride)
        t.time = self.time[::stride][:t.n_frames]
        return t

    def __iter__(self) -> Iterator[md.Trajectory]:
        return (self.trajectory(i) for i in range(self.n_traj))

    def xyz(self, stride: int = 1) -> np.ndarray:
        """All structures, shape (n_traj, n_frames / stride, n_atoms, 3), float32, nm."""
        return np.stack([self.trajectory(i, stride).xyz for i in range(self.n_traj)])

    def latent(self, mmap: bool = True) -> np.ndarray:
        """The latent trajectories, shape (n_traj, n_frames, m), float32 (memory-mapped by default)."""
        name = self.meta.get("latent")
        if not name:
            raise FileNotFoundError(f"{self.directory}: this generation was written without its latent "
                                    f"trajectories (save_latent=False)")
        return read_npy(self.directory / name, mmap=mmap)

    def __repr__(self) -> str:
        return (f"Generation({self.directory}, n_traj={self.n_traj}, n_frames={self.n_frames}, "
                f"timestep={self.timestep:g} {self.time_unit})")


def read_generation(directory) -> Generation:
    """Read a generated ensemble written by ``LatentSpaceSimulator.generate_to_disk``.

    Parameters
    ----------
    directory : path
        The ``out_dir`` of ``generate_to_disk``.

    Returns
    -------
    Generation
        Trajectories (``gen[i]`` is not supported; use ``gen.trajectory(i)`` or iterate), their time
        step and topology, the latent trajectories and the metadata.

    Raises
    ------
    FileNotFoundError
        No ``generation.json`` in ``directory``.
    ValueError
        ``generation.json`` of another format.
    """
    d = Path(directory)
    meta_path = d / "generation.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"no generated ensemble in {d} (generation.json missing): it is written by "
                                f"LatentSpaceSimulator.generate_to_disk (notebook 06_generate)")
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != GENERATION_FORMAT:
        raise ValueError(f"{meta_path}: format {meta.get('format')!r} is not {GENERATION_FORMAT!r}; it was "
                         f"written by another lss version; generate it again")
    top = md.load_pdb(str(d / meta["topology"])).topology
    return Generation(directory=d, meta=meta, topology=top, timestep=float(meta["timestep"]),
                      time_unit=meta["time_unit"], files=list(meta["files"]))


def read_npy(path, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` array, never unpickled (``allow_pickle=False``); ValueError naming the file otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"{path}: not a plain .npy array lss can read without unpickling, or truncated "
                         f"({type(e).__name__}: {e}); nothing in it was run; write it again") from None
