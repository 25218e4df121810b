"""Build rule trees from a reviewed criteria file (JSON, checked against its JSON Schema)."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from fhir3t.criteria.context import WindowSpec
from fhir3t.criteria.readings import Readings
from fhir3t.criteria.rules import (
    AdverseEventSuspect,
    Age,
    AllergyRule,
    Checklist,
    Combine,
    ConditionRule,
    Gender,
    ImmunizationRule,
    MedicationRule,
    Not,
    ObservationRule,
    OtherStudy,
    RecommendationRule,
    Rule,
    StudyConsent,
)
from fhir3t.dates import Duration
from fhir3t.errors import ConfigError
from fhir3t.profiles import profiles_dir
from fhir3t.terminology import Terminology

DEFAULT_CRITERIA = "nct06438679.json"


@dataclass(frozen=True)
class Criterion:
    id: str
    kind: str
    title: str
    description: str
    requires_review: bool
    rule: Rule


@dataclass
class CriteriaSet:
    id: str
    version: str
    title: str
    study_system: str
    study_value: str
    checklist: str
    windows: dict[str, WindowSpec]
    criteria: list[Criterion]
    digest: str  # sha256 over criteria + value-set files: names the exact rules a result came from
    source: dict[str, Any]


def load_criteria(tx: Terminology, path: Path | None = None) -> CriteriaSet:
    path = path or profiles_dir() / "criteria" / DEFAULT_CRITERIA
    try:
        raw_bytes = Path(path).read_bytes()
        data = orjson.loads(raw_bytes)
    except FileNotFoundError:
        raise ConfigError(f"{path}: criteria file not found") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    schema = orjson.loads((profiles_dir() / "criteria" / "criteria.schema.json").read_bytes())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        loc = "/".join(str(p) for p in e.path) or "(top)"
        raise ConfigError(f"{path}: {loc}: {e.message}")
    windows: dict[str, WindowSpec] = {}
    for name, w in data["windows"].items():
        windows[name] = WindowSpec(name, w["anchor"], Duration.parse(w["before"]))
    builder = _Builder(tx, data, windows, str(path))
    criteria = []
    seen: set[str] = set()
    for c in data["criteria"]:
        if c["id"] in seen:
            raise ConfigError(f"{path}: duplicate criterion id {c['id']}")
        seen.add(c["id"])
        criteria.append(Criterion(c["id"], c["kind"], c["title"], c["description"],
                                  bool(c.get("requires_review", False)), builder.node(c["rule"], c["id"])))
    digest = hashlib.sha256(raw_bytes)
    for vs_path in sorted((profiles_dir() / "valuesets").glob("*.json")):
        digest.update(vs_path.name.encode())
        digest.update(vs_path.read_bytes())
    return CriteriaSet(data["id"], data["version"], data.get("title", data["id"]), data["study"]["system"],
                       data["study"]["value"], data["checklist"], windows, criteria, digest.hexdigest(), data)


class _Builder:
    def __init__(self, tx: Terminology, data: dict, windows: dict[str, WindowSpec], where: str) -> None:
        self.tx = tx
        self.windows = windows
        self.where = where
        self.checklist = data["checklist"]
        rd = data["readings"]
        self.readings = Readings(
            tx.valueset(rd["positive_valueset"]), tx.valueset(rd["negative_valueset"]),
            frozenset(s.strip().lower() for s in rd["positive_strings"]),
            frozenset(s.strip().lower() for s in rd["negative_strings"]),
        )

    def _window(self, spec: dict, at: str) -> str:
        name = spec.get("window")
        if name not in self.windows:
            raise ConfigError(f"{self.where}: {at}: window {name!r} is not defined in 'windows'")
        return name

    def node(self, spec: dict, at: str) -> Rule:  # noqa: C901 - replaced by the rule-kind registry
        label = spec.get("label", "")
        for op in ("all", "any", "either"):
            if op in spec:
                return Combine(op, [self.node(s, f"{at}/{op}[{i}]") for i, s in enumerate(spec[op])], label)
        if "not" in spec:
            return Not(self.node(spec["not"], f"{at}/not"), label)
        kind = spec["rule"]
        vs = self.tx.valueset
        try:
            if kind == "age":
                if ("min_years" in spec) == ("below_years" in spec):
                    raise ConfigError(f"{self.where}: {at}: age needs exactly one of min_years, below_years")
                return Age(spec.get("min_years"), spec.get("below_years"), label or "age")
            if kind == "gender":
                return Gender(frozenset(spec["in"]), label or "sex")
            if kind == "condition":
                when = spec["when"]
                window = self._window(spec, at) if when in ("window", "active-or-window") else None
                return ConditionRule(vs(spec["valueset"]), when, window,
                                     tuple(spec.get("dates", ("onset", "abatement", "recorded"))),
                                     spec.get("on_match", "met"), label, spec.get("hint"))
            if kind == "observation":
                read = spec["read"]
                ratio = None
                if "ratio" in spec:
                    r = spec["ratio"]
                    ratio = (vs(r["numerator"]), vs(r["denominator"]), float(r.get("scale", 1)))
                grades = None
                if read == "grade":
                    grades = {g.strip().lower(): "met" for g in spec["grades"]["met"]}
                    grades.update({g.strip().lower(): "not-met" for g in spec["grades"]["not-met"]})
                if read == "threshold" and ("op" not in spec or "value" not in spec):
                    raise ConfigError(f"{self.where}: {at}: threshold needs op and value")
                if read == "coded" and "met_valueset" not in spec:
                    raise ConfigError(f"{self.where}: {at}: coded needs met_valueset")
                return ObservationRule(
                    vs(spec["valueset"]), self._window(spec, at), read, spec.get("absent", "unknown"),
                    self.readings, bool(spec.get("viral_load")), bool(spec.get("positive_only")), grades,
                    spec.get("op"), spec.get("value"), spec.get("unit"), spec.get("conversions"), ratio,
                    vs(spec["met_valueset"]) if "met_valueset" in spec else None,
                    vs(spec["not_met_valueset"]) if "not_met_valueset" in spec else None,
                    bool(spec.get("include_reports")), spec.get("hint"), label,
                )
            if kind == "checklist":
                return Checklist(spec["link_id"], self.checklist, spec.get("on_true", "met"),
                                 spec.get("on_false", "not-met"), label)
            if kind == "study-consent":
                return StudyConsent(label or "consent for this study")
            if kind == "medication":
                mode = spec["mode"]
                return MedicationRule(vs(spec["valueset"]), mode,
                                      self._window(spec, at) if mode == "exposure" else None,
                                      float(spec.get("half_lives", 0)),
                                      vs(spec["reasons"]) if mode == "stopped-for-reason" else None, label)
            if kind == "allergy":
                return AllergyRule(vs(spec["valueset"]), bool(spec.get("active_only", True)), label)
            if kind == "adverse-event-suspect":
                return AdverseEventSuspect(vs(spec["valueset"]), label)
            if kind == "other-study":
                return OtherStudy(frozenset(spec["statuses"]), self._window(spec, at),
                                  label or "participation in another interventional study")
            if kind == "immunization":
                return ImmunizationRule(self._window(spec, at), vs(spec["valueset"]) if "valueset" in spec else None,
                                        label or "vaccination")
            if kind == "immunization-recommendation":
                return RecommendationRule(vs(spec["valueset"]), label or "planned live vaccine")
        except KeyError as exc:
            raise ConfigError(f"{self.where}: {at}: rule {kind!r} is missing {exc}") from None
        raise ConfigError(f"{self.where}: {at}: unknown rule kind {kind!r}")
