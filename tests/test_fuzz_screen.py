"""Fuzzing the file readers and the screening definition with garbled input (hypothesis, fixed seed).

Two properties, on the bundled samples with one value changed at a time:
- robustness: no internal error, no hang; the other patients of the run are still screened;
- the one promise: a patient the samples say is not eligible never comes out `eligible` unless a
  problem names the entry that was changed (so a person is told what was not read).
The default run is bounded for CI (FHIR3T_FUZZ_EXAMPLES, default 120 each); the `fuzz`-marked
variants run many more: `python -m pytest -m fuzz tests/test_fuzz_screen.py`.
"""
from __future__ import annotations

import copy
import os
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from conftest import SAMPLES
from fhir3t.api import screen as screen_files
from fhir3t.errors import Fhir3tError, Problems
from fhir3t.pipeline import Definition

AS_OF = "2026-11-16"
SCREENING = SAMPLES / "screening"
GOOD = orjson.loads((SCREENING / "01-eligible-classic.json").read_bytes())  # Patient/p01, eligible
SAMPLE_FILES = sorted(p for p in SCREENING.glob("*.json") if p.name != "01-eligible-classic.json")
DOCS = {p.name: orjson.loads(p.read_bytes()) for p in SAMPLE_FILES}

EXAMPLES = int(os.environ.get("FHIR3T_FUZZ_EXAMPLES", "120"))

#: values a garbled field may take: other JSON types, near-miss codes and dates, markup, control characters
JUNK = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False), st.just(2**70),
    st.sampled_from(["", " ", "Final", "On-Study", "active ", "Conditon", "2026-13-45", "2026-02-30T25:00:00Z",
                     "0001-01-01", "M33.1X", "5196-2", "[b]p02[/b]", "a[/x]", "\x1b[31mred", "阳性", "+++", "-",
                     "urn:uuid:", "Patient/", "Patient/p0 1", "../../etc/passwd", "x" * 300]),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@pytest.fixture(scope="module")
def definition() -> Definition:
    return Definition.load(concept_maps=[SAMPLES / "conceptmaps" / "hospital-local.json"])


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _tweak(text: str, n: int) -> str:
    """A near miss of a real value: one character replaced, as a typo or a broken export would."""
    if not text:
        return "x"
    i = n % len(text)
    repl = "0O1lI -.xZ"[n % 10]
    return text[:i] + (repl if repl != text[i] else "#") + text[i + 1:]


def _mutate(doc: dict, path: tuple, value: Any, delete: bool) -> dict:
    doc = copy.deepcopy(doc)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    elif isinstance(value, int) and not isinstance(value, bool) and isinstance(parent[path[-1]], str) and value % 3 == 0:
        parent[path[-1]] = _tweak(parent[path[-1]], value)  # a near-miss string instead of another type
    else:
        parent[path[-1]] = value
    return doc


def _run(definition: Definition, docs: list[tuple[str, object]]) -> tuple[dict, Problems]:
    problems = Problems()
    results = {r.patient: r for r in screen_files([], as_of=AS_OF, definition=definition, problems=problems, documents=docs)}
    return results, problems


mutation = st.tuples(st.sampled_from(sorted(DOCS)), st.integers(0, 10**6), JUNK, st.booleans())


def _check_robust(definition: Definition, case: tuple) -> None:
    name, pick, value, delete = case
    paths = _paths(DOCS[name])
    mutated = _mutate(DOCS[name], paths[pick % len(paths)], value, delete)
    try:
        results, _ = _run(definition, [(name, mutated), ("good.json", GOOD)])
    except Fhir3tError:
        return  # a clear error with an exit code is an acceptable answer to garbage
    assert results["Patient/p01"].status == "eligible"  # the other patient is still screened, unchanged


def _check_promise(definition: Definition, case: tuple) -> None:
    name, pick, value, delete = case
    before, _ = _run(definition, [(name, DOCS[name])])
    paths = [p for p in _paths(DOCS[name]) if p[0] == "entry" and len(p) > 2]
    if not paths:
        return
    path = paths[pick % len(paths)]
    results, problems = _run(definition, [(name, _mutate(DOCS[name], path, value, delete))])
    where = f"{name}#entry[{path[1]}]"
    for key, r in results.items():
        if r.status == "eligible" and key in before and before[key].status != "eligible":
            named = [p for p in problems if p.where.startswith(where) or p.where == name]
            assert named, (f"{key} became eligible after {path} = {value!r} (delete={delete}) with no problem "
                           f"naming {where}: " + "; ".join(f"{c.id}={c.result}" for c in r.criteria))


@seed(20261201)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=mutation)
def test_garbled_input_never_crashes_and_other_patients_are_screened(definition, case):
    _check_robust(definition, case)


@seed(20261201)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(case=mutation)
def test_garbling_one_value_never_makes_a_patient_eligible_silently(definition, case):
    _check_promise(definition, case)


@pytest.mark.fuzz
@settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=mutation)
def test_fuzz_long_robustness(definition, case):
    _check_robust(definition, case)


@pytest.mark.fuzz
@settings(max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=mutation)
def test_fuzz_long_promise(definition, case):
    _check_promise(definition, case)
