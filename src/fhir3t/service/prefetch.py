"""Prefetch templates derived from what the criteria read, and reading what an EHR prefetched.

The templates are computed from the screener's ReadPlan, never written by hand, so the discovery
document asks for exactly the resource types the criteria (and the coordinator notes) read: one
patient-scoped search per type, without code filters, because the criteria also read records coded
only in a hospital's local system or only in text (the name net), which no code filter would return.
The study's own ResearchStudy is asked for too, so a ResearchSubject that points at it by id is
recognised as this study.

Reading a CDS request's `prefetch` (CDS Hooks 2.0): a key with a resource or Bundle is data; a key
that is `null` means the EHR has no data for it; a missing key, an OperationOutcome, or a Bundle with
a `next` page is data still to fetch. Anything else is a malformed request (400).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from fhir3t.pipeline import Definition
from fhir3t.r4facts import r4_facts

PATIENT_TOKEN = "{{context.patientId}}"
#: R4 search parameter naming a resource's patient, where it is not `patient` (AdverseEvent has `subject` only)
PATIENT_PARAM = {"AdverseEvent": "subject"}


class PrefetchError(ValueError):
    """A malformed prefetch (the caller answers 400 with this message)."""


@dataclass(frozen=True)
class Template:
    key: str
    type: str  # the resource type it returns ("Patient" for the read)
    query: str  # with {{context.patientId}}

    def expand(self, patient_id: str) -> str:
        return self.query.replace(PATIENT_TOKEN, quote(patient_id, safe=""))

    @property
    def is_read(self) -> bool:
        return "?" not in self.query


def _key(rtype: str) -> str:
    return rtype[0].lower() + rtype[1:]


def templates(definition: Definition) -> dict[str, Template]:
    """key -> template, in a stable order: the Patient, the study, then one search per type read."""
    shared = r4_facts().shared_types
    out = {"patient": Template("patient", "Patient", f"Patient/{PATIENT_TOKEN}")}
    study = definition.study
    if "ResearchSubject" in definition.plan.types:
        ident = quote(f"{study.system}|{study.value}", safe=":/|")
        out["study"] = Template("study", "ResearchStudy", f"ResearchStudy?identifier={ident}")
    for rtype in sorted(definition.plan.types - shared - {"Patient"}):
        param = PATIENT_PARAM.get(rtype, "patient")
        out[_key(rtype)] = Template(_key(rtype), rtype, f"{rtype}?{param}={PATIENT_TOKEN}")
    return out


def discovery_prefetch(tpls: Mapping[str, Template]) -> dict[str, str]:
    return {k: t.query for k, t in tpls.items()}


@dataclass
class Prefetched:
    """What a request's prefetch gave: documents to screen, and the templates still to fetch."""

    documents: list[tuple[str, object]] = field(default_factory=list)
    missing: list[Template] = field(default_factory=list)
    #: keys sent as null (the EHR has no such data)
    empty: list[str] = field(default_factory=list)
    #: keys that came as an OperationOutcome or with a next page (to fetch again)
    incomplete: list[str] = field(default_factory=list)


def _has_next(bundle: dict) -> bool:
    return any(isinstance(link, dict) and link.get("relation") == "next" for link in bundle.get("link") or ())


def _check_bundle(key: str, bundle: dict) -> None:
    """The envelope must be a Bundle of entries; what an entry's resource holds is the record's business:
    one without a readable resourceType or patient stays the patient's, unread (as in a file), so that the
    service and the CLI answer the same on the same data."""
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise PrefetchError(f"prefetch '{key}': Bundle.entry must be a list")
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            raise PrefetchError(f"prefetch '{key}': entry {i} is not an object")


def read_prefetch(prefetch: object, tpls: Mapping[str, Template], patient_id: str) -> Prefetched:
    """Sort a request's prefetch into data, empties and what is still missing (see the module doc).

    Keys the service did not ask for are ignored. A Patient read that is not the context's patient
    is refused: screening one patient on another's demographics is worse than no answer.
    """
    if prefetch is None:
        prefetch = {}
    if not isinstance(prefetch, dict):
        raise PrefetchError("prefetch must be a JSON object of prefetch keys")
    out = Prefetched()
    for key, tpl in tpls.items():
        if key not in prefetch:
            out.missing.append(tpl)
            continue
        value = prefetch[key]
        if value is None:
            out.empty.append(key)
            continue
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            raise PrefetchError(f"prefetch '{key}' must be a FHIR resource, a Bundle or null")
        rtype = value["resourceType"]
        if rtype == "OperationOutcome":
            out.incomplete.append(key)
            out.missing.append(tpl)
            continue
        if tpl.is_read:
            if rtype != tpl.type:
                raise PrefetchError(f"prefetch '{key}' must be a {tpl.type}, not a {rtype}")
            if tpl.type == "Patient" and value.get("id") != patient_id:
                raise PrefetchError(f"prefetch '{key}' is not the Patient of context.patientId")
        else:
            if rtype != "Bundle":
                raise PrefetchError(f"prefetch '{key}' must be a searchset Bundle, not a {rtype}")
            _check_bundle(key, value)
            if _has_next(value):
                out.incomplete.append(key)
                out.missing.append(tpl)
                continue
        out.documents.append((f"prefetch:{key}", value))
    return out


def resources_in(documents: Iterable[tuple[str, object]]) -> list[dict]:
    """Every resource of (name, Bundle or resource) documents, Bundle entries unwrapped."""
    out: list[dict] = []
    for _where, doc in documents:
        if not isinstance(doc, dict):
            continue
        if doc.get("resourceType") == "Bundle":
            out.extend(e["resource"] for e in doc.get("entry") or ()
                       if isinstance(e, dict) and isinstance(e.get("resource"), dict))
        else:
            out.append(doc)
    return out


def as_prefetch(resources: list[dict], tpls: Mapping[str, Template], patient_id: str) -> dict[str, object]:
    """The prefetch a CDS client would send for one patient's resources (tests, benchmarks, examples):
    the Patient read, and a searchset Bundle per template (null when empty, as CDS Hooks says)."""
    out: dict[str, object] = {}
    for key, tpl in tpls.items():
        if tpl.is_read:
            out[key] = next((r for r in resources if r.get("resourceType") == tpl.type and r.get("id") == patient_id),
                            None)
            continue
        hits = [r for r in resources if r.get("resourceType") == tpl.type]
        out[key] = {"resourceType": "Bundle", "type": "searchset", "total": len(hits),
                    "entry": [{"fullUrl": f"{r['resourceType']}/{r.get('id')}", "resource": r,
                               "search": {"mode": "match"}} for r in hits]} if hits else None
    return out


__all__ = [
    "PATIENT_TOKEN",
    "PrefetchError",
    "Prefetched",
    "Template",
    "as_prefetch",
    "discovery_prefetch",
    "read_prefetch",
    "resources_in",
    "templates",
]
