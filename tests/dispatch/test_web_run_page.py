"""The run page's step graph (SVG drawn on the server: a box per step in
its status colour, an arrow per output, dashed for errors, every label
escaped) and its live output tails (``/api/runs/ID/tails``: what is
committed, streamed again after each commit that changes it), on the
console of test_web (real runzeo, real console)."""

import http.client
import json
import re

from dispatch.state import broker, programs
from dispatch.state.database import dispatch_state
from dispatch.web import stepgraph
from tests.dispatch.test_web import console, database  # noqa: F401 (fixtures)

CHAIN = {
    "1": {
        "service": "<script>alert(1)</script>",
        "queue": "a",
        "output": 2,
        "error": [3],
    },
    "2": {"queue": "b", "output": {"more": [3]}},
    "3": {"command": ["echo", "hi"]},
    "start": [[1, {}]],
}


def test_the_graph_has_a_box_per_step_and_an_arrow_per_link():
    svg = str(stepgraph.render(CHAIN, {1: "done", 2: "in progress", 3: "waiting"}))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 4  # start and three steps
    assert svg.count('class="edge edge-output"') == 3  # start->1, 1->2, 2->3
    assert svg.count('class="edge edge-error"') == 1  # 1->3, dashed
    assert "stroke-dasharray" in svg
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'class="node state-in-progress"' in svg
    assert stepgraph.COLOURS["done"] in svg
    # Step 3 is reached through 2: it stands right of it.
    places = {
        int(node): int(x)
        for node, x in re.findall(r'href="#step-(\d+)"><title>.*?<rect x="(\d+)"', svg)
    }
    assert places[1] < places[2] < places[3]


def test_the_run_page_draws_its_graph(console):  # noqa: F811
    page = console.browser.get("/runs/run-00")
    assert page.status == 200
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="step-graph"' in page.text
    assert 'class="node state-done"' in page.text and 'id="step-1"' in page.text
    document = console.browser.get("/api/runs/run-00").json()
    assert "graph" not in document  # the JSON stays data


def events(reply):
    """(event, data) pairs of a server-sent event stream."""
    name = None
    while True:
        line = reply.readline().decode()
        if not line:
            return
        if line.startswith("event: "):
            name = line[7:].strip()
        elif line.startswith("data: "):
            yield name, json.loads(line[6:])


def test_output_tails_stream_what_is_committed(console):  # noqa: F811
    connection = http.client.HTTPConnection("127.0.0.1", console.port, timeout=30)
    connection.request("GET", "/api/runs/run-02/tails")
    reply = connection.getresponse()
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/event-stream"
    stream = events(reply)
    assert next(stream) == ("ready", {})
    with dispatch_state(console.database, write=True) as dispatch:
        message = broker.claim(dispatch, "greet", "runner")
        assert message.run_id == "run-02"
        programs.note_program(message.attempts[-1], output_tail="one\n<b>two</b>\n")
    name, data = next(stream)
    assert name == "tail"
    assert data == {
        "node": 1,
        "message": message.id,
        "attempt": 1,
        "tail": "one\n<b>two</b>\n",
    }
    with dispatch_state(console.database, write=True) as dispatch:
        claimed = dispatch.runs["run-02"].messages[message.id]
        programs.note_program(claimed.attempts[-1], output_tail="one\n<b>two</b>\n3\n")
    assert next(stream)[1]["tail"].endswith("3\n")
    connection.close()
    page = console.browser.get("/runs/run-02")
    assert f'data-tail="{message.id}.1"' in page.text
    assert "&lt;b&gt;two&lt;/b&gt;" in page.text


def test_a_tail_stream_of_no_run_is_a_404(console):  # noqa: F811
    reply = console.browser.get("/api/runs/no-such-run/tails")
    assert reply.status == 404 and "no run 'no-such-run'" in reply.json()["error"]
