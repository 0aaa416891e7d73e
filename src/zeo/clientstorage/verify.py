"""Cache verification when a connection is made (PROTOCOL.md section 8).

Runs on the I/O loop before a connection becomes operational.  ``register``
already told us the server's last tid; compared with the cache's:

* no cache tid: start from scratch (drop any record that cannot be dated);
* equal: the cache is up to date;
* older: ``getInvalidations(cache_tid)`` lists what changed meanwhile
  ("quick verification": their records are dropped, since the answer
  does not say in which tid each changed); ``None`` means the server's queue no longer
  reaches back that far, so the cache is dropped and ZODB told to drop its
  object caches too;
* newer: the server lost transactions the cache has seen (restored from an
  old backup, or a different database).  The connection is refused with a
  CRITICAL log that names the cache file to delete.

Invalidations arriving while this runs are queued on the connection and
applied afterwards if they are newer than what verification covered, so
nothing is lost and nothing applied twice out of order.
"""

import asyncio
import logging

from ..exceptions import CacheError

logger = logging.getLogger(__name__)

VERIFY_TIMEOUT = 60.0


def _hex(tid):
    return tid.hex() if tid else "none"


async def verify_connection(client, protocol):
    cache = client.cache
    server_tid = protocol.server_tid
    cache_tid = cache.last_tid
    seen_tid = client.last_seen_tid()
    ahead = max(t for t in (cache_tid, seen_tid, b"") if t is not None)
    if ahead and ahead > server_tid:
        if cache.path:
            advice = (
                f"Delete the cache file {cache.path} (with this client stopped) "
                f"and restart the client, or connect it to the right server."
            )
        else:
            advice = "Restart this client process, or connect it to the right server."
        raise CacheError(
            f"client cache is out of sync with the server at {protocol.address}: "
            f"the client has seen transaction {_hex(ahead)} but the server's "
            f"last transaction is {_hex(server_tid)} (was the server restored "
            f"from an older copy?). {advice}"
        )
    covered = server_tid
    if cache_tid is None:
        if len(cache):
            cache.clear()
    elif cache_tid < server_tid:
        result = await asyncio.wait_for(
            protocol.request("getInvalidations", cache_tid), VERIFY_TIMEOUT
        )
        if result is None:
            logger.warning(
                "client cache too old for the server's invalidation queue "
                "(cache tid %s, server %s): clearing it",
                _hex(cache_tid),
                _hex(server_tid),
            )
            cache.clear()
            client.notify_cache_dropped()
        else:
            tid, oids = result
            logger.info(
                "quick verification: %d objects changed up to %s", len(oids), _hex(tid)
            )
            with client._tid_lock:
                # Dropped, not ended at *tid*: that is only the newest tid,
                # and each object may have changed in an earlier one.
                cache.forget_many(oids)
                client._note_invalidation(tid, oids)
                client.deliver_invalidations(tid, list(oids), notify_db=True)
            covered = max(covered, tid)
    else:
        logger.info("client cache up to date at %s", _hex(cache_tid))
    info = await asyncio.wait_for(protocol.request("get_info"), VERIFY_TIMEOUT)
    # Nothing below awaits: the switch to operational is atomic on the loop.
    client.set_server_info(info, protocol.read_only)
    with client._tid_lock:
        if cache.last_tid is None or cache.last_tid < covered:
            cache.set_last_tid(covered)
        client.set_last_transaction(covered)
    for name, args in protocol.session.verified():
        if args and args[0] > covered:
            client.callbacks[name](*args)
