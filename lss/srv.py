"""State-free reversible VAMPnet (SRV) encoder of slow collective variables (paper section 2.1).

One network ``chi`` (shared weights) maps a configuration's features to ``n_output`` basis functions.
Over lagged pairs ``(x_t, x_{t+tau})`` it is trained to maximise the reversible VAMP-2 score

    VAMP-2 = 1 + sum_i lambda_i^2,     C1 v_i = lambda_i C0 v_i,

where, with ``z = chi(x)`` made mean-free by the joint mean of both halves of the pairs,

    C00 = <z_t z_t^T>,  C11 = <z_{t+tau} z_{t+tau}^T>,  C01 = <z_t z_{t+tau}^T>,
    C0 = (C00 + C11) / 2,  C1 = (C01 + C10) / 2      (symmetrised: reversible dynamics).

The ``1`` counts the constant eigenfunction (``lambda_0 = 1``) that removing the mean takes out;
the score lies in ``[1, 1 + n_output]``. The generalised symmetric eigenproblem is solved by
Cholesky whitening of ``C0 + epsilon I`` (``epsilon`` keeps a near-singular ``C0`` from breaking it).

Training uses Adam on mini-batches of pairs and stops early on the VAMP-2 score of a validation
set made of held-out contiguous blocks of each trajectory (:func:`lss.utils.block_split`; shuffled
frames would leak through the lag). After training the eigenproblem is solved once, in float64, on
all the data; the eigenfunction coordinates ``psi_1, psi_2, ...`` (slow to fast) are what
:meth:`SRV.transform` returns.

Helpers: :func:`implied_timescales_vs_lag` (lag selection), :func:`choose_n_components` (m from the
eigenvalue gap), :func:`variance_concentration` (flags eigenfunctions of rarely sampled states),
:func:`save_latent` / :func:`load_latent` (the latent trajectory file of notebook 03).
"""
from __future__ import annotations

import copy
import math
import time

import numpy as np
import scipy.linalg
import torch
from torch import nn

from .base import Estimator
from .utils import (
    as_trajs,
    block_split,
    check_lag,
    get_device,
    local_torch_seed,
    torch_generator,
)

#: Lagged pairs needed per network output, in the training and in the validation set alike.
MIN_PAIRS_PER_OUTPUT = 10


class _SRVNet(nn.Module):
    """Feed-forward basis ``chi``: (Linear -> tanh -> BatchNorm) x len(hidden) -> Linear."""

    def __init__(self, n_in: int, hidden: tuple[int, ...], n_out: int, batch_norm: bool):
        super().__init__()
        layers, d = [], n_in
        for h in hidden:
            layers += [nn.Linear(d, h), nn.Tanh()]
            if batch_norm:
                layers.append(nn.BatchNorm1d(h))
            d = h
        layers.append(nn.Linear(d, n_out))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def _mean_std(trajs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over all frames, accumulated in float64 per trajectory."""
    n = np.array([len(x) for x in trajs], dtype=np.float64)
    means = np.stack([x.mean(0, dtype=np.float64) for x in trajs])
    vars_ = np.stack([x.var(0, dtype=np.float64) for x in trajs])
    mu = (n[:, None] * means).sum(0) / n.sum()
    var = (n[:, None] * (vars_ + (means - mu) ** 2)).sum(0) / n.sum()
    return mu, np.sqrt(var)


# ------------------------------------------------------------------------------ the VAMP-2 score
def _vamp2_torch(z0, z1, epsilon: float):
    """Reversible VAMP-2 score of a batch of outputs ``z0 = chi(x_t)``, ``z1 = chi(x_{t+tau})``.

    Differentiable; the small ``n_out x n_out`` algebra runs in float64. Returns a 0-d tensor.
    """
    c0, c1, _ = pair_covariances(z0, z1)
    eye = torch.eye(c0.shape[0], dtype=c0.dtype, device=c0.device)
    L, info = torch.linalg.cholesky_ex(c0 + epsilon * eye)
    if int(info) != 0:
        return torch.tensor(float("nan"), dtype=torch.float64, device=c0.device)
    x = torch.linalg.solve_triangular(L, c1, upper=False)         # L^-1 C1
    k = torch.linalg.solve_triangular(L, x.T, upper=False)        # L^-1 C1 L^-T (symmetric)
    return 1 + (k**2).sum()


def pair_covariances(a, b):
    """Symmetrised covariances of lagged pairs ``(a_t, b_t)`` made mean-free by their joint mean.

    The one implementation behind every VAMP-2 score and eigenproblem of this module: NumPy arrays
    (float64 in, float64 out) or torch tensors (centred in their own dtype, then float64; differentiable).

    Parameters
    ----------
    a, b : np.ndarray or torch.Tensor, shape (n_pairs, n)
        Values at time ``t`` and ``t + lag``.

    Returns
    -------
    c0, c1 : shape (n, n), float64
        ``(C00 + C11) / 2`` and ``(C01 + C10) / 2``, normalised by the number of pairs.
    mean : shape (n,)
        Joint mean of both halves of the pairs.
    """
    mean = 0.5 * (a.mean(0) + b.mean(0))
    a, b = a - mean, b - mean
    if isinstance(a, torch.Tensor):
        a, b = a.double(), b.double()
    n = a.shape[0]
    return (a.T @ a + b.T @ b) / (2 * n), (a.T @ b + b.T @ a) / (2 * n), mean


def _lagged_pairs(trajs, lag: int, what: str = "lag") -> tuple[np.ndarray, np.ndarray]:
    """``(x_t, x_{t+lag})`` of every trajectory longer than ``lag``, concatenated."""
    a = [o[:-lag] for o in trajs if len(o) > lag]
    if not a:
        raise ValueError(f"{what}={lag} frames: no trajectory is longer than the lag")
    return np.concatenate(a), np.concatenate([o[lag:] for o in trajs if len(o) > lag])


def _fixed_autocorrelations(f0: np.ndarray, f1: np.ndarray) -> np.ndarray:
    """Lag autocorrelation of each fixed eigenfunction over pairs ``(f0, f1)`` (0 where it is constant)."""
    m = 0.5 * (f0.mean(0) + f1.mean(0))
    f0, f1 = f0 - m, f1 - m
    var = 0.5 * ((f0 ** 2).mean(0) + (f1 ** 2).mean(0))
    return np.where(var > 0, (f0 * f1).mean(0) / np.where(var > 0, var, 1.0), 0.0)


def reversible_covariances(outputs: list[np.ndarray], lag: int):
    """Symmetrised mean-free covariances of lagged pairs, float64.

    Parameters
    ----------
    outputs : list of np.ndarray, each (n_frames, n)
        Basis-function values along each trajectory; trajectories not longer than ``lag`` are skipped.
    lag : int
        Lag in frames.

    Returns
    -------
    c0, c1 : np.ndarray, shape (n, n), float64
        ``(C00 + C11) / 2`` and ``(C01 + C10) / 2`` (normalised by the number of pairs, no Bessel
        correction, as deeptime's TICA).
    mean : np.ndarray, shape (n,)
        Joint mean of both halves of the pairs.
    n_pairs : int
    """
    a, b = _lagged_pairs(outputs, lag)
    c0, c1, mean = pair_covariances(a.astype(np.float64), b.astype(np.float64))
    return c0, c1, mean, len(a)


def reversible_eig(c0: np.ndarray, c1: np.ndarray, epsilon: float):
    """Solve ``C1 v = lambda (C0 + epsilon I) v``; eigenvalues descending, ``V^T (C0 + eps I) V = I``.

    Returns
    -------
    eigenvalues : np.ndarray, shape (n,)
    eigenvectors : np.ndarray, shape (n, n), columns
    """
    w, v = scipy.linalg.eigh(c1, c0 + epsilon * np.eye(len(c0)))
    order = np.argsort(w)[::-1]
    return w[order], v[:, order]


def timescales_from_eigenvalues(eigenvalues, lag: float) -> np.ndarray:
    """Implied timescales ``-lag / ln(lambda)`` in the units of ``lag``.

    ``lambda >= 1`` gives ``inf``; ``lambda <= 0`` (no relaxation timescale) gives ``nan``.
    """
    lam = np.asarray(eigenvalues, dtype=np.float64)
    out = np.full(lam.shape, np.nan)
    ok = (lam > 0) & (lam < 1)
    out[ok] = -lag / np.log(lam[ok])
    out[lam >= 1] = np.inf
    return out


def choose_lag(scan: dict, lag: int | None = None, tol: float = 0.1, n_slow: int = 1) -> tuple[int, str]:
    """The SRV lag (frames) and how it was chosen: ``lag`` if given, else the lag rule
    (:func:`lss.kinetics.converged_lag`: t1..t_n_slow within ``tol`` of every longer lag) on the scan of
    :func:`implied_timescales_vs_lag`, else the longest scanned lag."""
    from .kinetics import converged_lag

    if lag is not None:
        return int(lag), "set by the lag parameter"
    rule = converged_lag(scan["lags"], scan["timescales"], tol=tol, n_slow=n_slow)
    if rule is not None:
        return int(rule), f"lag rule: t1..t{n_slow} within {tol:.0%} of every longer lag"
    return int(scan["lags"][-1]), "longest scanned lag: t1 has not converged within the scan (scan longer lags)"


def choose_n_components(eigenvalues, min_components: int = 1, max_components: int | None = None) -> int:
    """The latent dimension ``m`` at the largest gap of the eigenvalue spectrum.

    ``m`` maximises ``lambda_m - lambda_{m+1}`` (eigenvalues descending, the constant eigenfunction
    excluded) over ``min_components <= m <= max_components``.

    Parameters
    ----------
    eigenvalues : array-like, shape (n,)
        Descending non-trivial eigenvalues, e.g. ``SRV.eigenvalues_``.
    min_components, max_components : int
        Range of ``m`` considered (``max_components`` defaults to ``n - 1``).

    Returns
    -------
    m : int
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64))[::-1]
    hi = len(lam) - 1 if max_components is None else min(int(max_components), len(lam) - 1)
    if not 1 <= min_components <= hi:
        raise ValueError(f"min_components={min_components}, max_components={max_components}: need "
                         f"1 <= min_components <= max_components < {len(lam)} (number of eigenvalues)")
    gaps = lam[:-1] - lam[1:]                      # gaps[m - 1] = lambda_m - lambda_{m+1}
    m_range = np.arange(min_components, hi + 1)
    return int(m_range[np.argmax(gaps[m_range - 1])])


def variance_concentration(psi) -> np.ndarray:
    """Fraction of frames that carry half of each coordinate's variance (about its median).

    A diagnostic for eigenfunctions that describe a *rarely sampled* state (paper section 2.1:
    such modes may be discarded a posteriori): their variance comes from a handful of frames far
    out in one tail. Reference values: a Gaussian 0.12, a symmetric two-state coordinate 0.25, a
    state visited by a fraction ``p`` of the frames about ``p / 2``.

    Parameters
    ----------
    psi : np.ndarray, shape (n_frames, k) (or (n_frames,)), or a list of them

    Returns
    -------
    np.ndarray, shape (k,), values in (0, 0.5]
    """
    if isinstance(psi, (list, tuple)):
        psi = np.concatenate([np.asarray(p) for p in psi])
    psi = np.asarray(psi, dtype=np.float64)
    if psi.ndim == 1:
        psi = psi[:, None]
    if psi.ndim != 2 or len(psi) < 2:
        raise ValueError(f"psi must have shape (n_frames, k) with n_frames >= 2, got {psi.shape}")
    out = np.empty(psi.shape[1])
    for i in range(psi.shape[1]):
        d2 = np.sort((psi[:, i] - np.median(psi[:, i])) ** 2)[::-1]
        c = np.cumsum(d2)
        out[i] = (np.searchsorted(c, 0.5 * c[-1]) + 1) / len(d2) if c[-1] > 0 else 0.5
    return out


def rare_mode_frames(srv, X, mode: int, n_sd: float = 4.0) -> np.ndarray:
    """The frames that carry an eigenfunction: those in its far tail (the diagnostic of a rare mode).

    Parameters
    ----------
    srv : SRV
        A fitted SRV.
    X : np.ndarray (n_frames, n_features) or list of them
        Features, as given to ``srv.fit``.
    mode : int
        Eigenfunction index (0 = slowest), e.g. one of ``srv.rare_modes_``.
    n_sd : float
        A frame is in the tail when the (unit-variance, zero-mean) eigenfunction exceeds ``n_sd`` in
        absolute value.

    Returns
    -------
    np.ndarray, shape (n_frames,) (all trajectories laid end to end), bool
    """
    psi = srv.transform(X, modes=[int(mode)])
    psi = np.concatenate(psi) if isinstance(psi, list) else psi
    return np.abs(np.asarray(psi)[:, 0]) > n_sd


# ------------------------------------------------------------------------ basis and coordinates
@torch.no_grad()
def _basis(net, trajs, mean, scale, chunk: int = 65536) -> list[np.ndarray]:
    """Network outputs ``chi((x - mean) / scale)`` of each trajectory, float64, in eval mode."""
    dev = next(net.parameters()).device
    net.eval()
    out = []
    for x in trajs:
        u = torch.from_numpy((x - mean.astype(np.float32)) / scale.astype(np.float32))
        z = [net(u[i:i + chunk].to(dev)).double().cpu() for i in range(0, len(u), chunk)]
        out.append(torch.cat(z).numpy())
    return out


def _solve(raw: list[np.ndarray], lag: int, epsilon: float) -> dict:
    """Final float64 eigenproblem on all data: eigenvalues, eigenvectors, coordinate shift and scale.

    ``psi_i = ((raw - output_mean) @ v_i - coord_mean_i) * coord_scale_i``; the keys are the SRV's
    fitted attribute names.
    """
    c0, c1, mean, _ = reversible_covariances(raw, lag)
    lam, vec = reversible_eig(c0, c1, epsilon)
    psi = np.concatenate(raw) @ vec - mean @ vec
    centre, sd = psi.mean(0), psi.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    skew = (((psi - centre) / sd) ** 3).mean(0)
    sign = np.where(skew >= 0, 1.0, -1.0)
    return {"eigenvalues_": lam, "timescales_": timescales_from_eigenvalues(lam, lag), "output_mean_": mean,
            "eigenvectors_": vec, "coord_mean_": centre, "coord_scale_": sign / sd}


def _eigenvalues_of(raw: list[np.ndarray], lag: int, epsilon: float) -> np.ndarray:
    """Descending eigenvalues of the reversible eigenproblem of basis outputs ``raw`` at ``lag`` frames."""
    lag = check_lag(lag, raw, "lag")
    c0, c1, _, _ = reversible_covariances(raw, lag)
    return reversible_eig(c0, c1, epsilon)[0]


def _coords(raw: np.ndarray, solved: dict, modes) -> np.ndarray:
    """Eigenfunction coordinates (n_frames, len(modes)) float32 of basis outputs ``raw`` (n_frames, n_output)."""
    m = list(modes)
    return (((raw - solved["output_mean_"]) @ solved["eigenvectors_"][:, m] - solved["coord_mean_"][m])
            * solved["coord_scale_"][m]).astype(np.float32)


# ------------------------------------------------------------------------------------- the SRV
class SRV(Estimator):
    """State-free reversible VAMPnet: slow eigenfunctions of the transfer operator from trajectories.

    Parameters
    ----------
    n_components : int or None
        The latent dimension ``m``: number of slow eigenfunction coordinates :meth:`transform`
        returns (paper: 3). None: choose it after training at the largest gap of the eigenvalue
        spectrum (:func:`choose_n_components`); the choice is ``n_components_``.
    lag : int
        Lag time ``tau`` in frames of the training trajectories.
    hidden : tuple of int
        Hidden layer widths, tanh activations (paper: (100, 100)).
    batch_norm : bool
        Batch normalisation after each hidden layer (paper: yes).
    n_output : int, optional
        Width of the network's linear output layer (number of basis functions and eigenvalues);
        default: two more than the highest mode kept (``n_components + 2``), 8 when ``n_components``
        and ``modes`` are both None.
    lr : float
        Adam learning rate (paper: 0.01).
    batch_size : int
        Lagged pairs per optimisation step (paper: 200,000; smaller batches take more steps per
        epoch on a CPU). A batch must hold many more pairs than ``n_output``.
    max_epochs, patience : int
        Early stopping: stop after ``patience`` epochs without a better validation VAMP-2 score;
        the best weights are restored.
    val_fraction : float
        Fraction of contiguous blocks of each trajectory held out for validation.
    n_val_blocks : int
        Number of contiguous blocks each trajectory's pairs are cut into for the split.
    n_restarts : int
        Independent trainings with different seeds (same split); the one with the best held-out
        VAMP-2 (training eigenfunctions on the validation pairs) is kept, all in ``restart_scores_``.
    modes : tuple of int, optional
        Explicit eigenfunction indices to keep, 0 = slowest non-trivial (e.g. ``(0, 2, 3)``, the
        authors' "modes 1, 3, 4"); overrides ``n_components``. None: the ``m`` slowest modes,
        skipping rarely sampled ones (``rare_fraction``).
    rare_fraction : float
        When the modes are chosen (``modes=None``), skip eigenfunctions of a rarely sampled state:
        those whose variance concentration (:func:`variance_concentration`, on the training frames)
        is below this fraction (paper section 2.1: such modes may be discarded a posteriori);
        0 keeps the ``m`` slowest.
    min_timescale_ratio : float, optional
        When the modes are chosen, keep only eigenfunctions whose implied timescale is at least this
        many lags (e.g. 2: a coordinate the propagator can follow from one step to the next); with
        ``n_components=None`` every such mode that is not rare is kept (the latent dimension by this
        criterion), otherwise at most ``n_components`` of them. None: no such criterion.
    epsilon : float
        Regularisation added to the diagonal of ``C0`` (units of the output covariance).
    stride : int
        Thinning of the lagged pairs during training (neighbouring frames are nearly duplicates):
        each epoch uses a fresh random ``1/stride`` of the training pairs, the validation score
        every ``stride``-th validation pair. The final eigenproblem always uses all frames.
    device : str
        ``'cpu'``, ``'cuda'`` or ``'auto'``.
    random_state : int, optional
        Seed of the split, the weight initialisation and the batch order of every restart.
    progress : bool
        Show a progress bar over epochs.

    Attributes
    ----------
    net_ : torch.nn.Module
        The trained basis network (eval mode), input: standardised features.
    eigenvalues_ : np.ndarray, shape (n_output,), float64
        All eigenvalues of the final float64 solve on all data, descending.
    timescales_ : np.ndarray, shape (n_output,)
        Implied timescales ``-lag / ln(lambda)`` in frames (``nan`` where ``lambda <= 0``).
    modes_ : tuple of int
        Eigenfunction indices returned by :meth:`transform`.
    n_components_ : int
        The latent dimension ``m = len(modes_)``, chosen or as given.
    n_features_in_ : int
        Number of input features.
    n_output_ : int
        Width of the output layer (number of eigenvalues).
    variance_concentration_ : np.ndarray, shape (n_output_,)
        :func:`variance_concentration` of every eigenfunction on the training frames.
    rare_modes_ : tuple of int
        Modes skipped as rarely sampled (empty when ``modes`` was given or ``rare_fraction=0``).
    history_ : dict
        ``train_vamp2`` (mean over the epoch's batches, train mode) and ``val_vamp2`` (validation
        blocks, eval mode) per epoch of the kept restart.
    restart_scores_ : np.ndarray, shape (n_restarts,)
        Held-out VAMP-2 of each restart at its best epoch, with the eigenfunctions fitted on the
        training pairs (not re-solved on the validation pairs, which would be optimistic):
        ``1 + sum_i lambda_i'^2`` with ``lambda_i'`` the lag-``tau`` autocorrelation of training
        eigenfunction ``i`` on the validation pairs. ``best_restart_`` is the index kept.
    heldout_eigenvalues_ : np.ndarray, shape (n_output_,)
        The ``lambda_i'`` of the kept restart (descending order of the training eigenvalues).
    dimension_rule_ : str
        How the kept modes were chosen (explicit, gap, count, timescale criterion, rare modes).
    best_epoch_ : int
        Epoch whose weights were kept (of the kept restart).
    fit_time_s_ : float
        Wall time of :meth:`fit`, seconds.

    Notes
    -----
    Coordinates: ``psi_i`` is the i-th eigenfunction in the network's basis, shifted and scaled to
    zero mean and unit variance over all training frames. Sign convention: each ``psi_i`` is
    oriented so that its third moment over the training frames is positive (its long tail points
    to positive values); this depends on the data, not on the network's arbitrary basis.
    """

    _format = "lss.srv/2"
    _fitted_attr = "net_"

    def __init__(self, n_components: int | None = 3, lag: int = 1, hidden: tuple[int, ...] = (100, 100),
                 batch_norm: bool = True, n_output: int | None = None, lr: float = 0.01,
                 batch_size: int = 20_000, max_epochs: int = 100, patience: int = 10,
                 val_fraction: float = 0.2, n_val_blocks: int = 10, n_restarts: int = 1,
                 modes: tuple[int, ...] | None = None, rare_fraction: float = 0.0,
                 min_timescale_ratio: float | None = None, epsilon: float = 1e-6, stride: int = 1,
                 device: str = "cpu", random_state: int | None = None, progress: bool = False):
        self._store_params(locals())
        self.hidden = tuple(hidden)
        self.modes = None if modes is None else tuple(int(m) for m in modes)

    # ----------------------------------------------------------------------------------- checks
    def _resolve_modes(self) -> tuple[tuple[int, ...] | None, int]:
        """(explicit modes or None, output width); None modes are chosen after training."""
        m = self.n_components
        if m is not None and (isinstance(m, bool) or int(m) != m or m < 1):
            raise ValueError(f"n_components must be a positive integer or None (choose), got {m!r}")
        if self.modes is not None:
            modes = tuple(self.modes)
            if not modes or min(modes) < 0 or len(set(modes)) != len(modes):
                raise ValueError(f"modes must be distinct non-negative eigenfunction indices, got {self.modes}")
            highest = max(modes)
        else:
            modes = None
            highest = int(m) - 1 if m is not None else None       # None: the criteria choose, any width >= 2
        n_out = (highest if highest is not None else 5) + 3 if self.n_output is None else int(self.n_output)
        if (highest is not None and n_out <= highest) or n_out < 2:
            raise ValueError(f"n_output={self.n_output} is too small: it must exceed the highest mode index "
                             f"kept ({highest}) and be at least 2")
        return modes, n_out

    def _choose_modes(self, eigenvalues, timescales, concentration) -> tuple[tuple[int, ...], tuple[int, ...], str]:
        """(modes kept, rare modes skipped, the rule in words) when ``modes`` is None."""
        n_out = len(eigenvalues)
        rare = tuple(i for i in range(n_out) if concentration[i] < self.rare_fraction)
        rule = []
        if self.min_timescale_ratio is not None:
            slow = [i for i in range(n_out) if np.isfinite(timescales[i]) and
                    timescales[i] >= self.min_timescale_ratio * self.lag]
            candidates = [i for i in slow if i not in rare]
            m = len(candidates) if self.n_components is None else min(int(self.n_components), len(candidates))
            rule.append(f"implied timescale >= {self.min_timescale_ratio:g} lags ({len(slow)} of {n_out} modes)")
        else:
            candidates = [i for i in range(n_out) if i not in rare]
            if self.n_components is None:
                m = choose_n_components(eigenvalues, max_components=n_out - 1)
                rule.append(f"largest eigenvalue gap (m = {m})")
            else:
                m = int(self.n_components)
                rule.append(f"the {m} slowest")
        if self.rare_fraction > 0:
            rule.append(f"not carried by < {self.rare_fraction:.2%} of the frames (rare: {list(rare)})")
        kept = tuple(candidates[:int(m)])
        if not kept:
            raise ValueError(f"no eigenfunction passes the mode criteria ({'; '.join(rule)}; variance "
                             f"concentrations {np.round(concentration, 4).tolist()}, timescales "
                             f"{np.round(timescales, 2).tolist()} frames): relax min_timescale_ratio or "
                             f"rare_fraction, or shorten the lag")
        return kept, rare, "; ".join(rule)

    def _check_params(self):
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("batch_size", "max_epochs", "patience", "n_restarts", "n_val_blocks", "stride"):
            v = getattr(self, name)
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not self.epsilon >= 0:
            raise ValueError(f"epsilon must be non-negative, got {self.epsilon}")

    # -------------------------------------------------------------------------------------- fit
    def fit(self, trajs) -> SRV:
        """Train the SRV on one or several trajectories of features.

        Parameters
        ----------
        trajs : np.ndarray (n_frames, n_features) or list of them, float32
            Feature trajectories (e.g. scaled C-alpha distances); ``lag`` is in their frames.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            NaN/inf or empty input (names ``trajs``); a lag not shorter than the data (names
            ``lag``); constant input (names ``trajs``); too few lagged pairs for the validation
            split or the number of outputs (names ``trajs``); bad hyperparameters (named).
        RuntimeError
            The training diverged (non-finite score); the estimator is left as it was (unfitted if
            it was). No fitted attribute is assigned before training and the final solve succeed.
        """
        t_start = time.perf_counter()
        trajs = as_trajs(trajs, "trajs")
        lag = check_lag(self.lag, trajs, "lag")
        modes, n_out = self._resolve_modes()
        self._check_params()
        mu, sd = _mean_std(trajs)
        flat = sd <= 1e-12 * np.maximum(1.0, np.abs(mu))
        if np.all(flat):
            raise ValueError("trajs is constant (every feature has zero variance): there is no dynamics to learn")
        sd = np.where(flat, 1.0, sd)                                   # constant features -> 0

        rng = np.random.default_rng(self.random_state)
        x0, x1, val = [], [], []
        for x in trajs:
            if len(x) <= lag:
                continue
            x0.append(x[:-lag])
            x1.append(x[lag:])
            val.append(block_split(len(x) - lag, self.n_val_blocks, self.val_fraction, rng))
        x0, x1, val = np.concatenate(x0), np.concatenate(x1), np.concatenate(val)
        need = MIN_PAIRS_PER_OUTPUT * n_out
        vi = np.nonzero(val)[0][::int(self.stride)]
        n_train = math.ceil((~val).sum() / self.stride)
        if min(len(vi), n_train) < need:
            raise ValueError(f"trajs is too short: {len(val)} lagged pairs at lag {lag} give {n_train} "
                             f"training pairs per epoch and {len(vi)} validation pairs (stride {self.stride}); "
                             f"each needs at least {need} ({MIN_PAIRS_PER_OUTPUT} per network output, "
                             f"n_output={n_out})")
        if not 0 <= self.rare_fraction < 0.5:
            raise ValueError(f"rare_fraction must be in [0, 0.5), got {self.rare_fraction}")
        if self.min_timescale_ratio is not None and not self.min_timescale_ratio > 0:
            raise ValueError(f"min_timescale_ratio must be positive or None, got {self.min_timescale_ratio!r}")
        dev = get_device(self.device)
        mu32, sd32 = mu.astype(np.float32), sd.astype(np.float32)
        scale = lambda a: torch.from_numpy((a - mu32) / sd32).to(dev)
        T0, T1, V0, V1 = scale(x0[~val]), scale(x1[~val]), scale(x0[vi]), scale(x1[vi])
        del x0, x1

        seeds = rng.integers(2**31, size=int(self.n_restarts))
        results = []
        for r, seed in enumerate(seeds):
            results.append(self._train_one(int(seed), r, T0, T1, V0, V1, len(mu), n_out, dev))
        scores = np.array([res[0] for res in results])
        best = int(np.argmax(scores))
        _, state, history, best_epoch, heldout_lam = results[best]
        with local_torch_seed(0):             # weights overwritten below; global RNG untouched
            net = _SRVNet(len(mu), self.hidden, n_out, self.batch_norm).to(dev)
        net.load_state_dict(state)
        net.eval()
        raw = _basis(net, trajs, mu, sd)
        solved = _solve(raw, lag, self.epsilon)
        conc = variance_concentration([_coords(z, solved, range(n_out)) for z in raw])
        if modes is not None:
            rare, rule = (), f"explicit modes {list(modes)}"
        else:
            modes, rare, rule = self._choose_modes(solved["eigenvalues_"], solved["timescales_"], conc)

        # training and solve succeeded: only now the fitted attributes
        self.n_features_in_ = len(mu)
        self.n_output_ = n_out
        self.modes_ = modes
        self.n_components_ = len(modes)
        self.rare_modes_ = rare
        self.dimension_rule_ = rule
        self.heldout_eigenvalues_ = heldout_lam
        self.variance_concentration_ = conc
        self.input_mean_, self.input_scale_ = mu, sd
        for k, v in solved.items():
            setattr(self, k, v)
        self.restart_scores_ = scores
        self.restart_histories_ = [res[2] for res in results]
        self.best_restart_, self.history_, self.best_epoch_ = best, history, best_epoch
        self.net_ = net
        self.fit_time_s_ = time.perf_counter() - t_start
        return self

    def _train_one(self, seed, r, T0, T1, V0, V1, n_in, n_out, dev):
        """One training run; returns (best validation VAMP-2, best state_dict, history, best epoch)."""
        with local_torch_seed(seed):          # the initial weights; torch's global state is left alone
            net = _SRVNet(n_in, self.hidden, n_out, self.batch_norm)
        net = net.to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        g = torch_generator(seed + 1, "cpu")
        n = len(T0)
        n_epoch = math.ceil(n / self.stride)                  # pairs seen per epoch
        n_batches = max(1, math.ceil(n_epoch / self.batch_size))
        history = {"train_vamp2": [], "val_vamp2": []}
        best, best_state, best_epoch, bad = -math.inf, None, -1, 0
        from tqdm.auto import tqdm

        desc = "SRV" if self.n_restarts == 1 else f"SRV restart {r + 1}/{self.n_restarts}"
        bar = tqdm(range(self.max_epochs), desc=desc, unit="epoch", disable=not self.progress)
        for epoch in bar:
            net.train()
            perm = torch.randperm(n, generator=g)[:n_epoch].to(dev)
            tot = 0.0
            for idx in torch.tensor_split(perm, n_batches):    # near-equal batches, none tiny
                z = net(torch.cat([T0[idx], T1[idx]]))
                score = _vamp2_torch(z[:len(idx)], z[len(idx):], self.epsilon)
                if not torch.isfinite(score):
                    bar.close()
                    raise RuntimeError(f"SRV training diverged (restart {r}, epoch {epoch}): the VAMP-2 "
                                       f"score is {score.item()}; try a smaller lr (now {self.lr}) or a "
                                       f"larger epsilon (now {self.epsilon}); nothing was kept")
                opt.zero_grad()
                (-score).backward()
                opt.step()
                tot += score.item()
            val_score = self._batch_score(net, V0, V1)
            if not math.isfinite(val_score):
                bar.close()
                raise RuntimeError(f"SRV training diverged (restart {r}, epoch {epoch}): validation VAMP-2 "
                                   f"is {val_score}; nothing was kept")
            history["train_vamp2"].append(tot / n_batches)
            history["val_vamp2"].append(val_score)
            bar.set_postfix(train=f"{tot / n_batches:.4f}", val=f"{val_score:.4f}")
            if val_score > best + 1e-4:
                best, best_epoch, bad = val_score, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                bad += 1
                if bad >= self.patience:
                    break
        bar.close()
        net.load_state_dict(best_state)
        score, lam = self._heldout_score(net, T0, T1, V0, V1)
        return score, best_state, history, best_epoch, lam

    @torch.no_grad()
    def _outputs(self, net, X, chunk: int = 65536) -> np.ndarray:
        """Network outputs of standardised inputs (a tensor), eval mode, float64 NumPy."""
        net.eval()
        return torch.cat([net(X[i:i + chunk]) for i in range(0, len(X), chunk)]).double().cpu().numpy()

    def _heldout_score(self, net, T0, T1, V0, V1) -> tuple[float, np.ndarray]:
        """Held-out VAMP-2 of the eigenfunctions fitted on the training pairs, and their ``lambda_i'``."""
        c0, c1, mean = pair_covariances(self._outputs(net, T0), self._outputs(net, T1))
        _, vec = reversible_eig(c0, c1, self.epsilon)
        lam = _fixed_autocorrelations((self._outputs(net, V0) - mean) @ vec, (self._outputs(net, V1) - mean) @ vec)
        return float(1 + np.sum(lam ** 2)), lam

    def _batch_score(self, net, X0, X1) -> float:
        """Reversible VAMP-2 of lagged pairs (tensors, standardised), network in eval mode, float64."""
        c0, c1, _ = pair_covariances(self._outputs(net, X0), self._outputs(net, X1))
        try:
            lam, _ = reversible_eig(c0, c1, self.epsilon)
        except (np.linalg.LinAlgError, ValueError):
            return math.nan
        return float(1 + np.sum(lam**2))

    # -------------------------------------------------------------------------------- transform
    def _as_input(self, X):
        single = isinstance(X, np.ndarray) or hasattr(X, "shape")
        trajs = as_trajs(X, "X", min_len=1)
        if trajs[0].shape[1] != self.n_features_in_:
            raise ValueError(f"X has {trajs[0].shape[1]} features; this SRV was fitted on {self.n_features_in_}")
        return trajs, single

    @torch.no_grad()
    def basis(self, X, chunk: int = 65536):
        """Raw network outputs ``chi(x)`` (the learned basis, before the eigenvector rotation).

        Parameters
        ----------
        X : np.ndarray (n_frames, n_features) or list of them

        Returns
        -------
        np.ndarray (n_frames, n_output) float64, or a list of them for a list input
        """
        self._check_fitted()
        trajs, single = self._as_input(X)
        out = _basis(self.net_, trajs, self.input_mean_, self.input_scale_, chunk)
        return out[0] if single else out

    def transform(self, X, modes=None):
        """Slow eigenfunction coordinates ``psi`` of configurations.

        Parameters
        ----------
        X : np.ndarray (n_frames, n_features) or list of them, same features as in :meth:`fit`
        modes : sequence of int, optional
            Eigenfunction indices to return (0 = slowest), e.g. ``range(srv.n_output_)`` for all;
            default: the fitted ``modes_``.

        Returns
        -------
        psi : np.ndarray (n_frames, len(modes)) float32, or a list of them for a list input.
            Ordered slow to fast, zero mean and unit variance over the training frames, each with
            a positive third moment on the training data (see the class notes).
        """
        self._check_fitted()
        modes = self.modes_ if modes is None else tuple(int(m) for m in modes)
        if not modes or min(modes) < 0 or max(modes) >= self.n_output_:
            raise ValueError(f"modes must be indices in [0, {self.n_output_}), got {modes}")
        raw = self.basis(X)
        single = isinstance(raw, np.ndarray)
        solved = {k: getattr(self, k) for k in ("output_mean_", "eigenvectors_", "coord_mean_", "coord_scale_")}
        out = [_coords(z, solved, modes) for z in ([raw] if single else raw)]
        return out[0] if single else out

    def select_modes(self, modes) -> SRV:
        """Change which eigenfunctions :meth:`transform` returns, after fitting (e.g. the ``m`` of
        :func:`choose_n_components`); the network and the eigenproblem are unchanged.

        Parameters
        ----------
        modes : sequence of int
            Distinct indices in ``[0, n_output_)``, 0 = slowest.
        """
        self._check_fitted()
        modes = tuple(int(m) for m in modes)
        if not modes or min(modes) < 0 or max(modes) >= self.n_output_ or len(set(modes)) != len(modes):
            raise ValueError(f"modes must be distinct indices in [0, {self.n_output_}), got {modes}")
        self.modes_ = modes
        self.n_components_ = len(modes)
        return self

    def fit_transform(self, trajs):
        """``fit(trajs)`` then ``transform(trajs)``."""
        return self.fit(trajs).transform(trajs)

    # ----------------------------------------------------------------------------- diagnostics
    def timescales(self, frame_time: float = 1.0) -> np.ndarray:
        """Implied timescales of all eigenfunctions, ``timescales_ * frame_time`` (units of ``frame_time``)."""
        self._check_fitted()
        return self.timescales_ * float(frame_time)

    def describe_spectrum(self) -> str:
        """One line per eigenfunction: eigenvalue (held out), implied timescale in frames and lags, the fraction
        of frames carrying half its variance, and whether it is kept (as which psi) or skipped as rare."""
        self._check_fitted()
        lines = []
        for i in range(self.n_output_):
            t, role = self.timescales_[i], (f" -> psi_{self.modes_.index(i) + 1}" if i in self.modes_
                                            else " (rare)" if i in self.rare_modes_ else "")
            lines.append(f"phi_{i + 1}: lambda = {self.eigenvalues_[i]:7.4f} (held out {self.heldout_eigenvalues_[i]:7.4f}), "
                         f"t = {t:7.1f} frames = {t / self.lag:5.2f} lags; half its variance from "
                         f"{100 * self.variance_concentration_[i]:5.2f} % of frames{role}")
        return "\n".join(lines + [f"kept {self.modes_} (m = {self.n_components_}) by: {self.dimension_rule_}"])

    def eigenvalues_at(self, X, lag: int) -> np.ndarray:
        """Eigenvalues of the learned basis re-estimated at another lag (frames), descending.

        The basis is fixed; only the float64 eigenproblem is solved again on ``X``. A good basis
        gives implied timescales ``-lag / ln(lambda)`` that do not change with the lag.
        """
        raw = self.basis(X)
        return _eigenvalues_of([raw] if isinstance(raw, np.ndarray) else raw, lag, self.epsilon)

    def score(self, X, k: int | None = None) -> float:
        """Reversible VAMP-2 score ``1 + sum_i lambda_i'^2`` of the fitted eigenfunctions on ``X`` at ``lag``.

        ``lambda_i'`` is the lag-``tau`` autocorrelation on ``X`` of eigenfunction ``i`` as fitted (its
        eigenvector is not re-solved on ``X``: a re-solve would fit the score to the data it scores
        and overstate it on held-out data). ``k`` keeps only the ``k`` slowest eigenfunctions (default:
        all ``n_output_``).

        On the data the SRV was fitted on this is ``1 + sum_i lambda_i^2``; on other data it is not a
        variational bound (cross-correlations between eigenfunctions are not re-fitted), but a direct
        test of each fitted eigenfunction.

        Returns
        -------
        float
        """
        self._check_fitted()
        raw = self.basis(X)
        raw = [raw] if isinstance(raw, np.ndarray) else raw
        lag = check_lag(self.lag, raw, "X")
        f0, f1 = _lagged_pairs([(z - self.output_mean_) @ self.eigenvectors_ for z in raw], lag, "X")
        lam = _fixed_autocorrelations(f0, f1)
        if k is not None:
            lam = lam[:int(k)]
        return float(1 + np.sum(lam ** 2))

    # ----------------------------------------------------------------------------- persistence
    _state = {"fitted": ("n_features_in_", "n_output_", "modes_", "n_components_", "rare_modes_", "dimension_rule_",
                         "heldout_eigenvalues_", "variance_concentration_", "input_mean_", "input_scale_",
                         "eigenvalues_", "timescales_", "output_mean_", "eigenvectors_", "coord_mean_",
                         "coord_scale_", "history_", "restart_scores_", "restart_histories_", "best_restart_",
                         "best_epoch_", "fit_time_s_")}
    _nets = {"state_dict": "net_"}

    def _new_net(self, key):
        return _SRVNet(int(self.n_features_in_), self.hidden, int(self.n_output_), self.batch_norm)

    def _restored(self):
        self.modes_ = tuple(int(i) for i in self.modes_)
        self.rare_modes_ = tuple(int(i) for i in self.rare_modes_)


# ------------------------------------------------------------------------------- lag selection
def implied_timescales_vs_lag(trajs, lags, n_timescales: int = 3, estimator: SRV | None = None,
                              progress: bool = False, n_blocks: int | None = 5, **params) -> dict:
    """Implied timescales of the slowest SRV eigenfunctions as a function of the lag, with block errors.

    Two modes:

    - ``estimator=None``: train one SRV per lag with ``params`` (``lag`` is set per entry); the
      honest test of lag convergence (the paper's choice of tau), and the input of the lag rule
      :func:`lss.kinetics.converged_lag`.
    - ``estimator=srv`` (fitted): keep its basis and re-solve the eigenproblem at each lag (fast;
      tests whether that basis's timescales have converged).

    Errors: each lag's basis is kept and its eigenproblem re-solved on ``n_blocks`` contiguous blocks
    of the data (:func:`lss.stats.split_blocks`); ``timescales_spread`` is the standard deviation
    over the blocks, ``timescales_err`` the standard error ``spread / sqrt(n_blocks)``. The network
    is not retrained per block, so this is the statistical error of the eigenproblem, not the
    training noise (the restarts' spread measures that).

    Parameters
    ----------
    trajs : np.ndarray (n_frames, n_features) or list of them
    lags : sequence of int
        Lags in frames.
    n_timescales : int
        Number of slowest timescales reported.
    n_blocks : int or None
        Blocks for the errors; None skips them (NaN).

    Returns
    -------
    dict with ``lags`` (n_lags,), ``eigenvalues`` (n_lags, n_timescales), ``timescales``
    (n_lags, n_timescales) in frames, ``timescales_spread`` and ``timescales_err`` (same shape, frames),
    ``val_scores`` (n_lags,) held-out VAMP-2 (NaN with a fixed basis) and ``seconds`` (n_lags,) wall
    time per lag.
    """
    from tqdm.auto import tqdm

    from .stats import split_blocks

    trajs = as_trajs(trajs, "trajs")
    lags = [check_lag(lag, trajs, "lags") for lag in lags]
    if not lags:
        raise ValueError("lags is empty")
    lam = np.full((len(lags), n_timescales), np.nan)
    spread = np.full((len(lags), n_timescales), np.nan)
    scores, secs = np.full(len(lags), np.nan), np.zeros(len(lags))
    for i, lag in enumerate(tqdm(lags, desc="lags", disable=not progress)):
        t = time.perf_counter()
        if estimator is None:
            srv = SRV(**{**params, "lag": lag}).fit(trajs)
            ev, scores[i] = srv.eigenvalues_, srv.restart_scores_[srv.best_restart_]
            raw = srv.basis(trajs)
        else:
            srv = estimator
            if i == 0:
                raw = estimator.basis(trajs)               # one basis for every lag and block
            ev = _eigenvalues_of(raw, lag, srv.epsilon)
        k = min(n_timescales, len(ev))
        lam[i, :k] = ev[:k]
        per_block = []
        for b in split_blocks(raw, n_blocks) if n_blocks is not None else []:
            b = [p for p in b if len(p) > lag]
            if b and sum(len(p) - lag for p in b) > 10 * len(ev):
                per_block.append(timescales_from_eigenvalues(_eigenvalues_of(b, lag, srv.epsilon)[:k], lag))
        if len(per_block) >= 2:
            with np.errstate(invalid="ignore"):
                spread[i, :k] = np.nanstd(np.array(per_block), 0, ddof=1)
        secs[i] = time.perf_counter() - t
    ts = np.stack([timescales_from_eigenvalues(lam[i], lag) for i, lag in enumerate(lags)])
    n_used = n_blocks if n_blocks is not None else 1
    return {"lags": np.asarray(lags), "eigenvalues": lam, "timescales": ts, "timescales_spread": spread,
            "timescales_err": spread / np.sqrt(n_used), "val_scores": scores, "seconds": secs}


# ------------------------------------------------------------------------------- latent files
