"""Decoders side by side: one row of metrics per decoder, computed the same way for all of them.

A decoder of the latent space simulator (:class:`lss.cwgan.CWGAN`, :class:`lss.flow.FlowDecoder`)
maps latent points ``psi`` to C-alpha structures. :class:`DecoderBench` holds the held-out MD frames
and their latent points once, and scores any decoder's structures at those points: the Q histogram,
the TICA free-energy surfaces, the pair distances, the bonds, the conditional fidelity and the
re-encoding, beside two reference rows (MD frames of other blocks, and a nearest-neighbour lookup
that returns training frames).
"""
from __future__ import annotations

import time

import numpy as np

from . import analysis as A
from .score import js_distance
from .stats import total_variation
from .structure import bond_lengths, ca_angles, ca_distances, nearest_rmsd, pair_rmsd, radius_of_gyration

#: bins of the bond-angle histograms: 2 degrees on [0, 180] degrees (MD's per-angle sd is about 10)
ANGLE_BINS = np.linspace(0.0, np.pi, 91)


# ------------------------------------------------------------------------------------ evaluation
def histogram_tv(a: np.ndarray, b: np.ndarray, bins) -> float:
    """Total variation distance (0-1) between the histograms of samples ``a`` and ``b`` on ``bins``."""
    return total_variation(np.histogram(a, bins)[0], np.histogram(b, bins)[0])


class DecoderBench:
    """The MD side of the decoder comparison, computed once; :meth:`row` scores one decoder's output.

    Parameters
    ----------
    md_train_xyz : np.ndarray, shape (n_train, n_atoms, 3), nm
        Training frames (the nearest-neighbour reference row draws from them).
    md_train_latent : np.ndarray, shape (n_train, m)
    md_xyz : np.ndarray, shape (n, n_atoms, 3), nm
        Held-out MD frames: the reference ensemble of every metric.
    md_latent : np.ndarray, shape (n, m)
        Their latent points: each decoder makes one structure per point.
    tica : deeptime TICA model
        Fitted on MD pair distances; its first three components make the TIC1-TIC2 and TIC1-TIC3
        free-energy surfaces.
    q_fn : callable (n, n_atoms, 3) -> (n,)
        Fraction of native contacts.
    encode : callable (n, n_atoms, 3) -> (n, m), optional
        Structure -> latent point (featurizer + scaler + SRV) for the re-encoding check.
    md_floor_xyz : np.ndarray, optional
        A second, independent set of MD frames (other blocks of the trajectories): scored like a
        decoder, it is the MD-vs-MD floor of every metric.
    n_fidelity : int
        Held-out frames of the conditional-fidelity check; ``n_per_point`` structures each.
    fes_bins : int
        Bins per axis of the TICA surfaces; compared where MD is within ``max_dF`` kT of its minimum.
    random_state : int
    """

    def __init__(self, md_train_xyz, md_train_latent, md_xyz, md_latent, tica, q_fn, encode=None,
                 n_fidelity: int = 300, n_per_point: int = 5, fes_bins: int = 40, max_dF: float = 6.0,
                 n_novelty: int = 300, random_state: int = 0):
        from scipy.spatial import cKDTree

        self.xyz, self.latent = np.asarray(md_xyz, np.float32), np.asarray(md_latent, np.float32)
        self.train_xyz = np.asarray(md_train_xyz, np.float32)
        self.train_latent = np.asarray(md_train_latent, np.float32)
        self.tica, self.q_fn, self.encode = tica, q_fn, encode
        self.max_dF = max_dF
        rng = np.random.default_rng(random_state)
        self.q = np.asarray(q_fn(self.xyz), np.float64)
        self.q_bins = np.linspace(0, 1, 33)
        self.d = ca_distances(self.xyz)
        self.tics = A.project(tica, self.d)[:, :3]
        lo, hi = np.quantile(self.tics, [0.001, 0.999], axis=0)
        self.grid = [np.linspace(lo[i], hi[i], fes_bins + 1) for i in range(3)]
        self.F = {b: A.free_energy_2d(self.tics[:, 0], self.tics[:, b], bins=(self.grid[0], self.grid[b]))[2]
                  for b in (1, 2)}
        self.pair_bins = [np.linspace(self.d[:, k].min(), self.d[:, k].max(), 41) for k in range(self.d.shape[1])]
        self.bonds = bond_lengths(self.xyz)
        self.angles = ca_angles(self.xyz) if self.xyz.shape[1] > 2 else None
        self.fid_idx = rng.choice(len(self.xyz), min(n_fidelity, len(self.xyz)), replace=False)
        self.n_per_point = n_per_point
        self._scale = self.train_latent.std(0)
        self._tree = cKDTree(self.train_latent / self._scale)
        _, nb = self._tree.query(self.latent[self.fid_idx] / self._scale, k=10)
        targets = np.repeat(self.xyz[self.fid_idx], 10, 0)
        self.fid_neighbours = float(np.median(pair_rmsd(self.train_xyz[nb.ravel()], targets)))
        # novelty: the RMSD of held-out MD frames to their nearest training frame (what new MD scores)
        self.nov_idx = rng.choice(len(self.xyz), min(n_novelty, len(self.xyz)), replace=False)
        self.nov_md = nearest_rmsd(self.xyz[self.nov_idx], self.train_xyz)
        self.rng = rng

    def nearest_neighbour(self, latent: np.ndarray, k: int = 10) -> np.ndarray:
        """The reference decoder: a training frame drawn among the ``k`` nearest in (standardised) latent space."""
        _, nb = self._tree.query(np.asarray(latent) / self._scale, k=k)
        pick = nb[np.arange(len(nb)), self.rng.integers(k, size=len(nb))]
        return self.train_xyz[pick]

    def row(self, xyz: np.ndarray, fidelity_xyz: np.ndarray | None = None, train_s: float | None = None,
            frames_per_s: float | None = None, paired: bool = True) -> dict:
        """Score one ensemble against the held-out MD.

        Parameters
        ----------
        xyz : np.ndarray, shape (n, n_atoms, 3), nm
            One structure per held-out latent point (``md_latent``), in that order.
        fidelity_xyz : np.ndarray, shape (n_fidelity * n_per_point, n_atoms, 3), optional
            Structures generated at ``np.repeat(md_latent[fid_idx], n_per_point, 0)``.
        paired : bool
            ``xyz[i]`` belongs to ``md_latent[i]`` (a decoder's output): the re-encoding is compared
            point by point. False for an ensemble of other frames (the MD floor row): no re-encoding.

        Returns
        -------
        dict: ``q_tv`` (Q histogram TV, 32 bins), ``tica_rmse_12`` / ``tica_rmse_13`` (kT),
        ``pair_tv_median``, ``pair_mae`` (nm), ``bond_mean_err`` / ``bond_sd`` / ``bond_sd_md`` (nm),
        ``angle_sd`` / ``angle_sd_md`` (degrees, the sd of each bond angle ``(i, i+1, i+2)`` averaged over
        angles), ``angle_tv_median`` (median over angles of the histogram TV, 2-degree bins),
        ``angle_js`` (JS distance of the histogram of all angles pooled, as :mod:`lss.score`'s),
        ``fidelity_rmsd`` / ``fidelity_rmsd_neighbours`` (nm), ``novelty_ratio`` (median RMSD of the
        structures to their nearest training frame over the same for held-out MD frames: 0 for a lookup
        that returns training frames, about 1 for new MD, above 1 off the MD's structures),
        ``copied_fraction`` (structures closer to a training frame than 95 % of held-out MD frames are:
        about 0.05 for new MD), ``cycle_r`` (list, one per latent coordinate), ``train_s``, ``frames_per_s``.
        """
        xyz = np.asarray(xyz, np.float32)
        q = np.asarray(self.q_fn(xyz), np.float64)
        d = ca_distances(xyz)
        tics = A.project(self.tica, d)[:, :3]
        out = {"q_tv": histogram_tv(q, self.q, self.q_bins)}
        for b in (1, 2):
            F = A.free_energy_2d(tics[:, 0], tics[:, b], bins=(self.grid[0], self.grid[b]))[2]
            both = A.sampled_region(self.F[b], max_dF=self.max_dF) & np.isfinite(F)
            # bins MD samples but the decoder never reaches count as missing: report their fraction
            out[f"tica_rmse_1{b + 1}"] = A.aligned_rmse(self.F[b], F, mask=both) if both.any() else float("nan")
            out[f"tica_coverage_1{b + 1}"] = float(both.sum() / max(A.sampled_region(self.F[b], max_dF=self.max_dF).sum(), 1))
        tv = [histogram_tv(d[:, k], self.d[:, k], self.pair_bins[k]) for k in range(d.shape[1])]
        out["pair_tv_median"] = float(np.median(tv))
        out["pair_mae"] = float(np.abs(d.mean(0) - self.d.mean(0)).mean())
        b = bond_lengths(xyz)
        out["bond_mean_err"] = float(b.mean() - self.bonds.mean())
        out["bond_sd"], out["bond_sd_md"] = float(b.std()), float(self.bonds.std())
        if self.angles is not None:
            ang = ca_angles(xyz)
            out["angle_sd"] = float(np.degrees(ang.std(0)).mean())
            out["angle_sd_md"] = float(np.degrees(self.angles.std(0)).mean())
            out["angle_tv_median"] = float(np.median([histogram_tv(ang[:, j], self.angles[:, j], ANGLE_BINS)
                                                      for j in range(ang.shape[1])]))
            pooled = [np.histogram(a, ANGLE_BINS)[0].astype(np.float64) for a in (ang, self.angles)]
            out["angle_js"] = float(js_distance(pooled[0] / pooled[0].sum(), pooled[1] / pooled[1].sum()))
        out["rg_mean_err"] = float(radius_of_gyration(xyz).mean() - radius_of_gyration(self.xyz).mean())
        if fidelity_xyz is not None:
            target = np.repeat(self.xyz[self.fid_idx], self.n_per_point, 0)
            out["fidelity_rmsd"] = float(np.median(pair_rmsd(np.asarray(fidelity_xyz, np.float32), target)))
        else:
            out["fidelity_rmsd"] = float("nan")
        out["fidelity_rmsd_neighbours"] = self.fid_neighbours
        # novelty (the copying test): each structure's RMSD to its nearest training frame, against held-out MD's
        nov = nearest_rmsd(xyz[self.nov_idx], self.train_xyz)
        out["novelty_ratio"] = float(np.median(nov) / np.median(self.nov_md))
        out["copied_fraction"] = float(np.mean(nov < np.quantile(self.nov_md, 0.05)))
        if self.encode is not None and paired:
            z = self.encode(xyz)
            out["cycle_r"] = [float(np.corrcoef(self.latent[:, j], z[:, j])[0, 1]) for j in range(z.shape[1])]
        out["train_s"] = train_s
        out["frames_per_s"] = frames_per_s
        return out

    def reference_rows(self, other_xyz: np.ndarray) -> dict:
        """The table's two reference rows: ``"MD, other blocks"`` (``other_xyz``: as many training frames
        as compared points, (n, n_atoms, 3) nm, unpaired) and ``"nearest neighbour"`` (the training
        frame at the nearest latent point: the lookup, at the compared and at the fidelity points)."""
        return {"MD, other blocks": self.row(other_xyz, paired=False),
                "nearest neighbour": self.row(self.nearest_neighbour(self.latent),
                                              self.nearest_neighbour(np.repeat(self.latent[self.fid_idx],
                                                                               self.n_per_point, 0)))}

    def score_decoder(self, decoder, random_state: int = 0, train_s: float | None = None,
                      n_throughput: int = 0) -> dict:
        """:meth:`row` of ``decoder.generate`` at the held-out points; throughput on ``n_throughput`` frames."""
        xyz = decoder.generate(self.latent, random_state=random_state)
        fid = decoder.generate(np.repeat(self.latent[self.fid_idx], self.n_per_point, 0),
                               random_state=random_state + 1)
        fps = None
        if n_throughput:
            lat = self.train_latent[self.rng.integers(len(self.train_latent), size=n_throughput)]
            decoder.generate(lat[:min(len(lat), 20_000)], random_state=0)  # warm-up
            t0 = time.perf_counter()
            decoder.generate(lat, random_state=random_state + 2)
            fps = n_throughput / (time.perf_counter() - t0)
        return self.row(xyz, fid, train_s=train_s, frames_per_s=fps)


# ----------------------------------------------------------------------------------- the table
#: columns of the decoder table: key of :meth:`DecoderBench.row`, header, format
COLUMNS = (("q_tv", "Q TV", "{:.3f}"), ("tica_rmse_12", "TICA 1-2 [kT]", "{:.2f}"),
           ("tica_rmse_13", "TICA 1-3 [kT]", "{:.2f}"), ("pair_tv_median", "pair TV", "{:.3f}"),
           ("pair_mae", "pair MAE [nm]", "{:.4f}"), ("bond_mean_err", "bond err [nm]", "{:+.4f}"),
           ("bond_sd", "bond sd [nm]", "{:.4f}"), ("angle_sd", "angle sd [deg]", "{:.1f}"),
           ("angle_tv_median", "angle TV", "{:.3f}"), ("fidelity_rmsd", "fidelity [nm]", "{:.3f}"),
           ("novelty_ratio", "novelty", "{:.2f}"), ("copied_fraction", "copies", "{:.2f}"), ("cycle_r", "cycle r", None), ("train_s", "train [s]", "{:.0f}"), ("frames_per_s", "frames/s", "{:,.0f}"))

#: the decoder targets of the cpu profile (decoded at held-out latent points): key -> (text, test(row))
TARGETS = {
    "q_tv": ("<= 0.10", lambda r: r["q_tv"] <= 0.10),
    "pair_tv_median": ("<= 0.10", lambda r: r["pair_tv_median"] <= 0.10),
    "pair_mae": ("<= 0.02 nm", lambda r: r["pair_mae"] <= 0.02),
    "bond_mean_err": ("within 0.005 nm of MD", lambda r: abs(r["bond_mean_err"]) <= 0.005),
    "bond_sd": ("at most 2x MD's", lambda r: r["bond_sd"] <= 2 * r["bond_sd_md"]),
    "angle_sd": ("within 10 % of MD's",
                 lambda r: "angle_sd" in r and abs(r["angle_sd"] - r["angle_sd_md"]) <= 0.1 * r["angle_sd_md"]),
    "fidelity_rmsd": ("within 10 % of the nearest-neighbour floor",
                      lambda r: r["fidelity_rmsd"] <= 1.1 * r["fidelity_rmsd_neighbours"]),
    "cycle_r": (">= 0.9 for every latent coordinate", lambda r: "cycle_r" in r and min(r["cycle_r"]) >= 0.9),
    "train_s": ("<= 360 s (2 cores)", lambda r: r["train_s"] is not None and r["train_s"] <= 360),
}


def _cell(row: dict, key: str, fmt: str | None) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if key == "cycle_r":
        return " / ".join(f"{x:.2f}" for x in v)
    return fmt.format(v)


def table(rows: dict) -> str:
    """The decoder table in markdown: one row per decoder (and reference row), :data:`COLUMNS` as columns."""
    head = "| decoder | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(row, k, f) for k, _, f in COLUMNS) + " |")
    return "\n".join(lines)


def assess(row: dict) -> dict:
    """``{key: (target text, met)}`` of one decoder row against :data:`TARGETS`."""
    return {k: (text, bool(test(row))) for k, (text, test) in TARGETS.items()}

#: units of the row entries recorded in metrics.json
UNITS = {"pair_mae": "nm", "bond_mean_err": "nm", "bond_sd": "nm", "angle_sd": "deg", "fidelity_rmsd": "nm",
         "train_s": "s", "frames_per_s": "frames/s", "tica_rmse_12": "kT", "tica_rmse_13": "kT"}


def verdict_markdown(row: dict) -> str:
    """One markdown line per target of :data:`TARGETS`: the value, the target, met or missed."""
    fmts = {k: f for k, _, f in COLUMNS}
    return "\n".join(f"- {k}: {_cell(row, k, fmts.get(k, '{}'))} (target {text}) — **{'met' if ok else 'missed'}**"
                     for k, (text, ok) in assess(row).items())


#: columns of a table row recorded compactly in metrics.json (:func:`record_table`), in order
ROW_KEYS = ("q_tv", "tica_rmse_12", "tica_rmse_13", "pair_tv_median", "pair_mae", "angle_sd", "angle_tv_median")


def lookup_comparison(rows: dict, chosen: str) -> str:
    """One line: what the ``chosen`` decoder buys over the nearest-neighbour lookup (novelty, copies) and
    what it costs (Q, pair-distance and angle total variation), from the rows of :func:`table`."""
    nn, ch = rows["nearest neighbour"], rows[chosen]
    return (f"what the {chosen} buys over the lookup: novelty {ch['novelty_ratio']:.2f} (lookup {nn['novelty_ratio']:.2f}, "
            f"new MD 1), copies {ch['copied_fraction']:.0%} (lookup {nn['copied_fraction']:.0%}, new MD 5 %); what it "
            f"costs: Q TV {ch['q_tv']:.3f} (lookup {nn['q_tv']:.3f}), pair TV {ch['pair_tv_median']:.3f} "
            f"({nn['pair_tv_median']:.3f}), angle TV {ch.get('angle_tv_median', np.nan):.3f} "
            f"({nn.get('angle_tv_median', np.nan):.3f})")


def record_table(rec, rows: dict, chosen: str, decoder: str, n_points: int, n_novelty: int) -> None:
    """Record notebook 05's table and targets through ``rec`` (:class:`lss.results.Recorder`).

    Records, in order: ``row_<name>`` for every row (the :data:`ROW_KEYS` columns: Q TV, TICA 1-2 and
    1-3 RMSE in kT, pair TV, pair MAE in nm, angle sd in deg, angle TV); ``default`` (the decoder the
    simulator uses); ``novelty_ratio_<name>`` and ``copied_fraction_<name>`` of the chosen decoder and
    of the nearest-neighbour lookup (the copying test); and every target of :data:`TARGETS` for the
    chosen row, with the lookup's value as reference (``met`` left blank in an unassessed profile,
    :data:`lss.results.UNASSESSED_PROFILES`).

    Parameters
    ----------
    rec : lss.results.Recorder
    rows : dict
        Table name -> row (:meth:`DecoderBench.row`, :meth:`DecoderBench.score_decoder`); needs
        ``chosen`` and ``"nearest neighbour"``.
    chosen : str
        Table name of the decoder the simulator uses (``"flow"``, ``"cWGAN"``).
    decoder : str
        Its parameter value (``"flow"``, ``"cwgan"``).
    n_points : int
        Held-out latent points compared; ``n_novelty`` those of the copying test.
    """
    from .results import UNASSESSED_PROFILES

    for name, row in rows.items():   # every row of the table, compactly (the whole table: decoders.md)
        rec("row_" + name.replace(", ", "_").replace(" ", "_").replace("/", ""), [row.get(k) for k in ROW_KEYS],
            "mixed", f"[Q TV, TICA 1-2 kT, TICA 1-3 kT, pair TV, pair MAE nm, angle sd deg, angle TV] of '{name}' "
            f"at {n_points:,} held-out latent points")
    rec("default", decoder)
    for name in (chosen, "nearest neighbour"):   # the copying test: is a decoded structure new?
        key = name.replace(" ", "_")
        rec(f"novelty_ratio_{key}", rows[name]["novelty_ratio"], "1", f"median RMSD to the nearest training frame of "
            f"{n_novelty} structures of '{name}', over the same for held-out MD frames (lookup 0, new MD 1)")
        rec(f"copied_fraction_{key}", rows[name]["copied_fraction"], "1", "fraction closer to a training frame than "
            "95 % of held-out MD frames are (new MD: 0.05)")
    for key, (text, ok) in assess(rows[chosen]).items():
        rec(key, rows[chosen].get(key), UNITS.get(key, "1"), f"{decoder} decoder at {n_points:,} held-out latent points",
            reference=rows["nearest neighbour"].get(key), target=text,
            met=None if rec.profile in UNASSESSED_PROFILES else ok)
