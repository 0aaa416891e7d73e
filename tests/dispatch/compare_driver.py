"""Run one graph of graphs.py on one engine and print what happened as JSON.

``python compare_driver.py ENGINE GRAPH [OPTIONS_JSON]`` with ENGINE ``ours``
or ``peer`` (real DoJobber, importable only with the peer's PYTHONPATH).
Verbose and debug lines go to stderr, as each engine writes them.
"""

import io
import json
import sys

import graphs


def main():
    engine, graph_name = sys.argv[1], sys.argv[2]
    extra = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    graph_format = extra.pop("graph_format", None)
    if engine == "peer":
        import dojobber as module
    else:
        import dispatch.jobs as module
    root, options = graphs.build(module, graph_name)
    options.update(extra)
    dojob = module.DoJobber()
    dojob.configure(root, **options)
    dojob.set_args("first", key="value")
    dojob.checknrun()
    failed = {name for name, status in dojob.nodestatus.items() if status is False}
    report = {
        "status": dojob.nodestatus,
        "success": bool(dojob.success()),
        "partial_success": bool(dojob.partial_success()),
        "results": {name: repr(value) for name, value in dojob.noderesults.items()},
        "exceptions": {
            name: f"{type(error).__name__}: {error}"
            for name, error in dojob.nodeexceptions.items()
            if name in failed
        },
        "counts": graphs.LOG["counts"],
        "events": graphs.LOG["events"],
    }
    if graph_format:
        buffer = io.BytesIO()
        dojob.write_graph(buffer, graph_format)
        report["graph"] = buffer.getvalue().decode()
    sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
