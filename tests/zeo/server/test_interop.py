"""Real ZEO 6.2 clients against our server, in both encodings."""

import pytest

from .conftest import run_peer_script, ruok

pytestmark = pytest.mark.interop

CLIENT_SCRIPT = """
import json, time
import transaction, ZEO
from persistent.mapping import PersistentMapping
from ZODB.blob import Blob
from ZODB.POSException import ConflictError

address = ("127.0.0.1", {port})
result = {{}}
db1 = ZEO.DB(address, blob_dir={blobs1!r})
db2 = ZEO.DB(address, blob_dir={blobs2!r})
tm1, tm2 = transaction.TransactionManager(), transaction.TransactionManager()
c1, c2 = db1.open(tm1), db2.open(tm2)
root1 = c1.root()
root1["counter"] = PersistentMapping(value=1)
root1["blob"] = Blob(b"0123456789" * 20000)
tm1.commit()

def wait_for_same_tid():
    deadline = time.monotonic() + 60
    while db2.storage.lastTransaction() != db1.storage.lastTransaction():
        assert time.monotonic() < deadline, "no invalidation arrived"
        time.sleep(0.01)

wait_for_same_tid()
tm2.begin()
root2 = c2.root()
result["seen_by_second"] = root2["counter"]["value"]
with root2["blob"].open() as f:
    result["blob_size"] = len(f.read())

# A change by client 1 reaches client 2 through invalidateTransaction.
root1["counter"]["value"] = 2
tm1.commit()
wait_for_same_tid()
tm2.begin()
result["after_invalidation"] = root2["counter"]["value"]

# Both change the same object: the second commit conflicts.
root2["counter"]["value"] = 3
root1["counter"]["value"] = 4
tm1.commit()
try:
    tm2.commit()
    result["conflict"] = None
except ConflictError as error:
    result["conflict"] = {{
        "oid_matches": error.oid == root1["counter"]._p_oid,
        "serials": [s.hex() for s in (error.serials or ())],
    }}
    tm2.abort()
result["committed_serial"] = root1["counter"]._p_serial.hex()

# Undo the last change to the counter.
log = db1.undoLog(0, 10)
result["undo_log_length"] = len(log)
db1.undo(log[0]["id"], tm1.get())
tm1.commit()
wait_for_same_tid()
tm1.begin()
result["after_undo"] = root1["counter"]["value"]

# History and iteration.
result["history_length"] = len(db1.history(root1["counter"]._p_oid, 10))
result["transactions"] = result["records"] = 0
for info in db1.storage.iterator():
    result["transactions"] += 1
    result["records"] += len(list(info))

# Pack, then the data is still there.
db1.pack()
tm1.begin()
result["after_pack"] = root1["counter"]["value"]
with root1["blob"].open() as f:
    result["blob_after_pack"] = f.read(10).decode()
result["protocol"] = db1.storage.protocol_version.decode()
db1.close()
db2.close()
print("RESULT " + json.dumps(result))
"""


@pytest.mark.parametrize("msgpack", [True, False], ids=["msgpack", "pickle"])
def test_real_zeo_client_does_everything(msgpack, start_server, zeo_peer, tmp_path):
    server = start_server(msgpack=msgpack, blob_dir=tmp_path / "server-blobs")
    result = run_peer_script(
        zeo_peer,
        CLIENT_SCRIPT.format(
            port=server.port,
            blobs1=str(tmp_path / "blobs1"),
            blobs2=str(tmp_path / "blobs2"),
        ),
    )
    assert result["protocol"] == ("M5" if msgpack else "Z5")
    assert result["seen_by_second"] == 1
    assert result["blob_size"] == 200000
    assert result["after_invalidation"] == 2
    conflict = result["conflict"]
    assert conflict is not None, "the second commit should have conflicted"
    assert conflict["oid_matches"]
    assert len(conflict["serials"]) == 2
    assert conflict["serials"][0] == result["committed_serial"]
    assert result["undo_log_length"] >= 3
    assert result["after_undo"] == 2
    assert result["history_length"] >= 3
    assert result["transactions"] >= 5
    assert result["records"] >= 6
    assert result["after_pack"] == 2
    assert result["blob_after_pack"] == "0123456789"

    announced, status = ruok(server.address)
    assert announced == (b"M5" if msgpack else b"Z5")
    storage_status = status["1"]
    assert storage_status["commits"] >= 5
    assert storage_status["conflicts"] >= 1
    assert storage_status["connections"] == 0
    assert storage_status["lock_time"] is None
    assert len(storage_status["last-transaction"]) == 16
