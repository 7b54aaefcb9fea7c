"""Adaptive sampling guided by a latent space simulator (the paper's section 4, "next step").

Rounds of (short MD from chosen starting structures) -> (encoder and propagator trained on all the
MD so far) -> (choice of the next starting structures) under a fixed total MD budget. Three
strategies choose the restarts (:func:`restart_weights`):

- ``"plain"``: no choice; every trajectory starts from a structure of the initial (unfolded) pool.
- ``"counts"``: model-free least counts: states of the latent space (k-means) are drawn with
  probability proportional to ``1 / (frames in the state)``.
- ``"lss"``: LSS-guided: states are drawn with probability proportional to the propagator's
  *uncertainty* there (:func:`disagreement`): an ensemble of propagators (one trained on all the data,
  the others on bootstrap resamples of the trajectories) each predicts where a frame of state ``i``
  goes after one lag; ``u_i`` is the mean total-variation distance between each member's predicted
  distribution over states and the ensemble mean. Where the data say little about the dynamics
  (few frames, few transitions), the members disagree, and the restarts go there.

Every restart biases the raw histogram of the MD towards where the restarts go. Transition-based
estimates undo that bias: the propagator learns ``p(z_{t+tau} | z_t)``, which does not depend on
where the trajectories started, and its long samples relax to the stationary distribution
(:meth:`AdaptiveSampler.run` keeps ``lss_psi`` for that); a reversible maximum-likelihood MSM on the
same states does the same for a discrete model (:func:`stationary_from_transitions`). The propagators
are trained *without* time-reversed pairs (``reversible=False``): adding reversed pairs assumes the
data are already in equilibrium, and it would pull the estimate back to the biased histogram.

The encoder of each round is TICA (deeptime) on the C-alpha features of the adaptive data only: the
linear-basis limit of the SRV, cheap enough to refit every round, and it never sees the training data
of notebooks 02-03. The yardstick (the notebook-03 SRV's psi1, in which the converged reference is
measured) is applied only to evaluate, never to choose restarts.

Units: lengths in nm, time steps in Langevin steps of the Go model, lags in saved frames.
"""
from __future__ import annotations

import math
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .features import CAFeaturizer
from .gomodel import Q_UNFOLDED, GoModel, fraction_native_contacts
from .mdn import MDNPropagator
from .msm import count_matrix, estimate_msm

__all__ = ["STRATEGIES", "simulate_from", "md_executor", "kmeans_states", "stationary_from_transitions",
           "bootstrap_rows", "propagator_rows", "disagreement", "restart_weights", "choose_restarts",
           "free_energy_filled", "aligned_rmse_filled", "acf_relaxation_time", "AdaptiveSampler", "score_round",
           "run_campaigns", "score_campaigns"]

#: The strategies, in the order the notebook shows them.
STRATEGIES = ("plain", "counts", "lss")


# ------------------------------------------------------------------------------------------- MD
def _run_chunk(jobs: list[dict]) -> list[np.ndarray]:
    from .gomodel import _run

    return [_run(**j)[0] for j in jobs]


def md_executor(n_jobs: int | None = None) -> ProcessPoolExecutor:
    """A pool of ``n_jobs`` (default: CPU count) spawned processes for :func:`simulate_from`.

    Start it once per notebook (``with md_executor() as ex:``): starting the processes costs about
    2 s (imports), the trajectories of one round take a fraction of a second each.
    """
    import os

    return ProcessPoolExecutor(max_workers=n_jobs or os.cpu_count() or 1, mp_context=mp.get_context("spawn"))


def simulate_from(starts, n_steps: int, save_every: int, seeds, model: GoModel | None = None,
                  temperature: float = 300.0, timestep: float = 0.02, friction: float = 1.0,
                  executor: ProcessPoolExecutor | None = None) -> list[np.ndarray]:
    """Short Langevin trajectories of the Go model, each from its own starting structure.

    Velocities are drawn at ``temperature``; there is no equilibration (the start is a frame of an
    earlier trajectory). Each trajectory runs on the Reference platform in one process; the same seed
    gives the same trajectory bit for bit, whatever the number of processes.

    Parameters
    ----------
    starts : np.ndarray, shape (n_traj, 20, 3), nm
        Starting structures.
    n_steps, save_every : int
        Langevin steps per trajectory; steps between saved frames.
    seeds : sequence of int, length n_traj
        Seeds of the Langevin noise and velocities.
    model : GoModel, optional
        Default ``GoModel()``.
    temperature, timestep, friction : float
        K, ps, 1/ps.
    executor : ProcessPoolExecutor, optional
        From :func:`md_executor`; None runs in this process.

    Returns
    -------
    list of np.ndarray, each (n_steps // save_every + 1, 20, 3) float32 nm; frame 0 is the start.
    """
    starts = np.asarray(starts, dtype=np.float32)
    if starts.ndim != 3 or starts.shape[2] != 3:
        raise ValueError(f"starts must have shape (n_traj, n_atoms, 3) in nm, got {starts.shape}")
    if len(seeds) != len(starts):
        raise ValueError(f"{len(seeds)} seeds for {len(starts)} starts")
    if int(save_every) < 1 or int(n_steps) < int(save_every):
        raise ValueError(f"need 1 <= save_every <= n_steps, got save_every={save_every}, n_steps={n_steps}")
    model = model or GoModel()
    jobs = [dict(start=s, n_steps=int(n_steps), save_every=int(save_every), seed=int(sd), model=model,
                 temperature=float(temperature), timestep=float(timestep), friction=float(friction),
                 platform="Reference", equilibration_steps=0, progress=False) for s, sd in zip(starts, seeds)]
    if executor is None:
        return _run_chunk(jobs)
    n_chunks = 4 * max(1, executor._max_workers)
    chunks = [jobs[i::n_chunks] for i in range(n_chunks)]
    parts = list(executor.map(_run_chunk, chunks))
    out = [None] * len(jobs)
    for i, part in enumerate(parts):
        out[i::n_chunks] = part
    return out


# ------------------------------------------------------------------------- states and transitions
def kmeans_states(trajs, n_states: int, seed: int = 0):
    """k-means (deeptime, k-means++) on latent trajectories.

    Parameters
    ----------
    trajs : list of np.ndarray (n_frames_i, m)
    n_states : int
    seed : int

    Returns
    -------
    centers : np.ndarray (n_states, m)
    dtrajs : list of np.ndarray (n_frames_i,) int32
    """
    import warnings

    from deeptime.clustering import KMeans

    data = np.ascontiguousarray(np.concatenate(trajs), dtype=np.float64)
    n_states = min(int(n_states), len(data))
    with warnings.catch_warnings():  # "did not reach convergence" after max_iter: the states are usable
        warnings.simplefilter("ignore")
        km = KMeans(n_clusters=n_states, max_iter=50, init_strategy="kmeans++", fixed_seed=int(seed) % (2**31 - 1),
                    n_jobs=1).fit_fetch(data)
    return np.asarray(km.cluster_centers), [km.transform(np.ascontiguousarray(t, dtype=np.float64)).astype(np.int32)
                                            for t in trajs]


def stationary_from_transitions(dtrajs, lag: int, n_states: int) -> np.ndarray:
    """Stationary distribution of a reversible maximum-likelihood MSM (deeptime) of the transitions.

    It uses only the transitions ``i -> j`` (their conditional probabilities), never how often a
    trajectory *started* in ``i``, so restarts chosen anywhere do not bias it.

    Parameters
    ----------
    dtrajs : list of np.ndarray (n_frames_i,) int
    lag : int
        Frames.
    n_states : int
        Number of states; states outside the largest connected set get probability 0.

    Returns
    -------
    np.ndarray (n_states,), sums to 1
    """
    msm = estimate_msm([np.asarray(d, dtype=np.int32) for d in dtrajs], int(lag), reversible=True)
    pi = np.zeros(int(n_states))
    pi[np.asarray(msm.count_model.state_symbols, dtype=int)] = msm.stationary_distribution
    return pi / pi.sum()


def bootstrap_rows(dtrajs, lag: int, n_states: int, n_boot: int, rng) -> np.ndarray:
    """Transition-probability rows of ``n_boot`` bootstrap resamples of the trajectories (a discrete ensemble).

    Returns
    -------
    np.ndarray (n_boot, n_states, n_states); a row is NaN where its resample left state ``i``
    without a transition.
    """
    rng = np.random.default_rng(rng)
    rows = np.full((int(n_boot), n_states, n_states), np.nan)
    for b in range(int(n_boot)):
        C = count_matrix([dtrajs[k] for k in rng.integers(len(dtrajs), size=len(dtrajs))], lag, n_states)
        s = C.sum(1)
        rows[b, s > 0] = C[s > 0] / s[s > 0, None]
    return rows


def propagator_rows(members, z_trajs, dtrajs, centers, n_per_state: int, rng) -> np.ndarray:
    """Each propagator's one-lag transition probabilities between the k-means states.

    For every state, ``n_per_state`` frames of it (drawn with replacement) are propagated one lag by
    each member; the end points are assigned to the nearest centre.

    Parameters
    ----------
    members : list of MDNPropagator
    z_trajs : list of np.ndarray (n_frames_i, m)
        Latent trajectories.
    dtrajs : list of np.ndarray (n_frames_i,) int
        Their states.
    centers : np.ndarray (n_states, m)
    n_per_state : int
    rng : seed or np.random.Generator

    Returns
    -------
    np.ndarray (n_members, n_states, n_states); NaN rows for states without frames.
    """
    rng = np.random.default_rng(rng)
    z, d = np.concatenate(z_trajs), np.concatenate(dtrajs)
    n = len(centers)
    x0, lab = [], []
    for i in range(n):
        idx = np.nonzero(d == i)[0]
        if len(idx):
            x0.append(z[rng.choice(idx, size=n_per_state)])
            lab.append(np.full(n_per_state, i))
    x0, lab = np.concatenate(x0), np.concatenate(lab)
    rows = np.full((len(members), n, n), np.nan)
    for k, mdn in enumerate(members):
        x1 = mdn.sample(x0, 1, random_state=int(rng.integers(2**31)))[:, 1]
        end = np.argmin(((x1[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
        C = np.zeros((n, n))
        np.add.at(C, (lab, end), 1.0)
        s = C.sum(1)
        rows[k, s > 0] = C[s > 0] / s[s > 0, None]
    return rows


def disagreement(rows) -> np.ndarray:
    """Uncertainty of each state: how much an ensemble's predicted transition rows disagree.

    ``u_i = mean_k TV(T^k_i, mean_k T^k_i)``, with ``TV`` the total-variation distance (half the L1
    norm), in [0, 1]. A state for which any member has no prediction (a NaN row) gets 1.

    Parameters
    ----------
    rows : np.ndarray (n_members, n_states, n_states)

    Returns
    -------
    np.ndarray (n_states,)
    """
    rows = np.asarray(rows, dtype=np.float64)
    missing = np.isnan(rows).any(axis=(0, 2))
    r = np.nan_to_num(rows)
    mean = r.mean(0)
    u = 0.5 * np.abs(r - mean[None]).sum(-1).mean(0)
    u[missing] = 1.0
    return u


def restart_weights(strategy: str, counts, uncertainty=None) -> np.ndarray | None:
    """Probability of restarting from each state.

    Parameters
    ----------
    strategy : {"plain", "counts", "lss"}
    counts : np.ndarray (n_states,)
        Frames in each state so far.
    uncertainty : np.ndarray (n_states,), optional
        :func:`disagreement`; needed for ``"lss"``.

    Returns
    -------
    np.ndarray (n_states,) summing to 1 (zero for unvisited states), or None for ``"plain"``
    (restart from the initial pool).
    """
    counts = np.asarray(counts, dtype=np.float64)
    seen = counts > 0
    if strategy == "plain":
        return None
    if strategy == "counts":
        w = np.where(seen, 1.0 / np.maximum(counts, 1.0), 0.0)
    elif strategy == "lss":
        if uncertainty is None:
            raise ValueError("strategy 'lss' needs the uncertainty of each state")
        w = np.where(seen, np.asarray(uncertainty, dtype=np.float64) + 1e-12, 0.0)
    else:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    return w / w.sum()


def choose_restarts(weights, dtrajs, n: int, rng) -> list[tuple[int, int]]:
    """``n`` restart frames: states drawn from ``weights``, then a random frame of each drawn state.

    Returns
    -------
    list of (trajectory index, frame index)
    """
    rng = np.random.default_rng(rng)
    lab = np.concatenate(dtrajs)
    owner = np.concatenate([np.full(len(d), i) for i, d in enumerate(dtrajs)])
    local = np.concatenate([np.arange(len(d)) for d in dtrajs])
    out = []
    for s in rng.choice(len(weights), size=int(n), p=weights):
        k = rng.choice(np.nonzero(lab == s)[0])
        out.append((int(owner[k]), int(local[k])))
    return out


# ------------------------------------------------------------------------------------- yardsticks
def free_energy_filled(x, edges, weights=None) -> np.ndarray:
    """``F = -ln p`` (kT) of a 1-D sample on fixed bins; an empty bin gets the F of half a sample.

    Filling empty bins (instead of NaN) makes an estimate that never visits part of the reference's
    region pay for it in :func:`aligned_rmse_filled`.

    Parameters
    ----------
    x : np.ndarray (n,)
    edges : np.ndarray (n_bins + 1,)
    weights : np.ndarray (n,), optional

    Returns
    -------
    np.ndarray (n_bins,)
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    h, _ = np.histogram(x, bins=edges, weights=w)
    n_eff = w.sum() ** 2 / (w ** 2).sum()            # samples the weights amount to
    floor = 0.5 * w.sum() / n_eff
    p = np.maximum(h, floor) / w.sum() / np.diff(edges)
    return -np.log(p)


def aligned_rmse_filled(F_ref, F, mask) -> float:
    """RMSE (kT) of ``F`` against ``F_ref`` over ``mask`` after the best constant shift
    (:func:`lss.analysis.aligned_rmse`; with :func:`free_energy_filled` no bin is NaN)."""
    from .analysis import aligned_rmse

    return float(aligned_rmse(F_ref, F, mask=np.asarray(mask, dtype=bool)))


def acf_relaxation_time(trajs, max_steps: int, step: int = 1, dt: float = 1.0,
                        cutoff: float = math.exp(-2)) -> float:
    """Relaxation time of a 1-D coordinate: ``exp(-t / t1)`` fitted to its autocorrelation.

    :func:`lss.kinetics.relaxation_times` on the grid of lags ``0, step, ..., max_steps * step``
    frames, as notebook 07 fits Table 1, so that MD (``step`` = the propagator lag) and LSS (``step``
    = 1, frames one lag apart) are fitted on the same time grid.

    Parameters
    ----------
    trajs : list of np.ndarray (n_frames_i,)
    max_steps : int
        Lags on the grid.
    step : int
        Frames between grid points.
    dt : float
        Time of one grid step (ns, ...); the result is in this unit.
    cutoff : float
        The fit stops where the autocorrelation drops below it.

    Returns
    -------
    float
    """
    from .kinetics import relaxation_times

    xs = [np.asarray(t, dtype=np.float64).ravel()[:, None] for t in trajs]
    longest = max(len(x) for x in xs)
    max_lag = min(int(max_steps) * int(step), longest - 1)
    step = min(int(step), max_lag)
    t, _ = relaxation_times(xs, max_lag, frame_time=dt / step, n_blocks=None, lag_step=step, cutoff=cutoff)
    return float(t[0])


# ------------------------------------------------------------------------------------- the loop
class AdaptiveSampler:
    """Rounds of short MD, a model trained on all of it, and restarts chosen by a strategy.

    Parameters
    ----------
    strategy : {"plain", "counts", "lss"}
        See the module docstring.
    traj_steps : int
        Langevin steps per short trajectory.
    save_every : int
        Steps between saved frames.
    lag : int
        Lag of TICA, the propagator and the MSM, frames.
    latent_dim : int
        TICA components (kinetic map) kept as the latent space.
    n_states : int
        k-means states of the latent space (restart choice and MSM estimate).
    n_members : int
        Propagators in the ensemble of the ``"lss"`` strategy (one on all data + bootstraps), >= 2.
    n_per_state : int
        Frames per state propagated by each member to measure the disagreement.
    mdn_params : dict
        Keyword arguments of :class:`lss.mdn.MDNPropagator` (``lag`` and ``reversible`` are set here).
    n_lss_traj, n_lss_steps, burn_steps : int
        LSS trajectories sampled from the propagator trained on all data (from random data frames),
        their length in lags, and how many first lags are dropped (relaxation from the biased starts).
    model : GoModel, optional
    temperature, timestep, friction : float
        As in :func:`simulate_from`.
    random_state : int
        Seeds the MD, the restart choice and the models.

    Attributes (after :meth:`run`)
    ----------
    rounds_ : list of dict
        Per round: ``budget_steps`` (cumulative MD steps), ``n_traj``, ``md_psi`` (yardstick of every
        MD frame, (n_frames,)), ``lss_psi`` (yardstick of the LSS samples, (n_lss_traj, n_kept)),
        ``lss_z1`` (the LSS's own slowest coordinate, same shape), ``msm_weights`` (per MD frame),
        ``uncertainty`` (per state, ``"lss"`` only), ``counts`` (frames per state), ``start_q`` (fraction of
        native contacts of the starting structures of the round's new trajectories), ``fit_s``, ``md_s`` (s).
    trajs_ : list of np.ndarray (n_frames, 20, 3)
        All the MD of the run.
    """

    def __init__(self, strategy: str = "lss", traj_steps: int = 7500, save_every: int = 150, lag: int = 10,
                 latent_dim: int = 2, n_states: int = 30, n_members: int = 3, n_per_state: int = 200,
                 mdn_params: dict | None = None, n_lss_traj: int = 100, n_lss_steps: int = 400,
                 burn_steps: int = 60, model: GoModel | None = None, temperature: float = 300.0,
                 timestep: float = 0.02, friction: float = 1.0, random_state: int = 0):
        self.strategy = strategy
        self.traj_steps = traj_steps
        self.save_every = save_every
        self.lag = lag
        self.latent_dim = latent_dim
        self.n_states = n_states
        self.n_members = n_members
        self.n_per_state = n_per_state
        self.mdn_params = mdn_params
        self.n_lss_traj = n_lss_traj
        self.n_lss_steps = n_lss_steps
        self.burn_steps = burn_steps
        self.model = model
        self.temperature = temperature
        self.timestep = timestep
        self.friction = friction
        self.random_state = random_state

    # ------------------------------------------------------------------------------ one round
    def _md(self, starts, seeds, executor):
        return simulate_from(starts, self.traj_steps, self.save_every, seeds, self.model, self.temperature,
                             self.timestep, self.friction, executor)

    def _mdn(self, z_trajs, seed):
        kw = dict(n_kernels=8, hidden=(64, 64), lr=2e-3, batch_size=512, max_epochs=40, patience=5)
        kw.update(self.mdn_params or {})
        kw.update(lag=int(self.lag), reversible=False, random_state=int(seed))
        return MDNPropagator(**kw).fit(z_trajs)

    def _fit_round(self, feats, rng, need_members: bool):
        """TICA + k-means + propagator(s) on all MD so far."""
        from deeptime.decomposition import TICA

        tica = TICA(lagtime=int(self.lag), dim=int(self.latent_dim), scaling="kinetic_map").fit_fetch(feats)
        z = [np.asarray(tica.transform(f), dtype=np.float32) for f in feats]
        centers, dtrajs = kmeans_states(z, self.n_states, seed=int(rng.integers(2**31)))
        members = [self._mdn(z, rng.integers(2**31))]
        if need_members:
            for _ in range(int(self.n_members) - 1):
                pick = rng.integers(len(z), size=len(z))
                members.append(self._mdn([z[i] for i in pick], rng.integers(2**31)))
        return z, centers, dtrajs, members

    def _lss_samples(self, mdn, z, rng):
        """LSS trajectories (n_lss_traj, n_kept, m) from random data frames, the first lags dropped."""
        allz = np.concatenate(z)
        x0 = allz[rng.integers(len(allz), size=int(self.n_lss_traj))]
        out = mdn.sample(x0, int(self.n_lss_steps), random_state=int(rng.integers(2**31)))
        return out[:, int(self.burn_steps) + 1:]

    # ------------------------------------------------------------------------------------ run
    def run(self, pool, round_trajs, yardstick, executor=None, initial=None) -> "AdaptiveSampler":
        """Run the rounds.

        Parameters
        ----------
        pool : np.ndarray (n_pool, 20, 3), nm
            Initial starting structures (e.g. unfolded frames); ``"plain"`` draws all its starts here,
            the other strategies only in round 0.
        round_trajs : list of int
            New trajectories per round; round ``r`` ends with ``sum(round_trajs[:r + 1]) * traj_steps``
            MD steps in all.
        yardstick : callable
            ``(n_frames, 20, 3) nm -> (n_frames,)``, the coordinate of the evaluation (only used to
            report, never to choose).
        executor : ProcessPoolExecutor, optional
            From :func:`md_executor`.
        initial : list of np.ndarray (n_frames, 20, 3), optional
            The MD of round 0 when it was already run (it is the same for all strategies of a seed);
            must hold ``round_trajs[0]`` trajectories made as this sampler would.

        Returns
        -------
        self
        """
        from scipy.spatial import cKDTree

        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if len(round_trajs) < 1 or min(round_trajs) < 1:
            raise ValueError(f"round_trajs must be a non-empty list of positive counts, got {round_trajs!r}")
        if self.traj_steps // self.save_every <= self.lag:
            raise ValueError(f"trajectories of {self.traj_steps // self.save_every} frames are too short for "
                             f"lag {self.lag} frames")
        ss = np.random.SeedSequence([int(self.random_state)])
        md_seq, choice_seq, model_seq = ss.spawn(3)
        rng_choice = np.random.default_rng(choice_seq)
        rng_model = np.random.default_rng(model_seq)
        featurizer = CAFeaturizer()
        pool = np.asarray(pool, dtype=np.float32)
        trajs, feats, psis, self.rounds_ = [], [], [], []
        seeds_of_round = [md_seq.spawn(1)[0].generate_state(n).tolist() for n in round_trajs]
        choice = None
        for r, n_new in enumerate(round_trajs):
            t0 = time.perf_counter()
            if r == 0 and initial is not None:
                if len(initial) != n_new:
                    raise ValueError(f"initial holds {len(initial)} trajectories, round 0 needs {n_new}")
                new = list(initial)
                starts = np.stack([x[0] for x in new])
            else:
                if r == 0 or self.strategy == "plain":
                    # round 0 draws with its own generator so that every strategy shares it
                    g = np.random.default_rng(self.random_state) if r == 0 else rng_choice
                    starts = pool[g.integers(len(pool), size=n_new)]
                else:
                    starts = np.stack([trajs[i][j] for i, j in choice])
                new = self._md(starts, seeds_of_round[r], executor)
            md_s = time.perf_counter() - t0
            trajs += new
            feats += [featurizer.transform(x) for x in new]
            psis += [np.asarray(yardstick(x), dtype=np.float64) for x in new]
            t0 = time.perf_counter()
            last = r == len(round_trajs) - 1
            need = self.strategy == "lss" and not last
            z, centers, dtrajs, members = self._fit_round(feats, rng_model, need)
            lss = self._lss_samples(members[0], z, rng_model)
            # the yardstick of an LSS point: that of the nearest MD frame in the latent space
            allz = np.concatenate(z)
            _, nn = cKDTree(allz).query(lss.reshape(-1, lss.shape[-1]))
            lss_psi = np.concatenate(psis)[nn].reshape(lss.shape[:2])
            n_st = len(centers)
            pi = stationary_from_transitions(dtrajs, self.lag, n_st)
            lab = np.concatenate(dtrajs)
            counts = np.bincount(lab, minlength=n_st).astype(np.float64)
            msm_w = pi[lab] / counts[lab]
            unc = None
            if not last and self.strategy != "plain":
                if self.strategy == "lss":
                    rows = propagator_rows(members, z, dtrajs, centers, self.n_per_state, rng_model)
                    unc = disagreement(rows)
                w = restart_weights(self.strategy, counts, unc)
                choice = choose_restarts(w, dtrajs, round_trajs[r + 1], rng_choice)
            self.rounds_.append(dict(
                budget_steps=int(len(trajs) * self.traj_steps), n_traj=len(trajs),
                md_psi=np.concatenate(psis), lss_psi=lss_psi, lss_z1=lss[..., 0].astype(np.float64),
                msm_weights=msm_w, uncertainty=unc, counts=counts, start_q=fraction_native_contacts(starts), fit_s=time.perf_counter() - t0, md_s=md_s,
                lss_clipped=float(members[0].clipped_fraction_)))
        self.trajs_ = trajs
        return self


def score_round(rnd: dict, edges, F_ref, region, t1_ref: float, acf_steps: int, dt_lss: float) -> dict:
    """Errors of one round's estimates against the reference.

    Parameters
    ----------
    rnd : dict
        One entry of :attr:`AdaptiveSampler.rounds_`.
    edges : np.ndarray (n_bins + 1,)
        Bins of psi1 (the yardstick).
    F_ref : np.ndarray (n_bins,)
        Reference F(psi1), kT.
    region : np.ndarray (n_bins,) bool
        Bins compared.
    t1_ref : float
        Reference t1 (unit of ``dt_lss``), measured with :func:`acf_relaxation_time` on the same grid.
    acf_steps : int
        Lags of the autocorrelation fit, in LSS steps.
    dt_lss : float
        Time of one LSS step (lag x frame time).

    Returns
    -------
    dict with ``rmse_md``, ``rmse_lss``, ``rmse_msm`` (kT); ``t1_lss`` (relaxation time of the LSS's own
    slowest coordinate) and ``t1_err`` (relative to ``t1_ref``); ``t1_lss_psi`` and ``t1_psi_err``, the
    same for the yardstick values of the LSS points (a check: they agree when the LSS's slowest
    coordinate is the folding coordinate); ``F_md``, ``F_lss``, ``F_msm`` (n_bins,).
    """
    F_md = free_energy_filled(rnd["md_psi"], edges)
    F_lss = free_energy_filled(rnd["lss_psi"], edges)
    F_msm = free_energy_filled(rnd["md_psi"], edges, weights=rnd["msm_weights"])
    t1 = acf_relaxation_time(list(rnd["lss_z1"]), acf_steps, 1, dt_lss)
    t1_psi = acf_relaxation_time(list(rnd["lss_psi"]), acf_steps, 1, dt_lss)
    return dict(rmse_md=aligned_rmse_filled(F_ref, F_md, region), rmse_lss=aligned_rmse_filled(F_ref, F_lss, region),
                rmse_msm=aligned_rmse_filled(F_ref, F_msm, region), t1_lss=t1, t1_err=abs(t1 - t1_ref) / t1_ref,
                t1_lss_psi=t1_psi, t1_psi_err=abs(t1_psi - t1_ref) / t1_ref,
                F_md=F_md, F_lss=F_lss, F_msm=F_msm)


def run_campaigns(pool, round_trajs, yardstick, seeds, sampler_params: dict, strategies=STRATEGIES,
                  n_jobs: int | None = None, log=print) -> dict:
    """Every strategy, once per seed, under the same MD budget; the MD runs in ``n_jobs`` processes.

    Round 0 (``round_trajs[0]`` trajectories from the pool) is the same for all strategies of a seed
    and is simulated once.

    Parameters
    ----------
    pool, round_trajs, yardstick
        As in :meth:`AdaptiveSampler.run`.
    seeds : list of int
        One campaign per seed and strategy.
    sampler_params : dict
        Keyword arguments of :class:`AdaptiveSampler` (all but ``strategy`` and ``random_state``).
    strategies : sequence of str
    n_jobs : int, optional
        MD processes (default: CPU count).

    Returns
    -------
    dict ``{(strategy, seed): list of round dicts}`` (:attr:`AdaptiveSampler.rounds_`)
    """
    from .utils import torch_threads

    out = {}
    with md_executor(n_jobs) as ex, torch_threads(1):
        for sd in seeds:
            initial = None
            for st in strategies:
                t0 = time.perf_counter()
                s = AdaptiveSampler(strategy=st, random_state=int(sd), **sampler_params)
                s.run(pool, round_trajs, yardstick, ex, initial=initial)
                initial = s.trajs_[:round_trajs[0]]
                out[st, sd] = s.rounds_
                if log:
                    md_s = sum(r["md_s"] for r in s.rounds_)
                    fit_s = sum(r["fit_s"] for r in s.rounds_)
                    log(f"seed {sd} {st:>6}: {len(s.trajs_)} trajectories, MD {md_s:.0f} s, models {fit_s:.0f} s "
                        f"(total {time.perf_counter() - t0:.0f} s)")
    return out


def score_campaigns(campaigns: dict, edges, F_ref, region, t1_ref: float, acf_steps: int, dt_lss: float) -> dict:
    """Errors of every round of every campaign (:func:`score_round`), stacked over seeds.

    Returns
    -------
    dict ``{strategy: {metric: np.ndarray (n_seeds, n_rounds)}}`` for the scalar metrics of
    :func:`score_round`, plus ``budget_steps`` (n_rounds,) and ``F_*`` profiles of shape
    (n_seeds, n_rounds, n_bins).
    """
    strategies = list(dict.fromkeys(k[0] for k in campaigns))
    seeds = list(dict.fromkeys(k[1] for k in campaigns))
    out = {}
    for st in strategies:
        rows = [[score_round(r, edges, F_ref, region, t1_ref, acf_steps, dt_lss) for r in campaigns[st, sd]]
                for sd in seeds]
        out[st] = {k: np.array([[r[k] for r in row] for row in rows]) for k in rows[0][0]}
        out[st]["budget_steps"] = np.array([r["budget_steps"] for r in campaigns[st, seeds[0]]])
    return out


# --------------------------------------------------------------------------------------------------
# The target budget: the numbers there, the verdict, the recording
# --------------------------------------------------------------------------------------------------

#: the scalar metrics reported at one budget (:func:`at_budget`); ``*_sd`` for the first three
AT_BUDGET_KEYS = ("rmse_lss", "rmse_md", "rmse_msm", "t1_err", "t1_lss")


def target_budget(budgets, training_steps: float, target_fraction: float) -> int:
    """Index of the largest budget within ``target_fraction`` of the training MD (0 if none is).

    Parameters
    ----------
    budgets : np.ndarray, shape (n_rounds,)
        Cumulative MD budgets of the rounds, Langevin steps (``scores[st]["budget_steps"]``).
    training_steps : float
        Langevin steps of the training MD.
    target_fraction : float
        The target's budget as a fraction of the training MD.
    """
    within = np.asarray(budgets) <= target_fraction * training_steps * (1 + 1e-9)
    return int(np.nonzero(within)[0][-1]) if within.any() else 0


def at_budget(scores: dict, j: int) -> dict:
    """Mean (and standard deviation) over seeds of each strategy's errors at budget index ``j``.

    Parameters
    ----------
    scores : dict
        :func:`score_campaigns`: ``{strategy: {metric: np.ndarray (n_seeds, n_rounds)}}``.
    j : int
        Round (budget) index, e.g. :func:`target_budget`.

    Returns
    -------
    dict ``{strategy: {metric: float}}`` with :data:`AT_BUDGET_KEYS` (F RMSEs in kT, ``t1_err``
    relative, ``t1_lss`` in the data's time unit) and ``rmse_lss_sd``, ``rmse_md_sd``, ``t1_err_sd``.
    """
    return {st: {k: float(sc[k][:, j].mean()) for k in AT_BUDGET_KEYS}
            | {f"{k}_sd": float(sc[k][:, j].std()) for k in AT_BUDGET_KEYS[:2] + ("t1_err",)}
            for st, sc in scores.items()}


def verdict(at: dict, rmse_max: float, t1_max: float) -> dict:
    """The adaptive-sampling target at one budget: the LSS-guided strategy meets it, plain MD does not.

    Parameters
    ----------
    at : dict
        :func:`at_budget` (needs the strategies ``"lss"`` and ``"plain"``).
    rmse_max : float
        Bound on the aligned F(psi1) RMSE, kT.
    t1_max : float
        Bound on the relative t1 error.

    Returns
    -------
    dict with ``met`` (bool), ``guided_F``, ``guided_t1`` (the LSS-guided strategy meets each bound),
    ``plain_ok`` (plain MD meets both, with the better of its LSS and raw-MD F) and ``why`` (list of
    str: what fails, empty when met).
    """
    guided_F, guided_t1 = at["lss"]["rmse_lss"] <= rmse_max, at["lss"]["t1_err"] <= t1_max
    plain_ok = (min(at["plain"]["rmse_lss"], at["plain"]["rmse_md"]) <= rmse_max) and at["plain"]["t1_err"] <= t1_max
    why = (([] if guided_F else [f"the LSS-guided F RMSE is {at['lss']['rmse_lss']:.2f} kT > {rmse_max:g}"])
           + ([] if guided_t1 else [f"the LSS-guided t1 is off by {100 * at['lss']['t1_err']:.0f} % > {100 * t1_max:g} %"])
           + (["plain MD meets it as well"] if plain_ok else []))
    return {"met": bool(guided_F and guided_t1 and not plain_ok), "guided_F": bool(guided_F),
            "guided_t1": bool(guided_t1), "plain_ok": bool(plain_ok), "why": why}


def verdict_markdown(at: dict, v: dict, budget_steps: int, fraction: float, n_seeds: int, unit: str) -> str:
    """The target at one budget in words (markdown): each strategy's errors, then the verdict.

    Parameters
    ----------
    at : dict
        :func:`at_budget`.
    v : dict
        :func:`verdict`.
    budget_steps : int
        The budget assessed, Langevin steps; ``fraction`` the same over the training MD.
    n_seeds : int
    unit : str
        Time unit of ``t1_lss``.
    """
    from .plots import ADAPTIVE_NAMES

    def line(st):
        a = at[st]
        return (f"**{ADAPTIVE_NAMES[st]}**: F RMSE {a['rmse_lss']:.2f} ± {a['rmse_lss_sd']:.2f} kT (LSS), "
                f"{a['rmse_md']:.2f} ± {a['rmse_md_sd']:.2f} kT (raw MD), {a['rmse_msm']:.2f} kT (MSM); "
                f"t1 {a['t1_lss']:.3g} {unit}, error {100 * a['t1_err']:.0f} ± {100 * a['t1_err_sd']:.0f} %")

    text = "**met**" if v["met"] else "**not met**: " + "; ".join(v["why"])
    return (f"At {budget_steps:,} Langevin steps ({fraction:.3g} x the training MD, {n_seeds} seeds):\n\n"
            + "\n".join(f"- {line(st)}" for st in at) + f"\n\nTarget {text}.")


def scores_summary(scores: dict, unit: str) -> str:
    """One line per strategy: mean over seeds, per budget, of the F(psi1) RMSEs (kT) and of t1 (``unit``)."""
    from .plots import ADAPTIVE_NAMES

    return "\n".join(f"{ADAPTIVE_NAMES[st]:>13}: F RMSE LSS {np.round(sc['rmse_lss'].mean(0), 2)}, raw MD "
                     f"{np.round(sc['rmse_md'].mean(0), 2)}, MSM {np.round(sc['rmse_msm'].mean(0), 2)} kT; "
                     f"t1 {np.round(sc['t1_lss'].mean(0), 3)} {unit}" for st, sc in scores.items())


def record_scores(rec, scores: dict) -> None:
    """Record every strategy's errors per budget, mean and standard deviation over seeds.

    Keys ``{metric}_{strategy}`` and ``{metric}_{strategy}_sd`` for ``rmse_lss``, ``rmse_md``,
    ``rmse_msm`` (kT) and ``t1_err`` (relative), each of shape (n_rounds,), through the recorder
    ``rec`` (:class:`lss.results.Recorder`, descriptions from the metric catalog).
    """
    for st, sc in scores.items():
        for key in ("rmse_lss", "rmse_md", "rmse_msm", "t1_err"):
            rec.many(**{f"{key}_{st}": sc[key].mean(0), f"{key}_{st}_sd": sc[key].std(0)})


def reference_target(ref_psi, fe_bins: int, fe_max_dF: float, acf_steps: int, lag: int, dt: float) -> dict:
    """What the campaigns are scored against: the converged reference's F(psi1) and t1.

    Parameters
    ----------
    ref_psi : list of np.ndarray (n_frames,)
        The yardstick psi1 of each reference trajectory (every saved frame).
    fe_bins : int
        Bins of F(psi1) over the reference's range (its 0.05 to 99.95 percentiles).
    fe_max_dF : float
        F(psi1) is compared where the reference is within this of its minimum, kT.
    acf_steps, lag : int
        Lags (of ``lag`` frames each) of the autocorrelation fit of t1 (:func:`acf_relaxation_time`).
    dt : float
        Time of one lag, in the data's time unit.

    Returns
    -------
    dict: ``edges`` (fe_bins + 1,), ``F_ref`` (fe_bins,) kT (:func:`free_energy_filled`), ``region``
    (fe_bins,) bool (the bins compared), ``t1_ref`` (float, time unit of ``dt``) and ``n_frames``.
    """
    allref = np.concatenate(ref_psi)
    edges = np.linspace(np.percentile(allref, 0.05), np.percentile(allref, 99.95), fe_bins + 1)
    F_ref = free_energy_filled(allref, edges)
    return {"edges": edges, "F_ref": F_ref, "region": F_ref <= F_ref.min() + fe_max_dF,
            "t1_ref": acf_relaxation_time(ref_psi, acf_steps, lag, dt), "n_frames": len(allref)}


def start_pool(q, xyz, n_pool: int, q_max: float = Q_UNFOLDED) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n_pool`` unfolded structures (``Q < q_max``) of the training data, evenly spaced in time.

    Parameters
    ----------
    q : list of np.ndarray (n_frames,)
        Fraction of native contacts per trajectory.
    xyz : list of np.ndarray (n_frames, n_atoms, 3)
        The trajectories, nm.
    n_pool : int
    q_max : float
        The unfolded core's bound (``lss.gomodel.Q_UNFOLDED``).

    Returns
    -------
    pool : np.ndarray, shape (n, n_atoms, 3), nm
    q_pool : np.ndarray, shape (n,)
        Their Q.
    """
    q_all = np.concatenate([np.asarray(a) for a in q])
    unfolded = np.nonzero(q_all < q_max)[0]
    pick = unfolded[np.linspace(0, len(unfolded) - 1, min(n_pool, len(unfolded))).astype(int)]
    return np.concatenate([np.asarray(x) for x in xyz])[pick], q_all[pick]


def summary(budgets, training_steps: int, t1_ref: float, seeds, met: bool, at: dict, scores: dict) -> dict:
    """Notebook 08's ``summary.json``: budgets, the reference t1, seeds, the verdict, the errors at the target
    budget and every strategy's scores per round (the free-energy profiles left out)."""
    return {"budgets_steps": budgets, "training_steps": training_steps, "t1_reference": t1_ref, "seeds": seeds,
            "target_met": met, "at_target_budget": at,
            "per_round": {st: {k: v for k, v in sc.items() if not k.startswith("F_")} for st, sc in scores.items()}}
