"""Lazily decoded enumerate results (Redis exact plans): RowsView and LazyMetadata behave like the eager
list of Identity with read-only metadata they stand for."""

from __future__ import annotations

import pickle
from types import MappingProxyType

import pytest

from mcastlab.backends._json import LazyMetadata, RowsView
from mcastlab.identity import Identity

ROWS = [b"a", b'{"k":1,"n":{"x":[1,2]}}', b"10.5", b"20.0",
        b"gone", None, b"1", b"2",                       # hash gone: skipped by the registry, not kept
        b"b%2Fc", b'{"k":2}', b"11.0", b""]               # an encoded name, no deadline


def view() -> RowsView:
    return RowsView(ROWS, [0, 8])


def eager() -> list[Identity]:
    return [Identity("a", MappingProxyType({"k": 1, "n": {"x": [1, 2]}}), 10.5, 20.0),
            Identity("b/c", MappingProxyType({"k": 2}), 11.0, None)]


def test_a_view_equals_the_eager_list() -> None:
    v = view()
    assert len(v) == 2 and v == eager() and list(v) == eager()
    assert v[0] == eager()[0] and v[-1] == eager()[-1] and v[1:] == eager()[1:]
    assert [i.id for i in v] == ["a", "b/c"] and eager()[1] in v
    with pytest.raises(IndexError):
        v[2]


def test_lazy_metadata_is_a_read_only_mapping_decoded_once() -> None:
    md = LazyMetadata(b'{"k":1,"s":"x"}')
    assert md == {"k": 1, "s": "x"} and md == MappingProxyType({"k": 1, "s": "x"})
    assert md["k"] == 1 and "s" in md and sorted(md) == ["k", "s"] and len(md) == 2
    assert md.get("missing") is None and dict(md.items()) == {"k": 1, "s": "x"}
    with pytest.raises(TypeError):
        md["k"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        hash(md)
    again = pickle.loads(pickle.dumps(md))
    assert again == md and isinstance(again, LazyMetadata)
    assert repr(md) == "LazyMetadata({'k': 1, 's': 'x'})"


def test_filters_read_lazy_metadata_like_any_mapping() -> None:
    from mcastlab.filters import compile_filter

    md = LazyMetadata(b'{"status":"online","fw":"1.2.10","tags":["gpu"]}')
    assert compile_filter('status == "online" and fw < v"1.3" and tags contains "gpu"').predicate(md)
    assert not compile_filter("exists(missing)").predicate(md)


def test_live_offsets_parse_deadlines_only_when_something_lapsed() -> None:
    from mcastlab.backends._json import live_offsets

    rows = [b"a", b"{}", b"1", b"5.0", b"b", b"{}", b"1", b"inf",
            b"c", None, None, None, b"d", b"{}", b"1", b"2.0"]
    assert live_offsets(rows, 3.0) == [0, 4]  # d lapsed, c's hash is gone
    assert live_offsets(rows, 3.0, [b"d"]) == [0, 4]
    whole = rows[:8]
    assert live_offsets(whole, 3.0, []) == range(0, 8, 4)  # nothing lapsed, every hash there: no parsing
    assert list(RowsView(whole, live_offsets(whole, 3.0, []))[0:2]) == list(RowsView(whole, [0, 4]))


def test_decode_tokens_is_decode_token_of_each() -> None:
    from mcastlab.backends._subjects import decode_token, decode_tokens, encode_token

    names = ["plain", "a b", "日本", "%41", "x.y", ""]
    tokens = [encode_token(n).encode() for n in names if n]
    assert decode_tokens(tokens) == [decode_token(t.decode()) for t in tokens] == [n for n in names if n]
    assert decode_tokens([b"a", b"b"]) == ["a", "b"] and decode_tokens([]) == []
