"""How long a simulated registry call takes: client CPU, pipeline lane, server queue, network, decode.

The timing half of :class:`~mcastlab.sim.registry.SimRegistry` (which keeps the data half): every call
becomes one awaitable, usually a single SimPy timeout computed at once (Lindley, see
:mod:`mcastlab.sim.queue`), with no coroutine on the hot path.
"""

from __future__ import annotations

import zlib
from typing import Any

from mcastlab.errors import OperationTimeoutError
from mcastlab.runtime import SimAwait


class RegistryTiming:
    """Mixin of SimRegistry: the attributes it reads are set by ``SimRegistry.__init__``."""

    env: Any
    cpu: Any
    lanes: Any
    server: Any
    shards: list[Any]
    stats: Any
    name: str
    _service: dict[str, Any]
    _network: dict[str, Any]
    _wake: Any
    _counters: dict[str, Any]
    _timeout: float | None

    def _wait(self, op: str, n: int = 0, factor: float = 1.0, key: str | None = None) -> Any:
        """The awaitable for ``op``: client CPU (request), server queue + service, round trip, client CPU
        (decoding ``n`` items) — one SimPy timeout, no coroutine on the hot path. ``key``: the identity
        an operation is about (it picks the shard when there are several)."""
        if len(self.shards) > 1:
            return self._wait_sharded(op, n, factor, key)
        env = self.env
        now = env.now
        svc = self._service[op](n)
        net = self._network[op](n)
        if factor != 1.0:
            svc *= factor
            net *= factor
        cpu = self.cpu
        ready = now if cpu is None else cpu.charge(now, cpu.call(op))
        server = self.server
        lanes = self.lanes
        arrive = ready if lanes is None else lanes.dispatch(ready)
        if self._wake is not None:  # a server that sat idle starts late (it wakes up): registry.wake
            arrive += self._wake(ready - server.first_free)
        if server.servers == 1:  # FcfsServer.admit, inlined for the common single-server case
            start = server._free if server._free > arrive else arrive
            server._free = start + svc
            server.busy += svc
        else:
            start = server.admit(arrive, svc)
        c = self._counters[op]
        c.count += 1
        c.items += n
        c.wait_s += start - arrive
        c.service_s += svc
        done = start + svc + net
        if lanes is not None and cpu is not None:  # the lane reads the reply on the event loop
            read = cpu.read(n)
            done = cpu.charge(done, read)
            lanes.hold(done)
            return self._finish(op, now, done, n, read)
        if lanes is not None:
            lanes.hold(done)
        return self._finish(op, now, done, n)

    def _finish(self, op: str, now: float, done: float, n: int, read: float = 0.0) -> Any:
        """Wait until ``done`` (the reply), then decode ``n`` items on the client CPU (less the ``read``
        already charged to the lane that read the reply); time out if late."""
        cpu = self.cpu
        if cpu is not None and n:  # decoding the reply queues on the CPU when the reply arrives
            work = cpu.items(op, n) - read
            if work > 0:
                timeout = self._timeout
                if timeout is not None and done - now > timeout:
                    return self._time_out(op, timeout)
                return self._decode(done - now, work)
        delay = done - now
        timeout = self._timeout
        if timeout is not None and delay > timeout:
            return self._time_out(op, timeout)
        return SimAwait(self.env.timeout(delay))

    def _wait_sharded(self, op: str, n: int, factor: float, key: str | None) -> Any:
        """``_wait`` over several shards: an identity's operation queues on its shard only (CRC-32 of its
        name, as RedisClusterRegistry routes); anything else is one request per shard, sent together,
        each serving its share of the ``n`` items, and the reply is the last shard's."""
        now = self.env.now
        shards = self.shards
        if key is not None:
            asks = [(zlib.crc32(key.encode("utf-8", "surrogatepass")) % len(shards), n)]
        else:
            per, extra = divmod(n, len(shards))
            asks = [(k, per + (1 if k < extra else 0)) for k in range(len(shards))]
        cpu = self.cpu
        ready = now if cpu is None else cpu.charge(now, cpu.call(op) * len(asks))
        c = self._counters[op]
        c.count += 1
        c.items += n
        last = ready
        wake = self._wake
        for k, nk in asks:
            svc = self._service[op](nk) * factor
            arrive = ready if wake is None else ready + wake(ready - shards[k].first_free)
            start = shards[k].admit(arrive, svc)
            c.wait_s += start - arrive
            c.service_s += svc
            last = max(last, start + svc)
        return self._finish(op, now, last + self._network[op](n) * factor, n)

    async def _decode(self, reply_in: float, work: float) -> None:
        """Wait for the reply, then for the client CPU to decode it (queued behind what else it does)."""
        env = self.env
        await SimAwait(env.timeout(reply_in))
        assert self.cpu is not None
        await SimAwait(env.timeout(self.cpu.charge(env.now, work) - env.now))

    async def _time_out(self, op: str, timeout: float) -> None:
        await SimAwait(self.env.timeout(timeout))
        self.stats[op].fail("timeout")
        raise OperationTimeoutError(
            f"simulated registry {op} did not complete within {timeout} s", backend=self.name
        )



__all__ = ["RegistryTiming"]
