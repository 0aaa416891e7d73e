"""A consumer in its own process, for the dispatch tests.

usage: consumer_process.py HOST:PORT QUEUE hold|drain [LEASE]

``hold`` claims one message, prints ``claimed ID`` and waits on stdin (the
test kills it there, mid-message); ``drain`` handles messages until none is
due and prints each payload as a JSON line.
"""

import json
import sys

import zeo
from dispatch.runtime.consumer import Consumer


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    queue, mode = sys.argv[2], sys.argv[3]
    lease = float(sys.argv[4]) if len(sys.argv) > 4 else 300.0
    database = zeo.DB((host, int(port)))

    def hold(rw, payload):
        # The claim is committed already: say so, then never finish.
        print("claimed", json.dumps(payload), flush=True)
        sys.stdin.read()

    def record(rw, payload):
        print(json.dumps(payload), flush=True)

    handler = hold if mode == "hold" else record
    consumer = Consumer(database, queue, handler, name=f"process-{mode}", lease=lease)
    while consumer.process_one() is not None:
        pass
    consumer.close()
    database.close()


if __name__ == "__main__":
    main()
