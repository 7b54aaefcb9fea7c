"""Exercises that check themselves (lss.exercises): the check's logic, and every notebook's exercises.

The solutions themselves run in the notebooks' nbval run (``notebooks/conftest.py`` sets
``LSS_CHECK_EXERCISES=1``): there each shipped skeleton must fail, its solution pass, and a value
outside the tolerance and the typical mistake fail, on the notebook's own (smoke) data.
"""
import json
import re

import pytest

from lss import exercises, paths
from lss.exercises import Exercise, check, solve

NOTEBOOKS = sorted(paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
TOY = Exercise(id="00.1", notebook="00_toy", title="toy", measure="twice x", unit="nm",
               solution="measured = 2 * x", rel=0.1, abs=0.0, mistake="x", class_answer="4 nm")


def test_the_skeleton_fails_the_solution_passes_a_wrong_answer_fails():
    ns = {"x": 2.0}
    ref = solve(TOY, ns)
    assert ref == 4.0 and "measured" not in ns, "the solution runs in a copy of the namespace"
    assert not check(TOY, ..., ..., None)                      # as shipped
    assert "prediction first" in check(TOY, ..., 4.0, ref).message
    assert not check(TOY, 3.0, ..., None)                      # predicted, not measured
    assert check(TOY, 3.0, 4.0, ref) and check(TOY, 1e6, 4.3, ref), "any prediction, a measurement within 10 %"
    assert not check(TOY, 3.0, 4.5, ref) and not check(TOY, 3.0, 2.0, ref)
    assert not check(TOY, 3.0, float("nan"), ref) and not check(TOY, 3.0, "4", ref)
    assert "4 nm" in check(TOY, 3.0, 4.0, ref).message, "the class profile's answer is printed"


def test_an_exact_answer_has_no_tolerance_and_the_self_check_catches_a_lenient_one():
    ex = Exercise(id="00.2", notebook="00_toy", title="count", measure="m", unit="", solution="measured = 3",
                  mistake="2")
    assert check(ex, 1, 3, 3.0) and not check(ex, 1, 4, 3.0)
    assert "mistake" in exercises.self_check(ex, ..., ..., {}, 3.0)
    lenient = Exercise(id="00.3", notebook="00_toy", title="count", measure="m", unit="", solution="measured = 3",
                       abs=1.5, mistake="2")
    with pytest.raises(AssertionError, match="typical mistake"):
        exercises.self_check(lenient, ..., ..., {}, 3.0)
    with pytest.raises(AssertionError, match="skeleton as shipped passes"):
        exercises.self_check(ex, 1, 3, {}, 3.0)


def test_a_skeleton_costs_nothing_the_solution_runs_only_for_an_answer(monkeypatch, tmp_path):
    """Step.exercise runs the solution once, and only when something is filled in (or under the self-check)."""
    from lss import notebook

    monkeypatch.delenv(exercises.SELF_CHECK_ENV, raising=False)
    runs = []
    ex = Exercise(id="00.4", notebook="00_toy", title="t", measure="m", unit="", solution="runs.append(1); measured = 5")
    monkeypatch.setattr(exercises, "get", lambda i: ex)
    step = notebook.Step.__new__(notebook.Step)
    step._namespace, step._solutions, step.exercises = {"runs": runs}, {}, {}
    step.exercise("00.4", ..., ...)
    assert step.exercises == {"00.4": False} and runs == []
    step.exercise("00.4", 1, 5)
    assert step.exercises["00.4"] is True and runs == [1]
    step.exercise("00.4", 1, 6)
    assert step.exercises["00.4"] is False and runs == [1], "the solution ran once"


def test_a_solution_that_sets_no_number_is_an_error():
    bad = Exercise(id="00.5", notebook="00_toy", title="t", measure="m", unit="", solution="measured = ...")
    with pytest.raises(RuntimeError, match="did not set a number"):
        solve(bad, {})


def _exercise_cells(nb):
    return [c for c in json.loads(nb.read_text())["cells"]
            if c["cell_type"] == "code" and "exercise" in c["metadata"].get("tags", [])]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_has_checked_exercises_declared_once(nb):
    """>= 2 skeletons per notebook, each a few lines with `...` to fill in, each id declared in its YAML."""
    cells = _exercise_cells(nb)
    assert len(cells) >= 2, f"{nb.stem}: fewer than 2 exercises"
    ids = []
    for c in cells:
        src = "".join(c["source"])
        found = re.findall(r'step\.exercise\("([0-9.]+)", prediction, measured\)', src)
        assert len(found) == 1, src
        assert re.search(r"^prediction = \.\.\.", src, re.M) and re.search(r"^measured = \.\.\.", src, re.M), src
        assert len([ln for ln in src.splitlines() if ln.strip() and not ln.strip().startswith("#")]) <= 6, src
        assert max(map(len, src.splitlines())) <= 105, "a skeleton's lines fit JupyterLab's width at 1280 px"
        ids.append(found[0])
    declared = sorted(i for i, e in exercises.catalog().items() if e.notebook == nb.stem)
    assert sorted(ids) == declared, (ids, declared)
    for i in ids:
        ex = exercises.get(i)
        assert i.startswith(nb.stem[:2] + ".") and ex.mistake and ex.class_answer, i
        assert not re.search(r"checkpoint=|np\.save|savefig|save_table1|step\.close|rec\(", ex.solution), \
            f"{i}: a solution runs in memory and writes no file"


def test_the_instructor_notes_give_every_exercise_its_class_answer():
    text = (paths.notebooks_dir() / "INSTRUCTORS.md").read_text()
    for ex in exercises.catalog().values():
        assert f"| {ex.id} {ex.title} |" in text and " ".join(ex.class_answer.split()) in text, ex.id


def test_exercises_check_themselves_under_pytest_but_not_under_the_runner(monkeypatch):
    from lss import reproduce

    monkeypatch.setenv(exercises.SELF_CHECK_ENV, "1")
    monkeypatch.delenv(reproduce.RUNNER_ENV, raising=False)
    assert exercises.self_checking()
    monkeypatch.setenv(reproduce.RUNNER_ENV, "1")
    assert not exercises.self_checking(), "the main job and other profiles' runs do not self-check"
