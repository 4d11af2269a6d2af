"""Records the coordinator hands back or emits: multicast results, operation and expiration events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mcastlab.backends.base import DELIVERED


@dataclass(frozen=True, slots=True)
class MulticastResult:
    """Outcome of one multicast. ``targeted == delivered + failed`` always holds.

    ``statuses`` maps each targeted identity to a status (see ``mcastlab.backends.base.STATUSES``);
    ``latencies`` maps it to seconds from the multicast call to its send completing (publish: accepted
    by the server; ack: acknowledged by the identity's inbox).
    """

    message_id: str
    mode: str
    targeted: int
    delivered: int
    failed: int
    statuses: dict[str, str] = field(repr=False)
    latencies: dict[str, float] = field(repr=False)
    started_at: float = 0.0
    duration_s: float = 0.0
    enumerate_s: float = 0.0

    @property
    def failures(self) -> dict[str, str]:
        """Identities that were not delivered, with their status."""
        return {k: v for k, v in self.statuses.items() if v != DELIVERED}

    def to_frame(self) -> Any:
        """One row per targeted identity: identity, status, latency_s (a pandas DataFrame)."""
        import pandas as pd

        ids = list(self.statuses)
        return pd.DataFrame({
            "message_id": self.message_id,
            "identity": pd.Series(ids, dtype="string"),
            "status": pd.Series([self.statuses[i] for i in ids], dtype="string"),
            "latency_s": [self.latencies.get(i, float("nan")) for i in ids],
        })


@dataclass(frozen=True, slots=True)
class OpEvent:
    """One coordinator operation, as listeners (the measurement recorder) see it."""

    op: str
    t_start: float
    latency_s: float
    ok: bool
    error: str = ""
    matched: int = 0
    delivered: int = 0
    failed: int = 0
    identity: str = ""
    message_id: str = ""


@dataclass(frozen=True, slots=True)
class ExpirationEvent:
    """An identity removed by the sweeper: counted once, with its detection lag."""

    identity: str
    deadline: float
    t_detected: float
    coordinator: str

    @property
    def lag_s(self) -> float:
        return self.t_detected - self.deadline


__all__ = ["ExpirationEvent", "MulticastResult", "OpEvent"]
