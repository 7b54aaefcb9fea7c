"""The course site: executed notebooks rendered as HTML, a learning-path index whose links resolve,
links between notebooks and to the glossary pointing to the pages, answers kept collapsed."""
import re

import nbformat
import pytest

from lss import paths, site


@pytest.fixture
def executed_root(tmp_path, monkeypatch):
    """A repository with two notebooks, one of them executed (with an output), and a glossary."""
    monkeypatch.setenv("LSS_ROOT", str(tmp_path))
    (tmp_path / "notebooks").mkdir()
    ex = tmp_path / "runs" / "class" / "executed"
    ex.mkdir(parents=True)
    for step, title in (("01_four_well", "01 · Four-well validation"), ("02_trpcage_data", "02 · Trp-cage data")):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\nSee the [glossary](GLOSSARY.md) and "
                                                  "[02](02_trpcage_data.ipynb)."),
                    nbformat.v4.new_code_cell("print(6 * 7)"),
                    nbformat.v4.new_markdown_cell("**1.** Try it.\n\n<details><summary>Answer</summary>\n\n"
                                                  "It prints 42.\n</details>")]
        nbformat.write(nb, tmp_path / "notebooks" / f"{step}.ipynb")
    nb = nbformat.read(tmp_path / "notebooks" / "01_four_well.ipynb", as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="42\n")]
    nbformat.write(nb, ex / "01_four_well.ipynb")
    (tmp_path / "notebooks" / "GLOSSARY.md").write_text("# Glossary\n\n**Lag.** The time between two frames.\n")
    return tmp_path


def test_site_renders_executed_notebooks_and_every_index_link_resolves(executed_root):
    index = site.build("class", run=False, log=lambda s: None)
    out = index.parent
    assert out == paths.root() / "site"
    page = (out / "01_four_well.html").read_text()
    assert "42" in page, "the executed output is on the page"
    assert 'href="02_trpcage_data.html"' in page and 'href="glossary.html"' in page and ".ipynb\"" not in page
    assert "<details>" in page and "<summary>Answer</summary>" in page, "answers stay collapsed"
    html = index.read_text()
    links = re.findall(r'href="([^"#:]+\.html)"', html)
    assert "01_four_well.html" in links and "glossary.html" in links
    assert all((out / link).exists() for link in links), [link for link in links if not (out / link).exists()]
    # a notebook without an executed run is listed in order, without a dead link
    assert "02 · Trp-cage data (not executed in this build)" in html and "02_trpcage_data.html" not in links
    assert html.index("Four-well") < html.index("Trp-cage data")
    assert "The time between two frames" in (out / "glossary.html").read_text()


def test_the_real_glossary_defines_every_term_the_issue_asks_for():
    text = (paths.notebooks_dir() / "GLOSSARY.md").read_text()
    for term in ("VAMP-2", "Implied timescale", "CK test", "PCCA+", "MSM", "**Q ", "Total variation", "JS distance",
                 "WGAN-GP", "Lag"):
        assert term in text, term


def test_pages_load_mathjax_from_beside_them_not_from_the_internet(executed_root):
    index = site.build("class", run=False, log=lambda s: None)
    out = index.parent
    assert (out / "mathjax" / "MathJax.js").exists()
    for page in ("index.html", "01_four_well.html", "glossary.html"):
        text = (out / page).read_text()
        assert 'src="mathjax/MathJax.js' in text, page
        assert "cdnjs.cloudflare.com/ajax/libs/mathjax" not in text, page
