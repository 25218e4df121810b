"""Prefetch templates derived from what the criteria read, and reading what an EHR prefetched.

The templates are computed from the screener's ReadPlan, never written by hand, so the discovery
document asks for exactly the resource types the criteria (and the coordinator notes) read: one
patient-scoped search per type. The study's own ResearchStudy is asked for too, so a ResearchSubject
that points at it by id is recognised as this study.

`[serve] prefetch = "all"` (the default) puts no code filter on any search, because the criteria also read
records coded only in a hospital's local system or only in text (the name net), which no code filter returns:
what fhir3t cannot read must keep a criterion unknown, so it must be seen. `"by-code"` filters the one
voluminous type, Observation (a sick inpatient has thousands, mostly vital signs), with the `combo-code` token
search CDS Hooks allows: the codes the criteria's value sets list, the hospital's local codes a ConceptMap maps
to them, and every code of each local system those maps come from (`system|`), so an unmapped local lab code
is still seen and named. What it gives up, and why it is not the default: an Observation coded in another
standard code (a LOINC code no value set lists) or only in text, whose text names a test the criteria read,
is not sent, so it cannot keep its criterion unknown. Types whose absence decides (diagnoses, drugs,
allergies), reports and every type a value set with filters reads stay unfiltered in both modes. No
template carries a date: CDS Hooks has no relative date token, and an undated record may decide.

Reading a CDS request's `prefetch` (CDS Hooks 2.0): a key with a resource or Bundle is data; a key
that is `null` means the EHR has no data for it; a missing key or an OperationOutcome is data still to
fetch; a searchset with a `next` link is data of which the rest is still to read from that link (followed
by the service within its budget, only on an origin it may read: service/fetch.py). Anything else is a
malformed request (400).
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


#: the search parameter a by-code Observation template filters on: the code or a component's (R4 `combo-code`),
#: so an LIS panel whose components are the tests is returned too
BY_CODE_PARAM = {"Observation": "combo-code"}


@dataclass(frozen=True)
class Template:
    key: str
    type: str  # the resource type it returns ("Patient" for the read)
    query: str  # with {{context.patientId}}
    #: filtered by code (by-code mode): records of the type outside the filter are not returned
    by_code: bool = False

    def expand(self, patient_id: str) -> str:
        return self.query.replace(PATIENT_TOKEN, quote(patient_id, safe=""))

    @property
    def is_read(self) -> bool:
        return "?" not in self.query


def _key(rtype: str) -> str:
    return rtype[0].lower() + rtype[1:]


def templates(definition: Definition, mode: str = "all") -> dict[str, Template]:
    """key -> template, in a stable order: the Patient, the study, then one search per type read
    (`mode` "by-code": Observation filtered by code where it can be, see the module doc)."""
    shared = r4_facts().shared_types
    out = {"patient": Template("patient", "Patient", f"Patient/{PATIENT_TOKEN}")}
    study = definition.study
    if "ResearchSubject" in definition.plan.types:
        ident = quote(f"{study.system}|{study.value}", safe=":/|")
        out["study"] = Template("study", "ResearchStudy", f"ResearchStudy?identifier={ident}")
    for rtype in sorted(definition.plan.types - shared - {"Patient"}):
        param = PATIENT_PARAM.get(rtype, "patient")
        query = f"{rtype}?{param}={PATIENT_TOKEN}"
        tokens = code_tokens(definition, rtype) if mode == "by-code" else None
        if tokens:
            query += f"&{BY_CODE_PARAM[rtype]}=" + ",".join(quote(t, safe=":/|") for t in tokens)
        out[_key(rtype)] = Template(_key(rtype), rtype, query, by_code=bool(tokens))
    return out


def code_tokens(definition: Definition, rtype: str) -> list[str] | None:
    """The `system|code` tokens a by-code search of `rtype` asks for (see the module doc), or None when the type
    cannot be filtered: not a filterable type, a type whose absence decides, or a value set that is not a list."""
    plan, tx = definition.plan, definition.tx
    if rtype not in BY_CODE_PARAM or rtype in plan.complete or rtype in plan.any_code:
        return None
    tokens: dict[str, None] = {}
    local_systems: dict[str, None] = {}
    for vs in plan.valuesets.get(rtype, ()):
        listed = vs.exact_only()
        if listed is None:
            return None
        for code in listed:
            tokens[f"{code[0]}|{code[1]}"] = None
            for (system, local), _display in tx.maps.local_codes(code):
                tokens[f"{system}|{local}"] = None
                local_systems[f"{system}|"] = None
    return [*local_systems, *tokens] if tokens else None
def discovery_prefetch(tpls: Mapping[str, Template]) -> dict[str, str]:
    return {k: t.query for k, t in tpls.items()}


@dataclass
class Prefetched:
    """What a request's prefetch gave: documents to screen, and the templates still to fetch."""

    documents: list[tuple[str, object]] = field(default_factory=list)
    missing: list[Template] = field(default_factory=list)
    #: keys sent as null (the EHR has no such data)
    empty: list[str] = field(default_factory=list)
    #: keys that came as an OperationOutcome or with a next page (to fetch again, or to read on)
    incomplete: list[str] = field(default_factory=list)
    #: searchsets sent with a `next` link: (template, the next page's URL), their pages so far among the documents
    pages: list[tuple[Template, str]] = field(default_factory=list)


def next_url(bundle: dict) -> str | None:
    """The `next` link of a searchset, or None."""
    for link in bundle.get("link") or ():
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            return url if isinstance(url, str) and url else None
    return None


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
                url = next_url(value)
                if url is None:  # a next link without a usable URL: the rest cannot be read on from here
                    out.missing.append(tpl)
                    continue
                out.pages.append((tpl, url))
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
    the Patient read, and a searchset Bundle per template (null when empty, as CDS Hooks says). By-code
    templates are not applied here: every resource of the type is sent."""
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
    "code_tokens",
    "discovery_prefetch",
    "next_url",
    "read_prefetch",
    "resources_in",
    "templates",
]
