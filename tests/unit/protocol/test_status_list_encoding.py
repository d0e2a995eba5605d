"""Token Status List encoding: the draft's own examples, and every property an untrusted list needs."""

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.jose import b64url_encode
from warden.protocol.status_list import (
    INVALID,
    StatusList,
    StatusReference,
    parse_status_reference,
    status_list_claims,
)

# draft-ietf-oauth-status-list §4.1: the 1-bit and 2-bit examples, statuses by index.
ONE_BIT = [1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1]
TWO_BIT = [1, 2, 0, 3, 0, 1, 0, 1, 1, 2, 3, 3]


def _list_of(statuses: list[int], bits: int) -> StatusList:
    lst = StatusList(len(statuses), bits)
    for i, s in enumerate(statuses):
        lst[i] = s
    return lst


def test_draft_one_bit_example():
    lst = _list_of(ONE_BIT, 1)
    assert lst.to_bytes() == bytes([0xB9, 0xA3])
    assert lst.encode() == {"bits": 1, "lst": "eNrbuRgAAhcBXQ"}
    decoded = StatusList.decode({"bits": 1, "lst": "eNrbuRgAAhcBXQ"}, max_bytes=16)
    assert [decoded[i] for i in range(16)] == ONE_BIT


def test_draft_two_bit_example():
    lst = _list_of(TWO_BIT, 2)
    assert lst.to_bytes() == bytes([0xC9, 0x44, 0xF9])
    assert lst.encode() == {"bits": 2, "lst": "eNo76fITAAPfAgc"}
    decoded = StatusList.decode({"bits": 2, "lst": "eNo76fITAAPfAgc"}, max_bytes=16)
    assert [decoded[i] for i in range(12)] == TWO_BIT


@given(st.sampled_from([1, 2, 4, 8]).flatmap(
    lambda bits: st.tuples(st.just(bits), st.lists(st.integers(0, (1 << bits) - 1), max_size=300))))
def test_round_trip(case: tuple[int, list[int]]):
    bits, statuses = case
    lst = _list_of(statuses, bits)
    again = StatusList.decode(lst.encode(), max_bytes=1024)
    assert [again[i] for i in range(len(statuses))] == statuses
    assert all(again[i] == 0 for i in range(len(statuses), again.size))  # padding bits are zero


@given(st.integers(0, 200), st.integers(0, 200))
def test_set_range_matches_setting_one_by_one(start: int, count: int):
    size = 400
    fast, slow = StatusList(size), StatusList(size)
    fast.set_range(start, count, INVALID)
    for i in range(start, start + count):
        slow[i] = INVALID
    assert fast.to_bytes() == slow.to_bytes()


def test_indexes_and_values_are_checked():
    lst = StatusList(10, 2)
    with pytest.raises(IndexError):
        lst[10]
    with pytest.raises(ValueError):
        lst[0] = 4
    with pytest.raises(IndexError):
        lst.set_range(5, 6, 1)
    with pytest.raises(ValueError):
        StatusList(8, 3)


def test_a_compression_bomb_is_refused_not_inflated():
    bomb = b64url_encode(zlib.compress(bytes(50 * 1024 * 1024), 9)).decode()
    assert len(bomb) < 100_000
    with pytest.raises(ValueError, match="larger than allowed"):
        StatusList.decode({"bits": 1, "lst": bomb}, max_bytes=1024 * 1024)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=8)


@given(st.one_of(JSON, st.fixed_dictionaries({"bits": JSON, "lst": JSON}),
                 st.fixed_dictionaries({"bits": st.sampled_from([1, 2, 4, 8]), "lst": st.text()})))
def test_untrusted_lists_give_value_error_or_a_list(value: object):
    try:
        StatusList.decode(value, max_bytes=4096)
    except ValueError:
        pass


@given(st.dictionaries(st.text(max_size=8), JSON, max_size=3) | st.fixed_dictionaries(
    {"status": st.fixed_dictionaries({"status_list": st.fixed_dictionaries({"idx": JSON, "uri": JSON})})}))
def test_untrusted_references_give_value_error_none_or_a_reference(claims: dict):
    try:
        ref = parse_status_reference(claims)
    except ValueError:
        return
    assert ref is None or (isinstance(ref.idx, int) and ref.idx >= 0 and isinstance(ref.uri, str))


def test_references():
    claims = {"status": {"status_list": {"idx": 7, "uri": "https://as.example/oauth2/status/1"}}}
    assert parse_status_reference(claims) == StatusReference("https://as.example/oauth2/status/1", 7)
    assert parse_status_reference({}) is None
    assert parse_status_reference({"status": {"other_mechanism": {}}}) is None
    for bad in ({"status": []}, {"status": {"status_list": {"idx": True, "uri": "https://a"}}},
                {"status": {"status_list": {"idx": -1, "uri": "https://a"}}},
                {"status": {"status_list": {"idx": 1, "uri": "file:///etc/passwd"}}}):
        with pytest.raises(ValueError):
            parse_status_reference(bad)


def test_status_list_token_claims():
    lst = _list_of(ONE_BIT, 1)
    claims = status_list_claims("https://as.example/oauth2/status/1", 100, 200, 60, lst)
    assert claims == {"sub": "https://as.example/oauth2/status/1", "iat": 100, "exp": 200, "ttl": 60,
                      "status_list": {"bits": 1, "lst": "eNrbuRgAAhcBXQ"}}
