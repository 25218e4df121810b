"""Layer 5: fhir3t's own profiles, checked by the StructureDefinitions the package ships.

A resource whose `meta.profile` names one of `profiles/StructureDefinition-*.json` is checked by that
definition itself: the elements its differential constrains (cardinality, fixed and pattern values,
required bindings to the package's value sets, minValue/maxValue, value types, closed slicing, its own
FHIRPath constraints), read from its snapshot, where a slice of an extension this package defines carries
that extension's definition. tools/build_profiles.py generates the snapshots from the same differentials,
so what fhir3t checks and what any other tool loading the package checks are one set of rules. Messages
name the element and the rule, never the instance's values (they may be patient data).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fhir3t.errors import ConfigError
from fhir3t.messages import table
from fhir3t.validate import fhirpath
from fhir3t.validate.issues import Issue

#: {label}: the element's name, quoted by the caller (repr) where the English quotes it
MESSAGES = table("validate.profile", {
    "min": "profile {profile}: '{label}' must occur {min}..{max} times (found {n})",
    "max": "profile {profile}: '{label}' must occur {min}..{max} times (found {n})",
    "fixed": "profile {profile}: {label} must be {expected}",
    "pattern": "profile {profile}: {label} must match {expected}",
    "binding": "profile {profile}: {label} must be a code from {valueset}",
    "range": "profile {profile}: {label} is out of range ({low}..{high})",
    "type": "profile {profile}: {label} must be of type {types}",
    "closed": "profile {profile}: {label} is not one of the slices this profile allows ({slices})",
    "constraint": "profile {profile}: {key}: {human}",
    "not-evaluated": "profile {profile}: {key} could not be evaluated, so it is not checked",
    "unknown": "unknown fhir3t profile {url}",
    "not-loaded": "profile {path} does not load: {error}",
})


def profiles_path() -> Path:
    """fhir3t's FHIR package (StructureDefinitions, CodeSystems, ValueSets, Questionnaire): a study's folder
    that ships its own package (a package.json) replaces it, else the built-in one is used."""
    from fhir3t.profiles import profile_path

    return profile_path("package.json").parent


def _load(pattern: str) -> list[dict]:
    out = []
    for path in sorted(profiles_path().glob(pattern)):
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise ConfigError(MESSAGES["not-loaded"](path=str(path), error=str(exc))) from exc
    return out


@cache
def structure_definitions() -> dict[str, dict]:
    """Canonical URL → fhir3t's StructureDefinitions (`profiles/StructureDefinition-*.json`)."""
    return {sd["url"]: sd for sd in _load("StructureDefinition-*.json")}


@cache
def package_questionnaires() -> dict[str, dict]:
    """Canonical URL → the Questionnaires the profiles package ships (fhir3t's screening checklist)."""
    return {q["url"]: q for q in _load("Questionnaire-*.json") if isinstance(q.get("url"), str)}


@cache
def package_codes() -> dict[str, frozenset[str]]:
    """ValueSet URL → its codes, for the package's value sets (each includes whole package code systems)."""
    systems = {cs["url"]: frozenset(c["code"] for c in cs.get("concept", [])) for cs in _load("CodeSystem-*.json")}
    out: dict[str, frozenset[str]] = {}
    for vs in _load("ValueSet-*.json"):
        codes: set[str] = set()
        for inc in vs.get("compose", {}).get("include", []):
            codes |= {c["code"] for c in inc.get("concept", [])} or systems.get(inc.get("system", ""), frozenset())
        out[vs["url"]] = frozenset(codes)
    return out


@cache
def package_extensions() -> dict[str, dict]:
    """Extension URL → context and value types, for the extensions fhir3t defines."""
    out: dict[str, dict] = {}
    for url, sd in structure_definitions().items():
        if sd.get("type") != "Extension":
            continue
        els = (sd.get("snapshot") or sd.get("differential") or {}).get("element", [])
        value: dict = next((e for e in els if e.get("id") == "Extension.value[x]"), {})
        out[url] = {
            "context": [c["expression"] for c in sd.get("context", []) if c.get("type") == "element"],
            "types": [] if value.get("max") == "0" else [t["code"] for t in value.get("type", [])],
            "min": value.get("min", 0),
        }
    return out


@dataclass
class Profile:
    """A StructureDefinition made ready to check: its snapshot by id, and the ids its rules are on."""

    name: str
    url: str
    by_id: dict[str, dict]
    checked: list[str]
    slices: dict[str, list[str]] = field(default_factory=dict)  # sliced element id → its slice ids
    extensions: dict[str, str] = field(default_factory=dict)  # slice id → the package extension it holds


@cache
def compiled() -> dict[str, Profile]:
    sds = structure_definitions()
    out = {}
    for url, sd in sds.items():
        by_id = {e["id"]: e for e in sd["snapshot"]["element"]}
        checked = [e["id"] for e in sd["differential"]["element"] if "." in e["id"] or e.get("constraint")]
        # a slice typed with a package extension: its instances are checked by that extension's definition
        extensions = {e["id"]: p for e in sd["snapshot"]["element"] if e.get("sliceName")
                      for t in e.get("type", []) for p in t.get("profile", []) if p in sds}
        slices: dict[str, list[str]] = {}
        for e in sd["snapshot"]["element"]:
            if e.get("sliceName"):
                slices.setdefault(e["id"].rsplit(":", 1)[0], []).append(e["id"])
        out[url] = Profile(sd["id"], url, by_id, [c for c in dict.fromkeys(checked) if c in by_id], slices,
                           extensions)
    return out


def declared_profiles(resource: dict) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return [p.split("|")[0] for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []


def check_profiles(resource: dict) -> list[Issue]:
    rt = resource.get("resourceType")
    declared = declared_profiles(resource)
    if not declared or not isinstance(rt, str):
        return []
    known = compiled()
    issues: list[Issue] = []
    for canonical in declared:
        prof = known.get(canonical)
        if prof is None:
            if canonical.startswith("https://fhir3t.github.io/"):
                issues.append(Issue("warning", "not-found", MESSAGES["unknown"](url=canonical),
                                    f"{rt}.meta.profile"))
            continue  # other profiles (US Core, ...) are not ours to check
        issues.extend(_check(prof, resource, rt))
    return issues


def _check(prof: Profile, resource: dict, rt: str, root: dict | None = None) -> Iterator[Issue]:
    for eid in prof.checked:
        el = prof.by_id[eid]
        if "." not in eid:
            yield from _values(prof, el, eid, resource, rt, root or resource)
            continue
        head, _, last = eid.rpartition(".")
        for parent, at in _nodes(prof, resource, rt, head):
            if not isinstance(parent, dict):
                continue
            items = list(_select(prof, parent, at, last, eid))
            yield from _cardinality(prof, el, eid, items, at, last)
            for value, where in items:
                yield from _values(prof, el, eid, value, where, root or resource)
    known = compiled()
    for slice_id, url in prof.extensions.items():
        head, _, last = slice_id.rpartition(".")
        for parent, at in _nodes(prof, resource, rt, head):
            if isinstance(parent, dict):
                for value, where in _select(prof, parent, at, last, slice_id):
                    if isinstance(value, dict):
                        yield from _check(known[url], value, where, root or resource)


def _nodes(prof: Profile, resource: dict, rt: str, eid: str) -> Iterator[tuple[Any, str]]:
    """The instances of the element `eid` (slices applied) with their locations."""
    if "." not in eid:
        yield resource, rt
        return
    head, _, last = eid.rpartition(".")
    for parent, at in _nodes(prof, resource, rt, head):
        if isinstance(parent, dict):
            yield from _select(prof, parent, at, last, eid)


def _select(prof: Profile, parent: dict, at: str, segment: str, eid: str) -> Iterator[tuple[Any, str]]:
    name, _, slice_name = segment.partition(":")
    if name.endswith("[x]"):
        keys = [k for k in parent if k.startswith(name[:-3]) and k[len(name) - 3:][:1].isupper()]
        for k in keys:
            yield parent[k], f"{at}.{k}"
        return
    got = parent.get(name)
    values = got if isinstance(got, list) else [] if got is None else [got]
    for i, v in enumerate(values):
        if slice_name and not _in_slice(prof, eid, v):
            continue
        yield v, f"{at}.{name}[{i}]" if isinstance(got, list) else f"{at}.{name}"


def _in_slice(prof: Profile, slice_id: str, value: Any) -> bool:
    el = prof.by_id.get(slice_id, {})
    for t in el.get("type", []):
        for p in t.get("profile", []):
            return isinstance(value, dict) and value.get("url") == p
    url = prof.by_id.get(f"{slice_id}.url", {}).get("fixedUri")
    if url is not None:
        return isinstance(value, dict) and value.get("url") == url
    pattern = next((v for k, v in el.items() if k.startswith(("pattern", "fixed"))), None)
    return pattern is not None and _matches(value, pattern)


def _matches(value: Any, pattern: Any) -> bool:
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(_matches(value.get(k), v) for k, v in pattern.items())
    if isinstance(pattern, list):
        return isinstance(value, list) and all(any(_matches(x, p) for x in value) for p in pattern)
    return bool(value == pattern)


def _label(eid: str) -> str:
    last = eid.rsplit(".", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else last


def _cardinality(prof: Profile, el: dict, eid: str, items: list, at: str, segment: str) -> Iterator[Issue]:
    lo, hi = el.get("min", 0), el.get("max", "*")
    n = len(items)
    where = f"{at}.{segment.split(':', 1)[0]}"
    label = _label(eid)
    url = next((p for t in el.get("type", []) for p in t.get("profile", [])), None) if el.get("sliceName") else None
    kw: dict[str, str | int] = {"profile": prof.name, "label": f"{label} ({url})" if url else label, "min": str(lo), "max": str(hi), "n": n}
    if n < lo:
        yield Issue("error", "required", MESSAGES["min"](**kw), where)
    elif hi != "*" and n > int(hi):
        yield Issue("error", "structure", MESSAGES["max"](**kw), where)
    rules = el.get("slicing", {}).get("rules")
    if rules == "closed" and eid in prof.slices:
        allowed = prof.slices[eid]
        for value, loc in items:
            if not any(_in_slice(prof, s, value) for s in allowed):
                yield Issue("error", "structure", MESSAGES["closed"](
                    profile=prof.name, label=repr(_label(eid)), slices=", ".join(_label(s) for s in allowed)), loc)


def _values(prof: Profile, el: dict, eid: str, value: Any, where: str, resource: dict) -> Iterator[Issue]:
    label = repr(_label(eid))
    for k, v in el.items():
        if k.startswith("fixed") and value != v:
            yield Issue("error", "value", MESSAGES["fixed"](profile=prof.name, label=label, expected=repr(v)),
                        where)
        elif k.startswith("pattern") and not el.get("sliceName") and not _matches(value, v):
            yield Issue("error", "value", MESSAGES["pattern"](profile=prof.name, label=label,
                                                                 expected=json.dumps(v)), where)
    if eid.endswith("[x]"):
        types = [t["code"] for t in el.get("type", [])]
        key = where.rsplit(".", 1)[-1]
        if types and not any(key.lower() == ("value" + t).lower() for t in types):
            yield Issue("error", "structure", MESSAGES["type"](profile=prof.name, label=label,
                                                                  types=", ".join(types)), where)
    low = next((v for k, v in el.items() if k.startswith("minValue")), None)
    high = next((v for k, v in el.items() if k.startswith("maxValue")), None)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and (
            (low is not None and value < low) or (high is not None and value > high)):
        yield Issue("error", "value", MESSAGES["range"](profile=prof.name, label=label, low=str(low), high=str(high)),
                    where)
    binding = el.get("binding", {})
    codes = package_codes().get(binding.get("valueSet", ""))
    if binding.get("strength") == "required" and codes is not None and isinstance(value, str) and value not in codes:
        yield Issue("error", "value", MESSAGES["binding"](profile=prof.name, label=label,
                                                             valueset=binding["valueSet"]), where)
    for c in el.get("constraint", []):
        if c.get("source") not in (prof.url, *structure_definitions()) or not c.get("expression"):
            continue  # the base spec's own constraints: the walk evaluates them
        ok = fhirpath.holds(c["expression"], value, resource, el.get("path", ""))
        if ok is None:
            yield Issue("warning", "processing", MESSAGES["not-evaluated"](profile=prof.name, key=c["key"]),
                        where)
        elif not ok:
            yield Issue("error", "invariant", MESSAGES["constraint"](profile=prof.name, key=c["key"],
                                                                       human=c["human"]), where)
