"""`fhir3t subject PATIENT ACTION`: record one step of the study team (contact, consent, enrol, decline, withdraw),
or `--show` a patient's timeline; on the hospital's FHIR server (--server) or in the state file (--state)."""
from __future__ import annotations

import argparse
import getpass
import os
import sys
import textwrap

import orjson

from fhir3t.cli.common import day
from fhir3t.cli.server_options import add_server_options
from fhir3t.cli.state_options import add_state_option
from fhir3t.enrolment.reasons import CONTACT_NOT_DONE, MEDIA, NOT_ENROLLED_REASONS, WITHDRAWAL_REASONS
from fhir3t.enrolment.transitions import ALTERNATIVES, Action
from fhir3t.errors import EXIT_OK, UsageError
from fhir3t.messages import Message, render

#: the actions a coordinator names on the command line (independent checks call these names)
ACTIONS = ("contact", "consent", "enrol", "decline", "withdraw")
OTHER_STATUSES = sorted({s.value for options in ALTERNATIVES.values() for s in options})

NO_PATIENT = Message("subject.no-patient", "no such patient in {where}: give the FHIR id, Patient/ID or an identifier "
                                           "value as written")
NEEDS_ACTION = Message("subject.needs-action", "give an action ({actions}) or --show")
BOTH = Message("subject.both", "give an action or --show, not both")
OVERRIDE_NOTE = Message("subject.override", "note: {text}")
TIMELINE_HEAD = Message("subject.head", "{patient} ({ref}): {status}{number}")
HEAD_NUMBER = Message("subject.head-number", ", subject {number}, D1 {d1}")
NO_RECORDS = Message("subject.no-records", "nothing recorded yet")
ALLOWED = Message("subject.allowed", "next: {actions}")
NOTHING_ALLOWED = Message("subject.nothing-allowed", "next: no step (the state machine allows none from {status})")
NOT_A_SUBJECT = Message("subject.not-a-subject", "not a subject of the study")
LINE = Message("subject.line", "  {day}  {event}")
LINE_BY = Message("subject.line-by", "  {day}  {event}  (by {who})")
NO_DAY = "----------"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "subject",
        help="record a study team's step for a patient (contact, consent, enrol, decline, withdraw) or show their timeline",
        description=textwrap.fill(
            "Record one step of the study team for a patient, as FHIR resources written in one transaction with a "
            "Provenance naming who (--by) and when (--date): contact (a Communication: reached, or --reason why not), "
            "consent (a Consent: research, active, the form version; status pending-on-study), enrol (status "
            "on-study, period.start = --d1, the next subject number; refused when the latest screening is not "
            "eligible or the checklist is incomplete, unless --override REASON), decline (not-registered with "
            "--reason), withdraw (withdrawn, or --status off-study; period.end = --date; --reason). Every step goes "
            "through the enrolment state machine: one it forbids is refused in one sentence and nothing is written. "
            "--show prints the patient's timeline. On the FHIR server (--server, or [server] url) or in the SQLite "
            "state file (--state FILE).", width=100),
        epilog=("Examples:\n"
                "  fhir3t subject MRN-100001 --show\n"
                "  fhir3t subject MRN-100001 contact --medium phone --by li.na\n"
                "  fhir3t subject MRN-100001 contact --reason recipient-unavailable --note 'call after 5 pm'\n"
                "  fhir3t subject MRN-100001 consent --date 2026-11-18 --form 1.0\n"
                "  fhir3t subject MRN-100001 enrol --d1 2026-11-20\n"
                "  fhir3t subject MRN-100002 decline --reason patient-declined\n"
                "  fhir3t subject MRN-100006 withdraw --reason adverse-event --date 2027-01-05\n"
                f"Reasons: decline {' | '.join(NOT_ENROLLED_REASONS)};\n"
                f"  withdraw {' | '.join(WITHDRAWAL_REASONS)};\n"
                f"  contact (not reached) {' | '.join(CONTACT_NOT_DONE)}.\n"
                "Exit codes: 0 recorded / shown; 2 usage; 4 bad configuration; 5 server error; 6 auth error;\n"
                "8 refused, nothing written (the state machine, the screening, or a record changed since it was read)."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("patient", metavar="PATIENT", help="the patient: FHIR id, Patient/ID, or an identifier value (MRN)")
    p.add_argument("action", metavar="ACTION", nargs="?", choices=ACTIONS, help=" | ".join(ACTIONS))
    p.add_argument("--show", action="store_true", help="print the patient's timeline")
    p.add_argument("--date", type=day, metavar="DATE", help="when it happened (default: today)")
    p.add_argument("--d1", type=day, metavar="DATE", help="enrol: the day of the first dose (ResearchSubject.period.start)")
    p.add_argument("--reason", metavar="CODE", help="decline / withdraw: why (required); contact: why not reached")
    p.add_argument("--note", metavar="TEXT", help="a note (kept in the record; never logged)")
    p.add_argument("--by", metavar="WHO", help="who did it (default: $FHIR3T_USER, else your login name)")
    p.add_argument("--medium", choices=sorted(MEDIA), help="contact: how")
    p.add_argument("--form", metavar="VERSION", help="consent: the consent form version (default: [enrolment] "
                                                     "consent_form, else the study's)")
    p.add_argument("--status", choices=OTHER_STATUSES,
                   help="enrol into on-study-intervention, or record a withdrawal as off-study")
    p.add_argument("--override", metavar="REASON", help="enrol although the latest screening does not allow it; the "
                                                        "reason is recorded in the Provenance")
    p.add_argument("--if-match", metavar="VERSION", dest="if_match",
                   help="the subject's version you saw: refused if it has changed since (default: the version read now)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="--show as text or JSON")
    p.add_argument("--concept-map", action="append", default=[], metavar="FILE",
                   help="FHIR ConceptMap translating hospital-local codes, for the screening an enrolment on a server "
                        "checks (repeatable; [terminology] ones are added)")
    add_state_option(p)
    add_server_options(p, pull=False, push=False)
    p.set_defaults(run=run)


def default_user() -> str:
    return os.environ.get("FHIR3T_USER") or getpass.getuser()


def run(args: argparse.Namespace) -> int:
    from fhir3t.cli.common import load_definition
    from fhir3t.cli.state_options import open_store, settings
    from fhir3t.dates import today_utc
    from fhir3t.emit.enrolment import Who
    from fhir3t.enrolment import Status
    from fhir3t.pipeline import Run
    from fhir3t.pipeline.enrolment import Step, act, patient_records, server_screener
    from fhir3t.state import ServerState

    if args.show and args.action:
        raise UsageError(render(BOTH()))
    if not args.show and not args.action:
        raise UsageError(render(NEEDS_ACTION(actions=" | ".join(ACTIONS))))
    definition = load_definition(args)
    run_ = Run.start(definition, as_of=args.date or today_utc(), run_id=getattr(args, "run_id", ""))
    store = open_store(args, definition, "subject")
    try:
        patient = store.find_patient(args.patient)
        if patient is None:
            raise UsageError(render(NO_PATIENT(where=store.label)))
        if args.show:
            records = patient_records(definition, run_, store, patient)
            show(records, args.format)
            return EXIT_OK
        step = Step(patient, Action(args.action), args.date or today_utc(), Who(args.by or default_user()),
                    reason=args.reason, note=args.note, d1=args.d1, status=Status(args.status) if args.status else None,
                    override=args.override, form=args.form, medium=args.medium, expected=args.if_match,
                    shown=store.display_ids([patient]).get(patient) or args.patient)
        screen_now = None
        if step.action is Action.ENROL and isinstance(store, ServerState):  # the record is there: screen it now
            screen_now = server_screener(definition, store.client)
        done = act(definition, run_, store, step, settings=settings(args, definition), screen_now=screen_now)
    finally:
        store.close()
    print(render(done.message))
    if done.overridden is not None:  # on stdout: the override's reason is the team's free text (stderr is logged)
        print(render(OVERRIDE_NOTE(text=done.overridden)))
    args.summary = {"action": step.action.value, "status": done.after.value if done.after else None}
    return EXIT_OK


def show(records, fmt: str) -> None:  # records: PatientRecords
    from fhir3t.enrolment import allowed_actions
    from fhir3t.enrolment.timeline import events

    evs = events(records)
    s = records.subject
    if fmt == "json":
        data = {"patient": records.patient, "display_id": records.display_id,
                "status": s.status if s else None, "subject_number": s.number if s else None,
                "d1": s.d1.isoformat() if s and s.d1 else None,
                "next": [a.value for a in allowed_actions(s.status if s else None, exists=s is not None)
                         if a.value in ACTIONS],
                "events": [{"day": e.day.isoformat() if e.day else None, "kind": e.kind, "text": render(e.text),
                            "by": e.who} for e in evs]}
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    number = HEAD_NUMBER(number=s.number, d1=s.d1.isoformat() if s.d1 else "-") if s and s.number else ""
    status = str(s.status) if s else render(NOT_A_SUBJECT())
    print(render(TIMELINE_HEAD(patient=_clean(records.display_id or records.patient), ref=records.patient,
                               status=status, number=number)))
    if not evs:
        print("  " + render(NO_RECORDS()))
    for e in evs:
        day = e.day.isoformat() if e.day else NO_DAY
        event = _clean(render(e.text))
        print(render(LINE_BY(day=day, event=event, who=_clean(e.who)) if e.who else LINE(day=day, event=event)))
    nxt = allowed_actions(s.status if s else None, exists=s is not None)
    if nxt:
        print(render(ALLOWED(actions=" | ".join(a.value for a in nxt if a.value in ACTIONS))))
    else:
        print(render(NOTHING_ALLOWED(status=str(s.status) if s else "-")))


def _clean(text: str) -> str:
    """Record text for a terminal: control characters (ANSI escapes) made visible."""
    return "".join(ch if ch.isprintable() or ch == " " else "\ufffd" for ch in text)


__all__ = ["ACTIONS", "default_user", "run", "show"]
