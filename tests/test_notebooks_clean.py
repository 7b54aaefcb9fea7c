"""Notebook hygiene and parameter files: what nbval and papermill rely on."""
import json

import papermill as pm
import pytest
import yaml

from lss import paths, reproduce

NOTEBOOKS = sorted(paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks_and_each_is_a_known_step():
    assert NOTEBOOKS, "no notebooks found"
    for nb in NOTEBOOKS:
        assert nb.stem in reproduce.STEPS, f"{nb.name} is not listed in lss.reproduce.STEPS"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_clean_with_kernel_python3_and_one_parameters_cell(nb):
    d = json.loads(nb.read_text())
    assert d["metadata"]["kernelspec"]["name"] == "python3", "kernel must be python3"
    with_outputs = [i for i, c in enumerate(d["cells"]) if c.get("outputs")]
    assert not with_outputs, f"cells {with_outputs} carry outputs: clear them before committing"
    counts = [c.get("execution_count") for c in d["cells"] if c["cell_type"] == "code"]
    assert all(c is None for c in counts), "execution counts must be cleared"
    tagged = [c for c in d["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{len(tagged)} cells tagged 'parameters', expected exactly 1"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_takes_profile_device_and_seed_with_smoke_defaults(nb):
    params = pm.inspect_notebook(str(nb))
    for name in ("profile", "device", "seed"):
        assert name in params, f"parameter {name!r} missing"
    assert params["profile"]["default"].strip("'\"") == "smoke"


@pytest.mark.parametrize("profile", ["smoke", "cpu", "paper"])
def test_profiles_only_set_parameters_the_notebooks_declare(profile):
    params = reproduce.load_params(profile)
    assert params["common"]["profile"] == profile
    for nb in NOTEBOOKS:
        reproduce.check_parameters(nb.stem, reproduce.step_parameters(params, nb.stem))


def test_smoke_profile_equals_the_notebook_defaults():
    params = yaml.safe_load(paths.params_file("smoke").read_text())
    for nb in NOTEBOOKS:
        declared = pm.inspect_notebook(str(nb))
        for key, value in reproduce.step_parameters(params, nb.stem).items():
            default = eval(declared[key]["default"])  # literals written by us in the parameters cell
            assert default == value, f"{nb.stem}: smoke.yaml sets {key}={value!r}, notebook default {default!r}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_parses_every_parameter_line(nb):
    import re

    d = json.loads(nb.read_text())
    cell = next(c for c in d["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    src = "".join(cell["source"])
    names = re.findall(r"^([A-Za-z_]\w*)\s*(?::[^=]+)?=", src, flags=re.M)
    declared = pm.inspect_notebook(str(nb))
    missing = [n for n in names if n not in declared]
    assert not missing, f"papermill cannot parse the parameter lines of {missing} (e.g. '=' or quotes in a comment)"
