"""Strict parsing of scenario sections into frozen dataclasses; every error names file, key and fix.

A section's dataclass declares its keys as fields; ``field(metadata=...)`` adds constraints
(``min``, ``gt``, ``max``), a human description (``doc``) and an optional custom parser (``parse``).
Unknown keys are refused with the closest known key suggested, so a typo never falls back silently.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, NoReturn, TypeVar, Union, get_args, get_origin, get_type_hints

from mcastlab.errors import ScenarioError

T = TypeVar("T")


def fail(source: str, key: str, problem: str, fix: str) -> NoReturn:
    """Raise a ScenarioError naming the file, the key, the problem and the fix."""
    where = f"{source}: " if source else ""
    raise ScenarioError(f"{where}{key or '(top level)'}: {problem}. Fix: {fix}", key=key, source=source)


def join(key: str, sub: str | int) -> str:
    """Dotted key path: ``join("workload", "devices") == "workload.devices"``."""
    return f"{key}.{sub}" if key else str(sub)


def spec(
    default: Any = dataclasses.MISSING,
    *,
    doc: str = "",
    parse: Callable[..., Any] | None = None,
    **limits: float,
) -> Any:
    """A dataclass field with scenario metadata (``doc``, ``parse``, ``min``/``gt``/``max``)."""
    meta = {"doc": doc, "parse": parse, **limits}
    if isinstance(default, dict | list):
        value = default
        return dataclasses.field(default_factory=lambda: type(value)(value), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.60}"


def parse(cls: type[T], data: Any, *, key: str, source: str) -> T:
    """Build dataclass ``cls`` from mapping ``data``; unknown or missing keys raise ScenarioError."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        fail(
            source,
            key,
            f"expected a mapping of keys to values, got {_describe(data)}",
            f"write {key or 'it'} as 'key: value' lines",
        )
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        k = str(unknown[0])
        close = difflib.get_close_matches(k, list(fields), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        fail(source, join(key, k), "unknown key", f"{hint}remove it or use one of: {', '.join(fields)}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        sub = join(key, name)
        if name in data:
            kwargs[name] = convert(data[name], hints[name], key=sub, source=source, meta=f.metadata)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            doc = f.metadata.get("doc") or name
            fail(source, sub, f"missing required key ({doc})", f"add '{name}: ...' under {key or 'the top'}")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        check(key, source)
    return obj


def _number_fix(key: str, meta: Mapping[str, Any]) -> str:
    bounds = []
    if "gt" in meta:
        bounds.append(f"> {meta['gt']}")
    if "min" in meta:
        bounds.append(f">= {meta['min']}")
    if "max" in meta:
        bounds.append(f"<= {meta['max']}")
    doc = f" ({meta['doc']})" if meta.get("doc") else ""
    return f"set {key} to a number {' and '.join(bounds) or ''}{doc}".rstrip()


def _bounds(value: float, key: str, source: str, meta: Mapping[str, Any]) -> None:
    if not math.isfinite(value):
        fail(source, key, f"must be finite, got {value!r}", _number_fix(key, meta))
    if "gt" in meta and not value > meta["gt"]:
        fail(source, key, f"must be > {meta['gt']}, got {value!r}", _number_fix(key, meta))
    if "min" in meta and value < meta["min"]:
        what = "must not be negative" if meta["min"] == 0 else f"must be >= {meta['min']}"
        fail(source, key, f"{what}, got {value!r}", _number_fix(key, meta))
    if "max" in meta and value > meta["max"]:
        fail(source, key, f"must be <= {meta['max']}, got {value!r}", _number_fix(key, meta))


def convert(value: Any, tp: Any, *, key: str, source: str, meta: Mapping[str, Any] | None = None) -> Any:
    """Check ``value`` against type ``tp`` (and ``meta`` limits); return it converted."""
    meta = meta or {}
    custom = meta.get("parse")
    if custom is not None:
        return custom(value, key=key, source=source)
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return convert(value, rest[0], key=key, source=source, meta=meta)
        errors = []
        for a in rest:
            try:
                return convert(value, a, key=key, source=source, meta=meta)
            except ScenarioError as exc:
                errors.append(exc)
        raise errors[-1]
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            fail(
                source,
                key,
                f"{value!r} is not one of {', '.join(map(repr, choices))}",
                f"{hint}use one of {', '.join(map(str, choices))}",
            )
        return value
    if dataclasses.is_dataclass(tp):
        return parse(tp, value, key=key, source=source)  # type: ignore[arg-type]
    if tp is bool:
        if not isinstance(value, bool):
            fail(
                source, key, f"expected true or false, got {_describe(value)}", f"set {key} to true or false"
            )
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail(source, key, f"expected a whole number, got {_describe(value)}", _number_fix(key, meta))
        _bounds(value, key, source, meta)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail(source, key, f"expected a number, got {_describe(value)}", _number_fix(key, meta))
        _bounds(float(value), key, source, meta)
        return float(value)
    if tp is str:
        if not isinstance(value, str) or not value:
            fail(
                source,
                key,
                f"expected non-empty text, got {_describe(value)}",
                f"set {key} to a string{' (' + meta['doc'] + ')' if meta.get('doc') else ''}",
            )
        return value
    if tp is Any or tp is object:
        return value
    if origin in (dict, Mapping, typing.Mapping):
        kt, vt = get_args(tp) or (str, Any)
        if not isinstance(value, Mapping):
            fail(
                source,
                key,
                f"expected a mapping, got {_describe(value)}",
                f"write {key} as 'name: value' lines",
            )
        return {
            convert(k, kt, key=key, source=source): convert(v, vt, key=join(key, k), source=source, meta=meta)
            for k, v in value.items()
        }
    if origin in (list, tuple):
        (it, *_) = get_args(tp) or (Any,)
        if not isinstance(value, list | tuple):
            fail(
                source,
                key,
                f"expected a list, got {_describe(value)}",
                f"write {key} as a YAML list ('- item')",
            )
        out = [convert(v, it, key=join(key, i), source=source, meta=meta) for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    raise ScenarioError(f"{key}: the scenario schema declares a type it cannot check ({tp!r}); this is a bug "
                        "in mcastlab's scenario schema", key=key, source=source)


def keys_of(cls: type) -> list[str]:
    """The keys a section accepts."""
    return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]


__all__ = ["convert", "fail", "join", "keys_of", "parse", "spec"]
