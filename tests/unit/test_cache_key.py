"""CacheKey: a value (equal fields, equal keys) whose hash is computed once."""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st

from server.cache.store import CacheKey

texts = st.text(max_size=12)


@given(texts, texts, texts, texts)
def test_equal_fields_make_equal_keys_with_equal_hashes(kind: str, rtype: str, key: str, scope: str) -> None:
    a, b = CacheKey(kind, rtype, key, scope), CacheKey(kind, rtype, key, scope)
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1


@given(texts, texts)
def test_keys_differing_in_any_field_are_different_entries(key: str, other: str) -> None:
    base = CacheKey("read", "Patient", key)
    variants = [
        CacheKey("search", "Patient", key),
        CacheKey("read", "Observation", key),
        CacheKey("read", "Patient", key, scope="user"),
    ]
    if other != key:
        variants.append(CacheKey("read", "Patient", other))
    table = {base: "base"}
    assert all(v != base and v not in table for v in variants)


def test_the_cached_hash_is_not_a_field_and_follows_replace() -> None:
    key = CacheKey("read", "Patient", "9000000009")
    assert repr(key) == "CacheKey(kind='read', type='Patient', key='9000000009', scope='')"
    assert key.as_filter() == {"kind": "read", "type": "Patient", "key": "9000000009", "scope": ""}
    moved = dataclasses.replace(key, key="9000000017")
    assert moved == CacheKey("read", "Patient", "9000000017") and hash(moved) == hash(
        CacheKey("read", "Patient", "9000000017")
    )
    assert CacheKey.of({"kind": "read", "type": "Patient", "key": "9000000009"}) == key
