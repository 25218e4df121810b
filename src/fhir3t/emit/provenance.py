"""Provenance for what fhir3t writes: which software, which rules (by hash), from which records."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fhir3t.canonical import PROFILE_PROVENANCE, SOFTWARE_SYSTEM
from fhir3t.version import __version__


def provenance(resource_id: str, targets: Sequence[str], sources: Iterable[str], recorded: str,
               activity: str, policy: str) -> dict[str, Any]:
    """`policy` names the exact rule data (a sha256) so a result can be traced to its criteria."""
    return {
        "resourceType": "Provenance",
        "id": resource_id,
        "meta": {"profile": [PROFILE_PROVENANCE]},
        "target": [{"reference": t} for t in targets],
        "recorded": recorded,
        "activity": {"text": activity},
        "agent": [{
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                 "code": "assembler", "display": "Assembler"}]},
            "who": {"identifier": {"system": SOFTWARE_SYSTEM, "value": f"fhir3t {__version__}"},
                    "display": f"fhir3t {__version__}"},
        }],
        "policy": [policy],
        "entity": [{"role": "source", "what": {"reference": s}} for s in sources],
    }
