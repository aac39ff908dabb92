"""The package's shape: no import cycle among its modules, counting the imports made inside functions."""

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "longmab_utils"


def imports(path: Path, modules: set[str]) -> set[str]:
    """The package modules one module imports anywhere in its source, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("longmab_utils")):
            parts = (node.module or "").removeprefix("longmab_utils").lstrip(".").split(".")
            found |= {parts[0]} if parts[0] else {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("longmab_utils.")}
    return (found & modules) - {path.stem}


def graph(folder: Path) -> dict[str, set[str]]:
    """Each module of a package folder with the modules it imports."""
    modules = {p.stem for p in folder.glob("*.py")}
    return {p.stem: imports(p, modules) for p in folder.glob("*.py")}


def test_no_module_imports_one_that_imports_it_back():
    try:
        tuple(TopologicalSorter(graph(PACKAGE)).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_the_check_sees_a_cycle_made_by_an_import_inside_a_function(tmp_path):
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from .a import y\n")
    (tmp_path / "c.py").write_text("from longmab_utils import a\n")
    assert graph(tmp_path) == {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    with pytest.raises(CycleError):
        tuple(TopologicalSorter(graph(tmp_path)).static_order())
