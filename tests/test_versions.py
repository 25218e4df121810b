"""Versions (issue 20, class 1): the same Type/id in several inputs is read once, as its newest copy.

Unit tests of the one rule (sources/versions.py: versionId, then lastUpdated, then history-Bundle order),
and the rule at work through `screen`: two exports in both orders, a history Bundle and its DELETEs, one
process and `--jobs 2`, and copies whose order cannot be told keeping the criterion unknown, naming both.
"""
from __future__ import annotations

import copy

import orjson
import pytest

import fhir3t
from conftest import SAMPLES
from fhir3t.errors import Problems
from fhir3t.sources.versions import (
    Deleted,
    Undecided,
    history_entries,
    newest,
    newest_in_history,
    newest_of,
    order,
    reconcile,
)

AS_OF = "2026-11-16"
P01 = orjson.loads((SAMPLES / "screening" / "01-eligible-classic.json").read_bytes())
VER = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def res(rid: str = "c1", v: str | None = None, lu: str | None = None, **body) -> dict:
    r = {"resourceType": "Condition", "id": rid, **body}
    meta = {k: x for k, x in (("versionId", v), ("lastUpdated", lu)) if x is not None}
    if meta:
        r["meta"] = meta
    return r


# ---- the rule ------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b, want", [
    (res(v="2"), res(v="1"), 1),
    (res(v="9"), res(v="10"), -1),  # numbers, not strings: 10 is newer than 9
    (res(v="1"), res(v="1"), 0),
    (res(v="abc"), res(v="abd"), None),  # opaque version strings say nothing about order
    (res(v="abc", lu="2026-01-02T00:00:00Z"), res(v="abd", lu="2026-01-01T23:59:59Z"), 1),
    (res(lu="2026-01-01T08:00:00+08:00"), res(lu="2026-01-01T00:00:01Z"), -1),  # one second later in UTC
    (res(lu="2026-01-01T08:00:00+08:00"), res(lu="2026-01-01T00:00:00Z"), None),  # the same instant
    (res(lu="2026-01-02"), res(lu="2026-01-01T00:00:00Z"), None),  # no time: not an instant
    (res(v="2"), res(lu="2030-01-01T00:00:00Z"), None),  # versionId on one side only, lastUpdated on the other
    (res(v="2", lu="2020-01-01T00:00:00Z"), res(v="3", lu="2019-01-01T00:00:00Z"), -1),  # version first
    (res(), res(), None),
])
def test_order_by_version_then_last_updated(a, b, want):
    assert order(a, b) == want
    assert order(b, a) == (None if want is None else -want)


def test_newest_takes_the_newer_copy_and_one_of_equal_copies():
    old, new = res(v="1", clinicalStatus="active"), res(v="2", clinicalStatus="resolved")
    assert newest(old, new) is new and newest(new, old) is new
    a, b = res(v="1", note="x"), res(v="1", note="x")
    assert newest(a, b) is a  # the same version read twice
    same_but_meta = res(lu="2026-01-01T00:00:00Z", note="x")
    assert newest(res(note="x"), same_but_meta)["note"] == "x"  # equal without meta: one record


def test_copies_that_differ_and_cannot_be_ordered_are_undecided():
    a, b = res(clinicalStatus="active"), res(clinicalStatus="resolved")
    found = newest(a, b)
    assert isinstance(found, Undecided) and found.copies == (a, b)
    # a third copy provably older than one of them changes nothing; one provably newer than both decides
    assert isinstance(newest_of([a, b, res(v="1")]), Undecided)
    top = res(v="5", lu="2030-01-01T00:00:00Z")
    assert newest_of([res(v="1", lu="2020-01-01T00:00:00Z"), top]) is top


def test_a_deletion_is_ordered_like_a_copy():
    copy_v2 = res(v="2")
    assert newest(copy_v2, Deleted("Condition/c1", "3")) == Deleted("Condition/c1", "3")
    assert newest(res(v="4"), Deleted("Condition/c1", "3")) == res(v="4")
    assert isinstance(newest(res(), Deleted("Condition/c1")), Undecided)


def _history(*entries):
    return {"resourceType": "Bundle", "type": "history", "entry": list(entries)}


def _put(r):
    return {"resource": r, "request": {"method": "PUT", "url": f"Condition/{r['id']}"}}


def _delete(rid, etag=None, rtype="Condition"):
    e = {"request": {"method": "DELETE", "url": f"{rtype}/{rid}"}, "response": {"status": "204"}}
    if etag:
        e["response"]["etag"] = etag
    return e


def test_a_history_bundle_keeps_its_newest_version_of_each_resource():
    b = _history(_put(res("c1", note="newest")), _put(res("c1", note="older")), _put(res("c2")),
                 _delete("c3"), _put(res("c3")), _put(res("c4", note="old")), _delete("c4"))
    kept = newest_in_history(history_entries(b["entry"], "h.json"), "h.json")
    got = [(i, c["id"] if isinstance(c, dict) else ("deleted", c.ref)) for i, c in kept]
    # the first entry of a history Bundle is the newest; c4 was re-created after its deletion
    assert got == [(0, "c1"), (2, "c2"), (3, ("deleted", "Condition/c3")), (5, "c4")]
    # versionIds, when given, win over the entry order
    b = _history(_put(res("c1", v="1", note="listed first")), _put(res("c1", v="2", note="newer")))
    assert [c["note"] for _, c in newest_in_history(history_entries(b["entry"], "h"), "h")] == ["newer"]
    tomb = history_entries([_delete("c9", 'W/"7"')], "h")[0][1]
    assert isinstance(tomb, Deleted) and tomb.version_id == "7" and tomb.ref == "Condition/c9"


def test_reconcile_keeps_newest_copies_and_hands_back_conflicts():
    old, new = res("c1", v="1", note="o"), res("c1", v="2", note="n")
    loose = {"resourceType": "Observation"}  # no id: passed through
    one = reconcile([(old, "a:1"), (loose, "a:2"), (new, "b:1")])
    assert one.resources == [(loose, "a:2"), (new, "b:1")] and one.superseded == 1 and not one.conflicts
    one = reconcile([(res("c1", note="x"), "a:1"), (res("c1", note="y"), "b:1")])
    assert one.resources == [] and one.conflicts[0].ref == "Condition/c1"
    assert [w for _, w in one.conflicts[0].copies] == ["a:1", "b:1"]
    one = reconcile([(res("c1", v="2"), "a:1")], {"Condition/c1": [Deleted("Condition/c1", "3")]})
    assert one.resources == [] and one.deleted == 1


# ---- through screen --------------------------------------------------------------------------
def _p01_with(dm_meta: dict | None) -> tuple[dict, dict]:
    b = copy.deepcopy(P01)
    dm = next(e["resource"] for e in b["entry"] if e["resource"].get("id") == "p01-dm")
    if dm_meta is not None:
        dm["meta"] = dm_meta
    return b, dm


def _screen(docs, **kw) -> tuple[fhir3t.ScreeningResult, Problems]:
    problems = Problems()
    out = list(fhir3t.screen([], as_of=AS_OF, problems=problems, documents=docs, **kw))
    assert len(out) == 1
    return out[0], problems


def _entered_in_error(dm: dict, meta: dict) -> dict:
    newer = copy.deepcopy(dm)
    newer["meta"] = meta
    newer["verificationStatus"] = {"coding": [{"system": VER, "code": "entered-in-error"}]}
    return newer


@pytest.mark.parametrize("old_meta, new_meta", [
    ({"versionId": "1"}, {"versionId": "2"}),
    ({"lastUpdated": "2026-10-01T10:00:00+08:00"}, {"lastUpdated": "2026-10-01T02:00:01Z"}),
    ({"versionId": "1", "lastUpdated": "2026-10-01T00:00:00Z"}, {"versionId": "2", "lastUpdated": "2026-09-01T00:00:00Z"}),
])
@pytest.mark.parametrize("newer_first", [False, True])
def test_a_newer_entered_in_error_version_in_another_file_removes_the_diagnosis(old_meta, new_meta, newer_first):
    b, dm = _p01_with(old_meta)
    docs = [("export-1.json", b), ("export-2.json", _entered_in_error(dm, new_meta))]
    r, _ = _screen(docs[::-1] if newer_first else docs)
    assert r.by_id("I2-dm").result == "not-met" and r.status == "ineligible"


@pytest.mark.parametrize("newer_first", [False, True])
def test_an_older_version_in_another_file_changes_nothing(newer_first):
    b, dm = _p01_with({"versionId": "3"})
    older = _entered_in_error(dm, {"versionId": "2"})
    docs = [("export-1.json", b), ("export-0.json", older)]
    r, _ = _screen(docs[::-1] if newer_first else docs)
    assert r.status == "eligible" and r.by_id("I2-dm").evidence == ("Condition/p01-dm",)


def test_copies_that_cannot_be_ordered_keep_the_criterion_unknown_naming_both():
    b, dm = _p01_with(None)
    r, problems = _screen([("a.json", b), ("b.json", _entered_in_error(dm, {"versionId": "2"}))])
    c = r.by_id("I2-dm")
    assert c.result == "unknown" and r.status == "candidate"
    assert "2 copies that differ" in c.reason and "a copy without version" in c.reason and "version 2" in c.reason
    assert c.evidence.count("Condition/p01-dm") == 1
    assert any("a.json#entry" in p.where and "b.json" in p.where for p in problems)


@pytest.mark.parametrize("change", ["recoded", "resolved"])
def test_unordered_copies_naming_a_concept_where_no_rule_reads_keep_that_criterion_unknown(change):
    """An allergy coded 'Drug allergy' with thalidomide only in reaction.substance, twice, differing (its code,
    or resolved) and of unknown order: neither copy is read, and neither may vanish from E11 (found by
    tests/promise_mutants.py: the unread copies had lost what the records layer found elsewhere)."""
    b, _ = _p01_with(None)
    allergy = {"resourceType": "AllergyIntolerance", "id": "p01-allergy", "patient": {"reference": "Patient/p01"},
               "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
                                              "code": "active"}]},
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "416098002", "display": "Drug allergy"}]},
               "reaction": [{"substance": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                       "code": "10432", "display": "thalidomide"}]},
                             "manifestation": [{"text": "rash"}]}]}
    b["entry"].append({"resource": allergy})
    r, _ = _screen([("a.json", b)])
    assert r.by_id("E11-hypersensitivity").result == "unknown"  # the one copy: unknown, naming the element
    other = copy.deepcopy(allergy)
    if change == "recoded":
        other["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": "256349002", "display": "Peanut"}]}
    else:
        other["clinicalStatus"]["coding"][0]["code"] = "resolved"
    other["meta"] = {"versionId": "1"}
    for docs in ([("a.json", b), ("b.json", other)], [("b.json", other), ("a.json", b)]):
        r, _ = _screen(docs)
        e11 = r.by_id("E11-hypersensitivity")
        assert e11.result == "unknown" and r.status == "candidate", e11.reason
        assert "reaction.substance" in e11.reason


def test_copies_that_differ_only_where_no_criterion_reads_are_one_record():
    b, dm = _p01_with(None)
    other = copy.deepcopy(dm)
    other["note"] = [{"text": "seen in clinic"}]
    r, _ = _screen([("a.json", b), ("b.json", other)])
    assert r.status == "eligible" and r.by_id("I2-dm").evidence == ("Condition/p01-dm",)


@pytest.mark.parametrize("etag, copy_meta, want", [
    ('W/"2"', {"versionId": "1"}, "not-met"),  # deleted after the copy was written
    ('W/"2"', {"versionId": "3"}, "met"),  # re-created after the deletion
    (None, None, "unknown"),  # no way to tell
])
def test_a_history_bundle_delete_removes_an_older_copy_from_any_input(etag, copy_meta, want):
    b, _ = _p01_with(copy_meta)
    hist = _history(_delete("p01-dm", etag))
    for docs in ([("export.json", b), ("history.json", hist)], [("history.json", hist), ("export.json", b)]):
        r, _ = _screen(docs)
        assert r.by_id("I2-dm").result == want


def test_the_same_rule_holds_for_ndjson_files_and_two_processes(tmp_path):
    b, dm = _p01_with({"versionId": "1"})
    next(e["resource"] for e in b["entry"] if e["resource"].get("id") == "p01-hbsag")["meta"] = {"versionId": "8"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "export.json").write_bytes(orjson.dumps(b))
    (tmp_path / "b" / "Condition.ndjson").write_bytes(orjson.dumps(_entered_in_error(dm, {"versionId": "2"})) + b"\n")
    (tmp_path / "h.json").write_bytes(orjson.dumps(_history(_delete("p01-hbsag", 'W/"9"', "Observation"))))
    for jobs in (1, 2):
        got = list(fhir3t.screen([tmp_path], as_of=AS_OF, problems=Problems(), jobs=jobs))
        assert [r.by_id("I2-dm").result for r in got] == ["not-met"], jobs
        e7 = got[0].by_id("E7-hbv")  # the HBsAg result was deleted after version 8: no HBsAg result
        assert "Observation/p01-hbsag" not in e7.evidence and e7.result == "unknown", jobs


@pytest.mark.parametrize("layout", ["bundle", "ndjson"])
def test_a_newer_version_about_something_no_criterion_reads_still_supersedes_the_older(tmp_path, layout):
    """A negative HBsAg whose version 2 was re-coded to a test no rule reads: the negative no longer counts."""
    b = copy.deepcopy(P01)
    hbsag = next(e["resource"] for e in b["entry"] if e["resource"].get("id") == "p01-hbsag")
    hbsag["meta"] = {"versionId": "1"}
    recoded = {**copy.deepcopy(hbsag), "meta": {"versionId": "2"},
               "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]}}
    (tmp_path / "export.json").write_bytes(orjson.dumps(b))
    if layout == "bundle":
        (tmp_path / "later.json").write_bytes(orjson.dumps({"resourceType": "Bundle", "type": "collection",
                                                            "entry": [{"resource": recoded}]}))
    else:
        (tmp_path / "Observation.ndjson").write_bytes(orjson.dumps(recoded) + b"\n")
    (r,) = fhir3t.screen([tmp_path], as_of=AS_OF, problems=Problems())
    e7 = r.by_id("E7-hbv")
    assert "Observation/p01-hbsag" not in e7.evidence and e7.result == "unknown" and r.status == "candidate"
