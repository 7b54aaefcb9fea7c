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

