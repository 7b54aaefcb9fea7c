# One command to reproduce, one to test. Both create .venv when it is absent.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build of PyTorch by default. GPU users: make TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu124" ...
TORCH_SPEC ?= torch==2.13.0
PROFILE ?= cpu

.PHONY: venv reproduce smoke class site test clean-runs

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
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
