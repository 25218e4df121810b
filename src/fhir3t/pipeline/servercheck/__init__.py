"""What a FHIR server does of what fhir3t needs, tried rather than taken from its CapabilityStatement.

`check_server` is `fhir3t check-server`: FHIR version, fetch strategy, the types the criteria read,
one patient end to end, whether every type comes back with a record, whether the search parameters
fhir3t sends are applied, transaction / batch, conditional create, Bulk `$export`; read-only unless
`write_test` (test servers only). `precheck` is the cheap subset `screen --server` runs first
(the CapabilityStatement it reads anyway, and one search).

Each check is one line (ok / warning / fail). An answer a check cannot use makes that check fail and
the others still run; a run-level failure (unreachable, auth, the request budget) stops the run and
is kept in the report with its exit code.
"""
from __future__ import annotations

from collections.abc import Callable

from fhir3t.errors import AuthError, Fhir3tError, Problems, ServerError, UsageError
from fhir3t.fhirutil import fhir_id
from fhir3t.messages import Msg, Plural, many, table
from fhir3t.pipeline.base import screen_records
from fhir3t.pipeline.definition import Definition
from fhir3t.pipeline.run import Run
from fhir3t.pipeline.servercheck import capability
from fhir3t.pipeline.servercheck.coverage import W as COVERAGE_W
from fhir3t.pipeline.servercheck.coverage import coverage
from fhir3t.pipeline.servercheck.export import export_checks
from fhir3t.pipeline.servercheck.model import FAIL, OK, STATUSES, WARNING, Check, ServerReport
from fhir3t.pipeline.servercheck.needs import Needs, needs_of
from fhir3t.pipeline.servercheck.searches import Probe, anchor_nothing, candidates, push_probes, run_probe
from fhir3t.pipeline.servercheck.searches import W as SEARCH_W
from fhir3t.pipeline.servercheck.session import Session
from fhir3t.pipeline.servercheck.write import WriteTest
from fhir3t.sources.base import RawRecord
from fhir3t.sources.grouping import SharedIndex
from fhir3t.sources.rest import RestSource, has_identifier
from fhir3t.transport.http import FhirClient, HttpStatusError, ResponseError
from fhir3t.transport.urls import clean, describe

__all__ = ["FAIL", "OK", "STATUSES", "WARNING", "Check", "ServerReport", "check_server", "precheck"]

W = table("check.run", {
    "unusable": "unusable answer: {error}",
    "refused": "refused: {error}",
    "unexpected": "unexpected answer from the server ({kind})",
    "not-searchable": "not declared and not searchable: {types}",
    "type-refused": "{type} ({status}: {consequence})",
    "not-screened": "could not be screened: {problems}",
    "bad-patient": "--patient {patient} is not a FHIR id (letters, digits, '-' and '.', at most 64)",
    "as-asked": "as asked",
    "first-candidate": "the first candidate",
    "no-candidate": "no candidate patient to try (give one with --patient ID); the record coverage below uses patients "
                    "found by type",
    "t.export": "Bulk $export",
})
SEARCHABLE = Plural("check.run.searchable", "{declared}; the server answers searches for it all the same (record "
                    "coverage: whether it comes back with a record)", "{declared}; the server answers searches for them "
                    "all the same (record coverage: whether they come back with a record)")
SCREENED = Plural("check.run.screened", "screened: {n} criterion evaluated", "screened: {n} criteria evaluated")


def _guard(report: ServerReport, check_id: str, title: str | Msg, fn: Callable[[], list[Check] | Check], *,
           stop_on_auth: bool = False) -> list[Check]:
    """Run one check; an unusable answer (or a shape nobody foresaw) fails that check, not the run.

    Credentials refused on one check (a token whose scopes leave out a type) fail that check; on the
    first search (`stop_on_auth`) they mean the credentials do not work at all, and end the run.
    """
    try:
        got = fn()
    except ResponseError as exc:
        got = Check(check_id, title, FAIL, W["unusable"](error=str(exc)))
    except AuthError as exc:
        if stop_on_auth:
            raise
        got = Check(check_id, title, FAIL, W["refused"](error=str(exc)))
    except Fhir3tError:
        raise
    except Exception as exc:  # the safety net: one odd answer must not cost the other checks
        got = Check(check_id, title, FAIL, W["unexpected"](kind=type(exc).__name__))
    out = got if isinstance(got, list) else [got]
    for c in out:
        report.add(c)
    return out


def _types_probed(session: Session, needs: Needs) -> Check:
    """`capability.declared_types`, with the undeclared types tried: a search that works is a warning."""
    base = capability.declared_types(session.cs, needs)
    missing = list(base.details.get("missing", []))
    if not missing:
        return base
    refused: dict[str, int] = {}
    for t in missing:
        try:
            session.samples(t)
        except HttpStatusError as exc:
            refused[t] = exc.status
    if not refused:
        return Check(base.id, base.heading, WARNING, SEARCHABLE(len(missing), declared=base.said),
                     {**base.details, "refused": {}})
    shown = many((W["type-refused"](type=t, status=s, consequence=needs.consequence(t)) for t, s in refused.items()), "; ")
    return Check(base.id, base.heading, FAIL, W["not-searchable"](types=shown), {**base.details, "refused": refused})


def _prober(session: Session, probe: Probe, needs: Needs) -> Callable[[], Check]:
    """The probe run; for ResearchStudy the study's own one is searched for when it is on the server."""
    ours = (needs.study_system, needs.study_value)
    prefer = (lambda s: has_identifier(s, *ours)) if probe.rtype == "ResearchStudy" else None
    return lambda: run_probe(session, probe, prefer)


def _screen_one(definition: Definition, shared: SharedIndex) -> Callable[[RawRecord], Msg]:
    def screen(record: RawRecord) -> Msg:
        run = Run.start(definition)  # a run of its own: its problems are this patient's alone
        results = list(screen_records(definition, run, [record], shared))
        problems = [str(p) for p in run.problems.items[:2]]
        if not results:
            return W["not-screened"](problems=many(problems, "; "))
        return SCREENED(len(results[0].criteria))
    return screen


def check_server(client: FhirClient, definition: Definition | None = None, *, patient: str | None = None,
                 write_test: bool = False, export: bool = True) -> ServerReport:
    """Every check of `fhir3t check-server` against `client`'s server (see the module doc).

    `patient` is the patient tried end to end (default: the first candidate the study's anchor search
    finds). With `write_test`, a test ResearchStudy is created and deleted: test servers only.
    """
    if patient is not None and fhir_id(patient) is None:
        raise UsageError(W["bad-patient"](patient=repr(clean(patient, 80))))
    definition = definition or Definition.load()
    needs = needs_of(definition)
    session = Session(client)
    report = ServerReport(describe(client.base), write_test=write_test)
    writer = WriteTest(session) if write_test else None
    try:
        try:
            cs = client.capabilities()
            _guard(report, "fhir-version", capability.W["t.version"](), lambda: capability.fhir_version(cs))
            shared = SharedIndex()
            source = RestSource(client, needs.tx, list(needs.types), Problems(), shared,
                                anchor=(needs.anchor_type, needs.anchor_valueset.id))
            strategy = source.choose_strategy()
            report.add(capability.strategy(strategy))
            _guard(report, "resource-types", capability.W["t.types"](), lambda: _types_probed(session, needs))
            found: list[str] = []

            def anchor() -> list[Check]:
                checks, ids = candidates(session, needs)
                found.extend(ids)
                return checks
            _guard(report, "search-candidates", SEARCH_W["t.candidates"](type=needs.anchor_type), anchor, stop_on_auth=True)
            who = patient or (found[0] if found else None)
            chosen_by = W["as-asked"]() if patient else W["first-candidate"]()
            if who is None:
                report.add(Check("end-to-end", COVERAGE_W["t.e2e"](), WARNING, W["no-candidate"]()))
            _guard(report, "record-coverage", COVERAGE_W["t.coverage"](), lambda: coverage(
                session, source, strategy, needs, who, chosen_by, _screen_one(definition, shared)))
            if writer is not None:
                _guard(report, "transaction", capability.W["t.transaction"](), writer.start)
            else:
                report.add(capability.push_mode(cs))
            for probe in push_probes():
                _guard(report, probe.id, probe.title, _prober(session, probe, needs))
            if writer is not None:
                _guard(report, "conditional-create", capability.W["t.conditional"](), writer.finish)
            else:
                report.add(capability.conditional_create(cs))
            if export:
                _guard(report, "export", W["t.export"](), lambda: export_checks(session))
        finally:
            if writer is not None and writer.made and not writer.cleaned:
                report.add(writer.cleanup())
    except (ServerError, AuthError) as exc:
        report.error = exc.msg or str(exc)
        report.error_code = exc.exit_code
    report.requests = client.stats.requests
    return report


def precheck(client: FhirClient, definition: Definition, *, candidates: bool = True, push: bool = False) -> list[Check]:
    """The cheap, read-only checks `screen --server` runs first; only what is not ok is returned.

    The CapabilityStatement (which the pull reads anyway) and, when candidates are found by
    diagnosis, one search with a code that matches nothing. `push`: the push target is this server.
    """
    needs = needs_of(definition)
    session = Session(client)
    cs = client.capabilities()
    checks = [capability.fhir_version(cs), capability.declared_types(cs, needs)]
    if candidates:
        try:
            checks.append(anchor_nothing(session, needs))
        except ResponseError as exc:
            checks.append(Check("search-candidates", SEARCH_W["t.candidates"](type=needs.anchor_type), WARNING,
                                W["unusable"](error=str(exc))))
    if push:
        checks += [capability.push_mode(cs), capability.conditional_create(cs)]
    return [c for c in checks if c.status != OK]
