"""`gender`: Patient.gender is one of a list (absent counts as 'unknown'; a non-R4 code is unknown)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from fhir3t.criteria.base import KEEP_CURRENT, Builder, Kind, Label, Rule, code_word, text_arg
from fhir3t.criteria.model import Outcome
from fhir3t.logic import MET, NOT_MET, UNKNOWN
from fhir3t.messages import Message, Msg, many, reason
from fhir3t.messages.core import Text
from fhir3t.r4facts import r4_facts
from fhir3t.records.plan import Read, read

if TYPE_CHECKING:
    from fhir3t.criteria.context import Context, WindowSpec

NOT_R4 = Message("gender.not-r4", "Patient.gender is not an R4 gender code")
CORRECT_IT = Message("gender.correct-it", "correct it to decide")
PATIENT_UNREAD = Message("gender.patient-unread", "{record} {why}")
GENDER = Message("gender.is", "gender {gender}")
SEX_DIFFERS = Message("gender.sex-differs", "gender {gender}, but its {source} is {sex}")
SEX_UNREAD = Message("gender.sex-unread", "gender {gender}, but its {source} cannot be read")
CONFIRM_SEX = Message("gender.confirm-sex", "confirm which sex decides it")
COPIES_DIFFER = Message("gender.copies-differ", "{record} is held in copies that state different sexes, and neither "
                                                "meta.versionId nor meta.lastUpdated tells which is current")
DESCRIBE = Message("gender.describe", "gender is {genders}")


@dataclass
class Gender(Kind):
    genders: frozenset[str]
    label: Label = "sex"

    kind = "gender"
    params: ClassVar[dict[str, Any]] = {"in": {"type": "array", "minItems": 1, "items": {"enum": ["male", "female", "other", "unknown"]}}}
    required = ("in",)

    @classmethod
    def build(cls, spec: dict[str, Any], b: Builder) -> Rule:
        return cls(frozenset(spec["in"]), spec.get("label") or "sex")

    def reads(self) -> Iterable[Read]:
        yield read("Patient", None, "gender", "extension")

    def evaluate(self, ctx: Context) -> Outcome:
        raw = (ctx.record.patient or {}).get("gender")
        ev = (ctx.patient_ref,) if ctx.record.patient else ()
        if raw is not None and (not isinstance(raw, str) or raw not in (r4_facts().codes_of("Patient", "gender") or ())):
            return Outcome(UNKNOWN, ev, reason(NOT_R4(), CORRECT_IT()))
        if ctx.record.patient_why is not None:
            return Outcome(UNKNOWN, ev, reason(PATIENT_UNREAD(record=ctx.patient_ref, why=ctx.record.patient_why),
                                               CORRECT_IT()))
        if ctx.record.disputed & {"gender", "extension"}:
            return Outcome(UNKNOWN, ev, reason(COPIES_DIFFER(record=ctx.patient_ref), KEEP_CURRENT()))
        g = raw if isinstance(raw, str) and raw else "unknown"
        shown = code_word("gender", g)
        for source, sex in stated_sexes(ctx.record.patient or {}):
            if sex is _UNREAD:
                return Outcome(UNKNOWN, ev, reason(SEX_UNREAD(gender=shown, source=source), CONFIRM_SEX()))
            if (sex in self.genders) != (g in self.genders):  # the sexes the Patient states disagree on the answer
                return Outcome(UNKNOWN, ev, reason(SEX_DIFFERS(gender=shown, source=source, sex=code_word("gender", sex)),
                                                   CONFIRM_SEX()))
        return Outcome(MET if g in self.genders else NOT_MET, ev, reason(GENDER(gender=shown)))

    def describe(self, windows: Mapping[str, WindowSpec]) -> Msg:
        return DESCRIBE(genders=many((code_word("gender", g) for g in sorted(self.genders)), "or"))


_UNREAD = "?"


def stated_sexes(patient: dict) -> list[tuple[Text | None, str]]:
    """(extension name, R4 gender code, or "?" when its value cannot be read) of every sex a Patient states
    beside `gender` in an extension fhir3t knows (r4-facts.json `sex_extensions`); a code that says nothing
    (unknown, asked but declined) is left out."""
    known = r4_facts().sex_extensions
    exts = patient.get("extension")
    out: list[tuple[Text | None, str]] = []
    for ext in exts if isinstance(exts, list) else ():
        url = ext.get("url") if isinstance(ext, dict) else None
        spec = known.get(url) if isinstance(url, str) else None
        if spec is None:
            continue
        names, part, codes = spec
        name = text_arg(names)
        holder: object = ext
        if part:
            subs = ext.get("extension")
            holder = next((x for x in subs if isinstance(x, dict) and x.get("url") == part), None) \
                if isinstance(subs, list) else None
        found = _codes(holder) if isinstance(holder, dict) else []
        if not found:
            out.append((name, _UNREAD))
            continue
        for code in found:
            if code not in codes:
                out.append((name, _UNREAD))
            elif codes[code] is not None:
                out.append((name, str(codes[code])))
    return out


def _codes(ext: dict) -> list[str]:
    """The codes of an extension's value: valueCode, valueCoding, valueCodeableConcept's codings."""
    if isinstance(ext.get("valueCode"), str):
        return [ext["valueCode"]]
    coding = ext.get("valueCoding")
    codings = [coding] if isinstance(coding, dict) else []
    concept = ext.get("valueCodeableConcept")
    if isinstance(concept, dict) and isinstance(concept.get("coding"), list):
        codings += [c for c in concept["coding"] if isinstance(c, dict)]
    return [c["code"] for c in codings if isinstance(c.get("code"), str)]
