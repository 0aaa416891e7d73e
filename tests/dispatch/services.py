"""Services used by the dispatch CLI tests (run as ``module:Class``)."""

from dispatch.runtime.service import Service


class Upper(Service):
    """Upper-cases ``text`` and sends it on."""

    queue = "upper"

    def handle(self, recipe_wrapper, payload):
        recipe_wrapper.send({"text": payload["text"].upper()})


class Collect(Service):
    """Accepts anything (the end of a pipeline)."""

    queue = "collect"

    def handle(self, recipe_wrapper, payload):
        if payload.get("text") != payload.get("text", "").upper():
            raise ValueError("expected upper case")


class Poison(Service):
    """Always fails; redelivers at once so the test needs no waiting."""

    queue = "poison"
    backoff_base = 0.0

    def handle(self, recipe_wrapper, payload):
        raise RuntimeError(f"cannot handle {payload!r}")


class Hold(Service):
    """The first delivery of a message announces itself in the file named
    by ``payload["holding"]`` and never ends (the test kills the process);
    later deliveries append a line to ``payload["done"]`` and send on."""

    queue = "hold"

    def handle(self, recipe_wrapper, payload):
        import os
        import threading

        if not os.path.exists(payload["holding"]):
            with open(payload["holding"] + ".tmp", "w") as marker:
                marker.write(str(os.getpid()))
            os.rename(payload["holding"] + ".tmp", payload["holding"])
            threading.Event().wait()
        with open(payload["done"], "a") as done:
            done.write(f"{os.getpid()}\n")
        recipe_wrapper.send({"handled": True})


class Heard(Service):
    """Subscribes to topic ``fanout`` (durably, as ``dispatch``) and appends
    each payload, a JSON line, to the file named by ``$HEARD_FILE``."""

    topic = "fanout"
    subscription = "dispatch"

    def handle(self, recipe_wrapper, payload):
        import json
        import os

        with open(os.environ["HEARD_FILE"], "a") as heard:
            heard.write(json.dumps(payload) + "\n")


class StorageReport(Service):
    """Writes its site configuration's storage (``-C FILE.yaml -e ENV``) as
    JSON to ``payload["report"]``, then holds the message until asked to
    stop (so the test sees a claim in ``dispatch status``)."""

    queue = "storage-report"

    def __init__(self):
        import threading

        self.stopping = threading.Event()

    def stop_requested(self):
        self.stopping.set()

    def handle(self, recipe_wrapper, payload):
        import json
        import os

        with open(payload["report"] + ".tmp", "w") as report:
            json.dump(self.config.storage, report)
        os.rename(payload["report"] + ".tmp", payload["report"])
        self.stopping.wait(120)
