"""`--write-test` (test servers only): push a test ResearchStudy the way `fhir3t push` sends the
study (a conditional create, in a transaction when the server has them, else a batch), push it again
(conditional create must find the first instead of adding a second), then delete what was made.

The test study carries an identifier of its own (never the trial's), status `withdrawn` and a title
saying it may be deleted, so a leftover cannot be mistaken for the study.
"""
from __future__ import annotations

from fhir3t.errors import Fhir3tError
from fhir3t.pipeline.servercheck.model import FAIL, OK, WARNING, Check
from fhir3t.pipeline.servercheck.session import Session, esc
from fhir3t.sinks.fhir_server import FhirServerSink
from fhir3t.sources.rest import has_identifier
from fhir3t.transport.http import HttpStatusError
from fhir3t.transport.urls import clean, fhir_id

TEST_SYSTEM = "urn:fhir3t:check-server"
TITLE = "write test"


def _id_of(location: str) -> str | None:
    """The id in a Location such as `ResearchStudy/7/_history/1` or an absolute URL."""
    parts = location.split("/_history")[0].rstrip("/").split("/")
    return fhir_id(parts[-1]) if len(parts) >= 2 and parts[-2] == "ResearchStudy" else None


class WriteTest:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.value = f"check-{session.tag}"
        self.made: list[str] = []  # ResearchStudy ids created
        self.mode = ""
        self.first_status = ""
        self.study: dict | None = None
        self.cleaned = False

    def bundle(self) -> dict:
        study = {"resourceType": "ResearchStudy", "status": "withdrawn",
                 "title": "fhir3t check-server write test (safe to delete)",
                 "identifier": [{"system": TEST_SYSTEM, "value": self.value}]}
        return {"resourceType": "Bundle", "type": "transaction", "entry": [{
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{self.session.tag}", "resource": study,
            "request": {"method": "POST", "url": "ResearchStudy",
                        "ifNoneExist": f"identifier={esc(TEST_SYSTEM)}|{esc(self.value)}"}}]}

    def _push(self) -> tuple[str, str, str | None, str]:
        """(mode, state, id, status) of one push of the test Bundle."""
        report = FhirServerSink(self.session.client).push(self.bundle(), protect=False)
        out = report.outcomes[0] if report.outcomes else None
        if out is None:
            return report.mode, "unknown", None, ""
        rid = _id_of(out.location) if out.location else None
        return report.mode, out.state, rid, out.status or out.message

    def _found(self) -> list[str]:
        got = self.session.first_page("ResearchStudy", [("identifier", f"{esc(TEST_SYSTEM)}|{esc(self.value)}"),
                                                        ("_count", "10")])
        return [r["id"] for r in got if fhir_id(r.get("id")) and has_identifier(r, TEST_SYSTEM, self.value)]

    def start(self) -> list[Check]:
        """Create the test study; the transaction line (what push will send, tried)."""
        mode, state, rid, status = self._push()
        self.mode = mode
        if rid is None and state == "ok":
            found = self._found()
            rid = found[0] if found else None
        if state != "ok" or rid is None:
            return [Check("transaction", "transaction / batch", FAIL,
                          f"the test ResearchStudy could not be created with a {mode or 'push'} "
                          f"({clean(status, 200) or state}): fhir3t push would fail the same way",
                          {"mode": mode, "tried": True})]
        self.made.append(rid)
        self.first_status = status
        self.study = {"resourceType": "ResearchStudy", "id": rid,
                      "identifier": [{"system": TEST_SYSTEM, "value": self.value}]}
        self.session.remember("ResearchStudy", self.study)
        if mode == "transaction":
            return [Check("transaction", "transaction / batch", OK,
                          f"tried: a transaction created the test ResearchStudy/{clean(rid, 64)} ({clean(status, 40)})",
                          {"mode": mode, "tried": True})]
        return [Check("transaction", "transaction / batch", WARNING,
                      f"tried: no transaction, a batch created the test ResearchStudy/{clean(rid, 64)} "
                      f"({clean(status, 40)}); push sends entries one by one, a failed entry leaves the others applied",
                      {"mode": mode, "tried": True})]

    def finish(self) -> list[Check]:
        """Push the same study again (conditional create), then delete every test study made."""
        if not self.made:
            return []
        checks: list[Check] = []
        try:
            _mode, state, rid, status = self._push()
            ids = list(dict.fromkeys([*self.made, *([rid] if rid else []), *self._found()]))
            self.made = ids
            if state != "ok":
                checks.append(Check("conditional-create", "conditional create", FAIL,
                                    f"tried: the second push of the same ResearchStudy failed ({clean(status, 200)}): "
                                    "each push after the first would fail", {"tried": True}))
            elif len(ids) > 1:
                checks.append(Check("conditional-create", "conditional create", FAIL,
                                    f"tried: the second push created another ResearchStudy ({len(ids)} with the same "
                                    "identifier): the server ignores ifNoneExist, so every push adds a study",
                                    {"tried": True, "created": len(ids)}))
            else:
                checks.append(Check("conditional-create", "conditional create", OK,
                                    f"tried: the second push found the first ResearchStudy ({clean(status, 40)}), no "
                                    "second one", {"tried": True, "created": 1}))
        finally:
            checks.append(self.cleanup())
        return checks

    def cleanup(self) -> Check:
        """Delete every test study made; the write-test line."""
        self.cleaned = True
        left: list[str] = []
        for rid in self.made:
            try:
                self.session.client.request("DELETE", f"ResearchStudy/{rid}")
                self.session.client.request("GET", f"ResearchStudy/{rid}")
                left.append(rid)  # still readable after DELETE
            except HttpStatusError as exc:
                if exc.status not in (404, 410):
                    left.append(rid)
            except Fhir3tError:
                left.append(rid)
        shown = ", ".join(f"ResearchStudy/{clean(r, 64)}" for r in self.made)
        if left:
            return Check("write-test", TITLE, WARNING,
                         f"could not delete {', '.join(f'ResearchStudy/{clean(r, 64)}' for r in left)} (identifier "
                         f"{TEST_SYSTEM}|{self.value}): delete it by hand", {"made": self.made, "left": left})
        return Check("write-test", TITLE, OK, f"{shown} deleted again: nothing of the test is left on the server",
                     {"made": self.made, "left": []})
