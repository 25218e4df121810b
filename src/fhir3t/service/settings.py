"""`[serve]` in the config file: how the CDS Hooks service listens, what it may fetch, when a card shows.

Checked here against `fhir3t/schemas/config-serve.schema.json` (the config module keeps the table for its
owner): unknown keys are refused with the nearest known one, URLs must be http(s), numbers have ranges,
lists have sizes, and nothing secret is accepted (the config module already refuses secret-looking keys;
JWT verification takes public keys or a JWKS URL only). Authentication may be off only on loopback
(`check_bind`); the state folder must take files (`check_state_dir`).

    [serve]
    host = "127.0.0.1"            # loopback unless a proxy in front needs otherwise
    port = 8088
    public_url = "https://cds.hospital.example/fhir3t"   # what the EHR calls: the JWT audience
    budget_ms = 2000              # answer within this; data not fetched by then means no card
    fhir_servers = ["https://ehr.hospital.example/fhir"]  # the only servers fetched from (default: [server] url)
    show_again_after_days = 7     # at most one card per patient in this many days (0: every chart opening)
    after_override_days = 30      # after a clinician dismissed the card
    after_accept_days = 365       # after a clinician accepted the referral
    require_jwt = true            # every call must carry a JWT from an issuer below (required off loopback)
    max_connections = 1024        # connections held at once; more are answered 503
    body_timeout = 10             # seconds a request body may take to arrive (408 after)
    prefetch = "all"              # "by-code": Observation prefetch filtered by the codes the criteria read
    study_url = "https://registry.example/study/ID"   # default: the registry_url in profiles/study.json
    referral = true               # offer a draft referral to the study team on the card
    cors_origins = ["https://sandbox.cds-hooks.org"]   # browser-based CDS clients allowed to call

    [[serve.issuers]]
    iss = "https://ehr.hospital.example"
    jwks_url = "https://ehr.hospital.example/.well-known/jwks.json"   # or: key = "ehr-public.pem"

    [[serve.links]]
    label = "Screening worklist"
    url = "https://intranet.hospital.example/fhir3t/worklist.html"    # {patientId} is replaced

    [serve.coordinator]           # the coordinator's page, /coordinator/ (service/coordinator.py)
    client_id = "fhir3t-coordinator"                                   # SMART App Launch: a public client (PKCE)
    authorization_server = "https://sso.hospital.example/realms/ehr"   # OpenID Connect issuer (else SMART discovery
                                                                       # on [server] url, which is also the aud)
    proxy_user_header = "X-Remote-User"   # or a reverse proxy that signs people in, believed only from:
    trusted_proxies = ["10.0.0.5"]
    read_without_signin = false           # default: true on a loopback bind only
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, tzinfo
from pathlib import Path
from typing import Any

from fhir3t.config import Config, check_table
from fhir3t.errors import ConfigError
from fhir3t.messages import table
from fhir3t.origins import is_loopback_host, origin

#: connections the service holds at once (slow clients included); beyond, new calls are answered 503
MAX_CONNECTIONS = 1024
#: seconds a client may take to send a request body (a client that dribbles is answered 408 and let go)
BODY_TIMEOUT = 10.0
#: seconds a client gets to send a request's head (method, path, headers), from connecting or from its first byte
HEAD_TIMEOUT = 10.0

#: `[serve]` settings the service cannot start with (the CLI's error line)
MESSAGES = table("serve.settings", {
    "jwt-needs-issuers": "{where}: require_jwt = true needs at least one [[serve.issuers]] to trust",
    "jwt-needs-public-url": "{where}: require_jwt = true needs public_url (the JWT audience is the URL the EHR calls)",
    "not-a-port": "port {port} is not a TCP port",
    "bind-needs-jwt": "{where}: the service would listen on {host}, which is not a loopback address, without "
                      "authentication: anyone who reaches the port could call it and write feedback; set require_jwt = "
                      "true with [[serve.issuers]] and public_url (authentication may be off only on 127.0.0.1, ::1 "
                      "or localhost)",
    "state-dir": "{where}: state_dir {path} cannot hold the service's state ({reason}); give a folder the service "
                 "may create files in",
})


@dataclass(frozen=True)
class Issuer:
    """A CDS client allowed to call: its `iss`, and where its public keys are (a JWKS URL or a key file)."""

    iss: str
    jwks_url: str | None = None
    key: Path | None = None
    #: `jku` header values accepted from this issuer (the JWKS is then read from there); empty: jku ignored
    jku: tuple[str, ...] = ()


@dataclass(frozen=True)
class Link:
    label: str
    url: str  # may hold {patientId}
    type: str = "absolute"


@dataclass(frozen=True)
class CoordinatorSettings:
    """`[serve.coordinator]`: the coordinator's page (service/coordinator.py)."""

    enabled: bool = True
    client_id: str | None = None
    authorization_server: str | None = None
    fhir_server: str | None = None
    scope: str = "openid fhirUser profile"
    proxy_user_header: str | None = None
    proxy_name_header: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    session_minutes: int = 480
    #: unsigned reading (no forms): default on a loopback bind only
    read_without_signin: bool | None = None
    #: the page's language ([serve.coordinator] lang; empty: the site's, [site] language / --lang)
    lang: str = ""

    @property
    def smart(self) -> bool:
        return bool(self.client_id)


@dataclass(frozen=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8088
    public_url: str | None = None
    state_dir: Path = field(default_factory=lambda: default_state_dir())
    budget_ms: int = 2000
    #: origins the service may send a CDS client's token to and fetch from
    fhir_servers: tuple[str, ...] = ()
    show_again_after_days: int = 7
    after_override_days: int = 30
    after_accept_days: int = 365
    links: tuple[Link, ...] = ()
    referral: bool = True
    study_team: str | None = None
    study_url: str | None = None
    require_jwt: bool = False
    issuers: tuple[Issuer, ...] = ()
    max_body_mb: float = 32.0
    #: run the watcher (fhir3t watch) inside the service, on [server] url
    watch: bool = False
    watch_interval: float = 300.0
    #: a file holding the token rest-hook notifications must carry (generated in state_dir when absent)
    notify_token_file: Path | None = None
    #: browser-based CDS clients (e.g. the CDS Hooks sandbox) allowed to call, by origin
    cors_origins: tuple[str, ...] = ()
    #: connections held at once; more are answered 503 (slow clients cannot crowd out the EHR's calls)
    max_connections: int = MAX_CONNECTIONS
    #: seconds a request body may take to arrive (408 after)
    body_timeout: float = BODY_TIMEOUT
    #: screen as of this day instead of today (demos and tests with the samples; never in production)
    as_of: date | None = None
    #: the language of the cards and the explanation pages when the hook call's Accept-Language names none fhir3t
    #: speaks ([site] language, --lang), and the site's time zone (today, for the as-of date, is today there)
    lang: str = "en"
    tz: tzinfo = UTC
    coordinator: CoordinatorSettings = field(default_factory=CoordinatorSettings)
    #: "all": one patient-scoped search per type read; "by-code": Observation searches filtered by the codes the
    #: criteria read (and the ConceptMaps' local codes for them), see prefetch.py for what that gives up
    prefetch: str = "all"

    def fetch_allowed(self, url: str) -> bool:
        """May the service send a token to / fetch from this FHIR base URL?"""
        o = origin(url)
        return o is not None and any(o == origin(s) for s in self.fhir_servers)

    @property
    def budget(self) -> float:
        return self.budget_ms / 1000.0

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """$XDG_STATE_HOME/fhir3t (default ~/.local/state/fhir3t): card history, feedback, watch state."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "state")
    return Path(base) / "fhir3t"


def _url(value: str) -> str:
    return value.rstrip("/")


def serve_settings(cfg: Config, **overrides: Any) -> ServeSettings:
    """The `[serve]` table checked against `schemas/config-serve.schema.json` and typed; `overrides`
    (command-line options, not None) win. What spans keys is checked here, after the schema."""
    where = cfg.where("serve")
    table = check_table("serve", cfg.section("serve"), where)
    servers = table.get("fhir_servers")
    if servers is None:
        servers = [cfg.server.url] if cfg.server.url else []
    jku = [(i.get("jku") if isinstance(i.get("jku"), list) else [i["jku"]] if "jku" in i else [])
           for i in table.get("issuers", ())]
    s = ServeSettings(
        host=table.get("host", "127.0.0.1"),
        port=table.get("port", 8088),
        public_url=_url(table["public_url"]) if "public_url" in table else None,
        state_dir=cfg.resolve(table["state_dir"]) if "state_dir" in table else default_state_dir(),
        budget_ms=table.get("budget_ms", 2000),
        fhir_servers=tuple(_url(u) for u in servers),
        show_again_after_days=table.get("show_again_after_days", 7),
        after_override_days=table.get("after_override_days", 30),
        after_accept_days=table.get("after_accept_days", 365),
        links=tuple(Link(item["label"].strip(), _url(item["url"]), item.get("type", "absolute"))
                    for item in table.get("links", ())),
        referral=table.get("referral", True),
        study_team=table.get("study_team"),
        study_url=_url(table["study_url"]) if "study_url" in table else None,
        require_jwt=table.get("require_jwt", False),
        issuers=tuple(Issuer(i["iss"], _url(i["jwks_url"]) if "jwks_url" in i else None,
                             cfg.resolve(i["key"]) if "key" in i else None, tuple(_url(u) for u in urls))
                      for i, urls in zip(table.get("issuers", ()), jku)),
        max_body_mb=float(table.get("max_body_mb", 32.0)),
        watch=table.get("watch", False),
        watch_interval=float(table.get("watch_interval", 300.0)),
        notify_token_file=cfg.resolve(table["notify_token_file"]) if "notify_token_file" in table else None,
        cors_origins=tuple(_url(u) for u in table.get("cors_origins", ())),
        max_connections=table.get("max_connections", MAX_CONNECTIONS),
        body_timeout=float(table.get("body_timeout", BODY_TIMEOUT)),
        coordinator=_coordinator(table.get("coordinator") or {}, cfg),
        prefetch=table.get("prefetch", "all"),
    )
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        s = ServeSettings(**{**s.__dict__, **given})
    if isinstance(s.port, bool) or not isinstance(s.port, int) or not 1 <= s.port <= 65535:
        raise ConfigError(MESSAGES["not-a-port"](port=str(s.port)))
    if s.require_jwt and not s.issuers:
        raise ConfigError(MESSAGES["jwt-needs-issuers"](where=where))
    if s.public_url is None and s.require_jwt:
        raise ConfigError(MESSAGES["jwt-needs-public-url"](where=where))
    return s


def _coordinator(t: dict[str, Any], cfg: Config) -> CoordinatorSettings:
    fhir = t.get("fhir_server") or cfg.server.url
    return CoordinatorSettings(
        enabled=t.get("enabled", True), client_id=t.get("client_id"),
        authorization_server=_url(t["authorization_server"]) if "authorization_server" in t else None,
        fhir_server=_url(fhir) if fhir else None, scope=t.get("scope", "openid fhirUser profile"),
        proxy_user_header=t.get("proxy_user_header"), proxy_name_header=t.get("proxy_name_header"),
        trusted_proxies=tuple(t.get("trusted_proxies", ())), session_minutes=t.get("session_minutes", 480),
        read_without_signin=t.get("read_without_signin"), lang=t.get("lang", ""))


def check_bind(settings: ServeSettings, cfg: Config) -> None:
    """Authentication may be off only on a loopback address: any other bind needs JWT client authentication."""
    if not settings.loopback and not settings.require_jwt:
        raise ConfigError(MESSAGES["bind-needs-jwt"](where=cfg.where("serve"), host=settings.host))


def check_state_dir(settings: ServeSettings, cfg: Config) -> None:
    """The state folder exists (or can be made) and takes a new file: `/proc` or a read-only mount is said at
    the start, in one sentence, not found by the first card that cannot be recorded."""
    path = settings.state_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".fhir3t-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(MESSAGES["state-dir"](where=cfg.where("serve"), path=str(path),
                                                reason=exc.strerror or type(exc).__name__)) from None


__all__ = ["BODY_TIMEOUT", "HEAD_TIMEOUT", "MAX_CONNECTIONS", "CoordinatorSettings", "Issuer", "Link", "ServeSettings",
           "check_bind", "check_state_dir", "default_state_dir", "serve_settings"]
