"""Reading a lab result's value: positive/negative, a semi-quantitative grade, a number.

Which strings and codes mean what is data (the criteria file's `readings` and value sets);
this module only knows where in an Observation a value can sit.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from fhir3t.terminology import Terminology, ValueSet

POSITIVE = "positive"
NEGATIVE = "negative"


@dataclass(frozen=True)
class Readings:
    positive: ValueSet
    negative: ValueSet
    positive_strings: frozenset[str]
    negative_strings: frozenset[str]
    indeterminate_strings: frozenset[str] = frozenset()


def _norm_text(s: str) -> str:
    """Lower-case, single-spaced, and NFKC-folded (full-width ＋＋＋ from Chinese lab systems is +++)."""
    return " ".join(unicodedata.normalize("NFKC", s).strip().lower().split())


def value_texts(raw: dict) -> list[str]:
    """Human-readable value text: valueString, valueCodeableConcept text/display, interpretation text."""
    out: list[str] = []
    v = raw.get("valueString")
    if isinstance(v, str):
        out.append(v)
    cc = raw.get("valueCodeableConcept")
    if isinstance(cc, dict):
        if isinstance(cc.get("text"), str):
            out.append(cc["text"])
        for c in cc.get("coding") or ():
            if isinstance(c, dict) and isinstance(c.get("display"), str):
                out.append(c["display"])
    for interp in raw.get("interpretation") or ():
        if isinstance(interp, dict) and isinstance(interp.get("text"), str):
            out.append(interp["text"])
    return out


def qualitative(raw: dict, tx: Terminology, rd: Readings, *, viral_load: bool = False) -> tuple[str | None, str]:
    """(positive | negative | None, how it was read) for a qualitative test result."""
    value_codes = tx.codes(raw.get("valueCodeableConcept"))
    for code in value_codes:
        if code in rd.positive:
            return POSITIVE, f"positive ({tx.systems.name(code[0])} {code[1]})"
        if code in rd.negative:
            return NEGATIVE, f"negative ({tx.systems.name(code[0])} {code[1]})"
    for interp in raw.get("interpretation") or ():
        for code in tx.codes(interp):
            if code in rd.positive:
                return POSITIVE, f"positive (interpretation {code[1]})"
            if code in rd.negative:
                return NEGATIVE, f"negative (interpretation {code[1]})"
    for text in value_texts(raw):
        t = _norm_text(text)
        if t in rd.positive_strings:
            return POSITIVE, f"positive ('{text.strip()}')"
        if t in rd.negative_strings:
            return NEGATIVE, f"negative ('{text.strip()}')"
    q = raw.get("valueQuantity")
    if isinstance(q, dict) and isinstance(q.get("value"), (int, float)):
        shown = f"{q.get('comparator', '')}{q['value']} {q.get('unit') or q.get('code') or ''}".strip()
        if q.get("comparator") in ("<", "<="):
            return NEGATIVE, f"negative ({shown}, below the limit of detection)"
        if q["value"] == 0:
            return NEGATIVE, f"negative ({shown})"
        if viral_load and not q.get("comparator"):
            return (POSITIVE, f"positive ({shown})") if q["value"] > 0 else (None, shown)
        return None, f"{shown} (a number with no configured cut-off)"
    texts = value_texts(raw)
    return None, (f"'{texts[0].strip()}'" if texts else "no readable value")


_RANGE = re.compile(r"(?<![\d.])([0-9])\s*[-~–]\s*([0-9])\+")
_MULTI_DIGIT = re.compile(r"\d{2,}\+")
_GRADE_TOKEN = re.compile(r"\+\+\+\+?|\+\+|\(\+\)|\+/-|±|(?<![\d.])[0-9]\+|\+|(?<![\w-])-(?![\w-])")


def grade(raw: dict, grades: dict[str, str], readings: Readings | None = None) -> tuple[str | None, str]:
    """Map a semi-quantitative grade (`++`, `2+`, `±`, ...) to met / not-met through `grades`.

    `grades` maps a normalised grade text to "met" or "not-met". The whole value text is tried
    first, then a grade token inside it (e.g. "Positive (++)").
    """
    texts = value_texts(raw)
    for text in texts:
        t = _norm_text(text)
        if t in grades:
            return grades[t], f"'{text.strip()}'"
    for text in texts:
        norm = _RANGE.sub(lambda m: f"{m.group(1)}+ {m.group(2)}+", _norm_text(text))  # "1-2+" is both grades
        found = {grades[tok] for tok in _GRADE_TOKEN.findall(norm) if tok in grades}
        if _MULTI_DIGIT.search(norm):
            return None, f"'{text.strip()}' (not a grade this rule knows)"
        if len(found) == 1:
            return found.pop(), f"'{text.strip()}'"
        if len(found) > 1:  # "Ro52: -, MDA5: +++": which grade is MDA5's is not ours to guess
            return None, f"'{text.strip()}' (several different grades in one result)"
    if texts:
        return None, f"'{texts[0].strip()}' (no grade ++/+++ or -/±/+ recognised)"
    q = raw.get("valueQuantity")
    if isinstance(q, dict) and "value" in q:
        return None, f"{q.get('value')} {q.get('unit', '')} (a number with no configured cut-off)".rstrip()
    return None, "no readable value"


@dataclass(frozen=True)
class Number:
    value: float
    comparator: str | None
    unit: str | None


def number(raw: dict) -> Number | None:
    q = raw.get("valueQuantity")
    if not isinstance(q, dict) or not isinstance(q.get("value"), (int, float)) or isinstance(q.get("value"), bool):
        return None
    unit = q.get("code") or q.get("unit")
    return Number(float(q["value"]), q.get("comparator"), unit if isinstance(unit, str) else None)


def compare(n: Number, op: str, threshold: float) -> bool | None:
    """Is `n op threshold` true? None when a comparator (`<5`) leaves it undecided."""
    v, c, t = n.value, n.comparator, threshold
    if c is None:
        return {"<": v < t, "<=": v <= t, ">": v > t, ">=": v >= t}[op]
    if c in ("<", "<="):  # true value below v (or equal when <=)
        if op == "<":
            return True if (v <= t if c == "<" else v < t) else None
        if op == "<=":
            return True if v <= t else None
        if op == ">":
            return False if v <= t else None
        return False if (v <= t if c == "<" else v < t) else None  # op ">="
    if c in (">", ">="):  # true value above v (or equal when >=)
        if op == ">":
            return True if (v >= t if c == ">" else v > t) else None
        if op == ">=":
            return True if v >= t else None
        if op == "<":
            return False if v >= t else None
        return False if (v >= t if c == ">" else v > t) else None  # op "<="
    return None
