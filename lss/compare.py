"""Notebook 07's comparisons: the LSS against its training MD, the MSM baseline and the converged reference.

The ensembles (:class:`Ensembles`: structures, latent trajectories, Q, Rg and the proline flip of each)
are made once; the scorecard (:func:`scorecard`, :func:`lss.score.score` in its stages) is the one
computation behind the paper's Fig. 3 (free energy along the slowest coordinate), Fig. 4 (TICA
surfaces), Table 1 (relaxation times), the first-passage times and the CK test; the targets run
through :mod:`lss.efficiency`'s estimators (:func:`yardstick`). What neither computes (structure
windows, transition counts and cost, the three states by label transfer, the lag sensitivity, the
cWGAN on the same latent trajectories) is here, one function per section of the notebook.

Names of the ensembles: ``"MD"`` (the training MD), ``"LSS"``, ``"MSM"`` (the MSM baseline: an MSM of
the training MD's latent space replaying its frames), ``"reference"`` (the converged reference, Go
model only). Units: nm, the data's time unit, kT.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import analysis as A
from . import efficiency as E
from . import gomodel
from . import kinetics as K
from . import structure as S
from .msm import MSMBaseline, transfer_labels
from .score import FLOOR, MSM_ROW, Ensemble, score
from .stats import total_variation

#: matplotlib style of each ensemble in every figure of notebook 07
STYLE = {"MD": dict(color="k"), "LSS": dict(color="C3"), "MSM": dict(color="C0", ls=":"),
         "reference": dict(color="C2", ls="--"), "cWGAN": dict(color="C4", ls=":"),
         "LSS (latent)": dict(color="C3", ls="--"), "reference (latent)": dict(color="C2", ls="--")}
LO, HI, BARRIER = gomodel.Q_UNFOLDED, gomodel.Q_FOLDED, gomodel.Q_BARRIER


@dataclass
class Ensembles:
    """The ensembles of notebook 07, frame by frame.

    Attributes
    ----------
    xyz : dict name -> list of np.ndarray (n_frames_i, n_atoms, 3), nm
        ``"MD"``, ``"LSS"`` and ``"reference"`` (the MSM's frames are MD frames: :attr:`msm_index`).
    latent : dict name -> list of np.ndarray (n_frames_i, m)
        Latent trajectories: the SRV projection of MD and reference, the propagator's own for LSS and MSM.
    q, flip : dict name -> list of np.ndarray (n_frames_i,)
        Fraction of native contacts and proline flip angle (rad; Go model only, else None).
    rg : dict name -> np.ndarray (n_frames,)
        Radius of gyration of every frame, nm (trajectories laid end to end).
    msm : lss.msm.MSMBaseline
        The MSM of the training MD's latent space at the propagator lag (the scorecard's baseline too).
    msm_index : np.ndarray (n_traj * n_frames,)
        The MD frame each MSM frame replays.
    frame_time, dt : float
        Time between MD frames and between LSS frames (one propagator lag), the data's unit.
    tau : int
        Propagator lag, MD frames.
    meta : dict
        ``skip`` (LSS steps dropped at each start), ``unit``, the reference's simulation facts.
    """

    xyz: dict
    latent: dict
    q: dict
    flip: dict | None
    rg: dict
    msm: MSMBaseline
    msm_index: np.ndarray
    frame_time: float
    dt: float
    tau: int
    meta: dict = field(default_factory=dict)

    @property
    def names(self) -> list:
        return list(self.latent)

    @property
    def have_reference(self) -> bool:
        return "reference" in self.xyz

    @property
    def truth(self) -> str:
        """The ensemble every error is measured against: the reference where there is one, else MD."""
        return "reference" if self.have_reference else "MD"

    def on_grid(self, name: str, series: list) -> list:
        """``series`` (per trajectory) on the LSS grid: MD and reference every ``tau`` frames."""
        return [x[::self.tau] for x in series] if name in ("MD", "reference") else list(series)

    def frames(self, name: str) -> np.ndarray:
        """All structures of ``name`` laid end to end, (n_frames, n_atoms, 3) nm (MSM: the replayed MD frames)."""
        if name == "MSM":
            return np.concatenate(self.xyz["MD"])[self.msm_index]
        return np.concatenate(self.xyz[name])

    def msm_trajectories(self, n_traj: int) -> np.ndarray:
        """The first ``n_traj`` MSM trajectories as structures, (n_traj, n_frames, n_atoms, 3) nm (replayed MD frames)."""
        n = len(self.latent["MSM"][0])
        return np.concatenate(self.xyz["MD"])[self.msm_index[:n_traj * n]].reshape(n_traj, n, *self.xyz["MD"][0].shape[1:])

    def observables(self, name: str) -> E.Observables:
        """``name``'s observables for :mod:`lss.efficiency` (MD keeps every frame, kinetics on the lag grid)."""
        split = np.cumsum([len(x) for x in self.q[name]])[:-1]
        md_like = name in ("MD", "reference")
        return E.Observables(self.q[name], self.flip[name], np.split(self.rg[name], split),
                             [np.asarray(z, dtype=float) for z in self.latent[name]],
                             self.frame_time if md_like else self.dt, self.tau if md_like else 1)

    def summary(self) -> str:
        n = {k: sum(map(len, v)) for k, v in self.latent.items()}
        unit = self.meta.get("unit", "")
        lines = [f"MD:  {len(self.latent['MD'])} trajectories, {n['MD']:,} frames every {self.frame_time:g} {unit}",
                 f"LSS: {len(self.latent['LSS'])} x {len(self.latent['LSS'][0]):,} frames (the first {self.meta['skip']} "
                 f"dropped) every {self.dt:g} {unit} ({n['LSS'] / n['MD']:.2g}x the MD frames)",
                 f"MSM: {len(self.msm.active_set_)} active states at lag {self.tau} frames, {n['MSM']:,} frames replayed"]
        if self.have_reference:
            lines.append(f"reference: {n['reference']:,} frames, {self.meta['reference_factor']:.1f}x the training "
                         f"data ({'read from the cache' if self.meta['reference_cached'] else 'simulated'})")
        return "\n".join(lines)


def reference_request(sim: dict, n_traj: int, n_steps: int, seed: int) -> dict:
    """Arguments of :func:`lss.data.make_go_dataset` for the reference of training data simulated as ``sim``
    (``dataset.meta["simulation"]``): the same model, temperature, time step, friction and saving interval,
    ``n_traj`` trajectories of ``n_steps`` steps from ``seed``."""
    return dict(n_traj=n_traj, n_steps=n_steps, save_every=sim["save_every"], temperature=sim["temperature_K"],
                seed=seed, timestep=sim["timestep_ps"], friction=sim["friction_per_ps"],
                equilibration_steps=sim["equilibration_steps"], model=gomodel.GoModel(**sim["model_params"]))


def go_reference(ds, encoder, n_traj: int, n_steps: int, seed: int, progress: bool = True):
    """The converged reference of a Go-model dataset: the same model, temperature and saving interval, another seed.

    Made (or read from the cache) by :func:`lss.data.make_go_dataset`; its structures are featurised with
    the training data's scaler and encoded by notebook 03's ``encoder``. Returns ``(dataset, latent)``.
    """
    from . import data
    from .utils import torch_threads

    sim = ds.meta["simulation"]
    ref = data.make_go_dataset(**reference_request(sim, n_traj, n_steps, seed), progress=progress)
    assert ref.frame_time == ds.frame_time and ref.meta["simulation"]["model_params"] == sim["model_params"]
    with torch_threads(1):
        psi = encoder.transform_features(ref.scaler.inverse_transform(ref.features))
    ref.features = None                   # 1.5 kB per frame, no longer needed
    return ref, [np.asarray(z) for z in psi]


def ensembles(ds, latent, gen, tau: int, skip: int, reference=None, msm_states: int = 100, seed: int = 0) -> Ensembles:
    """Notebook 07's ensembles: MD, the LSS of notebook 06 (first ``skip`` steps dropped), the MSM baseline and
    the reference (``(dataset, latent)`` of :func:`go_reference`, optional)."""
    is_go = ds.meta.get("source") == "go"
    lss_latent = np.asarray(gen.latent(), dtype=np.float32)[:, skip:]
    xyz = {"MD": [np.asarray(x) for x in ds.xyz], "LSS": [t.xyz[skip:] for t in gen]}
    lat = {"MD": [np.asarray(z) for z in latent.trajs], "LSS": list(lss_latent)}
    q = {"MD": [np.asarray(v, dtype=np.float64) for v in ds.q],
         "LSS": [gomodel.fraction_native_contacts(x).astype(np.float64) for x in xyz["LSS"]]}
    meta = {"skip": int(skip), "unit": latent.time_unit}
    if reference is not None:
        ref, lat["reference"] = reference
        xyz["reference"] = [np.asarray(x) for x in ref.xyz]
        q["reference"] = [np.asarray(v, dtype=np.float64) for v in ref.q]
        sim, rsim = ds.meta["simulation"], ref.meta["simulation"]
        meta |= {"reference_factor": rsim["n_traj"] * rsim["n_steps"] / (sim["n_traj"] * sim["n_steps"]),
                 "reference_cached": bool(ref.meta.get("cached")), "reference_wall_s": rsim["wall_s"],
                 "reference_jobs": rsim.get("n_jobs")}
    rg = {k: S.radius_of_gyration(v) for k, v in xyz.items()}
    flip = {k: [gomodel.flip_angle(x) for x in v] for k, v in xyz.items()} if is_go else None
    # the MSM baseline, as the scorecard makes it: k-means on <= ~20,000 frames, sampled as long as the LSS
    n_md = sum(map(len, lat["MD"]))
    base = MSMBaseline(n_states=msm_states, lag=tau, random_state=seed, stride=max(1, n_md // 20_000)).fit(lat["MD"])
    n_traj, n_frames = lss_latent.shape[:2]
    draws = [base.sample(n_frames - 1, random_state=seed + 1 + i, return_index=True) for i in range(n_traj)]
    idx = np.concatenate([d[1] for d in draws])
    lat["MSM"] = [d[0] for d in draws]
    q["MSM"] = np.split(np.concatenate(q["MD"])[idx], n_traj)
    rg["MSM"] = rg["MD"][idx]
    if flip is not None:
        flip["MSM"] = np.split(np.concatenate(flip["MD"])[idx], n_traj)
    order = ["MD", "LSS", "MSM"] + (["reference"] if reference is not None else [])
    return Ensembles(xyz, {k: lat[k] for k in order}, {k: q[k] for k in order},
                     None if flip is None else {k: flip[k] for k in order}, {k: rg[k] for k in order}, base, idx,
                     float(latent.frame_time), float(gen.timestep), int(tau), meta)


# ------------------------------------------------------------------------------------- the scorecard
#: scorecard row -> notebook name
CARD_NAMES = {"training MD": "MD", "LSS": "LSS", MSM_ROW: "MSM"}


def scorecard(ens: Ensembles, native, n_states: int, seed: int = 0, **kwargs):
    """:func:`lss.score.score` of MD and LSS against the reference (without one: LSS against MD), Q cores.

    The card's MSM baseline is :attr:`Ensembles.msm`'s draws (``msm_replay``), not sampled a second time."""
    unit = ens.meta["unit"]
    md = Ensemble(ens.xyz["MD"], ens.frame_time, unit, latent=ens.latent["MD"], name="training MD")
    cands = {"LSS": Ensemble(ens.xyz["LSS"], ens.dt, unit, latent=ens.latent["LSS"], name="LSS")}
    if ens.have_reference:
        yard = Ensemble(ens.xyz["reference"], ens.frame_time, unit, latent=ens.latent["reference"], name="reference")
        cands = {"training MD": md} | cands
    else:
        yard = md
    n_traj = len(ens.latent["MSM"])
    kwargs = {"core_coordinate": "q", "cores": (LO, HI), "msm_replay": ens.msm_index.reshape(n_traj, -1)} | kwargs
    if kwargs["core_coordinate"] != "q":
        kwargs.pop("cores")
    return score(yard, cands, native=native, n_states=n_states, random_state=seed,
                 training="training MD" if ens.have_reference else None, **kwargs)


def psi1_basins(ens: Ensembles, is_go: bool) -> dict:
    """The middle half of psi1 over the MD frames of each metastable core: basin -> (lo, hi, colour)."""
    q, psi = np.concatenate(ens.q["MD"]), np.concatenate(ens.latent["MD"])[:, 0]
    cores = (gomodel.metastable_cores(q=q, flip=np.concatenate(ens.flip["MD"])) if is_go
             else np.where(q < LO, 0, np.where(q > HI, 1, -1)))
    return {name: (*np.quantile(psi[cores == i], [0.25, 0.75]), col)
            for i, (name, col) in enumerate((("unfolded", "C0"), ("folded", "C3"), ("flipped", "C1"))) if (cores == i).any()}


def card_details(card) -> dict:
    """The scorecard's details by notebook name (``"MD"``, ``"LSS"``, ``"MSM"``, and ``"reference"`` or the
    yardstick ``"MD"`` without one)."""
    have_ref = card.meta["reference"] == "reference"
    out = {} if have_ref else {"MD": card.details["MD"]}
    for row, name in CARD_NAMES.items():
        if row in card.details and (have_ref or name != "MD"):
            out[name] = card.details[row]
    return out | ({"reference": card.details["MD"]} if have_ref else {})


def table1(card, unit: str, paper: dict | None = None) -> tuple[list, list]:
    """Table 1 from the scorecard: relaxation time of each latent coordinate per ensemble, ``(header, rows)``."""
    det = card_details(card)
    truth = "reference" if "reference" in det else "MD"
    dt = card.meta["dt"]
    m = len(det[truth]["relax"]["t"])
    show = lambda r, i: (f"{r['t'][i]:.3g} ± {r['spread'][i]:.2g} (s.e. {r['se'][i]:.2g})" if r["resolved"][i]  # noqa: E731
                         else f"not resolved (< 5 points of {r['grid']:.3g})")
    paper = paper or {}
    rows = [[f"t{i + 1}", f"{det[truth]['relax']['t'][i] / dt:.1f}" if det[truth]["relax"]["resolved"][i] else "< 1"]
            + [show(d["relax"], i) for d in det.values()] + [paper[k][i] if i < len(paper.get(k, [])) else "" for k in paper]
            for i in range(m)]
    header = ["mode", f"t/τ ({truth})"] + [f"{k} [{unit}]" for k in det] + [f"paper {k}" for k in paper]
    return header, rows


def save_table1(card, directory, unit: str, profile: str, is_go: bool, paper: dict | None = None) -> str:
    """Write ``table1.md`` (with its caption) and ``table1.csv`` to ``directory``; returns the Markdown table."""
    from .results import markdown_table

    table = markdown_table(*table1(card, unit, paper))
    n_blocks, m = card.meta["params"]["n_blocks"], len(card.details["MD"]["relax"]["t"])
    (directory / "table1.md").write_text(
        f"Table 1. Relaxation times of the kept latent coordinates (exponential fits to the autocorrelation on a grid of "
        f"one propagator lag, tau = {card.meta['dt']:g} {unit}, at least 5 points; ± the spread over {n_blocks} contiguous "
        f"blocks, s.e. = spread / sqrt({n_blocks}); profile {profile}, time in {unit}{' of model time' if is_go else ''}). "
        f"The paper kept m = 3 coordinates; here m = {m} (notebook 03's criterion).\n\n{table}\n")
    table1_csv(card, directory / "table1.csv", unit)
    return table


def table1_csv(card, path, unit: str) -> None:
    """Table 1's numbers as CSV: per mode, each ensemble's time, block spread and standard error."""
    det = card_details(card)
    m = len(next(iter(det.values()))["relax"]["t"])
    head = ["mode"] + [f"{k}_{q}_{unit}" for k in det for q in ("t", "spread", "stderr")]
    rows = [[f"t{i + 1}"] + [f"{d['relax'][q][i]:.6g}" for d in det.values() for q in ("t", "spread", "se")] for i in range(m)]
    path.write_text("\n".join(",".join(r) for r in [head] + rows) + "\n")


def integrated_times(card) -> dict:
    """Per ensemble: fitted time, integrated time (:func:`lss.kinetics.integrated_time`) and the RMS residual of
    the single-exponential fit over the whole autocorrelation, each (m,) in the card's time unit."""
    dt = card.meta["dt"]
    out = {}
    for k, d in card_details(card).items():
        lags = np.arange(len(d["acf"])) * dt
        t = d["relax"]["t"]
        res = [float(np.sqrt(np.mean((d["acf"][:, i] - np.exp(-lags / t[i])) ** 2))) if np.isfinite(t[i]) else np.nan
               for i in range(len(t))]
        out[k] = {"t": t, "t_int": K.integrated_time(d["acf"], dt, int(d["n_frames"]))["t_int"], "residual": np.array(res)}
    return out


def fe_latent1(card, fe_max_dF: float) -> dict:
    """Fig. 3's numbers: aligned RMSE of F(latent1) of LSS and MSM against the training MD (the paper's
    comparison) and against the reference (the card's ``fe_latent1``), and the median MD / LSS ratio of
    the block standard errors over the bins MD samples within ``fe_max_dF``."""
    det = card_details(card)
    _, F_md, E_md = det["MD"]["profile_latent1"]
    region = A.sampled_region(F_md, max_dF=fe_max_dF)
    out = {"vs_md": {k: A.aligned_rmse(F_md, det[k]["profile_latent1"][1], mask=region & np.isfinite(det[k]["profile_latent1"][1]))
                     for k in ("LSS", "MSM")}, "n_bins": int(region.sum())}
    E_lss = det["LSS"]["profile_latent1"][2]
    both = region & np.isfinite(E_lss) & (E_lss > 0)
    out["error_ratio"] = float(np.median(E_md[both] / E_lss[both])) if both.any() else float("nan")
    if "reference" in det:
        out["vs_reference"] = {CARD_NAMES.get(r, r): card.rows[r]["fe_latent1"] for r in card.rows if r != FLOOR}
    return out


# ------------------------------------------------------------------------------------- the targets
def yardstick(ens: Ensembles, acf_steps: int, fe_bins: int, seed: int = 0) -> dict:
    """Every target quantity of every ensemble by :func:`lss.efficiency.estimate`, its error against the
    reference, and the floor (independent MD of the training length: pieces of the reference).

    Returns ``est`` (name -> estimate), ``errors`` quantity -> {"LSS", "MD", "MSM", "floor", "floor_sd",
    "floor_failed"}, ``floor_frames``, ``n_pieces``."""
    obs = {k: ens.observables(k) for k in ens.names}
    zr = np.concatenate(obs["reference"].latent)
    edges = [np.linspace(*np.quantile(zr[:, i], [0.0005, 0.9995]), fe_bins + 1) for i in range(zr.shape[1])]
    est = {k: E.estimate(o, acf_steps, latent_edges=edges, random_state=seed) for k, o in obs.items()}
    err = {k: E.errors(est[k], est["reference"]) for k in ("MD", "MSM", "LSS")}
    n_md, n_ref = obs["MD"].n_frames, obs["reference"].n_frames
    L = min(n_md, n_ref // 2)             # the training length (half the reference where it holds fewer than two)
    floor = E.md_error_curve(obs["reference"], [L], est["reference"], acf_steps, latent_edges=edges)
    errors = {q: {k: err[k][q] for k in err} | {"floor": float(floor["rms"][q][0]), "floor_sd": float(floor["sd"][q][0]),
                                                   "floor_failed": float(floor["failed"][q][0])} for q in err["LSS"]}
    return {"est": est, "errors": errors, "floor_frames": L, "n_pieces": len(floor["errors"]["F(Q)"][0])}


def yardstick_table(errors: dict) -> tuple[list, list]:
    """``(header, rows)`` of every error against the truth beside the floor."""
    head = ["quantity", "unit", "LSS", "training MD", "MSM (replays training frames)", "floor (equal-length MD)", "LSS / floor"]
    rows = []
    for q, y in errors.items():
        label, u = E.QUANTITIES.get(q, (q, "kT"))[:2]
        miss = f" ({y['floor_failed']:.0%} of pieces miss it)" if y["floor_failed"] else ""
        rows.append([label, u, *(f"{y[k]:.3g}" for k in ("LSS", "MD", "MSM")), f"{y['floor']:.3g} ± {y['floor_sd']:.2g}{miss}",
                     f"{y['LSS'] / y['floor']:.2g}" if y["floor"] > 0 else "n/a"])
    return head, rows


def states(ens: Ensembles, yard: dict, n_blocks: int = 5, seed: int = 0) -> dict:
    """Populations and MFPTs of the three metastable states per ensemble (the yardstick's estimates, in
    :func:`lss.plots.state_comparison`'s form), and the decoder-independent ones of the LSS and the
    reference: their latent points take the state of their k-means cluster's MD frames."""
    out = {k: {"p": e["p"], "se": e["p_se"], "mfpt": {"mean": e["mfpt"], "low": e["mfpt_low"], "high": e["mfpt_high"]}}
           for k, e in yard["est"].items()}
    md_cores = [gomodel.metastable_cores(q=a, flip=b) for a, b in zip(ens.q["MD"], ens.flip["MD"])]
    md_clusters = ens.msm.transform(ens.latent["MD"])
    for k in ("LSS", "reference"):
        lab = transfer_labels(md_clusters, md_cores, ens.msm.transform(ens.on_grid(k, ens.latent[k])),
                              len(ens.msm.cluster_centers_))
        out[f"{k} (latent)"] = K.state_kinetics(lab, 3, ens.dt, n_blocks=n_blocks, random_state=seed)
    return out


def state_errors(st: dict) -> dict:
    """Per ensemble: max over states of ``|ln p / p_ref|`` and max over pairs of the relative MFPT error,
    against the reference (latent states against the reference's latent states)."""
    out = {}
    off = ~np.eye(3, dtype=bool)
    for k, s in st.items():
        ref = "reference (latent)" if "latent" in k else "reference"
        if k == ref or ref not in st:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            pop = float(np.max(np.abs(np.log(s["p"] / st[ref]["p"]))))
            mf = float(np.max(np.abs(s["mfpt"]["mean"][off] - st[ref]["mfpt"]["mean"][off]) / st[ref]["mfpt"]["mean"][off]))
        out[k] = {"population": pop, "mfpt": mf}
    return out


# ------------------------------------------------------------------------------------- structures
def structure_windows(ens: Ensembles, native, width: float, n_pairs: int, seed: int = 0) -> dict:
    """C-alpha RMSD between MD and LSS structures in two windows of psi1 (folded basin, transition region).

    The folded window is centred on the median psi1 of the MD frames with Q > 0.85, the transition window
    on that of the frames at the barrier (|Q - 0.7| < 0.05); frames of each ensemble are selected by their
    own psi1. Returns ``centre``, ``n`` frames per (ensemble, window), ``rmsd`` (MD-LSS pairs), ``floor``
    (MD-MD pairs), ``native`` (RMSD to native of the folded-window frames, per ensemble), all nm."""
    q, psi = np.concatenate(ens.q["MD"]), np.concatenate(ens.latent["MD"])[:, 0]
    masks = {"folded": q > HI, "transition": np.abs(q - BARRIER) < 0.05}
    centre = {r: float(np.median(psi[mk])) if mk.any() else np.nan for r, mk in masks.items()}
    xyz = {k: ens.frames(k) for k in ("MD", "LSS")}
    sel = {(k, r): A.select_region(ens.latent[k], c, width) if np.isfinite(c) else np.zeros(len(xyz[k]), bool)
           for k in xyz for r, c in centre.items()}
    out = {"centre": centre, "n": {key: int(v.sum()) for key, v in sel.items()}, "rmsd": {}, "floor": {}}
    for r in centre:
        a, b = xyz["MD"][sel["MD", r]], xyz["LSS"][sel["LSS", r]]
        out["rmsd"][r] = S.ensemble_rmsd(a, b, n_pairs, rng=seed) if len(a) and len(b) else np.nan
        out["floor"][r] = S.ensemble_rmsd(a, a, n_pairs, rng=seed) if len(a) else np.nan
    out["native"] = {k: S.rmsd_to_reference(xyz[k][sel[k, "folded"]], native) if out["n"][k, "folded"] else np.array([np.nan])
                     for k in xyz}
    return out


def representatives(ens: Ensembles, is_go: bool, seed: int = 0) -> tuple[list, list]:
    """Two k-medoids representatives (by RMSD) of each metastable core and of the transition region, MD and LSS:
    ``(structures, labels)``."""
    from .structure import representatives as medoids

    reps, labels = [], []
    regions = list(enumerate(gomodel.STATES if is_go else ("unfolded", "folded"))) + [(-1, "transition")]
    for k in ("MD", "LSS"):
        q, xyz = np.concatenate(ens.q[k]), ens.frames(k)
        ens_core = gomodel.metastable_cores(xyz, q=q) if is_go else np.where(q < LO, 0, np.where(q > HI, 1, -1))
        for s, basin in regions:
            mask = ens_core == s if s >= 0 else (ens_core == -1) & (np.abs(q - BARRIER) < 0.05)
            for j, r in enumerate(medoids(xyz[mask], k=2, seed=seed) if mask.any() else []):
                reps.append(r)
                labels.append((s, f"{k}, {basin} {j + 1} (Q {gomodel.fraction_native_contacts(r[None])[0]:.2f})"))
    order = np.argsort([s if s >= 0 else 99 for s, _ in labels], kind="stable")   # region by region, MD then LSS
    return [reps[i] for i in order], [labels[i][1] for i in order]


# ------------------------------------------------------------------------------------- transitions
def _q_hist(q: list) -> np.ndarray:
    """Counts of Q on 32 bins of [0, 1]."""
    return np.histogram(np.concatenate(q), bins=np.linspace(0, 1, 33))[0]


def transitions(ens: Ensembles, gen_meta: dict, sim: dict, n_blocks: int = 5) -> dict:
    """Transition counts and rates on Q and on psi1 cores, the Q histograms' distance to the truth, and the cost.

    Q cores 0.45 / 0.85 (:func:`lss.kinetics.count_transitions`); psi1 cores beyond the medians of psi1 over
    the MD frames of the two Q cores; rates per unit time on the LSS grid, with block standard errors;
    cost: CPU seconds per unit trajectory time (MD: the cached simulation's meta; LSS: notebook 06's)."""
    n_md = sum(map(len, ens.q["MD"]))
    n_lss = sum(map(len, ens.q["LSS"]))
    q_md, psi_md = np.concatenate(ens.q["MD"]), np.concatenate(ens.latent["MD"])[:, 0]
    both = bool((q_md < LO).any() and (q_md > HI).any())
    psi_core = sorted([float(np.median(psi_md[q_md < LO])), float(np.median(psi_md[q_md > HI]))]) if both else [np.nan] * 2
    out = {"n_md": int(K.count_transitions(ens.q["MD"], LO, HI)), "n_lss": int(K.count_transitions(ens.q["LSS"], LO, HI)),
           "psi_core": psi_core}
    out["lss_per_md_frames"] = K.transitions_per_frames(out["n_lss"], n_lss, per=n_md)
    out["rate"] = {k: K.transition_rate(ens.on_grid(k, v), LO, HI, ens.dt, n_blocks) for k, v in ens.q.items()}
    out["rate_psi"] = {k: K.transition_rate(ens.on_grid(k, [z[:, 0] for z in v]), *psi_core, ens.dt, n_blocks) if both
                       else (np.nan, np.nan) for k, v in ens.latent.items()}
    hist = {k: _q_hist(v) for k, v in ens.q.items()}
    out["q_tv"] = {k: total_variation(h, hist[ens.truth]) for k, h in hist.items() if k != ens.truth}
    out["cost"] = {}
    if sim:
        md_cpu = sum(sim["cpu_s_per_traj"]) if sim.get("cpu_s_per_traj") else sim["wall_s"]
        out["cost"]["MD"] = K.cost_per_time(md_cpu, n_md, ens.frame_time)
    t = gen_meta["timings_s"]
    out["cost"]["LSS"] = K.cost_per_time(t.get("propagate_cpu", 0.0) + t.get("decode_cpu", 0.0) or t["total"], n_lss, ens.dt)
    return out


# ------------------------------------------------------------------------------------- free energies
def free_energy_coordinates(ens: Ensembles, native, fe_bins: int, n_blocks: int = 5, max_dF: float = 6.0) -> dict:
    """F along every latent coordinate, Q, RMSD to native and Rg, each ensemble aligned to the truth by a
    constant; RMSE over the bins the truth samples within ``max_dF``.

    Returns ``profiles`` coordinate index -> name -> (centres, F, block s.e.), ``rmse`` index -> name -> kT,
    ``labels``, ``keys`` (the coordinate's key in the report: psi1.., q, rmsd, rg)."""
    m = ens.latent["MD"][0].shape[1]
    rmsd = {k: S.rmsd_to_reference(ens.xyz[k], native) for k in ("MD", "LSS", "reference") if k in ens.xyz}
    rmsd["MSM"] = rmsd["MD"][ens.msm_index]
    coords = {i: {k: [z[:, i] for z in v] for k, v in ens.latent.items()} for i in range(m)}
    coords[m] = ens.q
    coords[m + 1] = {k: rmsd[k] for k in ens.names}
    coords[m + 2] = ens.rg
    truth = ens.truth
    profiles, rmse = {}, {}
    for i, by in coords.items():
        t = np.concatenate(by[truth]) if isinstance(by[truth], list) else by[truth]
        edges = (np.arange(33) - 0.5) / 31 if i == m else np.linspace(*np.quantile(t, [0.0005, 0.9995]), fe_bins + 1)
        prof = {k: A.free_energy_profile(v, bins=edges, n_blocks=n_blocks) for k, v in by.items()}
        F_t = prof[truth][1]
        reg = A.sampled_region(F_t, max_dF=max_dF)
        profiles[i], rmse[i] = {}, {}
        for k, (c, F, Er) in prof.items():
            r, sh = A.aligned_rmse(F_t, F, mask=reg, return_shift=True) if k != truth else (0.0, 0.0)
            if k != truth:
                rmse[i][k] = r
            profiles[i][k] = (c, F + sh - np.nanmin(F_t[reg]), Er)
    labels = [f"$\\psi_{i + 1}$" for i in range(m)] + ["Q", "C-alpha RMSD to 2JOF [nm]", "Rg [nm]"]
    keys = [f"psi{i + 1}" for i in range(m)] + ["q", "rmsd", "rg"]
    return {"profiles": profiles, "rmse": rmse, "labels": labels, "keys": keys}


# ------------------------------------------------------------------------------------- other lags
def lag_sensitivity(ens: Ensembles, mdn, acf_steps: int, n_blocks: int = 5, seed: int = 0, max_epochs: int = 20) -> list:
    """Kinetics of propagators retrained at 2/3, 1 and 2 x the chosen lag against the reference on the same grid.

    Returns one row per lag: lag, LSS t1..tm (reference's in brackets), the MSM's slowest implied timescale,
    max |ln p / p_ref| of the latent states and the median |ln(MFPT ratio)|."""
    from .mdn import MDNPropagator
    from .msm import msm_timescales

    tau, ft = ens.tau, ens.frame_time
    unit = ens.meta["unit"]
    n_frames = len(ens.latent["LSS"][0])
    md_cores = [gomodel.metastable_cores(q=a, flip=b) for a, b in zip(ens.q["MD"], ens.flip["MD"])]
    md_clusters, ncl = ens.msm.transform(ens.latent["MD"]), len(ens.msm.cluster_centers_)
    z_md = np.concatenate(ens.latent["MD"])
    x0 = z_md[np.random.default_rng(seed).integers(0, len(z_md), 50)]   # 50 start points, as the notebook's seeded rng drew them
    rows, off = [], ~np.eye(3, dtype=bool)
    for L in sorted({max(1, round(2 * tau / 3)), tau, 2 * tau}):
        prop = mdn if L == tau else MDNPropagator(**{**mdn.get_params(), "lag": L, "max_epochs": max_epochs,
                                                     "progress": False}).fit(ens.latent["MD"])
        z = list(prop.sample(x0, int(n_frames * tau / L), random_state=seed)[:, 20:])
        t_lss = K.relaxation_table(z, max(5, acf_steps * tau // L), L * ft, n_blocks=n_blocks)["t"]
        t_ref = K.relaxation_table(ens.latent["reference"], max(5, acf_steps * tau // L) * L, ft, lag_step=L,
                                   n_blocks=n_blocks)["t"]
        sk = {k: K.state_kinetics(transfer_labels(md_clusters, md_cores, ens.msm.transform(v), ncl), 3, L * ft,
                                  n_blocks=n_blocks, random_state=seed)
              for k, v in (("LSS", z), ("reference", [r[::L] for r in ens.latent["reference"]]))}
        with np.errstate(divide="ignore", invalid="ignore"):
            pop = float(np.max(np.abs(np.log(sk["LSS"]["p"] / sk["reference"]["p"]))))
            mf = float(np.nanmedian(np.abs(np.log(sk["LSS"]["mfpt"]["mean"][off] / sk["reference"]["mfpt"]["mean"][off]))))
        t_msm = msm_timescales(md_clusters, L, 1)[0] * ft
        rows.append([f"{L} ({L * ft:.3g} {unit})" + (" chosen" if L == tau else ""),
                     " / ".join(f"{a:.3g} ({b:.3g})" for a, b in zip(t_lss, t_ref)), f"{t_msm:.3g}", f"{pop:.2f}", f"{mf:.2f}"])
    return rows


LAG_HEADER = ["lag [frames]", "LSS t1 / t2 / t3 (reference on the same grid)", "MSM t1",
              "populations: max abs ln(p / p_ref)", "MFPTs: median abs ln(ratio)"]


# ------------------------------------------------------------------------------------- the cWGAN
def cwgan_decoded(ens: Ensembles, cwgan, card, max_frames: int = 200_000, seed: int = 0, n_blocks: int = 5) -> dict:
    """The paper's decoder on the first LSS latent trajectories, its generator's own structures (no projection).

    Returns ``xyz`` (list), ``q``, ``q_tv`` (to the truth's Q histogram), ``F_tic`` (b -> surface on the
    scorecard's TIC edges), ``tica_rmse`` (against MD's surfaces) and ``states`` (Go model)."""
    from .utils import torch_threads

    cwgan.fixed_bonds = False                       # the generator's own structures, as in the paper
    n = max(1, min(len(ens.latent["LSS"]), max_frames // len(ens.latent["LSS"][0])))
    with torch_threads(2):
        xyz = [cwgan.generate(z, random_state=seed + i) for i, z in enumerate(ens.latent["LSS"][:n])]
    q = [gomodel.fraction_native_contacts(x).astype(np.float64) for x in xyz]
    out = {"xyz": xyz, "q": q, "n_traj": n, "q_tv": total_variation(_q_hist(q), _q_hist(ens.q[ens.truth]))}
    edges = card.meta["edges"]
    tic = np.asarray(card.tica.transform(S.ca_distances(np.concatenate(xyz)).astype(np.float64)))
    det = card_details(card)
    md = det["MD"]
    out["F_tic"], out["tica_rmse"], out["flow_rmse"] = {}, {}, {}
    for b in (1, 2):
        F = A.free_energy_2d(tic[:, 0], tic[:, b], bins=(edges["tic1"], edges[f"tic{b + 1}"]))[2]
        ok = A.sampled_region(md[f"F_tic1{b + 1}"], max_dF=6.0) & np.isfinite(F)
        out["F_tic"][b] = F
        out["tica_rmse"][f"tic1_tic{b + 1}"] = A.aligned_rmse(md[f"F_tic1{b + 1}"], F, mask=ok) if ok.any() else float("nan")
        ok = A.sampled_region(md[f"F_tic1{b + 1}"], max_dF=6.0) & np.isfinite(det["LSS"][f"F_tic1{b + 1}"])
        out["flow_rmse"][f"tic1_tic{b + 1}"] = A.aligned_rmse(md[f"F_tic1{b + 1}"], det["LSS"][f"F_tic1{b + 1}"], mask=ok)
    if ens.flip is not None:
        out["states"] = gomodel.state_kinetics(q, [gomodel.flip_angle(x) for x in xyz], ens.dt, n_blocks=n_blocks,
                                               random_state=seed)
    return out



# ------------------------------------------------------------------------------------- the verdict
def verdict(targets: list, profile: str) -> str:
    """The notebook's verdict in Markdown from ``targets``: (name, LSS value, unit, target text, met,
    training MD value, MSM value, floor) per target."""
    status = lambda ok: "not assessed" if ok is None else "met" if ok else "MISSED"  # noqa: E731
    fmt = lambda v, u: "n/a" if not np.isfinite(v) else f"{v:.3g} {u}" if u != "1" else f"{v:.3g}"  # noqa: E731
    lines = [(f"- {name}: {v:.3g} {u} (target {t}) — **{status(ok)}**" if u == "lags" else
              f"- {name} error: LSS {fmt(v, u)} (target {t}) — **{status(ok)}**; independent MD of the training length "
              f"{fmt(fl, u)}, training MD {fmt(vm, u)}" + (f", MSM baseline (replays training frames) {fmt(vs, u)}"
                                                            if np.isfinite(vs) else ""))
             for name, v, u, t, ok, vm, vs, fl in targets]
    missed = [t[0] for t in targets if t[4] is False]
    scope = "" if profile == "cpu" else (f" (the targets are set for the cpu profile; this is the {profile} profile, "
                                         "whose sizes are too small for them to mean much)")
    n_met = sum(t[4] is True for t in targets)
    head = (f"**Missed: {', '.join(missed)}.** The LSS does not reach these targets against the converged reference" if missed
            else f"All {n_met} assessed targets against the converged reference are met" if n_met
            else "No target is assessed in this profile")
    return head + scope + ":\n\n" + "\n".join(lines)
