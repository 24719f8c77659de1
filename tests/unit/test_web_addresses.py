"""The fetch tool's deny table, case by case: the same answers on every Python version (no is_private/is_global).

Each refused case names a registry entry of IANA's IPv4 / IPv6 Special-Purpose Address Registries (or multicast,
or IPv6 space outside 2000::/3); each allowed case is an ordinary public unicast address.
"""

from __future__ import annotations

import ipaddress

import pytest

from bot.web import addresses
from bot.web.addresses import embedded_ipv4, non_public_reason

REFUSED = [
    # IPv4 special-purpose registry
    ("0.0.0.0", "unspecified"),
    ("0.255.255.255", "unspecified"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.169.254", "link-local"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.0.0.0", "special-purpose"),
    ("192.0.0.8", "special-purpose"),
    ("192.0.0.9", "special-purpose"),  # PCP anycast: is_global on 3.11.7
    ("192.0.0.10", "special-purpose"),  # TURN anycast: is_global on 3.11.7
    ("192.0.0.170", "special-purpose"),
    ("192.0.0.171", "special-purpose"),
    ("192.0.0.192", "special-purpose"),  # Oracle Cloud metadata: is_global on 3.11.7
    ("192.0.0.255", "special-purpose"),
    ("192.0.2.1", "documentation"),
    ("192.31.196.1", "special-purpose"),
    ("192.52.193.1", "special-purpose"),
    ("192.88.99.1", "special-purpose"),
    ("192.168.1.1", "private"),
    ("192.175.48.1", "special-purpose"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    # IPv6 special-purpose registry and address space
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("::10.0.0.1", "reserved"),  # deprecated IPv4-compatible
    ("100::1", "special-purpose"),
    ("100:0:0:1::1", "special-purpose"),
    ("2001::1", "special-purpose"),  # Teredo
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "special-purpose"),  # Teredo, with a public server
    ("2001:1::1", "special-purpose"),
    ("2001:2::1", "special-purpose"),
    ("2001:3::1", "special-purpose"),
    ("2001:4:112::1", "special-purpose"),
    ("2001:10::1", "special-purpose"),
    ("2001:20::1", "special-purpose"),
    ("2001:30::1", "special-purpose"),
    ("2001:db8::1", "documentation"),
    ("2620:4f:8000::1", "special-purpose"),
    ("3fff::1", "documentation"),
    ("5f00::1", "special-purpose"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("4000::1", "reserved"),  # outside 2000::/3
    ("64:ff9b:1::a00:1", "local-use translation"),
    ("64:ff9b:1::808:808", "local-use translation"),
    # IPv6 forms of IPv4 addresses are judged by the IPv4 address
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "link-local"),
    ("::ffff:192.0.0.192", "special-purpose"),
    ("64:ff9b::10.0.0.1", "private"),
    ("64:ff9b::192.0.0.192", "special-purpose"),
    ("64:ff9b::169.254.169.254", "link-local"),
    ("2002:a00:1::", "private"),  # 6to4 of 10.0.0.1
    ("2002:c000:00c0::1", "special-purpose"),  # 6to4 of 192.0.0.192
    ("2002:7f00:1::", "loopback"),
]

ALLOWED = [
    "1.1.1.1",
    "8.8.8.8",
    "93.184.216.34",
    "100.63.255.255",  # just below 100.64/10
    "100.128.0.0",  # just above
    "172.32.0.1",  # just above 172.16/12
    "192.0.1.1",  # between 192.0.0/24 and 192.0.2/24
    "198.17.255.255",
    "198.20.0.0",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:81c::200e",
    "2001:200::1",  # just above 2001::/23
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",
    "2002:808:808::1",  # 6to4 of 8.8.8.8
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_special_purpose_addresses_are_refused(address: str, reason: str) -> None:
    problem = non_public_reason(ipaddress.ip_address(address))
    assert problem is not None, address
    assert reason in problem


@pytest.mark.parametrize("address", ALLOWED)
def test_public_unicast_addresses_are_allowed(address: str) -> None:
    assert non_public_reason(ipaddress.ip_address(address)) is None


def test_the_table_decides_not_the_interpreters_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if ipaddress called everything global and nothing private, the answers would not change."""
    for cls in (ipaddress.IPv4Address, ipaddress.IPv6Address):
        for name in ("is_private", "is_global", "is_reserved", "is_loopback", "is_link_local", "is_multicast"):
            monkeypatch.setattr(cls, name, property(lambda self, _n=name: _n == "is_global"))
    for address, _ in REFUSED:
        assert non_public_reason(ipaddress.ip_address(address)) is not None, address


def test_embedded_ipv4_forms() -> None:
    assert embedded_ipv4(ipaddress.IPv6Address("::ffff:1.2.3.4")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.IPv6Address("64:ff9b::1.2.3.4")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.IPv6Address("2002:102:304::")) == ipaddress.IPv4Address("1.2.3.4")
    assert embedded_ipv4(ipaddress.IPv6Address("2606:4700::1")) is None


def test_every_table_row_is_a_real_network() -> None:
    for first, last, reason in (*addresses.IPV4_DENY, *addresses.IPV6_DENY):
        assert first <= last and reason
