"""Live runs on N coordinator replicas, each in its own Dask worker process (``--processes N``).

Production runs the multicast registry as several stateless coordinators in front of shared servers; a
single Python process holding the load generator, every agent and the coordinator measures its own CPU
more than the system at a few hundred requests per second. Here:

1. The servers are started once (or, with ``--scheduler``, named by the scenario) and every replica gets
   their addresses and one prefix token, so all replicas share one registry and one set of inboxes.
2. N tasks run :func:`~mcastlab.workloads._replica.run_replica` on N distinct workers of a Dask cluster
   (:mod:`mcastlab.dask_cluster`: a local cluster of N processes, or ``--scheduler ADDRESS``). Each runs
   the whole workload plan and issues its share (:mod:`mcastlab.workloads._partition`): an identity's
   operations belong to one replica, global operations are dealt round-robin, multicast reactions are
   broadcast. Expiry is claimed by every replica's sweeper, each expiry exactly once (the registry's claim).
3. When every replica is ready, the parent publishes a shared origin (wall clock, 0.5 s ahead); server
   outages of the scenario's faults are applied by the parent on the servers it started.
4. SIGINT / SIGTERM set the run's stop event; replicas stop, keep what they measured and return it.
5. The parent replays the replicas' truth journals as one truth (:mod:`mcastlab.workloads._journal`) and
   merges their recorders (:mod:`mcastlab.measure.merge`): one run, with a ``process`` column, whose
   targeting audit and expected expirations cover every identity.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from mcastlab.errors import BackendError, UsageError
from mcastlab.measure.merge import merge_recorders
from mcastlab.measure.resources import CpuMeter
from mcastlab.workloads._drive import Drive, progress_bar
from mcastlab.workloads._journal import replay
from mcastlab.workloads._replica import ReplicaResult, ReplicaSpec, run_replica
from mcastlab.workloads.backends import Backends, label_of, live_servers, new_token
from mcastlab.workloads.faults import server_pauses
from mcastlab.workloads.interrupt import Interruption
from mcastlab.workloads.scenario import Scenario
from mcastlab.workloads.truth import Truth

LEAD_S = 0.5  # the origin is this far ahead of the moment every replica is ready


@dataclass
class MergedRun:
    """The replicas as one run, for the runner: the replayed truth, deaths, agent errors, the end."""

    truth: Truth
    deaths: list[int]
    agent_errors: int
    tol: float
    end_s: float
    replicas: list[dict[str, Any]]

    def now(self) -> float:
        return self.end_s


def check_processes(processes: Any) -> int:
    """``processes`` as an int >= 1, else a UsageError saying how to fix it."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise UsageError(f"--processes {processes!r}: expected a whole number of coordinator replicas >= 1. "
                         "Fix: e.g. --processes 2")
    return processes


def drive_replicas(scn: Scenario, *, processes: int, scheduler: str | None, progress: bool,
                   stop: Interruption) -> Drive:
    """Run the live scenario on ``processes`` replicas; see the module docstring."""
    from distributed import Event, Queue, Variable, wait

    from mcastlab.dask_cluster import cluster, describe

    tag = uuid.uuid4().hex[:8]
    names = {"bus": f"mcastlab-bus-{tag}", "ready": f"mcastlab-ready-{tag}",
             "origin": f"mcastlab-origin-{tag}", "stop": f"mcastlab-stop-{tag}"}
    drive = Drive(None, None)
    with live_servers(scn, start=scheduler is None) as srv:
        backends = Backends(None, None, label_of(scn), None, srv.versions, srv.started, srv.clusters)
        drive.backends = backends
        token = new_token()
        workers = processes if scheduler is None else None
        with cluster(workers=workers, scheduler=scheduler, warm=("mcastlab.workloads._replica",)) as client:
            addrs = sorted(client.nthreads())
            if len(addrs) < processes:
                raise UsageError(f"--processes {processes}: the Dask cluster at {scheduler} has "
                                 f"{len(addrs)} workers; each replica needs its own. Fix: start more "
                                 "workers or ask for fewer")
            stop_event, ready = Event(names["stop"]), Queue(names["ready"])
            origin_var = Variable(names["origin"])
            specs = [ReplicaSpec(dict(scn.raw), i, processes, srv.urls, token, names)
                     for i in range(processes)]
            futures = [client.submit(run_replica, s, workers=[addrs[s.index]], allow_other_workers=False,
                                     pure=False, key=f"replica-{s.index}-{tag}") for s in specs]
            meter = CpuMeter({**{f"{k}-server": s.pid for k, s in srv.started.items()},
                              **{f"{k}-node{i}": n.pid for k, c in srv.clusters.items()
                                 for i, n in enumerate(c.nodes)}})
            origin = _start_together(futures, ready, origin_var, processes, stop)
            meter.start()
            timers = _outages(scn, srv, origin)
            bar = progress_bar(scn.duration + scn.drain, f"{scn.name} [live x{processes}]", progress)
            try:
                pending = futures
                while pending:
                    try:
                        done, not_done = wait(pending, timeout=0.5, return_when="FIRST_COMPLETED")
                    except TimeoutError:  # none finished in this half second
                        done, not_done = set(), set(pending)
                    pending = list(not_done)
                    bar.update(round(min(time.time() - origin, bar.total) - bar.n, 3))
                    if stop.requested or any(f.status == "error" for f in done):
                        stop_event.set()
            finally:
                bar.close()
                for t in timers:
                    t.cancel()
                for s in [*srv.started.values(), *(n for c in srv.clusters.values() for n in c.nodes)]:
                    s.resume()
                servers_report = meter.stop()
            results, errors = _gather(client, futures)
            cluster_info = describe(client)
    drive.error = BackendError("; ".join(errors)) if errors else None
    if not results:
        return drive
    drive.recorder, drive.ctx = _merge(results, scn)  # type: ignore[assignment]
    busy = dict(servers_report.get("busy", {}))
    cpu_s = dict(servers_report.get("cpu_s", {}))
    for r in results:
        busy.update(r.resources.get("busy", {}))
        cpu_s.update(r.resources.get("cpu_s", {}))
    drive.resources = {"source": "process CPU time (psutil), per replica process and server",
                       "wall_s": servers_report.get("wall_s", 0.0), "busy": busy, "cpu_s": cpu_s,
                       "processes": processes, "cluster": cluster_info}
    return drive


def _start_together(futures: list[Any], ready: Any, origin_var: Any, n: int, stop: Interruption) -> float:
    """Wait until every replica is ready (or one failed), then publish the origin and return it."""
    got = 0
    while got < n:
        if stop.requested:
            break
        failed = [f for f in futures if f.status in ("error", "finished")]
        if failed:
            break  # a replica ended before the start: publish an origin so the others run and return
        got += len(ready.get(batch=True))  # polled: a Dask queue get that times out logs scheduler errors
        if got < n:
            time.sleep(0.1)
    origin = time.time() + LEAD_S
    origin_var.set(origin)
    return origin


def _outages(scn: Scenario, srv: Any, origin: float) -> list[threading.Timer]:
    """The scenario's registry / messaging outages as pauses of the local servers, on the shared clock."""
    timers = []
    for at, action in server_pauses(scn.faults, srv.started, srv.clusters):
        t = threading.Timer(max(0.0, origin + at - time.time()), action)
        t.daemon = True
        t.start()
        timers.append(t)
    return timers


def _gather(client: Any, futures: list[Any]) -> tuple[list[ReplicaResult], list[str]]:
    results, errors = [], []
    for i, f in enumerate(futures):
        try:
            res = client.gather(f)
        except Exception as exc:
            errors.append(f"replica {i} failed: {type(exc).__name__}: {exc}")
            continue
        results.append(res)
        if res.error:
            errors.append(f"replica {i}: {res.error}")
    return sorted(results, key=lambda r: r.index), errors


def _merge(results: list[ReplicaResult], scn: Scenario) -> tuple[Any, MergedRun]:
    rep = replay([r.journal for r in results], [r.groups for r in results])
    rec = merge_recorders([r.recorder for r in results], rep.codes, rep.audits, rep.alive)
    deaths = sorted({int(rep.codes[k][c]) for k, r in enumerate(results) for c in r.deaths})
    tol = 0.01 if scn.measure.tolerance is None else scn.measure.tolerance
    info = [{"process": r.index, "host": r.host, "pid": r.pid, "expired": r.expired_total,
             "error": r.error} for r in results]
    return rec, MergedRun(rep.truth, deaths, sum(r.agent_errors for r in results), tol,
                          max(r.end_s for r in results), info)


__all__ = ["MergedRun", "check_processes", "drive_replicas"]
