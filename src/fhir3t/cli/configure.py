"""The config file (fhir3t.config) applied to the command line: it sets defaults, options given win.

- `[screen]`, `[safety]`, ... keys are long option names; each value is checked the way the option
  checks it (type, choices) and becomes that option's default. Lists add to what `--concept-map`
  etc. give on the command line; `--no-config` reads no file at all.
- `[server] url` is the server when neither PATH nor `--server` is given (files still win);
  its credentials (a key path, a token file, a client id) go only to that URL's origin: with
  `--server` or `--push` naming another origin they are not used, and stderr says so.
- `[terminology] concept_maps` are added to every subcommand's `--concept-map`.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from fhir3t.config import Config, find_config, load_config
from fhir3t.errors import ConfigError, UsageError

#: options a config file may not set, and why
REFUSED = {
    "as_of": "the as-of date changes with every run: give --as-of on the command line (default: today)",
    "d1": "D1 changes with every run: give --d1 on the command line",
    "since": "--since changes with every run: give it on the command line",
    "token": "a token is a secret: use [server] token_file or $FHIR3T_TOKEN",
    "help": "", "version": "", "config": "", "no_config": "",
}
#: option dests whose values are files: relative paths in the config are relative to the config's folder
PATH_DESTS = frozenset({"out", "html", "csv", "emit", "criteria", "json", "screening", "d1_csv", "concept_map",
                        "smart_key", "profiles"})
SERVER_DESTS = {"scope": "smart_scope", "timeout": "timeout", "parallel": "parallel", "max_requests": "max_requests"}


def config_from_argv(argv: Sequence[str]) -> Config:
    """The config the command line asks for: --config FILE / --no-config anywhere before `--`."""
    explicit: str | None = None
    for i, tok in enumerate(argv):
        if tok == "--":
            break
        if tok == "--no-config":
            return Config()
        if tok == "--config" and i + 1 < len(argv):
            explicit = argv[i + 1]
        elif tok.startswith("--config="):
            explicit = tok.split("=", 1)[1]
    return load_config(find_config(explicit))


def _action(parser: argparse.ArgumentParser, key: str) -> argparse.Action | None:
    flag = "--" + key.replace("_", "-")
    for a in parser._actions:
        if flag in a.option_strings:
            return a
    return None


def _value(cfg: Config, table: str, key: str, action: argparse.Action, value: Any) -> Any:
    """A config value checked and converted as the option would convert it on the command line."""
    where = f"{cfg.where(table)} '{key}'"
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false")
        return value
    if isinstance(action, argparse._CountAction):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{where} must be a whole number")
        return value
    many = isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+")
    values = value if isinstance(value, list) and many else [value]
    if isinstance(value, list) and not many:
        raise ConfigError(f"{where} takes one value, not a list")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ConfigError(f"{where} must be {'a list of values' if many else 'a value'} such as on the command line")
        conv: Any = v
        if action.type is not None and callable(action.type):
            try:
                conv = action.type(str(v))  # a number from TOML goes through the same check as on the command line
            except argparse.ArgumentTypeError as exc:
                sep = " " if str(exc).startswith("must ") else ": "  # "'jobs' must be ..." reads as one sentence
                raise ConfigError(f"{where}{sep}{exc}") from None
            except (ValueError, TypeError):
                kind = {int: "a whole number", float: "a number"}.get(action.type, "a value the option accepts")  # type: ignore[call-overload]
                raise ConfigError(f"{where} must be {kind}, not {v!r}") from None
        elif not isinstance(v, str):
            conv = str(v)
        if action.choices is not None and conv not in action.choices:
            from fhir3t.cli.parser import nearest

            hint = nearest(str(conv), [str(c) for c in action.choices])
            raise ConfigError(f"{where} = '{v}' is not one of {', '.join(map(str, action.choices))}"
                              + (f"; did you mean '{hint}'?" if hint else ""))
        if action.dest in PATH_DESTS and isinstance(conv, str):
            conv = str(cfg.resolve(conv))
        out.append(conv)
    return out if many else out[0]


def apply_defaults(cfg: Config, commands: dict[str, argparse.ArgumentParser]) -> None:
    """Turn the config's tables into parser defaults (so any option given on the command line wins)."""
    from fhir3t.cli.parser import nearest

    for table, keys in cfg.commands().items():
        parser = commands.get(table)
        if parser is None:
            continue  # a table for a subcommand this installation does not have
        defaults: dict[str, Any] = {}
        for key, value in keys.items():
            dest = key.replace("-", "_")
            if dest in REFUSED:
                why = REFUSED[dest]
                raise ConfigError(f"{cfg.where(table)}: '{key}' cannot be set in a config file" + (f": {why}" if why else ""))
            action = _action(parser, key)
            if action is None or action.dest == argparse.SUPPRESS or not action.option_strings:
                opts = [s[2:] for a in parser._actions for s in a.option_strings if s.startswith("--")]
                hint = nearest(key, opts)
                raise ConfigError(f"{cfg.where(table)}: 'fhir3t {table}' has no option --{key}"
                                  + (f"; did you mean '{hint}'?" if hint else ""))
            defaults[action.dest] = _value(cfg, table, key, action, value)
        parser.set_defaults(**defaults)
    maps = [str(p) for p in cfg.concept_maps]
    s = cfg.server
    for parser in commands.values():
        dests = {a.dest: a for a in parser._actions}
        if maps and "concept_map" in dests:
            current = parser.get_default("concept_map") or []
            parser.set_defaults(concept_map=[*maps, *[m for m in current if m not in maps]])
        for key, dest in SERVER_DESTS.items():
            value = getattr(s, key)
            if value is not None and dest in dests:
                parser.set_defaults(**{dest: value})
        if s.url and "server" in dests and dests["server"].required:
            dests["server"].required = False  # [server] url fills it after parsing


def _has_paths(args: argparse.Namespace) -> bool:
    """Files (or the state file, --state FILE) were named: [server] url does not replace them."""
    if hasattr(args, "paths"):
        return bool(args.paths)
    return getattr(args, "state", None) is not None


def apply_server(cfg: Config, args: argparse.Namespace) -> None:
    """[server] url and credentials, after parsing: only where the command line left them out."""
    if not hasattr(args, "server"):
        return
    s = cfg.server
    if args.server is None and s.url and not _has_paths(args):
        args.server = s.url
    if args.server is None and getattr(args, "_server_required", False):
        raise UsageError("--server URL is required (or [server] url in the config file)")
    given = any(getattr(args, d, None) for d in ("token", "smart_client_id", "smart_key"))
    if given or args.server is None or s.auth == "none" or not (s.client_id or s.key or s.token_file):
        return
    urls = [u for u in (args.server, getattr(args, "push", None)) if u]
    if not all(s.same_origin(u) for u in urls):
        print(f"fhir3t: note: the config's credentials are for {s.url} and are not sent to another server; "
              "give that server's credentials on the command line", file=sys.stderr)
        return
    method = s.auth
    if method == "auto":
        method = "smart" if (s.client_id and s.key) else "token" if s.token_file else "client-secret"
    if s.token_url and getattr(args, "smart_token_url", None) is None:
        args.smart_token_url = s.token_url  # configured with the credentials it is for: same origin rule as they
    if method == "smart":
        args.smart_client_id, args.smart_key = s.client_id, str(s.key) if s.key else None
    elif method == "token":
        token = s.token()
        if token:
            args.token = token
    elif method == "client-secret":
        args.smart_client_id = s.client_id


def mark_required_server(commands: dict[str, argparse.ArgumentParser]) -> None:
    """Remember which subcommands need a server, before apply_defaults relaxes `required`."""
    for parser in commands.values():
        for a in parser._actions:
            if a.dest == "server" and a.required:
                parser.set_defaults(_server_required=True)


__all__ = ["apply_defaults", "apply_server", "config_from_argv", "mark_required_server"]
