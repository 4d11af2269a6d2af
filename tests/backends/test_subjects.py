"""Name encoding and wire formats of the live backends (pure: no servers)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcastlab.backends import Message
from mcastlab.backends._subjects import (
    check_key_prefix,
    check_subject_prefix,
    decode_token,
    encode_token,
    header_value,
    pack_envelope,
    parse_header,
    unpack_envelope,
)
from mcastlab.errors import ConfigError
from mcastlab.identity import validate_identity

SAFE = re.compile(r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+")
NAMES = st.text(st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp", "Zs")),
                min_size=1, max_size=40)


@given(NAMES)
def test_encoding_is_safe_and_reversible(name: str) -> None:
    token = encode_token(name)
    assert SAFE.fullmatch(token)
    assert decode_token(token) == name


@given(NAMES, NAMES)
def test_encoding_is_injective(a: str, b: str) -> None:
    assert (encode_token(a) == encode_token(b)) == (a == b)


@pytest.mark.parametrize(("name", "token"), [
    ("dev-1", "dev-1"), ("a.b", "a%2Eb"), ("*", "%2A"), (">", "%3E"), ("%41", "%2541"), ("ü", "%C3%BC"),
    ("a:b{c}", "a%3Ab%7Bc%7D"),
])
def test_known_encodings(name: str, token: str) -> None:
    validate_identity(name)
    assert encode_token(name) == token


def test_prefix_validation() -> None:
    assert check_subject_prefix("tenant.mcast") == "tenant.mcast"
    for bad in ("", "a.*", "a.>", "a..b", ".a", "a b", 5):
        with pytest.raises(ConfigError):
            check_subject_prefix(bad)  # type: ignore[arg-type]
    assert check_key_prefix("mcast:") == "mcast:"
    for bad in ("", "a{b", "a}", "a b", "x" * 65, "a\n"):
        with pytest.raises(ConfigError):
            check_key_prefix(bad)


@given(st.text(max_size=30), st.floats(allow_nan=False, allow_infinity=False), st.integers(1, 1000),
       st.booleans())
def test_header_round_trip(mid: str, sent_at: float, attempt: int, redelivery: bool) -> None:
    mid = mid.replace("\r", "").replace("\n", "")
    msg = Message(mid, b"", "x", sent_at, attempt, redelivery)
    assert parse_header(header_value(msg)) == (mid, sent_at, attempt, redelivery)


def test_foreign_headers_and_envelopes_get_defaults() -> None:
    assert parse_header(None) == ("", 0.0, 1, False)
    assert parse_header("garbage") == ("", 0.0, 1, False)
    assert unpack_envelope(b"plain bytes") == ("", 0.0, 1, False, b"", b"plain bytes")


@given(st.text(max_size=30), st.binary(max_size=100), st.binary(max_size=40),
       st.floats(allow_nan=False, allow_infinity=False), st.integers(1, 1000), st.booleans())
def test_envelope_round_trip(mid: str, payload: bytes, reply: bytes, sent_at: float, attempt: int,
                             redelivery: bool) -> None:
    data = pack_envelope(Message(mid, payload, "x", sent_at, attempt, redelivery), reply)
    assert unpack_envelope(data) == (mid.encode().decode(), sent_at, attempt, redelivery, reply, payload)
