"""What a rule sees: the record, the dates, terminology and how to recognise this study."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

from fhir3t.dates import Duration, Window
from fhir3t.record import PatientRecord, Res
from fhir3t.terminology import Terminology, ValueSet


@dataclass(frozen=True)
class WindowSpec:
    """A window in data: `before` the anchor (as_of or d1), closed, ending on the anchor."""

    name: str
    anchor: str  # "as_of" | "d1"
    before: Duration

    def resolve(self, as_of: date, d1: date, at_least: int = 0) -> Window:
        return _resolve(self, as_of, d1, at_least)

    def _compute(self, as_of: date, d1: date, at_least: int = 0) -> Window:
        end = as_of if self.anchor == "as_of" else d1
        start = self.before.before(end)
        if at_least and (end - start).days < at_least:
            start = end - timedelta(days=at_least)
        return Window(start, end)

    def describe(self) -> str:
        return f"{self.before} before {'the screening date' if self.anchor == 'as_of' else 'D1'}"


@lru_cache(maxsize=4096)
def _resolve(spec: WindowSpec, as_of: date, d1: date, at_least: int) -> Window:
    """Windows repeat across every patient of a run: compute each once."""
    return spec._compute(as_of, d1, at_least)


@dataclass
class StudyMatcher:
    """Recognises references to this study (by identifier, or via known ResearchStudy resources)."""

    system: str
    value: str
    refs: set[str] = field(default_factory=set)
    other_refs: set[str] = field(default_factory=set)

    def learn(self, studies: Iterable[dict]) -> None:
        for s in studies:
            rid = s.get("id")
            ref = f"ResearchStudy/{rid}" if isinstance(rid, str) else None
            ours = any(isinstance(i, dict) and self._same(i) is True for i in s.get("identifier") or ())
            if ref:
                (self.refs if ours else self.other_refs).add(ref)

    def _same(self, ident: dict) -> bool | None:
        """True: our identifier; False: another value; None: our value under another system."""
        def norm(s: object) -> str:
            s = s.strip().rstrip("/").lower().replace("https://", "http://", 1) if isinstance(s, str) else ""
            return s.replace("http://www.", "http://", 1)

        value = ident.get("value")
        if not isinstance(value, str) or value.strip().upper() != self.value.upper():
            return False
        if "system" not in ident or norm(ident.get("system")) == norm(self.system):
            return True
        return None  # e.g. the NCT number under a registry OID: a person should confirm

    def match(self, reference: object) -> bool | None:
        """True: this study; False: another study; None: cannot tell."""
        if not isinstance(reference, dict):
            return None
        ident = reference.get("identifier")
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            return self._same(ident)
        ref = reference.get("reference")
        if isinstance(ref, str):
            norm = "/".join(ref.rstrip("/").split("/")[-2:])
            if norm in self.refs:
                return True
            if norm in self.other_refs:
                return False
            if norm.split("/")[-1].upper() == self.value:
                return True
        return None  # a display text proves nothing either way


@dataclass
class Context:
    record: PatientRecord
    as_of: date
    d1: date
    tx: Terminology
    study: StudyMatcher
    windows: dict[str, WindowSpec]

    _window_cache: dict[tuple[str, int], Window] = field(default_factory=dict)

    def window(self, name: str, at_least_days: int = 0) -> Window:
        key = (name, at_least_days)
        w = self._window_cache.get(key)
        if w is None:
            w = self._window_cache[key] = self.windows[name].resolve(self.as_of, self.d1, at_least_days)
        return w

    _visible_cache: dict[str, list[Res]] = field(default_factory=dict)

    def visible(self, rtype: str) -> list[Res]:
        """Resources of a type, minus those dated after as_of (they do not exist yet)."""
        hit = self._visible_cache.get(rtype)
        if hit is None:
            as_of = self.as_of
            hit = self._visible_cache[rtype] = [r for r in self.record.of(rtype) if not r.dated_after(as_of)]
        return hit

    def matching(self, rtype: str, vs: ValueSet) -> list[Res]:
        """Visible resources of a type whose code is in a value set (indexed by code when it can)."""
        exact = vs.exact_only()
        if exact is None:
            return [r for r in self.visible(rtype) if any(c in vs for c in r.codes)]
        index = self.record.code_index(rtype)
        seen: dict[int, Res] = {}
        for code in exact:
            for r in index.get(code, ()):
                seen[id(r)] = r
        as_of = self.as_of
        return [r for r in seen.values() if not r.dated_after(as_of)]

    def visible_many(self, *types: str) -> list[Res]:
        out: list[Res] = []
        for t in types:
            out.extend(self.visible(t))
        return out

    @property
    def patient_ref(self) -> str:
        return self.record.key
