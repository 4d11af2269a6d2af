"""Population: the one owner of a coordinator's registered-identities count (the gauge's value).

Writers never assign the count; they report changes (``added``, ``removed``) or a count read from the
registry (``resync``). A resync must not lose a change that lands while the registry is being read:
the reader takes a ``mark()`` before it asks the registry, and ``resync(stored, mark)`` keeps every
change reported since that mark on top of the stored count. A change whose effect the registry already
counted may then be counted twice, until the next resync corrects it; a change is never lost.
"""

from __future__ import annotations


class Population:
    """Registered identities as one coordinator sees them; see the module docstring."""

    __slots__ = ("_changes", "_count")

    def __init__(self) -> None:
        self._count = 0
        self._changes = 0  # running sum of every change reported (marks are positions in it)

    @property
    def value(self) -> int:
        """The current count (never negative)."""
        return max(0, self._count)

    def added(self, n: int = 1) -> None:
        """``n`` identities were registered (new, or back after expiring)."""
        self._count += n
        self._changes += n

    def removed(self, n: int = 1) -> None:
        """``n`` identities left: unregistered or claimed as expired."""
        self._count -= n
        self._changes -= n

    def mark(self) -> int:
        """A position to pass to :meth:`resync`: take it just before reading the registry's count."""
        return self._changes

    def resync(self, stored: int, mark: int) -> None:
        """Adopt the registry's ``stored`` count, plus every change reported since ``mark``."""
        self._count = stored + (self._changes - mark)


__all__ = ["Population"]
