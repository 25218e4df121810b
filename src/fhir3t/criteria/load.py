"""Build rule trees from a reviewed criteria file (JSON, checked against its JSON Schema).

The file's structure is checked by profiles/criteria/criteria.schema.json; each leaf by its rule
kind's own schema (criteria/kinds/), so a misspelt parameter fails loudly instead of being ignored.
After building, `check.check_definition` looks over the whole definition (see there).
"""
from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

import jsonschema
import orjson

from fhir3t.criteria.base import Kind, Rule
from fhir3t.criteria.check import check_definition
from fhir3t.criteria.combine import Combine, Not
from fhir3t.criteria.context import WindowSpec
from fhir3t.criteria.criteriaset import CriteriaSet, Criterion
from fhir3t.criteria.readings import Readings
from fhir3t.dates import Duration
from fhir3t.errors import ConfigError
from fhir3t.messages import Text, table
from fhir3t.profiles import Profiles
from fhir3t.smallfiles import DATA_LIMIT, read_small
from fhir3t.study import Study, load_study
from fhir3t.terminology import Terminology, ValueSet
from fhir3t.textnorm import fold

#: a criteria file that does not load (the CLI's error line); `at` is a criterion id and rule path, as written
E = table("criteria.load", {
    "at": "{where}: {at}: {error}",
    "no-codes": "{where}: {at}: value set {valueset} has no codes",
    "window": "{where}: {at}: window {window} is not defined in 'windows'",
    "kind": "{where}: {at}: unknown rule kind {kind} (known: {known})",
    "the-file": "the criteria file",
    "not-found": "{path}: criteria file not found",
    "not-json": "{path}: not valid JSON ({error})",
    "duplicate": "{path}: duplicate criterion id {id}",
})


class Builder:
    """What a rule kind's `build` may ask while the tree is built (and what the checker learns)."""

    def __init__(self, tx: Terminology, data: dict, windows: dict[str, WindowSpec], where: str,
                 checklist_versions: frozenset[str] = frozenset()) -> None:
        self.tx = tx
        self.windows = windows
        self.where = where
        self.at = where
        self.checklist: str = data["checklist"]
        self.checklist_versions = checklist_versions
        self.used_windows: set[str] = set()
        self.used_valuesets: dict[str, ValueSet] = {}
        rd = data["readings"]
        self.readings = Readings(
            self.vs(rd["positive_valueset"]), self.vs(rd["negative_valueset"]),
            frozenset(fold(s) for s in rd["positive_strings"]),
            frozenset(fold(s) for s in rd["negative_strings"]),
            frozenset(fold(s) for s in rd.get("indeterminate_strings", ())),
            frozenset(fold(s) for s in rd.get("reference_markers", ())),
            normal=self.vs(rd["normal_valueset"]) if "normal_valueset" in rd else None,
            normal_strings=frozenset(fold(s) for s in rd.get("normal_strings", ())),
            hedge_words=frozenset(fold(s) for s in rd.get("hedge_words", ())),
            inactive_words=frozenset(fold(s) for s in rd.get("inactive_words", ())),
        )

    @staticmethod
    def fold(text: str) -> str:
        return fold(text)

    def vs(self, vs_id: str) -> ValueSet:
        try:
            vs = self.tx.valueset(vs_id)
        except ConfigError as exc:
            raise ConfigError(E["at"](where=self.where, at=self.at, error=exc.msg or str(exc))) from None
        if not vs.order and not vs.include_filters:
            raise ConfigError(E["no-codes"](where=self.where, at=self.at, valueset=repr(vs_id)))
        self.used_valuesets[vs_id] = vs
        return vs

    def window(self, spec: dict) -> str:
        name = spec.get("window")
        if name not in self.windows:
            raise ConfigError(E["window"](where=self.where, at=self.at, window=repr(name)))
        self.used_windows.add(name)
        return name

    def node(self, spec: dict, at: str) -> Rule:
        from fhir3t.criteria.kinds import KINDS

        self.at = at
        label = spec.get("label", "")
        for op in ("all", "any", "either"):
            if op in spec:
                return Combine(op, [self.node(s, f"{at}/{op}[{i}]") for i, s in enumerate(spec[op])], label)
        if "not" in spec:
            return Not(self.node(spec["not"], f"{at}/not"), label)
        kind = spec.get("rule")
        cls = KINDS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ConfigError(E["kind"](where=self.where, at=at, kind=repr(kind), known=", ".join(sorted(KINDS))))
        errors = sorted(_validator(cls).iter_errors(spec), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            loc = "/".join(str(p) for p in e.path)
            raise ConfigError(f"{self.where}: {at}: rule {kind!r}: {loc + ': ' if loc else ''}{e.message}")
        return cls.build(spec, self)


@cache
def _validator(cls: type[Kind]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(cls.schema())


def checklist_versions(profiles: Profiles, checklist: str) -> frozenset[str]:
    """The versions of the checklist Questionnaire the study ships (`Questionnaire-<id>.json` in its profiles, as
    an implementation guide names it): a response to another version may ask other questions under the same
    linkIds. None known (no such file, or one without a version): only responses that name no version are read."""
    rtype, _, rid = checklist.rstrip("/").rpartition("/")
    path = profiles.path(f"{rtype.rpartition('/')[2]}-{rid}.json")
    try:
        q = orjson.loads(read_small(path, DATA_LIMIT, E["the-file"]()))
    except (OSError, orjson.JSONDecodeError):
        return frozenset()
    version = q.get("version") if isinstance(q, dict) else None
    return frozenset((version,)) if isinstance(version, str) and version.strip() else frozenset()


def load_criteria(tx: Terminology, path: Path | None = None, *, study: Study | None = None,
                  profiles: Profiles | None = None) -> CriteriaSet:
    """The criteria file at `path` (default: the study's), built and checked against `study`."""
    profiles = profiles or Profiles.at()
    study = study or load_study(profiles)
    if path is None:
        path = study.criteria_file
    try:
        raw_bytes = read_small(path, DATA_LIMIT, E["the-file"]())
        data = orjson.loads(raw_bytes)
    except FileNotFoundError:
        raise ConfigError(E["not-found"](path=str(path))) from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError(E["not-json"](path=str(path), error=str(exc))) from None
    schema = orjson.loads(profiles.path("criteria", "criteria.schema.json").read_bytes())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        loc = "/".join(str(p) for p in e.path) or "(top)"
        raise ConfigError(f"{path}: {loc}: {e.message}")
    windows: dict[str, WindowSpec] = {}
    for name, w in data["windows"].items():
        windows[name] = WindowSpec(name, w["anchor"], Duration.parse(w["before"]))
    builder = Builder(tx, data, windows, str(path), checklist_versions(profiles, data["checklist"]))
    criteria = []
    seen: set[str] = set()
    for c in data["criteria"]:
        if c["id"] in seen:
            raise ConfigError(E["duplicate"](path=str(path), id=c["id"]))
        seen.add(c["id"])
        rule = builder.node(c["rule"], c["id"])
        title = c["title"]
        title_text = Text.of(title) if isinstance(title, str) else Text.of(title["en"], title)
        criteria.append(Criterion(c["id"], c["kind"], title_text, bool(c.get("requires_review", False)), rule,
                                  rule.describe(windows)))
    digest = hashlib.sha256(raw_bytes)
    vdir = profiles.path("valuesets")
    for vs_path in sorted(vdir.glob("*.json")):
        digest.update(vs_path.name.encode())
        digest.update(vs_path.read_bytes())
    for extra in (profiles.path("fhir", "r4-facts.json"), profiles.path("terminology", "code-systems.json")):
        digest.update(extra.read_bytes())
    out = CriteriaSet(data["id"], data["version"], data.get("title", data["id"]), data["study"]["system"],
                      data["study"]["value"], data["checklist"], windows, criteria, digest.hexdigest(), data, Path(path))
    check_definition(out, builder.used_windows, study)
    return out
