"""Seed robustness of the encoder and the propagator: retrain each with several seeds, compare.

The field's main complaint about VAMPnets is that two trainings with different seeds give different
collective variables. This script retrains the SRV of notebook 03 and the MDN of notebook 04 of a
finished run with ``--n-seeds`` seeds each (every other setting as saved in the run's model files) and
reports the spread of what the paper's conclusions rest on (each SRV seed trains one restart: the
spread of single trainings is the question):

* SRV: the slowest implied timescale t1, the held-out VAMP-2 (training eigenfunctions on the validation
  blocks), the latent dimension m chosen by the criterion, and the overlap of each kept eigenfunction
  with the run's: ``|corr|`` over all frames after matching order and sign (target >= 0.98).
* MDN (on the run's latent space): F(psi1) of long propagator runs against the converged reference of
  notebook 07 (aligned RMSE over the bins within 6 kT of the MD minimum) and t1 of the LSS trajectories.

Usage::

    python benchmarks/seeds.py --profile cpu [--n-seeds 3] [--json runs/cpu/seeds.json]

Needs ``runs/<profile>/`` from notebooks 02-04 and, for the reference, notebook 07's cached reference
simulation in ``data/`` (without it F(psi1) is compared with the training MD). Costs a few minutes on
2 cores for the cpu profile.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _match(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|corr| of each column of ``b`` (n, m) with its best-matching column of ``a`` (n, m), greedy by size."""
    c = np.abs(np.corrcoef(a.T, b.T)[: a.shape[1], a.shape[1]:])
    out = np.full(a.shape[1], np.nan)
    used = set()
    for i in np.argsort(-c.max(1)):
        j = max((j for j in range(c.shape[1]) if j not in used), key=lambda j: c[i, j], default=None)
        if j is not None:
            used.add(j)
            out[i] = c[i, j]
    return out


def main(argv=None) -> int:
    from lss import analysis as A
    from lss import data, kinetics, paths, reproduce
    from lss.data import TrpcageDataset
    from lss.features import Encoder
    from lss.latent import load_latent
    from lss.mdn import MDNPropagator
    from lss.srv import SRV

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--n-seeds", type=int, default=3)
    ap.add_argument("--n-traj", type=int, default=100, help="propagator trajectories per MDN seed")
    ap.add_argument("--n-steps", type=int, default=1000, help="lag steps per propagator trajectory")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    run = paths.run_dir(a.profile)
    for need in ("02_trpcage_data", "03_srv/srv.lss", "03_srv/latent.npz", "04_mdn/mdn.lss"):
        if not (run / need).exists():
            raise SystemExit(f"missing {run / need}: run notebooks 02-04 first "
                             f"(python -m lss.reproduce --profile {a.profile} --only 02_trpcage_data 03_srv 04_mdn)")
    t_start = time.perf_counter()
    ds = TrpcageDataset.load(run / "02_trpcage_data")
    X = [np.asarray(f, dtype=np.float32) for f in ds.features]
    ft, unit = ds.frame_time, ds.time_unit
    srv0 = SRV.load(run / "03_srv" / "srv.lss")
    psi0 = np.concatenate(srv0.transform(X))
    latent = load_latent(run / "03_srv")
    tau = int(latent.lag)

    # --------------------------------------------------------------------------------- SRV seeds
    srv_rows = []
    for s in range(1, a.n_seeds + 1):
        t0 = time.perf_counter()
        srv = SRV(**{**srv0.get_params(), "random_state": 1000 + s, "n_restarts": 1, "progress": False}).fit(X)
        psi = np.concatenate(srv.transform(X, modes=srv0.modes_))
        srv_rows.append({"seed": 1000 + s, "t1": float(srv.timescales_[0] * ft), "m": srv.n_components_,
                         "modes": list(srv.modes_), "heldout_vamp2": float(srv.restart_scores_[srv.best_restart_]),
                         "overlap": _match(psi0, psi).tolist(), "seconds": time.perf_counter() - t0})
        print(f"SRV seed {1000 + s}: t1 {srv_rows[-1]['t1']:.4g} {unit}, m {srv.n_components_}, held-out VAMP-2 "
              f"{srv_rows[-1]['heldout_vamp2']:.4f}, |corr| with the run's coordinates {np.round(srv_rows[-1]['overlap'], 4)}")

    # ------------------------------------------------------------------------- reference F(psi1)
    params = reproduce.load_params(a.profile)
    p7 = reproduce.step_parameters(params, "07_analysis")
    ref_psi1, ref_name = None, "training MD"
    sim = ds.meta.get("simulation") if isinstance(ds.meta, dict) else None
    if sim and p7.get("reference_steps"):
        try:
            from lss import gomodel
            ref = data.make_go_dataset(n_traj=p7.get("reference_traj", 2), n_steps=p7["reference_steps"],
                                       save_every=sim["save_every"], temperature=sim["temperature_K"],
                                       seed=p7.get("reference_seed", 1000), timestep=sim["timestep_ps"],
                                       friction=sim["friction_per_ps"], equilibration_steps=sim["equilibration_steps"],
                                       model=gomodel.GoModel(**sim["model_params"]))
            enc = Encoder.load(run / "03_srv" / "encoder.lss")
            ref_psi1 = [z[:, 0] for z in enc.transform_features(ref.scaler.inverse_transform(ref.features))]
            ref_name = "converged reference"
        except (FileNotFoundError, KeyError) as e:   # no reference: compare with MD
            print(f"no cached reference ({e}); F(psi1) is compared with the training MD")
    md_psi1 = [z[:, 0] for z in latent.trajs]
    truth = ref_psi1 if ref_psi1 is not None else md_psi1
    allmd = np.concatenate(md_psi1)
    edges = np.linspace(allmd.min(), allmd.max(), 51)
    _, F_md, _ = A.free_energy_profile(md_psi1, bins=edges)
    region = A.sampled_region(F_md, max_dF=6.0)
    _, F_truth, _ = A.free_energy_profile(truth, bins=edges)
    t1_truth = kinetics.relaxation_table([np.asarray(z)[:, None] for z in truth], 30 * tau, ft, lag_step=tau)["t"][0]

    # --------------------------------------------------------------------------------- MDN seeds
    mdn0 = MDNPropagator.load(run / "04_mdn" / "mdn.lss")
    Z = latent.trajs
    allZ = np.concatenate(Z)
    mdn_rows = []
    for s in range(1, a.n_seeds + 1):
        t0 = time.perf_counter()
        mdn = MDNPropagator(**{**mdn0.get_params(), "random_state": 2000 + s, "progress": False}).fit(Z)
        rng = np.random.default_rng(s)
        traj = mdn.sample(allZ[rng.choice(len(allZ), a.n_traj)], a.n_steps, random_state=3000 + s)
        lss_psi1 = [t[a.n_steps // 10:, 0] for t in traj]                 # drop the first 10 % of each run
        _, F_lss, _ = A.free_energy_profile(lss_psi1, bins=edges)
        rmse = A.aligned_rmse(F_lss, F_truth, mask=region)
        t1 = kinetics.relaxation_table([t[:, None] for t in lss_psi1], 30, tau * ft)["t"][0]
        mdn_rows.append({"seed": 2000 + s, "fe_rmse": float(rmse), "t1": float(t1), "seconds": time.perf_counter() - t0})
        print(f"MDN seed {2000 + s}: F(psi1) RMSE vs {ref_name} {rmse:.3f} kT, LSS t1 {t1:.4g} {unit} "
              f"({ref_name} {t1_truth:.4g})")

    def spread(rows, key):
        v = np.array([r[key] for r in rows], dtype=float)
        return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                "min": float(v.min()), "max": float(v.max())}

    overlap = np.array([r["overlap"] for r in srv_rows])
    summary = {"profile": a.profile, "n_seeds": a.n_seeds, "unit": unit, "lag_frames": tau,
               "srv": {"t1": spread(srv_rows, "t1"), "heldout_vamp2": spread(srv_rows, "heldout_vamp2"),
                       "m": [r["m"] for r in srv_rows], "min_overlap": float(np.nanmin(overlap)),
                       "run_t1": float(srv0.timescales_[0] * ft), "rows": srv_rows},
               "mdn": {"fe_rmse": spread(mdn_rows, "fe_rmse"), "t1": spread(mdn_rows, "t1"), "truth": ref_name,
                       "t1_truth": float(t1_truth), "rows": mdn_rows},
               "target_overlap": 0.98, "overlap_met": bool(np.nanmin(overlap) >= 0.98),
               "seconds": time.perf_counter() - t_start}
    print(f"\nSRV t1 {summary['srv']['t1']['mean']:.4g} ± {summary['srv']['t1']['std']:.2g} {unit} (run: "
          f"{summary['srv']['run_t1']:.4g}); held-out VAMP-2 {summary['srv']['heldout_vamp2']['mean']:.4f} ± "
          f"{summary['srv']['heldout_vamp2']['std']:.2g}; m per seed {summary['srv']['m']}; smallest eigenfunction "
          f"overlap {summary['srv']['min_overlap']:.4f} (target >= 0.98: {'met' if summary['overlap_met'] else 'MISSED'})")
    print(f"MDN F(psi1) RMSE {summary['mdn']['fe_rmse']['mean']:.3f} ± {summary['mdn']['fe_rmse']['std']:.2g} kT; "
          f"LSS t1 {summary['mdn']['t1']['mean']:.4g} ± {summary['mdn']['t1']['std']:.2g} {unit} "
          f"({ref_name}: {t1_truth:.4g}); {summary['seconds']:.0f} s in all")
    if a.json:
        a.json.write_text(json.dumps(summary, indent=1))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
