"""Prometheus metrics with the spec's names, on a CollectorRegistry the caller may pass in.

Each coordinator gets its own CollectorRegistry unless one is given, so two coordinators never collide;
to expose several coordinators on one registry, give each distinct label values (same label names).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mcastlab.errors import ConfigError

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
COUNT_BUCKETS = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)


@dataclass
class _Families:
    """The metric families registered once on one CollectorRegistry, for one set of label names."""

    label_names: tuple[str, ...]
    registered: Gauge
    delivered: Histogram
    enumerate_latency: Histogram
    expirations: Counter
    delivery_failures: Counter
    operation_errors: Counter
    users: set[tuple[str, ...]] = field(default_factory=set)


_SHARED: weakref.WeakKeyDictionary[CollectorRegistry, _Families] = weakref.WeakKeyDictionary()


def _families(registry: CollectorRegistry, names: list[str]) -> _Families:
    got = _SHARED.get(registry)
    if got is not None:
        if got.label_names != tuple(names):
            raise ConfigError(
                f"this CollectorRegistry already carries mcastlab metrics labelled {list(got.label_names)}; "
                f"use the same label names (got {names}) with different values for each coordinator")
        return got
    try:
        fam = _Families(
            tuple(names),
            Gauge("multicast_registry_registered_identities", "Identities currently registered", names,
                  registry=registry),
            Histogram("multicast_registry_multicast_delivered_total",
                      "Recipients delivered per multicast operation", names, buckets=COUNT_BUCKETS,
                      registry=registry),
            Histogram("multicast_registry_enumerate_latency_seconds", "Enumerate latency", names,
                      buckets=LATENCY_BUCKETS, registry=registry),
            Counter("multicast_registry_ttl_expiration", "Identities expired by TTL", names,
                    registry=registry),
            Counter("multicast_registry_delivery_failures", "Multicast sends that failed",
                    [*names, "status"], registry=registry),
            Counter("multicast_registry_operation_errors", "Coordinator operations that raised",
                    [*names, "op", "kind"], registry=registry),
        )
    except ValueError as exc:  # someone else registered metrics with these names
        raise ConfigError(f"that CollectorRegistry already has metrics with mcastlab's names ({exc}); "
                          "give mcastlab its own registry") from None
    _SHARED[registry] = fam
    return fam


class Metrics:
    """The five metrics of the spec plus operation error counts.

    Several coordinators can share one CollectorRegistry if each passes distinct label values with the
    same label names, e.g. ``Metrics(reg, labels={"coordinator": "a"})`` and ``{"coordinator": "b"}``.
    """

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 labels: Mapping[str, str] | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._labels = {str(k): str(v) for k, v in (labels or {}).items()}
        fam = _families(self.registry, list(self._labels))
        key = tuple(self._labels.values())
        if key in fam.users:
            raise ConfigError(
                f"another coordinator already reports on this CollectorRegistry with labels "
                f"{self._labels or '{}'}; give each coordinator distinct label values, "
                "e.g. labels={'coordinator': 'b'}")
        fam.users.add(key)
        self.delivery_failures = fam.delivery_failures
        self.operation_errors = fam.operation_errors
        if self._labels:
            values = self._labels
            self.registered = fam.registered.labels(**values)
            self.delivered = fam.delivered.labels(**values)
            self.enumerate_latency = fam.enumerate_latency.labels(**values)
            self.expirations = fam.expirations.labels(**values)
        else:
            self.registered = fam.registered
            self.delivered = fam.delivered
            self.enumerate_latency = fam.enumerate_latency
            self.expirations = fam.expirations
        self._failure_children: dict[str, Counter] = {}

    def failure(self, status: str, n: int = 1) -> None:
        child = self._failure_children.get(status)
        if child is None:
            child = self.delivery_failures.labels(**self._labels, status=status)
            self._failure_children[status] = child
        child.inc(n)

    def operation_error(self, op: str, kind: str) -> None:
        self.operation_errors.labels(**self._labels, op=op, kind=kind).inc()

    def value(self, name: str, **labels: str) -> float:
        """Read one sample (e.g. ``multicast_registry_ttl_expiration_total``); 0.0 if absent."""
        got = self.registry.get_sample_value(name, {**self._labels, **labels})
        return 0.0 if got is None else float(got)

    def exposition(self) -> bytes:
        """The Prometheus text format, for a /metrics endpoint or a quick look."""
        return bytes(generate_latest(self.registry))


__all__ = ["Metrics"]
