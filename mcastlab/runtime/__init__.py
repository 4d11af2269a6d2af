"""Runtimes: where time and concurrency come from (asyncio for live runs, SimPy for simulation)."""

from mcastlab.runtime._asyncio import AsyncioRuntime
from mcastlab.runtime._simpy import SimAwait, SimPyRuntime, SimTask
from mcastlab.runtime.base import Event, Mailbox, Runtime, Task

__all__ = ["AsyncioRuntime", "Event", "Mailbox", "Runtime", "SimAwait", "SimPyRuntime", "SimTask", "Task"]
