"""The 1-D four-well potential of the paper (section 3.1), its Brownian dynamics and exact reference.

Units are dimensionless: positions ``x``, energies in kT, time in integration steps.

The paper writes the dynamics as "D = kT = 1000, dt = 0.001", which in the convention of the
authors' earlier code is the update ``x_{n+1} = x_n - dt V'(x_n) + dt sqrt(2 D) xi_n``. That is the
Euler-Maruyama scheme of overdamped Langevin dynamics ``dx = -D/kT V'(x) dt + sqrt(2 D) dW`` with
``D = kT = 1`` and time step ``h = 0.001``, which is what :func:`simulate` integrates by default.

Two exact references are provided:

- :func:`em_transition_matrix`: the one-step Euler-Maruyama kernel on a fine grid, raised to the
  lag: exact for the discrete-time dynamics that :func:`simulate` integrates, up to the grid.
- :func:`sqra_generator`: the square-root approximation of the continuous Smoluchowski generator,
  ``exp(tau Q)`` giving the continuous-time operator (the ``h -> 0`` limit).

Note: deeptime's ``prinz_potential`` uses a prefactor 4 instead of the paper's 2; do not mix them.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.linalg import expm

from .stats import total_variation  # noqa: F401 (fw.total_variation in notebook 01)

#: Prefactor of the paper's potential (deeptime's Prinz potential uses 4).
PREFACTOR = 2.0


def potential(x):
    """V(x) = 2 (x^8 + 0.8 e^{-80 x^2} + 0.2 e^{-80 (x-0.5)^2} + 0.5 e^{-40 (x+0.5)^2}), in kT.

    Parameters
    ----------
    x : float or np.ndarray, any shape (dimensionless position)

    Returns
    -------
    V : same shape as ``x``, kT
    """
    x = np.asarray(x, dtype=float)
    return PREFACTOR * (x**8 + 0.8 * np.exp(-80 * x**2) + 0.2 * np.exp(-80 * (x - 0.5) ** 2)
                        + 0.5 * np.exp(-40 * (x + 0.5) ** 2))


def force(x):
    """-dV/dx, same shape as ``x`` (kT per unit length)."""
    x = np.asarray(x, dtype=float)
    return -PREFACTOR * (8 * x**7 - 128 * x * np.exp(-80 * x**2) - 32 * (x - 0.5) * np.exp(-80 * (x - 0.5) ** 2)
                         - 40 * (x + 0.5) * np.exp(-40 * (x + 0.5) ** 2))


def _force_scalar(x: float) -> float:
    e = math.exp
    return -PREFACTOR * (8 * x**7 - 128 * x * e(-80 * x * x) - 32 * (x - 0.5) * e(-80 * (x - 0.5) ** 2)
                         - 40 * (x + 0.5) * e(-40 * (x + 0.5) ** 2))


def simulate(n_steps: int, dt: float = 1e-3, D: float = 1.0, kT: float = 1.0, x0: float = 0.0,
             save_every: int = 1, random_state: int | None = None, n_walkers: int = 1,
             progress: bool = False) -> np.ndarray:
    """Euler-Maruyama Brownian dynamics in the four-well potential.

    ``x_{n+1} = x_n + D/kT F(x_n) dt + sqrt(2 D dt) xi_n`` with ``xi_n ~ N(0, 1)``.

    Parameters
    ----------
    n_steps : int
        Number of integration steps.
    dt, D, kT : float
        Time step, diffusion coefficient and thermal energy (the paper's setting is the default:
        see the module docstring).
    x0 : float
        Start position.
    save_every : int
        Keep every ``save_every``-th position (the start included).
    random_state : int, optional
        Seed.
    n_walkers : int
        Independent walkers integrated side by side (vectorised); 1 uses a fast scalar loop.
    progress : bool
        Show a progress bar.

    Returns
    -------
    x : np.ndarray, shape (n_steps // save_every + 1,) for one walker,
        else (n_walkers, n_steps // save_every + 1); float64
    """
    if n_steps < 1 or save_every < 1:
        raise ValueError(f"n_steps and save_every must be positive, got {n_steps}, {save_every}")
    rng = np.random.default_rng(random_state)
    n_out = n_steps // save_every + 1
    drift = D / kT * dt
    noise = math.sqrt(2 * D * dt)
    out = np.empty((n_walkers, n_out))
    out[:, 0] = x0
    chunk = max(save_every, (1_000_000 // save_every) * save_every)
    from tqdm.auto import tqdm

    bar = tqdm(total=n_steps, desc="Brownian dynamics", unit="step", unit_scale=True, disable=not progress,
               mininterval=1.0)
    done = 0
    if n_walkers == 1:
        x = float(x0)
        k = 1
        while done < n_steps:
            m = min(chunk, n_steps - done)
            xi = (noise * rng.standard_normal(m)).tolist()
            f = _force_scalar
            for i in range(m):
                x = x + drift * f(x) + xi[i]
                if (done + i + 1) % save_every == 0:
                    out[0, k] = x
                    k += 1
            done += m
            bar.update(m)
        bar.close()
        return out[0]
    x = np.full(n_walkers, float(x0))
    for step in range(1, n_steps + 1):
        x = x + drift * force(x) + noise * rng.standard_normal(n_walkers)
        if step % save_every == 0:
            out[:, step // save_every] = x
        if step % 10_000 == 0:
            bar.update(10_000)
    bar.close()
    return out


def grid(n: int = 600, lo: float = -1.5, hi: float = 1.5) -> np.ndarray:
    """Cell centres of a uniform grid on [lo, hi], shape (n,)."""
    dx = (hi - lo) / n
    return lo + dx * (np.arange(n) + 0.5)


def boltzmann(x: np.ndarray, kT: float = 1.0) -> np.ndarray:
    """Normalised stationary probabilities ``exp(-V/kT)`` on grid cells ``x``, shape like ``x``."""
    w = np.exp(-(potential(x) - potential(x).min()) / kT)
    return w / w.sum()


def em_transition_matrix(x: np.ndarray, dt: float = 1e-3, D: float = 1.0, kT: float = 1.0,
                         n_steps: int = 1) -> np.ndarray:
    """Transition matrix of ``n_steps`` Euler-Maruyama steps between grid cells.

    The one-step kernel from cell ``i`` is the Gaussian N(x_i + D/kT F(x_i) dt, 2 D dt) evaluated
    at the cell centres and normalised per row; the ``n_steps`` matrix is its power.

    Parameters
    ----------
    x : np.ndarray, shape (n,)
        Uniform grid of cell centres (fine compared with ``sqrt(2 D dt)``).

    Returns
    -------
    T : np.ndarray, shape (n, n), row-stochastic
    """
    mean = x + D / kT * force(x) * dt
    var = 2 * D * dt
    K = np.exp(-((x[None, :] - mean[:, None]) ** 2) / (2 * var))
    K /= K.sum(axis=1, keepdims=True)
    return np.linalg.matrix_power(K, n_steps)


def sqra_generator(x: np.ndarray, D: float = 1.0, kT: float = 1.0) -> np.ndarray:
    """Square-root approximation of the Smoluchowski generator on a uniform grid.

    ``Q_ij = D / dx^2 * exp(-(V_j - V_i) / (2 kT))`` for neighbours ``|i - j| = 1``, rows summing to
    zero; ``expm(t Q)`` is the continuous-time transition matrix over time ``t``.

    Returns
    -------
    Q : np.ndarray, shape (n, n), rate matrix (per unit time)
    """
    dx = x[1] - x[0]
    V = potential(x) / kT
    n = len(x)
    Q = np.zeros((n, n))
    i = np.arange(n - 1)
    Q[i, i + 1] = D / dx**2 * np.exp(-(V[i + 1] - V[i]) / 2)
    Q[i + 1, i] = D / dx**2 * np.exp(-(V[i] - V[i + 1]) / 2)
    Q[np.arange(n), np.arange(n)] = -Q.sum(axis=1)
    return Q


def sqra_transition_matrix(x: np.ndarray, t: float, D: float = 1.0, kT: float = 1.0) -> np.ndarray:
    """``expm(t Q)`` of :func:`sqra_generator`: the continuous dynamics over time ``t``, shape (n, n)."""
    T = expm(t * sqra_generator(x, D, kT))
    T = np.clip(T, 0, None)
    return T / T.sum(axis=1, keepdims=True)


def _leading_eigs(T: np.ndarray, k: int, left: bool = False):
    """The ``k`` eigenpairs of largest modulus (Arnoldi; dense fallback for small matrices)."""
    A = T.T if left else T
    if len(A) <= 4 * k + 2:
        w, v = np.linalg.eig(A)
    else:
        from scipy.sparse.linalg import eigs

        w, v = eigs(A, k=k, which="LM", tol=1e-12, v0=np.full(len(A), 1.0 / len(A)))
    order = np.argsort(-np.real(w))[:k]
    return np.real(w[order]), np.real(v[:, order])


def stationary_distribution(T: np.ndarray) -> np.ndarray:
    """Left eigenvector of a row-stochastic matrix for eigenvalue 1, normalised, shape (n,)."""
    _, v = _leading_eigs(T, 1, left=True)
    pi = np.abs(v[:, 0])
    return pi / pi.sum()


def implied_timescales(T: np.ndarray, lag: float, k: int = 3) -> np.ndarray:
    """The ``k`` slowest implied timescales ``-lag / ln(lambda_i)`` (i >= 1), in the units of ``lag``."""
    w, _ = _leading_eigs(T, k + 1)
    lam = np.sort(w)[::-1][1:k + 1]
    return -lag / np.log(np.clip(lam, 1e-300, 1 - 1e-15))


def coarse_grain(T: np.ndarray, pi: np.ndarray, x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Project a fine-grid operator on coarse bins: what an MSM on those bins estimates at infinite data.

    ``C_ab = sum_{i in a, j in b} pi_i T_ij`` normalised per row; bins without mass are dropped.

    Parameters
    ----------
    T : (n, n) fine transition matrix, pi : (n,) its stationary vector, x : (n,) fine cell centres
    edges : (n_bins + 1,) bin edges

    Returns
    -------
    T_cg : (n_nonempty, n_nonempty) row-stochastic
    """
    a = np.clip(np.digitize(x, edges) - 1, 0, len(edges) - 2)
    M = np.zeros((len(x), len(edges) - 1))
    M[np.arange(len(x)), a] = 1
    C = M.T @ (pi[:, None] * T) @ M
    keep = C.sum(axis=1) > 0
    C = C[np.ix_(keep, keep)]
    return C / C.sum(axis=1, keepdims=True)


class ExactReference:
    """Exact lag-``tau`` reference of the Euler-Maruyama dynamics, on a fine grid nested in bins.

    Parameters
    ----------
    lag : int
        Lag ``tau`` in integration steps.
    n_bins : int
        Number of equal bins on [lo, hi] used for histograms and MSMs (paper: 100).
    lo, hi : float
        Domain (the density beyond |x| = 1.3 is below 1e-6 of its maximum).
    refine : int
        Fine-grid cells per bin (the fine grid resolves the one-step noise ``sqrt(2 D dt)``).
    dt, D, kT : float
        Dynamics, as in :func:`simulate`.

    Attributes
    ----------
    edges : (n_bins + 1,) bin edges; centers : (n_bins,) bin centres
    x : (n_bins * refine,) fine cell centres; dx : fine cell width
    T : (n_fine, n_fine) exact lag-``tau`` transition matrix on the fine grid
    pi : (n_fine,) its stationary probabilities; density : (n_fine,) stationary density (per unit x)
    p_bins : (n_bins,) exact stationary probability of each bin
    T_bins : (n_bins, n_bins) the exact operator projected on the bins (what a 100-bin MSM estimates)
    timescales : (3,) implied timescales of ``T``, steps; timescales_bins : (3,) of ``T_bins``, steps
    """

    def __init__(self, lag: int = 100, n_bins: int = 100, lo: float = -1.3, hi: float = 1.3,
                 refine: int = 10, dt: float = 1e-3, D: float = 1.0, kT: float = 1.0):
        self.lag, self.dt, self.D, self.kT = lag, dt, D, kT
        self.edges = np.linspace(lo, hi, n_bins + 1)
        self.centers = 0.5 * (self.edges[1:] + self.edges[:-1])
        self.x = grid(n_bins * refine, lo, hi)
        self.dx = self.x[1] - self.x[0]
        self.T = em_transition_matrix(self.x, dt, D, kT, n_steps=lag)
        self.pi = stationary_distribution(self.T)
        self.density = self.pi / self.dx
        self.p_bins = self.pi.reshape(n_bins, refine).sum(1)
        self.T_bins = coarse_grain(self.T, self.pi, self.x, self.edges)
        self.timescales = implied_timescales(self.T, lag, 3)
        self.timescales_bins = implied_timescales(self.T_bins, lag, 3)

    def transition_density(self, x_from: np.ndarray) -> np.ndarray:
        """Exact ``p_tau(y | x)`` for start points ``x_from`` (n,), on the fine grid: (n, n_fine), per unit y.

        Start points are snapped to the nearest fine cell.
        """
        i = np.clip(np.searchsorted(self.x, x_from) , 0, len(self.x) - 1)
        return self.T[i] / self.dx

    def histogram(self, samples) -> np.ndarray:
        """Normalised histogram of samples on the reference bins, (n_bins,)."""
        h = np.histogram(np.ravel(samples), self.edges)[0].astype(float)
        return h / h.sum()


def conditional_density_error(ref: ExactReference, log_prob, x_range: tuple[float, float]) -> float:
    """Stationary-weighted mean total-variation distance between learned and exact ``p_tau(y | x)``.

    ``E_{x ~ pi}[ 0.5 * integral |p_learned(y | x) - p_exact(y | x)| dy ]`` over fine-grid start points
    ``x`` inside ``x_range`` (where the learned model was trained), in [0, 1] (0 = identical).

    Parameters
    ----------
    log_prob : callable (x_t (n,), x_tau (n,)) -> (n,) log density, e.g. ``MDNPropagator.log_prob``
    """
    sel = np.nonzero((ref.x >= x_range[0]) & (ref.x <= x_range[1]))[0]
    y = ref.x
    logp = log_prob(np.repeat(ref.x[sel], len(y)), np.tile(y, len(sel))).reshape(len(sel), len(y))
    tv = 0.5 * np.abs(np.exp(logp) - ref.T[sel] / ref.dx).sum(axis=1) * ref.dx
    w = ref.pi[sel] / ref.pi[sel].sum()
    return float(np.sum(w * tv))


def transition_density_grid(ref: ExactReference, log_prob, x_range: tuple[float, float], every: int = 4):
    """Exact and learned ``p_tau(y | x)`` on a common grid inside ``x_range`` (for Fig. 2's panels).

    Parameters
    ----------
    log_prob : callable (x_t (n,), x_tau (n,)) -> (n,) log density, as for :func:`conditional_density_error`
    x_range : (float, float)
        Where the learned model was trained.
    every : int
        Keep every ``every``-th fine-grid point inside ``x_range``.

    Returns
    -------
    yy : np.ndarray, shape (n,)
        The grid (start and end points alike).
    P_exact, P_model : np.ndarray, shape (n, n)
        Densities per unit y; row: start point, column: end point.
    """
    inside = (ref.x >= x_range[0]) & (ref.x <= x_range[1])
    yy = ref.x[inside][::every]
    P_exact = ref.transition_density(yy)[:, inside][:, ::every]
    P_model = np.exp(log_prob(np.repeat(yy, len(yy)), np.tile(yy, len(yy)))).reshape(len(yy), len(yy))
    return yy, P_exact, P_model
