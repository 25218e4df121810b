"""Words of the safety data a person reads in a report or a listing, in their language: AE outcomes, sex, and
the names of CTCAE terms, organ classes and drugs (data: profiles/safety/ctcae-v5-terms.json `names`, the drugs'
value-set titles with their translation extension), through one mapping the caller builds (`names_of`).

The JSON report keeps the codes and English names; only what a page or a terminal shows goes through here.
"""
from __future__ import annotations

from collections.abc import Mapping

from fhir3t.messages import Text, render, table

#: R4 adverse-event-outcome codes (and fhir3t's own episode outcomes) as words
OUTCOMES = table("safety.outcome", {
    "resolved": "resolved",
    "recovering": "recovering",
    "ongoing": "ongoing",
    "resolvedWithSequelae": "resolved with sequelae",
    "fatal": "fatal",
    "unknown": "unknown",
})
SEXES = table("safety.sex", {
    "female": "female",
    "male": "male",
    "other": "other",
    "unknown": "unknown",
})


def outcome_in(code: str | None, lang: str = "en") -> str:
    """An AE outcome code as a word (the code itself in English, as the listings have always shown it)."""
    if not code:
        return "–"
    if lang == "en" or code not in OUTCOMES:
        return code
    return render(OUTCOMES[code](), lang)


def sex_in(code: str, lang: str = "en") -> str:
    if lang == "en" or code not in SEXES:
        return code
    return render(SEXES[code](), lang)


def name_in(names: Mapping[str, Text] | None, name: str, lang: str = "en") -> str:
    """A term, organ class or drug in `lang`, when the data give it a name there; as written otherwise."""
    if lang == "en" or not names or name not in names:
        return name
    return names[name].get(lang)


def term_in(term: str, lang: str = "en", names: Mapping[str, Text] | None = None) -> str:
    return name_in(names, term, lang)


def seriousness_in(code: str, lang: str = "en") -> str:
    from fhir3t.safety.findings import seriousness_text

    return seriousness_text(code, lang)


def names_of(config: object) -> dict[str, Text]:
    """Every name the safety data give in other languages: CTCAE terms and organ classes, and the drugs (by id,
    from their value sets' titles). `config` is a SafetyConfig."""
    out: dict[str, Text] = {}
    terms = getattr(config, "terms", None)
    for name, term in (getattr(terms, "by_name", None) or {}).items():
        text = getattr(term, "text", None)
        if text is not None:
            out[name] = text
    out.update(getattr(terms, "soc_names", None) or {})
    out.update(getattr(getattr(config, "aesi", None), "names", None) or {})
    out.update(getattr(getattr(config, "baseline", None), "names", None) or {})
    for drug in getattr(config, "drugs", ()) or ():
        vs = getattr(drug, "records", None)
        if vs is not None:
            out[drug.id] = vs.name_text
    return out


__all__ = ["OUTCOMES", "SEXES", "name_in", "names_of", "outcome_in", "seriousness_in", "sex_in", "term_in"]
