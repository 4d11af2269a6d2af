"""The grid of a sweep: ``--grid KEY=V1,V2`` parsed and checked, expanded into points, typed columns.

A grid maps dotted scenario keys (as ``--set`` takes them) to the values to try. Values are YAML
scalars (``1000``, ``0.5``, ``redis``, ``true``); the points are the cartesian product, in the order the
keys and values were given. ``seed`` is not a grid key: ``--seeds N`` repeats every point with the
scenario's seed and the N-1 that follow it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import yaml

from mcastlab.errors import UsageError

Point = tuple[tuple[str, Any], ...]  # ((key, value), ...) in grid key order

_SCALARS = (bool, int, float, str)


def parse_grid(pairs: Sequence[str]) -> dict[str, list[Any]]:
    """``["workload.devices=1000,2000", "duration=60"]`` -> ``{"workload.devices": [1000, 2000], ...}``."""
    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"--grid {pair!r}: expected KEY=V1,V2,... "
                             "Fix: e.g. --grid workload.devices=1000,2000")
        key, text = (s.strip() for s in pair.split("=", 1))
        if key in grid:
            raise UsageError(f"--grid {key} is given twice. Fix: list all its values once, "
                             f"--grid {key}=V1,V2,...")
        values = []
        for part in text.split(","):
            if not part.strip():
                raise UsageError(f"--grid {pair!r}: an empty value. Fix: KEY=V1,V2 with no empty item")
            try:
                values.append(yaml.safe_load(part))
            except yaml.YAMLError:
                raise UsageError(f"--grid {key}: {part.strip()!r} is not a scalar value (values are split "
                                 "at commas). Fix: sweep scalar keys, e.g. --grid workload.rate.rate=10,20"
                                 ) from None
        grid[key] = values
    return check_grid(grid)


def check_grid(grid: Mapping[str, Sequence[Any]],
               overrides: Mapping[str, Any] | None = None) -> dict[str, list[Any]]:
    """Validate a grid (keys, at least one scalar value each, no repeats, not ``seed``, no clash with
    ``overrides``); return it as a dict of lists."""
    if not isinstance(grid, Mapping) or not grid:
        raise UsageError("a sweep needs a grid: at least one KEY with values. "
                         "Fix: --grid workload.devices=1000,2000 "
                         "(in Python: grid={'workload.devices': [1000, 2000]})")
    out: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if not isinstance(key, str) or not key or key.startswith(".") or key.endswith("."):
            raise UsageError(f"--grid key {key!r}: expected a dotted scenario key such as workload.devices")
        if key == "seed":
            raise UsageError("--grid seed=...: seeds are not a grid key. Fix: --seeds N runs every point "
                             "with the scenario's seed and the N-1 that follow "
                             "(set the first with --set seed=S)")
        if key in (overrides or {}):
            raise UsageError(f"{key} is both swept (--grid) and fixed (--set). Fix: drop one of them")
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not len(values):
            raise UsageError(f"--grid {key}: expected a list of values, got {values!r}. "
                             f"Fix: e.g. --grid {key}=V1,V2")
        vals = list(values)
        for v in vals:
            if not isinstance(v, _SCALARS) or (isinstance(v, float) and not math.isfinite(v)):
                raise UsageError(f"--grid {key}: {v!r} is not a finite scalar (number, string or boolean). "
                                 f"Fix: sweep scalar keys, e.g. --grid {key}.SUBKEY=V1,V2")
        seen = [repr(v) for v in vals]
        dup = next((v for v, r in zip(vals, seen, strict=True) if seen.count(r) > 1), None)
        if dup is not None:
            raise UsageError(f"--grid {key} lists {dup!r} twice. Fix: list each value once "
                             "(repeat runs with --seeds N)")
        out[key] = vals
    return out


def points(grid: Mapping[str, Sequence[Any]]) -> list[Point]:
    """The grid's points: the cartesian product in key order, the last key varying fastest."""
    keys = list(grid)
    return [tuple(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def column(values: Sequence[Any]) -> pd.Series:
    """A swept key's values as one typed column: int64 (all integers), float64 (numbers), boolean, or
    string (anything mixed)."""
    vals = list(values)
    if all(isinstance(v, bool) for v in vals):
        return pd.Series(vals, dtype="boolean")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return pd.Series(vals, dtype="int64")
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
        return pd.Series(vals, dtype="float64")
    return pd.Series([str(v) for v in vals], dtype="string")


def seeds_from(first: int, n: int) -> list[int]:
    """The scenario's seed and the ``n - 1`` that follow it."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise UsageError(f"--seeds {n!r}: expected a whole number >= 1 of seeds per point. "
                         "Fix: e.g. --seeds 3")
    return [first + i for i in range(n)]


def label(point: Point) -> str:
    """``workload.devices=1000, duration=60``."""
    return ", ".join(f"{k}={v}" for k, v in point)


__all__ = ["Point", "check_grid", "column", "label", "parse_grid", "points", "seeds_from"]
