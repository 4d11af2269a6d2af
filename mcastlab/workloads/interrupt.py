"""Interruption: SIGINT and SIGTERM ask a run to stop cleanly instead of killing it mid-write.

While a run is in progress (``with Interruption() as stop:``) both signals only *record* the request
(``stop.signal``) and call the stop callbacks (a live run cancels its main task through
``loop.call_soon_threadsafe``, which is safe from a signal handler); the simulated run checks
``stop.requested`` between steps. So the recorder's column arrays are never left half-appended, the
run keeps every frame measured so far, its manifest says ``interrupted: true`` and which signal, and
the servers it started are stopped on the way out. A second signal while stopping raises
KeyboardInterrupt at once (the user insists). Handlers are installed only in the main thread and the
previous ones are restored afterwards.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}  # 128 + signal number, as shells report them


class Interruption:
    """Context manager turning SIGINT/SIGTERM into a stop request; see the module docstring."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._callbacks: list[Callable[[], Any]] = []
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        """True once a signal asked the run to stop."""
        return self.signal is not None

    def on_stop(self, callback: Callable[[], Any]) -> None:
        """Call ``callback()`` (from the signal handler) when a stop is requested."""
        self._callbacks.append(callback)
        if self.requested:
            callback()

    def request(self, name: str) -> None:
        """Ask the run to stop, as if signal ``name`` had arrived (also used for Ctrl-C in a notebook)."""
        if self.signal is not None:
            return
        self.signal = name
        for callback in self._callbacks:
            callback()

    def _handler(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt  # a second signal: stop now, whatever is lost
        self.request(signal.Signals(signum).name)

    def __enter__(self) -> Interruption:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


__all__ = ["EXIT_CODES", "Interruption"]
