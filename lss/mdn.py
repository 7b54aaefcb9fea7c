"""Mixture density network (MDN) propagator of latent dynamics (paper section 2.2).

The transition density over a lag ``tau`` is a mixture of ``C`` diagonal Gaussians whose weights,
means and widths are functions of the current state, learned by a small feed-forward network:

    p_tau(y | x) = sum_c a_c(x) N(y; mu_c(x), diag sigma_c(x)^2)

Data are scaled to [0, 1] per dimension (min/max of the training data); means are bounded by a
sigmoid, widths made positive by ELU + 1, weights normalised by softmax. Training minimises the
negative log-likelihood (NLL) of lagged pairs with Adam and stops early on the NLL of held-out
contiguous blocks of trajectory. Sampling is batched: many trajectories advance together, one
network call per lag step.
"""
from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .base import Estimator
from .utils import as_points, as_trajs, block_split, check_lag, get_device, local_torch_seed, torch_generator, torch_threads

_MIN_SIGMA = 1e-4  # in scaled [0, 1] units


class _MDNNet(nn.Module):
    def __init__(self, dim: int, n_kernels: int, hidden: tuple[int, ...]):
        super().__init__()
        layers, d = [], dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(d, n_kernels * (1 + 2 * dim))
        self.dim, self.C = dim, n_kernels

    def forward(self, x):
        h = self.head(self.body(x))
        C, m = self.C, self.dim
        logits = h[:, :C]
        mu = torch.sigmoid(h[:, C:C + C * m]).view(-1, C, m)
        sigma = (nn.functional.elu(h[:, C + C * m:]) + 1 + _MIN_SIGMA).view(-1, C, m)
        return torch.log_softmax(logits, dim=1), mu, sigma

    def step(self, u, gumbel, eps, rows):
        """One sampling step for a batch: pick a kernel per row (Gumbel-max on the logits), then
        draw from it. Only the chosen kernel's mean and width are squashed. u (n, m) -> (n, m)."""
        h = self.head(self.body(u))
        C, m = self.C, self.dim
        c = torch.argmax(h[:, :C] + gumbel, dim=1)
        mu = torch.sigmoid(h[:, C:C + C * m].view(-1, C, m)[rows, c])
        sigma = nn.functional.elu(h[:, C + C * m:].view(-1, C, m)[rows, c]) + 1 + _MIN_SIGMA
        return mu + sigma * eps


def _mixture_log_prob(log_w, mu, sigma, y):
    """log p(y) of a diagonal Gaussian mixture; log_w (n, C), mu/sigma (n, C, m), y (n, m) -> (n,).

    ``torch.distributions.MixtureSameFamily`` of independent normals (its log-density equals the
    written-out ``logsumexp_k [log w_k + sum_i log N(y_i; mu_ki, sigma_ki)]`` to rounding).
    """
    D = torch.distributions
    kernels = D.Independent(D.Normal(mu, sigma, validate_args=False), 1)
    return D.MixtureSameFamily(D.Categorical(logits=log_w, validate_args=False), kernels,
                               validate_args=False).log_prob(y)


@torch.no_grad()
def _nll(net, u0, u1, batch: int = 65536) -> float:
    """Mean negative log-likelihood (nats per pair, scaled units) of pairs ``u0 -> u1``, eval mode."""
    net.eval()
    tot = 0.0
    for i in range(0, len(u0), batch):
        tot += -_mixture_log_prob(*net(u0[i:i + batch]), u1[i:i + batch]).sum().item()
    return tot / max(len(u0), 1)


class MDNPropagator(Estimator):
    """Mixture density network propagator ``p_tau(x_{t+tau} | x_t)``.

    Parameters
    ----------
    n_kernels : int
        Number of Gaussian kernels ``C`` (paper: 8 for the four-well, 24 for Trp-cage).
    lag : int
        Lag time ``tau`` in frames of the training trajectories.
    hidden : tuple of int
        Hidden layer widths, ReLU activations (paper: (100, 100)).
    lr : float
        Adam learning rate.
    lr_decay : float
        Factor applied to the learning rate when the validation NLL stalls for ``patience // 3``
        epochs (``ReduceLROnPlateau``); 1 disables it.
    batch_size : int
        Pairs per optimisation step.
    max_epochs, patience : int
        Early stopping: stop after ``patience`` epochs without a better validation NLL; the best
        weights are restored.
    val_fraction : float
        Fraction of contiguous blocks held out for validation.
    n_val_blocks : int
        Number of contiguous blocks each trajectory's pairs are cut into for the split.
    reversible : bool
        Also train on the time-reversed pairs ``(x_{t+tau}, x_t)`` (valid for reversible dynamics).
    stride : int
        Use every ``stride``-th lagged pair (consecutive pairs are nearly identical).
    device : str
        ``'cpu'``, ``'cuda'`` or ``'auto'``.
    random_state : int, optional
        Seed of weight initialisation, the split and the batch order.
    progress : bool
        Show a progress bar over epochs.

    Attributes
    ----------
    net_ : torch.nn.Module
    n_components_ : int
        The latent dimension ``m`` (width of the trajectories it was fitted on).
    n_features_in_ : int
        The same ``m``: input width, as scikit-learn names it.
    lo_, hi_ : np.ndarray, shape (m,)
        Min and max of the training data (the [0, 1] scaling).
    history_ : dict
        ``train_nll`` and ``val_nll`` per epoch (nats per pair, in scaled units).
    best_epoch_ : int
    fit_time_s_ : float
        Wall time of :meth:`fit`, seconds.
    clipped_fraction_ : float
        Fraction of sampled coordinates that left [0, 1] and were clipped in the last :meth:`sample`.
    """

    _format = "lss.mdn/2"
    _fitted_attr = "net_"

    def __init__(self, n_kernels: int = 24, lag: int = 1, hidden: tuple[int, ...] = (100, 100),
                 lr: float = 1e-3, lr_decay: float = 0.3, batch_size: int = 1024, max_epochs: int = 100, patience: int = 10,
                 val_fraction: float = 0.2, n_val_blocks: int = 10, reversible: bool = True,
                 stride: int = 1, device: str = "cpu", random_state: int | None = None,
                 progress: bool = False):
        self._store_params(locals())
        self.hidden = tuple(hidden)

    # ----------------------------------------------------------------------------------- helpers
    def _scale(self, x):
        return (x - self.lo_) / (self.hi_ - self.lo_)

    def _unscale(self, u):
        return u * (self.hi_ - self.lo_) + self.lo_

    def _pairs(self, trajs, rng):
        X0, X1, V = [], [], []
        for x in trajs:
            if len(x) <= self.lag:
                continue
            a, b = x[:-self.lag:self.stride], x[self.lag::self.stride]
            X0.append(a)
            X1.append(b)
            V.append(block_split(len(a), self.n_val_blocks, self.val_fraction, rng))
        return np.concatenate(X0), np.concatenate(X1), np.concatenate(V)

    # --------------------------------------------------------------------------------------- fit
    def fit(self, trajs, checkpoint: str | Path | None = None) -> "MDNPropagator":
        """Train on lagged pairs of one or several trajectories.

        Parameters
        ----------
        trajs : np.ndarray (n_frames, m) or list of them
            Latent (or physical) trajectories; ``lag`` is in their frames.
        checkpoint : path, optional
            Where to save the trained propagator (``save``); written only after a successful fit.

        Returns
        -------
        self

        Notes
        -----
        On the CPU the fit runs on one torch thread: for a network this small, measured on a
        2-core machine, a second thread gains little when idle and costs 10x when the cores are busy.

        Raises
        ------
        ValueError
            Bad input: NaN/inf (names ``trajs``), a non-positive lag or one not shorter than the data
            (names ``lag``), constant data (names the dimension).
        RuntimeError
            The training diverged (a non-finite loss); nothing is written and the estimator is left
            as it was (unfitted if it was): fitted attributes are assigned only after success.
        """
        with torch_threads(1 if get_device(self.device).type == "cpu" else None):
            return self._fit(trajs, checkpoint)

    def _fit(self, trajs, checkpoint):
        t_start = time.perf_counter()
        trajs = as_trajs(trajs, "trajs")
        check_lag(self.lag, trajs, "lag")
        if int(self.n_kernels) != self.n_kernels or self.n_kernels < 1:
            raise ValueError(f"n_kernels must be a positive integer, got {self.n_kernels!r}")
        if self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        rng = np.random.default_rng(self.random_state)
        init_seed = int(rng.integers(2**31))
        allx = np.concatenate(trajs)
        lo = allx.min(0).astype(np.float64)
        hi = allx.max(0).astype(np.float64)
        flat = np.nonzero(hi - lo <= 0)[0]
        if len(flat):
            raise ValueError(f"trajs: dimension(s) {flat.tolist()} are constant; cannot scale to [0, 1]")
        m = allx.shape[1]
        scale = lambda x: (x - lo) / (hi - lo)  # noqa: E731
        x0, x1, val = self._pairs(trajs, rng)
        u0, u1 = scale(x0).astype(np.float32), scale(x1).astype(np.float32)
        tr0, tr1, va0, va1 = u0[~val], u1[~val], u0[val], u1[val]
        if self.reversible:
            tr0, tr1 = np.concatenate([tr0, tr1]), np.concatenate([tr1, tr0])
            va0, va1 = np.concatenate([va0, va1]), np.concatenate([va1, va0])
        dev = get_device(self.device)
        with local_torch_seed(init_seed):          # the initial weights; torch's global state is left alone
            net = _MDNNet(m, int(self.n_kernels), self.hidden)
        net = net.to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        sched = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=self.lr_decay, patience=max(1, self.patience // 3))
                 if self.lr_decay < 1 else None)
        T0, T1 = torch.from_numpy(tr0).to(dev), torch.from_numpy(tr1).to(dev)
        V0, V1 = torch.from_numpy(va0).to(dev), torch.from_numpy(va1).to(dev)
        g = torch_generator(int(rng.integers(2**31)), "cpu")
        history = {"train_nll": [], "val_nll": []}
        best, best_state, best_epoch, bad = math.inf, None, -1, 0
        from tqdm.auto import tqdm

        bar = tqdm(range(self.max_epochs), desc="MDN", unit="epoch", disable=not self.progress)
        try:
            for epoch in bar:
                net.train()
                perm = torch.randperm(len(T0), generator=g).to(dev)
                tot, n = 0.0, 0
                for i in range(0, len(perm), self.batch_size):
                    idx = perm[i:i + self.batch_size]
                    loss = -_mixture_log_prob(*net(T0[idx]), T1[idx]).mean()
                    if not torch.isfinite(loss):
                        raise RuntimeError(f"MDN training diverged at epoch {epoch} (loss {loss.item()}); "
                                           f"try a smaller lr (now {self.lr}); nothing was kept or written")
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    tot += loss.item() * len(idx)
                    n += len(idx)
                val_nll = _nll(net, V0, V1)
                if not math.isfinite(val_nll):
                    raise RuntimeError(f"MDN training diverged at epoch {epoch} (validation NLL {val_nll}); "
                                       f"nothing was kept or written")
                history["train_nll"].append(tot / n)
                history["val_nll"].append(val_nll)
                bar.set_postfix(train=f"{tot / n:.3f}", val=f"{val_nll:.3f}")
                if sched is not None:
                    sched.step(val_nll)
                if val_nll < best - 1e-4:
                    best, best_state, bad, best_epoch = val_nll, copy.deepcopy(net.state_dict()), 0, epoch
                else:
                    bad += 1
                    if bad >= self.patience:
                        break
        finally:
            bar.close()
        if best_state is None:
            raise RuntimeError("MDN training ran no epoch (max_epochs < 1); nothing was kept")
        net.load_state_dict(best_state)
        net.eval()
        # training succeeded: only now the fitted attributes
        self.n_components_ = self.n_features_in_ = int(m)
        self.lo_, self.hi_ = lo, hi
        self.history_, self.best_epoch_ = history, best_epoch
        self.net_ = net
        self.fit_time_s_ = time.perf_counter() - t_start
        if checkpoint is not None:
            self.save(checkpoint)
        return self

    # ------------------------------------------------------------------------------- densities
    def _as_points(self, x, name):
        return as_points(x, self.n_components_, name)

    @torch.no_grad()
    def log_prob(self, x_t, x_tau) -> np.ndarray:
        """Log transition density ``ln p_tau(x_tau | x_t)`` in the data's units.

        Parameters
        ----------
        x_t, x_tau : np.ndarray, shape (n, m) (or (n,) when m = 1)

        Returns
        -------
        logp : np.ndarray, shape (n,), log of a density per unit volume of the data's units
        """
        self._check_fitted()
        x_t, x_tau = self._as_points(x_t, "x_t"), self._as_points(x_tau, "x_tau")
        if len(x_t) != len(x_tau):
            raise ValueError(f"x_t and x_tau have different lengths {len(x_t)} and {len(x_tau)}")
        dev = next(self.net_.parameters()).device
        u0 = torch.as_tensor(self._scale(x_t), dtype=torch.float32, device=dev)
        u1 = torch.as_tensor(self._scale(x_tau), dtype=torch.float32, device=dev)
        lp = _mixture_log_prob(*self.net_(u0), u1).cpu().numpy().astype(np.float64)
        return lp - np.log(self.hi_ - self.lo_).sum()

    @torch.no_grad()
    def mixture(self, x_t):
        """Mixture parameters at states ``x_t`` (n, m), in the data's units.

        Returns
        -------
        weights : (n, C); means : (n, C, m); sigmas : (n, C, m)
        """
        self._check_fitted()
        x_t = self._as_points(x_t, "x_t")
        dev = next(self.net_.parameters()).device
        log_w, mu, sig = self.net_(torch.as_tensor(self._scale(x_t), dtype=torch.float32, device=dev))
        span = self.hi_ - self.lo_
        return (log_w.exp().cpu().numpy(), mu.cpu().numpy() * span + self.lo_, sig.cpu().numpy() * span)

    # -------------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(self, x0, n_steps: int, random_state: int | None = None, clip: bool = True,
               device: str | None = None, progress: bool = False, out: np.ndarray | None = None,
               threads: int | None = None) -> np.ndarray:
        """Propagate many trajectories at once, one lag per step.

        Parameters
        ----------
        x0 : np.ndarray, shape (n_traj, m) (or (m,) for one trajectory)
            Start states, in the data's units.
        n_steps : int
            Number of lag steps to take.
        random_state : int, optional
            Seed; the same seed on the same device gives the same trajectories.
        clip : bool
            Clip samples to the training range [0, 1] (scaled units); the fraction clipped is
            stored in ``clipped_fraction_``.
        device : str, optional
            Override the device for sampling (e.g. ``'cuda'``).
        out : np.ndarray, shape (n_traj, n_steps + 1, m), optional
            Preallocated output (e.g. a memory map for very long runs).
        threads : int, optional
            torch CPU threads while sampling; default 1 for fewer than 4096 trajectories (one
            small network call per step gains nothing from more threads), else torch's setting.

        Returns
        -------
        traj : np.ndarray, shape (n_traj, n_steps + 1, m), float32; ``traj[:, 0] == x0``
        """
        self._check_fitted()
        x0 = self._as_points(x0, "x0")
        if int(n_steps) != n_steps or n_steps < 0:
            raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
        dev = get_device(device or self.device)
        if threads is None and dev.type == "cpu" and len(x0) < 4096:
            threads = 1
        with torch_threads(threads):
            return self._sample(x0, int(n_steps), random_state, clip, dev, progress, out)

    def _sample(self, x0, n_steps, random_state, clip, dev, progress, out):
        net = self.net_.to(dev).eval()
        n, m, C = len(x0), self.n_components_, self.n_kernels
        if out is None:
            out = np.empty((n, n_steps + 1, m), dtype=np.float32)
        elif out.shape != (n, n_steps + 1, m):
            raise ValueError(f"out must have shape {(n, n_steps + 1, m)}, got {out.shape}")
        out[:, 0] = x0
        g = torch_generator(random_state, dev)
        u = torch.as_tensor(self._scale(x0), dtype=torch.float32, device=dev).clamp_(0, 1)
        rows = torch.arange(n, device=dev)
        block = max(1, min(n_steps, 4_000_000 // max(n * m, 1)))
        buf = torch.empty((n, block, m), dtype=torch.float32, device=dev)
        span = torch.as_tensor(self.hi_ - self.lo_, dtype=torch.float32, device=dev)
        lo = torch.as_tensor(self.lo_, dtype=torch.float32, device=dev)
        n_clip = torch.zeros((), dtype=torch.int64, device=dev)
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, desc="propagate", unit="step", disable=not progress, mininterval=0.5)
        t = 0
        while t < n_steps:
            k = min(block, n_steps - t)
            gumbel = -torch.log(-torch.log(torch.rand((k, n, C), generator=g, device=dev).clamp_(1e-12, 1)))
            eps = torch.randn((k, n, m), generator=g, device=dev)
            for j in range(k):
                u = net.step(u, gumbel[j], eps[j], rows)
                if clip:
                    n_clip += ((u < 0) | (u > 1)).sum()
                    u = u.clamp(0, 1)
                buf[:, j] = u
            out[:, t + 1:t + 1 + k] = (buf[:, :k] * span + lo).cpu().numpy()
            t += k
            bar.update(k)
        bar.close()
        self.clipped_fraction_ = int(n_clip) / max(n * n_steps * m, 1)
        return out

    # ----------------------------------------------------------------------------- persistence
    _state = {"n_components": "n_components_", "lo": "lo_", "hi": "hi_", "history": "history_",
              "best_epoch": "best_epoch_", "fit_time_s": "fit_time_s_"}
    _nets = {"state_dict": "net_"}

    def _new_net(self, key):
        return _MDNNet(self.n_components_, int(self.n_kernels), self.hidden)

    def _restored(self):
        self.n_components_ = self.n_features_in_ = int(self.n_components_)
