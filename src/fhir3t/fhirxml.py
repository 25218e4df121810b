"""FHIR R4 XML read into the FHIR JSON shape, so every reader of fhir3t sees one form of a resource.

The one XML reader of fhir3t: `fhir3t validate` and every file input of `screen` / `safety`
(sources.files) call `parse`. The document is parsed by the standard library's expat through
`defusedxml` with DTDs forbidden: FHIR XML never has a document type declaration, and a DTD is what an
entity-expansion bomb ("billion laughs") or an external entity (a local file, a URL) needs, so such a
document is refused with one sentence before anything is expanded or fetched.

The XML is then mapped by the R4 definitions (fhir3t.r4defs), as the FHIR XML rules say
(https://hl7.org/fhir/R4/xml.html): a primitive's `value` attribute becomes the JSON value typed as
the element's type (boolean, integer, decimal, string), its `id` and extensions go to `_name`; elements
that repeat become arrays (primitive arrays aligned with `_name` by nulls); `id` and Extension `url` are
attributes of data types; resources inside `contained`, `Bundle.entry.resource` and the like are wrapped
in one element named by their type; narrative `div` becomes its XHTML text. What breaks these rules is
returned as a located problem (the validator reports it; the screening readers name it), never guessed.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import defusedxml
import defusedxml.ElementTree as DET

from fhir3t.messages import Msg, render, table
from fhir3t.r4defs import BOOLEAN, DECIMAL, INTEGERS, Child, TypeDef, type_def

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
XML_NS = "http://www.w3.org/XML/1998/namespace"
XML_SUFFIXES = (".xml", ".xml.gz")

MESSAGES = table("input.xml", {
    "dtd": "refused: the XML has a document type declaration (<!DOCTYPE>), which FHIR XML never has and "
           "which is how entity-expansion bombs and external entities are written; nothing was expanded or read",
    "entities": "refused: the XML declares entities, which FHIR XML never has (an entity-expansion bomb or an "
                "external entity); nothing was expanded or read",
    "external": "refused: the XML refers to an external entity or file, which FHIR XML never does; nothing was read",
    "syntax": "not well-formed XML: {reason}",
    "not-fhir": "not a FHIR resource: the root element is {name} (expected a resource in the {ns} namespace)",
    "unknown-type": "not a FHIR resource: {name} is not an R4 resource type",
    "namespace": "element {name} is not in the namespace {ns}",
    "attribute": "attribute '{name}' is not allowed on this element",
    "text": "text content is not allowed in a FHIR element (values are in the value attribute)",
    "no-value": "a primitive element needs a value attribute or an extension",
    "lexical": "the value is not a valid {type} (not echoed: it may be patient data)",
    "resource-wrapper": "must hold exactly one resource element",
    "as-attribute": "{name} is written as an attribute here, not as an element",
    "repeated": "element {name} appears more than once but allows one",
})


class XmlRefused(ValueError):
    """The document is not read at all (not XML, DTD/entities, not a FHIR resource): one sentence (`msg`, said in
    the reader's language; str() is its English)."""

    def __init__(self, msg: Msg) -> None:
        super().__init__(render(msg, "en"))
        self.msg = msg


@dataclass(frozen=True)
class Problem:
    """Something in the XML that breaks the FHIR XML rules, with a FHIRPath-like location."""

    where: str
    msg: Msg

    @property
    def message(self) -> str:
        """The English sentence (validation issues, logs)."""
        return render(self.msg, "en")


_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)\Z")
_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")


def looks_like_xml(name: str) -> bool:
    return name.lower().endswith(XML_SUFFIXES)


def parse(data: bytes) -> tuple[dict[str, Any], list[Problem]]:
    """The resource in an XML document (JSON shape) and the problems met; XmlRefused when unreadable."""
    try:
        root = DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden:
        raise XmlRefused(MESSAGES["dtd"]()) from None
    except defusedxml.EntitiesForbidden:
        raise XmlRefused(MESSAGES["entities"]()) from None
    except defusedxml.ExternalReferenceForbidden:
        raise XmlRefused(MESSAGES["external"]()) from None
    except ET.ParseError as exc:
        raise XmlRefused(MESSAGES["syntax"](reason=str(exc))) from None
    ns, name = _split(root.tag)
    if ns != FHIR_NS:
        raise XmlRefused(MESSAGES["not-fhir"](name=name if not ns else f"{{{ns}}}{name}", ns=FHIR_NS))
    tdef = type_def(name)
    if tdef is None or tdef.kind != "resource":
        raise XmlRefused(MESSAGES["unknown-type"](name=name))
    conv = _Converter()
    return conv.resource(root, name), conv.problems


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


class _Converter:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, where: str, key: str, **kw: Any) -> None:
        self.problems.append(Problem(where, MESSAGES[key](**kw)))

    def resource(self, el: ET.Element, rtype: str, where: str | None = None) -> dict[str, Any]:
        tdef = type_def(rtype)
        where = where or rtype
        out: dict[str, Any] = {"resourceType": rtype}
        self._attributes(el, where, allowed=())
        if tdef is None or tdef.kind != "resource":
            self.problem(where, "unknown-type", name=rtype)
            self._generic_children(el, out, where)
            return out
        self._children(el, tdef, "", out, where)
        return out

    def _attributes(self, el: ET.Element, where: str, allowed: tuple[str, ...]) -> dict[str, str]:
        got = {}
        for k, v in el.attrib.items():
            if k in allowed:
                got[k] = v
            else:
                self.problem(where, "attribute", name=k)
        return got

    def _text(self, el: ET.Element, where: str) -> None:
        if (el.text and el.text.strip()) or any(c.tail and c.tail.strip() for c in el):
            self.problem(where, "text")

    def _children(self, el: ET.Element, tdef: TypeDef, path: str, out: dict[str, Any], where: str) -> None:
        """The child elements of `el` (an instance of the element at `path` of `tdef`) into `out`."""
        self._text(el, where)
        allowed = tdef.children(path)
        counts: dict[str, int] = {}
        for c in el:
            if not isinstance(c.tag, str):  # comments and processing instructions
                continue
            ns, name = _split(c.tag)
            at = f"{where}.{name}"
            child = allowed.get(name)
            want = XHTML_NS if child is not None and child.type == "xhtml" else FHIR_NS
            if ns != want:
                self.problem(at, "namespace", name=name, ns=want)
                continue
            if (name == "id" and not (tdef.kind == "resource" and path == "")) or (
                    name == "url" and tdef.name == "Extension" and path == ""):
                self.problem(at, "as-attribute", name=name)
            if child is None:
                # unknown here: kept in a plain shape, so the validator names it as an unknown element
                self._put(out, name, self._generic(c, at), many=name in out)
                continue
            n = counts[name] = counts.get(name, 0) + 1
            many = child.element.many
            if not many and n > 1:
                # kept (as an array), so the readers see a wrong shape instead of a silently lost value
                self.problem(at, "repeated", name=name)
                if not isinstance(out.get(name), list):
                    out[name] = [out[name]] if name in out else []
                many = True
            idx_at = f"{at}[{n - 1}]" if many else at
            self._element(c, child, tdef, name, out, idx_at, many)

    def _element(self, c: ET.Element, child: Child, tdef: TypeDef, name: str, out: dict[str, Any], at: str,
                 many: bool) -> None:
        t = child.type
        if tdef.is_inline(child.element):
            obj: dict[str, Any] = {}
            obj.update(self._complex_attributes(c, at, "BackboneElement"))
            self._children(c, tdef, child.element.path, obj, at)
            self._put(out, name, obj, many)
            return
        if t == "xhtml":
            self._put(out, name, _xhtml(c), many)
            return
        ctd = type_def(t)
        if t == "Resource" or (ctd is not None and ctd.kind == "resource"):
            inner = [x for x in c if isinstance(x.tag, str)]
            self._text(c, at)
            self._attributes(c, at, allowed=())
            if len(inner) != 1 or _split(inner[0].tag)[0] != FHIR_NS:
                self.problem(at, "resource-wrapper")
                return
            rtype = _split(inner[0].tag)[1]
            self._put(out, name, self.resource(inner[0], rtype, at), many)
            return
        if ctd is None:
            self._put(out, name, self._generic(c, at), many)
            return
        if ctd.kind == "primitive-type":
            self._primitive(c, t, name, out, at, many)
            return
        obj = self._complex_attributes(c, at, t)
        self._children(c, ctd, "", obj, at)
        self._put(out, name, obj, many)

    def _complex_attributes(self, c: ET.Element, at: str, t: str) -> dict[str, Any]:
        attrs = self._attributes(c, at, allowed=("id", "url") if t == "Extension" else ("id",))
        return dict(attrs)

    def _primitive(self, c: ET.Element, t: str, name: str, out: dict[str, Any], at: str, many: bool) -> None:
        attrs = self._attributes(c, at, allowed=("value", "id"))
        self._text(c, at)
        ext: dict[str, Any] = {}
        if "id" in attrs:
            ext["id"] = attrs["id"]
        etd = type_def(t)
        for x in c:
            if not isinstance(x.tag, str):
                continue
            ns, xname = _split(x.tag)
            if ns != FHIR_NS:
                self.problem(f"{at}.{xname}", "namespace", name=xname, ns=FHIR_NS)
            elif xname == "extension" and etd is not None:
                n = len(ext.get("extension", []))
                self._element(x, etd.children("")["extension"], etd, "extension", ext, f"{at}.extension[{n}]", True)
            else:
                self._put(ext, xname, self._generic(x, f"{at}.{xname}"), many=xname in ext)
        value: Any = None
        if "value" in attrs:
            value = _typed(attrs["value"], t)
            if value is None:  # kept as the string it is, so every reader treats it as a wrong value
                self.problem(at, "lexical", type=t)
                value = attrs["value"]
        elif not ext.get("extension"):
            self.problem(at, "no-value")
        if many:
            vals = out.setdefault(name, [])
            exts = out.get(f"_{name}")
            i = len(vals)
            vals.append(value)
            if ext or exts is not None:
                exts = out.setdefault(f"_{name}", [None] * i)
                exts.append(ext or None)
            return
        if value is not None:
            out[name] = value
        if ext:
            out[f"_{name}"] = ext

    def _generic(self, el: ET.Element, where: str) -> Any:
        """An element the definitions do not know, kept in a plain shape for the validator to name."""
        if "value" in el.attrib and not len(el):
            return el.attrib["value"]
        out: dict[str, Any] = dict(el.attrib)
        self._generic_children(el, out, where)
        return out

    def _generic_children(self, el: ET.Element, out: dict[str, Any], where: str) -> None:
        for c in el:
            if isinstance(c.tag, str):
                name = _split(c.tag)[1]
                self._put(out, name, self._generic(c, f"{where}.{name}"), many=name in out)

    @staticmethod
    def _put(out: dict[str, Any], name: str, value: Any, many: bool) -> None:
        if many:
            cur = out.get(name)
            if isinstance(cur, list):
                cur.append(value)
            elif cur is not None:
                out[name] = [cur, value]
            else:
                out[name] = [value]
        else:
            out[name] = value


def _typed(raw: str, t: str) -> Any:
    """The JSON value of a primitive's value attribute; None when it is not of its type's lexical form."""
    if t in BOOLEAN:
        return {"true": True, "false": False}.get(raw)
    if t in INTEGERS:
        return int(raw) if _INTEGER.match(raw) else None
    if t in DECIMAL:
        if not _DECIMAL.match(raw):
            return None
        return int(raw) if _INTEGER.match(raw) else float(raw)
    return raw


def _xhtml(el: ET.Element) -> str:
    """The narrative element as XHTML text (the JSON form of a `div`), namespaces written back."""
    parts: list[str] = []
    _write(el, parts, XHTML_NS if _split(el.tag)[0] != XHTML_NS else "", top=True)
    return "".join(parts)


def _write(el: ET.Element, parts: list[str], parent_ns: str, top: bool = False) -> None:
    ns, name = _split(el.tag)
    parts.append(f"<{name}")
    if top or ns != parent_ns:
        parts.append(f' xmlns="{_esc(ns, True)}"')
    for k, v in el.attrib.items():
        ans, aname = _split(k)
        key = f"xml:{aname}" if ans == XML_NS else aname if not ans else f"{{{ans}}}{aname}"
        parts.append(f' {key}="{_esc(v, True)}"')
    children = [c for c in el if isinstance(c.tag, str)]
    if not children and not el.text:
        parts.append("/>")
    else:
        parts.append(">")
        parts.append(_esc(el.text or ""))
        for c in el:
            if isinstance(c.tag, str):
                _write(c, parts, ns)
            parts.append(_esc(c.tail or ""))
        parts.append(f"</{name}>")


def _esc(s: str, attr: bool = False) -> str:
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace('"', "&quot;") if attr else s
