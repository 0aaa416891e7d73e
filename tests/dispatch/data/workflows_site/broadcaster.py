"""A python-workflows program that broadcasts plain messages on a topic
through the ``zeo`` transport: the topic is its argument; each line of
standard input is one JSON message, answered by a line ``sent`` once it is
broadcast."""

import json
import sys

import workflows.transport

transport = workflows.transport.lookup("zeo")()
assert transport.connect(), "cannot connect"
for line in sys.stdin:
    transport.broadcast(sys.argv[1], json.loads(line))
    print("sent", flush=True)
transport.disconnect()
