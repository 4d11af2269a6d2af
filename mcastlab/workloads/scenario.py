"""Scenario files: YAML (or a dict) validated into a :class:`Scenario`; errors name file, key and fix.

Top-level keys (see ``scenarios/*.yaml`` for complete examples)::

    name: iot-device-management        # default: the file name
    description: ...
    pattern: multicast-registry        # required, as in the spec's examples
    mode: sim                          # sim | live
    seed: 42
    duration: 1200                     # seconds of workload (virtual seconds in sim)
    warmup: 120                        # excluded from summaries and targets
    drain: 5                           # seconds after 'duration' for in-flight operations
    slots: {registry: redis, messaging: nats}   # or {registry: {backend: redis, url: ..., prefix: ...}}
    config: {default_ttl: 300, ...}    # mcastlab.Config keys; max_identities: auto (the default) derives
                                       # the limit from the workload (peak population + 25 %)
    workload: {kind: iot-fleet, ...}   # see mcastlab.workloads.kinds
    faults: [{kind: outage, at: 600, duration: 30, target: devices}]
    measure: {population_interval: 10, agents: all}
    sim: {...}                         # mcastlab.sim.SimSpec (latency, queueing, fault models)
    targets: [{metric: latency, op: enumerate, stat: p99, below: 0.02}]
    spec_targets: true                 # also check the spec's production targets
    reference: {...}                   # published figures to print beside ours (free-form)
"""

# ruff: noqa: RUF009 - spec()/rate() return dataclasses.field(...) with scenario metadata

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from mcastlab.config import Config
from mcastlab.errors import McastlabError, ScenarioError, preview
from mcastlab.filters import compile_filter
from mcastlab.measure.targets import SPEC_TARGETS, TargetSpec
from mcastlab.workloads._schema import fail, join, parse, spec
from mcastlab.workloads._sections import (
    BACKENDS,
    Slot,
    _parse_agents,
    _parse_config,
    _parse_faults,
    _parse_servers,
    _parse_sim,
    _parse_slots,
    _parse_targets,
)
from mcastlab.workloads.kinds import Workload, parse_workload

COHORT_THRESHOLD = 20_000  # engine: auto switches to the cohort engine at this many identities (sim)


@dataclass(frozen=True, slots=True)
class Measure:
    """How the run is measured."""

    population_interval: float = spec(10.0, doc="seconds between population samples", gt=0)
    agents: str | int = spec(
        "all", doc="identities with an inbox agent: all, none or the first N", parse=_parse_agents
    )
    probe_interval: float = spec(0.05, doc="seconds between probes of a dead identity", gt=0)
    probe_max: float = spec(60.0, doc="give up probing this long after the deadline", gt=0)
    tolerance: float | None = spec(
        None, doc="clock tolerance of the targeting audit (default: 0 sim, 10 ms live)", min=0
    )
    window: float = spec(1.0, doc="seconds per row of the timeseries frame", gt=0)


@dataclass(frozen=True, slots=True)
class Live:
    """How a live run is driven."""

    processes: int = spec(1, doc="coordinator replicas, each in its own Dask worker process", min=1)
    scheduler: str | None = spec(None, doc="address of a running Dask scheduler for the replicas "
                                 "(default: a local cluster of `processes` workers)")


@dataclass(frozen=True, slots=True)
class Scenario:
    """A validated scenario. ``raw`` is the mapping it came from (after overrides)."""

    pattern: Literal["multicast-registry"] = spec(doc="the pattern (always multicast-registry)")
    workload: Workload = spec(doc="workload kind and parameters", parse=parse_workload)
    slots: dict[str, Slot] = spec(doc="registry and messaging backends", parse=_parse_slots)
    name: str = spec("scenario", doc="scenario name")
    description: str = spec("", doc="what the scenario models")
    mode: Literal["sim", "live"] = spec("sim", doc="sim (virtual time) or live (real servers)")
    engine: Literal["auto", "per-identity", "cohort"] = spec(
        "auto", doc="load engine: per-identity, cohort (vectorised fleets, sim only) or auto")
    seed: int = spec(1, doc="seed of every random stream", min=0)
    duration: float = spec(60.0, doc="seconds of workload", gt=0)
    warmup: float = spec(0.0, doc="seconds excluded from summaries", min=0)
    drain: float = spec(5.0, doc="seconds after the duration for in-flight operations", min=0)
    config: Config = spec(Config(), doc="coordinator configuration", parse=_parse_config)
    faults: list[Any] = spec([], doc="failure shapes", parse=_parse_faults)
    measure: Measure = spec(Measure(), doc="measurement settings")
    live: Live = spec(Live(), doc="live runs: coordinator replicas")
    servers: dict[str, Any] = spec({}, doc="running servers for live slots that name none: redis, "
                                   "redis-cluster, nats, postgres, kafka", parse=_parse_servers)
    sim: dict[str, Any] = spec({}, doc="simulated backends (mcastlab.sim.SimSpec)", parse=_parse_sim)
    targets: list[TargetSpec] = spec([], doc="targets", parse=_parse_targets)
    spec_targets: bool = spec(True, doc="also check the spec's production targets")
    reference: dict[str, Any] = spec({}, doc="published figures to show beside ours")
    source: str = spec("", doc="(set by the loader)")
    raw: dict[str, Any] = spec({}, doc="(set by the loader)")

    def check(self, key: str, source: str) -> None:
        if self.engine == "cohort" and not self.workload.cohort_mode:
            fail(source, "engine", f"the {self.workload.kind} workload has no cohort mode (iot-fleet has)",
                 "use engine: per-identity or auto")
        if self.warmup >= self.duration:
            fail(
                source,
                "warmup",
                f"warm-up ({self.warmup} s) is not shorter than the duration ({self.duration} s)",
                "make warmup smaller than duration",
            )
        limit = self.config.max_identities
        need = self.workload.capacity(self.duration)
        if limit is not None and need > limit:
            fail(
                source,
                "config.max_identities",
                f"{limit} is below the workload's peak population (~{need})",
                f"set config.max_identities to at least {need}, to 'auto' (derived from the workload) "
                "or to null (no limit; the memory guard still applies)",
            )
        cfg = self.config
        size = getattr(self.workload, "payload_bytes", None)
        if size is not None and size > cfg.max_payload_bytes:
            fail(source, "workload.payload_bytes",
                 f"{size:,} bytes is above config.max_payload_bytes ({cfg.max_payload_bytes:,}): "
                 "every multicast would be refused",
                 "use a smaller payload, or raise config.max_payload_bytes")
        for fkey, text in self.workload.filters().items():
            try:
                compile_filter(text, max_depth=cfg.max_filter_depth, max_clauses=cfg.max_clauses)
            except McastlabError as exc:
                fail(source, fkey, f"makes the filter {text!r}, which is invalid: {exc}",
                     f"correct {fkey}")

    @property
    def all_targets(self) -> list[TargetSpec]:
        """The scenario's targets, then the spec's (if ``spec_targets``)."""
        return [*self.targets, *(SPEC_TARGETS if self.spec_targets else ())]

    def resolved_engine(self, mode: str | None = None) -> str:
        """The load engine a run uses: ``auto`` picks the cohort engine for simulated fleets of at least
        ``COHORT_THRESHOLD`` identities whose workload has a cohort mode."""
        if self.engine != "auto":
            return self.engine
        big = self.workload.capacity(self.duration) >= COHORT_THRESHOLD
        able = self.workload.cohort_mode
        return "cohort" if big and able and (mode or self.mode) == "sim" else "per-identity"

    @property
    def ttl(self) -> float | None:
        return getattr(self.workload, "ttl", self.config.default_ttl)


MAX_DEPTH = 100  # levels of nesting a scenario may have (its own sections use about 5)


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``path`` "a.b.c" (numeric parts index lists)."""
    if not isinstance(path, str):
        raise ScenarioError(f"--set {preview(path)}: an override key must be a dotted path in a str. "
                            "Fix: write it as text, e.g. 'workload.devices'", key=preview(path))
    parts = path.split(".")
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not (part.isascii() and part.isdigit()) or int(part) >= len(node):  # not '²': int() refuses it
                raise ScenarioError(
                    f"--set {path}: {'.'.join(parts[:i]) or '(top)'} is a list of {len(node)}; "
                    f"'{part}' is not an index in it. Fix: use 0..{len(node) - 1}",
                    key=path,
                )
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ScenarioError(
                f"--set {path}: {'.'.join(parts[:i])} is not a section. Fix: set it whole, "
                f"e.g. --set {'.'.join(parts[:i])}=...",
                key=path,
            )
        if last:
            node[part] = value
        else:
            nxt = node.get(part)
            if isinstance(nxt, str) and parts[i - 1 : i] == ["slots"]:  # slots.registry: redis -> a mapping
                nxt = node[part] = {"backend": nxt}
            if nxt is None or not isinstance(nxt, dict | list):
                nxt = node[part] = {} if nxt is None else nxt
            node = nxt


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["a.b=1", "mode=live"]`` -> ``{"a.b": 1, "mode": "live"}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ScenarioError(
                f"--set {pair!r}: expected KEY=VALUE. Fix: e.g. --set workload.devices=1000", key=pair
            )
        k, v = pair.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(v) if v.strip() else ""
        except (yaml.YAMLError, ValueError, RecursionError) as exc:  # an int too long, a bad date, [[[...
            raise ScenarioError(
                f"--set {preview(pair, 80)}: the value is not YAML this loader can read ({exc}). Fix: quote "
                f"it as a string, e.g. --set {k.strip()}='...', or correct it", key=k.strip() or pair
            ) from None
    return out


def load_scenario(
    path_or_dict: str | Path | Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
) -> Scenario:
    """Read and validate a scenario (a YAML path or a dict), after applying dotted-key ``overrides``."""
    if isinstance(path_or_dict, Mapping):
        source, stem = "<scenario dict>", "scenario"
        try:
            data = copy.deepcopy(dict(path_or_dict))
        except RecursionError:
            fail(source, "", f"nests deeper than Python can copy (more than {MAX_DEPTH} levels are refused)",
                 "flatten the scenario")
    else:
        p = Path(path_or_dict)
        source, stem = str(p), p.stem
        try:
            data = yaml.safe_load(p.read_text())
        except FileNotFoundError:
            raise ScenarioError(
                f"{p}: no such scenario file. Fix: check the path (shipped scenarios are in scenarios/)",
                source=source,
            ) from None
        except yaml.YAMLError as exc:
            raise ScenarioError(
                f"{p}: not valid YAML: {exc}. Fix: correct the YAML syntax", source=source
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ScenarioError(
                f"{p}: cannot be read as a YAML text file ({exc}). Fix: pass a scenario .yaml file",
                source=source,
            ) from None
        except ValueError as exc:  # a scalar YAML cannot convert: an int too long, an impossible date
            raise ScenarioError(
                f"{p}: holds a value YAML cannot convert ({exc}). Fix: correct that value", source=source
            ) from None
        except RecursionError:
            raise ScenarioError(f"{p}: nests deeper than the YAML reader can follow. Fix: flatten it",
                                source=source) from None
        if not isinstance(data, dict):
            fail(
                source,
                "",
                f"expected a mapping at the top, got {type(data).__name__}",
                "start the file with 'pattern: multicast-registry' and the other keys",
            )
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ScenarioError(f"overrides must be a mapping of dotted keys to values, got "
                            f"{type(overrides).__name__}. Fix: pass e.g. {{'workload.devices': 100}}",
                            key="overrides")
    try:  # copied: a later override must not write into an earlier one's value, which is the caller's
        items = copy.deepcopy(list((overrides or {}).items()))
    except RecursionError:
        fail(source, "overrides", f"nest deeper than Python can copy (more than {MAX_DEPTH} levels are "
             "refused)", "flatten the override values")
    for k, v in items:
        set_path(data, k, v)
    _check_values(data, "", source, set())
    for k in ("source", "raw"):
        if k in data:
            fail(source, k, "is set by the loader", f"remove '{k}'")
    data.setdefault("name", stem)
    config = data.get("config")
    auto = not isinstance(config, Mapping) or config.get("max_identities", "auto") == "auto"
    parsed = data
    if auto:  # parse without a limit, then derive it from the workload's peak population
        base = config if isinstance(config, Mapping) else {}
        parsed = {**data, "config": {**base, "max_identities": None}}
        if config is not None and not isinstance(config, Mapping):
            parsed["config"] = config  # let the parser report the bad section
    scn = parse(Scenario, {**parsed, "source": source}, key="", source=source)
    if auto:
        limit = auto_max_identities(scn)
        object.__setattr__(scn, "config", dataclasses.replace(scn.config, max_identities=limit))
    object.__setattr__(scn, "raw", data)
    return scn


def _check_values(node: Any, key: str, source: str, above: set[int]) -> None:
    """Refuse ints outside the signed 64-bit range anywhere in the scenario (converted to float they
    overflow; past 4300 digits even their error messages fail), values that contain themselves (YAML
    anchors can build them; a run could never write them into its manifest) and values nested deeper than
    ``MAX_DEPTH`` (every later walk over them recurses)."""
    if isinstance(node, int):
        if not -(2**63) <= node < 2**63:
            fail(source, key, f"the integer {preview(node)} is outside the signed 64-bit range",
                 "use a number between -2**63 and 2**63 - 1")
        return
    if not isinstance(node, Mapping | list | tuple):
        return
    if id(node) in above:
        fail(source, key, "contains itself (a YAML alias inside its own anchor)",
             "write the value out instead of referring back to it")
    if len(above) >= MAX_DEPTH:  # ``above`` holds the containers on the way here
        fail(source, key, f"nests deeper than {MAX_DEPTH} levels", "flatten it")
    above.add(id(node))
    for k, v in node.items() if isinstance(node, Mapping) else enumerate(node):
        sub = join(key, k if isinstance(k, str) else preview(k))
        _check_values(k, sub, source, above)
        _check_values(v, sub, source, above)
    above.discard(id(node))


def auto_max_identities(scn: Scenario) -> int:
    """``config.max_identities: auto`` (the default in a scenario): the workload's peak population plus a
    quarter, so a typo'd fleet cannot grow without bound and a scaled-up one needs no second edit."""
    return max(16, math.ceil(scn.workload.capacity(scn.duration) * 1.25))


__all__ = [
    "BACKENDS",
    "Measure",
    "Scenario",
    "Slot",
    "auto_max_identities",
    "load_scenario",
    "parse_overrides",
    "set_path",
]
