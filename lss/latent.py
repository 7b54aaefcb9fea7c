"""The latent trajectory file that notebook 03 writes and notebooks 04-07 read.

``runs/<profile>/03_srv/latent.npz`` holds one array per trajectory (``traj_000``, ``traj_001``, ...;
each (n_frames, m) float32, the SRV coordinates psi_1..psi_m), their ``lengths``, the ``frame_time``
and ``time_unit`` of the frames, the SRV ``lag`` (frames) and the SRV ``modes`` kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
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
    modes : np.ndarray of int
        SRV eigenfunction indices kept (0 = slowest).
    """

    trajs: list
    frame_time: float
    time_unit: str
    lag: int
    modes: np.ndarray = field(default_factory=lambda: np.zeros(0, int))

    @property
    def n_components(self) -> int:
        return int(self.trajs[0].shape[1])

    def save(self, path: str | Path) -> Path:
        """Write ``latent.npz`` (float32 trajectories, parent folders created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{f"traj_{i:03d}": np.asarray(t, dtype=np.float32) for i, t in enumerate(self.trajs)},
                 lengths=np.array([len(t) for t in self.trajs]), frame_time=self.frame_time,
                 time_unit=str(self.time_unit), lag=int(self.lag), modes=np.asarray(self.modes, dtype=int))
        return path


def load_latent(directory: str | Path) -> LatentTrajectories:
    """Read ``<directory>/latent.npz`` (written by notebook 03_srv); a clear error when it is missing."""
    path = Path(directory) / "latent.npz"
    if not path.exists():
        raise FileNotFoundError(f"missing {path}: the latent trajectories are written by notebook 03_srv; "
                                f"run it first (python -m lss.reproduce --profile <profile> --only 03_srv)")
    with np.load(path) as f:
        keys = sorted(k for k in f.files if k.startswith("traj_"))
        return LatentTrajectories(trajs=[f[k].astype(np.float32) for k in keys], frame_time=float(f["frame_time"]),
                                  time_unit=str(f["time_unit"]), lag=int(f["lag"]),
                                  modes=f["modes"] if "modes" in f.files else np.arange(f[keys[0]].shape[1]))
