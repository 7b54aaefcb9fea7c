"""Conditional normalizing-flow decoder: C-alpha structures from latent points, by maximum likelihood.

A decoder beyond the paper, beside :class:`lss.cwgan.CWGAN`. It models the density ``p(x | psi)`` of
the structures ``x`` of one latent point ``psi`` with a conditional normalizing flow (zuko: coupling
layers, the latent point as context) and is trained by maximum likelihood, so it has what a GAN lacks:
an honest held-out score (the negative log-likelihood of held-out frames), which also decides when
training stops.

Representation: the C-alpha coordinates are superposed on a reference (Kabsch), centred, rotated
onto their principal axes and whitened (PCA), and the ``3 n_atoms - 6`` components that are not
rigid-body motions are kept. Whitening puts every direction on the same scale, so that the stiff
directions of the chain are not drowned by the floppy ones. ``fixed_bonds`` then gives each decoded
chain MD's bond lengths and ``fixed_angles`` MD's bond angles (:class:`lss.decoder.Decoder`).

Cost: sampling is one pass through each coupling layer; measured on 2 busy CPU cores about 1-1.5e4
frames/s for 8 affine layers of 2 x 128 units (the cWGAN's generator: 4-5e5 frames/s).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from .decoder import N_ANGLE_FRAMES, Decoder
from .structure import as_coords_and_latent, choose_reference, superpose
from .utils import block_split, get_device, local_torch_seed, torch_generator

_KINDS = ("affine", "spline")


def _build_flow(n_features: int, n_context: int, kind: str, transforms: int, hidden: tuple[int, ...],
                bins: int):
    import zuko

    kw = {"hidden_features": tuple(hidden)}
    if kind == "spline":
        kw.update(univariate=zuko.transforms.MonotonicRQSTransform, shapes=[(bins,), (bins,), (bins - 1,)])
    return zuko.flows.RealNVP(n_features, n_context, transforms=transforms, **kw)


class FlowDecoder(Decoder):
    """Conditional normalizing flow ``p(x | psi)`` on whitened, superposed C-alpha coordinates.

    Parameters
    ----------
    kind : {'affine', 'spline'}
        Coupling layers with affine transforms (RealNVP) or monotonic rational-quadratic splines
        (neural spline flow, ``bins`` knots; more flexible, slower to sample).
    transforms : int
        Coupling layers (alternating halves of the coordinates).
    hidden : tuple of int
        Hidden widths of each layer's conditioner network (ReLU).
    bins : int
        Spline knots (``kind='spline'`` only).
    lr : float
        Adam learning rate; halved when the held-out likelihood has not improved for ``patience // 2``
        epochs.
    batch_size : int
    max_epochs : int
    patience : int
        Early stopping: training ends when the held-out negative log-likelihood has not improved for
        this many epochs; the weights of the best epoch are kept.
    val_fraction : float
        Fraction of each trajectory held out for early stopping, in ``n_val_blocks`` contiguous blocks.
    n_val_blocks : int
    fixed_bonds : bool
        Decoded chains get bond lengths drawn from MD's per-bond normal distribution (the atoms moved
        as little as possible).
    fixed_angles : bool
        With ``fixed_bonds``, decoded chains also get MD's distribution of each bond angle: the decoded
        angle mapped through the quantile map of the decoder's own angles onto MD's, in order, and
        the chain projected onto those angles and the bonds (:class:`lss.decoder.Decoder`). Measured
        on the cpu profile: see the README's "Decoders". The tables are recorded at every fit, so
        the parameter can be switched on a fitted decoder.
    reference : {'first', 'native'}
        As :class:`lss.cwgan.CWGAN`: the structure the frames are superposed on (the output frame).
    device : str
    random_state : int, optional
    progress : bool

    Attributes
    ----------
    flow_ : zuko.flows.Flow
    reference_ : np.ndarray, shape (n_atoms, 3), float32, nm
    x_mean_ : np.ndarray, shape (3 n_atoms,), nm
    components_ : np.ndarray, shape (3 n_atoms, k)
        Principal axes kept (``k = 3 n_atoms - 6``, or fewer for 1-2 atoms).
    scales_ : np.ndarray, shape (k,), nm
        Standard deviation along each kept axis (the whitening).
    cond_mean_, cond_std_ : np.ndarray, shape (m,)
    bond_mean_, bond_sd_ : np.ndarray, shape (n_atoms - 1,), nm
    angle_quantiles_md_, angle_quantiles_decoded_ : np.ndarray, shape (n_atoms - 2, 101), rad, or None
        Quantiles of each bond angle in the training frames and in the decoder's own output
        (``fixed_angles``; None for fewer than 3 atoms or a file that predates them).
    angle_fallbacks_ : int
        Frames decoded with bonds only because their angle projection did not converge.
    n_atoms_, n_components_ : int
        Atoms per structure; latent dimension ``m``.
    history_ : dict of lists
        ``train_nll`` and ``val_nll`` (nats per whitened coordinate, per epoch), ``lr``, ``time_s``.
    best_epoch_ : int
    val_nll_ : float
        Held-out negative log-likelihood of the kept weights, nats per coordinate (whitened units).
    fit_time_s_ : float
    """

    _format = "lss.flow/1"
    _fitted_attr = "flow_"
    #: frames per call when the simulator decodes (zuko's per-call overhead wants larger batches than the
    #: cWGAN's 2,048; measured on one idle core: 73,000 frames/s at 8,192, 64,000 at 32,768)
    decode_batch = 8192

    def __init__(self, kind: str = "affine", transforms: int = 8, hidden: tuple[int, ...] = (128, 128),
                 bins: int = 8, lr: float = 1e-3, batch_size: int = 512, max_epochs: int = 100,
                 patience: int = 8, val_fraction: float = 0.1, n_val_blocks: int = 10, fixed_bonds: bool = True,
                 fixed_angles: bool = True, reference: str = "first", device: str = "cpu",
                 random_state: int | None = None, progress: bool = False):
        self._store_params(locals())
        self.hidden = tuple(hidden)

    def _check_params(self):
        self._check_common(("transforms", "bins", "batch_size", "max_epochs", "patience", "n_val_blocks"),
                           {"kind": _KINDS})
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")

    # --------------------------------------------------------------------------------------- fit
    def fit(self, coords, latent, reference: np.ndarray | None = None,
            checkpoint: str | Path | None = None) -> FlowDecoder:
        """Train by maximum likelihood with early stopping on held-out blocks.

        Parameters
        ----------
        coords : np.ndarray (n_frames, n_atoms, 3) or list of them, nm
        latent : np.ndarray (n_frames, m) or list of them
        reference : np.ndarray, shape (n_atoms, 3), nm, optional
            As :meth:`lss.cwgan.CWGAN.fit`.
        checkpoint : path, optional
            Where to save the trained decoder once training has succeeded.

        Returns
        -------
        self

        Raises
        ------
        ValueError
            Bad input (shapes, NaN, frame counts), naming the argument.
        RuntimeError
            The loss became NaN or infinite; the estimator is left as it was and nothing is written.
        """
        self._check_params()
        coords, latent = as_coords_and_latent(coords, latent)
        n_atoms = coords[0].shape[1]
        ref, source = choose_reference(coords, reference, self.reference)
        rng = np.random.default_rng(self.random_state)
        seed_init, seed_loop = (int(s) for s in rng.integers(2**31, size=2))
        val = [block_split(len(x), self.n_val_blocks, self.val_fraction, rng) for x in coords]
        seed_angles = int(rng.integers(2**31))

        xyz = np.concatenate([superpose(x, ref) for x in coords])
        X = xyz.reshape(len(xyz), -1).astype(np.float64)
        C = np.concatenate(latent).astype(np.float64)
        is_val = np.concatenate(val)
        X_tr = X[~is_val]
        x_mean = X_tr.mean(0)
        evals, evecs = np.linalg.eigh(np.cov(X_tr - x_mean, rowvar=False))
        k = max(1, 3 * n_atoms - 6) if n_atoms >= 3 else max(1, 3 * n_atoms - 3 - (n_atoms == 2) * 2)
        order = np.argsort(evals)[::-1][:k]
        components = evecs[:, order]
        scales = np.sqrt(np.maximum(evals[order], 1e-12))
        Y = (X - x_mean) @ components / scales
        cond_mean, cond_std = C[~is_val].mean(0), C[~is_val].std(0)
        cond_std[cond_std <= 0] = 1.0
        Cs = (C - cond_mean) / cond_std
        bond_mean, bond_sd = self._bond_stats(xyz[~is_val])
        dev = get_device(self.device)
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=dev)
        Yt, Ct, Yv, Cv = as_t(Y[~is_val]), as_t(Cs[~is_val]), as_t(Y[is_val]), as_t(Cs[is_val])
        xyz_tr, C_tr = xyz[~is_val], C[~is_val]
        del X, Y, xyz

        with local_torch_seed(seed_init):
            flow = _build_flow(k, C.shape[1], self.kind, int(self.transforms), self.hidden, int(self.bins)).to(dev)
        opt = torch.optim.Adam(flow.parameters(), lr=self.lr)
        # the learning rate halves after every patience // 2 epochs without a better held-out NLL
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(1, self.patience // 2) - 1,
                                                             threshold=1e-4, threshold_mode="abs")
        g = torch_generator(seed_loop, dev)
        history = {"train_nll": [], "val_nll": [], "lr": [], "time_s": []}
        best, best_state, best_epoch, stale = math.inf, None, -1, 0
        B = int(self.batch_size)
        from tqdm.auto import tqdm

        t0 = time.perf_counter()
        bar = tqdm(range(self.max_epochs), desc="flow", unit="epoch", disable=not self.progress)
        for epoch in bar:
            flow.train()
            perm = torch.randperm(len(Yt), generator=g, device=dev)
            total, count = 0.0, 0
            for i in range(0, len(Yt), B):
                idx = perm[i:i + B]
                loss = -flow(Ct[idx]).log_prob(Yt[idx]).mean() / k
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
                opt.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
            v = self._nll(flow, Yv, Cv, k)
            if not (math.isfinite(total) and math.isfinite(v)):
                raise RuntimeError(f"flow training diverged at epoch {epoch} (non-finite likelihood); try a "
                                   f"smaller lr (now {self.lr}); the estimator is left unchanged")
            history["train_nll"].append(total / count)
            history["val_nll"].append(v)
            history["lr"].append(opt.param_groups[0]["lr"])
            history["time_s"].append(time.perf_counter() - t0)
            bar.set_postfix(train=f"{total / count:.3f}", val=f"{v:.3f}")
            if v < best - 1e-4:
                best, best_epoch, stale = v, epoch, 0
                best_state = {n: p.detach().clone() for n, p in flow.state_dict().items()}
            else:
                stale += 1
                if stale >= self.patience:
                    break
            plateau.step(v)
        bar.close()
        flow.load_state_dict(best_state)
        flow.eval()
        # training succeeded: only now does the estimator become fitted
        self.reference_, self.reference_source_ = ref, source
        self.n_atoms_, self.n_components_ = n_atoms, int(C.shape[1])
        self.x_mean_, self.components_, self.scales_ = x_mean, components, scales
        self.cond_mean_, self.cond_std_ = cond_mean, cond_std
        self.bond_mean_, self.bond_sd_ = bond_mean, bond_sd
        self.history_, self.best_epoch_, self.val_nll_ = history, best_epoch, float(best)
        self.flow_ = flow
        sub = np.random.default_rng(seed_angles).permutation(len(C_tr))[:N_ANGLE_FRAMES]
        self._fit_angle_map(C_tr[np.sort(sub)], xyz_tr, seed_angles)
        self.fit_time_s_ = time.perf_counter() - t0
        if checkpoint is not None:
            self.save(checkpoint)
        return self

    @staticmethod
    @torch.no_grad()
    def _nll(flow, Y, C, k, batch: int = 8192) -> float:
        flow.eval()
        tot = 0.0
        for i in range(0, len(Y), batch):
            tot += float(-flow(C[i:i + batch]).log_prob(Y[i:i + batch]).sum())
        return tot / max(len(Y), 1) / k

    # ----------------------------------------------------------------------------- inference
    def score(self, coords, latent) -> float:
        """Mean negative log-likelihood of structures at their latent points, nats per whitened coordinate.

        The held-out score of a likelihood decoder (lower is better); frames are superposed first.
        Units: the density of the whitened coordinates, so the number compares decoders on the same
        whitening only.
        """
        self._check_fitted()
        x = self.superpose(coords)
        c = self._check_latent(latent)
        if len(c) != len(x):
            raise ValueError(f"latent has {len(c)} frames but coords has {len(x)}")
        y = (x.reshape(len(x), -1).astype(np.float64) - self.x_mean_) @ self.components_ / self.scales_
        dev = next(self.flow_.parameters()).device
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=dev)
        return self._nll(self.flow_, as_t(y), as_t((c - self.cond_mean_) / self.cond_std_), len(self.scales_))

    @torch.inference_mode()
    def generate(self, latent, random_state: int | None = None, batch_size: int | None = None,
                 device: str | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Decode latent points into C-alpha structures, one independent draw per frame.

        Parameters
        ----------
        latent : np.ndarray, shape (n_frames, m)
        random_state : int, optional
            Seed of the draws; the same seed, ``batch_size`` and device give the same structures.
        batch_size : int, optional
            Frames per flow call (default 32768 on a CPU, 262144 on a GPU).
        device : str, optional
        out : np.ndarray, shape (n_frames, n_atoms, 3), float32, optional

        Returns
        -------
        xyz : np.ndarray, shape (n_frames, n_atoms, 3), float32, nm, in the frame of ``reference_``.
        """
        self._check_fitted()
        c = self._check_latent(latent)
        dev = get_device(device or self.device)
        batch_size = self._batch(batch_size, dev, cpu_default=32768)
        n, a = len(c), self.n_atoms_
        out = self._output(n, out)
        flow = self.flow_.to(dev).eval()
        as_t = lambda v: torch.as_tensor(v, dtype=torch.float32, device=dev)
        back = as_t(self.components_ * self.scales_).t().contiguous()  # (k, 3 n_atoms): whitened -> nm
        mean, cm, cs = as_t(self.x_mean_), as_t(self.cond_mean_), as_t(self.cond_std_)
        g = torch_generator(random_state, dev)
        k = len(self.scales_)
        flat = out.reshape(n, a * 3)
        for i in range(0, n, int(batch_size)):
            kk = min(int(batch_size), n - i)
            ci = (torch.from_numpy(c[i:i + kk]).to(dev) - cm) / cs
            eps = torch.randn((kk, k), generator=g, device=dev)
            # push base draws through the inverse flow (the zuko flow maps data -> base)
            y = flow(ci).transform.inv(eps)
            x = torch.addmm(mean, y, back)
            self._fix_geometry_(x, g)
            flat[i:i + kk] = x.cpu().numpy()
        return out

    # ----------------------------------------------------------------------------- persistence
    _state = {**Decoder._state, "x_mean": "x_mean_", "components": "components_", "scales": "scales_",
              "best_epoch": "best_epoch_", "val_nll": "val_nll_"}
    _nets = {"flow": "flow_"}

    def _new_net(self, key):
        return _build_flow(len(self.scales_), self.n_components_, self.kind, int(self.transforms), self.hidden,
                           int(self.bins))

