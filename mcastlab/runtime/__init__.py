"""Runtimes: where time and concurrency come from (asyncio for live runs, SimPy for simulation).

Each runtime is imported on first use, so importing the core (``mcastlab.coordinator``) pulls in
neither asyncio's event loop policy nor simpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mcastlab.runtime.base import Event, Mailbox, Runtime, Task

if TYPE_CHECKING:
    from mcastlab.runtime._asyncio import AsyncioRuntime
    from mcastlab.runtime._simpy import SimAwait, SimPyRuntime, SimTask

_LAZY = {
    "AsyncioRuntime": "mcastlab.runtime._asyncio",
    "SimAwait": "mcastlab.runtime._simpy",
    "SimPyRuntime": "mcastlab.runtime._simpy",
    "SimTask": "mcastlab.runtime._simpy",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mcastlab.runtime' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = ["AsyncioRuntime", "Event", "Mailbox", "Runtime", "SimAwait", "SimPyRuntime", "SimTask", "Task"]
