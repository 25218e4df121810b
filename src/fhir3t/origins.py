"""Origins (scheme, host, port): the unit fhir3t trusts. One home, at the bottom of the layers, so the
config, the transport and the service all compare origins the same way.

`origin` never raises: a URL whose port is not a number, whose IPv6 literal is broken, or whose
scheme is not http(s) has no origin (None), so it matches nothing a user configured.
"""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

Origin = tuple[str, str, int]

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: object) -> Origin | None:
    """(scheme, host, port) with default ports filled in; None for anything that is not an http(s) URL."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError:  # a port that is not a number or out of range, a broken IPv6 literal
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, host.lower(), port or DEFAULT_PORTS[scheme]


def origin_text(o: Origin) -> str:
    scheme, host, port = o
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if DEFAULT_PORTS.get(scheme) == port else f":{port}")


def parse_origin(text: str) -> Origin:
    """An origin the user names (`https://cdn.example.org[:port]`); ValueError if it is not one."""
    o = origin(text.strip())
    try:
        rest = urlsplit(text.strip())
    except ValueError:
        rest = None
    if o is None or rest is None or rest.path.strip("/") or rest.query or rest.username is not None:
        raise ValueError(f"{text!r} is not an origin such as https://files.example.org or http://127.0.0.1:8080")
    return o


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost (not for a name that merely starts with 127.)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback(url: str) -> bool:
    """True when the URL's host is a loopback address (see is_loopback_host)."""
    o = origin(url)
    return o is not None and is_loopback_host(o[1])


__all__ = ["DEFAULT_PORTS", "Origin", "is_loopback", "is_loopback_host", "origin", "origin_text", "parse_origin"]
