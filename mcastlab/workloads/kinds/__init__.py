"""Workload kinds: ``iot-fleet``, ``presence``, ``service-discovery`` and ``loadtest``."""

from __future__ import annotations

from typing import Any

from mcastlab.workloads._schema import fail, join, parse
from mcastlab.workloads.kinds.discovery import ServiceDiscovery
from mcastlab.workloads.kinds.iot import IotFleet
from mcastlab.workloads.kinds.loadtest import LoadTest
from mcastlab.workloads.kinds.presence import Presence

KINDS: dict[str, type] = {
    "iot-fleet": IotFleet,
    "presence": Presence,
    "service-discovery": ServiceDiscovery,
    "loadtest": LoadTest,
}
Workload = IotFleet | Presence | ServiceDiscovery | LoadTest


def parse_workload(value: Any, *, key: str, source: str) -> Workload:
    """The ``workload:`` section, dispatched on its ``kind``."""
    if not isinstance(value, dict):
        fail(
            source,
            key,
            f"expected a mapping with a 'kind', got {value!r:.60}",
            f"write 'workload:' with 'kind: <one of {', '.join(KINDS)}>' and its parameters below",
        )
    kind = value.get("kind")
    if kind is None:
        fail(
            source,
            join(key, "kind"),
            "missing the workload kind",
            f"add 'kind: ...', one of {', '.join(KINDS)}",
        )
    cls = KINDS.get(kind) if isinstance(kind, str) else None  # a list or dict is not even hashable
    if cls is None:
        import difflib

        close = difflib.get_close_matches(str(kind), list(KINDS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        fail(
            source,
            join(key, "kind"),
            f"unknown workload kind {kind!r}",
            f"{hint}use one of {', '.join(KINDS)}",
        )
    return parse(cls, value, key=key, source=source)  # type: ignore[no-any-return]


__all__ = ["KINDS", "IotFleet", "LoadTest", "Presence", "ServiceDiscovery", "Workload", "parse_workload"]
