"""fhir3t's configuration file (TOML): what a hospital sets once, so a nightly run is one short command.

Found with `--config FILE`, `$FHIR3T_CONFIG`, or the first of `./fhir3t.toml`,
`$XDG_CONFIG_HOME/fhir3t/config.toml` (default `~/.config/...`) and `/etc/fhir3t/config.toml`; one file
is read, never a merge of several, so what applies is what that one file says. Command-line options win.

Tables this module knows and checks:

- `[server]`: the FHIR server (`url`), how to authenticate (`auth` = auto | none | token | smart |
  client-secret, `client_id`, the *path* of a SMART key or of a file holding a token) and transport
  limits. Secrets never go in the file: a key that looks like one (`token`, `secret`, `password`) is an
  error; the token / client secret stay in files or the environment.
- `[terminology]`: `concept_maps`, a list of ConceptMap files.
- `[log]`: `format` (text | json) and `level` (warning | info | debug).
- `[site]`: `language` (en | zh-CN: what people read; logs stay English) and `timezone` (an IANA name such as
  Asia/Shanghai: the default as-of date is today there, times are shown in it; default: the system's).
- a table per subcommand (`[screen]`, `[safety]`, `[report]`, `[export]`, `[push]`, `[validate]`,
  `[explain]`): option defaults, keyed by the option's long name (`id-system = "..."` for `--id-system`);
  the CLI checks them against the subcommand's options (fhir3t.cli.configure).

Every table is checked against a JSON Schema in `fhir3t/schemas/config-<table>.schema.json` (types, choices,
ranges, sizes, unknown keys with the nearest known one), which is the typed boundary of the file: a
failure is one sentence naming the file, the table, the key and what is wrong. The file itself is read
with a bound (1 MB, a regular file), and nesting is limited before any check.

Any other table (e.g. `[serve]`, `[enrolment]`) is kept as read for the code that owns it: `Config.section("serve")`
returns it and `check_table` checks it against its own schema, so a new service adds its table without
touching this module. A table name one typo away from a known one is an error, since it would otherwise be ignored
(`OWNED_ELSEWHERE` lists the near names that are real, such as `[serve]`).
Relative paths are relative to the config file's folder.
"""
from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir3t.errors import ConfigError
from fhir3t.messages import table
from fhir3t.origins import Origin, origin
from fhir3t.secretfiles import why_unreadable
from fhir3t.shapecheck import Path_, ShapeError, Where, check
from fhir3t.smallfiles import CONFIG_LIMIT, TOKEN_LIMIT, read_small

#: subcommands whose table holds option defaults (keys = long option names)
COMMAND_TABLES = frozenset({"screen", "safety", "report", "export", "push", "validate", "explain"})
KNOWN_TABLES = frozenset({"server", "terminology", "log", "site"}) | COMMAND_TABLES
#: tables other modules read and check themselves (named here only so the typo check leaves them alone:
#: `[serve]` is one letter from `[server]`); any other unknown table is kept too, unless it looks like a typo
OWNED_ELSEWHERE = frozenset({"serve", "enrolment"})
AUTH_METHODS = ("auto", "none", "token", "smart", "client-secret")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("warning", "info", "debug")
#: key names that would put a credential in the file
SECRET_KEYS = frozenset({"token", "secret", "client_secret", "password", "key_password", "access_token"})

ENV_CONFIG = "FHIR3T_CONFIG"  # a path, or "none" to read no config file

#: what is said of a config file that cannot be used (the CLI's error line): the schemas' `x-message` ids and this
#: module's own sentences
WORDS = table("config", {
    "http-url": "{where} must be an http:// or https:// URL",
    "smart-needs": "{where}: auth = \"smart\" needs client_id and key (the path of the private key)",
    "client-secret-needs": "{where}: auth = \"client-secret\" needs client_id (the secret comes from $FHIR3T_CLIENT_SECRET)",
    "option-value": "{where} must be a value such as on the command line, or a list of them",
    "issuer-keys": "{where}: give exactly one of jwks_url or key",
    "jku": "{where} must be a URL or a list of URLs",
    "secret": "{where}: '{key}' looks like a secret, and secrets do not belong in a config file: give the *path* of a "
              "key (key = ...) or of a token file (token_file = ...), or set $FHIR3T_TOKEN / $FHIR3T_CLIENT_SECRET in "
              "the service's environment",
    "typo-table": "{file}: unknown table [{name}]; did you mean [{near}]?",
    "no-file": "{path}: no such config file",
    "no-file-env": "${env}={path}: no such config file",
    "not-utf8": "{path}: not UTF-8 text",
    "not-toml": "{path}: not valid TOML ({error})",
    "too-deep": "{path}: nested too deeply to be a fhir3t config file",
    "token-empty": "[server] token_file {path}: empty",
    "time-zone": "{where} must be an IANA time zone such as Asia/Shanghai (see the tz database's zone names)",
    "unknown-key-near": "{where}: unknown key '{key}'; did you mean '{near}'?",
    "unknown-key-known": "{where}: unknown key '{key}' (known: {known})",
    "token-unreadable": "[server] token_file {path}: unreadable",
    "the-token-file": "the [server] token_file",
    "the-config-file": "the config file",
})


def search_path(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[Path]:
    """Where a config file is looked for, first found wins."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return [(cwd or Path.cwd()) / "fhir3t.toml", Path(xdg) / "fhir3t" / "config.toml", Path("/etc/fhir3t/config.toml")]


def find_config(explicit: str | Path | None = None, env: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> Path | None:
    """The config file to read: `explicit` (must exist), else $FHIR3T_CONFIG, else the search path."""
    env = os.environ if env is None else env
    if explicit is not None:
        path = Path(explicit)
        if not path.exists():
            raise ConfigError(WORDS["no-file"](path=str(path)))
        return path  # a device or a FIFO is refused when read
    named = env.get(ENV_CONFIG)
    if named:
        if named.lower() == "none":
            return None
        if not Path(named).exists():
            raise ConfigError(WORDS["no-file-env"](env=ENV_CONFIG, path=named))
        return Path(named)
    for candidate in search_path(env, cwd):
        if candidate.is_file():
            return candidate
    return None


def check_keys(table: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Refuse keys not in `allowed` (a typo would be silently ignored), suggesting the nearest one."""
    allowed = sorted(set(allowed))
    for key in table:
        if key.replace("-", "_") in {a.replace("-", "_") for a in allowed}:
            continue
        near = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        raise ConfigError(WORDS["unknown-key-near"](where=where, key=key, near=near[0]) if near else
                          WORDS["unknown-key-known"](where=where, key=key, known=", ".join(allowed)))


def table_where(where: str) -> Where:
    """Paths inside a table as a person finds them: `fhir3t.toml [serve] issuers[0]: 'iss'`."""
    def render(path: Path_) -> str:
        out = where
        for i, p in enumerate(path):
            last = i == len(path) - 1
            if isinstance(p, int):
                out += f"[{p}]"
            elif last:
                out += f": '{p}'"
            else:
                out += f" {p}"
        return out
    return render


def check_table(name: str, table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A table with its keys as `_` (either spelling is accepted), checked against `schemas/config-<name>`."""
    keyed = {str(k).replace("-", "_"): v for k, v in table.items()}
    try:
        check(f"config-{name}", keyed, table_where(where), WORDS)
    except ShapeError as exc:
        raise ConfigError(exc.said) from None
    return keyed


@dataclass(frozen=True)
class ServerSettings:
    """`[server]`: the hospital's FHIR server and how fhir3t authenticates to it."""

    url: str | None = None
    auth: str = "auto"
    client_id: str | None = None
    key: Path | None = None  # SMART private key (PEM or JWKS): a path, the key stays in its own file
    token_file: Path | None = None  # a file holding a bearer token (e.g. a mounted secret)
    #: the SMART token endpoint, when the authorization server is not on the FHIR server's origin: the client
    #: credentials go only to an origin configured here or to the FHIR server's own
    token_url: str | None = None
    scope: str | None = None
    timeout: float | None = None
    parallel: int | None = None
    max_requests: int | None = None

    def same_origin(self, url: str | None) -> bool:
        o = origin(url)
        return o is not None and self.url is not None and o == origin(self.url)

    def token(self) -> str | None:
        """The bearer token from `token_file` (read when used, never kept in the config)."""
        if self.token_file is None:
            return None
        try:
            raw = read_small(self.token_file, TOKEN_LIMIT, WORDS["the-token-file"]())
        except FileNotFoundError:
            raise ConfigError(WORDS["no-file"](path=str(self.token_file))) from None
        except ConfigError:
            if os.access(self.token_file, os.F_OK) and not os.access(self.token_file, os.R_OK):
                # unreadable for the uid fhir3t runs as (the usual container mistake): who owns it and what works
                raise ConfigError(why_unreadable(self.token_file, "[server] token_file")  # the config key, as written
                                  or WORDS["token-unreadable"](path=str(self.token_file))) from None
            raise
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            raise ConfigError(WORDS["token-empty"](path=str(self.token_file)))
        return text


SERVER_KEYS = ("url", "auth", "client_id", "key", "token_file", "token_url", "scope", "timeout", "parallel",
               "max_requests")


@dataclass(frozen=True)
class Config:
    """A read config file: the known tables checked and typed, every table kept by name."""

    path: Path | None = None
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    server: ServerSettings = field(default_factory=ServerSettings)
    concept_maps: tuple[Path, ...] = ()
    log_format: str | None = None
    log_level: str | None = None
    #: [site]: the language people read (en | zh-CN) and the site's IANA time zone, when the file sets them
    language: str | None = None
    timezone: str | None = None

    def section(self, name: str) -> dict[str, Any]:
        """A table as read (a copy; empty when absent), for the code that owns it, e.g. `[serve]`."""
        return dict(self.tables.get(name, {}))

    def commands(self) -> dict[str, dict[str, Any]]:
        """The subcommand tables: option defaults keyed by long option name."""
        return {name: dict(t) for name, t in self.tables.items() if name in COMMAND_TABLES}

    def where(self, table: str) -> str:
        return f"{self.path or 'config'} [{table}]"

    def resolve(self, value: str | Path) -> Path:
        """A path from the file: `~` expanded, relative to the file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() or self.path is None else self.path.parent / p


def _no_secrets(table: Mapping[str, Any], where: str) -> None:
    for key in table:
        if str(key).replace("-", "_").lower() in SECRET_KEYS:
            raise ConfigError(WORDS["secret"](where=where, key=key))


def _server(cfg: Config, table: Mapping[str, Any]) -> ServerSettings:
    t = check_table("server", table, cfg.where("server"))
    return ServerSettings(
        url=t.get("url"), auth=t.get("auth", "auto"), client_id=t.get("client_id"),
        key=cfg.resolve(t["key"]) if "key" in t else None,
        token_file=cfg.resolve(t["token_file"]) if "token_file" in t else None,
        token_url=t.get("token_url"), scope=t.get("scope"), timeout=t.get("timeout"), parallel=t.get("parallel"),
        max_requests=t.get("max_requests"),
    )


def parse_config(data: Mapping[str, Any], path: Path | None = None) -> Config:
    """Check a parsed TOML document against the schemas (fhir3t/schemas/config-*.schema.json) and type the
    tables fhir3t knows; other tables are kept for the code that owns them (`[serve]`)."""
    where_file = str(path or "config")
    try:
        check("config-document", data, lambda p: f"{where_file}: '{p[0]}'" if p else where_file, WORDS)
    except ShapeError as exc:
        raise ConfigError(exc.said) from None
    cfg = Config(path=path)
    for name, section in data.items():
        if name not in KNOWN_TABLES and name not in OWNED_ELSEWHERE:
            near = difflib.get_close_matches(name, sorted(KNOWN_TABLES), n=1, cutoff=0.8)
            if near:
                raise ConfigError(WORDS["typo-table"](file=where_file, name=name, near=near[0]))
        _no_secrets(section, cfg.where(name))
        if name in COMMAND_TABLES:
            check_table("command", section, cfg.where(name))
    tables = {k: dict(v) for k, v in data.items()}
    cfg = Config(path=path, tables=tables)
    server = _server(cfg, tables.get("server", {}))
    term = check_table("terminology", tables.get("terminology", {}), cfg.where("terminology"))
    log = check_table("log", tables.get("log", {}), cfg.where("log"))
    site = check_table("site", tables.get("site", {}), cfg.where("site"))
    return Config(path=path, tables=tables, server=server,
                  concept_maps=tuple(cfg.resolve(m) for m in term.get("concept_maps", ())),
                  log_format=log.get("format"), log_level=log.get("level"),
                  language=site.get("language"), timezone=site.get("timezone"))


def load_config(path: str | Path | None) -> Config:
    """Read and check a config file (None: the empty config); at most 1 MB, a regular file."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = read_small(p, CONFIG_LIMIT, WORDS["the-config-file"]())
    except FileNotFoundError:
        raise ConfigError(WORDS["no-file"](path=str(p))) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(WORDS["not-utf8"](path=str(p))) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(WORDS["not-toml"](path=str(p), error=str(exc))) from None
    except RecursionError:  # arrays or inline tables nested thousands deep: tomllib recurses
        raise ConfigError(WORDS["too-deep"](path=str(p))) from None
    return parse_config(data, p)


__all__ = ["COMMAND_TABLES", "Config", "Origin", "ServerSettings", "check_keys", "check_table", "find_config",
           "load_config", "origin", "parse_config", "search_path", "table_where"]
