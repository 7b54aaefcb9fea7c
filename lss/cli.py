"""Command line of lss: generate trajectories from a saved latent space simulator, without Jupyter.

Examples::

    lss generate runs/cpu/06_generate/lss_model.lss --n-traj 100 --n-steps 10440 --out synthetic/ --seed 1
    lss generate MODEL --n-traj 10 --n-steps 1000 --out DIR --start start.pdb --format xtc
    lss info MODEL
    lss score --top md.pdb --reference md_0.xtc md_1.xtc --candidate LSS runs/cpu/06_generate \
              --candidate other gen/*.dcd --dt other=60ps --native native.pdb --out score/
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
    g.add_argument("model", help="simulator file written by LatentSpaceSimulator.save (e.g. lss_model.lss)")
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

    s = sub.add_parser("score", help="score generated ensembles against MD (lss.score)",
                       description="Score candidate ensembles against a reference MD ensemble: ensemble, structure "
                                   "and kinetic metrics against the reference (as long an MD run as can be had), each "
                                   "beside the floor (independent MD of the training length: pieces of the "
                                   "reference) and an MSM baseline that replays the training MD's frames. "
                                   "Writes score.json, score.md and score.png to OUT. Trajectories: DCD, XTC, "
                                   "HDF5 (one trajectory per file) or a directory written by lss generate. DCD "
                                   "files store no time step: give it with --dt.")
    s.add_argument("--reference", nargs="+", required=True, metavar="FILE", help="MD trajectory files")
    s.add_argument("--top", help="topology (PDB) of the trajectory files; C-alpha atoms are kept")
    s.add_argument("--candidate", nargs="+", action="append", default=[], metavar=("NAME", "FILE"),
                   help="a candidate: its name, then its files or generation directory (repeatable)")
    s.add_argument("--dt", action="append", default=[], metavar="NAME=TIME",
                   help="time between frames of an ensemble, e.g. MD=3ps, LSS=0.06ns (unit fs, ps, ns, us; "
                        "default ps); needed for DCD files; MD names the reference")
    s.add_argument("--latent", action="append", default=[], metavar="NAME=FILE.npy",
                   help="latent trajectories (n_traj, n_frames, m) of an ensemble, e.g. MD=md_latent.npy")
    s.add_argument("--skip", action="append", default=[], metavar="NAME=FRAMES",
                   help="frames dropped at the start of every trajectory of an ensemble, e.g. LSS=50")
    s.add_argument("--training", metavar="NAME",
                   help="the candidate that is the training MD: the floor is independent MD of its length and "
                        "the MSM baseline replays its frames (default: quarters of the reference)")
    s.add_argument("--native", help="native structure (PDB): Q and RMSD to native are scored")
    s.add_argument("--cores", metavar="COORD:LO:HI",
                   help="cores of the first passages, e.g. q:0.45:0.85 (COORD latent, tic1 or q; default latent "
                        "with the MD's 20th and 80th percentiles)")
    s.add_argument("--n-states", type=int, default=100, help="k-means states of the MSMs (default 100)")
    s.add_argument("--stride", type=int, default=1, help="keep every STRIDE-th frame of every ensemble")
    s.add_argument("--seed", type=int, default=0, help="random seed (MSM baseline, bootstraps)")
    s.add_argument("--no-msm", action="store_true", help="do not score the MSM baseline")
    s.add_argument("--out", default="score", help="output directory (default score/)")
    return p


def _time(text: str, what: str) -> tuple[float, str]:
    """'3ps' -> (3.0, 'ps'); a bare number is in ps."""
    import re

    m = re.fullmatch(r"\s*([0-9.]+(?:[eE][-+]?[0-9]+)?)\s*([a-zµ]*)\s*", text)
    if not m:
        raise ValueError(f"{what}: {text!r} is not a time such as 3ps or 0.06ns")
    return float(m.group(1)), m.group(2) or "ps"


def _named(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"{what} must be NAME=VALUE, got {item!r}")
        out[name] = value
    return out


def _score(a) -> int:
    from .score import Ensemble, score

    dts = {k: _time(v, f"--dt {k}") for k, v in _named(a.dt, "--dt").items()}
    latents = _named(a.latent, "--latent")
    skips = {k: int(v) for k, v in _named(a.skip, "--skip").items()}
    names = ["MD"] + [c[0] for c in a.candidate]
    for c in a.candidate:
        if len(c) < 2:
            raise ValueError(f"--candidate {c[0]}: give the name, then at least one file or directory")
    unknown = sorted((set(dts) | set(latents) | set(skips)) - set(names))
    if unknown:
        raise ValueError(f"--dt/--latent/--skip name(s) {unknown} are neither MD nor a --candidate name ({names[1:]})")
    if not a.candidate:
        raise ValueError("give at least one --candidate NAME FILE...")
    if a.training is not None and a.training not in names[1:]:
        raise ValueError(f"--training {a.training}: not a --candidate name ({names[1:]})")

    def read(name, files):
        ft, unit = dts.get(name, (None, "ps"))
        return Ensemble.from_files(files, a.top, frame_time=ft, time_unit=unit, name=name,
                                   latent=latents.get(name), stride=a.stride, skip=skips.get(name, 0))

    ref = read("MD", a.reference)
    cands = {c[0]: read(c[0], c[1:]) for c in a.candidate}
    native = None
    if a.native:
        import mdtraj as md

        t = md.load(a.native)
        ca = t.topology.select("name CA")
        native = t.atom_slice(ca) if 0 < len(ca) < t.n_atoms else t
    kw = {}
    if a.cores:
        coord, lo, hi = a.cores.split(":")
        kw = {"core_coordinate": coord, "cores": (float(lo), float(hi))}
    tic = time.perf_counter()
    card = score(ref, cands, native=native, n_states=a.n_states, msm_baseline=not a.no_msm,
                 random_state=a.seed, training=a.training, **kw)
    paths = card.save(a.out)
    print(card.markdown())
    print(f"\nscored {', '.join(cands)} against {ref.n_frames:,} MD frames in {time.perf_counter() - tic:.1f} s; "
          f"wrote {paths['json']}, {paths['markdown']}, {paths['figure']}")
    return 0


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
        if a.command == "score":
            return _score(a)
        return _info(a)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as e:
        print(f"lss {a.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
