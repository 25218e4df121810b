"""A FHIR terminology server, for hospitals that have one (`--terminology URL`).

Three operations, every answer cached for the run and checked for shape:
- `ValueSet/$expand` of SNOMED CT's implicit `isa/<code>` value sets: the descendants of a listed
  concept (a non-small-cell lung cancer is a malignant neoplasm) join the value set;
- `CodeSystem/$subsumes`, where the server cannot expand: one code against a listed concept;
- `ConceptMap/$translate` with `targetsystem`: a hospital-local code's equivalent standard code.
A server that fails or answers something else changes nothing: the code stays unread, so its rules
stay unknown (never "absent"), and the run says once what could not be asked.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable

from fhir3t.errors import Fhir3tError
from fhir3t.jsonshape import items, objs, text
from fhir3t.transport.http import FhirClient

log = logging.getLogger("fhir3t.terminology")

SNOMED = "http://snomed.info/sct"
PAGE = 1000
MAX_EXPANSION = 200_000  # codes taken from one expansion (a root near the top of SNOMED CT is refused)


class TerminologyServer:
    def __init__(self, client: FhirClient) -> None:
        self.client = client
        self._translate: dict[tuple[str, str, str], list[tuple[str, str]]] = {}
        self._subsumes: dict[tuple[str, str, str], bool | None] = {}
        self.failures: dict[str, int] = {}

    def _failed(self, op: str, exc: Exception) -> None:
        self.failures[op] = self.failures.get(op, 0) + 1
        log.debug("terminology %s failed: %s", op, type(exc).__name__)

    def expand_isa(self, system: str, code: str) -> set[str] | None:
        """Codes of the implicit `isa/<code>` value set (the concept and its descendants), or None."""
        url = f"{system}?fhir_vs=isa/{code}"
        found: set[str] = set()
        offset = 0
        try:
            while True:
                vs = self.client.get("ValueSet/$expand", params=[("url", url), ("count", str(PAGE)),
                                                                  ("offset", str(offset))])
                expansion = vs.get("expansion") if isinstance(vs, dict) else None
                if not isinstance(expansion, dict):
                    return None
                page = [text(c.get("code")) for c in objs(items(expansion.get("contains")))
                        if text(c.get("system")) in (None, system)]
                found.update(c for c in page if c)
                total = expansion.get("total")
                offset += len(page)
                if not page or len(found) > MAX_EXPANSION or not isinstance(total, int) or offset >= total:
                    break
        except (Fhir3tError, OSError, ValueError) as exc:
            self._failed("$expand", exc)
            return None
        return found if len(found) <= MAX_EXPANSION else None

    def subsumes(self, system: str, ancestor: str, code: str) -> bool | None:
        """Is `code` the `ancestor` or below it? None when the server cannot say."""
        key = (system, ancestor, code)
        if key not in self._subsumes:
            try:
                out = self.client.get("CodeSystem/$subsumes", params=[("system", system), ("codeA", ancestor),
                                                                       ("codeB", code)])
                outcome = next((text(p.get("valueCode")) for p in objs(items(out.get("parameter") if isinstance(out, dict) else None))
                                if p.get("name") == "outcome"), None)
                self._subsumes[key] = outcome in ("subsumes", "equivalent") if outcome else None
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
            out = self.client.get("ConceptMap/$translate", params=[("system", system), ("code", code),
                                                                    ("targetsystem", target)])
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
