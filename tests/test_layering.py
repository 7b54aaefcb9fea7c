"""The house keeps its layers: no import cycles inside lss, and no module imports a layer above its own.

The layers read as the pipeline (DESIGN.md, "The house as it should read"); a module may import its
own layer or those below. The graph is read from the source (``from .x import``, ``from lss.x
import``), imports inside functions included.
"""
import ast
from pathlib import Path

import lss

LAYERS = [
    # ground
    {"paths", "utils", "persist", "base", "trajio", "structure", "stats", "results", "viewer", "latent"},
    # concepts
    {"fourwell", "gomodel", "features", "srv", "mdn", "decoder", "cwgan", "flow", "msm", "kinetics", "analysis"},
    # composed
    {"data", "pipeline", "simulator", "decoding", "plots", "score", "adaptive", "efficiency", "compare"},
    # outer
    {"reproduce", "notebook", "cli", "site", "exercises"},
]


def _graph() -> dict[str, set[str]]:
    root = Path(lss.__file__).parent
    graph = {}
    for path in sorted(root.glob("*.py")):
        name = path.stem
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 1:
                deps.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif node.level == 0 and node.module and node.module.split(".")[0] == "lss":
                parts = node.module.split(".")
                deps.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        graph[name] = {d for d in deps if d != name and (root / f"{d}.py").exists()}
    return graph


def test_every_module_has_a_layer():
    modules = set(_graph()) - {"__init__"}
    placed = set().union(*LAYERS)
    assert modules <= placed, f"modules without a layer (add them to LAYERS): {sorted(modules - placed)}"


def test_no_module_imports_upward():
    level = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    upward = [(m, d) for m, deps in _graph().items() if m in level for d in deps if level.get(d, 0) > level[m]]
    assert not upward, f"imports of a higher layer: {upward}"


def test_no_import_cycles():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for d in graph.get(m, ()):
            if state.get(d) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(stack + [m, d])}")
            if d not in state:
                visit(d, stack + [m])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [])


def test_the_module_map_lists_every_module_in_its_layer():
    """lss/__init__.py's map and LAYERS agree: every module named once, under the layer it is in."""
    doc = lss.__doc__
    sections = {name: doc.split(f"\n{name}\n")[1].split("\n\n")[0] for name in ("ground", "concepts", "composed", "outer")}
    for layer, (name, text) in zip(LAYERS, sections.items()):
        named = {line.split(":mod:`lss.")[1].split("`")[0] for line in text.splitlines() if ":mod:`lss." in line}
        assert named == layer, (name, sorted(named ^ layer))

