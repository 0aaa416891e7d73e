"""A handful of dispatch's tests (tests/dispatch) with their zeo server
serving RelStorage on the session's PostgreSQL: this module overrides the
``storage_backend`` fixture the servers' storage section follows
(tests/conftest.py).  The whole chosen set runs with ``pytest
tests/dispatch/test_consumers.py ... --storage relstorage``
(docs/scaling.rst, "Tests")."""

from __future__ import annotations

import pytest

from tests.dispatch.conftest import direct_storage, runzeo, zeo_database
from tests.dispatch.test_broker import (
    test_a_conflict_at_completion_reapplies_the_sends_not_the_handler,
    test_a_run_through_two_queues,
)
from tests.dispatch.test_consumers import (
    test_a_consumer_killed_mid_message_is_redelivered_exactly_once,
    test_two_processes_on_a_runzeo_server_share_a_queue,
)
from tests.dispatch.test_resume import test_kill_half_way_and_resume_in_a_new_process
from tests.dispatch.test_retrying import test_a_conflict_is_retried_in_a_new_transaction
from tests.dispatch.test_shards import (
    test_a_contended_claim_keeps_home_only_within_the_slack,
)
from tests.dispatch.test_topics import test_every_subscriber_gets_every_message

__all__ = [
    "direct_storage",
    "runzeo",
    "test_a_conflict_at_completion_reapplies_the_sends_not_the_handler",
    "test_a_conflict_is_retried_in_a_new_transaction",
    "test_a_consumer_killed_mid_message_is_redelivered_exactly_once",
    "test_a_contended_claim_keeps_home_only_within_the_slack",
    "test_a_run_through_two_queues",
    "test_every_subscriber_gets_every_message",
    "test_kill_half_way_and_resume_in_a_new_process",
    "test_two_processes_on_a_runzeo_server_share_a_queue",
    "zeo_database",
]


@pytest.fixture
def storage_backend() -> str:
    return "relstorage"
