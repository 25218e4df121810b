"""Deterministic ids: the same inputs always give the same logical id / identifier value.

That is what makes a second push an update instead of a duplicate (R4 has no identifier search
parameter on AdverseEvent, so a client-chosen id with PUT is the portable way).
"""
from __future__ import annotations

import re
import uuid

#: a FHIR logical id (R4 `id`): what may be joined into a request path; always matched whole (fullmatch), since
#: a pattern's `$` also matches before a final newline
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

#: Namespace for fhir3t's uuid5 ids (fixed forever: changing it would duplicate every resource).
NAMESPACE = uuid.UUID("5b7e4a0e-3c1d-5f0a-9a55-3f2d1e7c9b11")


def stable_id(*parts: str) -> str:
    """A FHIR id (uuid5, 36 chars, fits [A-Za-z0-9-.]{1,64}) from the given parts."""
    return str(uuid.uuid5(NAMESPACE, "\x1f".join(parts)))


def urn(resource_id: str) -> str:
    return f"urn:uuid:{resource_id}"


def fhir_id(value: object) -> str | None:
    """`value` if it is a valid FHIR id (matched whole: safe to join into a request path), else None.

    `.` and `..` fit the R4 pattern but are path segments, not ids (`Observation/..` is the base itself)."""
    return value if isinstance(value, str) and FHIR_ID.fullmatch(value) and value.strip(".") else None
