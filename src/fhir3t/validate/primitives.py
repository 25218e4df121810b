"""Primitive values: the strict JSON type of each FHIR primitive and its lexical form.

FHIR JSON is typed: a boolean is `true`/`false`, integer and decimal are JSON numbers (an integer
without a fraction, within 32 bits), every other primitive is a JSON string matching the regex R4
gives for its type. Dates are checked against the calendar too (the R4 regexes accept 2021-02-30).
Messages name the type and the rule, and echo the value only for coded types (`code`, `id`, URIs)
so free text and dates of a patient do not end up in a report.
"""
from __future__ import annotations

import base64
import binascii
import calendar
import re
from typing import Any

from fhir3t.r4defs import BOOLEAN, DECIMAL, INTEGERS, type_def

#: characters not allowed in any FHIR string (C0 controls but TAB, CR, LF)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_ECHO = frozenset({"code", "id", "uri", "url", "canonical", "oid", "uuid"})
#: at most this many characters of one primitive (the HL7 validator's limit is 1 MB too)
MAX_LENGTH = 1024 * 1024
_DATE_PARTS = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_HTML_TAG = re.compile(r"<[A-Za-z][\w-]*(\s[^<>]*)?>")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_INT32 = (-2147483648, 2147483647)
_FORMAT_HINT = {
    "date": "YYYY, YYYY-MM or YYYY-MM-DD",
    "dateTime": "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz",
    "instant": "YYYY-MM-DDThh:mm:ss(.sss)+zz:zz, with a time zone",
    "time": "hh:mm:ss",
    "id": "1-64 of A-Z a-z 0-9 - .",
    "oid": "urn:oid:1.2.3...",
    "uuid": "urn:uuid: and a lower-case UUID",
    "code": "no leading, trailing or double whitespace",
}


def json_kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    kinds: dict[type, str] = {dict: "an object", list: "an array", str: "a string"}
    return kinds.get(type(v), type(v).__name__)


def check(value: Any, tcode: str) -> list[tuple[str, str, str]]:
    """Problems of one primitive value as (severity, issue code, message); [] when it is fine."""
    if tcode in BOOLEAN:
        return [] if isinstance(value, bool) else [_wrong(tcode, "boolean (true or false)", value)]
    if tcode in INTEGERS:
        if isinstance(value, bool) or not isinstance(value, int):
            return [_wrong(tcode, "number without a fraction", value)]
        low = 1 if tcode == "positiveInt" else 0 if tcode == "unsignedInt" else _INT32[0]
        if not low <= value <= _INT32[1]:
            return [("error", "value", f"{tcode} out of range ({low}..{_INT32[1]})")]
        return []
    if tcode in DECIMAL:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [_wrong(tcode, "number", value)]
        return []
    if not isinstance(value, str):
        return [_wrong(tcode, "string", value)]
    if tcode == "xhtml":
        return []  # checked as narrative (validate.xhtml)
    return _string(value, tcode)


def _wrong(tcode: str, expected: str, value: Any) -> tuple[str, str, str]:
    return ("error", "structure", f"wrong JSON type: a FHIR {tcode} is a JSON {expected}, not {json_kind(value)}")


def _string(value: str, tcode: str) -> list[tuple[str, str, str]]:
    if len(value) > MAX_LENGTH:
        return [("error", "too-long", f"{tcode} value is longer than {MAX_LENGTH:,} characters")]
    if not value:
        return [("error", "invariant", "ele-1: a primitive must have a value (empty string)")]
    if tcode == "base64Binary":
        return _base64(value)
    out: list[tuple[str, str, str]] = []
    if _CONTROL.search(value):
        out.append(("error", "invalid", f"{tcode} value contains a control character (not allowed in FHIR strings)"))
    t = type_def(tcode)
    if t is not None and t.regex is not None and not t.regex.fullmatch(value):
        if tcode in ("string", "markdown") and not value.strip():
            out.append(("error", "invalid", f"{tcode} value is whitespace only"))
        else:
            shown = f"{value[:80]!r} " if tcode in _ECHO else "the value "
            hint = _FORMAT_HINT.get(tcode)
            out.append(("error", "value", f"{shown}is not a valid {tcode}" + (f" (expected {hint})" if hint else "")))
        return out
    if tcode in ("date", "dateTime", "instant"):
        bad = _calendar(value)
        if bad:
            out.append(("error", "value", f"not a valid {tcode}: {bad}"))
    elif tcode in ("uri", "url", "canonical") and value.startswith("urn:uuid:") and not _UUID.fullmatch(value[9:]):
        out.append(("error", "value", f"{value[:80]!r} is not a valid urn:uuid (expected a lower-case UUID)"))
    elif tcode in ("string", "markdown"):
        if not value.strip():
            out.append(("error", "invalid", f"{tcode} value is whitespace only"))
        elif value != value.strip() and tcode == "string":
            out.append(("warning", "invalid", "string value should not start or finish with whitespace"))
        if tcode == "markdown" and _HTML_TAG.search(value):
            out.append(("warning", "invalid", "markdown contains what looks like an embedded HTML tag; the "
                                              "presentation layer will (or should) escape it"))
    return out


def _calendar(value: str) -> str | None:
    m = _DATE_PARTS.match(value)
    if not m or not m.group(2):
        return None
    month = int(m.group(2))
    if not 1 <= month <= 12:
        return "month out of range"
    if m.group(3):
        day = int(m.group(3))
        if not 1 <= day <= calendar.monthrange(int(m.group(1)), month)[1]:
            return "no such day in that month"
    return None


def _base64(value: str) -> list[tuple[str, str, str]]:
    compact = "".join(value.split())
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return [("error", "value", "base64Binary value is not valid base64")]
    return []


def base64_size(value: str) -> int | None:
    """Decoded length of base64 data (None when it is not base64)."""
    try:
        return len(base64.b64decode("".join(value.split()), validate=True))
    except (binascii.Error, ValueError):
        return None
