"""The requests every check shares: first pages of searches (never all pages: a server that ignores a
parameter may answer with everything it has), a few sample resources per type, and search values
that match nothing, so "applied" can be told from "ignored"."""
from __future__ import annotations

import uuid

from fhir3t.fhirutil import normalize_reference
from fhir3t.jsonshape import child, child_text, text
from fhir3t.transport.http import FhirClient, HttpStatusError, ResponseError, entries, next_link
from fhir3t.transport.urls import clean

#: a code system no server has: a token search with it must find nothing
NOTHING_SYSTEM = "urn:fhir3t:check-server:nothing"
SAMPLE_COUNT = 20




def ref_key(parent: object, element: str) -> str | None:
    """`Type/id` of the reference in `parent[element]`, or None."""
    ref = child_text(child(parent, element), "reference")
    return normalize_reference(ref, {}) if ref and not ref.startswith("#") else None


class Session:
    """One check run against one client: shared samples and the run's match-nothing values."""

    def __init__(self, client: FhirClient) -> None:
        self.client = client
        self.tag = uuid.uuid4().hex[:12]
        self._samples: dict[str, list[dict] | HttpStatusError] = {}

    @property
    def cs(self) -> dict:
        return self.client.capabilities()

    def nothing_token(self) -> str:
        return f"{NOTHING_SYSTEM}|none-{self.tag}"

    def nothing_ref(self, rtype: str) -> str:
        return f"{rtype}/fhir3t-nothing-{self.tag}"

    def first_page(self, rtype: str, params: list[tuple[str, str]]) -> list[dict]:
        """The `rtype` resources on the first page of a search (outcome and include entries left out).

        An entry of another type makes the answer a ResponseError, as in `FhirClient.search`.
        """
        return self.page(rtype, params)[0]

    def page(self, rtype: str, params: list[tuple[str, str]]) -> tuple[list[dict], bool]:
        """`first_page`, and whether the server has more pages."""
        page = self.client.get(rtype, params=params)
        if not isinstance(page, dict) or page.get("resourceType") != "Bundle":
            raise ResponseError(f"{rtype} search: the server did not answer with a Bundle")
        out = []
        for e in entries(page, f"{rtype} search"):
            res = e.get("resource")
            mode = child_text(child(e, "search"), "mode")
            found = text(res.get("resourceType")) if isinstance(res, dict) else None
            if mode in ("outcome", "include") or found == "OperationOutcome":
                continue
            if found != rtype or not isinstance(res, dict):
                raise ResponseError(f"{rtype} search: an entry holds {clean(found or 'no resource', 64)} where a "
                                    f"{rtype} belongs")
            out.append(res)
        return out, next_link(page) is not None

    def samples(self, rtype: str) -> list[dict]:
        """A few resources of a type (the first page of an unfiltered search), read once a run."""
        got = self._samples.get(rtype)
        if got is None:
            try:
                got = self.first_page(rtype, [("_count", str(SAMPLE_COUNT))])
            except HttpStatusError as exc:
                got = exc
            self._samples[rtype] = got
        if isinstance(got, HttpStatusError):
            raise got
        return got

    def remember(self, rtype: str, resource: dict) -> None:
        """Put a resource the run made (the write test's study) first among the samples."""
        try:
            have = self.samples(rtype)
        except HttpStatusError:
            have = []
        self._samples[rtype] = [resource, *(r for r in have if r.get("id") != resource.get("id"))]
