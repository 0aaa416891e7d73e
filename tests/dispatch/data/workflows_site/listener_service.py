"""A zocalo site's service on a topic, written as python-workflows' docs
show, plus one keyword of the ``zeo`` transport: ``durable=NAME`` (a
durable subscription, as a durable queue bound to a RabbitMQ topic
exchange).  Every message on topic ``fanout`` is acked and reported on
queue ``heard`` in one transaction, as ``{"by": NAME, "durable": True,
"message": ...}``; a non-durable subscription to the same topic reports
with ``"durable": False``.  NAME is ``$LISTENER_NAME``."""

import os

import workflows.recipe
from workflows.services.common_service import CommonService


class Listener(CommonService):
    _service_name = "Listener"
    _logger_name = "listener"

    def initializing(self):
        self.name = os.environ["LISTENER_NAME"]
        workflows.recipe.wrap_subscribe_broadcast(
            self._transport,
            "fanout",
            self.durable,
            durable=self.name,
            acknowledgement=True,
            allow_non_recipe_messages=True,
            log_extender=self.extend_log,
        )
        workflows.recipe.wrap_subscribe_broadcast(
            self._transport,
            "fanout",
            self.transient,
            allow_non_recipe_messages=True,
        )

    def durable(self, rw, header, message):
        txn = self._transport.transaction_begin(subscription_id=header["subscription"])
        self._transport.ack(header, transaction=txn)
        report = {"by": self.name, "durable": True, "message": message}
        self._transport.send("heard", report, transaction=txn)
        self._transport.transaction_commit(txn)

    def transient(self, rw, header, message):
        report = {"by": self.name, "durable": False, "message": message}
        self._transport.send("heard", report)
