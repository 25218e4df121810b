"""URLs as fhir3t shows and trusts them: origins, redaction, and safe text for messages.

Every URL that reaches a message or a log goes through `describe` (scheme, host, port, path and
query parameter *names*: no userinfo, no query values, which may identify a patient). Every string
a server chose (a reason phrase, an X-Progress header, an id) goes through `clean` before it is
printed, so it cannot move the cursor, recolour the terminal or pass for another line.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from fhir3t.ids import fhir_id
from fhir3t.origins import Origin, is_loopback, origin, origin_text, parse_origin

__all__ = ["Origin", "clean", "describe", "fhir_id", "is_loopback", "origin", "origin_text", "parse_origin", "safe_path",
           "strip_userinfo"]

#: C0/C1 controls, DEL, and the Unicode bidi/format characters that reorder or hide text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


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
