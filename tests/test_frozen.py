"""fhir3t.frozen: the values a run keeps pickle as their class and field values, and come back equal."""
from __future__ import annotations

import pickle
import sys
from dataclasses import fields
from datetime import date

import fhir3t.criteria.model
import fhir3t.messages.core
import fhir3t.messages.reasons  # noqa: F401  (declares Clause)
from fhir3t.criteria.model import CriterionResult, PatientId, ScreeningResult
from fhir3t.frozen import Frozen, Shared
from fhir3t.messages import Text, many
from fhir3t.messages.reasons import ABSENT, ABSENT_MANY, Clause, reason_text


def _subclasses(cls: type) -> set[type]:
    """The classes deriving from `cls` as their modules name them (`dataclass(slots=True)` makes a new class
    and leaves the one it replaced among the subclasses until it is collected)."""
    out = set()
    for sub in cls.__subclasses__():
        if getattr(sys.modules[sub.__module__], sub.__name__, None) is sub:
            out.add(sub)
        out |= _subclasses(sub)
    return out


def test_every_frozen_class_is_a_slotted_frozen_dataclass_whose_fields_are_all_init_fields():
    classes = _subclasses(Frozen) - {Shared}
    assert {c.__name__ for c in classes} >= {"Text", "Msg", "Many", "Clause", "CriterionResult", "ScreeningResult"}
    for cls in classes:
        fs = fields(cls)
        assert cls.__dataclass_params__.frozen, cls  # type: ignore[attr-defined]
        assert tuple(f.name for f in fs) == cls.__slots__, cls  # what __reduce__ hands __init__, in order
        assert all(f.init for f in fs), cls




def _result() -> ScreeningResult:
    finding = ABSENT_MANY(whats=many([Text.of("anti-MDA5", {"zh-CN": "抗MDA5抗体"}), "b"], "or"))
    crit = CriterionResult("I3-mda5", "inclusion", "unknown", ("Observation/1",), (Clause(finding, None, "2026-01-02"),))
    return ScreeningResult("Patient/p1", "candidate", (crit,), date(2026, 11, 16), date(2026, 11, 17), "src",
                           (finding,), (PatientId("urn:mrn", "123", True),), "Name")


def test_a_result_pickles_through_its_fields_and_comes_back_equal_in_every_field():
    r = _result()
    back = pickle.loads(pickle.dumps(r))
    assert back == r
    assert (back.source, back.identifiers, back.name) == (r.source, r.identifiers, r.name)  # compare=False fields too
    assert back.to_dict("zh-CN") == r.to_dict("zh-CN")
    assert b"_dataclass_setstate" not in pickle.dumps(r)  # not the dataclass default (fields() per object)


def test_a_reason_text_cached_by_identity_follows_the_reason_not_its_address():
    r = _result().criteria[0].explanation
    first = reason_text(r)
    assert first == reason_text(r) and "anti-MDA5" in first
    other = (Clause(ABSENT(what="HBsAg")),)
    assert reason_text(other) != first and "HBsAg" in reason_text(other)


def test_joined_reasons_say_a_repeated_clause_once_in_first_order_and_fold_absences_few_or_many():
    from fhir3t.messages.reasons import join_reasons

    a, b = Clause(ABSENT_MANY(whats="x"), ABSENT(what="y")), Clause(ABSENT_MANY(whats="z"))
    assert join_reasons([(a,), (b, a)]) == (a, b)
    assert join_reasons([(a,)]) == (a,)
    folded = join_reasons([(Clause(ABSENT(what="HBsAg")),), (a,), (Clause(ABSENT(what="HCV")),)])
    assert folded[1:] == (a,) and reason_text(folded[:1]) == "no record found of HBsAg or HCV"
    many_parts = [(Clause(ABSENT_MANY(whats=str(i % 7))),) for i in range(30)]  # past the few-clause path
    assert join_reasons(many_parts) == tuple(Clause(ABSENT_MANY(whats=str(i))) for i in range(7))
    # one finding with two hints (two parts reading the same record) is said once, with the first hint
    one, other = Clause(ABSENT_MANY(whats="w"), ABSENT(what="hint 1")), Clause(ABSENT_MANY(whats="v"))
    hinted = [(one,), (other,), (Clause(ABSENT_MANY(whats="w"), ABSENT(what="hint 2")),)]
    assert join_reasons(hinted) == (one, other)
    assert join_reasons(hinted * 6) == (one, other)  # the same past the few-clause path


def test_a_criterion_dict_is_fresh_every_call_and_the_result_s_own():
    crit = _result().criteria[0]
    first = crit.to_dict()
    first["evidence"].append("Observation/planted")
    first["reason"] = "planted"
    again = crit.to_dict()
    assert again["evidence"] == ["Observation/1"] and again["reason"] == reason_text(crit.explanation)
    assert crit.to_dict("zh-CN")["reason_localized"] == reason_text(crit.explanation, "zh-CN")
    other = CriterionResult("I2-dm", "inclusion", "not-met", (), (Clause(ABSENT(what="HBsAg")),))
    assert other.to_dict()["id"] == "I2-dm" and "HBsAg" in other.to_dict()["reason"]
