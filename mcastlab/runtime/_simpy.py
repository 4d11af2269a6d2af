"""SimPyRuntime: the same core in SimPy virtual time.

Theory of operation: every coroutine runs inside a SimPy process created by :meth:`_drive`, which
steps it with ``send``/``throw``. The only awaitable the core may hand up is :class:`SimAwait`,
whose ``__await__`` yields a SimPy event and returns the event's value; the driver yields that event
to SimPy and sends the value back in. Anything else (an asyncio future, a socket read) raises
RuntimeMisuseError inside the coroutine: live backends cannot run in virtual time.
A process's value is ``(ok, result_or_exception)`` so failures never crash the environment.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine, Generator
from typing import Any, TypeVar

import simpy
from simpy.events import Event as _SimEvent

from mcastlab.errors import Cancelled, OperationTimeoutError, RuntimeMisuseError

T = TypeVar("T")


class SimAwait:
    """Awaitable wrapper around one SimPy event."""

    __slots__ = ("event",)

    def __init__(self, event: _SimEvent) -> None:
        self.event = event

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.event)


class SimTask:
    """A coroutine running as a SimPy process."""

    __slots__ = ("_runtime", "process")

    def __init__(self, runtime: SimPyRuntime, process: simpy.Process) -> None:
        self._runtime = runtime
        self.process = process

    def cancel(self) -> bool:
        if self.process.is_alive:
            self.process.interrupt("cancel")
            return True
        return False

    def done(self) -> bool:
        return not self.process.is_alive

    def result(self) -> Any:
        ok, value = self.process.value  # type: ignore[misc]
        if not ok:
            raise value
        return value

    def __await__(self) -> Generator[Any, Any, Any]:
        ok, value = yield self.process
        if not ok:
            raise value
        return value


class SimEvent:
    """Level-triggered flag over one-shot SimPy events."""

    __slots__ = ("_env", "_flag", "_pending")

    def __init__(self, env: simpy.Environment) -> None:
        self._env = env
        self._flag = False
        self._pending: _SimEvent | None = None

    def set(self) -> None:
        self._flag = True
        if self._pending is not None:
            self._pending.succeed()
            self._pending = None

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    async def wait(self) -> bool:
        if self._flag:
            return True
        if self._pending is None:
            self._pending = self._env.event()
        await SimAwait(self._pending)
        return True


async def _as_coroutine(aw: Awaitable[T]) -> T:
    return await aw


class SimPyRuntime:
    """Virtual time on a ``simpy.Environment``; SimPy is the only clock."""

    name = "simpy"

    def __init__(self, env: simpy.Environment | None = None) -> None:
        self.env = env if env is not None else simpy.Environment()

    def now(self) -> float:
        return float(self.env.now)

    def sleep(self, dt: float) -> SimAwait:
        return SimAwait(self.env.timeout(dt if dt > 0 else 0))

    def timeout_event(self, dt: float) -> _SimEvent:
        """The raw SimPy timeout, for simulated backends that compose SimPy events directly."""
        return self.env.timeout(dt if dt > 0 else 0)

    def _drive(self, coro: Coroutine[Any, Any, Any]) -> Generator[_SimEvent, Any, tuple[bool, Any]]:
        send: Any = None
        throw: BaseException | None = None
        while True:
            try:
                if throw is not None:
                    exc, throw = throw, None
                    yielded = coro.throw(exc)
                else:
                    yielded = coro.send(send)
            except StopIteration as stop:
                return True, stop.value
            except Cancelled as exc:
                return False, exc
            except RuntimeError as exc:
                if "event loop" in str(exc):  # asyncio I/O attempted in virtual time
                    return False, _misuse(exc)
                return False, exc
            except Exception as exc:
                return False, exc
            if not isinstance(yielded, _SimEvent):
                throw = _misuse(yielded)
                send = None
                continue
            try:
                send = yield yielded
            except simpy.Interrupt:
                throw = Cancelled()
                send = None
            except BaseException as exc:
                throw = exc
                send = None

    def spawn(self, coro: Coroutine[Any, Any, T]) -> SimTask:
        return SimTask(self, self.env.process(self._drive(coro)))

    async def gather(self, *aws: Awaitable[Any]) -> list[Any]:
        if not aws:
            return []
        procs = [self.env.process(self._drive(_to_coro(a))) for a in aws]
        await SimAwait(self.env.all_of(procs))
        out = []
        for p in procs:
            ok, value = p.value  # type: ignore[misc]
            if not ok:
                raise value
            out.append(value)
        return out

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        if timeout is None:
            return await aw
        proc = self.env.process(self._drive(_to_coro(aw)))
        timer = self.env.timeout(timeout)
        await SimAwait(self.env.any_of([proc, timer]))
        if proc.triggered:
            ok, value = proc.value  # type: ignore[misc]
            if not ok:
                raise value
            return value  # type: ignore[no-any-return]
        proc.interrupt("timeout")
        raise OperationTimeoutError(f"operation did not complete within {timeout} s (virtual time)")

    def event(self) -> SimEvent:
        return SimEvent(self.env)

    def run(self, coro: Coroutine[Any, Any, T], *, until: float | None = None) -> T:
        """Drive ``coro`` in virtual time until it finishes (other processes keep their state)."""
        proc = self.env.process(self._drive(coro))
        try:
            self.env.run(until=proc)
        except RuntimeError as exc:
            if "No scheduled events left" in str(exc):
                raise RuntimeMisuseError(
                    "the simulation ran out of events before the coroutine finished: it waits for "
                    "something that never happens (an inbox nobody sends to?)"
                ) from None
            raise
        ok, value = proc.value  # type: ignore[misc]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]


def _misuse(what: object) -> RuntimeMisuseError:
    return RuntimeMisuseError(
        f"SimPyRuntime cannot drive {type(what).__name__} ({what!s:.60}): only simulated backends "
        "work in virtual time; use AsyncioRuntime for live servers"
    )


def _to_coro(aw: Awaitable[Any]) -> Coroutine[Any, Any, Any]:
    if isinstance(aw, Coroutine):
        return aw
    return _as_coroutine(aw)
