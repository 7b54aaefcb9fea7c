"""Paths, anchored at the repository root.

Notebooks run from JupyterLab, papermill and nbval alike, each with its own working directory;
every path therefore comes from here, never from ``os.getcwd()``.

Layout::

    <root>/params/<profile>.yaml     parameters of each profile
    <root>/notebooks/NN_name.ipynb   the notebooks
    <root>/runs/<profile>/           artifacts of a profile's run (git-ignored)
    <root>/data/                     embedded default data, generated and cached (git-ignored)
    <root>/figures/                  what the runner's ``cpu`` profile regenerates (committed)
"""
from __future__ import annotations

import os
from pathlib import Path

#: Profile whose figures and tables are the committed ones in ``figures/``.
PUBLISHED_PROFILE = "cpu"

#: Set by the runner (``python -m lss.reproduce``) to the profile it runs from its committed file,
#: for the notebooks it executes. Only with ``LSS_PUBLISH=cpu`` do figures go to ``figures/``.
PUBLISH_ENV = "LSS_PUBLISH"


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


def publishing(profile: str) -> bool:
    """Whether ``profile``'s figures go to the committed ``figures/``.

    True only for the ``cpu`` profile run through the runner (``python -m lss.reproduce --profile
    cpu``, which sets ``LSS_PUBLISH=cpu`` for its notebooks). ``profile`` alone is a label: a reader
    who sets ``profile = "cpu"`` in JupyterLab, perhaps with smoke sizes, must not overwrite them.
    """
    return profile == PUBLISHED_PROFILE and os.environ.get(PUBLISH_ENV) == profile


def figures_dir(profile: str) -> Path:
    """Where a profile's figures, tables, ``metrics.json`` and ``REPORT.md`` go.

    The ``cpu`` profile run by the runner (the main job) publishes to ``figures/`` (see
    :func:`publishing`); everything else, the cpu profile run interactively included, writes to
    ``runs/<profile>/figures/``, so that no smoke, test or hand-edited run overwrites the committed figures.
    """
    d = root() / "figures" if publishing(profile) else run_dir(profile) / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d
