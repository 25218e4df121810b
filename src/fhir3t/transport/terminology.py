"""A FHIR terminology server, for hospitals that have one (`--terminology URL`).

Three operations, every answer cached for the run and checked for shape:
- `ValueSet/$expand` of SNOMED CT's implicit `isa/<code>` value sets: the descendants of a listed
  concept (a non-small-cell lung cancer is a malignant neoplasm) join the value set;
- `CodeSystem/$subsumes`, where the server cannot expand: one code against a listed concept;
- `ConceptMap/$translate` with `targetsystem`: a hospital-local code's equivalent standard code.
A server that fails or answers something else changes nothing: the code stays unread, so its rules
stay unknown (never "absent"), and the run says once what could not be asked.

Bounded for the whole run, not per lookup: the server is asked until the run's terminology `budget`
(seconds, wall clock) is spent, each request gets at most what is left of it, and after
`MAX_FAILURES_IN_A_ROW` failures in a row (5xx, timeouts, unreachable, nonsense; a 4xx "cannot do
that" is an answer) it is not asked again: a server answering 500, or dripping slowly, costs the run
at most the budget, whatever the number of codes. Paging an expansion stops
at a page that brings no new code, and at `MAX_EXPANSION` codes (a server repeating one page with a
huge `total` cannot keep the run asking); such an expansion counts as not answered.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from fhir3t.errors import Fhir3tError
from fhir3t.jsonshape import items, objs, text
from fhir3t.messages import Msg, render, table
from fhir3t.messages.core import Arg
from fhir3t.transport.http import FhirClient, HttpStatusError

log = logging.getLogger("fhir3t.terminology")

SNOMED = "http://snomed.info/sct"
PAGE = 1000
MAX_EXPANSION = 200_000  # codes taken from one expansion (a root near the top of SNOMED CT is refused)
#: seconds the terminology server may cost a run in all (--terminology-budget)
DEFAULT_BUDGET = 120.0
#: failures in a row after which the server is not asked again this run
MAX_FAILURES_IN_A_ROW = 5

#: what the run says at the end, through its problems
MESSAGES = table("tx-server", {
    "budget": "the terminology server was not asked again after the run's terminology budget of {budget} s was spent "
              "(--terminology-budget): {skipped} lookup(s) not asked; the codes concerned stay unread",
    "failing": "the terminology server was not asked again after {n} failures in a row: {skipped} lookup(s) not asked; "
               "the codes concerned stay unread",
})


class _Stopped(Exception):
    """The server is not asked any more this run (budget spent, or failing)."""


class TerminologyServer:
    def __init__(self, client: FhirClient, *, budget: float = DEFAULT_BUDGET,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._translate: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        self._subsumes: dict[tuple[str, str, str], bool | None] = {}
        self.failures: dict[str, int] = {}
        self.budget = budget
        self.clock = clock
        self.deadline = clock() + budget
        self._timeout, self._connect = client.timeout, client.connect_timeout
        self.in_a_row = 0
        #: why the server is not asked any more (None: it still is): a key of MESSAGES and its values but `skipped`,
        #: how many lookups that cost
        self.stopped: tuple[str, dict[str, Arg]] | None = None
        self.skipped = 0

    def _failed(self, op: str, exc: Exception) -> None:
        self.failures[op] = self.failures.get(op, 0) + 1
        if isinstance(exc, HttpStatusError) and 400 <= exc.status < 500 and exc.status not in (408, 429):
            return  # an answer ("cannot do that"), not a server failing: the other operations may still work
        self.in_a_row += 1
        if self.in_a_row >= MAX_FAILURES_IN_A_ROW and self.stopped is None:
            self.stopped = ("failing", {"n": self.in_a_row})
        log.debug("terminology %s failed: %s", op, type(exc).__name__)

    def _get(self, path: str, params: list[tuple[str, str]]) -> Any:
        """One request within what is left of the run's budget; _Stopped when nothing is left or the server is
        not asked any more."""
        if self.stopped is None:
            left = self.deadline - self.clock()
            if left <= 0:
                self.stopped = ("budget", {"budget": f"{self.budget:g}"})
            else:
                self.client.timeout = min(self._timeout, left)
                self.client.connect_timeout = min(self._connect, self.client.timeout)
        if self.stopped is not None:
            self.skipped += 1
            raise _Stopped()
        out = self.client.get(path, params=params)
        self.in_a_row = 0
        return out

    def said(self) -> Msg | None:
        """Why the server stopped being asked, and what that cost (None: it was asked throughout)."""
        if self.stopped is None:
            return None
        key, values = self.stopped
        return MESSAGES[key](**values, skipped=self.skipped)

    def summary(self) -> str | None:
        """`said`, in English."""
        said = self.said()
        return render(said) if said is not None else None

    def expand_isa(self, system: str, code: str) -> set[str] | None:
        """Codes of the implicit `isa/<code>` value set (the concept and its descendants), or None."""
        url = f"{system}?fhir_vs=isa/{code}"
        found: set[str] = set()
        offset = 0
        try:
            while True:
                vs = self._get("ValueSet/$expand", [("url", url), ("count", str(PAGE)), ("offset", str(offset))])
                expansion = vs.get("expansion") if isinstance(vs, dict) else None
                if not isinstance(expansion, dict):
                    return None
                page = [text(c.get("code")) for c in objs(items(expansion.get("contains")))
                        if text(c.get("system")) in (None, system)]
                before = len(found)
                found.update(c for c in page if c)
                total = expansion.get("total")
                offset += len(page)
                if len(found) > MAX_EXPANSION:
                    return None
                if not page or not isinstance(total, int) or offset >= total:
                    break
                if len(found) == before:  # a page with nothing new: the server repeats itself, the rest is unknown
                    self._failed("$expand", ValueError("repeated page"))
                    return None
        except _Stopped:
            return None
        except (Fhir3tError, OSError, ValueError) as exc:
            self._failed("$expand", exc)
            return None
        return found

    def subsumes(self, system: str, ancestor: str, code: str) -> bool | None:
        """Is `code` the `ancestor` or below it? None when the server cannot say."""
        key = (system, ancestor, code)
        if key not in self._subsumes:
            try:
                out = self._get("CodeSystem/$subsumes", [("system", system), ("codeA", ancestor), ("codeB", code)])
                outcome = next((text(p.get("valueCode")) for p in objs(items(out.get("parameter") if isinstance(out, dict) else None))
                                if p.get("name") == "outcome"), None)
                self._subsumes[key] = outcome in ("subsumes", "equivalent") if outcome else None
            except _Stopped:
                return None  # not cached: not an answer
            except (Fhir3tError, OSError, ValueError) as exc:
                self._failed("$subsumes", exc)
                self._subsumes[key] = None
        return self._subsumes[key]

    def translate(self, system: str, code: str, targets: Iterable[str]) -> list[tuple[str, str]]:
        """Equivalent codes in the target systems (only `equivalent` / `equal` matches count)."""
        out: list[tuple[str, str]] = []
        for target in targets:
            key = (system, code, target)
            if key not in self._translate:
                self._translate[key] = self._translate_one(system, code, target)
            out += self._translate[key]
        return out

    def _translate_one(self, system: str, code: str, target: str) -> list[tuple[str, str]]:
        try:
            out = self._get("ConceptMap/$translate", [("system", system), ("code", code), ("targetsystem", target)])
        except _Stopped:
            return []
        except (Fhir3tError, OSError, ValueError) as exc:
            self._failed("$translate", exc)
            return []
        found: list[tuple[str, str]] = []
        for p in objs(items(out.get("parameter") if isinstance(out, dict) else None)):
            if p.get("name") != "match":
                continue
            parts = {text(q.get("name")): q for q in objs(items(p.get("part")))}
            eq = text((parts.get("equivalence") or {}).get("valueCode")) or \
                text((parts.get("relationship") or {}).get("valueCode"))
            coding = (parts.get("concept") or {}).get("valueCoding")
            if eq in ("equivalent", "equal") and isinstance(coding, dict) \
                    and text(coding.get("system")) == target and text(coding.get("code")):
                found.append((target, str(coding["code"])))
        return found
