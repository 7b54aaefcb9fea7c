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

A parameter file with a mistake (an unknown section or key, a value of the wrong type or out of
range, no profile) is refused before anything runs: one line naming the file, the key and the fix,
exit status 2. Only ``--profile cpu`` (``params/cpu.yaml`` as committed) writes ``figures/``; see
:func:`lss.paths.figures_dir`.
"""
from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import yaml

from . import paths, results
from .utils import hash_file, hash_obj, load_average, machine_info

#: Notebook steps in run order, with the steps whose outputs each one reads.
STEPS: dict[str, list[str]] = {
    "01_four_well": [],
    "02_trpcage_data": [],
    "03_srv": ["02_trpcage_data"],
    "04_mdn": ["03_srv"],
    "05_cwgan": ["02_trpcage_data", "03_srv"],
    "06_generate": ["02_trpcage_data", "03_srv", "04_mdn", "05_cwgan"],
    "07_analysis": ["02_trpcage_data", "03_srv", "04_mdn", "05_cwgan", "06_generate"],
    "08_adaptive_sampling": ["02_trpcage_data", "03_srv"],
    "09_data_efficiency": ["02_trpcage_data", "03_srv", "04_mdn", "05_cwgan"],
}


def available_steps() -> list[str]:
    """Steps whose notebook exists, in run order."""
    return [s for s in STEPS if (paths.notebooks_dir() / f"{s}.ipynb").exists()]


class ParamsError(ValueError):
    """A parameter file (or ``--only``) the runner refuses; ``str(e)`` is one line: file, key, fix."""

    def __init__(self, file, key: str | None, problem: str, fix: str):
        self.file, self.key, self.problem, self.fix = str(file), key, problem, fix
        where = f"{_rel(file)}: " + (f"{key}: " if key else "")
        super().__init__(f"{where}{problem}; {fix}")


def _rel(p) -> str:
    """``p`` relative to the repository root where it lies inside it (shorter messages)."""
    try:
        return str(Path(p).resolve().relative_to(paths.root()))
    except ValueError:
        return str(p)


def _known_profiles() -> list[str]:
    return sorted(x.stem for x in (paths.root() / "params").glob("*.yaml"))


def _did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def _read_params(profile: str | None, params_file, seen: tuple = ()) -> tuple[dict, dict]:
    """``(params, origin)``: the merged sections, and for each ``(section, key)`` the file it came from."""
    p = Path(params_file) if params_file else paths.params_file(profile)
    if not p.exists():
        known = ", ".join(_known_profiles())
        if params_file:
            raise ParamsError(p, None, "no such parameter file", f"check the path, or use --profile ({known})")
        raise ParamsError(p, None, f"no profile '{profile}'", f"use one of: {known}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else None
        raise ParamsError(p, line, f"not valid YAML ({getattr(e, 'problem', None) or e})",
                          "fix the indentation or quoting there (sections hold 'key: value' lines)") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ParamsError(p, None, f"expected sections (common:, 01_four_well:, ...), got {type(data).__name__}",
                          "see params/smoke.yaml for the layout")
    base = data.pop("extends", None)
    origin: dict = {}
    if base is not None:
        if not isinstance(base, str) or not paths.params_file(base).exists():
            raise ParamsError(p, "extends", f"no profile '{base}' to extend",
                              f"use one of: {', '.join(_known_profiles())}")
        if base in seen:
            raise ParamsError(p, "extends", f"profiles extend each other in a loop ({' -> '.join(seen + (base,))})",
                              "remove one of the extends: lines")
        # a profile that extends another: the base's sections, overridden key by key
        merged, origin = _read_params(base, None, seen + (base,))
    else:
        merged = {}
    for section, values in data.items():
        if section not in STEPS and section != "common":
            hint = _did_you_mean(section, ["common", *STEPS])
            raise ParamsError(p, str(section), "unknown section",
                              (hint + " " if hint else "") + f"sections are: common, {', '.join(STEPS)}")
        if values is None:
            values = {}
        if not isinstance(values, dict):
            raise ParamsError(p, str(section), f"expected 'key: value' lines, got {values!r}",
                              f"write e.g. '{section}:' then indented 'name: value' lines, or '{section}: {{}}'")
        merged[section] = {**(merged.get(section) or {}), **values}
        origin.update({(section, k): p for k in values})
    return merged, origin


def load_params(profile: str | None = None, params_file: str | Path | None = None) -> dict:
    """Read a parameter file: ``{"common": {...}, "<step>": {...}}``.

    A file may start with ``extends: <profile>``: it then holds only the keys it changes in that
    profile (e.g. ``paper-fixture.yaml`` = ``paper.yaml`` with tiny sizes). Raises
    :class:`ParamsError` for a missing file, invalid YAML, an unknown section or no profile.
    """
    data, _ = _load_with_origin(profile, params_file)
    return data


def _load_with_origin(profile, params_file) -> tuple[dict, dict]:
    data, origin = _read_params(profile, params_file)
    data.setdefault("common", {})
    if profile and "profile" not in data["common"]:
        data["common"]["profile"] = profile
    name = data["common"].get("profile")
    file = Path(params_file) if params_file else paths.params_file(profile)
    if name is None:
        raise ParamsError(file, "common.profile", "no profile named (it decides where outputs go: runs/<profile>/)",
                          f"add 'extends: <profile>' ({', '.join(_known_profiles())}) or 'common: {{profile: my_name}}'")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ParamsError(origin.get(("common", "profile"), file), "common.profile",
                          f"{name!r} is not a usable profile name", "use letters, digits, '-', '_' or '.'")
    return data, origin


def step_parameters(params: dict, step: str) -> dict:
    """The papermill parameters of one step: ``common`` overlaid by the step's own section."""
    return {**params.get("common", {}), **(params.get(step) or {})}


#: Integer parameters that count something and must be at least 1 (by name).
_COUNT_PREFIXES = ("n_",)
_COUNT_SUFFIXES = ("_steps", "_epochs", "_size", "_every", "stride", "_frames", "_fps", "_bins", "_states",
                   "_traj", "_restarts", "_lags", "_kernels", "_blocks", "_sets")
_COUNT_NAMES = {"lag", "patience", "hidden"}
_MAY_BE_ZERO = {"discard_steps", "event_pad", "seed"}


#: A parameter's help comment that gives 0 a meaning ("0: no reference", "0 is the paper").
_ZERO_MEANS = re.compile(r"(^|[^\w.])0\s*(:|=|is\b|means\b)")


def _is_count(name: str, help_text: str = "") -> bool:
    """Whether an integer parameter counts something, so that it must be >= 1 (0 allowed when its help says what 0 means)."""
    if name in _MAY_BE_ZERO or _ZERO_MEANS.search(help_text or ""):
        return False
    return name in _COUNT_NAMES or name.startswith(_COUNT_PREFIXES) or name.endswith(_COUNT_SUFFIXES)


def _yaml_number_hint(value) -> str:
    """For text that looks like a number (PyYAML reads ``1e6`` and ``1e-3`` as text)."""
    if isinstance(value, str):
        try:
            x = float(value.replace("_", ""))
        except ValueError:
            return ""
        plain = str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)
        return f" (YAML reads {value} as text: write {plain})"
    return ""


def _check_value(name: str, value, annotation: str, help_text: str = "") -> tuple[str, str] | None:
    """``(problem, fix)`` when ``value`` does not fit the notebook's annotation or obvious range, else None.

    Checked: the annotated type (``int``, ``float``, ``bool``, ``str``, ``list``, ``Optional[...]``);
    integers >= 0, and >= 1 for counts (:func:`_is_count`); learning rates, temperatures and times
    > 0; fractions in [0, 1]. Anything subtler is the notebook's to check.
    """
    ann = annotation.replace(" ", "")
    optional = ann.startswith("Optional[") or ann.endswith("|None") or ann.startswith("None|")
    base = ann[len("Optional["):-1] if ann.startswith("Optional[") else ann.replace("|None", "").replace("None|", "")
    base = base.split("[")[0].lower()
    if value is None:
        return None if optional else (f"null is not allowed (the notebook declares {annotation})",
                                      "give a value or delete the line to keep the notebook's default")
    count = _is_count(name, help_text)
    if base == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return f"{value!r} is a float, the notebook declares int", f"write {int(value)}"
            return (f"{value!r} is {type(value).__name__}, the notebook declares int{_yaml_number_hint(value)}",
                    "give a whole number")
        lo = 1 if count else 0
        if value < lo:
            return f"{value} is out of range", f"give a whole number >= {lo}" + (" (it counts something)" if count else "")
    elif base == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return (f"{value!r} is {type(value).__name__}, the notebook declares float{_yaml_number_hint(value)}",
                    "give a number")
        if not math.isfinite(value):
            return f"{value} is not finite", "give a finite number"
        if name == "lr" or name.endswith(("_lr", "temperature", "_ps")):
            if value <= 0:
                return f"{value} is out of range", "give a number > 0"
        if name.endswith("_fraction") and not 0 <= value <= 1:
            return f"{value} is out of range", "give a fraction between 0 and 1"
    elif base == "bool":
        if not isinstance(value, bool):
            return f"{value!r} is {type(value).__name__}, the notebook declares bool", "write true or false"
    elif base == "str":
        if not isinstance(value, str):
            return f"{value!r} is {type(value).__name__}, the notebook declares str", "quote it: \"...\""
    elif base == "list":
        if not isinstance(value, list):
            return f"{value!r} is {type(value).__name__}, the notebook declares a list", "write [a, b, ...]"
        if count or name == "modes":
            lo = 1 if count else 0
            bad = [v for v in value if isinstance(v, bool) or not isinstance(v, int) or v < lo]
            if bad:
                return f"{bad} in {value} are not whole numbers >= {lo}", f"give whole numbers >= {lo}"
    return None


def check_parameters(step: str, parameters: dict, origin: dict | None = None,
                     params_file: str | Path | None = None) -> None:
    """Refuse parameters the notebook's ``parameters`` cell does not declare (a typo) or whose value does
    not fit the declared type (``n_steps: int``) or an obvious range (counts >= 1); raises :class:`ParamsError`.
    """
    import papermill as pm

    nb = paths.notebooks_dir() / f"{step}.ipynb"
    declared = pm.inspect_notebook(str(nb))
    origin = origin or {}

    def where(key):  # the file and section.key a value came from
        sec = step if (step, key) in origin else "common"
        f = origin.get((sec, key)) or params_file or paths.params_file(str(parameters.get("profile", "?")))
        return f, f"{sec}.{key}"

    for key in parameters:
        if key not in declared:
            f, k = where(key)
            hint = _did_you_mean(key, declared)
            raise ParamsError(f, k, f"not a parameter of notebooks/{step}.ipynb",
                              (hint + " " if hint else "") + f"its parameters: {', '.join(declared)}")
    for key, value in parameters.items():
        bad = _check_value(key, value, declared[key].get("inferred_type_name") or "", declared[key].get("help") or "")
        if bad:
            f, k = where(key)
            raise ParamsError(f, k, bad[0], bad[1])


def validate(params: dict, steps: list[str], origin: dict | None = None, params_file=None) -> None:
    """Check every step's parameters before anything runs (a typo in 07 must not wait for 01-06)."""
    for step in steps:
        check_parameters(step, step_parameters(params, step), origin, params_file)


#: Set for the notebooks the runner executes: the profile whose committed file it runs
#: (``lss.paths.figures_dir`` publishes to ``figures/`` only for the cpu profile run this way).
PUBLISH_ENV = paths.PUBLISH_ENV

#: Set (to "1") by the runner for the notebooks it executes: :func:`apply_profile` then does nothing,
#: the runner having injected the profile's parameters already.
RUNNER_ENV = "LSS_RUNNER"

#: The profile of every notebook run by hand (JupyterLab, a hosted runtime), set once instead of in each
#: notebook's parameters cell: ``LSS_PROFILE=class jupyter lab``.
PROFILE_ENV = "LSS_PROFILE"


def upstream(step: str) -> list[str]:
    """Every step ``step`` needs, directly or through others, in run order (``step`` itself last)."""
    need, todo = set(), [step]
    while todo:
        s = todo.pop()
        if s not in need:
            need.add(s)
            todo.extend(STEPS.get(s, []))
    return [s for s in STEPS if s in need]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (a notebook's traceback carries them)."""
    return _ANSI.sub("", text)


def _kernel_config():
    """Kernel-manager settings for papermill: an encrypted (CurveZMQ) or local-socket (IPC) transport.

    ipykernel warns "Kernel is running over TCP without encryption" once per kernel otherwise (the
    runner would print it once per notebook). Where jupyter_client has
    ``KernelManager.transport_encryption``, libzmq has Curve and the kernelspec declares
    ``supported_encryption: curve`` (ipykernel's does), the manager provisions CurveZMQ keys
    (``"auto"``); else, on POSIX, the kernel listens on Unix sockets (IPC), which never leave the machine.
    """
    from traitlets.config import Config

    c = Config()
    try:
        import zmq
        from jupyter_client.kernelspec import KernelSpecManager
        from jupyter_client.manager import KernelManager

        spec = KernelSpecManager().get_kernel_spec("python3")
        declared = spec.metadata.get("supported_encryption") or []
        declared = [declared] if isinstance(declared, str) else declared
        if ("transport_encryption" in KernelManager.class_trait_names() and zmq.has("curve")
                and "curve" in [str(x).lower() for x in declared]):
            c.KernelManager.transport_encryption = "auto"
            return c
    except Exception:  # noqa: BLE001 - any doubt: the IPC transport below
        pass
    if os.name == "posix":
        c.KernelManager.transport = "ipc"
    return c


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


#: threads per notebook kernel for every run (the runner, and kernels in JupyterLab through lss.notebook.Step)
THREADS_ENV = "LSS_THREADS"


def _env_threads() -> int:
    """``LSS_THREADS`` as a whole number >= 1, or a ParamsError saying what is wrong with it."""
    v = os.environ.get(THREADS_ENV, "")
    if not v.strip().isdigit() or int(v) < 1:
        raise ParamsError(THREADS_ENV, None, f"{v!r} is not a thread count", "set it to a whole number >= 1, e.g. 1")
    return int(v)


def run(profile: str | None = None, params_file: str | None = None, only: list[str] | None = None,
        force: bool = False, log=print, threads: int | None = None) -> dict[str, float]:
    """Run the profile's notebooks; return ``{step: seconds}`` of the steps that ran.

    ``threads``: when given (or set by the ``LSS_THREADS`` environment variable), the notebooks' kernels run with ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``
    set to it (PyTorch's intra-op threads). On cores that other processes share, 1 is faster: measured
    for one cWGAN epoch of notebook 05, 2.4 s on 2 free cores, 10.1 s with 2 threads and one core busy,
    1.9 s with 1 thread and one core busy. None (default) leaves the environment as it is.

    Raises :class:`ParamsError` (before running anything) for a bad parameter file or ``only``;
    ``SystemExit(1)`` when a notebook fails.
    """
    import papermill as pm

    params, origin = _load_with_origin(profile, params_file)
    profile = params["common"]["profile"]
    steps = available_steps()
    if only:
        bad = [o for o in only if o not in steps]
        if bad:
            raise ParamsError("--only", None, f"no notebook {', '.join(map(repr, bad))}",
                              f"use one of: {', '.join(steps)}")
    validate(params, steps, origin, params_file)
    # figures/ is written only by the committed cpu profile run here (paths.figures_dir)
    committed = params_file is None or Path(params_file).resolve() == paths.params_file(profile).resolve()
    publish = profile if (committed and profile == paths.PUBLISHED_PROFILE) else ""
    if threads is None and os.environ.get(THREADS_ENV):
        threads = _env_threads()
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ParamsError("--threads", None, f"{threads!r} is not a thread count", "give a whole number >= 1")
    thread_vars = ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if threads else ()
    saved_env = {k: os.environ.get(k) for k in (PUBLISH_ENV, RUNNER_ENV, *thread_vars)}
    os.environ[PUBLISH_ENV] = publish
    os.environ[RUNNER_ENV] = "1"     # the notebooks' apply_profile leaves the injected parameters alone
    for k in thread_vars:            # inherited by the kernels papermill starts
        os.environ[k] = str(threads)
    try:
        return _run_steps(pm, params, profile, steps, only, force, log, timed=committed,
                          prefetch=_prefetch_wanted(threads, only, steps), params_file=params_file)
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _prefetch_wanted(threads, only, steps) -> bool:
    """One torch thread per kernel on >= 2 cores leaves a core free: notebook 07's reference is simulated on
    it meanwhile, when 07 is part of the run."""
    return (threads == 1 and (os.cpu_count() or 1) >= 2 and {"02_trpcage_data", "07_analysis"} <= set(steps)
            and (not only or "07_analysis" in only))


def _run_steps(pm, params, profile, steps, only, force, log, timed: bool = False, prefetch: bool = False,
               params_file=None) -> dict[str, float]:
    """Run ``steps`` in order (see :func:`run`). ``prefetch``: simulate notebook 07's reference in a background
    process (:func:`prefetch_reference`, with ``params_file``) once 02 is done and a notebook before 07 runs."""
    background: list = []

    def start_background(i: int) -> None:
        """Before step ``i`` runs: a notebook between 02 and 07 on one core, 07's reference on the other."""
        if (prefetch and not background and steps.index("02_trpcage_data") < i < steps.index("07_analysis")
                and (paths.run_dir(profile, "02_trpcage_data") / "dataset.json").exists()):
            background.append(_start_prefetch(profile, params_file, log))

    try:
        return _run_steps_in_order(pm, params, profile, steps, only, force, log, timed, start_background)
    finally:
        for proc in background:          # stopped (a failure, Ctrl-C) or finished: leave no simulation behind
            if proc.poll() is None:
                proc.terminate()


def _start_prefetch(profile: str, params_file, log) -> "subprocess.Popen":
    import subprocess

    cmd = [sys.executable, "-m", "lss.reproduce", "--prefetch-reference"]
    cmd += ["--params", str(params_file)] if params_file else ["--profile", profile]
    log(f"[{profile}] 07_analysis's reference: simulating in the background on the free core "
        f"(log: runs/{profile}/reference_prefetch.log)")
    with open(paths.run_dir(profile) / "reference_prefetch.log", "w") as logf:   # the child keeps its own handle
        return subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=str(paths.root()))


def _run_steps_in_order(pm, params, profile, steps, only, force, log, timed, start_background):
    out_dir = paths.run_dir(profile, "executed")
    keys: dict[str, str] = {}
    durations: dict[str, float] = {}
    kernel_config = _kernel_config()
    t_run = time.perf_counter()
    for i, step in enumerate(steps):
        parameters = step_parameters(params, step)
        key = cache_key(profile, step, parameters, keys)
        keys[step] = key
        if only and step not in only:
            continue
        if not force and is_cached(profile, step, key):
            log(f"[{profile}] {step}: cached, skipped")
            continue
        start_background(i)
        remaining = _estimate_remaining(profile, steps[i:], only)
        log(f"[{profile}] {step}: running" + (f" (estimated time left for this run: {_fmt_s(remaining)})"
                                              if remaining else ""))
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(paths.notebooks_dir() / f"{step}.ipynb"), str(out_dir / f"{step}.ipynb"),
                                parameters=parameters, kernel_name="python3", cwd=str(paths.notebooks_dir()),
                                progress_bar=sys.stderr.isatty(), log_output=False, config=kernel_config)
        except KeyboardInterrupt:
            done = [s for s in steps[:i] if _state_path(profile, s).exists()]
            log(f"[{profile}] {step}: interrupted after {_fmt_s(time.perf_counter() - t0)} (Ctrl-C); the steps before it are "
                f"kept ({', '.join(done) or 'none'}). Resume with: python -m lss.reproduce --profile {profile}")
            raise SystemExit(130) from None
        except pm.PapermillExecutionError as e:
            log(f"[{profile}] {step}: FAILED after {_fmt_s(time.perf_counter() - t0)} "
                f"(executed notebook: {out_dir / (step + '.ipynb')})")
            last = strip_ansi(f"{e.ename}: {e.evalue}")
            tb = [ln for ln in strip_ansi("".join(e.traceback[-8:]) if e.traceback else "").rstrip().splitlines()]
            while tb and tb[-1].strip() in (last.strip(), ""):
                tb.pop()
            if tb:
                log("\n".join(tb))
            log(last)   # last: the line a reader looks for
            raise SystemExit(1) from None
        dt = time.perf_counter() - t0
        durations[step] = dt
        _state_path(profile, step).write_text(json.dumps(
            {"key": key, "outputs": _outputs(profile, step), "seconds": dt, "parameters": parameters}, indent=1))
        if timed:
            record_runtime(profile, step, dt)
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


# --------------------------------------------------------------------------------------------------
# Interactive use: a profile picked in JupyterLab by editing one line
# --------------------------------------------------------------------------------------------------

def notebook_defaults(step: str) -> dict:
    """The literal values of a notebook's ``parameters`` cell as saved on disk (the smoke defaults).

    Returns ``{name: value}`` for every ``name: type = literal`` (or ``name = literal``) line.
    """
    import ast

    nb = json.loads((paths.notebooks_dir() / f"{step}.ipynb").read_text())
    cell = next((c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return {}
    src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    out = {}
    for node in ast.parse(src).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None)
        if isinstance(target, ast.Name) and getattr(node, "value", None) is not None:
            try:
                out[target.id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return out


def apply_profile(namespace: dict, step: str, log=print) -> dict:
    """Give an interactively run notebook the parameters of the profile named in its ``profile`` line.

    papermill injects a profile's parameters only in batch runs; a reader in JupyterLab who edits
    ``profile = "class"`` in the parameters cell would otherwise run the smoke sizes under the
    class label. Called in the cell after the parameters cell::

        reproduce.apply_profile(globals(), NB)

    it reads ``params/<profile>.yaml`` (``common`` + the notebook's section, as the runner does) and
    sets those variables in ``namespace``, printing each change. Rules:

    * a notebook whose profile line still reads ``"smoke"`` takes ``LSS_PROFILE`` from the environment
      when it is set (the profile set once for all notebooks);
    * nothing happens under the runner (``LSS_RUNNER`` set: it injected the parameters), for
      ``profile = "smoke"`` (the defaults already are the smoke profile), or when there is no
      ``params/<profile>.yaml`` (a label of one's own; said so);
    * a variable whose value differs from the notebook's saved default was set by hand (or injected
      by papermill, ``-p n_epochs 5``) and wins: it is kept, and reported as kept;
    * values are checked as the runner checks them (:func:`check_parameters`).

    Parameters
    ----------
    namespace : dict
        The notebook's ``globals()``; changed in place.
    step : str
        The notebook, e.g. ``"05_cwgan"``.
    log : callable
        Where the one-line report goes (``print``).

    Returns
    -------
    dict
        ``{name: (old, new)}`` of the variables changed.
    """
    env_profile = os.environ.get(PROFILE_ENV)
    if env_profile and not os.environ.get(RUNNER_ENV) and namespace.get("profile") == "smoke":
        namespace["profile"] = env_profile     # set once for every notebook; an edited profile line wins
        log(f"profile {env_profile!r} from the environment ({PROFILE_ENV})")
    profile = namespace.get("profile")
    if os.environ.get(RUNNER_ENV) or not isinstance(profile, str) or profile == "smoke":
        return {}
    if not paths.params_file(profile).exists():
        log(f"profile {profile!r}: no params/{profile}.yaml, so the values of the parameters cell are used as they are "
            f"(profiles: {', '.join(_known_profiles())})")
        return {}
    params = step_parameters(load_params(profile), step)
    check_parameters(step, params)
    defaults = notebook_defaults(step)
    changed, kept = {}, {}
    for name, value in params.items():
        if name == "profile" or name not in namespace:
            continue
        current = namespace[name]
        if current == value:
            continue
        if name in defaults and current != defaults[name]:
            kept[name] = (current, value)      # set by hand or by papermill: it wins
            continue
        namespace[name] = value
        changed[name] = (current, value)
    msg = f"profile {profile!r}: params/{profile}.yaml sets " + (
        ", ".join(f"{k} = {v[1]!r}" for k, v in changed.items()) if changed else "nothing new")
    if kept:
        msg += "; kept as set here: " + ", ".join(f"{k} = {v[0]!r} (profile: {v[1]!r})" for k, v in kept.items())
    log(msg)
    return changed


# --------------------------------------------------------------------------------------------------
# Measured run times, written by the runner, shown at the top of each notebook
# --------------------------------------------------------------------------------------------------

#: Profiles whose measured run times the runner keeps in ``notebooks/runtimes.json`` (committed).
TIMED_PROFILES = ("class", "cpu", "paper")


def runtimes_file() -> Path:
    return paths.notebooks_dir() / "runtimes.json"


def load_runtimes() -> dict:
    """``{step: {profile: {"seconds", "date", "cpu_count", "load_1min"}}}`` as the runner last measured them."""
    f = runtimes_file()
    return json.loads(f.read_text()) if f.exists() else {}


def record_runtime(profile: str, step: str, seconds: float) -> None:
    """Store one notebook's measured wall time (s) for ``profile`` in ``notebooks/runtimes.json``.

    Called by :func:`run` after each notebook it executes from a committed profile in
    :data:`TIMED_PROFILES` (a test run or a hand-made parameter file does not touch the file).
    """
    if profile not in TIMED_PROFILES:
        return
    import datetime as _dt

    data = load_runtimes()
    load = load_average()[0]
    load = None if load != load else load            # NaN (no load average on Windows): None
    data.setdefault(step, {})[profile] = {"seconds": round(float(seconds), 1), "cpu_count": os.cpu_count(),
                                          "load_1min": None if load is None else round(load, 1),
                                          "date": _dt.date.today().isoformat(),
                                          "threads": int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS", "").isdigit() else None}
    runtimes_file().write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def runtime_note(step: str):
    """The measured run time of ``step`` per profile, as a Markdown line for the notebook's first cell.

    Returns an ``IPython.display.Markdown`` (a plain string where IPython is absent), e.g.
    "Measured run time (whole notebook, by the runner): class 48 s · cpu 3.1 min; 2 cores, 2026-12-01".
    """
    times = load_runtimes().get(step, {})
    order = [p for p in TIMED_PROFILES if p in times] + sorted(p for p in times if p not in TIMED_PROFILES)
    if order:
        parts = [f"**{p}** {_fmt_s(times[p]['seconds'])}" for p in order]
        cores = sorted({str(times[p].get("cpu_count")) for p in order})
        dates = sorted({times[p].get("date", "?") for p in order})
        text = (f"Measured run time of this notebook (by the runner, `python -m lss.reproduce`): "
                f"{' · '.join(parts)} — on {'/'.join(cores)} CPU cores, {dates[-1]}. "
                "The smoke defaults take seconds.")
    else:
        text = "No measured run time yet: `python -m lss.reproduce --profile class` records it."
    try:
        from IPython.display import Markdown
        return Markdown(text)
    except ImportError:  # pragma: no cover
        return text


def _cell_durations(profile: str) -> list[tuple[str, int, float, str]]:
    """``(notebook, cell index, wall s, first code line)`` of every timed code cell of the profile's last
    run, from papermill's ``metadata.papermill.duration`` in ``runs/<profile>/executed/*.ipynb``."""
    rows = []
    for f in sorted(paths.run_dir(profile, "executed").glob("[0-9][0-9]_*.ipynb")):
        for k, c in enumerate(json.loads(f.read_text())["cells"]):
            dt = (c.get("metadata", {}).get("papermill", {}) or {}).get("duration")
            if c["cell_type"] == "code" and dt:
                src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
                first = next((ln.strip() for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")), "")
                rows.append((f.stem, k, float(dt), first[:70]))
    return rows


def cell_costs(profile: str, n: int = 15) -> list[tuple[float, str, int, str]]:
    """Where a profile's run spent its time: the ``n`` slowest cells of its executed notebooks.

    Returns ``(seconds, notebook, cell index, first code line)``, slowest first
    (``python -m lss.reproduce --profile cpu --costs`` prints them with each notebook's total).
    """
    return sorted(((dt, nb, k, first) for nb, k, dt, first in _cell_durations(profile)), reverse=True)[:n]


def _print_costs(profile: str, n: int = 15) -> None:
    rows = _cell_durations(profile)
    if not rows:
        print(f"no executed notebooks in runs/{profile}/executed: run the profile first")
        return
    totals: dict[str, float] = {}
    for nb, _, dt, _ in rows:
        totals[nb] = totals.get(nb, 0.0) + dt
    print(f"{profile}: {sum(totals.values()) / 60:.1f} min in the notebooks' cells")
    for k, v in totals.items():
        print(f"  {k:24s} {v:7.1f} s")
    print(f"the {n} slowest cells:")
    for dt, nb, k, first in cell_costs(profile, n):
        print(f"  {dt:7.1f} s  {nb} cell {k}: {first}")


def prefetch_reference(profile: str | None = None, params_file: str | None = None) -> None:
    """Simulate notebook 07's converged reference into the data cache, in one process (the runner starts
    this in the background once 02 is done, when its kernels use one thread each and a core is free).

    Reads 07's ``reference_*`` parameters for the profile and 02's dataset metadata; does nothing for
    DESRES data or ``reference_steps = 0``. Notebook 07 later reads the cache, or waits for this process
    (:func:`lss.data.simulate_go_cached`).
    """
    from . import compare, data

    params, _ = _load_with_origin(profile, params_file)
    profile = params["common"]["profile"]
    p7 = notebook_defaults("07_analysis") | step_parameters(params, "07_analysis")
    ds_json = paths.run_dir(profile, "02_trpcage_data") / "dataset.json"
    meta = json.loads(ds_json.read_text())["meta"]
    if not p7.get("reference_steps") or meta.get("source") != "go":
        print("no Go-model reference to simulate")
        return
    req = compare.reference_request(meta["simulation"], int(p7["reference_traj"]), int(p7["reference_steps"]),
                                    int(p7["reference_seed"]))
    t0 = time.perf_counter()
    d, _, cached = data.simulate_go_cached(**req, n_jobs=1)
    print(f"{'cached already' if cached else 'simulated'}: {d} ({time.perf_counter() - t0:.0f} s)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lss.reproduce", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default=None, help="params/<profile>.yaml (smoke, cpu, paper, ...)")
    ap.add_argument("--params", default=None, help="a parameter file instead of params/<profile>.yaml")
    ap.add_argument("--only", action="append", help="run only this notebook step (repeatable), e.g. 03_srv")
    ap.add_argument("--force", action="store_true", help="rerun steps even when their cache is valid")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch/OpenMP threads per notebook kernel (1 is faster on cores other work shares)")
    ap.add_argument("--costs", action="store_true",
                    help="print where the profile's last run spent its time (per notebook, slowest cells); run nothing")
    ap.add_argument("--prefetch-reference", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if not a.profile and not a.params:
        ap.error("give --profile or --params")
    if a.prefetch_reference:
        prefetch_reference(a.profile, a.params)
        return 0
    if a.costs:
        _print_costs(a.profile or load_params(params_file=a.params)["common"]["profile"])
        return 0
    only = [o.removesuffix(".ipynb").split("/")[-1] for o in a.only] if a.only else None
    try:
        run(a.profile, a.params, only, a.force, threads=a.threads)
    except KeyboardInterrupt:        # between steps (a step's own interruption says which step)
        print("interrupted (Ctrl-C); finished steps are kept: run the same command again to resume", file=sys.stderr)
        return 130
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
