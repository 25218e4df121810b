"""The config file: where it is found, what it may hold (never secrets), and that the command line wins."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import SAMPLES
from fhir3t.cli import main
from fhir3t.config import Config, check_keys, find_config, load_config, parse_config
from fhir3t.errors import EXIT_INPUT_FATAL, ConfigError

P05 = str(SAMPLES / "screening" / "05-candidate-partial-birthdate.json")
P22 = str(SAMPLES / "screening" / "22-local-codes.json")
AS_OF = ["--as-of", "2026-11-16", "--no-progress"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_first_file_found_is_used_in_the_documented_order(tmp_path):
    cwd, xdg = tmp_path / "cwd", tmp_path / "xdg"
    cwd.mkdir()
    env = {"XDG_CONFIG_HOME": str(xdg), "HOME": str(tmp_path / "home")}
    assert find_config(env=env, cwd=cwd) in (None, Path("/etc/fhir3t/config.toml"))
    user = write(xdg / "fhir3t" / "config.toml", "")
    assert find_config(env=env, cwd=cwd) == user
    local = write(cwd / "fhir3t.toml", "")
    assert find_config(env=env, cwd=cwd) == local
    named = write(tmp_path / "named.toml", "")
    assert find_config(env={**env, "FHIR3T_CONFIG": str(named)}, cwd=cwd) == named
    assert find_config(env={**env, "FHIR3T_CONFIG": "none"}, cwd=cwd) is None
    explicit = write(tmp_path / "explicit.toml", "")
    assert find_config(explicit, env={**env, "FHIR3T_CONFIG": str(named)}, cwd=cwd) == explicit
    with pytest.raises(ConfigError, match="no such config file"):
        find_config(tmp_path / "missing.toml", env=env, cwd=cwd)


def test_home_is_the_default_xdg_folder(tmp_path):
    user = write(tmp_path / "home" / ".config" / "fhir3t" / "config.toml", "")
    assert find_config(env={"HOME": str(tmp_path / "home")}, cwd=tmp_path) == user


def test_secrets_are_refused_without_echoing_them(tmp_path):
    for text in ('[server]\ntoken = "s3cr3t-value"\n', '[server]\nclient_secret = "s3cr3t-value"\n',
                 '[screen]\npassword = "s3cr3t-value"\n'):
        with pytest.raises(ConfigError) as exc:
            load_config(write(tmp_path / "c.toml", text))
        assert "secret" in str(exc.value) and "s3cr3t-value" not in str(exc.value)
        assert exc.value.exit_code == EXIT_INPUT_FATAL


def test_a_config_file_of_the_wrong_shape_is_said_in_the_reader_language():
    """The schema check's sentence is a message: the CLI says it in zh-CN, the English stays as it was."""
    with pytest.raises(ConfigError) as exc:
        parse_config({"server": {"parallel": "4"}})
    assert str(exc.value) == "config [server]: 'parallel' must be a whole number"
    assert exc.value.text("zh-CN") == "config [server]: 'parallel' 必须是整数"
    with pytest.raises(ConfigError) as exc:
        parse_config({"server": {"ulr": "https://x.example/fhir"}})
    assert exc.value.text("zh-CN") == "config [server]：未知的键 'ulr'；是不是 'url'？"
    with pytest.raises(ConfigError) as exc:  # a sentence of the config's own catalogue (a schema's x-message)
        parse_config({"server": {"auth": "smart", "client_id": "c"}})
    assert "client_id" in exc.value.text("zh-CN") and exc.value.text("zh-CN") != str(exc.value)


def test_typos_are_errors_with_a_suggestion_and_other_tables_are_kept():
    with pytest.raises(ConfigError, match=r"unknown key 'ulr'; did you mean 'url'"):
        parse_config({"server": {"ulr": "https://x.example/fhir"}})
    with pytest.raises(ConfigError, match=r"unknown table \[sever\]; did you mean \[server\]"):
        parse_config({"sever": {"url": "https://x.example/fhir"}})
    with pytest.raises(ConfigError, match="must be a table"):
        parse_config({"server": "https://x.example/fhir"})
    with pytest.raises(ConfigError, match=r"config \[server\]: 'auth' must be one of auto, .*, not 'kerberos'"):
        parse_config({"server": {"auth": "kerberos"}})
    with pytest.raises(ConfigError, match="needs client_id and key"):
        parse_config({"server": {"auth": "smart", "client_id": "c"}})
    with pytest.raises(ConfigError, match="'parallel' must be a whole number"):
        parse_config({"server": {"parallel": "4"}})
    cfg = parse_config({"serve": {"port": 8080, "anything": ["goes"]}, "serve-extra": {"x": 1}})
    assert cfg.section("serve") == {"port": 8080, "anything": ["goes"]} and cfg.section("absent") == {}
    check_keys(cfg.section("serve"), ("port", "anything"), cfg.where("serve"))  # its owner checks it
    with pytest.raises(ConfigError, match=r"config \[serve\]: unknown key 'prot'; did you mean 'port'"):
        check_keys({"prot": 1}, ("port", "anything"), cfg.where("serve"))


def test_paths_are_relative_to_the_config_file(tmp_path):
    cfg = load_config(write(tmp_path / "etc" / "fhir3t.toml", """
[server]
url = "https://ehr.example.org/fhir"
auth = "smart"
client_id = "fhir3t"
key = "keys/smart.pem"
[terminology]
concept_maps = ["maps/local.json", "/abs/other.json"]
"""))
    assert cfg.server.key == tmp_path / "etc" / "keys" / "smart.pem"
    assert cfg.concept_maps == (tmp_path / "etc" / "maps" / "local.json", Path("/abs/other.json"))
    assert cfg.server.same_origin("https://EHR.example.org:443/fhir/Patient")
    assert not cfg.server.same_origin("https://ehr.example.org.evil.example/fhir")
    assert not cfg.server.same_origin("http://ehr.example.org/fhir")


def test_invalid_toml_names_the_file_and_line(tmp_path):
    path = write(tmp_path / "bad.toml", "[server]\nurl = https://x\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML .*line 2"):
        load_config(path)


# -- the config applied to the command line ------------------------------------------------------------

def test_command_table_sets_defaults_and_the_command_line_wins(tmp_path, capsys):
    cfg = write(tmp_path / "fhir3t.toml", '[screen]\nformat = "ndjson"\n')
    assert main(["--config", str(cfg), "screen", P05, *AS_OF]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "candidate"  # ndjson from the config
    assert main(["screen", P05, *AS_OF, "--config", str(cfg), "--format", "json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)  # --format on the command line wins
    assert main(["screen", P05, *AS_OF, "--config", str(cfg), "--no-config"]) == 0
    assert "┃ patient" in capsys.readouterr().out  # the table: no config read


def test_config_found_in_the_working_folder(tmp_path, capsys, monkeypatch):
    write(tmp_path / "fhir3t.toml", '[screen]\nformat = "ndjson"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FHIR3T_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert main(["screen", P05, *AS_OF]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "candidate"


def test_concept_maps_from_the_config_are_applied(tmp_path, capsys):
    cmap = SAMPLES / "conceptmaps" / "hospital-local.json"
    rel = Path("..", *cmap.relative_to(cmap.parents[2]).parts)  # relative to the config's folder
    (tmp_path / "samples").symlink_to(cmap.parents[1])
    cfg = write(tmp_path / "etc" / "fhir3t.toml", f'[terminology]\nconcept_maps = ["{rel.as_posix()}"]\n')
    assert main(["screen", P22, *AS_OF, "--format", "ndjson"]) == 3  # without: local codes unreadable
    assert json.loads(capsys.readouterr().out)["status"] == "candidate"
    assert main(["--config", str(cfg), "screen", P22, *AS_OF, "--format", "ndjson"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "eligible"


@pytest.mark.parametrize(("text", "message"), [
    ('[screen]\nas-of = "2026-11-16"\n', "'as-of' cannot be set in a config file: the as-of date changes"),
    ('[screen]\nformat = "cvs"\n', "'format' = 'cvs' is not one of"),
    ('[screen]\nas_off = 1\n', "'fhir3t screen' has no option --as_off"),
    ('[screen]\njobs = "two"\n', "'jobs' must be a whole number, not 'two'"),
    ('[screen]\nno-progress = "yes"\n', "must be true or false"),
    ('[sreen]\nformat = "json"\n', r"did you mean \[screen\]"),
])
def test_bad_command_tables_fail_with_exit_4_naming_file_and_key(tmp_path, capsys, text, message):
    cfg = write(tmp_path / "c.toml", text)
    assert main(["--config", str(cfg), "screen", P05, *AS_OF]) == EXIT_INPUT_FATAL
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert str(cfg) in err and len(err.strip().splitlines()) == 1


def test_missing_config_file_is_named(tmp_path, capsys):
    assert main(["screen", P05, "--config", str(tmp_path / "nope.toml")]) == EXIT_INPUT_FATAL
    assert "nope.toml: no such config file" in capsys.readouterr().err


def test_example_config_is_valid_for_every_table(tmp_path):
    """deploy/fhir3t.toml.example parses and every key is an option of its subcommand."""
    from fhir3t.cli import build_parser

    example = Path(__file__).resolve().parents[1] / "deploy" / "fhir3t.toml.example"
    cfg = load_config(example)
    assert cfg.server.url and cfg.server.auth == "smart" and cfg.server.key is not None
    parser = build_parser(cfg)  # raises ConfigError for a key no option takes
    screen = parser.parse_args(["screen"])
    assert screen.html == "/var/lib/fhir3t/worklist.html" and screen.id_system == "http://hospital.example.org/mrn"
    assert screen.concept_map == [str(example.parent / "maps" / "hospital-local.json")]  # relative to the file
    assert screen.timeout == 120 and screen.format == "table"


# -- the server and its credentials --------------------------------------------------------------------

def _server_config(tmp_path: Path, url: str) -> Path:
    token = write(tmp_path / "token.txt", "tok-from-file\n")
    return write(tmp_path / "c.toml", f'[server]\nurl = "{url}"\nauth = "token"\ntoken_file = "{token.name}"\n'
                                      "timeout = 5\n")


def test_server_url_and_token_file_come_from_the_config(httpserver, tmp_path, capsys):
    httpserver.expect_request(re.compile(".*")).respond_with_json({"resourceType": "OperationOutcome"}, status=401)
    cfg = _server_config(tmp_path, httpserver.url_for("/fhir"))
    code = main(["--config", str(cfg), "screen", "--patient", "p1", *AS_OF])
    assert code == 6, capsys.readouterr().err
    assert httpserver.log, "no request reached the configured server"
    assert all(req.headers.get("Authorization") == "Bearer tok-from-file" for req, _ in httpserver.log)
    assert "tok-from-file" not in capsys.readouterr().err


def test_configured_credentials_never_go_to_another_origin(httpserver, tmp_path, capsys):
    from pytest_httpserver import HTTPServer

    httpserver.expect_request(re.compile(".*")).respond_with_json({"resourceType": "OperationOutcome"}, status=401)
    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        cfg = _server_config(tmp_path, other.url_for("/fhir"))  # credentials for `other`
        main(["--config", str(cfg), "screen", "--server", httpserver.url_for("/fhir"), "--patient", "p1", *AS_OF])
        err = capsys.readouterr().err
        assert httpserver.log and not any("Authorization" in req.headers for req, _ in httpserver.log)
        assert "not sent to another server" in err
        assert other.log == []
    finally:
        other.clear()
        other.stop()


def test_push_and_export_take_the_server_from_the_config(tmp_path, capsys):
    bundle = write(tmp_path / "b.json", json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": []}))
    with pytest.raises(SystemExit) as exc:
        main(["push", str(bundle)])
    assert exc.value.code == 2 and "--server is required" in capsys.readouterr().err
    cfg = write(tmp_path / "c.toml", '[server]\nurl = "http://127.0.0.1:9/fhir"\ntimeout = 1\n')
    code = main(["--config", str(cfg), "push", str(bundle)])
    err = capsys.readouterr().err
    assert code != 2 and "required" not in err  # it tried the configured server (nothing listens on port 9)


def test_unknown_tables_are_left_for_their_owner(tmp_path):
    cfg = load_config(write(tmp_path / "c.toml", '[serve]\nport = 8080\n[server]\nurl = "https://x.example/fhir"\n'))
    assert isinstance(cfg, Config) and cfg.section("serve") == {"port": 8080}
    from fhir3t.cli import build_parser

    build_parser(cfg)  # a [serve] table is not a command table: nothing to check against options


def test_a_token_endpoint_named_in_the_config_is_where_the_client_credentials_go(tmp_path, monkeypatch):
    """Issue 21: the credentials go to the FHIR server's origin or to a token endpoint the configuration names;
    one that discovery names elsewhere is refused (tests/test_auth.py)."""
    import argparse

    from fhir3t.cli.configure import apply_server
    from fhir3t.cli.server_options import make_client
    from fhir3t.transport.auth import ClientSecretBasicAuth

    cfg = load_config(write(tmp_path / "c.toml", '[server]\nurl = "https://ehr.example.org/fhir"\nauth = "client-secret"\n'
                                                 'client_id = "fhir3t"\ntoken_url = "https://auth.example.org/token"\n'))
    assert cfg.server.token_url == "https://auth.example.org/token"
    args = argparse.Namespace(server=None, paths=[], token=None, smart_client_id=None, smart_key=None, smart_token_url=None)
    apply_server(cfg, args)
    assert (args.server, args.smart_client_id, args.smart_token_url) == ("https://ehr.example.org/fhir", "fhir3t",
                                                                         "https://auth.example.org/token")
    monkeypatch.setenv("FHIR3T_CLIENT_SECRET", "s")
    auth = make_client(args).auth
    assert isinstance(auth, ClientSecretBasicAuth) and auth.discover() == "https://auth.example.org/token"
    with pytest.raises(ConfigError, match=r"\[server\]: 'token_url' must be an http:// or https:// URL"):
        parse_config({"server": {"token_url": "https://auth.example.org:99999/token"}})


# ---- fuzz: the typed boundary of the config (issue 21) ---------------------------------------------------
def _fuzz_config(n: int, derandomize: bool) -> None:
    import tomllib

    from hypothesis import HealthCheck, given, settings

    from fhir3t.service.settings import serve_settings
    from fuzz_json import mutated

    root = Path(__file__).resolve().parents[1]
    doc = tomllib.loads((root / "deploy" / "fhir3t.toml.example").read_text(encoding="utf-8"))
    doc["serve"] = {"port": 8088, "public_url": "https://cds.example/x", "require_jwt": True, "fhir_servers": ["https://e/fhir"],
                    "issuers": [{"iss": "a", "jwks_url": "https://a/j", "jku": ["https://a/k"]}],
                    "links": [{"label": "W", "url": "https://w", "type": "smart"}], "watch_interval": 10, "budget_ms": 100}

    @settings(max_examples=n, deadline=None, database=None, derandomize=derandomize,
              suppress_health_check=list(HealthCheck))
    @given(mutated(doc, 3))
    def run(d: dict) -> None:
        try:
            serve_settings(parse_config(d, Path("fhir3t.toml")))
        except ConfigError as exc:  # the only way a config may fail: one sentence naming the file
            assert "\n" not in str(exc) and "fhir3t.toml" in str(exc)

    run()


def test_fuzzed_config_documents_fail_only_with_one_sentence():
    _fuzz_config(150, derandomize=True)


@pytest.mark.fuzz
def test_fuzz_long_config():
    _fuzz_config(5000, derandomize=False)
