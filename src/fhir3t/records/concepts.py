"""Where a resource says what it is about: its main code, drug or vaccine, and the text beside it."""
from __future__ import annotations

import functools
import re
from collections.abc import Callable

from fhir3t.jsonshape import items
from fhir3t.messages import Message, Msg
from fhir3t.r4facts import r4_facts
from fhir3t.textnorm import clip, fold

Resolve = Callable[[str], "dict | None"]
MED_TYPES = ("MedicationStatement", "MedicationRequest", "MedicationAdministration", "MedicationDispense")


def medication_concept(resource: dict, resolve: Resolve) -> dict | None:
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
                code = c.get("code")
                return code if isinstance(code, dict) else None
        return None
    med = resolve(target)
    code = med.get("code") if isinstance(med, dict) else None
    return code if isinstance(code, dict) else None


def referenced_medication(resource: dict, resolve: Resolve) -> dict | None:
    """The Medication a drug record points at (contained or in the input), or None."""
    ref = resource.get("medicationReference")
    target = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(target, str):
        return None
    if target.startswith("#"):
        contained = resource.get("contained")
        found = next((c for c in contained if isinstance(c, dict) and c.get("id") == target[1:]), None) \
            if isinstance(contained, list) else None
    else:
        found = resolve(target)
    return found if isinstance(found, dict) else None


def suspect_concepts(resource: dict, resolve: Resolve) -> tuple[list[dict], int]:
    """An AdverseEvent's suspected drugs as concepts, and how many suspects could not be resolved."""
    out: list[dict] = []
    unresolved = 0
    suspects = resource.get("suspectEntity")
    for suspect in suspects if isinstance(suspects, list) else ():
        instance = suspect.get("instance") if isinstance(suspect, dict) else None
        ref = instance.get("reference") if isinstance(instance, dict) else None
        if not isinstance(ref, str):
            unresolved += 1
            continue
        target: object = None
        if ref.startswith("#"):
            contained = resource.get("contained")
            target = next((c for c in contained if isinstance(c, dict) and c.get("id") == ref[1:]), None) \
                if isinstance(contained, list) else None
        else:
            target = resolve(ref)
        if not isinstance(target, dict):
            unresolved += 1
            continue
        concept = medication_concept(target, resolve) if target.get("resourceType") in MED_TYPES else target.get("code")
        if isinstance(concept, dict):
            out.append(concept)
        else:
            unresolved += 1
    return out, unresolved


def main_concept(rtype: str, resource: dict, resolve: Resolve) -> dict | None:
    """The CodeableConcept that names what a resource is about (its code, drug or vaccine)."""
    if rtype in MED_TYPES:
        return medication_concept(resource, resolve)
    f = r4_facts().main_code.get(rtype)
    v = resource.get(f) if f else None
    return v if isinstance(v, dict) else None


def concept_texts(concept: object) -> tuple[str, ...]:
    """Folded `text` and codings' `display` of a concept: what the name net searches."""
    if not isinstance(concept, dict):
        return ()
    out = []
    t = concept.get("text")
    if isinstance(t, str) and t.strip():
        out.append(fold(t))
    codings = concept.get("coding")
    for c in codings if isinstance(codings, list) else ():
        d = c.get("display") if isinstance(c, dict) else None
        if isinstance(d, str) and d.strip():
            out.append(fold(d))
    return tuple(dict.fromkeys(out))


#: (element path, system, code, text) of a coding or a concept's text found somewhere in a resource
Mention = tuple[str, str | None, str | None, str | None]

#: elements never searched for a concept: identity, metadata, the narrative, free text (a note saying "no
#: <drug> allergy" names the drug too: free text is not read, coded data and concept names are)
NOT_SCANNED = frozenset({"resourceType", "id", "meta", "implicitRules", "language", "text", "identifier", "note",
                         "dosage", "dosageInstruction", "patientInstruction", "description", "comment", "conclusion",
                         "presentedForm", "div", "url", "valueString", "valueMarkdown"})
#: references to people, places and orders, whose display is a name, not a concept
WHO = frozenset({"subject", "patient", "individual", "beneficiary", "encounter", "performer", "recorder", "asserter",
                 "requester", "informationSource", "author", "location", "organization", "practitioner", "actor",
                 "source", "sender", "recipient", "resultsInterpreter", "reporter", "contributor", "insurer",
                 "collector", "supportingInformation", "context", "device"})


#: choice-type suffixes of elements that hold a quantity, a time or free text: never a concept
_NO_CONCEPT = re.compile(r"[a-z](?:Quantity|Period|Range|Ratio|SampledData|DateTime|Instant|Date|Time|Age|Duration|"
                         r"Boolean|Integer|Decimal|String|Markdown|Attachment|Money)$")
_SKIP_KEY: dict[str, bool] = {}


def _skipped(key: str) -> bool:
    """Is an element never searched (NOT_SCANNED, a reference to a person or place, a quantity or time)?"""
    hit = _SKIP_KEY.get(key)
    if hit is None:
        hit = key in NOT_SCANNED or key in WHO or _NO_CONCEPT.search(key) is not None
        if len(_SKIP_KEY) < 10_000:  # element names are few; a hostile input's made-up keys are not kept
            _SKIP_KEY[key] = hit
    return hit


#: R4 data types that never carry a concept (what a value in them names is a number, a time, free text, an
#: id, a person or place): a resource's top-level elements of these types are never searched
_INERT_TYPES = frozenset({"string", "code", "id", "uri", "url", "canonical", "oid", "uuid", "markdown", "base64Binary",
                          "boolean", "integer", "positiveInt", "unsignedInt", "decimal", "date", "dateTime", "instant",
                          "time", "Quantity", "Period", "Range", "Ratio", "Age", "Duration", "SampledData", "Timing",
                          "Attachment", "Identifier", "Meta", "Narrative", "Annotation", "Money", "HumanName",
                          "Address", "ContactPoint", "Signature"})


@functools.cache
def no_concepts(rtype: str) -> frozenset[str]:
    """A resource type's top-level elements that cannot carry a concept, by their R4 type (plus those
    never searched, NOT_SCANNED and WHO): `mentions` skips them by one set difference, without a loop."""
    from fhir3t.r4defs import type_def

    td = type_def(rtype)
    typed = {name for name, child in td.children("").items() if child.type in _INERT_TYPES} if td is not None else set()
    return frozenset(typed | NOT_SCANNED | WHO)


def mentions(resource: dict, skip: frozenset[str] = frozenset(), prefix: str = "") -> list[Mention]:
    """Every coding (system, code, display) and concept text anywhere in a resource, with the element it
    sits in (`reaction.substance`), outside the top-level elements in `skip` and those never searched
    (NOT_SCANNED, references to people and places, quantities and times). Contained resources are
    searched too (`contained.Medication.ingredient.itemCodeableConcept`), except those the resource's
    results or members point at (they are read as results).

    The hot path of a Bulk export's first pass calls it for every resource of a read type (measured
    ~1 us for a vital sign: only its `category` is walked)."""
    out: list[Mention] = []
    skipped = _SKIP_KEY
    for key in resource.keys() - skip:  # one set difference in C: most of a resource is skipped here
        value = resource[key]
        kind = type(value)
        if kind is not list and kind is not dict:
            continue
        sk = skipped.get(key)
        if sk or (sk is None and _skipped(key)):
            continue
        if kind is list and _plain_concepts(value, prefix + key, out):
            continue  # a list of plain CodeableConcepts (a category): read here, no walk
        if key == "contained":
            parts = _part_ids(resource)
            for c in value:
                if type(c) is dict and c.get("id") not in parts:
                    rtype = c.get("resourceType")
                    out += mentions(c, frozenset(), f"{prefix}contained.{rtype if isinstance(rtype, str) else '?'}.")
            continue
        if key in ("result", "hasMember"):
            continue
        _walk(value, prefix + key, key, out)
    return out


def _plain_concepts(items: list, path: str, out: list[Mention]) -> bool:
    """Mentions of a list of CodeableConcepts with nothing but codings and text (the common case, read
    without a walk); False (nothing added) for any other list."""
    found: list[Mention] = []
    for v in items:
        if type(v) is not dict or len(v) > 2 or not (v.keys() <= {"coding", "text"}):
            return False
        coding = v.get("coding", ())
        if type(coding) is not list:
            return False
        for c in coding:
            if type(c) is not dict:
                return False
            sy, code, d = c.get("system"), c.get("code"), c.get("display")
            found.append((path, sy if type(sy) is str else None, code if type(code) is str else None,
                          d if type(d) is str and d.strip() else None))
        t = v.get("text")
        if type(t) is str and t.strip():
            found.append((path, None, None, t))
    out += found
    return True


def _part_ids(resource: dict) -> set[str]:
    """Ids of contained resources the resource's results or members point at (`#id`)."""
    parts: set[str] = set()
    for f in ("result", "hasMember"):
        items = resource.get(f)
        for item in items if isinstance(items, list) else ():
            ref = item.get("reference") if isinstance(item, dict) else None
            if isinstance(ref, str) and ref.startswith("#"):
                parts.add(ref[1:])
    return parts


def _walk(value: object, path: str, key: str, out: list[Mention]) -> None:
    if type(value) is list:
        for v in value:
            if type(v) in (dict, list):
                _walk(v, path, key, out)
        return
    if type(value) is not dict:
        return
    coding = value.get("coding")
    if type(coding) is list:  # a CodeableConcept
        for c in coding:
            if type(c) is dict:
                s, code, d = c.get("system"), c.get("code"), c.get("display")
                out.append((path, s if type(s) is str else None, code if type(code) is str else None,
                            d if type(d) is str and d.strip() else None))
        t = value.get("text")
        if type(t) is str and t.strip():
            out.append((path, None, None, t))
    elif type(value.get("code")) is str and "value" not in value:  # a Coding
        s, d = value.get("system"), value.get("display")
        out.append((path, s if type(s) is str else None, value["code"], d if type(d) is str and d.strip() else None))
    elif "reference" in value or "display" in value:  # a Reference: its display may name the concept
        d = value.get("display")
        if type(d) is str and d.strip() and key not in WHO:
            out.append((path, None, None, d))
        return
    else:
        t = value.get("text")
        if type(t) is str and t.strip() and len(value) <= 3 and set(value) <= {"text", "id", "extension"}:
            out.append((path, None, None, t))  # a CodeableConcept written as text only
    for k, v in value.items():
        if type(v) in (dict, list) and k != "coding" and not _skipped(k):
            _walk(v, f"{path}.{k}", k, out)


CONCEPT_NONE = Message("concept.none", "no code")
CONCEPT_SYSTEMS = Message("concept.systems", "coded only in {systems}")
CONCEPT_SYSTEMS_TEXT = Message("concept.systems-text", "coded only in {systems} '{text}'")
CONCEPT_NO_SYSTEM = Message("concept.no-system", "a coding without a system")
CONCEPT_NO_SYSTEM_TEXT = Message("concept.no-system-text", "a coding without a system '{text}'")
CONCEPT_TEXT_ONLY = Message("concept.text-only", "text only: '{text}'")
CONCEPT_NO_CODING = Message("concept.no-coding", "no usable coding")


def describe_concept(concept: object) -> Msg:
    """Why a code cannot be read, for a reason a coordinator sees (systems named, text quoted)."""
    if not isinstance(concept, dict):
        return CONCEPT_NONE()
    text = concept.get("text")
    text = clip(text, 60) if isinstance(text, str) else ""
    codings = items(concept.get("coding"))
    systems = sorted({c["system"] for c in codings if isinstance(c, dict) and isinstance(c.get("system"), str)})
    if systems:
        return CONCEPT_SYSTEMS_TEXT(systems=", ".join(systems), text=text) if text else CONCEPT_SYSTEMS(systems=", ".join(systems))
    if any(isinstance(c, dict) and "code" in c for c in codings):
        return CONCEPT_NO_SYSTEM_TEXT(text=text) if text else CONCEPT_NO_SYSTEM()
    return CONCEPT_TEXT_ONLY(text=text) if text else CONCEPT_NO_CODING()


CONCEPT_TEXT_ONLY_SHAPE = Message("concept.text-only-shape", "text only")


def shape_of(concept: object) -> Msg:
    """Like describe_concept, without any text: for stderr and logs (no PHI)."""
    if not isinstance(concept, dict):
        return CONCEPT_NONE()
    codings = items(concept.get("coding"))
    systems = sorted({c["system"] for c in codings if isinstance(c, dict) and isinstance(c.get("system"), str)})
    if systems:
        return CONCEPT_SYSTEMS(systems=", ".join(systems))
    if any(isinstance(c, dict) and "code" in c for c in codings):
        return CONCEPT_NO_SYSTEM()
    return CONCEPT_TEXT_ONLY_SHAPE() if isinstance(concept.get("text"), str) else CONCEPT_NO_CODING()
