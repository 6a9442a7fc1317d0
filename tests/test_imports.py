"""The import graph of mclab has no cycle, counting every import: at the top, inside ``if``/``try``, and
inside functions and classes.

Walks the AST of every module under ``mclab/`` and collects every ``import``/``from`` statement but those under
``if TYPE_CHECKING:`` (which never run). An import inside a function runs later, so it cannot fail the way a
top-level circle does, but it still makes two modules depend on each other: a function-level import is for a heavy
optional framework (tensorflow, openvino, …), never to dodge a circle. Relative imports are resolved;
``from . import x`` where ``x`` is a submodule imports that submodule, any other imported name comes from the
package's ``__init__``.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

Graph = dict[str, set[str]]


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for the package at ``root`` (a package is its ``__init__.py``)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(body: list[ast.stmt]):
    """Every import statement of ``body``, at any depth (functions, classes, if/try), but under TYPE_CHECKING."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _imports(node.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, ()) or ():
                    yield from _imports([child] if isinstance(child, ast.stmt) else child.body)


def import_graph(root: Path) -> Graph:
    """Edges module -> the package-internal modules it imports, anywhere in the module."""
    modules = _modules(root)
    graph: Graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in _imports(ast.parse(path.read_text(), filename=str(path)).body):
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names}
                continue
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = {f"{target}.{alias.name}" for alias in node.names} & set(modules)
            edges |= submodules
            if len(submodules) < len(node.names):  # some names come from the target module itself
                edges.add(target)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def find_cycle(graph: Graph) -> list[str] | None:
    """One cycle as a path ``[a, b, …, a]``, or None when the graph has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_mclab_import_graph_has_no_cycle():
    graph = import_graph(REPO / "mclab")
    assert "mclab.runtimes.base" in graph and "mclab.cli" in graph  # the walk found the package
    assert "mclab.runtimes.compare" in graph["mclab.runtimes"]  # and resolved its relative imports
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in mclab: {' -> '.join(cycle)}"


def test_mclab_package_imports_only_record():
    """``import mclab`` stays light because the package's ``__init__`` imports nothing but ``mclab.lab.record`` (and
    with it the ``mclab.lab`` package, which imports none of its modules)."""
    graph = import_graph(REPO / "mclab")
    assert graph["mclab"] == {"mclab.lab.record"}
    assert graph["mclab.lab"] == set() and graph["mclab.lab.record"] == set()


def _toy(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "toy"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_a_package_that_re_exports_a_module_importing_it_back_is_a_cycle(tmp_path):
    # the package re-exports compare at its bottom while compare takes names from the package: importing
    # compare first finds the package half-initialised
    root = _toy(tmp_path, {
        "__init__.py": "from .base import Runner\nfrom .compare import compare\n",
        "base.py": "class Runner: ...\n",
        "compare.py": "from . import Runner\n\ndef compare(): ...\n",
    })
    graph = import_graph(root)
    assert graph["toy"] == {"toy.base", "toy.compare"} and graph["toy.compare"] == {"toy"}
    assert find_cycle(graph) == ["toy", "toy.compare", "toy"]


@pytest.mark.parametrize("guard", ["if True:\n    {imp}\n", "try:\n    {imp}\nexcept ImportError:\n    pass\n"],
                         ids=["if", "try"])
def test_imports_inside_top_level_if_and_try_count(tmp_path, guard):
    root = _toy(tmp_path, {
        "__init__.py": "",
        "a.py": guard.format(imp="from .b import g"),
        "sub/__init__.py": "",
        "b.py": "from . import a\nimport toy.sub\n\ndef g(): ...\n",
    })
    graph = import_graph(root)
    assert graph["toy.b"] == {"toy.a", "toy.sub"}
    assert find_cycle(graph) == ["toy.a", "toy.b", "toy.a"]


def test_imports_in_functions_and_classes_count_and_type_checking_does_not(tmp_path):
    root = _toy(tmp_path, {
        "__init__.py": "from . import a\n",
        "a.py": "from . import b\n",
        "b.py": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\nelse:\n    import os\n"
                 "\nclass C:\n    from .c import x\n"),
        "c.py": "x = 1\n",
    })
    graph = import_graph(root)
    assert graph == {"toy": {"toy.a"}, "toy.a": {"toy.b"}, "toy.b": {"toy.c"}, "toy.c": set()}
    assert find_cycle(graph) is None


def test_a_circle_dodged_inside_a_function_is_found_and_named(tmp_path):
    # the shape mclab.quant.api <-> mclab.runtimes.onnxrt once had: each imports the other "here, not at the top"
    root = _toy(tmp_path, {
        "__init__.py": "",
        "quant.py": "def calibrate():\n    from .onnxrt import session\n    return session\n",
        "onnxrt.py": "def build():\n    try:\n        from . import quant\n    finally:\n        pass\n",
    })
    graph = import_graph(root)
    assert graph["toy.quant"] == {"toy.onnxrt"} and graph["toy.onnxrt"] == {"toy.quant"}
    assert find_cycle(graph) == ["toy.onnxrt", "toy.quant", "toy.onnxrt"]
