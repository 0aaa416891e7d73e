"""The benchmark's zocalo service, written as python-workflows' docs show:
every recipe step on queue ``bench.step`` is acknowledged and passed on to
the step's output in one transaction.  The first step stamps the time it
ran (``t1``) into the message, for the go-to-first-step latency.

Run by real ``zocalo.service -s BenchStep`` on either transport.  So that
all instances start consuming together, ``initializing`` writes
``ready-PID`` into ``$BENCH_READY_DIR`` and waits there for a ``go`` file
before it subscribes (a benchmark barrier, not something a service does).
"""

import os
import time
from pathlib import Path

import workflows.recipe
from workflows.services.common_service import CommonService


class BenchStep(CommonService):
    _service_name = "BenchStep"
    _logger_name = "benchstep"

    def initializing(self):
        ready = Path(os.environ["BENCH_READY_DIR"])
        (ready / f"ready-{os.getpid()}").touch()
        while not (ready / "go").exists():
            time.sleep(0.01)
        workflows.recipe.wrap_subscribe(
            self._transport, "bench.step", self.step, acknowledgement=True
        )

    def step(self, rw, header, message):
        if "t1" not in message:
            message = dict(message, t1=time.time())
        txn = self._transport.transaction_begin(subscription_id=header["subscription"])
        self._transport.ack(header, transaction=txn)
        rw.send(message, transaction=txn)
        self._transport.transaction_commit(txn)
