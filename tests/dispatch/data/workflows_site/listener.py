"""A workflows program that subscribes to queue ``wake`` on the ``zeo``
transport with a poll interval of an hour, says ``subscribed``, and prints
the first two messages it gets.  The first was sent before it subscribed;
the second is sent once the first came, when the transport is waiting: it
can only come in time if another client's commit wakes the transport."""

import json
import queue

import workflows.transport

transport_class = workflows.transport.lookup("zeo")
transport_class.config["--zeo-poll"] = 3600
transport = transport_class()
assert transport.connect(), "cannot connect"
received = queue.Queue()
transport.subscribe("wake", lambda header, message: received.put(message))
print("subscribed", flush=True)
for _ in range(2):
    print(json.dumps(received.get(timeout=60)), flush=True)
transport.disconnect()
