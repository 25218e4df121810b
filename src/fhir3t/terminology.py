"""Value sets and concept maps, loaded from FHIR ValueSet / ConceptMap JSON.

Codes live in `profiles/` as data; nothing here names a clinical code. Matching works on
normalised (system, code) pairs: aliases folded, ICD-10 dotted and upper-cased, CVX
zero-padded. For systems whose hierarchy is in the code (ICD-10, ATC) a ValueSet
`is-a` filter matches by prefix; for others `is-a` matches the code itself only (no
terminology server is consulted: that is a known limit for SNOMED CT subsumption).
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from fhir3t.errors import ConfigError
from fhir3t.messages.core import Text, table
from fhir3t.profiles import Profiles
from fhir3t.smallfiles import DATA_LIMIT, read_small
from fhir3t.textnorm import fold, name_pattern

Code = tuple[str, str]  # (system, code), normalised

#: Extension on a ValueSet (valueString, repeatable) or a concept's designations: names (English,
#: Chinese, brands) a record's text may use for the set's concepts when its code is not in the set.
EXT_MATCH_NAME = "https://fhir3t.github.io/fhir/StructureDefinition/match-name"


def _loinc_ok(code: str) -> bool:
    """LOINC: digits, a dash and a mod-10 check digit (the Luhn-like algorithm LOINC publishes)."""
    body, dash, check = code.partition("-")
    if not dash or not body.isdigit() or len(check) != 1 or not check.isdigit() or len(body) > 7:
        return False
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d // 10 + d % 10
        total += d
    return (10 - total % 10) % 10 == int(check)


_VERHOEFF_D = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
               [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
               [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
               [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
_VERHOEFF_P = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
               [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
               [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]


def _snomed_ok(code: str) -> bool:
    """SNOMED CT identifiers: 6-18 digits, no leading zero, a Verhoeff check digit."""
    if not (6 <= len(code) <= 18 and code.isdigit() and code[0] != "0"):
        return False
    c = 0
    for i, ch in enumerate(reversed(code)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(ch)]]
    return c == 0


_CHECKS = {"loinc": _loinc_ok, "snomed": _snomed_ok}

#: R4 ConceptMap equivalences (and the R5 relationship) that let a source code stand for its
#: target. Only true equivalence: a 'wider'/'subsumes'/'relatedto' mapping could slip a local code
#: past a value set's exclusions (a local "juvenile X" mapped wider to "X").
USABLE_EQUIVALENCE = frozenset({"equivalent", "equal"})
#: what is said of terminology data (code systems, value sets, ConceptMaps) that does not load (the CLI's error line)
E = table("terminology", {
    "bad-pattern": "code-systems.json: {system}: bad syntax pattern ({error})",
    "not-a-valueset": "{where}: not a ValueSet with an id",
    "no-system": "{where}: compose.{part} without a system (valueSet imports are not supported)",
    "filter-op": "{where}: filter op {op} is not supported",
    "bad-regex": "{where}: bad regex {value}: {error}",
    "not-a-conceptmap": "{where}: not a ConceptMap (resourceType {kind})",
    "conceptmap": "{where}: ConceptMap.{at}: {what}",
    "list": "must be a list",
    "object": "must be an object",
    "string": "must be a string",
    "code": "must be a code (string)",
    "systems": "needs source and target systems (strings)",
    "no-equivalence": "a target without an equivalence (an unreviewed draft?): set it (\"equivalent\" to use the "
                      "mapping) or delete the target",
    "unknown-valueset": "unknown value set {id} (no profiles/valuesets/{file}.json)",
    "the-file": "the file",
    "not-found": "{path}: file not found",
    "unreadable": "{path}: cannot be read ({error})",
    "not-json": "{path}: not valid JSON (at line {line}, column {column})",
    "not-object": "{path}: expected a JSON object",
})


@dataclass
class CodeSystems:
    canonical: dict[str, str]
    normalizer: dict[str, str]
    prefix_hierarchy: set[str]
    names: dict[str, str]
    known_prefixes: tuple[str, ...]
    readable: dict[str, frozenset[str]] = field(default_factory=dict)
    #: system -> check of a normalised code's form (check digit or pattern)
    syntax: dict[str, object] = field(default_factory=dict)
    #: systems whose value sets decide by code alone (the hierarchy is in the code)
    closed: frozenset[str] = frozenset()
    #: systems of which a record carries one code for what it is (LOINC: one test): two codes of it, one in a value
    #: set and one outside, disagree
    one_per_record: frozenset[str] = frozenset()
    _valid: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path | None = None) -> CodeSystems:
        data = _load_json(path or Profiles.at().path("terminology", "code-systems.json"))
        canonical: dict[str, str] = {}
        normalizer: dict[str, str] = {}
        prefix: set[str] = set()
        names: dict[str, str] = {}
        syntax: dict[str, object] = {}
        closed: set[str] = set()
        single: set[str] = set()
        for uri, spec in data["systems"].items():
            rule = spec.get("syntax")
            if isinstance(rule, str):
                try:
                    syntax[uri] = _CHECKS.get(rule) or re.compile(rule)
                except re.error as exc:
                    raise ConfigError(E["bad-pattern"](system=uri, error=str(exc))) from None
            if spec.get("closed"):
                closed.add(uri)
            if spec.get("one_per_record"):
                single.add(uri)
            canonical[uri] = uri
            for alias in spec.get("aliases", []):
                canonical[alias] = uri
            if spec.get("normalize"):
                normalizer[uri] = spec["normalize"]
            if spec.get("hierarchy") == "prefix":
                prefix.add(uri)
            names[uri] = spec.get("name", uri)
        readable = {t: frozenset(canonical.get(s, s) for s in systems) for t, systems in data.get("readable", {}).items()}
        return cls(canonical, normalizer, prefix, names, tuple(data.get("known_prefixes", [])), readable,
                   syntax, frozenset(closed), frozenset(single))

    def valid(self, system: str, code: str) -> bool:
        """Is a normalised code well formed for its system? (True for systems with no rule.)"""
        rule = self.syntax.get(system)
        if rule is None:
            return True
        key = (system, code)
        hit = self._valid.get(key)
        if hit is None:
            if len(self._valid) > 100_000:
                self._valid.clear()
            hit = self._valid[key] = rule.fullmatch(code) is not None if isinstance(rule, re.Pattern) \
                else bool(rule(code))  # type: ignore[operator]
        return hit

    def system(self, uri: str) -> str:
        return self.canonical.get(uri) or self.canonical.get(uri.rstrip("/")) or uri

    def code(self, system: str, code: str) -> str:
        code = code.strip()
        how = self.normalizer.get(system)
        if how == "icd10":
            code = code.upper()
            if "." not in code and len(code) > 3:
                code = f"{code[:3]}.{code[3:]}"
        elif how == "upper":
            code = code.upper()
        elif how == "cvx" and code.isdigit():
            code = code.zfill(2)
        return code

    def readable_for(self, rtype: str, codes: Iterable[Code]) -> bool:
        """Does a resource of this type carry a code in a system its rules can read?"""
        systems = self.readable.get(rtype)
        if systems is None:
            return any(self.known(s) for s, _ in codes)
        return any(s in systems for s, _ in codes)

    def known(self, system: str) -> bool:
        return system in self.names or system.startswith(self.known_prefixes)

    def name(self, system: str) -> str:
        return self.names.get(system, system)


@dataclass(eq=False)  # identity: rules and read declarations key on the value set object
class ValueSet:
    """A compiled FHIR ValueSet: exact codes, filters, exclusions, per-concept properties."""

    id: str
    url: str
    title: str
    systems: CodeSystems
    include_codes: dict[str, set[str]] = field(default_factory=dict)
    include_filters: list[tuple[str, str, str, re.Pattern[str] | None]] = field(default_factory=list)
    exclude_codes: dict[str, set[str]] = field(default_factory=dict)
    exclude_filters: list[tuple[str, str, str, re.Pattern[str] | None]] = field(default_factory=list)
    properties: dict[Code, dict[str, object]] = field(default_factory=dict)
    order: list[Code] = field(default_factory=list)
    #: names a record's text may use for this set's concepts (see EXT_MATCH_NAME)
    names: tuple[str, ...] = ()
    #: the set's title in every language it carries (the FHIR translation extension on `title`)
    term: Text | None = field(default=None, repr=False)
    #: each listed concept's display, with its designations by language (what a reason calls a test or drug)
    displays: dict[Code, Text] = field(default_factory=dict, repr=False)
    #: for mapping suggestions (fhir3t codes --conceptmap-draft): each listed concept's display and designations,
    #: the set's own names (match-names, title), and the codes its is-a / = filters are rooted at, as written
    concept_names: dict[Code, tuple[str, ...]] = field(default_factory=dict, repr=False)
    set_names: tuple[str, ...] = ()
    roots: list[Code] = field(default_factory=list, repr=False)
    _names_rx: re.Pattern[str] | None = field(default=None, repr=False)
    _cache: dict[Code, bool] = field(default_factory=dict, repr=False)
    _exact: tuple[Code, ...] | None = field(default=None, repr=False)

    def __contains__(self, code: Code) -> bool:
        hit = self._cache.get(code)
        if hit is None:
            hit = self._compute(code)
            self._cache[code] = hit
        return hit

    def _compute(self, code: Code) -> bool:
        system, value = code
        if not (value in self.include_codes.get(system, ()) or
                any(self._filter_hit(f, system, value) for f in self.include_filters)):
            return False
        if value in self.exclude_codes.get(system, ()):
            return False
        return not any(self._filter_hit(f, system, value) for f in self.exclude_filters)

    def _filter_hit(self, f: tuple[str, str, str, re.Pattern[str] | None], system: str, code: str) -> bool:
        fsys, op, value, rx = f
        if fsys != system:
            return False
        if op == "regex":
            assert rx is not None
            return rx.fullmatch(code) is not None
        if op in ("is-a", "descendent-of"):
            if system in self.systems.prefix_hierarchy:
                hit = code.startswith(value)
                return hit and (op == "is-a" or code != value)
            return op == "is-a" and code == value
        if op == "in":
            return code in {v.strip() for v in value.split(",")}
        if op == "=":
            return code == value
        return False

    def exact_codes(self) -> Iterator[Code]:
        """Codes listed one by one, in file order (for indexing and 'order LOINC x' hints)."""
        yield from self.order

    def first_code(self, system: str | None = None) -> Code | None:
        for c in self.exact_codes():
            if system is None or c[0] == system:
                return c
        return None

    def exact_only(self) -> tuple[Code, ...] | None:
        """All member codes when the set is a plain list (no filters, no exclusions), else None."""
        if self.include_filters or self.exclude_codes or self.exclude_filters:
            return None
        if self._exact is None:
            self._exact = tuple(self.exact_codes())
        return self._exact

    def considers(self, code: Code) -> bool:
        """Does this set speak about `code` (include it, or exclude it, or hold codes of its category)?

        For systems whose hierarchy is in the code (ICD-10, ATC), a code the set's includes reach,
        one its exclusions name, or one of the same category (first three characters) as a listed code
        or is-a root is decided by the set: C73 thyroid cancer is excluded on purpose, M33.0 juvenile DM
        is left out on purpose. A code outside all that (X50.9 for a text saying 'breast cancer') is not
        the set's business, and the record's text may still say it is a suspect.
        """
        system, value = code
        if value in self.include_codes.get(system, ()) or value in self.exclude_codes.get(system, ()):
            return True
        if any(self._filter_hit(f, system, value) for f in (*self.include_filters, *self.exclude_filters)):
            return True
        if system not in self.systems.prefix_hierarchy:
            return False
        category = value[:3]
        roots = [c for c in self.include_codes.get(system, ())] + \
                [f[2] for f in self.include_filters if f[0] == system and f[1] != "regex"]
        if any(r[:3] == category for r in roots):
            return True
        for fsys, op, pattern, _rx in self.include_filters:  # a regex range: its leading letter
            if fsys == system and op == "regex" and pattern[:1].isalpha() and value[:1] == pattern[:1]:
                return True
        return False

    def generalizes(self, code: Code) -> bool:
        """Is `code` a class above some of this set's codes in a system whose hierarchy is in the code (ATC
        a 5-character class above the 7-character substances under it)? Such a code says what kind of thing a
        record is, not which: it never decides membership by itself."""
        system, value = code
        if system not in self.systems.prefix_hierarchy or not value:
            return False
        roots = [*self.include_codes.get(system, ()), *(f[2] for f in self.include_filters if f[0] == system and f[1] != "regex")]
        return any(len(r) > len(value) and r.startswith(value) for r in roots)

    def decides(self, code: Code) -> bool:
        """Does a code of a closed system (ICD-10, ATC) settle by itself whether a record is in this set,
        whatever its text says (see `considers`; a class code above the set's codes does not)?"""
        return code[0] in self.systems.closed and self.considers(code) and not self.generalizes(code)

    def rules_out(self, code: Code, inside: Code) -> bool:
        """Does `code`, beside `inside` (a code of this set) on one record, say the record is something else: a code
        a closed system's set decides against, or another code of a system a record carries one code of (LOINC)?"""
        if code in self:
            return False
        return self.decides(code) or (code[0] == inside[0] and code[0] in self.systems.one_per_record)

    @property
    def systems_used(self) -> frozenset[str]:
        return frozenset(self.include_codes) | {f[0] for f in self.include_filters}

    def named_in(self, folded_texts: Iterable[str]) -> str | None:
        """The first of this set's names found in already-folded texts, or None."""
        if self._names_rx is None:
            if not self.names:
                return None
            self._names_rx = name_pattern(self.names)
        rx = self._names_rx
        assert rx is not None
        for t in folded_texts:
            m = rx.search(t)
            if m:
                return m.group(0)
        return None

    def prop(self, code: Code, name: str) -> object | None:
        return self.properties.get(code, {}).get(name)

    @property
    def name_text(self) -> Text:
        """The set's title as a name in every language it has."""
        return self.term or Text.of(self.title)

    @classmethod
    def from_resource(cls, res: dict, systems: CodeSystems, where: str) -> ValueSet:
        if res.get("resourceType") != "ValueSet" or not res.get("id"):
            raise ConfigError(E["not-a-valueset"](where=where))
        vs = cls(res["id"], res.get("url", ""), res.get("title") or res.get("name") or res["id"], systems)
        vs.term = Text.of(vs.title, translations_of(res.get("_title")))
        names: list[str] = [e["valueString"] for e in res.get("extension", [])
                            if isinstance(e, dict) and e.get("url") == EXT_MATCH_NAME and isinstance(e.get("valueString"), str)]
        compose = res.get("compose") or {}
        for part, codes, filters in (("include", vs.include_codes, vs.include_filters),
                                      ("exclude", vs.exclude_codes, vs.exclude_filters)):
            for inc in compose.get(part, []):
                if "system" not in inc:
                    raise ConfigError(E["no-system"](where=where, part=part))
                system = systems.system(inc["system"])
                for concept in inc.get("concept", []):
                    code = systems.code(system, concept["code"])
                    codes.setdefault(system, set()).add(code)
                    if part == "include":
                        vs.order.append((system, code))
                    props = _concept_properties(concept)
                    if props and part == "include":
                        vs.properties[(system, code)] = props
                    if part == "include":
                        names.extend(_concept_names(concept))
                        if isinstance(concept.get("display"), str):
                            vs.displays[(system, code)] = Text.of(concept["display"], _designations(concept))
                        vs.concept_names[(system, code)] = tuple(dict.fromkeys(
                            n for n in [concept.get("display"), *_designation_values(concept, displays=False)]
                            if isinstance(n, str) and n.strip()))
                for flt in inc.get("filter", []):
                    op, value = flt.get("op"), flt.get("value", "")
                    if op not in ("is-a", "descendent-of", "regex", "in", "="):
                        raise ConfigError(E["filter-op"](where=where, op=repr(op)))
                    rx = None
                    if op == "regex":
                        try:
                            rx = re.compile(value)
                        except re.error as exc:
                            raise ConfigError(E["bad-regex"](where=where, value=repr(value), error=str(exc))) from None
                    else:
                        value = systems.code(system, value)
                        if part == "include" and op in ("is-a", "=") and (system, value) not in vs.roots:
                            vs.roots.append((system, value))
                    filters.append((system, op, value, rx))
        vs.names = tuple(dict.fromkeys(fold(n) for n in names if n.strip()))
        vs.set_names = tuple(dict.fromkeys(n for n in [*(e["valueString"] for e in res.get("extension", [])
                                                          if isinstance(e, dict) and e.get("url") == EXT_MATCH_NAME
                                                          and isinstance(e.get("valueString"), str)),
                                                        res.get("title")] if isinstance(n, str) and n.strip()))
        return vs


#: the standard extension that translates a string element (on `_title`, `_display`, ...)
EXT_TRANSLATION = "http://hl7.org/fhir/StructureDefinition/translation"


def translations_of(element: object) -> dict[str, str]:
    """{language: text} from the translation extensions of a primitive's `_element`."""
    out: dict[str, str] = {}
    exts = element.get("extension") if isinstance(element, dict) else None
    for ext in exts if isinstance(exts, list) else ():
        if not (isinstance(ext, dict) and ext.get("url") == EXT_TRANSLATION):
            continue
        parts = {e.get("url"): e for e in ext.get("extension") or () if isinstance(e, dict)}
        lang = (parts.get("lang") or {}).get("valueCode")
        content = (parts.get("content") or {}).get("valueString")
        if isinstance(lang, str) and isinstance(content, str) and content.strip():
            out[lang] = content.strip()
    return out


#: the designation use of a concept's name as a language shows it (HL7 designation-usage `display`): what a reason
#: calls the concept in that language; not a name fhir3t looks for in a record's text (synonyms are)
USE_SYSTEM = "http://terminology.hl7.org/CodeSystem/designation-usage"


def _is_display(d: dict) -> bool:
    use = d.get("use")
    return isinstance(use, dict) and use.get("system") == USE_SYSTEM and use.get("code") == "display"


def _designations(concept: dict) -> dict[str, str]:
    """{language: text} of a concept's designations that name a language: its display-use one, else the first."""
    out: dict[str, str] = {}
    found = [d for d in concept.get("designation") or ()
             if isinstance(d, dict) and isinstance(d.get("language"), str) and isinstance(d.get("value"), str)]
    for d in sorted(found, key=lambda d: not _is_display(d)):
        out.setdefault(d["language"], d["value"])
    return out


def _designation_values(concept: dict, *, displays: bool = True) -> list[str]:
    return [d["value"] for d in concept.get("designation", []) if isinstance(d, dict) and isinstance(d.get("value"), str)
            and (displays or not _is_display(d))]


def _concept_names(concept: dict) -> list[str]:
    """The names a record's text may use for a concept: its designations (any language; not the display-use ones,
    which say how fhir3t shows it), and its display when short enough to be a name."""
    out = _designation_values(concept, displays=False)
    display = concept.get("display")
    if isinstance(display, str) and len(display) <= 40:
        out.append(display)
    return out


def _concept_properties(concept: dict) -> dict[str, object]:
    """Per-concept data kept in extensions (e.g. half-life) keyed by the extension's last path part."""
    props: dict[str, object] = {}
    for ext in concept.get("extension", []):
        name = ext.get("url", "").rsplit("/", 1)[-1]
        for k, v in ext.items():
            if k.startswith("value"):
                props[name] = v
    if concept.get("display"):
        props["display"] = concept["display"]
    return props


class ConceptMaps:
    """Hospital-local code → standard code translations from R4 ConceptMap resources (and the reverse: the
    hospital's own codes for a standard one, for naming what to order)."""

    def __init__(self, systems: CodeSystems) -> None:
        self.systems = systems
        self.map: dict[Code, list[Code]] = {}
        #: the reverse: standard code -> the local codes (with their displays) mapped to it as equivalent
        self.sources: dict[Code, list[tuple[Code, str | None]]] = {}
        self.source_systems: set[str] = set()
        self.urls: list[str] = []

    def add(self, res: object, where: str) -> int:
        """Add a ConceptMap's usable mappings; a map of the wrong shape is a ConfigError naming where."""
        if not isinstance(res, dict) or res.get("resourceType") != "ConceptMap":
            kind = res.get("resourceType") if isinstance(res, dict) else type(res).__name__
            raise ConfigError(E["not-a-conceptmap"](where=where, kind=repr(kind)))

        def bad(at: str, what: str) -> ConfigError:
            """`what` is a key of E: what is wrong with the element at `at`."""
            return ConfigError(E["conceptmap"](where=where, at=at, what=E[what]()))

        groups = res.get("group", [])
        if not isinstance(groups, list):
            raise bad("group", "list")
        n = 0
        for gi, group in enumerate(groups):
            if not isinstance(group, dict):
                raise bad(f"group[{gi}]", "object")
            src, tgt = group.get("source"), group.get("target")
            if not isinstance(src, str) or not isinstance(tgt, str) or not src or not tgt:
                raise bad(f"group[{gi}]", "systems")
            src, tgt = self.systems.system(src), self.systems.system(tgt)
            self.source_systems.add(src)
            elements = group.get("element", [])
            if not isinstance(elements, list):
                raise bad(f"group[{gi}].element", "list")
            for ei, element in enumerate(elements):
                at = f"group[{gi}].element[{ei}]"
                if not isinstance(element, dict):
                    raise bad(at, "object")
                code = element.get("code")
                if code is None:
                    continue
                if not isinstance(code, str):
                    raise bad(f"{at}.code", "string")
                key = (src, self.systems.code(src, code))
                targets = element.get("target", [])
                if not isinstance(targets, list):
                    raise bad(f"{at}.target", "list")
                for ti, target in enumerate(targets):
                    if not isinstance(target, dict):
                        raise bad(f"{at}.target[{ti}]", "object")
                    eq = target.get("equivalence") or target.get("relationship")
                    tcode = target.get("code")
                    if tcode is not None and not isinstance(tcode, str):
                        raise bad(f"{at}.target[{ti}].code", "string")
                    if eq is not None and not isinstance(eq, str):
                        raise bad(f"{at}.target[{ti}].equivalence", "code")
                    if eq is None and tcode is not None:  # R4 requires it; a draft of fhir3t codes leaves it to a reviewer
                        raise bad(f"{at}.target[{ti}]", "no-equivalence")
                    # one with dependsOn holds only when another element of the record has some value: unchecked
                    if isinstance(tcode, str) and eq in USABLE_EQUIVALENCE and not target.get("dependsOn"):
                        target = (tgt, self.systems.code(tgt, tcode))
                        self.map.setdefault(key, []).append(target)
                        display = element.get("display")
                        local = self.sources.setdefault(target, [])
                        if key not in [k for k, _ in local]:
                            local.append((key, display if isinstance(display, str) and display.strip() else None))
                        n += 1
        url = res.get("url")
        self.urls.append(url if isinstance(url, str) else where)
        return n

    def translate(self, code: Code) -> list[Code]:
        return self.map.get(code, [])

    def local_codes(self, code: Code) -> list[tuple[Code, str | None]]:
        """The hospital's own codes (and their displays) that a ConceptMap maps to `code` as equivalent: what an
        order placed in the hospital's system is coded with (the reverse of `translate`), in map order."""
        return self.sources.get(code, [])


class Terminology:
    """Everything the engine needs to compare codes: systems, value sets, concept maps."""

    def __init__(self, systems: CodeSystems, valuesets: dict[str, ValueSet], maps: ConceptMaps) -> None:
        self.systems = systems
        self.valuesets = valuesets
        self.maps = maps
        self._norm_cache: dict[tuple[str, str], tuple[Code, ...]] = {}
        #: extra codes for a code, from somewhere else than ConceptMap files (a terminology server):
        #: asked once per distinct code, on the codes of systems it cares about
        self.resolver: Callable[[Code], tuple[Code, ...]] | None = None

    @classmethod
    def load(cls, concept_maps: Iterable[Path] = (), profiles: Profiles | None = None) -> Terminology:
        profiles = profiles or Profiles.at()
        systems = CodeSystems.load(profiles.path("terminology", "code-systems.json"))
        vdir = profiles.path("valuesets")
        valuesets: dict[str, ValueSet] = {}
        for path in sorted(vdir.glob("*.json")):
            vs = ValueSet.from_resource(_load_json(path), systems, str(path))
            if vs.id in valuesets:
                raise ConfigError(f"{path}: duplicate ValueSet id {vs.id!r}")
            valuesets[vs.id] = vs
        maps = ConceptMaps(systems)
        for path in concept_maps:
            maps.add(_load_json(Path(path)), str(path))
        return cls(systems, valuesets, maps)

    def valueset(self, vs_id: str) -> ValueSet:
        try:
            return self.valuesets[vs_id]
        except KeyError:
            raise ConfigError(E["unknown-valueset"](id=repr(vs_id), file=vs_id)) from None

    def codes(self, concept: object) -> tuple[Code, ...]:
        """Normalised codes of a CodeableConcept or Coding, plus their ConceptMap translations."""
        if not isinstance(concept, dict):
            return ()
        codings = concept.get("coding")
        if codings is None:
            codings = [concept] if "code" in concept else []
        elif not isinstance(codings, list):
            return ()  # a coding of the wrong shape reads as no code (the record builder says so)
        out: list[Code] = []
        for coding in codings:
            if not isinstance(coding, dict):
                continue
            system, code = coding.get("system"), coding.get("code")
            if not isinstance(system, str) or not isinstance(code, str):
                continue
            key = (system, code)
            norm = self._norm_cache.get(key)
            if norm is None:
                s = self.systems.system(system)
                c = (s, self.systems.code(s, code))
                norm = (c, *self.maps.translate(c), *(self.resolver(c) if self.resolver is not None else ()))
                self._norm_cache[key] = norm
            out.extend(norm)
        return tuple(out)

    def stray_codings(self, concept: object) -> list[tuple[str | None, str]]:
        """(system as written or None, code) of a concept's codings that name no code system fhir3t can read:
        none at all, or one neither known nor mapped by a ConceptMap (an HL7 v2 name such as 'LN' or 'I10' a
        converter left in place of the URI). Their codes match nothing; `Relevance` asks whether one is a
        code some value set lists."""
        if not isinstance(concept, dict):
            return []
        codings = concept.get("coding")
        if codings is None:
            codings = [concept] if "code" in concept else []
        out: list[tuple[str | None, str]] = []
        for coding in codings if isinstance(codings, list) else ():
            if not isinstance(coding, dict) or not isinstance(coding.get("code"), str) or not coding["code"].strip():
                continue
            system = coding.get("system")
            if system is None:
                out.append((None, coding["code"]))
            elif isinstance(system, str):
                s = self.systems.system(system)
                if not self.systems.known(s) and s not in self.maps.source_systems:
                    out.append((system, coding["code"]))
        return out

    def unknown_systems(self, concept: object) -> list[str]:
        """Systems of a concept's codings that are neither known nor mapped by a ConceptMap."""
        if not isinstance(concept, dict):
            return []
        out = []
        codings = concept.get("coding")
        if codings is None:
            codings = [concept] if "code" in concept else []
        for coding in codings if isinstance(codings, list) else ():
            if isinstance(coding, dict) and isinstance(coding.get("system"), str):
                s = self.systems.system(coding["system"])
                if not self.systems.known(s) and s not in self.maps.source_systems:
                    out.append(s)
        return out


def _load_json(path: Path) -> dict:
    try:
        data = orjson.loads(read_small(path, DATA_LIMIT, E["the-file"]()))
    except FileNotFoundError:
        raise ConfigError(E["not-found"](path=str(path))) from None
    except OSError as exc:
        raise ConfigError(E["unreadable"](path=str(path), error=exc.strerror)) from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(E["not-json"](path=str(path), line=exc.lineno, column=exc.colno)) from None
    if not isinstance(data, dict):
        raise ConfigError(E["not-object"](path=str(path)))
    return data
