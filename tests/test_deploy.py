"""Running fhir3t as a service: the nightly script's exit-code handling, the systemd/cron examples, the
wheel's data files and the Dockerfile (built only where docker works)."""
from __future__ import annotations

import fnmatch
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES

DEPLOY = ROOT / "deploy"
NIGHTLY = DEPLOY / "fhir3t-nightly.sh"
ENTRY = DEPLOY / "docker-entrypoint.sh"
CMAP = str(SAMPLES / "conceptmaps" / "hospital-local.json")


def nightly(out: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    fhir3t = Path(sys.executable).parent / "fhir3t"
    if not fhir3t.exists():
        pytest.skip("the fhir3t console script is not installed next to this Python")
    full = {**os.environ, "FHIR3T_OUT": str(out), "FHIR3T_BIN": str(fhir3t), "FHIR3T_CONFIG": "none", **env}
    return subprocess.run(["sh", str(NIGHTLY), *args], capture_output=True, text=True, env=full, timeout=300)


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nightly_publishes_results_and_keeps_them_when_a_later_run_fails(tmp_path):
    out = tmp_path / "out"
    ok = nightly(out, str(SAMPLES / "screening"), "--as-of", "2026-11-16", "--concept-map", CMAP)
    assert ok.returncode == 0, ok.stderr
    day = out / today()
    assert {p.name for p in day.iterdir()} == {"worklist.html", "worklist.csv", "screening.json"}
    assert (out / "latest").is_symlink() and (out / "latest").resolve() == day.resolve()
    assert (day / "worklist.html").read_text(encoding="utf-8").count('<tr class="row"') == 25
    # no usable input: exit 4, yesterday's worklist stays, no half-written folder left
    (day / "marker").write_text("earlier run")
    bad = nightly(out, str(tmp_path / "missing"))
    assert bad.returncode == 4 and "nothing published" in bad.stderr
    assert (out / "latest" / "marker").exists() and not list(out.glob(".run-*"))


def test_nightly_publishes_with_a_warning_when_input_was_skipped(tmp_path):
    data = tmp_path / "in"
    data.mkdir()
    shutil.copy(SAMPLES / "screening" / "01-eligible-classic.json", data)
    (data / "broken.json").write_text("{nope")
    r = nightly(tmp_path / "out", str(data), "--as-of", "2026-11-16")
    assert r.returncode == 3 and "some input was skipped" in r.stderr and "broken.json" in r.stderr
    assert (tmp_path / "out" / "latest" / "worklist.csv").exists()


def test_nightly_retries_a_server_error_then_fails(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/fhir"
    r = nightly(tmp_path / "out", "--server", url, "--timeout", "2", FHIR3T_RETRIES="1", FHIR3T_RETRY_WAIT="0")
    assert r.returncode == 5, r.stderr
    assert "retry 1 of 1" in r.stderr and r.stderr.count("fhir3t screen:") >= 2
    assert not (tmp_path / "out" / "latest").exists()


def test_nightly_does_not_retry_a_usage_error(tmp_path):
    r = nightly(tmp_path / "out", "--no-such-option", FHIR3T_RETRY_WAIT="0")
    assert r.returncode == 2 and "retry 1 of" not in r.stderr and "unknown option --no-such-option" in r.stderr


def test_systemd_unit_treats_skipped_input_as_success_and_runs_the_script():
    unit = (DEPLOY / "fhir3t-screen.service").read_text()
    assert "SuccessExitStatus=3" in unit and "User=fhir3t" in unit
    assert "ExecStart=/usr/local/bin/fhir3t-nightly.sh" in unit
    timer = (DEPLOY / "fhir3t-screen.timer").read_text()
    assert "OnCalendar=" in timer and "Persistent=true" in timer
    cron = (DEPLOY / "crontab.example").read_text()
    line = next(x for x in cron.splitlines() if x and not x.startswith("#") and x[0].isdigit())
    assert line.split()[5] == "fhir3t" and "fhir3t-nightly.sh" in line and "-eq 3" in line  # /etc/cron.d: a user field
    assert "%" not in line  # cron would turn it into a newline


def test_the_wheel_ships_every_profile_file():
    """pyproject's data-files must cover profiles/: a non-editable install (the Docker image) reads them there."""
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["data-files"]
    patterns = [g for group in globs.values() for g in group]
    files = [p.relative_to(ROOT).as_posix() for p in (ROOT / "profiles").rglob("*") if p.is_file()]
    missing = [f for f in files if not any(fnmatch.fnmatch(f, g) and f.count("/") == g.count("/") for g in patterns)]
    assert files and missing == []


def test_dockerfile_is_slim_non_root_and_copies_what_exists():
    text = (ROOT / "Dockerfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms and all(f.startswith("python:3.11-slim") for f in froms)
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    assert "COPY profiles" in text and 'ENTRYPOINT ["/usr/local/bin/fhir3t-entrypoint"]' in text
    assert "COPY deploy/docker-entrypoint.sh /usr/local/bin/fhir3t-entrypoint" in text
    assert os.access(ENTRY, os.X_OK)  # COPY keeps the mode: the entrypoint must be executable in the checkout
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored


def _docker_usable() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed"
    try:
        r = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker info failed: {exc}"
    return None if r.returncode == 0 else "the docker daemon is not reachable (docker info failed)"


def test_the_image_builds_and_screens_the_samples():
    why = _docker_usable()
    if why:
        pytest.skip(why)
    tag = "fhir3t-test:latest"
    build = subprocess.run(["docker", "build", "-q", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stderr[-3000:]
    r = subprocess.run(["docker", "run", "--rm", tag, "smoke"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 26 and "written for" in r.stderr
    for cmd in ("serve", "watch"):  # both start far enough to parse their options in the image
        h = subprocess.run(["docker", "run", "--rm", tag, cmd, "--help"], capture_output=True, text=True, timeout=300)
        assert h.returncode == 0 and h.stdout.startswith(f"usage: fhir3t {cmd}"), h.stderr
    who = subprocess.run(["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"], capture_output=True, text=True)
    assert who.stdout.strip() != "0"


# ---- the image's entrypoint, run outside Docker (CI has no daemon): the same script, this checkout's install ----

def entry(*args: str, secrets: Path, user: list[str] | None = None, **env: str) -> subprocess.CompletedProcess:
    bindir = Path(sys.executable).parent
    if not (bindir / "fhir3t").exists():
        pytest.skip("the fhir3t console script is not installed next to this Python")
    full = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", "FHIR3T_PYTHON": sys.executable,
            "FHIR3T_SAMPLES": str(SAMPLES), "FHIR3T_SECRETS": str(secrets), "FHIR3T_NIGHTLY": str(NIGHTLY), **env}
    return subprocess.run([*(user or []), "sh", str(ENTRY), *args], capture_output=True, text=True, env=full, timeout=300)


def test_entrypoint_smoke_screens_the_bundled_samples(tmp_path):
    r = entry("smoke", secrets=tmp_path / "none")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 26 and "Patient/p01,MRN-100001,eligible" in r.stdout


def test_entrypoint_runs_the_nightly_screen_and_passes_other_commands_through(tmp_path):
    out = tmp_path / "out"
    r = entry("nightly", str(SAMPLES / "screening"), "--as-of", "2026-11-16", "--concept-map", CMAP,
              secrets=tmp_path / "none", FHIR3T_OUT=str(out), FHIR3T_CONFIG="none")
    assert r.returncode == 0, r.stderr
    assert (out / "latest" / "worklist.csv").read_text(encoding="utf-8-sig").count("\n") == 26
    codes = entry("codes", str(SAMPLES / "screening" / "22-local-codes.json"), "--format", "json", secrets=tmp_path / "none")
    assert codes.returncode == 0 and '"code": "MDA5-AB"' in codes.stdout
    for cmd in ("serve", "watch"):
        h = entry(cmd, "--help", secrets=tmp_path / "none")
        assert h.returncode == 0 and h.stdout.startswith(f"usage: fhir3t {cmd}")


def test_entrypoint_serves_on_the_address_it_is_given_and_stops_on_sigterm(tmp_path):
    import requests

    port = closed_port()
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "FHIR3T_PYTHON": sys.executable,
           "FHIR3T_SECRETS": str(tmp_path / "none"), "FHIR3T_HOST": "127.0.0.1", "FHIR3T_CONFIG": "none"}
    proc = subprocess.Popen(["sh", str(ENTRY), "serve", "--port", str(port), "--state-dir", str(tmp_path / "state"),
                             "--log-format", "json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(150):
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                if proc.poll() is not None:
                    pytest.fail(f"serve exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
                time.sleep(0.1)
        else:
            pytest.fail("serve did not answer /health")
        proc.send_signal(signal.SIGTERM)  # the script exec'd fhir3t: the signal reaches the service itself
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert '"event":"run-end"' in err and "127.0.0.1" in err


def _unreadable_key(folder: Path) -> Path:
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    key = folder / "smart-key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot a real key\n-----END PRIVATE KEY-----\n")
    os.chmod(key, 0o600)
    return key


def _as_uid_10001() -> tuple[list[str], str] | None:
    """How to run as the image's uid/gid (setpriv, util-linux, as root can), and a Python that user can start
    (this venv's may sit under a folder closed to it); None where this process cannot switch."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return None
    prefix = ["setpriv", "--reuid", "10001", "--regid", "10001", "--clear-groups"]
    for python in (sys.executable, "/usr/bin/python3"):
        probe = subprocess.run([*prefix, "sh", "-c", '"$0" -c "import fhir3t.secretfiles"', python], cwd="/",
                               capture_output=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
        if probe.returncode == 0:
            return prefix, python
    return None


def test_entrypoint_stops_at_start_on_a_secret_the_service_user_cannot_read(tmp_path):
    """A root-owned 0600 key, as `docker compose` mounts a host file: unreadable by uid 10001, said in one sentence."""
    base = Path(tempfile.mkdtemp(prefix="fhir3t-secrets-"))  # under /tmp, traversable by uid 10001 (tmp_path is not)
    try:
        os.chmod(base, 0o755)
        key = _unreadable_key(base / "secrets")
        switch = _as_uid_10001()
        env: dict[str, str] = {}
        if switch is None:  # not root: the same situation is a file this user may not read
            os.chmod(key, 0o000)
            if os.access(key, os.R_OK):
                pytest.skip("this process reads every file, and cannot run as another user (no setpriv)")
        else:  # the check is what runs as uid 10001; the command after it is echoed (this venv may be closed to it)
            env = {"FHIR3T_PYTHON": switch[1], "PYTHONPATH": str(ROOT / "src"), "FHIR3T_BIN": "echo"}
        r = entry("smoke", secrets=key.parent, user=switch[0] if switch else None, **env)
        assert r.returncode == 4, r.stderr
        line = r.stderr.strip()
        assert line.count("\n") == 0 and str(key) in line
        uid = "10001" if switch else str(os.geteuid())
        assert f"runs as uid {uid}" in line and f"owned by uid {os.geteuid()}" in line
        assert ("mode 0600" if switch else "mode 0000") in line
        assert f"chown {uid} FILE; chmod 0400 FILE" in line
        assert r.stdout == ""  # nothing ran
        if switch:  # the documented owner and mode: the check passes and the command runs
            os.chown(key, 10001, 10001)
            os.chmod(key, 0o400)
            ok = entry("smoke", secrets=key.parent, user=switch[0], **env)
            assert ok.returncode == 0 and ok.stdout.startswith("screen "), ok.stderr
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_config_token_file_the_process_cannot_read_is_named_with_its_owner_and_mode(tmp_path):
    from fhir3t.secretfiles import problem

    assert problem(tmp_path / "missing", "[server] token_file") == f"[server] token_file {tmp_path / 'missing'}: no such file"
    assert problem(tmp_path) == f"secret file {tmp_path}: not a regular file"
    token = tmp_path / "token"
    token.write_text("abc")
    assert problem(token) is None
