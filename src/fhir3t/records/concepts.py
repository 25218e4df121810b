"""Where a resource says what it is about: its main code, drug or vaccine, and the text beside it."""
from __future__ import annotations

from collections.abc import Callable

from fhir3t.jsonshape import items
from fhir3t.messages import Message, Msg
from fhir3t.r4facts import r4_facts
from fhir3t.textnorm import fold

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
    text = text.strip()[:60] if isinstance(text, str) else ""
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
