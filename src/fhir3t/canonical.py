"""Canonical URLs and identifiers that fhir3t writes into FHIR resources.

Kept in one module so the emitters, the validator and the profiles in `profiles/` agree.
"""
from __future__ import annotations

BASE = "https://fhir3t.github.io/fhir"

#: Complex extension on ResearchSubject carrying one criterion's result.
#: Sub-extensions: id (valueString), kind (valueCode inclusion|exclusion),
#: result (valueCode met|not-met|unknown), evidence (valueReference, 0..*),
#: reason (valueString), requiresReview (valueBoolean, 0..1).
EXT_CRITERION_RESULT = f"{BASE}/StructureDefinition/criterion-result"
#: a criterion as a computable definition on the enrollment Group's characteristic (emit/definition.py)
EXT_CRITERION_DEFINITION = f"{BASE}/StructureDefinition/criterion-definition"
#: CTCAE v5.0 grade (valueInteger 1..5) on AdverseEvent.
EXT_CTCAE_GRADE = f"{BASE}/StructureDefinition/ctcae-grade"
#: Identifier systems for resources fhir3t creates (values are deterministic).
ID_RESEARCH_SUBJECT = f"{BASE}/NamingSystem/research-subject"
ID_ADVERSE_EVENT = f"{BASE}/NamingSystem/adverse-event"
#: Device/agent identity in Provenance.
SOFTWARE_SYSTEM = f"{BASE}/NamingSystem/software"

#: fhir3t profiles (profiles/StructureDefinition-*.json, built by tools/build_profiles.py;
#: emitted resources declare them in meta.profile so `fhir3t validate` applies them).
PROFILE_RESEARCH_STUDY = f"{BASE}/StructureDefinition/fhir3t-research-study"
PROFILE_RESEARCH_SUBJECT = f"{BASE}/StructureDefinition/fhir3t-research-subject"
PROFILE_PROVENANCE = f"{BASE}/StructureDefinition/fhir3t-provenance"
PROFILE_ADVERSE_EVENT = f"{BASE}/StructureDefinition/fhir3t-adverse-event"

# ---- the enrolment workflow (fhir3t subject, the coordinator's page) ----------------------------------------
#: the study subject number a site gives an enrolled subject (ResearchSubject.identifier, e.g. S-001): the
#: number every safety listing names the subject by (fhir3t.safety.subjects.subject_number prefers it)
ID_SUBJECT_NUMBER = f"{BASE}/NamingSystem/subject-number"
#: a person named by a login or name (`--by WHO`, a reverse proxy's user header) in Provenance.agent.who
USER_SYSTEM = f"{BASE}/NamingSystem/user"
#: why a patient was not enrolled or left the study (ResearchSubject progress reason, Communication not done)
CS_ENROLMENT_REASON = f"{BASE}/CodeSystem/enrolment-reason"
#: the study team's steps (contact, consent, enrol, decline, withdraw): Provenance.activity, and the category by
#: which the team's Communications and Consents are found on a server
CS_ENROLMENT_ACTION = f"{BASE}/CodeSystem/enrolment-action"
#: R5 ResearchSubject.progress as an R4 cross-version extension (type, subjectState, reason, startDate, endDate)
EXT_PROGRESS = "http://hl7.org/fhir/5.0/StructureDefinition/extension-ResearchSubject.progress"
#: the last subject number given, on the ResearchStudy: every enrolment writes it with If-Match, so two
#: enrolments at once cannot give the same number (the second is refused as a conflict and tried again)
EXT_LAST_SUBJECT_NUMBER = f"{BASE}/StructureDefinition/last-subject-number"
