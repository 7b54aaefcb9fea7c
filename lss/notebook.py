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


#: "Under the hood" of each notebook: the lss function at its core (module:qualified name) and one sentence
#: per term of it, shown by :meth:`Step.concept` beside the notebook's picture (:func:`lss.plots.concept`).
UNDER_THE_HOOD = {
    "01_four_well": ("lss.fourwell:sqra_transition_matrix", [
        "`sqra_generator(x, D, kT)`: the rates between neighbouring grid cells, `D / dx^2 exp(-(V_j - V_i) / 2kT)`: "
        "downhill faster than uphill, so that exp(-V/kT) is stationary.",
        "`expm(t * Q)`: the transition matrix over a time t, the exact answer the MDN is held to.",
        "`clip` and the row normalisation: guards against rounding, nothing physical."]),
    "02_trpcage_data": ("lss.gomodel:metastable_cores", [
        "`fraction_native_contacts`: Q, the share of the native structure's contacts that are formed (0 to 1).",
        "`flip_angle`: the R16-P17-P18-P19 dihedral, near 0 with native prolines and near 180 deg flipped.",
        "the returned cores: 0 unfolded, 1 folded, 2 flipped, -1 between cores (assigned to the last core visited "
        "when the states are milestoned)."]),
    "03_srv": ("lss.srv:_vamp2_torch", [
        "`pair_covariances(z0, z1)`: C00 and C0tau of the network's outputs at t and t + tau, symmetrised "
        "(reversible dynamics).",
        "`cholesky` of C00 (+ epsilon): whitening, so that the outputs count in units of their own spread.",
        "`k = L^-1 C0tau L^-T`: the whitened time-lagged covariance; its eigenvalues are the lambda_i of the slow "
        "eigenfunctions.",
        "`1 + (k**2).sum()`: VAMP-2 = 1 + sum_i lambda_i^2, the score training maximises: slow processes have "
        "lambda_i near 1."]),
    "04_mdn": ("lss.mdn:_mixture_log_prob", [
        "`log_w`: the log-weights of the kernels, alpha_k(x), a softmax of the network's output for x = psi(t).",
        "`mu`, `sigma`: each kernel's mean and width per coordinate, also functions of x.",
        "`y`: the point one lag later, psi(t + tau).",
        "`MixtureSameFamily(...).log_prob(y)`: log sum_k alpha_k N(y; mu_k, sigma_k^2); training minimises its "
        "negative mean over the lagged pairs."]),
    "05_cwgan": ("lss.cwgan:critic_loss", [
        "`x_hat`: points on the lines between real and generated structures, where the penalty is taken.",
        "`critic(...)`: the critic's score of real, generated and in-between structures, each with its latent point.",
        "`gp`: the gradient penalty, (|grad C| - 1)^2: keeps the critic 1-Lipschitz, as the Wasserstein distance needs.",
        "`w = E C(real) - E C(fake)`: the Wasserstein estimate; the critic minimises `-w + lam gp`, the generator "
        "maximises `E C(fake)`."]),
    "06_generate": ("lss.mdn:_MDNNet.step", [
        "`head(body(u))`: one network call for all trajectories at once: the mixture's parameters at psi(t).",
        "`argmax(logits + gumbel)`: picks a kernel per trajectory with probability alpha_k (the Gumbel-max trick).",
        "`sigmoid`, `elu + 1`: the chosen kernel's mean (in the latent box scaled to [0, 1]) and a positive width.",
        "`mu + sigma * eps`: a draw from the chosen kernel: psi(t + tau)."]),
    "07_analysis": ("lss.analysis:aligned_rmse", [
        "`F_a`, `F_b`: two free-energy profiles on the same bins, each defined up to a constant.",
        "`shift = d.mean()`: the constant that minimises the RMSE (least squares).",
        "`rmse`: what is left after the shift, over the bins both sample (and the mask: within a few kT)."]),
    "08_adaptive_sampling": ("lss.adaptive:disagreement", [
        "`rows`: each ensemble member's predicted transition probabilities out of every state.",
        "`u`: the mean total-variation distance of the members' rows from their average: large where the data "
        "are few.",
        "`u[missing] = 1`: a state no member can predict is as uncertain as it gets."]),
    "09_data_efficiency": ("lss.efficiency:amplification_factor", [
        "`polyfit(log L, log e)`: the MD error curve as a power law, error = a L^b (b < 0).",
        "`L_eq`: the MD length whose error equals the model's.",
        "`L_eq / train_length`: G, how much MD the model's estimate is worth, per unit of training MD; "
        "\"extrapolated\" when L_eq lies outside the measured lengths."]),
}


def under_the_hood(step: str) -> str:
    """Markdown: the code (docstring left out) of ``step``'s core function and one sentence per term."""
    import ast
    import importlib
    import inspect
    import textwrap

    where, notes = UNDER_THE_HOOD[step]
    module, name = where.split(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    src = textwrap.dedent(inspect.getsource(obj))
    body = ast.parse(src).body[0].body
    lines = src.splitlines()
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        lines = lines[:body[0].lineno - 1] + lines[body[0].end_lineno:]
    return (f"**Under the hood:** `{module}.{name}`, as the package runs it\n\n```python\n" + "\n".join(lines)
            + "\n```\n\n" + "\n".join(f"- {n}" for n in notes))


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
    exercises : dict
        Exercise id -> whether its last :meth:`exercise` check passed.
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
        self._namespace, self._solutions = namespace, {}
        self.exercises: dict[str, bool] = {}          # exercise id -> passed, as last checked
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

    def concept(self) -> None:
        """Show the notebook's idea in one picture (:func:`lss.plots.concept`) and its core function, under the hood."""
        import matplotlib.pyplot as plt

        from . import plots

        fig = plots.concept(self.name)
        plt.show()
        text = under_the_hood(self.name)
        try:
            from IPython.display import Markdown, display

            display(Markdown(text))
        except ImportError:          # outside IPython: the text as it is
            print(text)
        plt.close(fig)

    # ------------------------------------------------------------------ exercises
    def exercise(self, ex_id: str, prediction, measured) -> None:
        """Check an exercise's answer (:mod:`lss.exercises`): prints the verdict, kept in :attr:`exercises`.

        The solution runs once per exercise in a copy of the notebook's namespace (in memory, no file
        written), only when ``measured`` is filled in, and is compared with it on the same data.
        """
        from . import exercises

        ex = exercises.get(ex_id)
        filled = exercises.number(prediction) is not None and exercises.number(measured) is not None
        selftest = exercises.self_checking()
        ref = None
        if filled or selftest:
            if ex_id not in self._solutions:
                self._solutions[ex_id] = exercises.solve(ex, self._namespace)
            ref = self._solutions[ex_id]
        result = exercises.check(ex, prediction, measured, ref if filled else None)
        print(result.message)
        if selftest:
            print(exercises.self_check(ex, prediction, measured, self._namespace, ref))
        self.exercises[ex_id] = result.passed

    def solution(self, ex_id: str) -> None:
        """Print one solution of exercise ``ex_id`` (code to run in a new cell)."""
        from . import exercises

        print(exercises.get(ex_id).solution.rstrip())

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
        print(f"{self.name}: {self.elapsed:.0f} s wall time; outputs in {self.out}")
        return report
