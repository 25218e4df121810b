"""`--write-test` (test servers only): push a test ResearchStudy the way `fhir3t push` sends the
study (a conditional create, in a transaction when the server has them, else a batch), push it again
(conditional create must find the first instead of adding a second), then delete what was made.

The test study carries an identifier of its own (never the trial's), status `withdrawn` and a title
saying it may be deleted, so a leftover cannot be mistaken for the study.
"""
from __future__ import annotations

from fhir3t.enrolment import Status
from fhir3t.errors import Fhir3tError
from fhir3t.fhirutil import fhir_id, search_escape
from fhir3t.messages import Msg, table
from fhir3t.pipeline.servercheck.capability import W as CAPABILITY_W
from fhir3t.pipeline.servercheck.model import FAIL, OK, WARNING, Check
from fhir3t.pipeline.servercheck.session import Session
from fhir3t.sinks.fhir_server import FhirServerSink
from fhir3t.sources.rest import has_identifier
from fhir3t.transport.http import HttpStatusError
from fhir3t.transport.urls import clean

TEST_SYSTEM = "urn:fhir3t:check-server"
W = table("check.write", {
    "t.write": "write test",
    "another": "tried: the server answered the {when} of the test study with ResearchStudy/{id}, which is another "
               "study: its conditional create does not apply the identifier, so a push would take that study for the "
               "trial's (it was left alone)",
    "first-create": "first create",
    "second-create": "second create",
    "push": "push",
    "not-created": "the test ResearchStudy could not be created with a {mode} ({status}): fhir3t push would fail the "
                   "same way",
    "transaction": "tried: a transaction was applied to create the test study ({status})",
    "batch": "tried: no transaction, a batch was applied to create the test study ({status}); push sends entries one by "
             "one, a failed entry leaves the others applied",
    "untried": "not tried: the test study could not be created",
    "second-failed": "tried: the second push of the same ResearchStudy failed ({status}): each push after the first "
                     "would fail",
    "second-made": "tried: the second push created another ResearchStudy ({n} with the same identifier): the server "
                   "ignores ifNoneExist, so every push adds a study",
    "second-found": "tried: the second push found the first ResearchStudy ({status}), no second one",
    "none-made": "no test study was made, so none is left on the server",
    "left": "could not delete {studies} (identifier {identifier}): delete it by hand",
    "deleted": "{studies} deleted again: nothing of the test is left on the server",
})
TITLE = W["t.write"]()
TRANSACTION = CAPABILITY_W["t.transaction"]()
CONDITIONAL = CAPABILITY_W["t.conditional"]()


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
        self.study: dict | None = None
        self.cleaned = False
        self.conditional_done = False  # a conditional-create verdict was given already

    def bundle(self) -> dict:
        study = {"resourceType": "ResearchStudy", "status": Status.WITHDRAWN,
                 "title": "fhir3t check-server write test (safe to delete)",
                 "identifier": [{"system": TEST_SYSTEM, "value": self.value}]}
        return {"resourceType": "Bundle", "type": "transaction", "entry": [{
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{self.session.tag}", "resource": study,
            "request": {"method": "POST", "url": "ResearchStudy",
                        "ifNoneExist": f"identifier={search_escape(TEST_SYSTEM)}|{search_escape(self.value)}"}}]}

    def _push(self) -> tuple[str, str, str | None, str]:
        """(mode, state, id, status) of one push of the test Bundle."""
        report = FhirServerSink(self.session.client).push(self.bundle(), protect=False)
        out = report.outcomes[0] if report.outcomes else None
        if out is None:
            return report.mode, "unknown", None, ""
        rid = _id_of(out.location) if out.location else None
        return report.mode, out.state, rid, out.status or out.message

    def _found(self) -> list[str]:
        got = self.session.first_page("ResearchStudy", [("identifier", f"{search_escape(TEST_SYSTEM)}|{search_escape(self.value)}"),
                                                        ("_count", "10")])
        return [r["id"] for r in got if fhir_id(r.get("id")) and has_identifier(r, TEST_SYSTEM, self.value)]

    def _is_test_study(self, rid: str) -> bool:
        """Read a study back: only one carrying the test's own identifier is ever deleted."""
        try:
            got = self.session.client.get(f"ResearchStudy/{rid}")
        except HttpStatusError:
            return False
        return isinstance(got, dict) and got.get("resourceType") == "ResearchStudy" \
            and has_identifier(got, TEST_SYSTEM, self.value)

    def _another(self, rid: str, when: Msg) -> Check:
        self.conditional_done = True
        return Check("conditional-create", CONDITIONAL, FAIL, W["another"](when=when, id=clean(rid, 64)),
                     {"tried": True, "other": rid})

    def start(self) -> list[Check]:
        """Create the test study; the transaction line (what push will send, tried)."""
        mode, state, rid, status = self._push()
        self.mode = mode
        if rid is None and state == "ok":
            found = self._found()
            rid = found[0] if found else None
        if state != "ok" or rid is None:
            return [Check("transaction", TRANSACTION, FAIL,
                          W["not-created"](mode=mode or W["push"](), status=clean(status, 200) or state),
                          {"mode": mode, "tried": True})]
        checks: list[Check] = []
        if not self._is_test_study(rid):
            checks.append(self._another(rid, W["first-create"]()))
            self.made = self._found()  # one may have been made all the same
        else:
            self.made.append(rid)
        if self.made:
            self.study = {"resourceType": "ResearchStudy", "id": self.made[0],
                          "identifier": [{"system": TEST_SYSTEM, "value": self.value}]}
            self.session.remember("ResearchStudy", self.study)
        if mode == "transaction":
            line = Check("transaction", TRANSACTION, OK, W["transaction"](status=clean(status, 40)),
                         {"mode": mode, "tried": True})
        else:
            line = Check("transaction", TRANSACTION, WARNING, W["batch"](status=clean(status, 40)),
                         {"mode": mode, "tried": True})
        return [line, *checks]

    def finish(self) -> list[Check]:
        """Push the same study again (conditional create), then delete every test study made."""
        if not self.made:
            untried = [] if self.conditional_done else [Check(
                "conditional-create", CONDITIONAL, WARNING, W["untried"](), {"tried": False})]
            return [*untried, self.cleanup()]
        checks: list[Check] = []
        try:
            _mode, state, rid, status = self._push()
            other = rid is not None and rid not in self.made and not self._is_test_study(rid)
            self.made = list(dict.fromkeys([*self.made, *([rid] if rid and not other else []), *self._found()]))
            if other and rid is not None:
                checks.append(self._another(rid, W["second-create"]()))
            elif state != "ok":
                checks.append(Check("conditional-create", CONDITIONAL, FAIL, W["second-failed"](status=clean(status, 200)),
                                    {"tried": True}))
            elif len(self.made) > 1:
                checks.append(Check("conditional-create", CONDITIONAL, FAIL, W["second-made"](n=len(self.made)),
                                    {"tried": True, "created": len(self.made)}))
            elif not self.conditional_done:
                checks.append(Check("conditional-create", CONDITIONAL, OK, W["second-found"](status=clean(status, 40)),
                                    {"tried": True, "created": 1}))
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
        if not self.made:
            return Check("write-test", TITLE, OK, W["none-made"](), {"made": [], "left": []})
        if left:
            return Check("write-test", TITLE, WARNING,
                         W["left"](studies=", ".join(f"ResearchStudy/{clean(r, 64)}" for r in left),
                                   identifier=f"{TEST_SYSTEM}|{self.value}"), {"made": self.made, "left": left})
        return Check("write-test", TITLE, OK, W["deleted"](studies=shown), {"made": self.made, "left": []})
