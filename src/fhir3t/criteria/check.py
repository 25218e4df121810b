"""Checks over a whole criteria definition at load time (in the spirit of OHDSI Circe's checkers).

A definition that would quietly mis-screen fails to load instead: every window defined is used and
every one used is defined (the builder enforces the second), every value set exists and has codes
(the builder), every declared read names a resource type the sources can attribute to a patient
and the records can date, and the study the criteria name is the study profile's.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from fhir3t.errors import ConfigError
from fhir3t.messages import table
from fhir3t.r4facts import r4_facts

if TYPE_CHECKING:
    from fhir3t.criteria.criteriaset import CriteriaSet
    from fhir3t.study import Study

#: why a criteria definition does not load
MESSAGES = table("criteria.check", {
    "unused-windows": "{where}: window(s) {windows} defined but used by no criterion (a renamed window would otherwise "
                      "silently stop applying)",
    "title-threshold": "{where}: {criterion}: the title repeats {numbers}, a threshold of its rule: name the criterion; "
                       "its description is generated from the rule",
    "undated": "{where}: {criterion} reads {type}, which fhir3t does not know how to date (add it to "
               "profiles/fhir/r4-facts.json 'dates')",
    "no-main-code": "{where}: {criterion} reads {type} by code, but fhir3t does not know which element holds its code "
                    "(add it to profiles/fhir/r4-facts.json 'main_code')",
    "no-patient": "{where}: {criterion} reads {type}, which names no patient fhir3t can follow",
    "other-study": "{where}: criteria name study {system}|{value}, but {source} is {study_system}|{study_value}",
})

#: types the records layer reads without a date (the patient's own resource, shared ones)
_UNDATED_OK = frozenset({"Patient", "ResearchStudy", "Medication"})


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", text))


def _thresholds(rule: object, cs: CriteriaSet) -> set[str]:
    """Every number a rule's parameters or windows hold (what a title must not restate)."""
    out: set[str] = set()
    for name, value in vars(rule).items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out.add(f"{value:g}")
        elif name == "window" and isinstance(value, str) and value in cs.windows:
            out.add(str(cs.windows[value].before.amount))
        elif isinstance(value, list):
            for part in value:
                out |= _thresholds(part, cs)
        elif hasattr(value, "describe") and hasattr(value, "reads"):
            out |= _thresholds(value, cs)
    return out


def check_definition(cs: CriteriaSet, used_windows: set[str], study: Study) -> None:
    where = str(cs.path)
    unused = sorted(set(cs.windows) - used_windows)
    if unused:
        raise ConfigError(MESSAGES["unused-windows"](where=where, windows=", ".join(unused)))
    facts = r4_facts()
    for c in cs.criteria:
        repeated = set().union(*(_numbers(t) for _, t in c.title_text.texts)) & _thresholds(c.rule, cs)
        if repeated:
            raise ConfigError(MESSAGES["title-threshold"](where=where, criterion=c.id, numbers=", ".join(sorted(repeated))))
        for r in c.rule.reads():
            if r.type not in _UNDATED_OK and not facts.date_fields(r.type):
                raise ConfigError(MESSAGES["undated"](where=where, criterion=c.id, type=r.type))
            if r.valueset is not None and r.type not in facts.main_code:
                raise ConfigError(MESSAGES["no-main-code"](where=where, criterion=c.id, type=r.type))
            if r.type not in _UNDATED_OK and not facts.links(r.type):
                raise ConfigError(MESSAGES["no-patient"](where=where, criterion=c.id, type=r.type))
    if (cs.study_system, cs.study_value) != (study.system, study.value) and cs.path == study.criteria_file:
        raise ConfigError(MESSAGES["other-study"](where=where, system=str(cs.study_system), value=str(cs.study_value),
                                                  source=str(study.source), study_system=str(study.system),
                                                  study_value=str(study.value)))
