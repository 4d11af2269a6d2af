"""What counts as a failure: an exception that is not a McastlabError, or one that only is by accident.

Every call in the fuzz properties goes through :func:`call`, which returns ``(True, value)`` or
``(False, error)`` for a typed error, and raises :class:`PropertyError` (an AssertionError) otherwise:

* any exception that is not a :class:`~mcastlab.errors.McastlabError`;
* a :class:`~mcastlab.errors.BackendError` caused by a foreign exception when the backends are embedded
  and fault-free: that is a bug in mcastlab turned into "the other side failed" by the coordinator's
  Guard (or a run's catch-all), not a backend failure;
* an error whose message cannot be turned into text (``str(exc)`` raising).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from mcastlab.errors import BackendError, McastlabError


class PropertyError(AssertionError):
    """A property failed; the message says which call and what escaped."""


def safe_repr(value: Any, limit: int = 120) -> str:
    """``repr`` that never raises (not even for ints past Python's digit limit) and stays short."""
    digits = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        text = repr(value)
    except Exception as exc:
        text = f"<{type(value).__name__}: repr failed: {type(exc).__name__}>"
    finally:
        sys.set_int_max_str_digits(digits)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def root_cause(exc: BaseException) -> BaseException:
    """The first foreign (non-mcastlab) exception in ``exc``'s cause chain, or ``exc`` itself."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if not isinstance(cur, McastlabError):
            return cur
        cur = cur.__cause__
    return exc


def check_error(exc: BaseException, what: str, *, backend_errors: bool = False) -> McastlabError:
    """Return ``exc`` if it is an acceptable typed error for ``what``, else raise PropertyError."""
    if not isinstance(exc, McastlabError):
        raise PropertyError(f"{what} raised {type(exc).__name__}: {safe_repr(str(exc), 300)}") from exc
    try:
        str(exc)
    except Exception as inner:
        raise PropertyError(f"{what} raised {type(exc).__name__} whose message fails: {inner!r}") from exc
    if isinstance(exc, BackendError):
        cause = root_cause(exc)
        if cause is not exc and not isinstance(cause, McastlabError):
            raise PropertyError(
                f"{what}: a {type(cause).__name__} ({safe_repr(str(cause), 200)}) surfaced as "
                f"{type(exc).__name__}"
            ) from exc
        if not backend_errors:
            raise PropertyError(
                f"{what}: {type(exc).__name__} from fault-free embedded backends: {exc}"
            ) from exc
    return exc


def call(fn: Callable[[], Any], what: str, *, backend_errors: bool = False) -> tuple[bool, Any]:
    """Run ``fn()``: ``(True, result)`` or ``(False, typed error)``; PropertyError for anything else."""
    try:
        return True, fn()
    except PropertyError:
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return False, check_error(exc, what, backend_errors=backend_errors)


__all__ = ["PropertyError", "call", "check_error", "root_cause", "safe_repr"]
