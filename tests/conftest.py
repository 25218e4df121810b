from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# a developer's ~/.config/fhir3t/config.toml or /etc/fhir3t/config.toml must not change test results;
# tests of the config file name theirs with --config or FHIR3T_CONFIG
os.environ["FHIR3T_CONFIG"] = "none"
# nor may a developer's locale or time zone: the language and the site's zone come from the environment when no
# option or config names them (tests of that set them themselves)
os.environ["LC_ALL"] = os.environ["LC_MESSAGES"] = os.environ["LANG"] = "C.UTF-8"
os.environ["TZ"] = "UTC"

from fhir3t.criteria.model import ScreeningResult
from fhir3t.dates import parse_day
from fhir3t.errors import Problems
from fhir3t.pipeline import Definition, Run, screen_records
from fhir3t.sources.grouping import SharedIndex, group_documents

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SAMPLES = ROOT / "samples"
AS_OF = "2026-06-15"
#: the day the screening samples are written for (their Bundle.meta.tag)
SAMPLES_AS_OF = "2026-11-16"
_P01 = json.loads((SAMPLES / "screening" / "01-eligible-classic.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def definition() -> Definition:
    return Definition.load()


@pytest.fixture(scope="session")
def definition_local() -> Definition:
    return Definition.load(None, [SAMPLES / "conceptmaps" / "hospital-local.json"])


def screen_bundle(definition: Definition, bundle: dict, as_of: str = AS_OF, d1: str | None = None,
                  problems: Problems | None = None) -> list[ScreeningResult]:
    run = Run.start(definition, as_of=parse_day(as_of), d1=parse_day(d1) if d1 else None, problems=problems)
    shared = SharedIndex()
    records = group_documents([("test.json", bundle)], run.problems, shared, run.filter)
    return list(screen_records(definition, run, records, shared))


def eligible_p01() -> dict:
    """A fresh copy of the eligible sample patient (samples/screening/01-eligible-classic.json): what the shape
    tests change one record of."""
    return copy.deepcopy(_P01)


def resource_in(bundle: dict, rid: str) -> dict:
    """The resource of a Bundle with this id."""
    return next(e["resource"] for e in bundle["entry"] if e["resource"].get("id") == rid)


def screen_one(definition: Definition, bundle: dict, as_of: str = SAMPLES_AS_OF) -> ScreeningResult:
    """The one patient's ScreeningResult of a Bundle."""
    results = screen_bundle(definition, bundle, as_of)
    assert len(results) == 1
    return results[0]


@pytest.fixture
def screen(definition: Definition):
    """screen(*resources, as_of=..., d1=...) -> the one patient's ScreeningResult."""
    from factory import bundle, patient

    def run(*resources: dict, as_of: str = AS_OF, d1: str | None = None, with_patient: bool = True,
            problems: Problems | None = None) -> ScreeningResult:
        res: Iterable[dict] = resources
        if with_patient and not any(r["resourceType"] == "Patient" for r in resources):
            res = (patient(), *resources)
        results = screen_bundle(definition, bundle(*res), as_of, d1, problems)
        assert len(results) == 1, results
        return results[0]

    return run
