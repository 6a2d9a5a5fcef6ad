"""Where a webhook may be sent (API.md §10, Safety): never to loopback, private, link-local (cloud
metadata), shared, multicast, unspecified or reserved addresses, nor their IPv4-mapped IPv6 forms.

The API refuses a `url` whose host is such an address literal; the delivery process resolves a host
name at every attempt, checks every address it resolves to, and connects to one it checked.
"""

from __future__ import annotations

import ipaddress
import re
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Spelled as an IPv4 address by inet_aton's lenient rules ("2130706433", "0x7f.1", "127.1"), which
# getaddrinfo follows: refused like the dotted form they stand for.
_LEGACY_IPV4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)


class RefusedAddress(Exception):
    """The host is, or resolves to, an address webhooks are never sent to; str() says which."""


def literal_address(host: str) -> IPAddress | None:
    """The address `host` spells (brackets already stripped), in any form getaddrinfo reads; None for a name."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])  # an IPv6 zone (fe80::1%eth0) names no other address
    except ValueError:
        pass
    if _LEGACY_IPV4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_refused(address: IPAddress) -> bool:
    """Whether webhooks are never sent to `address`: anything not globally routable (loopback,
    RFC 1918, fc00::/7, link-local, 100.64.0.0/10, unspecified, documentation, ...), multicast and
    reserved ranges, judged on the IPv4 address an IPv6 one maps, translates or tunnels to."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and is_refused(embedded):
            return True
    return not address.is_global or address.is_multicast or address.is_reserved


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def check_literal(host: str) -> None:
    """Raise RefusedAddress when `host` is an address literal webhooks are never sent to."""
    address = literal_address(host)
    if address is not None and is_refused(address):
        raise RefusedAddress(f"{address} is not a public address")


def resolve(host: str, port: int, *, allow_private: bool) -> list[IPAddress]:
    """Every address `host` resolves to for TCP, each checked (unless `allow_private`): RefusedAddress
    if any one is refused (a name that also points inward is not trusted), OSError if it does not resolve."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos))
    if not allow_private:
        refused = [str(address) for address in addresses if is_refused(address)]
        if refused:
            raise RefusedAddress(f"{host} resolves to {', '.join(refused)}, which is not a public address")
    return addresses
