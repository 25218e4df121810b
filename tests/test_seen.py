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
