"""Each notebook opened cold in JupyterLab (headless Chromium), with the class profile, against a fresh clone
where nothing has run (no runs/, no data/): it must catch up the notebooks it needs by itself and finish.

Usage::

    python benchmarks/cold_start.py                       # all nine notebooks, one fresh clone each
    python benchmarks/cold_start.py 05_cwgan.ipynb        # one

Needs Debian's chromium and the test extra (playwright); uses the JupyterLab helpers of
tests/test_browser.py (the same check runs there for notebook 04 with the smoke profile). Prints, per
notebook, what it caught up and the wall time (JupyterLab start to the last cell, catch-up included); a screenshot per
notebook lands in runs/browser/.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_browser as tb  # noqa: E402

from lss import paths  # noqa: E402


def check(notebook: str) -> float:
    """Open ``notebook`` cold with the class profile against a fresh clone; return the wall seconds."""
    from playwright.sync_api import sync_playwright

    tmp = Path(tempfile.mkdtemp(prefix="lss_cold_"))
    try:
        root = tmp / "clone"
        subprocess.run(["git", "clone", "-q", str(paths.root()), str(root)], check=True)
        shutil.rmtree(root / "lss")      # the kernel imports the installed package: hash that source
        (root / "lss").symlink_to(paths.root() / "lss", target_is_directory=True)
        work = tmp / "work"
        work.mkdir()
        t0 = time.monotonic()
        with tb._jupyterlab(tmp, work) as (url, token), sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                str(tmp / "chromium-profile"), executable_path=shutil.which("chromium"), headless=True,
                args=tb.CHROMIUM_FLAGS, viewport={"width": 1280, "height": 1000}, chromium_sandbox=False)
            try:
                text = tb._open_cold(ctx.new_page(), url, token, work, root, paths.run_dir("browser"), notebook,
                                     env={"LSS_PROFILE": "class", "LSS_THREADS": "1"}, budget_s=900)
            finally:
                ctx.close()
        wall = time.monotonic() - t0
        caught = [ln for ln in text.splitlines() if ln.startswith("caught up:")]
        print(f"{notebook}: finished cold in {wall:.0f} s; " + ("; ".join(caught) or "nothing to catch up"), flush=True)
        return wall
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for nb in sys.argv[1:] or sorted(p.name for p in paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        check(nb)
