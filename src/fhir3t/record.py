"""One patient's resources, cleaned and indexed for the criteria (no I/O here).

Resources that never count (entered-in-error, refuted, not-taken, not-done, cancelled
observations) are dropped when the record is built, so no rule can forget to skip them.
Each kept resource is wrapped in a `Res` with its normalised codes and its clinical date
computed once.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fhir3t.dates import Span, parse_date
from fhir3t.errors import Problems
from fhir3t.jsonshape import child_text, items
from fhir3t.terminology import Code, Terminology

#: Where each resource type points at its patient (first present wins).
PATIENT_FIELDS: dict[str, tuple[str, ...]] = {
    "AllergyIntolerance": ("patient",),
    "Immunization": ("patient",),
    "ImmunizationRecommendation": ("patient",),
    "Consent": ("patient",),
    "ResearchSubject": ("individual",),
    "Coverage": ("beneficiary",),
}
DEFAULT_PATIENT_FIELDS = ("subject", "patient", "individual")

#: Resource types that belong to no patient but that patient resources point at.
SHARED_TYPES = frozenset({"Medication", "ResearchStudy"})

MED_TYPES = ("MedicationStatement", "MedicationRequest", "MedicationAdministration")

#: Types whose absence decides exclusions (the EHR is taken as complete): one whose code fhir3t
#: cannot read (text only, no system, unknown system, unresolvable drug) must not count as absent.
MUST_BE_CODED = frozenset({"Condition", "AllergyIntolerance", *MED_TYPES})

#: The element holding a resource type's main code.
CODE_FIELD: dict[str, str] = {
    "Observation": "code",
    "DiagnosticReport": "code",
    "Condition": "code",
    "AllergyIntolerance": "code",
    "Immunization": "vaccineCode",
    "Procedure": "code",
}

_OBS_COUNTS = frozenset({"final", "amended", "corrected", "preliminary"})


def _first_date(raw: dict, *fields: str) -> str | None:
    for f in fields:
        v = raw.get(f)
        if isinstance(v, str):
            return v
        if isinstance(v, dict) and isinstance(v.get("start"), str):  # Period
            return v["start"]
    return None


#: The date that decides windows and the as-of cut-off, by type (eligibility spec §1).
DATE_FIELDS: dict[str, tuple[str, ...]] = {
    "Observation": ("effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued"),
    "DiagnosticReport": ("effectiveDateTime", "effectivePeriod", "issued"),
    "Condition": ("onsetDateTime", "onsetPeriod", "recordedDate"),
    "AllergyIntolerance": ("onsetDateTime", "onsetPeriod", "recordedDate"),
    "Immunization": ("occurrenceDateTime",),
    "ImmunizationRecommendation": ("date",),
    "MedicationStatement": ("effectiveDateTime", "effectivePeriod", "dateAsserted"),
    "MedicationRequest": ("authoredOn",),
    "MedicationAdministration": ("effectiveDateTime", "effectivePeriod"),
    "QuestionnaireResponse": ("authored",),
    "Consent": ("dateTime",),
    "ResearchSubject": ("period",),
    "AdverseEvent": ("date", "detected", "recordedDate"),
    "Encounter": ("period",),
    "Procedure": ("performedDateTime", "performedPeriod"),
}


def never_counts(rtype: str, raw: dict) -> bool:
    """True for resources the spec says never count."""
    status = raw.get("status")
    if not isinstance(status, str):
        status = None
    if status == "entered-in-error":
        return True
    if rtype == "Observation":
        return status not in _OBS_COUNTS
    if rtype in ("Condition", "AllergyIntolerance"):
        vs = status_code(raw.get("verificationStatus"))
        return vs in ("refuted", "entered-in-error")
    if rtype == "MedicationStatement":
        return status == "not-taken"
    if rtype in ("Immunization", "MedicationAdministration"):
        return status == "not-done"
    if rtype == "MedicationRequest":
        return status == "cancelled" or raw.get("doNotPerform") is True
    if rtype == "DiagnosticReport":
        return status == "cancelled"
    return False


def status_code(concept: object) -> str | None:
    """The code of a status CodeableConcept (clinicalStatus, verificationStatus).

    The HL7 coding wins over local ones listed before it (a local "R" must not hide "refuted").
    """
    if not isinstance(concept, dict) or not isinstance(concept.get("coding"), list):
        return None
    first = None
    for c in concept["coding"]:
        if isinstance(c, dict) and isinstance(c.get("code"), str):
            system = c.get("system")
            if isinstance(system, str) and system.startswith("http://terminology.hl7.org/CodeSystem/"):
                return c["code"]
            first = first or c["code"]
    return first


@dataclass(slots=True)
class Res:
    """A kept resource: the raw JSON plus what every rule asks of it, computed once."""

    type: str
    raw: dict
    ref: str
    codes: tuple[Code, ...]
    span: Span | None
    where: str
    date_text: str | None = None

    def dated_after(self, day) -> bool:
        return self.span is not None and self.span.lo > day


@dataclass
class PatientRecord:
    key: str  # "Patient/<id>" (or the urn:uuid fullUrl of an id-less Patient)
    patient: dict | None
    by_type: dict[str, list[Res]] = field(default_factory=dict)
    index: dict[str, Res] = field(default_factory=dict)
    source: str = ""
    #: resources of MUST_BE_CODED types whose code could not be read, by type
    uncoded: dict[str, list[Res]] = field(default_factory=dict)
    _code_index: dict[str, dict[Code, list[Res]]] = field(default_factory=dict, repr=False)

    def of(self, *types: str) -> list[Res]:
        if len(types) == 1:
            return self.by_type.get(types[0], [])
        out: list[Res] = []
        for t in types:
            out.extend(self.by_type.get(t, []))
        return out

    def resolve(self, reference: str | None) -> Res | None:
        return self.index.get(reference) if reference else None

    def code_index(self, rtype: str) -> dict[Code, list[Res]]:
        """Resources of a type by each of their codes (built on first use)."""
        idx = self._code_index.get(rtype)
        if idx is None:
            idx = {}
            for r in self.by_type.get(rtype, ()):
                for c in r.codes:
                    idx.setdefault(c, []).append(r)
            self._code_index[rtype] = idx
        return idx


@dataclass
class RawRecord:
    """What a source hands over: one patient's resources and how to resolve references."""

    key: str
    resources: list[tuple[dict, str]]  # (resource, where) where = "file#entry[3]" or "file:12"
    source: str
    resolve: Callable[[str], dict | None] = lambda ref: None
    aliases: dict[str, str] = field(default_factory=dict)  # fullUrl -> "Type/id"


#: keep(resource type, codes) -> bool: lets the caller (criteria, safety) drop what it never reads.
Keep = Callable[[str, tuple[Code, ...]], bool]


class RecordBuilder:
    """Turns a RawRecord into a PatientRecord, keeping only what `keep` wants.

    `types`, when given, is the set of resource types `keep` can ever accept: others are
    dropped before their codes are even looked at (most of a real record).
    """

    def __init__(self, tx: Terminology, problems: Problems, keep: Keep | None = None,
                 types: frozenset[str] | None = None) -> None:
        self.tx = tx
        self.problems = problems
        self.keep = keep
        self.types = types

    def build(self, raw: RawRecord) -> PatientRecord:
        rec = PatientRecord(raw.key, None, source=raw.source)
        raw.resolve = _with_own(raw)
        url_of_loc = {loc: url for url, loc in raw.aliases.items()}  # id-less entries: fullUrl names them
        types = self.types
        for resource, where in raw.resources:
            rtype = resource["resourceType"]
            if rtype == "Patient":
                if rec.patient is None:
                    rec.patient = resource
                continue
            if (types is not None and rtype not in types) or never_counts(rtype, resource):
                continue
            codes = self._codes(rtype, resource, raw, where)
            unreadable = rtype in MUST_BE_CODED and not self.tx.systems.readable_for(rtype, codes)
            if self.keep is not None and not self.keep(rtype, codes) and not unreadable:
                continue
            span, text = self._date(rtype, resource, where)
            ref = f"{rtype}/{resource['id']}" if isinstance(resource.get("id"), str) else url_of_loc.get(where, where)
            if unreadable:
                rec.uncoded.setdefault(rtype, []).append(Res(rtype, resource, ref, codes, span, where, text))
                continue
            res = Res(rtype, resource, ref, codes, span, where, text)
            rec.by_type.setdefault(rtype, []).append(res)
            rec.index[ref] = res
        for full_url, ref in raw.aliases.items():
            if ref in rec.index:
                rec.index[full_url] = rec.index[ref]
        return rec

    def _codes(self, rtype: str, resource: dict, raw: RawRecord, where: str) -> tuple[Code, ...]:
        if rtype in MED_TYPES:
            concept = medication_concept(resource, raw.resolve)
            if concept is None and isinstance(resource.get("medicationReference"), dict):
                self.problems.add(where, f"{rtype}.medicationReference "
                                  f"{resource['medicationReference'].get('reference')!r} does not resolve: drug unknown",
                                  skipped=False)
        elif rtype == "AdverseEvent":
            return self._suspect_codes(resource, raw)
        else:
            f = CODE_FIELD.get(rtype)
            concept = resource.get(f) if f else None
        codes = self.tx.codes(concept) if concept is not None else ()
        if concept is not None and (not codes or all(not self.tx.systems.known(s) for s, _ in codes)):
            report_unknown_systems(self.tx, self.problems, concept, where)
        if rtype in MUST_BE_CODED and not self.tx.systems.readable_for(rtype, codes) and \
                (concept is None or not self.tx.unknown_systems(concept)):
            self.problems.add(where, f"{rtype} has no code fhir3t can read ({describe_concept(concept)}): "
                                     "criteria that rely on it are left unknown until it is coded", skipped=False)
        return codes

    def _suspect_codes(self, resource: dict, raw: RawRecord) -> tuple[Code, ...]:
        """An AdverseEvent's codes are those of its suspected drugs (what E1 asks about)."""
        out: list[Code] = []
        for suspect in resource.get("suspectEntity") or ():
            ref = (suspect.get("instance") or {}).get("reference") if isinstance(suspect, dict) else None
            if not isinstance(ref, str):
                continue
            target = None
            if ref.startswith("#"):
                target = next((c for c in resource.get("contained") or () if c.get("id") == ref[1:]), None)
            else:
                target = raw.resolve(ref)
            if not target:
                continue
            if target.get("resourceType") in MED_TYPES:
                concept = medication_concept(target, raw.resolve)
            else:
                concept = target.get("code")
            out.extend(self.tx.codes(concept))
        return tuple(out)

    def _date(self, rtype: str, resource: dict, where: str) -> tuple[Span | None, str | None]:
        fields = DATE_FIELDS.get(rtype)
        if not fields:
            return None, None
        text = _first_date(resource, *fields)
        if text is None:
            return None, None
        try:
            return parse_date(text), text
        except ValueError:
            self.problems.add(where, f"unparseable date {text!r} in {rtype}: treated as undated")
            return None, text


def describe_concept(concept: object) -> str:
    """What a coordinator sees of an unreadable code: its text, or why it cannot be read."""
    if not isinstance(concept, dict):
        return "no code"
    text = (child_text(concept, "text") or "").strip()[:60]
    codings = items(concept.get("coding"))
    systems = sorted({c["system"] for c in codings if isinstance(c, dict) and isinstance(c.get("system"), str)})
    label = f" '{text}'" if text else ""
    if systems:
        return f"coded only in {', '.join(systems)}{label}"
    if any(isinstance(c, dict) and "code" in c for c in codings):
        return f"a coding without a system{label}"
    return f"text only:{label}" if text else "no usable coding"


def report_unknown_systems(tx: Terminology, problems: Problems, concept: object, where: str) -> None:
    """Say once per code system that its codes cannot match (a ConceptMap would fix it)."""
    for system in tx.unknown_systems(concept):
        problems.once(
            f"system:{system}", where,
            f"code system {system} is unknown to fhir3t: its codes cannot match any "
            "criterion (supply a --concept-map that translates it)",
        )


def main_concept(rtype: str, resource: dict, resolve: Callable[[str], dict | None]) -> object:
    """The CodeableConcept that names what a resource is about (its code, drug or vaccine)."""
    if rtype in MED_TYPES:
        return medication_concept(resource, resolve)
    f = CODE_FIELD.get(rtype)
    return resource.get(f) if f else None


def _with_own(raw: RawRecord) -> Callable[[str], dict | None]:
    """Resolve references against the record's own resources too (built only if needed)."""
    outer = raw.resolve
    own: dict[str, dict] | None = None

    def resolve(ref: str) -> dict | None:
        nonlocal own
        hit = outer(ref)
        if hit is not None:
            return hit
        if own is None:
            own = {f"{r['resourceType']}/{r['id']}": r for r, _ in raw.resources if isinstance(r.get("id"), str)}
        return own.get(ref)

    return resolve


def medication_concept(resource: dict, resolve: Callable[[str], dict | None]) -> dict | None:
    """The drug of a medication record: inline, contained Medication, or referenced Medication."""
    cc = resource.get("medicationCodeableConcept")
    if isinstance(cc, dict):
        return cc
    ref = resource.get("medicationReference")
    if not isinstance(ref, dict) or not isinstance(ref.get("reference"), str):
        return None
    target = ref["reference"]
    if target.startswith("#"):
        for c in resource.get("contained") or ():
            if isinstance(c, dict) and c.get("id") == target[1:]:
                return c.get("code")
        return None
    med = resolve(target)
    return med.get("code") if med else None


def patient_reference(resource: dict) -> str | None:
    """The reference string by which a resource names its patient, as written."""
    for f in PATIENT_FIELDS.get(resource["resourceType"], DEFAULT_PATIENT_FIELDS):
        v = resource.get(f)
        if isinstance(v, dict) and isinstance(v.get("reference"), str):
            return v["reference"]
    return None


def span_of(value: object) -> Span | None:
    """Parse a FHIR date leniently (None for absent or unparseable)."""
    if not isinstance(value, str):
        return None
    try:
        return parse_date(value)
    except ValueError:
        return None
