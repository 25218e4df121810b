"""FHIR helpers, one home each (no trial knowledge): the patient of a resource, references
normalised to `Type/id`, search-value escaping, and how a server is named in messages.

Everything that reads a patient out of a resource (sources, the watcher, check-server, safety) or
escapes a search value asks here, so the rules cannot drift apart.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from fhir3t.ids import fhir_id
from fhir3t.jsonshape import child, child_text, text
from fhir3t.r4facts import r4_facts


def search_escape(value: str) -> str:
    """A token/string search value's part with FHIR's search escapes (`\\`, `,`, `|`, `$`)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("|", "\\|").replace("$", "\\$")


def server_label(url: str, *, path: bool = True) -> str:
    """`scheme://host[:port][/path]` of a base URL, for messages, headers and logs: never userinfo,
    never a query or fragment. `path=False` for logs, where a path can hold a tenant's name."""
    u = urlsplit(url)
    try:
        port = u.port
    except ValueError:
        port = None
    host = u.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{u.scheme}://{host}{f':{port}' if port else ''}{u.path if path else ''}"

#: a FHIR resource type name
RESOURCE_TYPE = re.compile(r"[A-Z][A-Za-z]{1,63}", re.ASCII)


def patient_reference(resource: dict) -> str | None:
    """The reference string by which a resource names its patient, as written (first link present)."""
    rtype = resource.get("resourceType")
    links = r4_facts().links(rtype) if isinstance(rtype, str) else ()
    for f in links:
        v = resource.get(f)
        if isinstance(v, list):  # e.g. Appointment.participant: the first actor that is a Patient
            for p in v:
                actor = p.get("actor") if isinstance(p, dict) else None
                ref = actor.get("reference") if isinstance(actor, dict) else None
                if isinstance(ref, str) and "Patient/" in ref:
                    return ref
            continue
        if isinstance(v, dict) and isinstance(v.get("reference"), str):
            return v["reference"]
    return None


#: an identifier a record names its patient by: (system, value); system None matches any system, "" none
Token = tuple[str | None, str]


@dataclass(frozen=True, slots=True)
class PatientLink:
    """How a resource names its patient: a reference as written (relative, absolute, urn:uuid, or a
    conditional `Patient?identifier=sys|val`), or a logical reference's identifier."""

    reference: str | None = None
    identifier: Token | None = None
    #: Reference.type as written (a type name or its StructureDefinition URL), None when absent
    type: str | None = None

    def typed_otherwise(self, rtype: str) -> bool:
        """Does the Reference's `type` name another resource type than `rtype`? (A `Patient/p01` typed
        `Group` contradicts itself: which one it means cannot be told.)"""
        if self.type is None:
            return False
        return self.type.rstrip("/").rsplit("/", 1)[-1] != rtype


def patient_link(resource: dict, links: tuple[str, ...] | None = None) -> PatientLink | None:
    """The first link naming the resource's patient (`links`: the elements to look in; default the type's)."""
    if links is None:
        rtype = resource.get("resourceType")
        links = r4_facts().links(rtype) if isinstance(rtype, str) else ()
    for f in links:
        v = resource.get(f)
        if isinstance(v, list):  # Appointment.participant: the first actor that is a Patient
            ref = patient_reference(resource)
            if ref is not None:
                return PatientLink(ref)
            continue
        if not isinstance(v, dict):
            continue
        kind = v.get("type") if isinstance(v.get("type"), str) else None
        if isinstance(v.get("reference"), str):
            return PatientLink(v["reference"], None, kind)
        token = identifier_token(v.get("identifier"))
        if token is not None:
            return PatientLink(None, token, kind)
    return None


def identifier_token(identifier: object) -> Token | None:
    """(system, value) of an Identifier with a value (system None when it has none)."""
    if not isinstance(identifier, dict) or not isinstance(identifier.get("value"), str) or not identifier["value"]:
        return None
    system = identifier.get("system")
    return (system if isinstance(system, str) and system else None, identifier["value"])


def conditional_patient(ref: str) -> str | Token | None:
    """A conditional reference to a Patient: `Patient?_id=x` -> "Patient/x"; `Patient?identifier=sys|val`
    -> (sys, val) (`|val`: no system, `val`: any system). None for anything else (other search
    parameters, several criteria, another type): such a reference names no patient fhir3t can find."""
    head, sep, query = ref.partition("?")
    if not sep or head.rstrip("/").rsplit("/", 1)[-1] != "Patient":
        return None
    params = parse_qsl(query, keep_blank_values=True)
    if len(params) != 1:
        return None
    name, value = params[0]
    if name == "_id" and value and "/" not in value:
        return f"Patient/{value}"
    if name != "identifier" or not value:
        return None
    system, bar, val = _split_token(value)
    if not val:
        return None
    return (system, val) if bar else (None, val)


def _split_token(value: str) -> tuple[str, bool, str]:
    """A token search value `system|code` split at its first unescaped `|` (FHIR escapes it as `\\|`)."""
    i = 0
    while i < len(value):
        if value[i] == "\\":
            i += 2
            continue
        if value[i] == "|":
            return value[:i].replace("\\|", "|"), True, value[i + 1:].replace("\\|", "|")
        i += 1
    return "", False, value.replace("\\|", "|")


def identifier_keys(patient: dict) -> list[str]:
    """The keys a Patient is found by when a record names it by identifier (see `token_key`)."""
    out: list[str] = []
    for ident in patient.get("identifier") or () if isinstance(patient.get("identifier"), list) else ():
        token = identifier_token(ident)
        if token is None:
            continue
        system, value = token
        out += [f"{system or ''}|{value}", f"*|{value}"]
    return list(dict.fromkeys(out))


def token_key(token: Token) -> str:
    """The key a record's identifier is looked up by among `identifier_keys` (system None: any system)."""
    system, value = token
    return f"*|{value}" if system is None else f"{system}|{value}"


def patient_id(resource: dict) -> str | None:
    """The id of the patient a resource belongs to (its own for a Patient), only when it is a valid
    FHIR id: for a server's answers, where a value may be of any shape (a search's `_elements` list
    links that `patient_reference` would take as written)."""
    rtype = text(resource.get("resourceType")) or ""
    if rtype == "Patient":
        return fhir_id(resource.get("id"))
    for f in r4_facts().links(rtype):
        ref = child_text(child(resource, f), "reference")
        key = normalize_reference(ref, {}) if ref else None
        if key and key.startswith("Patient/"):
            return fhir_id(key.split("/", 1)[1])
    return None


def has_patient_link(resource: dict) -> bool:
    """Does the resource have any element that could name its patient (even an unusable one)?"""
    rtype = resource.get("resourceType")
    links = r4_facts().links(rtype) if isinstance(rtype, str) else ()
    return any(f in resource for f in links)


def normalize_reference(ref: str, aliases: dict[str, str]) -> str | None:
    """`Patient/x`, `urn:uuid:...` (via the Bundle's fullUrls) or `http(s)://base/Patient/x` -> `Type/id`."""
    hit = aliases.get(ref)
    if hit:
        return hit
    if ref.startswith("Patient/") and ref.count("/") == 1 and len(ref) > 8:
        return ref
    if ref.startswith("urn:"):
        return None
    parts = ref.split("?")[0].rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] and parts[-1]:
        return f"{parts[-2]}/{parts[-1]}"
    return None


def reference_base(ref: str) -> str | None:
    """The server an absolute `http(s)://host/base/Type/id[/_history/v]` reference (or fullUrl) names, as
    `host[:port]/base` (host lower-cased, scheme left out: one server is written with either); None for a
    relative, `urn:` or other reference."""
    head = ref.split("?")[0].split("#")[0]
    scheme, sep, rest = head.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    parts = rest.rstrip("/").split("/")
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) < 3 or not RESOURCE_TYPE.fullmatch(parts[-2]) or not parts[-1]:
        return None
    return "/".join([parts[0].lower(), *parts[1:-2]])


def fhir_reference(ref: object, base: str | None = None) -> tuple[str, str] | None:
    """(type, id) of a FHIR reference, parsed as one, never as a path: `Type/id` or `Type/id/_history/v`, or
    the same under `base` (the server's own base URL). The type must be a resource type name and the id a
    FHIR id (matched whole), so what comes back can be joined into a request path: `Observation/../../x`,
    `Patient/a?b`, a URL on another server or under another base are None."""
    if not isinstance(ref, str):
        return None
    rest = ref
    if base is not None and ref.startswith(base.rstrip("/") + "/"):
        rest = ref[len(base.rstrip("/")) + 1:]
    parts = rest.split("/")
    if len(parts) == 4 and parts[2] == "_history" and fhir_id(parts[3]):
        parts = parts[:2]
    if len(parts) != 2 or not RESOURCE_TYPE.fullmatch(parts[0]) or fhir_id(parts[1]) is None:
        return None
    return parts[0], parts[1]
