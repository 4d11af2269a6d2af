"""Local server processes: start on a free loopback port, wait until ready, stop by PID.

Each server binds 127.0.0.1 on a free port (never the default), keeps its data and ``server.log`` in a
throwaway directory (under /dev/shm when roomy; ``$MCASTLAB_SERVERS_TMPDIR`` overrides), is tracked by
PID and stopped by us; an ``atexit`` hook stops any this process started and forgot. What differs per
kind (command line, readiness probe, data-dir preparation) is in :mod:`mcastlab.servers._kinds`.
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
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from mcastlab.errors import ServerError, UsageError
from mcastlab.servers import _kinds
from mcastlab.servers._kinds import HOST

READY_TIMEOUT = 15.0
_DEFAULT_PORTS = frozenset({4222, 5432, 6222, 6379, 8222, 9092})
_LOG_NAME = "server.log"

_lock = threading.RLock()
_registry: set[Server] = set()  # started by this process, not yet stopped: the atexit hook stops them
_recent_ports: set[int] = set()


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
    def spec(self) -> _kinds.Kind:
        """What this kind of server needs (see :mod:`mcastlab.servers._kinds`)."""
        return _kinds.get(self.kind)

    @property
    def url(self) -> str:
        """Client URL, e.g. ``redis://H:P/0``, ``nats://H:P`` or ``postgresql://postgres@H:P/postgres``."""
        return self.spec.url(self.host, self.port)

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
        """Stop gracefully (the kind's stop signal, e.g. SIGINT = fast shutdown for postgres), SIGKILL
        after ``timeout``.

        Idempotent. Removes ``data_dir`` unless ``keep_data`` (then :meth:`restart` can bring it back).
        """
        if self.alive():
            self._signal(self.spec.stop_signal, group=False)
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
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.spec.prepare(self)
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

    def _launch(self, timeout: float = READY_TIMEOUT) -> None:
        """Start the process (output to ``server.log``) and wait until it serves on ``port``."""
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.spec.command(self), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=self.data_dir, start_new_session=True, **self.spec.user_kwargs(),
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
        """Probe readiness: the kind's ready file (if any), then its answer on the port."""
        if not self.spec.ready_file(self):
            return False
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                ok = self.spec.probe(self, sock)
        except OSError:
            return False
        return ok and self._proc is not None and self._proc.poll() is None


def free_port(*, below: int | None = None) -> int:
    """A currently free TCP port on 127.0.0.1 (never a server's default, not handed out recently here).

    ``below`` bounds it (a Redis Cluster node also listens on its port + 10000).
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if below is not None and port >= below:
            continue
        with _lock:
            if port not in _DEFAULT_PORTS and port not in _recent_ports:
                _recent_ports.add(port)
                return port
    raise ServerError("could not find a free port on 127.0.0.1")


def find_binary(kind: str) -> Path:
    """Locate the server executable for ``kind``; the ServerError names the install command."""
    spec = _kinds.get(kind)
    for cand in spec.candidates():
        if cand is None:
            continue
        path = Path(cand)
        if path.is_file() and os.access(path, os.X_OK) and spec.valid_binary(path):
            return path
    raise ServerError(f"{spec.executable} not found; install it with: {spec.install_hint}", backend=kind)


def start(kind: str, *, port: int | None = None, extra_args: Sequence[str] = ()) -> Server:
    """Start ``kind`` on 127.0.0.1, retrying on another port if a chosen one was taken meanwhile."""
    _kinds.get(kind)
    if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536):
        raise UsageError(f"port must be an int in 1..65535, got {port!r}")
    if isinstance(extra_args, str) or not all(isinstance(a, str) for a in extra_args):
        raise UsageError(f"extra_args must be a sequence of str, got {extra_args!r}")
    binary = find_binary(kind)
    version = _version(binary)
    attempts = 1 if port is not None else 5
    for attempt in range(attempts):
        data_dir = Path(tempfile.mkdtemp(prefix=f"mcastlab-{kind}-", dir=scratch_root()))
        server = Server(kind, HOST, port or free_port(), 0, data_dir, binary, version, tuple(extra_args))
        try:
            server.spec.prepare(server)
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
    raise ServerError(f"could not start {kind}: every port tried was taken", backend=kind)


def scratch_root() -> str | None:
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
    for server in leftovers:
        with contextlib.suppress(Exception):
            server.stop(timeout=5)
    _kinds.drop_templates()


__all__ = ["READY_TIMEOUT", "Server", "find_binary", "free_port", "scratch_root", "start"]
