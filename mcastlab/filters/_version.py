"""Version literals (``v"1.2.10"``) and the version ordering.

Grammar (lenient SemVer)::

    version   := ["v" | "V"] release [pre] ["+" build]
    release   := NUM ("." NUM)*                 e.g. 1, 1.2, 1.2.10
    pre       := "-" IDS | LETTER IDS          e.g. 1.2.3-rc1, 1.2.3-rc.1, 1.2.3-4, 1.2.3rc1
    build     := IDS (with "+" too)            ignored for ordering, as in SemVer
    IDS       := [0-9A-Za-z]+ (("." | "-") [0-9A-Za-z]+)*

Ordering:

* release components compare numerically, and trailing zeros are ignored: ``1.2 == 1.2.0`` and
  ``1.2.9 < 1.2.10 < 1.10.0``;
* a version with a pre-release sorts before the same release without one: ``1.2.3-rc1 < 1.2.3``;
* pre-release text is split into runs of digits and of letters (separators ``.`` and ``-`` only
  separate); digit runs compare numerically, letter runs case-insensitively, a digit run sorts before a
  letter run, and a shorter run list sorts first: ``1.0-alpha < 1.0-alpha.1 < 1.0-beta < 1.0-rc2 <
  1.0-rc10 < 1.0``; ``-rc1``, ``-rc.1`` and ``rc1`` are the same pre-release;
* build metadata after ``+`` is ignored: ``1.0+b1 == 1.0+b2``.

A string that does not match the grammar (``"latest"``, ``""``, ``" 1.2"``) is not a version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mcastlab.errors import FilterError

_VERSION_RE = re.compile(
    r"[vV]?(?P<release>[0-9]+(?:\.[0-9]+)*)"
    r"(?:-(?P<pre1>[0-9A-Za-z]+(?:[.-][0-9A-Za-z]+)*)|(?P<pre2>[A-Za-z][0-9A-Za-z]*(?:[.-][0-9A-Za-z]+)*))?"
    r"(?:\+[0-9A-Za-z]+(?:[.+-][0-9A-Za-z]+)*)?"
)
_RUN_RE = re.compile(r"[0-9]+|[A-Za-z]+")
_MAX_VERSION_LENGTH = 256

# Cache of string -> key (or None) for the hot path; bounded by clearing when full.
_key_cache: dict[str, tuple[Any, ...] | None] = {}
_KEY_CACHE_LIMIT = 65_536


def _parse_key(text: str) -> tuple[Any, ...] | None:
    if len(text) > _MAX_VERSION_LENGTH:
        return None
    m = _VERSION_RE.fullmatch(text)
    if m is None:
        return None
    release = [int(p) for p in m.group("release").split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    pre_text = m.group("pre1") or m.group("pre2")
    if pre_text is None:
        return (tuple(release), 1, ())
    runs = tuple((0, int(r), "") if r.isdigit() else (1, 0, r.lower()) for r in _RUN_RE.findall(pre_text))
    return (tuple(release), 0, runs)


def version_key(value: object) -> tuple[Any, ...] | None:
    """Return a sortable key for ``value`` if it is a ``str`` holding a version, else ``None``.

    Two versions compare like their keys (``==``, ``<``, ...). Results are cached.
    """
    if type(value) is not str:
        return None
    try:
        return _key_cache[value]
    except KeyError:
        pass
    key = _parse_key(value)
    if len(_key_cache) >= _KEY_CACHE_LIMIT:
        _key_cache.clear()
    _key_cache[value] = key
    return key


@dataclass(frozen=True, slots=True)
class Version:
    """A version literal: ``Version("1.2.10")``, written ``v"1.2.10"`` in filter strings.

    Compared against a field, the field's value must be a ``str`` that parses as a version (see the
    module docs for the ordering); otherwise ``==``/``<``/... are false and ``!=`` is true.
    Two ``Version`` objects are equal as filter values when their text is equal.
    """

    text: str
    key: tuple[Any, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.text) is not str:
            raise FilterError(
                f"Version() takes the version as a str, e.g. Version('1.2.3'); got "
                f"{type(self.text).__name__} {self.text!r:.60}"
            )
        key = version_key(self.text)
        if key is None:
            raise FilterError(
                f"{self.text!r:.80} is not a version; write numbers separated by dots with an optional "
                "pre-release and build, e.g. '1.2.10', 'v2.0', '1.2.3-rc1', '1.2.3+build5'"
            )
        object.__setattr__(self, "key", key)

    def __str__(self) -> str:
        return self.text


__all__ = ["Version", "version_key"]
