"""Does the server apply the search parameters fhir3t sends? Each is tried twice: with a value that
matches nothing (a server that ignores the parameter answers with everything it has) and with a
value taken from a resource on the server (which must come back, and nothing that does not match).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fhir3t.fhirutil import fhir_id, patient_id, search_escape
from fhir3t.jsonshape import child, items, objs, text
from fhir3t.pipeline.servercheck.capability import search_params
from fhir3t.pipeline.servercheck.model import FAIL, OK, WARNING, Check
from fhir3t.pipeline.servercheck.needs import Needs
from fhir3t.pipeline.servercheck.session import Session, ref_key
from fhir3t.sources.rest import CODES_PER_QUERY, PAGE, anchor_codes, has_identifier
from fhir3t.transport.http import HttpStatusError
from fhir3t.transport.urls import clean


@dataclass(frozen=True)
class Probe:
    """One search parameter of one type, and how to tell that the server applies it."""

    id: str
    rtype: str
    param: str
    #: what fhir3t uses it for (ends the message when it is not applied)
    why: str
    #: the search value that finds a given resource, or None when the resource has none
    value_of: Callable[[dict], str | None]
    #: whether a returned resource matches the value searched for
    matches: Callable[[dict, str], bool]
    #: fhir3t depends on it (not applied: fail); else it is checked for others' sake (warning)
    relied_on: bool = True
    #: a value that matches nothing; default: a token of a code system no server has
    nothing: Callable[[Session], str] | None = None

    @property
    def title(self) -> str:
        return f"{self.rtype}?{self.param}"


def _identifier_value(res: dict) -> str | None:
    for i in objs(items(res.get("identifier"))):
        system, value = text(i.get("system")), text(i.get("value"))
        if system and value:
            return f"{search_escape(system)}|{search_escape(value)}"
    return None


def _identifier_matches(res: dict, value: str) -> bool:
    system, _, val = value.partition("|")
    unesc = [s.replace("\\|", "|").replace("\\,", ",").replace("\\$", "$").replace("\\\\", "\\") for s in (system, val)]
    return has_identifier(res, unesc[0], unesc[1])


def _ref_value(element: str, rtype: str) -> Callable[[dict], str | None]:
    def value_of(res: dict) -> str | None:
        key = ref_key(res, element)
        return key if key and key.startswith(f"{rtype}/") and fhir_id(key.split("/", 1)[1]) else None
    return value_of


def _ref_matches(element: str) -> Callable[[dict, str], bool]:
    return lambda res, value: ref_key(res, element) == value


def _id_value(res: dict) -> str | None:
    return fhir_id(res.get("id"))


def push_probes() -> tuple[Probe, ...]:
    """The searches push and safety send (and the ones other tools use on ResearchSubjects)."""
    individual = _ref_value("individual", "Patient")
    return (
        Probe("search-study-identifier", "ResearchStudy", "identifier",
              "push creates the study's ResearchStudy only when this search finds none (conditional create)",
              _identifier_value, _identifier_matches),
        Probe("search-subject-individual", "ResearchSubject", "individual",
              "push reads each patient's current ResearchSubjects by it (the no-regression rule; answers are "
              "checked, but an ignored parameter reads every subject on the server)",
              individual, _ref_matches("individual"), nothing=lambda s: s.nothing_ref("Patient")),
        Probe("search-subject-id", "ResearchSubject", "_id", "push reads the subjects it updates by id",
              _id_value, lambda res, v: res.get("id") == v, nothing=lambda s: f"fhir3t-nothing-{s.tag}"),
        Probe("search-subject-patient", "ResearchSubject", "patient",
              "fhir3t does not send it (push searches by individual), other tools do", individual,
              _ref_matches("individual"), relied_on=False, nothing=lambda s: s.nothing_ref("Patient")),
        Probe("search-subject-study", "ResearchSubject", "study",
              "fhir3t does not send it (it matches a subject's study itself), other tools do",
              _ref_value("study", "ResearchStudy"), _ref_matches("study"), relied_on=False,
              nothing=lambda s: s.nothing_ref("ResearchStudy")),
        Probe("search-medication-id", "Medication", "_id",
              "the Medications that patients' drug records point at are read by id", _id_value,
              lambda res, v: res.get("id") == v, nothing=lambda s: f"fhir3t-nothing-{s.tag}"),
    )


def run_probe(session: Session, probe: Probe, prefer: Callable[[dict], bool] | None = None) -> Check:
    """The verdict on one parameter (see the module doc); `prefer` picks which sample to search for."""
    rtype, param = probe.rtype, probe.param
    bad = FAIL if probe.relied_on else WARNING
    declared = search_params(session.cs, rtype)
    note = "" if declared is None or param in declared or param.startswith("_") else \
        " (not declared in the CapabilityStatement)"
    nothing = probe.nothing(session) if probe.nothing else session.nothing_token()
    details: dict[str, object] = {"declared": None if declared is None else param in declared}
    try:
        got = session.first_page(rtype, [(param, nothing), ("_count", "1")])
    except HttpStatusError as exc:
        return Check(probe.id, probe.title, bad, f"rejected ({exc.status}){note}: {probe.why}", details)
    if got:
        return Check(probe.id, probe.title, bad, f"ignored: a value that matches nothing returned {rtype} resources"
                     f"{note}; {probe.why}", {**details, "applied": False})
    samples = [s for s in session.samples(rtype) if probe.value_of(s)]
    if prefer is not None:
        samples.sort(key=lambda s: not prefer(s))
    if not samples:
        return Check(probe.id, probe.title, WARNING,
                     f"cannot tell whether the server applies it: a value that matches nothing finds nothing, but there "
                     f"is no {rtype} on the server to search for{note}", {**details, "applied": None})
    sample = samples[0]
    value = probe.value_of(sample) or ""
    found = session.first_page(rtype, [(param, value), ("_count", "50")])
    shown = f"{rtype}/{clean(sample.get('id'), 64)}"
    if not any(r.get("id") == sample.get("id") for r in found):
        return Check(probe.id, probe.title, bad, f"does not find {shown} by its own {param}{note}; {probe.why}",
                     {**details, "applied": False})
    loose = [r for r in found if not probe.matches(r, value)]
    if loose:
        return Check(probe.id, probe.title, bad, f"matches loosely: a search for the {param} of {shown} also returned "
                     f"{len(loose)} {rtype} that do not match{note}; {probe.why}", {**details, "applied": False})
    return Check(probe.id, probe.title, OK, f"applied: finds {shown} by its {param}, nothing for a value that "
                 f"matches nothing{note}", {**details, "applied": True})


def anchor_nothing(session: Session, needs: Needs) -> Check:
    """The cheap half of the candidate check (one request): a code that matches nothing finds nothing."""
    rtype, vs = needs.anchor_type, needs.anchor_valueset
    title = f"{rtype}?code (candidates)"
    try:
        got = session.first_page(rtype, [("code", session.nothing_token()), ("_count", "1")])
    except HttpStatusError as exc:
        return Check("search-candidates", title, FAIL, f"rejected ({exc.status}): screen --server cannot find candidates "
                     f"by diagnosis ({vs.id}) and screens every Patient instead", {"applied": False})
    if got:
        return Check("search-candidates", title, FAIL, f"ignored: a code that matches nothing returned {rtype} resources, "
                     f"so finding candidates reads every {rtype} on the server (fhir3t keeps only those in {vs.id})",
                     {"applied": False})
    return Check("search-candidates", title, OK, "a code that matches nothing finds nothing", {"applied": None})


def candidates(session: Session, needs: Needs) -> tuple[list[Check], list[str]]:
    """Candidate patients as screen --server finds them (first pages only), and the checks of that search."""
    first = anchor_nothing(session, needs)
    if first.status != OK:
        return [first], []
    rtype, vs, tx = needs.anchor_type, needs.anchor_valueset, needs.tx
    title = first.title
    exact, roots = anchor_codes(vs, tx)
    found: dict[str, None] = {}
    outside = 0
    more = False
    queries = [",".join(f"{search_escape(s)}|{search_escape(c)}" for s, c in exact[i:i + CODES_PER_QUERY])
               for i in range(0, len(exact), CODES_PER_QUERY)]
    for q in queries:
        got, has_more = session.page(rtype, [("code", q), ("_count", str(PAGE))])
        more = more or has_more
        for res in got:
            if not any(code in vs for code in tx.codes({"coding": objs(items(child(res, "code").get("coding")))})):
                outside += 1
                continue
            pid = patient_id(res)
            if pid:
                found[pid] = None
    details = {"candidates": len(found), "more": more, "codes": len(exact), "requests": len(queries)}
    checks: list[Check] = []
    if outside:
        checks.append(Check("search-candidates", title, FAIL, f"matches loosely: {outside} {rtype} resources in the "
                            f"answer are not in {vs.id} (fhir3t leaves them out; the server may ignore part of the code "
                            "list)", details))
    elif not found:
        none = "" if session.samples(rtype) else f" (there is no {rtype} on the server at all)"
        checks.append(Check("search-candidates", title, WARNING, f"no patient has a {rtype} in {vs.id}{none}: screen "
                            "--server would find no candidates", details))
    else:
        n = f"{len(found)}{' or more' if more else ''}"
        checks.append(Check("search-candidates", title, OK, f"applied: {n} candidate patient{'s' if n != '1' else ''} "
                            f"with a {rtype} in {vs.id} ({len(exact)} codes in {len(queries)} "
                            f"request{'s' if len(queries) != 1 else ''}), nothing for a code that matches nothing",
                            details))
    if roots:
        checks.append(_below(session, needs, roots[0]))
    return checks, list(found)


def _below(session: Session, needs: Needs, root: tuple[str, str]) -> Check:
    rtype, vs = needs.anchor_type, needs.anchor_valueset
    title = f"{rtype}?code:below"
    fallback = "fhir3t also searches the codes one level below it, so only deeper codes would be missed"
    try:
        nothing = session.first_page(rtype, [("code:below", session.nothing_token()), ("_count", "1")])
        got = session.first_page(rtype, [("code:below", f"{search_escape(root[0])}|{search_escape(root[1])}"), ("_count", "50")])
    except HttpStatusError as exc:
        return Check("search-code-below", title, WARNING, f"not supported ({exc.status}); {fallback}")
    if nothing:
        return Check("search-code-below", title, WARNING, f"ignored: a code that matches nothing returned {rtype} "
                     f"resources; fhir3t keeps only those in {vs.id}")
    outside = [r for r in got if not any(c in vs for c in needs.tx.codes(
        {"coding": objs(items(child(r, "code").get("coding")))}))]
    if outside:
        return Check("search-code-below", title, WARNING, f"matches loosely: {len(outside)} {rtype} below "
                     f"{clean(root[1], 40)} are not in {vs.id} (fhir3t leaves them out)")
    if not got:
        return Check("search-code-below", title, WARNING, f"cannot tell whether the server applies it: nothing below "
                     f"{clean(root[1], 40)} on the server; {fallback}")
    return Check("search-code-below", title, OK, f"applied: {len(got)} found below {clean(root[1], 40)} on the first "
                 "page, nothing below a code that matches nothing")
