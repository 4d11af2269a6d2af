"""Multicast fan-out: a bounded window of concurrent sends, retries with backoff, per-send timeouts.

Every send's failure becomes that identity's status (see ``mcastlab.backends.base.STATUSES``); nothing
raised by one send can lose the rest of the fan-out. How to drive the backend comes from its declared
:class:`~mcastlab.backends.base.Capabilities`: ``self_timed`` backends honour ``send``'s timeout
themselves; modes in ``inline_modes`` never suspend and are driven by one worker instead of a window;
with ``publish_batch`` a publish fan-out's first attempt goes to the backend in one call (retries then
go through ``send``). The outcome reports the journal writes that failed mid-fan-out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from operator import countOf
from typing import cast

from mcastlab.backends.base import (
    DELIVERED,
    ERROR,
    MODES,
    TIMEOUT,
    UNAVAILABLE,
    BatchPublisher,
    Durability,
    Message,
    Messaging,
)
from mcastlab.config import Config
from mcastlab.errors import BackendError, DeliveryError, OperationTimeoutError
from mcastlab.policy import Backoff
from mcastlab.runtime.base import Runtime

log = logging.getLogger("mcastlab.fanout")


@dataclass(frozen=True, slots=True)
class FanOutOutcome:
    """One fan-out: each target's status and latency (seconds since the multicast's start), and how many
    mid-fan-out journal writes failed (the final outcome write retries them)."""

    statuses: dict[str, str]
    latencies: dict[str, float]
    journal_errors: int = 0

    @property
    def delivered(self) -> int:
        return countOf(self.statuses.values(), DELIVERED)  # in C: a fan-out can have 10**5 targets

    @property
    def failed(self) -> int:
        return len(self.statuses) - self.delivered

    def failures_by_status(self) -> dict[str, int]:
        """How many targets ended in each non-delivered status."""
        if self.delivered == len(self.statuses):
            return {}
        out: dict[str, int] = {}
        for s in self.statuses.values():
            if s != DELIVERED:
                out[s] = out.get(s, 0) + 1
        return out


class FanOut:
    """Sends one multicast's message to its targets through ``messaging`` on ``runtime``."""

    def __init__(self, config: Config, runtime: Runtime, messaging: Messaging,
                 durability: Durability | None = None) -> None:
        self.config = config
        self.runtime = runtime
        self.messaging = messaging
        self.durability = durability
        self._backoff = Backoff(config.retry_backoff, config.retry_backoff_max)
        caps = messaging.capabilities
        self._timed_sends = not caps.self_timed
        self._inline_modes = tuple(m for m in MODES if m in caps.inline_modes)
        self._publish_batch = cast(BatchPublisher, messaging).publish_batch if caps.publish_batch else None

    async def run(self, targets: Sequence[str], message_id: str, data: bytes, mode: str,
                  t0: float) -> FanOutOutcome:
        """Statuses and latencies (seconds since ``t0``) per target; publish sends flushed once.

        Retries go in rounds: every target gets attempt 1, then the retryable failures wait one
        backoff together and get attempt 2, and so on. So an outage costs a fan-out a few backoffs
        in total, not a backoff per target, whatever the window width.
        """
        statuses: dict[str, str] = {}
        latencies: dict[str, float] = {}
        runtime, send = self.runtime, self._send_once
        # In ack mode each outcome is final when its send returns: persist them as the fan-out goes,
        # so a crash mid-fan-out leaves exact rows and replay flags only the truly unknown sends.
        journal = self.durability if mode == "ack" else None
        done: dict[str, str] = {}
        batch = self.config.max_in_flight
        attempts = self.config.send_retries + 1
        pending = targets if isinstance(targets, list) else list(targets)
        first = 1
        journal_errors = [0]
        publish_batch = self._publish_batch if mode == "publish" else None
        if publish_batch is not None and pending:
            # attempt 1 in one call: the backend frames the whole fan-out into its buffer at once
            try:
                failed = await publish_batch(message_id, data, pending, sent_at=runtime.now())
            except BackendError:
                log.info("publish batch of %s failed: the backend is unavailable", message_id, exc_info=True)
                failed = dict.fromkeys(pending, UNAVAILABLE)
            except Exception:
                log.warning("publish batch of %s failed unexpectedly", message_id, exc_info=True)
                failed = dict.fromkeys(pending, ERROR)
            elapsed = runtime.now() - t0
            if not failed:  # the common case, built in C: one status and one latency per target
                statuses = dict.fromkeys(pending, DELIVERED)
                latencies = dict.fromkeys(pending, elapsed)
                pending = []
            else:
                for ident in pending:
                    status = statuses[ident] = failed.get(ident, DELIVERED)
                    if status not in _RETRYABLE or attempts == 1:
                        latencies[ident] = elapsed
                pending = [i for i in pending if statuses[i] in _RETRYABLE]
            first = 2
        for attempt in range(first, attempts + 1):
            if not pending:
                break
            if attempt > 1:
                await runtime.sleep(self._backoff.compute(attempt - 1))
            it = iter(pending)
            last = attempt == attempts

            async def worker(it: Iterator[str] = it, attempt: int = attempt, last: bool = last) -> None:
                for ident in it:
                    status = statuses[ident] = await send(ident, message_id, data, mode, attempt)
                    if status in _RETRYABLE and not last:
                        continue
                    latencies[ident] = runtime.now() - t0
                    if journal is not None:
                        done[ident] = status
                        if len(done) >= batch:
                            chunk = dict(done)
                            done.clear()
                            journal_errors[0] += await self._journal(journal, message_id, chunk)

            width = 1 if mode in self._inline_modes else min(self.config.max_in_flight, len(pending))
            if width <= 1:
                await worker()
            else:
                await runtime.gather(*[worker() for _ in range(width)])
            pending = [i for i in pending if statuses[i] in _RETRYABLE]
        if mode == "publish":
            timeout = self.config.send_timeout
            try:
                if self._timed_sends:
                    await runtime.wait_for(self.messaging.flush(timeout, message_id=message_id), timeout)
                else:
                    await self.messaging.flush(timeout, message_id=message_id)
            except Exception as exc:
                log.info("flush of %s failed: its buffered sends are unconfirmed", message_id, exc_info=True)
                status = TIMEOUT if isinstance(exc, OperationTimeoutError) else UNAVAILABLE
                for ident, st in statuses.items():
                    if st == DELIVERED:
                        statuses[ident] = status
        return FanOutOutcome(statuses, latencies, journal_errors[0])

    async def _journal(self, journal: Durability, message_id: str, chunk: dict[str, str]) -> int:
        """Persist some outcomes mid-fan-out; returns 1 if that failed. A failing journal never stops
        the sends (the final outcome call retries them; replay re-offers what is not marked delivered)."""
        try:
            await journal.outcome(message_id, chunk, now=self.runtime.now())
        except Exception:
            log.warning("journal write for %s failed mid-fan-out", message_id, exc_info=True)
            return 1
        return 0

    async def _send_once(self, identity: str, message_id: str, data: bytes, mode: str, attempt: int) -> str:
        """One attempt; returns the status (never raises for a failed send)."""
        timeout = self.config.send_timeout
        messaging, runtime = self.messaging, self.runtime
        msg = Message(message_id, data, identity, runtime.now(), attempt)
        try:
            if self._timed_sends:
                await runtime.wait_for(messaging.send(msg, mode=mode, timeout=timeout), timeout)
            else:
                await messaging.send(msg, mode=mode, timeout=timeout)
            return DELIVERED
        except DeliveryError as exc:
            return exc.status
        except OperationTimeoutError:
            return TIMEOUT
        except BackendError:
            return UNAVAILABLE
        except Exception:
            log.warning("send of %s to %r failed unexpectedly", message_id, identity, exc_info=True)
            return ERROR


_RETRYABLE = frozenset((TIMEOUT, UNAVAILABLE, ERROR))  # not NO_LISTENER: nobody is there to retry for

__all__ = ["FanOut", "FanOutOutcome"]
