"""Which IP addresses the fetch tool may connect to: an explicit deny table, the same on every Python version.

Why a table and not `ipaddress`'s `is_private` / `is_global`: those properties changed between Python releases
(3.11.7 let five addresses of 192.0.0.0/24 through, among them 192.0.0.192, a cloud metadata address), so what
was refused depended on the interpreter. The table below is built from IANA's registries and is the one rule:

- IPv4 Special-Purpose Address Registry: https://www.iana.org/assignments/iana-ipv4-special-registry/
- IPv6 Special-Purpose Address Registry: https://www.iana.org/assignments/iana-ipv6-special-registry/
- IPv6 Address Space (only 2000::/3 is global unicast): https://www.iana.org/assignments/ipv6-address-space/
- IPv4 multicast (224.0.0.0/4, RFC 5771) and IPv6 multicast (ff00::/8, RFC 4291).

Every entry of the special-purpose registries is refused, including the few marked "globally reachable" (anycast
services such as AS112 or AMT relays): none serves web pages, and refusing them keeps the rule simple. IPv6 forms
that stand for an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96, 6to4 2002::/16) are judged by that IPv4 address,
because that is where the packets go.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_PRIVATE = "a private address"
_RESERVED = "a reserved address"
_SPECIAL = "a special-purpose address"
_DOCS = "a documentation address"
_LINK_LOCAL = "a link-local address (such as the cloud metadata service)"

# (network, why it is refused). Order does not matter: an address is refused if any entry holds it.
_IPV4_DENY: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "an unspecified address"),  # "this network" (RFC 791); 0.0.0.0/32 "this host"
    ("10.0.0.0/8", _PRIVATE),  # RFC 1918
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),  # RFC 6598
    ("127.0.0.0/8", "a loopback address"),  # RFC 1122
    ("169.254.0.0/16", _LINK_LOCAL),  # RFC 3927; 169.254.169.254 is the usual metadata service
    ("172.16.0.0/12", _PRIVATE),  # RFC 1918
    # IETF protocol assignments (RFC 6890): DS-Lite, PCP/TURN anycast, NAT64 discovery, and 192.0.0.192 (the
    # Oracle Cloud metadata service) all sit here; the whole /24 is refused.
    ("192.0.0.0/24", _SPECIAL),
    ("192.0.2.0/24", _DOCS),  # TEST-NET-1, RFC 5737
    ("192.31.196.0/24", _SPECIAL),  # AS112-v4, RFC 7535
    ("192.52.193.0/24", _SPECIAL),  # AMT, RFC 7450
    ("192.88.99.0/24", _SPECIAL),  # deprecated 6to4 relay anycast, RFC 7526
    ("192.168.0.0/16", _PRIVATE),  # RFC 1918
    ("192.175.48.0/24", _SPECIAL),  # direct delegation AS112 service, RFC 7534
    ("198.18.0.0/15", "a benchmarking address"),  # RFC 2544
    ("198.51.100.0/24", _DOCS),  # TEST-NET-2, RFC 5737
    ("203.0.113.0/24", _DOCS),  # TEST-NET-3, RFC 5737
    ("224.0.0.0/4", "a multicast address"),  # RFC 5771
    ("240.0.0.0/4", _RESERVED),  # RFC 1112 "reserved for future use"; 255.255.255.255 is the limited broadcast
)

_IPV6_DENY: tuple[tuple[str, str], ...] = (
    ("::/128", "an unspecified address"),  # RFC 4291
    ("::1/128", "a loopback address"),  # RFC 4291
    ("::/96", _RESERVED),  # deprecated IPv4-compatible addresses, RFC 4291
    ("64:ff9b:1::/48", "a local-use translation address"),  # RFC 8215: each network lays it out its own way
    ("100::/64", _SPECIAL),  # discard-only, RFC 6666
    ("100:0:0:1::/64", _SPECIAL),  # dummy prefix, RFC 9780
    ("2001::/23", _SPECIAL),  # IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID, AMT, AS112...
    ("2001:db8::/32", _DOCS),  # RFC 3849
    ("2620:4f:8000::/48", _SPECIAL),  # direct delegation AS112 service, RFC 7534
    ("3fff::/20", _DOCS),  # RFC 9637
    ("5f00::/16", _SPECIAL),  # segment routing (SRv6) SIDs, RFC 9602
    ("fc00::/7", _PRIVATE),  # unique local, RFC 4193
    ("fe80::/10", _LINK_LOCAL),  # RFC 4291
    ("fec0::/10", "a site-local address"),  # deprecated, RFC 3879
    ("ff00::/8", "a multicast address"),  # RFC 4291
)

_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")  # RFC 4291 IPv4-mapped
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")  # RFC 3056: the IPv4 address is bits 16..48


def _table(
    entries: tuple[tuple[str, str], ...], kind: type[ipaddress.IPv4Network] | type[ipaddress.IPv6Network]
) -> tuple[tuple[int, int, str], ...]:
    """(first, last, reason) as integers: membership is plain arithmetic, not a version-dependent property."""
    rows = []
    for text, reason in entries:
        network = kind(text)
        rows.append((int(network.network_address), int(network.broadcast_address), reason))
    return tuple(rows)


IPV4_DENY = _table(_IPV4_DENY, ipaddress.IPv4Network)
IPV6_DENY = _table(_IPV6_DENY, ipaddress.IPv6Network)


def non_public_reason(ip: IPAddress) -> str | None:
    """Why an address must not be fetched from (e.g. 'a loopback address'), or None when it may be."""
    if isinstance(ip, ipaddress.IPv4Address):
        return _denied(int(ip), IPV4_DENY)
    value = int(ip)  # int() drops any %zone suffix
    embedded = embedded_ipv4(ip)
    if embedded is not None:
        return non_public_reason(embedded)
    reason = _denied(value, IPV6_DENY)
    if reason is not None:
        return reason
    if not int(_GLOBAL_UNICAST.network_address) <= value <= int(_GLOBAL_UNICAST.broadcast_address):
        return _RESERVED  # IANA has allocated nothing but 2000::/3 for global unicast
    return None


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4): it is where the packets really go."""
    value = int(ip)
    for network in (_MAPPED, _NAT64):
        if int(network.network_address) <= value <= int(network.broadcast_address):
            return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if int(_SIX_TO_FOUR.network_address) <= value <= int(_SIX_TO_FOUR.broadcast_address):
        return ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)
    return None


def _denied(value: int, table: tuple[tuple[int, int, str], ...]) -> str | None:
    for first, last, reason in table:
        if first <= value <= last:
            return reason
    return None
