"""The enrolment workflow's store on the hospital's FHIR server: the same resources as the state file, read with
searches and written as one transaction per step.

- a write is a `transaction` Bundle (never a batch: a step is all or nothing); an update carries
  `request.ifMatch` = the version read, so a coordinator who acted on an old page gets a 412/409, reported as a
  `Conflict` in one sentence, and nothing is written; a transaction holding an If-Match is never sent twice;
- the study is found by its identifier, a subject by fhir3t's id (else by patient, naming the study), the
  team's Communications and Consents by their category (fhir3t's step codes) and checked to be about this
  study; the screenings are the subject versions the screening push wrote (`_history`);
- every server value is untrusted: a resource that does not name what it was searched for is ignored.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from fhir3t.canonical import CS_ENROLMENT_ACTION
from fhir3t.enrolment.records import Screening, is_team_record, screening_of_subject, sorted_screenings
from fhir3t.enrolment.refused import Conflict
from fhir3t.errors import ServerError
from fhir3t.fhirutil import fhir_reference, server_label
from fhir3t.ids import fhir_id
from fhir3t.jsonshape import child, child_text, items, objs, text
from fhir3t.messages import Message, render
from fhir3t.state.base import CHANGED_SERVER, Entry, Versioned, Written
from fhir3t.transport.http import FhirClient, HttpStatusError, outcome_text

CHUNK = 50
NO_TRANSACTION = Message("state.no-transaction", "{where} refused the transaction ({status}): nothing was written")
NO_ANSWER = Message("state.no-answer", "{where} gave no readable answer to the transaction; check there whether the "
                                       "step was recorded before repeating it")


def _version(res: dict, etag: str | None = None) -> str | None:
    v = child_text(child(res, "meta"), "versionId")
    if v:
        return v
    if etag:
        return etag.replace("W/", "").strip('"') or None
    return None


class ServerState:
    """The store on a FHIR server (see the module doc)."""

    def __init__(self, client: FhirClient, study: tuple[str, str] | None = None) -> None:
        self.client = client
        self.label = server_label(client.base)
        #: the study's identifier (system, value): a subject naming the study by identifier only is this study's
        self.study_identifier = study

    def close(self) -> None:
        self.client.close()

    # ---- reading ------------------------------------------------------------------------------------------
    def _ref(self, ref: str | None) -> str | None:
        """A reference as Type/id (relative, or absolute on this server), else None."""
        parsed = fhir_reference(ref, self.client.base)
        return f"{parsed[0]}/{parsed[1]}" if parsed else None

    def study(self, system: str, value: str) -> Versioned | None:
        for res in self.client.search("ResearchStudy", [("identifier", f"{system}|{value}")]):
            if any(i.get("system") == system and i.get("value") == value for i in objs(res.get("identifier"))):
                return Versioned(res, _version(res))
        return None

    def _read(self, rtype: str, rid: str) -> Versioned | None:
        try:
            resp = self.client.request("GET", f"{rtype}/{rid}", ok=(404, 410))
        except HttpStatusError as exc:
            if exc.status in (404, 410):
                return None
            raise
        if resp.status_code in (404, 410):
            return None
        res = resp.json()
        if not isinstance(res, dict) or res.get("resourceType") != rtype or res.get("id") != rid:
            return None
        return Versioned(res, _version(res, resp.headers.get("ETag")))

    def _names_study(self, res: dict, study_ref: str) -> bool:
        study = child(res, "study")
        if self._ref(child_text(study, "reference")) == study_ref:
            return True
        ident = child(study, "identifier")
        return self.study_identifier is not None and (text(ident.get("system")), text(ident.get("value"))) == \
            self.study_identifier

    def subject(self, patient: str, subject_id: str, study_ref: str) -> Versioned | None:
        own = self._read("ResearchSubject", subject_id)
        if own is not None and _same_patient(child_text(child(own.resource, "individual"), "reference"), patient):
            return own
        # also a subject the hospital made, naming the patient by an absolute URL or the study by its identifier
        wanted = f"{patient},{self.client.base}/{patient}"
        for res in self.client.search("ResearchSubject", [("individual", wanted), ("_count", "100")]):
            if (fhir_id(res.get("id")) and _same_patient(child_text(child(res, "individual"), "reference"), patient)
                    and self._names_study(res, study_ref)):
                return Versioned(res, _version(res))
        return None

    def subjects(self, study_ref: str) -> list[Versioned]:
        out = []
        for res in self.client.search("ResearchSubject", [("study", study_ref), ("_count", "500")]):
            if self._ref(child_text(child(res, "study"), "reference")) == study_ref and fhir_id(res.get("id")):
                out.append(Versioned(res, _version(res)))
        return out

    def _about_study(self, res: dict, study_ref: str, subjects: set[str]) -> bool:
        if res.get("resourceType") == "Communication":
            about = {self._ref(child_text(a, "reference")) for a in items(res.get("about"))}
            return study_ref in about or bool(about & subjects)
        data = objs(child(res, "provision").get("data"))
        return any(self._ref(child_text(child(d, "reference"), "reference")) == study_ref for d in data) or \
            f"Consent/{res.get('id')}" in subjects

    def team_records(self, study_ref: str, patient: str | None = None, subject_ref: str | None = None) -> list[dict]:
        known = {subject_ref} if subject_ref else set()
        out: list[dict] = []
        for rtype, step, by in (("Communication", "contact", "subject"), ("Consent", "consent", "patient")):
            params = [("category", f"{CS_ENROLMENT_ACTION}|{step}"), ("_count", "500")]
            if patient:
                params.append((by, patient))
            for res in self.client.search(rtype, params):
                if not fhir_id(res.get("id")) or not is_team_record(res, step):
                    continue
                if patient and self._ref(child_text(child(res, by), "reference")) != patient:
                    continue
                if self._about_study(res, study_ref, known):
                    out.append(res)
        if patient:
            targets = [t for t in [subject_ref, *(f"{r['resourceType']}/{r['id']}" for r in out)] if t]
            seen: set[str] = set()
            for i in range(0, len(targets), CHUNK):
                for res in self.client.search("Provenance", [("target", ",".join(targets[i:i + CHUNK])), ("_count", "500")]):
                    rid = text(res.get("id"))
                    named = {self._ref(child_text(t, "reference")) for t in items(res.get("target"))}
                    if rid and rid not in seen and named & set(targets):
                        seen.add(rid)
                        out.append(res)
        return out

    def _history(self, path: str) -> list[tuple[dict, str]]:
        out = []
        first = self.client.get(f"{path}/_history", params=[("_count", "1000")])
        for page in self.client.pages(first, where="history"):
            for e in objs(page.get("entry")):
                res = e.get("resource")
                if isinstance(res, dict) and res.get("resourceType") == "ResearchSubject":
                    out.append((res, child_text(child(e, "response"), "lastModified")
                                or child_text(child(res, "meta"), "lastUpdated") or ""))
        return out

    def screenings(self, study_ref: str, patient: str | None = None) -> list[Screening]:
        if patient:
            subjects = [v for v in self.subjects(study_ref)
                        if self._ref(child_text(child(v.resource, "individual"), "reference")) == patient]
            versions = [x for v in subjects for x in self._history(f"ResearchSubject/{v.resource['id']}")]
        else:
            ours = {v.resource["id"] for v in self.subjects(study_ref)}
            versions = [(res, at) for res, at in self._history("ResearchSubject") if res.get("id") in ours]
        out = []
        seen: set[tuple[str, str]] = set()
        for res, at in versions:
            key = (str(res.get("id")), child_text(child(res, "meta"), "versionId") or at)
            if key in seen:
                continue
            seen.add(key)
            s = screening_of_subject(res, at)
            if s is not None and self._ref(s.patient):
                out.append(replace(s, patient=self._ref(s.patient) or s.patient))
        return sorted_screenings(out)

    def display_ids(self, patients: Iterable[str]) -> dict[str, str]:
        ids = sorted({p.split("/", 1)[1] for p in patients if p.startswith("Patient/") and fhir_id(p.split("/", 1)[1])})
        out: dict[str, str] = {}
        for i in range(0, len(ids), CHUNK):
            for res in self.client.search("Patient", [("_id", ",".join(ids[i:i + CHUNK])), ("_count", str(CHUNK))]):
                rid = fhir_id(res.get("id"))
                if rid in ids:
                    shown = _mrn(res)
                    if shown:
                        out[f"Patient/{rid}"] = shown
        return out

    def find_patient(self, wanted: str) -> str | None:
        rid = fhir_id(wanted.removeprefix("Patient/"))
        if rid and self._read("Patient", rid) is not None:
            return f"Patient/{rid}"
        found = [r for r in self.client.search("Patient", [("identifier", wanted)])
                 if fhir_id(r.get("id")) and any(i.get("value") == wanted for i in objs(r.get("identifier")))]
        return f"Patient/{found[0]['id']}" if len(found) == 1 else None

    # ---- writing ------------------------------------------------------------------------------------------
    def commit(self, entries: Sequence[Entry]) -> list[Written]:
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction", "entry": []}
        for e in entries:
            res, ref = e.resource, e.ref
            if e.if_none_exist:
                request = {"method": "POST", "url": res["resourceType"], "ifNoneExist": e.if_none_exist}
            else:
                request = {"method": "PUT", "url": ref}
                if e.if_match is not None:
                    request["ifMatch"] = f'W/"{e.if_match}"'
            bundle["entry"].append({"fullUrl": e.full_url or f"{self.client.base}/{ref}", "resource": res,
                                    "request": request})
        guarded = any(e.if_match is not None for e in entries)
        try:
            resp = self.client.json("POST", "", json=bundle, idempotent=not guarded)
        except HttpStatusError as exc:
            if exc.status in (409, 412):
                stale = next((e for e in entries if e.if_match is not None), entries[0])
                raise Conflict(CHANGED_SERVER(ref=stale.ref, where=self.label, expected=stale.if_match or "-")) from None
            detail = outcome_text(exc.body)
            raise ServerError(render(NO_TRANSACTION(where=self.label, status=exc.status))
                              + (f": {detail}" if detail else "")) from None
        answers = items(resp.get("entry")) if isinstance(resp, dict) else []
        if len(answers) != len(entries):
            raise ServerError(render(NO_ANSWER(where=self.label)))
        out = []
        for e, ans in zip(entries, answers):
            r = child(ans, "response")
            status = (child_text(r, "status") or "").split(" ")[0]
            if not status.startswith("2"):
                raise ServerError(render(NO_ANSWER(where=self.label)))
            loc = child_text(r, "location") or ""
            parts = loc.split("/_history/")
            ref = self._ref(parts[0]) or e.ref
            out.append(Written(ref, parts[1].strip("/") if len(parts) == 2 else _version(child(ans, "resource"),
                                                                                         child_text(r, "etag"))))
        return out


def _same_patient(ref: str | None, patient: str) -> bool:
    """A reference to this Patient/<id>, relative or absolute (as the push's no-regression rule reads them)."""
    return ref is not None and "/".join(ref.split("/_history")[0].rstrip("/").split("/")[-2:]) == patient


def _mrn(patient: dict) -> str | None:
    idents = objs(patient.get("identifier"))
    for i in idents:
        for c in objs(child(i, "type").get("coding")):
            if c.get("code") == "MR" and text(i.get("value")):
                return str(i["value"])
    for i in idents:
        if "mrn" in (text(i.get("system")) or "").lower() and text(i.get("value")):
            return str(i["value"])
    return next((str(i["value"]) for i in idents if text(i.get("value"))), None)


__all__ = ["ServerState"]
