"""Figures of the notebooks: one function per figure, so that a notebook cell is a call and a plot.

Every function takes the measured data, draws, and returns the matplotlib figure (the notebook saves
it with :func:`lss.results.savefig`). Lengths in nm, free energies in kT.
"""
from __future__ import annotations

import numpy as np

from . import analysis as A
from .structure import bond_lengths, ca_distances, pair_rmsd, radius_of_gyration

#: colours of the ensembles, the same in every decoder figure
COLORS = {"MD": "0.45", "nearest neighbour": "C7", "cWGAN": "C3", "cWGAN, min/max scaling": "C1", "flow": "C0"}


def time_unit(ds) -> str:
    """The time unit of a dataset's axes: ``"ns of model time"`` for the Go model (not Trp-cage's real time)."""
    return f"{ds.time_unit} of model time" if ds.meta.get("source") == "go" else ds.time_unit


def _color(name: str, k: int) -> str:
    return COLORS.get(name, f"C{k % 10}")


def decoder_training(decoders: dict, flow):
    """Training of the decoders: the cWGAN critic's Wasserstein estimate, and the flow's negative log-likelihood.

    Parameters
    ----------
    decoders : dict name -> decoder
        The cWGANs among them (``history_["wasserstein"]`` per epoch, critic units) are drawn left, in
        :data:`COLORS`.
    flow : lss.flow.FlowDecoder
        Fitted: ``history_`` (``train_nll``, ``val_nll`` per epoch, nats per coordinate) and ``best_epoch_``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2, figsize=(10, 3.2))
    for name, d in decoders.items():
        if "wasserstein" in getattr(d, "history_", {}):
            w = d.history_["wasserstein"]
            axs[0].plot(np.arange(1, len(w) + 1), w, label=name, color=COLORS.get(name))
    axs[0].set(xlabel="epoch", ylabel="critic units", title="cWGAN: Wasserstein estimate")
    axs[0].legend(fontsize=8)
    axs[1].plot(flow.history_["train_nll"], label="training")
    axs[1].plot(flow.history_["val_nll"], label="held out")
    axs[1].axvline(flow.best_epoch_, color="0.5", ls=":", lw=1)
    axs[1].set(xlabel="epoch", ylabel="nats per coordinate", title="flow: negative log-likelihood")
    axs[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


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
    b_md, rg_md = bench.bonds.ravel(), radius_of_gyration(bench.xyz)
    bb = np.linspace(b_md.min() - 0.03, b_md.max() + 0.03, 60)
    rb = np.linspace(rg_md.min() * 0.9, rg_md.max() * 1.1, 60)
    for ax, data, bins in ((axs[0], bench.q, qb), (axs[1], b_md, bb), (axs[2], rg_md, rb)):
        ax.hist(data, bins, density=True, color=COLORS["MD"], alpha=0.45, label="MD (held out)")
    for k, (name, xyz) in enumerate(ensembles.items()):
        c = _color(name, k)
        axs[0].hist(q_fn(xyz), qb, density=True, histtype="step", lw=1.6, color=c, label=name)
        axs[1].hist(np.clip(bond_lengths(xyz).ravel(), bb[0], bb[-1]), bb, density=True, histtype="step", lw=1.4, color=c)
        axs[2].hist(radius_of_gyration(xyz), rb, density=True, histtype="step", lw=1.4, color=c)
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
            tics = A.project(bench.tica, ca_distances(ensembles[name]))
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
        d = ca_distances(xyz)
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
    r_all = {k: pair_rmsd(np.asarray(v, np.float32), target) for k, v in curves.items()}
    e = np.linspace(0, max(float(r.max()) for r in r_all.values()), 50)
    for k, (name, r) in enumerate(r_all.items()):
        ax.hist(r, e, density=True, histtype="step", lw=1.5, color=_color(name, k),
                label=f"{name} (median {np.median(r):.3f} nm)")
    ax.set(xlabel="C-alpha RMSD to the held-out frame [nm]", ylabel="density",
           title="structures decoded at a held-out frame's latent point")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------- Trp-cage data (02)

def trpcage_native(xyz: np.ndarray, contacts: np.ndarray, residue_names, labelled=(0, 5, 19)):
    """The native C-alpha trace in 3-D with its native contacts, and the C-alpha distance map.

    Parameters
    ----------
    xyz : np.ndarray, shape (n_atoms, 3), nm
        Native C-alpha coordinates.
    contacts : np.ndarray, shape (n_contacts, 2), int
        Native contact pairs (0-based residue indices, i < j).
    residue_names : sequence of str
        One name per residue, e.g. ``"TRP6"``.
    labelled : sequence of int
        Residues (0-based) named in the 3-D panel (default: the termini and Trp6, the cage's centre);
        the labels are pushed outward from the chain's centre so that they do not overlap.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    n = len(xyz)
    d = np.linalg.norm(xyz[:, None] - xyz[None], axis=-1)
    fig = plt.figure(figsize=(10, 4.2))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    for i, j in contacts:
        ax.plot(*xyz[[i, j]].T, color="0.75", lw=0.8)
    ax.plot(*xyz.T, color="0.3", lw=1.5)
    ax.scatter(*xyz.T, c=np.arange(n), cmap="viridis", s=60, depthshade=False)
    ax.view_init(elev=25, azim=-60)
    # labels pushed apart in 3-D (nm) for this view: N-terminus up-left, Trp6 (the cage's centre) down, C-terminus up-right
    push = {0: (-0.45, 0.0, 0.35), 5: (0.1, 0.0, -0.55), n - 1: (0.35, 0.0, 0.3)}
    for k in labelled:
        to = xyz[k] + np.asarray(push.get(k, (0.3, 0.0, 0.3)))
        ax.plot(*np.c_[xyz[k], to], color="0.4", lw=0.6)
        ax.text(*to, residue_names[k], fontsize=8, ha="center", va="center",
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="0.7", lw=0.5))
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(4))
    ax.set(xlabel="x [nm]", ylabel="y [nm]", zlabel="z [nm]")
    ax.set_title(f"2JOF model 1, C-alpha trace; grey: the {len(contacts)} native contacts", fontsize=10)
    ax = fig.add_subplot(1, 2, 2)
    im = ax.imshow(d, cmap="magma_r", origin="lower", extent=(0.5, n + 0.5, 0.5, n + 0.5))
    ax.scatter(contacts[:, 1] + 1, contacts[:, 0] + 1, marker="s", s=18, facecolor="none", edgecolor="C0",
               label="native contact (i < j)")
    ticks = [1, *range(5, n + 1, 5)]
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set(xlabel="residue j", ylabel="residue i", title="C-alpha distance map [nm]")
    ax.legend(loc="upper left", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8, label="distance [nm]")
    fig.tight_layout()
    return fig


def trpcage_traces(t, q0, rmsd0, rg0, q_all, rmsd_all, rg_all, basins: dict, unit: str, cores=(0.45, 0.85),
                   n_traj: int = 1, max_points: int = 20_000):
    """Q(t), RMSD(t) and Rg(t) of trajectory 0 beside the histograms of all frames, and F(Q) with its basins.

    Parameters
    ----------
    t : np.ndarray, shape (n_frames,)
        Time of trajectory 0's frames, in ``unit``.
    q0, rmsd0, rg0 : np.ndarray, shape (n_frames,)
        Trajectory 0: Q (1), RMSD to native (nm), radius of gyration (nm).
    q_all, rmsd_all, rg_all : np.ndarray, shape (n_all,)
        The same over every trajectory (histograms).
    basins : dict
        :func:`lss.gomodel.free_energy_basins` of ``q_all``: F(Q) is drawn, its minima and barrier marked.
    """
    import matplotlib.pyplot as plt

    step = max(1, len(t) // max_points)
    fig, axs = plt.subplots(3, 2, figsize=(11, 6.5), gridspec_kw={"width_ratios": [4, 1]}, sharey="row")
    for row, (y, yall, name) in enumerate([(q0, q_all, "Q"), (rmsd0, rmsd_all, "RMSD to native [nm]"),
                                          (rg0, rg_all, "Rg [nm]")]):
        axs[row, 0].plot(t[::step], y[::step], lw=0.4, color=f"C{row}")
        axs[row, 0].set_ylabel(name)
        axs[row, 1].hist(yall, bins=50, orientation="horizontal", color=f"C{row}", alpha=0.7)
    for y in cores:
        axs[0, 0].axhline(y, color="k", ls=":", lw=0.8)
    axF = axs[0, 1].twiny()
    F = np.where(np.isfinite(basins["F"]), basins["F"], np.nan)
    axF.plot(F, basins["centers"], "k-", lw=1.2)
    for key, mark in (("q_unfolded", "v"), ("q_folded", "^"), ("q_barrier", "D")):
        qb = basins.get(key)
        if qb is not None:
            axF.plot(np.interp(qb, basins["centers"], np.nan_to_num(F, nan=0.0)), qb, mark, color="C3", ms=5)
    axF.set_xlabel("F(Q) [kT], black; red: minima, barrier", fontsize=8)
    axs[2, 0].set_xlabel(f"time [{unit}]")
    axs[2, 1].set_xlabel("frames")
    axs[0, 0].set_title(f"trajectory 0 of {n_traj}; dotted: core cutoffs Q = {cores[0]} / {cores[1]}")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------- generated events (06)

def folding_event(t, q, window_xyz, shown, native_xyz, event: dict, unit: str, pad_frames: int, n_panels: int = 6):
    """A generated folding event: Q of the whole trajectory, Q around the event, and C-alpha snapshots.

    Parameters
    ----------
    t : np.ndarray, shape (n_frames,)
        Time of each frame of the trajectory, in ``unit``.
    q : np.ndarray, shape (n_frames,)
        Q of the trajectory's frames.
    window_xyz : np.ndarray, shape (len(shown), n_atoms, 3), nm
        The frames ``shown``, superposed on the native structure.
    shown : np.ndarray, shape (k,), int
        Frame indices of ``window_xyz``, increasing.
    native_xyz : np.ndarray, shape (n_atoms, 3), nm
    event : dict
        :func:`lss.gomodel.pick_folding_event` (``traj``, ``start``, ``end``, ...).
    pad_frames : int
        Frames shown either side of the event in the zoomed panel.
    """
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 6.4))
    gs = fig.add_gridspec(3, n_panels, height_ratios=[0.8, 1.2, 1.5])
    a, b = event["start"], event["end"]
    lo, hi = int(shown[0]), int(shown[-1])
    ax = fig.add_subplot(gs[0, :])
    ax.plot(t, q, lw=0.3, color="C0")
    ax.axvspan(t[lo], t[hi], color="C3", alpha=0.3)
    ax.set(ylabel="Q", ylim=(0, 1.02), xlim=(t[0], t[-1]))
    ax.set_title(f"LSS trajectory {event['traj']}: Q over the whole run (red: the stretch below)", fontsize=9)
    ax = fig.add_subplot(gs[1, :])
    sl = slice(lo, hi + 1)
    ax.plot(t[sl], q[sl], "-o", ms=2.5, lw=0.8, color="C0")
    ax.axvspan(t[a], t[b], color="C3", alpha=0.15, label="transition path (last unfolded → first folded frame)")
    for y, name in ((0.45, "unfolded core"), (0.85, "folded core")):
        ax.axhline(y, color="0.5", ls=":", lw=1)
        ax.text(t[lo], y + 0.01, name, fontsize=7, color="0.4", va="bottom")
    # snapshots: before the event, its last unfolded frame, along the path, its first folded frame, after
    want = [lo, a, *np.linspace(a, b, n_panels - 2)[1:-1], b, hi][:n_panels] if b - a >= n_panels - 4 else \
        [*np.linspace(lo, a, n_panels // 2), *np.linspace(b, hi, n_panels - n_panels // 2)]
    picks = np.unique([int(np.argmin(np.abs(shown - w))) for w in want])
    ax.plot(t[shown[picks]], q[shown[picks]], "s", mfc="none", mec="k", ms=7, label="snapshots below")
    margin = 0.02 * (t[hi] - t[lo])
    ax.set(xlabel=f"time [{unit}]", ylabel="Q", ylim=(0, 1.05), xlim=(t[lo] - margin, t[hi] + margin))
    ax.legend(fontsize=7, loc="lower right")
    decimals = max(0, int(-np.floor(np.log10(max(t[1] - t[0], 1e-12))))) if len(t) > 1 else 2
    for k, j in enumerate(picks):
        s = fig.add_subplot(gs[2, k])
        s.plot(native_xyz[:, 0], native_xyz[:, 1], "-", color="0.8", lw=3)
        s.plot(window_xyz[j, :, 0], window_xyz[j, :, 1], "-", color="0.3", lw=1)
        s.scatter(window_xyz[j, :, 0], window_xyz[j, :, 1], c=np.arange(window_xyz.shape[1]), cmap="viridis",
                  s=14, zorder=3)
        s.set(xticks=[], yticks=[], aspect="equal")
        s.set_title(f"t = {t[shown[j]]:.{decimals}f}, Q = {q[shown[j]]:.2f}", fontsize=7)
    fig.suptitle("A folding event generated by the LSS (C-alpha trace superposed on the native structure, grey; "
                 "colour: residue 1 → 20)", fontsize=9)
    fig.tight_layout()
    return fig


def folding_animation(window_xyz, t, q, shown, path, *, unit: str, fps: int = 10, stamp: str = "", dpi: int = 80):
    """Write the event as an animated GIF: the rotating C-alpha trace beside Q(t) with a moving marker.

    Parameters
    ----------
    window_xyz : np.ndarray, shape (k, n_atoms, 3), nm
        The frames ``shown`` (superposed).
    t, q : np.ndarray, shape (n_frames,)
        Time (``unit``) and Q of the whole trajectory.
    shown : np.ndarray, shape (k,), int
        Frame indices of ``window_xyz``.
    path : path-like
        The ``.gif`` written (Pillow).
    stamp : str
        Provenance text in the corner (e.g. the notebook and profile).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from pathlib import Path

    import matplotlib.pyplot as plt
    from matplotlib import animation

    fig = plt.figure(figsize=(7.5, 3.6))
    ax3 = fig.add_subplot(1, 2, 1, projection="3d")
    axq = fig.add_subplot(1, 2, 2)
    centre = window_xyz.mean((0, 1))
    span = np.abs(window_xyz - centre).max()
    line, = ax3.plot([], [], [], "-", color="0.3", lw=1.5)
    dots = ax3.scatter(*window_xyz[0].T, c=np.arange(window_xyz.shape[1]), cmap="viridis", s=25)
    ax3.set(xlim=(centre[0] - span, centre[0] + span), ylim=(centre[1] - span, centre[1] + span),
            zlim=(centre[2] - span, centre[2] + span), xticks=[], yticks=[], zticks=[])
    lo, hi = int(shown[0]), int(shown[-1]) + 1
    axq.plot(t[lo:hi], q[lo:hi], color="C0")
    marker, = axq.plot([], [], "o", color="C3")
    axq.set(xlabel=f"time [{unit}]", ylabel="Q", ylim=(0, 1.02), title="fraction of native contacts")
    if stamp:
        fig.text(0.995, 0.005, stamp, ha="right", va="bottom", fontsize=6, color="0.5")
    fig.tight_layout()

    def update(j):
        line.set_data_3d(*window_xyz[j].T)
        dots._offsets3d = tuple(window_xyz[j].T)
        ax3.view_init(elev=20, azim=30 + 2 * j)
        marker.set_data([t[shown[j]]], [q[shown[j]]])
        ax3.set_title(f"LSS, t = {t[shown[j]]:.3g} {unit}", fontsize=8)
        return line, dots, marker

    anim = animation.FuncAnimation(fig, update, frames=len(shown), interval=1000 / fps)
    anim.save(str(path), writer=animation.PillowWriter(fps=fps), dpi=dpi)
    plt.close(fig)
    return Path(path)


# --------------------------------------------------------------------------------------- decoders (05)

def decoder_checks(bench, decoders: dict, encode=None, random_state: int = 0, ensembles: dict | None = None) -> dict:
    """The two conditional checks of the decoders, as figures: fidelity and, with an encoder, re-encoding.

    Parameters
    ----------
    bench : lss.decoding.DecoderBench
        Held-out MD frames and their latent points (``latent``, ``fid_idx``, ``n_per_point``).
    decoders : dict name -> decoder
        Fitted decoders (``generate(latent, random_state=)`` -> (n, n_atoms, 3) nm).
    encode : callable, optional
        Structures (n, n_atoms, 3) nm -> latent (n, m): the encoder of 03 (C-alpha data only). Without
        it the re-encoding figure is left out (all-atom features need atoms the decoders do not make).
    random_state : int
        Seeds the decoding at the fidelity points.
    ensembles : dict name -> np.ndarray (n, n_atoms, 3), optional
        Structures already decoded at ``bench.latent`` (one per point), re-encoded for the cycle figure;
        decoded here with ``random_state + 1`` when not given.

    Returns
    -------
    dict
        ``"fidelity"``: :func:`decoder_fidelity` of ``n_per_point`` structures decoded at each fidelity
        point; ``"cycle"``: :func:`decoder_cycle` of the structures decoded at every compared point (only
        with ``encode``).
    """
    at = np.repeat(bench.latent[bench.fid_idx], bench.n_per_point, 0)
    figs = {"fidelity": decoder_fidelity(bench, {n: d.generate(at, random_state=random_state) for n, d in decoders.items()})}
    if encode is not None:
        ensembles = ensembles or {n: d.generate(bench.latent, random_state=random_state + 1) for n, d in decoders.items()}
        figs["cycle"] = decoder_cycle(bench.latent, {n: encode(x) for n, x in ensembles.items()})
    return figs


def decoded_examples(bench, decoder, q_fn, quantiles=(0.05, 0.5, 0.95), random_state: int = 0):
    """Held-out MD frames at given quantiles of Q, and one structure decoded at each one's latent point.

    Parameters
    ----------
    bench : lss.decoding.DecoderBench
    decoder : fitted decoder
    q_fn : callable
        Structures (n, n_atoms, 3) nm -> Q (n,).
    quantiles : sequence of float
        Quantiles of the held-out frames' Q to show.

    Returns
    -------
    xyz : np.ndarray, shape (2 * len(quantiles), n_atoms, 3), nm
        The MD frames, then the decoded structures (each superposed on its MD frame).
    labels : list of str
        "held-out MD, Q = ..." and "decoded, Q = ..." per structure.
    """
    from .structure import superpose

    q = np.asarray(bench.q)
    picks = [int(np.argmin(np.abs(q - x))) for x in np.quantile(q, list(quantiles))]
    dec = decoder.generate(bench.latent[picks], random_state=random_state)
    dec = np.concatenate([superpose(dec[k:k + 1], bench.xyz[i]) for k, i in enumerate(picks)])
    labels = [f"held-out MD, Q = {q[i]:.2f}" for i in picks] + [f"decoded, Q = {x:.2f}" for x in q_fn(dec)]
    return np.concatenate([bench.xyz[picks], dec]), labels


# ------------------------------------------------------------------------------------------ four-well (01)

def fig2_four_well(ref, x_bd, x_lss, h_bd, h_lss, tv_bd, tv_lss, P_exact, P_mdn, yy, *, lag: int, n_kernels: int,
                   dens_err: float, potential, n_show: int = 500):
    """Paper Fig. 2: (a) stationary densities, (b) BD and LSS trajectories, (c, d) exact and learned p_tau(y|x).

    Parameters
    ----------
    ref : lss.fourwell.ExactReference
        The exact operator (``x``, ``density``, ``edges``, ``centers``).
    x_bd : np.ndarray, shape (n_steps,)
        The BD trajectory (every integration step).
    x_lss : np.ndarray, shape (n_traj, n_lss_steps + 1)
        LSS trajectories (one point per lag); trajectory 0 is drawn in (b).
    h_bd, h_lss : np.ndarray, shape (n_bins,)
        Histograms (probabilities per bin) of BD and of the LSS ensemble.
    P_exact, P_mdn : np.ndarray, shape (len(yy), len(yy))
        Transition densities on the grid ``yy`` (rows: start x_t).
    lag : int
        Lag tau in BD steps; ``dens_err`` the mean TV between learned and exact transition densities.
    potential : callable
        V(x) in kT, drawn in grey in (a).
    """
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(2, 2, figsize=(10, 7.5))
    w = np.diff(ref.edges)
    ax = axs[0, 0]
    ax.plot(ref.x, ref.density, "k-", lw=2, label="exact")
    ax.step(ref.centers, h_bd / w, where="mid", color="C0", label=f"BD (TV {tv_bd:.3f})")
    ax.step(ref.centers, h_lss / w, where="mid", color="C3", label=f"LSS (TV {tv_lss:.3f})")
    ax2 = ax.twinx()
    ax2.plot(ref.x, potential(ref.x), color="0.7", lw=1)
    ax2.set_ylim(0, 6)
    ax2.set_ylabel("V(x) [kT]", color="0.5")
    ax.set(xlabel="x", ylabel="stationary density", title="(a) stationary density", xlim=(-1.3, 1.3))
    ax.legend(loc="upper center", fontsize=8)
    ax = axs[0, 1]
    n_show = min(n_show, x_lss.shape[1] - 1)
    t_show = np.arange(n_show + 1) * lag / 1000
    ax.plot(t_show, x_bd[: (n_show + 1) * lag: lag], lw=0.7, color="C0", label="BD (every lag)")
    ax.plot(t_show, x_lss[0, : n_show + 1] - 3.0, lw=0.7, color="C3", label="LSS (shifted by -3)")
    ax.set(xlabel=r"time [$10^3$ steps]", ylabel="x", title="(b) kinetics: BD and LSS", ylim=(-4.6, 1.9))
    ax.legend(fontsize=8, loc="upper right", ncol=2)
    for ax, P, name in ((axs[1, 0], P_exact, "(c) exact"), (axs[1, 1], P_mdn, "(d) learned (MDN)")):
        im = ax.imshow(P.T, origin="lower", extent=(yy[0], yy[-1], yy[0], yy[-1]), aspect="auto", cmap="viridis",
                       vmin=0, vmax=P_exact.max())
        ax.set(xlabel=r"$x_t$", ylabel=r"$x_{t+\tau}$", title=f"{name} $p_\\tau(x_{{t+\\tau}}|x_t)$")
        fig.colorbar(im, ax=ax, label="density")
    fig.suptitle(f"Four-well LSS (lag {lag} steps, C = {n_kernels}); mean TV of learned vs exact "
                 f"transition density {dens_err:.3f}", fontsize=10)
    fig.tight_layout()
    return fig


def implied_timescales_bars(series: dict, lag: int, title: str | None = None):
    """Implied timescales t1, t2, ... side by side, log scale.

    Parameters
    ----------
    series : dict label -> np.ndarray, shape (k,)
        Timescales in BD steps (or any one unit), e.g. exact, BD, LSS; drawn in order, colours by label
        ("exact ..." black and grey, then C0, C3, ...).
    lag : int
        Lag of the MSMs, for the title.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    k = np.arange(1, len(next(iter(series.values()))) + 1)
    wdt = 0.8 / len(series)
    palette = iter(["k", "0.5", "C0", "C3", "C2", "C1"])
    for n, (label, ts) in enumerate(series.items()):
        ax.bar(k + (n - (len(series) - 1) / 2) * wdt, ts, wdt, color=next(palette), label=label)
    ax.set_yscale("log")
    ax.set_xticks(k, [f"$t_{i}$" for i in k])
    ax.set_ylabel("implied timescale [steps]")
    ax.legend(fontsize=8)
    ax.set_title(title or f"Four-well implied timescales at lag {lag} steps")
    fig.tight_layout()
    return fig


def mdn_training(history: dict, best_epoch: int):
    """Learning curves of one MDN: training and held-out negative log-likelihood per epoch.

    Parameters
    ----------
    history : dict
        ``train_nll`` and ``val_nll``, sequences of length n_epochs (nats per pair, scaled units).
    best_epoch : int
        The epoch kept by early stopping (dotted line).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3))
    ax.plot(history["train_nll"], label="training")
    ax.plot(history["val_nll"], label="validation (held-out blocks)")
    ax.axvline(best_epoch, color="0.6", ls=":", label="kept")
    ax.set(xlabel="epoch", ylabel="NLL per pair (scaled units)", title="MDN training")
    ax.legend()
    return fig


def four_well_conditionals(ref, log_prob, starts=(-0.75, -0.25, 0.25, 0.75)):
    """Exact and learned one-lag transition densities ``p_tau(x_{t+tau} | x_t)`` at a few starting points.

    Parameters
    ----------
    ref : lss.fourwell.ExactReference
        The exact operator: its fine grid ``x`` and ``transition_density``.
    log_prob : callable
        ``log_prob(x_t, x_tau)`` of the learned model on arrays of shape (n, 1), e.g. ``mdn.log_prob``.
    starts : sequence of float
        Starting points x_t (one panel each), in the units of x.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    starts = np.asarray(starts, dtype=float)
    fig, axs = plt.subplots(1, len(starts), figsize=(12, 2.8), sharey=True)
    for ax, s in zip(np.atleast_1d(axs), starts):
        ax.plot(ref.x, ref.transition_density(np.array([s]))[0], "k-", lw=2, label="exact")
        ax.plot(ref.x, np.exp(log_prob(np.full((len(ref.x), 1), s), ref.x[:, None])), "C3--", label="MDN")
        ax.set(title=f"$x_t$ = {s}", xlabel=r"$x_{t+\tau}$", xlim=(-1.3, 1.3))
    axs[0].set_ylabel("density")
    axs[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ Trp-cage data (02)

def cooperativity_check(q_additive, q_many_body, t_additive: float, t_many_body: float):
    """Distributions of Q of the additive Go model and of the model with the many-body term.

    Parameters
    ----------
    q_additive, q_many_body : np.ndarray, shape (n_frames,)
        Fraction of native contacts (0-1) of a short run of each model.
    t_additive, t_many_body : float
        Their temperatures, K (for the legend).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    bins = np.linspace(0, 1, 32)
    ax.hist(q_additive, bins=bins, density=True, alpha=0.6, label=f"additive (Clementi 2000), {t_additive:g} K")
    ax.hist(q_many_body, bins=bins, density=True, alpha=0.6, label=f"with many-body term, {t_many_body:g} K")
    ax.set(xlabel="Q", ylabel="density", title="Cooperativity of the C-alpha model")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ SRV (03)

def _eig(i: int) -> str:
    """Label of SRV eigenfunction ``i`` (0 = slowest); the kept ones become psi_1 ... psi_m."""
    return f"$\\phi_{{{i + 1}}}$"


def _psi(j: int) -> str:
    return f"$\\psi_{{{j + 1}}}$"


def _lag_axis(ax, lags, frame_time: float, unit: str):
    """A log lag axis with one tick per scanned lag, in frames."""
    ax.set_xscale("log")
    ax.set_xticks(lags, [str(t) for t in lags])
    ax.minorticks_off()
    ax.set_xlabel(f"lag $\\tau$ [frames of {frame_time:g} {unit}]")


def _log_timescale_axis(ax):
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _subsample(n: int, seed: int, max_points: int = 40_000) -> np.ndarray:
    """Indices of at most about ``max_points`` of ``n`` points, shuffled with ``seed`` (scatter plots)."""
    return np.random.default_rng(seed).permutation(n)[::max(1, n // max_points)]


def srv_lag_selection(scan: dict, tica_timescales: np.ndarray, tau: int, frame_time: float, unit: str):
    """Implied timescales t1-t3 against the lag: SRVs trained at each lag, and linear TICA, with the chosen lag.

    Parameters
    ----------
    scan : dict
        :func:`lss.srv.implied_timescales_vs_lag` output: ``lags`` (n_lags,) in frames, ``timescales`` and
        ``timescales_spread`` (n_lags, 3) in frames.
    tica_timescales : np.ndarray, shape (n_lags, 3)
        TICA timescales at the same lags, frames.
    tau : int
        The chosen lag, frames.
    frame_time : float
        Time between frames, in ``unit`` (the y axis is in ``unit``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    lags, ft = list(scan["lags"]), frame_time
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for i in range(3):
        ax.errorbar(lags, scan["timescales"][:, i] * ft, yerr=scan["timescales_spread"][:, i] * ft, fmt="o-",
                    color=f"C{i}", capsize=2, label=f"SRV $t_{i + 1}$ (± block spread)")
        ax.plot(lags, tica_timescales[:, i] * ft, "x--", color=f"C{i}", alpha=0.6, label=f"TICA $t_{i + 1}$")
    ax.fill_between(lags, 0, np.asarray(lags) * ft, color="0.85", label=r"$t < \tau$ (not resolved)")
    ax.axvline(tau, color="k", ls=":", lw=1, label=f"chosen $\\tau$ = {tau} frames")
    _lag_axis(ax, lags, ft, unit)
    ax.set(yscale="log", ylabel=f"implied timescale [{unit}]", title="Lag selection")
    _log_timescale_axis(ax)
    ax.legend(fontsize=6.5, ncol=2)
    fig.tight_layout()
    return fig


def srv_training(srv):
    """Held-out VAMP-2 per epoch of every SRV restart, and the training score of the one kept.

    Parameters
    ----------
    srv : lss.srv.SRV
        Fitted: ``restart_histories_``, ``best_restart_``, ``history_`` (``train_vamp2``, ``val_vamp2``
        per epoch), ``best_epoch_`` and ``lag``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    others = [h for r, h in enumerate(srv.restart_histories_) if r != srv.best_restart_]
    for j, h in enumerate(others):
        ax.plot(h["val_vamp2"], color="0.6", lw=1, label="validation (other seeds)" if j == 0 else None)
    ax.plot(srv.history_["val_vamp2"], color="C3", lw=2, label="validation (kept)")
    ax.plot(srv.history_["train_vamp2"], color="C0", label="training (kept)")
    ax.axvline(srv.best_epoch_, color="0.5", ls=":")
    ax.set(xlabel="epoch", ylabel="VAMP-2", title=f"SRV training (lag {srv.lag} frames)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def srv_spectrum(srv, fixed: dict, tau: int, frame_time: float, unit: str, min_timescale_ratio: float | None):
    """The SRV's eigenfunctions: implied timescale over the lag (kept, rare, too fast), and a fixed basis against lag.

    Parameters
    ----------
    srv : lss.srv.SRV
        Fitted: ``timescales_`` (n_output,) in frames, ``modes_`` (kept), ``rare_modes_``, ``n_output_``.
    fixed : dict
        :func:`lss.srv.implied_timescales_vs_lag` with ``estimator=srv``: ``lags`` (n_lags,) and
        ``timescales`` (n_lags, 3), frames.
    tau : int
        The lag, frames.
    frame_time : float
        Time between frames in ``unit``.
    min_timescale_ratio : float or None
        The dimension criterion in lags (dashed line), if any.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter

    lags, rare = list(fixed["lags"]), list(srv.rare_modes_)
    ts = srv.timescales_
    fig, axs = plt.subplots(1, 2, figsize=(10, 3.4))
    ax = axs[0]
    k = np.arange(srv.n_output_)
    colors = ["C3" if i in srv.modes_ else "C1" if i in rare else "0.6" for i in k]
    ax.bar(k, np.where(np.isfinite(ts), ts, 0) / tau, color=colors)
    if min_timescale_ratio is not None:
        ax.axhline(min_timescale_ratio, color="k", ls="--", lw=1, label=f"criterion: {min_timescale_ratio:g} lags")
    ax.axhline(1, color="0.4", ls=":", lw=1, label="one lag")
    ax.set_xticks(k, [_eig(i) for i in k])
    ax.set(yscale="log", ylabel=r"implied timescale / lag $t_i/\tau$",
           title=f"eigenfunctions at lag {tau} frames (red: kept, orange: rare, grey: too fast)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax = axs[1]
    for i in range(3):
        ax.plot(lags, fixed["timescales"][:, i] * frame_time, "s-", color=f"C{i}",
                label=f"{_eig(i)}, trained basis re-solved at each lag")
    ax.fill_between(lags, 0, np.asarray(lags) * frame_time, color="0.85")
    _lag_axis(ax, lags, frame_time, unit)
    ax.set(yscale="log", ylabel=f"implied timescale [{unit}]", title="Fixed basis: timescales against lag")
    _log_timescale_axis(ax)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def srv_latent(psi: np.ndarray, q: np.ndarray, rmsd: np.ndarray, seed: int = 0):
    """The latent space coloured by Q and by RMSD: every pair of the first three coordinates.

    Parameters
    ----------
    psi : np.ndarray, shape (n_frames, m)
        Latent coordinates (all trajectories concatenated); at most 40,000 frames are drawn.
    q, rmsd : np.ndarray, shape (n_frames,)
        Fraction of native contacts, and C-alpha RMSD to the native structure in nm.
    seed : int
        Seeds the choice of the frames drawn.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    m = psi.shape[1]
    pairs = [(0, 1), (0, 2), (1, 2)] if m >= 3 else [(0, 1)] if m == 2 else []
    sel = _subsample(len(psi), seed)
    if pairs:
        fig, axs = plt.subplots(2, len(pairs), figsize=(4.2 * len(pairs), 7), squeeze=False)
        for j, (a, b) in enumerate(pairs):
            for row, (c, name, cmap) in enumerate(((q, "Q", "viridis"), (rmsd, "RMSD [nm]", "magma_r"))):
                ax = axs[row, j]
                sc = ax.scatter(psi[sel, a], psi[sel, b], c=c[sel], s=1, cmap=cmap, rasterized=True)
                ax.set(xlabel=_psi(a), ylabel=_psi(b))
                fig.colorbar(sc, ax=ax, label=name)
        fig.suptitle("SRV latent space: the kept eigenfunctions", fontsize=10)
    else:
        fig, axs = plt.subplots(1, 2, figsize=(9, 3.2))
        axs[0].scatter(psi[sel, 0], q[sel], s=1)
        axs[0].set(xlabel=_psi(0), ylabel="Q")
        axs[1].scatter(psi[sel, 0], rmsd[sel], s=1)
        axs[1].set(xlabel=_psi(0), ylabel="RMSD [nm]")
    fig.tight_layout()
    return fig


def srv_rare_modes(psi_rare: np.ndarray, q: np.ndarray, rare, seed: int = 0):
    """Each mode skipped as rarely sampled against psi_1, coloured by Q.

    Parameters
    ----------
    psi_rare : np.ndarray, shape (n_frames, 1 + len(rare))
        psi_1, then the rare eigenfunctions (``srv.transform(X, modes=[0] + rare)``, concatenated).
    q : np.ndarray, shape (n_frames,)
        Fraction of native contacts.
    rare : sequence of int
        Indices of the rare eigenfunctions (0 = slowest), for the labels.
    seed : int
        Seeds the choice of the frames drawn (the same as :func:`srv_latent`'s).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    sel = _subsample(len(psi_rare), seed)
    fig, axs = plt.subplots(1, len(rare), figsize=(4.2 * len(rare), 3.2), squeeze=False)
    for j, r in enumerate(rare):
        sc = axs[0, j].scatter(psi_rare[sel, 0], psi_rare[sel, j + 1], c=q[sel], s=1, rasterized=True)
        axs[0, j].set(xlabel=r"$\psi_1$", ylabel=f"{_eig(r)} (rare, not kept)")
        fig.colorbar(sc, ax=axs[0, j], label="Q")
    fig.tight_layout()
    return fig


def srv_free_energy(psi: np.ndarray, bins: int):
    """Free energy of the MD frames in the kept coordinates: over (psi_1, psi_2), or along psi_1 when m = 1.

    Parameters
    ----------
    psi : np.ndarray, shape (n_frames, m)
        Latent coordinates of all frames.
    bins : int
        Histogram bins per axis.

    Returns
    -------
    matplotlib.figure.Figure
        F = -ln p in kT, zero at the minimum.
    """
    import matplotlib.pyplot as plt

    with np.errstate(divide="ignore"):
        if psi.shape[1] >= 2:
            H, ex, ey = np.histogram2d(psi[:, 0], psi[:, 1], bins=bins)
            F = -np.log(H / H.sum())
            F -= F[np.isfinite(F)].min()
            fig, ax = plt.subplots(figsize=(5, 4))
            im = ax.contourf(0.5 * (ex[1:] + ex[:-1]), 0.5 * (ey[1:] + ey[:-1]), F.T, levels=np.arange(0, 8.5, 0.5),
                             cmap="nipy_spectral")
            fig.colorbar(im, ax=ax, label=r"$F$ [$k_BT$]")
            ax.set(xlabel=_psi(0), ylabel=_psi(1), title="Free energy, MD data in SRV coordinates")
        else:
            H, ex = np.histogram(psi[:, 0], bins=bins)
            F = -np.log(H / H.sum())
            F -= F[np.isfinite(F)].min()
            fig, ax = plt.subplots(figsize=(5, 3.2))
            ax.plot(0.5 * (ex[1:] + ex[:-1]), F, "k-")
            ax.set(xlabel=_psi(0), ylabel=r"$F$ [$k_BT$]", title="Free energy, MD data along the SRV coordinate")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ MDN propagator (04)

def mdn_learning_curves(histories: dict):
    """Training (solid) and held-out (dashed) NLL per epoch of one or more MDNs, one colour each.

    Parameters
    ----------
    histories : dict label -> dict
        E.g. ``{"with reversal": mdn.history_}``; each with ``train_nll`` and ``val_nll`` per epoch
        (nats per pair, scaled units).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for k, (label, h) in enumerate(histories.items()):
        ax.plot(h["train_nll"], f"C{k}-", label=f"training ({label})")
        ax.plot(h["val_nll"], f"C{k}--", label="validation")
    ax.set(xlabel="epoch", ylabel="NLL per pair (scaled units)", title="MDN learning curves")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def mdn_conditional_densities(mdn, X0: np.ndarray, X1: np.ndarray, starts: np.ndarray, seed: int = 0,
                              n_samples: int = 4000):
    """One-step densities p_tau(psi_{t+tau} | psi_t): the MDN's samples against MD's successors of nearby frames.

    Parameters
    ----------
    mdn : lss.mdn.MDNPropagator
        Fitted; ``n_samples`` one-step samples are drawn from each start (seeds ``seed + i``).
    X0, X1 : np.ndarray, shape (n_pairs, m)
        MD frames and their successors one lag later (latent units).
    starts : np.ndarray, shape (n_starts, m)
        Starting points, one row of panels each; MD's successors are those of the
        ``max(200, n_pairs // 200)`` frames of ``X0`` nearest to the start.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    m = X0.shape[1]
    fig, axs = plt.subplots(len(starts), m, figsize=(3.2 * m, 2.4 * len(starts)), squeeze=False)
    for i, s in enumerate(starts):
        near = np.argsort(np.linalg.norm(X0 - s, axis=1))[:max(200, len(X0) // 200)]
        samp = mdn.sample(np.repeat(s[None], n_samples, 0), 1, random_state=seed + i)[:, 1]
        for j in range(m):
            ax = axs[i, j]
            bins = np.linspace(min(X1[near, j].min(), samp[:, j].min()), max(X1[near, j].max(), samp[:, j].max()), 40)
            ax.hist(X1[near, j], bins, density=True, color="0.6", label=f"MD ({len(near)} successors)")
            ax.hist(samp[:, j], bins, density=True, histtype="step", color="C3", lw=1.5, label="MDN")
            ax.set(xlabel=fr"$\psi_{{{j + 1}}}(t+\tau)$")
            if j == 0:
                ax.set_ylabel(f"start {i + 1}: " + ", ".join(f"{v:.2f}" for v in s), fontsize=8)
    axs[0, 0].legend(fontsize=7)
    fig.suptitle(r"$p_\tau(\psi_{t+\tau} | \psi_t)$: MDN against MD", fontsize=10)
    fig.tight_layout()
    return fig


def mdn_stationary(Z: np.ndarray, ensembles: dict, n_bins: int = 50):
    """F = -ln p of each latent coordinate: MD against long propagator runs, with the total variation.

    Parameters
    ----------
    Z : np.ndarray, shape (n_frames, m)
        MD's latent frames (all trajectories).
    ensembles : dict label -> np.ndarray, shape (n_traj, n_steps + 1, m)
        Propagator trajectories; the first is drawn red and its TV is in the titles, a second orange, dotted.
    n_bins : int
        Bins over MD's range of each coordinate.

    Returns
    -------
    fig, tv : matplotlib Figure, dict label -> list of float
        The figure and each ensemble's total variation to MD per coordinate (histograms normalised over
        the bins).
    """
    import matplotlib.pyplot as plt

    m = Z.shape[1]
    styles = ["C3-", "C1:", "C2--"]
    fig, axs = plt.subplots(1, m, figsize=(3.4 * m, 2.8), squeeze=False)
    tv = {label: [] for label in ensembles}
    for j in range(m):
        ax = axs[0, j]
        bins = np.linspace(Z[:, j].min(), Z[:, j].max(), n_bins)
        c = 0.5 * (bins[1:] + bins[:-1])
        h_md = np.histogram(Z[:, j], bins)[0]
        with np.errstate(divide="ignore"):
            ax.plot(c, -np.log(h_md / h_md.sum()), "k-", label="MD")
            for k, (label, traj) in enumerate(ensembles.items()):
                h = np.histogram(traj[:, :, j], bins)[0]
                tv[label].append(0.5 * np.abs(h_md / h_md.sum() - h / h.sum()).sum())
                ax.plot(c, -np.log(h / h.sum()), styles[k], label=label)
        ax.set(xlabel=fr"$\psi_{{{j + 1}}}$", ylabel="F / kT", title=f"TV {tv[next(iter(ensembles))][-1]:.3f}")
    axs[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig, tv


def msm_timescales_vs_lag(its_md: dict, its_lss: dict, tau: int, frame_time: float, unit: str):
    """The slowest MSM implied timescale against the MSM lag, for MD and for the LSS, with block spreads.

    Parameters
    ----------
    its_md : dict
        :func:`lss.msm.msm_timescales_vs_lag` of MD: ``lags`` in frames, ``timescales`` and
        ``timescales_spread`` (n_lags, k) in frames.
    its_lss : dict
        The same of the LSS, lags and timescales in propagator steps of ``tau`` frames.
    frame_time : float
        Time between frames, in ``unit``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    ft = frame_time
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.errorbar(its_md["lags"] * ft, its_md["timescales"][:, 0] * ft, its_md["timescales_spread"][:, 0] * ft, fmt="ko-",
                capsize=2, label="MSM of MD")
    ax.errorbar(its_lss["lags"] * tau * ft, its_lss["timescales"][:, 0] * tau * ft,
                its_lss["timescales_spread"][:, 0] * tau * ft, fmt="C3s--", capsize=2, label="MSM of LSS")
    ax.set(xlabel=f"MSM lag [{unit}]", ylabel=f"slowest implied timescale [{unit}]",
           title="MSM implied timescale against the lag")
    ax.set_ylim(0, None)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ adaptive sampling (08)

#: names and colours of the adaptive-sampling strategies (lss.adaptive), the same in both figures
ADAPTIVE_NAMES = {"plain": "plain MD", "counts": "least counts", "lss": "LSS-guided"}
ADAPTIVE_COLORS = {"plain": "k", "counts": "C0", "lss": "C3"}


def adaptive_sampling(scores: dict, budget_fraction: np.ndarray, training_steps: int, target_fraction: float,
                      t1_ref: float, unit: str, rmse_max: float, t1_err_max: float):
    """Error against MD budget of each strategy: F(psi1) RMSE (LSS estimate and raw MD) and the t1 error.

    Parameters
    ----------
    scores : dict strategy -> dict
        :func:`lss.adaptive.score_campaigns`: ``rmse_lss``, ``rmse_md`` (kT) and ``t1_err`` (relative),
        each (n_seeds, n_rounds); strategies named in :data:`ADAPTIVE_NAMES`.
    budget_fraction : np.ndarray, shape (n_rounds,)
        Cumulative MD budget of each round over the training MD (log x axis).
    training_steps : int
        Langevin steps of the training MD (axis label).
    target_fraction : float
        The target's budget over the training MD (grey band).
    t1_ref : float
        The reference's t1, in ``unit`` (title).
    rmse_max, t1_err_max : float
        The target's bounds, kT and relative (dotted lines).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    x = budget_fraction
    nudge = {"plain": 0.96, "counts": 1.0, "lss": 1.04}       # side by side, so that the error bars do not hide each other
    fig, axs = plt.subplots(1, 2, figsize=(11, 4))
    for st, sc in scores.items():
        c = ADAPTIVE_COLORS[st]
        for key, ls in (("rmse_lss", "-"), ("rmse_md", "--")):
            axs[0].errorbar(x * nudge[st], sc[key].mean(0), sc[key].std(0), color=c, ls=ls, marker="o", ms=3, capsize=2)
        axs[1].errorbar(x * nudge[st], 100 * sc["t1_err"].mean(0), 100 * sc["t1_err"].std(0), color=c, marker="o",
                        ms=3, capsize=2, label=ADAPTIVE_NAMES[st])
    axs[0].plot([], [], "k-", label="LSS estimate")
    axs[0].plot([], [], "k--", label="raw MD histogram")
    axs[0].axhline(rmse_max, color="0.5", ls=":", lw=1)
    axs[1].axhline(100 * t1_err_max, color="0.5", ls=":", lw=1)
    for ax in axs:
        ax.axvline(target_fraction, color="0.7", lw=4, alpha=0.5)
        ax.set(xscale="log", xlabel=f"MD budget / training MD of this profile ({training_steps:,} steps)")
        ax.set_xticks(x, labels=[f"1/{1 / v:.3g}" for v in x])
        ax.minorticks_off()
    axs[0].set(ylabel=r"RMSE of $F(\psi_1)$ vs reference [$k_BT$]", title=r"thermodynamics: $F(\psi_1)$")
    axs[1].set(ylabel=r"$|t_1 - t_1^{ref}| / t_1^{ref}$ [%]", title=f"kinetics: $t_1$ (reference {t1_ref:.3g} {unit})")
    axs[0].legend(fontsize=8)
    axs[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def adaptive_profiles(scores: dict, start_q: dict, j: int, edges: np.ndarray, F_ref: np.ndarray, region: np.ndarray,
                      max_dF: float, q_barrier: float):
    """F(psi1) of each strategy at one budget (seed 0) against the reference, and where the restarts went.

    Parameters
    ----------
    scores : dict strategy -> dict
        :func:`lss.adaptive.score_campaigns`: ``F_md``, ``F_lss`` (n_seeds, n_rounds, n_bins) in kT and
        ``rmse_lss``, ``rmse_md`` (n_seeds, n_rounds).
    start_q : dict strategy -> sequence
        Mean Q of the starting structures of each round (first seed).
    j : int
        The round (budget) shown.
    edges : np.ndarray, shape (n_bins + 1,)
        Bin edges of psi1.
    F_ref : np.ndarray, shape (n_bins,)
        The reference's F(psi1), kT; ``region`` (bool, n_bins) the bins compared, where each profile is
        shifted onto it.
    max_dF : float
        Upper limit of the F axes above the minimum, kT (+2).
    q_barrier : float
        Q of the folding barrier (dotted line in the last panel).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    c = 0.5 * (edges[1:] + edges[:-1])
    fig, axs = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, st in zip(axs, scores):
        ax.plot(c, F_ref - F_ref[region].min(), color="C2", lw=2, label="reference")
        for key, ls, lab in (("F_md", "--", "raw MD"), ("F_lss", "-", "LSS")):
            F = scores[st][key][0, j]
            shift = np.mean(F_ref[region] - F[region])
            ax.plot(c, F + shift - F_ref[region].min(), color=ADAPTIVE_COLORS[st], ls=ls, label=lab)
        ax.set(xlabel=r"$\psi_1$", ylim=(-0.5, max_dF + 2),
               title=f"{ADAPTIVE_NAMES[st]}: LSS {scores[st]['rmse_lss'][0, j]:.2f}, MD {scores[st]['rmse_md'][0, j]:.2f} kT")
        ax.legend(fontsize=7)
    axs[0].set_ylabel(r"$F(\psi_1)$ [$k_BT$]")
    for st, q in start_q.items():
        axs[3].plot(range(len(q)), q, "o-", color=ADAPTIVE_COLORS[st], label=ADAPTIVE_NAMES[st])
    axs[3].axhline(q_barrier, color="0.6", ls=":", lw=1)
    axs[3].set(xlabel="round", ylabel="mean Q of the starts", title="where the restarts went",
               xticks=range(max(len(q) for q in start_q.values())))
    axs[3].legend(fontsize=7)
    fig.tight_layout()
    return fig


def trpcage_features(t, q, X, feature_names, unit: str = "", n_show: int = 4000, n_top: int = 8):
    """A stretch of the scaled feature matrix under Q(t), and the features that follow Q most closely.

    Parameters
    ----------
    t : np.ndarray, shape (n_frames,)
        Time of the frames (any unit; the x axis).
    q : np.ndarray, shape (n_frames,)
        Q of the same frames.
    X : np.ndarray, shape (n_frames, n_features)
        Scaled features (mean 0, sd 1 over the training data).
    feature_names : sequence of str
    unit : str
        Unit of ``t``, for the axis label.
    n_show, n_top : int
        Frames shown; features ranked by |correlation with Q| in the bar panel.

    Returns
    -------
    fig, corr : matplotlib Figure, np.ndarray shape (n_features,)
        The figure and each feature's Pearson correlation with Q (0 for a constant feature).
    """
    import matplotlib.pyplot as plt

    n_show = min(len(X), n_show)
    ok = X.std(0) > 0
    corr = np.zeros(X.shape[1])
    if q.std() > 0:
        Xc, qc = X[:, ok] - X[:, ok].mean(0), q - q.mean()
        corr[ok] = (Xc * qc[:, None]).sum(0) / np.sqrt((Xc ** 2).sum(0) * (qc ** 2).sum())
    top = np.argsort(-np.abs(corr))[:n_top]
    fig, axs = plt.subplots(2, 2, figsize=(12, 5.5), gridspec_kw={"height_ratios": [1, 3], "width_ratios": [3, 1]})
    axs[0, 0].plot(t[:n_show], q[:n_show], lw=0.6)
    axs[0, 0].set(ylabel="Q", xlim=(t[0], t[n_show - 1]), title=f"first {n_show} frames of trajectory 0")
    im = axs[1, 0].imshow(X[:n_show].T, aspect="auto", cmap="RdBu_r", vmin=-3, vmax=3, interpolation="nearest",
                          extent=(t[0], t[n_show - 1], X.shape[1] - 0.5, -0.5))
    axs[1, 0].set(xlabel=f"time [{unit}]" if unit else "time", ylabel="feature index")
    axs[0, 1].axis("off")
    fig.colorbar(im, cax=axs[0, 1].inset_axes([0.05, 0.45, 0.9, 0.15]), orientation="horizontal",
                 label="scaled feature value")
    axs[1, 1].barh(range(len(top)), corr[top], color=["C3" if c < 0 else "C0" for c in corr[top]])
    axs[1, 1].set_yticks(range(len(top)), [feature_names[k] for k in top], fontsize=7)
    axs[1, 1].invert_yaxis()
    axs[1, 1].set(xlabel="correlation with Q", xlim=(-1, 1))
    fig.tight_layout()
    return fig, corr


def trpcage_states(t, q0, flip0, q_all, flip_all, labels_all, unit: str, names=("unfolded", "folded", "flipped")):
    """The three metastable states of the Go model: F(Q, flip angle), one trajectory's trace, Q per proline state.

    Parameters
    ----------
    t : np.ndarray (n,), time of the first trajectory's frames
    q0, flip0 : np.ndarray (n,), its Q and flip angle (rad)
    q_all, flip_all : np.ndarray (N,), all frames
    labels_all : np.ndarray (N,), milestoned state of every frame (-1 before the first core)
    unit : str, time unit
    """
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 3, figsize=(14, 3.6), gridspec_kw={"width_ratios": [1, 1.6, 1]})
    deg = np.degrees(np.abs(flip_all))
    n_c = 31                                        # Q takes the values k / 31: one bin per value
    H, xe, ye = np.histogram2d(q_all, deg, bins=((np.arange(n_c + 2) - 0.5) / n_c, np.linspace(0, 180, 37)))
    with np.errstate(divide="ignore"):
        F = -np.log(H / H.sum())
    F -= F[np.isfinite(F)].min()
    im = axs[0].contourf(0.5 * (xe[1:] + xe[:-1]), 0.5 * (ye[1:] + ye[:-1]), F.T, levels=np.arange(0, 9, 0.5),
                         cmap="nipy_spectral")
    fig.colorbar(im, ax=axs[0], label=r"$F$ [$k_BT$]")
    for x, y, name in ((0.3, 75, names[0]), (0.9, 75, names[1]), (0.5, 100, names[2] + " (above)")):
        axs[0].text(x, y, name, color="k", fontsize=8, ha="center")
    axs[0].set(xlabel="Q", ylabel="|flip angle| [deg]", title="free energy: folding x proline flip")
    ax = axs[1]
    ax.plot(t, q0, color="0.3", lw=0.4, label="Q")
    ax.set(xlabel=f"time [{unit}]", ylabel="Q", ylim=(0, 1.05), title="one trajectory")
    ax2 = ax.twinx()
    ax2.plot(t, np.degrees(np.abs(flip0)), color="C1", lw=0.4, alpha=0.8, label="|flip angle|")
    ax2.set(ylabel="|flip angle| [deg]", ylim=(0, 185))
    ax2.yaxis.label.set_color("C1")
    ax = axs[2]
    bins = np.linspace(0, 1, 33)
    for k, (name, sel) in enumerate((("prolines native", np.abs(flip_all) < np.pi / 3),
                                     ("prolines flipped", np.abs(flip_all) > 2 * np.pi / 3))):
        if sel.any():
            ax.hist(q_all[sel], bins, density=True, histtype="step", lw=1.5, color=f"C{3 * k}",
                    label=f"{name} ({sel.mean():.0%} of frames)")
    ax.set(xlabel="Q", ylabel="density", title="cooperativity in each proline state")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def state_comparison(states: dict, style: dict, unit: str, names=("unfolded", "folded", "flipped")):
    """Populations and mean first-passage times of the metastable states, ensemble by ensemble.

    Parameters
    ----------
    states : dict name -> :func:`lss.gomodel.state_kinetics` result
    style : dict name -> matplotlib line style (``color``, ...)
    unit : str, time unit of the MFPTs
    """
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1, 1.7]})
    ks = list(states)
    w = 0.8 / len(ks)
    for j, k in enumerate(ks):
        x = np.arange(len(names)) + (j - (len(ks) - 1) / 2) * w
        axs[0].bar(x, states[k]["p"], w, yerr=2 * np.asarray(states[k]["se"]), color=style[k]["color"], alpha=0.8,
                   capsize=2, label=k)
    axs[0].set_xticks(range(len(names)), names)
    axs[0].set(ylabel="population", title="state populations (± 2 block s.e.)")
    axs[0].legend(fontsize=8)
    pairs = [(a, b) for a in range(len(names)) for b in range(len(names)) if a != b]
    for j, k in enumerate(ks):
        mf = states[k]["mfpt"]
        y = np.arange(len(pairs)) + (j - (len(ks) - 1) / 2) * 0.18
        mean = np.array([mf["mean"][a, b] for a, b in pairs])
        lo = np.array([mf["low"][a, b] for a, b in pairs])
        hi = np.array([mf["high"][a, b] for a, b in pairs])
        err = np.where(np.isfinite(lo) & np.isfinite(hi), [mean - lo, hi - mean], 0.0)
        axs[1].errorbar(mean, y, xerr=err, fmt="o", color=style[k]["color"], capsize=2, ms=4, label=k)
    axs[1].set_yticks(range(len(pairs)), [f"{names[a]} -> {names[b]}" for a, b in pairs])
    axs[1].set(xscale="log", xlabel=f"mean first-passage time [{unit}]", title="first-passage times (95 % block bootstrap)")
    axs[1].invert_yaxis()
    axs[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def free_energy_panels(profiles: dict, style: dict, labels, rmse: dict | None = None, max_dF: float = 6.0):
    """Free-energy profiles of several ensembles along several coordinates, one panel per coordinate.

    Parameters
    ----------
    profiles : dict coordinate index -> dict ensemble -> (centers, F, F_err), F in kT, minimum 0
    style : dict ensemble -> matplotlib style
    labels : sequence of str, the coordinates' axis labels
    rmse : dict coordinate index -> dict ensemble -> float, optional (shown in the panel titles)
    """
    import matplotlib.pyplot as plt

    n = len(profiles)
    ncol = min(n, 4)
    nrow = -(-n // ncol)
    fig, axs = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax, (i, prof) in zip(axs.flat, profiles.items()):
        for k, (c, F, E) in prof.items():
            ax.plot(c, F, label=k, **style[k])
            if E is not None:            # block standard errors of every ensemble
                ax.fill_between(c, F - E, F + E, color=style[k]["color"], alpha=0.15)
        ax.set(xlabel=labels[i], ylabel=r"$F$ [$k_BT$]", ylim=(-0.3, max_dF + 2))
        if rmse is not None and i in rmse:
            ax.set_title("RMSE vs reference: " + ", ".join(f"{k} {v:.2f}" for k, v in rmse[i].items()), fontsize=8)
    for ax in list(axs.flat)[n:]:
        ax.axis("off")
    axs[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def efficiency_curves(curve: dict, errors: dict, table: dict, fractions, train_frames: float, quantities: dict):
    """Error against the reference vs data length, one panel per quantity (notebook 09).

    Parameters
    ----------
    curve : :func:`lss.efficiency.md_error_curve` (lengths in lag-grid frames)
    errors : dict length fraction -> name ("MD", "MSM", "LSS") -> list (replicas) of :func:`lss.efficiency.errors`
    table : dict (quantity, fraction) -> {"err": name -> RMS error, "G": name -> (G, how)}
    fractions : the curve's lengths as fractions of the training MD
    train_frames : the training MD's length in lag-grid frames
    quantities : :data:`lss.efficiency.QUANTITIES`
    """
    import matplotlib.pyplot as plt

    keys = list(quantities)
    ncol = 4
    nrow = -(-len(keys) // ncol)
    fig, axs = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 3.0 * nrow), layout="constrained", squeeze=False)
    x = np.asarray(curve["lengths"]) / train_frames
    style = {"MD": ("k", "o", -0.06), "MSM": ("C2", "s", 0.0), "LSS": ("C3", "D", 0.06)}
    for ax, k in zip(axs.flat, keys):
        per = [np.asarray(e, dtype=float) for e in curve["errors"][k]]
        lo = [np.nanpercentile(p[np.isfinite(p)], 16) if np.isfinite(p).any() else np.nan for p in per]
        hi = [np.nanpercentile(p[np.isfinite(p)], 84) if np.isfinite(p).any() else np.nan for p in per]
        ax.fill_between(x, lo, hi, color="0.85", label="MD pieces (16-84 %)")
        ax.plot(x, curve["rms"][k], "k-", lw=1.5, label="MD error curve (RMS)")
        for f, by_name in errors.items():
            for name, (c, mk, dx) in style.items():
                v = np.array([e[k] for e in by_name[name]], dtype=float)
                fin = np.isfinite(v)
                ax.plot(np.full(fin.sum(), f) * np.exp(dx), v[fin], mk, color=c, alpha=0.35, ms=4)
                ax.plot(f * np.exp(dx), table[k, f]["err"][name], mk, color=c, ms=8, mec="k",
                        label=f"{name} (RMS over replicas)" if f == min(errors) else None)
        g = table[k, min(errors)]["G"]["LSS"]
        shown = [v for ln in ax.get_lines() for v in np.asarray(ln.get_ydata(), dtype=float)]
        if not any(np.isfinite(v) and v > 0 for v in shown):
            ax.text(0.5, 0.5, "not resolved at these lengths", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.set_yscale("log")
        n_r = table[k, min(errors)].get("unresolved", {}).get("LSS", 0.0)
        shown_g = np.isfinite(g[0]) and n_r <= 0.5     # G of a quantity most replicas miss means nothing
        ax.set(xscale="log", xlabel="data length / training MD",
               title=f"{quantities[k][0]}" + (f"   G = {g[0]:.2g}" + (" (extrapolated)" if g[1] == "extrapolated" else "")
                                              if shown_g else "   G: not meaningful")
               + (f"\nLSS: {n_r:.0%} of replicas do not resolve it" if n_r else ""))
        ax.title.set_fontsize(9)
        ax.set_ylabel(f"error [{quantities[k][1]}]", fontsize=8)
        ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
        ax.minorticks_off()
    for ax in list(axs.flat)[len(keys):]:
        ax.axis("off")
    h, lab = axs.flat[0].get_legend_handles_labels()
    if len(keys) < axs.size:
        list(axs.flat)[len(keys)].legend(h, lab, loc="center", fontsize=8)
    else:                                              # no spare panel: below the panels, over no data
        fig.legend(h, lab, loc="outside lower center", ncol=5, fontsize=8)
    fig.suptitle("error against the converged reference: plain MD of each length vs models trained on the "
                 "training length (G at the shortest)", fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------- notebook 07
def fig3_free_energy(profiles: dict, style: dict, basins: dict, title: str, max_dF: float = 6.0,
                     error_title: str = "block standard errors"):
    """Paper Fig. 3: F(psi1) of every ensemble aligned to MD's, with the basins, and the block standard errors.

    Parameters
    ----------
    profiles : dict name -> (centres, F, F_err)
        Free energies (kT) on one set of bins; ``"MD"`` is the one the others are aligned to (by the
        constant minimising their RMSE over its bins within ``max_dF``).
    style : dict name -> matplotlib style
    basins : dict basin name -> (lo, hi, colour)
        psi1 range shaded for each basin (e.g. the middle half of the MD frames of each core).
    title, error_title : str
        Titles of the two panels.
    """
    import matplotlib.pyplot as plt

    from .analysis import aligned_rmse, sampled_region

    F_md = profiles["MD"][1]
    region = sampled_region(F_md, max_dF=max_dF)
    zero = np.nanmin(F_md[region])
    fig, axs = plt.subplots(1, 2, figsize=(11, 3.8))
    for k, (c, F, E) in profiles.items():
        ok = region & np.isfinite(F)
        shift = 0.0 if k == "MD" or not ok.any() else aligned_rmse(F_md, F, mask=ok, return_shift=True)[1]
        y = F + shift - zero
        axs[0].plot(c, y, label=k, **style[k])
        if k in ("MD", "LSS"):
            axs[0].fill_between(c, y - E, y + E, color=style[k]["color"], alpha=0.25)
            axs[1].plot(c, E, label=k, **style[k])
    for name, (lo, hi, col) in basins.items():
        axs[0].axvspan(lo, hi, color=col, alpha=0.08)
        axs[0].text(0.5 * (lo + hi), -0.4, f"{name} core", ha="center", va="bottom", fontsize=8, color=col)
    axs[0].set(xlabel=r"$\psi_1$", ylabel=r"$F(\psi_1)$ [$k_BT$]", ylim=(-0.5, max_dF + 1), title=title)
    axs[0].legend(fontsize=8, loc="center")
    axs[1].set(xlabel=r"$\psi_1$", ylabel="standard error [$k_BT$]", yscale="log", title=error_title)
    axs[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def structure_histograms(rg: dict, q: dict, native_rmsd: dict, style: dict, folded_centre: float):
    """Histograms of Rg (nm), Q and the RMSD to native (nm) of the folded window, one line per ensemble.

    ``rg``: name -> (n_frames,); ``q``: name -> list of (n_frames_i,); ``native_rmsd``: name -> (n,), left
    out where not finite."""
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 3, figsize=(13, 3.6))
    for k, v in rg.items():
        axs[0].hist(v, bins=60, density=True, histtype="step", lw=1.5, label=k, **style[k])
        axs[1].hist(np.concatenate(q[k]), bins=np.linspace(0, 1, 33), density=True, histtype="step", lw=1.5, label=k, **style[k])
    for k, v in native_rmsd.items():
        if np.isfinite(v).all():
            axs[2].hist(v, bins=40, density=True, histtype="step", lw=1.5, label=k, **style[k])
    axs[0].set(xlabel="Rg [nm]", ylabel="density", title="radius of gyration")
    axs[1].set(xlabel="Q", title="fraction of native contacts")
    axs[2].set(xlabel="C-alpha RMSD to 2JOF [nm]", title=f"folded window, $\\psi_1$ = {folded_centre:.2f}")
    for ax in axs:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def relaxation_fits(details: dict, dt: float, unit: str, style: dict):
    """Autocorrelation of every latent coordinate and its exponential fit (paper Table 1), one panel per mode.

    ``details``: name -> ``{"acf": (n_lags, m), "relax": lss.kinetics.relaxation_table result}`` on a grid
    of ``dt``; MD, LSS and reference are drawn (the fits of MD and LSS as lines)."""
    import matplotlib.pyplot as plt

    m = details["LSS"]["acf"].shape[1]
    lags = np.arange(len(details["LSS"]["acf"])) * dt
    fig, axs = plt.subplots(1, m, figsize=(3.8 * m, 3.0), squeeze=False)
    for i in range(m):
        ax = axs[0, i]
        for k, mk in (("MD", "o"), ("LSS", "s"), ("reference", "x")):
            if k in details:
                ax.plot(lags, details[k]["acf"][:len(lags), i], mk, color=style[k]["color"], mfc="none", ms=4, label=k)
        for k in ("MD", "LSS"):
            if details[k]["relax"]["resolved"][i]:
                ax.plot(lags, np.exp(-lags / details[k]["relax"]["t"][i]), **style[k], lw=1)
        ax.axhline(np.exp(-2), color="0.6", ls=":", lw=0.8)
        ax.set(xlabel=f"lag [{unit}]", ylabel=f"$C_{i + 1}$", yscale="log", ylim=(1e-2, 1.1), xlim=(0, lags[-1]),
               title=f"$t_{i + 1}$: MD {details['MD']['relax']['t'][i]:.3g}, LSS {details['LSS']['relax']['t'][i]:.3g} {unit}")
    axs[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def tica_surfaces(surfaces: dict, edges: dict, titles: dict | None = None, levels=np.arange(0, 9, 0.5)):
    """Paper Fig. 4: free-energy surfaces on TIC1-TIC2 and TIC1-TIC3, one row per ensemble.

    ``surfaces``: name -> {2: F (n1, n2), 3: F (n1, n3)} in kT on ``edges["tic1"]`` x ``edges["tic<b>"]``;
    ``titles``: (name, b) -> panel title."""
    import matplotlib.pyplot as plt

    names = list(surfaces)
    fig, axs = plt.subplots(len(names), 2, figsize=(9.5, 3.6 * len(names)), sharex=True, layout="constrained", squeeze=False)
    centre = lambda e: 0.5 * (e[1:] + e[:-1])  # noqa: E731
    for r, k in enumerate(names):
        for j, b in enumerate((2, 3)):
            F = surfaces[k][b]
            im = axs[r, j].contourf(centre(edges["tic1"]), centre(edges[f"tic{b}"]), (F - np.nanmin(F)).T, levels=levels,
                                    cmap="nipy_spectral")
            axs[r, j].set(ylabel=f"TIC{b}")
            axs[r, j].set_title((titles or {}).get((k, b), f"{k}: TIC1-TIC{b}"), fontsize=9)
    for ax in axs[-1]:
        ax.set_xlabel("TIC1")
    fig.colorbar(im, ax=axs, label=r"$F$ [$k_BT$]", shrink=0.8, pad=0.02)
    return fig


def first_passage_times(mfpt: dict, style: dict, unit: str, directions=("folding", "unfolding")):
    """Mean first-passage times with their 95 % intervals, one panel per direction.

    ``mfpt``: name -> direction -> ``{"mean", "low", "high"}`` (:func:`lss.kinetics.mean_first_passage_times`)."""
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, len(directions), figsize=(4 * len(directions), 2.8), sharey=True, squeeze=False)
    for ax, d in zip(axs[0], directions):
        for y, (k, v) in enumerate(mfpt.items()):
            r = v[d]
            err = [[r["mean"] - r["low"]], [r["high"] - r["mean"]]] if np.isfinite([r["low"], r["high"]]).all() else None
            ax.errorbar(r["mean"], y, xerr=err, fmt="o", color=style[k]["color"], capsize=2)
        ax.set_yticks(range(len(mfpt)), list(mfpt))
        ax.set(xlabel=f"mean first-passage time [{unit}]", title=f"{d} (95 % block bootstrap)")
        ax.set_xlim(0, None)
    fig.tight_layout()
    return fig


def ck_grid(ck: dict, reference: str = "MD", title: str = "", min_population: float = 0.02, style: dict | None = None,
            xlabel: str = r"$k$ (lags)"):
    """Chapman-Kolmogorov test between metastable sets: the MSM's prediction T^k with two block standard
    errors of the reference's counted probabilities, and each ensemble's counted probabilities.

    ``ck``: name -> :func:`lss.msm.chapman_kolmogorov` result (``k``, ``predicted``, ``reference``,
    ``reference_err`` (optional), ``other``, ``populations``); the first entry's prediction and reference
    are drawn, every entry's ``other`` (coloured by ``style[name]["color"]`` where given). Sets holding less
    than ``min_population`` are marked not tested."""
    import matplotlib.pyplot as plt

    first = next(iter(ck.values()))
    ks, n = first["k"], first["predicted"].shape[1]
    marks = ["C3s--", "C0^:", "C2x", "C4d-."]
    fig, axs = plt.subplots(n, n, figsize=(2.4 * n, 2.1 * n), sharex=True, sharey=True, squeeze=False)
    for a in range(n):
        for b in range(n):
            ax = axs[a, b]
            pred = first["predicted"][:, a, b]
            if first.get("reference_err") is not None:
                band = 2 * first["reference_err"][:, a, b]
                ax.fill_between(ks, pred - band, pred + band, color="0.85", label=f"± 2 {reference} block s.e.")
            ax.plot(ks, pred, "k-", label=f"MSM of {reference}, $T^k$")
            ax.plot(ks, first["reference"][:, a, b], "ko", mfc="none", ms=4, label=reference)
            for j, (name, c) in enumerate(ck.items()):
                color = (style or {}).get(name, {}).get("color", marks[j][:2])
                ax.plot(ks, c["other"][:, a, b], marks[j][2:], color=color, ms=3, label=name)
            tested = first["populations"][a] >= min_population
            ax.set_title(f"{a} → {b}" + ("" if tested else f" ({first['populations'][a]:.1%}: not tested)"), fontsize=7)
            ax.set_ylim(-0.02, 1.02)
    for ax in axs[-1]:
        ax.set_xlabel(xlabel)
    axs[0, 0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def coherence(coh: dict, style: dict, dt: float, unit: str):
    """C-alpha RMSD between frames one lag apart (:func:`lss.structure.time_coherence`), one line per ensemble."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for k, c in coh.items():
        ax.hist(c["rmsd"], bins=np.linspace(0, 0.8, 61), density=True, histtype="step", lw=1.5, label=f"{k} "
                f"(median {c['rmsd_median']:.3f} nm, distance autocorrelation {c['distance_acf']:.2f})", **style[k])
    ax.set(xlabel=f"C-alpha RMSD between frames one lag ({dt:g} {unit} of model time) apart [nm]", ylabel="density")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def cwgan_decoded(q: dict, cw: dict, edges: dict, flow_rmse: dict, flow_tv: float, style: dict):
    """The cWGAN on the LSS's latent trajectories: Q histograms beside the flow's and the truth's, and the
    cWGAN's TICA surfaces (``cw``: :func:`lss.compare.cwgan_decoded`)."""
    import matplotlib.pyplot as plt

    fig, axs = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    for k, qs in q.items():
        axs[0].hist(np.concatenate(qs), bins=np.linspace(0, 1, 33), density=True, histtype="step", lw=1.5,
                    color=style.get(k, dict(color="C4"))["color"], label=f"{k} (flow)" if k == "LSS" else k)
    axs[0].set(xlabel="Q", ylabel="density", title=f"Q: TV flow {flow_tv:.3f}, cWGAN {cw['q_tv']:.3f}")
    axs[0].legend(fontsize=8)
    centre = lambda e: 0.5 * (e[1:] + e[:-1])  # noqa: E731
    for j, b in enumerate((1, 2)):
        F = cw["F_tic"][b]
        im = axs[j + 1].contourf(centre(edges["tic1"]), centre(edges[f"tic{b + 1}"]), (F - np.nanmin(F)).T,
                                 levels=np.arange(0, 9, 0.5), cmap="nipy_spectral")
        key = f"tic1_tic{b + 1}"
        axs[j + 1].set(xlabel="TIC1", ylabel=f"TIC{b + 1}")
        axs[j + 1].set_title(f"cWGAN TIC1-TIC{b + 1}: RMSE vs MD {cw['tica_rmse'][key]:.2f} kT\n(flow "
                             f"{flow_rmse.get(key, np.nan):.2f} kT)", fontsize=9)
    fig.colorbar(im, ax=axs[1:], label=r"$F$ [$k_BT$]", shrink=0.9)
    return fig


# ---------------------------------------------------------------------------------------------- the idea of each notebook
def _flow(ax, labels, y=0.5, colors=None, arrows=None):
    """Boxes ``labels`` left to right on ``ax`` (axes coordinates) joined by arrows labelled ``arrows``."""
    n = len(labels)
    xs = np.linspace(0.1, 0.9, n)
    boxes = [ax.text(x, y, lab, ha="center", va="center", fontsize=8.5, transform=ax.transAxes,
                     bbox=dict(boxstyle="round,pad=0.4", fc=(colors or ["#eef3fb"] * n)[i], ec="0.4"))
             for i, (x, lab) in enumerate(zip(xs, labels))]
    for i in range(1, n):        # arrows from box edge to box edge
        ax.annotate("", xy=(0, 0.5), xycoords=boxes[i], xytext=(1, 0.5), textcoords=boxes[i - 1],
                    arrowprops=dict(arrowstyle="->", color="0.3", shrinkA=4, shrinkB=4))
        if arrows and arrows[i - 1]:
            ax.text(0.5 * (xs[i] + xs[i - 1]), y + 0.12, arrows[i - 1], ha="center", fontsize=7.5, color="0.3",
                    transform=ax.transAxes)
    ax.set_axis_off()


def concept(step: str):
    """The idea of notebook ``step`` in one picture (its "in plain words" section); returns the Figure.

    01: the propagator's job on the four-well; 02: the three metastable states on Q and the flip angle;
    03: the slowest eigenfunctions of the four-well's exact operator; 04: a mixture density; 05: GAN
    against flow; 06: the simulator's pipeline; 07: the floor; 08: the adaptive-sampling loop; 09: the
    amplification factor read off an MD error curve. Schematics, except 01, 03 and 04, which compute
    what they draw (``lss.fourwell``).
    """
    import matplotlib.pyplot as plt

    from . import fourwell as fw

    fig, ax = plt.subplots(1, 2 if step in ("01_four_well", "03_srv") else 1, figsize=(10, 2.8), squeeze=False)
    ax = ax[0]
    if step == "01_four_well":
        x = np.linspace(-1, 1, 400)
        ax[0].plot(x, fw.potential(x), "k")
        ax[0].set(xlabel="x", ylabel="V(x) [kT]", title="four wells: where the walker is slow to leave")
        _flow(ax[1], ["x(t)", "MDN:\np(x(t + tau) | x(t))", "x(t + tau)"], arrows=["encoder = identity", "sample"])
        ax[1].set_title("one LSS step: a learned transition density", fontsize=9)
    elif step == "02_trpcage_data":
        a = ax[0]
        for (x0, x1, y0, y1, c, name) in ((0, 0.45, 0, 60, "C0", "unfolded"), (0.85, 1, 0, 60, "C3", "folded"),
                                          (0, 1, 120, 180, "C1", "flipped (prolines)")):
            a.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, color=c, alpha=0.25))
            a.text(0.5 * (x0 + x1), 0.5 * (y0 + y1), name, ha="center", va="center", fontsize=9, color=c)
        a.set(xlim=(0, 1), ylim=(0, 180), xlabel="Q (fraction of native contacts)", ylabel="|flip angle| [deg]",
              title="three metastable states: cores on Q and the proline flip; between cores, the last core visited")
    elif step == "03_srv":
        ref = fw.ExactReference(lag=10, n_bins=100)
        w, v = fw._leading_eigs(ref.T, 3)                      # right eigenvectors: functions of x
        ax[0].plot(ref.x, fw.potential(ref.x), "k")
        ax[0].set(xlabel="x", ylabel="V(x) [kT]", title="the potential")
        for i in (1, 2):
            f = np.real(v[:, i])
            ax[1].plot(ref.x, f / np.abs(f).max(), label=f"psi_{i} (t_{i} = {-10 / np.log(abs(w[i])):.0f} steps)")
        ax[1].axhline(0, color="0.7", lw=0.8)
        ax[1].set(xlabel="x", title="the slowest eigenfunctions: which side of which barrier")
        ax[1].legend(fontsize=7)
    elif step == "04_mdn":
        y = np.linspace(-3, 3, 400)
        comps = [(0.5, -1.0, 0.4), (0.3, 0.6, 0.5), (0.2, 1.8, 0.3)]
        g = [w_ * np.exp(-0.5 * ((y - m_) / s_) ** 2) / (s_ * np.sqrt(2 * np.pi)) for w_, m_, s_ in comps]
        for k, (gk, (w_, m_, s_)) in enumerate(zip(g, comps)):
            ax[0].fill_between(y, gk, alpha=0.3, label=f"alpha_{k + 1} = {w_:g}: N({m_:g}, {s_:g}^2)")
        ax[0].plot(y, np.sum(g, 0), "k", label="p(y | x) = sum_k alpha_k N(y; mu_k, sigma_k^2)")
        ax[0].set(xlabel="y = psi(t + tau)", ylabel="density", title="a mixture density: weights, means and widths "
                  "all depend on x = psi(t)")
        ax[0].legend(fontsize=7)
    elif step == "05_cwgan":
        _flow(ax[0], ["noise z, latent psi", "generator G", "structure x", "critic C(x, psi)\nvs MD's x"], y=0.72,
              arrows=["", "", "real or generated?"])
        _flow(ax[0], ["structure x", "flow f(x; psi)\n(invertible)", "z ~ N(0, I)", "likelihood\np(x | psi)"], y=0.25,
              colors=["#f3f9ee"] * 4, arrows=["", "", "change of variables"])
        ax[0].text(0.01, 0.95, "cWGAN (the paper): a game", fontsize=9, transform=ax[0].transAxes)
        ax[0].text(0.01, 0.48, "normalizing flow: a likelihood, so a held-out score", fontsize=9, transform=ax[0].transAxes)
    elif step == "06_generate":
        _flow(ax[0], ["start\nstructures", "encoder\n(SRV)", "psi(0)", "MDN step\nx n_steps", "psi(t)", "decoder\n(in batches)",
                      "structures\n-> disk"])
        ax[0].set_title("generation: one network call per lag for all trajectories, decoding streamed in chunks", fontsize=9)
    elif step in ("07_analysis", "09_data_efficiency"):
        L = np.logspace(-0.7, 0.7, 50)
        ax[0].loglog(L, 0.3 / np.sqrt(L), "k", label="error of plain MD of length L (pieces of the reference)")
        if step == "07_analysis":
            ax[0].plot([1], [0.3], "ko", ms=8, label="the floor: independent MD of the training length")
            ax[0].axhspan(0.3, 0.45, color="C2", alpha=0.15, label="target: LSS error <= 1.5 x the floor")
            ax[0].plot([1], [0.38], "C3s", ms=8, label="LSS trained on that length")
        else:
            e = 0.15
            Leq = (0.3 / e) ** 2
            ax[0].plot([1], [e], "C3s", ms=8, label="LSS trained on length 1")
            ax[0].plot([1, Leq], [e, e], "C3:", lw=1)
            ax[0].plot([Leq], [e], "C3o", mfc="none", ms=9, label=f"MD as long as {Leq:.0f}x: G = {Leq:.0f}")
        ax[0].set(xlabel="length / training length", ylabel="error against the truth")
        ax[0].legend(fontsize=7)
    elif step == "08_adaptive_sampling":
        _flow(ax[0], ["short MD\nruns", "ensemble of\npropagators", "where they\ndisagree", "restart MD\nthere"],
              arrows=["train", "compare", "pick states"])
        ax[0].annotate("", xy=(0.1, 0.3), xytext=(0.9, 0.3), xycoords="axes fraction",
                       arrowprops=dict(arrowstyle="->", color="0.5", connectionstyle="arc3,rad=-0.3"))
        ax[0].set_title("adaptive sampling: MD where the model is least certain, round after round", fontsize=9)
    else:
        raise ValueError(f"no concept figure for {step!r}")
    fig.tight_layout()
    return fig
