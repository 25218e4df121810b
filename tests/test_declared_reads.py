"""Every rule kind reads only what it declares: the read filter and the record builder keep exactly
the declared reads, so an undeclared read would silently see nothing (a confirmed diagnosis turned
'not-met', an exclusion turned 'eligible'). These tests fail the moment a kind reads a resource
type or a top-level element it did not declare."""
from __future__ import annotations

import random
import sys
from datetime import date

import orjson
import pytest

from conftest import ROOT, SAMPLES
from fhir3t.criteria.context import Context
from fhir3t.criteria.kinds import KINDS
from fhir3t.errors import Problems
from fhir3t.pipeline import Definition, Run
from fhir3t.records.build import RecordBuilder
from fhir3t.records.model import PatientRecord
from fhir3t.sources.grouping import GroupingSource


class Tracked(dict):
    """A resource that records which top-level elements are read."""

    def __init__(self, rtype: str, data: dict, seen: set[tuple[str, str]]) -> None:
        super().__init__(data)
        self._t, self._seen = rtype, seen

    def _mark(self, key: object) -> None:
        if isinstance(key, str):
            self._seen.add((self._t, key))

    def get(self, key, default=None):
        self._mark(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self._mark(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self._mark(key)
        return super().__contains__(key)


def _declared(element: str, declared: frozenset[str]) -> bool:
    element = element[1:] if element.startswith("_") else element  # a primitive's extensions go with it
    if element in declared or element in ("resourceType", "id"):
        return True
    # effectiveDateTime -> effective[x], statusReasonCodeableConcept -> statusReason[x]
    return any(element[:i] + "[x]" in declared for i in range(1, len(element)) if element[i].isupper())


def _records(definition: Definition, paths) -> list[PatientRecord]:
    problems = Problems()
    run = Run.start(definition, problems=problems)
    source = GroupingSource(paths, problems, run.filter)
    builder = RecordBuilder(run.filter, problems)
    return [builder.build(raw) for raw in source]


def _corpus(tmp_path) -> list:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_screen import make_patient

    rng = random.Random(3)
    for i in range(40):
        (tmp_path / f"s{i}.json").write_bytes(orjson.dumps(make_patient(i, rng)))
    return [SAMPLES / "screening", SAMPLES / "safety", ROOT / "tests" / "data" / "ndjson", tmp_path]


def test_every_rule_kind_declares_its_reads():
    assert KINDS, "no rule kinds found"
    for name, cls in KINDS.items():
        assert "reads" in vars(cls) and "build" in vars(cls) and "evaluate" in vars(cls), name
        assert cls.schema()["properties"]["rule"] == {"const": name}


def test_rules_read_only_declared_types_and_elements(tmp_path, monkeypatch):
    definition = Definition.load(concept_maps=[SAMPLES / "conceptmaps" / "hospital-local.json"])
    plan = definition.screener.plan
    seen: set[tuple[str, str]] = set()
    asked: set[str] = set()
    real_visible, real_unread = Context.visible, PatientRecord.unread_of

    def visible(self, rtype):
        asked.add(rtype)
        return real_visible(self, rtype)

    def unread_of(self, rtype):
        asked.add(rtype)
        return real_unread(self, rtype)

    monkeypatch.setattr(Context, "visible", visible)
    monkeypatch.setattr(PatientRecord, "unread_of", unread_of)
    records = _records(definition, _corpus(tmp_path))
    assert len(records) > 60
    for rec in records:
        if rec.patient is not None:
            rec.patient = Tracked("Patient", rec.patient, seen)
        for group in (*rec.by_type.values(), *rec.unread.values(), *rec.suspects.values()):
            for r in group:
                if r.raw:
                    r.raw = Tracked(r.type, r.raw, seen)
        definition.screener.screen(rec, date(2026, 11, 16))
    undeclared_types = sorted(asked - plan.types)
    assert not undeclared_types, f"rules read types they did not declare: {undeclared_types}"
    bad = sorted((t, e) for t, e in seen if not _declared(e, plan.elements.get(t, frozenset())))
    assert not bad, f"rules read elements they did not declare: {bad}"
    assert ("Observation", "valueString") in seen and ("Condition", "clinicalStatus") in seen  # the probe works


@pytest.mark.parametrize("rtype", sorted({r.type for c in Definition.load().criteria.criteria for r in c.rule.reads()}))
def test_the_read_filter_keeps_every_declared_type(rtype):
    """A type a rule declares passes the sources' type check (no rule reads a type the filter drops)."""
    definition = Definition.load()
    assert rtype == "Patient" or rtype in definition.relevance.types
