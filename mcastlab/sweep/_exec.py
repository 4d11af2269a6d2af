"""Running point tasks on a Dask client: submitted at once, streamed back as they finish.

Every task is submitted to the cluster together (``pure=False``: two identical runs are two runs);
results come back with ``distributed.as_completed`` in the order they finish and advance one progress
bar (stderr). A task whose worker died or whose result could not be read becomes a failed record with
the error; the others go on. Ctrl-C cancels what has not finished, records it as ``interrupted`` and
returns what had finished, so a sweep keeps what it measured. Records come back in run order.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from mcastlab.errors import UsageError
from mcastlab.sweep._points import PointRecord
from mcastlab.sweep._task import PointTask, failed, run_point


def progress_bar(total: int, *, enabled: bool, desc: str) -> Any:
    """One tqdm bar on stderr (a no-op object when disabled)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, disable=not enabled, leave=True,
                dynamic_ncols=True)


def execute(client: Any, tasks: Sequence[PointTask], bar: Any) -> tuple[list[PointRecord], bool]:
    """Run ``tasks`` on ``client``; return their records in run order and whether Ctrl-C stopped it."""
    from distributed import as_completed

    tag = uuid.uuid4().hex[:8]
    futures = {client.submit(run_point, t, pure=False, key=f"mcastlab-point-{tag}-{t.index}"): t
               for t in tasks}
    records: dict[int, PointRecord] = {}
    n_failed = 0
    interrupted = False
    try:
        for fut in as_completed(list(futures)):
            task = futures[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # the worker died (KilledWorker), the result did not arrive, ...
                rec = failed(task, f"{type(exc).__name__}: {exc}")
            fut.release()
            records[task.index] = rec
            n_failed += not rec.ok
            bar.update(1)
            if n_failed:
                bar.set_postfix(failed=n_failed, refresh=False)
    except KeyboardInterrupt:
        interrupted = True
        pending = [f for f, t in futures.items() if t.index not in records]
        with contextlib.suppress(Exception):
            client.cancel(pending)
        for t in tasks:
            records.setdefault(t.index, failed(t, "interrupted: the sweep stopped before this run finished"))
    return [records[t.index] for t in tasks], interrupted


@contextlib.contextmanager
def client_for(client: Any = None, workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """``client`` itself if given (left open), else :func:`mcastlab.dask_cluster.cluster`."""
    if client is not None:
        if workers is not None or scheduler is not None:
            raise UsageError("pass either client= or workers=/scheduler=, not both")
        yield client
        return
    from mcastlab.dask_cluster import cluster

    with cluster(workers=workers, scheduler=scheduler) as c:
        yield c


__all__ = ["client_for", "execute", "progress_bar"]
