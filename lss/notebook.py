"""What every numbered notebook shares: its set-up, the upstream artifacts it reads, and its closing.

A notebook's first code cell after the parameters::

    from lss.notebook import Step
    step = Step("04_mdn", globals(), section="trpcage_mdn")   # profile applied, seeded, output folder
    latent = step.latent()                                    # notebook 03's file, or an error naming 03

and its last::

    step.close(summary={"lag": tau})    # REPORT.md, <out>/summary.json, the targets' verdict

A notebook opened cold (nothing run before it, e.g. in a hosted runtime) catches up: a loader whose
file is missing runs the notebooks that make it with the runner (:meth:`Step.catch_up`), says so and
continues; under the runner, or with ``LSS_NO_CATCH_UP`` set, it raises ``FileNotFoundError`` naming
the notebook and the command that makes the file.
"""
from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

from . import paths, reproduce, results
from .utils import jsonable, require_file, seed_everything

#: file of each upstream artifact: (notebook that writes it, file name in its run folder)
ARTIFACTS = {"srv": ("03_srv", "srv.lss"), "encoder": ("03_srv", "encoder.lss"), "mdn": ("04_mdn", "mdn.lss"),
             "decoder": ("05_cwgan", "decoder.lss"), "cwgan": ("05_cwgan", "cwgan.lss"),
             "flow": ("05_cwgan", "flow.lss")}


class Step:
    """One notebook's run: its profile's parameters, seeds, output folder, recorder and timings.

    Parameters
    ----------
    name : str
        The notebook's stem, e.g. ``"03_srv"``.
    namespace : dict
        The notebook's ``globals()``: :func:`lss.reproduce.apply_profile` sets the profile's parameters
        there in an interactive run (the runner has injected them already). With ``LSS_THREADS`` set in
        the environment, torch uses that many threads (interactive kernels too, not only the runner's).
    section : str, optional
        Section of ``metrics.json`` for :attr:`rec` (no recorder without it).

    Attributes
    ----------
    profile : str
    out : pathlib.Path
        ``runs/<profile>/<name>/``, created.
    rng : numpy.random.Generator
        Seeded with the notebook's ``seed`` (0 where it has none); Python, NumPy and torch seeded too.
    rec : lss.results.Recorder or None
    timings : dict
        Wall seconds of the blocks timed with :meth:`timer`.
    """

    def __init__(self, name: str, namespace: dict, section: str | None = None):
        reproduce.apply_profile(namespace, name)
        if os.environ.get(reproduce.THREADS_ENV):     # e.g. LSS_THREADS=1 on a shared JupyterHub node
            import torch

            torch.set_num_threads(reproduce._env_threads())
        self.name, self.profile = name, namespace["profile"]
        self.out = paths.run_dir(self.profile, name)
        self.rng = seed_everything(int(namespace.get("seed", 0)))
        self.rec = results.Recorder(self.profile, section, name, context=namespace) if section else None
        self.timings: dict = {}
        self._t0 = time.perf_counter()

    # ------------------------------------------------------------------ upstream artifacts
    def catch_up(self, step: str) -> None:
        """Run ``step`` and what it needs for this profile with the runner (a notebook opened cold).

        Called when an upstream file is missing and the notebook runs by hand (never under the runner,
        whose order already made it, nor with ``LSS_NO_CATCH_UP`` set); steps whose outputs are cached
        are skipped by the runner. Raises ``FileNotFoundError`` when it cannot make them.
        """
        import subprocess
        import sys

        if os.environ.get(reproduce.RUNNER_ENV) or os.environ.get("LSS_NO_CATCH_UP"):
            raise FileNotFoundError(f"the outputs of {step} ({self.profile} profile) are missing: run it first "
                                    f"(python -m lss.reproduce --profile {self.profile} --only {step})")
        steps = reproduce.upstream(step)
        print(f"{self.name} needs {step}, which has not run for the {self.profile} profile: running "
              f"{', '.join(steps)} first with the runner (finished steps are skipped) ...", flush=True)
        cmd = [sys.executable, "-m", "lss.reproduce", "--profile", self.profile] + [a for s in steps for a in ("--only", s)]
        if subprocess.run(cmd, cwd=str(paths.root())).returncode != 0:
            raise FileNotFoundError(f"catching up {step} failed: run `{' '.join(cmd[1:])}` in a terminal to see why")
        print(f"caught up: {', '.join(steps)} ({self.profile} profile); continuing with {self.name}", flush=True)

    def path(self, step: str, filename: str = "") -> Path:
        """``runs/<profile>/<step>/<filename>``, made first by :meth:`catch_up` when it is missing."""
        p = paths.run_dir(self.profile, step) / filename
        if not (p.exists() if filename else any(p.iterdir())):
            self.catch_up(step)
        return require_file(p, step)

    def dataset(self, mmap: bool = False):
        """Notebook 02's :class:`lss.data.TrpcageDataset`."""
        from .data import TrpcageDataset

        return TrpcageDataset.load(self.path("02_trpcage_data", "dataset.json").parent, mmap=mmap)

    def latent(self):
        """Notebook 03's :class:`lss.latent.LatentTrajectories`."""
        from .latent import load_latent

        return load_latent(self.path("03_srv", "latent.npz").parent)

    def load(self, what: str, required: bool = True):
        """A saved model of an upstream notebook: one of :data:`ARTIFACTS` (``None`` if absent and not required)."""
        from . import cwgan, features, flow, mdn, srv  # noqa: F401  (load_any reads the formats they register)
        from .persist import load_any

        step, filename = ARTIFACTS[what]
        if not required and not (paths.run_dir(self.profile, step) / filename).exists():
            return None
        return load_any(self.path(step, filename))

    def generation(self):
        """Notebook 06's generated ensemble (:class:`lss.trajio.Generation`)."""
        from .trajio import read_generation

        return read_generation(self.path("06_generate", "generation.json").parent)

    @property
    def elapsed(self) -> float:
        """Wall seconds since the step began."""
        return time.perf_counter() - self._t0

    # ------------------------------------------------------------------ during the run
    @contextmanager
    def timer(self, key: str):
        """Time a block: ``with step.timer("train_s"): ...`` stores the wall seconds in :attr:`timings`."""
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[key] = time.perf_counter() - t

    def savefig(self, fig, name: str) -> Path:
        """Save ``fig`` under the profile's figures folder (:func:`lss.results.savefig`)."""
        return results.savefig(fig, name, self.profile, self.name)

    # ------------------------------------------------------------------ closing
    def close(self, summary: dict | None = None) -> Path:
        """Write REPORT.md, ``<out>/summary.json`` (``summary`` + timings) and print the targets' verdict."""
        report = results.write_report(self.profile)
        doc = dict(summary or {}) | {"timings_s": self.timings,
                                     "wall_s": self.elapsed}
        (self.out / "summary.json").write_text(json.dumps(jsonable(doc, nonfinite_as_str=True), indent=1))
        if self.rec is not None:
            print(self.rec.verdict())
        return report
