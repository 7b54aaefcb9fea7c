"""The rendered course site: executed notebooks as HTML pages, with the learning path as index.

Usage::

    python -m lss.site [--profile class] [--out site] [--no-run]

The pages are the notebooks as the runner executed them (``runs/<profile>/executed/<step>.ipynb``),
outputs and figures included, so that a reader without a run sees every result. Unless ``--no-run``,
the runner first brings the profile up to date (its cache skips the notebooks that are current), so
``make site`` on a fresh clone executes the ``class`` profile (about 3 minutes on 2 cores) and
``make site SITE_PROFILE=cpu`` reuses the main job's executed notebooks. Links between notebooks
(``02_trpcage_data.ipynb``) and to the glossary (``GLOSSARY.md``) point to the pages. Equations render
without the internet (an offline classroom): MathJax is copied from the ``jupyter_server_mathjax``
package into ``<out>/mathjax/`` and the pages load it from there. The output folder (``site/`` by
default) is git-ignored.
"""
from __future__ import annotations

import argparse
import html
import json
import re
import sys
from pathlib import Path

from . import paths

#: One sentence per notebook for the learning path; a notebook not listed gets its first paragraph's first sentence.
SUMMARY = {
    "01_four_well": "A mixture density network learns the dynamics of a 1-D four-well potential and is checked "
                    "against the exact answer (paper Fig. 2).",
    "02_trpcage_data": "Molecular dynamics of Trp-cage that folds and unfolds many times, measured by the fraction "
                       "of native contacts Q, and the features the encoder learns from.",
    "03_srv": "An SRV encoder finds the slowest collective variables of the data: eigenvalues, implied "
              "timescales and the latent space.",
    "04_mdn": "A mixture density network learns to propagate the latent coordinates a lag ahead, checked with "
              "a Chapman-Kolmogorov test.",
    "05_cwgan": "Decoders (the paper's WGAN-GP and a normalizing flow) turn latent points back into C-alpha "
                "structures, judged against held-out MD.",
    "06_generate": "Encoder, propagator and decoder become one simulator that writes long trajectories fast, "
                   "with a folding event shown.",
    "07_analysis": "Are the simulated trajectories right? Free energies, kinetics, structures and the paper's "
                   "Fig. 3, Fig. 4 and Table 1.",
    "08_adaptive_sampling": "Adaptive sampling: where to run new MD, guided by the latent space simulator.",
    "09_data_efficiency": "When does a latent space simulator add value? Data efficiency and intervals against the truth.",
}

_LINK = re.compile(r'href="(\d\d_[A-Za-z0-9_]+)\.ipynb(#[^"]*)?"')


def _steps(src_dir: Path) -> list[str]:
    """Notebook steps in learning order: every ``NN_name.ipynb`` of the notebooks folder."""
    return sorted(p.stem for p in paths.notebooks_dir().glob("[0-9][0-9]_*.ipynb"))


def _title_and_sentence(nb_path: Path, step: str) -> tuple[str, str]:
    nb = json.loads(nb_path.read_text())
    first = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), None)
    text = "".join(first["source"]) if first else ""
    title = next((ln[2:].strip() for ln in text.splitlines() if ln.startswith("# ")), step)
    if step in SUMMARY:
        return title, SUMMARY[step]
    paras = [p.strip() for p in text.split("\n\n") if p.strip() and not p.lstrip().startswith("#")]
    sentence = re.split(r"(?<=\.)\s", " ".join(paras[0].split()))[0] if paras else ""
    return title, sentence


def _fix_links(body: str) -> str:
    """Notebook and glossary links of a page point to the site's pages."""
    body = _LINK.sub(lambda m: f'href="{m.group(1)}.html{m.group(2) or ""}"', body)
    return body.replace('href="GLOSSARY.md', 'href="glossary.html')


#: MathJax (2.7, as nbconvert's pages expect) copied beside the pages, so equations render offline
MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"   # the configuration the package ships


def _copy_mathjax(out: Path) -> Path:
    """Copy MathJax from the ``jupyter_server_mathjax`` package to ``<out>/mathjax`` (once; about 10 MB)."""
    import shutil

    import jupyter_server_mathjax

    dest = out / "mathjax"
    if not (dest / "MathJax.js").exists():
        shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", dest, dirs_exist_ok=True)
    return dest


def _exporter():
    from nbconvert import HTMLExporter

    return HTMLExporter(mathjax_url=MATHJAX_URL)


def _markdown_page(markdown: str, title: str) -> str:
    """A markdown text as a page of the same look as the notebooks (nbconvert's HTML exporter)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["title"] = title
    nb.cells = [nbformat.v4.new_markdown_cell(markdown)]
    body, _ = _exporter().from_notebook_node(nb)
    return _fix_links(body)


def index_markdown(pages: list[tuple[str, str, str, bool]], profile: str) -> str:
    """The learning path: ``pages`` = [(step, title, sentence, has_page)] in order."""
    lines = ["# lss: molecular latent space simulators, as a course", "",
             "A notebook-first reproduction of Sidky, Chen & Ferguson, *Molecular latent space simulators*, "
             "Chem. Sci. 2020. Read the notebooks in this order; each page shows the notebook with every output, "
             f"as the runner executed it with the **{profile}** profile. Terms are explained in the "
             "[glossary](glossary.html).", "", "## The learning path", ""]
    for k, (step, title, sentence, has_page) in enumerate(pages, 1):
        name = f"[{html.escape(title)}]({step}.html)" if has_page else f"{html.escape(title)} (not executed in this build)"
        lines.append(f"{k}. {name}: {sentence}")
    lines += ["", "## Three ways in", "",
              "- **Read** these pages: no installation.",
              "- **Run** the notebooks in JupyterLab (`.venv/bin/jupyter lab notebooks/`): edit the `profile = ...` "
              "line of a notebook's parameters cell to `\"class\"` and it runs with `params/class.yaml`.",
              "- **Batch**: `python -m lss.reproduce --profile class` (or `cpu`, the main job) runs them all.", ""]
    return "\n".join(lines)


def build(profile: str = "class", out: str | Path | None = None, run: bool = True, log=print,
          threads: int | None = None) -> Path:
    """Render the executed notebooks of ``profile`` and the glossary as HTML, with the learning path as index.

    Parameters
    ----------
    profile : str
        Whose executed notebooks to render (``runs/<profile>/executed/``).
    out : path, optional
        Output folder (default ``<root>/site``); pages are overwritten.
    run : bool
        Bring the profile's run up to date first (:func:`lss.reproduce.run`; cached notebooks are skipped).
    threads : int, optional
        Torch/OpenMP threads per notebook kernel for that run (see :func:`lss.reproduce.run`).

    Returns
    -------
    pathlib.Path
        The ``index.html`` written.
    """
    out = Path(out) if out else paths.root() / "site"
    out.mkdir(parents=True, exist_ok=True)
    _copy_mathjax(out)
    if run:
        from . import reproduce

        reproduce.run(profile, log=log, threads=threads)
    executed = paths.root() / "runs" / profile / "executed"
    exporter = _exporter()
    pages = []
    for step in _steps(executed):
        src = executed / f"{step}.ipynb"
        title, sentence = _title_and_sentence(paths.notebooks_dir() / f"{step}.ipynb", step)
        if src.exists():
            body, _ = exporter.from_filename(str(src))
            (out / f"{step}.html").write_text(_fix_links(body))
            log(f"site: {step}.html")
        else:
            log(f"site: {step} has no executed notebook in {executed}; listed without a page")
        pages.append((step, title, sentence, src.exists()))
    glossary = paths.notebooks_dir() / "GLOSSARY.md"
    if glossary.exists():
        (out / "glossary.html").write_text(_markdown_page(glossary.read_text(), "Glossary"))
    index = out / "index.html"
    index.write_text(_markdown_page(index_markdown(pages, profile), "lss course"))
    log(f"site: {index}")
    return index


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lss.site", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="class", help="executed notebooks of this profile (default: class)")
    ap.add_argument("--out", default=None, help="output folder (default: site/)")
    ap.add_argument("--no-run", action="store_true", help="render what runs/<profile>/executed/ holds; run nothing")
    ap.add_argument("--threads", type=int, default=None, help="torch/OpenMP threads per notebook kernel (see lss.reproduce)")
    a = ap.parse_args(argv)
    try:
        import jupyter_server_mathjax  # noqa: F401
        import nbconvert  # noqa: F401
    except ImportError as e:
        print(f"the course site needs the lab extra ({e.name} is missing): pip install -e '.[lab]'", file=sys.stderr)
        return 2
    build(a.profile, a.out, run=not a.no_run, threads=a.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
