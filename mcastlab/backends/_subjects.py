"""Names and wire formats of the live backends: identity names as NATS subject tokens, Redis key parts
and pub/sub channels, plus the small message headers/envelope that travel with each payload.

:func:`encode_token` is injective and its output only contains ``[A-Za-z0-9_-]`` and ``%XX`` escapes
(UTF-8 bytes, upper-case hex), so an encoded name can never be a NATS wildcard (``*``, ``>``), span two
subject tokens (``.``), contain whitespace, glob characters or a Redis Cluster hash tag (``{``, ``}``).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence
from functools import lru_cache
from urllib.parse import unquote

from mcastlab.backends.base import Message
from mcastlab.errors import ConfigError

_SAFE_RE = re.compile(r"[A-Za-z0-9_\-]+")
_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_NATS_TOKEN_RE = re.compile(r"[^\s.*>]+")


def encode_token(name: str) -> str:
    """``name`` as one safe token: unchanged if it is only ``[A-Za-z0-9_-]``, else %-escaped."""
    if _SAFE_RE.fullmatch(name):
        return name
    return _escape(name)


@lru_cache(maxsize=1 << 16)
def _escape(name: str) -> str:
    out = []
    for ch in name:
        if ch in _SAFE_CHARS:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))
    return "".join(out)


def decode_token(token: str) -> str:
    """Inverse of :func:`encode_token`."""
    if "%" not in token:
        return token
    return unquote(token, errors="strict")


def decode_tokens(tokens: list[bytes]) -> list[str]:
    """:func:`decode_token` of many UTF-8 tokens at once: joined, decoded and split in C (an encoded token
    never holds whitespace), escapes undone only when there are any. A multicast's recipient list."""
    if not tokens:
        return []
    joined = b" ".join(tokens).decode()
    out = joined.split(" ")
    return [decode_token(t) for t in out] if "%" in joined else out


def check_subject_prefix(prefix: str) -> str:
    """Validate a NATS subject prefix such as ``"mcast"`` or ``"tenant1.mcast"`` (no wildcards)."""
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError(f"NATS prefix must be a non-empty str such as 'mcast', got {prefix!r}",
                          key="prefix")
    parts = prefix.split(".")
    if not all(_NATS_TOKEN_RE.fullmatch(p) for p in parts):
        raise ConfigError(
            f"NATS prefix {prefix!r} must be dot-separated non-empty tokens without whitespace, '*' or '>'",
            key="prefix",
        )
    return prefix


def check_key_prefix(prefix: str) -> str:
    """Validate a Redis key prefix such as ``"mcast:"``: printable, no ``*`` or braces."""
    if not isinstance(prefix, str) or not prefix:
        raise ConfigError(f"Redis prefix must be a non-empty str such as 'mcast:', got {prefix!r}",
                          key="prefix")
    if any(ch in "{}*" or ch.isspace() or not ch.isprintable() for ch in prefix) or len(prefix) > 64:
        raise ConfigError(
            f"Redis prefix {prefix!r} must be at most 64 printable characters without whitespace, '*' "
            "(it would break SORT ... GET patterns) or braces (reserved for the cluster hash tag)",
            key="prefix",
        )
    return prefix


# --------------------------------------------------------------------------- NATS headers

HEADER = "Mcast-Msg"  # "<attempt> <redelivery 0|1> <sent_at.hex()> <message id>" (the id may contain spaces)


def header_value(message: Message) -> str:
    """The one NATS header that carries a message's id, send time (``float.hex``: exact, cheap to
    format), attempt and redelivery flag."""
    return f"{message.attempt} {int(message.redelivery)} {message.sent_at.hex()} {message.id}"


def parse_header(value: str | None) -> tuple[str, float, int, bool]:
    """``(message id, sent_at, attempt, redelivery)`` from :func:`header_value`; foreign messages get
    defaults."""
    if value:
        parts = value.split(" ", 3)
        if len(parts) == 4:
            try:
                sent = float.fromhex(parts[2]) if "0x" in parts[2] else float(parts[2])
                return parts[3], sent, int(parts[0]), parts[1] == "1"
            except ValueError:
                pass
    return "", 0.0, 1, False


_HDR_START = b"NATS/1.0\r\n" + HEADER.encode() + b": "
_SUBJECT_CACHE = 1 << 20


class HpubFramer:
    """Builds NATS ``HPUB`` frames, byte for byte what ``nats.Client.publish`` writes, for one subject
    prefix: the inbox subject of each identity is encoded once (cached) and a message's header parts
    once per (message id, attempt), so a fan-out only formats each identity's subject and send time."""

    __slots__ = ("_head", "_head_key", "prefix", "subjects")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.subjects: dict[str, bytes] = {}
        self._head_key: tuple[str, int, bool] | None = None
        self._head = (b"", b"")

    def subject(self, identity: str) -> bytes:
        """The encoded inbox subject of ``identity``."""
        subject = self.subjects.get(identity)
        if subject is None:
            subject = f"{self.prefix}.{encode_token(identity)}".encode()
            if len(self.subjects) < _SUBJECT_CACHE:
                self.subjects[identity] = subject
        return subject

    def subjects_of(self, identities: Sequence[str]) -> list[bytes]:
        """The encoded inbox subjects of ``identities``, in order; looked up in C when all are cached."""
        got: list[bytes | None] = list(map(self.subjects.get, identities))
        at = -1
        try:
            while True:  # the new identities since the last fan-out, each found by a scan in C
                at = got.index(None, at + 1)
                got[at] = self.subject(identities[at])
        except ValueError:
            return got  # type: ignore[return-value]

    def head(self, message: Message) -> tuple[bytes, bytes]:
        """The header's constant parts around the send time, for ``message``'s id and attempt."""
        key = (message.id, message.attempt, message.redelivery)
        if key != self._head_key:
            mid = message.id.replace("\r", " ").replace("\n", " ")  # an id never breaks its header line
            self._head = (_HDR_START + f"{message.attempt} {int(message.redelivery)} ".encode(),
                          f" {mid}\r\n\r\n".encode())
            self._head_key = key
        return self._head

    def tail(self, message: Message) -> tuple[bytes, int]:
        """Everything of a frame after its subject (sizes, header, payload), and the frame's size as NATS
        counts it against ``max_payload`` (header + payload)."""
        pre, post = self.head(message)
        sent = message.sent_at.hex().encode()
        hdr_len = len(pre) + len(sent) + len(post)
        size = hdr_len + len(message.payload)
        return b" %d %d\r\n%b%b%b%b\r\n" % (hdr_len, size, pre, sent, post, message.payload), size

    def frame(self, message: Message) -> tuple[bytes, int]:
        """One whole ``HPUB`` frame for ``message`` and its counted size."""
        tail, size = self.tail(message)
        return b"HPUB " + self.subject(message.identity) + tail, size


# --------------------------------------------------------------------------- Redis pub/sub envelope

_MAGIC = b"MC1"
_FIXED = struct.Struct("!dIBHH")  # sent_at, attempt, redelivery, len(id), len(reply tag)


def pack_envelope(message: Message, reply: bytes = b"") -> bytes:
    """Payload framed with its id, send time, attempt and (ack mode) a reply tag, for Redis pub/sub."""
    mid = message.id.encode()
    head = _FIXED.pack(message.sent_at, message.attempt, message.redelivery, len(mid), len(reply))
    return b"".join((_MAGIC, head, mid, reply, message.payload))


def unpack_envelope(data: bytes) -> tuple[str, float, int, bool, bytes, bytes]:
    """``(message id, sent_at, attempt, redelivery, reply tag, payload)``; foreign data is a bare payload."""
    n = len(_MAGIC) + _FIXED.size
    if len(data) < n or not data.startswith(_MAGIC):
        return "", 0.0, 1, False, b"", data
    sent_at, attempt, redelivery, lid, lrep = _FIXED.unpack_from(data, len(_MAGIC))
    mid = data[n:n + lid].decode(errors="replace")
    reply = data[n + lid:n + lid + lrep]
    return mid, sent_at, attempt, bool(redelivery), reply, data[n + lid + lrep:]


__all__ = [
    "HEADER",
    "HpubFramer",
    "check_key_prefix",
    "check_subject_prefix",
    "decode_token",
    "encode_token",
    "header_value",
    "pack_envelope",
    "parse_header",
    "unpack_envelope",
]
