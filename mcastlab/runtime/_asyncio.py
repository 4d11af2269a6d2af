"""AsyncioRuntime: the core on a real asyncio event loop, against live servers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from mcastlab.errors import OperationTimeoutError

T = TypeVar("T")


class AsyncioRuntime:
    """Real time. ``now()`` is the wall clock (``time.time``) so deadlines stored in a shared Redis
    or PostgreSQL mean the same to every coordinator process on the machine."""

    name = "asyncio"

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock

    def now(self) -> float:
        return float(self._clock())

    def sleep(self, dt: float) -> Awaitable[None]:
        return asyncio.sleep(max(0.0, dt))

    async def gather(self, *aws: Awaitable[Any]) -> list[Any]:
        return list(await asyncio.gather(*aws))

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        return asyncio.get_running_loop().create_task(coro)

    async def wait_for(self, aw: Awaitable[T], timeout: float | None) -> T:
        if timeout is None:
            return await aw
        try:
            return await asyncio.wait_for(aw, timeout)
        except TimeoutError as exc:
            if isinstance(exc, OperationTimeoutError):
                raise
            raise OperationTimeoutError(f"operation did not complete within {timeout} s") from None

    def event(self) -> asyncio.Event:
        return asyncio.Event()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on a new event loop. In Jupyter (a loop is running) just ``await`` instead."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        coro.close()
        from mcastlab.errors import RuntimeMisuseError

        raise RuntimeMisuseError(
            "AsyncioRuntime.run() was called inside a running event loop (e.g. Jupyter); "
            "use 'await coro' there instead"
        )
