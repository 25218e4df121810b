"""Shared by the CDS Hooks tests: the samples as an EHR would prefetch them, a hook request, a running service."""
from __future__ import annotations

import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from fhir3t.pipeline import Definition
from fhir3t.service.app import create_app
from fhir3t.service.hooks import CdsService
from fhir3t.service.prefetch import as_prefetch
from fhir3t.service.runner import InThread, build_cds
from fhir3t.service.settings import ServeSettings

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples" / "screening"
CONCEPT_MAP = ROOT / "samples" / "conceptmaps" / "hospital-local.json"
SAMPLES_AS_OF = date(2026, 11, 16)
SERVICE = "nct06438679-patient-view"


def sample_resources(name: str) -> list[dict]:
    """Every resource of one sample Bundle (e.g. '01-eligible-classic')."""
    bundle = json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return [e["resource"] for e in bundle["entry"] if isinstance(e.get("resource"), dict)]


def patient_id(resources: list[dict]) -> str:
    return next(r["id"] for r in resources if r["resourceType"] == "Patient")


def hook_request(pid: str, prefetch: dict | None = None, **extra: Any) -> dict:
    body: dict[str, Any] = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
                            "context": {"userId": "Practitioner/dr-1", "patientId": pid}}
    if prefetch is not None:
        body["prefetch"] = prefetch
    body.update(extra)
    return body


def full_prefetch(cds: CdsService, resources: list[dict]) -> dict:
    return as_prefetch(resources, cds.services[SERVICE].prefetch, patient_id(resources))


@contextmanager
def running(settings: ServeSettings, definition: Definition, *, head_timeout: float = 10.0) -> Iterator[tuple[str, CdsService]]:
    """The service on a free loopback port (uvicorn on a thread, with the bounds `serve` runs with), and its
    CdsService."""
    cds, store = build_cds(settings, definition)
    app = create_app(cds, max_body=int(settings.max_body_mb * 1024 * 1024), body_timeout=settings.body_timeout,
                     cors_origins=settings.cors_origins, on_shutdown=[cds.close, store.close])
    with InThread(app, max_connections=settings.max_connections, head_timeout=head_timeout) as url:
        yield url, cds


class Recorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP server answering FHIR searches with `answer(path) -> (status, body, delay)`; it records
    each request's path and Authorization header."""

    daemon_threads = True

    def __init__(self, answer) -> None:
        self.answer = answer
        self.seen: list[tuple[str, str | None]] = []
        self.finished = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(inner) -> None:
                self.seen.append((inner.path, inner.headers.get("Authorization")))
                status, body, delay = self.answer(inner.path)
                time.sleep(delay)
                data = json.dumps(body).encode()
                try:
                    inner.send_response(status)
                    inner.send_header("Content-Type", "application/fhir+json")
                    inner.send_header("Content-Length", str(len(data)))
                    inner.end_headers()
                    inner.wfile.write(data)
                except OSError:
                    pass
                if delay:
                    self.finished.set()

            def log_message(inner, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/fhir"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def card_status(url: str, pid: str, prefetch: dict) -> str:
    """What a patient-view call over HTTP answers for one patient: 'eligible', 'candidate' or 'no card'."""
    import requests

    r = requests.post(f"{url}/cds-services/{SERVICE}", data=json.dumps(hook_request(pid, prefetch)),
                      headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    cards = r.json()["cards"]
    if not cards:
        return "no card"
    return "eligible" if cards[0]["summary"].startswith("Eligible") else "candidate"
