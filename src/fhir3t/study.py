"""The study as data (profiles/study.json): who it is, what its ResearchStudy says, how to find
candidates; and recognising references to it in a patient's record."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fhir3t.errors import ConfigError
from fhir3t.messages import table
from fhir3t.profiles import Profiles


@dataclass(frozen=True)
class Study:
    id: str
    system: str
    value: str
    title: str
    short_title: str
    status: str
    phase: dict[str, Any]
    condition: dict[str, Any]
    sponsor: str
    site: str
    summary: str
    candidate_type: str
    candidate_valueset: str
    criteria_file: Path
    safety_file: Path | None
    source: Path
    #: {language: {"title" | "short_title" | "site" | "sponsor": text}}: what a person reads in other languages
    translations: dict[str, dict[str, str]] = field(default_factory=dict)
    #: study subject numbers (`enrolment.subject_number`: literal text and one {n} field, e.g. S-{n:03d})
    subject_number: str = "{n:03d}"
    #: the version of the consent form patients sign now (`enrolment.consent_form`; `--form` names another)
    consent_form: str = "1"
    #: the study's page in its registry (study.json `registry_url`; for ClinicalTrials.gov derived from the NCT number)
    registry: str | None = None

    @property
    def identifier(self) -> dict[str, str]:
        return {"system": self.system, "value": self.value}

    def said(self, name: str, lang: str = "en") -> str:
        """`title`, `short_title`, `site` or `sponsor` in `lang` (as written in English when not translated)."""
        english = str(getattr(self, name))
        if lang == "en":
            return english
        for key in (lang, lang.split("-")[0]):
            text = self.translations.get(key, {}).get(name)
            if text:
                return text
        return english

    @property
    def registry_url(self) -> str | None:
        if self.registry:
            return self.registry
        if self.system.rstrip("/") in REGISTRY_PAGES:
            return REGISTRY_PAGES[self.system.rstrip("/")].format(value=self.value)
        return None


#: registries whose study page follows from the identifier (system -> URL template)
REGISTRY_PAGES = {"http://clinicaltrials.gov": "https://clinicaltrials.gov/study/{value}",
                  "https://clinicaltrials.gov": "https://clinicaltrials.gov/study/{value}"}


#: a study profile that does not load (the CLI's error line)
E = table("study", {
    "unreadable": "{path}: cannot read the study profile ({error})",
    "wrong": "{path}: study profile is missing or has a wrong {error}",
})


def load_study(profiles: Profiles | None = None) -> Study:
    path = (profiles or Profiles.at()).path("study.json")
    try:
        d = orjson.loads(Path(path).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigError(E["unreadable"](path=str(path), error=str(exc))) from None
    try:
        ident = d["identifier"]
        cand = d["candidates"]
        enrol = d.get("enrolment") or {}
        base = Path(path).parent
        return Study(
            str(d["id"]), str(ident["system"]), str(ident["value"]), str(d["title"]),
            str(d.get("short_title") or d["title"]), str(d.get("status", "active")), dict(d.get("phase") or {}),
            dict(d.get("condition") or {}), str(d.get("sponsor", "")), str(d.get("site", "")),
            str(d.get("summary", "")), str(cand["type"]), str(cand["valueset"]),
            base / d["criteria"], base / d["safety"] if d.get("safety") else None, Path(path),
            {str(lang): {str(k): str(v) for k, v in t.items()} for lang, t in (d.get("translations") or {}).items()},
            str(enrol.get("subject_number") or "{n:03d}"), str(enrol.get("consent_form") or "1"),
            str(d["registry_url"]) if d.get("registry_url") else None,
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(E["wrong"](path=str(path), error=str(exc))) from None


@dataclass
class StudyMatcher:
    """Recognises references to this study (by identifier, or via known ResearchStudy resources)."""

    system: str
    value: str
    refs: set[str] = field(default_factory=set)
    other_refs: set[str] = field(default_factory=set)

    def learn(self, studies: Iterable[dict]) -> None:
        for s in studies:
            rid = s.get("id")
            ref = f"ResearchStudy/{rid}" if isinstance(rid, str) else None
            idents = s.get("identifier")
            ours = any(isinstance(i, dict) and self._same(i) is True for i in idents) if isinstance(idents, list) else False
            if ref:
                (self.refs if ours else self.other_refs).add(ref)

    def _same(self, ident: dict) -> bool | None:
        """True: our identifier; False: another value; None: our value under another system."""
        def norm(s: object) -> str:
            s = s.strip().rstrip("/").lower().replace("https://", "http://", 1) if isinstance(s, str) else ""
            return s.replace("http://www.", "http://", 1)

        value = ident.get("value")
        if not isinstance(value, str) or value.strip().upper() != self.value.upper():
            return False
        if "system" not in ident or norm(ident.get("system")) == norm(self.system):
            return True
        return None  # e.g. the NCT number under a registry OID: a person should confirm

    def match(self, reference: object) -> bool | None:
        """True: this study; False: another study; None: cannot tell."""
        if not isinstance(reference, dict):
            return None
        ident = reference.get("identifier")
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            return self._same(ident)
        ref = reference.get("reference")
        if isinstance(ref, str):
            norm = "/".join(ref.rstrip("/").split("/")[-2:])
            if norm in self.refs:
                return True
            if norm in self.other_refs:
                return False
            if norm.split("/")[-1].upper() == self.value:
                return True
        return None  # a display text proves nothing either way
