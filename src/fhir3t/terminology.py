"""Value sets and concept maps, loaded from FHIR ValueSet / ConceptMap JSON.

Codes live in `profiles/` as data; nothing here names a clinical code. Matching works on
normalised (system, code) pairs: aliases folded, ICD-10 dotted and upper-cased, CVX
zero-padded. For systems whose hierarchy is in the code (ICD-10, ATC) a ValueSet
`is-a` filter matches by prefix; for others `is-a` matches the code itself only (no
terminology server is consulted: that is a known limit for SNOMED CT subsumption).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from fhir3t.errors import ConfigError
from fhir3t.profiles import profiles_dir

Code = tuple[str, str]  # (system, code), normalised

#: R4 ConceptMap equivalences (and the R5 relationship) that let a source code stand for its
#: target. Only true equivalence: a 'wider'/'subsumes'/'relatedto' mapping could slip a local code
#: past a value set's exclusions (a local "juvenile DM" mapped wider to "dermatomyositis").
USABLE_EQUIVALENCE = frozenset({"equivalent", "equal"})


@dataclass
class CodeSystems:
    canonical: dict[str, str]
    normalizer: dict[str, str]
    prefix_hierarchy: set[str]
    names: dict[str, str]
    known_prefixes: tuple[str, ...]
    readable: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> CodeSystems:
        data = _load_json(path or profiles_dir() / "terminology" / "code-systems.json")
        canonical: dict[str, str] = {}
        normalizer: dict[str, str] = {}
        prefix: set[str] = set()
        names: dict[str, str] = {}
        for uri, spec in data["systems"].items():
            canonical[uri] = uri
            for alias in spec.get("aliases", []):
                canonical[alias] = uri
            if spec.get("normalize"):
                normalizer[uri] = spec["normalize"]
            if spec.get("hierarchy") == "prefix":
                prefix.add(uri)
            names[uri] = spec.get("name", uri)
        readable = {t: frozenset(canonical.get(s, s) for s in systems) for t, systems in data.get("readable", {}).items()}
        return cls(canonical, normalizer, prefix, names, tuple(data.get("known_prefixes", [])), readable)

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


@dataclass
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

    def prop(self, code: Code, name: str) -> object | None:
        return self.properties.get(code, {}).get(name)

    @classmethod
    def from_resource(cls, res: dict, systems: CodeSystems, where: str) -> ValueSet:
        if res.get("resourceType") != "ValueSet" or not res.get("id"):
            raise ConfigError(f"{where}: not a ValueSet with an id")
        vs = cls(res["id"], res.get("url", ""), res.get("title") or res.get("name") or res["id"], systems)
        compose = res.get("compose") or {}
        for part, codes, filters in (("include", vs.include_codes, vs.include_filters),
                                      ("exclude", vs.exclude_codes, vs.exclude_filters)):
            for inc in compose.get(part, []):
                if "system" not in inc:
                    raise ConfigError(f"{where}: compose.{part} without a system (valueSet imports are not supported)")
                system = systems.system(inc["system"])
                for concept in inc.get("concept", []):
                    code = systems.code(system, concept["code"])
                    codes.setdefault(system, set()).add(code)
                    if part == "include":
                        vs.order.append((system, code))
                    props = _concept_properties(concept)
                    if props and part == "include":
                        vs.properties[(system, code)] = props
                for flt in inc.get("filter", []):
                    op, value = flt.get("op"), flt.get("value", "")
                    if op not in ("is-a", "descendent-of", "regex", "in", "="):
                        raise ConfigError(f"{where}: filter op {op!r} is not supported")
                    rx = None
                    if op == "regex":
                        try:
                            rx = re.compile(value)
                        except re.error as exc:
                            raise ConfigError(f"{where}: bad regex {value!r}: {exc}") from None
                    else:
                        value = systems.code(system, value)
                    filters.append((system, op, value, rx))
        return vs


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
    """Hospital-local code → standard code translations from R4 ConceptMap resources."""

    def __init__(self, systems: CodeSystems) -> None:
        self.systems = systems
        self.map: dict[Code, list[Code]] = {}
        self.source_systems: set[str] = set()
        self.urls: list[str] = []

    def add(self, res: dict, where: str) -> int:
        if res.get("resourceType") != "ConceptMap":
            raise ConfigError(f"{where}: not a ConceptMap (resourceType {res.get('resourceType')!r})")
        n = 0
        for gi, group in enumerate(res.get("group", [])):
            src, tgt = group.get("source"), group.get("target")
            if not src or not tgt:
                raise ConfigError(f"{where}: ConceptMap.group[{gi}] needs source and target systems")
            src, tgt = self.systems.system(src), self.systems.system(tgt)
            self.source_systems.add(src)
            for element in group.get("element", []):
                if "code" not in element:
                    continue
                key = (src, self.systems.code(src, element["code"]))
                for target in element.get("target", []):
                    eq = target.get("equivalence") or target.get("relationship")
                    if "code" in target and eq in USABLE_EQUIVALENCE:
                        self.map.setdefault(key, []).append((tgt, self.systems.code(tgt, target["code"])))
                        n += 1
        self.urls.append(res.get("url") or where)
        return n

    def translate(self, code: Code) -> list[Code]:
        return self.map.get(code, [])


class Terminology:
    """Everything the engine needs to compare codes: systems, value sets, concept maps."""

    def __init__(self, systems: CodeSystems, valuesets: dict[str, ValueSet], maps: ConceptMaps) -> None:
        self.systems = systems
        self.valuesets = valuesets
        self.maps = maps
        self._norm_cache: dict[tuple[str, str], tuple[Code, ...]] = {}

    @classmethod
    def load(cls, concept_maps: Iterable[Path] = (), valueset_dir: Path | None = None) -> Terminology:
        systems = CodeSystems.load()
        vdir = valueset_dir or profiles_dir() / "valuesets"
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
            raise ConfigError(f"unknown value set {vs_id!r} (no profiles/valuesets/{vs_id}.json)") from None

    def codes(self, concept: object) -> tuple[Code, ...]:
        """Normalised codes of a CodeableConcept or Coding, plus their ConceptMap translations."""
        if not isinstance(concept, dict):
            return ()
        codings = concept.get("coding")
        if codings is None:
            codings = [concept] if "code" in concept else []
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
                norm = (c, *self.maps.translate(c))
                self._norm_cache[key] = norm
            out.extend(norm)
        return tuple(out)

    def unknown_systems(self, concept: object) -> list[str]:
        """Systems of a concept's codings that are neither known nor mapped by a ConceptMap."""
        if not isinstance(concept, dict):
            return []
        out = []
        for coding in concept.get("coding") or ([concept] if "code" in concept else []):
            if isinstance(coding, dict) and isinstance(coding.get("system"), str):
                s = self.systems.system(coding["system"])
                if not self.systems.known(s) and s not in self.maps.source_systems:
                    out.append(s)
        return out


def _load_json(path: Path) -> dict:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    return data
