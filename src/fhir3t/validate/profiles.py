"""Layer 5: fhir3t's own profiles (JSON Schema files in `profiles/schemas/`).

A schema applies to a resource whose `meta.profile` names the schema's `$id` (a canonical from
fhir3t.canonical). Messages come from the schemas' `description`s rather than jsonschema's default
text, which would echo the whole instance (possibly patient data) into the report.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from fhir3t.errors import ConfigError
from fhir3t.validate.issues import Issue

_REQUIRED_KINDS = frozenset({"required", "minItems", "contains", "minContains"})
_VALUE_KINDS = frozenset({"const", "enum", "minimum", "maximum", "type", "minLength"})


def profiles_path() -> Path:
    """fhir3t's own profiles (schemas, StructureDefinitions): a study's folder may override them."""
    from fhir3t.profiles import profile_path

    return profile_path("schemas").parent


@cache
def structure_definitions() -> dict[str, dict]:
    """Canonical URL → fhir3t's StructureDefinitions (`profiles/StructureDefinition-*.json`)."""
    out: dict[str, dict] = {}
    for path in sorted(profiles_path().glob("StructureDefinition-*.json")):
        try:
            sd = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"profile {path} does not load: {exc}") from exc
        out[sd["url"]] = sd
    return out


@cache
def package_questionnaires() -> dict[str, dict]:
    """Canonical URL → the Questionnaires the profiles package ships (fhir3t's screening checklist)."""
    out: dict[str, dict] = {}
    for path in sorted(profiles_path().glob("Questionnaire-*.json")):
        try:
            q = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"profile {path} does not load: {exc}") from exc
        if isinstance(q.get("url"), str):
            out[q["url"]] = q
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


@cache
def schemas() -> dict[str, jsonschema.protocols.Validator]:
    """Canonical URL → compiled validator, for every `profiles/schemas/*.schema.json`."""
    out: dict[str, jsonschema.protocols.Validator] = {}
    for path in sorted((profiles_path() / "schemas").glob("*.schema.json")):
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
            cls.check_schema(schema)
        except (OSError, ValueError, jsonschema.SchemaError) as exc:
            raise ConfigError(f"profile schema {path} does not load: {exc}") from exc
        out[schema["$id"]] = cls(schema)
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
    known = schemas()
    issues: list[Issue] = []
    for canonical in declared:
        validator = known.get(canonical)
        if validator is None:
            if canonical.startswith("https://fhir3t.github.io/"):
                issues.append(Issue("warning", "not-found", f"unknown fhir3t profile {canonical}", f"{rt}.meta.profile"))
            continue  # other profiles (US Core, ...) are not ours to check
        name = canonical.rsplit("/", 1)[-1]
        issues.extend(_translate(rt, name, validator.iter_errors(resource)))
    return issues


def _translate(rt: str, name: str, errors: Iterable[jsonschema.ValidationError]) -> list[Issue]:
    issues = []
    for err in errors:
        path = _path(rt, err.absolute_path)
        kind = err.validator
        desc = err.schema.get("description") if isinstance(err.schema, dict) else None
        if kind == "required":
            missing = [p for p in err.validator_value if isinstance(err.instance, dict) and p not in err.instance]
            for m in missing:
                issues.append(Issue("error", "required", f"profile {name}: missing {m!r}", f"{path}.{m}"))
            continue
        msg = desc or _safe_message(err)
        code = "required" if kind in _REQUIRED_KINDS else "value" if kind in _VALUE_KINDS else "structure"
        issues.append(Issue("error", code, f"profile {name}: {msg}", path))
    return issues


def _safe_message(err: jsonschema.ValidationError) -> str:
    if err.validator in ("const", "enum"):
        return f"value must be {err.validator_value!r}" if err.validator == "const" else (
            f"value must be one of {err.validator_value!r}"
        )
    if err.validator in ("minimum", "maximum"):
        return f"value {err.instance!r} is out of range ({err.validator} {err.validator_value})"
    if err.validator == "type":
        return f"must be of JSON type {err.validator_value}"
    if err.validator == "minItems":
        return f"needs at least {err.validator_value} item(s)"
    return err.message[:200]


def _path(rt: str, parts: Iterable[Any]) -> str:
    out = rt
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out
