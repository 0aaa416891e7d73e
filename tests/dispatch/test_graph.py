"""Graph export: DOT and JSON without graphviz, SVG/PNG with it."""

import io
import json
import shutil

import pytest

from dispatch.jobs import DoJobber, DummyJob, GraphRenderError, Job
from dispatch.jobs.graph import JobGraph, dot_id

needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="graphviz 'dot' not installed"
)


def evening():
    class Passes(DummyJob):
        pass

    class Eventually(Job):
        def Check(self):
            if self._check_phase == "check":
                raise RuntimeError("not yet")

        def Run(self):
            pass

    class Fails(Job):
        TRIES = 1

        def Check(self):
            raise RuntimeError("never")

        def Run(self):
            pass

    blocked = type("Is Blocked", (DummyJob,), {"DEPS": [Fails, Passes]})
    top = type("Top", (DummyJob,), {"DEPS": [Eventually, blocked]})
    return top


def configured():
    dojob = DoJobber()
    dojob.configure(evening(), default_retry_delay=0)
    return dojob


def test_dot_text_before_a_run_has_no_colours():
    dojob = configured()
    text = dojob.graph_bytes("dot").decode()
    assert text.splitlines() == [
        "digraph graphname {",
        "Top;",
        "Eventually;",
        '"Is Blocked";',
        "Fails;",
        "Passes;",
        "Top -> Eventually;",
        'Top -> "Is Blocked";',
        '"Is Blocked" -> Fails;',
        '"Is Blocked" -> Passes;',
        "}",
    ]


def test_colours_after_a_run():
    dojob = configured()
    dojob.checknrun()
    text = dojob.graph_bytes("dot").decode()
    assert "Passes [style=filled, color=green];" in text
    assert "Eventually [style=filled, color=darkgreen];" in text
    assert "Fails [style=filled, color=red];" in text
    assert '"Is Blocked" [style=filled, color=orange];' in text
    assert "Top [style=filled, color=orange];" in text


def test_out_of_tries_is_grey():
    class Spent(Job):
        TRIES = 1

        def Check(self):
            raise RuntimeError("no")

        def Run(self):
            pass

    dojob = DoJobber()
    dojob.configure(Spent, default_retry_delay=0)
    dojob.checknrun()
    dojob.checknrun()
    assert "Spent [style=filled, color=gray];" in dojob.graph_bytes("dot").decode()


def test_json_export():
    dojob = configured()
    dojob.checknrun()
    document = json.loads(dojob.graph_bytes("json"))
    assert document["root"] == "Top"
    nodes = {node["name"]: node for node in document["nodes"]}
    assert nodes["Fails"] == {"name": "Fails", "status": False, "colour": "red"}
    assert nodes["Top"]["status"] is None
    assert ["Is Blocked", "Fails"] in document["edges"]


def test_write_graph_to_binary_and_text_files(tmp_path):
    dojob = configured()
    dojob.checknrun()
    with open(tmp_path / "binary.dot", "wb") as stream:
        dojob.write_graph(stream, "dot")
    with open(tmp_path / "text.dot", "w") as stream:
        dojob.write_graph(stream, "dot")
    assert (tmp_path / "binary.dot").read_bytes() == (
        tmp_path / "text.dot"
    ).read_bytes()
    assert (tmp_path / "text.dot").read_text().startswith("digraph graphname {")


def test_a_missing_graphviz_is_a_clear_error_and_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' anywhere on it
    dojob = configured()
    stream = io.BytesIO()
    with pytest.raises(GraphRenderError, match="graphviz 'dot' program"):
        dojob.write_graph(stream, "svg")
    assert stream.getvalue() == b""
    dojob.write_graph(stream, "dot")  # still works without graphviz
    assert stream.getvalue().startswith(b"digraph")


@needs_dot
def test_svg_and_png_with_graphviz(tmp_path):
    dojob = configured()
    dojob.checknrun()
    with open(tmp_path / "graph.svg", "w") as stream:  # text mode is fine
        dojob.write_graph(stream, "svg")
    svg = (tmp_path / "graph.svg").read_text()
    assert "<svg" in svg and "Is Blocked" in svg and "orange" in svg
    with open(tmp_path / "graph.png", "wb") as stream:
        dojob.write_graph(stream, "png")
    assert (tmp_path / "graph.png").read_bytes().startswith(b"\x89PNG")
    with pytest.raises(GraphRenderError, match="failed"):
        dojob.write_graph(io.BytesIO(), "no-such-format")


@needs_dot
def test_binary_format_to_a_text_stream_without_buffer_is_refused():
    dojob = configured()
    with pytest.raises(TypeError, match="binary mode"):
        dojob.write_graph(io.StringIO(), "png")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Plain_1", "Plain_1"),
        ("with space", '"with space"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("node", '"node"'),
        ("1st", '"1st"'),
        ("42", "42"),
    ],
)
def test_dot_identifiers(name, expected):
    assert dot_id(name) == expected


def test_graph_rebuilt_from_structure_walks_like_the_original():
    dojob = configured()
    rebuilt = JobGraph.from_structure(dojob.graph.root, dojob.graph.deps)
    assert rebuilt.post_order() == dojob.graph.post_order()
    assert rebuilt.to_dot() == dojob.graph.to_dot()


def test_display_graph_without_imagemagick_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(GraphRenderError, match="'display'"):
        configured().display_graph()
