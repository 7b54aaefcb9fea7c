"""The papermill runner: parameters, caching by content, stop on first failure."""
import json

import nbformat
import pytest

from lss import paths, reproduce


def _notebook(body: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile: str = "smoke"\ndevice: str = "cpu"\nseed: int = 0\nvalue: int = 1')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    return nb


@pytest.fixture
def fake_root(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "params").mkdir()
    (tmp_path / "lss").mkdir()
    (tmp_path / "lss" / "x.py").write_text("# stands in for the package source\n")
    body = ("from lss import paths\n"
            "(paths.run_dir(profile, '01_four_well') / 'out.txt').write_text(str(value * 2))\n")
    nbformat.write(_notebook(body), tmp_path / "notebooks" / "01_four_well.ipynb")
    (tmp_path / "params" / "smoke.yaml").write_text("common:\n  profile: smoke\n01_four_well:\n  value: 21\n")
    monkeypatch.setenv("LSS_ROOT", str(tmp_path))
    return tmp_path


def test_runs_with_profile_parameters_then_skips_when_unchanged(fake_root):
    lines = []
    ran = reproduce.run("smoke", log=lines.append)
    assert list(ran) == ["01_four_well"]
    assert (fake_root / "runs/smoke/01_four_well/out.txt").read_text() == "42"
    assert (fake_root / "runs/smoke/executed/01_four_well.ipynb").exists()
    assert reproduce.run("smoke", log=lines.append) == {}
    assert any("cached, skipped" in line for line in lines)
    # a changed output file, a changed parameter or --force run it again
    (fake_root / "runs/smoke/01_four_well/out.txt").write_text("tampered")
    assert list(reproduce.run("smoke", log=lines.append)) == ["01_four_well"]
    (fake_root / "params/smoke.yaml").write_text("common:\n  profile: smoke\n01_four_well:\n  value: 5\n")
    assert list(reproduce.run("smoke", log=lines.append)) == ["01_four_well"]
    assert (fake_root / "runs/smoke/01_four_well/out.txt").read_text() == "10"
    assert list(reproduce.run("smoke", force=True, log=lines.append)) == ["01_four_well"]
    state = json.loads((fake_root / "runs/smoke/.steps/01_four_well.json").read_text())
    assert state["parameters"]["value"] == 5 and state["seconds"] > 0


def test_stops_at_the_first_failure_and_shows_the_error(fake_root):
    nbformat.write(_notebook("raise ValueError('the data file is missing')"),
                   fake_root / "notebooks" / "01_four_well.ipynb")
    lines = []
    with pytest.raises(SystemExit) as e:
        reproduce.run("smoke", log=lines.append)
    assert e.value.code == 1
    text = "\n".join(lines)
    assert "FAILED" in text and "the data file is missing" in text


def test_unknown_parameters_and_profiles_are_refused(fake_root):
    (fake_root / "params/smoke.yaml").write_text("common:\n  profile: smoke\n01_four_well:\n  valu: 5\n")
    with pytest.raises(ValueError, match="valu"):
        reproduce.run("smoke", log=lambda s: None)
    with pytest.raises(FileNotFoundError, match="nosuch"):
        reproduce.load_params("nosuch")
    (fake_root / "params/smoke.yaml").write_text("common: {}\n03_sr: {}\n")
    with pytest.raises(ValueError, match="unknown sections"):
        reproduce.load_params("smoke")


def test_figures_of_non_published_profiles_stay_in_runs(fake_root):
    assert paths.figures_dir("smoke") == fake_root / "runs" / "smoke" / "figures"
    assert paths.figures_dir("cpu") == fake_root / "figures"
