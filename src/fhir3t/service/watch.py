"""Event-driven screening: screen a patient when data the criteria read arrives, push the ResearchSubject.

Two ways of noticing, both ending in the same `screen_and_push`:

- **Subscriptions** (R4 rest-hook), where the server offers them: one Subscription per resource type
  the *inclusion* criteria read by code (the study's anchor diagnosis, its screening labs and imaging, ...),
  their codes taken from the value sets (with the ICD expansions and ConceptMap source codes the
  server pull uses), so a new screening lab result or anchor diagnosis is screened within
  seconds. Notifications carry the resource, only its id, or nothing: the patient is taken from the
  resource when there is one, read from the server when only an id came, and an empty notification
  asks for a poll. The payload only says *whom* to screen; the record is always read from the server.
- **Polling** `_lastUpdated` (always on: a Subscription covers the decisive inclusion data, the poll
  every type the criteria read, exclusions included; and a missed notification is caught up). The
  high-water mark is the newest `meta.lastUpdated` the server reported (its clock, not ours), queried
  again with an overlap and de-duplicated by version, and kept on disk after each round's pushes
  succeeded, so a restarted watcher resumes where it stopped and a crash re-screens rather than skips.

Pushed: the ResearchSubject of every `eligible` or `candidate` patient, and of any patient this study
already has a fhir3t ResearchSubject for (so a candidate who turns out ineligible is updated, while
the thousands of ineligible patients with a routine lab result do not each get one); through
FhirServerSink, whose no-regression rule never overwrites a subject the study team has enrolled.
Logs carry counts, and each status change of a followed patient (`watch-status-change`) under the
ResearchSubject id, a pseudonym: never a name, an identifier or a value. A newly eligible patient is
also handed to the `notify` hook (a command or a webhook, fhir3t.service.notify).

Typed boundaries: a notification is checked against `schemas/watch-notification.schema.json` (a 400
otherwise) and the references it names are parsed as FHIR references (`Type/id` on this server, the id
a FHIR id), never joined as paths, so `Observation/../../x` reads nothing; the state file is read with a
bound, checked against `schemas/watch-state.schema.json`, kept mode 0600, and a mark in the future
(which would make every change look old) is refused on reading and never taken from a server's answer.
The CapabilityStatement is read through the shape helpers: an odd one means "not offered", not a crash.
"""
from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

from fhir3t.canonical import ID_RESEARCH_SUBJECT
from fhir3t.dates import instant, today_utc
from fhir3t.emit import screening_bundle
from fhir3t.emit.screening import subject_id
from fhir3t.enrolment import Status
from fhir3t.errors import Fhir3tError, InputError, Problems
from fhir3t.fhirutil import fhir_reference, patient_id, search_escape
from fhir3t.ids import stable_id
from fhir3t.jsonshape import child, child_text, objs, text
from fhir3t.messages import Msg, render, table
from fhir3t.pipeline import Definition, Run, ServerQuery, screen_server
from fhir3t.r4facts import r4_facts
from fhir3t.shapecheck import ShapeError, check, dotted
from fhir3t.sinks import FhirServerSink, write_json
from fhir3t.smallfiles import STATE_LIMIT, read_small
from fhir3t.sources.rest import anchor_codes
from fhir3t.transport.http import FhirClient, HttpStatusError, ResponseError
from fhir3t.transport.urls import describe

log = logging.getLogger("fhir3t.watch")

PUSHED = frozenset({Status.ELIGIBLE, Status.CANDIDATE})
#: seconds of `_lastUpdated` queried again below the mark (transactions commit out of order)
OVERLAP = 120.0
#: codes per Subscription criteria (keeps the criteria URL well under common limits)
CODES_PER_SUBSCRIPTION = 60
NOTIFY_PATH = "/fhir3t/notify"
#: the `event` of what the notify hook is given (a webhook's JSON body, a command's stdin)
NEWLY_ELIGIBLE = "newly-eligible"
#: seconds a notification waits for the others of the same burst before its patients are screened
SETTLE = 0.5
#: a polling mark (the server's clock) may be this far ahead of ours; further is a clock gone wrong or a
#: tampered state, which would make every later change look old
FUTURE_SLACK = 86400.0
#: items a notification may queue (a Bundle of a thousand entries names at most a thousand patients)
MAX_QUEUED = 10_000

#: what `watch` says: a watch state it cannot use (the CLI's error line), a search it cannot make (a problem), what a
#: round did (stderr and the log's English)
MESSAGES = table("watch", {
    "state": "the watch state",
    "not-json": "not JSON",
    "no-last-updated": "the server cannot search {rtype} by _lastUpdated ({status}); not watched",
    "round": "{changed} {what} of {patients} patient(s); screened: {statuses}; pushed {pushed} ResearchSubject(s), "
             "{protected} kept by the no-regression rule, {failed} failed",
    "round.notifications": "notification(s)",
    "round.versions": "new resource version(s)",
    "round.none": "none",
    "state-unreadable": "{path}: cannot read the watch state ({why}); move it away to start afresh",
    "state-shape": "{path}: not a watch state fhir3t wrote ({why}); move it away to start afresh",
    "state-other": "{path}: this watch state is for another server; give --state another file",
    "state-future": "{path}: the watch state's mark {mark} is in the future, so every change would look old; move "
                    "it away to start afresh (or give --since)",
    "state-unwritable": "{path}: cannot write the watch state ({why})",
    "future-stamp": "the server reported a {rtype} last updated in the future: not taken as the polling mark",
})
#: the log records of the notification queue: English (what engineers grep)
LOG_TEXT = {
    "queue-full": "too many notifications waiting to be screened; this one asks for a poll instead",
}
#: the HTTP error body of a notification of the wrong shape: JSON for the FHIR server that sent it
HTTP_ERRORS = {"notification": "{where} must be empty, a FHIR resource or a Bundle"}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")




def is_ours(res: dict) -> bool:
    """A ResearchSubject fhir3t wrote: the watcher's own pushes are not news (they would re-trigger it forever)."""
    if res.get("resourceType") != "ResearchSubject":
        return False
    return any(i.get("system") == ID_RESEARCH_SUBJECT for i in objs(res.get("identifier")))


@dataclass
class WatchState:
    """Where polling resumes: the newest lastUpdated processed, and the versions seen in the overlap.

    `statuses`: the last screening status of each patient that has been eligible or a candidate, keyed by
    the ResearchSubject id (a pseudonym), so a status change is told once, across restarts too.
    """

    path: Path
    server: str
    mark: float | None = None
    seen: dict[str, float] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, server: str, now: float | None = None) -> WatchState:
        try:
            data = orjson.loads(read_small(path, STATE_LIMIT, MESSAGES["state"](), InputError))
        except FileNotFoundError:
            return cls(path, server)
        except orjson.JSONDecodeError:
            raise InputError(MESSAGES["state-unreadable"](path=str(path), why=MESSAGES["not-json"]())) from None
        try:
            check("watch-state", data, dotted("state"))
        except ShapeError as exc:
            raise InputError(MESSAGES["state-shape"](path=str(path), why=exc.said)) from None
        if data["server"] != server:
            raise InputError(MESSAGES["state-other"](path=str(path)))
        mark = instant(data.get("mark"))
        if mark is not None and mark > (time.time() if now is None else now) + FUTURE_SLACK:
            raise InputError(MESSAGES["state-future"](path=str(path), mark=str(data["mark"])))
        seen = {k: float(v) for k, v in (data.get("seen") or {}).items()}
        statuses = dict(data.get("statuses") or {})
        return cls(path, server, mark, seen, statuses)

    def save(self) -> None:
        """Written atomically, mode 0600 (it names resource ids of the server)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_json({"server": self.server, "mark": iso(self.mark) if self.mark is not None else None,
                        "seen": self.seen, "statuses": self.statuses}, self.path, private=True)
        except OSError as exc:
            raise InputError(MESSAGES["state-unwritable"](path=str(self.path),
                                                          why=exc.strerror or type(exc).__name__)) from None


def state_file(folder: Path, server: str) -> Path:
    return folder / f"watch-{hashlib.sha256(server.encode()).hexdigest()[:16]}.json"


@dataclass
class Round:
    """What one round did (counts only)."""

    changed: int = 0  # new resource versions the criteria read
    patients: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    pushed: int = 0
    protected: int = 0  # ResearchSubjects the no-regression rule kept
    failed: int = 0
    problems: int = 0
    notified: bool = False  # screened on notifications (else a poll)

    def said(self) -> Msg:
        """What the round did, as a message (the statuses are codes, as written)."""
        st = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        return MESSAGES["round"](changed=self.changed, patients=self.patients, pushed=self.pushed,
                                 protected=self.protected, failed=self.failed, statuses=st or MESSAGES["round.none"](),
                                 what=MESSAGES["round.notifications" if self.notified else "round.versions"]())

    def line(self) -> str:
        """`said`, in English (the log's line)."""
        return render(self.said())

    def fields(self) -> dict[str, Any]:
        return {"event": "watch-round", "changed": self.changed, "patients": self.patients,
                "statuses": dict(self.statuses), "pushed": self.pushed, "protected": self.protected,
                "failed": self.failed, "input_problems": self.problems}


class Watcher:
    """Screens patients with new relevant data on one server and pushes their ResearchSubjects."""

    def __init__(self, client: FhirClient, definition: Definition, state: WatchState, *, start: float | None = None,
                 today: Callable[[], date] | None = None, clock: Callable[[], float] = time.time,
                 overlap: float = OVERLAP, problems: Problems | None = None,
                 notify: Callable[[dict[str, Any]], object] | None = None) -> None:
        self.client = client
        self.notify = notify  # told of every newly eligible patient (fhir3t.service.notify.Notifier)
        #: the study's definition (shared with the CDS service when both run in `serve --watch`)
        self.definition = definition
        #: what the watcher says once for its lifetime (a type the server cannot search by _lastUpdated)
        self.problems = problems if problems is not None else Problems()
        self.wants = definition.relevance.for_run(self.problems)
        self.state = state
        self.start = start
        self.today = today or today_utc
        self.clock = clock
        self.overlap = overlap
        self.queue: queue.Queue[tuple[str, str]] = queue.Queue()
        self.subscriptions: list[str] = []
        self.rounds = 0
        self.last_error: str | None = None

    # ---- what changed --------------------------------------------------------------------
    def types(self) -> list[str]:
        shared = r4_facts().shared_types
        return sorted(self.wants.types - shared - {"Patient"})

    def changes(self) -> tuple[set[str], int]:
        """Patients with new versions of resources the criteria read (ids), and how many such versions.

        Updates the in-memory mark and seen-set; the caller saves them once the round is pushed."""
        st = self.state
        if st.mark is not None:
            since = st.mark - self.overlap
        else:
            since = (self.start if self.start is not None else self.clock()) - self.overlap
        ids: set[str] = set()
        changed = 0
        newest = st.mark
        seen = dict(st.seen)
        latest_believable = self.clock() + FUTURE_SLACK
        caps = {text(r.get("type")) for rest in objs(self.client.capabilities().get("rest"))
                for r in objs(rest.get("resource"))} - {None}
        for rtype in self.types():
            if caps and rtype not in caps:
                continue
            try:
                found = list(self.client.search(rtype, [("_lastUpdated", f"ge{iso(since)}"), ("_count", "500")]))
            except HttpStatusError as exc:
                if exc.status in (400, 422, 501):
                    self.problems.once(f"lastUpdated:{rtype}", f"{rtype} search",
                                       MESSAGES["no-last-updated"](rtype=rtype, status=exc.status))
                    continue
                raise
            for res in found:
                meta = child(res, "meta")
                ts = instant(meta.get("lastUpdated"))
                if ts is not None and ts > latest_believable:  # a clock gone wrong must not hide every later change
                    self.problems.once(f"future:{rtype}", f"{rtype} search",
                                              MESSAGES["future-stamp"](rtype=rtype))
                    ts = None
                version = text(meta.get("versionId")) or text(meta.get("lastUpdated")) or ""
                vkey = f"{rtype}/{text(res.get('id'))}/{version}"[:512]
                if vkey in seen:
                    continue
                seen[vkey] = ts if ts is not None else since
                if ts is not None and (newest is None or ts > newest):
                    newest = ts
                if is_ours(res) or not self.wants(res, f"{rtype} search"):
                    continue
                pid = patient_id(res)
                if pid:
                    changed += 1
                    ids.add(pid)
        if newest is not None:
            st.mark = newest
            st.seen = {k: v for k, v in seen.items() if v >= newest - self.overlap}
        elif st.mark is None:
            st.mark = since + self.overlap  # nothing yet: start from when the watch started
        return ids, changed

    # ---- screening and pushing -----------------------------------------------------------
    def _has_subject(self, patient: str) -> bool:
        """Does the server hold this study's fhir3t ResearchSubject for the patient (an earlier push)?"""
        rid = subject_id(self.definition.criteria, patient)
        resp = self.client.request("GET", f"ResearchSubject/{rid}", ok=(404, 410))
        return resp.status_code < 300

    def screen_and_push(self, ids: Iterable[str], rnd: Round | None = None) -> Round:
        rnd = rnd or Round()
        ids = sorted(set(ids))
        rnd.patients = len(ids)
        if not ids:
            return rnd
        d = self.definition
        run = Run.start(d, as_of=self.today())
        results = list(screen_server(d, run, self.client, ServerQuery(patients=tuple(ids))))
        rnd.problems += len(run.problems)
        for r in results:
            rnd.statuses[r.status] += 1
            self._changed(r.patient, r.status)
        chosen = [r for r in results if r.status in PUSHED or self._has_subject(r.patient)]
        if not chosen:
            return rnd
        bundle, _notes = screening_bundle(chosen, d.criteria, study=d.study)
        report = FhirServerSink(self.client).push(bundle)
        for o in report.outcomes:
            if "ResearchSubject" not in o.url:
                continue
            if o.state == "ok":
                rnd.pushed += 1
            elif o.state == "skipped":
                rnd.protected += 1
            elif o.state in ("failed", "unknown"):
                rnd.failed += 1
        return rnd

    def _changed(self, patient: str, status: str) -> None:
        """Log a patient's status change under its pseudonym (and tell the hook when newly eligible).

        Only patients who are or have been eligible or a candidate are followed: the thousands screened
        ineligible on a routine lab result are neither news nor kept."""
        key = subject_id(self.definition.criteria, patient)
        previous = self.state.statuses.get(key)
        if status == previous or (previous is None and status not in PUSHED):
            return
        self.state.statuses[key] = status
        subject = f"ResearchSubject/{key}"
        log.info("watch: %s is now %s (was %s)", subject, status, previous or "not followed",
                 extra={"fields": {"event": "watch-status-change", "subject": subject, "status": status,
                                   "previous": previous}})
        if status == Status.ELIGIBLE and self.notify is not None:
            self.notify({"event": NEWLY_ELIGIBLE, "study": self.definition.study.value, "subject": subject,
                         "status": status, "previous": previous, "server": describe(self.client.base),
                         "time": iso(self.clock())})

    def poll(self) -> Round:
        """One polling round: what changed, screened and pushed; the state saved afterwards."""
        ids, changed = self.changes()
        rnd = self.screen_and_push(ids, Round(changed=changed))
        self.state.save()
        self.rounds += 1
        log.info("watch: %s", rnd.line(), extra={"fields": rnd.fields()})
        return rnd

    # ---- subscriptions -------------------------------------------------------------------
    def supports_subscriptions(self) -> bool:
        for rest in objs(self.client.capabilities().get("rest")):
            for r in objs(rest.get("resource")):
                if r.get("type") == "Subscription":
                    codes = {text(i.get("code")) for i in objs(r.get("interaction"))}
                    return bool(codes & {"create", "update"})
        return False

    def trigger_queries(self) -> list[str]:
        """Subscription criteria: per type the inclusion criteria read by code (and the anchor), its codes."""
        tx = self.definition.tx
        wanted: dict[str, dict[str, None]] = {}
        sets = [(self.definition.study.candidate_type, tx.valueset(self.definition.study.candidate_valueset))]
        for c in self.definition.criteria.criteria:
            if c.kind == "inclusion":
                sets += [(r.type, r.valueset) for r in c.rule.reads() if r.valueset is not None]
        for rtype, vs in sets:
            if vs is None:
                continue
            exact, _roots = anchor_codes(vs, tx)
            for system, code in exact:
                wanted.setdefault(rtype, {})[f"{search_escape(system)}|{search_escape(code)}"] = None
        out = []
        for rtype in sorted(wanted):
            codes = list(wanted[rtype])
            for i in range(0, len(codes), CODES_PER_SUBSCRIPTION):
                out.append(f"{rtype}?code={','.join(codes[i:i + CODES_PER_SUBSCRIPTION])}")
        return out

    def subscribe(self, endpoint: str, token: str) -> list[str]:
        """Create (or renew) the Subscriptions; ids of those the server made active."""
        active = []
        for criteria in self.trigger_queries():
            sid = stable_id("Subscription", endpoint, criteria)
            sub = {"resourceType": "Subscription", "id": sid, "status": "requested",
                   "reason": f"fhir3t: screen patients for {self.definition.study.value} when trial-relevant data arrives",
                   "criteria": criteria,
                   "channel": {"type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json",
                               "header": [f"Authorization: Bearer {token}"]}}
            self.client.json("PUT", f"Subscription/{sid}", json=sub)
            back = self.client.get(f"Subscription/{sid}")
            status = back.get("status") if isinstance(back, dict) else None
            if status in ("active", "requested"):
                active.append(sid)
                self.subscriptions.append(sid)
            else:
                error = back.get("error", "") if isinstance(back, dict) else ""
                log.warning("watch: the server set a Subscription to %s: %s", status,
                            str(error)[:200].encode("ascii", "replace").decode())
        return active

    def unsubscribe(self) -> None:
        for sid in self.subscriptions:
            try:
                self.client.request("DELETE", f"Subscription/{sid}", ok=(404, 410))
            except Fhir3tError as exc:
                log.warning("watch: could not remove a Subscription: %s", type(exc).__name__)
        self.subscriptions.clear()

    # ---- notifications -------------------------------------------------------------------
    def notified(self, body: bytes, rtype: str | None = None, rid: str | None = None) -> int:
        """Queue what a rest-hook notification names; returns how many items were queued.

        The body is checked against its schema first (ShapeError: the service answers 400); the focus
        references are parsed as FHIR references on this server (see the module doc)."""
        data: Any = None
        if body.strip():
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                data = None  # not JSON: nothing to read, a poll will find what changed
        check("watch-notification", data, dotted("notification"), HTTP_ERRORS)
        resources: list[dict] = []
        focus: list[tuple[str, str]] = []
        if isinstance(data, dict) and data.get("resourceType") == "Bundle":
            for e in objs(data.get("entry")):
                res = child(e, "resource")
                if res.get("resourceType") == "Parameters":  # backport SubscriptionStatus: the events' focus
                    for p in objs(res.get("parameter")):
                        for part in objs(p.get("part")):
                            if part.get("name") == "focus":
                                ref = fhir_reference(child_text(child(part, "valueReference"), "reference"),
                                                     self.client.base)
                                if ref is not None:
                                    focus.append(ref)
                elif res and res.get("resourceType") != "SubscriptionStatus":
                    resources.append(res)
        elif isinstance(data, dict):
            resources.append(data)
        elif rtype and rid:
            ref = fhir_reference(f"{rtype}/{rid}")
            if ref is not None:
                focus.append(ref)
        n = 0
        held = {(text(r.get("resourceType")), text(r.get("id"))) for r in resources}
        for res in resources:
            pid = None if is_ours(res) else patient_id(res)
            if pid:
                n += self._put(("patient", pid))
        for ref in focus:
            if ref not in held:
                n += self._put(("focus", "/".join(ref)))
        if n == 0:
            self.queue.put(("poll", ""))
            n = 1
        return n

    def _put(self, item: tuple[str, str]) -> int:
        """Queue one item, unless the queue is at its bound (then a poll will find the change)."""
        if self.queue.qsize() >= MAX_QUEUED:
            log.warning(LOG_TEXT["queue-full"])
            return 0
        self.queue.put(item)
        return 1

    def _drain(self, first: tuple[str, str]) -> tuple[set[str], bool, int]:
        """Everything queued: (patient ids to screen, whether a poll was asked for, items drained)."""
        items = [first]
        while True:
            try:
                items.append(self.queue.get_nowait())
            except queue.Empty:
                break
        ids: set[str] = set()
        poll = False
        for kind, value in items:
            if kind == "patient":
                ids.add(value)
            elif kind == "poll":
                poll = True
            elif kind == "focus":  # `Type/id`, checked by fhir_reference when queued
                try:
                    res = self.client.get(value)
                except ResponseError:  # gone, refused, not JSON: this focus only
                    continue
                pid = patient_id(res) if isinstance(res, dict) else None
                if pid:
                    ids.add(pid)
        return ids, poll, len(items)

    def run(self, stop: threading.Event, interval: float) -> None:
        """Poll every `interval` seconds and screen what notifications name, until `stop` is set."""
        next_poll = 0.0
        while not stop.is_set():
            wait = max(0.0, next_poll - time.monotonic())
            try:
                item = self.queue.get(timeout=min(wait, 0.5)) if wait > 0 else ("poll", "")
            except queue.Empty:
                continue
            if item[0] != "poll":
                stop.wait(SETTLE)  # a transaction's resources are notified one by one: screen their patient once
            try:
                ids, poll, n = self._drain(item)
                if poll or time.monotonic() >= next_poll:
                    self.poll()
                    next_poll = time.monotonic() + interval
                if ids:
                    rnd = self.screen_and_push(ids, Round(changed=n, notified=True))
                    log.info("watch: %s", rnd.line(), extra={"fields": {**rnd.fields(), "event": "watch-notified"}})
                self.last_error = None
            except Exception as exc:  # a round that fails (a server error, or a bug) is retried, never ends the watch
                self.last_error = type(exc).__name__
                if not isinstance(exc, Fhir3tError):
                    log.debug("watch round: internal error", exc_info=True)
                log.warning("watch: round failed, retrying in %.0f s: %s", min(interval, 60.0), type(exc).__name__,
                            extra={"fields": {"event": "watch-round-failed", "error": type(exc).__name__}})
                next_poll = time.monotonic() + min(interval, 60.0)


__all__ = ["NEWLY_ELIGIBLE", "NOTIFY_PATH", "OVERLAP", "Round", "WatchState", "Watcher", "iso", "patient_id", "state_file"]
