"""mcastlab: the multicast registry pattern — register identities with metadata and a TTL, enumerate
them by filter, multicast to them — run against live servers or in SimPy virtual time, and measured.

Quick start::

    import asyncio, mcastlab

    async def main():
        async with mcastlab.Coordinator() as c:
            await c.register("sensor-1", {"status": "online", "firmware_version": "1.2.3"}, ttl=300)
            print(await c.enumerate('status == "online" and firmware_version < v"1.3"'))
            print(await c.multicast({"status": "online"}, b"restart"))

    asyncio.run(main())

Curves: ``mcastlab.sweep(scenario, grid={...}, seeds=3)`` and ``mcastlab.knee(scenario, key, low, high)``
run many scenario runs on Dask distributed (imported on first use; see :mod:`mcastlab.sweep`).
"""

import logging

from mcastlab.config import Config
from mcastlab.coordinator import Coordinator
from mcastlab.errors import McastlabError
from mcastlab.identity import Identity
from mcastlab.metrics import Metrics
from mcastlab.results import ExpirationEvent, MulticastResult, OpEvent

__version__ = "0.1.0"

# mcastlab logs on "mcastlab.<module>" and leaves where the records go to the application (the CLI's -v
# sends them to stderr); without this, Python's last-resort handler would print warnings to stderr.
logging.getLogger("mcastlab").addHandler(logging.NullHandler())


def __getattr__(name: str) -> object:
    """``mcastlab.sweep`` and ``mcastlab.knee``, imported on first use (they bring in Dask)."""
    if name in ("sweep", "knee"):
        import importlib

        module = importlib.import_module("mcastlab.sweep")  # callable: mcastlab.sweep(...) runs a sweep
        return module if name == "sweep" else module.knee
    raise AttributeError(f"module 'mcastlab' has no attribute {name!r}")


__all__ = [
    "Config",
    "Coordinator",
    "ExpirationEvent",
    "Identity",
    "McastlabError",
    "Metrics",
    "MulticastResult",
    "OpEvent",
    "__version__",
]
