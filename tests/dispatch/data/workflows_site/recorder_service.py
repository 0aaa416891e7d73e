"""A zocalo site's service, written as python-workflows' docs show: it knows
nothing of dispatch.  Recipe messages on queue ``recorder`` are acked and
answered in one transaction on the step's ``done`` output; plain messages
on queue ``plain`` are answered on ``plain.answers``; a message whose
payload says ``nack`` is rejected; every idle second it broadcasts on topic
``recorder.idle``."""

import workflows.recipe
from workflows.services.common_service import CommonService


class Recorder(CommonService):
    _service_name = "Recorder"
    _logger_name = "recorder"

    def initializing(self):
        workflows.recipe.wrap_subscribe(
            self._transport,
            "recorder",
            self.receive,
            acknowledgement=True,
            log_extender=self.extend_log,
        )
        self._transport.subscribe("plain", self.plain, acknowledgement=True)
        self._register_idle(1, self.idle)

    def receive(self, rw, header, message):
        if isinstance(message, dict) and message.get("nack"):
            self._transport.nack(header)
            return
        txn = self._transport.transaction_begin(subscription_id=header["subscription"])
        self._transport.ack(header, transaction=txn)
        rw.send_to("done", {"seen": message, "by": "Recorder"}, transaction=txn)
        self._transport.transaction_commit(txn)

    def plain(self, header, message):
        txn = self._transport.transaction_begin(subscription_id=header["subscription"])
        self._transport.ack(header, transaction=txn)
        self._transport.send("plain.answers", {"answer": message}, transaction=txn)
        self._transport.transaction_commit(txn)

    def idle(self):
        self._transport.broadcast("recorder.idle", {"idle": True})
