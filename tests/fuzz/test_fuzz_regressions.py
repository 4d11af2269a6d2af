"""Failures the fuzz properties found, each minimised to a plain example (one test per fixed bug)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from mcastlab import Config
from mcastlab.errors import (
    ConfigError,
    FilterError,
    InvalidIdentityError,
    InvalidMetadataError,
    McastlabError,
)
from mcastlab.filters import F, compile_filter
from mcastlab.identity import validate_identity, validate_metadata

HUGE = 10 ** ((sys.get_int_max_str_digits() or 4300) + 10)  # too many digits for str() / repr()


class IntSub(int):
    pass


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: validate_identity(HUGE), InvalidIdentityError),
        (lambda: validate_metadata({HUGE: 1}, max_bytes=100), InvalidMetadataError),
        (lambda: validate_metadata({"a": IntSub(HUGE)}, max_bytes=100), InvalidMetadataError),
        (lambda: compile_filter({"a": HUGE}), FilterError),
        (lambda: compile_filter({HUGE: 1}), FilterError),
        (lambda: compile_filter(HUGE), FilterError),
        (lambda: F(HUGE) == 1, FilterError),
        (lambda: F("a").isin([1, HUGE]), FilterError),
        (lambda: Config.from_dict({HUGE: 1}), ConfigError),
        (lambda: Config(delivery_mode=HUGE), ConfigError),
    ],
)
def test_messages_about_ints_too_long_to_print(call: Callable[[], Any], error: type[McastlabError]) -> None:
    """Reporting a bad value used repr(value), which raises ValueError for an int past the digit limit."""
    with pytest.raises(error, match="digits"):
        call()
