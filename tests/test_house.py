"""The notebooks stay readable: short cells, a bounded whole, logic in lss (issue 23's targets)."""
import json

import pytest

from lss import paths

NOTEBOOKS = sorted(paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
MAX_CELL, MAX_TOTAL, MAX_07 = 25, 1_100, 250


def code_lines(nb, exercises: bool = False) -> list[int]:
    """Code lines of each code cell: lines that are not blank and not ``#`` comments.

    The exercise cells (tagged ``exercise``: the student's workspace, skeletons of 3-5 lines) are counted
    apart from the story's budget (``exercises=True`` counts only them).
    """
    cells = json.loads(nb.read_text())["cells"]
    return [sum(1 for line in "".join(c["source"]).splitlines() if line.strip() and not line.strip().startswith("#"))
            for c in cells if c["cell_type"] == "code"
            and ("exercise" in c.get("metadata", {}).get("tags", [])) == exercises]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_code_cell_is_longer_than_a_screen(nb):
    long = [(i, n) for i, n in enumerate(code_lines(nb)) if n > MAX_CELL]
    assert not long, f"code cells (index, lines) over {MAX_CELL} lines: {long}; move the logic into lss"


def test_the_notebooks_together_stay_within_their_budget():
    per = {nb.stem: sum(code_lines(nb)) for nb in NOTEBOOKS}
    assert sum(per.values()) <= MAX_TOTAL, per
    assert per["07_analysis"] <= MAX_07, per["07_analysis"]


def test_the_counter_counts_code_not_comments(tmp_path):
    nb = tmp_path / "x.ipynb"
    nb.write_text(json.dumps({"cells": [{"cell_type": "code", "source": ["# a comment\n", "\n", "x = 1\n", "  # indented\n", "y = 2"]},
                                        {"cell_type": "markdown", "source": ["x = 1"]}]}))
    assert code_lines(nb) == [2]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_shows_its_idea_and_the_function_under_the_hood(nb, monkeypatch):
    """A picture made by lss and the core function's code (docstring left out) with one sentence per term."""
    import matplotlib.pyplot as plt

    from lss import notebook, plots

    cells = json.loads(nb.read_text())["cells"]
    assert any("".join(c["source"]).strip() == "step.concept()" for c in cells if c["cell_type"] == "code")
    assert any("In plain words" in "".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    fig = plots.concept(nb.stem)
    assert fig.axes, "the picture has something in it"
    plt.close(fig)
    text = notebook.under_the_hood(nb.stem)
    code = text.split("```python\n")[1].split("```")[0]
    assert code.startswith("def ") and '"""' not in code, "the code itself, without its docstring"
    assert len(code.splitlines()) <= 25 and text.count("\n- ") >= 3


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_student_reads_no_cell_over_20_lines_but_the_parameters(nb):
    """Longer cells are bookkeeping (imports, recording), tagged and collapsed in JupyterLab."""
    cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"
             and "exercise" not in c["metadata"].get("tags", [])]
    for c, n in zip(cells, code_lines(nb)):
        tags, hidden = c["metadata"].get("tags", []), c["metadata"].get("jupyter", {}).get("source_hidden")
        if n > 20 and "parameters" not in tags:
            assert "bookkeeping" in tags and hidden, ("".join(c["source"])[:60], n)
