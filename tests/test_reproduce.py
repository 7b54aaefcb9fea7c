"""The papermill runner: parameters, caching by content, stop on first failure, refusing bad
parameter files in one line (exit 2), a quiet kernel, and figures/ written only by the cpu profile."""
import json
import os

import nbformat
import pytest

from lss import paths, reproduce


def _notebook(body: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile: str = "smoke"\ndevice: str = "cpu"\nseed: int = 0\nvalue: int = 1\n'
                                       'n_steps: int = 10\nlr: float = 0.01\nflag: bool = True')
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
            "(paths.run_dir(profile, '01_four_well') / 'out.txt').write_text(str(value * 2))\n"
            "(paths.figures_dir(profile) / 'figure.txt').write_text(profile)\n")
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
    assert "\x1b[" not in text, "no terminal colour codes in the runner's output"
    assert lines[-1] == "ValueError: the data file is missing", "the error line comes last, once"
    assert text.count("the data file is missing") <= 2   # the raising line of code and the error line


def _main(capsys, *argv) -> tuple[int, list[str]]:
    code = reproduce.main(list(argv))
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return code, err


def test_unknown_parameters_and_profiles_are_refused(fake_root, capsys):
    smoke = fake_root / "params/smoke.yaml"
    smoke.write_text("common:\n  profile: smoke\n01_four_well:\n  valu: 5\n")
    with pytest.raises(reproduce.ParamsError, match="valu"):
        reproduce.run("smoke", log=lambda s: None)
    code, err = _main(capsys, "--profile", "smoke")
    assert code == 2 and len(err) == 1, err
    assert "params/smoke.yaml" in err[0] and "01_four_well.valu" in err[0] and "did you mean 'value'" in err[0]
    with pytest.raises(reproduce.ParamsError, match="no profile 'nosuch'.*smoke"):
        reproduce.load_params("nosuch")
    code, err = _main(capsys, "--profile", "nosuch")
    assert code == 2 and len(err) == 1 and "nosuch" in err[0]
    smoke.write_text("common: {}\n03_sr: {}\n")
    with pytest.raises(reproduce.ParamsError, match="03_sr: unknown section; did you mean '03_srv'"):
        reproduce.load_params("smoke")
    smoke.write_text("common:\n  profile: smoke\n")
    code, err = _main(capsys, "--profile", "smoke", "--only", "09_nothing")
    assert code == 2 and len(err) == 1 and "09_nothing" in err[0]


def test_a_file_without_a_profile_says_how_to_name_one(fake_root, capsys, tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("01_four_well:\n  value: 3\n")
    code, err = _main(capsys, "--params", str(mine))
    assert code == 2 and len(err) == 1, err
    assert "mine.yaml: common.profile: " in err[0] and "extends: <profile>" in err[0]
    mine.write_text("extends: nosuch\n")
    code, err = _main(capsys, "--params", str(mine))
    assert code == 2 and "extends" in err[0] and "smoke" in err[0]
    mine.write_text("common:\n  profile: smoke\n01_four_well:\n  value: [1\n")
    code, err = _main(capsys, "--params", str(mine))
    assert code == 2 and len(err) == 1 and "not valid YAML" in err[0]
    mine.write_text("extends: smoke\n01_four_well:\n  value: 4\n")   # a good one runs
    assert reproduce.main(["--params", str(mine)]) == 0
    assert (fake_root / "runs/smoke/01_four_well/out.txt").read_text() == "8"


@pytest.mark.parametrize("line, expect", [
    ("n_steps: -5", "01_four_well.n_steps: -5 is out of range; give a whole number >= 1"),
    ("n_steps: 0", ">= 1"),
    ("n_steps: 1e6", "YAML reads 1e6 as text: write 1000000"),
    ("n_steps: 2.5", "declares int"),
    ("lr: 1e-3", "YAML reads 1e-3 as text: write 0.001"),
    ("lr: -0.1", "> 0"),
    ("flag: 1", "write true or false"),
    ("seed: -1", ">= 0"),
    ("value: null", "null is not allowed"),
])
def test_bad_values_are_refused_before_anything_runs(fake_root, capsys, line, expect):
    (fake_root / "params/smoke.yaml").write_text(f"common:\n  profile: smoke\n01_four_well:\n  {line}\n")
    code, err = _main(capsys, "--profile", "smoke")
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("error: params/smoke.yaml: 01_four_well.") and expect in err[0], err[0]
    assert not (fake_root / "runs/smoke/01_four_well/out.txt").exists(), "nothing ran"


def test_a_value_in_common_is_reported_there(fake_root, capsys):
    (fake_root / "params/smoke.yaml").write_text("common:\n  profile: smoke\n  seed: abc\n")
    code, err = _main(capsys, "--profile", "smoke")
    assert code == 2 and "common.seed" in err[0] and "declares int" in err[0]


def test_the_kernel_runs_without_the_unencrypted_tcp_warning(fake_root, capfd):
    reproduce.run("smoke", log=lambda s: None)
    captured = capfd.readouterr()
    assert "without encryption" not in captured.err + captured.out


def test_figures_of_non_published_profiles_stay_in_runs(fake_root, monkeypatch):
    monkeypatch.delenv(paths.PUBLISH_ENV, raising=False)
    assert paths.figures_dir("smoke") == fake_root / "runs" / "smoke" / "figures"
    # profile is only a label: cpu outside the runner (a reader's JupyterLab) stays in runs/ too
    assert paths.figures_dir("cpu") == fake_root / "runs" / "cpu" / "figures"
    monkeypatch.setenv(paths.PUBLISH_ENV, "cpu")
    assert paths.figures_dir("cpu") == fake_root / "figures"
    assert paths.figures_dir("smoke") == fake_root / "runs" / "smoke" / "figures"


def test_only_the_runners_cpu_profile_writes_figures(fake_root, tmp_path, monkeypatch):
    monkeypatch.delenv(paths.PUBLISH_ENV, raising=False)
    (fake_root / "params/cpu.yaml").write_text("common:\n  profile: cpu\n01_four_well:\n  value: 3\n")
    reproduce.run("smoke", log=lambda s: None)
    assert (fake_root / "runs/smoke/figures/figure.txt").exists() and not (fake_root / "figures").exists()
    # a hand-made file that keeps the cpu label (smaller sizes, say) does not publish
    mine = tmp_path / "small_cpu.yaml"
    mine.write_text("extends: cpu\n01_four_well:\n  value: 1\n")
    reproduce.run(params_file=str(mine), log=lambda s: None)
    assert (fake_root / "runs/cpu/figures/figure.txt").exists() and not (fake_root / "figures").exists()
    reproduce.run("cpu", log=lambda s: None)
    assert (fake_root / "figures/figure.txt").read_text() == "cpu"
    assert (fake_root / "figures/metrics.json").exists(), "the runner's report goes with the figures"
    assert paths.PUBLISH_ENV not in os.environ, "the runner restores the environment"
