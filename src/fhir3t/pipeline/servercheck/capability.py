"""What a CapabilityStatement declares, as checks: pure functions, no I/O.

A declaration is a server's word, not proof: the probes (searches.py, coverage.py) try what
matters. These lines are also the cheap part `screen --server` runs before pulling.
"""
from __future__ import annotations

from fhir3t.jsonshape import child_text, items, objs, text
from fhir3t.pipeline.servercheck.model import FAIL, OK, WARNING, Check
from fhir3t.pipeline.servercheck.needs import Needs
from fhir3t.transport.urls import clean

STRATEGY_TEXT = {
    "everything": "Patient/$everything, one request a patient",
    "batch": "batch Bundles of searches, several patients a request",
    "revinclude": "Patient?_id=...&_revinclude=..., several patients a request",
    "search": "one search per resource type and patient (about 15 requests a patient)",
}


def rests(cs: dict) -> list[dict]:
    return [r for r in objs(items(cs.get("rest"))) if r.get("mode", "server") == "server"]


def resources(cs: dict) -> dict[str, dict]:
    """type -> its `rest.resource` entry."""
    out: dict[str, dict] = {}
    for rest in rests(cs):
        for r in objs(items(rest.get("resource"))):
            rtype = text(r.get("type"))
            if rtype:
                out[rtype] = r
    return out


def interactions(cs: dict) -> set[str]:
    """System-level interactions (transaction, batch, ...)."""
    return {c for rest in rests(cs) for c in (child_text(i, "code") for i in objs(items(rest.get("interaction")))) if c}


def operations(cs: dict, rtype: str | None = None) -> set[str]:
    """Operation names (without `$`) declared for the system (rtype None) or a resource type."""
    if rtype is None:
        ops = [o for rest in rests(cs) for o in objs(items(rest.get("operation")))]
    else:
        ops = objs(items(resources(cs).get(rtype, {}).get("operation")))
    return {n.lstrip("$") for n in (child_text(o, "name") for o in ops) if n}


def search_params(cs: dict, rtype: str) -> set[str] | None:
    """Declared search parameter names of a type; None when the statement lists none for it."""
    declared = objs(items(resources(cs).get(rtype, {}).get("searchParam")))
    names = {n for n in (child_text(p, "name") for p in declared) if n}
    return names or None


def fhir_version(cs: dict) -> Check:
    version = text(cs.get("fhirVersion"))
    software = child_text(cs.get("software") if isinstance(cs.get("software"), dict) else {}, "name")
    soft_version = child_text(cs.get("software") if isinstance(cs.get("software"), dict) else {}, "version")
    who = f" ({clean(software, 80)}{' ' + clean(soft_version, 40) if soft_version else ''})" if software else ""
    details = {"fhirVersion": clean(version, 40) if version else None, "software": clean(software, 80) if software else None}
    if not version:
        return Check("fhir-version", "FHIR version", WARNING,
                     f"the CapabilityStatement does not say which FHIR version it serves{who}; fhir3t reads R4 (4.0.1)",
                     details)
    shown = clean(version, 40)
    if version.startswith("4.0."):
        return Check("fhir-version", "FHIR version", OK, f"{shown} (R4){who}", details)
    if version.startswith("4.3."):
        return Check("fhir-version", "FHIR version", WARNING,
                     f"{shown} (R4B){who}: fhir3t reads R4; the resources it uses read the same in R4B, but not every "
                     "element", details)
    return Check("fhir-version", "FHIR version", FAIL,
                 f"{shown}{who}: fhir3t reads FHIR R4 (4.0.x); resources of another version are read wrongly or not "
                 "at all", details)


def strategy(chosen: str) -> Check:
    status = WARNING if chosen == "search" else OK
    extra = ": slow with many candidates" if chosen == "search" else ""
    return Check("strategy", "fetch strategy", status, f"{chosen}: {STRATEGY_TEXT.get(chosen, '')}{extra}",
                 {"strategy": chosen})


def declared_types(cs: dict, needs: Needs) -> Check:
    """The types the criteria read that the statement does not list (the probes then try them)."""
    have = resources(cs)
    wanted = [*needs.types, *needs.shared]
    missing = [t for t in wanted if t not in have]
    if not have:
        return Check("resource-types", "resource types", WARNING,
                     "the CapabilityStatement lists no resource types: whether the server keeps the ones the criteria "
                     f"read ({len(wanted)}) cannot be told from it", {"missing": []})
    if not missing:
        return Check("resource-types", "resource types", OK,
                     f"all {len(wanted)} types the criteria read are declared", {"missing": []})
    shown = "; ".join(f"{t} ({needs.consequence(t)})" for t in missing)
    return Check("resource-types", "resource types", WARNING,
                 f"not declared by the server: {shown}", {"missing": missing})


def push_mode(cs: dict) -> Check:
    have = interactions(cs)
    details = {"transaction": "transaction" in have, "batch": "batch" in have}
    if "transaction" in have:
        return Check("transaction", "transaction / batch", OK,
                     "transaction declared: push sends each Bundle whole (all entries or none)", details)
    if "batch" in have:
        return Check("transaction", "transaction / batch", WARNING,
                     "batch only (no transaction): push sends entries one by one; a failed entry leaves the others "
                     "applied, and the report lists each", details)
    return Check("transaction", "transaction / batch", FAIL,
                 "neither transaction nor batch declared: fhir3t push cannot send its Bundles", details)


def conditional_create(cs: dict) -> Check:
    declared = resources(cs).get("ResearchStudy", {}).get("conditionalCreate")
    details = {"declared": declared is True, "tried": False}
    if declared is True:
        return Check("conditional-create", "conditional create", OK,
                     "ResearchStudy conditional create declared (--write-test tries it)", details)
    return Check("conditional-create", "conditional create", WARNING,
                 "ResearchStudy conditional create not declared: each push may add another ResearchStudy of the study "
                 "(--write-test tries it on a test server)", details)


def export_declared(cs: dict) -> str | None:
    """Where a Patient-level $export can be asked for, or None when the server declares none."""
    if "export" in operations(cs, "Patient") or "export" in operations(cs):
        return "Patient/$export"
    return None
