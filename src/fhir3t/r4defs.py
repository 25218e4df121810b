"""The R4 (4.0.1) definitions the validator walks by, loaded from `profiles/r4/` (derived from HL7's
own StructureDefinitions and value sets by tools/build_r4_definitions.py; data, not code).

A `TypeDef` answers, for an element path inside a resource or data type, "which JSON property
names may appear here, with which definition and type": choice elements (`value[x]`) are expanded
to their typed names (`valueQuantity`, ...), nested backbone elements and `contentReference`s
(Questionnaire.item.item) resolve to paths of the same type. Everything is compiled once.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from fhir3t.errors import ConfigError

#: JSON kinds of the primitive types (every other primitive is a JSON string)
BOOLEAN = frozenset({"boolean"})
INTEGERS = frozenset({"integer", "positiveInt", "unsignedInt"})
DECIMAL = frozenset({"decimal"})
#: the base types that are not a data type of their own (their children are defined inline)
INLINE = frozenset({"BackboneElement", "Element"})


@dataclass(frozen=True, slots=True)
class ElementDef:
    """One element of a type, as the snapshot defines it."""

    path: str                      # relative to the type root: "" (the root), "contact.name", "value[x]"
    name: str                      # the JSON name without [x]
    min: int
    max: int | None                # None: unbounded
    types: tuple[str, ...]
    targets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    binding: tuple[str, str] | None = None
    constraints: tuple[str, ...] = ()
    fixed: tuple[str, Any] | None = None    # ("fixedUri", value) / ("patternCodeableConcept", {...})
    ref: str | None = None         # contentReference: the path whose children apply here

    @property
    def many(self) -> bool:
        return self.max is None or self.max > 1

    @property
    def choice(self) -> bool:
        return self.path.endswith("[x]")


@dataclass(frozen=True, slots=True)
class Child:
    """A JSON property allowed at some place: its definition and the one type it carries."""

    element: ElementDef
    type: str


@dataclass
class TypeDef:
    name: str
    kind: str                      # resource | complex-type | primitive-type
    base: str | None
    abstract: bool
    elements: dict[str, ElementDef]
    regex: re.Pattern[str] | None = None
    _children: dict[str, dict[str, Child]] = field(default_factory=dict)

    def children(self, path: str) -> dict[str, Child]:
        """JSON property name → Child, for the element at `path` (its contentReference followed)."""
        got = self._children.get(path)
        if got is None:
            got = self._children[path] = self._build(path)
        return got

    def _build(self, path: str) -> dict[str, Child]:
        el = self.elements.get(path)
        if el is not None and el.ref is not None:
            path = el.ref
        prefix = f"{path}." if path else ""
        out: dict[str, Child] = {}
        for rel, e in self.elements.items():
            if not rel.startswith(prefix) or not rel or "." in rel[len(prefix):]:
                continue
            if e.choice:
                for t in e.types:
                    out[e.name + t[0].upper() + t[1:]] = Child(e, t)
            else:
                out[e.name] = Child(e, e.types[0] if e.types else "BackboneElement")
        return out

    def is_inline(self, el: ElementDef) -> bool:
        """Whether an element's children are defined in this type (a backbone) rather than by its type."""
        if el.ref is not None:
            return True
        return bool(el.types) and el.types[0] in INLINE and self.has_children(el.path)

    def has_children(self, path: str) -> bool:
        return bool(self.children(path))


@dataclass(frozen=True)
class Constraint:
    ident: str
    key: str
    severity: str
    human: str
    expression: str
    best_practice: bool


def r4_dir() -> Path:
    from fhir3t.profiles import profile_path

    return profile_path("r4")


def _read(name: str) -> Any:
    path = r4_dir() / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the R4 definition table {path}: {exc}") from exc


def _max(v: str) -> int | None:
    return None if v == "*" else int(v)


def _element(rel: str, d: dict) -> ElementDef:
    fixed = next(((k, v) for k, v in d.items() if k.startswith(("fixed", "pattern"))), None)
    return ElementDef(
        path=rel, name=rel.rsplit(".", 1)[-1].removesuffix("[x]"), min=d["min"], max=_max(d["max"]),
        types=tuple(d.get("types", ())), targets={k: tuple(v) for k, v in d.get("targets", {}).items()},
        binding=(d["binding"][0], d["binding"][1]) if "binding" in d else None,
        constraints=tuple(d.get("constraints", ())), fixed=fixed, ref=d.get("ref"),
    )


@cache
def types() -> dict[str, TypeDef]:
    out: dict[str, TypeDef] = {}
    for name, d in _read("types.json").items():
        if name.startswith("_"):
            continue
        regex = re.compile(d["regex"]) if d.get("regex") else None
        out[name] = TypeDef(name, d["kind"], d.get("base"), d.get("abstract", False),
                            {rel: _element(rel, e) for rel, e in d["elements"].items()}, regex)
    return out


def type_def(name: str) -> TypeDef | None:
    return types().get(name)


@cache
def resource_types() -> frozenset[str]:
    """The concrete resource types of R4 (146)."""
    return frozenset(n for n, t in types().items() if t.kind == "resource" and not t.abstract)


@cache
def constraints() -> dict[str, Constraint]:
    return {k: Constraint(k, d["key"], d["severity"], d["human"], d["expression"], d.get("bestPractice", False))
            for k, d in _read("constraints.json").items()}


@cache
def value_sets() -> dict[str, dict[str, frozenset[str]] | None]:
    """Value set URL → {system: codes}; None where the set cannot be enumerated without a terminology server."""
    return {url: None if vs is None else {s: frozenset(c) for s, c in vs.items()}
            for url, vs in _read("valuesets.json").items()}


@cache
def core_extensions() -> dict[str, dict[str, Any]]:
    return dict(_read("extensions.json"))


def ancestors(name: str) -> list[str]:
    """`name` and the types it specializes (Patient → DomainResource → Resource)."""
    out = []
    t = type_def(name)
    while t is not None:
        out.append(t.name)
        t = type_def(t.base) if t.base else None
    return out
