"""`[serve]` in the config file: how the CDS Hooks service listens, what it may fetch, when a card shows.

Checked here (the config module keeps the table for its owner): unknown keys are refused with the
nearest known one, URLs must be http(s), and nothing secret is accepted (the config module already
refuses secret-looking keys; JWT verification takes public keys or a JWKS URL only).

    [serve]
    host = "127.0.0.1"            # loopback unless a proxy in front needs otherwise
    port = 8088
    public_url = "https://cds.hospital.example/fhir3t"   # what the EHR calls: the JWT audience
    budget_ms = 2000              # answer within this; data not fetched by then means no card
    fhir_servers = ["https://ehr.hospital.example/fhir"]  # the only servers fetched from (default: [server] url)
    show_again_after_days = 7     # at most one card per patient in this many days (0: every chart opening)
    after_override_days = 30      # after a clinician dismissed the card
    after_accept_days = 365       # after a clinician accepted the referral
    require_jwt = true            # every call must carry a JWT from an issuer below

    [[serve.issuers]]
    iss = "https://ehr.hospital.example"
    jwks_url = "https://ehr.hospital.example/.well-known/jwks.json"   # or: key = "ehr-public.pem"

    [[serve.links]]
    label = "Screening worklist"
    url = "https://intranet.hospital.example/fhir3t/worklist.html"    # {patientId} is replaced
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from fhir3t.config import Config, check_keys, origin
from fhir3t.errors import ConfigError

SERVE_KEYS = ("host", "port", "public_url", "state_dir", "budget_ms", "fhir_servers", "show_again_after_days",
              "after_override_days", "after_accept_days", "links", "referral", "study_team", "study_url",
              "require_jwt", "issuers", "max_body_mb", "watch", "watch_interval", "notify_token_file",
              "cors_origins")
ISSUER_KEYS = ("iss", "jwks_url", "key", "jku")
LINK_KEYS = ("label", "url", "type")
LINK_TYPES = ("absolute", "smart")


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
    #: screen as of this day instead of today (demos and tests with the samples; never in production)
    as_of: date | None = None

    def fetch_allowed(self, url: str) -> bool:
        """May the service send a token to / fetch from this FHIR base URL?"""
        return any(origin(url) == origin(s) for s in self.fhir_servers)

    @property
    def budget(self) -> float:
        return self.budget_ms / 1000.0


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """$XDG_STATE_HOME/fhir3t (default ~/.local/state/fhir3t): card history, feedback, watch state."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "state")
    return Path(base) / "fhir3t"


def _url(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(f"{where} must be an http:// or https:// URL")
    return value.rstrip("/")


def _int(table: Mapping[str, Any], key: str, default: int, where: str, minimum: int = 0) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: '{key}' must be a whole number of at least {minimum}")
    return value


def _issuers(items: object, cfg: Config, where: str) -> tuple[Issuer, ...]:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigError(f"{where}: issuers must be a list of tables ([[serve.issuers]])")
    out = []
    for i, item in enumerate(items):
        here = f"{where} issuers[{i}]"
        check_keys(item, ISSUER_KEYS, here)
        iss = item.get("iss")
        if not isinstance(iss, str) or not iss:
            raise ConfigError(f"{here}: 'iss' (the CDS client's issuer URI) is required")
        jwks = _url(item["jwks_url"], f"{here} jwks_url") if "jwks_url" in item else None
        key = item.get("key")
        if key is not None and not isinstance(key, str):
            raise ConfigError(f"{here}: 'key' must be the path of a public key file (PEM, JWK or JWKS)")
        if (jwks is None) == (key is None):
            raise ConfigError(f"{here}: give exactly one of jwks_url or key")
        jku = item.get("jku", [])
        if isinstance(jku, str):
            jku = [jku]
        if not isinstance(jku, list):
            raise ConfigError(f"{here}: 'jku' must be a URL or a list of URLs")
        out.append(Issuer(iss, jwks, cfg.resolve(key) if key else None,
                          tuple(_url(u, f"{here} jku") for u in jku)))
    return tuple(out)


def _links(items: object, where: str) -> tuple[Link, ...]:
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigError(f"{where}: links must be a list of tables ([[serve.links]])")
    out = []
    for i, item in enumerate(items):
        here = f"{where} links[{i}]"
        check_keys(item, LINK_KEYS, here)
        label = item.get("label")
        if not isinstance(label, str) or not label.strip():
            raise ConfigError(f"{here}: 'label' is required")
        kind = item.get("type", "absolute")
        if kind not in LINK_TYPES:
            raise ConfigError(f"{here}: type must be one of {', '.join(LINK_TYPES)}")
        out.append(Link(label.strip(), _url(item.get("url"), f"{here} url"), kind))
    return tuple(out)


def serve_settings(cfg: Config, **overrides: Any) -> ServeSettings:
    """The `[serve]` table checked and typed; `overrides` (command-line options, not None) win."""
    table = cfg.section("serve")
    where = cfg.where("serve")
    check_keys(table, SERVE_KEYS, where)
    table = {k.replace("-", "_"): v for k, v in table.items()}
    host = table.get("host", "127.0.0.1")
    if not isinstance(host, str) or not host:
        raise ConfigError(f"{where}: 'host' must be a host name or address")
    servers = table.get("fhir_servers")
    if servers is None:
        servers = [cfg.server.url] if cfg.server.url else []
    if not isinstance(servers, list):
        raise ConfigError(f"{where}: 'fhir_servers' must be a list of FHIR base URLs")
    state = table.get("state_dir")
    if state is not None and not isinstance(state, str):
        raise ConfigError(f"{where}: 'state_dir' must be a folder path")
    token_file = table.get("notify_token_file")
    if token_file is not None and not isinstance(token_file, str):
        raise ConfigError(f"{where}: 'notify_token_file' must be a file path")
    for key in ("referral", "require_jwt", "watch"):
        if key in table and not isinstance(table[key], bool):
            raise ConfigError(f"{where}: '{key}' must be true or false")
    for key in ("study_team",):
        if key in table and not isinstance(table[key], str):
            raise ConfigError(f"{where}: '{key}' must be a string")
    cors = table.get("cors_origins", [])
    if not isinstance(cors, list):
        raise ConfigError(f"{where}: 'cors_origins' must be a list of origins (https://host[:port])")
    mb = table.get("max_body_mb", 32.0)
    interval = table.get("watch_interval", 300.0)
    for key, value in (("max_body_mb", mb), ("watch_interval", interval)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{where}: '{key}' must be a positive number")
    s = ServeSettings(
        host=host,
        port=_int(table, "port", 8088, where, 1),
        public_url=_url(table["public_url"], f"{where} public_url") if "public_url" in table else None,
        state_dir=cfg.resolve(state) if state else default_state_dir(),
        budget_ms=_int(table, "budget_ms", 2000, where, 50),
        fhir_servers=tuple(_url(u, f"{where} fhir_servers") for u in servers),
        show_again_after_days=_int(table, "show_again_after_days", 7, where),
        after_override_days=_int(table, "after_override_days", 30, where),
        after_accept_days=_int(table, "after_accept_days", 365, where),
        links=_links(table.get("links", []), where),
        referral=table.get("referral", True),
        study_team=table.get("study_team"),
        study_url=_url(table["study_url"], f"{where} study_url") if "study_url" in table else None,
        require_jwt=table.get("require_jwt", False),
        issuers=_issuers(table.get("issuers", []), cfg, where),
        max_body_mb=float(mb),
        watch=table.get("watch", False),
        watch_interval=float(interval),
        notify_token_file=cfg.resolve(token_file) if token_file else None,
        cors_origins=tuple(_url(u, f"{where} cors_origins") for u in cors),
    )
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        s = ServeSettings(**{**s.__dict__, **given})
    if s.port < 1 or s.port > 65535:
        raise ConfigError(f"port {s.port} is not a TCP port")
    if s.require_jwt and not s.issuers:
        raise ConfigError(f"{where}: require_jwt = true needs at least one [[serve.issuers]] to trust")
    if s.public_url is None and s.require_jwt:
        raise ConfigError(f"{where}: require_jwt = true needs public_url (the JWT audience is the URL the EHR calls)")
    return s


__all__ = ["Issuer", "Link", "ServeSettings", "default_state_dir", "serve_settings"]
