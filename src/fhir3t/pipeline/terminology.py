"""Wiring a terminology server into a run (`--terminology URL`): see transport/terminology.py.

Before anyone is screened, each SNOMED CT concept the criteria's value sets list is expanded to its
descendants on the server (one `$expand` each, cached); where the server cannot expand, each new
SNOMED CT code a record carries is asked about with `$subsumes`. Codes of systems fhir3t does not know
are asked about with `$translate`. What the server adds only ever makes more records readable; what
it cannot answer stays unread (unknown), never absent.
"""
from __future__ import annotations

from fhir3t.errors import Problems
from fhir3t.messages import Plural
from fhir3t.records.plan import ReadPlan
from fhir3t.terminology import Code, Terminology, ValueSet
from fhir3t.transport.terminology import SNOMED, TerminologyServer

EXPANDED = Plural("input.terminology-expanded", "{n} SNOMED CT descendant of the value sets' concepts added from the "
                  "terminology server", "{n} SNOMED CT descendants of the value sets' concepts added from the "
                  "terminology server")
FAILED = Plural("input.terminology-failed", "{n} {op} request to the terminology server failed: the codes concerned stay "
                "unread (their criteria unknown)", "{n} {op} requests to the terminology server failed: the codes "
                "concerned stay unread (their criteria unknown)")

#: subsumption questions asked at most, per run, when the server cannot expand (a budget, not a limit on
#: correctness: an unanswered code stays unread)
MAX_SUBSUMES = 20_000


def connect_terminology(tx: Terminology, plan: ReadPlan, server: TerminologyServer, problems: Problems) -> None:
    """Extend the value sets the plan reads from the server: only ever on a definition of the run's own
    (Definition.with_terminology_server), never a shared one."""
    sets: dict[int, ValueSet] = {}
    for vss in plan.valuesets.values():
        for vs in vss:
            sets[id(vs)] = vs
    roots_unexpanded: set[str] = set()
    expanded = 0
    for vs in sets.values():
        for code in sorted(vs.include_codes.get(SNOMED, ())):
            found = server.expand_isa(SNOMED, code)
            if found is None:
                roots_unexpanded.add(code)
                continue
            new = found - vs.include_codes[SNOMED] - vs.exclude_codes.get(SNOMED, set())
            if new:
                vs.include_codes[SNOMED] |= new
                vs.order.extend((SNOMED, c) for c in sorted(new))
                vs._cache.clear()
                vs._exact = None
                expanded += len(new)
    targets = sorted({s for vs in sets.values() for s in vs.systems_used})
    asked = [0]

    def resolve(code: Code) -> tuple[Code, ...]:
        system, value = code
        if system == SNOMED:
            if not roots_unexpanded or any(code in vs for vs in sets.values()):
                return ()
            out = []
            for root in sorted(roots_unexpanded):
                if asked[0] >= MAX_SUBSUMES:
                    break
                asked[0] += 1
                if root != value and server.subsumes(SNOMED, root, value):
                    out.append((SNOMED, root))
            return tuple(out)
        if tx.systems.known(system) or system in tx.maps.source_systems:
            return ()
        return tuple(server.translate(system, value, targets))

    tx.resolver = resolve
    if expanded:
        problems.add("terminology", EXPANDED(expanded), skipped=False)


def terminology_summary(server: TerminologyServer, problems: Problems) -> None:
    """Said once at the end: what the server could not answer (those codes stay unread), and why it stopped being
    asked, if it did (the run's budget spent, or failures in a row)."""
    stopped = server.said()
    if stopped:
        problems.add("terminology", stopped)
    for op, n in sorted(server.failures.items()):
        problems.add("terminology", FAILED(n, op=op))
