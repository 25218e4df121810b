"""Reading a lab result's value: positive/negative, a semi-quantitative grade, a number.

Which strings and codes mean what is data (the criteria file's `readings` and value sets);
this module only knows where in an Observation a value can sit.
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from fhir3t.messages import Message, Msg
from fhir3t.r4facts import r4_facts
from fhir3t.terminology import Terminology, ValueSet
from fhir3t.textnorm import clip, name_pattern

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
    #: interpretation codes and words that agree with a negative result (N, 'normal'): beside a negative
    #: result, an interpretation that is none of these, nor positive or negative, is not understood
    normal: ValueSet | None = None
    normal_strings: frozenset[str] = frozenset()
    #: words that, in a diagnosis's or finding's text, say it is suspected or ruled out ('疑似', '待排', 'rule out')
    hedge_words: frozenset[str] = frozenset()
    #: words that, in a diagnosis's text, say it may no longer be active ('已缓解', '病史', 'history of')
    inactive_words: frozenset[str] = frozenset()

    def hedge(self, folded_texts: tuple[str, ...] | list[str]) -> str | None:
        """The first hedge word found in already-folded texts, or None."""
        return _first(self.__dict__["_hedges"], folded_texts)

    def inactive(self, folded_texts: tuple[str, ...] | list[str]) -> str | None:
        """The first word saying a diagnosis may not be active found in already-folded texts, or None."""
        return _first(self.__dict__["_inactive"], folded_texts)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_hedges", name_pattern(self.hedge_words))
        object.__setattr__(self, "_inactive", name_pattern(self.inactive_words))
        phrases = sorted(self.positive_strings | self.negative_strings | self.indeterminate_strings, key=len, reverse=True)
        object.__setattr__(self, "_phrases", tuple(phrases))
        object.__setattr__(self, "_grade_phrases", tuple(sorted(
            {_norm_text(p) for p in (*phrases, *self.normal_strings)}, key=len, reverse=True)))
        markers = "|".join(re.escape(m) for m in sorted(self.reference_markers, key=len, reverse=True))
        object.__setattr__(self, "_reference", re.compile(
            rf"\(\s*(?:{markers})[^)]*\)|\[\s*(?:{markers})[^\]]*\]|(?:{markers})\s*:.*$") if markers else None)

    def strip_reference(self, folded: str) -> str:
        """The value without a reference range written beside it."""
        rx: re.Pattern[str] | None = self.__dict__["_reference"]
        return rx.sub(" ", folded).strip() if rx is not None else folded


def _first(rx: re.Pattern[str] | None, folded_texts: tuple[str, ...] | list[str]) -> str | None:
    if rx is None:
        return None
    for text in folded_texts:
        m = rx.search(text)
        if m:
            return m.group(0)
    return None


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


def absent_reason(raw: dict) -> str | None:
    """Why the result says it has no value, or None: `dataAbsentReason` (R4 obs-6: present only when
    `value[x]` is not, so a value beside it is not the result's), or the data-absent-reason extension on a
    primitive value (`_valueString`), or one of the extensions R4Facts.no_value_extensions lists (the ISO 21090
    null flavor a CDA or v2 converter writes) on the value or anywhere within it (`valueQuantity._value`, a
    coding of `valueCodeableConcept`). The code or text as written ("?" when neither)."""
    dar = raw.get("dataAbsentReason")
    if dar is not None:
        if isinstance(dar, dict):
            for c in dar.get("coding") or () if isinstance(dar.get("coding"), list) else ():
                if isinstance(c, dict) and isinstance(c.get("code"), str):
                    return c["code"]
            if isinstance(dar.get("text"), str):
                return dar["text"]
        return "?"
    facts = r4_facts()
    for k, v in raw.items():  # a no-value extension (data-absent-reason, a null flavor) on the value or within it
        if (k.startswith("_value") or (k.startswith("value") and isinstance(v, dict))) and isinstance(v, (dict, list)):
            why = facts.no_value(v)
            if why is not None:
                return why
    return None


def value_texts(raw: dict, shown: Callable[[dict], bool] | None = None) -> list[str]:
    """Human-readable value text: valueString, valueCodeableConcept text/display, interpretation text.
    `shown(coding)`: whether a coded value's display counts (default: every display)."""
    out: list[str] = []
    v = raw.get("valueString")
    if isinstance(v, str):
        out.append(v)
    cc = raw.get("valueCodeableConcept")
    if isinstance(cc, dict):
        if isinstance(cc.get("text"), str):
            out.append(cc["text"])
        for c in cc.get("coding") or () if isinstance(cc.get("coding"), list) else ():
            if isinstance(c, dict) and isinstance(c.get("display"), str) and (shown is None or shown(c)):
                out.append(c["display"])
    interps = raw.get("interpretation")
    for interp in interps if isinstance(interps, list) else [interps] if isinstance(interps, dict) else ():
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
GRADE_WORDS = Message("reading.grade-words", "'{text}' (its words and its grade disagree)")


DISAGREE = Message("reading.disagree", "{one} but {other}: the parts of the result disagree")
UNREAD_BESIDE = Message("reading.unread-beside", "{how}, but the result also says '{text}', which fhir3t does not "
                                               "read beside a negative result")
ODD_INTERPRETATION = Message("reading.odd-interpretation", "{how}, but interpreted '{code}', which fhir3t does not "
                                                           "understand beside a negative result")


def _interpretation_votes(raw: dict, tx: Terminology, rd: Readings) -> tuple[list[tuple[str, Msg]], str | None]:
    """(positive/negative readings of the interpretation codes, the first interpretation not understood).

    An interpretation is understood when one of its codings is positive, negative or normal (`rd.normal`), or,
    without such a coding, its text reads as a result or as normal. Its text is read with the value's texts."""
    votes: list[tuple[str, Msg]] = []
    odd: str | None = None
    interps = raw.get("interpretation")
    if interps is not None and not isinstance(interps, list):
        interps = [interps]  # one interpretation written without its array: still an interpretation
    for interp in interps or ():
        if not isinstance(interp, dict):
            odd = odd or "?"  # not a CodeableConcept: what it says cannot be read
            continue
        understood = False
        for code in tx.codes(interp):
            if code in rd.positive:
                votes.append((POSITIVE, POS_INTERP(code=code[1])))
                understood = True
            elif code in rd.negative:
                votes.append((NEGATIVE, NEG_INTERP(code=code[1])))
                understood = True
            elif rd.normal is not None and code in rd.normal:
                understood = True
        text = interp.get("text")
        if not understood and isinstance(text, str) and (
                read_words(text, rd) is not None or _norm_text(text) in rd.normal_strings):
            understood = True
        if not understood and odd is None:
            codings = [c for c in interp.get("coding") or () if isinstance(c, dict)] \
                if isinstance(interp.get("coding"), list) else []
            shown = next((c["code"] for c in codings if isinstance(c.get("code"), str)), None)
            shown = shown or (text.strip() if isinstance(text, str) and text.strip() else None)
            if shown is not None:
                odd = shown[:40]
            elif any(v not in (None, [], {}, "") for k, v in interp.items() if k != "id"):
                odd = "?"  # content fhir3t cannot read (a coding that is not a list, a code that is not a string)
    return votes, odd


#: a measurement written as text ('0.32', '<0.05 IU/mL', '5.6 S/CO'): the interpretation beside it says what it means
_MEASURE = re.compile(r"^\s*(?:<=|>=|<|>)?\s*\d+(?:\.\d+)?\s*(?:[a-z%/μµ*^0-9.]+(?:\s*/\s*[a-z0-9.]+)?)?\s*$", re.I)


def _own_texts(raw: dict, tx: Terminology, rd: Readings) -> list[str]:
    """The texts of a result a reader reads: `value_texts`, leaving out the display of a coded value whose code is
    read itself (a SNOMED CT Negative displayed 'Negative (qualifier value)')."""
    def unread(coding: dict) -> bool:
        return not any(code in rd.positive or code in rd.negative or (rd.normal is not None and code in rd.normal)
                       for code in tx.codes(coding))
    return value_texts(raw, unread)


def qualitative(raw: dict, tx: Terminology, rd: Readings, *, viral_load: bool = False) -> tuple[str | None, Msg]:
    """(positive | negative | None, how it was read) for a qualitative test result.

    Every part of the result that reads as positive or negative is read (coded value, interpretation codes,
    the value's and the interpretation's texts, a quantity below the limit of detection): they must agree. A
    negative result beside an interpretation fhir3t does not understand (A, H, a hospital's own flag) is not read."""
    votes: list[tuple[str, Msg]] = []
    for code in tx.codes(raw.get("valueCodeableConcept")):
        if code in rd.positive:
            votes.append((POSITIVE, POS_CODE(code=f"{tx.systems.name(code[0])} {code[1]}")))
        elif code in rd.negative:
            votes.append((NEGATIVE, NEG_CODE(code=f"{tx.systems.name(code[0])} {code[1]}")))
    interp_votes, odd = _interpretation_votes(raw, tx, rd)
    votes += interp_votes
    unread: str | None = None  # a text of the result fhir3t cannot read ('待复查', '阳性待确认', '可疑')
    for text in _own_texts(raw, tx, rd):
        word = read_words(text, rd)
        if word is not None:
            votes.append((word, (POS_TEXT if word == POSITIVE else NEG_TEXT)(text=text.strip())))
        elif unread is None and text.strip() and not _MEASURE.match(unicodedata.normalize("NFKC", text)) \
                and _norm_text(text) not in rd.normal_strings:
            unread = text.strip()
    undecided: Msg | None = None
    q = raw.get("valueQuantity")
    if isinstance(q, dict) and isinstance(q.get("value"), (int, float)) and not isinstance(q.get("value"), bool):
        shown = f"{q.get('comparator', '')}{q['value']} {q.get('unit') or q.get('code') or ''}".strip()
        if q.get("comparator") in ("<", "<="):
            votes.append((NEGATIVE, NEG_BELOW(value=shown)))
        elif q["value"] == 0 and q.get("comparator") is None:  # '>0', 'ad 0' or a comparator R4 lacks say no zero
            votes.append((NEGATIVE, NEG_VALUE(value=shown)))
        elif viral_load and not q.get("comparator") and q["value"] > 0:
            votes.append((POSITIVE, POS_VALUE(value=shown)))
        else:
            undecided = AS_IS(value=shown) if viral_load and not q.get("comparator") else NO_CUTOFF(value=shown)
    if votes:
        value, how = votes[0]
        other = next((h for v, h in votes if v != value), None)
        if other is not None:
            return None, DISAGREE(one=how, other=other)
        if value == NEGATIVE and odd is not None:
            return None, ODD_INTERPRETATION(how=how, code=odd)
        if value == NEGATIVE and unread is not None:
            return None, UNREAD_BESIDE(how=how, text=clip(unread, 40))
        return value, how
    if undecided is not None:
        return None, undecided
    texts = value_texts(raw)
    return None, (QUOTED(text=texts[0].strip()) if texts else NO_VALUE())


_RANGE = re.compile(r"(?<![\d.])([0-9])\s*[-~–]\s*([0-9])\+")
_MULTI_DIGIT = re.compile(r"\d{2,}\+")
_GRADE_TOKEN = re.compile(r"\+\+\+\+?|\+\+|\(\+\)|\+/-|±|(?<![\d.])[0-9]\+|\+|(?<![\w-])-(?![\w-])")


def grade(raw: dict, grades: dict[str, str], readings: Readings | None = None,
          tx: Terminology | None = None) -> tuple[str | None, Msg]:
    """Map a semi-quantitative grade (`++`, `2+`, `±`, ...) to met / not-met through `grades`.

    `grades` maps a normalised grade text to "met" or "not-met". The whole value text is tried
    first, then a grade token inside it (e.g. "Positive (++)"). A grade that meets is not read when a
    coded part of the same result says negative or normal (a valueCodeableConcept coded Negative whose
    text is '+++', an interpretation NEG or N).
    """
    value, how = _grade(raw, grades, readings)
    if value == "met" and readings is not None and tx is not None:
        against = _coded_against(raw, tx, readings)
        if against is not None:
            return None, DISAGREE(one=how, other=against)
    return value, how


def _coded_against(raw: dict, tx: Terminology, rd: Readings) -> Msg | None:
    """How a coded part of the result reads as negative or normal, or None."""
    for code in tx.codes(raw.get("valueCodeableConcept")):
        if code in rd.negative:
            return NEG_CODE(code=f"{tx.systems.name(code[0])} {code[1]}")
    interps = raw.get("interpretation")
    for interp in interps if isinstance(interps, list) else [interps]:
        for code in tx.codes(interp) if isinstance(interp, dict) else ():
            if code in rd.negative or (rd.normal is not None and code in rd.normal):
                return NEG_INTERP(code=code[1])
    return None


_PLUS_MINUS = re.compile(r"(?<![+\-])\+-(?![+\-\w])")
_GRADE_SIGNS = {"-": NEGATIVE, "±": "?", "+/-": "?"}  # any other grade sign (+, (+), 2+, +++) says positive


def _grade_text(text: str, grades: dict[str, str], rd: Readings | None) -> tuple[set[str], set[str]] | None:
    """(the grades, the polarities) one text of a result states, or None when a part of it is neither a grade
    sign, a word of the readings (positive, negative, indeterminate, normal), a titer nor punctuation: '+++ 待复查'
    (pending recheck), '疑似+++' (suspected), '+++?' are not read. A reference range written beside it is set aside."""
    t = _norm_text(text)
    if t in grades:
        return {grades[t]}, set()
    folded = rd.strip_reference(t) if rd is not None else t
    if folded in grades:
        return {grades[folded]}, set()
    norm = _RANGE.sub(lambda m: f"{m.group(1)}+ {m.group(2)}+", folded)  # "1-2+" is both grades
    norm = _PLUS_MINUS.sub("±", norm)  # '+-' is how many lab systems type ±
    if _MULTI_DIGIT.search(norm):
        return None
    phrases: tuple[str, ...] = rd.__dict__["_grade_phrases"] if rd is not None else ()
    found: set[str] = set()
    said: set[str] = set()
    i, n = 0, len(norm)
    while i < n:
        m = _GRADE_TOKEN.match(norm, i)
        if m:
            tok = m.group(0)
            if tok not in grades:
                return None  # a sign this rule has no grade for ('5+')
            found.add(grades[tok])
            said.add(_GRADE_SIGNS.get(tok, POSITIVE))
            i = m.end()
            continue
        m = _FILLER.match(norm, i) or _TITER.match(norm, i)
        if m:
            i = m.end()
            continue
        assert rd is not None or not phrases
        hit = next((p for p in phrases if norm.startswith(p, i) and not (
            _LATIN.match(p[-1]) and i + len(p) < n and _LATIN.match(norm[i + len(p)]))
            and not (_LATIN.match(p[0]) and i > 0 and _LATIN.match(norm[i - 1]))), None)
        if hit is None:
            return None
        if hit in grades:
            found.add(grades[hit])
        assert rd is not None
        said.add(POSITIVE if hit in rd.positive_strings else NEGATIVE if hit in rd.negative_strings
                 else "normal" if hit in rd.normal_strings else "?")
        i += len(hit)
    return found, said


def _agrees(value: str, said: set[str]) -> bool:
    """Do the words and signs of a result agree with the grade read from it? A grade that meets is a positive
    result: nothing beside it may say negative, normal or indeterminate. One that does not meet may be a weak
    positive ('阳性(+)') or a negative ('阴性(-)'), not both."""
    if value == "met":
        return said <= {POSITIVE}
    return not (POSITIVE in said and said & {NEGATIVE, "normal"})


def _grade(raw: dict, grades: dict[str, str], readings: Readings | None) -> tuple[str | None, Msg]:
    """Every text of the result (its value, its coded value's text and displays, its interpretations' texts) is
    read whole: one that is not understood, grades that differ, or words that say otherwise leave it unread."""
    texts = [text for text in value_texts(raw) if text.strip()]
    values: set[str] = set()
    said: set[str] = set()
    shown: str | None = None
    for text in texts:
        parts = _grade_text(text, grades, readings)
        if parts is None:
            return None, UNKNOWN_GRADE(text=text.strip())
        found, words = parts
        if len(found) > 1:  # "Ro52: -, <target>: +++": which grade is the target's is not ours to guess
            return None, SEVERAL_GRADES(text=text.strip())
        if found and values and found != values:
            return None, DISAGREE(one=QUOTED(text=shown), other=QUOTED(text=text.strip()))
        if found and not _agrees(next(iter(found)), words):
            return None, GRADE_WORDS(text=text.strip())
        if found and shown is None:
            shown = text.strip()
        values |= found
        said |= words
    if values:
        value = values.pop()
        if not _agrees(value, said):
            other = next(t.strip() for t in texts if t.strip() != shown)
            return None, DISAGREE(one=QUOTED(text=shown), other=QUOTED(text=other))
        return value, QUOTED(text=shown)
    if texts:
        return None, NO_GRADE(text=texts[0].strip())
    q = raw.get("valueQuantity")
    if isinstance(q, dict) and "value" in q:
        return None, NO_CUTOFF(value=f"{q.get('value')} {q.get('unit', '')}".rstrip())
    return None, NO_VALUE()


#: the system of UCUM unit codes (a Quantity's code in another system is a code fhir3t does not know)
UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True)
class Number:
    value: float
    comparator: str | None
    unit: str | None
    #: every spelling of the unit the result gives, whitespace-normalised: its UCUM code, its unit text (a code of
    #: another system as 'code (system)'). A rule reads the value only when all of them mean the unit it expects.
    spellings: tuple[str, ...] = ()


_NUMBER_TEXT = re.compile(r"^\s*(<=|>=|<|>)?\s*(\d+(?:\.\d+)?)\s*([^\d\s].*)?$")


def number(raw: dict) -> Number | None:
    """A numeric result: valueQuantity, or a valueString that is only a number and a unit ("62%")."""
    text = raw.get("valueString")
    if isinstance(text, str) and "valueQuantity" not in raw:
        m = _NUMBER_TEXT.match(unicodedata.normalize("NFKC", text))
        if m:
            unit = " ".join(m.group(3).split()) if m.group(3) else None
            return Number(float(m.group(2)), m.group(1), unit, (unit,) if unit else ())
        return None
    q = raw.get("valueQuantity")
    if not isinstance(q, dict) or not isinstance(q.get("value"), (int, float)) or isinstance(q.get("value"), bool) \
            or not math.isfinite(q["value"]):
        return None
    spellings: list[str] = []
    code, unit_text, system = q.get("code"), q.get("unit"), q.get("system")
    for written in (code, unit_text, system):
        if written is not None and not isinstance(written, str):
            spellings.append("?")  # a unit that is not text: not one the rule expects
    if isinstance(code, str) and code.strip():
        code = " ".join(code.split())
        spellings.append(code if system is None or system == UCUM else f"{code} ({system})")
    if isinstance(unit_text, str) and unit_text.strip() and " ".join(unit_text.split()) not in spellings:
        spellings.append(" ".join(unit_text.split()))
    return Number(float(q["value"]), q.get("comparator"), spellings[0] if spellings else None, tuple(spellings))


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
