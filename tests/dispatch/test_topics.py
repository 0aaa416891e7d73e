"""Topics fan out: each durable subscription gets its own copy of every
message sent to the topic after it subscribed, kept until acknowledged; on a
real zeo server (in a thread)."""

import pytest
import transaction

from dispatch.errors import CommandError
from dispatch.runtime.service import Service, make_consumer
from dispatch.state import admin, broker, model, topics
from dispatch.state import transport as messages
from tests.dispatch.test_broker import read, start

RECIPE = {
    "1": {"queue": "produce", "output": 2},
    "2": {"service": "Listeners", "topic": "results", "queue": "archive"},
    "start": [[1, {"n": 1}], [1, {"n": 2}]],
}
TOPIC_ONLY = {"1": {"topic": "results"}, "start": [[1, {"direct": True}]]}


class Producer(Service):
    queue = "produce"

    def handle(self, recipe_wrapper, payload):
        recipe_wrapper.send({"made": payload["n"]})


class Listener(Service):
    topic = "results"
    backoff_base = 0.0

    def __init__(self):
        self.heard = []

    def handle(self, recipe_wrapper, payload):
        if payload.get("fail"):
            raise RuntimeError("cannot take it")
        self.heard.append(payload)


class Other(Listener):
    subscription = "other"


def write(database, function):
    """*function*(dispatch) in a committed transaction of its own."""
    manager = transaction.TransactionManager()
    connection = database.open(manager)
    try:
        with manager:
            return function(broker.get_dispatch(connection.root()))
    finally:
        connection.close()


def drain(consumer):
    handled = []
    while (message := consumer.process_one()) is not None:
        handled.append(message)
    return handled


def test_every_subscriber_gets_every_message(zeo_database):
    first, second = Listener(), Other()
    consumers = [make_consumer(s, zeo_database) for s in (first, second)]
    producer = make_consumer(Producer(), zeo_database)
    try:
        assert [c.queue for c in consumers] == ["results@Listener", "results@other"]
        run_id = start(zeo_database, RECIPE, now=None)
        assert len(drain(producer)) == 2
        for consumer in consumers:
            assert len(drain(consumer)) == 2
        # Made after the sends: it gets only what is sent from now on.
        late = Listener()
        late.subscription = "late"
        consumers.append(make_consumer(late, zeo_database))
        assert drain(consumers[-1]) == []
        later = start(zeo_database, TOPIC_ONLY, now=None)
        assert [len(drain(c)) for c in consumers] == [1, 1, 1]
    finally:
        for consumer in [*consumers, producer]:
            consumer.close()
    made = [{"made": 1}, {"made": 2}]
    assert sorted(first.heard[:2], key=str) == made
    assert sorted(second.heard[:2], key=str) == made
    assert first.heard[2] == second.heard[2] == late.heard[0] == {"direct": True}

    def check(dispatch):
        run = dispatch.runs[run_id]
        assert run.open_count() == 2  # only the two on queue archive are left
        # Step 2 has a queue and a topic: a message on its queue, and a copy
        # for each subscriber, which leaves the run once acknowledged.
        step = run.steps[2]
        assert [m.queue for m in step.messages(run)] == ["archive", "archive"]
        assert dispatch.queues["archive"].pending_count() == 2
        assert step.acknowledged == 4
        for name in ("Listener", "other"):
            assert dispatch.queues[f"results@{name}"].pending_count() == 0
        assert dispatch.runs[later].status == model.SUCCEEDED
        assert dispatch.runs[later].steps[1].status(dispatch.runs[later]) == "done"
        assert len(dispatch.runs[later].messages) == 0
        # Non-durable listeners read the topic's log: all three are there.
        logged = messages.broadcasts_after(dispatch, "results", "")
        assert sorted(str(body["payload"]) for _k, _h, body in logged) == sorted(
            map(str, [*made, {"direct": True}])
        )

    read(zeo_database, check)


def test_a_failing_copy_is_retried_for_its_subscriber_only(zeo_database):
    first, second = Listener(), Other()
    first.max_deliveries = 2
    consumers = [make_consumer(s, zeo_database) for s in (first, second)]
    try:
        failing = {**TOPIC_ONLY, "start": [[1, {"fail": 1}]]}
        run_id = start(zeo_database, failing, now=None)
        assert len(drain(consumers[0])) == 2  # then a dead letter
        assert consumers[1].process_one() is not None  # fails too, once
        write(
            zeo_database,
            lambda dispatch: admin.retry_dead(dispatch, dispatch.runs[run_id]),
        )

        def queues(dispatch):
            run = dispatch.runs[run_id]
            return sorted((m.queue, m.state) for m in run.messages.values())

        assert read(zeo_database, queues) == [
            ("results@Listener", model.DEAD),
            ("results@Listener", model.PENDING),
            ("results@other", model.PENDING),
        ]
        assert read(zeo_database, lambda d: d.runs[run_id].status) == model.RUNNING
    finally:
        for consumer in consumers:
            consumer.close()


def test_deleting_a_subscription_cancels_its_copies(zeo_database):
    consumer = make_consumer(Listener(), zeo_database)
    consumer.close()
    run_id = start(zeo_database, TOPIC_ONLY, now=None)
    assert read(zeo_database, lambda d: d.queues["results@Listener"].pending_count())
    cancelled = write(
        zeo_database,
        lambda dispatch: topics.unsubscribe(dispatch, "results", "Listener"),
    )
    assert cancelled == 1

    def check(dispatch):
        assert topics.subscriptions(dispatch) == []
        assert "results@Listener" not in dispatch.queues
        run = dispatch.runs[run_id]
        [copy] = run.messages.values()
        assert copy.state == model.CANCELLED_MESSAGE
        assert copy.reason == "its subscription was deleted"
        assert run.status == model.SUCCEEDED

    read(zeo_database, check)
    again = start(zeo_database, TOPIC_ONLY)  # nobody subscribes: no copy
    assert read(zeo_database, lambda d: len(d.runs[again].messages)) == 0
    with pytest.raises(topics.TopicError, match="no subscription 'Listener'"):
        write(zeo_database, lambda d: topics.unsubscribe(d, "results", "Listener"))


@pytest.mark.parametrize(
    "topic, name, expected",
    [
        ("results", "a@b", "may not contain '@'"),
        ("", "a", "a topic name is needed"),
        ("results", " ", "a subscription name is needed"),
    ],
)
def test_bad_subscription_names_are_refused(zeo_database, topic, name, expected):
    class Named(Listener):
        pass

    Named.topic, Named.subscription = topic, name
    with pytest.raises(CommandError if topic else topics.TopicError, match=expected):
        if topic:
            make_consumer(Named(), zeo_database)
        else:
            topics.subscription_queue(topic, name)
    assert read(zeo_database, topics.subscriptions) == []


def test_plain_broadcasts_copy_only_when_someone_subscribed(zeo_database):
    def send(dispatch):
        return messages.broadcast(dispatch, "news", {"origin": "t"}, {"n": 1})

    assert write(zeo_database, send) == []
    write(zeo_database, lambda d: topics.subscribe(d, "news", "reader"))
    write(zeo_database, send)

    def check(dispatch):
        [pending] = [m for m in dispatch.queues["news@reader"].ready.values()]
        assert pending.payload == {"n": 1} and pending.topic == "news"
        header, body = messages.delivery(dispatch, pending, 7)
        assert body == {"n": 1} and header["origin"] == "t"
        assert len(messages.broadcasts_after(dispatch, "news", "")) == 2

    read(zeo_database, check)


def test_subscriptions_command_lists_and_deletes(zeo_database, capsys):
    from dispatch.cli import main

    host, port = zeo_database.address
    zeo = ["--zeo", f"{host}:{port}"]
    write(zeo_database, lambda d: topics.subscribe(d, "results", "keeper"))
    write(zeo_database, lambda d: topics.subscribe(d, "results", "leaver"))
    start(zeo_database, TOPIC_ONLY, now=None)
    assert main(["subscriptions", *zeo]) == 0
    rows = [line.split()[:3] for line in capsys.readouterr().out.splitlines()]
    assert rows == [
        ["TOPIC", "NAME", "PENDING"],
        ["results", "keeper", "1"],
        ["results", "leaver", "1"],
    ]
    assert main(["subscriptions", "results", "--delete", "leaver", *zeo]) == 0
    assert "leaver on topic results deleted; 1 pending copy cancelled" in (
        capsys.readouterr().out
    )
    assert main(["subscriptions", "results", "--delete", "leaver", *zeo]) == 1
    assert "no subscription 'leaver' on topic 'results'" in capsys.readouterr().err
    assert main(["subscriptions", "--delete", "keeper", *zeo]) == 2
    assert "needs the TOPIC" in capsys.readouterr().err
    names = read(zeo_database, lambda d: [s.name for s in topics.subscriptions(d)])
    assert names == ["keeper"]


def test_a_dead_copy_reinjected_goes_to_its_subscriber_only(zeo_database):
    from dispatch.state import deadletters

    first, second = Listener(), Other()
    first.max_deliveries = 1
    consumers = [make_consumer(s, zeo_database) for s in (first, second)]
    try:
        run_id = start(
            zeo_database, {**TOPIC_ONLY, "start": [[1, {"fail": 1}]]}, now=None
        )
        assert len(drain(consumers[0])) == 1  # a dead letter at once
        [dead] = read(zeo_database, lambda d: list(d.dead_letters))
        write(zeo_database, lambda d: deadletters.reinject_dead_letter(d, dead))

        def queues(dispatch):
            run = dispatch.runs[run_id]
            return sorted((m.queue, m.state, m.topic) for m in run.messages.values())

        assert read(zeo_database, queues) == [
            ("results@Listener", model.DEAD, "results"),
            ("results@Listener", model.PENDING, "results"),
            ("results@other", model.PENDING, "results"),
        ]
    finally:
        for consumer in consumers:
            consumer.close()


def test_draining_copies_to_their_steps_queue_leaves_them(zeo_database):
    make_consumer(Listener(), zeo_database).close()
    both = {"1": {"queue": "archive", "topic": "results"}, "start": [[1, {}]]}
    start(zeo_database, both, now=None)
    moved = write(zeo_database, lambda d: admin.drain(d, "results@Listener", "."))
    assert moved == []
    assert read(zeo_database, lambda d: d.queues["results@Listener"].pending_count())
