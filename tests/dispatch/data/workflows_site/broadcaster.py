"""A python-workflows program that broadcasts plain messages on a topic
through the ``zeo`` transport.  Arguments: the topic, then one JSON
message per argument."""

import json
import sys

import workflows.transport

transport = workflows.transport.lookup("zeo")()
assert transport.connect(), "cannot connect"
for text in sys.argv[2:]:
    transport.broadcast(sys.argv[1], json.loads(text))
transport.disconnect()
print("broadcast")
