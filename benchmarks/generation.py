"""Throughput of the latent space simulator at the paper's scale, and the MD cost of the same trajectory.

Usage::

    python benchmarks/generation.py                      # untrained networks, every decoder
    python benchmarks/generation.py --decoder flow       # one decoder
    python benchmarks/generation.py --model runs/cpu/06_generate/lss_model.pt --json out.json

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
   extrapolated, and the ratio MD / LSS is printed.

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
    info.update({"cpu_model": cpu or platform.processor(), "load_avg": os.getloadavg(),
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
    from lss.utils import torch_threads
    from memory import PeakMemory

    n_threads = torch.get_num_threads()
    res: dict = {"machine": machine(), "load_avg_before": os.getloadavg(), "torch_threads_default": n_threads,
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
    res["load_avg_after"] = os.getloadavg()
    res["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report(res)
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1, default=str) + "\n")
    return res


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


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/memory.py
    main(sys.argv[1:])
