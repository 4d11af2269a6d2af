"""Measurement: column-array recorder -> tidy frames, percentiles, targets, runs on disk.

The frames and their columns are documented in :mod:`mcastlab.measure.frames`.
"""

from mcastlab.measure.frames import FRAMES, SCHEMAS, conform
from mcastlab.measure.recorder import Recorder
from mcastlab.measure.stats import describe, rolling_rate, summary
from mcastlab.measure.store import RunResult, compare_runs, load_run, save_run
from mcastlab.measure.targets import SPEC_TARGETS, TargetSpec, evaluate, format_table

__all__ = [
    "FRAMES",
    "SCHEMAS",
    "SPEC_TARGETS",
    "Recorder",
    "RunResult",
    "TargetSpec",
    "compare_runs",
    "conform",
    "describe",
    "evaluate",
    "format_table",
    "load_run",
    "rolling_rate",
    "save_run",
    "summary",
]
