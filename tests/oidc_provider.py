"""A real OpenID Connect provider for the sign-in tests: the certified `oidc-provider` from npm (tests/data/oidc/
provider.mjs), installed into `.cache/oidc-provider` once (~5 s from the registry, then reused) and started on
127.0.0.1 by PID, stopped by PID. Skips where node/npm are absent (as the Medplum check does).

    with OidcProvider(client_id, [redirect_uri]) as issuer: ...   # issuer = "http://127.0.0.1:<port>"
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "oidc-provider"
SCRIPT = Path(__file__).parent / "data" / "oidc" / "provider.mjs"
VERSION = "9.13.3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def installed() -> Path:
    """node_modules holding oidc-provider VERSION (installed on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not available: the sign-in tests need the oidc-provider package from npm")
    marker = CACHE / "node_modules" / "oidc-provider" / "package.json"
    if not marker.is_file() or json.loads(marker.read_text())["version"] != VERSION:
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / "package.json").write_text('{"name": "fhir3t-oidc-provider", "private": true}\n')
        try:
            subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error", f"oidc-provider@{VERSION}"],
                           cwd=CACHE, check=True, timeout=600, capture_output=True)
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"cannot install oidc-provider@{VERSION}: {exc.stderr.decode(errors='replace')[-1500:]}",
                        pytrace=False)
    return CACHE / "node_modules"


class OidcProvider:
    def __init__(self, client_id: str, redirects: list[str], log: Path) -> None:
        self.modules = installed()
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.client_id, self.redirects, self.log = client_id, redirects, log
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> str:
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(["node", str(SCRIPT), str(self.modules), str(self.port), self.client_id,
                                      *self.redirects], stdout=self._fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=2).status_code == 200:
                    return self.issuer
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.__exit__()
        pytest.fail(f"oidc-provider did not start: {self.log.read_text(errors='replace')[-2000:]}", pytrace=False)

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._fh.close()
