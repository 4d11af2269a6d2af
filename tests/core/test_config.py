"""Config validation and loading: unknown keys are named, bad values explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcastlab import Config, Coordinator
from mcastlab.errors import ConfigError


def test_defaults_match_the_spec() -> None:
    c = Config()
    assert (c.default_ttl, c.max_identities, c.max_filter_depth, c.max_clauses) == (300.0, 10_000, 5, 20)


def test_from_dict_rejects_unknown_keys_with_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"'max_identites' \(did you mean 'max_identities'\?\)") as info:
        Config.from_dict({"max_identites": 5, "default_ttl": 10})
    assert info.value.key == "max_identites"


@pytest.mark.parametrize(("key", "value"), [
    ("default_ttl", -1), ("default_ttl", float("nan")), ("max_identities", 0), ("max_clauses", 2.5),
    ("delivery_mode", "shout"), ("send_timeout", 0), ("max_in_flight", True), ("retry_backoff", -1),
    ("auto_sweep", "yes"),
])
def test_bad_values(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"Config.{key}"):
        Config.from_dict({key: value})


def test_from_yaml(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("config:\n  default_ttl: 60\n  max_identities: null\n")
    assert Config.from_yaml(p) == Config(default_ttl=60, max_identities=None)
    p.write_text("default_ttl: 60\nbogus: 1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: .bogus."):
        Config.from_yaml(p)
    with pytest.raises(ConfigError, match="does not exist"):
        Config.from_yaml(tmp_path / "missing.yaml")
    p.write_text("a: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Config.from_yaml(p)


def test_coordinator_refuses_non_config_and_non_backends() -> None:
    with pytest.raises(ConfigError, match="mcastlab.Config"):
        Coordinator({"default_ttl": 5})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="Registry protocol"):
        Coordinator(registry=object())  # type: ignore[arg-type]
    for bad in ("", 5, "tab\there"):
        with pytest.raises(ConfigError, match="name must be"):
            Coordinator(name=bad)  # type: ignore[arg-type]
    from mcastlab.errors import UsageError

    with pytest.raises(UsageError, match="listener must be a callable"):
        Coordinator().add_listener("print")  # type: ignore[arg-type]


def test_constructor_refuses_unknown_keys_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'default_tll' \(did you mean 'default_ttl'\?\)"):
        Config(default_tll=5)  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="keyword arguments only"):
        Config(300.0)  # type: ignore[misc]
    with pytest.raises(ConfigError, match="cannot be read"):
        Config.from_yaml(tmp_path)
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match="cannot be read"):
        Config.from_yaml(tmp_path / "bin.yaml")
    with pytest.raises(ConfigError, match="at most"):
        Config(default_ttl=1e12)
