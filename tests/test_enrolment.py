"""The ResearchSubject lifecycle (src/fhir3t/enrolment): who owns each status, the team's transitions,
the push policy, and that no other module writes a status code."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from fhir3t.enrolment import (
    SCREENING_STATUSES,
    TEAM_STATUSES,
    Action,
    Existing,
    IllegalTransition,
    Status,
    Verdict,
    allowed_actions,
    decide,
    is_screening,
    is_teams,
    transition,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "fhir3t"
R4_CODES = ["candidate", "eligible", "follow-up", "ineligible", "not-registered", "off-study", "on-study",
            "on-study-intervention", "on-study-observation", "pending-on-study", "potential-candidate", "screening",
            "withdrawn"]


def test_every_r4_status_is_known_and_owned_by_exactly_one_side():
    assert sorted(s.value for s in Status) == R4_CODES
    assert SCREENING_STATUSES | TEAM_STATUSES == set(Status) and not SCREENING_STATUSES & TEAM_STATUSES
    assert {s.value for s in SCREENING_STATUSES} == {"candidate", "eligible", "ineligible", "potential-candidate"}


@pytest.mark.parametrize("value", [None, "On-Study", "active", "", ["on-study"], 3, " eligible"])
def test_a_status_fhir3t_cannot_read_is_the_teams(value):
    assert is_teams(value) and not is_screening(value)


# ---- the push policy -----------------------------------------------------------------------------
@pytest.mark.parametrize("team", sorted(s.value for s in TEAM_STATUSES))
def test_a_team_status_of_this_study_is_kept_whatever_screening_says(team):
    for new in ("eligible", "ineligible", "candidate"):
        d = decide(new, "ours", [Existing("theirs", team, True)])
        assert d.verdict is Verdict.KEEP and d.target == "theirs" and d.current == team


def test_our_own_subject_in_a_team_status_is_kept_too():
    assert decide("ineligible", "ours", [Existing("ours", "pending-on-study", None)]).verdict is Verdict.KEEP


def test_a_subject_whose_study_cannot_be_told_blocks_only_when_it_is_in_a_team_status():
    assert decide("eligible", "ours", [Existing("x", "on-study", None)]).verdict is Verdict.BLOCK
    assert decide("eligible", "ours", [Existing("x", "candidate", None)]).verdict is Verdict.WRITE


def test_another_studys_subject_blocks_nothing():
    assert decide("eligible", "ours", [Existing("x", "on-study", False)]).verdict is Verdict.WRITE


def test_our_studys_subject_under_another_id_is_updated_in_place_and_one_without_an_id_blocks():
    d = decide("ineligible", "ours", [Existing("hospital-made", "candidate", True)])
    assert d.verdict is Verdict.UPDATE and d.target == "hospital-made"
    assert decide("ineligible", "ours", [Existing(None, "candidate", True)]).verdict is Verdict.BLOCK
    assert decide("ineligible", "ours", [Existing("ours", "eligible", True)]).verdict is Verdict.WRITE


def test_a_team_write_is_not_the_screening_policys_business():
    assert decide("on-study", "ours", [Existing("ours", "pending-on-study", True)]).verdict is Verdict.WRITE


# ---- the team's transitions ----------------------------------------------------------------------
@pytest.mark.parametrize("action,before,after", [
    (Action.CONSENT, None, Status.PENDING_ON_STUDY),
    (Action.CONSENT, "eligible", Status.PENDING_ON_STUDY),
    (Action.ENROL, "pending-on-study", Status.ON_STUDY),
    (Action.DECLINE, "candidate", Status.NOT_REGISTERED),
    (Action.DECLINE, "pending-on-study", Status.NOT_REGISTERED),
    (Action.WITHDRAW, "on-study", Status.WITHDRAWN),
    (Action.WITHDRAW, "pending-on-study", Status.WITHDRAWN),
    (Action.COMPLETE, "follow-up", Status.OFF_STUDY),
    (Action.CONTACT, "eligible", None),
])
def test_allowed_transitions(action, before, after):
    t = transition(action, before, exists=before is not None)
    assert t.after == after


@pytest.mark.parametrize("action,before", [
    (Action.ENROL, "eligible"),          # consent comes first
    (Action.ENROL, None),
    (Action.CONSENT, "on-study"),
    (Action.WITHDRAW, "eligible"),       # not in the study: decline, not withdraw
    (Action.DECLINE, "on-study"),
    (Action.CONTACT, "withdrawn"),
    (Action.ENROL, "On-Study"),          # unreadable: a person looks first
])
def test_forbidden_transitions_are_one_sentence_errors(action, before):
    with pytest.raises(IllegalTransition) as err:
        transition(action, before, exists=before is not None)
    assert "\n" not in str(err.value) and str(err.value)


def test_the_forms_offer_exactly_the_allowed_actions():
    assert allowed_actions(None, exists=False) == [Action.CONTACT, Action.CONSENT, Action.DECLINE]
    assert allowed_actions("pending-on-study") == [Action.CONTACT, Action.ENROL, Action.DECLINE, Action.WITHDRAW]
    assert allowed_actions("withdrawn") == []


# ---- one home --------------------------------------------------------------------------------------
def _string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)
    return out


# "screening" and "candidate" are ordinary words as well (the screening window, a candidate search); the
# codes that are nothing but ResearchSubject statuses must be written in one module only
@pytest.mark.parametrize("code", [c for c in R4_CODES if c not in ("screening", "candidate")])
def test_each_status_code_is_written_in_exactly_one_module(code):
    homes = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if code in _string_literals(p))
    assert homes == ["enrolment/status.py"], homes
