"""Exercises that check themselves: predict, measure, check.

Each exercise is declared once, in ``lss/resources/exercises/<notebook>.yaml``: its question, what to
measure, a solution (a few lines of code run in the notebook's namespace, in memory, writing no file), a
tolerance and the answer measured on the class profile. The notebook's exercise cell (tagged
``exercise``) is a skeleton the student fills in::

    prediction = ...      # your guess first, a number
    measured = ...        # then measure it (hints in the cell)
    step.exercise("01.1", prediction, measured)

:meth:`lss.notebook.Step.exercise` prints whether the measurement agrees with the solution's, run on the
same data with the same seed, and how far the prediction was; it returns ``True`` or ``False``. The
skeleton as shipped fails (nothing filled in), the solution passes, a value outside the tolerance fails.
``step.solution("01.1")`` prints the solution's code.

With ``LSS_CHECK_EXERCISES=1`` in the environment (the test run's nbval kernels) every exercise cell
also checks itself: the shipped skeleton must fail, the solution must pass, a value just outside the
tolerance must fail, and so must the exercise's typical mistake (``mistake``: e.g. the unchanged
parameter's value).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SELF_CHECK_ENV = "LSS_CHECK_EXERCISES"
_DIR = Path(__file__).parent / "resources" / "exercises"


@dataclass(frozen=True)
class Exercise:
    """One exercise, as declared in its notebook's YAML file.

    Attributes
    ----------
    id : str
        ``"<notebook number>.<k>"``, e.g. ``"01.1"``.
    notebook : str
        The notebook's stem.
    title, measure, unit : str
        A short title; what ``measured`` is (a sentence); its unit ("" for a pure number).
    solution : str
        Code run in a copy of the notebook's namespace; it sets ``measured``.
    rel, abs : float
        The measurement agrees when ``|measured - solution| <= abs + rel * |solution|``.
    mistake : str
        An expression in the notebook's namespace: the value a typical wrong answer gives (e.g. the
        unchanged parameter's): the test run asserts that it fails the check ("" for none).
    class_answer : str
        The answer measured on the class profile (``notebooks/INSTRUCTORS.md`` says how).
    """

    id: str
    notebook: str
    title: str
    measure: str
    unit: str
    solution: str
    rel: float = 0.0
    abs: float = 0.0
    mistake: str = ""
    class_answer: str = ""

    def tolerance(self, reference: float) -> float:
        return self.abs + self.rel * abs(reference)


@lru_cache(maxsize=None)
def catalog() -> dict[str, Exercise]:
    """Every exercise of every notebook, by id."""
    import yaml

    out = {}
    for f in sorted(_DIR.glob("*.yaml")):
        for ex_id, d in (yaml.safe_load(f.read_text()) or {}).items():
            if ex_id in out:
                raise ValueError(f"exercise {ex_id} is declared twice ({f.name})")
            out[str(ex_id)] = Exercise(id=str(ex_id), notebook=f.stem, **d)
    return out


def get(ex_id: str) -> Exercise:
    """The exercise ``ex_id``, or a ``KeyError`` naming the ones there are."""
    try:
        return catalog()[ex_id]
    except KeyError:
        raise KeyError(f"no exercise {ex_id!r}; there are {', '.join(catalog())}") from None


def number(value) -> float | None:
    """``value`` as a float, or None when it is not filled in (``...``, None) or not a finite number."""
    if value is Ellipsis or value is None or isinstance(value, (str, bytes, bool)):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def solve(ex: Exercise, namespace: dict) -> float:
    """Run the solution in a copy of ``namespace`` (in memory: it writes no file) and return ``measured``."""
    ns = dict(namespace)
    exec(compile(ex.solution, f"<solution {ex.id}>", "exec"), ns)
    value = number(ns.get("measured"))
    if value is None:
        raise RuntimeError(f"the solution of exercise {ex.id} did not set a number `measured`")
    return value


@dataclass
class Result:
    """What :func:`check` found: ``passed`` and the lines it prints."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message


def check(ex: Exercise, prediction, measured, reference: float | None) -> Result:
    """Judge a student's answer against the solution's value ``reference``.

    Parameters
    ----------
    ex : Exercise
    prediction, measured : float or ``...``
        The student's guess (any number: it is compared, not judged) and measurement.
    reference : float or None
        The solution's value on the same data (None: not computed because nothing is filled in).

    Returns
    -------
    Result
        Passed when a prediction is written down and the measurement agrees with the reference within
        the exercise's tolerance.
    """
    head = f"exercise {ex.id} ({ex.title})"
    p, m = number(prediction), number(measured)
    unit = f" {ex.unit}" if ex.unit else ""
    if p is None:
        return Result(False, f"✗ {head}: write your prediction first (a number: {ex.measure})")
    if m is None:
        return Result(False, f"✗ {head}: prediction {p:g}{unit} noted; now measure it and set `measured` "
                             f"({ex.measure})")
    if reference is None:
        raise ValueError("a filled-in answer needs the solution's value to be compared with")
    tol = ex.tolerance(reference)
    ok = abs(m - reference) <= tol
    guess = (f"you predicted {p:g}{unit}" + (f" ({p / reference:.2g}x the measured value)" if reference else ""))
    if ok:
        msg = f"✓ {head}: measured {m:.4g}{unit}, as the solution ({reference:.4g}{unit}); {guess}."
    else:
        msg = (f"✗ {head}: your measurement {m:.4g}{unit} differs from the solution's {reference:.4g}{unit} by more "
               f"than {tol:.2g}{unit}: check what you changed (step.solution({ex.id!r}) shows one way); {guess}.")
    if ex.class_answer:
        msg += f"\n  On the class profile: {ex.class_answer.strip()}"
    return Result(ok, msg)


def self_check(ex: Exercise, prediction, measured, namespace: dict, reference: float) -> str:
    """The test run's check of one exercise cell (``LSS_CHECK_EXERCISES=1``): raises ``AssertionError``.

    The cell as shipped must fail; the solution's value must pass; a value 1.5 tolerances (or one unit, for
    an exact answer) beyond it must fail, and so must the typical mistake, when declared. Returns a line saying so.
    """
    assert not check(ex, prediction, measured, None if number(measured) is None else reference), \
        f"exercise {ex.id}: the skeleton as shipped passes its check"
    assert check(ex, reference, reference, reference), f"exercise {ex.id}: its solution fails its own check"
    off = reference + max(1.5 * ex.tolerance(reference), 1.0 if ex.tolerance(reference) == 0 else 0.0)
    assert not check(ex, reference, off, reference), f"exercise {ex.id}: a value outside the tolerance passes"
    if not ex.mistake:
        return f"self-check {ex.id}: skeleton fails, solution {reference:.4g} passes, {off:.4g} fails"
    wrong = number(eval(ex.mistake, dict(namespace)))
    assert wrong is not None and not check(ex, reference, wrong, reference), \
        f"exercise {ex.id}: the typical mistake ({ex.mistake} = {wrong}) passes the check against {reference:.4g}"
    return (f"self-check {ex.id}: skeleton fails, solution {reference:.4g} passes, {off:.4g} fails, the typical "
            f"mistake ({ex.mistake} = {wrong:.4g}) fails")


def self_checking() -> bool:
    """Whether exercise cells check themselves: ``LSS_CHECK_EXERCISES=1`` (set by the test run for nbval's
    kernels), and not under the runner (``python -m lss.reproduce``: the main job, other profiles whose
    data the exercises were not calibrated on, a cold notebook's catch-up)."""
    from .reproduce import RUNNER_ENV

    return os.environ.get(SELF_CHECK_ENV, "") not in ("", "0") and not os.environ.get(RUNNER_ENV)
