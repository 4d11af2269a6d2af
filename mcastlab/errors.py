"""Typed errors: every error mcastlab raises on purpose derives from :class:`McastlabError`.

Errors have a direction (as in h11): :class:`UsageError` means the caller passed something wrong
(bad input, bad config) and retrying the same call will fail again; :class:`BackendError` means the
other side failed (server down, timeout) and a retry may succeed. Errors carry data as attributes.
"""

from __future__ import annotations

from typing import Any


class McastlabError(Exception):
    """Root of every error mcastlab raises on purpose."""


# --------------------------------------------------------------------------- usage errors


class UsageError(McastlabError, ValueError):
    """The caller passed something invalid; nothing was changed."""


class ConfigError(UsageError):
    """A configuration value or key is invalid."""

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.source = source


class ScenarioError(ConfigError):
    """A scenario file is invalid: the message names the file, the key and the fix."""


class InvalidIdentityError(UsageError):
    """An identity name is empty, too long or contains forbidden characters."""

    def __init__(self, message: str, *, identity: Any = None) -> None:
        super().__init__(message)
        self.identity = identity


class UnknownIdentityError(UsageError):
    """The identity is not registered (or has expired), e.g. on heartbeat."""

    def __init__(self, message: str, *, identity: str | None = None) -> None:
        super().__init__(message)
        self.identity = identity


class InvalidMetadataError(UsageError):
    """Metadata is not a JSON-compatible mapping or is too large."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class InvalidTTLError(UsageError):
    """A TTL is zero, negative, NaN, infinite or not a number."""


class PayloadTooLargeError(UsageError):
    """A multicast payload is larger than ``Config.max_payload_bytes``."""

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit


class RegistryFullError(UsageError):
    """A new identity would exceed ``Config.max_identities``."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class FilterError(UsageError):
    """A filter is malformed (wrong shape, unknown operator, bad value)."""


class FilterSyntaxError(FilterError):
    """A filter string could not be parsed; ``position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, *, text: str, position: int) -> None:
        pointer = f"\n  {text}\n  {' ' * position}^"
        super().__init__(f"{message} (at position {position}){pointer}")
        self.text = text
        self.position = position


class FilterTooComplexError(FilterError):
    """A filter exceeds ``max_filter_depth`` or ``max_clauses``."""


class ResourceLimitError(UsageError):
    """A run would need more of this machine (memory) than it has; the message gives estimate and limit."""

    def __init__(self, message: str, *, needed: float, limit: float) -> None:
        super().__init__(message)
        self.needed = needed
        self.limit = limit


class UnsupportedError(UsageError):
    """The requested feature or mode is not supported by this backend or not built yet."""


class ClosedError(UsageError):
    """The coordinator (or backend) has been closed."""


class RuntimeMisuseError(UsageError):
    """Something was awaited that the current runtime cannot drive (e.g. asyncio I/O under SimPy)."""


# --------------------------------------------------------------------------- backend errors


class BackendError(McastlabError):
    """A backend (server, simulated server) failed; the operation may succeed if retried."""

    def __init__(self, message: str, *, backend: str | None = None) -> None:
        super().__init__(message)
        self.backend = backend


class BackendUnavailableError(BackendError, ConnectionError):
    """The backend could not be reached (server down, connection refused, outage window)."""


class OperationTimeoutError(BackendError, TimeoutError):
    """An operation did not complete within its timeout. Catchable as the builtin ``TimeoutError``."""


class ServerError(BackendError):
    """A local server (redis-server, nats-server, PostgreSQL) could not be found, started or stopped."""


class InboxTimeoutError(McastlabError, TimeoutError):
    """``Inbox.get(timeout=...)`` found no message in time."""


class DeliveryError(BackendError):
    """One send failed; multicast turns this into a per-identity status, never a lost fan-out."""

    def __init__(self, message: str, *, status: str, backend: str | None = None) -> None:
        super().__init__(message, backend=backend)
        self.status = status


class Cancelled(BaseException):
    """Raised inside a coroutine cancelled by the SimPy runtime (asyncio uses its own)."""


def preview(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages: never raises, so that reporting a
    bad value cannot fail in turn (an int too long for ``repr`` has its digit count shown instead)."""
    try:
        return repr(value)[:limit]
    except (ValueError, RecursionError):  # the stand-in is short, and kept whole even past ``limit``
        if isinstance(value, int):
            return f"<an integer of about {int(value.bit_length() * 0.30103) + 1} digits>"
        return f"<a {type(value).__name__} that cannot be shown>"


__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "Cancelled",
    "ClosedError",
    "ConfigError",
    "DeliveryError",
    "FilterError",
    "FilterSyntaxError",
    "FilterTooComplexError",
    "InboxTimeoutError",
    "InvalidIdentityError",
    "InvalidMetadataError",
    "InvalidTTLError",
    "McastlabError",
    "OperationTimeoutError",
    "PayloadTooLargeError",
    "RegistryFullError",
    "ResourceLimitError",
    "RuntimeMisuseError",
    "ScenarioError",
    "ServerError",
    "UnknownIdentityError",
    "UnsupportedError",
    "UsageError",
]
