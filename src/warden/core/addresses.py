"""Source-address allow-lists for conditional access: CIDR lists and the membership test.

A client's `allowed_ips` is a list of networks (`10.0.0.0/8`, `2001:db8::/32`, or a bare address
for one host). The address tested is the request's source as the server determines it: the TCP
peer, or the last `X-Forwarded-For` hop when the peer is one of `server.trusted_proxies`. An
IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack socket reports) is also tested as
the IPv4 address it carries. A source that is not an IP address matches no list.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["MAX_ALLOWED_IPS", "Network", "is_address_allowed", "parse_allowed_ips", "render_allowed_ips"]

MAX_ALLOWED_IPS = 64
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allowed_ips(values: Iterable[object]) -> tuple[Network, ...]:
    """Networks in the order given, duplicates dropped; raise ValueError naming the bad entry.

    Host bits must be zero (`10.1.2.3/8` is refused rather than widened to `10.0.0.0/8`, since it
    is more likely a typo for a narrower network than a request for the wider one)."""
    out: list[Network] = []
    for i, value in enumerate(values):
        if i >= MAX_ALLOWED_IPS:
            raise ValueError(f"allowed_ips: at most {MAX_ALLOWED_IPS} networks")
        if not isinstance(value, str) or not value or len(value) > 64 or value != value.strip():
            raise ValueError(f"allowed_ips[{i}]: expected a CIDR network such as 10.0.0.0/8 or 2001:db8::/32")
        try:
            network = ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            detail = "host bits are set" if "host bits" in str(exc) else "not a CIDR network"
            raise ValueError(f"allowed_ips[{i}] {value[:64]!r}: {detail} "
                             "(expected e.g. 10.0.0.0/8, 192.0.2.7 or 2001:db8::/32)") from None
        if network.version == 6 and network.prefixlen >= 96 and network.network_address.ipv4_mapped is not None:
            # ::ffff:a.b.c.d/n is an IPv4 network; store it as one so the two spellings agree
            network = ipaddress.ip_network(f"{network.network_address.ipv4_mapped}/{network.prefixlen - 96}")
        if network not in out:
            out.append(network)
    return tuple(out)


def render_allowed_ips(networks: Iterable[Network]) -> list[str]:
    return [str(n) for n in networks]


_DECIDED: dict[tuple[str, int], tuple[tuple[Network, ...], bool]] = {}
_DECIDED_LIMIT = 16_384  # bounds memory: when full, the map starts over


def is_address_allowed(source: str, networks: tuple[Network, ...]) -> bool:
    """Whether `source` lies in one of `networks`; an empty tuple allows every source.

    Runs on every token request of a restricted client, and parsing an address costs microseconds,
    so answers are remembered per (source, list). The list is keyed by identity (a client's list is
    one object for as long as the registry holds it) and kept in the entry, so its id cannot be
    reused by another list while the answer is remembered."""
    if not networks:
        return True
    key = (source, id(networks))
    hit = _DECIDED.get(key)
    if hit is not None and hit[0] is networks:
        return hit[1]
    allowed = _is_allowed(source, networks)
    if len(_DECIDED) >= _DECIDED_LIMIT:
        _DECIDED.clear()
    _DECIDED[key] = (networks, allowed)
    return allowed


def _is_allowed(source: str, networks: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(source.strip().split("%", 1)[0])  # a zone id is not part of the address
    except ValueError:
        return False
    if any(address in network for network in networks):
        return True
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return mapped is not None and any(mapped in network for network in networks)
