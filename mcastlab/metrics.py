"""Prometheus metrics with the spec's names, on a CollectorRegistry the caller may pass in.

Each coordinator gets its own registry unless one is given, so two coordinators never collide;
pass ``labels={"coordinator": "a"}`` to share one registry between several coordinators.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mcastlab.errors import ConfigError

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)
COUNT_BUCKETS = (0, 1, 10, 100, 1_000, 10_000, 100_000, 1_000_000)


class Metrics:
    """The five metrics of the spec plus operation error counts."""

    def __init__(self, registry: CollectorRegistry | None = None, *,
                 labels: Mapping[str, str] | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._labels = dict(labels or {})
        names = list(self._labels)
        try:
            self.registered = Gauge("multicast_registry_registered_identities",
                                    "Identities currently registered", names, registry=self.registry)
            self.delivered = Histogram("multicast_registry_multicast_delivered_total",
                                       "Recipients delivered per multicast operation", names,
                                       buckets=COUNT_BUCKETS, registry=self.registry)
            self.enumerate_latency = Histogram("multicast_registry_enumerate_latency_seconds",
                                               "Enumerate latency", names, buckets=LATENCY_BUCKETS,
                                               registry=self.registry)
            self.expirations = Counter("multicast_registry_ttl_expiration",
                                       "Identities expired by TTL", names, registry=self.registry)
            self.delivery_failures = Counter("multicast_registry_delivery_failures",
                                             "Multicast sends that failed", [*names, "status"],
                                             registry=self.registry)
            self.operation_errors = Counter("multicast_registry_operation_errors",
                                            "Coordinator operations that raised", [*names, "op", "kind"],
                                            registry=self.registry)
        except ValueError as exc:
            raise ConfigError(
                f"these metrics are already registered on that CollectorRegistry ({exc}); give each "
                "coordinator its own registry or distinct labels via Metrics(registry, labels=...)"
            ) from None
        if self._labels:
            values = self._labels
            self.registered = self.registered.labels(**values)  # type: ignore[assignment]
            self.delivered = self.delivered.labels(**values)  # type: ignore[assignment]
            self.enumerate_latency = self.enumerate_latency.labels(**values)  # type: ignore[assignment]
            self.expirations = self.expirations.labels(**values)  # type: ignore[assignment]
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
