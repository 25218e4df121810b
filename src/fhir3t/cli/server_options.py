"""Options shared by the subcommands that talk to a FHIR server, and turning them into a client."""
from __future__ import annotations

import argparse
import os

from fhir3t.cli.common import day
from fhir3t.errors import UsageError


def add_server_options(parser: argparse.ArgumentParser, *, pull: bool = True, push: bool = True,
                       server_required: bool = False) -> None:
    """--server and auth options; `pull` adds --patient/--since, `push` adds --push/--dry-run."""
    g = parser.add_argument_group("FHIR server")
    g.add_argument("--server", metavar="URL", required=server_required,
                   help="FHIR R4 base URL, e.g. https://ehr.example.org/fhir")
    g.add_argument("--token", metavar="TOKEN",
                   help="bearer token (default: $FHIR3T_TOKEN); prefer the variable: flags show up in `ps`")
    g.add_argument("--smart-client-id", metavar="ID",
                   help="SMART Backend Services client id (with --smart-key; or $FHIR3T_CLIENT_SECRET for client-secret basic)")
    g.add_argument("--smart-key", metavar="KEY", help="private key for the client assertion: PEM file or JWKS/JWK JSON (RS384/ES384)")
    g.add_argument("--smart-scope", metavar="SCOPES",
                   help="scopes to ask for (default: system/*.read plus write on ResearchStudy, ResearchSubject, "
                        "Provenance, AdverseEvent)")
    g.add_argument("--max-requests", type=int, metavar="N", help="stop after N HTTP requests to the server (a safety budget)")
    g.add_argument("--parallel", type=int, default=4, metavar="N", help="at most N requests in flight (default 4)")
    g.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="read timeout per request (default 120)")
    if pull:
        g.add_argument("--patient", action="append", default=[], metavar="ID",
                       help="screen this patient (repeatable) instead of finding candidates by diagnosis")
        g.add_argument("--group", metavar="ID", help="screen the members of this Group")
        g.add_argument("--since", type=day, metavar="DATE",
                       help="only patients with data changed since DATE (YYYY-MM-DD)")
        g.add_argument("--strategy", choices=("everything", "batch", "revinclude", "search"),
                       help=argparse.SUPPRESS)
    if push:
        g.add_argument("--push", metavar="URL", help="send the results (ResearchStudy, ResearchSubjects, Provenance) to this server")
        g.add_argument("--dry-run", action="store_true", help="print what would be sent, send nothing")


def make_client(args: argparse.Namespace, url: str | None = None):
    """A FhirClient for --server (or `url`) with the auth the options ask for."""
    from fhir3t.transport.auth import make_auth
    from fhir3t.transport.http import FhirClient

    base = url or getattr(args, "server", None)
    if not base:
        raise UsageError("no server given (--server URL)")
    if not base.startswith(("http://", "https://")):
        raise UsageError(f"--server {base!r}: give an http:// or https:// FHIR base URL")
    if getattr(args, "parallel", 1) < 1:
        raise UsageError("--parallel must be at least 1")
    auth = make_auth(base, token=getattr(args, "token", None), client_id=getattr(args, "smart_client_id", None),
                     key=getattr(args, "smart_key", None), scope=getattr(args, "smart_scope", None),
                     client_secret=os.environ.get("FHIR3T_CLIENT_SECRET"))
    return FhirClient(base, auth=auth, timeout=(10.0, getattr(args, "timeout", 120.0)),
                      max_requests=getattr(args, "max_requests", None), parallel=getattr(args, "parallel", 4))
