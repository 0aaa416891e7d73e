"""The layout of ``src/dispatch`` holds: no import cycles (imports inside
functions count; ``if TYPE_CHECKING:`` ones do not), the state layer
imports neither the runtime nor the command line, the runtime does not
import the command line, and no module is over 500 lines."""

import ast
import pkgutil
from pathlib import Path

import dispatch

ROOT = Path(dispatch.__file__).parent
MAX_LINES = 500


def modules():
    """``{module name: path}`` of every module of the dispatch package."""
    found = {"dispatch": ROOT / "__init__.py"}
    for info in pkgutil.walk_packages([str(ROOT)], "dispatch."):
        relative = info.name.split(".")[1:]
        path = ROOT.joinpath(*relative)
        found[info.name] = (
            path / "__init__.py" if info.ispkg else path.with_suffix(".py")
        )
    return found


def _type_checking_only(node, parents):
    return any(
        isinstance(parent, ast.If)
        and "TYPE_CHECKING" in ast.unparse(parent.test)
        and node in ast.walk(parent)
        for parent in parents
    )


def imported(name, path, known):
    """The dispatch modules that module *name* (file *path*) imports."""
    tree = ast.parse(path.read_text())
    guards = [node for node in ast.walk(tree) if isinstance(node, ast.If)]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        if _type_checking_only(node, guards):
            continue
        for candidate in candidates:
            if candidate in known:
                targets.add(candidate)
                break
    targets.discard(name)
    return targets


def graph():
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def find_cycles(edges):
    """Every import path that comes back to where it started."""
    cycles = []
    done = set()

    def visit(name, path):
        for target in sorted(edges[name]):
            if target in path:
                cycles.append(path[path.index(target) :] + [target])
            elif target not in done:
                visit(target, path + [target])
        done.add(name)

    for name in sorted(edges):
        if name not in done:
            visit(name, [name])
    return cycles


def test_the_checker_sees_imports_in_functions_but_not_type_checking_ones(
    tmp_path,
):
    source = tmp_path / "example.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from dispatch.state import model\n"
        "if TYPE_CHECKING:\n"
        "    from dispatch.cli import base\n"
        "def later():\n"
        "    from dispatch.runtime.consumer import Consumer\n"
        "    import dispatch.runtime.kernel\n"
    )
    found = imported("dispatch.state.example", source, modules())
    assert found == {
        "dispatch.state.model",
        "dispatch.runtime.consumer",
        "dispatch.runtime.kernel",
    }


def test_the_checker_finds_a_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(edges) == [["a", "b", "c", "a"]]


def test_no_module_imports_one_that_imports_it_back():
    assert find_cycles(graph()) == []


def test_layers_import_downwards_only():
    wrong = []
    for name, targets in graph().items():
        for target in targets:
            if name.startswith("dispatch.state") and target.startswith(
                ("dispatch.runtime", "dispatch.cli")
            ):
                wrong.append((name, target))
            if name.startswith("dispatch.runtime") and target.startswith(
                "dispatch.cli"
            ):
                wrong.append((name, target))
    assert wrong == []


def test_no_module_is_over_500_lines():
    long = {
        name: count
        for name, path in modules().items()
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_folder_of_modules_is_a_package():
    # A folder without __init__.py is left out by find_packages (setup.py).
    folders = {path.parent for path in ROOT.rglob("*.py")}
    assert sorted(str(f) for f in folders if not (f / "__init__.py").exists()) == []
