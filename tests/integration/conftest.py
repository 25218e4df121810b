"""A real FHIR server for the integration tests: sekmet-fhir 0.1.1 in its own cached virtualenv.

The session fixture creates `<repo>/.cache/sekmet-venv` once (pip install sekmet-fhir==0.1.1), starts
the server on a free 127.0.0.1 port through sekmet_launcher.py (which adds the R4 search parameters
0.1.1 lacks), waits for /metadata, and stops it by PID at the end.

- FHIR3T_TEST_SERVER=URL: use that server instead (e.g. a hospital's test HAPI); the SMART test then
  needs FHIR3T_TEST_SMART_CLIENT_ID and FHIR3T_TEST_SMART_KEY, or it is skipped.
- FHIR3T_SKIP_INTEGRATION=1: skip these tests. Otherwise a server that cannot be installed or
  started FAILS the tests: a silently skipped integration suite would look green.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SAMPLES = ROOT / "samples"
AS_OF = "2026-11-16"
CONCEPT_MAP = SAMPLES / "conceptmaps" / "hospital-local.json"
SEKMET = "sekmet-fhir==0.1.1"
START_TIMEOUT = 60.0


def pytest_collection_modifyitems(config, items):
    if os.environ.get("FHIR3T_SKIP_INTEGRATION") == "1":
        skip = pytest.mark.skip(reason="FHIR3T_SKIP_INTEGRATION=1")
        for item in items:
            if str(HERE) in str(item.fspath):
                item.add_marker(skip)


def _venv_python() -> Path:
    venv = ROOT / ".cache" / "sekmet-venv"
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    marker = venv / f".installed-{SEKMET}"
    if py.exists() and marker.exists():
        return py
    venv.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", SEKMET],
                       check=True, capture_output=True, timeout=900)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"cannot install {SEKMET} into {venv}: {exc.stderr.decode(errors='replace')[-2000:]}\n"
                    "(set FHIR3T_SKIP_INTEGRATION=1 to skip the integration tests)", pytrace=False)
    marker.write_text("ok\n")
    return py


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One started sekmet process."""

    def __init__(self, tmp: Path, extra: list[str] | None = None) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self.log = tmp / f"sekmet-{self.port}.log"
        py = _venv_python()
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen([str(py), str(HERE / "sekmet_launcher.py"), str(self.port), str(tmp / f"data-{self.port}"),
                                      *(extra or [])], stdout=self._fh, stderr=subprocess.STDOUT, cwd=str(tmp))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if requests.get(f"{self.base}/metadata", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"sekmet did not start on {self.base} within {START_TIMEOUT:.0f} s:\n"
                    f"{self.log.read_text(errors='replace')[-3000:]}\n"
                    "(set FHIR3T_SKIP_INTEGRATION=1 to skip the integration tests)", pytrace=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._fh.close()


@pytest.fixture(scope="session")
def server_url(tmp_path_factory) -> Iterator[str]:
    external = os.environ.get("FHIR3T_TEST_SERVER")
    if external:
        yield external.rstrip("/")
        return
    srv = Server(tmp_path_factory.mktemp("sekmet"))
    try:
        yield srv.base
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def smart_server(tmp_path_factory) -> Iterator[dict]:
    """A second sekmet with SMART Backend Services on: {'base', 'client_id', 'key'} (RS384 PEM key)."""
    if os.environ.get("FHIR3T_TEST_SERVER"):
        cid, key = os.environ.get("FHIR3T_TEST_SMART_CLIENT_ID"), os.environ.get("FHIR3T_TEST_SMART_KEY")
        if not (cid and key):
            pytest.skip("external server: set FHIR3T_TEST_SMART_CLIENT_ID and FHIR3T_TEST_SMART_KEY for the SMART test")
        yield {"base": os.environ["FHIR3T_TEST_SERVER"].rstrip("/"), "client_id": cid, "key": key}
        return
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    tmp = tmp_path_factory.mktemp("sekmet-smart")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp / "client.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    pub = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    pub.update({"alg": "RS384", "use": "sig", "kid": "k1"})
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps({"keys": [pub]}))
    srv = Server(tmp, ["--smart-jwks", str(jwks), "--client-id", "fhir3t-test", "--client-secret", "s3cret-for-tests"])
    try:
        yield {"base": srv.base, "client_id": "fhir3t-test", "key": str(pem), "secret": "s3cret-for-tests"}
    finally:
        srv.stop()


# ---- loading the samples ---------------------------------------------------------------------
def as_transaction(bundle: dict) -> dict:
    """A collection/searchset Bundle (or a single resource) as a transaction of PUTs to its ids."""
    if bundle.get("resourceType") != "Bundle":
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": bundle}]}
    if bundle.get("type") in ("transaction", "batch"):
        return bundle
    entries = []
    for e in bundle.get("entry") or []:
        res = e.get("resource")
        if not isinstance(res, dict) or (e.get("search") or {}).get("mode") == "outcome":
            continue
        entries.append({"fullUrl": e.get("fullUrl") or f"{res['resourceType']}/{res['id']}", "resource": res,
                        "request": {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def load_samples(base: str) -> None:
    for path in sorted((SAMPLES / "screening").glob("*.json")):
        tx = as_transaction(json.loads(path.read_text()))
        r = requests.post(base, json=tx, headers={"Content-Type": "application/fhir+json"}, timeout=60)
        assert r.status_code == 200, f"{path.name}: {r.status_code} {r.text[:500]}"


@pytest.fixture(scope="session")
def loaded_server(server_url: str) -> str:
    load_samples(server_url)
    return server_url


# ---- a second real server: Medplum's FHIR router ----------------------------------------------------
MEDPLUM = ROOT / ".cache" / "medplum-server"
MEDPLUM_VERSION = "5.2.13"
MEDPLUM_PACKAGES = ("fhir-router", "core", "definitions")


def _medplum_modules() -> Path:
    """node_modules holding @medplum/fhir-router MEDPLUM_VERSION (installed from npm on first use, ~10 s)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not available: the Medplum server tests need @medplum/fhir-router from npm")
    marker = MEDPLUM / "node_modules" / "@medplum" / "fhir-router" / "package.json"
    if not marker.is_file() or json.loads(marker.read_text())["version"] != MEDPLUM_VERSION:
        MEDPLUM.mkdir(parents=True, exist_ok=True)
        (MEDPLUM / "package.json").write_text('{"name": "fhir3t-medplum-server", "private": true}\n')
        try:
            subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error",
                            *(f"@medplum/{p}@{MEDPLUM_VERSION}" for p in MEDPLUM_PACKAGES)],
                           cwd=MEDPLUM, check=True, timeout=600, capture_output=True)
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"cannot install @medplum/fhir-router@{MEDPLUM_VERSION}: "
                        f"{exc.stderr.decode(errors='replace')[-1500:]}", pytrace=False)
    return MEDPLUM / "node_modules"


class MedplumServer:
    """Medplum's FHIR router over an in-memory repository (medplum_server.mjs), on 127.0.0.1, stopped by PID.
    Unlike sekmet it keeps references as written and matches a reference search on the literal string."""

    def __init__(self, tmp: Path) -> None:
        modules = _medplum_modules()
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}/fhir"
        self.log = tmp / f"medplum-{self.port}.log"
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(["node", str(HERE / "medplum_server.mjs"), str(self.port), str(modules)],
                                     stdout=self._fh, stderr=subprocess.STDOUT, cwd=str(tmp))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if requests.get(f"{self.base}/metadata", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"the Medplum server did not start on {self.base}:\n{self.log.read_text(errors='replace')[-3000:]}",
                    pytrace=False)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._fh.close()


@pytest.fixture(scope="module")
def scratch_server(tmp_path_factory) -> Iterator[str]:
    """A sekmet of its own, samples loaded, for tests that write to the server (what they add must not change what
    the session's server holds for the other tests); not run against FHIR3T_TEST_SERVER, which is not ours to write."""
    if os.environ.get("FHIR3T_TEST_SERVER"):
        pytest.skip("writes to the server: runs on the suite's own sekmet only")
    srv = Server(tmp_path_factory.mktemp("sekmet-scratch"))
    try:
        load_samples(srv.base)
        yield srv.base
    finally:
        srv.stop()
