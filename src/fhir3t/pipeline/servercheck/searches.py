"""Does the server apply the search parameters fhir3t sends? Each is tried twice: with a value that
matches nothing (a server that ignores the parameter answers with everything it has) and with a
value taken from a resource on the server (which must come back, and nothing that does not match).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fhir3t.fhirutil import fhir_id, patient_id, search_escape
from fhir3t.jsonshape import child, items, objs, text
from fhir3t.messages import Message, Msg, Plural, Text, table
from fhir3t.pipeline.servercheck.capability import search_params
from fhir3t.pipeline.servercheck.model import FAIL, OK, WARNING, Check
from fhir3t.pipeline.servercheck.needs import Needs
from fhir3t.pipeline.servercheck.session import Session, ref_key
from fhir3t.sources.rest import CODES_PER_QUERY, PAGE, anchor_codes, has_identifier
from fhir3t.terminology import ValueSet
from fhir3t.transport.http import HttpStatusError
from fhir3t.transport.urls import clean

WHY = table("check.why", {
    "study-identifier": "push creates the study's ResearchStudy only when this search finds none (conditional create)",
    "subject-individual": "push reads each patient's current ResearchSubjects by it (the no-regression rule; answers are "
                          "checked, but an ignored parameter reads every subject on the server)",
    "subject-id": "push reads the subjects it updates by id",
    "subject-patient": "fhir3t does not send it (push searches by individual), other tools do",
    "subject-study": "fhir3t does not send it (it matches a subject's study itself), other tools do",
    "medication-id": "the Medications that patients' drug records point at are read by id",
})
W = table("check.search", {
    "not-declared": " (not declared in the CapabilityStatement)",
    "rejected": "rejected ({status}){note}: {why}",
    "ignored": "ignored: a value that matches nothing returned {type} resources{note}; {why}",
    "cannot-tell": "cannot tell whether the server applies it: a value that matches nothing finds nothing, but there is "
                   "no {type} on the server to search for{note}",
    "not-found": "does not find {resource} by its own {param}{note}; {why}",
    "applied": "applied: finds {resource} by its {param}, nothing for a value that matches nothing{note}",
    "t.candidates": "{type}?code (candidates)",
    "candidates-rejected": "rejected ({status}): screen --server cannot find candidates by diagnosis ({valueset}) and "
                           "screens every Patient instead",
    "candidates-ignored": "ignored: a code that matches nothing returned {type} resources, so finding candidates reads "
                          "every {type} on the server (fhir3t keeps only those in {valueset})",
    "candidates-nothing": "a code that matches nothing finds nothing",
    "candidates-loose": "matches loosely: {n} {type} resources in the answer are not in {valueset} (fhir3t leaves them "
                        "out; the server may ignore part of the code list)",
    "candidates-none": "no patient has a {type} in {valueset}{none}: screen --server would find no candidates",
    "candidates-none-at-all": " (there is no {type} on the server at all)",
    "t.below": "{type}?code:below",
    "below-fallback": "fhir3t also searches the codes one level below it, so only deeper codes would be missed",
    "below-unsupported": "not supported ({status}); {fallback}",
    "below-ignored": "ignored: a code that matches nothing returned {type} resources; fhir3t keeps only those in {valueset}",
    "below-loose": "matches loosely: {n} {type} below {root} are not in {valueset} (fhir3t leaves them out)",
    "below-cannot-tell": "cannot tell whether the server applies it: nothing below {root} on the server; {fallback}",
    "below-applied": "applied: {n} found below {root} on the first page, nothing below a code that matches nothing",
})
LOOSE = Plural("check.search.loose", "matches loosely: a search for the {param} of {resource} also returned {n} {type} "
               "that does not match{note}; {why}", "matches loosely: a search for the {param} of {resource} also "
               "returned {n} {type} that do not match{note}; {why}")
CANDIDATES = Plural("check.search.candidates", "applied: {count} candidate patient with a {type} in {valueset} ({codes} "
                    "codes in {n} request), nothing for a code that matches nothing", "applied: {count} candidate "
                    "patients with a {type} in {valueset} ({codes} codes in {n} requests), nothing for a code that "
                    "matches nothing")
OR_MORE = Message("check.search.or-more", "{n} or more")


def set_name(vs: ValueSet) -> Text:
    """The value set as the engineer knows it in English (its id, as in the files) and by its title elsewhere."""
    return Text.of(vs.id, dict(vs.name_text.texts[1:]))


@dataclass(frozen=True)
class Probe:
    """One search parameter of one type, and how to tell that the server applies it."""

    id: str
    rtype: str
    param: str
    #: what fhir3t uses it for (ends the message when it is not applied)
    why: Msg
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
              WHY["study-identifier"](),
              _identifier_value, _identifier_matches),
        Probe("search-subject-individual", "ResearchSubject", "individual",
              WHY["subject-individual"](),
              individual, _ref_matches("individual"), nothing=lambda s: s.nothing_ref("Patient")),
        Probe("search-subject-id", "ResearchSubject", "_id", WHY["subject-id"](),
              _id_value, lambda res, v: res.get("id") == v, nothing=lambda s: f"fhir3t-nothing-{s.tag}"),
        Probe("search-subject-patient", "ResearchSubject", "patient",
              WHY["subject-patient"](), individual,
              _ref_matches("individual"), relied_on=False, nothing=lambda s: s.nothing_ref("Patient")),
        Probe("search-subject-study", "ResearchSubject", "study",
              WHY["subject-study"](),
              _ref_value("study", "ResearchStudy"), _ref_matches("study"), relied_on=False,
              nothing=lambda s: s.nothing_ref("ResearchStudy")),
        Probe("search-medication-id", "Medication", "_id",
              WHY["medication-id"](), _id_value,
              lambda res, v: res.get("id") == v, nothing=lambda s: f"fhir3t-nothing-{s.tag}"),
    )


def run_probe(session: Session, probe: Probe, prefer: Callable[[dict], bool] | None = None) -> Check:
    """The verdict on one parameter (see the module doc); `prefer` picks which sample to search for."""
    rtype, param = probe.rtype, probe.param
    bad = FAIL if probe.relied_on else WARNING
    declared = search_params(session.cs, rtype)
    note = None if declared is None or param in declared or param.startswith("_") else W["not-declared"]()
    nothing = probe.nothing(session) if probe.nothing else session.nothing_token()
    details: dict[str, object] = {"declared": None if declared is None else param in declared}
    try:
        got = session.first_page(rtype, [(param, nothing), ("_count", "1")])
    except HttpStatusError as exc:
        return Check(probe.id, probe.title, bad, W["rejected"](status=exc.status, note=note, why=probe.why), details)
    if got:
        return Check(probe.id, probe.title, bad, W["ignored"](type=rtype, note=note, why=probe.why),
                     {**details, "applied": False})
    samples = [s for s in session.samples(rtype) if probe.value_of(s)]
    if prefer is not None:
        samples.sort(key=lambda s: not prefer(s))
    if not samples:
        return Check(probe.id, probe.title, WARNING, W["cannot-tell"](type=rtype, note=note), {**details, "applied": None})
    sample = samples[0]
    value = probe.value_of(sample) or ""
    found = session.first_page(rtype, [(param, value), ("_count", "50")])
    shown = f"{rtype}/{clean(sample.get('id'), 64)}"
    if not any(r.get("id") == sample.get("id") for r in found):
        return Check(probe.id, probe.title, bad, W["not-found"](resource=shown, param=param, note=note, why=probe.why),
                     {**details, "applied": False})
    loose = [r for r in found if not probe.matches(r, value)]
    if loose:
        return Check(probe.id, probe.title, bad, LOOSE(len(loose), param=param, resource=shown, type=rtype, note=note,
                                                      why=probe.why), {**details, "applied": False})
    return Check(probe.id, probe.title, OK, W["applied"](resource=shown, param=param, note=note), {**details, "applied": True})


def anchor_nothing(session: Session, needs: Needs) -> Check:
    """The cheap half of the candidate check (one request): a code that matches nothing finds nothing."""
    rtype, vs = needs.anchor_type, needs.anchor_valueset
    title = W["t.candidates"](type=rtype)
    try:
        got = session.first_page(rtype, [("code", session.nothing_token()), ("_count", "1")])
    except HttpStatusError as exc:
        return Check("search-candidates", title, FAIL, W["candidates-rejected"](status=exc.status, valueset=set_name(vs)),
                     {"applied": False})
    if got:
        return Check("search-candidates", title, FAIL, W["candidates-ignored"](type=rtype, valueset=set_name(vs)),
                     {"applied": False})
    return Check("search-candidates", title, OK, W["candidates-nothing"](), {"applied": None})


def candidates(session: Session, needs: Needs) -> tuple[list[Check], list[str]]:
    """Candidate patients as screen --server finds them (first pages only), and the checks of that search."""
    first = anchor_nothing(session, needs)
    if first.status != OK:
        return [first], []
    rtype, vs, tx = needs.anchor_type, needs.anchor_valueset, needs.tx
    title = first.heading
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
        checks.append(Check("search-candidates", title, FAIL, W["candidates-loose"](n=outside, type=rtype, valueset=set_name(vs)),
                            details))
    elif not found:
        none = None if session.samples(rtype) else W["candidates-none-at-all"](type=rtype)
        checks.append(Check("search-candidates", title, WARNING, W["candidates-none"](type=rtype, valueset=set_name(vs), none=none),
                            details))
    else:
        count = OR_MORE(n=len(found)) if more else str(len(found))
        # the plural follows the number of requests; the patients' count reads the same in either form
        checks.append(Check("search-candidates", title, OK,
                            CANDIDATES(len(queries), count=count, type=rtype, valueset=set_name(vs), codes=len(exact)), details))
    if roots:
        checks.append(_below(session, needs, roots[0]))
    return checks, list(found)


def _below(session: Session, needs: Needs, root: tuple[str, str]) -> Check:
    rtype, vs = needs.anchor_type, needs.anchor_valueset
    title = W["t.below"](type=rtype)
    fallback = W["below-fallback"]()
    try:
        nothing = session.first_page(rtype, [("code:below", session.nothing_token()), ("_count", "1")])
        got = session.first_page(rtype, [("code:below", f"{search_escape(root[0])}|{search_escape(root[1])}"), ("_count", "50")])
    except HttpStatusError as exc:
        return Check("search-code-below", title, WARNING, W["below-unsupported"](status=exc.status, fallback=fallback))
    if nothing:
        return Check("search-code-below", title, WARNING, W["below-ignored"](type=rtype, valueset=set_name(vs)))
    outside = [r for r in got if not any(c in vs for c in needs.tx.codes(
        {"coding": objs(items(child(r, "code").get("coding")))}))]
    if outside:
        return Check("search-code-below", title, WARNING, W["below-loose"](n=len(outside), type=rtype,
                                                                           root=clean(root[1], 40), valueset=set_name(vs)))
    if not got:
        return Check("search-code-below", title, WARNING, W["below-cannot-tell"](root=clean(root[1], 40), fallback=fallback))
    return Check("search-code-below", title, OK, W["below-applied"](n=len(got), root=clean(root[1], 40)))
