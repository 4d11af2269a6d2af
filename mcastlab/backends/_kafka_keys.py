"""Kafka record keys and partitions of identities, with no third-party import (the simulator uses them
too): the key is the identity's UTF-8 name, the partition murmur2(key) as in the Java client's (and
aiokafka's) default partitioner, so any Kafka client producing the same key picks the same partition."""

from __future__ import annotations

import struct

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def identity_key(identity: str) -> bytes:
    """The record key of ``identity``: its UTF-8 bytes (exact, injective; keys are not routing syntax)."""
    return identity.encode("utf-8", "surrogatepass")


def key_identity(key: bytes | None) -> str:
    """Inverse of :func:`identity_key`."""
    return "" if key is None else key.decode("utf-8", "surrogatepass")


def murmur2(data: bytes) -> int:
    """MurmurHash2 as ``org.apache.kafka.common.utils.Utils.murmur2`` (seed 0x9747b28c), unsigned."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    n4 = length // 4
    for (k,) in struct.iter_unpack("<I", data[:n4 * 4]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    tail = data[n4 * 4:]
    if tail:
        if len(tail) >= 3:
            h ^= tail[2] << 16
        if len(tail) >= 2:
            h ^= tail[1] << 8
        h = ((h ^ tail[0]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def partition_for(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (the default partitioner's choice)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


__all__ = ["identity_key", "key_identity", "murmur2", "partition_for"]
