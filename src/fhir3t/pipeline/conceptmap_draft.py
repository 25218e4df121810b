"""A FHIR ConceptMap draft of a hospital's unmapped local codes, for a person to review (`fhir3t codes PATH
--conceptmap-draft FILE`).

Every local code the input uses (a code system fhir3t does not know, and no ConceptMap translates the
code) becomes an element with its display, how many resources carry it and of which types; where its
display names a concept the criteria read (fhir3t.pipeline.mapmatch), up to three candidate targets,
each with a confidence and a comment saying which name matched. A candidate has **no equivalence**:
R4 requires one, and fhir3t refuses a ConceptMap target without it, so the draft cannot translate
anything until a reviewer sets `equivalence` ("equivalent" to use the mapping) on the targets they
confirm and deletes the others. The draft's status is "draft" until they set it to "active".

Counts and terminology only: no patient identifiers, no free text, no values.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fhir3t.ids import stable_id
from fhir3t.pipeline.codes import CodeRow
from fhir3t.pipeline.definition import Definition
from fhir3t.pipeline.mapmatch import MAX_CANDIDATES, Candidate, Target, candidates, rank, targets

EXT = "https://fhir3t.github.io/fhir/StructureDefinition/"
EXT_COUNT = EXT + "conceptmap-draft-count"  # element: resources carrying the local code
EXT_TYPE = EXT + "conceptmap-draft-resource-type"  # element: the resource types it was found on (repeating)
EXT_CONFIDENCE = EXT + "conceptmap-draft-confidence"  # target: the share of the display its names explain

MESSAGES = {
    "description": "Draft written by fhir3t codes from {inputs} resources' local codes: every code of a code system "
                   "fhir3t does not know that no ConceptMap given translates, with how many resources carry it. Where "
                   "a display names a concept the study's criteria read, up to three candidate targets are listed "
                   "with a confidence; none has an equivalence yet. To review: for each target you confirm set "
                   "equivalence (\"equivalent\" to use the mapping), delete the ones you do not, add targets the "
                   "draft could not propose, set status to \"active\"; then pass the file to --concept-map.",
    "comment": "proposed: the display '{display}' matches '{matched}', a name of {system} {code} ({display_target}) in "
               "value set {valuesets}; confidence {confidence:.2f}{extends}. Set equivalence to confirm, or delete "
               "this target",
    "extends": "; the local code extends {code}",
}


def unmapped(rows: Iterable[CodeRow], definition: Definition) -> list[CodeRow]:
    """Rows of local codes: a system fhir3t does not know, no translation for the code (rows with no system: none)."""
    tx = definition.tx
    out = []
    for r in rows:
        if not r.system:
            continue
        system = tx.systems.system(r.system)
        if tx.systems.known(system):
            continue
        if tx.maps.translate((system, tx.systems.code(system, r.code))):
            continue
        out.append(r)
    return out


def draft(rows: Iterable[CodeRow], definition: Definition, inputs: str, today: datetime | None = None) -> dict[str, Any]:
    """The ConceptMap draft of the rows' local codes (see the module doc)."""
    plan = definition.plan
    others = list(definition.tx.valuesets.values())
    pools: dict[str, list[Target]] = {}
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for row in unmapped(rows, definition):
        pool = pools.get(row.type)
        if pool is None:
            pool = pools[row.type] = targets(plan.valuesets.get(row.type, ()), others)
        key = (row.system, row.code)
        m = merged.setdefault(key, {"row": row, "count": 0, "types": [], "displays": Counter(), "candidates": {}})
        m["count"] += row.count
        m["types"].append(row.type)
        m["displays"].update(row.displays)
        for shown, _n in row.displays.most_common(3):  # a code may be written several ways: the best reading wins
            for c in candidates(shown, row.code, pool):
                k = (c.target.system, c.target.code)
                if k not in m["candidates"] or c.confidence > m["candidates"][k].confidence:
                    m["candidates"][k] = c
    # one place per local code: the group of its best candidate's system, with that system's candidates; a code
    # with none goes where most of its code system's codes went (else where the criteria read its type)
    best: dict[tuple[str, str], list[Candidate]] = {}
    for key, m in merged.items():
        ranked = sorted(m["candidates"].values(), key=rank)
        best[key] = [c for c in ranked if c.target.system == ranked[0].target.system][:MAX_CANDIDATES] if ranked else []
    usual: dict[str, Counter[str]] = {}
    for (system, _code), cands in best.items():
        if cands:
            usual.setdefault(system, Counter())[cands[0].target.system] += 1
    fallback = _main_systems(pools)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (system, code), m in sorted(merged.items(), key=lambda kv: (kv[0][0], -kv[1]["count"], kv[0][1])):
        cands = best[(system, code)]
        if cands:
            target_system = cands[0].target.system
        elif system in usual:
            target_system = usual[system].most_common(1)[0][0]
        else:
            target_system = fallback.get(m["types"][0], "")
        display = m["displays"].most_common(1)[0][0] if m["displays"] else ""
        groups.setdefault((system, target_system), []).append(_element(code, display, m, cands))
    stamp = (today or datetime.now(UTC)).date().isoformat()
    return {
        "resourceType": "ConceptMap",
        "id": stable_id("ConceptMap-draft", inputs, stamp)[:64],
        "url": f"urn:uuid:{stable_id('ConceptMap-draft', inputs, stamp)}",
        "name": "LocalCodesDraft",
        "title": "Local codes to map (draft written by fhir3t codes)",
        "status": "draft",
        "experimental": True,
        "date": stamp,
        "description": MESSAGES["description"].format(inputs=inputs),
        "group": [{"source": s, **({"target": t} if t else {}), "element": els} for (s, t), els in groups.items()],
    }


def _element(code: str, display: str, m: dict[str, Any], cands: list[Candidate]) -> dict[str, Any]:
    ext: list[dict[str, Any]] = [{"url": EXT_COUNT, "valueInteger": m["count"]}]
    ext += [{"url": EXT_TYPE, "valueCode": t} for t in dict.fromkeys(m["types"])]
    el: dict[str, Any] = {"extension": ext, "code": code}
    if display:
        el["display"] = display
    if cands:
        el["target"] = [_target(c, display) for c in cands]
    return el


def _target(c: Candidate, display: str) -> dict[str, Any]:
    t = c.target
    comment = MESSAGES["comment"].format(
        display=display, matched=c.matched, system=t.system, code=t.code, display_target=t.display,
        valuesets=", ".join(t.valuesets), confidence=c.confidence,
        extends=MESSAGES["extends"].format(code=t.code) if c.extends else "")
    return {"extension": [{"url": EXT_CONFIDENCE, "valueDecimal": c.confidence}], "code": t.code, "display": t.display,
            "comment": comment}


def _main_systems(pools: dict[str, list[Target]]) -> dict[str, str]:
    """Per resource type, the code system most of the criteria's concepts for it are in (a draft group's target)."""
    out = {}
    for rtype, pool in pools.items():
        counts = Counter(t.system for t in pool)
        if counts:
            out[rtype] = counts.most_common(1)[0][0]
    return out


__all__ = ["EXT_CONFIDENCE", "EXT_COUNT", "EXT_TYPE", "draft", "unmapped"]
