"""Figures of the notebooks: one function per figure, so that a notebook cell is a call and a plot.

Every function takes the measured data, draws, and returns the matplotlib figure (the notebook saves
it with :func:`lss.results.savefig`). Lengths in nm, free energies in kT.
"""
from __future__ import annotations

import numpy as np

from . import analysis as A
from .structure import bond_lengths

#: colours of the ensembles, the same in every decoder figure
COLORS = {"MD": "0.45", "nearest neighbour": "C7", "cWGAN": "C3", "cWGAN, min/max scaling": "C1", "flow": "C0"}


def _color(name: str, k: int) -> str:
    return COLORS.get(name, f"C{k % 10}")


def decoder_ensembles(bench, ensembles: dict, q_fn):
    """Q histogram, C-alpha bonds and Rg of each decoder's structures against the held-out MD.

    Parameters
    ----------
    bench : lss.decoding.DecoderBench
    ensembles : dict name -> np.ndarray (n, n_atoms, 3), nm
        One structure per held-out latent point of ``bench``.
    q_fn : callable (n, n_atoms, 3) -> (n,)
    """
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 3, figsize=(13, 3.4))
    qb = np.linspace(0, 1, 33)
    b_md, rg_md = bench.bonds.ravel(), A.radius_of_gyration(bench.xyz)
    bb = np.linspace(b_md.min() - 0.03, b_md.max() + 0.03, 60)
    rb = np.linspace(rg_md.min() * 0.9, rg_md.max() * 1.1, 60)
    for ax, data, bins in ((axs[0], bench.q, qb), (axs[1], b_md, bb), (axs[2], rg_md, rb)):
        ax.hist(data, bins, density=True, color=COLORS["MD"], alpha=0.45, label="MD (held out)")
    for k, (name, xyz) in enumerate(ensembles.items()):
        c = _color(name, k)
        axs[0].hist(q_fn(xyz), qb, density=True, histtype="step", lw=1.6, color=c, label=name)
        axs[1].hist(np.clip(bond_lengths(xyz).ravel(), bb[0], bb[-1]), bb, density=True, histtype="step", lw=1.4, color=c)
        axs[2].hist(A.radius_of_gyration(xyz), rb, density=True, histtype="step", lw=1.4, color=c)
    axs[0].set(xlabel="fraction of native contacts Q", ylabel="density", title="Q of the decoded structures")
    axs[1].set(xlabel="C-alpha virtual bond [nm] (clipped to the axis)", title="bonds", yscale="log")
    axs[2].set(xlabel="radius of gyration [nm]", title="Rg")
    axs[0].legend(fontsize=7, loc="upper center")
    fig.tight_layout()
    return fig


def decoder_tica(bench, ensembles: dict, max_dF: float = 6.0):
    """TIC1-TIC2 free-energy surfaces (kT) of the held-out MD and of each decoder, MD's grid, RMSE in the titles."""
    import matplotlib.pyplot as plt

    names = ["MD (held out)"] + list(ensembles)
    fig, axs = plt.subplots(1, len(names), figsize=(3.1 * len(names) + 0.8, 3.4), sharex=True, sharey=True,
                            squeeze=False, layout="constrained")
    axs = axs[0]
    levels = np.arange(0, max_dF + 0.01, 0.5)
    for ax, name in zip(axs, names):
        if name == "MD (held out)":
            F, title = bench.F[1], name
        else:
            tics = A.project(bench.tica, A.ca_distances(ensembles[name]))
            F = A.free_energy_2d(tics[:, 0], tics[:, 1], bins=(bench.grid[0], bench.grid[1]))[2]
            both = A.sampled_region(bench.F[1], max_dF=max_dF) & np.isfinite(F)
            rmse = A.aligned_rmse(bench.F[1], F, mask=both) if both.any() else float("nan")
            title = f"{name}\nRMSE {rmse:.2f} kT"
        ca = 0.5 * (bench.grid[0][1:] + bench.grid[0][:-1])
        cb = 0.5 * (bench.grid[1][1:] + bench.grid[1][:-1])
        im = ax.contourf(ca, cb, (F - np.nanmin(F)).T, levels=levels, cmap="nipy_spectral", extend="max")
        ax.set(title=title, xlabel="TIC1")
        ax.title.set_fontsize(9)
    axs[0].set_ylabel("TIC2")
    fig.colorbar(im, ax=list(axs), label=r"$F$ [$k_BT$]", shrink=0.9, pad=0.01)
    return fig


def decoder_pairs(bench, ensembles: dict):
    """Mean and spread of the 190 C-alpha pair distances of each decoder against the held-out MD (nm)."""
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2, figsize=(8.5, 3.6))
    mean_md, sd_md = bench.d.mean(0), bench.d.std(0)
    for k, (name, xyz) in enumerate(ensembles.items()):
        d = A.ca_distances(xyz)
        axs[0].plot(mean_md, d.mean(0), ".", ms=4, color=_color(name, k), label=name)
        axs[1].plot(sd_md, d.std(0), ".", ms=4, color=_color(name, k))
    for ax, ref in ((axs[0], mean_md), (axs[1], sd_md)):
        lim = (0, float(ref.max()) * 1.15)
        ax.plot(lim, lim, "k:", lw=0.8)
        ax.set(xlim=lim, ylim=lim)
    axs[0].set(xlabel="MD mean [nm]", ylabel="decoder mean [nm]", title="pair distance means")
    axs[1].set(xlabel="MD sd [nm]", ylabel="decoder sd [nm]", title="pair distance spreads")
    axs[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def decoder_cycle(latent: np.ndarray, reencoded: dict):
    """Re-encoding: each latent coordinate against the encoding of the structure decoded from it.

    Parameters
    ----------
    latent : np.ndarray, shape (n, m)
    reencoded : dict name -> np.ndarray (n, m)
        Log colour scale: most points sit on the diagonal, the tails are what matters.
    """
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    m = latent.shape[1]
    fig, axs = plt.subplots(len(reencoded), m, figsize=(3.1 * m, 3.0 * len(reencoded)), squeeze=False)
    for r, (name, z) in enumerate(reencoded.items()):
        for j in range(m):
            ax = axs[r, j]
            lo, hi = np.quantile(latent[:, j], [0.001, 0.999])
            pad = 0.1 * (hi - lo)
            rng_ = [[lo - pad, hi + pad]] * 2
            ax.hist2d(latent[:, j], z[:, j], bins=60, range=rng_, cmap="viridis", norm=LogNorm(), cmin=1)
            ax.plot(rng_[0], rng_[0], "w:", lw=1)
            r_ = np.corrcoef(latent[:, j], z[:, j])[0, 1]
            ax.set(xlabel=fr"$\psi_{j + 1}$ (decoded from)", ylabel=fr"$E(D(\psi))_{j + 1}$" if j == 0 else None,
                   title=f"{name}: r = {r_:.3f}")
            ax.title.set_fontsize(9)
    fig.tight_layout()
    return fig


def decoder_fidelity(bench, fidelity: dict):
    """Conditional fidelity: C-alpha RMSD (nm) of held-out frames to structures decoded at their latent points.

    ``fidelity``: dict name -> np.ndarray (n_fidelity * n_per_point, n_atoms, 3).
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.4))
    target = np.repeat(bench.xyz[bench.fid_idx], bench.n_per_point, 0)
    curves = {"nearest neighbour": bench.nearest_neighbour(np.repeat(bench.latent[bench.fid_idx], bench.n_per_point, 0))}
    curves.update(fidelity)
    r_all = {k: A.pair_rmsd(np.asarray(v, np.float32), target) for k, v in curves.items()}
    e = np.linspace(0, max(float(r.max()) for r in r_all.values()), 50)
    for k, (name, r) in enumerate(r_all.items()):
        ax.hist(r, e, density=True, histtype="step", lw=1.5, color=_color(name, k),
                label=f"{name} (median {np.median(r):.3f} nm)")
    ax.set(xlabel="C-alpha RMSD to the held-out frame [nm]", ylabel="density",
           title="structures decoded at a held-out frame's latent point")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
