"""Command line of lss: generate trajectories from a saved latent space simulator, without Jupyter.

Examples::

    lss generate runs/cpu/06_generate/lss_model.pt --n-traj 100 --n-steps 10440 --out synthetic/ --seed 1
    lss generate MODEL --n-traj 10 --n-steps 1000 --out DIR --start start.pdb --format xtc
    lss info MODEL
    python -m lss.cli generate ...        (the same, without the console script)
"""
from __future__ import annotations

import argparse
import json
import sys
import time


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lss", description="Molecular latent space simulators (lss).")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate synthetic trajectories from a saved simulator",
                       description="Generate N_TRAJ synthetic trajectories of N_STEPS lag steps each from a "
                                   "saved LatentSpaceSimulator and write them to OUT (one trajectory file per "
                                   "trajectory, topology.pdb, latent.npy, generation.json with the time step). "
                                   "Memory stays bounded whatever the size.")
    g.add_argument("model", help="simulator file written by LatentSpaceSimulator.save (e.g. lss_model.pt)")
    g.add_argument("--n-traj", type=int, default=100, help="number of trajectories (default 100)")
    g.add_argument("--n-steps", type=int, default=10_440, help="lag steps per trajectory (default 10,440)")
    g.add_argument("--out", required=True, help="output directory (created)")
    g.add_argument("--seed", type=int, default=None, help="random seed (default: drawn and recorded)")
    g.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    g.add_argument("--format", dest="fmt", default="dcd", choices=("dcd", "xtc", "h5"),
                   help="trajectory format (default dcd)")
    g.add_argument("--start", help="start structure(s): any file mdtraj reads in the model's featurizer "
                                   "topology (PDB, ...); trajectory i starts from frame i mod n_frames")
    g.add_argument("--start-latent", help="start latent point, comma-separated (e.g. 0.1,-1.2,0.3)")
    g.add_argument("--chunk-frames", type=int, default=None,
                   help="frames decoded and written at once (memory bound; default 262,144)")
    g.add_argument("--prefix", default="traj", help="trajectory file name prefix (default traj)")
    g.add_argument("--no-latent", action="store_true", help="do not write latent.npy")
    g.add_argument("--overwrite", action="store_true", help="replace an earlier generation in OUT")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")

    i = sub.add_parser("info", help="describe a saved simulator (sizes, time step, versions, fingerprint)")
    i.add_argument("model")
    return p


def _generate(a) -> int:
    import numpy as np

    from .simulator import DEFAULT_CHUNK_FRAMES, LatentSpaceSimulator

    sim = LatentSpaceSimulator.load(a.model, device=a.device)
    start = start_latent = None
    if a.start and a.start_latent:
        raise ValueError("give --start or --start-latent, not both")
    if a.start:
        import mdtraj as md

        top = sim.featurizer.topology if sim.featurizer is not None else sim.topology
        start = md.load(a.start) if a.start.endswith((".pdb", ".h5", ".gro")) else md.load(a.start, top=top)
    if a.start_latent:
        try:
            start_latent = np.array([float(v) for v in a.start_latent.split(",")])
        except ValueError:
            raise ValueError(f"--start-latent must be comma-separated numbers, got {a.start_latent!r}") from None
    tic = time.perf_counter()
    meta = sim.generate_to_disk(a.out, a.n_traj, a.n_steps, fmt=a.fmt, start=start, start_latent=start_latent,
                                random_state=a.seed, device=a.device,
                                chunk_frames=a.chunk_frames or DEFAULT_CHUNK_FRAMES, prefix=a.prefix,
                                save_latent=not a.no_latent, overwrite=a.overwrite, progress=not a.no_progress)
    wall = time.perf_counter() - tic
    n = meta["n_traj"] * meta["n_frames"]
    files = meta["files"]
    shown = files[0] if len(files) == 1 else f"{files[0]} ... {files[-1]}"
    print(f"wrote {meta['n_traj']} trajectories x {meta['n_frames']:,} frames = {n:,} frames "
          f"({meta['timestep']:g} {meta['time_unit']} per frame) to {a.out} in {wall:.1f} s "
          f"({n / wall:,.0f} frames/s); seed {meta['seed']}")
    print(f"files: {shown}, topology.pdb" + (", latent.npy" if meta["latent"] else "") + ", generation.json")
    return 0


def _info(a) -> int:
    from .simulator import LatentSpaceSimulator

    sim = LatentSpaceSimulator.load(a.model)
    info = sim.info()
    info["checksum"] = sim.checksum()
    print(json.dumps(info, indent=1, default=str))
    return 0


def main(argv=None) -> int:
    """Entry point of the ``lss`` console script; returns the exit status."""
    a = _parser().parse_args(argv)
    try:
        if a.command == "generate":
            return _generate(a)
        return _info(a)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        print(f"lss {a.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
