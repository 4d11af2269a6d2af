"""Measured operations: each call is spawned open-loop at its scheduled instant and recorded.

``t_start`` is the instant the schedule said; ``t_call`` is when the call really began (the difference is
generator lag); latency runs from ``t_start``. State-changing operations also update the ground truth
from what the registry answered (the deadline it returned), and multicasts are audited against it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import numpy as np

from mcastlab.backends.base import DELIVERED
from mcastlab.errors import McastlabError, RuntimeMisuseError, UnknownIdentityError
from mcastlab.measure.recorder import UNKNOWN_CODE, Recorder
from mcastlab.results import MulticastResult
from mcastlab.workloads._partition import Partition
from mcastlab.workloads.truth import Truth

OnDone = Callable[[float, int], None] | None
log = logging.getLogger("mcastlab.workloads.ops")


def _err(exc: BaseException) -> str:
    return type(exc).__name__


class OpsMixin:
    """register / heartbeat / unregister / enumerate / count / multicast, spawned and measured."""

    coord: Any
    runtime: Any
    truth: Truth
    rec: Recorder
    origin: float
    ttl: float | None
    tol: float
    inflight: int
    failure: BaseException | None
    cpu: Any  # the simulated process CPU (mcastlab.sim.SimCpu) in sim runs, else None
    part: Partition  # this replica's share of the operations (the whole plan without replicas)
    _tasks: dict[int, Any]
    _task_seq: int

    def now(self) -> float:
        """Seconds since the run's origin on the runtime's clock."""
        return float(self.runtime.now() - self.origin)

    def _rel(self, t: float | None) -> float:
        return np.inf if t is None else t - self.origin

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        cpu = self.cpu
        if cpu is not None:  # simulated: the load generator's own work, on the coordinator process's CPU
            cpu.charge(self.runtime.now(), cpu.per_op)
        self._task_seq += 1
        key = self._task_seq
        self.inflight += 1
        self._tasks[key] = self.runtime.spawn(self._tracked(key, coro))

    async def _tracked(self, key: int, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except Exception as exc:  # a bug, not a backend failure (those are McastlabErrors, recorded)
            self.fail(exc)
        finally:
            self.inflight -= 1
            self._tasks.pop(key, None)

    def fail(self, exc: BaseException) -> None:
        """An unexpected exception in a workload task: log it and stop the run (the first one is kept)."""
        log.error("a workload task failed; stopping the run", exc_info=exc)
        if self.failure is None:
            self.failure = exc
        self.stop()

    if TYPE_CHECKING:

        def stop(self) -> None: ...  # provided by Context

    def on_cut(self, code: int) -> None:
        """A device's operation failed because a backend was unreachable (hook for outages)."""

    # ------------------------------------------------------------------ state-changing operations
    def register(
        self, t: float, code: int, metadata: Any = None, *, stream: str = "register", then: OnDone = None
    ) -> None:
        """Spawn a register of identity ``code`` scheduled at ``t`` (metadata: the truth's by default)."""
        if not self.part.owns(code):
            return
        md = self.truth.meta[code] if metadata is None else metadata
        self._spawn(self._register(t, code, md, stream, then))

    async def _register(self, t: float, code: int, md: Any, stream: str, then: OnDone) -> None:
        truth, name = self.truth, self.truth.names[code]
        t_call = self.now()
        truth.op_started(code, t_call)
        try:
            got = await self.coord.register(name, md, self.ttl)
        except McastlabError as exc:
            truth.failed(code)
            self.rec.op("register", stream, code, t, t_call, self.now(), False, _err(exc))
            self.on_cut(code)
            return
        t_end = self.now()
        truth.registered_ok(code, t_call, self._rel(got.expires_at), md)
        self.rec.op("register", stream, code, t, t_call, t_end, True)
        if then is not None:
            then(t_end, code)

    def heartbeat(self, t: float, code: int, *, stream: str = "heartbeat") -> None:
        """Spawn a heartbeat; if the registry no longer knows the identity, it registers again."""
        if not self.part.owns(code):
            return
        self._spawn(self._heartbeat(t, code, stream))

    async def _heartbeat(self, t: float, code: int, stream: str) -> None:
        truth, name = self.truth, self.truth.names[code]
        t_call = self.now()
        truth.op_started(code, t_call)
        try:
            got = await self.coord.heartbeat(name, self.ttl)
        except UnknownIdentityError as exc:
            truth.heartbeat_unknown(code, t_call)
            t_end = self.now()
            self.rec.op("heartbeat", stream, code, t, t_call, t_end, False, _err(exc))
            await self._register(t_end, code, truth.meta[code], "reconnect", None)
            return
        except McastlabError as exc:
            truth.failed(code)
            self.rec.op("heartbeat", stream, code, t, t_call, self.now(), False, _err(exc))
            self.on_cut(code)
            return
        truth.heartbeat_ok(code, self._rel(got.expires_at))
        self.rec.op("heartbeat", stream, code, t, t_call, self.now(), True)

    def unregister(self, t: float, code: int, *, stream: str = "unregister") -> None:
        """Spawn an unregister (a graceful leave)."""
        if not self.part.owns(code):
            return
        self._spawn(self._unregister(t, code, stream))

    async def _unregister(self, t: float, code: int, stream: str) -> None:
        truth = self.truth
        t_call = self.now()
        truth.op_started(code, t_call)
        try:
            await self.coord.unregister(truth.names[code])
        except McastlabError as exc:
            truth.failed(code)
            self.rec.op("unregister", stream, code, t, t_call, self.now(), False, _err(exc))
            return
        truth.unregistered(code, t_call)
        self.rec.op("unregister", stream, code, t, t_call, self.now(), True)

    # ------------------------------------------------------------------ queries
    def enumerate(self, t: float, flt: Any, *, stream: str = "enumerate") -> None:
        """Spawn an enumerate with a compiled filter."""
        if not self.part.take_turn()[0]:
            return
        self._spawn(self._query(t, "enumerate", flt, stream))

    def count(self, t: float, flt: Any, *, stream: str = "count") -> None:
        """Spawn a count with a compiled filter."""
        if not self.part.take_turn()[0]:
            return
        self._spawn(self._query(t, "count", flt, stream))

    async def _query(self, t: float, op: str, flt: Any, stream: str) -> None:
        t_call = self.now()
        try:
            if op == "enumerate":
                matched = len(await self.coord.enumerate(flt))
            else:
                matched = await self.coord.count(flt)
        except McastlabError as exc:
            self.rec.op(op, stream, -1, t, t_call, self.now(), False, _err(exc))
            return
        self.rec.op(op, stream, -1, t, t_call, self.now(), True, matched=matched)

    # ------------------------------------------------------------------ multicast
    def multicast(
        self,
        t: float,
        flt: Any,
        payload: bytes,
        *,
        stream: str = "multicast",
        mode: str | None = None,
        then: Callable[[float, MulticastResult, np.ndarray], None] | None = None,
    ) -> None:
        """Spawn a multicast; ``then(t_end, result, delivered_codes)`` runs after it returns (with replicas:
        in every replica, with ``result`` None, once the sender broadcasts whom it reached)."""
        part = self.part
        mine, seq = part.take_turn()
        if then is not None and not part.whole:
            part.expect(seq, then)
            then = self._broadcast(seq)
        if mine:
            self._spawn(self._multicast(t, flt, payload, stream, mode, then))

    def _broadcast(self, seq: int) -> Callable[[float, MulticastResult, np.ndarray], None]:
        bus = self.part.bus
        if bus is None:
            raise RuntimeMisuseError("a replica's partition needs a bus for multicast reactions")

        def send(t_end: float, _res: MulticastResult, codes: np.ndarray) -> None:
            bus.publish(seq, t_end, codes.tolist())

        return send

    async def _multicast(
        self,
        t: float,
        flt: Any,
        payload: bytes,
        stream: str,
        mode: str | None,
        then: Callable[[float, MulticastResult, np.ndarray], None] | None,
    ) -> None:
        truth = self.truth
        t_call = self.now()
        snap = truth.snapshot(flt, t_call)
        try:
            res = await self.coord.multicast(flt, payload, mode=mode)
        except McastlabError as exc:
            truth.forget(snap)
            self.rec.op("multicast", stream, -1, t, t_call, self.now(), False, _err(exc))
            return
        t_end = self.now()
        cpu = self.cpu
        if cpu is not None:  # sim: recording and auditing the targets is the generator's CPU work too
            cpu.charge(self.runtime.now(), cpu.per_target * res.targeted)
        index = truth.index
        codes = truth.codes_of(res.statuses)
        audit = truth.audit(snap, self._rel(res.started_at) + res.enumerate_s, codes, self.tol)
        msg = self.rec.multicast(
            res,
            stream=stream,
            filter_text=flt.text,
            t_start=t,
            origin=self.origin,
            ident_of=index,
            audit=audit,
            codes=codes,
        )
        self.rec.op(
            "multicast",
            stream,
            -1,
            t,
            t_call,
            t_end,
            True,
            matched=res.targeted,
            delivered=res.delivered,
            failed=res.failed,
            msg=msg,
        )
        if then is not None:
            known = codes < UNKNOWN_CODE
            if res.delivered != len(res.statuses):  # only then is a per-target status worth reading
                known &= np.fromiter(map(DELIVERED.__eq__, res.statuses.values()), bool, len(res.statuses))
            then(t_end, res, codes[known])


__all__ = ["OpsMixin"]
