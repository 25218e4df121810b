"""The coded words of the enrolment workflow: why a patient was not enrolled or left, why a contact
attempt failed, how it was made. Codes are stable English (they are written into FHIR); what a person
reads is the message beside each (`LABELS`).
"""
from __future__ import annotations

from fhir3t.enrolment.transitions import NOT_ENROLLED_REASONS
from fhir3t.messages import Message, Msg

#: why a subject left (ResearchSubject progress reason on `withdraw`); `lost-to-follow-up` is what the safety
#: report's disposition names as such (profiles/safety/study.json)
WITHDRAWAL_REASONS = ("withdrawal-of-consent", "adverse-event", "investigator-decision", "lost-to-follow-up",
                      "protocol-deviation", "other")
#: HL7 communication-not-done-reason (Communication.statusReason of a contact attempt that did not reach the patient)
CONTACT_NOT_DONE_SYSTEM = "http://terminology.hl7.org/CodeSystem/communication-not-done-reason"
CONTACT_NOT_DONE = ("recipient-unavailable", "invalid-phone-number", "patient-objection", "family-objection",
                    "system-error", "unknown")
#: how a contact was made: the coordinator's word -> HL7 v3 ParticipationMode (Communication.medium)
MEDIUM_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
MEDIA = {"phone": "PHONE", "in-person": "FACE", "video": "VIDEOCONF", "email": "EMAILWRIT", "letter": "MAILWRIT",
         "message": "ONLINEWRIT"}

#: every reason code of the workflow -> what a person reads
LABELS: dict[str, Message] = {
    "patient-declined": Message("reason.patient-declined", "the patient declined"),
    "not-reachable": Message("reason.not-reachable", "the patient could not be reached"),
    "investigator-decision": Message("reason.investigator-decision", "the investigator's decision"),
    "screen-failure": Message("reason.screen-failure", "screen failure"),
    "other": Message("reason.other", "another reason"),
    "withdrawal-of-consent": Message("reason.withdrawal-of-consent", "consent withdrawn"),
    "adverse-event": Message("reason.adverse-event", "an adverse event"),
    "lost-to-follow-up": Message("reason.lost-to-follow-up", "lost to follow-up"),
    "protocol-deviation": Message("reason.protocol-deviation", "a protocol deviation"),
    "recipient-unavailable": Message("reason.recipient-unavailable", "no answer"),
    "invalid-phone-number": Message("reason.invalid-phone-number", "wrong or invalid phone number"),
    "patient-objection": Message("reason.patient-objection", "the patient objected"),
    "family-objection": Message("reason.family-objection", "the family objected"),
    "system-error": Message("reason.system-error", "a system error"),
    "unknown": Message("reason.unknown", "reason unknown"),
    "phone": Message("medium.phone", "by phone"),
    "in-person": Message("medium.in-person", "in person"),
    "video": Message("medium.video", "by video"),
    "email": Message("medium.email", "by email"),
    "letter": Message("medium.letter", "by letter"),
    "message": Message("medium.message", "by message"),
}
UNLISTED = Message("reason.unlisted", "{code}")


def label(code: str) -> Msg:
    """What a person reads for a code (a code fhir3t does not list is shown as written)."""
    m = LABELS.get(code)
    return m() if m is not None else UNLISTED(code=code)


def medium_of(mode: str) -> str | None:
    """The coordinator's word for an HL7 ParticipationMode code (None: not one fhir3t writes)."""
    return next((k for k, v in MEDIA.items() if v == mode), None)


__all__ = ["CONTACT_NOT_DONE", "CONTACT_NOT_DONE_SYSTEM", "LABELS", "MEDIA", "MEDIUM_SYSTEM", "NOT_ENROLLED_REASONS",
           "WITHDRAWAL_REASONS", "label", "medium_of"]
