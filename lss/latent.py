"""The latent trajectory file that notebook 03 writes and notebooks 04-07 read.

``runs/<profile>/03_srv/latent.npz`` holds one array per trajectory (``traj_000``, ``traj_001``, ...;
each (n_frames, m) float32, the SRV coordinates psi_1..psi_m), their ``lengths``, the ``frame_time``
and ``time_unit`` of the frames, the SRV ``lag`` (frames) and, when known, the SRV ``modes`` the
columns are. It is written and read with ``allow_pickle=False``: it holds plain arrays only, and a
file carrying an object (pickle) array is refused with a ``ValueError`` naming it.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class LatentTrajectories:
    """Latent trajectories with their time axis.

    Attributes
    ----------
    trajs : list of np.ndarray, each (n_frames, m) float32
    frame_time : float
        Time between frames, in ``time_unit``.
    time_unit : str
    lag : int
        The SRV lag, frames.
    modes : tuple of int, optional
        SRV eigenfunction indices of the columns (0 = slowest); None when not recorded.
    """

    trajs: list
    frame_time: float
    time_unit: str
    lag: int
    modes: tuple | None = None

    @property
    def n_components(self) -> int:
        """The latent dimension ``m``."""
        return int(self.trajs[0].shape[1])

    def save(self, path: str | Path) -> Path:
        """Write ``latent.npz`` (float32 trajectories, parent folders created; no pickled objects)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {} if self.modes is None else {"modes": np.asarray(self.modes, dtype=np.int64)}
        np.savez(path,
                 **{f"traj_{i:03d}": np.asarray(t, dtype=np.float32) for i, t in enumerate(self.trajs)},
                 lengths=np.array([len(t) for t in self.trajs]), frame_time=np.float64(self.frame_time),
                 time_unit=np.str_(self.time_unit), lag=np.int64(self.lag), **extra)
        return path


def load_latent(directory: str | Path) -> LatentTrajectories:
    """Read ``<directory>/latent.npz`` (written by notebook 03_srv); never unpickles.

    Raises
    ------
    FileNotFoundError
        No latent file (naming the notebook that writes it).
    ValueError
        A file that is truncated, not an ``.npz`` archive, lacks an entry, or would need unpickling.
    """
    path = Path(directory) / "latent.npz"
    if not path.exists():
        raise FileNotFoundError(f"missing {path}: the latent trajectories are written by notebook 03_srv; "
                                f"run it first (python -m lss.reproduce --profile <profile> --only 03_srv)")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = sorted(k for k in f.files if k.startswith("traj_"))
            if not keys:
                raise ValueError("no traj_NNN arrays")
            return LatentTrajectories(trajs=[f[k].astype(np.float32) for k in keys],
                                      frame_time=float(f["frame_time"]), time_unit=str(f["time_unit"]),
                                      lag=int(f["lag"]),
                                      modes=tuple(int(i) for i in f["modes"]) if "modes" in f.files else None)
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a latent trajectory file lss can read without unpickling, or truncated "
                         f"({type(e).__name__}: {e}); nothing in it was run; rerun notebook 03_srv") from None
