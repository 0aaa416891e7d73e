"""Acknowledgement, transactions and bad input on the ``zeo`` transport,
driven through python-workflows' own transport API.  Prints what each
delivery looked like, as JSON, for the test to check against zeo."""

import json
import queue

import workflows
import workflows.transport

TIMEOUT = 60
transport = workflows.transport.lookup("zeo")()
assert transport.connect(), "cannot connect"
received = queue.Queue()
observed = {}

# Bad input: a recipe message pointing at no step is refused with a clear
# error, and the transport goes on working.
try:
    transport.send(
        "probe",
        {"recipe": {"1": {"queue": "probe"}, "start": [[1, {}]]}, "recipe-pointer": 9},
        headers={"workflows-recipe": True},
    )
except ValueError as error:
    observed["bad"] = str(error)

transport.send("probe", {"n": 1}, headers={"origin": "probe"})
subscription = transport.subscribe(
    "probe", lambda header, message: received.put((header, message)),
    acknowledgement=True,
)  # fmt: skip


def next_delivery():
    header, message = received.get(timeout=TIMEOUT)
    observed.setdefault("deliveries", []).append(
        {"redelivered": bool(header.get("redelivered")), "origin": header.get("origin"),
         "message": message, "count": header.get("dispatch-deliveries")}
    )  # fmt: skip
    return header


header = next_delivery()
transport.nack(header)  # delivered again after the back-off
header = next_delivery()
txn = transport.transaction_begin(subscription_id=subscription)
transport.ack(header, transaction=txn)
transport.send("probe.out", {"never": "sent"}, transaction=txn)
transport.transaction_abort(txn)  # the ack is undone: delivered again at once
header = next_delivery()
txn = transport.transaction_begin(subscription_id=subscription)
transport.ack(header, transaction=txn)
transport.send("probe.out", {"sent": "once"}, transaction=txn)
transport.transaction_commit(txn)
try:
    transport.ack(header)
except workflows.Error as error:
    observed["ack twice"] = str(error)
except ValueError as error:
    observed["ack twice"] = str(error)
transport.disconnect()
print(json.dumps(observed))
