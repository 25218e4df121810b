"""Load the safety data in profiles/safety/ (grading tables, ranges, units, causality, study rules)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from fhir3t.errors import ConfigError
from fhir3t.messages import table
from fhir3t.profiles import Profiles
from fhir3t.safety.baseline import BaselineData
from fhir3t.safety.clinical import Drug
from fhir3t.safety.derive import GradingData
from fhir3t.safety.grading import Bound, DefaultRanges, LabTest
from fhir3t.safety.special import AesiList, ReferenceSafety
from fhir3t.safety.subjects import Disposition
from fhir3t.safety.terms import Terms
from fhir3t.safety.units import Units
from fhir3t.terminology import Code, Terminology

#: safety data of the study profile that does not load (the CLI's error line)
E = table("safety.config", {
    "not-found": "{path}: file not found",
    "not-json": "{path}: not valid JSON ({error})",
    "no-safety": "{path}: the study profile names no safety rules ('safety')",
    "does-not-load": "{folder}: safety data does not load: {error}",
    "lab-kind": "{folder}/ctcae-v5-labs.json: test {test} has a bad direction or unit_kind",
    "grade-1": "{folder}/ctcae-v5-labs.json: test {test}: grade 1 must start at the {limit}",
    "no-range": "{folder}/reference-ranges.json: no default range for {test}",
    "unknown-drug": "{folder}/lab-causality.json: {test} names an unknown drug",
    "no-term": "{folder}/ctcae-v5-terms.json: no CTCAE term for the graded test {test}",
})

FILES = ("ctcae-v5-labs.json", "reference-ranges.json", "unit-conversions.json", "lab-causality.json", "study.json",
         "ctcae-v5-terms.json", "clinical-grading.json", "aesi.json", "reference-safety-information.json", "baseline.json")
LOINC = "http://loinc.org"


@dataclass(frozen=True)
class SafetyConfig:
    study_system: str
    study_value: str
    statuses: frozenset[str]
    follow_up_days: int
    inpatient_classes: frozenset[str]
    drugs: tuple[Drug, ...]
    death_code: dict[str, str]
    resolved_statuses: frozenset[str]
    tests: tuple[LabTest, ...]
    by_code: dict[Code, LabTest]
    defaults: DefaultRanges
    units: Units
    lab_causality: dict[str, tuple[str, ...]]
    digest: str  # sha256 over the data files: names the exact rules findings came from
    related: frozenset[str]  # study.json related_causality: assessments that make an AE treatment-related
    terms: Terms  # CTCAE v5.0 terms with their MedDRA codes
    grade_extensions: tuple[str, ...]  # extensions carrying a CTCAE grade on a Condition / AdverseEvent
    severity_grades: dict[Code, int]  # severity coding -> grade (mild 1, moderate 2, severe 3)
    stop_statuses: frozenset[str]
    stop_reasons: dict[Code, str]  # statusReason coding -> display: stopped for an adverse reaction
    conservative: frozenset[str]  # study.json conservative_causality: also related in the sensitivity line
    target_enrolment: int | None
    disposition: Disposition
    grading: GradingData  # clinical-grading.json: grades of clinical AEs derived from the record
    aesi: AesiList  # aesi.json
    rsi: ReferenceSafety  # reference-safety-information.json: expectedness, SUSARs
    baseline: BaselineData  # baseline.json

    @property
    def study_label(self) -> str:
        """The study as messages name it (its registry identifier)."""
        return self.study_value

    def test_for(self, codes: tuple[Code, ...]) -> LabTest | None:
        for c in codes:
            t = self.by_code.get(c)
            if t is not None:
                return t
        return None


def _read(folder: Path, name: str) -> tuple[dict, bytes]:
    path = folder / name
    try:
        raw = path.read_bytes()
        return json.loads(raw), raw
    except FileNotFoundError:
        raise ConfigError(E["not-found"](path=str(path))) from None
    except ValueError as exc:
        raise ConfigError(E["not-json"](path=str(path), error=str(exc))) from None


def load_config(tx: Terminology, folder: Path | None = None, *, profiles: Profiles | None = None) -> SafetyConfig:
    if folder is None:
        from fhir3t.study import load_study

        profile = load_study(profiles)
        if profile.safety_file is None:
            raise ConfigError(E["no-safety"](path=str(profile.source)))
        folder = profile.safety_file.parent
    data: dict[str, dict] = {}
    digest = hashlib.sha256()
    for name in FILES:
        data[name], raw = _read(folder, name)
        digest.update(name.encode() + raw)
    try:
        tests = tuple(
            LabTest(t["id"], t["term"], tuple(t["loinc"]), t["direction"], t["unit_kind"],
                    tuple(Bound.from_data(b) for b in t["bounds"]))
            for t in data["ctcae-v5-labs.json"]["tests"]
        )
        units = Units.from_data(data["unit-conversions.json"])
        defaults = DefaultRanges.from_data(data["reference-ranges.json"])
        study = data["study.json"]
        drugs = []
        for d in study["drugs"]:
            known = tx.valueset(d["known_reactions"])
            drugs.append(Drug(d["id"], tx.valueset(d["valueset"]), known, d["code"]))
        causality = {k: tuple(v) for k, v in data["lab-causality.json"]["labs"].items()}
        terms = Terms.from_data(data["ctcae-v5-terms.json"])
        related = frozenset(study["related_causality"])
        grades = study["condition_grades"]
        severity = {(g["system"], g["code"]): int(g["grade"]) for g in grades["severity"]}
        stops = study["discontinuation_reasons"]
        stop_reasons = {(c["system"], c["code"]): c.get("display") or c["code"] for c in stops["codings"]}
        conservative = frozenset(study["conservative_causality"])
        target = study.get("target_enrolment")
        disposition = Disposition.from_data(study["disposition"])
        grading = GradingData.from_data(data["clinical-grading.json"], tx)
        drug_ids_list = [d.id for d in drugs]
        aesi = AesiList.from_data(data["aesi.json"], terms, drug_ids_list)
        rsi = ReferenceSafety.from_data(data["reference-safety-information.json"], terms, drug_ids_list)
        baseline = BaselineData.from_data(data["baseline.json"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(E["does-not-load"](folder=str(folder), error=repr(exc))) from None
    by_code: dict[Code, LabTest] = {}
    drug_ids = {d.id for d in drugs}
    for t in tests:
        if t.direction not in ("increase", "decrease") or t.unit_kind not in units.kinds:
            raise ConfigError(E["lab-kind"](folder=str(folder), test=repr(t.id)))
        if t.bounds[0].ref != ("uln" if t.direction == "increase" else "lln"):
            raise ConfigError(E["grade-1"](folder=str(folder), test=repr(t.id),
                                           limit="ULN" if t.direction == "increase" else "LLN"))
        if t.id not in defaults.by_test:
            raise ConfigError(E["no-range"](folder=str(folder), test=repr(t.id)))
        if not set(causality.get(t.id, ())) <= drug_ids:
            raise ConfigError(E["unknown-drug"](folder=str(folder), test=repr(t.id)))
        if t.id not in terms.by_lab:
            raise ConfigError(E["no-term"](folder=str(folder), test=repr(t.id)))
        for code in t.loinc:
            by_code[(LOINC, code)] = t
    return SafetyConfig(
        study["study"]["system"], study["study"]["value"], frozenset(study["subject_statuses"]),
        int(study["follow_up_days_after_end"]), frozenset(study["inpatient_encounter_classes"]), tuple(drugs),
        dict(study["death"]), frozenset(study["condition_resolved_statuses"]), tests, by_code, defaults, units,
        causality, digest.hexdigest(), related, terms, tuple(grades["extensions"]), severity,
        frozenset(stops["statuses"]), stop_reasons, conservative, int(target) if target is not None else None,
        disposition, grading, aesi, rsi, baseline,
    )
