"""Paths, anchored at the repository root.

Notebooks run from JupyterLab, papermill and nbval alike, each with its own working directory;
every path therefore comes from here, never from ``os.getcwd()``.

Layout::

    <root>/params/<profile>.yaml     parameters of each profile
    <root>/notebooks/NN_name.ipynb   the notebooks
    <root>/runs/<profile>/           artifacts of a profile's run (git-ignored)
    <root>/data/                     embedded default data, generated and cached (git-ignored)
    <root>/figures/                  what the ``cpu`` profile regenerates (committed)
"""
from __future__ import annotations

import os
from pathlib import Path

#: Profile whose figures and tables are the committed ones in ``figures/``.
PUBLISHED_PROFILE = "cpu"


def root() -> Path:
    """Repository root (the folder holding ``pyproject.toml`` and ``lss/``).

    ``LSS_ROOT`` overrides it, e.g. for an installed (non-editable) package.
    """
    env = os.environ.get("LSS_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[1]


def notebooks_dir() -> Path:
    return root() / "notebooks"


def params_file(profile: str) -> Path:
    return root() / "params" / f"{profile}.yaml"


def data_dir() -> Path:
    """Folder of the embedded default data (generated, git-ignored)."""
    d = root() / "data"
    d.mkdir(parents=True, exist_ok=True)
    return d


def run_dir(profile: str, step: str | None = None) -> Path:
    """Artifacts of one profile, ``runs/<profile>/`` (or ``runs/<profile>/<step>/``); created."""
    d = root() / "runs" / profile
    if step is not None:
        d = d / step
    d.mkdir(parents=True, exist_ok=True)
    return d


def figures_dir(profile: str) -> Path:
    """Where a profile's figures, tables, ``metrics.json`` and ``REPORT.md`` go.

    The ``cpu`` profile (the main job) publishes to ``figures/``; every other profile writes to
    ``runs/<profile>/figures/`` so that a smoke or test run never overwrites the committed figures.
    """
    d = root() / "figures" if profile == PUBLISHED_PROFILE else run_dir(profile) / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d
