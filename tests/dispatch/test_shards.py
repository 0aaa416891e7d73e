"""Per-writer shards: a consumer's sends are filed in its home shard (id,
run index, step index, queue), indexes read in order across shards, and a
contended consumer keeps to its home only within the claim slack (first in,
first out beyond it)."""

from BTrees.OOBTree import OOBTree
from persistent import Persistent

from dispatch.runtime.consumer import Consumer
from dispatch.state import broker, model, shards
from tests.dispatch.test_broker import NOW, read, start


class Holder(Persistent):
    """Owner of a ShardedIndex for the in-memory tests."""

    trees = None
    old = None


def test_an_index_reads_in_order_across_shards_and_its_legacy_tree():
    holder = Holder()
    holder.old = OOBTree({"b": 2, "e": 5})
    index = shards.ShardedIndex(holder, "trees", "old", OOBTree, lambda key: ord(key))
    index["a"], index["d"], index["c"] = 1, 4, 3
    assert len(holder.trees) == 3  # one tree per shard
    assert list(index.keys()) == ["a", "b", "c", "d", "e"]
    assert list(index.values()) == [1, 2, 3, 4, 5]
    assert list(index.keys(max="c")) == ["a", "b", "c"]
    assert index["b"] == 2 and index.get("z") is None and "e" in index
    assert index.minKey() == "a" and len(index) == 5
    index["b"] = 20  # an old key is changed where it is
    assert holder.old["b"] == 20
    assert index.pop("b") == 20
    del index["e"]
    assert holder.old is None  # emptied, then dropped
    assert list(index.items()) == [("a", 1), ("c", 3), ("d", 4)]


def test_ids_name_their_shard():
    for shard in range(shards.SHARDS):
        message_id = model.new_id(shard)
        assert len(message_id) == 24
        assert shards.shard_of_id(message_id) == shard
    assert 0 <= shards.shard_of_id("not-an-id") < shards.SHARDS


def test_a_consumer_files_what_it_sends_in_its_home_shard(zeo_database):
    recipe = {"1": {"queue": "in", "output": 2}, "2": {"queue": "out"}}
    recipe["start"] = [[1, n] for n in range(3)]
    run_id = start(zeo_database, recipe)
    consumer = Consumer(zeo_database, "in", lambda rw, payload: rw.send(payload))
    home = consumer.shard
    try:
        assert [m.payload for m in consumer.process_batch(5, NOW)] == [0, 1, 2]
    finally:
        consumer.close()

    def check(dispatch):
        run = dispatch.runs[run_id]
        sent = run.steps[2].messages(run)
        assert [m.payload for m in sent] == [0, 1, 2]
        assert {shards.shard_of_id(m.id) for m in sent} == {home}
        assert set(run.steps[2].message_id_shards) == {home}
        queue = dispatch.queues["out"]
        assert set(queue.ready_shards) == {home}
        assert [m.payload for m in queue.ready.values()] == [0, 1, 2]

    read(zeo_database, check)


def test_a_contended_claim_keeps_home_only_within_the_slack(zeo_database):
    connection = zeo_database.open()
    try:
        with connection.transaction_manager:
            dispatch = broker.get_dispatch(connection.root())
            run = broker.start_run(
                dispatch,
                {
                    "1": {"queue": "q"},
                    "2": {"queue": "x", "output": 1},
                    "start": [[2, 0]],
                },
                now=NOW,
            )
            older = broker.enqueue(dispatch, run, 1, "older", [], {}, now=NOW, shard=3)
            home = broker.enqueue(
                dispatch, run, 1, "home", [], {}, now=NOW + 0.5, shard=7
            )
            late = broker.enqueue(
                dispatch, run, 1, "late", [], {}, now=NOW + 5, shard=7
            )
        with connection.transaction_manager:
            dispatch = broker.get_dispatch(connection.root())

            def claim(**options):
                return broker.claim(dispatch, "q", "c", now=NOW + 10, **options)

            # Home holds a message 0.5 s younger than the oldest: home first.
            assert claim(home=7, slack=1.0) is home
            # Its next one is 5 s younger: the oldest goes first.
            assert claim(home=7, slack=1.0) is older
            assert claim(home=7, slack=1.0) is late
            assert claim(home=7) is None
        with connection.transaction_manager:
            dispatch = broker.get_dispatch(connection.root())
            run = broker.start_run(
                dispatch,
                {
                    "1": {"queue": "r"},
                    "2": {"queue": "x", "output": 1},
                    "start": [[2, 0]],
                },
                now=NOW,
            )
            first = broker.enqueue(dispatch, run, 1, 1, [], {}, now=NOW, shard=3)
            broker.enqueue(dispatch, run, 1, 2, [], {}, now=NOW + 0.5, shard=7)
            # Alone (no home), strictly first in, first out; told not to
            # steal, a contended consumer with nothing at home takes nothing.
            assert (
                broker.claim(dispatch, "r", "c", now=NOW + 1, home=9, steal=False)
                is None
            )
            assert broker.claim(dispatch, "r", "c", now=NOW + 1) is first
    finally:
        connection.close()
