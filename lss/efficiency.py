"""Is a latent space simulator worth more than the MD it learned from? Data efficiency and coverage.

The protocol of notebook 09 (issue 22): the whole LSS (encoder, propagator, decoder) is retrained on
independent pieces of a long converged MD run (the *reference*) of increasing length, and every
estimate of the simulator, of the training MD itself and of an MSM that replays the training frames
is scored against the whole reference. Plain MD of many lengths gives the **MD error curve**
(:func:`md_error_curve`): how the error of MD's own estimate falls with its length. The headline per
quantity is the **amplification factor** (:func:`amplification_factor`)::

    G = (length of plain MD whose error equals the simulator's) / (training length)

G > 1: the simulator's estimate is worth more MD than it was trained on; G < 1: it loses information.
Beside accuracy, the intervals: each estimate's own sampling interval, and the spread of the
estimates of simulators retrained on other training sets (the epistemic part), with their
**coverage** of the reference (:func:`coverage`).

Observables (all on one grid: one frame per propagator lag; :class:`Observables`):
``F(Q)`` the free energy along the fraction of native contacts; ``Rg`` the mean radius of gyration;
``t1`` ... ``tm`` the relaxation times of the latent coordinates (exponential fits to the
autocorrelation, :func:`lss.kinetics.relaxation_table`); ``populations`` of the three metastable
states (milestoned cores on Q and the proline flip, :func:`lss.gomodel.metastable_cores`) and the
``MFPT`` between every ordered pair of them.

Units: time in the data's unit (ns of model time for the Go model), free energies kT, lengths nm.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from . import analysis, gomodel, kinetics, structure
from .stats import block_average, cut_pieces, split_blocks

__all__ = ["cut_pieces", "QUANTITIES", "Observables", "estimate", "errors", "scalars", "md_error_curve", "amplification_factor",
           "coverage", "train_lss", "simulate", "replica", "interval_coverage", "bayesian_msm", "bayes_coverage"]

#: key -> (label, unit, how the error against the reference is measured)
QUANTITIES = {
    "F(Q)": ("F(Q)", "kT", "aligned RMSE of F(Q) (30 bins on [0, 1]) over the reference's bins within 5 kT of its minimum"),
    "Rg": ("mean Rg", "nm", "|mean Rg - reference|"),
    "populations": ("state populations", "kT", "max over the 3 states of |ln p / p_ref| (milestoned cores)"),
    "MFPT": ("MFPTs", "1", "median over the 6 ordered pairs of |ln(MFPT / MFPT_ref)| (inf: a pair never seen)"),
    "t1": ("t1", "1", "|ln(t1 / t1_ref)|, relaxation times from the latent autocorrelations"),
    "t2": ("t2", "1", "|ln(t2 / t2_ref)|"),
    "t3": ("t3", "1", "|ln(t3 / t3_ref)|"),
    "F(TIC1,TIC2)": ("F(TIC1, TIC2)", "kT", "aligned RMSE of the free-energy surface on TIC1-TIC2 (TICA of the reference's "
                     "C-alpha distances) over the reference's bins within 5 kT"),
}
#: with ``latent_edges`` (one shared latent space) also ``F(psi1)``, ``F(psi2)``, ...: aligned RMSE in kT
Q_EDGES = np.linspace(0.0, 1.0, 31)
MAX_DF = 5.0


@dataclass
class Observables:
    """Per-trajectory series of one ensemble on the lag grid.

    Attributes
    ----------
    q, flip, rg : list of np.ndarray (n_frames_i,)
        Fraction of native contacts, proline flip angle (rad), radius of gyration (nm).
    latent : list of np.ndarray (n_frames_i, m)
        Latent coordinates (for the relaxation times).
    tic : list of np.ndarray (n_frames_i, 2), optional
        TIC1 and TIC2 of the structures (TICA of the reference's C-alpha distances), for F(TIC1, TIC2).
    dt : float
        Time between frames, the data's unit.
    step : int
        Frames per point of the kinetic grid (one propagator lag): MD keeps every frame for the
        ensemble averages and its kinetics are measured on the same grid as the LSS's (``step = tau``);
        an LSS or MSM trajectory has one frame per lag (``step = 1``).
    """

    q: list
    flip: list
    rg: list
    latent: list
    dt: float
    step: int = 1
    tic: list | None = None

    @classmethod
    def from_xyz(cls, xyz, latent, dt: float, native=None, step: int = 1, tica=None) -> Observables:
        """From structures: ``xyz`` list of (n_frames_i, n_atoms, 3) nm, ``latent`` list of (n_frames_i, m);
        ``tica``: a fitted TICA of C-alpha distances (:func:`lss.analysis.fit_tica`) for ``tic``."""
        q, flip, rg, tic = [], [], [], []
        for x in xyz:
            x = np.asarray(x, dtype=np.float32)
            q.append(gomodel.fraction_native_contacts(x, native=native))
            flip.append(gomodel.flip_angle(x, native=native))
            rg.append(structure.radius_of_gyration(x))
            if tica is not None:
                tic.append(np.concatenate([analysis.project(tica, structure.ca_distances(x[a:a + 100_000]))[:, :2]
                                           for a in range(0, len(x), 100_000)]))
        return cls(q, flip, rg, [np.asarray(z, dtype=np.float64) for z in latent], float(dt), int(step),
                   tic if tica is not None else None)

    @property
    def _fields(self) -> tuple:
        return ("q", "flip", "rg", "latent") + (("tic",) if self.tic is not None else ())

    @property
    def n_frames(self) -> int:
        return sum(len(x) for x in self.q)

    def take(self, index, dt: float) -> Observables:
        """The frames ``index`` (n_traj, n_steps) int (into all frames laid end to end, e.g. an MSM's
        replayed frames) as trajectories ``dt`` apart."""
        cat = {k: np.concatenate(getattr(self, k)) for k in self._fields}
        idx = np.atleast_2d(index)
        return Observables(*[[cat[k][i] for i in idx] for k in ("q", "flip", "rg", "latent")], float(dt),
                           tic=[cat["tic"][i] for i in idx] if self.tic is not None else None)


    def pieces(self, length: int, n: int | None = None) -> list[Observables]:
        """Contiguous pieces of ``length`` frames (frames laid end to end), at most ``n`` of them."""
        n = self.n_frames // length if n is None else min(int(n), self.n_frames // length)
        parts = {k: cut_pieces(getattr(self, k), length, n) for k in self._fields}
        return [Observables(parts["q"][i], parts["flip"][i], parts["rg"][i], parts["latent"][i], self.dt, self.step,
                            parts["tic"][i] if self.tic is not None else None) for i in range(n)]


def _labels(obs: Observables) -> list[np.ndarray]:
    return [gomodel.metastable_cores(q=q, flip=f) for q, f in zip(obs.q, obs.flip)]


def estimate(obs: Observables, acf_steps: int, n_boot: int = 200, random_state: int = 0, latent_edges=None,
             tic_edges=None) -> dict:
    """Every observable of one ensemble, with its sampling interval.

    Parameters
    ----------
    obs : Observables
        Ensemble averages use every frame; relaxation times and MFPTs the kinetic grid (``obs.step``).
    acf_steps : int
        Largest autocorrelation lag of the relaxation-time fits, in points of the kinetic grid (lags).
    n_boot : int
        Bootstrap samples of the MFPT intervals.
    latent_edges : list of arrays, optional
        Bin edges of each latent coordinate: also ``F_latent``, the free energy along each (only
        where every ensemble compared shares one latent space, e.g. notebook 07's).
    tic_edges : (array, array), optional
        Bin edges of TIC1 and TIC2: also ``F_tic``, the free-energy surface of the structures (needs ``obs.tic``).

    Returns
    -------
    dict: ``F`` (30,) kT on :data:`Q_EDGES`; ``rg``, ``rg_se`` nm; ``t``, ``t_se`` (m,) relaxation times sorted
    slowest first (NaN: not resolved); ``p``, ``p_se`` (3,); ``mfpt``, ``mfpt_low``, ``mfpt_high`` (3, 3).
    """
    nb = 5
    F = analysis.free_energy_profile(obs.q, bins=Q_EDGES, n_blocks=nb)[1]
    rg, rg_se = block_average(np.concatenate(obs.rg), nb)
    s = obs.step
    shortest = min(max(len(z) for z in b) for b in split_blocks(obs.latent, nb))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rt = kinetics.relaxation_table(obs.latent, min(int(acf_steps), (shortest - 1) // s) * s, frame_time=obs.dt,
                                       lag_step=s, n_blocks=nb)
    order = np.argsort(-np.nan_to_num(rt["t"], nan=-np.inf))
    labels = _labels(obs)
    pop = kinetics.state_populations(labels, len(gomodel.STATES), n_blocks=nb)
    mf = kinetics.mfpt_matrix([x[::s] for x in labels], len(gomodel.STATES), frame_time=obs.dt * s, n_boot=n_boot,
                              random_state=random_state)
    F_latent = [analysis.free_energy_profile([z[:, i] for z in obs.latent], bins=e, n_blocks=nb)[1]
                for i, e in enumerate(latent_edges or [])]
    F_tic = None
    if tic_edges is not None and obs.tic is not None:
        t = np.concatenate(obs.tic)
        F_tic = analysis.free_energy_2d(t[:, 0], t[:, 1], bins=tic_edges)[2]
    return {"F": F, "F_latent": F_latent, "F_tic": F_tic, "rg": float(rg), "rg_se": float(rg_se),
            "t": rt["t"][order], "t_se": rt["se"][order], "p": pop["p"], "p_se": pop["se"],
            "mfpt": mf["mean"], "mfpt_low": mf["low"], "mfpt_high": mf["high"]}


def _ln(a, b) -> float:
    a, b = float(a), float(b)
    if not (np.isfinite(b) and b > 0):
        return float("nan")
    return abs(math.log(a / b)) if np.isfinite(a) and a > 0 else float("inf")


def errors(est: dict, ref: dict) -> dict:
    """Error of each quantity of :data:`QUANTITIES` against the reference's estimate (0: exact)."""
    region = analysis.sampled_region(ref["F"], max_dF=MAX_DF)
    ok = region & np.isfinite(est["F"])
    out = {"F(Q)": analysis.aligned_rmse(ref["F"], est["F"], mask=ok) if ok.sum() > 1 else float("inf"),
           "Rg": abs(est["rg"] - ref["rg"]),
           "populations": max(_ln(a, b) for a, b in zip(est["p"], ref["p"]))}
    off = ~np.eye(len(gomodel.STATES), dtype=bool)
    out["MFPT"] = float(np.median([_ln(a, b) for a, b in zip(est["mfpt"][off], ref["mfpt"][off])]))
    for i in range(min(3, len(ref["t"]))):
        out[f"t{i + 1}"] = _ln(est["t"][i], ref["t"][i]) if i < len(est["t"]) else float("nan")
    if est.get("F_tic") is not None and ref.get("F_tic") is not None:
        ok = analysis.sampled_region(ref["F_tic"], max_dF=MAX_DF) & np.isfinite(est["F_tic"])
        out["F(TIC1,TIC2)"] = analysis.aligned_rmse(ref["F_tic"], est["F_tic"], mask=ok) if ok.sum() > 1 else float("inf")
    for i, (a, b) in enumerate(zip(est.get("F_latent", []), ref.get("F_latent", []))):
        ok = analysis.sampled_region(b, max_dF=MAX_DF) & np.isfinite(a)
        out[f"F(psi{i + 1})"] = analysis.aligned_rmse(b, a, mask=ok) if ok.sum() > 1 else float("inf")
    return out


def scalars(est: dict, z: float = 1.0) -> dict:
    """Scalar estimates with their sampling intervals ``value +/- z se`` (MFPTs: the bootstrap interval):
    name -> (value, low, high)."""
    out = {"Rg": (est["rg"], est["rg"] - z * est["rg_se"], est["rg"] + z * est["rg_se"])}
    for i, s in enumerate(gomodel.STATES):
        out[f"p_{s}"] = (est["p"][i], est["p"][i] - z * est["p_se"][i], est["p"][i] + z * est["p_se"][i])
    for i, t in enumerate(est["t"][:3]):
        out[f"t{i + 1}"] = (t, t - z * est["t_se"][i], t + z * est["t_se"][i])
    for i, a in enumerate(gomodel.STATES):
        for j, b in enumerate(gomodel.STATES):
            if i != j:
                out[f"mfpt_{a}_{b}"] = (est["mfpt"][i, j], est["mfpt_low"][i, j], est["mfpt_high"][i, j])
    return out


def md_error_curve(reference: Observables, lengths, ref_est: dict, acf_steps: int, max_pieces: int = 20,
                   n_boot: int = 20, latent_edges=None, tic_edges=None) -> dict:
    """Errors of plain MD's own estimates against the reference, for pieces of the reference of each length.

    Parameters
    ----------
    reference : Observables
        The converged MD on the lag grid.
    lengths : sequence of int
        Piece lengths in frames of ``reference`` (those longer than the reference are left out).
    ref_est : dict
        :func:`estimate` of the whole reference (the truth).
    max_pieces : int
        At most this many pieces per length (the first ones).

    Returns
    -------
    dict: ``lengths`` (n_L,); ``errors`` quantity -> list (per length) of arrays (n_pieces,); ``rms``
    quantity -> (n_L,) root-mean-square error over the pieces (inf pieces count as missing: see ``failed``);
    ``failed`` quantity -> (n_L,) fraction of pieces with an infinite error (a state or pair never seen);
    ``sd`` quantity -> (n_L,) standard deviation of the finite errors over the pieces.
    Each piece is part of the reference, which biases its error low by about ``sqrt((N - 1) / (N + 1))``
    for ``N`` pieces in the reference.
    """
    lengths = [int(L) for L in lengths if reference.n_frames // int(L) >= 1]
    if not lengths:
        raise ValueError(f"no length fits in the reference ({reference.n_frames} frames)")
    per_L = [[errors(estimate(p, acf_steps, n_boot=n_boot, latent_edges=latent_edges, tic_edges=tic_edges), ref_est)
              for p in reference.pieces(L, max_pieces)] for L in lengths]
    keys = list(per_L[0][0])
    errs = {k: [] for k in keys}
    for per in per_L:
        for k in keys:
            errs[k].append(np.array([e.get(k, np.nan) for e in per], dtype=float))
    rms, failed, sd = {}, {}, {}
    for k, rows in errs.items():
        sd[k] = np.array([np.std(r[np.isfinite(r)], ddof=1) if np.isfinite(r).sum() > 1 else np.nan for r in rows])
        rms[k] = np.array([np.sqrt(np.mean(r[np.isfinite(r)] ** 2)) if np.isfinite(r).any() else np.nan for r in rows])
        failed[k] = np.array([float(np.mean(~np.isfinite(r))) for r in rows])
    return {"lengths": np.array(lengths), "errors": errs, "rms": rms, "failed": failed, "sd": sd}


def amplification_factor(lengths, md_errors, model_error: float, train_length: float) -> tuple[float, str]:
    """``G = L_eq / train_length``: the MD length whose error equals ``model_error``, over the training length.

    The MD error curve is fitted by a power law ``err = a L^b`` (least squares in log-log over the
    finite points; statistical error alone gives ``b = -1/2``) and inverted.

    Returns
    -------
    (G, how): ``how`` is ``"interpolated"`` inside the measured lengths, ``"extrapolated"`` outside them
    (read it as a bound), ``"undefined"`` when the curve does not fall with length (b >= 0) or the model
    error is not finite and positive.
    """
    L, e = np.asarray(lengths, dtype=float), np.asarray(md_errors, dtype=float)
    ok = np.isfinite(e) & (e > 0)
    if ok.sum() < 2 or not (np.isfinite(model_error) and model_error > 0):
        return float("nan"), "undefined"
    b, log_a = np.polyfit(np.log(L[ok]), np.log(e[ok]), 1)
    if b >= 0:
        return float("nan"), "undefined"
    L_eq = math.exp((math.log(model_error) - log_a) / b)
    how = "interpolated" if L[ok].min() * (1 - 1e-9) <= L_eq <= L[ok].max() * (1 + 1e-9) else "extrapolated"
    return float(L_eq / train_length), how


def coverage(intervals, truth) -> dict:
    """Fraction of intervals that contain the truth, with its Monte Carlo standard error.

    Parameters
    ----------
    intervals : array (n, 2)
        ``(low, high)`` per case; a case with a non-finite bound counts as not covering.
    truth : array (n,)

    Returns
    -------
    dict: ``coverage``, ``mc_se`` (``sqrt(c (1 - c) / n)``), ``n``.
    """
    iv, t = np.asarray(intervals, dtype=float).reshape(-1, 2), np.asarray(truth, dtype=float).ravel()
    if len(iv) != len(t):
        raise ValueError(f"{len(iv)} intervals for {len(t)} true values")
    ok = np.isfinite(t)
    hit = (iv[ok, 0] <= t[ok]) & (t[ok] <= iv[ok, 1])
    n = int(ok.sum())
    c = float(hit.mean()) if n else float("nan")
    return {"coverage": c, "mc_se": float(math.sqrt(c * (1 - c) / n)) if n else float("nan"), "n": n}


def train_lss(xyz, featurizer, srv, mdn, decoder, native, seed: int = 0) -> dict:
    """Train the whole simulator (encoder, propagator, decoder) on one training set, as the main pipeline does.

    Parameters
    ----------
    xyz : list of np.ndarray (n_frames_i, n_atoms, 3) nm
        Training trajectories (frames of the main pipeline's frame time).
    featurizer : the main pipeline's featurizer (structures -> features)
    srv, mdn, decoder : unfitted :class:`lss.srv.SRV`, :class:`lss.mdn.MDNPropagator` and decoder
        (e.g. the main pipeline's, rebuilt from ``get_params()`` with fewer epochs).
    native : np.ndarray (n_atoms, 3)
        Reference structure of the decoder.

    Returns
    -------
    dict: ``encoder``, ``mdn``, ``decoder``, ``latent`` (list (n_frames_i, m)), ``failure`` (None, or why
    the training is counted as failed: an SRV whose slowest kept timescale is shorter than its lag, a
    propagator or decoder with a non-finite held-out loss).
    """
    from .features import Encoder, FeatureScaler

    encoder = Encoder(featurizer, FeatureScaler(), srv).fit(list(xyz))
    latent = [encoder.transform(x) for x in xyz]
    failure = None
    ts = np.asarray(srv.timescales_)[list(srv.modes_)]
    if not np.all(np.isfinite(ts)) or ts.min() < srv.lag:
        failure = f"SRV: kept timescales {np.round(ts, 1).tolist()} frames, not all slower than the lag {srv.lag}"
    mdn.fit(latent)
    if failure is None and not np.isfinite(min(mdn.history_["val_nll"])):
        failure = "MDN: non-finite held-out NLL"
    frames = np.concatenate([np.asarray(x) for x in xyz])
    decoder.fit(frames, np.concatenate(latent), reference=native)
    if failure is None and not np.isfinite(getattr(decoder, "val_nll_", 0.0)):
        failure = "decoder: non-finite held-out NLL"
    return {"encoder": encoder, "mdn": mdn, "decoder": decoder, "latent": latent, "failure": failure}


def simulate(model: dict, n_traj: int, n_steps: int, burn: int, dt: float, native=None, seed: int = 0,
             tica=None) -> Observables:
    """Run a trained simulator (:func:`train_lss`) from random training frames and measure it.

    ``n_traj`` trajectories of ``n_steps`` lags (the first ``burn`` dropped), every latent point decoded
    (Q, flip and Rg of the decoded structures). ``dt``: time of one lag.
    """
    rng = np.random.default_rng(seed)
    z_all = np.concatenate(model["latent"])
    x0 = z_all[rng.integers(0, len(z_all), n_traj)]
    z = model["mdn"].sample(x0, n_steps, random_state=seed)[:, burn:]
    xyz = model["decoder"].generate(z.reshape(-1, z.shape[-1]), random_state=seed)
    return Observables.from_xyz(list(xyz.reshape(n_traj, -1, *xyz.shape[1:])), list(z), dt, native=native, tica=tica)


def replica(xyz, full: Observables, templates: dict, native, tau: int, acf_steps: int, n_traj: int, n_steps: int,
            burn: int, msm_states: int, seed: int = 0, tica=None, tic_edges=None) -> dict:
    """One training set: the simulator retrained on it, the training MD itself and an MSM that replays it.

    Parameters
    ----------
    xyz : list of np.ndarray (n_frames_i, n_atoms, 3) nm
        The training set (a piece of the reference).
    full : Observables
        The same frames' observables at the full frame rate with ``step = tau`` (latent: the main
        encoder's, for MD's own estimate; the MSM uses the retrained encoder's).
    templates : dict ``srv``, ``mdn``, ``decoder`` -> callables returning fresh unfitted estimators (seeded)
        and ``featurizer``.
    tau : int
        Propagator lag in frames; every estimate is made on the lag grid.
    n_traj, n_steps, burn : int
        LSS trajectories, lags each, lags dropped at the start.
    msm_states : int
        k-means states of the MSM baseline.
    tica, tic_edges : optional
        TICA of the reference's C-alpha distances and the TIC1-TIC2 bins: also F(TIC1, TIC2).

    Returns
    -------
    dict: ``est`` name -> :func:`estimate` for ``"MD"``, ``"MSM"``, ``"LSS"``; ``bayes``: posterior samples
    of a Bayesian MSM on the same states (:func:`bayesian_msm`); ``failure`` (None or why);
    ``seconds`` (training and generation wall time).
    """
    import time

    from .msm import MSMBaseline

    t0 = time.perf_counter()
    model = train_lss(xyz, templates["featurizer"], templates["srv"](seed), templates["mdn"](seed),
                      templates["decoder"](seed), native, seed=seed)
    dt = full.dt * tau
    lss = simulate(model, n_traj, n_steps, burn, dt, native=native, seed=seed, tica=tica)
    own = Observables(full.q, full.flip, full.rg, model["latent"], full.dt, tic=full.tic)
    base = MSMBaseline(n_states=msm_states, lag=tau, random_state=seed).fit(model["latent"])
    idx = np.stack([base.sample(n_steps - burn, random_state=seed + 1 + i, return_index=True)[1] for i in range(n_traj)])
    kw = {"random_state": seed, "tic_edges": tic_edges}
    bayes = bayesian_msm(base.transform(model["latent"]), tau, full.dt, _labels(own), len(base.cluster_centers_))
    est = {"MD": estimate(full, acf_steps, **kw), "MSM": estimate(own.take(idx, dt), acf_steps, **kw),
           "LSS": estimate(lss, acf_steps, **kw)}
    return {"est": est, "bayes": bayes, "failure": model["failure"], "seconds": time.perf_counter() - t0,
            "m": int(model["encoder"].n_components_)}


def bayesian_msm(dtrajs, lag: int, frame_time: float, core_labels, n_clusters: int, n_samples: int = 100) -> dict:
    """Posterior samples of a Bayesian MSM (deeptime, effective counts): the plain baseline's own intervals.

    Parameters
    ----------
    dtrajs : list of np.ndarray (n_frames_i,) int
        Cluster labels of the training frames.
    lag : int
        MSM lag in frames; ``frame_time`` the time between frames.
    core_labels : list of np.ndarray (n_frames_i,) int
        The frames' metastable-core labels (-1 outside every core; milestoned here).
    n_clusters : int

    Returns
    -------
    dict name -> np.ndarray (n_samples,): ``p_<state>`` the populations of the three states (each
    cluster split among the states in the proportion of its milestoned frames), ``t1`` the slowest
    implied timescale (time).
    """
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import BayesianMSM

    from .kinetics import milestone

    counts = TransitionCountEstimator(lag, "effective").fit_fetch(list(dtrajs)).submodel_largest()
    post = BayesianMSM(n_samples=n_samples).fit_fetch(counts)
    n_s = len(gomodel.STATES)
    M = np.zeros((n_clusters, n_s))
    for d, lab in zip(dtrajs, core_labels):
        m = milestone(lab)
        ok = m >= 0
        np.add.at(M, (np.asarray(d)[ok], m[ok]), 1.0)
    M = M[np.asarray(counts.state_symbols)]
    M /= np.maximum(M.sum(1, keepdims=True), 1.0)
    p = np.array([s.stationary_distribution @ M for s in post.samples])
    p /= p.sum(1, keepdims=True)
    out = {f"p_{name}": p[:, i] for i, name in enumerate(gomodel.STATES)}
    out["t1"] = np.array([s.timescales(1)[0] for s in post.samples]) * frame_time
    return out


def bayes_coverage(replicas: list, ref_est: dict, level: float) -> dict:
    """Coverage of the reference by the Bayesian MSM's credible intervals (central ``level``), over every
    (replica, scalar) case; ``by_group`` per kind (``p``, ``t``). See :func:`coverage`."""
    truth = scalars(ref_est)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    iv, tv, grp = [], [], []
    for r in replicas:
        for k, smp in r["bayes"].items():
            iv.append(np.percentile(smp, q))
            tv.append(truth[k][0])
            grp.append(k.split("_")[0] if k.startswith("p_") else "t")
    iv, tv, grp = np.array(iv), np.array(tv), np.array(grp)
    return coverage(iv, tv) | {"by_group": {g: coverage(iv[grp == g], tv[grp == g]) for g in dict.fromkeys(grp)}}


def interval_coverage(replicas: list, ref_est: dict, name: str, z: float) -> dict:
    """Coverage of the reference's scalars (:func:`scalars`) by two kinds of interval of ``name``'s estimates.

    ``sampling``: each estimate's own interval (``z`` standard errors; MFPTs: the 95 % bootstrap
    interval at ``z >= 1.96``, else shrunk to ``z / 1.96`` of it). ``retraining``: the estimate
    ``+/- z sqrt(se^2 + sd^2)``, with ``sd`` the spread of the other replicas' estimates of the same
    quantity (leave one out: the epistemic part). Returns kind -> :func:`coverage` dict, over every
    (replica, scalar) case with a finite reference value, with ``by_group``: the same per kind of scalar
    (``Rg``, ``p`` populations, ``t`` relaxation times, ``mfpt``).
    """
    truth = scalars(ref_est)
    keys = list(truth)
    vals = np.array([[scalars(r["est"][name])[k][0] for k in keys] for r in replicas], dtype=float)
    lo = np.array([[scalars(r["est"][name])[k][1] for k in keys] for r in replicas], dtype=float)
    hi = np.array([[scalars(r["est"][name])[k][2] for k in keys] for r in replicas], dtype=float)
    shrink = min(1.0, z / 1.96)
    mf = np.array([k.startswith("mfpt") for k in keys])
    se = np.where(mf, (hi - lo) / (2 * 1.96), (hi - lo) / 2)    # sampling standard error per case
    samp_lo, samp_hi = np.where(mf, vals - shrink * (vals - lo), vals - z * se), np.where(mf, vals + shrink * (hi - vals), vals + z * se)
    truth_row = np.tile([truth[k][0] for k in keys], len(replicas))
    group = np.tile([k.split("_")[0] if not k.startswith("t") else "t" for k in keys], len(replicas))
    intervals = {"sampling": (samp_lo.ravel(), samp_hi.ravel())}
    if len(replicas) >= 3:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            sd = np.array([np.nanstd(np.delete(vals, r, 0), 0, ddof=1) for r in range(len(replicas))])
        half = z * np.sqrt(np.nan_to_num(se, nan=0.0) ** 2 + sd ** 2)
        intervals["retraining"] = ((vals - half).ravel(), (vals + half).ravel())
    out = {}
    for kind, (a, b) in intervals.items():
        iv = np.stack([a, b], 1)
        out[kind] = coverage(iv, truth_row) | {"by_group": {g: coverage(iv[group == g], truth_row[group == g])
                                                            for g in dict.fromkeys(group)}}
    return out


# ------------------------------------------------------------------------------------ notebook 09's tables
def _rms(vals) -> float:
    v = np.asarray(vals, dtype=float)
    v = v[np.isfinite(v)]
    return float(np.sqrt(np.mean(v ** 2))) if len(v) else float("inf")


def summary(reps: dict, truth: dict, curve: dict, train_frames: int, quantities) -> tuple[dict, dict]:
    """Errors of every replica and, per (quantity, training fraction), the RMS error of MD, MSM and LSS, the
    fraction of replicas that do not resolve it and the amplification factors of MSM and LSS.

    ``reps``: fraction -> list of :func:`replica` results. Returns ``(err, table)``: ``err[f][name]`` the
    replicas' :func:`errors`; ``table[q, f]`` ``{"err", "unresolved", "G"}``."""
    err = {f: {name: [errors(r["est"][name], truth) for r in reps[f]] for name in ("MD", "MSM", "LSS")} for f in reps}
    table = {}
    for k in quantities:
        for f in reps:
            e = {name: _rms([x[k] for x in err[f][name]]) for name in err[f]}
            unres = {name: float(np.mean([not np.isfinite(x[k]) for x in err[f][name]])) for name in err[f]}
            g = {name: amplification_factor(curve["lengths"], curve["rms"][k], e[name], f * train_frames)
                 for name in ("MSM", "LSS")}
            table[k, f] = {"err": e, "unresolved": unres, "G": g}
    return err, table


def summary_rows(table: dict) -> tuple[list, list]:
    """``(header, rows)`` of :func:`summary`'s table: errors and amplification factors."""
    head = ["quantity", "length"] + [f"error {n}" for n in ("MD", "MSM", "LSS")] + ["G (MSM)", "G (LSS)"]
    fmt_g = lambda g: "n/a" if not np.isfinite(g[0]) else f"{g[0]:.2g}" + (" (extrap.)" if g[1] == "extrapolated" else "")  # noqa: E731
    rows = [[QUANTITIES[k][0], f"{f:g}x"] + [f"{t['err'][n]:.3g}" + (f" ({t['unresolved'][n]:.0%} n/r)" if t["unresolved"][n] else "")
            for n in ("MD", "MSM", "LSS")] + [fmt_g(t["G"]["MSM"]), fmt_g(t["G"]["LSS"])] for (k, f), t in table.items()]
    return head, rows


def coverage_table(reps: dict, truth: dict) -> tuple[dict, list]:
    """Coverage of the reference by every kind of interval at 68 % and 95 %: sampling and retraining intervals of
    MD, MSM and LSS (:func:`interval_coverage`) and the Bayesian MSM's credible intervals (:func:`bayes_coverage`).

    Returns ``(cov, rows)``: ``cov[f, name, kind, level]`` the coverage dicts, ``rows`` the table's rows."""
    rows, cov = [], {}
    for f in reps:
        for name in ("MD", "MSM", "LSS"):
            for z, level in ((1.0, "68 %"), (1.96, "95 %")):
                for kind, v in interval_coverage(reps[f], truth, name, z).items():
                    cov[f, name, kind, level] = v
                    rows.append([f"{f:g}x", name, kind, level, f"{v['coverage']:.2f} ± {v['mc_se']:.2f}", v["n"]])
        for lv, level in ((0.68, "68 %"), (0.95, "95 %")):   # the plain baseline's own: a Bayesian MSM's credible intervals
            v = cov[f, "MSM", "Bayesian", level] = bayes_coverage(reps[f], truth, lv)
            rows.append([f"{f:g}x", "MSM", "Bayesian (populations, t1)", level, f"{v['coverage']:.2f} ± {v['mc_se']:.2f}", v["n"]])
    return cov, rows


COVERAGE_HEADER = ["length", "estimate", "interval", "nominal", "coverage ± MC s.e.", "cases"]


def bias_rows(reps: dict, truth: dict, cov: dict) -> list:
    """Which kinds of scalar the LSS's 95 % retraining intervals miss, and whether bias or width is why:
    per length and kind, the coverage and the median ``|mean - truth| / replica spread``."""
    keys = list(scalars(truth))
    grp = lambda k: "t" if k.startswith("t") else k.split("_")[0]  # noqa: E731
    ref_v = np.array([scalars(truth)[k][0] for k in keys])
    rows = []
    for f in reps:
        vals = np.array([[scalars(r["est"]["LSS"])[k][0] for k in keys] for r in reps[f]], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            bias = np.abs(np.nanmean(vals, 0) - ref_v) / np.nanstd(vals, 0, ddof=1)
        for g in dict.fromkeys(map(grp, keys)):
            sel = np.array([grp(k) == g for k in keys])
            c = cov.get((f, "LSS", "retraining", "95 %"), {}).get("by_group", {}).get(g)
            if c is not None:
                rows.append([f"{f:g}x", g, f"{c['coverage']:.2f} ± {c['mc_se']:.2f}", c["n"], f"{np.nanmedian(bias[sel]):.2g}"])
    return rows


BIAS_HEADER = ["length", "scalars", "LSS retraining coverage (95 %)", "cases", "median bias / replica spread"]


def interval_rows(reps: list, truth: dict) -> list:
    """Relaxation times and MFPTs of the LSS (mean over ``reps``) with the 95 % half-widths of one model's sampling
    interval and of the spread over retrained models, beside the reference."""
    sc = [scalars(r["est"]["LSS"]) for r in reps]
    ref_sc = scalars(truth)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for k in [k for k in ref_sc if k.startswith("t") or k.startswith("mfpt")]:
            v = np.array([s[k][0] for s in sc], dtype=float)
            se = np.nanmean([(s[k][2] - s[k][1]) / (2 * 1.96 if k.startswith("mfpt") else 2) for s in sc])
            rows.append([k.replace("mfpt_", "MFPT ").replace("_", " -> "), f"{ref_sc[k][0]:.3g}", f"{np.nanmean(v):.3g}",
                         f"± {1.96 * se:.2g}", f"± {1.96 * np.nanstd(v, ddof=1):.2g}", f"{np.isfinite(v).sum()} of {len(v)}"])
    return rows


INTERVAL_HEADER = ["quantity", "reference", "LSS", "sampling", "retraining", "resolved"]


def verdict(table: dict, quantities, cov: dict, f0: float) -> str:
    """Notebook 09's verdict at training fraction ``f0``: where the LSS adds accuracy (G > 1), where it only adds
    precision, whether it beats the MSM, and how its intervals cover the reference."""
    resolved = [k for k in quantities if table[k, f0]["unresolved"]["LSS"] <= 0.5]   # most replicas resolve it
    name = lambda ks: ", ".join(QUANTITIES[k][0] for k in ks) or "none"  # noqa: E731
    adds = [k for k in resolved if table[k, f0]["G"]["LSS"][0] > 1]
    loses = [k for k in resolved if table[k, f0]["G"]["LSS"][0] < 1]
    unres = [k for k in quantities if k not in resolved]
    beats_msm = [k for k in resolved if table[k, f0]["err"]["LSS"] < table[k, f0]["err"]["MSM"]]
    c95 = {kind: cov.get((f0, "LSS", kind, "95 %")) for kind in ("sampling", "retraining")}
    missed = [g for g, c in (c95["retraining"] or {}).get("by_group", {}).items() if c["coverage"] < 0.8]
    return (f"At {f0:g}x the training MD (the paper's regime), the retrained LSS is worth more MD than it was trained "
            f"on (G > 1, it adds accuracy) for: {name(adds)}; it loses information (G < 1: its many "
            f"frames add only precision) for: {name(loses)}"
            + (f"; most replicas do not resolve {name(unres)} at all" if unres else "") + ". It beats the MSM that replays "
            f"its training frames on: {name(beats_msm)}. Its 95 % sampling intervals cover the reference in "
            f"{c95['sampling']['coverage']:.0%} of the cases" + (f", its retraining intervals in {c95['retraining']['coverage']:.0%}"
            if c95["retraining"] else "") + (f" (target 80 %; below it: {', '.join(missed)}, see the bias column above)"
            if missed else "") + f". The Bayesian MSM's 95 % credible intervals cover "
            f"{cov[f0, 'MSM', 'Bayesian', '95 %']['coverage']:.0%}, MD's own block intervals "
            f"{cov[f0, 'MD', 'sampling', '95 %']['coverage']:.0%}.")


def retraining_templates(encoder, mdn, decoder, srv_epochs: int, mdn_epochs: int, decoder_epochs: int,
                         device: str = "cpu") -> dict:
    """What :func:`replica` retrains: the fitted networks' settings with fewer epochs, one seed per replica.

    Returns ``featurizer`` (notebook 03's, reused) and, for ``srv``, ``mdn`` and ``decoder``, functions
    ``seed -> unfitted estimator`` (the SRV keeps the main run's dimension: ``n_components = m``, one restart)."""
    def factory(est, n, **kw):
        return lambda s: type(est)(**{**est.get_params(), "max_epochs": n, "random_state": s, "progress": False,
                                      "device": device, **kw})

    return {"featurizer": encoder.featurizer, "mdn": factory(mdn, mdn_epochs),
            "srv": factory(encoder.srv, srv_epochs, n_components=encoder.n_components_, min_timescale_ratio=None,
                           n_restarts=1),
            "decoder": factory(decoder, decoder_epochs, patience=5)}
