"""Nightly incremental runs (issue 28): after every night of a simulated month of Bulk `_since` deltas
(new labs and diagnoses, corrections, stale resends, deletions, new patients), the incremental run over
the persistent store gives every patient the result a full re-screen of the data as it stands gives."""
from __future__ import annotations

import gc
import io
import pickle
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from pathlib import Path

import orjson
import pytest

from conftest import ROOT
from fhir3t.criteria.model import ScreeningResult
from fhir3t.errors import Problems, UsageError
from fhir3t.formats import RunInfo, get_format
from fhir3t.pipeline import Definition, Run
from fhir3t.pipeline.base import FileInputs
from fhir3t.pipeline.incremental import StoredResult, UpdateStats, screen_update
from fhir3t.pipeline.screening import Output, ScreenRun, deliver, screen_files
from fhir3t.sources.statestore import LAYOUT, PatientState, stored_is_newer

sys.path.insert(0, str(ROOT / "benchmarks"))
import nightly
import population

START = date(2026, 11, 16)


@pytest.fixture(scope="module")
def pop(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pop")
    population.generate(240, out, seed=3, jobs=1, chunk=120, lines_per_file=20000, dm_fraction=0.4)
    return out


def full(definition: Definition, path: Path, as_of: date) -> dict[str, ScreeningResult]:
    run = Run.start(definition, as_of=as_of, problems=Problems())
    return {r.patient: r for r in screen_files(definition, run, FileInputs((path,)))}


def comparable(r: ScreeningResult) -> dict:
    """A result as its JSON contract gives it (criteria, evidence and reasons, in their order)."""
    return r.to_dict()


def written(results: Iterable[ScreeningResult], info: RunInfo) -> tuple[dict[str, ScreeningResult], dict[str, dict]]:
    """The results, and each one's line as `--format ndjson` writes it while the results stream (by patient)."""
    kept: dict[str, ScreeningResult] = {}

    def keep(rs: Iterable[ScreeningResult]) -> Iterator[ScreeningResult]:
        for r in rs:
            kept[r.patient] = r
            yield r

    out = io.StringIO()
    get_format("ndjson").write(keep(results), out, info)
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    return kept, {line["patient"]: line for line in lines}


def test_every_night_of_a_month_the_incremental_run_equals_a_full_rescreen(pop, tmp_path, definition):
    month = nightly.Month(pop / "fhir", seed=5, touch=0.03)
    state = PatientState(tmp_path / "state")
    run = Run.start(definition, as_of=START, problems=Problems())
    first = UpdateStats()
    results = {r.patient: r for r in screen_update(definition, run, state, [pop / "fhir"], first)}
    assert first.everyone and first.screened == len(results) >= 240
    seen_statuses = {r.status for r in results.values()}
    changed = 0
    for k in range(1, 11):
        # nights 1-8 screen for the same as-of (only the patients whose data changed are screened again);
        # from night 9 the as-of moves with the calendar (everyone is screened again, from the store)
        as_of = START if k <= 8 else START + timedelta(days=k)
        delta = tmp_path / f"delta-{k}.ndjson"
        nightly.write_lines(delta, month.night(k, START + timedelta(days=k)))
        stats = UpdateStats()
        # the output's language and id system change on some nights: a kept result is written in tonight's
        info = RunInfo(as_of=as_of, d1=as_of, lang="zh-CN" if k % 3 == 2 else "en",
                       id_system="urn:oid:2.16.840.1.113883.4.1" if k == 4 else None)
        inc, inc_lines = written(screen_update(definition, Run.start(definition, as_of=as_of, problems=Problems()),
                                               state, [delta], stats), info)
        current = tmp_path / "current.ndjson"
        month.write_current(current)
        want = full(definition, current, as_of)
        assert inc.keys() == want.keys(), f"night {k}"
        differ = [p for p in want if comparable(inc[p]) != comparable(want[p])]
        assert not differ, f"night {k}: {differ[:5]}"
        assert inc_lines == written(want.values(), info)[1], f"night {k}"
        changed += sum(1 for p in want if p not in results or results[p].status != want[p].status)
        results = want
        seen_statuses |= {r.status for r in want.values()}
        if k <= 8:
            assert not stats.everyone and 0 < stats.screened < len(want) // 4, (k, stats)
            assert stats.kept == len(want) - stats.screened
        elif k == 9:
            assert stats.everyone and stats.why == "definition-or-dates"
    assert set(month.counts) == set(nightly.KINDS), month.counts  # every kind of change was made
    assert changed > 0 and len(seen_statuses) >= 2


def test_a_newer_version_replaces_and_an_older_one_is_ignored(tmp_path, definition):
    state = PatientState(tmp_path / "s")

    def obs(vid: str, value: float, lu: str = "2026-11-01T00:00:00Z") -> dict:
        return {"resourceType": "Observation", "id": "o1", "meta": {"versionId": vid, "lastUpdated": lu},
                "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/a"},
                "valueQuantity": {"value": value}}

    def merge(*lines: dict) -> None:
        path = tmp_path / "d.ndjson"
        path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
        state.merge([path], Problems())

    def stored() -> dict:
        row = state.db.execute("SELECT body FROM res WHERE id = 'o1'").fetchone()
        return orjson.loads(row[0]) if row else {}

    merge({"resourceType": "Patient", "id": "a"}, obs("2", 2.0))
    merge(obs("1", 1.0))
    assert stored()["valueQuantity"]["value"] == 2.0  # version 1 after version 2: kept 2
    merge(obs("10", 10.0))
    assert stored()["valueQuantity"]["value"] == 10.0  # numeric, not string order ("10" < "2")
    assert state.dirty() == {"a"}
    merge({"resourceType": "Bundle", "type": "transaction",
           "entry": [{"request": {"method": "DELETE", "url": "Observation/o1"}}]})
    assert stored() == {}
    assert stored_is_newer("", "2026-11-02T00:00:00Z", "", "2026-11-01T00:00:00Z")
    assert not stored_is_newer("", "", "", "")  # nothing says: the later export wins
    state.close()


def test_a_changed_shared_resource_screens_everyone(tmp_path, definition):
    state = PatientState(tmp_path / "s")
    base = tmp_path / "base.ndjson"
    base.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in (
        {"resourceType": "Patient", "id": "a", "birthDate": "1980-01-01"},
        {"resourceType": "Patient", "id": "b", "birthDate": "1981-01-01"},
        {"resourceType": "Medication", "id": "m1", "code": {"text": "tacrolimus"}})))
    run = Run.start(definition, as_of=START, problems=Problems())
    assert len(list(screen_update(definition, run, state, [base]))) == 2
    delta = tmp_path / "delta.ndjson"
    delta.write_bytes(orjson.dumps({"resourceType": "Medication", "id": "m1", "code": {"text": "tofacitinib"}}) + b"\n")
    stats = UpdateStats()
    assert len(list(screen_update(definition, Run.start(definition, as_of=START, problems=Problems()), state,
                                  [delta], stats))) == 2
    assert stats.everyone and stats.why == "shared-resource" and stats.screened == 2
    stats = UpdateStats()
    list(screen_update(definition, Run.start(definition, as_of=START, problems=Problems()), state, [], stats))
    assert stats.screened == 0 and stats.kept == 2  # nothing changed: nothing screened
    state.close()


def test_the_store_keeps_one_copy_of_a_criterion_result_many_patients_share(pop, tmp_path, definition):
    state = PatientState(tmp_path / "s")
    run = Run.start(definition, as_of=START, problems=Problems())
    first = [comparable(r) for r in screen_update(definition, run, state, [pop / "fhir"])]
    criteria = sum(len(r["criteria"]) for r in first)
    parts = state.db.execute("SELECT count(*) FROM parts").fetchone()[0]
    distinct = len({c for row in state.results() for c in row.load().criteria})
    assert 0 < parts < criteria / 2  # shared, not one per patient and criterion
    assert parts < distinct  # a value one patient alone holds (its age) stays in that patient's result
    again = [comparable(row.load()) for row in state.results()]
    assert again == first
    state.db.execute("DELETE FROM parts WHERE digest = (SELECT min(digest) FROM parts)")
    with pytest.raises(UsageError, match="names a part the store does not hold"):
        [row.load() for row in state.results()]  # a damaged store says so; it never hands back a result with a hole
    state.close()


@pytest.mark.parametrize("older", ["1", "2"])
def test_a_store_of_an_older_results_layout_keeps_its_resources_and_screens_everyone_again(pop, tmp_path, definition,
                                                                                          older):
    state = PatientState(tmp_path / "s")
    run = Run.start(definition, as_of=START, problems=Problems())
    first = [comparable(r) for r in screen_update(definition, run, state, [pop / "fhir"])]
    state.put("layout", older)  # as an older fhir3t left it (1: results pickled whole; 2: without what they rendered)
    state.db.execute("UPDATE results SET result = x'00'")
    state.close()
    state = PatientState(tmp_path / "s")
    assert state.get("layout") == LAYOUT and state.counts()["results"] == 0 and state.counts()["resources"] > 0
    stats = UpdateStats()
    again = [comparable(r) for r in screen_update(definition, Run.start(definition, as_of=START, problems=Problems()),
                                                  state, [], stats)]
    assert stats.everyone and again == first
    state.close()


def test_a_kept_result_is_written_from_what_it_rendered_before_and_read_back_whole_only_when_needed(
        pop, tmp_path, definition):
    state = PatientState(tmp_path / "s")
    en = RunInfo(as_of=START, d1=START)

    def night(delta: list[Path], name: str, stats: UpdateStats) -> tuple[ScreenRun, dict[str, dict]]:
        """`fhir3t screen --store-dir S --format ndjson --out NAME [DELTA]`, as the command delivers it."""
        run = deliver(screen_update(definition, Run.start(definition, as_of=START, problems=Problems()), state, delta,
                                    stats), definition, en, [Output("ndjson", str(tmp_path / name))], stdout=io.StringIO())
        lines = [orjson.loads(line) for line in (tmp_path / name).read_bytes().splitlines()]
        return run, {line["patient"]: line for line in lines}

    first_run, lines = night([pop / "fhir"], "first.ndjson", UpdateStats())
    # the pickled results are made unreadable: a night that changes nothing still writes every line, from
    # what each result rendered the night before, and the stale-results tally from what it counted
    state.db.execute("UPDATE results SET result = x'00'")
    stats = UpdateStats()
    run, again = night([], "again.ndjson", stats)
    assert stats.kept == len(lines) and stats.screened == 0
    assert again == lines
    assert run.counts == first_run.counts and run.stale == first_run.stale
    # in another language the lines are made again: that needs the whole result, which the store cannot give
    with pytest.raises(pickle.UnpicklingError):
        written(screen_update(definition, Run.start(definition, as_of=START, problems=Problems()), state, []),
                RunInfo(as_of=START, d1=START, lang="zh-CN"))
    gc.collect()  # the failed night's results, held in a cycle by its traceback: the store would read them back
    state.close()


def test_a_stored_result_is_its_screened_result_in_every_field_hash_and_pickle(pop, tmp_path, definition):
    state = PatientState(tmp_path / "s")
    screened = list(screen_update(definition, Run.start(definition, as_of=START, problems=Problems()), state,
                                  [pop / "fhir"]))
    loads = Counter[str]()
    for row in state.results():
        def load(row=row):
            loads[row.ref] += 1
            return row.load()
        stored = StoredResult(row.ref, row.status, {}, load, lambda r: None)
        plain = row.load()
        assert stored.patient == plain.patient and stored.status == plain.status and not loads[row.ref]  # columns
        assert stored.criteria == plain.criteria and stored.identifiers == plain.identifiers
        assert loads[row.ref] == 1
        assert stored == plain and plain == stored and hash(stored) == hash(plain)
        back = pickle.loads(pickle.dumps(stored))
        assert type(back) is ScreeningResult and back == plain
        assert loads[row.ref] == 1  # read back once, whatever is read after
    assert len(loads) == len(screened)
    state.close()


def test_results_a_caller_collects_are_whole_after_the_store_closes(pop, tmp_path, definition):
    """`--html` beside `--format`, `--push`: the command collects every result, the store closes when they are
    collected, and only then are they written (this failed with "Cannot operate on a closed database")."""
    state = PatientState(tmp_path / "s")
    first = [comparable(r) for r in screen_update(definition, Run.start(definition, as_of=START, problems=Problems()),
                                                 state, [pop / "fhir"])]
    stats = UpdateStats()
    collected = list(screen_update(definition, Run.start(definition, as_of=START, problems=Problems()), state, [], stats))
    state.close()
    assert stats.kept == len(collected) == len(first)
    assert [comparable(r) for r in collected] == first


def test_the_command_with_a_store_writes_every_output_the_second_night_in_either_language(pop, tmp_path, capsys):
    """`fhir3t screen --store-dir S` twice: the second night keeps every result, and writes the worklist (HTML,
    CSV) beside the ndjson, in Chinese, each the same patients as the first night's."""
    from fhir3t.cli import main

    store = str(tmp_path / "store")
    assert main(["screen", "--store-dir", store, str(pop / "fhir"), "--as-of", START.isoformat(), "--no-progress",
                 "--format", "ndjson", "--out", str(tmp_path / "1.ndjson")]) == 0
    assert main(["--lang", "zh-CN", "screen", "--store-dir", store, "--as-of", START.isoformat(), "--no-progress",
                 "--format", "ndjson", "--out", str(tmp_path / "2.ndjson"), "--html", str(tmp_path / "2.html"),
                 "--csv", str(tmp_path / "2.csv")]) == 0
    err = capsys.readouterr().err
    first = [orjson.loads(x) for x in (tmp_path / "1.ndjson").read_bytes().splitlines()]
    second = [orjson.loads(x) for x in (tmp_path / "2.ndjson").read_bytes().splitlines()]
    assert f"沿用 {len(first)} 个结果" in err  # every result kept
    assert [r["patient"] for r in second] == [r["patient"] for r in first]
    assert [[(c["id"], c["result"], c["evidence"], c["reason"]) for c in r["criteria"]] for r in second] == \
        [[(c["id"], c["result"], c["evidence"], c["reason"]) for c in r["criteria"]] for r in first]
    assert all(r["lang"] == "zh-CN" for r in second) and [r["status"] for r in second] == [r["status"] for r in first]
    html = (tmp_path / "2.html").read_text(encoding="utf-8")
    csv = (tmp_path / "2.csv").read_text(encoding="utf-8-sig")
    assert all(r["display_id"] in html and r["display_id"] in csv for r in first)


def test_lines_that_are_not_json_are_read_from_the_store_as_a_full_run_reads_them(pop, tmp_path, definition):
    """A delta line orjson refuses (a Latin-1 byte, a comma before a bracket, a cut-off line, with or without a
    patient in it) is kept as written, not dropped at the merge: the night's results are a full run's over
    the same lines, where such a line keeps its patient's (or everyone's) criteria unknown."""
    state = PatientState(tmp_path / "state")
    run = Run.start(definition, as_of=START, problems=Problems())
    before = {r.patient: r for r in screen_update(definition, run, state, [pop / "fhir"])}
    eligible = sorted(p for p, r in before.items() if r.status == "eligible")
    others = sorted(p for p in before if p not in eligible)
    assert eligible and len(others) >= 2
    a, b, c = (p.split("/", 1)[1] for p in (*others[:2], eligible[0]))
    hiv = {"resourceType": "Condition", "clinicalStatus": {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "B20"}]}}
    latin1 = orjson.dumps({**hiv, "id": "x1", "subject": {"reference": f"Patient/{a}"}, "note": [{"text": "NOTE"}]})
    latin1 = latin1.replace(b"NOTE", "caf\u00e9".encode("latin-1"))
    comma = orjson.dumps({**hiv, "id": "x2", "subject": {"reference": f"Patient/{b}"}})[:-1] + b",}"
    cut = orjson.dumps({**hiv, "id": "x3", "subject": {"reference": f"Patient/{c}"}})[:60]
    nobody = b'{"resourceType": "Condition", "id": "x4", "code": {"text": "HIV'
    untyped = orjson.dumps({k: v for k, v in hiv.items() if k != "resourceType"} | {"subject": {"reference": f"Patient/{c}"}})
    delta = tmp_path / "delta.ndjson"
    delta.write_bytes(b"\n".join([latin1, comma, cut, nobody, untyped]) + b"\n")
    problems = Problems()
    stats = UpdateStats()
    inc = {r.patient: r for r in screen_update(definition, Run.start(definition, as_of=START, problems=problems),
                                               state, [delta], stats)}
    assert stats.merge.lines == 5 and not any("not merged" in str(p) for p in problems)
    run = Run.start(definition, as_of=START, problems=Problems())
    want = {r.patient: r for r in screen_files(definition, run, FileInputs((pop / "fhir", delta)))}
    assert inc.keys() == want.keys()
    # a record with no id is named by where it was read: the full run's delta line, the night's file from the
    # store (a known difference: the store keeps no location); everything else is the same
    def unlocated(r: ScreeningResult) -> dict:
        d = comparable(r)
        for c in d["criteria"]:
            c["evidence"] = [e if not e.startswith(str(tmp_path)) else "<line>" for e in c["evidence"]]
        return d
    assert [p for p in want if unlocated(inc[p]) != unlocated(want[p])] == []
    assert inc[f"Patient/{a}"].by_id("E9-hiv").result == "met"  # read with its byte replaced
    assert inc[f"Patient/{b}"].by_id("E9-hiv").result == "met"  # read as DuckDB reads a trailing comma
    assert inc[f"Patient/{c}"].status != "eligible"  # a cut-off line of theirs: unknown, not passed over


def test_a_patient_link_arriving_in_a_delta_reaches_the_record_it_links_to(pop, tmp_path, definition):
    """The MPI merges two records overnight: the delta holds the surviving Patient with a 'replaces' link to an
    eligible patient's record, which itself did not change. The night's run re-screens that record too, as a full
    run over the same lines does (it is no longer eligible on its own record)."""
    state = PatientState(tmp_path / "state")
    run = Run.start(definition, as_of=START, problems=Problems())
    before = {r.patient: r for r in screen_update(definition, run, state, [pop / "fhir"])}
    target = sorted(p for p, r in before.items() if r.status == "eligible")[0]
    survivor = {"resourceType": "Patient", "id": "mpi-survivor", "gender": "female", "birthDate": "1980-01-01",
                "link": [{"other": {"reference": target}, "type": "replaces"}]}
    delta = tmp_path / "delta.ndjson"
    delta.write_bytes(orjson.dumps(survivor) + b"\n")
    inc = {r.patient: r for r in screen_update(definition, Run.start(definition, as_of=START, problems=Problems()),
                                               state, [delta])}
    want = {r.patient: r for r in screen_files(definition, Run.start(definition, as_of=START, problems=Problems()),
                                               FileInputs((pop / "fhir", delta)))}
    assert want[target].status != "eligible"
    assert inc.keys() == want.keys()

    def unlocated(r: ScreeningResult) -> dict:  # (the store keeps no line numbers: a known difference)
        d = comparable(r)
        for c in d["criteria"]:
            c["evidence"] = [e if not e.startswith(str(tmp_path)) else "<line>" for e in c["evidence"]]
        return d
    assert [p for p in want if unlocated(inc[p]) != unlocated(want[p])] == []
    # the next night the target's own data changes: the survivor's link still reaches it
    weight = tmp_path / "weight.ndjson"
    weight.write_bytes(orjson.dumps({"resourceType": "Observation", "id": "w-1", "status": "final", "code": {
        "coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, "subject": {"reference": target},
        "effectiveDateTime": "2026-11-10", "valueQuantity": {"value": 61, "unit": "kg"}}) + b"\n")
    stats = UpdateStats()
    again = {r.patient: r for r in screen_update(definition, Run.start(definition, as_of=START, problems=Problems()),
                                                 state, [weight], stats)}
    assert stats.screened == 2 and not stats.everyone  # the target, and the survivor screened with it
    assert again[target].status == inc[target].status != "eligible"
    survivor["link"] = []  # and when the MPI drops the link, the target is screened alone again
    delta.write_bytes(orjson.dumps(survivor) + b"\n")
    unlinked = {r.patient: r for r in screen_update(definition, Run.start(definition, as_of=START, problems=Problems()),
                                                    state, [delta])}
    assert unlinked[target].status == "eligible"
    state.close()
