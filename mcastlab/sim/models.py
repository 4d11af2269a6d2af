"""Latency models declared as data (constant, lognormal, exponential, empirical) and their samplers.

A model is a frozen record; ``model.sample(rng, size)`` draws a numpy array. A :class:`Sampler` binds a
model to its own seeded generator and hands out one float at a time from pre-drawn blocks, so the hot
path costs a list index, and the stream depends only on the seed and the number of draws.
Every model may add ``per_item`` seconds per item handled (rows returned, messages in a batch).
"""

from __future__ import annotations

import difflib
import math
import sys
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mcastlab.errors import ConfigError, UsageError, preview

BLOCK = 512
KINDS = ("constant", "lognormal", "exponential", "empirical")


@dataclass(frozen=True, slots=True)
class Constant:
    """Always ``value`` seconds."""

    value: float
    per_item: float = 0.0
    kind = "constant"

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.full(size, self.value)

    def median(self) -> float:
        return self.value

    def to_dict(self) -> dict[str, Any]:
        return _with_per_item({"kind": "constant", "value": self.value}, self.per_item)


@dataclass(frozen=True, slots=True)
class LogNormal:
    """Lognormal with the given median (seconds) and log-space ``sigma``."""

    median_s: float
    sigma: float
    per_item: float = 0.0
    kind = "lognormal"

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.lognormal(math.log(self.median_s), self.sigma, size)

    def median(self) -> float:
        return self.median_s

    def to_dict(self) -> dict[str, Any]:
        return _with_per_item(
            {"kind": "lognormal", "median": self.median_s, "sigma": self.sigma}, self.per_item
        )


@dataclass(frozen=True, slots=True)
class Exponential:
    """Exponential with the given mean (memoryless service, as in M/M/1)."""

    mean: float
    per_item: float = 0.0
    kind = "exponential"

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.exponential(self.mean, size)

    def median(self) -> float:
        return self.mean * math.log(2.0)

    def to_dict(self) -> dict[str, Any]:
        return _with_per_item({"kind": "exponential", "mean": self.mean}, self.per_item)


@dataclass(frozen=True, slots=True)
class Empirical:
    """Resampled (with replacement) from measured latencies, times ``scale``."""

    samples: tuple[float, ...]
    scale: float = 1.0
    per_item: float = 0.0
    kind = "empirical"

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        data = np.asarray(self.samples, dtype=float)
        return data[rng.integers(0, len(data), size)] * self.scale

    def median(self) -> float:
        return float(np.median(self.samples)) * self.scale

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": "empirical", "samples": list(self.samples)}
        if self.scale != 1.0:
            d["scale"] = self.scale
        return _with_per_item(d, self.per_item)


Model = Constant | LogNormal | Exponential | Empirical


def _with_per_item(d: dict[str, Any], per_item: float) -> dict[str, Any]:
    if per_item:
        d["per_item"] = per_item
    return d


class Sampler:
    """One model bound to its own generator: ``sampler(n)`` is one draw plus ``per_item * n``."""

    __slots__ = ("_buf", "_const", "_i", "_model", "_rng", "per_item")

    def __init__(self, model: Model, rng: np.random.Generator | None) -> None:
        self._model = model
        self._rng = rng
        self.per_item = float(model.per_item)
        self._const = model.value if isinstance(model, Constant) else None
        self._buf: list[float] = []
        self._i = 0

    def __call__(self, n: int = 0) -> float:
        if self._const is not None:
            return self._const + self.per_item * n if n else self._const
        i = self._i
        buf = self._buf
        if i >= len(buf):
            assert self._rng is not None
            buf = self._buf = self._model.sample(self._rng, BLOCK).tolist()
            i = 0
        self._i = i + 1
        return buf[i] + self.per_item * n if n else buf[i]

    def many(self, n: int, items: int = 0) -> np.ndarray:
        """``n`` draws at once (each plus ``per_item * items``), for batch operations; from the same
        stream as single draws (pre-drawn ones are used first)."""
        if self._const is not None:
            return np.full(n, self._const + self.per_item * items)
        rest = self._buf[self._i:]
        take = rest[:n]
        self._i += len(take)
        out = np.asarray(take, float)
        if len(out) < n:
            assert self._rng is not None
            out = np.concatenate([out, self._model.sample(self._rng, n - len(out))])
        return out + self.per_item * items if items else out

    @property
    def model(self) -> Model:
        return self._model


def _num(d: Mapping[str, Any], key: str, path: str, *, positive: bool = False, default: Any = None) -> float:
    if key not in d:
        if default is not None:
            return float(default)
        raise ConfigError(f"{path}: missing {key!r}; e.g. {path}.{key}: 0.0002", key=f"{path}.{key}")
    v = d[key]
    if (
        isinstance(v, bool)
        or not isinstance(v, int | float)
        or not abs(v) <= sys.float_info.max  # not NaN or infinite, and no int beyond the float range
        or v < 0
        or (positive and v <= 0)
    ):
        need = "> 0" if positive else ">= 0"
        raise ConfigError(f"{path}.{key} must be a finite number {need}, got {preview(v)}",
                          key=f"{path}.{key}")
    return float(v)


_KEYS = {
    "constant": ("kind", "value", "per_item"),
    "lognormal": ("kind", "median", "sigma", "per_item"),
    "exponential": ("kind", "mean", "per_item"),
    "empirical": ("kind", "samples", "scale", "per_item"),
}


def parse_model(value: Any, path: str) -> Model:
    """Build a model from data: a number (constant seconds) or ``{kind: ..., ...}``."""
    if isinstance(value, Constant | LogNormal | Exponential | Empirical):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Constant(_num({"value": value}, "value", path))
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{path} must be a number of seconds or a mapping like "
            f"{{kind: lognormal, median: 0.0002, sigma: 0.3}}, got {value!r:.60}",
            key=path,
        )
    kind = value.get("kind")
    if kind not in KINDS:
        close = difflib.get_close_matches(str(kind), KINDS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{path}.kind must be one of {', '.join(KINDS)}, got {kind!r}{hint}", key=f"{path}.kind"
        )
    unknown = [k for k in value if k not in _KEYS[kind]]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), _KEYS[kind], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"unknown key {path}.{unknown[0]}{hint}; a {kind} model takes {', '.join(_KEYS[kind])}",
            key=f"{path}.{unknown[0]}",
        )
    per_item = _num(value, "per_item", path, default=0.0)
    if kind == "constant":
        return Constant(_num(value, "value", path), per_item)
    if kind == "lognormal":
        return LogNormal(_num(value, "median", path, positive=True), _num(value, "sigma", path), per_item)
    if kind == "exponential":
        return Exponential(_num(value, "mean", path, positive=True), per_item)
    samples = value.get("samples")
    if not isinstance(samples, Sequence) or isinstance(samples, str) or not samples:
        raise ConfigError(f"{path}.samples must be a non-empty list of seconds", key=f"{path}.samples")
    try:
        arr = np.asarray(samples, dtype=float)
    except (TypeError, ValueError, OverflowError):  # text, nested lists, objects, ints past the float range
        arr = np.asarray([np.nan])
    if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr < 0):  # [[1, 2]] is 2-D, not numbers
        raise ConfigError(f"{path}.samples must be finite numbers >= 0", key=f"{path}.samples")
    return Empirical(tuple(arr.tolist()), _num(value, "scale", path, default=1.0), per_item)


def fit_lognormal(samples: Sequence[float] | np.ndarray) -> LogNormal:
    """Lognormal matching the samples' median and their p50..p99 spread."""
    arr = np.asarray(samples, dtype=float)
    arr = arr[arr > 0]
    if arr.size == 0:
        raise UsageError("fit_lognormal needs at least one positive sample (latencies in seconds)")
    p50, p99 = np.percentile(arr, [50, 99])
    sigma = max(0.0, math.log(p99 / p50) / 2.3263478740408408) if p50 > 0 else 0.0
    return LogNormal(float(p50), float(sigma))


LEVELS = np.linspace(0.0, 1.0, 21)  # the quantile levels of a GapTable row


def _by_gap(d: Any, path: str, values: str, convert: Callable[[Any], Any]) -> tuple[list[float], list[Any]]:
    """The ``gaps`` and ``values`` lists of a calibrated by-gap section (``mcastlab calibrate`` writes
    them), as numbers; a typed error naming ``path`` otherwise."""
    if not isinstance(d, Mapping) or set(d) != {"gaps", values}:
        raise ConfigError(f"{path} must be a mapping with 'gaps' and '{values}' (mcastlab calibrate "
                          f"writes it), got {d!r:.60}", key=path)
    try:
        return [float(g) for g in d["gaps"]], [convert(v) for v in d[values]]
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: gaps and {values} must be numbers of seconds", key=path) from None


@dataclass(frozen=True)
class GapTable:
    """Extra seconds after an idle gap: per measured gap (seconds, ascending), its quantiles at LEVELS."""

    gaps: tuple[float, ...]
    quantiles: tuple[tuple[float, ...], ...]

    @classmethod
    def from_dict(cls, d: Any, path: str) -> GapTable | None:
        if d is None:
            return None
        gaps, rows = _by_gap(d, path, "quantiles", lambda row: [float(v) for v in row])
        bad_row = any(len(r) != len(LEVELS) or r != sorted(r) or r[0] < 0 or not np.isfinite(r).all()
                      for r in rows)
        if not gaps or gaps != sorted(gaps) or gaps[0] <= 0 or len(rows) != len(gaps) or bad_row:
            raise ConfigError(f"{path}: gaps must be ascending and > 0, with one row of {len(LEVELS)} "
                              "ascending quantiles per gap", key=path)
        return cls(tuple(gaps), tuple(tuple(r) for r in rows))

    @classmethod
    def fit(cls, samples: Mapping[float, Any]) -> GapTable | None:
        """From measured extras (seconds, clipped at 0) per gap."""
        gaps = sorted(g for g, v in samples.items() if len(v))
        if not gaps:
            return None
        rows = [np.quantile(np.clip(np.asarray(samples[g], float), 0.0, None), LEVELS).tolist() for g in gaps]
        return cls(tuple(float(g) for g in gaps), tuple(tuple(float(x) for x in r) for r in rows))

    def to_dict(self) -> dict[str, Any]:
        return {"gaps": list(self.gaps), "quantiles": [list(r) for r in self.quantiles]}


@dataclass(frozen=True)
class WakeCurve:
    """Extra CPU seconds a process spends on its first work after being idle, by idle gap (seconds,
    ascending): piecewise linear from (0, 0) through the measured points, flat after the last."""

    gaps: tuple[float, ...]
    seconds: tuple[float, ...]

    @classmethod
    def from_dict(cls, d: Any, path: str) -> WakeCurve | None:
        if d is None:
            return None
        gaps, secs = _by_gap(d, path, "seconds", float)
        if (not gaps or gaps != sorted(gaps) or gaps[0] <= 0 or len(secs) != len(gaps)
                or not all(math.isfinite(v) and v >= 0 for v in (*gaps, *secs))):
            raise ConfigError(f"{path}: gaps must be ascending and > 0, with one CPU seconds >= 0 per gap",
                              key=path)
        return cls(tuple(gaps), tuple(secs))

    @classmethod
    def fit(cls, per_gap: Mapping[float, float]) -> WakeCurve | None:
        """From the measured extra CPU seconds per gap (negative ones, noise, clipped at 0)."""
        gaps = sorted(per_gap)
        if not gaps:
            return None
        return cls(tuple(float(g) for g in gaps), tuple(max(0.0, float(per_gap[g])) for g in gaps))

    def to_dict(self) -> dict[str, Any]:
        return {"gaps": list(self.gaps), "seconds": list(self.seconds)}

    def __call__(self, idle: float) -> float:
        gaps, secs = self.gaps, self.seconds
        if idle <= 0:
            return 0.0
        i = bisect_left(gaps, idle)
        if i == len(gaps):
            return secs[-1]
        g0, s0 = (gaps[i - 1], secs[i - 1]) if i else (0.0, 0.0)
        return s0 + (secs[i] - s0) * (idle - g0) / (gaps[i] - g0)


class GapSampler:
    """Draws from a GapTable (inverse CDF of the nearest gap's quantiles)."""

    __slots__ = ("_buf", "_i", "_log", "_rng", "_rows", "_shortest")

    def __init__(self, table: GapTable, rng: np.random.Generator) -> None:
        self._log = np.log(np.asarray(table.gaps))
        self._rows = [np.asarray(r) for r in table.quantiles]
        self._shortest = table.gaps[0]
        self._rng = rng
        self._buf: list[float] = []
        self._i = 0

    def __call__(self, gap: float) -> float:
        if gap <= 0:
            return 0.0
        i = self._i
        if i >= len(self._buf):
            self._buf, i = self._rng.random(4096).tolist(), 0
        self._i = i + 1
        k = int(np.argmin(np.abs(self._log - np.log(gap))))
        extra = float(np.interp(self._buf[i], LEVELS, self._rows[k]))
        return extra * gap / self._shortest if gap < self._shortest else extra


__all__ = [
    "KINDS",
    "LEVELS",
    "Constant",
    "Empirical",
    "Exponential",
    "GapSampler",
    "GapTable",
    "LogNormal",
    "Model",
    "Sampler",
    "WakeCurve",
    "fit_lognormal",
    "parse_model",
]
