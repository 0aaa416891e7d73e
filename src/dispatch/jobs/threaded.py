"""The threaded phase walk behind ``checknrun(parallel=N)``.

A job is *decided* for the phase once every job it depends on is decided;
then the sequential walk's rule applies (attempt it if every dependency
succeeded, it is not successful yet, has tries left and was not attempted
in this phase).  Since in the sequential walk's post-order every dependency
is also decided before its dependents, both walks reach the same statuses;
only the order of independent attempts differs.  Ready jobs start in
post-order, so the first threads take what the sequential walk would.

User code runs in the worker threads; the engine's state and the database
are touched only by the calling thread.
"""

import heapq
import logging
import sys
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from .attempt import attempt_job

logger = logging.getLogger(__name__)


def walk_phase_threaded(engine, order, workers):
    """One phase with up to *workers* attempts at a time (see module doc)."""
    # A job is decided once every dependency is decided; then the same
    # rule as the sequential walk applies, so statuses match it.
    deps = engine.graph.deps
    position = {name: index for index, name in enumerate(order)}
    waiting = {name: len(deps[name]) for name in order}
    dependents = {name: [] for name in order}
    for name in order:
        for child in deps[name]:
            dependents[child].append(name)
    ready = [(position[name], name) for name in order if not waiting[name]]
    heapq.heapify(ready)
    complete = {}
    running = {}

    def decided(name, blocked):
        complete[name] = not blocked and engine.nodestatus[name] is True
        for parent in dependents[name]:
            waiting[parent] -= 1
            if not waiting[parent]:
                heapq.heappush(ready, (position[parent], parent))

    with ThreadPoolExecutor(workers, thread_name_prefix="dispatch-job") as pool:
        while ready or running:
            while ready and len(running) < workers:
                _, name = heapq.heappop(ready)
                blocked = not all(complete[child] for child in deps[name])
                engine.nodestatus.setdefault(name, None)
                if blocked or not engine._attemptable(name):
                    decided(name, blocked)
                    continue
                delay = engine._book_attempt(name)
                future = pool.submit(_attempt_in_thread, engine, name, delay)
                running[future] = name
            if not running:
                continue
            engine._flush()
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(finished, key=lambda f: position[running[f]]):
                name = running.pop(future)
                outcome = future.result()
                with engine._output_lock:
                    for line in outcome.lines:
                        sys.stderr.write(line)
                engine._record(outcome)
                decided(name, False)


def _attempt_in_thread(engine, name, delay):
    engine._start_after(name, delay)
    lines = []
    outcome = attempt_job(*engine._attempt_arguments(name), write=lines.append)
    outcome.lines = lines
    return outcome
