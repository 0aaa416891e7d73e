"""Client cache statistics, and ZEO_CACHE_TRACE traces that real ZEO 6.2's
``cache_stats`` and ``cache_simul`` read."""

import re
import subprocess

import pytest
from ZODB.tests.MinPO import MinPO
from ZODB.tests.StorageTestBase import zodb_pickle
from ZODB.utils import p64, u64, z64

from tests.support import PYTHON, our_env, peer_env, require_peer
from tests.zeo.client.conftest import wait_until
from tests.zeo.client.test_basic import commit_record
from zeo.cachetrace import summarize


def changes(before, after):
    return {name: after[name] - before[name] for name in ("loads", "hits", "misses")}


def test_statistics_count_hits_misses_stores_and_invalidations(server, client_factory):
    writer = client_factory(server.addr)
    reader = client_factory(server.addr)
    oid = writer.new_oid()
    tid = commit_record(writer, oid, z64, zodb_pickle(MinPO(1)))
    before = reader.cache_statistics()
    assert reader.load(oid)[1] == tid  # a miss, then the reply is stored
    assert reader.load(oid)[1] == tid  # a hit
    after = reader.cache_statistics()
    assert changes(before, after) == {"loads": 2, "hits": 1, "misses": 1}
    assert after["stores"] == before["stores"] + 1
    assert after["records"] == before["records"] + 1
    assert after["bytes"] > before["bytes"]

    commit_record(writer, oid, tid, zodb_pickle(MinPO(2)))
    wait_until(
        lambda: reader.cache_statistics()["invalidations"] == 1,
        message="the reader to see the invalidation",
    )
    # The old revision stays readable as non-current: a hit before the new tid.
    assert reader.loadBefore(oid, p64(u64(tid) + 1))[1] == tid
    assert reader.cache_statistics()["hits"] == after["hits"] + 1


def test_a_small_cache_counts_evictions(server, client_factory):
    writer = client_factory(server.addr)
    oids = [writer.new_oid() for _ in range(20)]
    for oid in oids:
        commit_record(writer, oid, z64, b"x" * 1000)
    reader = client_factory(server.addr, cache_size=5000)
    for oid in oids:
        reader.load(oid)
    statistics = reader.cache_statistics()
    assert statistics["evictions"] >= 15
    assert statistics["bytes"] <= statistics["limit"] == 5000


def exercise(storage, other):
    """Misses, hits and invalidations; return the oids written."""
    oids = [storage.new_oid() for _ in range(5)]
    tids = {
        oid: commit_record(storage, oid, z64, zodb_pickle(MinPO(0))) for oid in oids
    }
    for oid in oids:
        tids[oid] = commit_record(other, oid, tids[oid], zodb_pickle(MinPO(1)))
    wait_until(lambda: storage.lastTransaction() == other.lastTransaction())
    for _ in range(3):
        for oid in oids:
            storage.load(oid)
    return oids


def test_trace_beside_the_persistent_cache_is_read_by_real_zeo(
    server, client_factory, tmp_path, monkeypatch
):
    monkeypatch.setenv("ZEO_CACHE_TRACE", "1")
    cache_file = tmp_path / "client.zec"
    storage = client_factory(server.addr, cache=str(cache_file))
    other = client_factory(server.addr)  # in memory: not traced without a name
    exercise(storage, other)
    statistics = storage.cache_statistics()
    storage.close()
    other.close()
    trace = tmp_path / "client.zec.trace"
    assert sorted(p.name for p in tmp_path.glob("*.trace")) == [trace.name]
    with open(trace, "rb") as stream:
        summary = summarize(stream)
    assert summary["truncated"] is None
    assert summary["opened"] == 1
    assert (summary["loads"], summary["hits"]) == (
        statistics["loads"],
        statistics["hits"],
    )
    assert summary["hits"] >= 10  # the second and third rounds of loads
    assert summary["invalidations"] == statistics["invalidations"] >= 5

    peer = require_peer("zeo")
    stats = subprocess.run(
        [PYTHON, "-m", "ZEO.scripts.cache_stats", str(trace)],
        capture_output=True,
        text=True,
        env=peer_env(peer),
        timeout=60,
    )
    assert stats.returncode == 0, stats.stderr
    rate = 100 * summary["hits"] / summary["loads"]
    assert f"Hit rate:   {rate:.1f}% (load hits / loads)" in stats.stdout
    assert "unknown code" not in stats.stdout
    simulation = subprocess.run(
        [PYTHON, "-m", "ZEO.scripts.cache_simul", str(trace)],
        capture_output=True,
        text=True,
        env=peer_env(peer),
        timeout=60,
    )
    assert simulation.returncode == 0, simulation.stderr
    totals = simulation.stdout.strip().splitlines()[-1].split()
    # START TIME (month, day, hour) DUR. LOADS HITS
    assert [int(totals[4]), int(totals[5])] == [summary["loads"], summary["hits"]]

    ours = subprocess.run(
        [PYTHON, "-m", "zeo.cachetrace", str(trace)],
        capture_output=True,
        text=True,
        env=our_env(),
        timeout=60,
    )
    assert ours.returncode == 0, ours.stderr
    assert f"hit rate {rate:.1f} %" in ours.stdout
    assert re.search(rf"loads {summary['loads']}: hits {summary['hits']}", ours.stdout)


def test_a_named_trace_file_traces_an_in_memory_cache(
    server, client_factory, tmp_path, monkeypatch
):
    trace = tmp_path / "all.trace"
    monkeypatch.setenv("ZEO_CACHE_TRACE", str(trace))
    storage = client_factory(server.addr)
    oid = storage.new_oid()
    commit_record(storage, oid, z64, b"data")
    storage.load(oid)
    storage.close()
    with open(trace, "rb") as stream:
        summary = summarize(stream)
    assert summary["hits"] == 1
    assert summary["stores"] >= 1


def test_tracing_is_off_without_the_variable(server, client_factory, tmp_path):
    storage = client_factory(server.addr, cache=str(tmp_path / "quiet.zec"))
    oid = storage.new_oid()
    commit_record(storage, oid, z64, b"data")
    assert storage.load(oid)[0] == b"data"
    assert storage.cache._trace is None
    storage.close()
    assert list(tmp_path.glob("*.trace")) == []


def test_a_cut_short_trace_is_summarized_up_to_the_cut(tmp_path):
    from zeo.cachetrace import LOAD_HIT, CacheTrace

    path = tmp_path / "cut.trace"
    trace = CacheTrace(str(path))
    trace.write(LOAD_HIT, b"\0" * 8, b"\1" * 8, None, 10)
    trace.close()
    path.write_bytes(path.read_bytes() + b"\0" * 7)
    with open(path, "rb") as stream:
        summary = summarize(stream)
    assert summary["hits"] == 1
    assert "cut short" in summary["truncated"]
    missing = subprocess.run(
        [PYTHON, "-m", "zeo.cachetrace", str(tmp_path / "none.trace")],
        capture_output=True,
        text=True,
        env=our_env(),
        timeout=60,
    )
    assert missing.returncode == 1
    assert "cannot read" in missing.stderr


@pytest.mark.parametrize("length", [0, 255, 2**23 + 5])
def test_record_lengths_fit_zeo_field(tmp_path, length):
    from zeo.cachetrace import STORE_CURRENT, CacheTrace, read_records

    path = tmp_path / "lengths.trace"
    trace = CacheTrace(str(path))
    trace.write(STORE_CURRENT, b"\0" * 8, b"\1" * 8, None, length)
    trace.close()
    with open(path, "rb") as stream:
        records = list(read_records(stream))
    assert [record[1:3] for record in records] == [
        (0, 0),
        (STORE_CURRENT, min(length, 0x7FFFFF)),
    ]
