"""Getting a Dask ``distributed.Client``: a local cluster of worker processes, or an existing cluster.

Sweeps and knees run each point as a task on Dask distributed, and live runs with ``--processes N`` run
each coordinator replica as one; this module is the one place that decides where those tasks go, and it
knows nothing about either::

    from mcastlab.dask_cluster import cluster

    with cluster(workers=4) as client:                  # LocalCluster: 4 processes x 1 thread
        futures = client.map(fn, items, pure=False)
    with cluster(scheduler="tcp://10.0.0.5:8786") as client:   # a cluster started elsewhere
        ...

* ``cluster()`` with no arguments starts a ``distributed.LocalCluster`` of N worker **processes** with
  one thread each (N = the CPUs this process may use): CPU-bound simulations in one process would
  share one GIL. The cluster lives for the ``with`` block, so worker start-up (about 2 s here) is paid
  once per block, not per task. Its dashboard is off and its scheduler (and the scheduler's HTTP
  endpoints) listen on free loopback ports, so several clusters on one machine never collide.
* ``cluster(scheduler=ADDRESS)`` connects to a running scheduler (``dask scheduler`` and ``dask worker
  ADDRESS`` started by hand, or any Dask deployment) and leaves it running afterwards. Its workers must
  have mcastlab installed (the same version): the tasks are mcastlab functions, sent by reference.
* Local workers run **without Dask's statistical profiler**. It samples the task threads' stacks
  every 10 ms and holds their frames while it walks them, which keeps a returning function's locals
  alive a moment longer; a run whose ground truth had just taken a numpy view of a growing
  ``array.array`` (``workloads/truth.py``, the targeting audit) then failed with "BufferError: cannot
  resize an array that is exporting buffers" (seen once in a 22-run knee). Workers you start yourself
  (``--scheduler``) should be started with ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False``; a run
  that fails this way anyway is recorded as failed with that error, never silently.
* ``warm`` modules are imported on every worker before the block starts (default: the scenario runner,
  so the first task does not pay for importing pandas and SimPy, and a worker without mcastlab is
  refused here with a clear error instead of failing every task).

:func:`describe` returns what a manifest should say about the cluster: engine, scheduler address,
workers, threads and the versions of Dask and mcastlab on the client and the workers.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Iterator, Sequence
from importlib import metadata
from typing import Any

from mcastlab.errors import BackendUnavailableError, UsageError
from mcastlab.measure.resources import usable_cpus

DEFAULT_WARM = ("mcastlab.workloads",)
CONNECT_TIMEOUT = 10.0  # seconds to reach an existing scheduler


def default_workers() -> int:
    """The number of CPUs this process may run on (the default number of local workers)."""
    return usable_cpus()


def _warm(modules: Sequence[str]) -> str:
    """Run on each worker: import ``modules``; return the worker's mcastlab version."""
    for name in modules:
        importlib.import_module(name)
    return metadata.version("mcastlab")


@contextlib.contextmanager
def cluster(
    workers: int | None = None,
    scheduler: str | None = None,
    *,
    processes: bool = True,
    threads_per_worker: int = 1,
    warm: Sequence[str] = DEFAULT_WARM,
    **cluster_kwargs: Any,
) -> Iterator[Any]:
    """A ``distributed.Client`` for the ``with`` block (see the module docstring).

    ``workers`` and ``scheduler`` are exclusive. ``processes=False`` runs the workers as threads of
    this process (tests; nothing CPU-bound gains from it). Extra keyword arguments go to
    ``LocalCluster`` (e.g. ``memory_limit``).
    """
    if workers is not None and scheduler is not None:
        raise UsageError("--workers and --scheduler are exclusive: --workers N starts a local cluster, "
                         "--scheduler ADDRESS uses a running one. Fix: pass one of them")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise UsageError(f"--workers {workers!r}: expected a whole number of worker processes >= 1. "
                         "Fix: e.g. --workers 2")
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise BackendUnavailableError(
                f"--scheduler {scheduler}: no Dask scheduler answered within {CONNECT_TIMEOUT:g} s ({exc}). "
                "Fix: start one with 'dask scheduler' and workers with 'dask worker ADDRESS', "
                "or drop --scheduler to use a local cluster", backend="dask") from None
        with client:
            _check_workers(client, warm, scheduler)
            yield client
        return
    n = workers if workers is not None else default_workers()
    # no dashboard, and the scheduler's HTTP endpoints (health, metrics) on a free port, not 8787
    scheduler_kwargs = {"dashboard_address": ":0", **cluster_kwargs.pop("scheduler_kwargs", {})}
    options: dict[str, Any] = {"dashboard_address": None, "scheduler_kwargs": scheduler_kwargs,
                               **({"host": "127.0.0.1"} if processes else {}), **cluster_kwargs}
    with dask.config.set({"distributed.worker.profile.enabled": False}):  # see the module docstring
        local = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=processes,
                             **options)
    nanny = logging.getLogger("distributed.nanny")
    level = nanny.level
    try:
        with local, Client(local) as client:
            _check_workers(client, warm, local.scheduler_address)
            try:
                yield client
            finally:  # a worker still freeing a big run's memory is killed at close: not worth a warning
                nanny.setLevel(logging.ERROR)
    finally:
        nanny.setLevel(level)


def _check_workers(client: Any, warm: Sequence[str], where: str) -> None:
    if not client.nthreads():
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT * 3)
    if not warm:
        return
    try:
        client.run(_warm, list(warm))
    except Exception as exc:  # ImportError, or a function the worker cannot even unpickle
        raise BackendUnavailableError(
            f"the Dask workers at {where} cannot run mcastlab ({type(exc).__name__}: {exc}). "
            "Fix: install mcastlab (the same version) in the workers' environment", backend="dask") from None


def describe(client: Any) -> dict[str, Any]:
    """Engine, scheduler address, workers and versions, for a manifest."""
    nthreads = client.nthreads()
    try:
        remote = sorted(set(client.run(lambda: metadata.version("mcastlab")).values()))
    except Exception:  # a worker that left meanwhile; the manifest says unknown
        remote = ["unknown"]
    return {
        "engine": "dask.distributed",
        "scheduler": client.scheduler.address,
        "workers": len(nthreads),
        "threads": int(sum(nthreads.values())),
        "versions": {
            "mcastlab": metadata.version("mcastlab"),
            "mcastlab_on_workers": remote,
            "dask": metadata.version("dask"),
            "distributed": metadata.version("distributed"),
        },
    }


def slots(client: Any) -> int:
    """How many tasks the cluster runs at once (its worker threads), at least 1."""
    return max(1, int(sum(client.nthreads().values())))


__all__ = ["CONNECT_TIMEOUT", "DEFAULT_WARM", "cluster", "default_workers", "describe", "slots"]
