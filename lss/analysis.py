"""Thermodynamics of MD and LSS trajectories alike: free energies and TICA (paper Fig. 3, Fig. 4).

Every function takes trajectories from molecular dynamics and from the latent space simulator in
the same forms, so both are measured the same way:

- a 1-D coordinate (e.g. the slowest latent coordinate psi1, or Q): one array ``(n_frames,)`` or a
  list of them. A 2-D array ``(n_frames, 1)`` is one trajectory; any other 2-D array is refused
  (pass ``list(stack)`` for a stack of trajectories or ``x[:, i]`` for one column).
- several modes or features: one array ``(n_frames, m)``, a list of them, or a stack
  ``(n_traj, n_frames, m)`` (the shape ``MDNPropagator.sample`` returns).

The other analyses live in modules named after their concept: :mod:`lss.kinetics`
(autocorrelations, relaxation times, first passages, transitions), :mod:`lss.structure` (Rg, RMSD,
superposition, C-alpha distances), :mod:`lss.msm` (the MSM baseline and the Chapman-Kolmogorov
test) and :mod:`lss.stats` (block errors); import them from there.

Units: lengths in nm, free energies in units of ``kT`` (pass ``kT`` to get kJ/mol), lags in frames,
times in the unit of ``frame_time`` (ps, ns or model time, whatever the caller uses).
"""
from __future__ import annotations

import math

import numpy as np

from .stats import _check_n_blocks, _coord_list, _mode_list, split_blocks
from .utils import check_lag

__all__ = [
    "free_energy_profile", "aligned_rmse", "sampled_region", "free_energy_2d", "select_region",
    "fit_tica", "project",
]


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
