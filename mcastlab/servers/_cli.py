"""``servers up|status|down``: detached local servers for notebooks, recorded in a JSON state file.

``up`` prints shell lines, so ``eval "$(python -m mcastlab.servers up)"`` sets ``MCASTLAB_*_URL``;
``up --redis-cluster N --nats-cluster N`` starts clusters (N Redis masters with a replica each, N NATS
nodes) and sets ``MCASTLAB_REDIS_CLUSTER_URLS`` / ``MCASTLAB_NATS_CLUSTER_URLS`` (comma-separated).
Cluster nodes are recorded with a ``group``; ``down redis-cluster`` / ``down nats-cluster`` stop them.
The state file is ``$MCASTLAB_STATE_DIR/servers.json`` or ``~/.cache/mcastlab/servers.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mcastlab.errors import McastlabError, ServerError
from mcastlab.servers import Server, _kafka, kinds, start
from mcastlab.servers._clusters import start_nats_cluster, start_redis_cluster

CLUSTER_GROUPS = ("redis-cluster", "nats-cluster")


def state_file() -> Path:
    """Where ``up`` records the servers it started (``$MCASTLAB_STATE_DIR`` overrides the cache dir)."""
    base = os.environ.get("MCASTLAB_STATE_DIR")
    return (Path(base) if base else Path.home() / ".cache" / "mcastlab") / "servers.json"


def env_var(kind: str) -> str:
    """The environment variable ``up`` exports a server's URL as, e.g. ``MCASTLAB_REDIS_URL``."""
    return f"MCASTLAB_{kind.upper()}_URL"


@contextlib.contextmanager
def _locked_state() -> Iterator[list[dict[str, Any]]]:
    """Read the recorded servers under an exclusive lock; what the block leaves in the list is saved."""
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            records = list(json.loads(path.read_text()).get("servers", []))
        except (OSError, ValueError, AttributeError):
            records = []
        yield records
        if records:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"servers": records}, indent=2) + "\n")
            os.replace(tmp, path)
        else:
            path.unlink(missing_ok=True)


def _record(server: Server) -> dict[str, Any]:
    return {
        "kind": server.kind, "host": server.host, "port": server.port, "pid": server.pid,
        "data_dir": str(server.data_dir), "url": server.url, "binary": str(server.binary),
        "version": server.version, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }  # fmt: skip


def _server(record: dict[str, Any]) -> Server:
    """Rebuild a :class:`Server` from a state record (to check or stop it from another process)."""
    return Server(
        record["kind"], record.get("host", "127.0.0.1"), int(record["port"]), int(record["pid"]),
        Path(record["data_dir"]), Path(record["binary"]), record.get("version", "unknown"),
    )  # fmt: skip


def _up(kinds: Sequence[str], extra: dict[str, list[str]] | None = None) -> int:
    with _locked_state() as records:
        alive = [r for r in records if _server(r).alive()]
        running = {r["kind"]: r for r in alive if "group" not in r}  # cluster nodes are not the kind's server
        records[:] = [r for r in alive if "group" in r] + list(running.values())
        for kind in kinds:
            if kind in running:
                print(f"# {kind} already running: {running[kind]['url']} (pid {running[kind]['pid']})")
                continue
            try:
                server = start(kind, extra_args=(extra or {}).get(kind, ()))
            except McastlabError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            server.detach()  # must outlive this CLI process
            running[kind] = _record(server)
            records.append(running[kind])
            print(f"# {kind} {server.version}: {server.url} (pid {server.pid}, data {server.data_dir})")
        for kind in kinds:
            print(f"export {env_var(kind)}={running[kind]['url']}")
    return 0


def _status() -> int:
    with _locked_state() as records:
        if not records:
            print(f"no servers recorded in {state_file()}")
            return 0
        dead = 0
        for r in records:
            alive = _server(r).alive()
            dead += not alive
            print(f"{r.get('group') or r['kind']:<13} {r['url']:<46} pid {r['pid']:<8} "
                  f"{'alive' if alive else 'dead'}")
    return 1 if dead else 0


def _down(kinds: Sequence[str]) -> int:
    with _locked_state() as records:
        keep = []
        for r in records:
            if kinds and r.get("group", r["kind"]) not in kinds:
                keep.append(r)
                continue
            server = _server(r)
            was_alive = server.alive()
            try:
                server.stop()
            except McastlabError as exc:
                print(f"error: {exc}", file=sys.stderr)
                keep.append(r)
                continue
            print(f"stopped {r['kind']} (pid {r['pid']})" if was_alive else f"{r['kind']} was not running")
        records[:] = keep
    return 1 if keep and not kinds else 0


def _kafka_storage(storage: str, wanted: list[str]) -> list[str]:
    """Broker arguments for ``--kafka-storage``; ``postgres`` also starts (or reuses) a PostgreSQL."""
    from mcastlab.servers import find_binary

    _kafka.check_storage(storage, find_binary("kafka"))
    if storage == "memory":
        return []
    if "postgres" not in wanted:
        wanted.insert(wanted.index("kafka"), "postgres")
    code = _up(["postgres"])
    with _locked_state() as records:
        url = next((r["url"] for r in records if r["kind"] == "postgres"), None)
    if code or url is None:
        raise ServerError("could not start PostgreSQL for the broker's storage", backend="kafka")
    return _kafka.storage_args(storage, postgres_url=url)
def _up_clusters(sizes: dict[str, int]) -> int:
    """Start the clusters asked for (group -> size) unless one of that group runs already."""
    with _locked_state() as records:
        for group, n in sizes.items():
            if not n:
                continue
            mine = [r for r in records if r.get("group") == group and _server(r).alive()]
            if not mine:
                try:
                    cluster = start_redis_cluster(n, 1) if group == "redis-cluster" else start_nats_cluster(n)
                except McastlabError as exc:
                    print(f"error: {exc}", file=sys.stderr)
                    return 1
                cluster.detach()  # must outlive this CLI process
                urls = cluster.urls
                mine = [{**_record(s), "group": group, "url": u}
                        for s, u in zip(cluster.nodes, urls, strict=True)]
                records.extend(mine)
                print(f"# {group}: {len(mine)} nodes: {' '.join(urls)}")
            else:
                print(f"# {group} already running: {len(mine)} nodes")
            var = f"MCASTLAB_{group.replace('-', '_').upper()}_URLS"
            print(f"export {var}={','.join(r['url'] for r in mine)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run ``up [kinds]`` (default redis nats), ``status`` or ``down [kinds]``."""
    parser = argparse.ArgumentParser(prog="mcastlab servers", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start detached servers and print export lines for their URLs")
    up.add_argument("kinds", nargs="*", metavar="KIND", help="a server kind: " + ", ".join(kinds()))
    up.add_argument("--kafka", action="store_true",
                    help="also start Tansu, a Kafka-protocol broker (same as the kind 'kafka')")
    up.add_argument("--kafka-storage", choices=_kafka.STORAGES, default="memory",
                    help="the broker's storage (memory; postgres needs a Tansu built with it)")
    up.add_argument("--redis-cluster", type=int, default=0, metavar="N",
                    help="also start a Redis Cluster of N masters, one replica each (N >= 1)")
    up.add_argument("--nats-cluster", type=int, default=0, metavar="N",
                    help="also start a NATS cluster of N nodes")
    sub.add_parser("status", help="show recorded servers and whether they are alive (exit 1 if any is dead)")
    down = sub.add_parser("down", help="stop recorded servers (all by default) and forget them")
    down.add_argument("kinds", nargs="*", metavar="KIND",
                      help="a server kind or cluster: " + ", ".join((*kinds(), *CLUSTER_GROUPS)))
    try:
        args = parser.parse_args(argv)
        known = (*kinds(), *CLUSTER_GROUPS) if args.command == "down" else kinds()
        if bad := [k for k in getattr(args, "kinds", []) if k not in known]:
            parser.error(f"unknown server kind(s) {', '.join(bad)}; choose from {', '.join(known)}")
        clusters = {"redis-cluster": getattr(args, "redis_cluster", 0),
                    "nats-cluster": getattr(args, "nats_cluster", 0)}
        if any(n < 0 for n in clusters.values()):
            parser.error("--redis-cluster and --nats-cluster take a node count >= 1")
    except SystemExit as exc:  # --help or a usage error: return its code instead of exiting the caller
        return int(exc.code or 0)
    if args.command == "up":
        wanted = list(dict.fromkeys([*args.kinds, *(["kafka"] if args.kafka else [])]))
        if any(clusters.values()):
            code = _up_clusters(clusters)
            if code or not wanted:
                return code
        extra: dict[str, list[str]] = {}
        if "kafka" in wanted:
            try:
                extra["kafka"] = _kafka_storage(args.kafka_storage, wanted)
            except McastlabError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
        return _up(wanted or ["redis", "nats"], extra)
    if args.command == "status":
        return _status()
    return _down(args.kinds)

