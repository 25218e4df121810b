"""Options shared by the subcommands that talk to a FHIR server, and turning them into a client."""
from __future__ import annotations

import argparse
import os

from fhir3t.cli.common import MAX_PARALLEL, day, whole_number
from fhir3t.errors import UsageError
from fhir3t.messages import Message, later, table
from fhir3t.transport.limits import DEFAULT_MAX_BODY, DEFAULT_MAX_PAGES, DEFAULT_MAX_REQUESTS, DEFAULT_TIMEOUT

MB = 1024 * 1024
W = table("cli.server", {
    "no-server": "no server given (--server URL)",
    "server-url": "--server {url}: give an http:// or https:// FHIR base URL",
    "timeout": "--timeout must be a number of seconds above 0, not {value}",
    "at-least-1": "{option} must be at least 1",
    "allow-origin": "--allow-origin: {error}",
    "token-url": "--smart-token-url {url}: give an http:// or https:// URL",
})


def add_server_options(parser: argparse.ArgumentParser, *, pull: bool = True, push: bool = True,
                       server_required: bool = False) -> None:
    """--server and auth options; `pull` adds --patient/--since, `push` adds --push/--dry-run."""
    g = parser.add_argument_group(
        later(Message("help.server.group-title", "FHIR server")()),
        later(Message("help.server.group-description",
                      "Credentials go only to the --server origin (and --allow-origin ones). The server's own error\n"
                      "texts (OperationOutcome diagnostics), which may quote patient data, are shown only with -vv.")()))
    g.add_argument("--server", metavar="URL", required=server_required,
                   help=later(Message("help.server.server", "FHIR R4 base URL, e.g. https://ehr.example.org/fhir")()))
    g.add_argument("--token", metavar="TOKEN",
                   help=later(Message("help.server.token",
                                      "bearer token (default: $FHIR3T_TOKEN); prefer the variable: flags show up in `ps`")()))
    g.add_argument("--smart-client-id", metavar="ID",
                   help=later(Message("help.server.smart-client-id",
                                      "SMART Backend Services client id (with --smart-key; or $FHIR3T_CLIENT_SECRET for client-secret "
                                      "basic)")()))
    g.add_argument("--smart-key", metavar="KEY", help=later(Message("help.server.smart-key",
                                                                    "private key for the client assertion: PEM file or JWKS/JWK JSON "
                                                                    "(RS384/ES384)")()))
    g.add_argument("--smart-token-url", metavar="URL",
                   help=later(Message("help.server.smart-token-url",
                                      "the SMART token endpoint, when the authorization server is not on the --server origin (the client "
                                      "credentials go only to the --server origin, this one, and --allow-origin ones; a token endpoint "
                                      "discovered elsewhere is refused)")()))
    g.add_argument("--smart-scope", metavar="SCOPES",
                   help=later(Message("help.server.smart-scope",
                                      "scopes to ask for (default: system/*.read plus write on ResearchStudy, ResearchSubject, Provenance, "
                                      "AdverseEvent)")()))
    g.add_argument("--max-requests", type=int, default=DEFAULT_MAX_REQUESTS, metavar="N",
                   help=later(Message("help.server.max-requests",
                                      "stop after N HTTP requests to the server, a safety budget (default {default})")(
                                          default=DEFAULT_MAX_REQUESTS)))
    g.add_argument("--max-pages", type=int, default=DEFAULT_MAX_PAGES, metavar="N",
                   help=later(Message("help.server.max-pages", "follow at most N pages of one search (default {default})")(
                             default=DEFAULT_MAX_PAGES)))
    g.add_argument("--max-response-size", type=int, default=DEFAULT_MAX_BODY // MB, metavar="MB",
                   help=later(Message("help.server.max-response-size", "refuse a JSON answer larger than MB megabytes (default {default})")(
                             default=DEFAULT_MAX_BODY // MB)))
    g.add_argument("--parallel", type=whole_number(1, MAX_PARALLEL), default=4, metavar="N",
                   help=later(Message("help.server.parallel", "at most N requests in flight, 1 to {max} (default 4)")(max=MAX_PARALLEL)))
    g.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                   help=later(Message("help.server.timeout",
                                      "time limit of one request, wall clock (default {default}); a request that runs into it "
                                      "is not retried")(default=f"{DEFAULT_TIMEOUT:g}")))
    g.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help=later(Message("help.server.allow-origin",
                                      "also read from this origin and send it the credentials, e.g. https://files.example.org for Bulk "
                                      "files or next pages on another host (repeatable; by default fhir3t follows no URL off the --server "
                                      "origin)")()))
    if pull:
        g.add_argument("--patient", action="append", default=[], metavar="ID",
                       help=later(Message("help.server.patient",
                                          "screen this patient (repeatable) instead of finding candidates by diagnosis")()))
        g.add_argument("--group", metavar="ID", help=later(Message("help.server.group", "screen the members of this Group")()))
        g.add_argument("--since", type=day, metavar="DATE",
                       help=later(Message("help.server.since", "only patients with data changed since DATE (YYYY-MM-DD)")()))
        g.add_argument("--strategy", choices=("everything", "batch", "revinclude", "search"),
                       help=argparse.SUPPRESS)
    if push:
        g.add_argument("--push", metavar="URL", help=later(Message("help.server.push",
                                                                   "send the results (ResearchStudy, ResearchSubjects, Provenance) to this "
                                                                   "server")()))
        g.add_argument("--dry-run", action="store_true", help=later(Message("help.server.dry-run", "print what would be sent, send "
                                                                                                   "nothing")()))


def make_client(args: argparse.Namespace, url: str | None = None):
    """A FhirClient for --server (or `url`) with the auth and limits the options ask for."""
    import math

    from fhir3t.transport.auth import make_auth
    from fhir3t.transport.http import FhirClient
    from fhir3t.transport.urls import describe, origin, parse_origin

    base = url or getattr(args, "server", None)
    if not base:
        raise UsageError(W["no-server"]())
    if not base.startswith(("http://", "https://")):
        raise UsageError(W["server-url"](url=repr(describe(base))))
    timeout = getattr(args, "timeout", DEFAULT_TIMEOUT)
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        raise UsageError(W["timeout"](value=timeout))
    for option, value in (("--parallel", getattr(args, "parallel", 1)),
                          ("--max-requests", getattr(args, "max_requests", 1)),
                          ("--max-pages", getattr(args, "max_pages", 1)),
                          ("--max-response-size", getattr(args, "max_response_size", 1))):
        if value is None or value < 1:
            raise UsageError(W["at-least-1"](option=option))
    try:
        allowed = [parse_origin(o) for o in getattr(args, "allow_origin", None) or ()]
    except ValueError as exc:
        raise UsageError(W["allow-origin"](error=str(exc))) from None
    token_url = getattr(args, "smart_token_url", None)
    if token_url is not None and origin(token_url) is None:
        raise UsageError(W["token-url"](url=repr(describe(token_url))))
    auth = make_auth(base, token=getattr(args, "token", None), client_id=getattr(args, "smart_client_id", None),
                     key=getattr(args, "smart_key", None), scope=getattr(args, "smart_scope", None),
                     client_secret=os.environ.get("FHIR3T_CLIENT_SECRET"), token_url=token_url, allow_origins=allowed)
    return FhirClient(base, auth=auth, timeout=float(timeout), allow_origins=allowed,
                      max_requests=getattr(args, "max_requests", DEFAULT_MAX_REQUESTS),
                      max_pages=getattr(args, "max_pages", DEFAULT_MAX_PAGES),
                      max_body=getattr(args, "max_response_size", DEFAULT_MAX_BODY // MB) * MB,
                      parallel=getattr(args, "parallel", 4))
