"""Kinetics of MD and LSS trajectories alike: autocorrelations, relaxation times, transitions.

Time correlations are measured inside each trajectory, never across the join of two; lags are in
frames and times in the unit of ``frame_time`` (ps, ns or model time, whatever the caller uses).
Errors come from contiguous blocks (:mod:`lss.stats`).
"""
from __future__ import annotations

import itertools
import math
import warnings

import numpy as np

from .stats import _coord_list, _mode_list, split_blocks
from .utils import check_lag

__all__ = ["autocorrelation", "acf_noise", "relaxation_time", "relaxation_times", "relaxation_table", "converged_lag",
           "core_states", "count_transitions", "transitions_per_frames", "transition_rate", "cost_per_time",
           "first_passage_times", "mean_first_passage_times", "milestone", "state_populations",
           "mfpt_matrix", "state_kinetics"]


# -------------------------------------------------------------------------------------- kinetics
def _acf_sums(trajs: list[np.ndarray], max_lag: int, mean: np.ndarray):
    """Sum over trajectories and t of (x_t - mean)(x_{t+lag} - mean) and the pair counts, per lag."""
    m = trajs[0].shape[1]
    sums = np.zeros((max_lag + 1, m))
    counts = np.zeros(max_lag + 1)
    for x in trajs:
        n = len(x)
        L = min(max_lag, n - 1)
        y = x - mean
        nfft = 1 << int(math.ceil(math.log2(n + L + 1)))
        f = np.fft.rfft(y, n=nfft, axis=0)
        c = np.fft.irfft(f * np.conj(f), n=nfft, axis=0)[:L + 1]
        sums[:L + 1] += c
        counts[:L + 1] += n - np.arange(L + 1)
    return sums, counts


def autocorrelation(x, max_lag: int):
    """Normalised autocorrelation ``C(lag) = <dx(t) dx(t+lag)> / <dx dx>`` of each mode.

    ``dx = x - mean`` with the mean over all frames of all trajectories; averages run over all pairs
    ``(t, t + lag)`` inside each trajectory (pairs never join two trajectories), so ``C(0) = 1``.
    This is the paper's ``C_i(tau) = <psi_i(t + tau) psi_i(t)> / <psi_i(t) psi_i(t)>`` for mean-free
    modes. Computed by FFT.

    Parameters
    ----------
    x : array (n_frames,) or (n_frames, m), a list of them, or a stack (n_traj, n_frames, m)
        Trajectories of ``m`` modes (e.g. SRV coordinates of MD, or MDN output of the LSS).
    max_lag : int
        Largest lag, in frames; shorter than the longest trajectory.

    Returns
    -------
    np.ndarray, shape (max_lag + 1,) for 1-D input or (max_lag + 1, m)
    """
    one_d = (isinstance(x, np.ndarray) or hasattr(x, "shape")) and np.ndim(x) == 1
    if not one_d and isinstance(x, (list, tuple)) and len(x) and all(np.ndim(t) == 1 for t in x):
        one_d = True
    trajs = _mode_list(x, "x")
    max_lag = check_lag(max_lag, trajs, "max_lag")
    mean = np.concatenate(trajs).mean(0)
    sums, counts = _acf_sums(trajs, max_lag, mean)
    c = sums / counts[:, None]
    if np.any(c[0] <= 0):
        raise ValueError(f"x: mode(s) {np.nonzero(c[0] <= 0)[0].tolist()} are constant; no autocorrelation")
    c = c / c[0]
    return c[:, 0] if one_d else c


def relaxation_time(acf, dt: float = 1.0, cutoff: float = math.exp(-2), fit_range=None,
                    amplitude: bool = False, noise=None, min_points: int | None = None) -> float:
    """Relaxation time ``t`` of a fit ``C(lag) ~ exp(-lag dt / t)`` to an autocorrelation function.

    The fit is least squares on the values of ``C`` (not of ``ln C``, whose noise grows as ``C``
    decays) over the lags ``0 ... L - 1``, with ``L`` the first lag where ``C < cutoff`` (default
    ``e^-2``: two relaxation times of a single exponential, beyond which the estimate is mostly noise).
    At least the first two lags (three with ``amplitude``) are always used; if ``C`` never drops below
    ``cutoff``, all lags are used and a ``RuntimeWarning`` says that ``max_lag`` is too short.

    Parameters
    ----------
    acf : array (n_lags,)
        Normalised autocorrelation at lags ``0, 1, ...`` frames (:func:`autocorrelation`).
    dt : float
        Time between frames; the result is in its unit (``dt=1``: frames).
    cutoff : float
        See above; in (0, 1).
    fit_range : (int, int), optional
        Explicit ``[start, stop)`` range of lag indices to fit instead of the cutoff rule (e.g. start
        beyond fast initial decays).
    amplitude : bool
        Fit ``A exp(-lag / t)`` with a free amplitude ``A`` (default: the paper's ``exp(-lag / t)``).
    noise : float or array (n_lags,), optional
        Noise level of ``C`` at each lag (e.g. :func:`acf_noise`): the fit also stops at the first lag
        where ``C`` falls below it, so that it never fits noise.
    min_points : int, optional
        Fewest lags the fit must use. When the decay is too fast for the grid (fewer lags above
        ``cutoff`` and ``noise``), the process is not resolved at this sampling and NaN is returned
        instead of a number (default: no such check).

    Returns
    -------
    float
        ``t`` in the unit of ``dt``; NaN when fewer than ``min_points`` lags are usable.
    """
    from scipy.optimize import curve_fit

    c = np.asarray(acf, dtype=np.float64)
    if c.ndim != 1 or len(c) < 2 or not np.all(np.isfinite(c)):
        raise ValueError("acf must be a finite 1-D array of at least 2 lags")
    if not 0 < cutoff < 1:
        raise ValueError(f"cutoff must lie in (0, 1), got {cutoff!r}")
    if not dt > 0:
        raise ValueError(f"dt must be positive, got {dt!r}")
    need = 3 if amplitude else 2
    if fit_range is None:
        floor = np.full(len(c), cutoff) if noise is None else np.maximum(cutoff, np.broadcast_to(noise, c.shape))
        below = np.nonzero(c < floor)[0]
        if len(below) == 0:
            warnings.warn(f"the autocorrelation stays above {cutoff:.3g} up to the largest lag "
                          f"({len(c) - 1}); the fitted time is uncertain: use a longer max_lag",
                          RuntimeWarning, stacklevel=2)
            start, stop = 0, len(c)
        else:
            if min_points is not None and int(below[0]) < int(min_points):
                return float("nan")
            start, stop = 0, max(int(below[0]), need)
    else:
        start, stop = (int(v) for v in fit_range)
        if not 0 <= start < stop <= len(c) or stop - start < need:
            raise ValueError(f"fit_range must select at least {need} lags inside [0, {len(c)}), got {fit_range!r}")
    stop = min(stop, len(c))
    lags = np.arange(start, stop, dtype=np.float64)
    y = c[start:stop]
    # initial guess from the last positive point
    pos = y > 0
    guess = -lags[pos][-1] / math.log(min(y[pos][-1], 0.999)) if pos.any() and lags[pos][-1] > 0 else 1.0
    guess = max(guess, 1e-3)
    if amplitude:
        p, _ = curve_fit(lambda s, a, t: a * np.exp(-s / t), lags, y, p0=(1.0, guess),
                         bounds=([0.0, 1e-6], [np.inf, np.inf]))
        t = p[1]
    else:
        p, _ = curve_fit(lambda s, t: np.exp(-s / t), lags, y, p0=(guess,), bounds=([1e-6], [np.inf]))
        t = p[0]
    return float(t * dt)


def relaxation_times(trajs, max_lag: int, frame_time: float = 1.0, n_blocks: int | None = 5,
                     return_blocks: bool = False, lag_step: int = 1, with_noise: bool = False, **fit_kw):
    """Relaxation times of each mode from exponential fits to its autocorrelation (paper Table 1).

    ``t_i`` is fitted (:func:`relaxation_time`) to the autocorrelation of mode ``i`` over all the
    data; its standard error comes from the ``n_blocks`` contiguous blocks of :func:`split_blocks`
    (each block's own autocorrelation and fit): ``std(t_i^k, ddof=1) / sqrt(n_blocks)``.

    Parameters
    ----------
    trajs : array (n_frames, m), a list of them, or a stack (n_traj, n_frames, m)
        MD projected by the SRV, or the LSS latent trajectory (1-D arrays are one mode).
    max_lag : int
        Largest lag of the autocorrelation, in frames; each block must be longer.
    frame_time : float
        Time between frames (ps, ns, ...); ``t`` is in this unit. For the LSS, whose steps are the
        propagator lag, this is ``lag * MD frame time``.
    n_blocks : int or None
        Blocks for the standard error (paper: 5); None skips it (``t_err`` is NaN).
    return_blocks : bool
        Also return the block estimates.
    lag_step : int
        Fit the autocorrelation only at the lags ``0, lag_step, 2 lag_step, ... <= max_lag`` frames
        (it is still averaged over all time origins). With ``lag_step`` equal to the propagator lag,
        MD is fitted on the same time grid as the LSS, whose frames are one lag apart, so that fast
        initial decays that the LSS cannot resolve weigh the same in both fits. ``fit_range`` then
        counts points of that grid.
    with_noise : bool
        Stop each fit where ``C`` reaches three times its statistical noise (:func:`acf_noise`).
    **fit_kw
        Passed to :func:`relaxation_time` (``cutoff``, ``fit_range``, ``amplitude``, ``min_points``).
        With ``min_points``, a mode that decays within fewer grid points is NaN (not resolved).

    Returns
    -------
    t : np.ndarray (m,)
    t_err : np.ndarray (m,)
    t_blocks : np.ndarray (n_blocks, m), only if ``return_blocks``
    """
    tr = _mode_list(trajs, "trajs")
    if not frame_time > 0:
        raise ValueError(f"frame_time must be positive, got {frame_time!r}")
    if int(lag_step) != lag_step or lag_step < 1 or lag_step > max_lag:
        raise ValueError(f"lag_step must be an integer in [1, max_lag={max_lag}], got {lag_step!r}")
    lag_step = int(lag_step)

    def fit_all(parts):
        c = autocorrelation(parts, max_lag)
        noise = acf_noise(c, sum(len(p) for p in parts))[::lag_step] if with_noise else None
        c = c[::lag_step]
        return np.array([relaxation_time(c[:, i], frame_time * lag_step,
                                         noise=None if noise is None else noise[:, i], **fit_kw)
                         for i in range(c.shape[1])])

    t = fit_all(tr)
    m = len(t)
    if n_blocks is None:
        tk = np.full((0, m), np.nan)
        err = np.full(m, np.nan)
    else:
        blocks = split_blocks(tr, n_blocks)
        if any(max(len(p) for p in b) <= max_lag for b in blocks):
            raise ValueError(f"max_lag={max_lag} frames is not shorter than the longest piece of every "
                             f"one of the {n_blocks} blocks; use fewer blocks or a shorter max_lag")
        tk = np.array([fit_all(b) for b in blocks])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: unresolved modes
            err = np.nanstd(tk, 0, ddof=1) / math.sqrt(len(tk))
    return (t, err, tk) if return_blocks else (t, err)


def acf_noise(acf, n_frames: int, n_sigma: float = 3.0) -> np.ndarray:
    """Noise level of an estimated autocorrelation, ``n_sigma`` standard errors at each lag.

    Bartlett's approximation for the standard error of ``C(k)`` of a process whose true
    autocorrelation is ``C``: ``se(k) = sqrt((1 + 2 sum_{j=1}^{k-1} C(j)^2) / n_frames)``. Below this
    level a value of ``C`` is indistinguishable from zero, so a fit must stop there.

    Parameters
    ----------
    acf : array (n_lags,) or (n_lags, m)
        Normalised autocorrelation at lags ``0, 1, ...`` frames.
    n_frames : int
        Frames the autocorrelation was averaged over (all trajectories).
    n_sigma : float

    Returns
    -------
    np.ndarray, the shape of ``acf``
    """
    c = np.asarray(acf, dtype=np.float64)
    if not n_frames > 0:
        raise ValueError(f"n_frames must be positive, got {n_frames!r}")
    c2 = c ** 2
    cum = np.cumsum(c2, axis=0) - c2[:1]             # sum over j = 1 .. k
    cum = np.concatenate([np.zeros_like(cum[:1]), cum[:-1]])  # sum over j = 1 .. k - 1
    return n_sigma * np.sqrt((1.0 + 2.0 * cum) / float(n_frames))


def integrated_time(acf, dt: float, n_frames: int, n_sigma: float = 2.0) -> dict:
    """Integrated autocorrelation time of each mode, and how far its autocorrelation is from one exponential.

    ``t_int = dt (1/2 + sum_{k >= 1} C(k))`` (trapezoid rule), summed up to the first lag where ``C``
    falls below its noise (:func:`acf_noise`); for ``C(k) = exp(-k dt / t)`` it equals ``t`` to
    within ``dt^2 / (12 t)``. A slow tail that a single-exponential fit misses makes ``t_int`` larger than
    the fitted time.

    Parameters
    ----------
    acf : array (n_lags,) or (n_lags, m)
        Normalised autocorrelation at lags ``0, dt, 2 dt, ...``.
    dt : float
        Time between the lags.
    n_frames : int
        Frames the autocorrelation was averaged over (its noise).

    Returns
    -------
    dict: ``t_int`` (m,) in the unit of ``dt``; ``n_lags`` (m,) lags summed.
    """
    c = np.asarray(acf, dtype=np.float64)
    one_d = c.ndim == 1
    c = c[:, None] if one_d else c
    noise = acf_noise(c, n_frames, n_sigma)
    t_int, used = np.zeros(c.shape[1]), np.zeros(c.shape[1], dtype=int)
    for j in range(c.shape[1]):
        below = np.nonzero(c[1:, j] < noise[1:, j])[0]
        end = below[0] + 1 if len(below) else len(c)
        t_int[j] = dt * (0.5 + c[1:end, j].sum())
        used[j] = end - 1
    return {"t_int": t_int[0] if one_d else t_int, "n_lags": used[0] if one_d else used}


def relaxation_table(trajs, max_lag: int, frame_time: float = 1.0, lag_step: int = 1, n_blocks: int = 5,
                     min_points: int = 5, cutoff: float = math.exp(-2)) -> dict:
    """Relaxation time of each mode with its block errors and how well the sampling resolves it.

    The fit of :func:`relaxation_times` with two guards: it stops where the autocorrelation reaches
    its noise (:func:`acf_noise`), and it needs ``min_points`` points of the grid above both the cutoff
    and the noise. A process that decays within fewer grid points (faster than the grid resolves, e.g.
    faster than the propagator lag on the LSS's grid) is reported as not resolved, never as a number.

    Parameters
    ----------
    trajs : array (n_frames, m), a list of them, or a stack (n_traj, n_frames, m)
    max_lag : int
        Largest lag in frames of ``trajs``.
    frame_time : float
        Time between frames of ``trajs``; times are in its unit.
    lag_step : int
        Grid of the fit, in frames (e.g. the propagator lag for MD compared with the LSS).
    n_blocks : int
        Contiguous blocks for the errors.
    min_points : int
        Fewest grid points the fit must use.
    cutoff : float
        Lowest value of ``C`` used by the fit.

    Returns
    -------
    dict with, per mode (arrays of shape (m,)):
        ``t`` the fitted time (NaN when not resolved); ``spread`` the standard deviation of the
        ``n_blocks`` block estimates (the paper's "±"); ``se`` the standard error of ``t``,
        ``spread / sqrt(n_blocks)``; ``resolved`` (bool); ``grid`` the fit's grid spacing (unit of
        ``frame_time``); ``blocks`` (n_blocks, m).
    """
    t, se, tk = relaxation_times(trajs, max_lag, frame_time=frame_time, n_blocks=n_blocks, return_blocks=True,
                                 lag_step=lag_step, with_noise=True, min_points=min_points, cutoff=cutoff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanstd(tk, 0, ddof=1)
    return {"t": t, "spread": spread, "se": se, "resolved": np.isfinite(t), "grid": float(frame_time * lag_step),
            "blocks": tk}


def converged_lag(lags, timescales, tol: float = 0.1, n_slow: int = 1):
    """The smallest lag at which the slowest implied timescales have converged (the lag rule).

    Implied timescales ``t_i(tau) = -tau / ln lambda_i(tau)`` of a projection that is not exactly
    Markovian grow with the lag until the memory has decayed, then stay flat. The rule: the first
    lag ``tau`` of the scan whose ``n_slow`` slowest timescales agree within ``tol`` (relative) with
    their values at every longer lag of the scan where they are still resolved (``t > lag``).

    Parameters
    ----------
    lags : array (n_lags,), ascending, frames
    timescales : array (n_lags, k), frames (NaN allowed)
    tol : float
        Relative tolerance (0.1: within 10 %).
    n_slow : int
        Number of slowest timescales that must converge.

    Returns
    -------
    int or None
        The chosen lag in frames; None when no lag but the last one qualifies (scan longer lags).
    """
    lags = np.asarray(lags)
    ts = np.asarray(timescales, dtype=np.float64).reshape(len(lags), -1)[:, :int(n_slow)]
    if len(lags) < 2 or np.any(np.diff(lags) <= 0):
        raise ValueError(f"lags must hold at least two ascending values, got {lags.tolist()}")
    if not 0 < tol < 1:
        raise ValueError(f"tol must lie in (0, 1), got {tol!r}")
    for i in range(len(lags) - 1):
        ok = True
        for k in range(ts.shape[1]):
            ti = ts[i, k]
            if not (np.isfinite(ti) and ti > lags[i]):
                ok = False
                break
            later = ts[i + 1:, k]
            later = later[np.isfinite(later) & (later > lags[i + 1:])]
            if len(later) == 0 or np.any(np.abs(later - ti) > tol * later):
                ok = False
                break
        if ok:
            return int(lags[i])
    return None


# ----------------------------------------------------------------------------------- transitions
def core_states(q, lo: float, hi: float) -> np.ndarray:
    """Transition-based assignment of frames to the unfolded (0) or folded (1) core.

    A frame with ``q < lo`` is in core 0 (for Q: unfolded), ``q > hi`` in core 1 (folded); a frame in between keeps the state of the
    last core visited. Frames before the first core visit get -1.

    Returns
    -------
    np.ndarray, shape (n_frames,), int8
    """
    q = np.asarray(q, dtype=float).ravel()
    if not lo < hi:
        raise ValueError(f"lo must be below hi, got lo={lo!r}, hi={hi!r}")
    raw = np.full(len(q), -1, dtype=np.int8)
    raw[q < lo] = 0
    raw[q > hi] = 1
    idx = np.where(raw >= 0, np.arange(len(q)), -1)
    np.maximum.accumulate(idx, out=idx)
    return np.where(idx >= 0, raw[np.maximum(idx, 0)], -1).astype(np.int8)


def count_transitions(x, lo: float, hi: float, per_trajectory: bool = False):
    """Core-to-core transitions along a 1-D coordinate, with two cutoffs.

    Definition: one core is ``x < lo``, the other ``x > hi`` (for Q: unfolded and folded; for psi1
    whichever side is which). Each frame is assigned the core it last visited
    (:func:`core_states`); a transition is counted each time the trajectory enters a core
    other than the one it last visited. Excursions into the gap between the cores that return to the
    same core are not transitions, so placing the cores on either side of the barrier stops
    recrossings of the barrier top from being counted. Transitions are counted inside each
    trajectory, never across the join of two.

    Counts depend on the time between frames (a coarser sampling misses short visits): compare MD
    and LSS at the same frame spacing, e.g. the MD every ``lag`` frames against LSS steps of ``lag``.

    Parameters
    ----------
    x : array (n_frames,) or list of them
    lo, hi : float
        Core cutoffs, ``lo < hi``, in the unit of ``x``.
    per_trajectory : bool
        Return one count per trajectory.

    Returns
    -------
    int, or np.ndarray of int (n_traj,)
    """
    xs = _coord_list(x, "x")
    if not lo < hi:
        raise ValueError(f"lo must be below hi, got lo={lo!r}, hi={hi!r}")
    counts = []
    for t in xs:
        s = core_states(t, lo, hi)
        s = s[s >= 0]
        counts.append(int(np.count_nonzero(s[1:] != s[:-1])))
    counts = np.array(counts, dtype=int)
    return counts if per_trajectory else int(counts.sum())


def transitions_per_frames(n_transitions, n_frames, per: float = 1.0) -> float:
    """Transitions normalised to a number of frames: ``n_transitions * per / n_frames``.

    E.g. the LSS count per as many frames as the MD has: ``transitions_per_frames(n_lss, n_frames_lss,
    per=n_frames_md)`` (paper: about 1070 LSS against 12 MD transitions over equal frames).

    Parameters
    ----------
    n_transitions : int or float
    n_frames : int
        Frames in which they were counted.
    per : float
        Frames to normalise to (default 1: transitions per frame).

    Returns
    -------
    float
    """
    if not n_frames > 0:
        raise ValueError(f"n_frames must be positive, got {n_frames!r}")
    if not n_transitions >= 0:
        raise ValueError(f"n_transitions must be non-negative, got {n_transitions!r}")
    return float(n_transitions) * float(per) / float(n_frames)


def transition_rate(x, lo: float, hi: float, frame_time: float = 1.0, n_blocks: int | None = 5):
    """Core-to-core transitions per unit time, with a block standard error.

    Parameters
    ----------
    x : array (n_frames,) or list of them
    lo, hi : float
        Core cutoffs (see :func:`count_transitions`).
    frame_time : float
        Time between frames; the rate is per unit of it (for the LSS: ``lag`` MD frame times).
    n_blocks : int or None
        Contiguous blocks for the error; transitions that straddle a cut between blocks are lost
        in the block counts (not in the full count). None skips the error.

    Returns
    -------
    rate : float
        Transitions (folding plus unfolding) per unit time over all frames.
    err : float
        ``std(block rates, ddof=1) / sqrt(n_blocks)``; NaN when ``n_blocks`` is None.
    """
    xs = _coord_list(x, "x")
    if not frame_time > 0:
        raise ValueError(f"frame_time must be positive, got {frame_time!r}")
    n = sum(len(t) for t in xs)
    rate = count_transitions(xs, lo, hi) / (n * frame_time)
    if n_blocks is None:
        return float(rate), float("nan")
    rk = [count_transitions(b, lo, hi) / (sum(len(t) for t in b) * frame_time) for b in split_blocks(xs, n_blocks)]
    return float(rate), float(np.std(rk, ddof=1) / math.sqrt(len(rk)))


def cost_per_time(wall_seconds: float, n_frames: int, frame_time: float) -> float:
    """Wall-clock seconds per unit of trajectory time: ``wall_seconds / (n_frames * frame_time)``.

    E.g. seconds per microsecond of MD or of LSS trajectory, with ``frame_time`` in microseconds.
    """
    if not wall_seconds >= 0:
        raise ValueError(f"wall_seconds must be non-negative, got {wall_seconds!r}")
    if not n_frames > 0 or not frame_time > 0:
        raise ValueError("n_frames and frame_time must be positive")
    return float(wall_seconds) / (float(n_frames) * float(frame_time))


# ---------------------------------------------------------------------------------- first passage
def first_passage_times(x, lo: float, hi: float) -> dict:
    """Core-to-core first-passage times along a 1-D coordinate, in frames, each with its end frame.

    With the cores of :func:`core_states` (``x < lo`` is core 0, ``x > hi`` core 1), a passage
    ``0 -> 1`` starts when the trajectory enters core 0 coming from core 1 and ends when it first
    enters core 1; its time is the number of frames in between. The first and last visits of each
    trajectory are cut by its ends and are not counted, so only complete passages enter. For a
    Markov chain that hops between the two cores, the mean of these times is the mean first-passage
    time of the chain.

    Parameters
    ----------
    x : array (n_frames,) or list of them
    lo, hi : float
        Core cutoffs, ``lo < hi``.

    Returns
    -------
    dict with ``"lo_to_hi"`` and ``"hi_to_lo"``: arrays (n_passages, 2) of int, columns (time in
    frames, index of the end frame in all frames laid end to end).
    """
    xs = _coord_list(x, "x")
    if not lo < hi:
        raise ValueError(f"lo must be below hi, got lo={lo!r}, hi={hi!r}")
    out = {"lo_to_hi": [], "hi_to_lo": []}
    offset = 0
    for t in xs:
        s = core_states(t, lo, hi)
        switch = np.nonzero((s[1:] != s[:-1]) & (s[:-1] >= 0))[0] + 1     # frames entering a new core
        for a, b in itertools.pairwise(switch):
            key = "lo_to_hi" if s[a] == 0 else "hi_to_lo"
            out[key].append((b - a, offset + b))
        offset += len(t)
    return {k: np.array(v, dtype=np.int64).reshape(-1, 2) for k, v in out.items()}


def mean_first_passage_times(x, lo: float, hi: float, frame_time: float = 1.0, n_boot: int = 1000,
                             ci: float = 0.95, n_blocks: int = 20, random_state=None) -> dict:
    """Mean core-to-core first-passage times with block-bootstrap confidence intervals.

    The two-state case of :func:`mfpt_matrix`: the mean of the complete passages of
    :func:`first_passage_times`. The interval: the frames laid
    end to end are cut into ``n_blocks`` contiguous blocks, each passage belongs to the block where it
    ends, and the blocks are resampled with replacement ``n_boot`` times (the percentile interval of
    the resampled means). Passages close in time are correlated; whole blocks keep that correlation.

    Parameters
    ----------
    x : array (n_frames,) or list of them
    lo, hi : float
        Core cutoffs (for Q: 0.45 and 0.85, unfolded and folded).
    frame_time : float
        Time between frames; results are in its unit.
    n_boot : int
    ci : float
        Coverage of the interval.
    n_blocks : int
    random_state : int or np.random.Generator, optional

    Returns
    -------
    dict with ``"lo_to_hi"`` and ``"hi_to_lo"`` (for Q: folding and unfolding), each a dict
    ``{"mean", "low", "high", "n"}``: mean time and interval bounds in the unit of ``frame_time``
    (NaN without passages; the interval NaN with fewer than 3, where a bootstrap means nothing) and
    the number of complete passages.
    """
    xs = _coord_list(x, "x")
    if not lo < hi:
        raise ValueError(f"lo must be below hi, got lo={lo!r}, hi={hi!r}")
    labels = [np.where(t < lo, 0, np.where(t > hi, 1, -1)) for t in xs]     # the two cores of core_states
    m = mfpt_matrix(labels, 2, frame_time=frame_time, n_boot=n_boot, ci=ci, n_blocks=n_blocks,
                    random_state=random_state)
    out = {}
    for key, (i, j) in (("lo_to_hi", (0, 1)), ("hi_to_lo", (1, 0))):
        out[key] = {"mean": float(m["mean"][i, j]), "low": float(m["low"][i, j]), "high": float(m["high"][i, j]),
                    "n": int(m["n"][i, j])}
    return out


# ------------------------------------------------------------------------------ several core states
def milestone(labels) -> np.ndarray:
    """Transition-based (milestoning) states: each frame takes the label of the last core visited.

    Parameters
    ----------
    labels : array-like, shape (n_frames,), int
        Core label of each frame (0 ... K-1), -1 outside every core.

    Returns
    -------
    np.ndarray, shape (n_frames,), int8
        The last core visited; -1 before the first core visit.
    """
    raw = np.asarray(labels).ravel().astype(np.int8)
    idx = np.where(raw >= 0, np.arange(len(raw)), -1)
    np.maximum.accumulate(idx, out=idx)
    return np.where(idx >= 0, raw[np.maximum(idx, 0)], -1).astype(np.int8)


def state_populations(labels, n_states: int, n_blocks: int = 5) -> dict:
    """Populations of the milestoned states (:func:`milestone`) with block standard errors.

    Parameters
    ----------
    labels : array (n_frames,) or list of them, int
        Core labels, -1 outside every core (frames before a trajectory's first core visit are dropped).
    n_states : int
    n_blocks : int
        Contiguous blocks of all frames laid end to end for the standard error.

    Returns
    -------
    dict: ``"p"`` (n_states,) fractions summing to 1, ``"se"`` (n_states,) standard errors.
    """
    if int(n_blocks) != n_blocks or n_blocks < 1:
        raise ValueError(f"n_blocks must be a positive integer, got {n_blocks!r}")
    s = np.concatenate([milestone(x) for x in _coord_list(labels, "labels")])
    if s.size and s.max() >= n_states:
        raise ValueError(f"labels must lie in -1 ... {n_states - 1}, got a label {int(s.max())}")
    s = s[s >= 0]
    if 0 < len(s) < n_blocks:
        raise ValueError(f"{len(s)} labelled frames cannot be cut into n_blocks={n_blocks} blocks")
    if len(s) == 0:
        return {"p": np.full(n_states, np.nan), "se": np.full(n_states, np.nan)}
    p = np.bincount(s, minlength=n_states)[:n_states] / len(s)
    blocks = [np.bincount(b, minlength=n_states)[:n_states] / max(len(b), 1) for b in np.array_split(s, n_blocks)]
    se = np.std(blocks, axis=0, ddof=1) / math.sqrt(n_blocks) if n_blocks > 1 else np.full(n_states, np.nan)
    return {"p": p, "se": se}


def mfpt_matrix(labels, n_states: int, frame_time: float = 1.0, n_boot: int = 1000, ci: float = 0.95,
                n_blocks: int = 20, random_state=None) -> dict:
    """Mean first-passage times between every ordered pair of core states, with block-bootstrap intervals.

    A passage ``A -> B`` starts at the first entry into core A after a visit to core B and ends at
    the next entry into B; visits to other cores on the way belong to the passage. Only complete
    passages count (a trajectory's start is not an entry). With two states these are the passages
    of :func:`first_passage_times`. Interval: as :func:`mean_first_passage_times` (passages grouped by
    the contiguous block where they end, blocks resampled).

    Parameters
    ----------
    labels : array (n_frames,) or list of them, int
        Core labels 0 ... n_states-1, -1 outside every core.
    n_states : int
    frame_time : float
        Time between frames; results in its unit.
    n_boot, ci, n_blocks, random_state
        Bootstrap settings.

    Returns
    -------
    dict with arrays of shape (n_states, n_states) (diagonal NaN): ``"mean"``, ``"low"``, ``"high"``
    (NaN where there are no passages; intervals NaN with fewer than 3) and ``"n"`` (passages).
    """
    if not frame_time > 0:
        raise ValueError(f"frame_time must be positive, got {frame_time!r}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must lie in (0, 1), got {ci!r}")
    if int(n_boot) != n_boot or n_boot < 1 or int(n_blocks) != n_blocks or n_blocks < 2:
        raise ValueError(f"n_boot must be >= 1 and n_blocks >= 2 (integers), got {n_boot!r}, {n_blocks!r}")
    xs = [np.asarray(x).ravel().astype(np.int64) for x in _coord_list(labels, "labels")]
    if any(len(x) and x.max() >= n_states for x in xs):
        raise ValueError(f"labels must lie in -1 ... {n_states - 1}")
    total = sum(len(x) for x in xs)
    passages = {(a, b): [] for a in range(n_states) for b in range(n_states) if a != b}
    offset = 0
    for x in xs:
        enter = np.flatnonzero(x >= 0)
        ev_t = enter[np.r_[True, x[enter][1:] != x[enter][:-1]]] if len(enter) else enter   # core entries
        ev_s = x[ev_t]
        for b in range(n_states):
            for a in range(n_states):
                if a == b:
                    continue
                seen_b, start = False, None
                for t, s in zip(ev_t, ev_s):
                    if s == b:
                        if start is not None:
                            passages[a, b].append((t - start, offset + t))
                        seen_b, start = True, None
                    elif s == a and seen_b and start is None:
                        start = t
        offset += len(x)
    rng = np.random.default_rng(random_state)
    cuts = np.rint(np.linspace(0, total, int(n_blocks) + 1)).astype(np.int64)
    out = {k: np.full((n_states, n_states), np.nan) for k in ("mean", "low", "high")}
    out["n"] = np.zeros((n_states, n_states), dtype=int)
    lo_q = (1 - ci) / 2
    for (a, b), rows in passages.items():
        if not rows:
            continue
        arr = np.asarray(rows, dtype=np.int64)
        out["mean"][a, b] = arr[:, 0].mean() * frame_time
        out["n"][a, b] = len(arr)
        if len(arr) >= 3:
            block = np.clip(np.searchsorted(cuts, arr[:, 1], side="right") - 1, 0, int(n_blocks) - 1)
            ssum = np.bincount(block, weights=arr[:, 0].astype(np.float64), minlength=int(n_blocks))
            cnt = np.bincount(block, minlength=int(n_blocks)).astype(np.float64)
            pick = rng.integers(0, int(n_blocks), size=(int(n_boot), int(n_blocks)))
            with np.errstate(invalid="ignore", divide="ignore"):
                boot = ssum[pick].sum(1) / cnt[pick].sum(1)
            boot = boot[np.isfinite(boot)]
            if len(boot):
                out["low"][a, b], out["high"][a, b] = np.quantile(boot, [lo_q, 1 - lo_q]) * frame_time
    return out


def state_kinetics(labels, n_states: int, frame_time: float, n_blocks: int = 5, random_state=None) -> dict:
    """Populations (:func:`state_populations`) and mean first-passage times (:func:`mfpt_matrix`) of core states.

    Returns
    -------
    dict: ``"p"``, ``"se"`` (n_states,), ``"mfpt"`` (the :func:`mfpt_matrix` dict), ``"labels"`` (the input list).
    """
    labels = [np.asarray(x) for x in _coord_list(labels, "labels")]
    pop = state_populations(labels, n_states, n_blocks=n_blocks)
    mf = mfpt_matrix(labels, n_states, frame_time=frame_time, random_state=random_state)
    return {"p": pop["p"], "se": pop["se"], "mfpt": mf, "labels": labels}
