"""A tiny synthetic stand-in for the D. E. Shaw Research 2JOF data, in the DESRES layout.

The paper profile runs on data that only D. E. Shaw Research distributes. So that its code path
(chunked all-atom DCDs, the PDB topology, torsion features, every notebook) is exercised in CI, this
module writes a small look-alike: a C-alpha trajectory of the embedded Go model of Trp-cage (so it
folds and unfolds like the real thing, in model time) dressed with backbone N, C, O atoms and the
side-chain atoms that define chi1 (CB, and CG/OG), placed geometrically from the C-alpha trace.

It is *not* an all-atom simulation: the extra atoms only follow the C-alpha chain. It is a fixture
for code paths, never data for science.
"""
from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np

#: 2JOF sequence (Trp-cage TC10b), residue names as in the PDB entry.
SEQUENCE = ["ASP", "ALA", "TYR", "ALA", "GLN", "TRP", "LEU", "LYS", "ASP", "GLY",
            "GLY", "PRO", "SER", "SER", "GLY", "ARG", "PRO", "PRO", "PRO", "SER"]
_CHI_ATOM = {"SER": ("OG", "O")}  # residues whose chi1 atom is not CG (carbon)


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def dress_ca_trace(ca_xyz: np.ndarray) -> tuple[np.ndarray, md.Topology]:
    """Add N, C, O, CB and CG/OG atoms to C-alpha traces.

    Parameters
    ----------
    ca_xyz : np.ndarray, shape (n_frames, 20, 3), nm

    Returns
    -------
    xyz : np.ndarray, shape (n_frames, n_atoms, 3), nm, float32
    topology : mdtraj.Topology with residue and atom names that mdtraj's torsion code recognises
    """
    ca = np.asarray(ca_xyz, dtype=np.float64)
    n_frames, n_res, _ = ca.shape
    if n_res != len(SEQUENCE):
        raise ValueError(f"ca_xyz must hold the {len(SEQUENCE)} C-alpha atoms of 2JOF, got {n_res}")
    # virtual neighbours at the chain ends, continuing the chain
    prev = np.concatenate([2 * ca[:, :1] - ca[:, 1:2], ca[:, :-1]], axis=1)
    nxt = np.concatenate([ca[:, 1:], 2 * ca[:, -1:] - ca[:, -2:-1]], axis=1)
    bis = _unit(2 * ca - prev - nxt + 1e-9)          # outward bisector of the chain bend
    fwd = _unit(nxt - prev)                           # chain direction
    nrm = _unit(np.cross(bis, fwd))                   # normal to the local chain plane
    to_next, to_prev = nxt - ca, prev - ca
    atoms = {
        "N": ca + 0.38 * to_prev + 0.04 * nrm,
        "C": ca + 0.38 * to_next - 0.04 * nrm,
        "CB": ca + 0.153 * _unit(0.55 * bis + 0.83 * nrm),
    }
    atoms["O"] = atoms["C"] + 0.123 * _unit(-bis - 0.3 * nrm)
    atoms["CG"] = atoms["CB"] + 0.152 * _unit(atoms["CB"] - ca + 0.5 * fwd)
    top = md.Topology()
    chain = top.add_chain()
    order = []
    for i, name in enumerate(SEQUENCE):
        res = top.add_residue(name, chain, resSeq=i + 1)
        names = ["N", "CA", "C", "O"]
        if name != "GLY":
            names.append("CB")
            if name != "ALA":
                names.append("CG")
        for a in names:
            pdb_name, element = (_CHI_ATOM.get(name, ("CG", "C")) if a == "CG" else (a, a[0]))
            top.add_atom(pdb_name, md.element.get_by_symbol(element), res)
            order.append((a, i))
    xyz = np.empty((n_frames, len(order), 3), dtype=np.float32)
    for k, (a, i) in enumerate(order):
        xyz[:, k] = ca[:, i] if a == "CA" else atoms[a][:, i]
    top.create_standard_bonds()
    return xyz, top


def write_synthetic_desres(directory: str | Path, n_steps: int = 200_000, save_every: int = 100,
                           n_chunks: int = 3, seed: int = 0, temperature: float = 300.0) -> dict:
    """Write a synthetic 2JOF set in the DESRES layout, from a short Go-model run.

    Layout (as D. E. Shaw Research ships it, plus the PDB a user makes from the .mae file)::

        <directory>/DESRES-Trajectory_2JOF-0-protein/2JOF-0-protein/2JOF-0-protein-000.dcd ...
        <directory>/2JOF-0-protein.pdb

    Parameters
    ----------
    directory : path
    n_steps, save_every : int
        Go-model Langevin steps (20 fs of model time) and the saving interval (steps).
    n_chunks : int
        DCD chunks the frames are split into, numbered from 000.
    seed : int
    temperature : float, K

    Returns
    -------
    dict with ``desres_dir`` and ``desres_pdb`` (paths) and ``n_frames``
    """
    from lss import gomodel

    directory = Path(directory)
    inner = directory / "DESRES-Trajectory_2JOF-0-protein" / "2JOF-0-protein"
    inner.mkdir(parents=True, exist_ok=True)
    ca = gomodel.simulate(n_steps, save_every, temperature=temperature, seed=seed)
    xyz, top = dress_ca_trace(ca.xyz)
    traj = md.Trajectory(xyz, top)
    edges = np.linspace(0, len(traj), n_chunks + 1).astype(int)
    for i in range(n_chunks):
        traj[edges[i]:edges[i + 1]].save_dcd(str(inner / f"2JOF-0-protein-{i:03d}.dcd"))
    pdb = directory / "2JOF-0-protein.pdb"
    traj[0].save_pdb(str(pdb))
    return {"desres_dir": directory / "DESRES-Trajectory_2JOF-0-protein", "desres_pdb": pdb, "n_frames": len(traj)}
