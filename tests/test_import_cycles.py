"""No module of zeo, papa or dispatch imports another that imports it
back, even lazily, and no package imports one above it.

:func:`import_graph` reads every module of a package (any package: it takes
its name) and records each import statement, those inside functions too,
except under ``if TYPE_CHECKING:``; :func:`find_cycle` walks the graph.  A
second test imports each module in a fresh interpreter with a meta-path hook
recording who imported whom, and checks the static graph holds every edge
that really ran, so the walk cannot miss an import style it does not read.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Run in a fresh interpreter: import one module and print the edges
# (importer, imported) of every module imported for the first time.
RECORDER = r"""
import importlib.abc, json, sys

PACKAGE, MODULE = sys.argv[1], sys.argv[2]
edges = set()


class Recorder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        frame = sys._getframe(1)
        while frame is not None and (
            frame.f_code.co_filename.startswith("<frozen")
            or frame.f_globals.get("__name__") == __name__
        ):
            frame = frame.f_back
        importer = frame.f_globals.get("__name__") if frame is not None else None
        if importer and fullname.split(".")[0] == PACKAGE:
            edges.add((importer, fullname))
        return None  # the ordinary finders do the finding


sys.meta_path.insert(0, Recorder())
__import__(MODULE)
print(json.dumps(sorted(edge for edge in edges if edge[0].split(".")[0] == PACKAGE)))
"""


def _package_directory(package: str, path: Path | None) -> Path:
    if path is not None:
        return path / package
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, package
    return Path(next(iter(spec.submodule_search_locations)))


def _module_names(package: str, directory: Path) -> dict[str, Path]:
    modules = {}
    for file in sorted(directory.rglob("*.py")):
        parts = list(file.relative_to(directory).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join([package, *parts])] = file
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth, but for the
    TYPE_CHECKING-only ones (their else branch can run, so it is kept)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:length]) for length in range(1, len(parts))]


def import_graph(package: str, path: Path | None = None) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (or may, lazily).

    ``path`` is the folder holding the package (default: where Python
    finds it).  Importing ``a.b.c`` runs ``a`` and ``a.b`` too, so those are
    edges as well, except the importer's own parent packages (they are
    always imported before it: that is how packages work, not a cycle).
    """
    modules = _module_names(package, _package_directory(package, path))
    return {name: _imported_by(name, file, modules) for name, file in modules.items()}


def _imported_by(name: str, file: Path, modules: dict[str, Path]) -> set[str]:
    own_package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    implied = set(_ancestors(name))
    targets: set[str] = set()

    def add(target: str) -> None:
        for module in [*_ancestors(target), target]:
            if module in modules and module not in implied and module != name:
                targets.add(module)

    for statement in _imports(ast.parse(file.read_text(), str(file))):
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                add(alias.name)
            continue
        if statement.level:
            base = own_package.split(".")
            base = base[: len(base) - statement.level + 1]
            source = ".".join(base + ([statement.module] if statement.module else []))
        else:
            source = statement.module or ""
        submodules = [f"{source}.{alias.name}" for alias in statement.names]
        names_only = [module for module in submodules if module not in modules]
        if names_only or source not in implied:
            add(source)  # the names come from running the module itself
        for module in submodules:
            if module in modules:
                add(module)
    return targets


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first = last), or None."""
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(module: str) -> list[str] | None:
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target in on_stack:
                return stack[stack.index(target) :] + [target]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        on_stack.discard(module)
        done.add(module)
        return None

    for module in sorted(graph):
        if module not in done:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


# Modules that import an optional extra absent from the venv, and the peer
# folder (``make peers``) that provides it; without it they are not imported.
OPTIONAL_PEERS = {"dispatch.workflows.transport": ROOT / ".peers" / "workflows"}


def runtime_import_edges(package: str, module: str) -> set[tuple[str, str]]:
    """The first-time imports within ``package`` when a fresh interpreter
    imports ``module``, as (importer, imported)."""
    environment = dict(os.environ)
    peer = OPTIONAL_PEERS.get(module)
    if peer is not None:
        if not (peer / ".installed").exists():
            return set()
        environment["PYTHONPATH"] = os.pathsep.join(
            [str(peer), environment.get("PYTHONPATH", "")]
        )
    result = subprocess.run(
        [sys.executable, "-c", RECORDER, package, module],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=environment,
    )
    return {tuple(edge) for edge in json.loads(result.stdout)}


PACKAGES = ["zeo", "papa", "dispatch"]
# Dependencies point down only (DESIGN.md section 2).
MAY_IMPORT = {"zeo": set(), "papa": set(), "dispatch": {"zeo", "papa"}}
# papa.hub, the JupyterHub spawner, sits on top like dispatch: it may keep
# its servers' records in zeo (zeo_state); nothing else of papa imports it.
MAY_IMPORT_BELOW = {"papa.hub": {"zeo"}}


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package):
    graph = import_graph(package)
    assert len(graph) > 10
    assert find_cycle(graph) is None


def test_papa_walk_reaches_the_kernel_and_the_session():
    graph = import_graph("papa")
    assert "papa.kernel.listener" in graph and "papa.session" in graph


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_those_below(package):
    others = set(PACKAGES) - {package} - MAY_IMPORT[package]
    upward = set()
    for module, file in _module_names(
        package, _package_directory(package, None)
    ).items():
        for node in _imports(ast.parse(file.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if node.level == 0
                else []
            )
            allowed = {
                top
                for prefix, tops in MAY_IMPORT_BELOW.items()
                if module == prefix or module.startswith(prefix + ".")
                for top in tops
            }
            upward.update(
                (module, name)
                for name in names
                if name.split(".")[0] in others - allowed
            )
    assert not upward


def test_dispatch_state_imports_neither_runtime_nor_cli():
    graph = import_graph("dispatch")
    upward = {
        (module, imported)
        for module, targets in graph.items()
        if module.startswith("dispatch.state")
        for imported in targets
        if imported.startswith(("dispatch.runtime", "dispatch.cli"))
    }
    assert "dispatch.state.broker" in graph
    assert not upward


@pytest.mark.parametrize("package", PACKAGES)
def test_every_import_that_runs_is_in_the_static_graph(package):
    graph = import_graph(package)
    missing = set()
    for module in sorted(graph):
        if module.endswith("__main__"):
            continue  # importing it runs the program
        for importer, imported in runtime_import_edges(package, module):
            if importer in graph and imported not in graph[importer]:
                if imported not in _ancestors(importer):
                    missing.add((importer, imported))
    assert not missing


def test_the_walk_sees_lazy_imports_and_skips_type_checking(tmp_path):
    package = tmp_path / "loopy"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("from .deep import value\n")
    (package / "inner" / "deep.py").write_text("value = 1\n")
    (package / "first.py").write_text("from . import second\n")
    (package / "second.py").write_text(
        "def later():\n    from .first import something\n"
    )
    (package / "typed.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from .first import x\n"
        "else:\n    import loopy.inner.deep\n"
    )
    graph = import_graph("loopy", tmp_path)
    assert graph["loopy.first"] == {"loopy.second"}
    assert graph["loopy.second"] == {"loopy.first"}
    assert graph["loopy.typed"] == {"loopy.inner", "loopy.inner.deep"}
    assert graph["loopy.inner"] == {"loopy.inner.deep"}
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"loopy.first", "loopy.second"}
    (package / "second.py").write_text("def later():\n    return 2\n")
    assert find_cycle(import_graph("loopy", tmp_path)) is None


def test_zeo_protocol_is_pure():
    """zeo.protocol imports no other part of zeo but its exceptions, and
    nothing that does I/O: the sessions are tested without sockets."""
    graph = import_graph("zeo")
    protocol = {m: t for m, t in graph.items() if m.startswith("zeo.protocol")}
    assert {"zeo.protocol.client", "zeo.protocol.server"} <= set(protocol)
    outside = {
        (module, imported)
        for module, targets in protocol.items()
        for imported in targets
        if not imported.startswith(("zeo.protocol", "zeo.exceptions"))
        and imported != "zeo"
    }
    assert not outside
    io_modules = {"asyncio", "socket", "select", "selectors", "ssl", "uvloop"}
    for module in protocol:
        path = ROOT / "src" / (module.replace(".", "/") + ".py")
        if not path.exists():
            path = path.with_suffix("") / "__init__.py"
        imported = {
            alias.name.split(".")[0]
            for node in _imports(ast.parse(path.read_text()))
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in _imports(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and node.level == 0
        }
        assert not imported & io_modules, module
