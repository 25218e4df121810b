"""One resource checked against the R4 definitions, by walking its JSON with the snapshot.

Each JSON property must be an element of its parent (choice elements by their typed name); arrays
where the element repeats, single values where it does not; cardinality; the strict JSON type and
lexical form of every primitive (validate.primitives), `_name` extension holders paired with their
value; nested data types and backbone elements recursively; required and extensible bindings to
the spec's value sets; Reference target types; extension contexts and value types; narrative XHTML;
Attachment size. Invariants are collected on the way (node, FHIRPath type path, location) and
evaluated afterwards (validate.fhirpath). Nested resources (contained, Bundle.entry.resource,
Parameters.parameter.resource) are walked as resources of their own, at their location.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from fhir3t.messages import Msg, table
from fhir3t.r4defs import (
    ElementDef,
    TypeDef,
    ancestors,
    core_extensions,
    resource_types,
    type_def,
    value_sets,
)
from fhir3t.validate import fhirpath, primitives, xhtml
from fhir3t.validate.issues import Issue
from fhir3t.validate.refs import ABSOLUTE_REF, RELATIVE_REF

#: deeper than this, a JSON tree is not walked further (R4 has no legitimate need for it)
MAX_DEPTH = 200
_LISTED = 12  # at most this many codes are listed in a binding message

#: what the walk finds wrong (values quoted by the caller, as repr; FHIR names, paths and codes as written)
MESSAGES = table("validate.instance", {
    "not-object": "wrong JSON type: expected an object, not {kind}",
    "too-deep": "nested deeper than {limit} levels; not checked further",
    "empty-object": "ele-1: All FHIR elements must have a @value or children (empty object)",
    "unknown-element": "unknown element {key} (not an element of {type} in R4)",
    "not-primitive": "unknown element {key} ({name} is not a primitive)",
    "one-choice": "only one of {names} is allowed ({name}[x] is a single choice)",
    "missing": "missing required element {name} (minimum cardinality {min})",
    "not-array": "{name} repeats (max {max}): it must be a JSON array, not {kind}",
    "empty-array": "ele-1: element {name} is an empty array (omit it instead)",
    "too-many": "{name} has {n} items; at most {max} allowed",
    "too-few": "{name} has {n} items; at least {min} required",
    "null-item": "ele-1: null in an array is only allowed with a matching extension in the paired `_` array",
    "array": "{name} does not repeat (max 1): it must not be a JSON array",
    "null": "ele-1: element {name} is null (omit it instead)",
    "keyed": "{key}: {text}",
    "fixed": "value must be exactly {value} ({type})",
    "id": "invalid resource id ({n} characters; expected 1-64 of A-Z a-z 0-9 - .)",
    "type-unknown": "type {type} is not in the R4 definitions; not checked",
    "not-resource": "expected a resource (a JSON object), not {kind}",
    "no-resource-type": "not a FHIR resource: no resourceType",
    "unknown-resource-type": "unknown resourceType {type} (not an R4 resource type)",
    "twin-array": "{key} must be a JSON array, like {name}",
    "twin-not-array": "{key} must not be a JSON array, like {name}",
    "twin-count": "{key} and {name} must have the same number of items",
    "codes-more": "{codes}, ... ({n} codes)",
    "code-binding": "{code} is not in the {strength} value set {url} (allowed: {allowed})",
    "coding-binding": "code {code} is not in {system} as bound by {url} (allowed: {allowed})",
    "no-code-text": "no code provided, and a code is required from the value set {url} (allowed: {allowed})",
    "no-code": "a code from the required value set {url} is needed",
    "no-coding": "none of the codings is from the required value set {url} (systems: {systems})",
    "system-local": "Coding.system must be an absolute URI, not a local reference ({system})",
    "target": "the type {type} implied by the reference is not a valid target for {path} (must be one of {targets})",
    "reference-type": "Reference.type {declared} does not match the reference's type {type}",
    "attachment-size": "stated attachment size {size} does not match the size of the data ({actual})",
    "ext-1-both": "ext-1: Must have either extensions or value[x], not both (has both)",
    "ext-1-neither": "ext-1: Must have either extensions or value[x], not both (has neither)",
    "ext-relative": "the extension url {url} must be an absolute URL (only a sub-extension of a complex extension "
                    "has a relative one)",
    "ext-modifier": "the extension {url} is a modifier extension, so it must be in modifierExtension",
    "ext-not-modifier": "the extension {url} is not a modifier extension, so it must not be in modifierExtension",
    "ext-unknown-modifier": "the modifier extension {url} is unknown, so the element it modifies cannot be understood",
    "ext-not-core": "the extension {url} is not an R4 core extension, so it is not allowed here",
    "ext-unknown": "the extension {url} is unknown, so its content is not checked (--allow-extension-domain accepts "
                   "a domain)",
    "ext-type": "the extension {url} allows the types [{types}] but found type {type}",
    "ext-value": "the extension {url} needs a value[x]",
    "ext-code": "the code {code} is not in the value set {valueset} (required by the extension {url})",
    "ext-context": "the extension {url} is not allowed to be used at this point ({parent}; allowed: {allowed})",
})


@dataclass
class Job:
    """A constraint to evaluate once the walk is done."""

    ident: str
    node: Any
    base: str | None
    where: str
    resource: dict


@dataclass
class Walk:
    issues: list[Issue] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    #: extension URL → {"context": [...], "types": [...]} of extensions defined outside the core spec (fhir3t's)
    extra_extensions: dict[str, dict] = field(default_factory=dict)
    allowed_extension_domains: tuple[str, ...] = ()
    #: every resource walked: (resource, location, the resource it is contained in or None)
    resources: list[tuple[dict, str, dict | None]] = field(default_factory=list)
    evaluated: int = 0
    not_evaluated: dict[str, int] = field(default_factory=dict)
    #: references whose target is checked once the Bundle is known: (location, reference, allowed target
    #: types (() for any), Reference.type or None)
    references: list[tuple[str, str, tuple[str, ...], str | None]] = field(default_factory=list)

    def add(self, severity: str, code: str, message: Msg, where: str) -> None:
        self.issues.append(Issue(severity, code, message, where))  # type: ignore[arg-type]


def is_resource_type(name: object) -> bool:
    return isinstance(name, str) and name in resource_types()


def walk_resource(w: Walk, res: dict, where: str, depth: int = 0, container: dict | None = None) -> None:
    """Walk one resource (its type already known to be an R4 resource type)."""
    t = type_def(res["resourceType"])
    assert t is not None
    w.resources.append((res, where, container))
    _complex(w, res, t, "", where, res, depth, res["resourceType"])
    _collect(w, t.elements[""].constraints, res, None, where, res)


def _collect(w: Walk, idents: tuple[str, ...], node: Any, base: str | None, where: str, res: dict) -> None:
    for ident in idents:
        if fhirpath.applicable(ident) is not None:
            w.jobs.append(Job(ident, node, base, where, res))


def _complex(w: Walk, node: Any, t: TypeDef, path: str, where: str, res: dict, depth: int, def_path: str) -> None:
    if not isinstance(node, dict):
        w.add("error", "structure", MESSAGES["not-object"](kind=primitives.json_kind(node)), where)
        return
    if depth > MAX_DEPTH:
        w.add("error", "too-costly", MESSAGES["too-deep"](limit=MAX_DEPTH), where)
        return
    if not node:
        w.add("error", "invariant", MESSAGES["empty-object"](), where)
        return
    children = t.children(path)
    is_root = path == "" and t.kind == "resource"
    present: dict[str, list[str]] = {}
    for key, value in node.items():
        if is_root and key == "resourceType":
            continue
        name = key[1:] if key.startswith("_") else key
        child = children.get(name)
        loc = f"{where}.{name}"
        if child is None:
            w.add("error", "structure", MESSAGES["unknown-element"](key=repr(key),
                                                                  type=t.name + ('.' + path if path else '')), loc)
            continue
        el = child.element
        names = present.setdefault(el.path, [])
        if name not in names:
            names.append(name)
        if key.startswith("_"):
            pt = type_def(child.type)
            if pt is None or pt.kind != "primitive-type":
                w.add("error", "structure", MESSAGES["not-primitive"](key=repr(key), name=name), loc)
                continue
            _primitive_extras(w, value, node.get(name), el, pt, loc, res, depth, key, f"{def_path}.{name}")
            continue
        _value(w, value, node.get("_" + name), el, child.type, t, loc, res, depth, f"{def_path}.{name}")
    for el_path, names in present.items():
        if len(names) > 1:
            w.add("error", "structure", MESSAGES["one-choice"](names=", ".join(names), name=t.elements[el_path].name),
                  where)
    for name, child in children.items():
        el = child.element
        if el.min > 0 and el.path not in present and (not el.choice or name == _first_choice(children, el)):
            w.add("error", "required", MESSAGES["missing"](name=repr(el.name + ('[x]' if el.choice else '')),
                                                         min=el.min), f"{where}.{el.name}")


def _first_choice(children: dict, el: ElementDef) -> str:
    return next(n for n, c in children.items() if c.element is el)


def _value(w: Walk, value: Any, twin: Any, el: ElementDef, tcode: str, t: TypeDef, where: str, res: dict,
           depth: int, def_path: str) -> None:
    if el.many:
        if not isinstance(value, list):
            w.add("error", "structure", MESSAGES["not-array"](name=repr(el.name), max=str(el.max or '*'),
                                                            kind=primitives.json_kind(value)), where)
            value = [value]
            twin = [twin] if twin is not None else None
        if not value:
            w.add("error", "invariant", MESSAGES["empty-array"](name=repr(el.name)), where)
            return
        if el.max is not None and len(value) > el.max:
            w.add("error", "structure", MESSAGES["too-many"](name=repr(el.name), n=len(value), max=el.max), where)
        if el.min > len(value):
            w.add("error", "required", MESSAGES["too-few"](name=repr(el.name), n=len(value), min=el.min), where)
        for i, item in enumerate(value):
            loc = f"{where}[{i}]"
            if item is None:
                if not (isinstance(twin, list) and i < len(twin) and twin[i] is not None):
                    w.add("error", "invariant", MESSAGES["null-item"](), loc)
                continue
            _item(w, item, el, tcode, t, loc, res, depth + 1, def_path)
        return
    if isinstance(value, list):
        w.add("error", "structure", MESSAGES["array"](name=repr(el.name)), where)
        return
    if value is None:
        if twin is None:
            w.add("error", "invariant", MESSAGES["null"](name=repr(el.name)), where)
        return
    _item(w, value, el, tcode, t, where, res, depth + 1, def_path)


def _item(w: Walk, item: Any, el: ElementDef, tcode: str, t: TypeDef, where: str, res: dict, depth: int,
          def_path: str) -> None:
    dt = type_def(tcode)
    if dt is not None and dt.kind == "primitive-type":
        for sev, code, msg in primitives.check(item, tcode):
            w.add(sev, code, msg, where)
        if tcode == "xhtml" and isinstance(item, str):
            for key, msg in xhtml.narrative_problems(item):
                w.add("error", "invariant", MESSAGES["keyed"](key=key, text=msg), where)
        if el.binding and el.binding[0] == "required" and isinstance(item, str) and tcode in ("code", "string", "uri"):
            _code_binding(w, item, el, where)
        if el.fixed is not None and item != el.fixed[1]:
            w.add("error", "value", MESSAGES["fixed"](value=repr(el.fixed[1]), type=el.fixed[0]), where)
        if tcode == "id" or (el.path == "id" and t.kind == "resource"):
            if isinstance(item, str) and not _ID.fullmatch(item):
                w.add("error", "value", MESSAGES["id"](n=len(item)), where)
        return
    if tcode == "Resource" or is_resource_type(tcode):
        nested_resource(w, item, where, depth, res if el.path == "contained" else None)
        return
    if t.is_inline(el):
        path = el.ref or el.path
        _complex(w, item, t, path, where, res, depth, def_path)
        _collect(w, el.constraints, item, f"{t.name}.{path}", where, res)
        return
    if dt is None:
        w.add("warning", "not-supported", MESSAGES["type-unknown"](type=repr(tcode)), where)
        return
    _complex(w, item, dt, "", where, res, depth, def_path)
    if isinstance(item, dict):
        _collect(w, _merged(dt.elements[""].constraints, el.constraints), item, dt.name, where, res)
        special = _SPECIAL.get(tcode)
        if special is not None:
            special(w, item, el, where, def_path)


def _merged(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    return a + tuple(x for x in b if x not in a)


_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def nested_resource(w: Walk, item: Any, where: str, depth: int, container: dict | None = None) -> None:
    if not isinstance(item, dict):
        w.add("error", "structure", MESSAGES["not-resource"](kind=primitives.json_kind(item)), where)
        return
    rt = item.get("resourceType")
    if not is_resource_type(rt):
        w.add("error", "structure", MESSAGES["no-resource-type"]() if rt is None else
              MESSAGES["unknown-resource-type"](type=repr(rt)), where)
        return
    walk_resource(w, item, where, depth, container)


def _primitive_extras(w: Walk, value: Any, twin: Any, el: ElementDef, pt: TypeDef, where: str, res: dict,
                      depth: int, key: str, def_path: str) -> None:
    """`_name`: the id/extensions of a primitive (an object, or an array paired with the values)."""
    items = value if isinstance(value, list) else [value]
    if el.many != isinstance(value, list):
        w.add("error", "structure", MESSAGES["twin-array" if el.many else "twin-not-array"](
            key=repr(key), name=repr(key[1:])), where)
        return
    if el.many and isinstance(twin, list) and len(twin) != len(items):
        w.add("error", "structure", MESSAGES["twin-count"](key=repr(key), name=repr(key[1:])), where)
    for i, item in enumerate(items):
        loc = f"{where}[{i}]" if el.many else where
        if item is None:
            continue
        _complex(w, item, pt, "", loc, res, depth + 1, def_path)


# --- bindings ------------------------------------------------------------------------------------

def _allowed(codes: dict[str, frozenset[str]]) -> Msg | str:
    every = sorted({c for cs in codes.values() for c in cs})
    shown = ", ".join(every[:_LISTED])
    return MESSAGES["codes-more"](codes=shown, n=len(every)) if len(every) > _LISTED else shown


def _code_binding(w: Walk, code: str, el: ElementDef, where: str) -> None:
    assert el.binding is not None
    strength, url = el.binding
    vs = value_sets().get(url)
    if not vs:
        return
    if any(code in cs for cs in vs.values()):
        return
    sev = "error" if strength == "required" else "warning"
    w.add(sev, "code-invalid", MESSAGES["code-binding"](code=repr(code[:60]), strength=strength, url=url,
                                                        allowed=_allowed(vs)), where)


def _codings_binding(w: Walk, codings: list[tuple[dict, str]], el: ElementDef, where: str, text_only: bool) -> None:
    assert el.binding is not None
    strength, url = el.binding
    vs = value_sets().get(url)
    if not vs:
        return
    sev = "error" if strength == "required" else "warning"
    in_vs = False
    for coding, loc in codings:
        system, code = coding.get("system"), coding.get("code")
        if isinstance(system, str) and system in vs:  # a list or an object as system is reported by its type check
            if isinstance(code, str) and code in vs[system]:
                in_vs = True
            else:
                in_vs = True  # reported here; no second "none from the value set"
                w.add(sev, "code-invalid", MESSAGES["coding-binding"](
                    code=repr(str(code)[:60]), system=system, url=url, allowed=_allowed({system: vs[system]})),
                    f"{loc}.code")
    if in_vs or strength != "required":
        return
    if not codings:
        msg = (MESSAGES["no-code-text"](url=url, allowed=_allowed(vs)) if text_only else MESSAGES["no-code"](url=url))
    else:
        msg = MESSAGES["no-coding"](url=url, systems=", ".join(sorted(vs)))
    w.add("error", "code-invalid", msg, where)


def _coding(w: Walk, item: dict, el: ElementDef, where: str, def_path: str) -> None:
    system = item.get("system")
    if isinstance(system, str) and system and ":" not in system:
        w.add("error", "value", MESSAGES["system-local"](system=repr(system[:80])), f"{where}.system")
    if el.binding:
        _codings_binding(w, [(item, where)], el, where, False)


def _codeable_concept(w: Walk, item: dict, el: ElementDef, where: str, def_path: str) -> None:
    if not el.binding:
        return
    codings = item.get("coding")
    pairs = [(c, f"{where}.coding[{i}]") for i, c in enumerate(codings) if isinstance(c, dict)] \
        if isinstance(codings, list) else []
    _codings_binding(w, pairs, el, where, True)


# --- references, attachments, extensions ---------------------------------------------------------

def _reference(w: Walk, item: dict, el: ElementDef, where: str, def_path: str) -> None:
    ref = item.get("reference")
    targets = el.targets.get("Reference", ())
    declared = item.get("type")
    if isinstance(ref, str) and not ref.startswith("#"):
        w.references.append((where, ref, () if "Resource" in targets else targets,
                             declared if isinstance(declared, str) else None))
    if not isinstance(ref, str) or not targets or "Resource" in targets:
        return
    m = RELATIVE_REF.match(ref) or ABSOLUTE_REF.match(ref)
    if m is None:
        return
    rtype = m.group(1) if m.re is RELATIVE_REF else m.group(2)
    if rtype not in targets and is_resource_type(rtype):
        w.add("error", "structure", MESSAGES["target"](type=repr(rtype), path=def_path, targets=", ".join(targets)),
              f"{where}.reference")
    if isinstance(declared, str) and declared != rtype and is_resource_type(declared):
        w.add("error", "value", MESSAGES["reference-type"](declared=repr(declared), type=repr(rtype)),
              f"{where}.type")


def _attachment(w: Walk, item: dict, el: ElementDef, where: str, def_path: str) -> None:
    data, size = item.get("data"), item.get("size")
    if isinstance(data, str) and isinstance(size, int) and not isinstance(size, bool):
        actual = primitives.base64_size(data)
        if actual is not None and actual != size:
            w.add("error", "structure", MESSAGES["attachment-size"](size=size, actual=actual), where)


#: the extensions every FHIR version defines implicitly for the elements of another (R5 elements in R4 data, e.g.
#: ResearchSubject.progress): http://hl7.org/fhir/[version]/StructureDefinition/extension-[Path]. Their definitions
#: come from that version's specification, which fhir3t does not hold: they are accepted, their content not checked
CROSS_VERSION = tuple(f"http://hl7.org/fhir/{v}/StructureDefinition/extension-" for v in ("1.0", "3.0", "4.3", "5.0"))


def _extension(w: Walk, item: dict, el: ElementDef, where: str, def_path: str) -> None:
    has_value = any(k.startswith("value") for k in item)
    if has_value == bool(item.get("extension")):
        w.add("error", "invariant", MESSAGES["ext-1-both" if has_value else "ext-1-neither"](), where)
    url = item.get("url")
    parent, _, slot = def_path.rpartition(".")
    if not isinstance(url, str):
        return  # no url: reported as required
    if "://" not in url and not url.startswith("urn:"):
        if parent.rsplit(".", 1)[-1] not in ("extension", "Extension"):  # only a sub-extension has a relative url
            w.add("error", "structure", MESSAGES["ext-relative"](url=repr(url)), f"{where}.url")
        return
    known = core_extensions().get(url) or w.extra_extensions.get(url)
    modifier_slot = slot == "modifierExtension"
    if known is not None and bool(known.get("modifier")) != modifier_slot:
        w.add("error", "structure", MESSAGES["ext-modifier" if known.get("modifier") else "ext-not-modifier"](url=url),
              where)
    if known is None:
        if url.startswith(w.allowed_extension_domains or ("\0",)) or (not modifier_slot and url.startswith(CROSS_VERSION)):
            return
        if modifier_slot:  # R4: a modifier that is not understood means the element cannot be used safely
            w.add("error", "extension", MESSAGES["ext-unknown-modifier"](url=url), where)
            return
        if url.startswith("http://hl7.org/fhir/StructureDefinition/"):
            w.add("error", "structure", MESSAGES["ext-not-core"](url=url), where)
        else:  # the HL7 validator says error; a hospital's own extension is not wrong by the base spec alone
            w.add("warning", "extension", MESSAGES["ext-unknown"](url=url), where)
        return
    value_keys = [k for k in item if k.startswith("value")]
    allowed = known.get("types", [])
    if value_keys and allowed:
        vtype = value_keys[0][len("value"):]
        if not any(vtype.lower() == a.lower() for a in allowed):
            w.add("error", "structure", MESSAGES["ext-type"](url=url, types=", ".join(allowed),
                                                           type=vtype[0].lower() + vtype[1:]), where)
    elif not value_keys and allowed and known.get("min", 0) > 0 and not item.get("extension"):
        w.add("error", "required", MESSAGES["ext-value"](url=url), where)
    binding = known.get("binding")
    if binding and binding[0] == "required" and isinstance(item.get("valueCode"), str):
        codes = value_sets().get(binding[1])
        if codes is not None and not any(item["valueCode"] in c for c in codes.values()):
            w.add("error", "code-invalid", MESSAGES["ext-code"](code=repr(item["valueCode"]), valueset=binding[1],
                                                              url=url), f"{where}.valueCode")
    context = known.get("context") or []
    if context and not _context_ok(context, parent, where):
        w.add("error", "structure", MESSAGES["ext-context"](url=url, parent=parent, allowed=", ".join(context)),
              where)


def _context_ok(context: list[str], parent: str, where: str) -> bool:
    """Whether an extension on the element at JSON path `parent` (e.g. `Patient.contact.name.family`) fits."""
    names = _context_names(parent)
    # a context naming a child of this element (ElementDefinition.type.code for an extension on .type)
    # is accepted too, as the HL7 validator does
    return any(c in names or any(c.startswith(n + ".") for n in names if "." in n) for c in context)


@lru_cache(maxsize=4096)
def _context_names(json_path: str) -> frozenset[str]:
    """The names an extension context may give the element at a JSON path: its definition path
    (`Patient.contact.name.family`, contentReferences followed: `Questionnaire.item`), its path in
    the data type it belongs to (`HumanName.family`), its type and the types that type specializes."""
    head, _, rest = json_path.partition(".")
    t = type_def(head)
    if t is None:
        return frozenset({"Element"})
    names = {head}          # the names of the element reached so far
    full = prefix = head    # its definition path; the path prefix of its children inside the current type
    path = ""
    node_type: str | None = head
    for part in rest.split(".") if rest else []:
        child = t.children(path).get(part)
        if child is None:
            return frozenset(names | {"Element"})
        el = child.element
        seg = el.path.rsplit(".", 1)[-1]
        if t.is_inline(el):
            path = el.ref or el.path
            full = prefix = f"{t.name}.{path}"
            names = {full}
            node_type = el.types[0] if el.types else "BackboneElement"
            continue
        full = f"{full}.{seg}"
        names = {full, f"{prefix}.{seg}"}
        nt = type_def(child.type)
        if nt is None:
            return frozenset(names | {"Element"})
        t, path, node_type, prefix = nt, "", child.type, nt.name
    names.add("Element")
    if node_type:
        names.update(ancestors(node_type))
    return frozenset(names)


_SPECIAL: dict[str, Callable[[Walk, dict, ElementDef, str, str], None]] = {
    "Coding": _coding,
    "CodeableConcept": _codeable_concept,
    "Reference": _reference,
    "Attachment": _attachment,
    "Extension": _extension,
}
