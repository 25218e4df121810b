"""FHIR R4 facts the records are read by (profiles/fhir/r4-facts.json): patient links, main codes,
window dates, status code lists. Data, so that reading a new resource type needs no new Python."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import orjson

from fhir3t.errors import ConfigError
from fhir3t.profiles import profile_path


@dataclass(frozen=True)
class R4Facts:
    patient_links: dict[str, tuple[str, ...]]
    shared_types: frozenset[str]
    main_code: dict[str, str]
    dates: dict[str, tuple[str, ...]]
    status: dict[str, frozenset[str]]  # "Type.element" -> codes
    required_status: frozenset[str]
    never_counts: dict[str, dict[str, frozenset[object]]]
    resource_types: frozenset[str]
    #: Patient extension url -> (its name by language, the sub-extension holding the value or "", code -> R4 gender or None)
    sex_extensions: dict[str, tuple[dict[str, str], str, dict[str, str | None]]] = field(default_factory=dict)
    #: meta.tag / meta.security labels saying a copy is not the whole record: system ("" none) -> codes
    incomplete_labels: dict[str, frozenset[str]] = field(default_factory=dict)
    #: extensions saying an element has no value (data-absent-reason, the ISO 21090 null flavor)
    no_value_extensions: frozenset[str] = frozenset()
    #: report / panel type -> its statuses that withdraw the results it points at
    withdraws_parts: dict[str, frozenset[str]] = field(default_factory=dict)
    #: types read only for what their coded elements name of the criteria's concepts (a visit's reasonCode)
    mention_types: dict[str, frozenset[str]] = field(default_factory=dict)
    _by_type: dict[str, list[tuple[str, frozenset[str]]]] = field(default_factory=dict, compare=False, hash=False)

    def links(self, rtype: str) -> tuple[str, ...]:
        """Elements naming the patient of a type of one patient's record; () for other types."""
        return self.patient_links.get(rtype, ())

    def date_fields(self, rtype: str) -> tuple[str, ...]:
        return self.dates.get(rtype, ())

    def codes_of(self, rtype: str, element: str) -> frozenset[str] | None:
        return self.status.get(f"{rtype}.{element}")

    def incomplete_label(self, resource: dict) -> tuple[str, str] | None:
        """(element, code) of the first meta.tag / meta.security label saying this copy is not the whole record
        (incomplete_labels), else None."""
        meta = resource.get("meta")
        if not self.incomplete_labels or not isinstance(meta, dict):
            return None
        for element in ("tag", "security"):
            labels = meta.get(element)
            for coding in labels if isinstance(labels, list) else ():
                if not isinstance(coding, dict):
                    continue
                system, code = coding.get("system", ""), coding.get("code")
                codes = self.incomplete_labels.get(system) if isinstance(system, str) else None
                if codes is not None and isinstance(code, str) and code in codes:
                    return f"meta.{element}", code
        return None

    def no_value(self, node: object) -> str | None:
        """Why an element says it has no value (the code of a no_value_extensions extension anywhere within it, "?"
        without one), else None. `node` is the element, its `_element` (a primitive's extensions), or a list."""
        if not self.no_value_extensions:
            return None
        stack = [node]
        while stack:
            n = stack.pop()
            if isinstance(n, dict):
                if n.get("url") in self.no_value_extensions and "extension" not in n:
                    code = next((v for k, v in n.items() if k.startswith("value")), None)
                    return code if isinstance(code, str) and code.strip() else "?"
                stack.extend(v for v in n.values() if isinstance(v, (dict, list)))
            elif isinstance(n, list):
                stack.extend(v for v in n if isinstance(v, (dict, list)))
        return None

    def withheld(self, parent: object, name: str) -> str | None:
        """Why the primitive element `name` of `parent` is there without a value, else None: written only as its
        `_name` (extensions, no value: "?" when none says why), or beside a value with a no_value extension."""
        if not isinstance(parent, dict):
            return None
        ext = parent.get(f"_{name}")
        if ext is None:
            return None
        why = self.no_value(ext)
        if parent.get(name) is None:
            return why or "?"
        return why

    def status_of(self, rtype: str) -> list[tuple[str, frozenset[str]]]:
        """(element, codes) of the status elements of a type."""
        hit = self._by_type.get(rtype)
        if hit is None:
            hit = self._by_type[rtype] = [(k.partition(".")[2], v) for k, v in self.status.items()
                                          if k.partition(".")[0] == rtype]
        return hit


@cache
def r4_facts(path: Path | None = None) -> R4Facts:
    path = path or profile_path("fhir", "r4-facts.json")
    try:
        d = orjson.loads(Path(path).read_bytes())
        links = d["patient_links"]
        return R4Facts(
            {t: tuple(v) for t, v in links.items()},
            frozenset(d["shared_types"]),
            dict(d["main_code"]),
            {t: tuple(v) for t, v in d["dates"].items()},
            {k: frozenset(v) for k, v in d["status"].items()},
            frozenset(d["required_status"]),
            {t: {e: frozenset(v) for e, v in rules.items()} for t, rules in d["never_counts"].items()},
            frozenset(d["resource_types"]),
            {url: (dict(e["name"]), str(e.get("part", "")), dict(e["codes"])) for url, e in d.get("sex_extensions", {}).items()},
            {system: frozenset(codes) for system, codes in d.get("incomplete_labels", {}).items()},
            frozenset(d.get("no_value_extensions", ())),
            {t: frozenset(v) for t, v in d.get("withdraws_parts", {}).items()},
            {t: frozenset(v) for t, v in d.get("mention_types", {}).items()},
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(f"{path}: cannot load the FHIR R4 facts ({type(exc).__name__}: {exc})") from None
