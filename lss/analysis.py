"""Analysis of MD and LSS trajectories alike (paper section 3.2: Fig. 3, Fig. 4, Table 1).

Every function takes trajectories from molecular dynamics and from the latent space simulator in
the same forms, so both are measured the same way:

- a 1-D coordinate (e.g. the slowest latent coordinate psi1, or Q): one array ``(n_frames,)`` or a
  list of them. A 2-D array ``(n_frames, 1)`` is one trajectory; any other 2-D array is refused
  (pass ``list(stack)`` for a stack of trajectories or ``x[:, i]`` for one column).
- several modes or features: one array ``(n_frames, m)``, a list of them, or a stack
  ``(n_traj, n_frames, m)`` (the shape ``MDNPropagator.sample`` returns).
- C-alpha structures: ``(n_frames, n_atoms, 3)`` in nm, an ``mdtraj.Trajectory``, a list of either,
  or a stack ``(n_traj, n_frames, n_atoms, 3)``; per-frame results follow the trajectories in order.

Standard errors come from contiguous blocks (:func:`split_blocks`): the trajectories are laid end to
end in the order given, the ``n_frames`` frames are cut into ``n_blocks`` contiguous pieces of equal
size, and a quantity is computed on each block. Pieces never join two trajectories, so time
correlations (autocorrelations, transitions) are only measured within a trajectory. The standard
error of the full-data estimate is ``std(block estimates, ddof=1) / sqrt(n_blocks)``, which assumes the
blocks are long enough to be independent (Flyvbjerg & Petersen, J. Chem. Phys. 91, 461 (1989)).

Units: lengths in nm, free energies in units of ``kT`` (pass ``kT`` to get kJ/mol), lags in frames,
times in the unit of ``frame_time`` (ps, ns or model time, whatever the caller uses).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from .utils import as_trajs, check_lag

__all__ = [
    "split_blocks", "block_average",
    "free_energy_profile", "aligned_rmse", "sampled_region", "free_energy_2d",
    "autocorrelation", "relaxation_time", "relaxation_times",
    "radius_of_gyration", "rmsd_to_reference", "pair_rmsd", "ensemble_rmsd", "ca_distances", "select_region",
    "fit_tica", "project",
    "count_transitions", "transitions_per_frames", "transition_rate", "cost_per_time",
    "MSMBaseline", "chapman_kolmogorov",
]


# ------------------------------------------------------------------------------------ input forms
def _coord_list(x, name: str) -> list[np.ndarray]:
    """A 1-D coordinate as a list of float64 arrays ``(n_frames,)``; ValueError naming ``name``."""
    if isinstance(x, np.ndarray) or hasattr(x, "shape"):
        x = np.asarray(x)
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            raise ValueError(f"{name} must be a 1-D coordinate (n_frames,) or a list of them, got an array of "
                             f"shape {x.shape}; pass list(stack) for a stack of trajectories or x[:, i] for one column")
        x = [x]
    out = []
    for i, t in enumerate(x):
        t = np.asarray(t, dtype=np.float64)
        if t.ndim == 2 and t.shape[1] == 1:
            t = t[:, 0]
        if t.ndim != 1:
            raise ValueError(f"{name}[{i}] must have shape (n_frames,), got {t.shape}")
        if not np.all(np.isfinite(t)):
            raise ValueError(f"{name}[{i}] contains NaN or inf values")
        out.append(t)
    if not out or sum(len(t) for t in out) == 0:
        raise ValueError(f"{name} is empty")
    return out


def _mode_list(x, name: str, min_len: int = 1) -> list[np.ndarray]:
    """Multi-mode trajectories as a list of float64 arrays ``(n_frames, m)``; a 3-D array is a stack."""
    if (isinstance(x, np.ndarray) or hasattr(x, "shape")) and np.ndim(x) == 3:
        x = list(np.asarray(x))
    return [t.astype(np.float64) for t in as_trajs(x, name, min_len=min_len)]


def _xyz(x, name: str) -> np.ndarray:
    """C-alpha coordinates in any accepted form -> one float32 array ``(n_frames, n_atoms, 3)``, nm."""
    import mdtraj as md

    if isinstance(x, md.Trajectory):
        arr = x.xyz
    elif isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"{name} is empty")
        parts = [_xyz(t, f"{name}[{i}]") for i, t in enumerate(x)]
        if len({p.shape[1] for p in parts}) != 1:
            raise ValueError(f"{name}: trajectories have different numbers of atoms")
        arr = np.concatenate(parts)
    else:
        arr = np.asarray(x)
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4:
        arr = arr.reshape(-1, *arr.shape[2:])
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (n_frames, n_atoms, 3) in nm, got {arr.shape}")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values")
    return arr


_TOPOLOGIES: dict[int, object] = {}


def _ca_topology(n_atoms: int):
    """A C-alpha-only mdtraj topology of ``n_atoms`` residues (one chain), for geometry on bare arrays."""
    import mdtraj as md

    if n_atoms not in _TOPOLOGIES:
        top = md.Topology()
        chain = top.add_chain()
        for i in range(n_atoms):
            top.add_atom("CA", md.element.carbon, top.add_residue("ALA", chain, resSeq=i + 1))
        _TOPOLOGIES[n_atoms] = top
    return _TOPOLOGIES[n_atoms]


def _as_mdtraj(x, name: str):
    import mdtraj as md

    if isinstance(x, md.Trajectory):
        return x
    arr = _xyz(x, name)
    return md.Trajectory(arr, _ca_topology(arr.shape[1]))


def _check_n_blocks(n_blocks, name: str = "n_blocks") -> int:
    if int(n_blocks) != n_blocks or n_blocks < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {n_blocks!r}")
    return int(n_blocks)


# ----------------------------------------------------------------------------------------- blocks
def split_blocks(trajs, n_blocks: int = 5) -> list[list[np.ndarray]]:
    """Cut trajectories into ``n_blocks`` contiguous blocks of (nearly) equal numbers of frames.

    The trajectories are laid end to end in the order given and the sequence of all frames is cut
    at ``round(k * n_frames / n_blocks)``; each block is the list of the trajectory pieces between
    two cuts. A piece never spans two trajectories, so a block of many short trajectories keeps
    their boundaries.

    Parameters
    ----------
    trajs : list of np.ndarray, each shape (n_frames_i, ...)
    n_blocks : int
        Number of blocks, at least 2 and at most the total number of frames.

    Returns
    -------
    list of length ``n_blocks`` of lists of np.ndarray
        Views of ``trajs``.
    """
    n_blocks = _check_n_blocks(n_blocks)
    lengths = [len(t) for t in trajs]
    total = sum(lengths)
    if total < n_blocks:
        raise ValueError(f"n_blocks={n_blocks} exceeds the number of frames ({total})")
    cuts = np.rint(np.linspace(0, total, n_blocks + 1)).astype(int)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    blocks = []
    for b in range(n_blocks):
        lo, hi = cuts[b], cuts[b + 1]
        pieces = []
        for i, t in enumerate(trajs):
            a, z = max(lo, starts[i]), min(hi, starts[i + 1])
            if z > a:
                pieces.append(t[a - starts[i]:z - starts[i]])
        blocks.append(pieces)
    return blocks


def block_average(values, n_blocks: int = 5) -> tuple:
    """Mean of a time series and its standard error from contiguous blocks.

    Parameters
    ----------
    values : array (n_frames,) or (n_frames, k), or a list of them
        Per-frame values (e.g. Rg in nm); ``k`` observables are treated column by column. A list is
        concatenated in order before it is cut into blocks (see :func:`split_blocks`).
    n_blocks : int
        Number of contiguous blocks (paper: 5).

    Returns
    -------
    mean : float or np.ndarray (k,)
        Mean over all frames.
    stderr : float or np.ndarray (k,)
        ``std(block means, ddof=1) / sqrt(n_blocks)``, in the unit of ``values``.
    """
    if isinstance(values, np.ndarray) or hasattr(values, "shape"):
        values = [values]
    arrs = []
    for i, v in enumerate(values):
        v = np.asarray(v, dtype=np.float64)
        if v.ndim not in (1, 2):
            raise ValueError(f"values[{i}] must have shape (n_frames,) or (n_frames, k), got {v.shape}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"values[{i}] contains NaN or inf values")
        arrs.append(v)
    if not arrs or sum(len(v) for v in arrs) == 0:
        raise ValueError("values is empty")
    if len({v.ndim for v in arrs}) != 1 or len({v.shape[1:] for v in arrs}) != 1:
        raise ValueError("values: all arrays must have the same number of columns")
    allv = np.concatenate(arrs)
    means = np.array([np.concatenate(b).mean(0) for b in split_blocks([allv], n_blocks)])
    mean = allv.mean(0)
    err = means.std(0, ddof=1) / math.sqrt(len(means))
    if np.ndim(mean) == 0:
        return float(mean), float(err)
    return mean, err


# ---------------------------------------------------------------------------------- free energies
def _weights_like(weights, xs, name="weights"):
    if weights is None:
        return None
    w = _coord_list(weights, name)
    if [len(a) for a in w] != [len(a) for a in xs]:
        raise ValueError(f"{name} must have the same trajectory lengths as x")
    if any(np.any(a < 0) for a in w):
        raise ValueError(f"{name} must be non-negative")
    return w


def free_energy_profile(x, bins=50, range=None, kT: float = 1.0, n_blocks: int = 5, weights=None):
    """Free energy ``F(x) = -kT ln p(x)`` along one coordinate, with block-averaged standard errors.

    Parameters
    ----------
    x : array (n_frames,) or list of them
        The coordinate (e.g. psi1 of MD or of the LSS), frames of one or more trajectories.
    bins : int or array (n_bins + 1,)
        Number of bins or bin edges; pass the same edges to compare MD and LSS bin by bin.
    range : (float, float), optional
        Lower and upper edge when ``bins`` is an int (default: min and max of ``x``).
    kT : float
        Thermal energy; ``F`` is returned in its unit (1.0: units of kT).
    n_blocks : int
        Number of contiguous blocks for the standard error (paper: 5), see :func:`split_blocks`.
    weights : array (n_frames,) or list of them, optional
        Non-negative statistical weights of the frames (default: equal).

    Returns
    -------
    centers : np.ndarray (n_bins,)
        Bin centres, in the unit of ``x``.
    F : np.ndarray (n_bins,)
        ``-kT ln p``, with ``p`` the probability *density* (weight in the bin / total weight of all
        frames, including any outside ``range`` / bin width); not shifted, so profiles on the same
        bins are directly comparable. NaN where a bin is empty.
    F_err : np.ndarray (n_bins,)
        Standard error of ``F``: the block standard error of the density,
        ``s_p = std(p_k, ddof=1) / sqrt(n_blocks)`` over the block densities ``p_k``, propagated to
        first order, ``kT s_p / p``. (This stays finite where a block leaves a bin empty, unlike the
        spread of the block profiles ``-kT ln p_k``.) NaN where a bin is empty.
    """
    xs = _coord_list(x, "x")
    ws = _weights_like(weights, xs)
    if not kT > 0:
        raise ValueError(f"kT must be positive, got {kT!r}")
    allx = np.concatenate(xs)
    edges = np.histogram_bin_edges(allx, bins=bins, range=range)
    width = np.diff(edges)

    def density(parts, wparts):
        xx = np.concatenate(parts)
        ww = None if wparts is None else np.concatenate(wparts)
        h, _ = np.histogram(xx, bins=edges, weights=ww)
        tot = len(xx) if ww is None else ww.sum()
        if tot <= 0:
            raise ValueError("weights sum to zero in a block; use fewer blocks")
        return h / tot / width

    p = density(xs, ws)
    xb = split_blocks(xs, n_blocks)
    wb = [None] * len(xb) if ws is None else split_blocks(ws, n_blocks)
    pk = np.array([density(a, b) for a, b in zip(xb, wb)])
    s_p = pk.std(0, ddof=1) / math.sqrt(len(pk))
    with np.errstate(divide="ignore", invalid="ignore"):
        F = np.where(p > 0, -kT * np.log(p), np.nan)
        F_err = np.where(p > 0, kT * s_p / p, np.nan)
    return 0.5 * (edges[1:] + edges[:-1]), F, F_err


def free_energy_2d(a, b, bins=50, range=None, kT: float = 1.0, weights=None):
    """Free-energy surface ``F(a, b) = -kT ln p(a, b)`` of two coordinates (e.g. TIC1-TIC2).

    Parameters
    ----------
    a, b : array (n_frames,) or list of them, same lengths
        The two coordinates of the same frames.
    bins : int, (int, int) or (edges_a, edges_b)
        As :func:`numpy.histogram2d`; pass the MD edges to put the LSS on the same grid.
    range : ((float, float), (float, float)), optional
    kT : float
        Unit of ``F`` (1.0: kT).
    weights : array (n_frames,) or list of them, optional

    Returns
    -------
    centers_a : np.ndarray (n_a,)
    centers_b : np.ndarray (n_b,)
    F : np.ndarray (n_a, n_b)
        ``F[i, j]`` at ``(centers_a[i], centers_b[j])``; ``-kT ln`` of the density normalised by the
        total weight of all frames; not shifted (subtract ``np.nanmin(F)`` to plot); NaN where empty.
    """
    xa, xb = _coord_list(a, "a"), _coord_list(b, "b")
    if [len(t) for t in xa] != [len(t) for t in xb]:
        raise ValueError("a and b must have the same trajectory lengths")
    ws = _weights_like(weights, xa)
    if not kT > 0:
        raise ValueError(f"kT must be positive, got {kT!r}")
    A, B = np.concatenate(xa), np.concatenate(xb)
    W = None if ws is None else np.concatenate(ws)
    h, ea, eb = np.histogram2d(A, B, bins=bins, range=range, weights=W)
    tot = len(A) if W is None else W.sum()
    p = h / tot / np.outer(np.diff(ea), np.diff(eb))
    with np.errstate(divide="ignore"):
        F = np.where(p > 0, -kT * np.log(p), np.nan)
    return 0.5 * (ea[1:] + ea[:-1]), 0.5 * (eb[1:] + eb[:-1]), F


def aligned_rmse(F_a, F_b, mask=None, align: str = "lsq", return_shift: bool = False):
    """Root-mean-square difference of two free-energy profiles after aligning them by a constant.

    Free energies are defined up to a constant; the profiles are shifted against each other and the
    RMSE is taken over the bins where both are finite (both sample them) and ``mask`` is True.

    Parameters
    ----------
    F_a, F_b : array (n_bins,) or (n_a, n_b)
        Profiles on the same bins, same unit (kT). NaN/inf marks unsampled bins.
    mask : bool array like ``F_a``, optional
        Bins to compare, e.g. :func:`sampled_region` of the reference.
    align : {"lsq", "min"}
        ``"lsq"``: the shift that minimises the RMSE, ``mean(F_a - F_b)`` over the compared bins
        (then the RMSE is the standard deviation of the difference); ``"min"``: both minima at zero.
    return_shift : bool
        Also return the shift ``c`` such that ``F_a ~ F_b + c``.

    Returns
    -------
    rmse : float
        In the unit of the profiles.
    shift : float, only if ``return_shift``
    """
    Fa, Fb = np.asarray(F_a, dtype=np.float64), np.asarray(F_b, dtype=np.float64)
    if Fa.shape != Fb.shape:
        raise ValueError(f"F_a and F_b must have the same shape, got {Fa.shape} and {Fb.shape}")
    ok = np.isfinite(Fa) & np.isfinite(Fb)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != Fa.shape:
            raise ValueError(f"mask must have shape {Fa.shape}, got {mask.shape}")
        ok &= mask
    if not ok.any():
        raise ValueError("F_a and F_b share no finite bins (inside mask) to compare")
    d = Fa[ok] - Fb[ok]
    if align == "lsq":
        shift = d.mean()
    elif align == "min":
        shift = Fa[ok].min() - Fb[ok].min()
    else:
        raise ValueError(f"align must be 'lsq' or 'min', got {align!r}")
    rmse = float(np.sqrt(np.mean((d - shift) ** 2)))
    return (rmse, float(shift)) if return_shift else rmse


def sampled_region(F, max_dF: float | None = None, F_err=None, max_err: float | None = None) -> np.ndarray:
    """Bins a reference profile samples: finite ``F``, optionally within ``max_dF`` of its minimum.

    Parameters
    ----------
    F : array (n_bins,) or (n_a, n_b)
        Reference free energy (e.g. of the MD), NaN where unsampled.
    max_dF : float, optional
        Keep bins with ``F <= min(F) + max_dF`` (same unit as ``F``), e.g. 5 kT.
    F_err, max_err : optional
        Also drop bins whose standard error exceeds ``max_err`` (NaN errors are dropped).

    Returns
    -------
    np.ndarray of bool, shape of ``F``
    """
    F = np.asarray(F, dtype=np.float64)
    ok = np.isfinite(F)
    if not ok.any():
        raise ValueError("F has no finite bins")
    if max_dF is not None:
        if not max_dF >= 0:
            raise ValueError(f"max_dF must be non-negative, got {max_dF!r}")
        ok &= F <= F[ok].min() + max_dF
    if max_err is not None:
        if F_err is None:
            raise ValueError("max_err needs F_err")
        e = np.asarray(F_err, dtype=np.float64)
        ok &= np.isfinite(e) & (e <= max_err)
    return ok


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
                    amplitude: bool = False) -> float:
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

    Returns
    -------
    float
        ``t`` in the unit of ``dt``.
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
        below = np.nonzero(c < cutoff)[0]
        if len(below) == 0:
            warnings.warn(f"the autocorrelation stays above {cutoff:.3g} up to the largest lag "
                          f"({len(c) - 1}); the fitted time is uncertain: use a longer max_lag",
                          RuntimeWarning, stacklevel=2)
            start, stop = 0, len(c)
        else:
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
                     return_blocks: bool = False, lag_step: int = 1, **fit_kw):
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
    **fit_kw
        Passed to :func:`relaxation_time` (``cutoff``, ``fit_range``, ``amplitude``).

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
        c = autocorrelation(parts, max_lag)[::lag_step]
        return np.array([relaxation_time(c[:, i], frame_time * lag_step, **fit_kw) for i in range(c.shape[1])])

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
        err = tk.std(0, ddof=1) / math.sqrt(len(tk))
    return (t, err, tk) if return_blocks else (t, err)


# ------------------------------------------------------------------------------------- structure
def radius_of_gyration(xyz, masses=None) -> np.ndarray:
    """Radius of gyration of each frame (``mdtraj.compute_rg``).

    Parameters
    ----------
    xyz : array (n_frames, n_atoms, 3) nm, mdtraj.Trajectory, list of them, or a stack
    masses : array (n_atoms,), optional
        Weights; default equal (for C-alpha models every bead counts the same).

    Returns
    -------
    np.ndarray (n_frames,), nm
    """
    import mdtraj as md

    return np.asarray(md.compute_rg(_as_mdtraj(xyz, "xyz"), masses=masses), dtype=np.float64)


def rmsd_to_reference(xyz, ref_xyz, atom_indices=None) -> np.ndarray:
    """RMSD of each frame to one reference structure after optimal superposition (``mdtraj.rmsd``).

    Parameters
    ----------
    xyz : array (n_frames, n_atoms, 3) nm, mdtraj.Trajectory, list of them, or a stack
    ref_xyz : array (n_atoms, 3) or (1, n_atoms, 3) nm, or an mdtraj.Trajectory (its first frame)
        E.g. the native C-alpha structure (2JOF).
    atom_indices : array of int, optional
        Atoms to superpose and compare (default all).

    Returns
    -------
    np.ndarray (n_frames,), nm
    """
    import mdtraj as md

    t = _as_mdtraj(xyz, "xyz")
    r = _as_mdtraj(ref_xyz, "ref_xyz")
    if r.n_atoms != t.n_atoms:
        raise ValueError(f"ref_xyz has {r.n_atoms} atoms, xyz has {t.n_atoms}")
    return np.asarray(md.rmsd(t, r, 0, atom_indices=atom_indices), dtype=np.float64)


def pair_rmsd(xyz_a, xyz_b) -> np.ndarray:
    """RMSD between frame ``k`` of ``xyz_a`` and frame ``k`` of ``xyz_b`` after optimal superposition.

    The same numbers as ``mdtraj.rmsd(a[k], b[k])`` (tested), computed for all pairs at once by the
    Kabsch method (batched SVD of the 3x3 correlation matrices, with the reflection correction);
    ``mdtraj.rmsd`` superposes onto one reference frame per call, which costs milliseconds per pair.

    Parameters
    ----------
    xyz_a, xyz_b : array (n_pairs, n_atoms, 3), nm

    Returns
    -------
    np.ndarray (n_pairs,), nm
    """
    a = np.asarray(xyz_a, dtype=np.float64)
    b = np.asarray(xyz_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"xyz_a and xyz_b must both have shape (n_pairs, n_atoms, 3), got {a.shape}, {b.shape}")
    a = a - a.mean(1, keepdims=True)
    b = b - b.mean(1, keepdims=True)
    h = np.einsum("nki,nkj->nij", a, b)
    u, s, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u) * np.linalg.det(vt))
    s[:, 2] *= d
    msd = ((a ** 2).sum((1, 2)) + (b ** 2).sum((1, 2)) - 2 * s.sum(1)) / a.shape[1]
    return np.sqrt(np.clip(msd, 0.0, None))


def ensemble_rmsd(xyz_a, xyz_b, n_pairs: int = 1000, rng=None, return_all: bool = False):
    """Mean RMSD between random pairs of structures, one from each ensemble (superposed pairwise).

    The paper's "relative C-alpha RMSD" of MD and LSS structures in a region of the latent space:
    ``n_pairs`` frames ``i`` of ``xyz_a`` and ``j`` of ``xyz_b`` are drawn uniformly with replacement
    and each pair is superposed (:func:`pair_rmsd`, equal to ``mdtraj.rmsd``). Compare with
    ``ensemble_rmsd(a, a)``, the spread within one ensemble, which is the floor of this number.

    Parameters
    ----------
    xyz_a, xyz_b : array (n_frames, n_atoms, 3) nm, mdtraj.Trajectory or list of them
        The two ensembles (e.g. MD and LSS frames selected by :func:`select_region`).
    n_pairs : int
        Number of random pairs.
    rng : numpy.random.Generator or int, optional
        Random source (or its seed).
    return_all : bool
        Return the array (n_pairs,) of pair RMSDs instead of their mean.

    Returns
    -------
    float (nm), or np.ndarray (n_pairs,) nm
    """
    a, b = _xyz(xyz_a, "xyz_a"), _xyz(xyz_b, "xyz_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"xyz_a has {a.shape[1]} atoms, xyz_b has {b.shape[1]}")
    if int(n_pairs) != n_pairs or n_pairs < 1:
        raise ValueError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    rng = np.random.default_rng(rng)
    i = rng.integers(len(a), size=int(n_pairs))
    j = rng.integers(len(b), size=int(n_pairs))
    out = np.concatenate([pair_rmsd(a[i[k:k + 50_000]], b[j[k:k + 50_000]]) for k in range(0, len(i), 50_000)])
    return out if return_all else float(out.mean())


def ca_distances(xyz, min_separation: int = 1, chunk: int = 100_000) -> np.ndarray:
    """All C-alpha pair distances ``|r_i - r_j|`` with ``j - i >= min_separation`` (TICA features).

    Parameters
    ----------
    xyz : array (n_frames, n_atoms, 3) nm, mdtraj.Trajectory, list of them, or a stack
        MD or decoded LSS structures.
    min_separation : int
        Smallest sequence separation ``j - i`` (1: all ``n (n - 1) / 2`` pairs).
    chunk : int
        Frames per step (memory stays bounded).

    Returns
    -------
    np.ndarray (n_frames, n_pairs), float32, nm
        Pairs ``(i, j)`` in row-major order of ``i < j``.
    """
    x = _xyz(xyz, "xyz")
    n = x.shape[1]
    if int(min_separation) != min_separation or not 1 <= min_separation < n:
        raise ValueError(f"min_separation must be an integer in [1, {n}), got {min_separation!r}")
    i, j = np.triu_indices(n, k=int(min_separation))
    out = np.empty((len(x), len(i)), dtype=np.float32)
    for a in range(0, len(x), int(chunk)):
        b = x[a:a + int(chunk)]
        out[a:a + len(b)] = np.linalg.norm(b[:, i] - b[:, j], axis=-1)
    return out


def select_region(latent, center: float, width: float, dim: int = 0) -> np.ndarray:
    """Frames whose latent coordinate ``dim`` lies within ``width / 2`` of ``center``.

    Parameters
    ----------
    latent : array (n_frames, m) or (n_frames,), a list of them, or a stack (n_traj, n_frames, m)
        Latent trajectories (e.g. psi1 in column 0).
    center, width : float
        Window ``|psi_dim - center| <= width / 2``, in latent units.
    dim : int
        Which latent coordinate.

    Returns
    -------
    np.ndarray of bool, shape (n_frames_total,)
        Over the frames of all trajectories in order (index the concatenated structures with it).
    """
    tr = _mode_list(latent, "latent")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
    if not 0 <= dim < tr[0].shape[1]:
        raise ValueError(f"dim must be in [0, {tr[0].shape[1]}), got {dim!r}")
    v = np.concatenate(tr)[:, dim]
    return np.abs(v - center) <= width / 2


# ------------------------------------------------------------------------------------------ TICA
def fit_tica(features, lag: int, dim: int = 3, scaling: str | None = "kinetic_map", stride: int = 1,
             chunksize: int = 50000):
    """Fit TICA (deeptime, reversible covariances) to feature trajectories.

    Covariances of the pairs ``(x_t, x_{t+lag})`` are accumulated trajectory by trajectory in chunks
    (memory stays bounded for long trajectories); pairs never join two trajectories.

    Parameters
    ----------
    features : array (n_frames, n_features), a list of them, or a stack
        E.g. C-alpha pairwise distances (nm) of the MD.
    lag : int
        Lag in frames (paper: the SRV lag).
    dim : int
        Number of independent components kept.
    scaling : {"kinetic_map", "commute_map", None}
        deeptime's scaling of the components (kinetic map: scaled by their eigenvalues).
    stride : int
        Use the pairs starting at every ``stride``-th frame (the lag stays ``lag`` frames): cost
        falls ``stride``-fold, nearly without loss when ``stride`` is well below the lag. Measured on
        the loaded 2-core machine: 240,000 frames of 153 features take about 25 s at stride 1.
    chunksize : int
        Pairs per covariance update.

    Returns
    -------
    deeptime.decomposition.CovarianceKoopmanModel
        ``.transform(X)`` projects, ``.singular_values`` are the TICA eigenvalues at ``lag``,
        ``.timescales(lag)`` the implied timescales in frames. Use :func:`project` for lists.
    """
    from deeptime.decomposition import TICA

    tr = _mode_list(features, "features", min_len=2)
    lag = check_lag(lag, tr, "lag")
    if int(dim) != dim or dim < 1 or dim > tr[0].shape[1]:
        raise ValueError(f"dim must be an integer in [1, {tr[0].shape[1]}], got {dim!r}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride!r}")
    cov = TICA.covariance_estimator(lagtime=lag)
    for x in tr:
        if len(x) <= lag:
            continue
        x0, x1 = x[:-lag:int(stride)], x[lag::int(stride)]
        for a in range(0, len(x0), int(chunksize)):
            cov.partial_fit((x0[a:a + chunksize], x1[a:a + chunksize]))
    return TICA(lagtime=lag, dim=int(dim), scaling=scaling).fit_from_covariances(cov.fetch_model()).fetch_model()


def project(model, features):
    """Project features with a fitted TICA (or any deeptime transformer) model.

    Parameters
    ----------
    model : fitted model with ``transform`` (e.g. from :func:`fit_tica` on the MD)
    features : array (n_frames, n_features) or list of them (MD or LSS, the same featurisation)

    Returns
    -------
    np.ndarray (n_frames, dim), or a list of them for a list input
    """
    if isinstance(features, (list, tuple)):
        return [np.asarray(model.transform(np.asarray(x, dtype=np.float64))) for x in features]
    return np.asarray(model.transform(np.asarray(features, dtype=np.float64)))


# ----------------------------------------------------------------------------------- transitions
def count_transitions(x, lo: float, hi: float, per_trajectory: bool = False):
    """Core-to-core transitions along a 1-D coordinate, with two cutoffs.

    Definition: one core is ``x < lo``, the other ``x > hi`` (for Q: unfolded and folded; for psi1
    whichever side is which). Each frame is assigned the core it last visited
    (:func:`lss.gomodel.core_states`); a transition is counted each time the trajectory enters a core
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
    from .gomodel import core_states

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


# The MSM baseline and the Chapman-Kolmogorov test live in lss.msm (one module per concept).
from .msm import MSMBaseline, chapman_kolmogorov  # noqa: E402,F401  (re-exported)
