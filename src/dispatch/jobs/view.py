"""Read-only views of recorded runs: rows for ``dispatch jobs show`` and the
coloured graph for ``dispatch jobs graph``.  Nothing here needs the job
classes: a run can be inspected from any machine that reaches the database.
"""

from .graph import JobGraph, colour_for


def describe_status(record):
    """A word for a job's state, as ``dispatch jobs show`` prints it."""
    if record is None:
        return "pending"
    if record.running:
        return "running"
    if record.status is True:
        return "eventually passed" if record.decided_by == "recheck" else "passed"
    if record.status is False:
        return "interrupted" if record.decided_by == "interrupted" else "failed"
    if record.reason == "blocked":
        return "blocked"
    if record.reason == "out_of_tries":
        return "out of tries"
    return "pending"


def run_rows(run):
    """One dict per job of *run*, in attempt order (dependencies first)."""
    structure = run.graph
    graph = JobGraph.from_structure(structure.root, structure.deps)
    graph = graph if structure.root else None
    names = list(graph.post_order()) if graph else []
    listed = set(names)
    names += [name for name in run.nodes.keys() if name not in listed]
    rows = []
    for name in names:
        record = run.nodes.get(name)
        attempts = record.attempts if record is not None else ()
        last_error = None
        if record is not None and record.status is not True:
            for attempt in reversed(attempts):
                if attempt.get("error") or attempt.get("state") == "interrupted":
                    last_error = attempt.get("error") or record.error
                    break
        rows.append(
            {
                "name": name,
                "status": describe_status(record),
                "attempts": len(attempts),
                "blocked_by": list(record.blocked_by) if record is not None else [],
                "last_error": last_error,
                "result": record.result_repr if record is not None else None,
                "in_graph": graph is not None and name in graph.deps,
            }
        )
    return rows


def run_graph(run):
    """(JobGraph, colours) of a recorded run, for DOT/SVG export."""
    graph = JobGraph.from_structure(run.graph.root, run.graph.deps)
    colours = {}
    for name in graph.deps:
        record = run.nodes.get(name)
        if record is None or record.running:
            colours[name] = None
            continue
        colours[name] = colour_for(record.status, record.decided_by, record.reason)
    return graph, colours
