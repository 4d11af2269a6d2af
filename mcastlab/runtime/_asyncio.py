"""AsyncioRuntime: the core on a real asyncio event loop, against live servers."""

from __future__ import annotations

import asyncio
import threading
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


def run_blocking(coro: Coroutine[Any, Any, T], *, state: dict[str, Any] | None = None) -> T:
    """``asyncio.run(coro)``, or inside a running loop (Jupyter) on a worker thread with its own loop.

    On Ctrl-C in the caller's thread, ``state["task"]`` (if the coroutine stored its task and loop
    there) is cancelled so the run can stop cleanly and keep what it measured.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    results: list[Any] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            results.append(asyncio.run(coro))
        except BaseException as exc:
            errors.append(exc)

    th = threading.Thread(target=target, name="mcastlab-asyncio", daemon=True)
    th.start()
    try:
        while th.is_alive():
            th.join(0.2)
    except KeyboardInterrupt:
        loop, task = (state or {}).get("loop"), (state or {}).get("task")
        if loop is not None and task is not None:
            loop.call_soon_threadsafe(task.cancel)
        th.join()
        raise
    if errors:
        if isinstance(errors[0], asyncio.CancelledError):
            return None  # type: ignore[return-value]
        raise errors[0]
    return results[0]  # type: ignore[no-any-return]
