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


# ---------------------------------------------------------------- interactive profiles, measured run times

def _class_yaml(root):
    (root / "params" / "class.yaml").write_text(
        "common:\n  profile: class\n01_four_well:\n  value: 7\n  n_steps: 99\n  lr: 0.5\n")


def test_apply_profile_gives_an_interactive_run_the_profiles_parameters(fake_root, monkeypatch):
    monkeypatch.delenv(reproduce.RUNNER_ENV, raising=False)
    _class_yaml(fake_root)
    assert reproduce.notebook_defaults("01_four_well")["n_steps"] == 10
    # a reader edited profile = "class" and lr = 0.02 by hand: the profile's values arrive, the hand-set lr stays
    ns = {"profile": "class", "device": "cpu", "seed": 0, "value": 1, "n_steps": 10, "lr": 0.02, "flag": True}
    lines = []
    changed = reproduce.apply_profile(ns, "01_four_well", log=lines.append)
    assert changed == {"value": (1, 7), "n_steps": (10, 99)}
    assert ns["value"] == 7 and ns["n_steps"] == 99 and ns["lr"] == 0.02
    assert "value = 7" in lines[0] and "kept as set here: lr = 0.02 (profile: 0.5)" in lines[0]
    # smoke is the notebook's own defaults; the runner has injected everything already
    ns = {"profile": "smoke", "value": 1, "n_steps": 10}
    assert reproduce.apply_profile(ns, "01_four_well", log=lines.append) == {} and ns["value"] == 1
    monkeypatch.setenv(reproduce.RUNNER_ENV, "1")
    ns = {"profile": "class", "value": 1, "n_steps": 10, "lr": 0.01}
    assert reproduce.apply_profile(ns, "01_four_well", log=lines.append) == {} and ns["value"] == 1
    monkeypatch.delenv(reproduce.RUNNER_ENV)
    # a profile name of one's own, without a file: said so, nothing changed
    lines.clear()
    assert reproduce.apply_profile({"profile": "mine", "value": 1}, "01_four_well", log=lines.append) == {}
    assert "no params/mine.yaml" in lines[0]


def test_apply_profile_in_a_kernel_papermill_values_win_and_the_runner_is_untouched(fake_root, monkeypatch):
    import papermill as pm

    monkeypatch.delenv(reproduce.RUNNER_ENV, raising=False)
    _class_yaml(fake_root)
    body = ("from lss import paths, reproduce\n"
            "reproduce.apply_profile(globals(), '01_four_well')\n"
            "(paths.run_dir(profile, '01_four_well') / 'out.txt').write_text(f'{value} {n_steps} {lr}')\n")
    nbformat.write(_notebook(body), fake_root / "notebooks" / "01_four_well.ipynb")
    out = fake_root / "executed.ipynb"
    # papermill by hand: -p profile class -p n_steps 5 -> the profile's value and lr, the injected n_steps
    pm.execute_notebook(str(fake_root / "notebooks/01_four_well.ipynb"), str(out), kernel_name="python3",
                        parameters={"profile": "class", "n_steps": 5}, progress_bar=False,
                        cwd=str(fake_root / "notebooks"))
    assert (fake_root / "runs/class/01_four_well/out.txt").read_text() == "7 5 0.5"
    # the runner injects the profile itself (a changed class.yaml is what runs) and apply_profile stays out
    (fake_root / "params/class.yaml").write_text("common:\n  profile: class\n01_four_well:\n  value: 8\n")
    reproduce.run("class", log=lambda s: None, force=True)
    assert (fake_root / "runs/class/01_four_well/out.txt").read_text() == "8 10 0.01"
    assert reproduce.RUNNER_ENV not in os.environ


def test_the_runner_writes_measured_run_times_for_the_course_profiles_only(fake_root):
    _class_yaml(fake_root)
    reproduce.run("smoke", log=lambda s: None)
    assert not reproduce.runtimes_file().exists(), "smoke (and test) runs leave notebooks/runtimes.json alone"
    reproduce.run("class", log=lambda s: None)
    t = reproduce.load_runtimes()["01_four_well"]["class"]
    assert 0 < t["seconds"] < 120 and t["cpu_count"] == os.cpu_count()
    note = reproduce.runtime_note("01_four_well")
    assert "**class**" in note.data and "by the runner" in note.data
    assert "No measured run time" in reproduce.runtime_note("02_trpcage_data").data


def test_threads_reach_the_kernels_and_the_environment_is_restored(fake_root, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    body = ("import os\nfrom lss import paths\n"
            "(paths.run_dir(profile, '01_four_well') / 'out.txt').write_text(os.environ.get('OMP_NUM_THREADS', '-'))\n")
    nbformat.write(_notebook(body), fake_root / "notebooks" / "01_four_well.ipynb")
    reproduce.run("smoke", log=lambda s: None, threads=1)
    assert (fake_root / "runs/smoke/01_four_well/out.txt").read_text() == "1"
    assert "OMP_NUM_THREADS" not in os.environ
    with pytest.raises(reproduce.ParamsError):
        reproduce.run("smoke", log=lambda s: None, threads=0)


def test_load_average_is_nan_where_the_system_has_none(monkeypatch):
    """Windows has no os.getloadavg: the timings' load column is NaN there, never an AttributeError."""
    import os

    from lss.utils import load_average

    assert all(v >= 0 for v in load_average())
    monkeypatch.delattr(os, "getloadavg")
    assert all(v != v for v in load_average())


def test_ctrl_c_stops_with_one_line_naming_the_step_and_how_to_resume(fake_root, monkeypatch, capsys):
    import papermill as pm

    def interrupted(*a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(pm, "execute_notebook", interrupted)
    lines = []
    with pytest.raises(SystemExit) as e:
        reproduce.run("smoke", log=lines.append)
    assert e.value.code == 130
    assert "01_four_well: interrupted" in lines[-1] and "python -m lss.reproduce --profile smoke" in lines[-1]
    assert "Traceback" not in "\n".join(lines)


def test_lss_threads_sets_the_kernels_threads_and_is_checked(fake_root, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    body = ("import os\nfrom lss import paths\n"
            "(paths.run_dir(profile, '01_four_well') / 'out.txt').write_text(os.environ.get('OMP_NUM_THREADS', '-'))\n")
    nbformat.write(_notebook(body), fake_root / "notebooks" / "01_four_well.ipynb")
    monkeypatch.setenv("LSS_THREADS", "1")
    reproduce.run("smoke", log=lambda s: None)
    assert (fake_root / "runs/smoke/01_four_well/out.txt").read_text() == "1"
    monkeypatch.setenv("LSS_THREADS", "two")
    with pytest.raises(reproduce.ParamsError, match="LSS_THREADS"):
        reproduce.run("smoke", log=lambda s: None, force=True)


def test_an_interactive_step_honours_lss_threads(fake_root, monkeypatch):
    import torch

    from lss.notebook import Step

    before = torch.get_num_threads()
    monkeypatch.setenv("LSS_THREADS", "1")
    try:
        Step("01_four_well", {"profile": "smoke", "seed": 0})
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_notebook_opened_cold_catches_up_its_upstream_steps_with_the_runner(fake_root, monkeypatch, capsys):
    from lss.notebook import Step

    body = "from lss import paths\n(paths.run_dir(profile, '02_trpcage_data') / 'x.txt').write_text(str(value))\n"
    nbformat.write(_notebook(body), fake_root / "notebooks" / "02_trpcage_data.ipynb")
    (fake_root / "notebooks" / "03_srv.ipynb").write_text((fake_root / "notebooks" / "01_four_well.ipynb").read_text())
    step = Step("03_srv", {"profile": "smoke", "seed": 0})
    monkeypatch.setenv("LSS_NO_CATCH_UP", "1")
    with pytest.raises(FileNotFoundError, match="02_trpcage_data"):
        step.path("02_trpcage_data", "x.txt")
    monkeypatch.delenv("LSS_NO_CATCH_UP")
    assert step.path("02_trpcage_data", "x.txt").read_text() == "1"     # made by the runner, then read
    assert "running 02_trpcage_data first" in capsys.readouterr().out


def test_lss_profile_sets_the_profile_of_every_notebook_run_by_hand(fake_root, monkeypatch):
    (fake_root / "params" / "class.yaml").write_text("common:\n  profile: class\n01_four_well:\n  value: 3\n")
    ns = {"profile": "smoke", "device": "cpu", "seed": 0, "value": 1, "n_steps": 10, "lr": 0.01, "flag": True}
    monkeypatch.setenv("LSS_PROFILE", "class")
    reproduce.apply_profile(ns, "01_four_well", log=lambda s: None)
    assert ns["profile"] == "class" and ns["value"] == 3
    ns = {"profile": "cpu-by-hand", "value": 1}                       # an edited profile line wins
    reproduce.apply_profile(ns, "01_four_well", log=lambda s: None)
    assert ns["profile"] == "cpu-by-hand"


def test_with_one_thread_per_kernel_07s_reference_is_simulated_meanwhile_on_the_free_core(fake_root, monkeypatch):
    """The runner starts the background simulation once 02 is done and a notebook before 07 is about to run."""
    body02 = "from lss import paths\n(paths.run_dir(profile, '02_trpcage_data') / 'dataset.json').write_text('{}')\n"
    nbformat.write(_notebook(body02), fake_root / "notebooks" / "02_trpcage_data.ipynb")
    for step in ("03_srv", "07_analysis"):
        body = f"from lss import paths\n(paths.run_dir(profile, '{step}') / 'out.txt').write_text('x')\n"
        nbformat.write(_notebook(body), fake_root / "notebooks" / f"{step}.ipynb")
    started, lines = [], []

    class Done:
        def poll(self):
            return 0

    def fake_start(profile, params_file, log):
        started.append(profile)
        lines.append("PREFETCH")
        return Done()

    monkeypatch.setattr(reproduce, "_start_prefetch", fake_start)
    monkeypatch.setattr(reproduce.os, "cpu_count", lambda: 2)
    steps = ["02_trpcage_data", "03_srv", "07_analysis"]
    assert reproduce._prefetch_wanted(1, None, steps) and reproduce._prefetch_wanted(1, ["07_analysis"], steps)
    assert not reproduce._prefetch_wanted(None, None, steps), "with torch's own threads no core is free"
    assert not reproduce._prefetch_wanted(1, ["03_srv"], steps), "07 is not part of the run"
    monkeypatch.setattr(reproduce.os, "cpu_count", lambda: 1)
    assert not reproduce._prefetch_wanted(1, None, steps), "one core: none is free"
    monkeypatch.setattr(reproduce.os, "cpu_count", lambda: 2)
    reproduce.run("smoke", threads=1, log=lines.append)
    assert started == ["smoke"]
    at = lines.index("PREFETCH")
    assert "02_trpcage_data: done" in lines[at - 1] and "03_srv: running" in lines[at + 1], lines
    started.clear()
    lines.clear()
    reproduce.run("smoke", threads=1, log=lines.append)
    assert started == [], ("nothing runs (all cached): nothing to overlap with", lines)


def test_costs_name_the_slowest_cells_of_the_last_run(fake_root, capsys):
    body = "import time\ntime.sleep(0.3)\n"
    nbformat.write(_notebook(body), fake_root / "notebooks" / "02_trpcage_data.ipynb")
    reproduce.run("smoke", log=lambda *a: None)
    rows = reproduce.cell_costs("smoke", n=2)
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), reverse=True)
    assert (rows[0][1], rows[0][3]) == ("02_trpcage_data", "import time") and rows[0][0] >= 0.3
    assert reproduce.main(["--profile", "smoke", "--costs"]) == 0
    out = capsys.readouterr().out
    assert ": import time" in out and "01_four_well" in out
