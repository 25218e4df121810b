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
- a table per subcommand (`[screen]`, `[safety]`, `[report]`, `[export]`, `[push]`, `[validate]`,
  `[explain]`): option defaults, keyed by the option's long name (`id-system = "..."` for `--id-system`);
  the CLI checks them against the subcommand's options (fhir3t.cli.configure).

Any other table (e.g. `[serve]`) is kept as read for the code that owns it: `Config.section("serve")`
returns it and `check_keys` helps validate it, so a new service adds its table without touching this
module. A table name one typo away from a known one is an error, since it would otherwise be ignored
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
from urllib.parse import urlsplit

from fhir3t.errors import ConfigError
from fhir3t.secretfiles import problem

#: subcommands whose table holds option defaults (keys = long option names)
COMMAND_TABLES = frozenset({"screen", "safety", "report", "export", "push", "validate", "explain"})
KNOWN_TABLES = frozenset({"server", "terminology", "log"}) | COMMAND_TABLES
#: tables other modules read and check themselves (named here only so the typo check leaves them alone:
#: `[serve]` is one letter from `[server]`); any other unknown table is kept too, unless it looks like a typo
OWNED_ELSEWHERE = frozenset({"serve"})
AUTH_METHODS = ("auto", "none", "token", "smart", "client-secret")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("warning", "info", "debug")
#: key names that would put a credential in the file
SECRET_KEYS = frozenset({"token", "secret", "client_secret", "password", "key_password", "access_token"})

ENV_CONFIG = "FHIR3T_CONFIG"  # a path, or "none" to read no config file


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
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        return path
    named = env.get(ENV_CONFIG)
    if named:
        if named.lower() == "none":
            return None
        if not Path(named).is_file():
            raise ConfigError(f"${ENV_CONFIG}={named}: no such config file")
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
        hint = f"; did you mean '{near[0]}'?" if near else f" (known: {', '.join(allowed)})"
        raise ConfigError(f"{where}: unknown key '{key}'{hint}")


def origin(url: str) -> tuple[str, str, int | None]:
    """scheme, host, port: credentials configured for one origin never go to another."""
    u = urlsplit(url)
    port = u.port or {"http": 80, "https": 443}.get(u.scheme.lower())
    return u.scheme.lower(), (u.hostname or "").lower(), port


@dataclass(frozen=True)
class ServerSettings:
    """`[server]`: the hospital's FHIR server and how fhir3t authenticates to it."""

    url: str | None = None
    auth: str = "auto"
    client_id: str | None = None
    key: Path | None = None  # SMART private key (PEM or JWKS): a path, the key stays in its own file
    token_file: Path | None = None  # a file holding a bearer token (e.g. a mounted secret)
    scope: str | None = None
    timeout: float | None = None
    parallel: int | None = None
    max_requests: int | None = None

    def same_origin(self, url: str | None) -> bool:
        return bool(url) and self.url is not None and origin(url or "") == origin(self.url)

    def token(self) -> str | None:
        """The bearer token from `token_file` (read when used, never kept in the config)."""
        if self.token_file is None:
            return None
        try:
            text = self.token_file.read_text(encoding="utf-8").strip()
        except PermissionError:  # the usual container mistake: say who owns it and what works
            raise ConfigError(problem(self.token_file, "[server] token_file") or "[server] token_file: unreadable") from None
        except OSError as exc:
            raise ConfigError(f"[server] token_file {self.token_file}: cannot read ({exc.strerror})") from None
        if not text:
            raise ConfigError(f"[server] token_file {self.token_file}: empty")
        return text


SERVER_KEYS = ("url", "auth", "client_id", "key", "token_file", "scope", "timeout", "parallel", "max_requests")


@dataclass(frozen=True)
class Config:
    """A read config file: the known tables checked and typed, every table kept by name."""

    path: Path | None = None
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    server: ServerSettings = field(default_factory=ServerSettings)
    concept_maps: tuple[Path, ...] = ()
    log_format: str | None = None
    log_level: str | None = None

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


def _get(table: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = table.get(key, table.get(key.replace("_", "-")))
    if value is None:
        return None
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ConfigError(f"{where}: '{key}' must be {_kind_name(kind)}, not true/false")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: '{key}' must be {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "a whole number", float: "a number", list: "a list", bool: "true or false"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _no_secrets(table: Mapping[str, Any], where: str) -> None:
    for key in table:
        if key.replace("-", "_").lower() in SECRET_KEYS:
            raise ConfigError(f"{where}: '{key}' looks like a secret, and secrets do not belong in a config file: "
                              "give the *path* of a key (key = ...) or of a token file (token_file = ...), or set "
                              "$FHIR3T_TOKEN / $FHIR3T_CLIENT_SECRET in the service's environment")


def _server(cfg: Config, table: Mapping[str, Any]) -> ServerSettings:
    where = cfg.where("server")
    _no_secrets(table, where)
    check_keys(table, SERVER_KEYS, where)
    url = _get(table, "url", str, where)
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: url must be an http:// or https:// FHIR base URL")
    auth = _get(table, "auth", str, where) or "auto"
    if auth not in AUTH_METHODS:
        raise ConfigError(f"{where}: auth must be one of {', '.join(AUTH_METHODS)}, not '{auth}'")
    key = _get(table, "key", str, where)
    token_file = _get(table, "token_file", str, where)
    s = ServerSettings(
        url=url, auth=auth, client_id=_get(table, "client_id", str, where),
        key=cfg.resolve(key) if key else None, token_file=cfg.resolve(token_file) if token_file else None,
        scope=_get(table, "scope", str, where), timeout=_get(table, "timeout", (int, float), where),
        parallel=_get(table, "parallel", int, where), max_requests=_get(table, "max_requests", int, where),
    )
    if s.auth == "smart" and not (s.client_id and s.key):
        raise ConfigError(f"{where}: auth = \"smart\" needs client_id and key (the path of the private key)")
    if s.auth == "client-secret" and not s.client_id:
        raise ConfigError(f"{where}: auth = \"client-secret\" needs client_id (the secret comes from $FHIR3T_CLIENT_SECRET)")
    for name in ("timeout", "parallel", "max_requests"):
        value = getattr(s, name)
        if value is not None and value <= 0:
            raise ConfigError(f"{where}: '{name}' must be positive")
    return s


def parse_config(data: Mapping[str, Any], path: Path | None = None) -> Config:
    """Check a parsed TOML document and type the tables fhir3t knows."""
    where_file = str(path or "config")
    cfg = Config(path=path)
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where_file}: '{name}' must be a table ([{name}]), not a single value")
        if name not in KNOWN_TABLES and name not in OWNED_ELSEWHERE:
            near = difflib.get_close_matches(name, sorted(KNOWN_TABLES), n=1, cutoff=0.8)
            if near:
                raise ConfigError(f"{where_file}: unknown table [{name}]; did you mean [{near[0]}]?")
        if name != "server":
            _no_secrets(table, cfg.where(name))
    tables = {k: dict(v) for k, v in data.items()}
    cfg = Config(path=path, tables=tables)
    server = _server(cfg, tables.get("server", {}))
    term = tables.get("terminology", {})
    check_keys(term, ("concept_maps",), cfg.where("terminology"))
    maps = _get(term, "concept_maps", list, cfg.where("terminology")) or []
    if not all(isinstance(m, str) for m in maps):
        raise ConfigError(f"{cfg.where('terminology')}: concept_maps must be a list of file paths")
    log = tables.get("log", {})
    check_keys(log, ("format", "level"), cfg.where("log"))
    log_format = _get(log, "format", str, cfg.where("log"))
    if log_format is not None and log_format not in LOG_FORMATS:
        raise ConfigError(f"{cfg.where('log')}: format must be one of {', '.join(LOG_FORMATS)}")
    log_level = _get(log, "level", str, cfg.where("log"))
    if log_level is not None and log_level not in LOG_LEVELS:
        raise ConfigError(f"{cfg.where('log')}: level must be one of {', '.join(LOG_LEVELS)}")
    return Config(path=path, tables=tables, server=server, concept_maps=tuple(cfg.resolve(m) for m in maps),
                  log_format=log_format, log_level=log_level)


def load_config(path: str | Path | None) -> Config:
    """Read and check a config file (None: the empty config)."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read the config file ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    return parse_config(data, p)


__all__ = ["COMMAND_TABLES", "Config", "ServerSettings", "check_keys", "find_config", "load_config", "origin",
           "parse_config", "search_path"]
