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

from fhir3t.messages import Msg, table
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
#: what each type's lexical form looks like (said after "expected")
_FORMAT_HINT = table("validate.format", {
    "date": "YYYY, YYYY-MM or YYYY-MM-DD",
    "dateTime": "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz",
    "instant": "YYYY-MM-DDThh:mm:ss(.sss)+zz:zz, with a time zone",
    "time": "hh:mm:ss",
    "id": "1-64 of A-Z a-z 0-9 - .",
    "oid": "urn:oid:1.2.3...",
    "uuid": "urn:uuid: and a lower-case UUID",
    "code": "no leading, trailing or double whitespace",
})
#: what a JSON value is (said in "got ..." and "not ...")
KINDS = table("validate.json-kind", {
    "null": "null", "boolean": "a boolean", "number": "a number", "object": "an object", "array": "an array",
    "string": "a string",
})
#: the JSON type a FHIR primitive is written as
_EXPECTED = table("validate.json-type", {
    "boolean": "boolean (true or false)", "integer": "number without a fraction", "number": "number",
    "string": "string",
})
MESSAGES = table("validate.primitive", {
    "wrong-type": "wrong JSON type: a FHIR {tcode} is a JSON {expected}, not {kind}",
    "range": "{tcode} out of range ({low}..{high})",
    "too-long": "{tcode} value is longer than {limit} characters",
    "empty": "ele-1: a primitive must have a value (empty string)",
    "control": "{tcode} value contains a control character (not allowed in FHIR strings)",
    "whitespace-only": "{tcode} value is whitespace only",
    "invalid-shown-hint": "{value} is not a valid {tcode} (expected {hint})",
    "invalid-shown": "{value} is not a valid {tcode}",
    "invalid-hint": "the value is not a valid {tcode} (expected {hint})",
    "invalid": "the value is not a valid {tcode}",
    "calendar": "not a valid {tcode}: {why}",
    "month": "month out of range",
    "day": "no such day in that month",
    "urn-uuid": "{value} is not a valid urn:uuid (expected a lower-case UUID)",
    "string-whitespace": "string value should not start or finish with whitespace",
    "markdown-html": "markdown contains what looks like an embedded HTML tag; the presentation layer will (or should) "
                     "escape it",
    "base64": "base64Binary value is not valid base64",
})
#: a problem of one primitive: (severity, issue code, message)
Problem = tuple[str, str, Msg]


def json_kind(v: Any) -> Msg | str:
    """What a JSON value is, said as a message (a Python type's name where JSON has none)."""
    if v is None:
        return KINDS["null"]()
    if isinstance(v, bool):
        return KINDS["boolean"]()
    if isinstance(v, (int, float)):
        return KINDS["number"]()
    kinds: dict[type, str] = {dict: "object", list: "array", str: "string"}
    key = kinds.get(type(v))
    return KINDS[key]() if key else type(v).__name__


def check(value: Any, tcode: str) -> list[Problem]:
    """Problems of one primitive value as (severity, issue code, message); [] when it is fine."""
    if tcode in BOOLEAN:
        return [] if isinstance(value, bool) else [_wrong(tcode, "boolean", value)]
    if tcode in INTEGERS:
        if isinstance(value, bool) or not isinstance(value, int):
            return [_wrong(tcode, "integer", value)]
        low = 1 if tcode == "positiveInt" else 0 if tcode == "unsignedInt" else _INT32[0]
        if not low <= value <= _INT32[1]:
            return [("error", "value", MESSAGES["range"](tcode=tcode, low=str(low), high=str(_INT32[1])))]
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


def _wrong(tcode: str, expected: str, value: Any) -> Problem:
    return ("error", "structure", MESSAGES["wrong-type"](tcode=tcode, expected=_EXPECTED[expected](),
                                                        kind=json_kind(value)))


def _string(value: str, tcode: str) -> list[Problem]:
    if len(value) > MAX_LENGTH:
        return [("error", "too-long", MESSAGES["too-long"](tcode=tcode, limit=f"{MAX_LENGTH:,}"))]
    if not value:
        return [("error", "invariant", MESSAGES["empty"]())]
    if tcode == "base64Binary":
        return _base64(value)
    out: list[Problem] = []
    if _CONTROL.search(value):
        out.append(("error", "invalid", MESSAGES["control"](tcode=tcode)))
    t = type_def(tcode)
    if t is not None and t.regex is not None and not t.regex.fullmatch(value):
        if tcode in ("string", "markdown") and not value.strip():
            out.append(("error", "invalid", MESSAGES["whitespace-only"](tcode=tcode)))
        else:
            hint = _FORMAT_HINT.get(tcode)
            shown = {"value": repr(value[:80])} if tcode in _ECHO else {}
            key = "invalid" + ("-shown" if shown else "") + ("-hint" if hint else "")
            out.append(("error", "value", MESSAGES[key](tcode=tcode, **shown,
                                                        **({"hint": hint()} if hint else {}))))
        return out
    if tcode in ("date", "dateTime", "instant"):
        bad = _calendar(value)
        if bad:
            out.append(("error", "value", MESSAGES["calendar"](tcode=tcode, why=bad)))
    elif tcode in ("uri", "url", "canonical") and value.startswith("urn:uuid:") and not _UUID.fullmatch(value[9:]):
        out.append(("error", "value", MESSAGES["urn-uuid"](value=repr(value[:80]))))
    elif tcode in ("string", "markdown"):
        if not value.strip():
            out.append(("error", "invalid", MESSAGES["whitespace-only"](tcode=tcode)))
        elif value != value.strip() and tcode == "string":
            out.append(("warning", "invalid", MESSAGES["string-whitespace"]()))
        if tcode == "markdown" and _HTML_TAG.search(value):
            out.append(("warning", "invalid", MESSAGES["markdown-html"]()))
    return out


def _calendar(value: str) -> Msg | None:
    m = _DATE_PARTS.match(value)
    if not m or not m.group(2):
        return None
    month = int(m.group(2))
    if not 1 <= month <= 12:
        return MESSAGES["month"]()
    if m.group(3):
        day = int(m.group(3))
        if not 1 <= day <= calendar.monthrange(int(m.group(1)), month)[1]:
            return MESSAGES["day"]()
    return None


def _base64(value: str) -> list[Problem]:
    compact = "".join(value.split())
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return [("error", "value", MESSAGES["base64"]())]
    return []


def base64_size(value: str) -> int | None:
    """Decoded length of base64 data (None when it is not base64)."""
    try:
        return len(base64.b64decode("".join(value.split()), validate=True))
    except (binascii.Error, ValueError):
        return None
