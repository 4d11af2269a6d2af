"""Guard: wraps one coordinator operation, so a failure is counted, reported and typed.

A failed operation is counted in the metrics and, when ``emit``, reported to listeners as a failed
:class:`~mcastlab.results.OpEvent`; an exception that is not a McastlabError (a driver's own error,
say) becomes a BackendError naming the operation, so callers only ever catch mcastlab's errors.
"""

from __future__ import annotations

from typing import Literal, Protocol

from mcastlab.errors import BackendError, McastlabError, preview


class _Owner(Protocol):
    """What a Guard needs of its coordinator."""

    @property
    def backend_name(self) -> str: ...

    def _failed(self, op: str, t0: float, exc: BaseException, identity: str = "") -> None: ...

    def _count_error(self, op: str, kind: str) -> None: ...


class Guard:
    """``with Guard(coordinator, op, t0, identity):`` around one operation; see the module docstring."""

    __slots__ = ("c", "emit", "identity", "op", "t0")

    def __init__(self, c: _Owner, op: str, t0: float, identity: object = "", *, emit: bool = True) -> None:
        self.c, self.op, self.t0, self.identity, self.emit = c, op, t0, identity, emit

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> Literal[False]:
        if exc is None or not isinstance(exc, Exception):
            return False
        name = self.identity if isinstance(self.identity, str) else preview(self.identity)
        if self.emit:
            self.c._failed(self.op, self.t0, exc, name)
        else:
            self.c._count_error(self.op, type(exc).__name__)
        if isinstance(exc, McastlabError):
            return False
        what = f"{self.op}({name!r})" if self.identity != "" else self.op
        raise BackendError(f"{what} failed: {type(exc).__name__}: {exc}",
                           backend=self.c.backend_name) from exc


__all__ = ["Guard"]
