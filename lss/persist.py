"""Saving and loading fitted estimators: one torch file with a format tag and versions.

An estimator that mixes in :class:`Persistable` implements ``state() -> dict`` (everything needed to
rebuild it, torch-saveable: tensors, arrays, plain types) and ``from_state(state) -> estimator``;
this mixin adds :meth:`Persistable.save` and :meth:`Persistable.load`, which refuse a file of another
format or version with a message that says so.
"""
from __future__ import annotations

from pathlib import Path

import torch


def package_versions() -> dict:
    import numpy

    from . import __version__

    return {"lss": __version__, "torch": torch.__version__, "numpy": numpy.__version__}


def read_torch_file(path: str | Path, what: str) -> dict:
    """``torch.load`` a file written by lss; a missing file raises FileNotFoundError, anything
    unreadable (truncated, corrupt, not a torch file) a ValueError naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} file {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError(f"{path}: not a readable {what} file; it may be truncated or corrupt "
                         f"({type(e).__name__}: {e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a {what} file (found a {type(obj).__name__})")
    return obj


class Persistable:
    """Mixin: ``save(path)`` / ``load(path)`` on top of ``state()`` / ``from_state(state)``."""

    #: Format tag written into every file, e.g. ``"lss.mdn/1"``; bump the number on a breaking change.
    _format: str = ""

    def state(self) -> dict:  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: dict):  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write the fitted estimator to ``path`` (parent folders are created)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"format": self._format, "versions": package_versions(), "state": self.state()}, path)
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu"):
        """Read a file written by :meth:`save`; other formats or damaged files raise ``ValueError``."""
        obj = read_torch_file(path, cls.__name__)
        fmt = obj.get("format")
        if fmt != cls._format:
            raise ValueError(f"{path}: format {fmt!r} is not {cls._format!r}; it was written by another "
                             f"class or an incompatible lss version ({obj.get('versions')})")
        est = cls.from_state(obj["state"])
        if hasattr(est, "to"):
            est.to(device)
        return est
