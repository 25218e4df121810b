"""Reading a lab result's value: positive/negative, a semi-quantitative grade, a number.

Which strings and codes mean what is data (the criteria file's `readings` and value sets);
this module only knows where in an Observation a value can sit.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from fhir3t.messages import Message, Msg
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
    #: words that open a reference range written beside the value ("阳性 (参考值: 阴性)")
    reference_markers: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        phrases = sorted(self.positive_strings | self.negative_strings | self.indeterminate_strings, key=len, reverse=True)
        object.__setattr__(self, "_phrases", tuple(phrases))
        markers = "|".join(re.escape(m) for m in sorted(self.reference_markers, key=len, reverse=True))
        object.__setattr__(self, "_reference", re.compile(
            rf"\(\s*(?:{markers})[^)]*\)|\[\s*(?:{markers})[^\]]*\]|(?:{markers})\s*:.*$") if markers else None)

    def strip_reference(self, folded: str) -> str:
        """The value without a reference range written beside it."""
        rx: re.Pattern[str] | None = self.__dict__["_reference"]
        return rx.sub(" ", folded).strip() if rx is not None else folded


def _norm_text(s: str) -> str:
    """Lower-case, single-spaced, and NFKC-folded (full-width ＋＋＋ from Chinese lab systems is +++)."""
    return " ".join(unicodedata.normalize("NFKC", s).strip().lower().split())


_SIGN = re.compile(r"\(\+\)|\(-\)|\+/-|±|\+{1,4}|[0-4]\+|-")
_TITER = re.compile(r"\d+\s*:\s*\d+")
_FILLER = re.compile(r"[\s,;:()\[\]/、。]+")
_LATIN = re.compile(r"[a-z0-9]")


def read_words(text: str, rd: Readings) -> str | None:
    """positive | negative | None from a result written in words and signs ("阳性(+)", "阴性 (参考值: 阴性)",
    "1:320 阳性", "weakly positive"): every part of the text must be understood and all must agree."""
    t = rd.strip_reference(_norm_text(text))
    phrases: tuple[str, ...] = rd.__dict__["_phrases"]
    seen: set[str] = set()
    i, n = 0, len(t)
    while i < n:
        m = _FILLER.match(t, i) or _TITER.match(t, i)
        if m:
            i = m.end()
            continue
        hit = next((p for p in phrases if t.startswith(p, i) and not (
            _LATIN.match(p[-1]) and i + len(p) < n and _LATIN.match(t[i + len(p)]))
            and not (_LATIN.match(p[0]) and i > 0 and _LATIN.match(t[i - 1]))), None)
        if hit is not None:
            seen.add(POSITIVE if hit in rd.positive_strings else NEGATIVE if hit in rd.negative_strings else "?")
            i += len(hit)
            continue
        m = _SIGN.match(t, i)
        if m:
            tok = m.group(0)
            seen.add("?" if tok in ("±", "+/-") else NEGATIVE if tok in ("-", "(-)") else POSITIVE)
            i = m.end()
            continue
        return None  # a word fhir3t does not know: the result is not read
    return seen.pop() if len(seen) == 1 and "?" not in seen else None


#: the R4 extension that says why a primitive value is missing (on `_valueString` and the like)
DATA_ABSENT_EXTENSION = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


def absent_reason(raw: dict) -> str | None:
    """Why the result says it has no value, or None: `dataAbsentReason` (R4 obs-6: present only when
    `value[x]` is not, so a value beside it is not the result's), or the data-absent-reason extension on a
    primitive value (`_valueString`). The code or text as written ("?" when neither)."""
    dar = raw.get("dataAbsentReason")
    if dar is not None:
        if isinstance(dar, dict):
            for c in dar.get("coding") or () if isinstance(dar.get("coding"), list) else ():
                if isinstance(c, dict) and isinstance(c.get("code"), str):
                    return c["code"]
            if isinstance(dar.get("text"), str):
                return dar["text"]
        return "?"
    for k, v in raw.items():
        if k.startswith("_value") and isinstance(v, dict) and isinstance(v.get("extension"), list):
            for ext in v["extension"]:
                if isinstance(ext, dict) and ext.get("url") == DATA_ABSENT_EXTENSION:
                    code = ext.get("valueCode")
                    return code if isinstance(code, str) else "?"
    return None


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

POS_CODE = Message("reading.pos-code", "positive ({code})")
NEG_CODE = Message("reading.neg-code", "negative ({code})")
POS_INTERP = Message("reading.pos-interp", "positive (interpretation {code})")
NEG_INTERP = Message("reading.neg-interp", "negative (interpretation {code})")
POS_TEXT = Message("reading.pos-text", "positive ('{text}')")
NEG_TEXT = Message("reading.neg-text", "negative ('{text}')")
NEG_BELOW = Message("reading.neg-below", "negative ({value}, below the limit of detection)")
NEG_VALUE = Message("reading.neg-value", "negative ({value})")
POS_VALUE = Message("reading.pos-value", "positive ({value})")
AS_IS = Message("reading.as-is", "{value}")
NO_CUTOFF = Message("reading.no-cutoff", "{value} (a number with no configured cut-off)")
QUOTED = Message("reading.quoted", "'{text}'")
NO_VALUE = Message("reading.no-value", "no readable value")
UNKNOWN_GRADE = Message("reading.unknown-grade", "'{text}' (not a grade this rule knows)")
SEVERAL_GRADES = Message("reading.several-grades", "'{text}' (several different grades in one result)")
NO_GRADE = Message("reading.no-grade", "'{text}' (no grade ++/+++ or -/±/+ recognised)")


def qualitative(raw: dict, tx: Terminology, rd: Readings, *, viral_load: bool = False) -> tuple[str | None, Msg]:
    """(positive | negative | None, how it was read) for a qualitative test result."""
    value_codes = tx.codes(raw.get("valueCodeableConcept"))
    for code in value_codes:
        if code in rd.positive:
            return POSITIVE, POS_CODE(code=f"{tx.systems.name(code[0])} {code[1]}")
        if code in rd.negative:
            return NEGATIVE, NEG_CODE(code=f"{tx.systems.name(code[0])} {code[1]}")
    for interp in raw.get("interpretation") or ():
        for code in tx.codes(interp):
            if code in rd.positive:
                return POSITIVE, POS_INTERP(code=code[1])
            if code in rd.negative:
                return NEGATIVE, NEG_INTERP(code=code[1])
    for text in value_texts(raw):
        word = read_words(text, rd)
        if word is not None:
            return word, (POS_TEXT if word == POSITIVE else NEG_TEXT)(text=text.strip())
    q = raw.get("valueQuantity")
    if isinstance(q, dict) and isinstance(q.get("value"), (int, float)):
        shown = f"{q.get('comparator', '')}{q['value']} {q.get('unit') or q.get('code') or ''}".strip()
        if q.get("comparator") in ("<", "<="):
            return NEGATIVE, NEG_BELOW(value=shown)
        if q["value"] == 0:
            return NEGATIVE, NEG_VALUE(value=shown)
        if viral_load and not q.get("comparator"):
            return (POSITIVE, POS_VALUE(value=shown)) if q["value"] > 0 else (None, AS_IS(value=shown))
        return None, NO_CUTOFF(value=shown)
    texts = value_texts(raw)
    return None, (QUOTED(text=texts[0].strip()) if texts else NO_VALUE())


_RANGE = re.compile(r"(?<![\d.])([0-9])\s*[-~–]\s*([0-9])\+")
_MULTI_DIGIT = re.compile(r"\d{2,}\+")
_GRADE_TOKEN = re.compile(r"\+\+\+\+?|\+\+|\(\+\)|\+/-|±|(?<![\d.])[0-9]\+|\+|(?<![\w-])-(?![\w-])")


def grade(raw: dict, grades: dict[str, str], readings: Readings | None = None) -> tuple[str | None, Msg]:
    """Map a semi-quantitative grade (`++`, `2+`, `±`, ...) to met / not-met through `grades`.

    `grades` maps a normalised grade text to "met" or "not-met". The whole value text is tried
    first, then a grade token inside it (e.g. "Positive (++)").
    """
    texts = value_texts(raw)
    for text in texts:
        t = _norm_text(text)
        if t in grades:
            return grades[t], QUOTED(text=text.strip())
    for text in texts:
        folded = readings.strip_reference(_norm_text(text)) if readings is not None else _norm_text(text)
        if folded in grades:
            return grades[folded], QUOTED(text=text.strip())
        norm = _RANGE.sub(lambda m: f"{m.group(1)}+ {m.group(2)}+", folded)  # "1-2+" is both grades
        found = {grades[tok] for tok in _GRADE_TOKEN.findall(norm) if tok in grades}
        if _MULTI_DIGIT.search(norm):
            return None, UNKNOWN_GRADE(text=text.strip())
        if len(found) == 1:
            return found.pop(), QUOTED(text=text.strip())
        if len(found) > 1:  # "Ro52: -, <target>: +++": which grade is the target's is not ours to guess
            return None, SEVERAL_GRADES(text=text.strip())
    if texts:
        return None, NO_GRADE(text=texts[0].strip())
    q = raw.get("valueQuantity")
    if isinstance(q, dict) and "value" in q:
        return None, NO_CUTOFF(value=f"{q.get('value')} {q.get('unit', '')}".rstrip())
    return None, NO_VALUE()


@dataclass(frozen=True)
class Number:
    value: float
    comparator: str | None
    unit: str | None


_NUMBER_TEXT = re.compile(r"^\s*(<=|>=|<|>)?\s*(\d+(?:\.\d+)?)\s*([^\d\s].*)?$")


def number(raw: dict) -> Number | None:
    """A numeric result: valueQuantity, or a valueString that is only a number and a unit ("62%")."""
    text = raw.get("valueString")
    if isinstance(text, str) and "valueQuantity" not in raw:
        m = _NUMBER_TEXT.match(unicodedata.normalize("NFKC", text))
        if m:
            unit = " ".join(m.group(3).split()) if m.group(3) else None
            return Number(float(m.group(2)), m.group(1), unit)
        return None
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
