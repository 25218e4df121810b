"""URLs as fhir3t shows and trusts them: origins, redaction, and safe text for messages.

Every URL that reaches a message or a log goes through `describe` (scheme, host, port, path and
query parameter *names*: no userinfo, no query values, which may identify a patient). Every string
a server chose (a reason phrase, an X-Progress header, an id) goes through `clean` before it is
printed, so it cannot move the cursor, recolour the terminal or pass for another line.
"""
from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

Origin = tuple[str, str, int]

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: C0/C1 controls, DEL, and the Unicode bidi/format characters that reorder or hide text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def origin(url: str) -> Origin | None:
    """(scheme, host, port) with default ports filled in; None for a URL that is not http(s)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, a broken IPv6 literal
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def origin_text(o: Origin) -> str:
    scheme, host, port = o
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if _DEFAULT_PORTS.get(scheme) == port else f":{port}")


def parse_origin(text: str) -> Origin:
    """An origin the user names (`https://cdn.example.org[:port]`); ValueError if it is not one."""
    o = origin(text.strip())
    rest = urlsplit(text.strip())
    if o is None or rest.path.strip("/") or rest.query or rest.username is not None:
        raise ValueError(f"{text!r} is not an origin such as https://files.example.org or http://127.0.0.1:8080")
    return o


def is_loopback(url: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost (not for a name that merely starts with 127.)."""
    o = origin(url)
    if o is None:
        return False
    if o[1] == "localhost":
        return True
    try:
        return ipaddress.ip_address(o[1]).is_loopback
    except ValueError:
        return False


def strip_userinfo(url: str) -> str:
    """`url` without `user:password@` (the credentials never travel with the URL itself)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def safe_path(url: str) -> str:
    """URL path plus query parameter names, never their values (they may identify a patient)."""
    parts = urlsplit(url)
    names = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True)]
    return clean(parts.path, 200) + (("?" + "&".join(f"{clean(n, 40)}=…" for n in names)) if names else "")


def describe(url: str) -> str:
    """The URL for a message: origin and path, query parameter names only, no userinfo."""
    o = origin(url)
    if o is None:
        return clean(strip_userinfo(url).split("?")[0], 120)
    return origin_text(o) + safe_path(url)


def clean(text: object, limit: int = 300) -> str:
    """A server-chosen string made safe to print: control and bidi characters replaced, length capped."""
    s = _UNSAFE.sub("?", str(text))
    return s if len(s) <= limit else s[: limit - 1] + "…"


