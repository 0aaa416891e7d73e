"""The benchmark's workflows program (not a service), on the transport
named by its first argument (``pika`` or ``zeo``), as any workflows program
names its transport.

``send N``: start N runs of the 3-step recipe, each a RecipeWrapper start
as zocalo's ``go`` makes one; prints ``sent``.
``collect N``: reads ``bench.done`` until N messages came; prints the
arrival time of the last and the stamps of each as JSON.
``latency N``: N times, start one run and wait for its end; prints the
go-to-first-step delays as JSON.
"""

import json
import queue
import sys
import time

import workflows.transport
from workflows.recipe import Recipe, RecipeWrapper

TIMEOUT = 600
RECIPE = {
    "1": {"service": "BenchStep", "queue": "bench.step", "output": 2},
    "2": {"service": "BenchStep", "queue": "bench.step", "output": 3},
    "3": {"service": "BenchStep", "queue": "bench.step", "output": 4},
    "4": {"queue": "bench.done"},
}


def connect(name, port):
    # lookup() falls back to its default for a name it does not know: name
    # the class as zocalo.service's -t does.
    transport_class = workflows.transport.lookup(
        "PikaTransport" if name == "pika" else name
    )
    if name == "pika":
        transport_class.defaults["--rabbit-host"] = "127.0.0.1"
        transport_class.defaults["--rabbit-port"] = port
    transport = transport_class()
    assert transport.connect(), f"cannot connect to the {name} transport"
    return transport


def start(transport, n):
    recipe = Recipe(dict(RECIPE, start=[[1, {"n": n, "t0": time.time()}]]))
    RecipeWrapper(recipe=recipe, transport=transport).start()


def main():
    name, port, verb, count = (
        sys.argv[1],
        int(sys.argv[2]),
        sys.argv[3],
        int(sys.argv[4]),
    )
    transport = connect(name, port)
    arrived = queue.Queue()

    def done(header, message):
        arrived.put((time.time(), message))

    if verb == "send":
        for n in range(count):
            start(transport, n)
        print("sent", flush=True)
    elif verb == "collect":
        transport.subscribe("bench.done", done)
        print("listening", flush=True)
        last = 0.0
        for _ in range(count):
            last, _message = arrived.get(timeout=TIMEOUT)
        print(json.dumps({"last": last}), flush=True)
    elif verb == "latency":
        transport.subscribe("bench.done", done)
        delays = []
        for n in range(count):
            start(transport, n)
            _when, message = arrived.get(timeout=TIMEOUT)
            payload = message["payload"]  # a recipe message: the step's payload
            delays.append(payload["t1"] - payload["t0"])
        print(json.dumps({"delays": delays}), flush=True)
    transport.disconnect()


if __name__ == "__main__":
    main()
