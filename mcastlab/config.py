"""Config: the coordinator's limits, defaults and timing, loadable from a dict or YAML file.

Unknown keys are refused with a message naming them (and the closest known key), so a typo in a
scenario file never silently falls back to a default.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from mcastlab.errors import ConfigError, preview
from mcastlab.identity import MAX_TTL

MIN_SWEEP_INTERVAL = 0.001  # seconds: the sweeper wakes at least once per interval, so shorter ones spin


class _ConfigMeta(type):
    """Makes ``Config(unknown=...)`` a ConfigError naming the key, like ``Config.from_dict``."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise ConfigError("Config takes keyword arguments only, e.g. Config(default_ttl=60)")
        known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
        unknown = [k for k in kwargs if k not in known]
        if unknown:
            raise ConfigError(_unknown_message(unknown, known, ""), key=unknown[0])
        return super().__call__(**kwargs)


def _unknown_message(unknown: list[Any], known: list[str], where: str) -> str:
    hints = []
    for k in unknown:
        close = difflib.get_close_matches(k if isinstance(k, str) else preview(k), known, n=1)
        hints.append(preview(k) + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"unknown config key(s){where}: {', '.join(hints)}. Known keys: {', '.join(known)}"


@dataclass(frozen=True, slots=True)
class Config(metaclass=_ConfigMeta):
    """Coordinator settings. Times are seconds on the runtime's clock."""

    pattern_name: str = "multicast-registry"
    default_ttl: float | None = 300.0  # None: identities never expire unless a ttl is given
    max_identities: int | None = 10_000  # None: unlimited
    max_filter_depth: int = 5
    max_clauses: int = 20
    max_metadata_bytes: int = 64 * 1024
    max_payload_bytes: int = 1024 * 1024
    delivery_mode: str = "publish"  # default multicast mode: "publish" or "ack"
    max_in_flight: int = 256  # fan-out window: sends outstanding at once per multicast
    send_timeout: float = 5.0  # per send (and per ack wait)
    send_retries: int = 2  # extra attempts after a failed send (not for no_listener)
    retry_backoff: float = 0.05  # first retry delay; doubles per attempt
    retry_backoff_max: float = 1.0
    sweep_interval: float = 1.0  # longest the expiry sweeper sleeps
    sweep_resolution: float = 0.01  # shortest it sleeps: expiries closer together are swept together
    sweep_batch: int = 1000  # identities claimed per sweep round trip
    auto_sweep: bool = True  # run the background sweeper; False: call Coordinator.sweep() yourself

    def __post_init__(self) -> None:
        _check_ttl("default_ttl", self.default_ttl, allow_none=True)
        if self.default_ttl is not None and self.default_ttl > MAX_TTL:
            raise ConfigError(f"Config.default_ttl must be at most {MAX_TTL:.0e} s; use None for no expiry",
                              key="default_ttl")
        _check_int("max_identities", self.max_identities, minimum=1, allow_none=True)
        _check_int("max_filter_depth", self.max_filter_depth, minimum=1)
        _check_int("max_clauses", self.max_clauses, minimum=1)
        _check_int("max_metadata_bytes", self.max_metadata_bytes, minimum=16)
        _check_int("max_payload_bytes", self.max_payload_bytes, minimum=1)
        _check_int("max_in_flight", self.max_in_flight, minimum=1)
        _check_int("send_retries", self.send_retries, minimum=0)
        _check_int("sweep_batch", self.sweep_batch, minimum=1)
        for name in ("send_timeout", "sweep_interval"):
            _check_ttl(name, getattr(self, name), allow_none=False)
        if self.sweep_interval < MIN_SWEEP_INTERVAL:
            raise ConfigError(f"Config.sweep_interval must be at least {MIN_SWEEP_INTERVAL} s, got "
                              f"{self.sweep_interval!r}: the sweeper wakes up at least once per interval, "
                              "so a shorter one busy-loops (and in virtual time barely moves the clock)",
                              key="sweep_interval")
        for name in ("retry_backoff", "retry_backoff_max", "sweep_resolution"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value) \
                    or value < 0:
                raise ConfigError(f"Config.{name} must be a finite number >= 0, got {preview(value)}",
                                  key=name)
        if self.delivery_mode not in ("publish", "ack"):
            raise ConfigError(
                f"Config.delivery_mode must be 'publish' or 'ack', got {preview(self.delivery_mode)}",
                key="delivery_mode",
            )
        if not isinstance(self.auto_sweep, bool):
            raise ConfigError(f"Config.auto_sweep must be true or false, got {preview(self.auto_sweep)}",
                              key="auto_sweep")
        if not isinstance(self.pattern_name, str) or not self.pattern_name:
            raise ConfigError("Config.pattern_name must be a non-empty str", key="pattern_name")

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> Config:
        """Build a Config from a mapping; unknown keys raise ConfigError naming them."""
        where = f" in {source}" if source else ""
        if not isinstance(data, Mapping):
            raise ConfigError(f"config{where} must be a mapping of keys to values, got {type(data).__name__}",
                              source=source)
        known = cls.keys()
        unknown = [k for k in data if k not in known]
        if unknown:
            key = unknown[0] if isinstance(unknown[0], str) else preview(unknown[0])
            raise ConfigError(_unknown_message(unknown, known, where), key=key, source=source)
        try:
            return cls(**dict(data))
        except ConfigError as exc:
            if source:
                raise ConfigError(f"{exc} ({source})", key=exc.key, source=source) from None
            raise

    @classmethod
    def from_yaml(cls, path: str | Path) -> Config:
        """Load a Config from a YAML file (a mapping at the top, or under a ``config:`` key)."""
        import yaml

        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {p} does not exist", source=str(p)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p} cannot be read as YAML text: {exc}", source=str(p)) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {p} is not valid YAML: {exc}", source=str(p)) from None
        except ValueError as exc:  # a scalar YAML cannot convert: an int too long, an impossible date
            raise ConfigError(f"config file {p} holds a value YAML cannot convert: {exc}", source=str(p)) \
                from None
        except RecursionError:
            raise ConfigError(f"config file {p} nests deeper than the YAML reader can follow; a config is "
                              "flat 'key: value' lines", source=str(p)) from None
        if isinstance(data, Mapping) and "config" in data and isinstance(data["config"], Mapping):
            data = data["config"]
        return cls.from_dict(data or {}, source=str(p))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: int | float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond the float range
        return False


def _check_ttl(name: str, value: Any, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    bad_type = isinstance(value, bool) or not isinstance(value, int | float)
    if bad_type or not _finite(value) or value <= 0:
        extra = " or None for no expiry" if allow_none else ""
        raise ConfigError(f"Config.{name} must be a finite number of seconds > 0{extra}, got "
                          f"{preview(value)}", key=name)


_INT_MAX = 2**63 - 1  # counts and limits reach SQL as 64-bit integers (LIMIT ?, sweep batches)


def _check_int(name: str, value: Any, *, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"Config.{name} must be an int >= {minimum}, got {preview(value)}", key=name)
    if value > _INT_MAX:
        raise ConfigError(f"Config.{name} must be at most 2**63 - 1, the largest count every backend "
                          f"stores, got {preview(value)}", key=name)


__all__ = ["Config"]
