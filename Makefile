# One command to reproduce, one to test. Both create .venv when it is absent.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of PyTorch by default, from PyTorch's CPU index (about 190 MB instead of the CUDA stack's several GB);
# where that index cannot be reached, the same pin from the default index. GPU users:
# make TORCH_INDEX=https://download.pytorch.org/whl/cu124 TORCH_SPEC=torch ...
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
PROFILE ?= cpu

.PHONY: venv reproduce smoke class site test clean-runs

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --retries 1 --timeout 20 --index-url $(TORCH_INDEX) $(TORCH_SPEC) \
	  || { echo "PyTorch's index ($(TORCH_INDEX)) unreachable: installing $(TORCH_SPEC) from the default index"; \
	       $(PY) -m pip install --quiet $(TORCH_SPEC); }
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lss)" >/dev/null
	touch $@

venv: $(VENV)/.installed

reproduce: venv
	$(PY) -m lss.reproduce --profile $(PROFILE)

smoke: venv
	$(PY) -m lss.reproduce --profile smoke

# the course profile: every notebook, a few minutes on 2 cores, outputs in runs/class/ (never figures/).
# One torch thread per kernel: on cores that other work shares, two threads wait for each other (README).
THREADS ?= 1
class: venv
	$(PY) -m lss.reproduce --profile class --threads $(THREADS)

# the course site: executed notebooks as HTML with the learning path as index, in site/ (git-ignored).
# SITE_PROFILE=class runs the class profile first (cached notebooks skipped); SITE_PROFILE=cpu renders the main job's run.
SITE_PROFILE ?= class
site: venv
	$(PY) -m lss.site --profile $(SITE_PROFILE) --threads $(THREADS)

# includes tests/test_browser.py: notebook 06 in headless Chromium (apt-get install chromium; without it
# that test prints how to install it and skips, unless LSS_REQUIRE_BROWSER=1 as in .ci/run)
test: venv
	$(PY) -m pytest -q

clean-runs:
	rm -rf runs
