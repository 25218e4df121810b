"""A real headless browser for tests of pages fhir3t writes (the report; later the coordinator's worklist).

Debian's Chromium (/usr/bin/chromium, or $FHIR3T_CHROMIUM) driven by the `playwright` package; Playwright's
own browser download is never used. Use it from a test module with

    from browser import browser_page  # noqa: F401  (the fixture)

    def test_x(browser_page): page = browser_page.open(path); ...

`open(path)` loads a local file and records console errors and any request that leaves file:// (a page
that must work offline should make none). Skips with the reason when Chromium or playwright is missing.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_path() -> str | None:
    env = os.environ.get("FHIR3T_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class BrowserPage:
    page: Any
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    remote_requests: list[str] = field(default_factory=list)

    def open(self, path: Path, width: int = 1200, height: int = 900) -> Any:
        self.page.set_viewport_size({"width": width, "height": height})
        self.page.goto(Path(path).resolve().as_uri())
        self.page.wait_for_load_state("load")
        return self.page


_STATE: dict[str, Any] = {}


def _browser(config: pytest.Config) -> Any:
    """The run's one Chromium, started on first use and stopped when the test session ends."""
    if "browser" in _STATE:
        return _STATE["browser"]
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium installed (apt-get install chromium, or set FHIR3T_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    pw = sync_api.sync_playwright().start()
    browser = pw.chromium.launch(executable_path=exe, args=ARGS)

    def stop() -> None:
        browser.close()
        pw.stop()
        _STATE.clear()

    config.add_cleanup(stop)
    _STATE["browser"] = browser
    return browser


@pytest.fixture
def browser_page(request: pytest.FixtureRequest) -> Iterator[BrowserPage]:
    """A fresh page in the session's Chromium, with its console errors and remote requests recorded."""
    context = _browser(request.config).new_context()
    page = context.new_page()
    bp = BrowserPage(page)
    page.on("console", lambda m: bp.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: bp.page_errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:", "about:")) else bp.remote_requests.append(r.url))
    try:
        yield bp
    finally:
        context.close()
