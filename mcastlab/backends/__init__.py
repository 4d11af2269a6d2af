"""Backends for the three slots. Embedded memory backends load eagerly; live ones on first use,
so ``import mcastlab`` needs neither redis nor nats installed."""

from __future__ import annotations

import importlib
from typing import Any

from mcastlab.backends.base import (
    DELIVERED,
    ERROR,
    MODES,
    NO_LISTENER,
    STATUSES,
    TIMEOUT,
    UNAVAILABLE,
    BatchPublisher,
    Capabilities,
    Durability,
    DurableRecord,
    ExpiredIdentity,
    Inbox,
    Message,
    Messaging,
    Registry,
    StoredCount,
)
from mcastlab.backends.memory import MemoryInbox, MemoryMessaging, MemoryRegistry

_LAZY = {
    "RedisRegistry": "mcastlab.backends.redis_registry",
    "RedisClusterRegistry": "mcastlab.backends.redis_cluster_registry",
    "NatsMessaging": "mcastlab.backends.nats_messaging",
    "RedisPubSubMessaging": "mcastlab.backends.redis_pubsub",
    "SqliteRegistry": "mcastlab.backends.sqlite_registry",
    "PostgresRegistry": "mcastlab.backends.postgres_registry",
    "SqliteDurability": "mcastlab.backends.sqlite_durability",
    "PostgresDurability": "mcastlab.backends.postgres_durability",
    "KafkaMessaging": "mcastlab.backends.kafka_messaging",
    "KafkaDurability": "mcastlab.backends.kafka_durability",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mcastlab.backends' has no attribute {name!r}")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        from mcastlab.errors import UnsupportedError

        raise UnsupportedError(
            f"{name} is not available: {exc}. Install the live extras: pip install -e '.[live]'"
        ) from exc
    return getattr(mod, name)


__all__ = [
    "DELIVERED",
    "ERROR",
    "MODES",
    "NO_LISTENER",
    "STATUSES",
    "TIMEOUT",
    "UNAVAILABLE",
    "BatchPublisher",
    "Capabilities",
    "Durability",
    "DurableRecord",
    "ExpiredIdentity",
    "Inbox",
    "MemoryInbox",
    "MemoryMessaging",
    "MemoryRegistry",
    "Message",
    "Messaging",
    "Registry",
    "StoredCount",
    *_LAZY,
]
