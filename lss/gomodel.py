"""A C-alpha structure-based (Go) model of Trp-cage, simulated with OpenMM.

The embedded default dataset of the project: one bead per residue at the C-alpha position of the
native structure, PDB 2JOF model 1 (shipped as ``lss/resources/2jof_ca.pdb``), with an energy
function in the style of Clementi, Nymeyer & Onuchic, J. Mol. Biol. 298, 937 (2000)::

    E = sum_bonds      K_r (r - r0)^2                                  K_r = 100 eps / A^2
      + sum_angles     K_theta (theta - theta0)^2                      K_theta = 20 eps / rad^2
      + sum_dihedrals  K1 [1 - cos(phi - phi0)] + K3 [1 - cos(3 (phi - phi0))]   K1 = eps, K3 = eps / 2
      + sum_native     eps [5 (s / r)^12 - 6 (s / r)^10]               s = native distance
      + sum_non-native eps (sigma / r)^12                              sigma = 0.4 nm
      + E_MB                                                          (not in Clementi 2000, see below)

with all equilibrium values (``r0``, ``theta0``, ``phi0``, ``s``) taken from the native structure.

Native contacts
    Pairs of C-alpha beads with ``|i - j| >= 3`` whose native distance is below 0.8 nm (31 pairs).
    Clementi et al. define contacts from side-chain heavy atoms (within 4.5 A); the shipped structure
    has C-alpha atoms only, and a C-alpha (or C-beta) distance of 8 A is the usual residue-level
    contact definition (e.g. CASP contact prediction). ``|i - j| >= 3`` keeps the i,i+3 and i,i+4
    pairs that make Trp-cage's alpha-helix (residues 2-9) and 3-10 helix; i,i+1 and i,i+2 are
    fixed by the bond and angle terms. ``|i - j| >= 4`` was tried in the calibration and does not
    change the conclusions.

Many-body cooperativity term (an addition to Clementi 2000)
    The purely additive model of this 20-residue protein is not two-state: its distribution of the
    fraction of native contacts Q stays unimodal at every temperature (measured from 180 to 300 K:
    one peak whose mean drifts from Q = 0.59 to 0.31; notebook 02, section 2b, shows it), so it never
    "folds and unfolds" the way the all-atom DESRES trajectory does. A non-additive term in the
    style of Kaya & Chan (Proteins 2003) and Ejtehadi, Avall & Plotkin (PNAS 2004) makes folding
    cooperative::

        E_MB = -eps_MB Nc (Q_s / Nc)^4,   Q_s = sum_native 1 / (1 + exp(beta (r - 1.2 s)))

    with ``eps_MB = eps``, ``Nc`` the number of native contacts and ``beta = 50 / nm``. With it the
    Q distribution is bimodal at 300 K: basins at Q = 0.33 and 0.98, barrier near Q = 0.73 of about
    1.8 kT above the unfolded minimum (cpu profile of notebook 02).
    ``GoModel(many_body=0)`` gives the plain Clementi-style model.

A rare proline flip: the second slow process (an addition, not in Clementi 2000)
    ``E_flip = h sin^2(phi - phi0)`` on the pseudo-dihedral of R16-P17-P18-P19 (beads
    ``FLIP_DIHEDRAL``), ``h = flip_barrier * eps`` (default 12 eps = 7.6 kT at 300 K). With the
    model's own dihedral terms it makes two minima, native (phi0) and flipped (phi0 + pi, about
    2 kT higher, P18/P19 pulled off the helix, so folding is rarer while flipped), separated by a
    barrier set by ``h``: the analogue of the paper's Pro18 state (its section 2.1 and Fig. 4). The
    model then has three metastable states (:func:`metastable_cores`: unfolded, folded, flipped).
    Measured (``data/README.md``): a flip about every 2e5 steps, 11 % of the frames flipped, no
    measurable cost per step; ``GoModel(flip_barrier=0)`` is the one-process model.

Units are OpenMM's: nm, ps, kJ/mol, amu, K. ``eps = 1.58 kJ/mol`` puts the folding temperature near
300 K (the thermodynamics depends on ``k_B T / eps`` only). Time is *model time*: 1e7 steps of
20 fs are 200 ns of model time, in which this model folds hundreds of times; it is not Trp-cage's
real microsecond folding time.
"""
from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
import os
import time as _time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import resources

import mdtraj as md
import numpy as np

from .structure import _xyz, native_contact_pairs
from .structure import fraction_native_contacts as _fraction_native_contacts

#: Boltzmann constant in kJ/(mol K).
KB = 0.008314462618

#: Folding-state cutoffs on Q used across the project (see :func:`count_transitions`).
Q_UNFOLDED, Q_FOLDED, Q_BARRIER = 0.45, 0.85, 0.7

#: Beads (residues) of the model.
N_BEADS = 20

#: Beads (0-based) of the proline pseudo-dihedral with the flip term: R16-P17-P18-P19.
FLIP_DIHEDRAL = (15, 16, 17, 18)

_PLATFORM_CACHE: dict = {}  # "choice": platform name, "speeds": {name: steps/s}


# --------------------------------------------------------------------------------- native structure
def native_structure() -> md.Trajectory:
    """Native C-alpha structure of Trp-cage: PDB 2JOF model 1, 20 atoms, coordinates in nm.

    Returns
    -------
    mdtraj.Trajectory
        One frame, 20 C-alpha atoms (one per residue, ASP1 ... SER20), ``xyz`` in nm.
    """
    ref = resources.files("lss") / "resources" / "2jof_ca.pdb"
    with resources.as_file(ref) as path:
        return md.load_pdb(str(path))


def native_contacts(cutoff: float = 0.8, min_separation: int = 3, native: np.ndarray | None = None) -> np.ndarray:
    """Native contacts of the C-alpha model: pairs ``(i, j)``, ``j - i >= min_separation``, whose
    C-alpha distance in the native structure is below ``cutoff`` (nm).

    The defaults (0.8 nm, ``|i - j| >= 3``, native = 2JOF model 1) give 31 contacts; see the module
    docstring for why.

    Parameters
    ----------
    cutoff : float
        nm.
    min_separation : int
    native : np.ndarray, shape (n_atoms, 3), nm, optional
        Reference structure; default :func:`native_structure`.

    Returns
    -------
    np.ndarray, shape (n_contacts, 2), int
        Atom index pairs, ``i < j``, sorted.
    """
    return native_contact_pairs(native_structure().xyz[0] if native is None else native, cutoff, min_separation)


def fraction_native_contacts(xyz, contacts: np.ndarray | None = None, ratio: float = 1.2,
                             native: np.ndarray | None = None) -> np.ndarray:
    """Fraction of native contacts Q of each frame.

    A native contact ``(i, j)`` of native distance ``s`` counts as formed when ``r_ij < ratio * s``
    (the same 1.2 factor as the switch of the many-body term). Q(native) = 1.

    Parameters
    ----------
    xyz : np.ndarray, shape (n_frames, 20, 3) or (20, 3), nm; or mdtraj.Trajectory of the C-alpha atoms
    contacts : np.ndarray, shape (n_contacts, 2), optional
        Pairs to use; default :func:`native_contacts` of ``native``.
    ratio : float
        Tolerance factor on the native distance.
    native : np.ndarray, shape (n_atoms, 3), nm, optional
        Reference structure; default the 2JOF model 1 C-alpha structure.

    Returns
    -------
    np.ndarray, shape (n_frames,), float32
    """
    return _fraction_native_contacts(xyz, native_structure().xyz[0] if native is None else native, ratio=ratio,
                                     contacts=contacts)


def count_transitions(q, lo: float = Q_UNFOLDED, hi: float = Q_FOLDED) -> int:
    """Number of folding plus unfolding transitions in a Q time series, by dual cutoffs.

    Definition (core to core): the unfolded core is ``Q < lo``, the folded core ``Q > hi``. A
    transition is counted each time the trajectory enters one core after having last been in the
    other one; excursions into the region between the cores that return to the same core are not
    transitions. With ``lo = 0.45`` and ``hi = 0.85`` the cores lie on either side of the free-energy
    barrier at Q of about 0.7, so recrossings of the barrier top are not counted (cutoffs at the
    barrier itself, e.g. 0.3 / 0.7, count them and overestimate about 2.5 times).

    Parameters
    ----------
    q : array-like, shape (n_frames,)
        Fraction of native contacts of consecutive frames of one trajectory.
    lo, hi : float
        Core cutoffs, ``lo < hi``.

    Returns
    -------
    int
        Folding plus unfolding transitions.
    """
    from .kinetics import count_transitions as count

    return count(np.asarray(q, dtype=np.float64).ravel(), lo, hi)


def core_states(q, lo: float = Q_UNFOLDED, hi: float = Q_FOLDED) -> np.ndarray:
    """:func:`lss.kinetics.core_states` with the Go model's Q cores (unfolded 0, folded 1) as defaults."""
    from .kinetics import core_states as states

    return states(q, lo, hi)


def _pooled(q) -> np.ndarray:
    """A Q series, or a list of them laid end to end, as one float64 vector."""
    return np.concatenate([np.asarray(x, dtype=float).ravel() for x in q]) if isinstance(q, (list, tuple)) \
        else np.asarray(q, dtype=float).ravel()


def folded_fraction(q, threshold: float = Q_BARRIER) -> float:
    """Fraction of frames with ``Q > threshold`` (default 0.7, the barrier top of F(Q))."""
    q = _pooled(q)
    if q.size == 0:
        raise ValueError("q is empty")
    return float(np.mean(q > threshold))


def free_energy_basins(q, bins: int = 32, unfolded_below: float = 0.6, folded_above: float = 0.8) -> dict:
    """F(Q) = -ln p(Q) in kT, its two basins and the barrier between them.

    Parameters
    ----------
    q : array-like or list of arrays
        Fraction of native contacts of all frames (trajectories are pooled).
    bins : int
        Equal bins over [0, 1].
    unfolded_below, folded_above : float
        The unfolded minimum is searched at ``Q < unfolded_below``, the folded one at ``Q > folded_above``.

    Returns
    -------
    dict
        ``centers`` (bins,), ``F`` (bins,) in kT with its minimum at 0 (``inf`` where no frame falls),
        ``q_unfolded``, ``q_folded``, ``q_barrier`` (bin centres) and ``barrier_kT`` (barrier above the
        higher minimum); the last four are None when the data do not show two basins (one never visited).
    """
    q = _pooled(q)
    hist, edges = np.histogram(q, bins=np.linspace(0, 1, bins + 1))
    centers = 0.5 * (edges[1:] + edges[:-1])
    with np.errstate(divide="ignore"):
        F = -np.log(hist / max(hist.sum(), 1))
    finite = np.isfinite(F)
    F = F - (F[finite].min() if finite.any() else 0.0)
    out = {"centers": centers, "F": F, "q_unfolded": None, "q_folded": None, "q_barrier": None, "barrier_kT": None}
    i_u = int(np.argmin(np.where(centers < unfolded_below, F, np.inf)))
    i_f = int(np.argmin(np.where(centers > folded_above, F, np.inf)))
    if i_f > i_u + 1 and np.isfinite(F[i_u]) and np.isfinite(F[i_f]):
        i_b = i_u + int(np.argmax(F[i_u:i_f + 1]))
        out.update(q_unfolded=float(centers[i_u]), q_folded=float(centers[i_f]), q_barrier=float(centers[i_b]),
                   barrier_kT=float(F[i_b] - max(F[i_u], F[i_f])))
    return out


def describe_basins(basins: dict) -> str:
    """:func:`free_energy_basins` in one line: the two minima and the barrier, in kT."""
    if basins["barrier_kT"] is None:
        return "F(Q) does not show two basins in these data"
    return (f"F(Q): unfolded minimum at Q = {basins['q_unfolded']:.2f}, folded at Q = {basins['q_folded']:.2f}, "
            f"barrier at Q = {basins['q_barrier']:.2f}, {basins['barrier_kT']:.1f} kT above the higher minimum")


def core_summary(q, rg, rmsd, lo: float = Q_UNFOLDED, hi: float = Q_FOLDED) -> dict:
    """Radius of gyration and RMSD to native in the folded and unfolded cores (transition-based assignment).

    Parameters
    ----------
    q, rg, rmsd : list of np.ndarray (n_frames,)
        Per trajectory: fraction of native contacts, radius of gyration (nm) and C-alpha RMSD to the
        native structure (nm) of its frames.
    lo, hi : float
        The Q cores (:func:`core_states`).

    Returns
    -------
    dict ``{"folded": ..., "unfolded": ...}``, each ``{"rg_nm": [mean, std], "rmsd_nm": [mean, std]}``
    over the frames assigned to that core, or None where the core was never visited.
    """
    st_all = np.concatenate([core_states(a, lo, hi) for a in q])
    rg_all, rmsd_all = np.concatenate(rg), np.concatenate(rmsd)
    summary = {}
    for name, s in (("folded", 1), ("unfolded", 0)):
        m = st_all == s
        summary[name] = {"rg_nm": [float(rg_all[m].mean()), float(rg_all[m].std())],
                         "rmsd_nm": [float(rmsd_all[m].mean()), float(rmsd_all[m].std())]} if m.any() else None
    return summary


def describe_cores(summary: dict) -> str:
    """:func:`core_summary` in words: one line per core, Rg and RMSD (mean +/- std, nm)."""
    lines = []
    for name, v in summary.items():
        if v is None:
            lines.append(f"{name:>8}: never visited")
            continue
        lines.append(f"{name:>8}: Rg {v['rg_nm'][0]:.3f} +/- {v['rg_nm'][1]:.3f} nm, "
                     f"RMSD {v['rmsd_nm'][0]:.3f} +/- {v['rmsd_nm'][1]:.3f} nm")
    return "\n".join(lines)


def folding_events(q, lo: float = Q_UNFOLDED, hi: float = Q_FOLDED, min_dwell: int = 5) -> np.ndarray:
    """Folding events that commit: passages from the unfolded core into the folded core that stay there.

    A passage runs from the last frame in the unfolded core (``Q < lo``) to the first frame in the
    folded core (``Q > hi``). It counts as an event when the chain was in the unfolded core state for
    at least ``min_dwell`` frames before leaving it and stays in the folded core state (dual cutoffs,
    :func:`core_states`) for at least ``min_dwell`` frames after arriving, with a mean Q over the first
    ``min_dwell`` of them above the barrier (``Q_BARRIER``): a decoded frame that flickers above ``hi``
    for a frame or two and falls back, or back onto the barrier, is not a folding event.

    Parameters
    ----------
    q : array-like, shape (n_traj, n_frames) or list of (n_frames,) arrays
        Fraction of native contacts per frame.
    lo, hi : float
        Core cutoffs.
    min_dwell : int
        Frames the chain must spend in each core state before and after the passage.

    Returns
    -------
    np.ndarray, shape (n_events, 4), int
        Per event: trajectory index, start frame (last unfolded), end frame (first folded), and the
        frames spent in the folded core state after arriving (to the next unfolding or the end).
    """
    rows = []
    for i, qi in enumerate(q):
        qi = np.asarray(qi, dtype=float).ravel()
        s = core_states(qi, lo, hi)
        for t in np.flatnonzero((s[1:] == 1) & (s[:-1] == 0)) + 1:
            before = np.flatnonzero(qi[:t] < lo)
            if before.size == 0:
                continue
            start = int(before[-1])
            unf = np.flatnonzero(s[:start + 1] != 0)          # the unfolded state began after its last non-0 frame
            unfolded_since = int(unf[-1]) + 1 if unf.size else 0
            leave = np.flatnonzero(s[t:] != 1)
            dwell = int(leave[0]) if leave.size else len(qi) - t
            settled = qi[t:t + min_dwell].mean() >= Q_BARRIER      # the chain stays folded, not on the barrier
            if start - unfolded_since + 1 >= min_dwell and dwell >= min_dwell and settled:
                rows.append((i, start, int(t), dwell))
    return np.array(rows, dtype=int).reshape(-1, 4)


def pick_folding_event(q, lo: float = Q_UNFOLDED, hi: float = Q_FOLDED, min_dwell: int = 5) -> dict:
    """The folding event to show: among the committed events (:func:`folding_events`), the one with the
    longest transition path, so that the passage through intermediate Q is visible.

    Returns a dict: ``traj``, ``start``, ``end`` (frames), ``n_events``, ``path_frames`` (``end - start``
    of the chosen event) and ``median_path_frames`` (of all committed events). Without a committed
    event (an undertrained model): the most native frame and the ``min_dwell`` frames before it,
    ``n_events = 0``.
    """
    ev = folding_events(q, lo, hi, min_dwell)
    if len(ev):
        path = ev[:, 2] - ev[:, 1]
        k = int(np.lexsort((-ev[:, 3], -path))[0])     # longest path; ties: the longest folded dwell
        return {"traj": int(ev[k, 0]), "start": int(ev[k, 1]), "end": int(ev[k, 2]), "n_events": len(ev),
                "path_frames": int(path[k]), "median_path_frames": float(np.median(path))}
    qa = np.asarray([np.asarray(x, dtype=float).ravel() for x in q])
    i, t = np.unravel_index(int(np.argmax(qa)), qa.shape)
    return {"traj": int(i), "start": int(max(0, t - min_dwell)), "end": int(t), "n_events": 0,
            "path_frames": int(t - max(0, t - min_dwell)), "median_path_frames": None}


def describe_folding_event(event: dict, n_traj: int, timestep: float, time_unit: str) -> str:
    """:func:`pick_folding_event` in one line: how many committed events, and the one picked (frames and
    duration; ``timestep`` is the time between frames, in ``time_unit``)."""
    return (f"{event['n_events']} committed folding events in {n_traj} trajectories (median path "
            f"{event['median_path_frames']} lag steps); shown: trajectory {event['traj']}, frames {event['start']} -> "
            f"{event['end']} ({(event['end'] - event['start']) * timestep:g} {time_unit})")


# ------------------------------------------------------------------------- the three metastable states
#: Names of the metastable states of :func:`metastable_cores` (index = label).
STATES = ("unfolded", "folded", "flipped")

#: Core cutoffs on the proline flip angle (rad): native core below, flipped core above.
FLIP_NATIVE, FLIP_FLIPPED = math.pi / 3, 2 * math.pi / 3


def flip_angle(xyz, native: np.ndarray | None = None) -> np.ndarray:
    """Deviation of the R16-P17-P18-P19 pseudo-dihedral (beads ``FLIP_DIHEDRAL``) from its native value.

    Parameters
    ----------
    xyz : np.ndarray, shape (n_frames, 20, 3) or (20, 3), nm; or mdtraj.Trajectory
    native : np.ndarray, shape (20, 3), nm, optional
        Reference structure; default 2JOF model 1.

    Returns
    -------
    np.ndarray, shape (n_frames,), float64
        ``phi - phi0`` wrapped into (-pi, pi], rad: near 0 in the native proline state, near +-pi
        when flipped (the second minimum of the flip term ``h sin^2(phi - phi0)``).
    """
    xyz = _xyz(xyz, "xyz", np.float64)
    native = _xyz(native_structure() if native is None else native, "native", np.float64)[0]
    if xyz.shape[1:] != native.shape:
        raise ValueError(f"xyz must have shape (n_frames, {len(native)}, 3) in nm, got {xyz.shape}")

    def dihedral(x):
        b0, b1, b2 = (x[:, j + 1] - x[:, j] for j in FLIP_DIHEDRAL[:3])
        n1, n2 = np.cross(b0, b1), np.cross(b1, b2)
        y = np.linalg.norm(b1, axis=-1) * (b0 * n2).sum(-1)       # the IUPAC sign, as mdtraj and OpenMM
        return np.arctan2(y, (n1 * n2).sum(-1))

    d = dihedral(xyz) - dihedral(native[None])[0]
    return np.angle(np.exp(1j * d))


def metastable_cores(xyz=None, q=None, flip=None) -> np.ndarray:
    """Core label of each frame among the three metastable states of the Go model, -1 outside every core.

    ``2`` flipped (``|flip| > 2 pi / 3``, any Q); ``0`` unfolded (``Q < Q_UNFOLDED``) and ``1`` folded
    (``Q > Q_FOLDED``) with the prolines native (``|flip| < pi / 3``). Frames between the cores are -1;
    :func:`lss.kinetics.milestone` assigns them to the last core visited (transition-based states).

    Parameters
    ----------
    xyz : np.ndarray, shape (n_frames, 20, 3), nm, optional
        Structures; needed unless both ``q`` and ``flip`` are given.
    q : np.ndarray, shape (n_frames,), optional
        :func:`fraction_native_contacts` of the frames.
    flip : np.ndarray, shape (n_frames,), rad, optional
        :func:`flip_angle` of the frames.

    Returns
    -------
    np.ndarray, shape (n_frames,), int8
    """
    q = fraction_native_contacts(xyz) if q is None else np.asarray(q, dtype=float).ravel()
    flip = flip_angle(xyz) if flip is None else np.asarray(flip, dtype=float).ravel()
    if len(q) != len(flip):
        raise ValueError(f"q and flip must have one value per frame, got {len(q)} and {len(flip)}")
    lab = np.full(len(q), -1, dtype=np.int8)
    native_pro = np.abs(flip) < FLIP_NATIVE
    lab[native_pro & (q < Q_UNFOLDED)] = 0
    lab[native_pro & (q > Q_FOLDED)] = 1
    lab[np.abs(flip) > FLIP_FLIPPED] = 2
    return lab


def state_kinetics(q, flip, frame_time: float, stride: int = 1, n_blocks: int = 5, random_state=None) -> dict:
    """Populations of the three metastable states and mean first-passage times between every pair.

    Parameters
    ----------
    q, flip : list of np.ndarray (n_frames,)
        Per trajectory: :func:`fraction_native_contacts` and :func:`flip_angle` (rad) of its frames.
    frame_time : float
        Time between consecutive frames (before ``stride``); results in its unit.
    stride : int
        Keep every ``stride``-th frame first (e.g. the propagator lag: MD compared on the LSS grid).
    n_blocks : int
        Blocks of the population standard errors.
    random_state : int, optional
        Seed of the MFPT bootstrap.

    Returns
    -------
    dict: ``"p"``, ``"se"`` (3,) populations of the milestoned states and their block standard errors;
    ``"mfpt"``: :func:`lss.kinetics.mfpt_matrix` (``mean``, ``low``, ``high``, ``n``, each (3, 3));
    ``"labels"``: the core labels per trajectory (after ``stride``).
    """
    from .kinetics import state_kinetics as kin

    labels = [metastable_cores(q=np.asarray(a)[::stride], flip=np.asarray(b)[::stride]) for a, b in zip(q, flip)]
    return kin(labels, len(STATES), frame_time * stride, n_blocks=n_blocks, random_state=random_state)


def describe_states(st: dict, time_unit: str) -> str:
    """:func:`state_kinetics` in words: one line per state, its population (+/- block s.e.) and the mean
    first-passage times (in ``time_unit``, with the number of passages) to the other two states."""
    mf = st["mfpt"]
    return "\n".join(
        f"{name:>9}: population {st['p'][k]:.3f} +/- {st['se'][k]:.3f}; mean first-passage time to "
        + ", ".join(f"{STATES[j]} {mf['mean'][k, j]:.3g} {time_unit} ({mf['n'][k, j]})"
                    for j in range(len(STATES)) if j != k)
        for k, name in enumerate(STATES))


def count_flips(flip) -> int:
    """Proline flips (native core ``|flip| < pi/3`` <-> flipped core ``|flip| > 2 pi/3``, dual cutoffs) in
    one trajectory's :func:`flip_angle` series, or summed over a list of them."""
    from .kinetics import count_transitions as count

    if isinstance(flip, (list, tuple)):
        return int(sum(count_flips(f) for f in flip))
    return count(np.abs(np.asarray(flip, dtype=np.float64).ravel()), FLIP_NATIVE, FLIP_FLIPPED)


# --------------------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class GoModel:
    """Parameters of the C-alpha Go model, and the OpenMM system they define.

    Parameters
    ----------
    eps : float
        Energy scale, kJ/mol (1.58 puts the folding temperature near 300 K).
    k_bond : float
        ``K_r`` of ``E = K_r (r - r0)^2``, in eps per Angstrom^2.
    k_angle : float
        ``K_theta`` of ``E = K_theta (theta - theta0)^2``, in eps per rad^2.
    k_dihedral_1, k_dihedral_3 : float
        ``K1``, ``K3`` of the dihedral term, in eps.
    contact_cutoff : float
        Native-contact cutoff on the native C-alpha distance, nm.
    min_separation : int
        Smallest ``|i - j|`` of a native contact or a repulsive non-native pair.
    repulsive_sigma : float
        ``sigma`` of the non-native repulsion ``eps (sigma / r)^12``, nm.
    many_body : float
        ``eps_MB`` of the many-body cooperativity term, in eps; 0 switches it off. This term is
        **not** part of Clementi et al. 2000; without it this model is not two-state (module docstring).
    many_body_power : int
        Exponent of ``(Q_s / Nc)`` in the cooperativity term.
    switch_ratio, switch_steepness : float
        Logistic switch of the smooth contact count ``Q_s``: midpoint ``switch_ratio * s``,
        steepness in 1/nm.
    flip_barrier : float
        ``h`` of the proline-flip term ``h sin^2(phi - phi0)`` on the pseudo-dihedral of beads
        ``FLIP_DIHEDRAL`` (R16-P17-P18-P19), in eps; 0 switches it off (the one-process model of
        the earlier rounds). 12 eps is 7.6 kT at 300 K (module docstring).
    mass : float
        Bead mass, amu.
    """

    eps: float = 1.58
    k_bond: float = 100.0
    k_angle: float = 20.0
    k_dihedral_1: float = 1.0
    k_dihedral_3: float = 0.5
    contact_cutoff: float = 0.8
    min_separation: int = 3
    repulsive_sigma: float = 0.4
    many_body: float = 1.0
    many_body_power: int = 4
    switch_ratio: float = 1.2
    switch_steepness: float = 50.0
    flip_barrier: float = 12.0
    mass: float = 110.0

    #: Force groups of the energy terms (for :meth:`energy_terms`).
    GROUPS = {"bonds": 0, "angles": 1, "dihedrals": 2, "native": 3, "repulsive": 4, "many_body": 5, "flip": 6}

    def params(self) -> dict:
        """The parameters as a plain dict (for metadata and cache keys)."""
        return dataclasses.asdict(self)

    def native_contacts(self) -> np.ndarray:
        """Native contact pairs of this model, shape (n_contacts, 2); see :func:`native_contacts`."""
        return native_contacts(self.contact_cutoff, self.min_separation)

    def create_system(self):
        """Build the ``openmm.System`` (20 particles, no periodic box, no cutoffs)."""
        import openmm

        x = native_structure().xyz[0].astype(float)
        n = len(x)
        eps = self.eps
        system = openmm.System()
        for _ in range(n):
            system.addParticle(self.mass)

        bonds = openmm.HarmonicBondForce()  # E = k/2 (r - r0)^2 -> k = 2 K_r; K_r per A^2 -> per nm^2
        for i in range(n - 1):
            bonds.addBond(i, i + 1, float(np.linalg.norm(x[i + 1] - x[i])), 2 * self.k_bond * 100.0 * eps)
        angles = openmm.HarmonicAngleForce()  # E = k/2 (theta - theta0)^2 -> k = 2 K_theta
        th0 = md.compute_angles(native_structure(), [[i, i + 1, i + 2] for i in range(n - 2)])[0]
        for i in range(n - 2):
            angles.addAngle(i, i + 1, i + 2, float(th0[i]), 2 * self.k_angle * eps)
        # K [1 - cos(n (phi - phi0))] = K [1 + cos(n phi - (n phi0 + pi))]
        torsions = openmm.PeriodicTorsionForce()
        ph0 = md.compute_dihedrals(native_structure(), [[i, i + 1, i + 2, i + 3] for i in range(n - 3)])[0]
        for i in range(n - 3):
            p = float(ph0[i])
            torsions.addTorsion(i, i + 1, i + 2, i + 3, 1, p + math.pi, self.k_dihedral_1 * eps)
            torsions.addTorsion(i, i + 1, i + 2, i + 3, 3, 3 * p + math.pi, self.k_dihedral_3 * eps)

        contacts = self.native_contacts()
        native_set = {tuple(c) for c in contacts}
        s = np.linalg.norm(x[contacts[:, 0]] - x[contacts[:, 1]], axis=1)
        attract = openmm.CustomBondForce("eps_go*(5*(s/r)^12 - 6*(s/r)^10)")
        attract.addGlobalParameter("eps_go", eps)
        attract.addPerBondParameter("s")
        for (i, j), sij in zip(contacts, s):
            attract.addBond(int(i), int(j), [float(sij)])
        repel = openmm.CustomBondForce("eps_go*(sigma_rep/r)^12")
        repel.addGlobalParameter("eps_go", eps)
        repel.addGlobalParameter("sigma_rep", self.repulsive_sigma)
        for i in range(n):
            for j in range(i + self.min_separation, n):
                if (i, j) not in native_set:
                    repel.addBond(i, j, [])

        forces = {"bonds": bonds, "angles": angles, "dihedrals": torsions, "native": attract, "repulsive": repel}
        if self.many_body:
            qs = openmm.CustomBondForce("1/(1 + exp(beta_sw*(r - lam_sw*s)))")
            qs.addGlobalParameter("beta_sw", self.switch_steepness)
            qs.addGlobalParameter("lam_sw", self.switch_ratio)
            qs.addPerBondParameter("s")
            for (i, j), sij in zip(contacts, s):
                qs.addBond(int(i), int(j), [float(sij)])
            mb = openmm.CustomCVForce(f"-eps_mb*n_c*(q_s/n_c)^{int(self.many_body_power)}")
            mb.addGlobalParameter("eps_mb", self.many_body * eps)
            mb.addGlobalParameter("n_c", float(len(contacts)))
            mb.addCollectiveVariable("q_s", qs)
            forces["many_body"] = mb
        if self.flip_barrier:
            flip = openmm.CustomTorsionForce("h_flip*sin(theta - phi0)^2")
            flip.addGlobalParameter("h_flip", self.flip_barrier * eps)
            flip.addPerTorsionParameter("phi0")
            flip.addTorsion(*FLIP_DIHEDRAL, [float(ph0[FLIP_DIHEDRAL[0]])])
            forces["flip"] = flip
        for name, f in forces.items():
            f.setForceGroup(self.GROUPS[name])
            system.addForce(f)
        return system

    def _context(self, platform: str = "Reference"):
        import openmm

        integrator = openmm.VerletIntegrator(0.001)
        return openmm.Context(self.create_system(), integrator, openmm.Platform.getPlatformByName(platform))

    def energy_terms(self, xyz) -> dict[str, float]:
        """Potential energy of each term (kJ/mol) at one configuration ``xyz`` of shape (20, 3), nm."""
        ctx = self._context()
        ctx.setPositions(np.asarray(xyz, dtype=float).reshape(-1, 3))
        out = {}
        for name, g in self.GROUPS.items():
            if (name == "many_body" and not self.many_body) or (name == "flip" and not self.flip_barrier):
                continue
            out[name] = ctx.getState(getEnergy=True, groups={g}).getPotentialEnergy()._value
        return out

    def energy_and_forces(self, xyz) -> tuple[float, np.ndarray]:
        """Total potential energy (kJ/mol) and forces (kJ/mol/nm, shape (20, 3)) at ``xyz`` (nm)."""
        ctx = self._context()
        ctx.setPositions(np.asarray(xyz, dtype=float).reshape(-1, 3))
        st = ctx.getState(getEnergy=True, getForces=True)
        return st.getPotentialEnergy()._value, np.asarray(st.getForces(asNumpy=True)._value)


# ------------------------------------------------------------------------------------- simulation
def _openmm_seed(seed: int) -> int:
    """Map any integer seed to OpenMM's 1 ... 2^31 - 1 (OpenMM reads 0 as 'pick a random seed')."""
    return 1 + int(seed) % (2**31 - 2)


def measure_speed(platform: str, model: GoModel | None = None, n_steps: int = 2000,
                  timestep: float = 0.02, temperature: float = 300.0) -> float:
    """Steps per second of Langevin dynamics of the model on one OpenMM platform (after a warm-up)."""
    import openmm

    model = model or GoModel()
    integ = openmm.LangevinMiddleIntegrator(temperature, 1.0, timestep)
    integ.setRandomNumberSeed(1)
    ctx = openmm.Context(model.create_system(), integ, openmm.Platform.getPlatformByName(platform))
    ctx.setPositions(native_structure().xyz[0].astype(float))
    integ.step(max(10, n_steps // 10))
    t0 = _time.perf_counter()
    integ.step(n_steps)
    ctx.getState(getPositions=True)
    return n_steps / (_time.perf_counter() - t0)


def md_cost(trajectory_ps: float, sim: dict, n_steps: int = 20000, n_cores: int | None = None) -> dict:
    """What the same trajectory would cost by MD of the Go model: a short timed run, extrapolated.

    Parameters
    ----------
    trajectory_ps : float
        Total trajectory time wanted (all trajectories together), ps of model time.
    sim : dict
        The record of the simulation the data came from (``TrpcageDataset.meta["simulation"]``):
        its ``timestep_ps`` and ``temperature_K`` are used.
    n_steps : int
        Langevin steps timed (:func:`measure_speed`, Reference platform, one core).
    n_cores : int, optional
        Cores the MD would run on in parallel (default: ``os.cpu_count()``).

    Returns
    -------
    dict: ``speed`` (steps/s per core), ``steps`` (Langevin steps needed), ``seconds`` (wall seconds
    on ``n_cores`` cores) and ``n_cores``.
    """
    speed = measure_speed("Reference", n_steps=n_steps, timestep=sim["timestep_ps"], temperature=sim["temperature_K"])
    n_cores = n_cores or os.cpu_count() or 1
    steps = trajectory_ps / sim["timestep_ps"]
    return {"speed": speed, "steps": steps, "seconds": steps / (speed * n_cores), "n_cores": n_cores}


def choose_platform(model: GoModel | None = None, candidates=("Reference", "CPU", "CUDA", "OpenCL"),
                    n_steps: int = 1000) -> str:
    """Name of the fastest available OpenMM platform for this 20-particle system, by measurement.

    Each available candidate runs ``n_steps`` steps (after a warm-up); the choice is cached for the
    process. On 2-core CPU machines the Reference platform wins by far (about 40 times the CPU
    platform: per-step threading overhead dominates for 20 particles).
    """
    import openmm

    if "choice" in _PLATFORM_CACHE:
        return _PLATFORM_CACHE["choice"]
    available = {openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())}
    speeds = {}
    for name in candidates:
        if name not in available:
            continue
        try:
            speeds[name] = measure_speed(name, model, n_steps=n_steps)
        except Exception:  # a platform that is listed but cannot make a context here
            continue
    if not speeds:
        raise RuntimeError(f"no usable OpenMM platform among {candidates}")
    best = max(speeds, key=speeds.get)
    _PLATFORM_CACHE["choice"] = best
    _PLATFORM_CACHE["speeds"] = speeds
    return best


def _check_sim_args(n_steps, save_every, temperature, timestep, friction):
    for name, v in (("n_steps", n_steps), ("save_every", save_every)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer number of steps, got {v!r}")
    if save_every > n_steps:
        raise ValueError(f"save_every={save_every} is larger than n_steps={n_steps}: no frame would be saved")
    for name, v in (("temperature", temperature), ("timestep", timestep), ("friction", friction)):
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be positive and finite, got {v!r}")


def _run(n_steps, save_every, temperature, seed, platform, model, timestep, friction,
         equilibration_steps, progress, position=0, start=None):
    """Simulate one trajectory (the one OpenMM runner of lss); returns (xyz float32 nm, info dict).

    From the native structure, ``xyz`` (n_steps // save_every, 20, 3); from ``start`` (n_atoms, 3) nm,
    ``xyz`` (n_steps // save_every + 1, n_atoms, 3) with the start as frame 0.
    """
    import openmm
    from tqdm.auto import tqdm

    x0 = native_structure().xyz[0] if start is None else np.asarray(start, dtype=np.float32)
    integ = openmm.LangevinMiddleIntegrator(temperature, friction, timestep)
    integ.setRandomNumberSeed(_openmm_seed(seed))
    ctx = openmm.Context(model.create_system(), integ, openmm.Platform.getPlatformByName(platform))
    ctx.setPositions(x0.astype(float))
    ctx.setVelocitiesToTemperature(temperature, _openmm_seed(seed + 7919))
    t0, c0 = _time.perf_counter(), _time.process_time()
    if equilibration_steps:
        integ.step(int(equilibration_steps))
    n_frames, first = int(n_steps) // int(save_every), int(start is not None)
    xyz = np.empty((n_frames + first, len(x0), 3), dtype=np.float32)
    xyz[:first] = x0
    block = max(1, n_frames // 200)
    with tqdm(total=n_frames, disable=not progress, desc=f"Go model seed {seed}", unit="frame",
              position=position, leave=True, mininterval=1.0) as bar:
        for k in range(n_frames):
            integ.step(int(save_every))
            xyz[first + k] = ctx.getState(getPositions=True).getPositions(asNumpy=True)._value
            if (k + 1) % block == 0:
                bar.update(block)
        bar.update(n_frames - bar.n)
    wall, cpu = _time.perf_counter() - t0, _time.process_time() - c0
    if not np.all(np.isfinite(xyz)):
        raise RuntimeError(f"the Go-model simulation (seed {seed}) produced non-finite coordinates; "
                           f"the time step {timestep} ps is too large")
    info = {"platform": platform, "wall_s": wall, "cpu_s": cpu, "seed": int(seed), "openmm_seed": _openmm_seed(seed),
            "steps_per_s": (n_frames * save_every + equilibration_steps) / wall}
    return xyz, info


def _as_traj(xyz, save_every, timestep) -> md.Trajectory:
    frame_ps = save_every * timestep
    t = md.Trajectory(xyz, native_structure().topology,
                      time=(np.arange(1, len(xyz) + 1) * frame_ps).astype(np.float64))
    return t


def simulate(n_steps: int, save_every: int, temperature: float = 300.0, seed: int = 0,
             platform: str = "auto", progress: bool = False, model: GoModel | None = None,
             timestep: float = 0.02, friction: float = 1.0, equilibration_steps: int = 10_000,
             info: dict | None = None) -> md.Trajectory:
    """Langevin dynamics of the Go model from the native structure.

    Parameters
    ----------
    n_steps : int
        Production steps; ``n_steps // save_every`` frames are kept.
    save_every : int
        Steps between saved frames.
    temperature : float
        K (300 K is near the folding temperature of the default model).
    seed : int
        Seed of the Langevin noise and the initial velocities. On the Reference platform the same
        seed gives the same trajectory bit for bit.
    platform : str
        OpenMM platform name, or ``"auto"`` for the fastest measured (:func:`choose_platform`).
    progress : bool
        tqdm progress bar over frames.
    model : GoModel, optional
        Default ``GoModel()``.
    timestep : float
        ps (20 fs: equipartition is correct up to 40 fs for this model).
    friction : float
        Langevin friction, 1/ps.
    equilibration_steps : int
        Steps run (and discarded) before the first production step.
    info : dict, optional
        Filled with the platform, wall and CPU time (s) and speed (steps/s, wall clock) of the run.

    Returns
    -------
    mdtraj.Trajectory
        C-alpha topology (20 atoms), ``xyz`` in nm, ``time`` in ps of *model* time: frame ``k``
        (0-based) is at ``(k + 1) * save_every * timestep``.
    """
    _check_sim_args(n_steps, save_every, temperature, timestep, friction)
    model = model or GoModel()
    if platform == "auto":
        platform = choose_platform(model)
    xyz, inf = _run(n_steps, save_every, temperature, seed, platform, model, timestep, friction,
                    equilibration_steps, progress)
    if info is not None:
        info.update(inf)
    return _as_traj(xyz, save_every, timestep)


def describe_simulation(sim: dict) -> str:
    """The record of a Go-model simulation (``TrpcageDataset.meta["simulation"]``, written by
    :func:`lss.data.make_go_dataset`) in one line: platform, processes, speed, wall and CPU seconds."""
    return (f"platform {sim['platform']}, {sim['n_jobs']} process(es), {sim['steps_per_s_per_traj']} steps/s per "
            f"trajectory; simulation wall time {sim.get('wall_s'):.1f} s, CPU time per trajectory {sim.get('cpu_s_per_traj')} s "
            "(when it was made; on a shared machine the wall time exceeds the CPU time)")


def trajectory_seeds(seed: int, n_traj: int) -> list[int]:
    """Independent per-trajectory seeds derived from one seed (``numpy.random.SeedSequence``)."""
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(int(n_traj), dtype=np.uint32)]


def _worker(kwargs):
    return _run(**kwargs)


def simulate_many(n_traj: int, n_steps: int, save_every: int, temperature: float = 300.0, seed: int = 0,
                  n_jobs: int | None = None, platform: str = "auto", progress: bool = False,
                  model: GoModel | None = None, timestep: float = 0.02, friction: float = 1.0,
                  equilibration_steps: int = 10_000, info: list | None = None) -> list[md.Trajectory]:
    """``n_traj`` independent trajectories, run in ``n_jobs`` parallel processes.

    Trajectory ``i`` uses seed ``trajectory_seeds(seed, n_traj)[i]``, so the result does not depend
    on ``n_jobs``. Processes are started with the ``spawn`` method (safe with torch threads in the
    parent); each runs one single-threaded Reference-platform simulation, so two trajectories on
    two cores take about the time of one. Other arguments as in :func:`simulate`.

    Returns
    -------
    list of mdtraj.Trajectory
    """
    if int(n_traj) != n_traj or n_traj < 1:
        raise ValueError(f"n_traj must be a positive integer, got {n_traj!r}")
    _check_sim_args(n_steps, save_every, temperature, timestep, friction)
    model = model or GoModel()
    if platform == "auto":
        platform = choose_platform(model)
    n_jobs = min(int(n_traj), n_jobs or os.cpu_count() or 1)
    seeds = trajectory_seeds(seed, n_traj)
    jobs = [dict(n_steps=n_steps, save_every=save_every, temperature=temperature, seed=s, platform=platform,
                 model=model, timestep=timestep, friction=friction, equilibration_steps=equilibration_steps,
                 progress=progress, position=i) for i, s in enumerate(seeds)]
    if n_jobs == 1:
        results = [_run(**j) for j in jobs]
    else:
        for j in jobs:  # bars from child processes interleave badly; show completion only
            j["progress"] = False
        from tqdm.auto import tqdm

        with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn")) as ex:
            futures = [ex.submit(_worker, j) for j in jobs]
            results = []
            for f in tqdm(futures, disable=not progress, desc="Go-model trajectories", unit="traj"):
                results.append(f.result())
    if info is not None:
        info.extend(r[1] for r in results)
    return [_as_traj(xyz, save_every, timestep) for xyz, _ in results]
