"""Narrative XHTML (`Narrative.div`): txt-1 and txt-2 checked natively, as fhirpathpy has no htmlChecks().

R4 rules: well-formed XHTML whose root is a `div` in the XHTML namespace; only the basic HTML
formatting elements and attributes (HTML 4.0 chapters 7-11 and 15, no section 9.4), no scripts,
forms, frames, event attributes (`on*`) or `javascript:` links; and some non-whitespace content
or an image (txt-2). HTML named entities (`&nbsp;`) are accepted as the HL7 validator does.
Messages name the element or attribute, never the text.
"""
from __future__ import annotations

import html.entities
import xml.etree.ElementTree as ET
from xml.parsers import expat

from fhir3t.messages import Msg, table

XHTML_NS = "http://www.w3.org/1999/xhtml"
ALLOWED_ELEMENTS = frozenset({
    "p", "br", "div", "h1", "h2", "h3", "h4", "h5", "h6", "a", "span", "b", "em", "i", "strong", "small", "big",
    "tt", "dfn", "q", "var", "abbr", "acronym", "cite", "blockquote", "hr", "address", "bdo", "kbd",
    "samp", "sub", "sup", "ul", "ol", "li", "dl", "dt", "dd", "pre", "table", "caption", "colgroup", "col",
    "thead", "tr", "tfoot", "tbody", "th", "td", "code", "img", "ins", "del",
})
ALLOWED_ATTRIBUTES = frozenset({
    "title", "style", "class", "id", "lang", "xml:lang", "xml:space", "dir", "accesskey", "tabindex",
    # a
    "href", "name",
    # img
    "src", "alt", "width", "height", "border", "hspace", "vspace", "usemap",
    # tables
    "summary", "align", "valign", "char", "charoff", "span", "cellspacing", "cellpadding", "frame", "rules",
    "abbr", "axis", "headers", "scope", "rowspan", "colspan", "bgcolor", "nowrap",
    # lists, quotes, misc
    "type", "start", "value", "compact", "cite", "datetime", "clear", "noshade", "size",
})
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
MESSAGES = table("validate.xhtml", {
    "not-well-formed": "the narrative is not well-formed XHTML ({error})",
    "root": "the narrative root must be a <div> in the XHTML namespace (xmlns=\"{ns}\")",
    "element": "element <{name}> is not allowed in a narrative",
    "attribute": "attribute {attribute} is not allowed on <{name}> in a narrative",
    "script-url": "a script URL is not allowed in {attribute}",
    "empty": "the narrative SHALL have some non-whitespace content",
    "doctype": "a DOCTYPE or entity declaration is not allowed",
})


def narrative_problems(div: str) -> list[tuple[str, Msg]]:
    """(constraint key, message) for every rule the XHTML breaks; [] when it is fine."""
    root, error = _parse(div)
    if root is None:
        return [("txt-1", MESSAGES["not-well-formed"](error=error))]
    out: list[tuple[str, Msg]] = []
    tag, ns = _local(root.tag)
    if tag != "div" or ns != XHTML_NS:
        out.append(("txt-1", MESSAGES["root"](ns=XHTML_NS)))
    has_text = False
    for el in root.iter():
        name, ens = _local(el.tag)
        if ens != XHTML_NS or name not in ALLOWED_ELEMENTS:
            out.append(("txt-1", MESSAGES["element"](name=name)))
        for attr, value in el.attrib.items():
            aname = attr.replace(_XML_NS, "xml:")
            if "}" in aname:
                aname = aname.split("}", 1)[1]
            if aname.lower().startswith("on") or aname not in ALLOWED_ATTRIBUTES:
                out.append(("txt-1", MESSAGES["attribute"](attribute=repr(aname), name=name)))
            elif aname in ("href", "src") and value.strip().lower().startswith(("javascript:", "vbscript:")):
                out.append(("txt-1", MESSAGES["script-url"](attribute=repr(aname))))
        if (el.text and el.text.strip()) or (el.tail and el.tail.strip() and el is not root) or name == "img":
            has_text = True
    if not has_text:
        out.append(("txt-2", MESSAGES["empty"]()))
    return out


def _local(tag: str) -> tuple[str, str | None]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return name, ns
    return tag, None


def _parse(text: str) -> tuple[ET.Element | None, str | Msg]:
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return None, MESSAGES["doctype"]()
    parser = ET.XMLParser()
    parser.entity.update({k: chr(v) for k, v in html.entities.name2codepoint.items()})
    try:
        parser.feed(text)
        return parser.close(), ""
    except (ET.ParseError, expat.ExpatError) as exc:
        return None, str(exc).split(":")[0]
