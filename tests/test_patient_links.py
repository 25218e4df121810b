"""Every way a record names its patient, and records that cannot be read (issue 20, classes 3 and 4).

Class 3: relative, absolute on the same or another base, `_history`, `urn:uuid`, conditional
(`Patient?identifier=sys|val`, `Patient?_id=`) and logical (`subject.identifier`) references, in the
Patient's own Bundle and in another file of the input (a pharmacy export): each screens exactly as the
original. An identifier no Patient carries, or several do, is never read as someone's data.

Class 4: an entry whose resourceType is missing, misspelt, lower-cased or not R4's, but which names the
patient, keeps every criterion it could decide unknown, in a Bundle, in NDJSON, in another file, on one
process and on two; in the CDS service, a record inside a patient-scoped prefetch search whose subject or
resourceType cannot be read does the same, and the service answers as the CLI on the same data.
"""
from __future__ import annotations

import copy

import orjson
import pytest

import fhir3t
from cds_helpers import SERVICE, card_status, running
from conftest import SAMPLES
from fhir3t.errors import Problems
from fhir3t.pipeline import Definition
from fhir3t.r4facts import r4_facts
from fhir3t.service.hooks import CdsService
from fhir3t.service.prefetch import as_prefetch
from fhir3t.service.settings import ServeSettings

AS_OF = "2026-11-16"
P01 = orjson.loads((SAMPLES / "screening" / "01-eligible-classic.json").read_bytes())
P14 = orjson.loads((SAMPLES / "screening" / "14-ineligible-prior-tacrolimus-failure.json").read_bytes())
MRN = "http://hospital.example.org/mrn"
BASE = "http://ehr.example.org/fhir"

#: how a record may name Patient/p01 (MRN-100001): the reference (or None) and identifier written
WAYS = {
    "relative": {"reference": "Patient/p01"},
    "absolute-same-base": {"reference": f"{BASE}/Patient/p01"},
    "absolute-other-base": {"reference": "https://lis.example.org/r4/Patient/p01"},
    "history": {"reference": f"{BASE}/Patient/p01/_history/3"},
    "conditional-system": {"reference": f"Patient?identifier={MRN}|MRN-100001"},
    "conditional-encoded": {"reference": "Patient?identifier=http%3A%2F%2Fhospital.example.org%2Fmrn%7CMRN-100001"},
    "conditional-value": {"reference": "Patient?identifier=MRN-100001"},
    "conditional-id": {"reference": "Patient?_id=p01"},
    "logical": {"identifier": {"system": MRN, "value": "MRN-100001"}},
    "logical-no-system": {"identifier": {"value": "MRN-100001"}, "display": "Lina Verhoeven"},
    "reference-and-identifier": {"reference": "Patient/p01", "identifier": {"system": MRN, "value": "MRN-100001"}},
}


def _relink(bundle: dict, link: dict, keep=lambda r: True) -> dict:
    out = copy.deepcopy(bundle)
    for e in out["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Patient" or not keep(r):
            continue
        for f in r4_facts().links(r["resourceType"]):
            if f in r:
                r[f] = copy.deepcopy(link)
    return out


def _screen(docs=(), paths=(), **kw) -> tuple[dict[str, fhir3t.ScreeningResult], Problems]:
    problems = Problems()
    out = {r.patient: r for r in fhir3t.screen(list(paths), as_of=AS_OF, problems=problems, documents=list(docs), **kw)}
    return out, problems


def _results(r: fhir3t.ScreeningResult) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {c.id: (c.result, c.evidence) for c in r.criteria}


ORIGINAL = _results(_screen([("p01.json", P01)])[0]["Patient/p01"])


@pytest.mark.parametrize("way", sorted(WAYS))
def test_every_way_of_naming_the_patient_inside_their_bundle_screens_the_same(way):
    bundle = _relink(P01, WAYS[way])
    if way == "absolute-other-base":  # records the LIS server holds, naming its patient p01 (the ids are shared)
        for e in bundle["entry"]:
            if e["resource"]["resourceType"] != "Patient" and "fullUrl" in e:
                e["fullUrl"] = e["fullUrl"].replace(BASE, "https://lis.example.org/r4")
    out, _ = _screen([("p01.json", bundle)])
    assert list(out) == ["Patient/p01"]
    assert _results(out["Patient/p01"]) == ORIGINAL


def test_records_of_the_patients_server_naming_a_patient_of_another_server_are_not_this_patients():
    """Records whose fullUrl is on the Patient's server but that name https://lis.example.org/r4/Patient/p01:
    by FHIR's rule that is another server's resource, someone else whatever the id. Whose they are cannot be
    told: what they could decide stays unknown for p01 (tests/test_server_shapes.py has the single-result case)."""
    out, _ = _screen([("p01.json", _relink(P01, WAYS["absolute-other-base"]))])
    assert list(out) == ["Patient/p01"]
    r = out["Patient/p01"]
    assert r.status == "candidate" and r.by_id("I3-mda5").result == "unknown"
    assert "another server" in r.by_id("I3-mda5").reason


@pytest.mark.parametrize("way", sorted(WAYS))
def test_every_way_of_naming_the_patient_from_another_file_screens_the_same(way, tmp_path):
    """The labs come from another system's Bundle (no Patient in it), naming the patient its own way."""
    ehr = copy.deepcopy(P01)
    ehr["entry"] = [e for e in ehr["entry"] if e["resource"]["resourceType"] != "Observation"]
    lab = _relink(P01, WAYS[way])
    lab["entry"] = [e for e in lab["entry"] if e["resource"]["resourceType"] == "Observation"]
    for e in lab["entry"]:
        e.pop("fullUrl", None)
    out, _ = _screen([("ehr.json", ehr), ("lis.json", lab)])
    assert list(out) == ["Patient/p01"] and _results(out["Patient/p01"]) == ORIGINAL
    # the same as files, one and two processes (the lab as NDJSON)
    (tmp_path / "ehr.json").write_bytes(orjson.dumps(ehr))
    (tmp_path / "Observation.ndjson").write_bytes(b"".join(orjson.dumps(e["resource"]) + b"\n" for e in lab["entry"]))
    for jobs in (1, 2):
        out, _ = _screen(paths=[tmp_path], jobs=jobs)
        assert list(out) == ["Patient/p01"] and _results(out["Patient/p01"]) == ORIGINAL, jobs


def test_a_transaction_bundle_with_conditional_references_is_read_whole():
    tx = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    for e in P14["entry"]:
        r = copy.deepcopy(e["resource"])
        r.pop("id", None)
        entry = {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{len(tx['entry']):012d}", "resource": r,
                 "request": {"method": "POST", "url": r["resourceType"]}}
        if r["resourceType"] == "Patient":
            entry["request"]["ifNoneExist"] = "identifier=http://hospital.example.org/mrn|MRN-100014"
        tx["entry"].append(entry)
    relinked = _relink(tx, {"reference": "Patient?identifier=http://hospital.example.org/mrn|MRN-100014"})
    (r,) = _screen([("tx.json", relinked)])[0].values()
    assert r.status == "ineligible" and r.by_id("E1-prior-3t-failure").result == "met"
    assert r.by_id("I3-mda5").result == "met"  # the labs are read, not skipped


def _hbsag_negative_elsewhere(link: dict) -> tuple[dict, dict]:
    """p01 without its HBsAg; a negative HBsAg in a lab Bundle naming the patient by `link`."""
    ehr = copy.deepcopy(P01)
    hbsag = next(e for e in ehr["entry"] if e["resource"].get("id") == "p01-hbsag")
    ehr["entry"].remove(hbsag)
    lab_res = copy.deepcopy(hbsag["resource"])
    lab_res["subject"] = link
    return ehr, {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": lab_res}]}


def test_an_identifier_no_patient_carries_is_never_read_as_someones_result():
    ehr, lab = _hbsag_negative_elsewhere({"identifier": {"system": MRN, "value": "MRN-999999"}})
    out, problems = _screen([("ehr.json", ehr), ("lab.json", lab)])
    assert out["Patient/p01"].by_id("E7-hbv").result == "unknown"
    assert any("lab.json" in p.where and "identifier no Patient" in p.message for p in problems)


def test_an_identifier_no_patient_carries_inside_a_patients_bundle_keeps_their_criteria_unknown():
    b = copy.deepcopy(P01)
    hbsag = next(e["resource"] for e in b["entry"] if e["resource"].get("id") == "p01-hbsag")
    hbsag["subject"] = {"reference": f"Patient?identifier={MRN}|MRN-10000l"}  # a typo in the MRN
    out, _ = _screen([("p01.json", b)])
    r = out["Patient/p01"]
    assert r.by_id("E7-hbv").result == "unknown" and r.status == "candidate"


def test_an_identifier_several_patients_carry_is_unread_for_each():
    ehr, lab = _hbsag_negative_elsewhere({"identifier": {"system": MRN, "value": "MRN-100001"}})
    twin = orjson.loads((SAMPLES / "screening" / "02-eligible-consent-resource.json").read_bytes())
    pat = next(e["resource"] for e in twin["entry"] if e["resource"]["resourceType"] == "Patient")
    pat["identifier"] = [{"system": MRN, "value": "MRN-100001"}]  # the same MRN on another patient
    out, problems = _screen([("ehr.json", ehr), ("twin.json", twin), ("lab.json", lab)])
    for key in ("Patient/p01", "Patient/p02"):
        assert out[key].status != "eligible", key
    assert out["Patient/p01"].by_id("E7-hbv").result == "unknown"
    assert any("several Patients" in p.message for p in problems)


# ---- class 4: entries that cannot be read -------------------------------------------------------
GARBLES = {
    "missing": lambda r: r.pop("resourceType"),
    "misspelt": lambda r: r.__setitem__("resourceType", r["resourceType"][:-1] + "x"),
    "lower-case": lambda r: r.__setitem__("resourceType", r["resourceType"].lower()),
    "not-r4": lambda r: r.__setitem__("resourceType", "MedicationUsage"),  # R5's name for MedicationStatement
}


def _p14_with_garbled_statement(garble: str) -> tuple[dict, dict]:
    """p14 is ineligible only by its tacrolimus MedicationStatement (stopped for lack of effect)."""
    b = copy.deepcopy(P14)
    stmt = next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "MedicationStatement"
                and "tacrolimus" in orjson.dumps(e["resource"]).decode().lower())
    GARBLES[garble](stmt)
    return b, stmt


@pytest.mark.parametrize("garble", sorted(GARBLES))
def test_a_garbled_resource_type_naming_the_patient_keeps_what_it_could_decide_unknown(garble, tmp_path):
    b, stmt = _p14_with_garbled_statement(garble)
    out, problems = _screen([("p14.json", b)])
    r = out["Patient/p14"]
    assert r.status == "candidate" and r.by_id("E1-prior-3t-failure").result == "unknown"
    assert r.by_id("E2-recent-immunomodulator").result == "unknown"  # it could be any drug record
    # the same entry in another file (NDJSON, no Patient in it), on one and two processes
    b["entry"] = [e for e in b["entry"] if e["resource"] is not stmt]
    (tmp_path / "p14.json").write_bytes(orjson.dumps(b))
    (tmp_path / "pharmacy.ndjson").write_bytes(orjson.dumps(stmt) + b"\n")
    for jobs in (1, 2):
        out, problems = _screen(paths=[tmp_path], jobs=jobs)
        assert out["Patient/p14"].by_id("E1-prior-3t-failure").result == "unknown", jobs
        assert any("pharmacy.ndjson:1" in p.where for p in problems)


def test_a_garbled_resource_type_naming_no_patient_in_a_one_patient_bundle_is_theirs():
    b, stmt = _p14_with_garbled_statement("missing")
    stmt.pop("subject")
    r = _screen([("p14.json", b)])[0]["Patient/p14"]
    assert r.by_id("E1-prior-3t-failure").result == "unknown"


# ---- the CDS service gives the CLI's answer on the same data ---------------------------------
@pytest.fixture(scope="module")
def cds(tmp_path_factory):
    """The service over real HTTP on loopback (uvicorn), screening as of the samples' day, a card every time."""
    from datetime import date

    settings = ServeSettings(as_of=date(2026, 11, 16), state_dir=tmp_path_factory.mktemp("cds"), show_again_after_days=0)
    with running(settings, Definition.load()) as (url, service):
        yield url, service


SUBJECT_GARBLES = {
    "number": 1234,
    "plain-string": "Patient/p01",
    "missing": None,
    "other-id": {"reference": "Patient/p0l"},
    "not-a-reference": {"display": "Lina Verhoeven"},
}


def _prefetch_garbled(service: CdsService, resources: list[dict], rid: str, garble) -> dict:
    """The prefetch an EHR sends for p01, built from the original types, then one record garbled inside it."""
    pre = as_prefetch(resources, service.services[SERVICE].prefetch, "p01")
    for doc in pre.values():
        for e in (doc or {}).get("entry", ()) if isinstance(doc, dict) and doc.get("resourceType") == "Bundle" else ():
            if e["resource"].get("id") == rid:
                garble(e["resource"])
    return pre


def _cli_status(resources: list[dict]) -> str:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    return _screen([("p01.json", bundle)])[0]["Patient/p01"].status


def _p01_resources() -> list[dict]:
    return [copy.deepcopy(e["resource"]) for e in P01["entry"]]


@pytest.mark.parametrize("garble", sorted(SUBJECT_GARBLES))
@pytest.mark.parametrize("rid", ["p01-hbsag", "p01-dm", "p01-checklist", "p01-cyclosporine"])
def test_a_prefetched_record_with_a_garbled_subject_keeps_the_service_from_saying_eligible(cds, garble, rid):
    value = SUBJECT_GARBLES[garble]

    def mutate(r: dict) -> None:
        field = "patient" if "patient" in r else "subject"
        if value is None:
            r.pop(field)
        else:
            r[field] = value

    url, service = cds
    resources = _p01_resources()
    assert card_status(url, "p01", as_prefetch(resources, service.services[SERVICE].prefetch, "p01")) == "eligible"
    status = card_status(url, "p01", _prefetch_garbled(service, resources, rid, mutate))
    assert status == "candidate"
    changed = _p01_resources()
    mutate(next(r for r in changed if r.get("id") == rid))
    assert _cli_status(changed) != "eligible"


@pytest.mark.parametrize("garble", sorted(GARBLES))
@pytest.mark.parametrize("rid", ["p01-hbsag", "p01-dm", "p01-cyclosporine"])
def test_a_prefetched_record_with_a_garbled_resource_type_keeps_the_service_from_saying_eligible(cds, garble, rid):
    url, service = cds
    resources = _p01_resources()
    assert card_status(url, "p01", _prefetch_garbled(service, resources, rid, GARBLES[garble])) == "candidate"
    changed = _p01_resources()
    GARBLES[garble](next(r for r in changed if r.get("id") == rid))
    assert _cli_status(changed) == "candidate"


@pytest.mark.parametrize("how", ["replaced-by", "replaces", "refer", "seealso"])
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_patient_linked_to_another_record_of_the_same_person_is_never_eligible_on_its_own_record(how, jobs, tmp_path):
    """Patient.link names another record of the same person (an MPI merge: the old record 'replaced-by' the new,
    the new one 'replaces' the old). fhir3t does not merge them, so what absence decides stays unknown on the
    record that carries the link, naming it: the other record may hold an HIV diagnosis. A link to a
    RelatedPerson, or to itself, changes nothing."""
    def written(bundle: dict, link: list | None) -> dict:
        out = copy.deepcopy(bundle)
        patient = next(e["resource"] for e in out["entry"] if e["resource"]["resourceType"] == "Patient")
        if link is not None:
            patient["link"] = link
        return out
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "p01.json").write_bytes(orjson.dumps(written(P01, [{"other": {"reference": "Patient/old-7"},
                                                                          "type": how}])))
    (tmp_path / "a" / "p14.json").write_bytes(orjson.dumps(P14))  # a second file, for the two-process run
    got, _ = _screen(paths=[tmp_path / "a"], jobs=jobs)
    p01 = got["Patient/p01"]
    assert p01.status != "eligible"
    hiv = p01.by_id("E9-hiv")
    assert hiv.result == "unknown" and "Patient/old-7" in hiv.reason and how in hiv.reason
    assert _results(p01)["I1-age"] == ORIGINAL["I1-age"]  # the patient's own data still reads as before
    for harmless in ([{"other": {"reference": "RelatedPerson/mother"}, "type": "seealso"}],
                     [{"other": {"reference": "Patient/p01"}, "type": how}]):
        same, _ = _screen([("p01.json", written(P01, harmless))])
        assert _results(same["Patient/p01"]) == ORIGINAL


@pytest.mark.parametrize("how", ["replaced-by", "replaces", "seealso"])
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_record_another_patient_links_to_is_never_eligible_on_its_own_record_even_without_a_link_back(how, jobs,
                                                                                                      tmp_path):
    """The MPI wrote the link on one record only (the surviving one says 'replaces', the old one says nothing).
    The record linked to keeps what absence decides unknown too, naming the record that links to it, in one
    process or two (the two records in different files). A record linked to that the input does not hold is no
    patient: it gets no result."""
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "p01.json").write_bytes(orjson.dumps(P01))  # no link on this one
    newer = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {
        "resourceType": "Patient", "id": "p01-mpi", "gender": "female", "birthDate": "1980-01-01",
        "link": [{"other": {"reference": "Patient/p01"}, "type": how},
                 {"other": {"reference": "Patient/gone-3"}, "type": how}]}}]}
    (tmp_path / "a" / "z-mpi.json").write_bytes(orjson.dumps(newer))
    got, _ = _screen(paths=[tmp_path / "a"], jobs=jobs)
    assert sorted(got) == ["Patient/p01", "Patient/p01-mpi"]
    p01 = got["Patient/p01"]
    assert p01.status != "eligible"
    hiv = p01.by_id("E9-hiv")
    assert hiv.result == "unknown" and "Patient/p01-mpi" in hiv.reason and how in hiv.reason
    assert _results(p01)["I1-age"] == ORIGINAL["I1-age"]
    alone, _ = _screen(paths=[tmp_path / "a" / "p01.json"], jobs=1)  # the control: without the other record
    assert alone["Patient/p01"].status == "eligible"
