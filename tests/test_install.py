"""What each kind of install gets: the slim core and `course` extra for a hosted notebook service, the `lab`
extra for one's own JupyterLab, and a Binder configuration that builds the package."""
import re
import subprocess
import sys
import tomllib

from lss import paths

ROOT = paths.root()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
LAB_ONLY = ["jupyterlab", "nglview", "jupyter_server_mathjax", "nbval", "playwright", "nbconvert"]


def _names(reqs):
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in reqs}


def test_the_core_and_the_course_extra_leave_a_hosted_jupyter_alone():
    core = _names(PYPROJECT["dependencies"])
    extras = PYPROJECT["optional-dependencies"]
    assert not core & {"jupyterlab", "notebook", "jupyter_server", "nglview", "nbval", "playwright", "pytest"}
    assert {"torch", "mdtraj", "openmm", "deeptime", "papermill", "ipykernel"} <= core
    assert _names(extras["course"]) == {"ipywidgets"}
    assert {"jupyterlab", "nglview", "jupyter_server_mathjax"} <= _names(extras["lab"])
    assert "lss[lab]" in extras["test"], "the test run (make test, CI) checks the lab's viewer and site too"


def test_every_module_and_a_notebook_step_import_without_the_lab_packages():
    """A hosted runtime with only the core: nothing of lss needs jupyterlab, nglview, nbconvert, ... to import."""
    mods = sorted(p.stem for p in (ROOT / "lss").glob("*.py") if p.stem != "__init__")
    code = ("import sys\n"
            f"for m in {LAB_ONLY!r}: sys.modules[m] = None\n"
            f"import importlib\nfor m in {mods!r}: importlib.import_module('lss.' + m)\n"
            "from lss import viewer, site\n"
            "assert viewer.nglview_status()[0] is False\n"
            "assert site.main(['--no-run']) == 2\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "needs the lab extra (jupyter_server_mathjax is missing): pip install -e '.[lab]'" in r.stderr


def test_binder_builds_the_package_after_the_repository_is_copied():
    binder = ROOT / "binder"
    make_pin = re.search(r"^TORCH_SPEC \?= (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    req = (binder / "requirements.txt").read_text()
    assert make_pin in req.splitlines() and "--index-url https://download.pytorch.org/whl/cpu" in req
    assert not re.search(r"^-e ", req, re.M), "repo2docker installs requirements before the repository is there"
    post = (binder / "postBuild").read_text()
    assert 'pip install --no-cache-dir -e ".[lab]"' in post and "--profile class" in post
    assert (binder / "postBuild").stat().st_mode & 0o111 and (binder / "start").stat().st_mode & 0o111
    minor = int((binder / "runtime.txt").read_text().strip().split(".")[1])
    assert minor >= int(PYPROJECT["requires-python"].split(".")[1])


def test_every_notebook_opens_with_the_hosted_service_lines():
    """The first code cell: the lines to uncomment in a hosted service (clone, the slim course extra), inert here."""
    import json

    for nb in sorted(paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        first = next(c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")
        lines = "".join(first["source"]).splitlines()
        hosted = [ln for ln in lines if ln.startswith("# !git clone")]
        assert len(hosted) == 1 and 'pip install -q -e "./lss-course[course]"' in hosted[0], nb.name
        assert "runtime_note" in lines[-1], nb.name
