"""Helpers shared by the Kafka backends (aiokafka): bootstrap strings, topic names, partitioning, keys,
topic creation and the mapping of aiokafka's errors to mcastlab's typed ones.

Everything here speaks the Kafka protocol only; the brokers it was tested against are listed in the
README (Tansu, a Kafka-protocol broker, not Apache Kafka).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import aiokafka.errors as kerr
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.conn import CloseReason

from mcastlab.backends._kafka_keys import identity_key, key_identity, partition_for
from mcastlab.errors import BackendError, BackendUnavailableError, ConfigError, OperationTimeoutError

_TOPIC_RE = re.compile(r"[A-Za-z0-9._-]{1,249}")
_HOSTPORT_RE = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")

#: aiokafka errors that mean "the broker cannot be reached (now)": a retry after a reconnect may work.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    kerr.KafkaConnectionError, kerr.NodeNotReadyError, kerr.KafkaTimeoutError, kerr.RequestTimedOutError,
    kerr.NotLeaderForPartitionError, kerr.LeaderNotAvailableError, kerr.UnknownTopicOrPartitionError,
    kerr.ProducerClosed, OSError,
)  # fmt: skip


_BROKEN = (CloseReason.CONNECTION_BROKEN, CloseReason.CONNECTION_TIMEOUT, CloseReason.OUT_OF_SYNC)


def parse_bootstrap(value: object, *, key: str = "bootstrap") -> list[str]:
    """``["host:port", ...]`` from ``kafka://h:p[,h:p]``, a bare ``h:p[,h:p]`` or a list of either."""
    items: list[str] = []
    raw = [value] if isinstance(value, str) else value
    if isinstance(raw, Sequence) and not isinstance(raw, bytes | bytearray):
        for item in raw:
            if not isinstance(item, str):
                items = []
                break
            items += [p.strip() for p in item.removeprefix("kafka://").split(",") if p.strip()]
    if not items or not all(_ok_hostport(i) for i in items):
        raise ConfigError(
            f"{key} must be Kafka bootstrap servers such as 'kafka://127.0.0.1:9092' or "
            f"'127.0.0.1:9092,127.0.0.2:9092', got {value!r:.80}", key=key)
    return items


def _ok_hostport(item: str) -> bool:
    match = _HOSTPORT_RE.fullmatch(item)
    return match is not None and 0 < int(match.group(2)) < 65536


def check_topic(name: object, *, key: str) -> str:
    """A legal Kafka topic name (``[A-Za-z0-9._-]``, 1..249 characters, not ``.`` or ``..``)."""
    if not isinstance(name, str) or not _TOPIC_RE.fullmatch(name) or name in (".", ".."):
        raise ConfigError(f"{key} must be a Kafka topic name of 1..249 characters from [A-Za-z0-9._-], "
                          f"got {name!r:.60}", key=key)
    return name


def check_positive(value: object, *, key: str, integer: bool = False, limit: float = float("inf")) -> Any:
    """``value`` if it is a number > 0 and <= ``limit`` (an int if ``integer``), else ConfigError."""
    kind = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, kind) or not 0 < value <= limit:
        what = "an int" if integer else "a number"
        raise ConfigError(f"{key} must be {what} > 0 and <= {limit:g}, got {value!r:.40}", key=key)
    return value


async def ensure_topic(bootstrap: list[str], topic: str, partitions: int, *, timeout: float,
                       backend: str) -> tuple[int, bool]:
    """Create ``topic`` (replication factor 1 unless the cluster has more brokers: then up to 3) if it
    does not exist; return its partition count and whether it was created now. Typed errors only."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        meta = await asyncio.wait_for(admin.describe_cluster(), timeout)
        replicas = min(3, max(1, len(meta.get("brokers", ())) if isinstance(meta, dict) else 1))
        res = await asyncio.wait_for(admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=replicas)]), timeout)
        created = False
        for _name, code, *rest in getattr(res, "topic_errors", ()):
            created = created or code == 0
            if code not in (0, kerr.TopicAlreadyExistsError.errno):
                raise BackendError(f"cannot create Kafka topic {topic!r}: error {code} {rest}",
                                   backend=backend)
        described = await asyncio.wait_for(admin.describe_topics([topic]), timeout)
        found = [len(t.get("partitions", ())) for t in described if t.get("topic") == topic]
        return (found[0] if found and found[0] else partitions), created
    except BackendError:
        raise
    except TimeoutError:
        raise OperationTimeoutError(f"Kafka at {bootstrap} did not answer within {timeout} s",
                                    backend=backend) from None
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise unavailable(exc, f"cannot reach Kafka at {bootstrap}", backend) from None
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(admin.close(), 2.0)


def watch_connections(client: Any, on_broken: Callable[[], None]) -> None:
    """Call ``on_broken()`` whenever aiokafka's ``client`` loses a broker connection (not on idle drops or
    shutdown). Uses aiokafka's private close callback; does nothing if that is missing (other versions)."""
    original = getattr(client, "_on_connection_closed", None)
    if not callable(original):
        return

    def on_closed(conn: Any, reason: Any) -> None:
        original(conn, reason)
        if reason in _BROKEN:
            on_broken()

    client._on_connection_closed = on_closed


def unavailable(exc: BaseException, what: str, backend: str) -> BackendError:
    """The typed error for an aiokafka failure: unavailable if the broker could not be reached."""
    if isinstance(exc, UNAVAILABLE_ERRORS):
        return BackendUnavailableError(f"{what}: {exc!r}", backend=backend)
    return BackendError(f"{what}: {exc!r}", backend=backend)


async def stop_quietly(client: Any, timeout: float = 2.0) -> None:
    """Stop an aiokafka producer/consumer, bounded and silent (it may be talking to a dead broker)."""
    if client is not None:
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(client.stop(), timeout)


__all__ = ["UNAVAILABLE_ERRORS", "check_positive", "check_topic", "ensure_topic", "identity_key",
           "key_identity", "parse_bootstrap", "partition_for", "stop_quietly", "unavailable",
           "watch_connections"]
