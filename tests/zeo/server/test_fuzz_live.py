"""Random calls from many connections against a live server.

The short version of the live fuzz target (``make fuzz`` runs more
connections: ``FUZZ_EXAMPLES``/100).  Each connection registers, then sends
calls of random methods with random arguments, well and badly shaped, one-way
and not.  A connection of well-shaped two-way calls must be served to the
end; one that breaks the protocol must be closed.  Afterwards the server
must still serve the unchanged record to a new client and commit (no
transaction or lock was left behind) and have logged no traceback.
"""

import os
import random

import pytest
from ZODB.utils import maxtid, p64, z64

from zeo.protocol import frame
from zeo.protocol.signatures import SIGNATURES

from . import test_robustness
from .conftest import ServerError
from .test_robustness import assert_still_serving, commit, registered

server = test_robustness.server  # the fixture: a server holding one record

CONNECTIONS = max(20, int(os.environ.get("FUZZ_EXAMPLES", "2000")) // 100)
CALLS_PER_CONNECTION = 30
METHODS = sorted(SIGNATURES) + ["eval", "__class__", "", "storea" * 20]


def random_value(generator, depth=0):
    choice = generator.randrange(11 if depth < 2 else 8)
    if choice == 0:
        return None
    if choice == 1:
        return generator.choice([True, False])
    if choice == 2:
        return generator.choice([0, 1, -1, 2**31, 2**63 - 1, generator.randrange(100)])
    if choice == 3:
        return generator.random() * 10 ** generator.randrange(-3, 12)
    if choice == 4:
        return z64 if generator.random() < 0.5 else os.urandom(8)
    if choice == 5:
        return os.urandom(generator.randrange(40))
    if choice == 6:
        return "".join(
            generator.choice("ab1 \n\0é") for _ in range(generator.randrange(9))
        )
    if choice == 7:
        return generator.choice(["1", "", "0" * 8, "main"])
    if choice == 8:
        return tuple(
            random_value(generator, depth + 1) for _ in range(generator.randrange(4))
        )
    if choice == 9:
        return [
            random_value(generator, depth + 1) for _ in range(generator.randrange(4))
        ]
    return {
        generator.choice(["a", "user", "x"]): random_value(generator, depth + 1)
        for _ in range(generator.randrange(3))
    }


# A value of each argument kind of zeo.protocol.signatures, so that most
# calls pass the argument checks and reach the storage with odd values.
SHAPED = {
    # Never z64: calls may commit, and oid 0 holds the record checked after.
    "oid": lambda g: g.choice([p64(1), p64(g.randrange(1, 2**64))]),
    "tid": lambda g: g.choice([z64, maxtid, p64(g.randrange(2**64))]),
    "oid?": lambda g: g.choice([None, z64, p64(g.randrange(1, 2**64))]),
    "tid?": lambda g: g.choice([None, z64, maxtid, p64(g.randrange(2**64))]),
    "serial": lambda g: g.choice([None, z64, p64(g.randrange(2**64))]),
    "bytes": lambda g: os.urandom(g.randrange(64)),
    "bytes?": lambda g: g.choice([None, os.urandom(g.randrange(64))]),
    "text": lambda g: g.choice(["1", "", "2", " ", "x" * 100]),
    "int": lambda g: g.choice([0, 1, -1, 2**31, g.randrange(1000)]),
    "number": lambda g: g.choice([0, -1.5, 1e12, g.random() * 1e9]),
    "dict": lambda g: g.choice([{}, {"user": "x"}, {"a": [1, 2]}]),
    "txn": lambda g: g.choice([1, 2, "t"]),
    "ints": lambda g: [g.randrange(5) for _ in range(g.randrange(3))],
    "any": random_value,
}


def shaped_call(generator):
    """A two-way call of a real method (not register) with fitting arguments."""
    name = generator.choice(SHAPED_METHODS)
    kinds, required = SIGNATURES[name]
    count = generator.randint(required, len(kinds))
    args = tuple(SHAPED[kind](generator) for kind in kinds[:count])
    return generator.randrange(1, 10**6), False, name, args


def random_call(generator):
    """Often a well-shaped call, else any name and arguments, one-way or not."""
    if generator.random() < 0.7:
        msgid, _, name, args = shaped_call(generator)
    else:
        name = generator.choice(METHODS)
        kinds, _ = SIGNATURES.get(name, ((), 0))
        count = len(kinds) + generator.choice([0, -1, 1])
        args = tuple(random_value(generator) for _ in range(max(count, 0)))
        msgid = generator.choice([generator.randrange(1, 10**6), -1])
    return msgid, generator.random() < 0.2, name, args


# Not register (a second one is a protocol violation) nor pack: packing
# garbage-collects the unreferenced object assert_still_serving commits.
SHAPED_METHODS = sorted(set(SIGNATURES) - {"register", "pack"})


# ZODB's conflict resolution logs the traceback of a record it cannot
# unpickle (random bytes stored over an existing object); the server goes on
# and the client gets a ConflictError.  Any other traceback is a bug.
TRACEBACKS_ALLOWED = {"ZODB.ConflictResolution"}


def loggers_with_tracebacks(log):
    """The logger names of the log records that carry a traceback."""
    names, current = set(), None
    for line in log.splitlines():
        words = line.split()
        if line[:4].isdigit():  # a record: "TIME LEVEL NAME MESSAGE"
            levels = [i for i, word in enumerate(words[:3]) if word in LEVELS]
            current = words[levels[0] + 1] if levels else None
        elif line.startswith("Traceback"):
            names.add(current)
    return names


LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def served_to_the_end(client, last_msgid):
    """True if the server answers the final ping; False if it hung up first."""
    try:
        while True:
            msgid, _, name, _ = client.read_message()
            if name == ".reply" and msgid == last_msgid:
                return True
    except (EOFError, ConnectionResetError):
        return False


def test_random_calls_from_many_connections_leave_the_server_healthy(
    server, raw_clients
):
    seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
    generator = random.Random(seed)
    for number in range(CONNECTIONS):
        # Even connections send only well-shaped two-way calls: whatever
        # their values, the server must answer every one and keep the
        # connection.  Odd ones send anything and end with a call of an
        # unknown method, so the server must have closed them by the end.
        shaped = number % 2 == 0
        make_call = shaped_call if shaped else random_call
        client = registered(server, raw_clients)
        data = b""
        for _ in range(CALLS_PER_CONNECTION):
            try:
                data += frame(client.encode(*make_call(generator)))
            except (TypeError, ValueError, OverflowError):
                continue  # not sendable in this encoding
        if not shaped:
            data += frame(client.encode(1, False, "eval", ("1 + 1",)))
        last_msgid = 10**7  # above every random msgid
        data += frame(client.encode(last_msgid, False, "ping", ()))
        try:
            client.send_raw(data)
        except OSError:
            pass  # the server closed it while we were still writing
        served = served_to_the_end(client, last_msgid)
        client.close()
        assert served is shaped, f"seed {seed}, connection {number}"
    assert_still_serving(server, raw_clients)
    log = server.log_text()
    assert loggers_with_tracebacks(log) <= TRACEBACKS_ALLOWED, f"seed {seed}"
    assert "Unhandled" not in log, f"seed {seed}"


def test_a_requested_tid_past_maxtid_is_refused_and_later_commits_stay_loadable(
    server, raw_clients
):
    # Found by the test above: ZODB's storages take a restore's requested
    # tid as their clock even when its transaction is aborted, so one such
    # tpc_begin pushed every later commit past maxtid, out of loadBefore's
    # reach.
    client = registered(server, raw_clients)
    with pytest.raises(ServerError, match="StorageTransactionError"):
        client.call("tpc_begin", 5, "", "", {}, p64(2**64 - 1), " ")
    oid = client.call("new_oids")[0]
    tid = commit(client, oid, z64, b"after")
    assert tid < maxtid
    assert client.call("loadBefore", oid, maxtid)[0] == b"after"


def test_an_undo_of_an_unreadable_transaction_id_is_an_undo_error(server, raw_clients):
    # Found by the test above (seed 733781003): FileStorage decodes the id
    # as base64 and raised binascii.Error, logged with its traceback as a
    # failed vote.  Now the client gets ZODB's UndoError and nothing is
    # logged as the server's fault; the connection goes on.
    client = registered(server, raw_clients)
    for bad in (b"not base64!", b"c2hvcnQ="):  # the second: 5 bytes, not 8
        client.call_one_way("tpc_begin", 1, b"", b"", {}, None, " ")
        client.call_one_way("undoa", bad, 1)
        with pytest.raises(ServerError, match="UndoError"):
            client.call("vote", 1)
        client.call("tpc_abort", 1)
    oid = client.call("new_oids")[0]
    tid = commit(client, oid, z64, b"after")
    assert client.call("loadBefore", oid, maxtid)[0] == b"after"
    assert tid < maxtid
    assert "Traceback" not in server.log_text()
