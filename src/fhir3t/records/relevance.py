"""The one keep/drop decision: does any declared read need this resource?

Sources ask it while reading (most of a real record is dropped before it is grouped), and the
record builder asks it again with every reference resolvable. A resource is kept when
- its main code (or, for an Observation, a component's code) is in a value set some rule reads;
- its type is read whatever the code;
- it is of a type whose absence decides a rule (the EHR is taken as complete for diagnoses, drugs,
  allergies) and its code cannot be read: it could be the very record a rule looks for;
- its text names a concept of a value set its code does not decide (a SNOMED CT child, an RxNorm
  product, a hospital's own lab code): a suspect, which keeps the rule unknown until someone maps it;
- it is a report or panel whose results/members may belong to no patient on their own.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from fhir3t.errors import Problems
from fhir3t.messages import Message
from fhir3t.r4facts import r4_facts
from fhir3t.records.concepts import (
    MED_TYPES,
    Mention,
    concept_texts,
    main_concept,
    mentions,
    no_concepts,
    referenced_medication,
    suspect_concepts,
)
from fhir3t.records.model import Hit
from fhir3t.records.plan import ReadPlan
from fhir3t.terminology import Code, Terminology, ValueSet
from fhir3t.textnorm import clip, fold

UNKNOWN_SYSTEM = Message("input.unknown-system", "code system {system} is unknown to fhir3t: its codes cannot match any "
                         "criterion (supply a --concept-map that translates it)")

if TYPE_CHECKING:
    from fhir3t.sources.native import NativeLines

Resolve = Callable[[str], "dict | None"]
#: told of each (type, code system, location) of a dropped resource whose codes no one can read
OnUnknown = Callable[[str, str, str], None]


class Why(Enum):
    CODE = "code"  # a code in a value set read
    ANY = "any"  # the type is read whatever its code
    UNREADABLE = "unreadable"  # no code fhir3t can read, on a type whose absence decides
    SUSPECT = "suspect"  # its text names a value set's concept its code does not decide
    CONTAINER = "container"  # a report / panel pointing at results
    ELSEWHERE = "elsewhere"  # its main code is no criterion's, but an element no rule interprets names one
    PENDING = "pending"  # cannot be judged until shared resources are known (a referenced Medication)


@dataclass(frozen=True, slots=True)
class Judged:
    why: Why
    codes: tuple[Code, ...]  # valid, normalised codes (ConceptMap translations included)
    texts: tuple[str, ...]
    invalid: int = 0  # codes in known systems that are not well formed
    suspect_of: ValueSet | None = None
    unresolved: int = 0  # AdverseEvent suspects / medicationReference that do not resolve
    #: criteria's concepts named in elements no rule interprets (records.model.Hit)
    hits: tuple[Hit, ...] = ()


#: types whose keep decision reads only their main code (the fast-path cache key)
_FAST_FIELD = {"Observation": "code", "Condition": "code", "Immunization": "vaccineCode", "Procedure": "code",
               "AllergyIntolerance": "code", "DiagnosticReport": "code",
               **{t: "medicationCodeableConcept" for t in MED_TYPES}}


#: the element holding a type's main concept, where it is not `code`
_MAIN_ELEMENTS = {"Immunization": "vaccineCode", "AdverseEvent": "suspectEntity"}

#: elements read as results of their own whatever the resource's code (a panel's components: records.build)
_PART_ELEMENTS = {"Observation": ("component",)}

#: the element whose references make a resource a container (see Why.CONTAINER)
_PARTS = {"DiagnosticReport": "result", "Observation": "hasMember"}


def _no_resolve(ref: str) -> dict | None:
    return None


class Relevance:
    """The keep/drop decision of a ReadPlan (see the module doc), with its verdict caches.

    Part of a study's definition: it holds no run's state, so one instance serves every run and
    every thread at once (its caches hold verdicts that depend only on a resource's content). What
    a run must hear about (codes of unknown systems) goes to the `on_unknown` callback of each call;
    `for_run` gives a run its own ReadFilter.
    """

    def __init__(self, plan: ReadPlan, tx: Terminology) -> None:
        self.plan = plan
        self.tx = tx
        containers = {"DiagnosticReport", "Observation"} if "Observation" in plan.types else set()
        #: what a source must not skip by type
        self.types = plan.types | containers
        self.complete = plan.complete
        #: the keep/drop verdict of resources alike in their main code (`_main_key`), leaving aside what
        #: their other elements name; and the verdict by main code and mentions, for those it drops
        self._base: dict[tuple[object, ...], bool] = {}
        self._fast: dict[tuple[object, ...], bool] = {}
        #: main key -> the code systems nobody knows that judging a dropped resource of it reported: a drop
        #: is shared by resources alike, and what it told a run is told again to every run that meets one (a
        #: Definition serves many runs: the second must hear what the first heard)
        self._told: dict[tuple[object, ...], tuple[str, ...]] = {}
        self._judged: dict[tuple[object, ...], Judged] = {}
        self._hit_cache: dict[tuple[object, ...], tuple[Hit, ...]] = {}
        self._stray_cache: dict[tuple[object, ...], tuple[Hit, ...]] = {}
        self._base_skip: dict[str, frozenset[str]] = {}
        self._key_elements: dict[str, tuple[str, ...]] = {}
        self._links = r4_facts().links

    def for_run(self, problems: Problems | None) -> RunFilter:
        """The read filter of one run: these verdicts, that run's problems and tallies."""
        return RunFilter(self, problems)

    # ---- the source-side filter ------------------------------------------------------
    def keep(self, resource: dict, where: str = "", on_unknown: OnUnknown | None = None) -> bool:
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or rtype not in self.types:
            return False
        main = _main_key(rtype, resource)
        found: tuple[Mention, ...] | None = None
        if main is not None:
            hit, found = self._cached(rtype, resource, main)
            if hit is not None:
                if not hit:
                    self._tell(rtype, resource, main, where, on_unknown)
                return hit
        told: list[str] = []

        def tell(rt: str, system: str, at: str) -> None:
            told.append(system)
            if on_unknown is not None:
                on_unknown(rt, system, at)

        out = self.judge(rtype, resource, _no_resolve, pending_ok=True, where=where, on_unknown=tell, found=found)
        if main is not None:
            if len(self._fast) > 200_000:
                self._fast.clear()
                self._base.clear()
                self._told.clear()
            self._base[main] = out is not None and out.why is not Why.ELSEWHERE
            self._fast[(main, found or self._mentions(rtype, resource))] = out is not None
            if out is None:
                self._told[main] = tuple(told)
        return out is not None

    def _tell(self, rtype: str, resource: dict, main: tuple[object, ...], where: str,
              on_unknown: OnUnknown | None) -> None:
        """Tell a run what judging a dropped resource of this main key told (judged silently once if no
        drop of it was judged yet: its verdict came from a kept one's)."""
        if on_unknown is None:
            return
        told = self._told.get(main)
        if told is None:
            heard: list[str] = []
            self._judge(rtype, resource, _no_resolve, True, "", lambda rt, system, at: heard.append(system), ())
            told = self._told[main] = tuple(heard)
        for system in told:
            on_unknown(rtype, system, where)

    def quick(self, rtype: str, resource: dict, where: str = "", on_unknown: OnUnknown | None = None) -> bool | None:
        """The verdict already given to a resource alike in everything the decision reads, or None
        (judge it), telling `on_unknown` what judging a drop told. Sources ask before they spend anything
        else on a resource."""
        main = _main_key(rtype, resource)
        if main is None:
            return None
        hit = self._cached(rtype, resource, main)[0]
        if hit is False:
            self._tell(rtype, resource, main, where, on_unknown)
        return hit

    def _cached(self, rtype: str, resource: dict, main: tuple[object, ...]) -> tuple[bool | None, tuple[Mention, ...] | None]:
        """(the verdict already given to a resource alike in everything the decision reads, or None; its
        mentions if they had to be read). A resource kept for its main code is kept whatever else it says
        (its other elements are read only to add hits), so only one the main code drops is searched for a
        criterion's concept elsewhere (`_mentions`)."""
        base = self._base.get(main)
        if base is None:
            return None, None
        if base:
            return True, None
        found = self._mentions(rtype, resource)
        if not found:
            return False, found
        return self._fast.get((main, found)), found

    def _mentions(self, rtype: str, res: dict) -> tuple[Mention, ...]:
        """The codings and concept texts of a resource outside its main code and patient link (only for a
        type some value set is read for: the others are never searched)."""
        if not self.plan.valuesets.get(rtype) and rtype not in self.plan.mention_only:
            return ()
        return tuple(mentions(res, self._skip(rtype)))

    def _skip(self, rtype: str) -> frozenset[str]:
        """Top-level elements of a type that carry no mention: its links, main code, parts, and the
        elements whose R4 type carries no concept."""
        skip = self._base_skip.get(rtype)
        if skip is None and rtype in self.plan.mention_only:  # only what R4Facts.mention_types lists is searched
            from fhir3t.r4defs import type_def

            td = type_def(rtype)
            every = frozenset(td.children("")) if td is not None else frozenset()
            skip = self._base_skip[rtype] = every - r4_facts().mention_types.get(rtype, frozenset())
        if skip is None:
            skip = self._base_skip[rtype] = frozenset({*self._links(rtype), _MAIN_ELEMENTS.get(rtype, "code"),
                                                       "medicationCodeableConcept", "medicationReference",
                                                       *_PART_ELEMENTS.get(rtype, ()), *no_concepts(rtype)})
        return skip

    def key_elements(self, rtype: str) -> tuple[str, ...]:
        """The top-level elements whose JSON text the native first pass puts in a line's key (sources.native),
        beyond the main key: every R4 element of the type that `mentions` can read (not in `_skip`), so lines
        alike in their key are alike in everything this decision reads. Not `contained`: what it names
        depends on which contained resources the results point at (`concepts._part_ids`), which the key
        does not hold; nor a report's `result` or a panel's `hasMember`, references that differ on every
        line (a nonempty list makes a container, kept whatever it points at). A line with one of these is
        never learnt as dropped (`key_verdict`)."""
        got = self._key_elements.get(rtype)
        if got is None:
            from fhir3t.r4defs import type_def

            td = type_def(rtype)
            skip = self._skip(rtype)
            names = td.children("") if td is not None and (self.plan.valuesets.get(rtype) or rtype in self.plan.mention_only) \
                else {}
            left = {"contained", _PARTS.get(rtype, "")}
            got = self._key_elements[rtype] = tuple(sorted(n for n in names if n not in skip and n not in left))
        return got

    def key_verdict(self, rtype: str, resource: dict, verdict: bool | None) -> bool | None:
        """What the native first pass may learn from a verdict for every line of this resource's key
        (sources.native: the type, the main code, the names of the top-level members, the JSON text of
        `key_elements`): a keep always (a main code that keeps keeps whatever else the record says); a drop
        when every top-level member is one the decision does not read (`_skip`) or one whose text is in the
        key, so every line of that key names the same concepts elsewhere (records.model.Hit: what else a
        record names may keep a criterion unknown); else None (not learnt: `contained`, a report's results,
        a panel's members, a member R4 does not define for the type)."""
        if verdict is not False or not (self.plan.valuesets.get(rtype) or rtype in self.plan.mention_only):
            return verdict
        skip = self._skip(rtype)
        keyed = self.key_elements(rtype)
        return False if all(k in skip or k in keyed or k == "meta" for k in resource) else None

    def silent_verdict(self, resource: dict) -> bool | None:
        """Whether a resource is kept, when that follows from its fast key alone and judging it says
        nothing to anyone (no code system nobody knows); else None. Caches nothing: the native first
        pass asks it about lines Python may read later, which must then be judged as ever."""
        rtype = resource.get("resourceType")
        if not isinstance(rtype, str) or rtype not in self.types or _main_key(rtype, resource) is None:
            return None
        told: list[tuple[str, str, str]] = []
        out = self._judge(rtype, resource, _no_resolve, True, "", lambda *a: told.append(a), self._mentions(rtype, resource))
        return None if told else self.key_verdict(rtype, resource, out is not None)

    # ---- the decision ----------------------------------------------------------------
    def judge(self, rtype: str, res: dict, resolve: Resolve, *, pending_ok: bool = False, where: str = "",
              on_unknown: OnUnknown | None = None, found: tuple[Mention, ...] | None = None) -> Judged | None:
        """Why the resource is kept, or None when no rule can need it.

        A kept verdict is shared by resources alike in what it reads (the fast key): the record
        builder asks again for every kept lab, and most labs repeat. Drops are not shared, as each
        counts towards the unknown-system tally."""
        if found is None:
            found = self._mentions(rtype, res)
        main = _main_key(rtype, res) if rtype in _FAST_FIELD or rtype in self.plan.mention_only else None
        key = None if main is None else main + (found,) if found else main
        if key is not None:
            hit = self._judged.get(key)
            if hit is not None:
                return hit
        out = self._judge(rtype, res, resolve, pending_ok, where, on_unknown, found)
        if key is not None and out is not None:
            if len(self._judged) > 100_000:
                self._judged.clear()
            self._judged[key] = out
        return out

    def _judge(self, rtype: str, res: dict, resolve: Resolve, pending_ok: bool, where: str,
               on_unknown: OnUnknown | None, found: tuple[Mention, ...]) -> Judged | None:
        tx = self.tx
        if rtype not in self.types:
            return None
        unresolved = 0
        medication: dict | None = None  # a referenced Medication: searched for concepts beside its code
        if rtype == "AdverseEvent":
            concepts, unresolved = suspect_concepts(res, resolve)
            if unresolved and pending_ok:
                return Judged(Why.PENDING, (), ())
        else:
            if pending_ok and rtype in MED_TYPES and "medicationReference" in res \
                    and "medicationCodeableConcept" not in res:
                return Judged(Why.PENDING, (), ())
            concept = main_concept(rtype, res, resolve)
            concepts = [concept] if concept is not None else []
            if rtype in MED_TYPES and "medicationReference" in res:
                medication = referenced_medication(res, resolve)
                if concept is None and medication is None:
                    unresolved = 1
        raw_codes = [c for cc in concepts for c in tx.codes(cc)]
        codes = tuple(c for c in raw_codes if tx.systems.valid(*c))
        invalid = len(raw_codes) - len(codes)
        texts = tuple(t for cc in concepts for t in concept_texts(cc))
        hits = self._hits(rtype, codes, found, medication)
        out = self._verdict(rtype, res, codes, texts, invalid, unresolved)
        if out is None and not hits and rtype in self.plan.types:
            stray = tuple(h for cc in concepts for h in self.stray(rtype, cc, _MAIN_ELEMENTS.get(rtype, "code")))
            if stray:  # a code some value set lists, under no system fhir3t knows: it may be that very test
                return Judged(Why.SUSPECT, codes, texts, invalid, stray[0].vs, unresolved, stray)
        if out is None and hits:  # read only because an element no rule interprets names a criterion's concept
            return Judged(Why.ELSEWHERE, codes, texts, invalid, None, unresolved, hits)
        if out is None:
            if on_unknown is not None:
                for cc in concepts:
                    for system in tx.unknown_systems(cc):
                        on_unknown(rtype, system, where)
            return None
        return out if not hits else Judged(out.why, out.codes, out.texts, out.invalid, out.suspect_of, out.unresolved, hits)

    def _verdict(self, rtype: str, res: dict, codes: tuple[Code, ...], texts: tuple[str, ...], invalid: int,
                 unresolved: int) -> Judged | None:
        plan, tx = self.plan, self.tx
        if rtype in plan.types:
            if rtype in plan.any_code:
                return Judged(Why.ANY, codes, texts, invalid, None, unresolved)
            if plan.wants_code(rtype, codes):
                return Judged(Why.CODE, codes, texts, invalid, None, unresolved)
        comps = _components(res) if rtype == "Observation" else ()
        if comps and "Observation" in plan.types:
            for comp in comps:
                ccodes = tuple(c for c in tx.codes(comp.get("code")) if tx.systems.valid(*c))
                if plan.wants_code("Observation", ccodes) or self._suspect("Observation", ccodes,
                                                                         concept_texts(comp.get("code"))) \
                        or self.stray("Observation", comp.get("code"), "component.code"):
                    return Judged(Why.CONTAINER, codes, texts, invalid, None, unresolved)
        if rtype in self.complete and (unresolved or not tx.systems.readable_for(rtype, codes)):
            return Judged(Why.UNREADABLE, codes, texts, invalid, None, unresolved)
        vs = self._suspect(rtype, codes, texts) if rtype in plan.types else None
        if vs is not None:
            return Judged(Why.SUSPECT, codes, texts, invalid, vs, unresolved)
        if (rtype == "DiagnosticReport" and isinstance(res.get("result"), list) and res["result"]) or \
                (rtype == "Observation" and isinstance(res.get("hasMember"), list) and res["hasMember"]):
            return Judged(Why.CONTAINER, codes, texts, invalid, None, unresolved)
        return None

    def stray(self, rtype: str, concept: object, element: str) -> tuple[Hit, ...]:
        """Hits for the value sets of a type that list a code of `concept` written under no code system, or one
        fhir3t does not know (Terminology.stray_codings): the code is read under each system the set uses, and
        must be well formed there. Such a record names the set's concept but cannot be read as it (which system
        the code is in is not fhir3t's to guess), so it is a suspect of that set, never another record."""
        sets = self.plan.valuesets.get(rtype)
        if not sets:
            return ()
        out: list[Hit] = []
        for system, code in self.tx.stray_codings(concept):
            key = (rtype, element, system, code)
            found = self._stray_cache.get(key)
            if found is None:
                if len(self._stray_cache) > 50_000:
                    self._stray_cache.clear()
                found = self._stray_cache[key] = self._stray_match(rtype, sets, system, code, element)
            out.extend(h for h in found if all(h.vs is not o.vs for o in out))
        return tuple(out)

    def _stray_match(self, rtype: str, sets: tuple[ValueSet, ...], system: str | None, code: str,
                     element: str) -> tuple[Hit, ...]:
        systems = self.tx.systems
        shown = f"'{clip(code.strip(), 40)}'" + (f" ({clip(system, 60)})" if system is not None else "")
        out: list[Hit] = []
        for vs in sets:
            for s in sorted(vs.systems_used):
                c = (s, systems.code(s, code))
                if systems.valid(*c) and c in vs:
                    out.append(Hit(vs, f"{rtype}.{element}", shown, stray=True))
                    break
        return tuple(out)

    # ---- concepts in elements no rule interprets ---------------------------------------------
    def _hits(self, rtype: str, codes: tuple[Code, ...], found: tuple[Mention, ...],
              medication: dict | None) -> tuple[Hit, ...]:
        """Criteria's concepts named in elements of the resource no rule interprets (see records.model.Hit).

        Every coding and concept text of the resource (`found`, and its referenced Medication's) is checked
        against the value sets read for its type and their names. The main code is the rules' own; when it
        is in a value set, what the rules declare they read is theirs too and is left out. A value set the
        main code is already in needs no hit, nor one a closed-system main code (ICD-10, ATC) decides by
        itself when only a name matches."""
        sets = self.plan.valuesets.get(rtype, ())
        if not sets:  # a type read only for what it names (ReadPlan.mention_only): other types' concepts
            return self._across(rtype, found) if rtype in self.plan.mention_only and found else ()
        direct = tuple(vs for vs in sets if any(c in vs for c in codes))
        every = found
        if direct and found:
            read = self.plan.elements.get(rtype, frozenset())
            found = tuple(m for m in found if _top(m[0]) not in read)
        if medication is not None:
            found = found + tuple(mentions(medication, frozenset({"code"}), "Medication."))
        if not found and not every:
            return ()
        key = (rtype, tuple(id(v) for v in direct), codes, found, every)
        hit = self._hit_cache.get(key)
        if hit is None:
            if len(self._hit_cache) > 50_000:
                self._hit_cache.clear()
            hit = self._hit_cache[key] = (self._match(rtype, sets, direct, codes, found) if found else ()) \
                + self._across(rtype, every)
        return hit

    def _across(self, rtype: str, found: tuple[Mention, ...]) -> tuple[Hit, ...]:
        """Concepts of another type's criteria named in a record (what its own rules read included, as they read it
        for something else): a resource of that type contained in it, by its codes and names (a Condition contained
        in a report); and anywhere, a code in a value set read for a type whose absence decides (a pathology report
        concluding ICD-10 C34.1, an Observation valued with an HIV diagnosis code). Value sets the record's own type
        is read for too are its own rules' business (a drug record's contained Medication)."""
        plan, tx = self.plan, self.tx
        own = set(plan.valuesets.get(rtype, ()))
        out: dict[tuple[int, str], Hit] = {}
        targets_of: dict[str, list[str]] = {}
        for path, system, code, text in found:
            element = f"{rtype}.{path}"
            inner = path.split(".", 2)[1] if path.startswith("contained.") and path.count(".") >= 2 else ""
            targets = targets_of.get(inner)
            if targets is None:
                targets = targets_of[inner] = sorted(t for t in ({inner} & plan.types if inner else set()) | plan.complete
                                                     if t != rtype)
            codes = [c for c in tx.codes({"coding": [{"system": system, "code": code}]}) if tx.systems.valid(*c)] \
                if system is not None and code is not None else []
            if not codes and not (inner and text):
                continue
            for t in targets:
                for vs in plan.valuesets.get(t, ()):
                    if vs in own or (id(vs), element) in out:
                        continue
                    if codes:
                        c = next((c for c in codes if c in vs), None)
                        if c is not None:
                            out[(id(vs), element)] = Hit(vs, element, f"{tx.systems.name(c[0])} {c[1]}"
                                                         + (f" '{clip(text, 40)}'" if text else ""), of_type=t)
                            continue
                    if t == inner and text and vs.names:
                        name = vs.named_in([fold(text)])
                        if name is not None:
                            out[(id(vs), element)] = Hit(vs, element, f"'{name}'", of_type=t)
        return tuple(out.values())

    def _match(self, rtype: str, sets: tuple[ValueSet, ...], direct: tuple[ValueSet, ...], codes: tuple[Code, ...],
               found: tuple[Mention, ...]) -> tuple[Hit, ...]:
        tx = self.tx
        others = [vs for vs in sets if vs not in direct]
        if not others:
            return ()
        names = self.plan.names(rtype)
        out: dict[tuple[int, str], Hit] = {}
        for path, system, code, text in found:
            element = f"{rtype}.{path}"
            if code is not None:  # a code of a set written under no system fhir3t knows (see `stray`)
                for written, stray in tx.stray_codings({"code": code} if system is None else {"system": system, "code": code}):
                    for h in self._stray_match(rtype, tuple(others), written, stray, path):
                        out.setdefault((id(h.vs), element), h)
            if system is not None and code is not None:
                for c in tx.codes({"coding": [{"system": system, "code": code}]}):
                    if not tx.systems.valid(*c):
                        continue
                    for vs in others:
                        if c in vs and (id(vs), element) not in out:
                            out[(id(vs), element)] = Hit(vs, element, f"{tx.systems.name(c[0])} {c[1]}"
                                                         + (f" '{clip(text, 40)}'" if text else ""))
            if text and names:
                for vs, name in names.which_names([fold(text)]):
                    if vs in direct or (id(vs), element) in out:
                        continue
                    if any(vs.decides(c) for c in codes):
                        continue  # an ICD-10 / ATC main code decides what the record is
                    if vs in others:
                        out[(id(vs), element)] = Hit(vs, element, f"'{name}'")
        return tuple(out.values())

    def _suspect(self, rtype: str, codes: tuple[Code, ...], texts: tuple[str, ...]) -> ValueSet | None:
        """A value set of this type whose names the texts use, which no closed-system code decides."""
        found = self.suspects(rtype, codes, texts)
        return found[0] if found else None

    def suspects(self, rtype: str, codes: tuple[Code, ...], texts: tuple[str, ...]) -> list[ValueSet]:
        """Every value set of this type whose names the (folded) texts use, or whose codes lie under a class
        the record is coded by (ATC L04AA, ICD-10 B18: what kind of thing, not which), and which no
        closed-system code (ICD-10, ATC) decides, in plan order."""
        above = _above(self.plan.valuesets.get(rtype, ()), codes)
        if not texts:
            return above
        names = self.plan.names(rtype)
        if not names:
            return above
        # decides: a closed-system code (ICD-10, ATC) settles membership by itself, unless it is a class
        # above the set's codes (ATC L04AX), which names no member
        named = [vs for vs in names.which(texts) if not any(vs.decides(c) for c in codes)]
        return named + [vs for vs in above if vs not in named]


def _above(sets: tuple[ValueSet, ...], codes: tuple[Code, ...]) -> list[ValueSet]:
    """The sets some code is a class above (ValueSet.generalizes), where no code is in the set or decides it."""
    if not codes:
        return []
    return [vs for vs in sets if any(vs.generalizes(c) for c in codes)
            and not any(c in vs or vs.decides(c) for c in codes)]


def _main_key(rtype: str, res: dict) -> tuple[object, ...] | None:
    """The type, the main code's codings (system, code, display) and text, and for a report or a panel
    whether it points at results (None when the main code has a shape the key cannot hold)."""
    field = _FAST_FIELD.get(rtype)
    if field is None and rtype in r4_facts().mention_types:  # read only for what it names: no main code of its own
        return (rtype, None, False)
    if field is None or "component" in res or "medicationReference" in res:
        return None
    concept = res.get(field)
    if type(concept) is not dict:
        return None
    codings = concept.get("coding", ())
    if type(codings) is not list or len(codings) > 4:
        return None
    text = concept.get("text")
    if not (text is None or type(text) is str):
        return None
    key: list[object] = [rtype, text]
    for c in codings:
        if type(c) is not dict:
            return None
        system, code, display = c.get("system"), c.get("code"), c.get("display")
        if not ((system is None or type(system) is str) and (code is None or type(code) is str)
                and (display is None or type(display) is str)):
            return None
        key += (system, code, display)
    parts = res.get(_PARTS.get(rtype, ""))
    key.append(type(parts) is list and bool(parts))  # what makes a report or panel a container
    return tuple(key)


def _top(path: str) -> str:
    """The top-level element of a mention's path, as the plan names it (`valueCodeableConcept` -> `value[x]`)."""
    top = path.split(".", 1)[0]
    m = _CHOICE.match(top)
    return f"{m.group(1)}[x]" if m else top


#: an R4 choice element: its name and the type it takes (`valueCodeableConcept`, `onsetAge`, ...)
_CHOICE = re.compile(r"^([a-z][A-Za-z]*?)(?:Quantity|CodeableConcept|String|Boolean|Integer|Range|Ratio|SampledData|"
                     r"Time|DateTime|Period|Age|Reference|Coding|Date|Instant|Decimal|Uri|Url|Canonical|Attachment)$")


def _components(res: dict) -> list[dict]:
    comps = res.get("component")
    return [c for c in comps if isinstance(c, dict)] if isinstance(comps, list) else []


#: types a line is always decoded for: the Patient, and what carries other resources (a Bundle, an operation's Parameters)
DOCUMENT_TYPES = frozenset({"Patient", "Bundle", "Parameters"})
_RTYPE = re.compile(rb'^\s*\{\s*"resourceType"\s*:\s*"([A-Za-z]+)"')


class RunFilter:
    """The read filter of one run (implements sources.base.ReadFilter): the definition's Relevance,
    with this run's problems and its tally of codes in systems nobody knows."""

    def __init__(self, relevance: Relevance, problems: Problems | None) -> None:
        self.relevance = relevance
        self.problems = problems
        self.plan = relevance.plan
        self.tx = relevance.tx
        self.types = relevance.types
        self.complete = relevance.complete
        #: (type, system) of codings in systems nobody knows, among dropped resources
        self.unknown_systems: Counter[tuple[str, str]] = Counter()

    def _unknown(self, rtype: str, system: str, where: str) -> None:
        self.unknown_systems[(rtype, system)] += 1
        self.report_unknown_system(system, where)

    def report_unknown_system(self, system: str, where: str) -> None:
        """Say once per code system that its codes cannot match (a ConceptMap would fix it)."""
        if self.problems is not None:
            self.problems.once(f"system:{system}", where or "input", UNKNOWN_SYSTEM(system=system))

    def __call__(self, resource: dict, where: str = "") -> bool:
        return self.relevance.keep(resource, where, self._unknown)

    def quick(self, rtype: str, resource: dict, where: str = "", *, tell: bool = True) -> bool | None:
        """The shared verdict (see Relevance.quick); with `tell`, this run hears what judging it told."""
        return self.relevance.quick(rtype, resource, where, self._unknown if tell else None)

    def key_verdict(self, rtype: str, resource: dict, verdict: bool | None) -> bool | None:
        return self.relevance.key_verdict(rtype, resource, verdict)

    def judge(self, rtype: str, res: dict, resolve: Resolve, *, pending_ok: bool = False, where: str = "") -> Judged | None:
        return self.relevance.judge(rtype, res, resolve, pending_ok=pending_ok, where=where, on_unknown=self._unknown)

    def line_filter(self, shared_types: frozenset[str], known_types: frozenset[str]) -> LineFilter:
        """What a source may use to skip a line before decoding it (see LineFilter)."""
        return LineFilter(self.relevance, shared_types, known_types)

    def native_lines(self, shared_types: frozenset[str], known_types: frozenset[str]) -> NativeLines | None:
        """The native first pass for this filter (sources.native), or None without the `native` extra.

        It drops by type what LineFilter drops, and keys the types of the fast key (`_main_key`) by it and
        by their `key_elements`; types read whatever their code are kept without a key."""
        from fhir3t.sources import native

        if not native.available():
            return None
        keep = self.types | shared_types | DOCUMENT_TYPES
        keyed = {t: self.relevance.key_elements(t) for t in (*_FAST_FIELD, *sorted(self.plan.mention_only))
                 if t in self.types and t not in self.plan.any_code}
        return native.NativeLines(known_types - keep, keyed, sample_verdict=self.relevance.silent_verdict)

    def suspect(self, rtype: str, codes: tuple[Code, ...], texts: tuple[str, ...]) -> ValueSet | None:
        """A value set of this type whose names the texts use, which no closed-system code decides."""
        return self.relevance._suspect(rtype, codes, texts)

    def stray(self, rtype: str, concept: object, element: str) -> tuple[Hit, ...]:
        """Hits for the value sets listing a code of `concept` written under no system fhir3t knows (Relevance.stray)."""
        return self.relevance.stray(rtype, concept, element)


class LineFilter:
    """Skips NDJSON lines of resource types no rule reads, on their raw bytes, before decoding (not one that
    contains resources: what it contains may be read, see sources.grouping._contained).

    Only the type at the very start of the line is looked at (`{"resourceType":"Encounter",...`, as
    Bulk Data exports write it); a line that starts otherwise, or with a type that is not R4's, is
    decoded and judged as usual. Judging Observations by their codes on the raw bytes was measured
    slower than decoding them (orjson) and asking `Relevance`, whose verdict cache hits most labs.
    """

    def __init__(self, rel: Relevance, shared_types: frozenset[str], known_types: frozenset[str]) -> None:
        self.keep_types = {t.encode() for t in rel.types | shared_types | DOCUMENT_TYPES}
        self.known_types = {t.encode() for t in known_types}
        self.skipped = 0

    def __call__(self, line: bytes) -> bool:
        """False: the line cannot be needed (skip it); True: decode it."""
        m = _RTYPE.match(line)
        if m is None:
            return True
        rtype = m.group(1)
        if rtype in self.keep_types or rtype not in self.known_types or b'"contained"' in line or (
                rtype == b"Binary" and b"fhir" in line):
            return True  # (what a record of any type contains, or a Binary carries, may be read: sources.grouping)
        self.skipped += 1
        return False
