"""Key layout of :class:`~mcastlab.backends.RedisClusterRegistry`: shards, their hash tags and slots, the
meta hash, and the commands that read every shard (see the registry module's docstring).

Shard ``k`` of a registry with prefix ``P`` (tag ``T`` = ``P`` without trailing ``:``) keeps RedisRegistry's
layout under the base ``P{T:k}:``; the meta hash ``P{T:meta}`` holds ``shards`` (the shard count, fixed by
the first registry to open) and ``stored`` (the stored-identity counter behind ``max_identities``).
"""

from __future__ import annotations

import secrets
import zlib
from typing import Any

from redis.crc import key_slot

from mcastlab.backends._redis_claims import ClaimLedger
from mcastlab.backends._redis_scripts import SCRIPTS, sha1
from mcastlab.backends._subjects import encode_token
from mcastlab.errors import ConfigError

# KEYS: the meta hash. ARGV: max. Takes one place in the stored-identity counter unless it is at max.
# Returns {1, stored after} or {0, stored}.
ADMIT = """
local n = tonumber(redis.call('HGET', KEYS[1], 'stored') or '0')
if n >= tonumber(ARGV[1]) then return {0, n} end
redis.call('HINCRBY', KEYS[1], 'stored', 1)
return {1, n + 1}
"""
SHA = {name: sha for name, (sha, _body) in SCRIPTS.items()} | {"admit": sha1(ADMIT)}
BODIES = (*(body for _sha, body in SCRIPTS.values()), ADMIT)
MAX_SHARDS = 4096

Item = tuple[int, str, tuple[Any, ...]]  # (slot, "call" | "many", command or commands): ClusterClient.many


def shard_of(identity: str, shards: int) -> int:
    """The shard of ``identity``: CRC-32 (zlib, IEEE) of its encoded name (ASCII), modulo ``shards``."""
    return zlib.crc32(encode_token(identity).encode("ascii")) % shards


def check_number(key: str, value: Any, *, minimum: float, integer: bool = False, fix: str = "") -> None:
    """ConfigError naming ``key`` unless ``value`` is a number (an int if ``integer``) >= ``minimum``."""
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not value >= minimum:
        what = "an int" if integer else "a number"
        raise ConfigError(f"{key} must be {what} >= {minimum}, got {value!r}{fix}", key=key)


class Layout:
    """Where a registry's keys are: per shard its base, deadline zset and hash slot; the meta hash."""

    def __init__(self, prefix: str, shards: int) -> None:
        check_number("shards", shards, minimum=1, integer=True,
                     fix="; use the same count in every process sharing the registry (default 16)")
        if shards > MAX_SHARDS:
            raise ConfigError(f"shards must be <= {MAX_SHARDS}, got {shards}: each read runs one script per "
                              "shard", key="shards")
        tag = prefix.rstrip(":") or "mcast"
        self.shards = shards
        self.bases = [f"{prefix}{{{tag}:{k}}}:" for k in range(shards)]
        self.zkeys = [b + "z" for b in self.bases]
        self.slots = [key_slot(b.encode()) for b in self.bases]
        self.meta = f"{prefix}{{{tag}:meta}}"
        self.meta_slot = key_slot(self.meta.encode())

    def locate(self, identity: str) -> tuple[str, int, int, str]:
        """``(encoded member, shard, slot, identity hash key)`` of ``identity``."""
        member = encode_token(identity)
        k = zlib.crc32(member.encode("ascii")) % self.shards
        return member, k, self.slots[k], f"{self.bases[k]}id:{member}"

    def each(self, *args: Any) -> list[Item]:
        """``args`` (``{z}`` standing for the shard's deadline zset) as one command per shard."""
        pairs = zip(self.slots, self.zkeys, strict=True)
        return [(s, "call", tuple(z if a == "{z}" else a for a in args)) for s, z in pairs]

    def fetch(self, prog: list[str] | None) -> list[Item]:
        """Per shard: the ``member, m, r, e`` rows of every candidate of the plan program ``prog`` (every
        stored identity if None); a multi-part plan is evaluated into a throwaway key, read and dropped."""
        out: list[Item] = []
        for k, base in enumerate(self.bases):
            if not prog or len(prog) == 2:
                key = self.zkeys[k] if not prog else base + prog[1]
                out.append((self.slots[k], "call", ("EVALSHA", SHA["fetch"], 1, key, base)))
            else:
                dest = f"{base}tmp:{secrets.token_hex(8)}"
                out.append((self.slots[k], "many", (("EVALSHA", SHA["plan"], 1, dest, base, *prog),
                                                    ("EVALSHA", SHA["fetch"], 1, dest, base), ("DEL", dest))))
        return out

    def ids(self, prog: list[str], now: float) -> list[Item]:
        """Per shard: the ``ids`` script (live members of an exact plan; every live member if empty)."""
        return [(self.slots[k], "call", ("EVALSHA", SHA["ids"], 2, self.zkeys[k],
                                         f"{base}tmp:{secrets.token_hex(8)}", repr(now), base, *prog))
                for k, base in enumerate(self.bases)]

    def claim(self, asks: list[tuple[int, int]], now: float, ledger: ClaimLedger) -> list[Item]:
        """The claim script on each ``(shard, limit)`` of ``asks``, as ``ledger``'s claimer."""
        return [(self.slots[k], "call", ("EVALSHA", SHA["claim"], 1, self.zkeys[k], repr(now), n,
                                         self.bases[k], *ledger.args(k))) for k, n in asks]

    def claim_ack(self, batches: list[tuple[int, str]], claimer: str) -> list[Item]:
        """Acknowledge each ``(shard, seq)`` batch of ``batches`` received by ``claimer``."""
        return [(self.slots[k], "call", ("EVALSHA", SHA["claim_ack"], 1, self.bases[k] + "claims", claimer,
                                         seq, self.bases[k])) for k, seq in batches]

    def first_lapsed(self) -> list[Item]:
        """Per shard: the oldest lapsed lifetime (``"<deadline> <member>"``) awaiting its claim, or None."""
        return [(s, "call", ("LINDEX", b + "lapsed", 0)) for s, b in zip(self.slots, self.bases, strict=True)]


def split(want: int, order: list[int]) -> list[tuple[int, int]]:
    """Share ``want`` claims out over the shards in ``order``: equal parts, rounded up, never more in all."""
    per = -(-want // len(order))
    return [(k, min(per, want - i * per)) for i, k in enumerate(order) if want - i * per > 0]


def write_lost(op: str, stamp: float | None, extra: float | None, r: bytes | None, e: bytes | None,
               now: float) -> bool:
    """Whether an acknowledged write is missing from the hash now stored (``r``, ``e``; None: no hash).

    ``u`` register (``stamp`` = registered_at, ``extra`` = its deadline): no hash though not yet due, or
    an older registration in its place. ``t`` heartbeat (``stamp`` = the deadline it set): stored with an
    earlier deadline. ``d`` unregister (``stamp`` = when): a registration older than that is back.
    """
    if op == "u":
        return (float(r) < (stamp or 0.0)) if r is not None else (extra is None or extra > now)
    if op == "t":
        return r is not None and e != b"" and (stamp is None or float(e or 0) < stamp)
    return r is not None and float(r) < (stamp or 0.0)


__all__ = ["ADMIT", "BODIES", "MAX_SHARDS", "SHA", "Item", "Layout", "check_number", "shard_of", "split",
           "write_lost"]
