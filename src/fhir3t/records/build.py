"""Turn a source's RawRecord into the PatientRecord the rules read.

Resources that never count (entered-in-error, refuted, not-taken, cancelled results, ...) are
dropped here, so no rule can forget to skip them. A value the rules would interpret but fhir3t does
not understand (a status that is not an R4 code, a code that cannot be read) does not drop the
resource: it goes to `PatientRecord.unread`, where it keeps the rules that read it from calling it
absent. Panels are read too: each component of an Observation is a result of its own, and the
Observations a DiagnosticReport or a panel points at are adopted even when they name no patient.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import orjson

from fhir3t.dates import Span, parse_date, plausible
from fhir3t.errors import Problems
from fhir3t.messages import Message, Msg, many, table
from fhir3t.r4facts import R4Facts, r4_facts
from fhir3t.records.concepts import MED_TYPES, concept_texts, describe_concept, main_concept, referenced_medication, shape_of
from fhir3t.records.model import Hit, PatientRecord, Res
from fhir3t.records.relevance import Judged, RunFilter, Why
from fhir3t.sources.base import UNREAD_FILE, RawRecord
from fhir3t.sources.versions import COPIES_DIFFER, Conflict, Copy, Deleted, Undecided, newest_of
from fhir3t.terminology import Code
from fhir3t.textnorm import clip

#: what is said about a record that is read in part
P = table("input.record", {
    "uncoded": "{type} has {shape}: criteria that rely on it are left unknown until it is coded",
    "unresolvable-drug": "an unresolvable drug",
    "bad-status": "{type}: {status}: criteria that read it are left unknown",
    "not-a-date": "{element} is not a date: treated as undated",
    "not-fhir-date": "{element} is not a FHIR date: treated as undated",
    "implausible-date": "{element} is implausible (before 1900 or years ahead): treated as undated",
    "modifier": "{type}: {element} may change what it means and fhir3t does not understand it: criteria that read it "
                "are left unknown",
})

Resolve = Callable[[str], "dict | None"]

#: Observation elements a component carries (R4 Observation.component) besides its code
_COMPONENT_ELEMENTS = ("interpretation", "dataAbsentReason", "referenceRange")
_PARENT_ELEMENTS = ("status", "effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued", "subject")

#: JSON members of a resource that are no element of it: its type, and STU3's JSON comments (which say nothing)
_NOT_ELEMENTS = frozenset({"resourceType", "fhir_comments"})

#: what cannot be read of a kept resource (a reason names the element, never the value)
STATUS_MISSING = Message("record.status-missing", "{element} is missing (it is required in R4)")
STATUS_NOT_R4 = Message("record.status-not-r4", "{element} is not an R4 {type}.{element} code")
NOT_R4_ELEMENT = Message("record.not-r4-element", "carries {element}, which R4 does not define (another FHIR version's "
                                                 "element?): what the record means cannot be told")
MODIFIER = Message("record.modifier", "carries {element} ({what}), which may change what it means and which fhir3t "
                                      "does not understand")
DRUG_COPIES = Message("record.drug-copies", "names a Medication held in {n} copies that differ, and neither "
                                           "meta.versionId nor meta.lastUpdated tells which is current")
DRUG_UNRESOLVED = Message("record.drug-unresolved", "its drug reference does not resolve (the Medication is not in the input)")
NAMES_NOBODY = Message("record.names-nobody", "names no patient fhir3t can find (the input holds it without a usable "
                                              "patient reference): it may be this patient's")
IN_UNREAD_FILE = Message("record.in-unread-file", "is held in a file of the input that could not be read (see the "
                                                 "input problems): it may be this patient's")
MEDICATION_UNCODED = Message("record.medication-uncoded", "its Medication is in the input but has no code (it is named only "
                                                          "by {what})")
INGREDIENTS = Message("record.ingredients", "its ingredients: {names}")
NO_INGREDIENT = Message("record.no-ingredient", "nothing fhir3t can read")
CODE_MALFORMED = Message("record.code-malformed", "its code is not a well-formed code of its system ({concept})")
CODE_UNREADABLE = Message("record.code-unreadable", "no code fhir3t can read ({concept})")
FOCUS_ELSEWHERE = Message("record.focus-elsewhere", "is about {focus} (its focus), not the patient: its value may not "
                                                    "be the patient's")
INCOMPLETE = Message("record.incomplete", "is labelled {label} in {element}: the server sent part of the record, and "
                                         "what it left out may be what the criteria read")
MODIFIER_EXTENSION = Message("record.modifier-extension", "carries a modifier extension fhir3t does not understand ({url} "
                                                          "in {element}), which may change what the record means")
VERSIONS_UNORDERED = Message("record.versions-unordered",
                             "is held in {n} copies that differ on what the criteria read, and neither meta.versionId "
                             "nor meta.lastUpdated tells which is current ({copies})")
DELETE_UNORDERED = Message("record.delete-unordered",
                           "was deleted in a Bundle (a history, a transaction, a Bulk export's deleted file), and neither "
                           "meta.versionId nor meta.lastUpdated tells "
                           "whether this copy is older or newer than the deletion ({copies})")
WITHDRAWN = Message("record.withdrawn", "is a result of {container}, whose status ({status}) withdraws the results it "
                                        "points at")
COPY_META = Message("record.copy-meta", "version {version} of {updated}")
COPY_VERSION = Message("record.copy-version", "version {version}")
COPY_UPDATED = Message("record.copy-updated", "updated {updated}")
COPY_NO_META = Message("record.copy-no-meta", "a copy without version")
COPY_DELETED = Message("record.copy-deleted", "a deletion ({what})")


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


def _status_value(resource: dict, element: str) -> tuple[bool, object]:
    """(present, value) of a status element: a code, or a CodeableConcept's code."""
    if element not in resource:
        return False, None
    v = resource[element]
    if isinstance(v, dict):
        return True, status_code(v)
    return True, v


def never_counts(rtype: str, resource: dict, facts: R4Facts | None = None) -> bool:
    """True for resources the spec says never count (entered-in-error, refuted, not-taken, ...)."""
    rules = (facts or r4_facts()).never_counts
    for scope in ("any", rtype):
        for element, values in rules.get(scope, {}).items():
            present, value = _status_value(resource, element)
            if present and value in values:
                return True
    return False


def span_of(value: object) -> Span | None:
    """Parse a FHIR date leniently: None for absent, unparseable or implausible (dates.plausible)."""
    if not isinstance(value, str):
        return None
    try:
        span = parse_date(value)
    except ValueError:
        return None
    return span if plausible(span) else None


def first_date(raw: dict, fields: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(field, text) of the first date present among `fields` (a Period gives its start)."""
    for f in fields:
        v = raw.get(f)
        if isinstance(v, str):
            return f, v
        if isinstance(v, dict) and isinstance(v.get("start"), str):
            return f, v["start"]
        if v is not None:
            return f, None  # present but not a date: the caller says so
    return None, None


@dataclass
class BuildStats:
    """What the builder could not follow, summed over a run (said once at the end, not per patient)."""

    missing_parts: int = 0  # report results / panel members referenced but not in the input


class RecordBuilder:
    """RawRecord -> PatientRecord, keeping what `relevance` says some rule reads (see module doc)."""

    def __init__(self, relevance: RunFilter, problems: Problems, facts: R4Facts | None = None) -> None:
        self.relevance = relevance
        self.problems = problems
        self.facts = facts or r4_facts()
        self.stats = BuildStats()
        self._elements: dict[str, frozenset[str]] = {}  # R4's top-level elements by type (see _not_r4)
        self._resolve: Resolve = lambda ref: None  # the record being built's references (set by build)

    def build(self, raw: RawRecord) -> PatientRecord:
        rec = PatientRecord(raw.key, None, source=raw.source)
        resolve = self._resolve = _with_own(raw)
        url_of_loc = {loc: url for url, loc in raw.aliases.items()}
        containers: list[tuple[dict, Res, bool]] = []  # (resource, its Res, read by a rule itself)
        types = self.relevance.types
        resources = raw.resources
        if raw.conflicts:
            resources = [*resources, *(one for c in raw.conflicts for one in self._conflict(rec, c, resolve))]
        patients: list[tuple[dict, str]] = []
        withdrawn: list[tuple[str, str, list[str]]] = []  # (report or panel, its status, the results it withdraws)
        for resource, where in resources:
            resource = without_absent(resource)
            rtype = resource.get("resourceType")
            if rtype == "Patient":
                patients.append((resource, where))
                continue
            if not isinstance(rtype, str) or rtype not in types:
                continue
            judged = self.relevance.judge(rtype, resource, resolve)
            if judged is None:
                continue
            ref = f"{rtype}/{resource['id']}" if isinstance(resource.get("id"), str) else url_of_loc.get(where, where)
            parts = self._withdrawn_parts(rtype, resource)
            if parts:
                withdrawn.append((ref, str(resource.get("status")), parts))
            res = self._add(rec, rtype, resource, where, ref, judged)
            if res is not None and (judged.why is Why.CONTAINER or _has_parts(rtype, resource)):
                containers.append((resource, res, judged.why in (Why.CODE, Why.ANY)))
        self._patient(rec, patients)
        orphans = raw.has_orphans
        for resource, res, read in containers:
            self._parts(rec, resource, res, resolve, read, follow=orphans or read)
        for full_url, ref in raw.aliases.items():
            if ref in rec.index:
                rec.index[full_url] = rec.index[ref]
        if withdrawn:
            _withdraw(rec, withdrawn)
        for resource, where in raw.anyone:  # the input's records naming nobody: maybe this patient's
            rtype = resource.get("resourceType")
            if not isinstance(rtype, str) or rtype not in types:
                continue
            if resource.get(UNREAD_FILE):  # a file that could not be read may hold this patient's record of the type
                rec.unread.setdefault(rtype, []).append(Res(rtype, {}, where, (), None, where, None, IN_UNREAD_FILE(),
                                                            bad="*"))
                continue
            judged = self.relevance.judge(rtype, resource, resolve)
            if judged is not None:
                span, text = self._date(rtype, resource, where, None)
                ref = f"{rtype}/{resource['id']}" if isinstance(resource.get("id"), str) else where
                rec.unread.setdefault(rtype, []).append(Res(rtype, resource, ref, judged.codes, span, where, text,
                                                            NAMES_NOBODY(), judged.texts, bad="patient", hits=judged.hits))
        for u in raw.unread:
            if u.resource is not None:  # whole, but no record of its own: unread only for what it could decide
                if u.type not in types or (judged := self.relevance.judge(u.type, u.resource, resolve)) is None:
                    continue
                span, text = self._date(u.type, u.resource, u.where, None)
                rec.unread.setdefault(u.type, []).append(Res(u.type, u.resource, u.ref or u.where, judged.codes, span,
                                                             u.where, text, u.why, judged.texts, bad="held",
                                                             hits=judged.hits))
                continue
            rec.unread.setdefault(u.type, []).append(Res(u.type, {}, u.ref or u.where, (), None, u.where, None, u.why,
                                                         bad="*"))
        return rec

    # ---- copies whose order cannot be told ---------------------------------------------
    def _patient(self, rec: PatientRecord, copies: list[tuple[dict, str]]) -> None:
        """The record's Patient: its newest copy (sources.versions). Copies of one Patient (two exports, two
        files) whose order cannot be told and which differ on what the rules read leave those elements
        disputed (PatientRecord.disputed): the first copy is kept for everything else."""
        if not copies:
            return
        rec.patient = copies[0][0]
        self._patient_copies(rec, copies)
        kept = rec.patient or {}  # whichever copy is kept: one the criteria cannot read whole leaves them unknown
        why, element = _modifier(kept)
        if why is None:
            why, element = self._not_r4("Patient", kept)
        if why is not None:
            self.problems.add(copies[0][1], P["modifier"](type="Patient", element=element), skipped=False)
        rec.patient_why = why or self._incomplete(kept)[0]

    def _patient_copies(self, rec: PatientRecord, copies: list[tuple[dict, str]]) -> None:
        """The newest of several copies of the Patient, or the elements they dispute (see `_patient`)."""
        same = [c for c, _ in copies if f"Patient/{c.get('id')}" == rec.key or len(copies) == 1]
        if len(same) < 2:
            return
        found = newest_of(same)
        if not isinstance(found, Undecided):
            rec.patient = found if isinstance(found, dict) else rec.patient
            return
        kept = [c for c in found.copies if isinstance(c, dict)]
        rec.patient = kept[0]
        elements = self.relevance.plan.elements.get("Patient", frozenset())
        keys = {k for c in kept for k in c if k in elements or _choice(k) in elements}
        rec.disputed = frozenset(k for k in keys if any(c.get(k) != kept[0].get(k) for c in kept[1:]))
        if rec.disputed:
            self.problems.add(" and ".join(w for _, w in copies),
                              f"{rec.key}: {len(kept)} copies differ on {', '.join(sorted(rec.disputed))} and their "
                              "order cannot be told from meta.versionId or meta.lastUpdated: criteria that read it are "
                              "left unknown", skipped=False)

    def _conflict(self, rec: PatientRecord, conflict: Conflict, resolve: Resolve) -> list[tuple[dict, str]]:
        """Copies of one resource that differ and cannot be ordered (sources.versions). Equal in what the
        criteria read: one is read. Otherwise each copy a criterion could read is unread, naming the copies."""
        copies = [(c, w) for c, w in conflict.copies if isinstance(c, dict)]
        tombs = [c for c, _ in conflict.copies if isinstance(c, Deleted)]
        rtype = conflict.ref.partition("/")[0]
        if rtype not in self.relevance.types or not copies:
            return [] if not copies else [copies[0]]
        judged = [(c, w, self.relevance.judge(rtype, c, resolve)) for c, w in copies]
        if not any(j is not None for _, _, j in judged):
            return []  # no copy is of any criterion's concern
        if not tombs and all(self._read_view(rtype, c) == self._read_view(rtype, copies[0][0]) for c, _ in copies[1:]):
            return [copies[0]]
        shown = many([_describe_copy(c) for c, _ in conflict.copies], "; ")
        why = (DELETE_UNORDERED if tombs else VERSIONS_UNORDERED)(n=len(conflict.copies), copies=shown)
        self.problems.add(" and ".join(w for _, w in conflict.copies),
                          f"{conflict.ref}: {len(conflict.copies)} copies differ and their order cannot be told from "
                          "meta.versionId or meta.lastUpdated: criteria that read it are left unknown", skipped=False)
        for c, w, j in judged:
            span, text = self._date(rtype, c, w, None)
            codes = j.codes if j is not None else ()
            texts = j.texts if j is not None else ()
            rec.unread.setdefault(rtype, []).append(Res(rtype, c, conflict.ref, codes, span, w, text, why, texts,
                                                        bad="version", hits=j.hits if j is not None else ()))
        return []

    def _read_view(self, rtype: str, res: dict) -> dict:
        """What of a resource some rule reads (the plan's elements; a choice type by its prefix), to tell
        whether two copies differ where it matters."""
        elements = self.relevance.plan.elements.get(rtype, frozenset())
        out = {}
        for k, v in res.items():
            name = k[1:] if k.startswith("_") else k  # a primitive's extensions (`_valueString`) go with it
            if name in elements or name in _ALWAYS_READ or _choice(name) in elements:
                out[k] = v
        return out

    # ---- one resource ----------------------------------------------------------------
    def _add(self, rec: PatientRecord, rtype: str, resource: dict, where: str, ref: str, judged: Judged,
             part_of: str = "", inherit_date: str | None = None) -> Res | None:
        bad_status, bad_element = self._bad_status(rtype, resource)
        if bad_status is None and self._never_counts(rtype, resource):
            return None
        if bad_status is None:
            bad_status, bad_element = self._modified(rtype, resource)
        if bad_status is None:
            bad_status, bad_element = _focus(resource, rec.key)
        span, text = self._date(rtype, resource, where, inherit_date)
        kept = judged.why in (Why.CODE, Why.ANY, Why.SUSPECT, Why.CONTAINER, Why.ELSEWHERE)
        plan = self.relevance.plan
        if judged.why is Why.CONTAINER and rtype not in plan.types:
            # a report only followed for its results: not itself read by any rule
            return Res(rtype, resource, ref, judged.codes, span, where, text, None, judged.texts, part_of)
        why: Msg | None = None
        bad = ""
        codes = judged.codes
        if bad_status is not None:
            why, bad = bad_status, bad_element
            if rtype == "Observation":  # a panel's components say what it could be
                tx = self.relevance.tx
                codes = codes + tuple(c for comp in resource.get("component") or () if isinstance(comp, dict)
                                      for c in tx.codes(comp.get("code")) if tx.systems.valid(*c))
        elif judged.why is Why.UNREADABLE:
            bad = "medication[x]" if judged.unresolved and rtype != "AdverseEvent" else \
                "suspectEntity" if rtype == "AdverseEvent" else "code"
            concept = main_concept(rtype, resource, self._resolve)
            why, bad = self._unreadable(rtype, resource, judged, concept, bad)
            unknown = self.relevance.tx.unknown_systems(concept)
            for system in unknown:
                self.relevance.report_unknown_system(system, where)
            if not unknown:
                self.problems.add(where, P["uncoded"](type=rtype, shape=shape_of(concept) if not judged.unresolved
                                                      else P["unresolvable-drug"]()), skipped=False)
        elif not kept:
            return None
        res = Res(rtype, resource, ref, codes, span, where, text, why, judged.texts, part_of, bad, judged.hits)
        if why is not None:
            if bad_element in _MODIFIERS:
                self.problems.add(where, P["modifier"](type=rtype, element=bad_element), skipped=False)
            elif bad_status is not None:
                self.problems.add(where, P["bad-status"](type=rtype, status=bad_status), skipped=False)
            rec.unread.setdefault(rtype, []).append(res)
            return res
        for t in dict.fromkeys(h.of_type for h in judged.hits if h.of_type and h.of_type != rtype):
            rec.suspects.setdefault(t, []).append(res)  # another type's concept named here: a suspect of its rules
        if judged.why in (Why.SUSPECT, Why.ELSEWHERE):
            if any(not h.of_type or h.of_type == rtype for h in judged.hits) or judged.why is Why.SUSPECT:
                rec.suspects.setdefault(rtype, []).append(res)
            for system in self.relevance.tx.unknown_systems(main_concept(rtype, resource, lambda r: None)):
                self.relevance.report_unknown_system(system, where)  # a ConceptMap would make it readable
            return res
        if any(not h.of_type or h.of_type == rtype for h in judged.hits):
            # read for its code, and naming another criterion's concept elsewhere: a suspect for that one
            rec.suspects.setdefault(rtype, []).append(res)
        rec.by_type.setdefault(rtype, []).append(res)
        rec.index.setdefault(ref, res)
        if rtype == "Observation":
            self._components(rec, resource, res)
        return res

    def _withdrawn_parts(self, rtype: str, resource: dict) -> list[str]:
        """The references of the results a report or panel points at, when its status withdraws them
        (R4Facts.withdraws_parts: an entered-in-error or cancelled report whose results kept their own status)."""
        statuses = self.facts.withdraws_parts.get(rtype)
        if not statuses or resource.get("status") not in statuses:
            return []
        items = resource.get("result" if rtype == "DiagnosticReport" else "hasMember")
        return [i["reference"] for i in items if isinstance(i, dict) and isinstance(i.get("reference"), str)
                and not i["reference"].startswith("#")] if isinstance(items, list) else []

    def _bad_status(self, rtype: str, resource: dict) -> tuple[Msg | None, str]:
        """(why, element) when a status element cannot be interpreted (naming the element, not the
        value), else (None, "")."""
        facts = self.facts
        for element, codes in facts.status_of(rtype):
            present, value = _status_value(resource, element)
            if not present:
                if f"{rtype}.{element}" in facts.required_status:
                    return STATUS_MISSING(element=element), element
                continue
            if not isinstance(value, str) or value not in codes:
                return STATUS_NOT_R4(element=element, type=rtype), element
        return None, ""

    def _unreadable(self, rtype: str, resource: dict, judged: Judged, concept: dict | None, bad: str) -> tuple[Msg, str]:
        """(why, element) of a record whose code cannot be read."""
        medication = referenced_medication(resource, self._resolve) if rtype in MED_TYPES else None
        if judged.unresolved:
            return DRUG_UNRESOLVED(), bad
        if medication is not None and medication.get(COPIES_DIFFER):  # sources.grouping.SharedIndex
            return DRUG_COPIES(n=medication[COPIES_DIFFER]), "medication[x]"
        if medication is not None and concept is None:  # in the input, but coded only by what it contains
            return MEDICATION_UNCODED(what=_ingredients(medication)), bad
        if judged.invalid:
            return CODE_MALFORMED(concept=describe_concept(concept)), bad
        return CODE_UNREADABLE(concept=describe_concept(concept)), bad

    def _modified(self, rtype: str, resource: dict) -> tuple[Msg | None, str]:
        """(why, element) when the resource, or the Medication a drug record points at (the drug it names is part
        of what it says), carries a modifier fhir3t does not understand (`_modifier`), says it is part of the record
        (`_incomplete`) or carries an element R4 does not define (`_not_r4`), else (None, "")."""
        why, element = _modifier(resource)
        if why is None:
            why, element = self._incomplete(resource)
        if why is None:
            why, element = self._not_r4(rtype, resource)
        if why is None and rtype in MED_TYPES and "medicationReference" in resource:
            medication = referenced_medication(resource, self._resolve)
            if medication is not None:
                why, element = _modifier(medication, "Medication.")
                if why is None:
                    why, element = self._incomplete(medication, "Medication.")
        return why, element

    def _incomplete(self, resource: dict, prefix: str = "") -> tuple[Msg | None, str]:
        """(why, element) when the copy says it is not the whole record (a SUBSETTED search result, a REDACTED
        one: R4Facts.incomplete_label): what it lacks may be what a rule reads, so it is not read as absent."""
        found = self.facts.incomplete_label(resource)
        if found is None:
            return None, ""
        element, code = found
        return INCOMPLETE(label=code, element=f"{prefix}{element}"), element

    def _not_r4(self, rtype: str, resource: dict) -> tuple[Msg | None, str]:
        """(why, element) when the record carries a top-level element neither R4 defines for its type nor a rule
        declares it reads: another FHIR version's (STU3 MedicationStatement.taken, Immunization.notGiven, Consent.except; R5
        AdverseEvent.status) may change what the record means, as a modifier would; else (None, "")."""
        known = self._elements.get(rtype)
        if known is None:
            from fhir3t.r4defs import type_def

            td = type_def(rtype)
            children = td.children("") if td is not None else {}
            # a choice element written with a type R4 does not allow it (valueCoding, STU3's abatementBoolean) is
            # R4's element: its readers take it as no value / no date, as they do any value they cannot read
            # and an element a rule declares it reads is one fhir3t understands (a MedicationRequest's effectivePeriod)
            known = self._elements[rtype] = frozenset(children) | _NOT_ELEMENTS | frozenset(
                f"{c.element.name}[x]" for c in children.values() if c.element.choice) \
                | self.relevance.plan.elements.get(rtype, frozenset()) if children else frozenset()
        if not known:
            return None, ""
        for key in resource:
            name = key[1:] if key[:1] == "_" else key
            if name not in known and _choice(name) not in known:
                return NOT_R4_ELEMENT(element=f"{rtype}.{clip(key, 40)}"), clip(key, 40)
        return None, ""

    def _never_counts(self, rtype: str, resource: dict) -> bool:
        return never_counts(rtype, resource, self.facts)

    def _date(self, rtype: str, resource: dict, where: str, inherit: str | None) -> tuple[Span | None, str | None]:
        field, text = first_date(resource, self.facts.date_fields(rtype))
        if field is None and inherit is not None:
            text = inherit
        if text is None:
            if field is not None:
                self.problems.add(where, P["not-a-date"](element=f"{rtype}.{field}"))
            return None, None
        try:
            span = parse_date(text)
        except ValueError:
            self.problems.add(where, P["not-fhir-date"](element=f"{rtype}.{field or 'date'}"))
            return None, text
        if not plausible(span):
            self.problems.add(where, P["implausible-date"](element=f"{rtype}.{field or 'date'}"))
            return None, text
        return span, text

    # ---- panels and reports ------------------------------------------------------------
    def _components(self, rec: PatientRecord, resource: dict, parent: Res) -> None:
        """Each component that some rule reads becomes a result of its own (dated as its panel)."""
        comps = resource.get("component")
        if not isinstance(comps, list):
            return
        tx, plan, rel = self.relevance.tx, self.relevance.plan, self.relevance
        # a panel that says why it has no value ('标本不合格', error) says it of its parts: whatever values they carry
        # are not results; one whose own value does not apply by nature (not-applicable) says nothing of them
        absent = resource.get("dataAbsentReason")
        if absent is not None and _says_not_applicable(absent):
            absent = None
        for i, comp in enumerate(comps):
            if not isinstance(comp, dict):
                continue
            codes: tuple[Code, ...] = tuple(c for c in tx.codes(comp.get("code")) if tx.systems.valid(*c))
            texts = concept_texts(comp.get("code"))
            stray: tuple[Hit, ...] = ()
            if not (plan.wants_code("Observation", codes) or rel.suspect("Observation", codes, texts)):
                stray = rel.stray("Observation", comp.get("code"), "component.code")
                if not stray:
                    continue
            view = {k: resource[k] for k in _PARENT_ELEMENTS if k in resource}
            view["resourceType"] = "Observation"
            for k, v in comp.items():
                if k == "code" or k.startswith("value") or k in _COMPONENT_ELEMENTS:
                    view[k] = v
            if absent is not None:
                view.setdefault("dataAbsentReason", absent)
            res = Res("Observation", view, parent.ref, codes, parent.span, f"{parent.where}/component[{i}]",
                      parent.date_text, None, texts, parent.ref, hits=stray)
            # a component coded for a test is a result; one that only names a test is a suspect (unknown, not absent)
            (rec.by_type if plan.wants_code("Observation", codes) else rec.suspects).setdefault("Observation", []).append(res)

    def _parts(self, rec: PatientRecord, resource: dict, container: Res, resolve: Resolve, read: bool,
               follow: bool = True) -> None:
        """Adopt the Observations a report (`result`) or panel (`hasMember`) points at. `read`: a rule
        reads the container itself (a chest-CT report), so a result missing from the input is counted.
        `follow`: look results up in the input too (contained ones, `#id`, are always read)."""
        field = "result" if container.type == "DiagnosticReport" else "hasMember"
        refs = resource.get(field)
        contained = {c.get("id"): c for c in resource.get("contained") or () if isinstance(c, dict)} \
            if isinstance(resource.get("contained"), list) else {}
        for i, item in enumerate(refs if isinstance(refs, list) else ()):
            ref = item.get("reference") if isinstance(item, dict) else None
            if not isinstance(ref, str):
                continue
            if not follow and not ref.startswith("#"):
                continue
            key = f"{container.ref}{ref}" if ref.startswith("#") else (_type_id(ref) or ref)
            known = rec.index.get(key) or rec.index.get(ref)
            if known is not None:  # already read as a resource of this patient: note whose result it is
                known.part_of = known.part_of or container.ref
                continue
            target = contained.get(ref[1:]) if ref.startswith("#") else resolve(ref)
            if not isinstance(target, dict):
                if read:  # a result of a report the criteria read is not in the input
                    self.stats.missing_parts += 1
                continue
            if target.get("resourceType") != "Observation":
                continue
            target = without_absent(target)
            subject = target.get("subject")
            sref = subject.get("reference") if isinstance(subject, dict) else None
            if isinstance(sref, str) and _type_id(sref) not in (rec.key, None) and sref != rec.key:
                continue  # someone else's result
            judged = self.relevance.judge("Observation", target, resolve)
            if judged is None:
                continue
            self._add(rec, "Observation", target, f"{container.where}/{field}[{i}]", key, judged,
                      part_of=container.ref, inherit_date=container.date_text)


#: what makes a resource what it is, whatever a rule declares it reads (the builder itself reads a modifier
#: extension and an Observation's focus: see `_modifier`, `_focus`)
_ALWAYS_READ = frozenset({"resourceType", "code", "medicationCodeableConcept", "medicationReference", "vaccineCode",
                          "component", "result", "hasMember", "contained", "status", "modifierExtension",
                          "implicitRules", "focus"})

#: R4's general modifiers: an extension that changes the meaning of the element holding it (it may negate the whole
#: record: 'not given', 'refuted'), and rules beyond FHIR's own that the resource was written under. A processor that
#: does not understand one must not read the element as if it were absent (R4 Extensibility 2.17.3 and 2.21.0.4)
_MODIFIERS = ("modifierExtension", "implicitRules")


def _modifier(resource: dict, prefix: str = "") -> tuple[Msg | None, str]:
    """(why, element) when the resource, anywhere within (a contained Medication, a dosage), carries a modifier
    extension or implicitRules: fhir3t understands none, so what the resource means cannot be read."""
    try:  # in C: a walk of every node in Python took 12 us a lab result, this 3 us
        data = orjson.dumps(resource)
    except (TypeError, orjson.JSONEncodeError):  # (an integer past 64 bits): walk it
        data = b'"modifierExtension"'
    if b'"modifierExtension"' not in data and b'"implicitRules"' not in data:  # (a key's name; escaped in a value)
        return None, ""
    rules = resource.get("implicitRules")
    if rules is not None:
        return MODIFIER(element=f"{prefix}implicitRules", what=clip(rules, 60) if isinstance(rules, str) else "?"), "implicitRules"
    rtype = resource.get("resourceType")
    root = prefix.rstrip(".") or (rtype if isinstance(rtype, str) else "resource")
    stack: list[tuple[object, str]] = [(resource, root)]  # (a stack, not recursion: nesting can be deep)
    while stack:
        node, path = stack.pop()
        if type(node) is dict:
            ext = node.get("modifierExtension")
            if ext:
                first = ext[0] if isinstance(ext, list) and ext else ext
                url = first.get("url") if isinstance(first, dict) else None
                return MODIFIER_EXTENSION(url=clip(url, 80) if isinstance(url, str) else "?",
                                          element=f"{path}.modifierExtension"), "modifierExtension"
            stack.extend((v, f"{path}.{k}") for k, v in reversed(node.items()) if type(v) in (dict, list))
        elif type(node) is list:
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(node))) if type(v) in (dict, list))
    return None, ""


DATA_ABSENT = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"


def without_absent(resource: dict) -> dict:
    """The resource without the value of any primitive whose `_element` carries a data-absent-reason extension
    (R4: the value is missing, for the reason it gives): a value written beside one (a masked birth date, a
    placeholder onset) is read as absent, never as the value. The resource itself when it has none."""
    try:
        data = orjson.dumps(resource)
    except (TypeError, orjson.JSONEncodeError):
        return resource
    if b"data-absent-reason" not in data:
        return resource
    try:
        out = _strip_absent(resource)
    except RecursionError:
        return resource
    return out if isinstance(out, dict) else resource


def _says_absent(element: object) -> bool:
    ext = element.get("extension") if isinstance(element, dict) else None
    return isinstance(ext, list) and any(isinstance(e, dict) and e.get("url") == DATA_ABSENT for e in ext)


def _strip_absent(node: object) -> object:
    if type(node) is list:
        return [_strip_absent(v) for v in node]
    if type(node) is not dict:
        return node
    gone = {k[1:] for k, v in node.items() if k[:1] == "_" and k[1:] in node and _says_absent(v)}
    return {k: _strip_absent(v) if type(v) in (dict, list) else v for k, v in node.items() if k not in gone}


_CHOICE = re.compile(r"^([a-z][A-Za-z]*?)[A-Z][A-Za-z]*$")


def _says_not_applicable(absent: object) -> bool:
    """Is a dataAbsentReason the code not-applicable (a value that cannot exist, as a panel's own)?"""
    codings = absent.get("coding") if isinstance(absent, dict) else None
    return isinstance(codings, list) and any(isinstance(c, dict) and c.get("code") == "not-applicable" for c in codings)


def _choice(element: str) -> str:
    """`valueQuantity` -> `value[x]` (an R4 choice element by its prefix); other names unchanged."""
    m = _CHOICE.match(element)
    return f"{m.group(1)}[x]" if m else element


def _describe_copy(copy: Copy) -> Msg:
    if isinstance(copy, Deleted):
        return COPY_DELETED(what=_describe_copy({"meta": {"versionId": copy.version_id, "lastUpdated": copy.last_updated}}))
    meta: dict = copy["meta"] if isinstance(copy.get("meta"), dict) else {}
    vid, lu = meta.get("versionId"), meta.get("lastUpdated")
    vid = vid if isinstance(vid, str) else None
    lu = lu if isinstance(lu, str) else None
    if vid and lu:
        return COPY_META(version=vid, updated=lu)
    if vid:
        return COPY_VERSION(version=vid)
    if lu:
        return COPY_UPDATED(updated=lu)
    return COPY_NO_META()


def _ingredients(medication: dict) -> Msg:
    """What a Medication without a code is named by: its ingredients' codes or texts, as written."""
    names: list[str] = []
    for ing in medication.get("ingredient") or () if isinstance(medication.get("ingredient"), list) else ():
        item = ing.get("itemCodeableConcept") if isinstance(ing, dict) else None
        ref = ing.get("itemReference") if isinstance(ing, dict) else None
        if isinstance(item, dict):
            texts = concept_texts(item)
            coding = next((c for c in item.get("coding") or () if isinstance(c, dict) and isinstance(c.get("code"), str)), None)
            names.append(clip(texts[0], 40) if texts else f"{coding.get('system', '')} {coding['code']}".strip() if coding else "?")
        elif isinstance(ref, dict) and isinstance(ref.get("display"), str):
            names.append(clip(ref["display"], 40))
    return INGREDIENTS(names=many(names)) if names else NO_INGREDIENT()


def _focus(resource: dict, patient: str) -> tuple[Msg | None, str]:
    """(why, "focus") when an Observation is about something other than its patient (R4 Observation.focus: a
    fetus, a donor, a family member, a specimen's source): its value is not the patient's own. Else (None, "")."""
    focus = resource.get("focus")
    if focus is None or resource.get("resourceType") != "Observation":
        return None, ""
    for item in focus if isinstance(focus, list) else [focus]:
        ref = item.get("reference") if isinstance(item, dict) else None
        if not (isinstance(ref, str) and (ref == patient or _type_id(ref) == patient)):
            shown = ref if isinstance(ref, str) else item.get("display") if isinstance(item, dict) else None
            return FOCUS_ELSEWHERE(focus=clip(shown, 60) if isinstance(shown, str) else "?"), "focus"
    return None, ""


def _withdraw(rec: PatientRecord, withdrawn: list[tuple[str, str, list[str]]]) -> None:
    """Results a report or panel of a withdrawing status points at (RecordBuilder._withdrawn_parts) are unread,
    naming it: read as they stand, a negative from a cancelled report would decide a criterion."""
    why: dict[str, Msg] = {}
    for container, status, refs in withdrawn:
        for ref in refs:
            found = rec.index.get(_type_id(ref) or ref) or rec.index.get(ref)
            if found is not None and found.ref != container:
                why.setdefault(found.ref, WITHDRAWN(container=container, status=status))
    if not why:
        return
    for rtype, group in list(rec.by_type.items()):
        kept: list[Res] = []
        for r in group:
            msg = why.get(r.ref)
            if msg is None:
                kept.append(r)
                continue
            moved = replace(r, why=msg, bad="status")
            rec.unread.setdefault(rtype, []).append(moved)
            for key, indexed in list(rec.index.items()):
                if indexed is r:
                    rec.index[key] = moved
        rec.by_type[rtype] = kept
    for rtype, group in list(rec.suspects.items()):
        rec.suspects[rtype] = [r for r in group if r.ref not in why]


def _has_parts(rtype: str, resource: dict) -> bool:
    if rtype == "DiagnosticReport":
        return isinstance(resource.get("result"), list)
    return rtype == "Observation" and isinstance(resource.get("hasMember"), list)


def _type_id(ref: str) -> str | None:
    parts = ref.split("?")[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    return f"{parts[-2]}/{parts[-1]}" if len(parts) >= 2 and parts[-2] and parts[-1] else None


def _with_own(raw: RawRecord) -> Resolve:
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
        return own.get(ref) or own.get(_type_id(ref) or "")

    return resolve
