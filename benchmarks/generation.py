"""Throughput of the latent space simulator at the paper's scale, and the MD cost of the same trajectory.

Usage::

    python benchmarks/generation.py                      # untrained networks, every decoder
    python benchmarks/generation.py --decoder flow       # one decoder
    python benchmarks/generation.py --model runs/cpu/06_generate/lss_model.lss --json out.json
    python benchmarks/generation.py --model runs/cpu/06_generate/lss_model.lss --projection-only

Measures, on this machine (see benchmarks/README.md for how to read the numbers):

1. propagation alone: ``n_traj`` trajectories x ``n_steps`` lag steps of the MDN propagator
   (m latent dimensions, C Gaussians, 2 x 100 ReLU), one torch thread;
2. decoding alone, with 1 torch thread and with all threads: the cWGAN generator (noise 50 + m ->
   3 x 200 SiLU -> 3 x n_atoms) or the normalizing flow (8 affine coupling layers of 2 x 128 ReLU on
   3 n_atoms - 6 whitened coordinates), both with the fixed-bond projection that ships;
3. the whole of ``LatentSpaceSimulator.generate`` (pipelined: propagation in a worker thread,
   decoding in the calling thread), frames/s and the peak resident memory of the process;
4. ``generate_to_disk`` to DCD (decode + write);
5. the MD cost of the same amount of trajectory with the default model (the OpenMM C-alpha Go model
   of :mod:`lss.gomodel`, Reference platform, one process per core): a short run is timed and
   extrapolated, and the ratio MD / LSS is printed;
6. with ``--projection`` (or ``--projection-only``): the decoders' fixed geometry
   (``Decoder._fix_geometry_``) on ``--projection-frames`` decoded frames with each projection
   candidate, interleaved and repeated (median, load average per repeat): bonds only, the previous
   :func:`project_chain_v0` and the current :func:`lss.structure.project_chain_`, and how their
   results differ (constraint errors, RMSD between them, bond and angle distributions).

Throughput does not depend on the weights, so without ``--model`` the networks are built with the
sizes that ship and trained for one epoch on random data, once per decoder (``--decoder``). Other processes on a shared machine slow
every number: the load average before and after is printed; rerun when it is low.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lss.utils import load_average


def build_simulator(m: int, n_kernels: int, n_atoms: int, decoder: str = "cwgan", lag: int = 20,
                    frame_time_ps: float = 3.0, seed: int = 0):
    """A simulator with networks of the shipped sizes, each trained one epoch on random data.

    ``decoder``: ``'cwgan'`` (:class:`lss.cwgan.CWGAN` defaults) or ``'flow'`` (:class:`lss.flow.FlowDecoder`
    defaults).
    """
    import mdtraj as md

    from lss.cwgan import CWGAN
    from lss.flow import FlowDecoder
    from lss.mdn import MDNPropagator
    from lss.simulator import LatentSpaceSimulator

    rng = np.random.default_rng(seed)
    lat = np.cumsum(rng.normal(0, 0.1, (2000, m)), 0).astype(np.float32)
    mdn = MDNPropagator(n_kernels=n_kernels, lag=lag, hidden=(100, 100), max_epochs=1, patience=1,
                        random_state=seed).fit(lat)
    top = md.Topology()
    chain = top.add_chain()
    for i in range(n_atoms):
        top.add_atom("CA", md.element.carbon, top.add_residue("ALA", chain, resSeq=i + 1))
    xyz = (np.arange(n_atoms)[None, :, None] * np.array([0.38, 0, 0])[None, None]
           + rng.normal(0, 0.05, (512, n_atoms, 3))).astype(np.float32)
    if decoder == "cwgan":
        dec = CWGAN(n_epochs=1, random_state=seed).fit(xyz, lat[:512])
    else:
        dec = FlowDecoder(max_epochs=1, random_state=seed).fit(xyz, lat[:512])
    return LatentSpaceSimulator(None, mdn, dec, top, frame_time=frame_time_ps, time_unit="ps",
                                start_latent=lat[0], config={"benchmark": "random weights, one epoch"})


def machine() -> dict:
    from lss.utils import machine_info

    info = machine_info()
    cpu = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info.update({"cpu_model": cpu or platform.processor(), "load_avg": load_average(),
                 "platform": platform.platform()})
    return info


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a saved LatentSpaceSimulator (default: untrained networks of the paper's sizes)")
    p.add_argument("--n-traj", type=int, default=100)
    p.add_argument("--n-steps", type=int, default=10_440)
    p.add_argument("--m", type=int, default=3, help="latent dimension (untrained networks)")
    p.add_argument("--C", type=int, default=24, help="MDN Gaussians (untrained networks)")
    p.add_argument("--decoder", choices=("cwgan", "flow", "all"), default="all", help="decoder (untrained networks)")
    p.add_argument("--n-atoms", type=int, default=20, help="C-alpha atoms (untrained networks)")
    p.add_argument("--lag", type=int, default=20, help="MDN lag, frames (untrained networks; for the MD equivalent)")
    p.add_argument("--frame-time-ps", type=float, default=3.0,
                   help="time between training frames, ps of Go-model time (cpu profile: 150 steps x 20 fs)")
    p.add_argument("--md-timestep-ps", type=float, default=0.02, help="Go-model MD time step, ps")
    p.add_argument("--md-steps", type=int, default=50_000, help="MD steps timed for the extrapolation")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=2, help="repetitions of each measurement (the best is kept)")
    p.add_argument("--skip-disk", action="store_true", help="skip generate_to_disk")
    p.add_argument("--skip-md", action="store_true", help="skip the MD comparison")
    p.add_argument("--sequential", action="store_true", help="also time generate(pipeline=False)")
    p.add_argument("--projection", action="store_true",
                   help="also time the fixed-angle projection candidates (Decoder._fix_geometry_) side by side")
    p.add_argument("--projection-only", action="store_true", help="propagate, then only the projection comparison")
    p.add_argument("--projection-frames", type=int, default=1_000_000, help="frames per projection timing")
    p.add_argument("--projection-pool", type=int, default=131_072,
                   help="decoded frames the projection timing cycles through (and the accuracy comparison uses)")
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--save-model", help="also save the simulator used (e.g. to time the lss command line)")
    a = p.parse_args(argv)
    if a.model or a.decoder != "all":
        return run(a, None if a.model else a.decoder)
    out = {}
    json_path, a.json = a.json, None
    for i, kind in enumerate(("cwgan", "flow")):
        a.skip_md = a.skip_md or i > 0  # the MD cost once
        out[kind] = run(a, kind)
        print()
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(out, indent=1, default=str) + "\n")
    return out


def run(a, decoder: str | None) -> dict:
    """All measurements for one simulator: the saved ``a.model``, or untrained networks with ``decoder``."""
    from lss.simulator import DECODE_BATCH, LatentSpaceSimulator
    from lss.utils import PeakMemory, torch_threads

    n_threads = torch.get_num_threads()
    res: dict = {"machine": machine(), "load_avg_before": load_average(), "torch_threads_default": n_threads,
                 "device": a.device}
    t0 = time.perf_counter()
    if a.model:
        sim = LatentSpaceSimulator.load(a.model, device=a.device)
        res["model"] = a.model
    else:
        with torch_threads(1):
            sim = build_simulator(a.m, a.C, a.n_atoms, decoder=decoder, lag=a.lag, frame_time_ps=a.frame_time_ps,
                                  seed=a.seed)
        sim.to(a.device)
        res["model"] = f"untrained: m={a.m}, C={a.C}, MDN 2x100 ReLU, decoder {sim.decoder!r}, {a.n_atoms} atoms"
    res["build_s"] = time.perf_counter() - t0
    if a.save_model:
        sim.save(a.save_model)
    n_frames = a.n_traj * (a.n_steps + 1)
    res.update({"n_traj": a.n_traj, "n_steps": a.n_steps, "n_frames": n_frames, "latent_dim": sim.n_components_,
                "n_atoms": sim.n_atoms, "lag_frames": sim.lag, "timestep_ps": sim.timestep_ps})
    start = sim.start_latent if sim.start_latent is not None else None
    kw = dict(start_latent=start) if start is not None else {}
    def best(f):
        """Run ``f`` (returns wall seconds) ``repeat`` times; keep the fastest (wall, process CPU seconds)."""
        runs = []
        for _ in range(max(1, a.repeat)):
            c = time.process_time()
            w = f()
            runs.append((w, time.process_time() - c))
        return min(runs)

    # 1. propagation alone (one torch thread, as in generate)
    ens = {}

    def prop():
        tic = time.perf_counter()
        ens["e"] = sim.generate(a.n_traj, a.n_steps, random_state=a.seed, decode=False, device=a.device, **kw)
        return time.perf_counter() - tic
    res["propagate_s"] = best(prop)
    latent = ens["e"].latent.reshape(-1, sim.n_components_)
    if a.projection or a.projection_only:
        res["projection"] = projection_candidates(sim, a, latent)
    if a.projection_only:
        res["load_avg_after"] = load_average()
        print(f"machine: {res['machine'].get('cpu_model')}, torch {res['machine'].get('torch')}; model: {res['model']}")
        report_projection(res["projection"])
        if a.json:
            Path(a.json).parent.mkdir(parents=True, exist_ok=True)
            Path(a.json).write_text(json.dumps(res, indent=1, default=str) + "\n")
        return res

    # 2. decoding alone, 1 thread and all threads
    out = np.empty((len(latent), sim.n_atoms, 3), np.float32)

    def dec(threads):
        def f():
            with torch_threads(threads):
                tic = time.perf_counter()
                sim.decoder.generate(latent, random_state=a.seed, device=a.device, out=out,
                                     batch_size=getattr(sim.decoder, "decode_batch", DECODE_BATCH))
                return time.perf_counter() - tic
        return f
    res["decode_1thread_s"] = best(dec(1))
    if n_threads > 1 and a.device == "cpu":
        res[f"decode_{n_threads}threads_s"] = best(dec(n_threads))
    del out, ens

    # 3. the whole, in memory (pipelined)
    def whole(pipeline):
        def f():
            with PeakMemory() as mem:
                tic = time.perf_counter()
                e = sim.generate(a.n_traj, a.n_steps, random_state=a.seed, device=a.device, pipeline=pipeline, **kw)
                trajs = e.trajectories  # the mdtraj objects are part of the product
                wall = time.perf_counter() - tic
            f.peak = max(getattr(f, "peak", 0.0), mem.peak_mb)
            f.timings = e.timings
            del e, trajs
            return wall
        return f
    w = whole(True)
    res["generate_s"] = best(w)
    res["generate_peak_rss_mb"] = w.peak
    res["generate_timings"] = w.timings
    if a.sequential:
        ws = whole(False)
        res["generate_sequential_s"] = best(ws)

    # 4. to disk (DCD)
    if not a.skip_disk:
        d = tempfile.mkdtemp(prefix="lss_bench_")
        try:
            with PeakMemory() as mem:
                tic = time.perf_counter()
                c = time.process_time()
                meta = sim.generate_to_disk(d, a.n_traj, a.n_steps, fmt="dcd", random_state=a.seed,
                                            device=a.device, overwrite=True, **kw)
                res["to_disk_dcd_s"] = (time.perf_counter() - tic, time.process_time() - c)
            res["to_disk_timings"] = meta["timings_s"]
            res["to_disk_peak_rss_mb"] = mem.peak_mb
            res["to_disk_bytes"] = sum(f.stat().st_size for f in Path(d).iterdir())
        finally:
            shutil.rmtree(d, ignore_errors=True)

    # 5. MD of the same amount of trajectory
    if not a.skip_md:
        from lss import gomodel

        steps_per_lss_step = sim.timestep_ps / a.md_timestep_ps
        md_total_steps = a.n_traj * a.n_steps * steps_per_lss_step
        speed = gomodel.measure_speed("Reference", n_steps=a.md_steps, timestep=a.md_timestep_ps)
        n_cores = os.cpu_count() or 1
        res["md"] = {"model": "lss.gomodel C-alpha Go model, OpenMM Reference platform, one process per core",
                     "timestep_ps": a.md_timestep_ps, "steps_per_lss_step": steps_per_lss_step,
                     "total_steps": md_total_steps, "steps_per_s_one_core": speed,
                     "seconds_one_core": md_total_steps / speed,
                     "seconds_all_cores": md_total_steps / (speed * n_cores), "n_cores": n_cores}
        res["md_over_lss"] = res["md"]["seconds_all_cores"] / res["generate_s"][0]
    res["load_avg_after"] = load_average()
    res["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report(res)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1, default=str) + "\n")
    return res



# ------------------------------------------------------------------ fixed angles: projection candidates
@torch.no_grad()
def project_chain_v0(x: torch.Tensor, bonds: torch.Tensor, seconds: torch.Tensor, n_iter: int = 8,
                   tol: float = 1e-5, damping: float = 1e-6, stop_early: bool = True) -> torch.Tensor:
    """The previous :func:`lss.structure.project_chain_` (same arguments and result), kept here only to
    time it against the current one: the banded LDL^T of ``J J^T`` as ~1,000 torch operations per
    Gauss-Newton step, each on one row of frames indexed inside the loops (new arrays at every call)."""
    from lss.structure import chain_constraints, project_bonds_

    n_frames, n_atoms = x.shape[:2]
    if n_atoms < 3:
        if n_atoms == 2:
            project_bonds_(x, bonds)
        return torch.ones(n_frames, dtype=torch.bool, device=x.device)
    _, bw, signs = chain_constraints(n_atoms)
    n = 2 * n_atoms - 3
    dev = x.device
    sg = torch.tensor(signs, device=dev)[:, :, None]                   # (bw + 1, n, 1)
    target = torch.empty((n, n_frames), dtype=x.dtype, device=dev)
    target[0::2] = bonds.expand(n_frames, n_atoms - 1).t()
    target[1::2] = seconds.expand(n_frames, n_atoms - 2).t()
    # coordinate-major layout (xyz, atom, frame), as project_bonds_; slices, not index_select (10x slower)
    y = x.permute(2, 1, 0).contiguous()                                # (3, n_atoms, n_frames)
    band = torch.empty((bw + 1, n, n_frames), dtype=x.dtype, device=dev)
    low = torch.zeros_like(band)                                       # L[p, p - d] at low[d, p]
    d = torch.empty((3, n, n_frames), dtype=x.dtype, device=dev)

    def residual():
        torch.sub(y[:, 1:], y[:, :-1], out=d[:, 0::2])                 # bonds
        torch.sub(y[:, 2:], y[:, :-2], out=d[:, 1::2])                 # i, i+2
        r = (d[0] * d[0]).add_(d[1] * d[1]).add_(d[2] * d[2]).sqrt_().clamp_min_(1e-6)
        return d, r, target - r                                        # -g

    for _ in range(n_iter):
        d, r, rhs = residual()
        if stop_early and float(rhs.abs().max()) < tol:
            break
        e = d.div_(r)
        band[0].fill_(2.0 + damping)
        for k in range(1, bw + 1):
            band[k, k:] = (e[:, k:] * e[:, :-k]).sum(0).mul_(sg[k, k:])
        # banded LDL^T in place: band[d, p] becomes W(p, p-d) = L(p, p-d) D(p-d); band[0] becomes D
        for p in range(n):
            dp = band[0, p]
            for k in range(min(p, bw), 0, -1):
                q = p - k
                w = band[k, p]
                for j in range(max(0, p - bw), q):                     # W(p, j) L(q, j)
                    w.addcmul_(band[p - j, p], low[q - j, q], value=-1.0)
                torch.div(w, band[0, q], out=low[k, p])
                dp.addcmul_(w, low[k, p], value=-1.0)
        lam = rhs
        for p in range(1, n):
            for k in range(1, min(p, bw) + 1):
                lam[p].addcmul_(low[k, p], lam[p - k], value=-1.0)
        lam.div_(band[0])
        for p in range(n - 2, -1, -1):
            for k in range(1, min(n - 1 - p, bw) + 1):
                lam[p].addcmul_(low[k, p + k], lam[p + k], value=-1.0)
        f = e.mul_(lam)                                                # (3, n, n_frames)
        y[:, 1:] += f[:, 0::2]
        y[:, :-1] -= f[:, 0::2]
        y[:, 2:] += f[:, 1::2]
        y[:, :-2] -= f[:, 1::2]
    _, _, rhs = residual()
    x.copy_(y.permute(2, 1, 0))
    return rhs.abs().amax(0) <= tol


def projection_candidates(sim, a, latent: np.ndarray) -> dict:
    """Time the decoders' fixed geometry (``Decoder._fix_geometry_``) with each projection candidate.

    A pool of up to ``a.projection_pool`` structures is decoded without fixed geometry at the given latent
    points (the decoder's raw output, what the projection receives); ``a.projection_frames`` frames are then
    projected in the decoder's batches (``decode_batch``), cycling through the pool, once per candidate and
    repeat, the candidates interleaved within each repeat: ``bonds only`` (``fixed_angles`` off, the floor),
    ``v0`` (:func:`project_chain_v0`, the previous implementation) and ``current``
    (:func:`lss.structure.project_chain_`). One torch thread, as in ``generate``. Then both projections
    on the whole pool, with the same bond lengths and angle targets, for the accuracy comparison.
    """
    import lss.decoder as dec_mod
    from lss.simulator import DECODE_BATCH
    from lss.structure import bond_lengths, chain_angles, pair_rmsd, project_chain_
    from lss.utils import torch_threads

    dec = sim.decoder
    if not dec._angles_on() or sim.n_atoms < 3:
        print("projection candidates: the decoder has no fixed_angles tables; skipped")
        return {}
    batch = int(getattr(dec, "decode_batch", DECODE_BATCH))
    n_pool = min(int(a.projection_pool), len(latent))
    keep = dec.fixed_bonds
    dec.fixed_bonds = False
    try:
        with torch_threads(1):
            pool = torch.as_tensor(dec.generate(latent[:n_pool], random_state=a.seed, batch_size=batch))
    finally:
        dec.fixed_bonds = keep
    n_pool = len(pool)
    cands = {"bonds only": None, "v0": project_chain_v0, "current": project_chain_}
    saved = dec_mod.project_chain_, dec.fixed_angles

    def project(fn, n, record=None):
        """``n`` frames through ``_fix_geometry_`` with projection ``fn`` (None: bonds only); CPU, wall s."""
        dec.fixed_angles = fn is not None
        dec_mod.project_chain_ = fn if record is None else record
        g = torch.Generator().manual_seed(a.seed)
        out = torch.empty((min(n, n_pool), sim.n_atoms, 3)) if record is not None else None
        c, tic = time.process_time(), time.perf_counter()
        with torch_threads(1), torch.inference_mode():
            i = 0
            while i < n:
                j = i % n_pool
                k = min(batch, n - i, n_pool - j)
                x = pool[j:j + k].reshape(k, -1).clone()
                dec._fix_geometry_(x, g)
                if out is not None:
                    out[j:j + k] = x.view(k, sim.n_atoms, 3)
                i += k
        return time.process_time() - c, time.perf_counter() - tic, out

    runs = {name: [] for name in cands}
    loads = []
    n = int(a.projection_frames)
    try:
        for _ in range(max(3, a.repeat)):
            loads.append(load_average()[0])
            for name, fn in cands.items():
                cpu, wall, _ = project(fn, n)
                runs[name].append((cpu * 1e6 / n, wall * 1e6 / n))
        # accuracy: the whole pool once per projection, recording the targets of the first call per batch
        outs, targets = {}, {}
        for name in ("v0", "current"):
            got = []

            def record(x, bonds, seconds, *args, _fn=cands[name], _got=got, **kw):
                _got.append((bonds.clone(), seconds.clone(), len(x)))
                return _fn(x, bonds, seconds, *args, **kw)

            _, _, outs[name] = project(cands[name], n_pool, record=record)
            # the first call of each batch gets all its frames; the later ones (frames that need more
            # steps) get fewer
            firsts, seen = [], 0
            for b, s_, k in got:
                if seen < n_pool and k == min(batch, n_pool - seen):
                    firsts.append((b, s_))
                    seen += k
            targets[name] = (torch.cat([f[0] for f in firsts]), torch.cat([f[1] for f in firsts]))
            assert len(targets[name][0]) == n_pool
    finally:
        dec_mod.project_chain_, dec.fixed_angles = saved
    assert torch.equal(targets["v0"][0], targets["current"][0]) and torch.equal(targets["v0"][1], targets["current"][1])
    b_t, s_t = targets["current"]
    acc = {}
    for name, y in outs.items():
        eb = (torch.as_tensor(bond_lengths(y.numpy())) - b_t).abs().amax(1)
        es = ((y[:, 2:] - y[:, :-2]).norm(dim=-1) - s_t).abs().amax(1)
        err = torch.maximum(eb, es)
        ang = chain_angles(y).numpy()
        acc[name] = {"max_constraint_error_nm": float(err.max()),
                     "frames_over_tol": int((err > dec_mod.GEOMETRY_TOL).sum()),
                     "bond_mean_sd_nm": [float(bond_lengths(y.numpy()).mean()), float(bond_lengths(y.numpy()).std())],
                     "angle_mean_sd_deg": [float(np.degrees(ang).mean()), float(np.degrees(ang).std())],
                     "rmsd_to_raw_nm_mean": float(pair_rmsd(y.numpy(), pool.numpy()).mean())}
    disp = (outs["v0"] - outs["current"]).norm(dim=-1).amax(1)
    rmsd = pair_rmsd(outs["v0"].numpy(), outs["current"].numpy())
    a_old, a_new = np.degrees(chain_angles(outs["v0"]).numpy()), np.degrees(chain_angles(outs["current"]).numpy())
    acc["v0_vs_current"] = {
        "frames": n_pool,
        "max_atom_displacement_nm": float(disp.max()),
        "frames_displaced_over_nm": {f"{t:g}": int((disp > t).sum()) for t in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)},
        "rmsd_nm_mean_max": [float(rmsd.mean()), float(rmsd.max())],
        "angle_quantiles_deg_max_diff": float(np.abs(np.quantile(a_old, np.linspace(0.01, 0.99, 99), axis=0)
                                                   - np.quantile(a_new, np.linspace(0.01, 0.99, 99), axis=0)).max()),
    }
    med = {name: tuple(float(np.median([r[i] for r in v])) for i in (0, 1)) for name, v in runs.items()}
    return {"frames": n, "batch": batch, "pool": n_pool, "repeats": len(loads), "load_avg_per_repeat": loads,
            "runs_s_per_1e6": runs, "median_s_per_1e6": med, "accuracy": acc}


def report_projection(p: dict) -> None:
    if not p:
        return
    print(f"\nfixed angles, Decoder._fix_geometry_ with each projection ({p['frames']:,} frames in batches of "
          f"{p['batch']:,} from a pool of {p['pool']:,} decoded frames, 1 thread; {p['repeats']} interleaved "
          f"repeats, load average at each: {', '.join(f'{x:.2f}' for x in p['load_avg_per_repeat'])}):")
    print(f"{'candidate':14s} {'CPU s / 1e6 frames (median)':>28s} {'wall s / 1e6':>13s}   CPU s / 1e6 of each repeat")
    for name, (c, w) in p["median_s_per_1e6"].items():
        each = ", ".join(f"{r[0]:.2f}" for r in p["runs_s_per_1e6"][name])
        print(f"{name:14s} {c:28.2f} {w:13.2f}   {each}")
    acc = p["accuracy"]
    for name in ("v0", "current"):
        r = acc[name]
        print(f"{name:8s}: largest bond / i,i+2 error {r['max_constraint_error_nm']:.1e} nm ({r['frames_over_tol']} frames "
              f"over the tolerance), bonds {r['bond_mean_sd_nm'][0]:.4f} +/- {r['bond_mean_sd_nm'][1]:.4f} nm, "
              f"angles {r['angle_mean_sd_deg'][0]:.2f} +/- {r['angle_mean_sd_deg'][1]:.2f} deg, "
              f"mean RMSD to the decoded chain {r['rmsd_to_raw_nm_mean']:.4f} nm")
    c = acc["v0_vs_current"]
    print(f"v0 vs current on {c['frames']:,} frames: RMSD mean {c['rmsd_nm_mean_max'][0]:.1e}, max "
          f"{c['rmsd_nm_mean_max'][1]:.1e} nm; largest atom displacement {c['max_atom_displacement_nm']:.1e} nm; "
          f"frames displaced by more than (nm) {c['frames_displaced_over_nm']}; angle quantiles (1-99 %) differ "
          f"by at most {c['angle_quantiles_deg_max_diff']:.1e} deg")


def report(r: dict) -> None:
    n = r["n_frames"]
    mi = r["machine"]
    print(f"machine: {mi.get('cpu_model')} ({mi.get('cpu_count')} cores), torch {mi.get('torch')}, "
          f"default torch threads {r['torch_threads_default']}, device {r['device']}")
    print(f"load average before {tuple(round(x, 2) for x in r['load_avg_before'])}, "
          f"after {tuple(round(x, 2) for x in r['load_avg_after'])}")
    print(f"model: {r['model']}; lag {r['lag_frames']} frames, one step = {r['timestep_ps']:g} ps")
    print(f"request: {r['n_traj']} trajectories x {r['n_steps']:,} steps = {n:,} frames "
          f"of {r['n_atoms']} atoms, latent dimension {r['latent_dim']}\n")
    rows = [("propagation (1 thread)", r["propagate_s"])]
    rows.append(("decoding (1 thread)", r["decode_1thread_s"]))
    for k, v in r.items():
        if k.startswith("decode_") and k.endswith("threads_s"):
            rows.append((f"decoding ({k[7:-9]} threads)", v))
    rows.append(("generate, pipelined (1 + 1 threads)", r["generate_s"]))
    if "generate_sequential_s" in r:
        rows.append(("generate, sequential", r["generate_sequential_s"]))
    if "to_disk_dcd_s" in r:
        rows.append(("generate_to_disk, DCD", r["to_disk_dcd_s"]))
    print(f"{'stage':40s} {'wall s':>8s} {'frames/s':>11s} {'CPU s':>8s} {'frames/CPU-s':>13s}")
    for name, (w, c) in rows:
        print(f"{name:40s} {w:8.2f} {n / w:11,.0f} {c:8.2f} {n / c:13,.0f}")
    t = r["generate_timings"]
    work = t['propagate_cpu_s'] + t['decode_cpu_s']
    print(f"\ninside generate (pipelined): propagation CPU {t['propagate_cpu_s']:.2f} s, decoding CPU "
          f"{t['decode_cpu_s']:.2f} s (both threads); on two idle cores the wall time would be about "
          f"max(propagation, half the sum) = {max(t['propagate_cpu_s'], work / 2):.2f} s "
          f"({n / max(t['propagate_cpu_s'], work / 2):,.0f} frames/s)")
    print(f"\npeak resident memory during generate: {r['generate_peak_rss_mb']:,.0f} MB "
          f"(whole process, torch included)" + (f"; during generate_to_disk: {r['to_disk_peak_rss_mb']:,.0f} MB"
                                                if "to_disk_peak_rss_mb" in r else ""))
    if "md" in r:
        m = r["md"]
        print(f"MD of the same trajectory: {m['total_steps']:,.0f} steps of {m['timestep_ps']} ps "
              f"({m['steps_per_lss_step']:g} per LSS step) at {m['steps_per_s_one_core']:,.0f} steps/s per core: "
              f"{m['seconds_one_core']:,.0f} s on one core, {m['seconds_all_cores']:,.0f} s on {m['n_cores']} cores")
        print(f"MD / LSS (same cores): {r['md_over_lss']:,.0f}x")
    report_projection(r.get("projection", {}))


if __name__ == "__main__":
    main(sys.argv[1:])
