"""The patients a run has read: a set in a dozen bytes a patient (sources/seen.py)."""
from __future__ import annotations

import pickle

from fhir3t.sources.seen import SeenPatients


def test_a_patient_read_twice_names_where_it_was_first() -> None:
    seen = SeenPatients()
    assert seen.add("Patient/a", "ehr.ndjson") is None
    assert seen.add("Patient/b", "lab.ndjson") is None
    assert seen.add("Patient/a", "lab.ndjson") == "ehr.ndjson"
    assert "Patient/a" in seen and "Patient/b" in seen and "Patient/c" not in seen
    assert len(seen) == 2


def test_growing_past_every_capacity_loses_no_patient() -> None:
    seen = SeenPatients(capacity=16)
    keys = [f"Patient/p{i:07d}" for i in range(50_000)]
    for i, k in enumerate(keys):
        assert seen.add(k, f"file{i % 7}.ndjson") is None
    assert len(seen) == 50_000
    assert all(k in seen for k in keys)
    assert not any(f"Patient/q{i:07d}" in seen for i in range(5_000))
    assert seen.add(keys[12_345], "other") == f"file{12_345 % 7}.ndjson"


def test_processes_merge_their_patients_keeping_the_first_source() -> None:
    one, two = SeenPatients(), SeenPatients()
    for i in range(3_000):
        one.add(f"Patient/{i}", "a.ndjson")
    for i in range(2_000, 6_000):
        two.add(f"Patient/{i}", "b.ndjson")
    back = pickle.loads(pickle.dumps(two))  # as a worker hands it back
    one.update(back)
    assert len(one) == 6_000
    assert one.add("Patient/2500", "c") == "a.ndjson" and one.add("Patient/5000", "c") == "b.ndjson"
    assert "Patient/6000" not in one


def test_a_million_patients_would_cost_megabytes_not_a_hundred() -> None:
    seen = SeenPatients()
    n = 100_000
    for i in range(n):
        seen.add(f"Patient/{i:08x}-aaaa-bbbb-cccc-dddddddddddd", "Patient.000.ndjson")
    assert len(pickle.dumps(seen)) < 40 * n  # a dict of the keys holds ~130 bytes a patient


def test_an_identifier_carried_by_one_patient_names_it_by_two_is_ambiguous_and_unknown_is_absent(tmp_path) -> None:
    from fhir3t.sources.seen import AMBIGUOUS, IdentLog, _digest, resolve_identifiers

    log = IdentLog(tmp_path)
    log.add("mrn|1", "Patient/a")
    log.add("mrn|1", "Patient/a")  # the same patient twice (a resend): still one patient
    log.add("mrn|2", "Patient/b")
    log.add("mrn|2", "Patient/c")
    got = resolve_identifiers([log], ["mrn|1", "mrn|2", "mrn|3"])
    assert got == {"mrn|1": _digest("Patient/a"), "mrn|2": AMBIGUOUS}
    assert resolve_identifiers([log], []) == {}


def test_an_identifier_log_past_its_memory_goes_to_a_file_gives_the_same_answers_and_leaves_nothing(
        tmp_path, monkeypatch) -> None:
    from fhir3t.sources import seen
    from fhir3t.sources.seen import IdentLog, resolve_identifiers

    def fill(log: IdentLog) -> None:
        for i in range(5_000):
            log.add(f"mrn|{i}", f"Patient/p{i}")
        log.add("mrn|7", "Patient/other")  # ambiguous, written long after the first

    small, big = IdentLog(tmp_path), None
    fill(small)
    keys = [f"mrn|{i}" for i in range(0, 6_000, 7)]
    want = resolve_identifiers([small], keys)
    assert not list(tmp_path.glob("fhir3t-idents-*"))  # 80 KB: kept in memory
    monkeypatch.setattr(seen, "SPILL_BYTES", 1024)
    big = IdentLog(tmp_path)
    fill(big)
    assert len(list(tmp_path.glob("fhir3t-idents-*/idents.bin"))) == 1 and len(big._buf) < 1024
    assert resolve_identifiers([big], keys) == want and len(want) == 5_000 // 7 + 1
    # a parallel run's process hands its log to the parent (pickled): the file is read there, then removed
    other = IdentLog(tmp_path)
    other.add("mrn|14", "Patient/elsewhere")
    logs = [pickle.loads(pickle.dumps(big)), pickle.loads(pickle.dumps(other))]
    both = resolve_identifiers(logs, keys)
    assert both["mrn|14"] == seen.AMBIGUOUS and {k: v for k, v in both.items() if k != "mrn|14"} == \
        {k: v for k, v in want.items() if k != "mrn|14"}
    for log in logs:
        log.close()
    assert not list(tmp_path.glob("fhir3t-idents-*"))
