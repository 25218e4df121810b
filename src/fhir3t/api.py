"""The Python API: what `fhir3t screen` does, for a hospital's own scripts.

    import fhir3t
    for result in fhir3t.screen(["samples/"], as_of="2026-11-16"):
        print(result.patient, result.status, result.unknown)
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from fhir3t.criteria import CriteriaSet, Screener, load_criteria
from fhir3t.criteria.model import ScreeningResult
from fhir3t.dates import parse_day, today_utc
from fhir3t.errors import Problems, UsageError
from fhir3t.record import CODE_FIELD, MED_TYPES, MUST_BE_CODED, RawRecord, RecordBuilder, main_concept, report_unknown_systems
from fhir3t.sources.files import FileSource, SharedIndex, discover_concept_maps, expand_paths
from fhir3t.terminology import Terminology

log = logging.getLogger(__name__)


def _day(value: date | str | None, name: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return parse_day(value)
    except ValueError as exc:
        raise UsageError(f"{name}: {exc}") from None


@dataclass
class Engine:
    """Terminology + criteria + screener, loaded once and reused across many patients."""

    tx: Terminology
    criteria: CriteriaSet
    screener: Screener
    problems: Problems = field(default_factory=Problems)

    @classmethod
    def load(cls, concept_maps: Iterable[str | Path] = (), criteria_file: str | Path | None = None,
             problems: Problems | None = None) -> Engine:
        tx = Terminology.load([Path(p) for p in concept_maps])
        criteria = load_criteria(tx, Path(criteria_file) if criteria_file else None)
        return cls(tx, criteria, Screener(criteria, tx), problems if problems is not None else Problems())

    def builder(self) -> RecordBuilder:
        return RecordBuilder(self.tx, self.problems, self.screener.keep, self.screener.types)

    def wants(self, shared: SharedIndex) -> Callable[[dict, str], bool]:
        """Pre-filter applied while reading: keep only resources some criterion reads."""
        tx, keep, problems = self.tx, self.screener.keep, self.problems
        types = self.screener.types
        known = tx.systems.known

        seen: dict[tuple[str, object, object], bool] = {}  # (type, system, code) as written -> kept?

        code_field = {t: f for t, f in CODE_FIELD.items() if t in types}

        def wants(res: dict, where: str) -> bool:
            rtype = res["resourceType"]
            # fast path: a single coding seen before (most of a record: the same lab codes again and again)
            f = code_field.get(rtype)
            if f is not None:
                concept = res.get(f)
                if type(concept) is dict:
                    codings = concept.get("coding")
                    if type(codings) is list and len(codings) == 1 and type(codings[0]) is dict:
                        system, code = codings[0].get("system"), codings[0].get("code")
                        if type(system) is str and type(code) is str:
                            hit = seen.get((rtype, system, code))
                            if hit is not None:
                                return hit
            return decide(res, rtype, where)

        def decide(res: dict, rtype: str, where: str) -> bool:
            if rtype not in types:
                return False
            if rtype == "AdverseEvent" or (rtype in MED_TYPES and "medicationReference" in res):
                return True  # their drug is resolved (suspects, contained / referenced Medication) at build time
            concept = main_concept(rtype, res, shared.get)
            if rtype in MUST_BE_CODED and not isinstance(concept, dict):
                return True  # no readable code: the record builder says so and rules stay unknown
            codings = concept.get("coding") if isinstance(concept, dict) else None
            if (isinstance(codings, list) and len(codings) == 1 and isinstance(codings[0], dict)
                    and type(codings[0].get("system")) is str and type(codings[0].get("code")) is str):
                key = (rtype, codings[0]["system"], codings[0]["code"])
                hit = seen.get(key)
                if hit is not None:
                    return hit
                codes = tx.codes(concept)
                hit = seen[key] = keep(rtype, codes) or (rtype in MUST_BE_CODED and not tx.systems.readable_for(rtype, codes))
                if hit or any(known(s) for s, _ in codes):
                    return hit
            codes = tx.codes(concept) if concept is not None else ()
            if keep(rtype, codes):
                return True
            if rtype in MUST_BE_CODED and not tx.systems.readable_for(rtype, codes):
                return True  # kept as unreadable: the builder reports it, absence rules stay unknown
            if concept is not None and not any(known(s) for s, _ in codes):
                rid = res.get("id")
                report_unknown_systems(tx, problems, concept, f"{where} ({rtype}/{rid})" if isinstance(rid, str) else where)
            return False

        wants.types = types  # type: ignore[attr-defined]  # lets readers skip unread types cheaply
        return wants

    def screen_raw(self, raws: Iterable[RawRecord], as_of: date, d1: date | None,
                   shared: SharedIndex | None = None) -> Iterator[ScreeningResult]:
        builder = self.builder()
        learned = 0
        for raw in raws:
            if shared is not None and len(shared.by_ref) != learned:
                self.screener.learn_studies(shared.studies())
                learned = len(shared.by_ref)
            try:
                result = self.screener.screen(builder.build(raw), as_of, d1)
            except (TypeError, AttributeError, ValueError, KeyError, ArithmeticError, RecursionError) as exc:
                # Input shaped in a way no rule expected: this patient is reported, the run goes on.
                log.debug("screening %s failed", raw.key, exc_info=True)
                self.problems.add(raw.source, f"{raw.key}: not screened: a resource has an unexpected structure "
                                              f"({type(exc).__name__}); check it with 'fhir3t validate'")
                continue
            yield result


def with_discovered_maps(paths: Sequence[str | Path], concept_maps: Iterable[str | Path],
                         problems: Problems | None) -> list[Path]:
    """--concept-map files plus ConceptMaps found among the inputs (each said on stderr)."""
    given = [Path(p) for p in concept_maps]
    seen = {p.resolve() for p in given}
    json_files, _ = expand_paths(paths)
    for p in discover_concept_maps(json_files):
        if p.resolve() not in seen:
            seen.add(p.resolve())
            given.append(p)
            if problems is not None:
                problems.add(str(p), "ConceptMap found in the input: used to translate local codes", skipped=False)
    return given


def screen(
    paths: Iterable[str | Path],
    *,
    as_of: date | str | None = None,
    d1: date | str | None = None,
    concept_maps: Iterable[str | Path] = (),
    problems: Problems | None = None,
    engine: Engine | None = None,
    on_file: Callable[[Path], None] | None = None,
    jobs: int = 1,
    criteria_file: str | Path | None = None,
    discover_maps: bool = True,
) -> Iterator[ScreeningResult]:
    """Screen every patient found in Bundle / NDJSON files; yields one ScreeningResult each.

    Input problems (bad JSON, entries without a patient, ...) are collected in `problems`
    (pass your own Problems() to read them) instead of raising, so one bad file does not
    stop a run. `jobs` > 1 screens Bundle files on that many processes (same results).
    ConceptMap files among `paths` are applied like `concept_maps` unless `discover_maps` is off.
    """
    as_of_day = _day(as_of, "as_of") or today_utc()
    d1_day = _day(d1, "d1") or as_of_day
    paths = list(paths)
    if engine is None and discover_maps:
        concept_maps = with_discovered_maps(paths, concept_maps, problems)
    if jobs > 1:
        from fhir3t.parallel import screen_parallel

        yield from screen_parallel(list(paths), as_of_day, d1_day, jobs=jobs, concept_maps=list(concept_maps),
                                   criteria_file=criteria_file, problems=problems if problems is not None else Problems(),
                                   on_file=on_file)
        return
    eng = engine or Engine.load(concept_maps, criteria_file, problems=problems)
    if problems is not None:
        eng.problems = problems
    shared = SharedIndex()
    source = FileSource(paths, eng.problems, wants=eng.wants(shared), on_file=on_file, shared=shared)
    yield from eng.screen_raw(source, as_of_day, d1_day, shared)
