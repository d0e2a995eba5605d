"""Conditional access: the CIDR allow-list parser (untrusted operator and API input) and membership."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warden.core.addresses import MAX_ALLOWED_IPS, is_address_allowed, parse_allowed_ips, render_allowed_ips
from warden.core.client_metadata import ClientMetadata, parse_client_metadata, render_client_metadata

networks = st.one_of(st.ip_addresses(v=4).flatmap(lambda a: st.integers(0, 32).map(
                         lambda n: ipaddress.ip_network(f"{a}/{n}", strict=False))),
                     st.ip_addresses(v=6).flatmap(lambda a: st.integers(0, 128).map(
                         lambda n: ipaddress.ip_network(f"{a}/{n}", strict=False))))


@given(st.lists(st.one_of(st.text(max_size=70), st.integers(), st.none(), st.booleans()), max_size=8))
def test_parser_raises_only_value_error_on_any_input(values: list[object]) -> None:
    try:
        parsed = parse_allowed_ips(values)
    except ValueError as exc:
        assert "allowed_ips" in str(exc)
    else:
        assert all(isinstance(n, (ipaddress.IPv4Network, ipaddress.IPv6Network)) for n in parsed)


@given(st.lists(networks, max_size=10))
def test_rendered_networks_parse_back_to_the_same_list(values: list[ipaddress.IPv4Network]) -> None:
    parsed = parse_allowed_ips([str(n) for n in values])
    assert parse_allowed_ips(render_allowed_ips(parsed)) == parsed
    assert len(set(parsed)) == len(parsed)  # duplicates dropped, order kept
    assert list(parsed) == list(dict.fromkeys(parse_allowed_ips([str(n)])[0] for n in values))


@given(networks, st.data())
def test_an_address_is_allowed_exactly_when_a_listed_network_holds_it(network, data) -> None:
    address = data.draw(st.ip_addresses(v=network.version))
    assert is_address_allowed(str(address), (network,)) == (address in network)


@given(st.ip_addresses(v=4), st.integers(0, 32))
def test_ipv4_mapped_ipv6_sources_are_tested_as_ipv4(address, prefix) -> None:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    assert is_address_allowed(f"::ffff:{address}", (network,))


def test_examples() -> None:
    assert render_allowed_ips(parse_allowed_ips(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "10.0.0.0/8"])) == [
        "10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]
    assert render_allowed_ips(parse_allowed_ips(["::ffff:10.0.0.0/104"])) == ["10.0.0.0/8"]
    nets = parse_allowed_ips(["10.0.0.0/8"])
    assert is_address_allowed("10.1.2.3", nets)
    assert not is_address_allowed("11.0.0.1", nets)
    assert not is_address_allowed("unknown", nets)  # a source that is no address matches nothing
    assert not is_address_allowed("2001:db8::1", nets)
    assert is_address_allowed("anything", ())  # no list: no restriction


@pytest.mark.parametrize("bad", ["10.1.2.3/8", "10.0.0.0/33", "ten", "", " 10.0.0.0/8", "10.0.0.0/8 ", "1.2.3.4/-1",
                                 "x" * 65])
def test_bad_networks_are_refused_by_position(bad: str) -> None:
    with pytest.raises(ValueError, match=r"allowed_ips\[1\]"):
        parse_allowed_ips(["127.0.0.1", bad])


def test_host_bits_are_named_and_lists_are_bounded() -> None:
    with pytest.raises(ValueError, match="host bits"):
        parse_allowed_ips(["10.1.2.3/8"])
    with pytest.raises(ValueError, match=f"at most {MAX_ALLOWED_IPS}"):
        parse_allowed_ips([f"10.0.{i // 256}.{i % 256}" for i in range(MAX_ALLOWED_IPS + 1)])


def test_conditional_access_round_trips_through_stored_metadata() -> None:
    meta = parse_client_metadata({"allowed_ips": ["10.0.0.0/8"], "max_token_lifetime": 600, "pending_approval": True})
    assert meta.allowed_ips == (ipaddress.ip_network("10.0.0.0/8"),)
    assert meta.max_token_lifetime == 600 and meta.pending_approval
    assert parse_client_metadata(render_client_metadata(meta)) == meta
    assert render_client_metadata(ClientMetadata()) == "{}"


@pytest.mark.parametrize("bad", [{"allowed_ips": "10.0.0.0/8"}, {"allowed_ips": ["300.0.0.0/8"]},
                                 {"max_token_lifetime": 0}, {"max_token_lifetime": 59}, {"max_token_lifetime": 86401},
                                 {"max_token_lifetime": True}, {"max_token_lifetime": "10m"},
                                 {"pending_approval": "yes"}])
def test_bad_conditional_access_metadata_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        parse_client_metadata(bad)


def test_remembered_answers_belong_to_their_source_and_list() -> None:
    ten, other = parse_allowed_ips(["10.0.0.0/8"]), parse_allowed_ips(["192.0.2.0/24"])
    for _ in range(2):  # the second round is answered from memory
        assert is_address_allowed("10.9.9.9", ten) and not is_address_allowed("192.0.2.1", ten)
        assert is_address_allowed("192.0.2.1", other) and not is_address_allowed("10.9.9.9", other)
    for _ in range(3):  # lists built anew (a changed client) are decided anew
        assert not is_address_allowed("10.9.9.9", parse_allowed_ips(["192.0.2.0/24"]))
