"""Transaction Bundles that are safe to send twice.

Every entry says how the server should make it idempotent: conditional create (`ifNoneExist`),
conditional update (`PUT Type?identifier=...`) or PUT to a deterministic id. References between
new entries use `urn:uuid:` fullUrls, which the server rewrites to the ids it assigns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TransactionBuilder:
    entries: list[dict[str, Any]] = field(default_factory=list)
    _full_urls: set[str] = field(default_factory=set)

    def _add(self, resource: dict, full_url: str, request: dict[str, str]) -> str:
        if full_url in self._full_urls:
            raise ValueError(f"duplicate fullUrl {full_url}")
        self._full_urls.add(full_url)
        self.entries.append({"fullUrl": full_url, "resource": resource, "request": request})
        return full_url

    def create_if_none_exist(self, resource: dict, full_url: str, query: str) -> str:
        """POST guarded by ifNoneExist (e.g. `identifier=<registry>|<study id>`)."""
        return self._add(resource, full_url, {"method": "POST", "url": resource["resourceType"], "ifNoneExist": query})

    def put(self, resource: dict, full_url: str | None = None) -> str:
        """PUT to the resource's own (deterministic) id: create or update."""
        rtype, rid = resource["resourceType"], resource["id"]
        return self._add(resource, full_url or f"urn:uuid:{rid}", {"method": "PUT", "url": f"{rtype}/{rid}"})

    def build(self) -> dict[str, Any]:
        return {"resourceType": "Bundle", "type": "transaction", "entry": list(self.entries)}
