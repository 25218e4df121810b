"""A bounded load test of `fhir3t serve` on loopback (issue 21): while 300 clients dribble request bodies, 50
dribble request heads and four threads flood the feedback endpoint, hook calls from eight concurrent EHR
sessions are still answered, each within the service's budget, with the same card as without the attack;
the dribbling clients are let go (408, then closed) within the body and head timeouts.

The service runs as the real command in its own process (its own interpreter: the attackers' threads here do
not share its GIL). The latency figures (before and under attack) are printed for the record; the only
timed check is the one the issue asks for, that every call was answered within the configured budget,
which is far above what a call takes even on a loaded 2-core machine (tens of milliseconds).
"""
from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from cds_helpers import ROOT, SERVICE, hook_request, sample_resources
from fhir3t.pipeline import Definition
from fhir3t.service.prefetch import as_prefetch, templates
from hostile_client import Crowd, flood, wait_until
from test_service_cli import free_port

BUDGET_MS = 3000
SLOW_BODIES, SLOW_HEADS, FLOODERS, SESSIONS, CALLS = 300, 50, 4, 8, 80


def _calls(url: str, body: bytes, n: int) -> list[tuple[int, int, float]]:
    """(status, cards, seconds) of n hook calls from SESSIONS concurrent sessions."""
    def one(_i: int) -> tuple[int, int, float]:
        t0 = time.monotonic()
        r = requests.post(f"{url}/cds-services/{SERVICE}", data=body, headers={"Content-Type": "application/json"},
                          timeout=30)
        took = time.monotonic() - t0
        return r.status_code, len(r.json().get("cards", [])) if r.status_code == 200 else -1, took

    with ThreadPoolExecutor(SESSIONS) as pool:
        return list(pool.map(one, range(n)))


def _figures(label: str, got: list[tuple[int, int, float]]) -> str:
    ms = sorted(t * 1000 for _s, _c, t in got)
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    return f"{label}: {len(ms)} calls, median {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, max {ms[-1]:.0f} ms"


def test_hook_calls_are_answered_within_the_budget_under_slow_clients_and_a_feedback_flood(tmp_path, capsys):
    port = free_port()
    (tmp_path / "fhir3t.toml").write_text(
        f'[serve]\nport = {port}\nstate_dir = "state"\nbudget_ms = {BUDGET_MS}\nshow_again_after_days = 0\n', encoding="utf-8")
    env = {**os.environ, "FHIR3T_CONFIG": str(tmp_path / "fhir3t.toml")}
    log = (tmp_path / "serve.log").open("w")  # a file, not a pipe: thousands of request lines must not fill a buffer
    proc = subprocess.Popen([sys.executable, "-m", "fhir3t", "serve", "--as-of", "2026-11-16", "--log-format", "json"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, text=True)
    url = f"http://127.0.0.1:{port}"
    crowd = Crowd()
    stop = None
    try:
        assert wait_until(lambda: _up(url), timeout=60), "the service did not start"
        res = sample_resources("01-eligible-classic")
        body = json.dumps(hook_request("p01", as_prefetch(res, templates(Definition.load()), "p01"))).encode()
        before = _calls(url, body, CALLS // 2)
        crowd.slow_body(url, f"/cds-services/{SERVICE}", SLOW_BODIES).slow_head(url, "/cds-services", SLOW_HEADS)
        feedback = json.dumps({"feedback": [{"card": f"c{i}", "outcome": "overridden",
                                             "outcomeTimestamp": "2026-11-16T09:00:00Z"} for i in range(100)]}).encode()
        stop, statuses = flood(f"{url}/cds-services/{SERVICE}/feedback", feedback, threads=FLOODERS, seconds=120)
        time.sleep(1.0)  # the crowd connected, the flood running
        held_during = crowd.still_held()
        under = _calls(url, body, CALLS)
        stop.set()
        released = wait_until(lambda: crowd.still_held() == 0, timeout=30)
        after = _calls(url, body, 8)
    finally:
        if stop is not None:
            stop.set()
        crowd.stop()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    err = (tmp_path / "serve.log").read_text(encoding="utf-8")
    with capsys.disabled():
        print("\n" + "\n".join([
            _figures("serve, before the attack", before),
            f"attack: {SLOW_BODIES} slow bodies + {SLOW_HEADS} slow heads ({held_during} connections held when the calls "
            f"began), {FLOODERS} threads flooding feedback ({len(statuses)} requests: "
            f"{dict(sorted((s, statuses.count(s)) for s in set(statuses)))})",
            _figures("serve, under the attack", under),
            f"slow clients let go: {released} (longest held "
            f"{max((h.held_for or 0) for h in crowd.held):.1f} s; body and head timeouts 10 s)",
            next((line for line in err.splitlines() if "AUTHENTICATION" in line), "")]))
    for status, cards, took in before + under + after:
        assert (status, cards) == (200, 1)  # the same card as without the attack
        assert took * 1000 <= BUDGET_MS  # within the budget the EHR was promised
    assert held_during >= SLOW_BODIES  # the attack was real: the connections were held while the calls ran
    assert released and all(h.held_for is not None and h.held_for < 25 for h in crowd.held)
    assert set(statuses) <= {200, 503} and 200 in statuses  # flood answered or shed, never a 500
    assert proc.returncode == 0 and "internal error" not in err and "Traceback" not in err


def _up(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False
