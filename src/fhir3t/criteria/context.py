"""What a rule sees: the record, the dates, terminology and how to recognise this study."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache

from fhir3t.criteria.suspects import could_be, split_codes
from fhir3t.dates import Duration, Window
from fhir3t.logic import NOT_MET, Tri
from fhir3t.messages import Message, Msg, Plural
from fhir3t.records.model import PatientRecord, Res
from fhir3t.study import StudyMatcher
from fhir3t.terminology import Terminology, ValueSet

__all__ = ["Context", "StudyMatcher", "WindowSpec"]


DAYS = Plural("window.days", "{n} day", "{n} days")
MONTHS = Plural("window.months", "{n} month", "{n} months")
YEARS = Plural("window.years", "{n} year", "{n} years")
BEFORE_AS_OF = Message("window.before-as-of", "within {duration} before the screening date")
BEFORE_D1 = Message("window.before-d1", "within {duration} before D1")


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

    def describe(self) -> Msg:
        """'within 28 days before the screening date', 'within 6 months before D1'."""
        n, unit = self.before.amount, self.before.unit
        duration = (DAYS if unit == "d" else MONTHS if unit == "mo" else YEARS)(n)
        return (BEFORE_AS_OF if self.anchor == "as_of" else BEFORE_D1)(duration=duration)


@lru_cache(maxsize=4096)
def _resolve(spec: WindowSpec, as_of: date, d1: date, at_least: int) -> Window:
    """Windows repeat across every patient of a run: compute each once."""
    return spec._compute(as_of, d1, at_least)


@dataclass
class Context:
    record: PatientRecord
    as_of: date
    d1: date
    tx: Terminology
    study: StudyMatcher
    windows: dict[str, WindowSpec]
    #: the value sets the criteria read, by type (which drug an unreadable record names, if any)
    valuesets: dict[str, tuple[ValueSet, ...]] = field(default_factory=dict)

    #: the value sets the criterion being evaluated reads, by type (set by the screener per criterion)
    criterion_sets: dict[str, tuple[ValueSet, ...]] = field(default_factory=dict)

    _window_cache: dict[tuple[str, int], Window] = field(default_factory=dict)
    _visible_cache: dict[str, list[Res]] = field(default_factory=dict)

    def window(self, name: str, at_least_days: int = 0) -> Window:
        key = (name, at_least_days)
        w = self._window_cache.get(key)
        if w is None:
            w = self._window_cache[key] = self.windows[name].resolve(self.as_of, self.d1, at_least_days)
        return w

    def visible(self, rtype: str) -> list[Res]:
        """Resources of a type, minus those dated after as_of (they do not exist yet)."""
        hit = self._visible_cache.get(rtype)
        if hit is None:
            as_of = self.as_of
            hit = self._visible_cache[rtype] = [r for r in self.record.of(rtype) if not r.dated_after(as_of)]
        return hit

    def matching(self, rtype: str, vs: ValueSet) -> list[Res]:
        """Visible resources of a type whose code is in a value set (indexed by code when it can), leaving out those
        coded outside it too (`split_codes`)."""
        return [r for r in self._coded_in(rtype, vs) if split_codes(r, vs) is None]

    def matching_and_split(self, rtype: str, vs: ValueSet) -> tuple[list[Res], list[Res]]:
        """(`matching`, the visible resources of the type coded both in the value set and, by a code that rules it
        out, outside it)."""
        ok: list[Res] = []
        split: list[Res] = []
        for r in self._coded_in(rtype, vs):
            (ok if split_codes(r, vs) is None else split).append(r)
        return ok, split

    def _coded_in(self, rtype: str, vs: ValueSet) -> list[Res]:
        index = self.record.code_index(rtype)
        if not index:
            return []
        seen: dict[int, Res] = {}
        exact = vs.exact_only()
        if exact is not None and len(exact) < len(index):
            for code in exact:
                for r in index.get(code, ()):
                    seen[id(r)] = r
        else:  # the record's few codes against the set (membership is cached per code)
            for code, found in index.items():
                if code in vs:
                    for r in found:
                        seen[id(r)] = r
        as_of = self.as_of
        return [r for r in seen.values() if not r.dated_after(as_of)]

    def visible_many(self, *types: str) -> list[Res]:
        out: list[Res] = []
        for t in types:
            out.extend(self.visible(t))
        return out

    def suspects(self, rtype: str, vs: ValueSet, *, every: bool = False) -> list[Res]:
        """Visible resources whose code is not in `vs` but whose text names one of its concepts,
        where no closed-system code (ICD-10, ATC) already decides membership.

        By default only records kept because of their text are looked at; `every` looks at all the
        type's records too (a code read for another rule whose text contradicts it: ICD-10-CM O50.911
        'malignant neoplasm of right female breast'), which an absence-based rule asks before saying
        'no record'."""
        pool = self.record.suspects.get(rtype, [])
        if every:
            pool = [*pool, *self.visible(rtype)]
        if not pool:
            return []
        out: dict[int, Res] = {}
        for r in pool:
            if id(r) in out or r.dated_after(self.as_of) or any(c in vs for c in r.codes):
                continue
            if r.hit(vs) is not None:  # the concept is named in an element no rule interprets
                if r.type != rtype and self.read_as_other(r, vs):
                    continue  # another type's record the criterion reads itself (a pregnancy-status result)
                out[id(r)] = r
                continue
            if any(vs.generalizes(c) for c in r.codes) and not any(vs.decides(c) for c in r.codes) \
                    and not self.read_as_other(r, vs):  # coded by a class above the set's codes: which one?
                out[id(r)] = r
                continue
            if not vs.names or any(vs.decides(c) for c in r.codes):
                continue
            if self.read_as_other(r, vs):
                continue
            if vs.named_in(r.texts):
                out[id(r)] = r
        return list(out.values())

    def read_as_other(self, r: Res, vs: ValueSet) -> bool:
        """Is the record read by the criterion being evaluated through another of its value sets (a
        'history of breast cancer' Z85.3 read by E6's history rule is no suspect of E6's malignancy rule)?"""
        return any(other is not vs and any(c in other for c in r.codes)
                   for other in self.criterion_sets.get(r.type, ()))

    def doubtful(self, types: Iterable[str], vs: ValueSet | None,
                 judge: Callable[[Res], Tri] | None = None, *, every: bool = False, judge_any: bool = False) -> list[Res]:
        """Records that could be what a rule looks for but cannot be read as such: unread ones that
        could match, and suspects (see `suspects`). `judge` drops those that could not change the
        answer (asked only where the record's other elements are readable; with `judge_any`, wherever
        the record has content: a rule that reads only a record's dates can judge one whose status or
        code is unreadable, and one dated wholly outside its window cannot keep it unknown)."""
        record = self.record
        if not record.unread and not record.suspects and not every:
            return []
        out: list[Res] = []
        for t in types:
            for r in self.record.unread_of(t):
                if r.dated_after(self.as_of) or not could_be(r, vs, self.tx, self.valuesets.get(t, ())):
                    continue
                if judge is not None and ((judge_any and r.raw) or r.bad in ("code", "medication[x]", "suspectEntity",
                                                                            "version", "patient", "held")) \
                        and judge(r) == NOT_MET:
                    continue
                out.append(r)
            if vs is not None:
                for r in self.suspects(t, vs, every=every):
                    # one of another type (a report naming a diagnosis) cannot be judged as one of this type
                    if judge is None or r.type != t or judge(r) != NOT_MET:
                        out.append(r)
                for r in self.visible(t):  # coded both in the set and, in a system that decides, outside it
                    if split_codes(r, vs) is not None and not r.dated_after(self.as_of) \
                            and (judge is None or judge(r) != NOT_MET):
                        out.append(r)
        return out

    @property
    def patient_ref(self) -> str:
        return self.record.key

