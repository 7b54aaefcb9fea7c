"""Run the notebooks of one profile, in order, with papermill.

Usage::

    python -m lss.reproduce --profile smoke|cpu|paper [--only NOTEBOOK] [--force]
    python -m lss.reproduce --params my_params.yaml

Each notebook runs with the parameters ``common`` + its own section of ``params/<profile>.yaml``.
The executed notebook is saved as ``runs/<profile>/executed/<step>.ipynb``; its outputs live in
``runs/<profile>/<step>/``. A step is skipped when its cache key (the notebook's source, its
parameters, the ``lss`` source and the keys of the steps it reads from) is unchanged and every
output file it recorded is still there with the same content. The run stops at the first failing
notebook and shows that notebook's error.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import yaml

from . import paths, results
from .utils import hash_file, hash_obj, machine_info

#: Notebook steps in run order, with the steps whose outputs each one reads.
STEPS: dict[str, list[str]] = {
    "01_four_well": [],
    "02_trpcage_data": [],
    "03_srv": ["02_trpcage_data"],
    "04_mdn": ["03_srv"],
    "05_cwgan": ["02_trpcage_data", "03_srv"],
    "06_generate": ["02_trpcage_data", "03_srv", "04_mdn", "05_cwgan"],
    "07_analysis": ["02_trpcage_data", "03_srv", "04_mdn", "05_cwgan", "06_generate"],
}


def available_steps() -> list[str]:
    """Steps whose notebook exists, in run order."""
    return [s for s in STEPS if (paths.notebooks_dir() / f"{s}.ipynb").exists()]


def load_params(profile: str | None = None, params_file: str | Path | None = None) -> dict:
    """Read a parameter file: ``{"common": {...}, "<step>": {...}}``.

    A file may start with ``extends: <profile>``: it then holds only the keys it changes in that
    profile (e.g. ``paper-fixture.yaml`` = ``paper.yaml`` with tiny sizes).
    """
    p = Path(params_file) if params_file else paths.params_file(profile)
    if not p.exists():
        known = sorted(x.stem for x in (paths.root() / "params").glob("*.yaml"))
        raise FileNotFoundError(f"parameter file {p} not found (profiles here: {', '.join(known)})")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping of sections, got {type(data).__name__}")
    base = data.pop("extends", None)
    if base:
        # a profile that extends another: the base's sections, overridden key by key
        merged = load_params(base)
        for section, values in data.items():
            merged[section] = {**(merged.get(section) or {}), **(values or {})}
        data = merged
    unknown = set(data) - set(STEPS) - {"common"}
    if unknown:
        raise ValueError(f"{p}: unknown sections {sorted(unknown)}; known: common, {', '.join(STEPS)}")
    data.setdefault("common", {})
    if profile and "profile" not in data["common"]:
        data["common"]["profile"] = profile
    return data


def step_parameters(params: dict, step: str) -> dict:
    """The papermill parameters of one step: ``common`` overlaid by the step's own section."""
    return {**params.get("common", {}), **(params.get(step) or {})}


def check_parameters(step: str, parameters: dict) -> None:
    """Fail when a parameter is not declared in the notebook's ``parameters`` cell (a typo)."""
    import papermill as pm

    declared = set(pm.inspect_notebook(str(paths.notebooks_dir() / f"{step}.ipynb")))
    extra = set(parameters) - declared
    if extra:
        raise ValueError(f"{step}: parameters {sorted(extra)} are not in the notebook's parameters cell "
                         f"(declared: {sorted(declared)})")


def _lss_source_hash() -> str:
    files = sorted((paths.root() / "lss").rglob("*.py"))
    return hash_obj([(str(f.relative_to(paths.root())), hash_file(f)) for f in files])


def _state_path(profile: str, step: str) -> Path:
    d = paths.run_dir(profile) / ".steps"
    d.mkdir(exist_ok=True)
    return d / f"{step}.json"


def _outputs(profile: str, step: str) -> dict[str, str]:
    d = paths.run_dir(profile, step)
    return {str(f.relative_to(d)): hash_file(f) for f in sorted(d.rglob("*")) if f.is_file()}


def cache_key(profile: str, step: str, parameters: dict, keys: dict[str, str]) -> str:
    nb = paths.notebooks_dir() / f"{step}.ipynb"
    return hash_obj({"notebook": hash_file(nb), "parameters": parameters, "lss": _lss_source_hash(),
                     "upstream": {d: keys.get(d) for d in STEPS[step]}})


def is_cached(profile: str, step: str, key: str) -> bool:
    sp = _state_path(profile, step)
    if not sp.exists():
        return False
    state = json.loads(sp.read_text())
    return state.get("key") == key and state.get("outputs") == _outputs(profile, step) and bool(state.get("outputs"))


def _fmt_s(s: float) -> str:
    return f"{s / 60:.1f} min" if s >= 90 else f"{s:.0f} s"


def run(profile: str | None = None, params_file: str | None = None, only: list[str] | None = None,
        force: bool = False, log=print) -> dict[str, float]:
    """Run the profile's notebooks; return ``{step: seconds}`` of the steps that ran."""
    import papermill as pm

    params = load_params(profile, params_file)
    profile = params["common"]["profile"]
    steps = available_steps()
    if only:
        bad = [o for o in only if o not in steps]
        if bad:
            raise ValueError(f"--only {bad}: no such notebook (available: {', '.join(steps)})")
    out_dir = paths.run_dir(profile, "executed")
    keys: dict[str, str] = {}
    durations: dict[str, float] = {}
    t_run = time.perf_counter()
    for i, step in enumerate(steps):
        parameters = step_parameters(params, step)
        check_parameters(step, parameters)
        key = cache_key(profile, step, parameters, keys)
        keys[step] = key
        if only and step not in only:
            continue
        if not force and is_cached(profile, step, key):
            log(f"[{profile}] {step}: cached, skipped")
            continue
        remaining = _estimate_remaining(profile, steps[i:], only)
        log(f"[{profile}] {step}: running" + (f" (estimated time left for this run: {_fmt_s(remaining)})"
                                              if remaining else ""))
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(paths.notebooks_dir() / f"{step}.ipynb"), str(out_dir / f"{step}.ipynb"),
                                parameters=parameters, kernel_name="python3", cwd=str(paths.notebooks_dir()),
                                progress_bar=sys.stderr.isatty(), log_output=False)
        except pm.PapermillExecutionError as e:
            log(f"[{profile}] {step}: FAILED after {_fmt_s(time.perf_counter() - t0)} "
                f"(executed notebook: {out_dir / (step + '.ipynb')})")
            log(f"{e.ename}: {e.evalue}")
            log("".join(e.traceback[-8:]) if e.traceback else "")
            raise SystemExit(1) from None
        dt = time.perf_counter() - t0
        durations[step] = dt
        _state_path(profile, step).write_text(json.dumps(
            {"key": key, "outputs": _outputs(profile, step), "seconds": dt, "parameters": parameters}, indent=1))
        log(f"[{profile}] {step}: done in {_fmt_s(dt)}")
    total = time.perf_counter() - t_run
    if durations:
        # the duration of every step as it last ran (cached steps keep theirs): the whole job's cost
        step_seconds = {s: round(json.loads(_state_path(profile, s).read_text()).get("seconds", 0.0), 1)
                        for s in steps if _state_path(profile, s).exists()}
        results.record_meta(profile, machine=machine_info(), last_run_seconds=round(total, 1),
                            step_seconds=step_seconds, all_steps_seconds=round(sum(step_seconds.values()), 1))
        results.write_report(profile)
    log(f"[{profile}] finished in {_fmt_s(total)}; executed notebooks in {out_dir}")
    return durations


def _estimate_remaining(profile: str, steps: list[str], only) -> float:
    total = 0.0
    for s in steps:
        if only and s not in only:
            continue
        sp = _state_path(profile, s)
        if sp.exists():
            total += json.loads(sp.read_text()).get("seconds", 0.0)
    return total


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lss.reproduce", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=None, help="params/<profile>.yaml (smoke, cpu, paper, ...)")
    ap.add_argument("--params", default=None, help="a parameter file instead of params/<profile>.yaml")
    ap.add_argument("--only", action="append", help="run only this notebook step (repeatable), e.g. 03_srv")
    ap.add_argument("--force", action="store_true", help="rerun steps even when their cache is valid")
    a = ap.parse_args(argv)
    if not a.profile and not a.params:
        ap.error("give --profile or --params")
    only = [o.removesuffix(".ipynb").split("/")[-1] for o in a.only] if a.only else None
    run(a.profile, a.params, only, a.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
