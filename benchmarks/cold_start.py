"""Each notebook opened cold in JupyterLab (headless Chromium), with the class profile, against a fresh clone
where nothing has run (no runs/, no data/): it must catch up the notebooks it needs by itself and finish.

Usage::

    python benchmarks/cold_start.py                       # all nine notebooks, one fresh clone each
    python benchmarks/cold_start.py 05_cwgan.ipynb        # one

Needs Debian's chromium and the test extra (playwright); reuses the JupyterLab helpers of
tests/test_browser.py. Prints, per notebook, whether it finished, what it caught up and the wall time
(kernel start to the last cell, catch-up included). A screenshot per notebook lands in /tmp.
"""
import os, sys, json, time, secrets, shutil, subprocess, tempfile
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_browser as tb
from lss import paths


def check(NB):
    """Open notebook ``NB`` cold (see the module docstring); print what happened."""
    tmp = Path(tempfile.mkdtemp(prefix="coldclass_"))
    root = tmp / "clone"
    subprocess.run(["git", "clone", "-q", str(paths.root()), str(root)], check=True)
    (root / "lss").rename(root / "lss_src")            # the kernel imports the installed package; point LSS_ROOT here
    (root / "lss").symlink_to(paths.root() / "lss", target_is_directory=True)
    work = tmp / "work"; work.mkdir()
    nb = json.loads((paths.notebooks_dir() / NB).read_text())
    nb["cells"].insert(0, {"cell_type": "code", "execution_count": None, "id": "coldroot", "metadata": {}, "outputs": [],
                           "source": [f"import os; os.environ['LSS_ROOT'] = {str(root)!r}; os.environ['LSS_PROFILE'] = 'class'; os.environ['LSS_THREADS'] = '1'"]})
    (work / NB).write_text(json.dumps(nb))
    token, port = secrets.token_hex(8), tb._free_port()
    url = f"http://127.0.0.1:{port}"
    env = tb._write_jupyter_config(tmp, token, work)
    log = open(tmp / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}"], cwd=work, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    from playwright.sync_api import sync_playwright
    t0 = time.monotonic()
    try:
        tb._wait_for_server(proc, url, token, tmp / "lab.log", 60)
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(str(tmp / "prof"), executable_path=shutil.which("chromium"), headless=True,
                                                        args=tb.CHROMIUM_FLAGS, viewport={"width": 1280, "height": 1000}, chromium_sandbox=False)
            page = ctx.new_page()
            tb.COLD_BUDGET_S = 600
            panel = tb._JS_PANEL_OF % NB
            page.goto(f"{url}/lab/tree/{NB}?reset&token={token}", timeout=60_000)
            page.wait_for_function("() => { const nb = (%s)(); const k = nb && nb.sessionContext.session && nb.sessionContext.session.kernel; return !!(nb && k && k.status === 'idle' && nb.content.widgets.length); }" % panel, timeout=90_000, polling=500)
            page.evaluate("async () => { const nb = (%s)(); window.jupyterapp.shell.activateById(nb.id); await nb.sessionContext.ready; await window.jupyterapp.commands.execute('notebook:run-all-cells'); }" % panel)
            while True:
                st = page.evaluate(tb._JS_STATE_OF % panel)
                if "error" in st:
                    print("ERROR", st["error"]); break
                if st["done"] == st["total"] and st["idle"]:
                    print("finished", st["done"], "cells"); break
                if time.monotonic() - t0 > 600:
                    print("timeout", st.get("done"), st.get("total")); break
                time.sleep(2)
            page.screenshot(path=f"/tmp/cold_class_{NB}.png", full_page=False)
            text = st.get("text", "")
            print([l for l in text.splitlines() if "caught up" in l or "needs" in l or "waiting" in l][:6])
            ctx.close()
    finally:
        tb._stop_server(proc, url, token)
    print(f"{NB} cold, class profile: {time.monotonic() - t0:.0f} s wall in JupyterLab", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for nb in sys.argv[1:] or sorted(p.name for p in paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb")):
        check(nb)
