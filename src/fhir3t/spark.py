"""Screening on Apache Spark: the same per-patient evaluation as `fhir3t screen`, over Bulk NDJSON.

    pip install "fhir3t[spark]"
    python -m fhir3t.spark IN_DIR OUT_DIR --as-of 2026-11-16 [--d1 DATE] [--concept-map FILE]...

Spark does what needs a cluster (reading the files, grouping by patient, spreading the work); each
patient is screened by `fhir3t.pipeline.screen_records` with the study's `Definition`, loaded once
per executor process (a `Run` per partition), so the results are those of the single-machine path. Steps:

1. the lines are read as text (`IN_DIR` and its sub-folders: *.ndjson, *.ndjson.gz, *.jsonl);
   Spark SQL (`from_json` on a small schema) extracts the resource type, the patient reference
   and the result references of each line, and drops the types no criterion reads before any Python runs;
2. the shared resources (Medication, ResearchStudy: a small set) are collected and broadcast;
   results that name no patient are joined to the patients whose reports or panels point at them;
3. each remaining line passes the definition's read filter (`Relevance`) on the executors, so only
   the ~5 % of lines a criterion reads are shuffled; lines are grouped by patient (`groupByKey`)
   and each group is put back in the single-machine path's order (file path, then position);
4. each patient becomes a `RawRecord` and is screened; results (`ScreeningResult.to_dict()`) are
   written as NDJSON to OUT_DIR/results/ (sorted by patient), input problems to OUT_DIR/problems/.

Only local-mode paths are checked for ConceptMaps among the input (as `fhir3t screen` does); on a
cluster pass them with --concept-map (read on the driver and shipped to the executors).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import orjson

from fhir3t.fhirutil import conditional_patient, identifier_keys, normalize_reference, patient_link, token_key
from fhir3t.messages import Message, Msg, render, table
from fhir3t.pipeline import Definition, Run, screen_records, with_discovered_maps
from fhir3t.r4facts import r4_facts
from fhir3t.sources.base import RawRecord, Unread
from fhir3t.sources.files import P as FILES_P
from fhir3t.sources.files import line_patient_reference, line_type
from fhir3t.sources.grouping import (
    ENTRY_AMBIGUOUS,
    ENTRY_LINKED,
    ENTRY_NOT_R4,
    ENTRY_UNPARSED,
    ENTRY_UNTYPED,
    SharedIndex,
    linked_records,
    salvage,
)
from fhir3t.sources.grouping import P as GROUPING_P
from fhir3t.sources.versions import reconcile

#: what the Spark entry point says: the problems of a line (written to problems/ in English, as every problem's
#: `message`), its notes and summary on stderr, its help texts
W = table("spark", {
    "bad-json": "not valid JSON ({error}); line skipped",
    "patient-no-id": "Patient without id; skipped",
    "no-patient": "{key}: no Patient resource in the NDJSON; screened without demographics",
    "conceptmap": "{path}: ConceptMap found in the input: used to translate local codes",
    "note": "note: {text}",
    "done": "{results} patients screened, {problems} input problem(s) ({shared} shared resources); results in "
            "{out}/results",
    "h.inputs": "NDJSON folders or files (local paths or hdfs://, s3a://, gs://, abfss:// URLs)",
    "h.out": "output folder: results/ (NDJSON, one ScreeningResult per line) and problems/",
    "h.as-of": "screening date (default: today, UTC)",
    "h.d1": "planned first-dose date (default: --as-of)",
    "h.concept-map": "ConceptMap file (repeatable; read on the driver)",
    "h.criteria": "criteria file (default: the installed profiles/criteria)",
    "h.master": "Spark master (default: spark-submit's, else local[*])",
    "h.partitions": "partitions of the patient grouping (default: Spark's parallelism)",
})

NDJSON_GLOB = "*.{ndjson,ndjson.gz,jsonl,jsonl.gz,NDJSON,NDJSON.GZ}"
#: what reports and panels point at their results with
PART_LINKS = ("result", "hasMember")
#: patient links that are lists of participants with an `actor` (Appointment)
LIST_LINKS = frozenset({"participant"})


@dataclass(frozen=True)
class Job:
    """What every executor needs, shipped once as a broadcast variable."""

    as_of: date
    d1: date
    concept_maps: tuple[str, ...]  # ConceptMap JSON texts
    criteria: str | None  # criteria JSON text, or None for the installed one
    shared: tuple[str, ...]  # Medication / ResearchStudy lines
    #: identifier key (fhirutil.token_key) -> the Patients carrying it, for the identifiers that lines naming
    #: their patient by identifier (a logical or conditional reference) use: one -> that patient's; several
    #: -> unread for each (as the file path's pass 1 and 2 do)
    idents: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: (type, file) of the lines of a read type that name no patient fhir3t can find and cannot be read (a cut-off
    #: line, a Bundle's entry): they could be anyone's, so every patient's record holds them as unread
    anyone: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> str:
        h = hashlib.sha256()
        for part in (*self.concept_maps, self.criteria or "", *self.shared, *(f"{t}\0{w}" for t, w in self.anyone)):
            h.update(part.encode())
            h.update(b"\0")
        return h.hexdigest()


_DEFINITIONS: dict[str, tuple[Definition, SharedIndex]] = {}


def _definition(job: Job) -> tuple[Definition, SharedIndex]:
    """The executor's definition and shared index, loaded on first use and kept for the process."""
    hit = _DEFINITIONS.get(job.key)
    if hit is None:
        with tempfile.TemporaryDirectory(prefix="fhir3t-spark-") as tmp:  # read at load, then removed
            folder = Path(tmp)
            maps = []
            for i, text in enumerate(job.concept_maps):
                maps.append(folder / f"conceptmap-{i}.json")
                maps[-1].write_text(text, encoding="utf-8")
            criteria = None
            if job.criteria is not None:
                criteria = folder / "criteria.json"
                criteria.write_text(job.criteria, encoding="utf-8")
            definition = Definition.load(None, maps, criteria)
        shared = SharedIndex()
        for line in job.shared:
            shared.add(orjson.loads(line))
        for rtype, where in job.anyone:
            shared.add_anyone({"resourceType": rtype}, where)
        hit = _DEFINITIONS[job.key] = (definition, shared)
    return hit


def _drain(run: Run) -> Iterator[tuple[str, str]]:
    for p in run.problems:
        yield "problem", json.dumps({"where": p.where, "message": p.said(), "skipped": p.skipped}, ensure_ascii=False)
    run.problems.items.clear()


def _order_key(file: str) -> tuple:
    """Sort key of an input file as the single-machine path orders them (sorted local paths)."""
    url = urlparse(file)
    if url.scheme in ("", "file"):
        return (0, PurePosixPath(unquote(url.path)).parts)
    return (1, (file,))


#: what keep_lines hands to the grouping: (sort key, line, where, what it is: False the patient's own line, True
#: an adopted result, "unread:<why>" a record kept as unread for this patient (UNREAD_WHY; its type in place of the line))
Kept = tuple[tuple, str, str, bool | str]


#: why a line kept as unread could not be read ("unread:<why>" in a Kept's last field)
#: a Bundle written as one NDJSON line: one machine reads it as a document, Spark only keeps it from counting as absent
BUNDLE_LINE = Message("spark.bundle-line", "a Bundle written as one NDJSON line holds a record of this patient: on "
                                           "Spark it is not read (fhir3t screen reads it), so what it could decide stays "
                                           "unknown")
UNREAD_WHY: dict[str, Message] = {"ambiguous": ENTRY_AMBIGUOUS, "untyped": ENTRY_UNTYPED, "not-r4": ENTRY_NOT_R4,
                                  "unparsed": ENTRY_UNPARSED, "bundle": BUNDLE_LINE}


def _own_key(res: dict) -> str | None:
    """'Patient/<id>' a resource names by reference (its own id for a Patient), as the SQL key reads it."""
    if res.get("resourceType") == "Patient":
        pid = res.get("id")
        return f"Patient/{pid}" if isinstance(pid, str) and pid else None
    link = patient_link(res)
    ref = link.reference if link is not None else None
    key = normalize_reference(ref, {}) if isinstance(ref, str) else None
    return key if key is not None and key.startswith("Patient/") else None


def _unparsed_target(line: bytes, types: frozenset[str], shared_types: frozenset[str]) -> tuple[str, str | None] | None:
    """(type, patient key or None) of a line no reader can decode that could decide a criterion (its type, read at
    its start, is one a rule reads, or cannot be told: "*"), as the file path keeps it; None for other lines."""
    rtype = line_type(line) or "*"
    if rtype != "*" and (rtype not in r4_facts().resource_types or rtype == "Patient" or rtype in shared_types
                         or rtype not in types):
        return None
    found = line_patient_reference(line)
    key = normalize_reference(found, {}) if found else None
    return rtype, key if key is not None and key.startswith("Patient/") else None


def _bundle_patients(bundle: dict) -> tuple[list[str], list[str]]:
    """(patients named, types of entries naming nobody) of a Bundle's entries."""
    keys: list[str] = []
    nobody: list[str] = []
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else ():
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            continue
        key = _own_key(res)
        if key is not None:
            keys.append(key)
        else:
            nobody.append(res["resourceType"])
    return list(dict.fromkeys(keys)), nobody


def _undecoded(row: Any, run: Run, types: frozenset[str], shared_types: frozenset[str],
               error: str) -> tuple[dict | None, list[tuple[str, Kept]]]:
    """A line orjson refuses: (the resource read as one machine reads it, or None; the unread row for the patient
    its bytes name). One naming nobody is anyone's (Job.anyone, judged on the driver)."""
    where = row.file
    line = row.value.encode("utf-8", "surrogatepass")
    res, how = salvage(line)
    if res is not None:
        run.problems.add(where, FILES_P["not-utf8"]() if how == "not-utf8" else GROUPING_P["lenient"](), skipped=False)
        return res, []
    run.problems.add(where, W["bad-json"](error=error))
    target = _unparsed_target(line, types, shared_types)
    if target is None or target[1] is None:
        return None, []
    run.problems.add(where, GROUPING_P["unparsed-names"](), skipped=False)
    return None, [(target[1], ((_order_key(where), row.block, row.pos), target[0], where, "unread:unparsed"))]


def _untyped(res: dict, rtype: object, idents: dict[str, tuple[str, ...]], row: Any, run: Run) -> list[tuple[str, Kept]]:
    """A line of no usable type could be any record: unread for the patient it names, as on one machine."""
    where = row.file
    named = _named_key(res, idents)
    typed = isinstance(rtype, str) and bool(rtype)
    if named:
        run.problems.add(where, GROUPING_P["not-r4-names" if typed else "no-type-names"](), skipped=False)
    else:
        run.problems.add(where, GROUPING_P["not-r4" if typed else "no-type-nobody"]())
    return [(key, ((_order_key(where), row.block, row.pos), "*", where, "unread:not-r4" if typed else "unread:untyped"))
            for key in named]


def anyone_lines(rows: Iterable[tuple[str, str]], types: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """Driver: (type, file) of the lines of no patient key that could be anyone's record (see Job.anyone): a line
    no reader decodes and whose bytes name no patient, a Bundle line's entries of a read type naming nobody."""
    read = frozenset(types)
    shared_types = r4_facts().shared_types
    out: list[tuple[str, str]] = []
    for value, where in rows:
        try:
            res = orjson.loads(value)
        except orjson.JSONDecodeError:
            line = value.encode("utf-8", "surrogatepass")
            if salvage(line)[0] is not None:
                continue
            target = _unparsed_target(line, read, shared_types)
            if target is not None and target[1] is None and target[0] != "*":
                out.append((target[0], where))
            continue
        if isinstance(res, dict) and res.get("resourceType") == "Bundle":
            _, nobody = _bundle_patients(res)
            out.extend((t, where) for t in dict.fromkeys(nobody) if t in read and t not in shared_types)
    return tuple(sorted(set(out)))


def _links(res: dict) -> tuple[str, ...] | None:
    """The elements a line may name its patient in: its type's, or any R4 type's when its type is unknown."""
    rtype = res.get("resourceType")
    facts = r4_facts()
    if isinstance(rtype, str) and rtype in facts.resource_types:
        return None
    return tuple(dict.fromkeys(f for links in facts.patient_links.values() for f in links))


def named_token(value: str) -> str | None:
    """The identifier key a line names its patient by (a logical reference's identifier, or a conditional
    reference), when it has no plain reference; None otherwise."""
    try:
        res = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(res, dict):
        return None
    link = patient_link(res, _links(res))
    if link is None:
        return None
    if link.reference is not None and "?" in link.reference:
        found = conditional_patient(link.reference)
        return token_key(found) if isinstance(found, tuple) else None
    return token_key(link.identifier) if link.identifier is not None else None


def _named_key(res: dict, idents: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The patients a line without a usable key names (by identifier, a conditional reference, or for a line of
    no known type any element R4 names patients by)."""
    link = patient_link(res, _links(res))
    if link is None:
        return ()
    if link.reference is not None and "?" not in link.reference:
        key = normalize_reference(link.reference, {})
        return (key,) if key is not None and key.startswith("Patient/") else ()
    if link.reference is not None and "?" in link.reference:
        found = conditional_patient(link.reference)
        if isinstance(found, str):
            return (found,)
        return idents.get(token_key(found), ()) if found is not None else ()
    return idents.get(token_key(link.identifier), ()) if link.identifier is not None else ()


def keep_lines(job_bc: Any, rows: Iterable[Any]) -> Iterator[tuple[str, Kept]]:
    """Executor, before the shuffle: decode, keep what the read filter wants -> (patient, (order, line, where)).

    Problems travel under the empty key as ((), JSON, "", False) so the grouping step writes them out.
    """
    job: Job = job_bc.value
    definition, _shared = _definition(job)
    run = Run.start(definition, as_of=job.as_of, d1=job.d1)  # one per partition: its problems travel with it
    wants = run.filter
    idents = dict(job.idents)
    r4_types = r4_facts().resource_types
    shared_types = r4_facts().shared_types
    for row in rows:
        where = row.file
        row_key, salvaged = row.key, False
        try:
            res = orjson.loads(row.value)
        except orjson.JSONDecodeError as exc:
            res, kept = _undecoded(row, run, wants.types, shared_types, str(exc))
            yield from kept
            if res is None:
                continue
            row_key, salvaged = row_key or _own_key(res), True
        rtype = res.get("resourceType") if isinstance(res, dict) else None
        if rtype == "Bundle" and isinstance(res, dict):
            for key in _bundle_patients(res)[0]:
                yield key, ((_order_key(where), row.block, row.pos), "*", where, "unread:bundle")
            continue
        if isinstance(res, dict) and (not isinstance(rtype, str) or not rtype or rtype not in r4_types):
            yield from _untyped(res, rtype, idents, row, run)
            continue
        if not isinstance(res, dict) or not isinstance(rtype, str):
            run.problems.add(where, FILES_P["no-type-line"]())
            continue
        if row.orphan:
            if not wants(res, where):
                continue
            if not row_key:
                run.problems.add(where, GROUPING_P["orphan"](type=rtype))
                continue
        elif not row_key:
            named = _named_key(res, idents) if rtype != "Patient" else ()
            if len(named) == 1:  # named by an identifier one Patient carries: that patient's
                if wants(res, where):
                    yield named[0], ((_order_key(where), row.block, row.pos), row.value, where, False)
                continue
            if len(named) > 1:  # several carry it: whose it is cannot be told, so it is unread for each
                if wants(res, where):
                    for key in named:
                        yield key, ((_order_key(where), row.block, row.pos), rtype, where, "unread:ambiguous")
                run.problems.add(where, GROUPING_P["ident-several"](), skipped=False)
                continue
            run.problems.add(where, W["patient-no-id"]() if rtype == "Patient" else GROUPING_P["no-patient"](type=rtype))
            continue
        elif rtype != "Patient" and not wants(res, where):
            continue
        text = orjson.dumps(res).decode() if salvaged else row.value
        yield row_key, ((_order_key(where), row.block, row.pos), text, where, row.orphan)
    for _, text in _drain(run):
        yield "", ((), text, "", False)


def _patient_tokens(value: str, needed: set[str]) -> list[tuple[str, str]]:
    """(identifier key, 'Patient/<id>') for each identifier of a Patient line that some line needs."""
    try:
        res = orjson.loads(value)
    except orjson.JSONDecodeError:
        return []
    pid = res.get("id") if isinstance(res, dict) else None
    if not isinstance(pid, str) or not pid:
        return []
    return [(k, f"Patient/{pid}") for k in identifier_keys(res) if k in needed]


def _resolver(adopted: SharedIndex, shared: SharedIndex) -> Callable[[str], dict | None]:
    def resolve(ref: str) -> dict | None:
        hit = adopted.get(ref)
        return hit if hit is not None else shared.get(ref)

    return resolve


def screen_groups(job_bc: Any, groups: Iterable[tuple[str, Iterable[Kept]]]) -> Iterator[tuple[str, str]]:
    """Executor, after the shuffle: one RawRecord per patient, screened by the definition -> (kind, JSON)."""
    job: Job = job_bc.value
    definition, shared = _definition(job)
    run = Run.start(definition, as_of=job.as_of, d1=job.d1)
    passed: list[str] = []  # problems found before the shuffle

    def records() -> Iterator[RawRecord]:
        for key, lines in groups:
            if not key:
                passed.extend(text for _, text, _, _ in lines)
                continue
            ordered = sorted(lines, key=lambda x: x[0])
            resources = [(orjson.loads(text), where) for _, text, where, orphan in ordered if orphan is False]
            unread = [Unread(text, where, UNREAD_WHY[orphan.split(":", 1)[1]]()) for _, text, where, orphan in ordered
                      if isinstance(orphan, str)]
            unread += [Unread("*", where, ENTRY_LINKED(how=how, other=other)) for res, where in resources
                       if res.get("resourceType") == "Patient" and _own_key(res) == key
                       for how, other, _ in linked_records(res, key)]
            source = str(PurePosixPath(ordered[0][2]).parent)
            if not any(r.get("resourceType") == "Patient" for r, _ in resources):
                run.problems.add(source, W["no-patient"](key=key), skipped=False)
            adopted = SharedIndex()  # results naming no patient that this patient's reports point at
            for _, text, _, orphan in ordered:
                if orphan is True:
                    adopted.add(orjson.loads(text))
            one = reconcile(resources)  # every Type/id once: its newest copy (sources.versions)
            yield RawRecord(key, one.resources, source, _resolver(adopted, shared) if adopted.by_ref else shared.get, {},
                            unread, conflicts=one.conflicts, anyone=shared.anyone)

    for result in screen_records(definition, run, records(), shared):
        yield "result", orjson.dumps(result.to_dict()).decode()
        yield from _drain(run)
    yield from _drain(run)
    for text in passed:
        yield "problem", text


def patient_key(functions: Any, parsed: Any) -> Any:
    """Spark SQL: 'Patient/<id>' of a line (its own id for a Patient, else its patient reference)."""
    F = functions
    ref = F.lit(None)
    for rtype, fields in r4_facts().patient_links.items():
        refs = [_link_reference(F, parsed, f) for f in fields]
        ref = F.when(parsed["resourceType"] == rtype, F.coalesce(*refs) if len(refs) > 1 else refs[0]).otherwise(ref)
    # Patient/x, Patient/x/_history/1, http(s)://base/Patient/x (as fhir3t.sources.files.normalize_reference)
    pid = F.regexp_extract(F.regexp_replace(ref, r"[?#].*$", ""), r"(?:^|/)Patient/([^/]+)(?:/_history(?:/[^/]*)?)?/?$", 1)
    from_ref = F.when(pid != "", F.concat(F.lit("Patient/"), pid))
    return F.when(parsed["resourceType"] == "Patient", F.when(parsed["id"].isNotNull(), F.concat(F.lit("Patient/"), parsed["id"]))) \
        .otherwise(from_ref)


def _link_reference(functions: Any, parsed: Any, field: str) -> Any:
    """The reference a link element holds; for a list of participants (Appointment), the first actor
    that is a Patient, as fhirutil.patient_reference reads it."""
    if field in LIST_LINKS:
        actors = functions.filter(parsed[field], lambda p: p["actor"]["reference"].contains("Patient/"))
        return functions.get(actors, 0)["actor"]["reference"]  # NULL, not an error, when none is a Patient
    return parsed[field]["reference"]


def _orphan(functions: Any, parsed: Any) -> Any:
    """Spark SQL: an Observation with an id and no patient link at all (a lab's result that names no
    patient), which a patient's report or panel may point at (as sources.grouping keeps them)."""
    F = functions
    links = r4_facts().patient_links.get("Observation", ())
    absent = [parsed[f].isNull() for f in links]
    cond = (parsed["resourceType"] == "Observation") & parsed["id"].isNotNull()
    for a in absent:
        cond = cond & a
    return F.coalesce(cond, F.lit(False))


def _adopted(functions: Any, keyed: Any, orphan: Any) -> Any:
    """The orphan results joined to the patients whose reports (`result`) or panels (`hasMember`)
    point at them: one row per adopting patient, under the empty key when none does."""
    F = functions
    reporting = keyed.filter(F.col("key").isNotNull() & F.col("p.resourceType").isin("DiagnosticReport", "Observation"))
    pointers = None
    for f in PART_LINKS:
        part = reporting.select("key", F.explode(F.col(f"p.{f}")).alias("r")).select("key", F.col("r.reference").alias("ref"))
        pointers = part if pointers is None else pointers.unionByName(part)
    assert pointers is not None
    # "Observation/<id>" as written, or a full URL's last Type/id (as SharedIndex.get normalizes it)
    by_url = F.regexp_extract("ref", r"(?:^|/)(Observation/[^/?#]+)(?:/_history/[^/?#]*)?/?(?:[?#].*)?$", 1)
    pointers = (pointers.withColumn("ref", F.when(F.col("ref").contains("://"), by_url).otherwise(F.col("ref")))
                .filter(F.col("ref").startswith("Observation/")).distinct())
    orphans = keyed.filter(orphan).select(F.concat(F.lit("Observation/"), F.col("p.id")).alias("ref"),
                                          "value", "file", "block", "pos")
    return (orphans.join(pointers, "ref", "left")
            .select(F.coalesce("key", F.lit("")).alias("key"), "value", "file", "block", "pos", F.lit(True).alias("orphan")))


def line_schema() -> Any:
    """What Spark SQL reads of each line: type, id, the patient links and what reports point at."""
    from pyspark.sql import types as T

    ref = T.StructType([T.StructField("reference", T.StringType())])
    fields = sorted({f for fs in r4_facts().patient_links.values() for f in fs})
    return T.StructType([T.StructField("resourceType", T.StringType()), T.StructField("id", T.StringType()),
                         *(T.StructField(f, T.ArrayType(T.StructType([T.StructField("actor", ref)]))
                                         if f in LIST_LINKS else ref) for f in fields),
                         *(T.StructField(f, T.ArrayType(ref)) for f in PART_LINKS if f not in fields)])


def run(spark: Any, inputs: list[str], out: str, job: Job, types: Iterable[str], partitions: int | None = None) -> dict[str, int]:
    """Screen the NDJSON under `inputs` on `spark`; write OUT/results and OUT/problems. Returns counts."""
    from pyspark.sql import functions as F

    schema = line_schema()
    lines = (spark.read.option("recursiveFileLookup", "true").option("pathGlobFilter", NDJSON_GLOB).text(inputs)
             .select("value", F.col("_metadata.file_path").alias("file"), F.col("_metadata.file_block_start").alias("block"),
                     F.monotonically_increasing_id().alias("pos")))
    lines = lines.filter(F.trim("value") != "")
    parsed = lines.withColumn("p", F.from_json("value", schema))

    shared_types = sorted(r4_facts().shared_types)
    shared_lines = (parsed.filter(F.col("value").rlike("|".join(shared_types)))
                    .filter(F.col("p.resourceType").isin(shared_types)).select("value").collect())
    wanted = sorted({"Patient", *types} - set(shared_types))
    # Malformed lines (no resourceType) and lines without a usable patient reference stay in, under
    # the empty key, so keep_lines names them as the file path does.
    keyed = (parsed.withColumn("key", patient_key(F, F.col("p")))
             .filter(F.col("p.resourceType").isNull() | F.col("p.resourceType").isin([*wanted, "Bundle"])
                     | ~F.col("p.resourceType").isin(sorted(r4_facts().resource_types))))  # not R4's: unread
    # Lines that may be anyone's record (undecodable, naming nobody; a Bundle line's entries naming nobody): few,
    # judged on the driver and shipped to every executor (Job.anyone), as the file path's SharedIndex.anyone
    anyone = anyone_lines(((r.value, r.file) for r in keyed.filter(
        F.col("key").isNull() & (F.col("p.resourceType").isNull() | (F.col("p.resourceType") == "Bundle")))
        .select("value", "file").toLocalIterator()), types)
    # Lines naming their patient by identifier (a logical or conditional reference): the identifiers they use
    # (usually few), then the Patients carrying those, so each such line goes to its patient like the file
    # path's pass 1 and 2 (identifier_keys / token_key are the file path's own).
    needed = set(keyed.filter(F.col("key").isNull() & (F.col("p.resourceType").isNull()
                                                        | (F.col("p.resourceType") != "Patient"))).select("value").rdd
                 .map(lambda r: named_token(r.value)).filter(lambda k: k is not None).distinct().collect())
    idents: dict[str, tuple[str, ...]] = {}
    if needed:
        needed_bc = spark.sparkContext.broadcast(needed)
        pairs = (parsed.filter(F.col("p.resourceType") == "Patient").select("value").rdd
                 .flatMap(lambda r: _patient_tokens(r.value, needed_bc.value)).distinct().collect())
        for k, key in sorted(pairs):
            idents[k] = (*idents.get(k, ()), key)
    job = Job(job.as_of, job.d1, job.concept_maps, job.criteria, tuple(r.value for r in shared_lines),
              tuple(sorted(idents.items())), anyone)
    job_bc = spark.sparkContext.broadcast(job)
    orphan = _orphan(F, F.col("p"))
    own = keyed.filter(~orphan).select(F.coalesce("key", F.lit("")).alias("key"), "value", "file", "block", "pos",
                                       F.lit(False).alias("orphan"))
    rows = own.unionByName(_adopted(F, keyed, orphan))
    kept = rows.rdd.mapPartitions(lambda part: keep_lines(job_bc, part))
    n = partitions or max(spark.sparkContext.defaultParallelism, 1)
    out_rdd = kept.groupByKey(n).mapPartitions(lambda part: screen_groups(job_bc, part)).cache()
    results = out_rdd.filter(lambda kv: kv[0] == "result").map(lambda kv: (orjson.loads(kv[1])["patient"], kv[1]))
    results.sortByKey(numPartitions=n).values().saveAsTextFile(f"{out.rstrip('/')}/results")
    problems = out_rdd.filter(lambda kv: kv[0] == "problem").values()
    problems.coalesce(1).saveAsTextFile(f"{out.rstrip('/')}/problems")
    counts = {"results": results.count(), "problems": problems.count(), "shared": len(shared_lines)}
    out_rdd.unpersist()
    return counts


def read_results(out: str | Path) -> list[dict]:
    """The results a run wrote (local paths): the JSON contract, one dict per patient."""
    found: list[dict] = []
    for part in sorted(Path(out, "results").glob("part-*")):
        with part.open(encoding="utf-8") as fh:
            found.extend(json.loads(line) for line in fh if line.strip())
    return found


def make_job(inputs: list[str], as_of: date, d1: date | None, concept_maps: Iterable[str | Path],
             criteria_file: str | Path | None = None, discover_maps: bool = True) -> tuple[Job, list[Msg]]:
    """Read the configuration on the driver; ConceptMaps among local inputs are added (as the CLI does)."""
    maps = [Path(p) for p in concept_maps]
    local = [p for p in inputs if urlparse(p).scheme in ("", "file")]
    notes: list[Msg] = []
    if discover_maps and local:
        found = with_discovered_maps([unquote(urlparse(p).path) for p in local], maps, None)
        notes = [W["conceptmap"](path=str(p)) for p in found if p not in maps]
        maps = found
    job = Job(as_of, d1 or as_of, tuple(p.read_text(encoding="utf-8") for p in maps),
              Path(criteria_file).read_text(encoding="utf-8") if criteria_file else None, ())
    return job, notes


def read_types(job: Job) -> frozenset[str]:
    """The resource types some criterion reads (from the definition's read filter)."""
    definition, _shared = _definition(job)
    types = definition.relevance.types
    return frozenset(types) if types else frozenset()


def session(master: str | None = None, app: str = "fhir3t") -> Any:
    """A SparkSession: the given master, else spark-submit's, else local mode on every core."""
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app)
    if master:
        builder = builder.master(master)
    elif not SparkConf().contains("spark.master"):
        builder = builder.master("local[*]")
    builder = builder.config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "8")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def main(argv: list[str] | None = None) -> int:
    import os

    from fhir3t.messages.lang import choose

    lang = choose(None, None, os.environ)  # no config is read here: LANG / LC_ALL, as for spark-submit's own output

    def h(key: str) -> str:
        return render(W[key](), lang).replace("%", "%%")  # argparse %-formats help texts

    ap = argparse.ArgumentParser(prog="python -m fhir3t.spark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", help=h("h.inputs"))
    ap.add_argument("out", help=h("h.out"))
    ap.add_argument("--as-of", help=h("h.as-of"))
    ap.add_argument("--d1", help=h("h.d1"))
    ap.add_argument("--concept-map", action="append", default=[], help=h("h.concept-map"))
    ap.add_argument("--criteria", help=h("h.criteria"))
    ap.add_argument("--master", help=h("h.master"))
    ap.add_argument("--partitions", type=int, help=h("h.partitions"))
    args = ap.parse_args(argv)
    try:
        as_of = date.fromisoformat(args.as_of) if args.as_of else datetime.now(UTC).date()
        d1 = date.fromisoformat(args.d1) if args.d1 else None
    except ValueError as exc:
        ap.error(str(exc))
    job, notes = make_job(args.inputs, as_of, d1, args.concept_map, args.criteria)
    for note in notes:
        print(f"fhir3t.spark: {render(W['note'](text=note), lang)}", file=sys.stderr)
    spark = session(args.master)
    try:
        counts = run(spark, args.inputs, args.out, job, read_types(job), args.partitions)
    finally:
        spark.stop()
    done = W["done"](results=counts["results"], problems=counts["problems"], shared=counts["shared"], out=args.out)
    print(f"fhir3t.spark: {render(done, lang)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    # run the importable module's main, so what executors unpickle refers to fhir3t.spark, not __main__
    from fhir3t.spark import main as _main

    sys.exit(_main())
