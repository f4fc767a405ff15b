"""The package's import graph, read from the source (inpaint/provenance/codegraph.py, lazy imports included): no two
modules import each other through any chain (a package's own __init__ excepted: importing inpaint.a.b runs
inpaint/a/__init__.py, which is not a dependency of inpaint/a/b.py's code), nor do two subpackages, and what
reads a model file (evaluation, `inpaint fill`) does not import the trainer."""

import pytest

from inpaint.provenance import codegraph

PACKAGE = codegraph.PACKAGE_DIR


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _edges() -> dict[str, set[str]]:
    """module -> the modules its code imports (not the packages that merely contain them)."""
    return {m: {i for i in codegraph.imports(m) if not codegraph.module_file(i).name == "__init__.py"} - {m}
            for m in _modules()}


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (depth-first search with a stack of the open path)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, path + [nxt])):
                return found
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_in_the_package():
    assert _cycle(_edges()) is None, f"import cycle: {' -> '.join(_cycle(_edges()))}"


def _unit(module: str) -> str:
    """The part of the design a module belongs to: its subpackage (inpaint.evaluation), or the module itself
    when it sits directly in inpaint/."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_the_subpackages():
    """The folders read as layers: no subpackage imports one that imports it back."""
    edges: dict[str, set[str]] = {}
    for module, imported in _edges().items():
        edges.setdefault(_unit(module), set()).update(_unit(i) for i in imported)
    edges = {unit: imported - {unit} for unit, imported in edges.items()}
    assert _cycle(edges) is None, f"import cycle between subpackages: {' -> '.join(_cycle(edges))}"


@pytest.mark.parametrize("reader", ["inpaint.evaluation.evaluate", "inpaint.evaluation.fill"])
def test_model_file_readers_do_not_import_the_trainer(reader):
    reached = codegraph.closure({reader})
    assert "inpaint.checkpoints" in reached
    trainer = {"inpaint.training.train", "inpaint.training.tune"}
    assert not trainer & reached, sorted(trainer & reached)
