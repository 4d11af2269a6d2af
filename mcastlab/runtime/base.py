"""The Runtime protocol: the only way the coordinator core touches time and concurrency.

The core is ordinary ``async def`` code that imports neither asyncio nor simpy. It reads the clock
with ``runtime.now()``, waits with ``runtime.sleep``, runs things in parallel with ``gather`` and
``spawn``, bounds waits with ``wait_for`` and signals with ``event()``. Two implementations exist:
:class:`~mcastlab.runtime.AsyncioRuntime` (real time, live servers) and
:class:`~mcastlab.runtime.SimPyRuntime` (SimPy virtual time).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Coroutine
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from mcastlab.errors import InboxTimeoutError, OperationTimeoutError, UsageError

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Task(Protocol[T_co]):
    """A spawned coroutine: awaitable for its result, cancellable."""

    def cancel(self) -> Any: ...

    def done(self) -> bool: ...

    def __await__(self) -> Any: ...


class Event(Protocol):
    """A level-triggered flag that coroutines can wait on."""

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def is_set(self) -> bool: ...

    def wait(self) -> Awaitable[Any]: ...


@runtime_checkable
class Runtime(Protocol):
    """Time and concurrency for the core. See the module docstring."""

    name: str

    def now(self) -> float:
        """Seconds on this runtime's clock (wall clock for asyncio, ``env.now`` for SimPy)."""
        ...

    def sleep(self, dt: float) -> Awaitable[None]: ...

    def gather(self, *aws: Awaitable[Any]) -> Awaitable[list[Any]]: ...

    def spawn(self, coro: Coroutine[Any, Any, T]) -> Task[T]: ...

    def wait_for(self, aw: Awaitable[T], timeout: float | None) -> Awaitable[T]:
        """Await ``aw``; after ``timeout`` seconds cancel it and raise OperationTimeoutError."""
        ...

    def event(self) -> Event: ...

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Drive ``coro`` to completion from synchronous code and return its result."""
        ...


class Mailbox(Generic[T]):
    """An unbounded FIFO queue built on a runtime Event, so it works under any runtime."""

    __slots__ = ("_event", "_items", "_runtime")

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._items: deque[T] = deque()
        self._event = runtime.event()

    def put(self, item: T) -> None:
        self._items.append(item)
        self._event.set()

    def get_nowait(self) -> T | None:
        if self._items:
            item = self._items.popleft()
            if not self._items:
                self._event.clear()
            return item
        return None

    async def get(self, timeout: float | None = None) -> T:
        """Next item; raises InboxTimeoutError if none arrives within ``timeout`` seconds."""
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float)
                                    or not timeout >= 0):
            raise UsageError(f"timeout must be a number of seconds >= 0 or None (wait forever), "
                             f"got {timeout!r}")
        while not self._items:
            if timeout is None:
                await self._event.wait()
                continue
            try:
                await self._runtime.wait_for(self._event.wait(), timeout)
            except OperationTimeoutError:
                raise InboxTimeoutError(f"no message within {timeout} s") from None
        item = self._items.popleft()
        if not self._items:
            self._event.clear()
        return item

    def __len__(self) -> int:
        return len(self._items)
