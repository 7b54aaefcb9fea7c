"""Wall time of ``lss.score.score`` for the paper-sized ensemble against the cpu-profile MD.

Usage::

    python benchmarks/score.py                                   # runs/cpu: MD of 02/03, LSS of 06
    python benchmarks/score.py --out runs/cpu/07_analysis/score  # also write score.json/.md/.png
    python benchmarks/score.py --synthetic                       # no runs/cpu/06: MD frames resampled

The reference is the cpu profile's MD (``runs/cpu/02_trpcage_data``, 80,000 frames of 20 C-alpha
atoms; its SRV latent trajectories from ``03_srv/latent.npz``); the candidate is the generated
ensemble of ``runs/cpu/06_generate`` (100 trajectories x 10,441 frames = 1,044,100 frames, one
propagator lag apart, with their latent trajectories). With ``--synthetic`` (or when 06 is missing)
the candidate is the same size, made of MD frames in contiguous runs of 10 (structures and latent
points of the MD). The native structure is 2JOF (Q and RMSD are scored), the cores are Q < 0.45
and Q > 0.85. Reading the files is timed apart from the scoring (the target, <= 60 s on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from lss.utils import load_average

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", default="cpu")
    p.add_argument("--synthetic", action="store_true", help="candidate made of resampled MD frames")
    p.add_argument("--out", help="directory for score.json, score.md, score.png")
    p.add_argument("--json", help="write the timings here")
    a = p.parse_args(argv)

    from lss import gomodel, paths
    from lss.data import TrpcageDataset
    from lss.latent import load_latent
    from lss.score import Ensemble, score
    from lss.trajio import read_generation

    print(f"load average before: {load_average()}")
    t0 = time.perf_counter()
    ds = TrpcageDataset.load(paths.run_dir(a.profile, "02_trpcage_data"), mmap=True)
    lat = load_latent(paths.run_dir(a.profile, "03_srv"))
    md = Ensemble(list(ds.xyz), ds.frame_time, ds.time_unit, latent=[np.asarray(z) for z in lat.trajs], name="MD")
    gen_dir = paths.run_dir(a.profile, "06_generate")
    if a.synthetic or not (gen_dir / "generation.json").exists():
        rng = np.random.default_rng(0)
        xyz_all, z_all = np.concatenate(md.xyz), np.concatenate(md.latent)
        lag = 20
        starts = rng.integers(0, len(xyz_all) - 10 * lag, size=(100, 10441 // 10 + 1))
        idx = (starts[:, :, None] + lag * np.arange(10)).reshape(100, -1)[:, :10441]
        cand = Ensemble(xyz_all[idx], ds.frame_time * lag, ds.time_unit, latent=z_all[idx], name="synthetic")
    else:
        gen = read_generation(gen_dir)
        cand = Ensemble(gen.xyz(), gen.timestep, gen.time_unit, latent=np.asarray(gen.latent()), name="LSS")
    t_read = time.perf_counter() - t0
    print(f"read: MD {md.n_frames:,} frames, {cand.name} {cand.n_frames:,} frames in {t_read:.1f} s")

    t0 = time.perf_counter()
    cpu0 = time.process_time()
    card = score(md, {cand.name: cand}, native=gomodel.native_structure(), core_coordinate="q",
                 cores=(gomodel.Q_UNFOLDED, gomodel.Q_FOLDED))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(card.markdown())
    print(f"\nscore: {wall:.1f} s wall, {cpu:.1f} s CPU (target <= 60 s on 2 cores); stages {card.meta['timings_s']}")
    print(f"load average after: {load_average()}")
    if a.out:
        print("wrote", card.save(a.out))
    if a.json:
        Path(a.json).write_text(json.dumps({"read_s": t_read, "score_wall_s": wall, "score_cpu_s": cpu,
                                            "stages_s": card.meta["timings_s"], "n_frames": card.meta["n_frames"]},
                                           indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
