"""Markov state models on binned or clustered trajectories (deeptime), for baselines and checks."""
from __future__ import annotations

import numpy as np


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


def msm_timescales(dtrajs: list[np.ndarray], lag: int, k: int = 3) -> np.ndarray:
    """Implied timescales (frames) of the ``k`` slowest processes of an MSM at ``lag`` frames."""
    return np.asarray(estimate_msm(dtrajs, lag).timescales(k))


def cluster(trajs, n_states: int, random_state: int = 0, max_frames: int = 200_000):
    """k-means (deeptime) on latent trajectories; returns the fitted model (``.transform(X) -> labels``).

    Parameters
    ----------
    trajs : list of (n_frames, m) arrays
    n_states : int
        Number of cluster centres.
    max_frames : int
        At most this many frames (evenly strided) are used to place the centres.
    """
    from deeptime.clustering import KMeans

    X = np.concatenate([np.asarray(t, dtype=np.float64) for t in trajs])
    stride = max(1, len(X) // max_frames)
    km = KMeans(n_clusters=n_states, init_strategy="kmeans++", max_iter=100, fixed_seed=int(random_state) % 2**31,
                n_jobs=1)
    return km.fit(X[::stride]).fetch_model()


def empirical_transition_matrices(dtrajs: list[np.ndarray], lag: int, ks, n_states: int) -> np.ndarray:
    """Row-normalised transition counts at lags ``k * lag`` frames, for each ``k`` in ``ks``.

    The model-free side of a Chapman-Kolmogorov test: compare the matrices of MD at lag ``k tau``
    with those of a propagator run for ``k`` steps (``lag=1`` in its own steps).

    Returns
    -------
    P : np.ndarray, shape (len(ks), n_states, n_states); rows of unvisited states are NaN
    """
    out = np.full((len(ks), n_states, n_states), np.nan)
    for i, k in enumerate(ks):
        C = np.zeros((n_states, n_states))
        L = int(k * lag)
        for d in dtrajs:
            if len(d) > L:
                np.add.at(C, (d[:-L], d[L:]), 1)
        rows = C.sum(1)
        ok = rows > 0
        out[i, ok] = C[ok] / rows[ok, None]
    return out
