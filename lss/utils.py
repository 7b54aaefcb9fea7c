"""Small shared helpers: seeds, devices, hashing, input validation."""
from __future__ import annotations

import hashlib
import json
import math
import os
import random
import threading
from pathlib import Path
from typing import Any, Iterable

import numpy as np


def load_average() -> tuple[float, float, float]:
    """The 1-, 5- and 15-minute load averages (``os.getloadavg``), or NaNs where the system has none
    (Windows): recorded beside timings, never needed for a result."""
    try:
        return tuple(float(v) for v in os.getloadavg())
    except (AttributeError, OSError):
        return (float("nan"),) * 3


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and torch; return a fresh ``numpy.random.Generator(seed)``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover
        pass
    return np.random.default_rng(seed)


class local_torch_seed:
    """Context manager: torch's random state seeded with ``seed`` inside, restored on exit.

    For code that draws from torch's default CPU generator (``nn.Linear`` weight initialisation,
    networks built on the CPU and moved afterwards): the draws are those after
    ``torch.manual_seed(seed)``, and the caller's global random state is unchanged afterwards. CUDA
    generators are not touched (nothing inside may draw on a GPU without an explicit generator).
    ``seed=None`` seeds from fresh entropy.
    """

    def __init__(self, seed: int | None):
        self.seed = seed

    def __enter__(self):
        import torch

        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        if self.seed is None:
            torch.default_generator.seed()
        else:
            torch.default_generator.manual_seed(int(self.seed))
        return self

    def __exit__(self, *exc):
        return self._fork.__exit__(*exc)


def get_device(device: str = "auto"):
    """``'auto'`` -> CUDA when present, else CPU; ``'cpu'`` / ``'cuda'`` / ``'cuda:1'`` as given."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but torch sees no CUDA device; use 'cpu' or 'auto'")
    return dev


def torch_generator(seed: int | None, device="cpu"):
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (random seed when None)."""
    import torch

    g = torch.Generator(device=device)
    if seed is None:
        g.seed()
    else:
        g.manual_seed(int(seed))
    return g


def hash_obj(obj: Any) -> str:
    """Stable SHA-256 (hex, 16 chars) of a JSON-serialisable object."""
    s = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(s.encode()).hexdigest()[:16]


def hash_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's content."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def hash_arrays(arrays: Iterable[np.ndarray]) -> str:
    """SHA-256 (hex, 16 chars) of arrays' shapes, dtypes and bytes: a data fingerprint."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def require_file(path: str | os.PathLike, made_by: str) -> Path:
    """Return ``path`` if it exists, else raise ``FileNotFoundError`` naming what makes it."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"missing input {p}: it is written by {made_by}; run that first "
                                f"(e.g. python -m lss.reproduce --profile <profile> --only {made_by})")
    return p


def as_trajs(data, name: str = "data", min_len: int = 2, stack: bool = False) -> list[np.ndarray]:
    """Normalise one array or a list of arrays to a list of float32 arrays ``(n_frames, n_features)``.

    The one coercer of trajectories of features or latent coordinates; a 1-D array is one feature.
    ``stack=True``: a 3-D array ``(n_traj, n_frames, n_features)`` is a stack of trajectories.
    Raises ``ValueError`` naming ``name`` for NaN/inf, empty input, or arrays of differing widths.
    """
    if isinstance(data, np.ndarray) or hasattr(data, "shape"):
        data = list(np.asarray(data)) if stack and np.ndim(data) == 3 else [data]
    out = []
    for i, x in enumerate(data):
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise ValueError(f"{name}[{i}] must have shape (n_frames, n_features), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name}[{i}] contains NaN or inf values")
        if len(x) < min_len:
            raise ValueError(f"{name}[{i}] has {len(x)} frames; at least {min_len} are needed")
        out.append(x)
    if not out:
        raise ValueError(f"{name} is empty")
    widths = {x.shape[1] for x in out}
    if len(widths) != 1:
        raise ValueError(f"{name}: trajectories have different numbers of features {sorted(widths)}")
    return out


def as_points(x, m: int, name: str = "x") -> np.ndarray:
    """Points of an ``m``-dimensional (latent) space as a float64 array ``(n, m)``.

    A 1-D array is one point (length ``m``), or ``n`` points when ``m == 1``; a bad shape or NaN/inf
    raises ``ValueError`` naming ``name``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None] if m == 1 else x[None, :]
    if x.ndim != 2 or x.shape[1] != m:
        raise ValueError(f"{name} must have shape ({m},) or (n, {m}) (points in {m} dimensions), got {np.shape(x)}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf values")
    return x


def check_lag(lag: int, trajs: list[np.ndarray], name: str = "lag") -> int:
    """Validate a lag (frames) against trajectories; return it as int."""
    if int(lag) != lag or lag < 1:
        raise ValueError(f"{name} must be a positive integer number of frames, got {lag!r}")
    longest = max(len(x) for x in trajs)
    if lag >= longest:
        raise ValueError(f"{name}={lag} frames is not shorter than the longest trajectory ({longest} frames)")
    return int(lag)


def block_split(n: int, n_blocks: int, val_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of length ``n``: True for frames in held-out contiguous validation blocks.

    The ``n`` frames are cut into ``n_blocks`` equal contiguous blocks and
    ``round(val_fraction * n_blocks)`` (at least 1) of them are chosen at random for validation.
    Contiguous blocks keep lagged pairs from leaking between training and validation.
    """
    n_blocks = max(2, min(n_blocks, n))
    n_val = max(1, int(round(val_fraction * n_blocks)))
    edges = np.linspace(0, n, n_blocks + 1).astype(int)
    chosen = rng.choice(n_blocks, size=n_val, replace=False)
    mask = np.zeros(n, dtype=bool)
    for b in chosen:
        mask[edges[b]:edges[b + 1]] = True
    return mask


def machine_info() -> dict:
    """Hardware and software of this run, for reports."""
    import platform

    info = {"python": platform.python_version(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:  # pragma: no cover
        pass
    return info


class torch_threads:
    """Context manager: run torch on ``n`` intra-op threads, then restore the previous number.

    Small networks evaluated one step at a time (MDN sampling) are fastest on one thread; extra
    threads only add synchronisation, and on a loaded machine they stall.
    """

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self):
        import torch

        self.prev = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(int(self.n))
        return self

    def __exit__(self, *exc):
        import torch

        torch.set_num_threads(self.prev)
        return False


class PeakMemory:
    """Context manager: the peak resident memory (RSS, MB) of this process while it is active
    (notebook 06's memory target, ``benchmarks/generation.py``).

    Samples ``psutil.Process().memory_info().rss`` every ``interval`` seconds in a thread (the whole
    process: interpreter, torch and data included). ``peak_mb`` holds the result.
    """

    def __init__(self, interval: float = 0.02):
        self.interval, self.peak_mb = interval, float("nan")
        self._stop = threading.Event()

    @staticmethod
    def rss_mb() -> float:
        import psutil

        return psutil.Process().memory_info().rss / 2**20

    def _watch(self):
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, self.rss_mb())

    def __enter__(self) -> "PeakMemory":
        self.peak_mb = self.rss_mb()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self.rss_mb())
        return False


def jsonable(o, nonfinite_as_str: bool = False):
    """Plain JSON types, recursively: numpy scalars and arrays, tuples, paths and dict keys converted.

    ``nonfinite_as_str``: NaN and infinities become ``"nan"``, ``"inf"`` (strict JSON readers refuse
    the bare ``NaN`` that ``json.dumps`` writes by default).
    """
    if isinstance(o, dict):
        return {str(k): jsonable(v, nonfinite_as_str) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v, nonfinite_as_str) for v in o]
    if isinstance(o, np.ndarray):
        return jsonable(o.tolist(), nonfinite_as_str)
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and nonfinite_as_str and not math.isfinite(o):
        return str(o)
    return str(o) if isinstance(o, Path) else o

