"""The claimer's side of the Redis expiry claim: batches acknowledged, so a lost reply loses no count.

The ``claim`` script (``_redis_scripts``) removes expired identities and returns them in a *batch* that
stays recorded under the claimer's id until the claimer acknowledges it. A :class:`ClaimLedger` is that
claimer: a random id, a sequence number per call, and per shard (a RedisRegistry has one, a
RedisClusterRegistry one per virtual shard) the seq of the last batch it received. It acknowledges a batch
twice over: at once with ``claim_ack``, and in its next claim's ``ack`` argument; when a reply is lost
(connection dropped, timeout after the server ran the script) the next claim's ``ack`` does not match and
the script hands the same batch out again. A claimer that stops with a batch unacknowledged leaves it to
whoever claims ``stale`` seconds later. Calls are serialised per ledger: one outstanding claim per
claimer, which is what makes ``ack`` unambiguous.

Exactly-once holds unless a claimer *receives* a batch, loses both acknowledgements (``claim_ack`` and
every claim for ``stale`` seconds) and keeps running: then the batch may be adopted and counted twice. The
sweeper claims every ``sweep_interval`` (1 s by default, far below the 60 s default ``stale``), so this
needs a claimer cut off from Redis for a minute right after a successful claim.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcastlab.backends._subjects import decode_token
from mcastlab.backends.base import ExpiredIdentity
from mcastlab.errors import ConfigError

if TYPE_CHECKING:
    from mcastlab.backends._redis_cluster import ClusterClient
    from mcastlab.backends._redis_cluster_keys import Layout

#: Seconds (registry time) after which an unacknowledged batch is adopted by another claimer: much longer
#: than any claim round trip, so a live claimer's batch is never taken from it.
DEFAULT_STALE = 60.0


class ClaimLedger:
    """One claimer's ids, sequence numbers and acknowledgements; see the module docstring."""

    __slots__ = ("_acked", "_lock", "_seq", "claimer", "stale")

    def __init__(self, stale: float = DEFAULT_STALE) -> None:
        if isinstance(stale, bool) or not isinstance(stale, int | float) or not 0 < stale < float("inf"):
            raise ConfigError(f"claim_stale must be a finite number of seconds > 0, got {stale!r:.40}",
                              key="claim_stale")
        self.claimer = secrets.token_hex(8)
        self.stale = float(stale)
        self._seq = 0
        self._acked: dict[int, str] = {}
        self._lock: asyncio.Lock | None = None

    def lock(self) -> asyncio.Lock:
        """The lock serialising this claimer's claims (made on first use, inside the running loop)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def args(self, shard: int = 0) -> tuple[str, str, str, str]:
        """``claimer, seq, ack, stale`` for the next claim on ``shard``."""
        self._seq += 1
        return self.claimer, str(self._seq), self._acked.get(shard, ""), repr(self.stale)

    def received(self, reply: Sequence[Any], shard: int = 0) -> tuple[str, int, list[ExpiredIdentity]]:
        """Record the batch in ``reply`` as received; return its seq, zset removals and expirations."""
        seq = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        self._acked[shard] = seq
        items = [ExpiredIdentity(decode_token(reply[i].decode()), float(reply[i + 1]))
                 for i in range(2, len(reply), 2)]
        return seq, int(reply[1]), items


async def claim_shards(client: ClusterClient, keys: Layout, ledger: ClaimLedger, order: list[int], limit: int,
                       now: float) -> tuple[list[ExpiredIdentity], int, BaseException | None]:
    """Claim up to ``limit`` expirations over the shards in ``order`` (RedisClusterRegistry): each shard is
    asked for an equal part, then the shards that filled theirs for the rest; received batches are
    acknowledged. Returns the expirations, the zset members removed, and the first failure (if any).
    Call it with ``ledger.lock()`` held, and keep holding it until the removals are counted: a sweep racing
    with this one must not find the identities gone and the stored-identity counter not yet lowered."""
    from mcastlab.backends._redis_cluster_keys import split

    out: list[ExpiredIdentity] = []
    failure: BaseException | None = None
    removed, received = 0, []
    while order and len(out) < limit and failure is None:
        asks = split(limit - len(out), order)
        replies = await client.many(keys.claim(asks, now, ledger), idempotent=False,
                                    return_exceptions=True)
        full = []
        for (k, n), got in zip(asks, replies, strict=True):
            if isinstance(got, BaseException):
                failure = got
                continue
            seq, gone, items = ledger.received(got, k)
            out += items
            removed += gone
            if items:
                received.append((k, seq))
            if len(items) >= n:
                full.append(k)
        order = full + order[len(asks):]
    if received:  # the next claim on each shard acknowledges them too
        await client.many(keys.claim_ack(received, ledger.claimer), idempotent=False,
                          return_exceptions=True)
    return out, removed, failure


__all__ = ["DEFAULT_STALE", "ClaimLedger", "claim_shards"]
