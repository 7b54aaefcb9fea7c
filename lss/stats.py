"""Statistics shared by the analyses: input forms of trajectories and contiguous-block errors.

Standard errors come from contiguous blocks (:func:`split_blocks`): the trajectories are laid end to
end in the order given, the ``n_frames`` frames are cut into ``n_blocks`` contiguous pieces of equal
size, and a quantity is computed on each block. Pieces never join two trajectories, so time
correlations (autocorrelations, transitions) are only measured within a trajectory. The standard
error of the full-data estimate is ``std(block estimates, ddof=1) / sqrt(n_blocks)``, which assumes the
blocks are long enough to be independent (Flyvbjerg & Petersen, J. Chem. Phys. 91, 461 (1989)).
The paper's ``±`` is the spread of the block estimates (``std``, ``ddof=1``) itself: both are
returned by :func:`block_average`.
"""
from __future__ import annotations

import math

import numpy as np

from .utils import as_trajs

__all__ = ["cut_pieces", "split_blocks", "block_average", "total_variation"]


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
    return [t.astype(np.float64) for t in as_trajs(x, name, min_len=min_len, stack=True)]


def _check_n_blocks(n_blocks, name: str = "n_blocks") -> int:
    if int(n_blocks) != n_blocks or n_blocks < 2:
        raise ValueError(f"{name} must be an integer >= 2, got {n_blocks!r}")
    return int(n_blocks)

# ----------------------------------------------------------------------------------------- blocks
def cut_pieces(trajs, length: int, n: int) -> list[list[np.ndarray]]:
    """The first ``n * length`` frames of ``trajs`` (laid end to end) in ``n`` pieces of ``length`` frames.

    Unlike :func:`split_blocks` the pieces have an exact length (the remainder is left out), e.g. pieces
    of a long reference as long as a training set. Each piece is a list of views; a piece that spans
    two trajectories keeps their boundary.
    """
    length, n = int(length), int(n)
    if length < 1 or n < 0 or n * length > sum(len(t) for t in trajs):
        raise ValueError(f"{n} pieces of {length} frames do not fit in {sum(len(t) for t in trajs)} frames")
    out = [[] for _ in range(n)]
    pos = 0
    for t in trajs:
        a = 0
        while a < len(t) and pos < n * length:
            b = min(len(t), a + length - pos % length)
            out[pos // length].append(t[a:b])
            pos += b - a
            a = b
    return out


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


def total_variation(p, q) -> float:
    """Total-variation distance ``0.5 * sum |p - q|`` (0 ... 1) between two histograms on the same bins,
    each normalised here (counts or probabilities)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    return 0.5 * float(np.abs(p / max(p.sum(), 1e-300) - q / max(q.sum(), 1e-300)).sum())

