"""The job graph: built from a root Job class, validated, walked, exported.

Nodes are named by the class ``__name__`` (DoJobber's identity, which the
verbose lines print), but unlike DoJobber two *different* classes with the
same name are an error instead of one silently standing in for the other.
Everything here is iterative, so a chain of thousands of jobs does not hit
Python's recursion limit.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from .errors import (
    DependencyEntryError,
    GraphRenderError,
    JobConfigurationError,
    JobTypeError,
    JobValueError,
)

logger = logging.getLogger(__name__)

# Colours of DoJobber's graphs, plus two for the None states it leaves blank.
COLOUR_PASSED = "green"  # the first Check passed
COLOUR_EVENTUALLY_PASSED = "darkgreen"  # the recheck after Run passed
COLOUR_FAILED = "red"
COLOUR_BLOCKED = "orange"  # a dependency is not successful
COLOUR_OUT_OF_TRIES = "gray"  # not attempted: no tries left from earlier


def colour_for(
    status: bool | None, decided_by: str | None = None, reason: str | None = None
) -> str | None:
    """The fill colour of a node: DoJobber's three, plus blocked and spent."""
    if status is True:
        return COLOUR_EVENTUALLY_PASSED if decided_by == "recheck" else COLOUR_PASSED
    if status is False:
        return COLOUR_FAILED
    if reason == "blocked":
        return COLOUR_BLOCKED
    if reason == "out_of_tries":
        return COLOUR_OUT_OF_TRIES
    return None


TEXT_FORMATS = frozenset({"dot", "canon", "gv", "xdot", "svg", "json", "plain"})


def describe_class(job_class: object) -> str:
    """``module.QualifiedName`` of a class, to tell same-named classes apart."""
    module = getattr(job_class, "__module__", "?")
    qualified = getattr(job_class, "__qualname__", getattr(job_class, "__name__", "?"))
    return f"{module}.{qualified}"


def _validate_tries(name: str, tries: object) -> None:
    # bool is an int subclass, and a float like 1.1 would (in DoJobber)
    # pass an int() check yet give two attempts: accept true integers only.
    if isinstance(tries, bool) or not isinstance(tries, int):
        # DoJobber read TRIES with int(): text and floats were values it
        # could not (or should not) use, anything else a wrong type.
        error = JobValueError if isinstance(tries, (str, float)) else JobTypeError
        raise error(
            f'TRIES "{tries}" of job {name!r} must be an integer >= 1 '
            f"(it counts attempts: 1 means no retry)."
        )
    if tries < 1:
        raise JobConfigurationError(
            f'TRIES "{tries}" of job {name!r} must be >= 1 '
            f"(it counts attempts: 1 means no retry)."
        )


def _validate_delay(name: str, delay: object) -> None:
    if isinstance(delay, bool) or not isinstance(delay, (int, float)):
        raise JobTypeError(
            f'RETRY_DELAY "{delay}" of job {name!r} must be a number of seconds >= 0.'
        )
    if delay < 0 or not math.isfinite(delay):
        raise JobConfigurationError(
            f'RETRY_DELAY "{delay}" of job {name!r} cannot be negative or infinite.'
        )


def validate_defaults(default_tries: object, default_retry_delay: object) -> None:
    """Check the engine-wide defaults with the same rules as per-job values."""
    _validate_tries("(default_tries)", default_tries)
    _validate_delay("(default_retry_delay)", default_retry_delay)


class JobGraph:
    """Nodes (job names), their classes, dependencies and retry settings.

    ``deps[name]`` lists dependency names in ``DEPS`` order: the order in
    which they are walked, so it decides the order of attempts.
    """

    # Job classes are typed as plain types: a graph read back from a database
    # has names only, and DEPS may name jobs by string.
    classes: dict[str, type]
    deps: dict[str, tuple[str, ...]]
    tries: dict[str, int]
    retry_delay: dict[str, float]
    root: str
    _post_orders: dict[str, tuple[str, ...]]

    def __init__(
        self, root: type, default_tries: int = 3, default_retry_delay: float = 1
    ) -> None:
        validate_defaults(default_tries, default_retry_delay)
        self.classes = {}
        self.deps = {}
        self.tries = {}
        self.retry_delay = {}
        self.root = self._discover(root, default_tries, default_retry_delay)
        self._check_cycles()
        self._post_orders = {}

    @classmethod
    def from_structure(cls, root: str, deps: Mapping[str, Iterable[str]]) -> JobGraph:
        """A graph without classes (read back from a database) for export."""
        graph = cls.__new__(cls)
        graph.classes = {}
        graph.deps = {name: tuple(children) for name, children in deps.items()}
        graph.tries = {}
        graph.retry_delay = {}
        graph.root = root
        graph._post_orders = {}
        return graph

    # -- building ---------------------------------------------------------------

    def _discover(
        self, root: object, default_tries: int, default_retry_delay: float
    ) -> str:
        if isinstance(root, str) or not isinstance(root, type):
            raise JobConfigurationError(
                f"the root of a job graph must be a Job class, got {root!r}"
            )
        # (dependent, name) to resolve once all are known
        string_references: list[tuple[str, str]] = []
        pending: list[type] = [root]
        while pending:
            job_class = pending.pop()
            name = job_class.__name__
            known = self.classes.get(name)
            if known is job_class:
                continue
            if known is not None:
                raise JobConfigurationError(
                    f"two different job classes are named {name!r}: "
                    f"{describe_class(known)} and {describe_class(job_class)}; "
                    f"job names must be unique in a graph (rename one)."
                )
            self.classes[name] = job_class
            tries = getattr(job_class, "TRIES", None)
            tries = default_tries if tries is None else tries
            _validate_tries(name, tries)
            delay = getattr(job_class, "RETRY_DELAY", None)
            delay = default_retry_delay if delay is None else delay
            _validate_delay(name, delay)
            self.tries[name] = tries
            self.retry_delay[name] = delay
            children: list[str] = []
            for dependency in self._deps_of(job_class, name):
                if isinstance(dependency, str):
                    string_references.append((name, dependency))
                    children.append(dependency)
                    continue
                children.append(dependency.__name__)
            self.deps[name] = tuple(children)
            # Reversed so that the first dependency is discovered first.
            pending.extend(
                dependency
                for dependency in reversed(list(self._deps_of(job_class, name)))
                if not isinstance(dependency, str)
            )
        for dependent, reference in string_references:
            if reference not in self.classes:
                raise JobConfigurationError(
                    f"DEPS of job {dependent!r} names {reference!r}, but no job "
                    f"class of that name is in the graph; list the class itself."
                )
        return root.__name__

    @staticmethod
    def _deps_of(job_class: type, name: str) -> Sequence[str | type]:
        deps = getattr(job_class, "DEPS", ())
        if deps is None:
            return ()
        if isinstance(deps, (str, type)):
            raise JobTypeError(
                f'DEPS for {name} is not a list; is "{deps}" (write DEPS = [...]).'
            )
        try:
            items = list(deps)
        except TypeError:
            raise JobTypeError(
                f'DEPS for {name} is not iterable; is "{deps}" (write DEPS = [...]).'
            ) from None
        seen: set[str] = set()
        for item in items:
            if not isinstance(item, (str, type)):
                raise DependencyEntryError(
                    f"DEPS of job {name!r} contains {item!r}, which is neither a "
                    f"Job class nor a job name."
                )
            key = item if isinstance(item, str) else item.__name__
            if key in seen:
                raise JobConfigurationError(
                    f"DEPS of job {name!r} lists {key!r} twice; list it once."
                )
            seen.add(key)
        return items

    def _check_cycles(self) -> None:
        # Colour marking: a dependency that is still on the walk's stack
        # closes a cycle, which is reported as the path around it.
        finished: set[str] = set()
        for start in self.deps:
            if start in finished:
                continue
            on_stack = {start: 0}
            path = [start]
            stack = [iter(self.deps[start])]
            while stack:
                for child in stack[-1]:
                    if child in on_stack:
                        cycle = path[on_stack[child] :] + [child]
                        raise JobConfigurationError(
                            "Programmer error: graph contains cycles: "
                            + " -> ".join(cycle)
                            + " (each job needs the next one first)."
                        )
                    if child not in finished:
                        on_stack[child] = len(path)
                        path.append(child)
                        stack.append(iter(self.deps[child]))
                        break
                else:
                    stack.pop()
                    done = path.pop()
                    del on_stack[done]
                    finished.add(done)

    # -- walking ----------------------------------------------------------------

    def post_order(self, start: str | None = None) -> tuple[str, ...]:
        """Names reachable from *start* (default root), dependencies first.

        Depth-first, children in DEPS order, each node listed once, after all
        its dependencies: DoJobber's order of attempts.
        """
        start = self.root if start is None else start
        cached = self._post_orders.get(start)
        if cached is not None:
            return cached
        if start not in self.deps:
            raise KeyError(f"no job named {start!r} in this graph")
        order: list[str] = []
        visited = {start}
        stack = [(start, iter(self.deps[start]))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if child not in visited:
                    visited.add(child)
                    stack.append((child, iter(self.deps[child])))
                    break
            else:
                stack.pop()
                order.append(node)
        self._post_orders[start] = result = tuple(order)
        return result

    def dependents(self) -> dict[str, list[str]]:
        """name -> names that list it in DEPS (the reverse edges)."""
        reverse: dict[str, list[str]] = {name: [] for name in self.deps}
        for name, children in self.deps.items():
            for child in children:
                reverse[child].append(name)
        return reverse

    def edges(self) -> list[tuple[str, str]]:
        """``(dependent, dependency)`` pairs, DoJobber's edge direction."""
        return [
            (name, child) for name, children in self.deps.items() for child in children
        ]

    # -- export -----------------------------------------------------------------

    def to_dot(self, colours: Mapping[str, str | None] | None = None) -> str:
        """DOT text; *colours* maps names to a fill colour (None: unfilled)."""
        colours = colours or {}
        lines = ["digraph graphname {"]
        for name in self.deps:
            colour = colours.get(name)
            if colour:
                lines.append(f"{dot_id(name)} [style=filled, color={colour}];")
            else:
                lines.append(f"{dot_id(name)};")
        for dependent, dependency in self.edges():
            lines.append(f"{dot_id(dependent)} -> {dot_id(dependency)};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def to_json(self, nodes: Mapping[str, Mapping[str, Any]] | None = None) -> str:
        """JSON text: root, nodes (with whatever *nodes* maps them to), edges."""
        nodes = nodes or {}
        document = {
            "root": self.root,
            "nodes": [{"name": name, **nodes.get(name, {})} for name in self.deps],
            "edges": [list(edge) for edge in self.edges()],
        }
        return json.dumps(document, indent=2, default=str) + "\n"


_PLAIN_ID = re.compile(
    r"[A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*|-?(\.[0-9]+|[0-9]+(\.[0-9]*)?)"
)


def dot_id(name: str) -> str:
    """A DOT identifier: bare when DOT allows it, else double-quoted."""
    if _PLAIN_ID.fullmatch(name) and name.lower() not in _DOT_KEYWORDS:
        return name
    escaped = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


_DOT_KEYWORDS = frozenset({"node", "edge", "graph", "digraph", "subgraph", "strict"})


def render(dot_text: str, fmt: str) -> bytes:
    """Bytes of *dot_text* rendered by graphviz ``dot -T<fmt>``.

    ``dot`` and ``json`` are produced by the caller without graphviz; every
    other format needs the ``dot`` program, and its absence is an error
    (DoJobber silently wrote nothing).
    """
    program = shutil.which("dot")
    if program is None:
        raise GraphRenderError(
            f"cannot render a {fmt!r} graph: the graphviz 'dot' program is not "
            f"installed (install graphviz, or ask for format 'dot' or 'json')."
        )
    completed = subprocess.run(
        [program, f"-T{fmt}"],
        input=dot_text.encode(),
        capture_output=True,
        check=False,
    )
    if completed.returncode != 0:
        raise GraphRenderError(
            f"'dot -T{fmt}' failed with status {completed.returncode}: "
            f"{completed.stderr.decode(errors='replace').strip()}"
        )
    return completed.stdout


def write_bytes_or_text(stream: IO[Any], data: bytes, fmt: str) -> None:
    """Write *data* (bytes) to a binary or a text stream without corrupting it.

    Text formats are decoded for text streams; binary formats go to the text
    stream's underlying buffer, or fail clearly when it has none.
    """
    if _is_text_stream(stream):
        if fmt in TEXT_FORMATS:
            stream.write(data.decode())
            return
        buffer = getattr(stream, "buffer", None)
        if buffer is None:
            raise TypeError(
                f"a {fmt!r} graph is binary: open the file in binary mode ('wb')."
            )
        stream.flush()
        buffer.write(data)
        return
    stream.write(data)


def _is_text_stream(stream: object) -> bool:
    import io

    if isinstance(stream, io.TextIOBase):
        return True
    if isinstance(stream, (io.RawIOBase, io.BufferedIOBase)):
        return False
    return hasattr(stream, "encoding") and not hasattr(stream, "readinto")
