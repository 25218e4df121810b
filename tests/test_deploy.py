"""Running fhir3t as a service: the nightly script's exit-code handling, the systemd/cron examples, the
wheel's data files and the Dockerfile (built only where docker works)."""
from __future__ import annotations

import fnmatch
import os
import shutil
import socket
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import ROOT, SAMPLES

DEPLOY = ROOT / "deploy"
NIGHTLY = DEPLOY / "fhir3t-nightly.sh"
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
    assert "COPY profiles" in text and 'ENTRYPOINT ["fhir3t"]' in text
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
    r = subprocess.run(["docker", "run", "--rm", tag, "screen", "/opt/fhir3t/samples/screening", "--format", "csv"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 26 and "written for" in r.stderr
    who = subprocess.run(["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"], capture_output=True, text=True)
    assert who.stdout.strip() != "0"
