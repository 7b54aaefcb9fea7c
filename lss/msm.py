"""Markov state models (deeptime): binning helpers, the MSM baseline of the LSS, the Chapman-Kolmogorov test.

- :func:`discretize`, :func:`estimate_msm`, :func:`msm_timescales`: small helpers (four-well checks).
- :class:`MSMBaseline`: the baseline the LSS is compared with (paper's MSM comparison): cluster a
  latent space, estimate an MSM, sample it back into continuous latent trajectories.
- :func:`chapman_kolmogorov`: the CK test of an MSM of MD against MD itself and other trajectories
  (LSS, MSM baseline) on the same discretisation.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from .base import Estimator
from .stats import _mode_list
from .utils import check_lag


def discretize(trajs, edges: np.ndarray) -> list[np.ndarray]:
    """Bin 1-D trajectories on ``edges``; values outside go to the first/last bin.

    Parameters
    ----------
    trajs : array (n_frames,) or list of them, or (n_traj, n_frames)
    edges : (n_bins + 1,)

    Returns
    -------
    dtrajs : list of int32 arrays (n_frames,)
    """
    if isinstance(trajs, np.ndarray) and trajs.ndim == 1:
        trajs = [trajs]
    n_bins = len(edges) - 1
    return [np.clip(np.digitize(np.ravel(t), edges) - 1, 0, n_bins - 1).astype(np.int32) for t in trajs]


def estimate_msm(dtrajs: list[np.ndarray], lag: int, reversible: bool = True):
    """Maximum-likelihood MSM (deeptime) on the largest connected set, at ``lag`` frames."""
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    counts = TransitionCountEstimator(lag, "sliding").fit_fetch(dtrajs).submodel_largest()
    return MaximumLikelihoodMSM(reversible=reversible).fit_fetch(counts)


def count_matrix(dtrajs, lag: int, n_states: int) -> np.ndarray:
    """Transition counts ``C[i, j]`` of ``i`` at ``t`` -> ``j`` at ``t + lag``, every ``t`` (sliding window).

    deeptime's ``TransitionCountEstimator(lag, "sliding")``; labels outside ``[0, n_states)`` (e.g. -1,
    frames outside every state) count no transition, and trajectories not longer than ``lag`` none.

    Parameters
    ----------
    dtrajs : list of np.ndarray (n_frames_i,) int
    lag : int
        Frames.
    n_states : int

    Returns
    -------
    np.ndarray (n_states, n_states), float64
    """
    from deeptime.markov import TransitionCountEstimator

    n = int(n_states)
    d = [np.where((x >= 0) & (x < n), x, n).astype(np.int32) for x in map(np.asarray, dtrajs) if len(x) > lag]
    if not d:
        return np.zeros((n, n))
    return TransitionCountEstimator(int(lag), "sliding", n_states=n + 1).fit_fetch(d).count_matrix[:n, :n]


def msm_timescales(dtrajs: list[np.ndarray], lag: int, k: int = 3) -> np.ndarray:
    """Implied timescales (frames) of the ``k`` slowest processes of an MSM at ``lag`` frames."""
    return np.asarray(estimate_msm(dtrajs, lag).timescales(k))


# ------------------------------------------------------------------------------ MSM baseline
def _assign(centers: np.ndarray, trajs: list[np.ndarray]) -> list[np.ndarray]:
    """Nearest-centre labels (deeptime), int32, of each trajectory (n_frames_i, m)."""
    from deeptime.clustering import KMeansModel

    assign = KMeansModel(np.ascontiguousarray(centers), metric="euclidean")
    return [np.asarray(assign.transform(np.ascontiguousarray(x)), dtype=np.int32) for x in trajs]


class MSMBaseline(Estimator):
    """A Markov state model of a latent space, sampled into continuous latent trajectories.

    The baseline the LSS is compared with: the latent trajectories are clustered (deeptime k-means or
    regular space), a maximum-likelihood MSM is estimated at ``lag`` frames (deeptime, largest
    connected set), a discrete trajectory is sampled from it, and each sampled state is mapped back
    to a latent point by drawing, uniformly at random, a training frame assigned to that state. The
    sampled trajectory therefore has one point per ``lag`` frames, like the LSS propagator.

    Parameters
    ----------
    n_states : int
        Number of clusters (k-means) or the maximum number of centres (regular space).
    lag : int
        MSM lag time in frames of the training trajectories.
    clustering : {"kmeans", "regspace"}
    dmin : float, optional
        Minimum centre distance of regular-space clustering, in latent units (needed for "regspace").
    reversible : bool
        Reversible (detailed-balance) MSM estimate.
    max_iter : int
        k-means iterations.
    stride : int
        Cluster every ``stride``-th frame (all frames are assigned afterwards). Measured on the loaded
        2-core machine, 100 clusters of 240,000 3-D frames: 17 s at stride 1, 1.7 s at stride 10.
    random_state : int, optional
        Seed of the k-means initialisation.

    Attributes
    ----------
    cluster_centers_ : np.ndarray (n_clusters, m)
    active_set_ : np.ndarray (n_active,) int
        Cluster labels of the MSM states (the largest connected set).
    transition_matrix_ : np.ndarray (n_active, n_active)
    stationary_distribution_ : np.ndarray (n_active,)
    msm_ : deeptime.markov.msm.MarkovStateModel
    dtrajs_ : list of np.ndarray (n_frames_i,) int
        Cluster labels of the training frames.
    n_components_ : int
        Dimension ``m`` of the latent space it was fitted on.
    fit_time_s_ : float
        Wall time of :meth:`fit`, seconds.
    """

    _format = "lss.msm_baseline/2"
    _fitted_attr = "transition_matrix_"

    def __init__(self, n_states: int = 100, lag: int = 1, clustering: str = "kmeans", dmin: float | None = None,
                 reversible: bool = True, max_iter: int = 100, stride: int = 1, random_state: int | None = None):
        self._store_params(locals())

    def fit(self, latent_trajs) -> MSMBaseline:
        """Cluster the latent trajectories and estimate the MSM.

        Parameters
        ----------
        latent_trajs : array (n_frames, m), a list of them, or a stack (n_traj, n_frames, m)

        Returns
        -------
        self
        """
        from deeptime.clustering import KMeans, RegularSpace

        t_start = time.perf_counter()
        tr = _mode_list(latent_trajs, "latent_trajs", min_len=2)
        lag = check_lag(self.lag, tr, "lag")
        if int(self.n_states) != self.n_states or self.n_states < 2:
            raise ValueError(f"n_states must be an integer >= 2, got {self.n_states!r}")
        if int(self.stride) != self.stride or self.stride < 1:
            raise ValueError(f"stride must be a positive integer, got {self.stride!r}")
        allx = np.concatenate(tr)
        data = np.ascontiguousarray(allx[::int(self.stride)])
        if self.clustering == "kmeans":
            if len(data) < self.n_states:
                raise ValueError(f"n_states={self.n_states} exceeds the {len(data)} frames to cluster")
            seed = int(np.random.default_rng(self.random_state).integers(2**31 - 1))
            km = KMeans(n_clusters=int(self.n_states), max_iter=int(self.max_iter), init_strategy="kmeans++",
                        fixed_seed=seed, n_jobs=1).fit_fetch(data)
            centers = km.cluster_centers
        elif self.clustering == "regspace":
            if self.dmin is None or not self.dmin > 0:
                raise ValueError(f"dmin must be a positive distance for clustering='regspace', got {self.dmin!r}")
            centers = RegularSpace(dmin=float(self.dmin), max_centers=int(self.n_states), n_jobs=1) \
                .fit_fetch(data).cluster_centers
        else:
            raise ValueError(f"clustering must be 'kmeans' or 'regspace', got {self.clustering!r}")
        centers = np.asarray(centers, dtype=np.float64)
        dtrajs = _assign(centers, tr)
        msm = estimate_msm(dtrajs, lag, reversible=self.reversible)
        # clustering and estimation succeeded: only now the fitted attributes
        self.cluster_centers_ = centers
        self.n_components_ = int(centers.shape[1])
        self.dtrajs_ = dtrajs
        self._set_model(np.asarray(msm.count_model.state_symbols, dtype=int),
                        np.asarray(msm.transition_matrix, dtype=np.float64),
                        np.asarray(msm.stationary_distribution, dtype=np.float64),
                        allx.astype(np.float32), np.concatenate(dtrajs))
        self.fit_time_s_ = time.perf_counter() - t_start
        return self

    def _set_model(self, active_set, T, pi, frames, labels):
        from deeptime.markov.msm import MarkovStateModel

        self.active_set_ = active_set
        self.transition_matrix_ = T
        self.stationary_distribution_ = pi
        self.msm_ = MarkovStateModel(T, stationary_distribution=pi, lagtime=int(self.lag))
        # training frames grouped by MSM state, for mapping sampled states back to latent points
        index = np.full(len(self.cluster_centers_), -1)
        index[active_set] = np.arange(len(active_set))
        state = index[labels]
        keep = state >= 0
        order = np.argsort(state[keep], kind="stable")
        self._frames = frames
        self._labels = labels
        self._frame_index = np.nonzero(keep)[0][order]
        self._state_start = np.searchsorted(state[keep][order], np.arange(len(active_set) + 1))

    def transform(self, latent):
        """Cluster labels (nearest centre, deeptime) of latent frames.

        Parameters
        ----------
        latent : array (n_frames, m) or list of them, or a stack

        Returns
        -------
        list of np.ndarray (n_frames_i,) int32, or one array for an array input
        """
        if not hasattr(self, "cluster_centers_"):
            raise RuntimeError("this MSMBaseline is not fitted yet; call fit() or load()")
        single = (isinstance(latent, np.ndarray) or hasattr(latent, "shape")) and np.ndim(latent) == 2
        tr = _mode_list(latent, "latent")
        if tr[0].shape[1] != self.cluster_centers_.shape[1]:
            raise ValueError(f"latent has {tr[0].shape[1]} dimensions, the model {self.cluster_centers_.shape[1]}")
        out = _assign(self.cluster_centers_, tr)
        return out[0] if single else out

    def timescales(self, k: int | None = None) -> np.ndarray:
        """Implied timescales ``-lag / ln|lambda_i|`` of the ``k`` slowest processes, in frames."""
        self._check_fitted()
        return np.asarray(self.msm_.timescales(k), dtype=np.float64)

    def metastable_sets(self, n_sets: int) -> list[np.ndarray]:
        """PCCA+ metastable sets (deeptime) as lists of cluster labels, e.g. for :func:`chapman_kolmogorov`."""
        self._check_fitted()
        assign = np.asarray(self.msm_.pcca(int(n_sets)).assignments)
        return [self.active_set_[assign == s] for s in range(int(n_sets))]

    def sample(self, n_steps: int, start_state: int | None = None, random_state=None,
               return_states: bool = False, return_index: bool = False):
        """Sample a latent trajectory of ``n_steps`` MSM steps (``lag`` frames each).

        Parameters
        ----------
        n_steps : int
            Steps after the start; the trajectory has ``n_steps + 1`` points.
        start_state : int, optional
            Cluster label to start in (must be in ``active_set_``); default drawn from the
            stationary distribution.
        random_state : int or numpy.random.Generator, optional
        return_states : bool
            Also return the cluster labels of the sampled steps.
        return_index : bool
            Also return which training frame each step is: its index into the training frames laid
            end to end in the order given to :meth:`fit`. Anything known per training frame (its
            structure, Q, Rg) follows the sampled trajectory through it.

        Returns
        -------
        latent : np.ndarray (n_steps + 1, m), float32
            A training frame drawn uniformly from the frames of each sampled state.
        states : np.ndarray (n_steps + 1,) int, only if ``return_states``
        index : np.ndarray (n_steps + 1,) int64, only if ``return_index``
        """
        self._check_fitted()
        if int(n_steps) != n_steps or n_steps < 0:
            raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
        rng = np.random.default_rng(random_state)
        if start_state is None:
            start = int(rng.choice(len(self.active_set_), p=self.stationary_distribution_))
        else:
            hit = np.nonzero(self.active_set_ == int(start_state))[0]
            if not len(hit):
                raise ValueError(f"start_state={start_state} is not in the MSM's active set")
            start = int(hit[0])
        s = np.asarray(self.msm_.simulate(int(n_steps) + 1, start=start, seed=int(rng.integers(2**31 - 1))))
        lo, hi = self._state_start[s], self._state_start[s + 1]
        pick = lo + np.floor(rng.random(len(s)) * (hi - lo)).astype(int)
        index = self._frame_index[pick].astype(np.int64)
        latent = self._frames[index].copy()
        out = (latent,) + ((self.active_set_[s],) if return_states else ()) + ((index,) if return_index else ())
        return out if len(out) > 1 else latent

    # ---------------------------------------------------------------------------- persistence
    def state(self) -> dict:
        """Everything needed to rebuild the fitted baseline (centres, MSM, training frames)."""
        self._check_fitted()
        return {"params": self.get_params(), "cluster_centers": self.cluster_centers_,
                "active_set": self.active_set_, "transition_matrix": self.transition_matrix_,
                "stationary_distribution": self.stationary_distribution_, "frames": self._frames,
                "labels": self._labels, "lengths": np.array([len(d) for d in self.dtrajs_])}

    @classmethod
    def from_state(cls, state: dict) -> MSMBaseline:
        est = cls._from_params(state["params"])
        est.cluster_centers_ = np.asarray(state["cluster_centers"])
        est.n_components_ = int(est.cluster_centers_.shape[1])
        labels = np.asarray(state["labels"])
        est.dtrajs_ = np.split(labels, np.cumsum(state["lengths"])[:-1])
        est._set_model(np.asarray(state["active_set"]), np.asarray(state["transition_matrix"]),
                       np.asarray(state["stationary_distribution"]), np.asarray(state["frames"]), labels)
        return est


def _set_transition_probabilities(dtrajs, lag: int, set_of_label: np.ndarray, n_sets: int):
    """Row-normalised counts of (set at t) -> (set at t + lag) over all trajectories; and row counts."""
    n = len(set_of_label)
    sets = [np.where((d >= 0) & (d < n), set_of_label[np.clip(d, 0, n - 1)], -1)
            for d in (np.asarray(d, dtype=int) for d in dtrajs)]
    C = count_matrix(sets, lag, n_sets)
    rows = C.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        P = C / rows[:, None]
    return P, rows


def chapman_kolmogorov(dtrajs_ref, dtrajs_other=None, lag: int = 1, n_steps: int = 5,
                       other_lag: int | None = None, sets=None, reversible: bool = True,
                       n_blocks: int | None = None) -> dict:
    """Chapman-Kolmogorov test: an MSM of the reference against empirical ``k lag`` transitions.

    An MSM ``T`` is estimated from the reference discrete trajectories at ``lag`` (deeptime, largest
    connected set). For ``k = 1 ... n_steps`` its prediction ``T^k`` of the probability to be in set
    ``B`` at ``k lag`` after starting in set ``A`` (starts weighted by the stationary distribution
    inside ``A``) is compared with the empirical probabilities (row-normalised transition counts at
    ``k lag``) of the reference itself and of other trajectories on the same discretisation, e.g.
    the LSS latent trajectory assigned with :meth:`MSMBaseline.transform`.

    Parameters
    ----------
    dtrajs_ref : list of np.ndarray (n_frames_i,) int
        Reference (MD) cluster labels.
    dtrajs_other : list of np.ndarray (n_frames_i,) int, optional
        Labels of the trajectories to test (LSS, MSM baseline...).
    lag : int
        MSM lag in frames of the reference.
    n_steps : int
        Largest multiple ``k`` of the lag.
    other_lag : int, optional
        Frames of ``dtrajs_other`` per ``lag`` of the reference (default ``lag``; 1 for LSS
        trajectories whose steps are the propagator lag).
    sets : list of arrays of int, optional
        Sets of labels to lump, e.g. :meth:`MSMBaseline.metastable_sets`; default every active
        state on its own. Labels outside the MSM's active set are ignored.
    reversible : bool
    n_blocks : int, optional
        Contiguous blocks of the reference (:func:`lss.stats.split_blocks`) for the standard error of
        its empirical probabilities: ``reference_err``, ``std(block estimates) / sqrt(n_blocks)``.

    Returns
    -------
    dict with
        ``k`` (n_steps,); ``lag_frames`` (n_steps,) reference frames;
        ``predicted``, ``reference``, ``other`` : np.ndarray (n_steps, n_sets, n_sets)
        (``other`` is None without ``dtrajs_other``; NaN rows where a set was never left from);
        ``rmse_reference``, ``rmse_other`` : (n_steps,) RMS difference from ``predicted`` over all
        finite entries; ``sets`` the sets used; ``populations`` (n_sets,) the fraction of the
        reference's frames in each set; ``reference_err`` and ``other_err`` (n_steps, n_sets,
        n_sets), block standard errors with ``n_blocks`` (else None).
    """
    ref = [np.asarray(d, dtype=int) for d in dtrajs_ref]
    if not ref:
        raise ValueError("dtrajs_ref is empty")
    if int(lag) != lag or lag < 1:
        raise ValueError(f"lag must be a positive integer number of frames, got {lag!r}")
    if int(n_steps) != n_steps or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    other_lag = int(lag if other_lag is None else other_lag)
    if other_lag < 1:
        raise ValueError(f"other_lag must be a positive integer, got {other_lag!r}")
    msm = estimate_msm(ref, int(lag), reversible=reversible)
    active = np.asarray(msm.count_model.state_symbols, dtype=int)
    T = np.asarray(msm.transition_matrix, dtype=np.float64)
    pi = np.asarray(msm.stationary_distribution, dtype=np.float64)
    if sets is None:
        sets = [np.array([s]) for s in active]
    n_labels = max(int(active.max()), max((int(np.max(s)) for s in sets if len(s)), default=0)) + 1
    in_active = np.zeros(n_labels, dtype=bool)
    in_active[active] = True
    set_of_label = np.full(n_labels, -1)
    for i, s in enumerate(sets):
        s = np.asarray(s, dtype=int)
        if np.any(set_of_label[s] >= 0):
            raise ValueError("sets must not overlap")
        set_of_label[s] = i
    set_of_label[~in_active] = -1
    n_sets = len(sets)
    # membership matrix of active states in sets: M (n_active, n_sets)
    M = np.zeros((len(active), n_sets))
    for j, lab in enumerate(active):
        if set_of_label[lab] >= 0:
            M[j, set_of_label[lab]] = 1.0
    w = pi[:, None] * M  # stationary weight of each state in its set
    wsum = w.sum(0)
    pred, emp_ref, emp_other = [], [], []
    Tk = np.eye(len(T))
    for k in range(1, int(n_steps) + 1):
        Tk = Tk @ T
        with np.errstate(invalid="ignore", divide="ignore"):
            pred.append((w.T @ Tk @ M) / wsum[:, None])
        emp_ref.append(_set_transition_probabilities(ref, k * int(lag), set_of_label, n_sets)[0])
        if dtrajs_other is not None:
            emp_other.append(_set_transition_probabilities(dtrajs_other, k * other_lag, set_of_label, n_sets)[0])
    pred, emp_ref = np.array(pred), np.array(emp_ref)
    emp_other = np.array(emp_other) if dtrajs_other is not None else None
    ref_err = other_err = None
    if n_blocks is not None:
        from .stats import split_blocks

        per_block = np.array([[_set_transition_probabilities(b, k * int(lag), set_of_label, n_sets)[0]
                               for k in range(1, int(n_steps) + 1)] for b in split_blocks(ref, n_blocks)])
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref_err = np.nanstd(per_block, 0, ddof=1) / np.sqrt(len(per_block))
            if dtrajs_other is not None:
                per_block = np.array([[_set_transition_probabilities(b, k * other_lag, set_of_label, n_sets)[0]
                                       for k in range(1, int(n_steps) + 1)]
                                      for b in split_blocks([np.asarray(d) for d in dtrajs_other], n_blocks)])
                other_err = np.nanstd(per_block, 0, ddof=1) / np.sqrt(len(per_block))
    labels = np.concatenate(ref)
    ok = (labels >= 0) & (labels < len(set_of_label))
    in_set = set_of_label[np.clip(labels, 0, len(set_of_label) - 1)][ok]
    populations = np.bincount(in_set[in_set >= 0], minlength=n_sets) / max(len(labels), 1)

    def rms(e):
        d = e - pred
        return np.array([np.sqrt(np.nanmean(dk ** 2)) if np.isfinite(dk).any() else np.nan for dk in d])

    return {"k": np.arange(1, int(n_steps) + 1), "lag_frames": np.arange(1, int(n_steps) + 1) * int(lag),
            "predicted": pred, "reference": emp_ref, "other": emp_other,
            "rmse_reference": rms(emp_ref), "rmse_other": None if emp_other is None else rms(emp_other),
            "sets": [np.asarray(s) for s in sets], "populations": populations, "reference_err": ref_err,
            "other_err": other_err}


def ck_passes(ck: dict, which: str = "reference", n_se: float = 3.0, min_population: float = 0.02) -> bool:
    """Whether an ensemble follows the MSM's Chapman-Kolmogorov prediction within the MD's block error.

    Every transition probability out of a set holding at least ``min_population`` of the reference
    frames must lie within ``n_se`` standard errors of the prediction ``T^k``. The error is the MD's
    (``ck["reference_err"]``, from blocks of the MD), which is also the error of the prediction
    estimated from it; for ``which="other"`` the other ensemble's own block error is added in
    quadrature (``ck["other_err"]``). With ``which="reference"`` this asks whether the MSM is a
    Markovian model of the MD at all; with ``which="other"`` whether the LSS (or another ensemble)
    is as close to it as the statistics allow. ``n_se = 3``: with tens of probabilities tested at
    once, a 2-sigma band would fail an exact model most of the time.

    Parameters
    ----------
    ck : dict
        From :func:`chapman_kolmogorov` with ``n_blocks``.
    which : {"reference", "other"}
    n_se, min_population : float

    Returns
    -------
    bool
    """
    if ck.get("reference_err") is None:
        raise ValueError("ck has no reference_err: call chapman_kolmogorov(..., n_blocks=5)")
    emp = ck[which]
    if emp is None:
        raise ValueError(f"ck has no {which!r} ensemble")
    rows = np.asarray(ck["populations"]) >= float(min_population)
    d = np.abs(emp - ck["predicted"])[:, rows]
    err2 = ck["reference_err"] ** 2
    if which == "other" and ck.get("other_err") is not None:
        err2 = err2 + ck["other_err"] ** 2
    err = np.sqrt(err2)[:, rows]
    ok = np.isfinite(d) & np.isfinite(err)
    return bool(np.all(d[ok] <= n_se * err[ok]))


def ck_max_deviation(ck: dict, min_population: float = 0.02) -> float:
    """Largest ``|P_other - P_predicted|`` of a CK test in block standard errors of the reference's probabilities,
    over the sets holding at least ``min_population`` (:func:`chapman_kolmogorov` with ``n_blocks``)."""
    big = ck["populations"] >= min_population
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.nanmax((np.abs(ck["other"] - ck["predicted"]) / ck["reference_err"])[:, big]))


def msm_timescales_vs_lag(dtrajs, lags, k: int = 3, n_blocks: int | None = 5) -> dict:
    """Implied timescales of MSMs (deeptime, reversible MLE) of one discretisation at several lags.

    Parameters
    ----------
    dtrajs : list of np.ndarray (n_frames_i,) int
    lags : sequence of int, frames
    k : int
        Slowest timescales reported.
    n_blocks : int or None
        Contiguous blocks for the errors (one MSM per block; NaN where fewer than two blocks give one).

    Returns
    -------
    dict with ``lags`` (n_lags,), ``timescales``, ``timescales_spread`` and ``timescales_err``
    (n_lags, k), frames (NaN where not estimable; ``err = spread / sqrt(n_blocks)``).
    """
    from .stats import split_blocks

    def at_lags(d):                    # (n_lags, k) frames; NaN where too short or not estimable
        out = np.full((len(lags), k), np.nan)
        for i, lag in enumerate(lags):
            d_ = [t for t in d if len(t) > lag]
            if not d_:
                continue
            try:
                t = msm_timescales(d_, lag, k)
            except (ValueError, RuntimeError):   # a block too short for an MSM leaves NaN
                continue
            out[i, :len(t)] = t
        return out

    dtrajs = [np.asarray(d) for d in dtrajs]
    lags = [int(g) for g in lags]
    ts = at_lags(dtrajs)
    spread = np.full_like(ts, np.nan)
    if n_blocks is not None:
        per = np.array([at_lags(b) for b in split_blocks(dtrajs, n_blocks)])
        enough = np.isfinite(per).sum(0) >= 2
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            spread = np.where(enough, np.nanstd(per, 0, ddof=1), np.nan)
    return {"lags": np.asarray(lags), "timescales": ts, "timescales_spread": spread,
            "timescales_err": spread / np.sqrt(n_blocks if n_blocks is not None else 1)}


def choose_ck_model(latent_trajs, lags, n_states: int = 50, n_sets: int = 2, n_steps: int = 5,
                    n_blocks: int = 5, min_population: float = 0.02, random_state=None) -> tuple:
    """The MSM of the Chapman-Kolmogorov test: the shortest lag at which MD passes its own test.

    A CK test of the LSS is only informative against a model that the MD itself obeys. For each lag
    in ``lags`` (ascending), an :class:`MSMBaseline` of ``n_states`` k-means states is fitted to the
    MD latent trajectories, lumped into ``n_sets`` PCCA+ sets, and tested against the MD
    (:func:`ck_passes`, MD's block error). The first lag that passes is chosen; if none does, the
    one with the smallest worst-case deviation in units of the block error.

    Parameters
    ----------
    latent_trajs : list of np.ndarray (n_frames_i, m)
        MD in the latent space.
    lags : sequence of int
        Candidate MSM lags, frames (multiples of the propagator lag, so that the LSS can be tested).
    n_states, n_sets, n_steps, n_blocks, min_population
        See :class:`MSMBaseline`, :func:`chapman_kolmogorov`, :func:`ck_passes`.
    random_state : int, optional

    Returns
    -------
    (msm, sets, ck, tries) : the chosen MSMBaseline, its PCCA+ sets, its CK result on the MD, and a
    list of dicts (``lag``, ``passes``, ``worst`` = max deviation / block error) for every lag tried.
    """
    tries, best = [], None
    for lag in sorted(int(g) for g in lags):
        msm = MSMBaseline(n_states=n_states, lag=lag, random_state=random_state).fit(latent_trajs)
        sets = msm.metastable_sets(n_sets)
        ck = chapman_kolmogorov(msm.dtrajs_, lag=lag, n_steps=n_steps, sets=sets, n_blocks=n_blocks)
        rows = ck["populations"] >= min_population
        with np.errstate(invalid="ignore", divide="ignore"):
            z = (np.abs(ck["reference"] - ck["predicted"]) / ck["reference_err"])[:, rows]
        worst = float(np.nanmax(z)) if np.isfinite(z).any() else float("inf")
        passes = ck_passes(ck, "reference", min_population=min_population)
        tries.append({"lag": lag, "passes": passes, "worst": worst})
        if best is None or (passes and not best[4]) or (passes == best[4] and not passes and worst < best[5]):
            best = (msm, sets, ck, lag, passes, worst)
        if passes:
            break
    return best[0], best[1], best[2], tries



def transfer_labels(clusters_md, labels_md, clusters_other, n_clusters: int, purity: float = 0.8) -> list[np.ndarray]:
    """Core labels for frames known only by their cluster (e.g. latent points the decoder never saw).

    Each cluster takes the core label most of its MD frames carry, when at least ``purity`` of its
    core-labelled MD frames carry it, and -1 (between cores) otherwise; frames of another ensemble
    take the label of their cluster. A decoder-independent assignment of the LSS's latent
    trajectories to the structural states of the MD.

    Parameters
    ----------
    clusters_md : list of np.ndarray (n_frames_i,), int
        Cluster of every MD frame (e.g. ``MSMBaseline.transform``).
    labels_md : list of np.ndarray (n_frames_i,), int
        Core label of every MD frame (-1 between cores), same shapes.
    clusters_other : list of np.ndarray, int
        Clusters of the other ensemble's frames.
    n_clusters : int
    purity : float
        Smallest fraction of a cluster's labelled MD frames that must agree.

    Returns
    -------
    list of np.ndarray, int8: the labels of ``clusters_other``.
    """
    c = np.concatenate([np.asarray(x, dtype=np.int64).ravel() for x in clusters_md])
    lab = np.concatenate([np.asarray(x, dtype=np.int64).ravel() for x in labels_md])
    if len(c) != len(lab):
        raise ValueError(f"clusters_md and labels_md hold {len(c)} and {len(lab)} frames")
    if not 0.5 <= purity <= 1:
        raise ValueError(f"purity must lie in [0.5, 1], got {purity!r}")
    keep = lab >= 0
    n_lab = int(lab.max()) + 1 if keep.any() else 1
    counts = np.zeros((int(n_clusters), n_lab))
    np.add.at(counts, (c[keep], lab[keep]), 1)
    tot = counts.sum(1)
    best = counts.argmax(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = counts.max(1) >= purity * tot
    table = np.where(ok & (tot > 0), best, -1).astype(np.int8)
    return [table[np.asarray(x, dtype=np.int64)] for x in clusters_other]
