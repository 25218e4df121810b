"""What a CapabilityStatement declares, as checks: pure functions, no I/O.

A declaration is a server's word, not proof: the probes (searches.py, coverage.py) try what
matters. These lines are also the cheap part `screen --server` runs before pulling.
"""
from __future__ import annotations

from fhir3t.jsonshape import child_text, items, objs, text
from fhir3t.messages import many, table
from fhir3t.pipeline.servercheck.model import FAIL, OK, WARNING, Check
from fhir3t.pipeline.servercheck.needs import Needs
from fhir3t.transport.urls import clean

STRATEGY_TEXT = table("check.strategy", {
    "everything": "Patient/$everything, one request a patient",
    "batch": "batch Bundles of searches, several patients a request",
    "revinclude": "Patient?_id=...&_revinclude=..., several patients a request",
    "search": "one search per resource type and patient (about 15 requests a patient)",
})
W = table("check.capability", {
    "t.version": "FHIR version",
    "version-none": "the CapabilityStatement does not say which FHIR version it serves{who}; fhir3t reads R4 (4.0.1)",
    "version-r4": "{version} (R4){who}",
    "version-r4b": "{version} (R4B){who}: fhir3t reads R4; the resources it uses read the same in R4B, but not every "
                   "element",
    "version-other": "{version}{who}: fhir3t reads FHIR R4 (4.0.x); resources of another version are read wrongly or "
                     "not at all",
    "who": " ({software})",
    "t.strategy": "fetch strategy",
    "strategy": "{strategy}: {text}",
    "strategy-slow": "{strategy}: {text}: slow with many candidates",
    "t.types": "resource types",
    "types-none": "the CapabilityStatement lists no resource types: whether the server keeps the ones the criteria read "
                  "({n}) cannot be told from it",
    "types-all": "all {n} types the criteria read are declared",
    "types-missing": "not declared by the server: {missing}",
    "type-consequence": "{type} ({consequence})",
    "t.transaction": "transaction / batch",
    "transaction": "transaction declared: push sends each Bundle whole (all entries or none)",
    "batch": "batch only (no transaction): push sends entries one by one; a failed entry leaves the others applied, and "
             "the report lists each",
    "neither": "neither transaction nor batch declared: fhir3t push cannot send its Bundles",
    "t.conditional": "conditional create",
    "conditional": "ResearchStudy conditional create declared (--write-test tries it)",
    "conditional-not": "ResearchStudy conditional create not declared: each push may add another ResearchStudy of the "
                       "study (--write-test tries it on a test server)",
})


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
    who = W["who"](software=f"{clean(software, 80)}{' ' + clean(soft_version, 40) if soft_version else ''}") if software else None
    details = {"fhirVersion": clean(version, 40) if version else None, "software": clean(software, 80) if software else None}
    title = W["t.version"]()
    if not version:
        return Check("fhir-version", title, WARNING, W["version-none"](who=who), details)
    shown = clean(version, 40)
    if version.startswith("4.0."):
        return Check("fhir-version", title, OK, W["version-r4"](version=shown, who=who), details)
    if version.startswith("4.3."):
        return Check("fhir-version", title, WARNING, W["version-r4b"](version=shown, who=who), details)
    return Check("fhir-version", title, FAIL, W["version-other"](version=shown, who=who), details)


def strategy(chosen: str) -> Check:
    status = WARNING if chosen == "search" else OK
    how = STRATEGY_TEXT[chosen]() if chosen in STRATEGY_TEXT else None
    message = (W["strategy-slow"] if chosen == "search" else W["strategy"])(strategy=chosen, text=how)
    return Check("strategy", W["t.strategy"](), status, message, {"strategy": chosen})


def declared_types(cs: dict, needs: Needs) -> Check:
    """The types the criteria read that the statement does not list (the probes then try them)."""
    have = resources(cs)
    wanted = [*(t for t in needs.types if t not in needs.optional), *needs.shared]
    missing = [t for t in wanted if t not in have]
    title = W["t.types"]()
    if not have:
        return Check("resource-types", title, WARNING, W["types-none"](n=len(wanted)), {"missing": []})
    if not missing:
        return Check("resource-types", title, OK, W["types-all"](n=len(wanted)), {"missing": []})
    shown = many((W["type-consequence"](type=t, consequence=needs.consequence(t)) for t in missing), "; ")
    return Check("resource-types", title, WARNING, W["types-missing"](missing=shown), {"missing": missing})


def push_mode(cs: dict) -> Check:
    have = interactions(cs)
    details = {"transaction": "transaction" in have, "batch": "batch" in have}
    title = W["t.transaction"]()
    if "transaction" in have:
        return Check("transaction", title, OK, W["transaction"](), details)
    if "batch" in have:
        return Check("transaction", title, WARNING, W["batch"](), details)
    return Check("transaction", title, FAIL, W["neither"](), details)


def conditional_create(cs: dict) -> Check:
    declared = resources(cs).get("ResearchStudy", {}).get("conditionalCreate")
    details = {"declared": declared is True, "tried": False}
    if declared is True:
        return Check("conditional-create", W["t.conditional"](), OK, W["conditional"](), details)
    return Check("conditional-create", W["t.conditional"](), WARNING, W["conditional-not"](), details)


def export_declared(cs: dict) -> str | None:
    """Where a Patient-level $export can be asked for, or None when the server declares none."""
    if "export" in operations(cs, "Patient") or "export" in operations(cs):
        return "Patient/$export"
    return None
