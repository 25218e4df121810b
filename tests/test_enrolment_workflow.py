"""The study team's workflow on the embedded SQLite state (pipeline.enrolment over state.StateFile): each step's
FHIR resources, the state machine and the screening checks refusing in one sentence with nothing written, version
conflicts, subject numbers, the timeline, the log and its flow counts."""
from __future__ import annotations

import threading
from datetime import date

import pytest

from conftest import SAMPLES
from fhir3t.canonical import (
    CS_ENROLMENT_ACTION,
    CS_ENROLMENT_REASON,
    EXT_LAST_SUBJECT_NUMBER,
    EXT_PROGRESS,
    ID_SUBJECT_NUMBER,
    USER_SYSTEM,
)
from fhir3t.emit.enrolment import Who
from fhir3t.enrolment import Action, IllegalTransition, Status
from fhir3t.enrolment.refused import Conflict, Refused
from fhir3t.enrolment.timeline import events
from fhir3t.errors import UsageError
from fhir3t.messages import render
from fhir3t.pipeline import FileInputs, Run, screen_files
from fhir3t.pipeline.enrolment import (
    Settings,
    Step,
    act,
    all_records,
    changed_since_last,
    log_rows,
    patient_records,
    record_screening,
)
from fhir3t.safety.subjects import Disposition, subject_number
from fhir3t.state import StateFile
from fhir3t.validate import validate_resource

AS_OF = "2026-11-16"
LI = Who("li.na", "Li Na")
D1 = date(2026, 11, 20)
DAY = date(2026, 11, 16)


@pytest.fixture(scope="module")
def screened(definition_local):
    run = Run.start(definition_local, as_of=AS_OF)
    return run, list(screen_files(definition_local, run, FileInputs((SAMPLES / "screening",))))


@pytest.fixture
def state(tmp_path, definition_local, screened):
    run, results = screened
    st = StateFile(tmp_path / "3t.state.sqlite")
    record_screening(definition_local, run, st, results)
    yield st
    st.close()


def snapshot(st: StateFile) -> list[tuple]:
    """Every row of every table: what 'nothing written' is compared on."""
    return [row for table in ("resources", "versions", "runs", "screenings") for row in st._rows(f"SELECT * FROM {table}")]


def do(definition, run, st, patient, action, **kw):
    kw.setdefault("day", DAY)
    return act(definition, run, st, Step(f"Patient/{patient}", action, who=kw.pop("who", LI), **kw))


# ---- a screening run in the state file ----------------------------------------------------------------------
def test_a_screening_run_keeps_every_result_and_the_subjects_it_may_write(state, screened):
    _run, results = screened
    assert len(state.runs()) == 1 and state.runs()[0]["as_of"] == AS_OF
    assert len(state._rows("SELECT * FROM screenings")) == len(results) == 25
    subjects = state.resources("ResearchSubject")
    assert len(subjects) == 24  # the Patient without an id (p16) can have no subject
    assert {s["status"] for s in subjects} == {"eligible", "candidate", "ineligible"}
    assert len(state.resources("ResearchStudy")) == 1 and len(state.resources("Provenance")) == 1


# ---- the steps ----------------------------------------------------------------------------------------------
def test_contact_consent_enrol_an_eligible_patient(state, definition_local, screened):
    run, _ = screened
    c = do(definition_local, run, state, "p01", Action.CONTACT, medium="phone", note="prefers mornings")
    assert c.after is None and c.before == Status.ELIGIBLE
    k = do(definition_local, run, state, "p01", Action.CONSENT, day=date(2026, 11, 17), form="2.1")
    assert k.after == Status.PENDING_ON_STUDY
    e = do(definition_local, run, state, "p01", Action.ENROL, day=date(2026, 11, 18), d1=D1)
    assert e.after == Status.ON_STUDY and e.number == "3T-001"
    assert render(e.message) == "Patient/p01: enrolled as 3T-001, D1 2026-11-20; status on-study"
    subject = state.get(*e.subject.split("/")).resource
    assert subject["status"] == "on-study" and subject["period"] == {"start": "2026-11-20"}
    assert {"system": ID_SUBJECT_NUMBER, "value": "3T-001"} in subject["identifier"]
    assert subject_number(subject) == "3T-001"  # what the safety report names the subject by
    consent = state.resources("Consent")[0]
    assert subject["consent"] == {"reference": f"Consent/{consent['id']}"}
    assert consent["status"] == "active" and consent["dateTime"] == "2026-11-17"
    assert consent["scope"]["coding"][0]["code"] == "research" and consent["policy"][0]["uri"].endswith(":2.1")
    assert consent["provision"]["data"][0]["reference"]["reference"].startswith("ResearchStudy/")
    comm = state.resources("Communication")[0]
    assert comm["status"] == "completed" and comm["sent"] == "2026-11-16" and comm["note"] == [{"text": "prefers mornings"}]
    assert comm["recipient"] == [{"reference": "Patient/p01"}] and comm["medium"][0]["coding"][0]["code"] == "PHONE"
    provs = [p for p in state.resources("Provenance") if p.get("activity", {}).get("coding")]
    assert sorted(p["activity"]["coding"][0]["code"] for p in provs) == ["consent", "contact", "enrol"]
    for p in provs:  # who and when
        author = p["agent"][0]["who"]
        assert author["identifier"] == {"system": USER_SYSTEM, "value": "li.na"} and author["display"] == "Li Na"
        assert p["recorded"].endswith("Z") and p["activity"]["coding"][0]["system"] == CS_ENROLMENT_ACTION
    progress = [x for x in subject["extension"] if x["url"] == EXT_PROGRESS]
    states = [next(s["valueCodeableConcept"]["coding"][0]["code"] for s in x["extension"] if s["url"] == "subjectState")
              for x in progress]
    assert states == ["eligible", "pending-on-study", "on-study"]  # the screening's, then the team's
    study = state.resources("ResearchStudy")[0]
    assert {"url": EXT_LAST_SUBJECT_NUMBER, "valueString": "3T-001"} in study["extension"]
    for res in (subject, consent, comm, *provs):
        assert [str(i) for i in validate_resource(res) if i.severity in ("fatal", "error")] == []


def test_numbers_follow_the_pattern_and_never_repeat(state, definition_local, screened):
    run, _ = screened
    for p in ("p01", "p02"):
        do(definition_local, run, state, p, Action.CONSENT)
    a = do(definition_local, run, state, "p01", Action.ENROL, d1=D1)
    settings = Settings.of(definition_local, "ZJU-3T-{n:04d}")
    b = act(definition_local, run, state, Step("Patient/p02", Action.ENROL, DAY, LI, d1=D1), settings=settings)
    assert (a.number, b.number) == ("3T-001", "ZJU-3T-0001")  # another pattern starts its own series
    do(definition_local, run, state, "p06", Action.CONSENT)
    assert do(definition_local, run, state, "p06", Action.ENROL, d1=D1).number == "3T-002"


def test_two_coordinators_enrolling_at_once_cannot_give_one_number_twice(state, definition_local, screened):
    run, _ = screened
    for p in ("p01", "p02"):
        do(definition_local, run, state, p, Action.CONSENT)
    barrier = threading.Barrier(2)
    original = state.commit

    def commit_after_both_read(entries):
        barrier.wait(timeout=10)  # both have read the study's version and chosen a number
        return original(entries)
    state.commit = commit_after_both_read  # type: ignore[method-assign]
    outcomes: dict[str, object] = {}

    def enrol(p):
        try:
            outcomes[p] = do(definition_local, run, state, p, Action.ENROL, d1=D1).number
        except Conflict as exc:
            outcomes[p] = exc
    threads = [threading.Thread(target=enrol, args=(p,)) for p in ("p01", "p02")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    numbers = [v for v in outcomes.values() if isinstance(v, str)]
    conflicts = [v for v in outcomes.values() if isinstance(v, Conflict)]
    assert numbers == ["3T-001"] and len(conflicts) == 1
    assert "ResearchStudy/" in str(conflicts[0]) and "nothing was written" in str(conflicts[0])
    state.commit = original  # type: ignore[method-assign]
    loser = next(p for p, v in outcomes.items() if isinstance(v, Conflict))
    assert do(definition_local, run, state, loser, Action.ENROL, d1=D1).number == "3T-002"  # tried again


def test_decline_with_a_coded_reason(state, definition_local, screened):
    run, _ = screened
    d = do(definition_local, run, state, "p02", Action.DECLINE, reason="patient-declined")
    subject = state.get(*d.subject.split("/")).resource
    assert subject["status"] == "not-registered"
    last = [x for x in subject["extension"] if x["url"] == EXT_PROGRESS][-1]
    reason = next(s for s in last["extension"] if s["url"] == "reason")["valueCodeableConcept"]["coding"][0]
    assert reason == {"system": CS_ENROLMENT_REASON, "code": "patient-declined"}
    assert Disposition(progress_extension=EXT_PROGRESS).reasons(subject) == ["patient-declined"]
    # a patient fhir3t never screened: the step starts the subject
    n = do(definition_local, run, state, "p-referred", Action.DECLINE, reason="not-reachable")
    assert n.before is None and n.after == Status.NOT_REGISTERED


def test_withdrawal_ends_the_period_with_a_reason(state, definition_local, screened):
    run, _ = screened
    do(definition_local, run, state, "p06", Action.CONSENT)
    do(definition_local, run, state, "p06", Action.ENROL, d1=D1)
    with pytest.raises(UsageError, match="before the subject's D1"):
        do(definition_local, run, state, "p06", Action.WITHDRAW, day=date(2026, 11, 19), reason="adverse-event")
    w = do(definition_local, run, state, "p06", Action.WITHDRAW, day=date(2027, 1, 5), reason="adverse-event")
    subject = state.get(*w.subject.split("/")).resource
    assert subject["status"] == "withdrawn" and subject["period"] == {"start": "2026-11-20", "end": "2027-01-05"}
    cfg = Disposition(frozenset({"withdrawn"}), EXT_PROGRESS, frozenset({"withdrawal-of-consent"}),
                      frozenset({"lost-to-follow-up"}))
    assert cfg.of("withdrawn", subject) == "withdrawn"
    off = do(definition_local, run, state, "p01", Action.CONSENT)
    assert off.after == Status.PENDING_ON_STUDY
    do(definition_local, run, state, "p01", Action.ENROL, d1=D1)
    lost = do(definition_local, run, state, "p01", Action.WITHDRAW, day=date(2027, 2, 1), reason="lost-to-follow-up",
              status=Status.OFF_STUDY)
    assert lost.after == Status.OFF_STUDY and cfg.of("off-study", state.get(*lost.subject.split("/")).resource) \
        == "lost-to-follow-up"


# ---- refusals: one sentence, nothing written --------------------------------------------------------------------
def test_enrolling_a_patient_the_latest_screening_does_not_allow_is_refused_unless_overridden(state, definition_local,
                                                                                              screened):
    run, _ = screened
    do(definition_local, run, state, "p03", Action.CONSENT)  # a candidate: E7-E10 unresolved
    before = snapshot(state)
    with pytest.raises(Refused) as err:
        do(definition_local, run, state, "p03", Action.ENROL, d1=D1)
    assert str(err.value) == ("the patient's latest screening is candidate, unresolved: E7-hbv, E8-hcv, E9-hiv, E10-tb: "
                              "not enrolled; enrol with --override REASON if the investigator decided otherwise")
    assert "\n" not in str(err.value) and err.value.exit_code == 8
    assert snapshot(state) == before
    done = do(definition_local, run, state, "p03", Action.ENROL, d1=D1, override="serologies negative on paper, PI approved")
    assert done.after == Status.ON_STUDY and done.overridden is not None
    prov = next(p for p in state.resources("Provenance") if p.get("reason"))
    assert prov["reason"][0]["text"] == "serologies negative on paper, PI approved"


def test_an_ineligible_patient_cannot_even_be_consented_and_an_incomplete_checklist_is_named(state, definition_local,
                                                                                            screened):
    run, _ = screened
    before = snapshot(state)
    with pytest.raises(IllegalTransition, match=r"^cannot enrol a subject who is ineligible$"):
        do(definition_local, run, state, "p07", Action.ENROL, d1=D1)
    assert snapshot(state) == before
    # a patient whose only open criteria are the team's checklist: the refusal says so
    result = next(r for r in screened[1] if r.patient == "Patient/p01").to_dict()
    for c in result["criteria"]:
        if c["id"] in ("I6-contraception", "I7-compliance"):
            c["result"] = "unknown"
    result["status"] = "candidate"
    state.record_run("2026-11-17T00:00:00Z", "2026-11-17", "2026-11-17", "x", [result], [])
    do(definition_local, run, state, "p01", Action.CONSENT)
    with pytest.raises(Refused, match=r"^the patient's screening checklist is not complete \(I6-contraception and "
                                      r"I7-compliance\): not enrolled"):
        do(definition_local, run, state, "p01", Action.ENROL, d1=D1)


@pytest.mark.parametrize("action,before_status", [
    (Action.ENROL, "eligible"),  # consent comes first
    (Action.WITHDRAW, "eligible"),  # not in the study: decline, not withdraw
    (Action.CONSENT, "not-registered"),
])
def test_a_step_the_state_machine_forbids_writes_nothing(state, definition_local, screened, action, before_status):
    run, _ = screened
    if before_status == "not-registered":
        do(definition_local, run, state, "p01", Action.DECLINE, reason="patient-declined")
    before = snapshot(state)
    with pytest.raises(IllegalTransition) as err:
        do(definition_local, run, state, "p01", action, d1=D1, reason="adverse-event")
    assert str(err.value) == f"cannot {action.value} a subject who is {before_status}"
    assert snapshot(state) == before


def test_a_stale_version_is_a_conflict_and_writes_nothing(state, definition_local, screened):
    run, _ = screened
    k = do(definition_local, run, state, "p01", Action.CONSENT)  # version 2
    seen = k.version
    do(definition_local, run, state, "p01", Action.CONTACT)  # a contact does not change the subject
    do(definition_local, run, state, "p01", Action.DECLINE, reason="patient-declined", expected=seen)  # version 3
    before = snapshot(state)
    with pytest.raises(Conflict) as err:  # a second coordinator acting on the page they opened at version 2
        do(definition_local, run, state, "p01", Action.WITHDRAW, reason="other", expected=seen)
    assert f"(version {seen}, now 3)" in str(err.value) and "nothing was written" in str(err.value)
    assert snapshot(state) == before


@pytest.mark.parametrize("kw,message", [
    ({"action": Action.DECLINE}, "decline needs --reason, one of patient-declined | not-reachable | investigator-decision"),
    ({"action": Action.DECLINE, "reason": "bored"}, "decline --reason bored is not one of"),
    ({"action": Action.ENROL}, "enrol needs --d1 DATE"),
    ({"action": Action.CONTACT, "medium": "pigeon"}, "contact --medium pigeon is not one of"),
])
def test_incomplete_steps_are_usage_errors(state, definition_local, screened, kw, message):
    run, _ = screened
    before = snapshot(state)
    action = kw.pop("action")
    with pytest.raises(UsageError, match=message):
        do(definition_local, run, state, "p01", action, **kw)
    assert snapshot(state) == before


# ---- a second screening, the timeline, the log ------------------------------------------------------------------
def test_a_second_screening_leaves_the_teams_statuses_and_the_timeline_says_what_changed(state, definition_local,
                                                                                         screened):
    run, results = screened
    do(definition_local, run, state, "p01", Action.CONSENT)
    do(definition_local, run, state, "p01", Action.ENROL, d1=D1)
    do(definition_local, run, state, "p02", Action.DECLINE, reason="patient-declined")
    later = Run.start(definition_local, as_of="2026-11-17")
    again = list(screen_files(definition_local, later, FileInputs((SAMPLES / "screening",))))
    kept = record_screening(definition_local, later, state, again).kept
    assert sorted((p, team) for p, team, _ in kept) == [("Patient/p01", "on-study"), ("Patient/p02", "not-registered")]
    statuses = {s["individual"]["reference"]: s["status"] for s in state.resources("ResearchSubject")}
    assert statuses["Patient/p01"] == "on-study" and statuses["Patient/p02"] == "not-registered"
    records = patient_records(definition_local, later, state, "Patient/p04")
    texts = [render(e.text) for e in events(records)]
    assert texts[0] == "screened (as of 2026-11-16): candidate" or texts[0].startswith("screened")
    p01 = patient_records(definition_local, later, state, "Patient/p01")
    lines = [(e.day.isoformat(), e.kind, render(e.text), e.who) for e in events(p01)]
    assert lines[:3] == [("2026-11-16", "screening", "screened: eligible", None),
                         ("2026-11-16", "consent", "consent signed (form 1.0)", "Li Na"),
                         ("2026-11-16", "enrolment", "enrolled as 3T-001 (on-study), D1 2026-11-20", "Li Na")]
    assert lines[3][:2] == ("2026-11-17", "screening")
    changed = {r.patient for r in changed_since_last(all_records(definition_local, later, state))}
    assert changed == {r.patient for r, a in zip(results, again) if r.status != a.status or
                       [c.result for c in r.criteria] != [c.result for c in a.criteria]}


def test_the_log_lists_every_screened_patient_with_the_flow_counts(state, definition_local, screened):
    run, results = screened
    do(definition_local, run, state, "p01", Action.CONTACT, medium="phone")
    do(definition_local, run, state, "p01", Action.CONSENT)
    do(definition_local, run, state, "p01", Action.ENROL, d1=D1)
    do(definition_local, run, state, "p06", Action.CONTACT, reason="recipient-unavailable")
    do(definition_local, run, state, "p06", Action.DECLINE, reason="not-reachable")
    do(definition_local, run, state, "p02", Action.CONTACT)
    do(definition_local, run, state, "p02", Action.DECLINE, reason="patient-declined")
    rows, flow = log_rows(definition_local, run, state)
    assert len(rows) == len(results) == 25
    by = {r.patient: r for r in rows}
    p01 = by["Patient/p01"]
    assert (p01.display_id, p01.enrolled, p01.subject_number, p01.d1, p01.consented, p01.contact_attempts, p01.reached) \
        == ("MRN-100001", True, "3T-001", D1, DAY, 1, True)
    assert (by["Patient/p06"].reached, by["Patient/p06"].not_enrolled_reason) == (False, "not-reachable")
    assert by["Patient/p08"].not_met == ("I4-dlco",) and by["Patient/p08"].stop_reason == "ineligible:I4-dlco"
    eligible = sum(1 for r in results if r.status == "eligible")
    ineligible = sum(1 for r in results if r.status == "ineligible")
    candidates = sum(1 for r in results if r.status == "candidate")
    assert {k: flow[k] for k in ("screened", "eligible", "contacted", "consented", "enrolled")} == \
        {"screened": 25, "eligible": eligible, "contacted": 3, "consented": 1, "enrolled": 1}
    steps = {s["from"]: s for s in flow["steps"]}
    first = {x["reason"]: x["patients"] for x in steps["screened"]["reasons"]}
    assert first["candidate"] == candidates and sum(v for k, v in first.items() if k.startswith("ineligible:")) == ineligible
    order = [x["reason"] for x in steps["screened"]["reasons"] if x["reason"].startswith("ineligible:")]
    ids = [c.id for c in definition_local.criteria.criteria]
    assert order == sorted(order, key=lambda r: ids.index(r.split(":", 1)[1]))  # the criteria's written order
    assert {x["reason"]: x["patients"] for x in steps["contacted"]["reasons"]} == {"not-reachable": 1, "patient-declined": 1}
    assert steps["eligible"]["stopped"] == eligible - 3
    rows_since, _ = log_rows(definition_local, run, state, since=date(2026, 11, 17))
    assert rows_since == []
