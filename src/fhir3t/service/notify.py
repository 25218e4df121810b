"""The `--notify` hook of `fhir3t watch`: tell someone when a patient has newly become eligible.

The target is a webhook (an http:// or https:// URL: the event is POSTed as JSON) or a command (run
without a shell, the event as JSON on its stdin and in FHIR3T_* environment variables), so a mail, a
chat message or the coordinator's page can pick it up. The event names the patient only by the
ResearchSubject id (a pseudonym the study team resolves on the FHIR server, under its access control):
no names, identifiers or values leave fhir3t this way. No credentials are sent to the webhook, and
redirects are not followed (the event goes to the origin the user named, nowhere else).

A failed delivery is logged (`notify-failed`, a warning) and does not stop the watch; the status change
itself is always in the log (`watch-status-change`), so nothing is lost if the hook is down.
"""
from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping
from typing import Any

import orjson
import requests

from fhir3t.errors import UsageError
from fhir3t.messages import table
from fhir3t.transport.urls import describe

log = logging.getLogger("fhir3t.notify")

#: seconds a webhook or a command may take before the delivery counts as failed
TIMEOUT = 10.0

#: what `--notify` refuses (the CLI's error line)
E = table("notify", {
    "empty": "--notify needs a command or an http(s):// URL",
    "no-command": "--notify {command}: no such command",
})
#: the log records of a delivery: English, what engineers grep and alert on (tests/test_i18n.py lists LOG_TEXT as
#: machine text)
LOG_TEXT = {
    "sent": "notify: {subject} is newly eligible: told {how}",
    "failed-status": "notify: the webhook answered HTTP {status} for {subject}",
    "failed-error": "notify: the webhook could not be reached for {subject} ({error})",
    "failed-exit": "notify: the command exited {code} for {subject}",
    "failed-timeout": "notify: the command took longer than {seconds:.0f} s for {subject}",
}


class Notifier:
    """Delivers one event to a webhook or a command; never raises (a failure is logged)."""

    def __init__(self, target: str, timeout: float = TIMEOUT) -> None:
        target = target.strip()
        if not target:
            raise UsageError(E["empty"]())
        self.timeout = timeout
        self.url = target if target.startswith(("http://", "https://")) else None
        self.argv = [] if self.url else shlex.split(target)
        if self.argv and not _runnable(self.argv[0]):
            raise UsageError(E["no-command"](command=repr(self.argv[0])))

    @property
    def how(self) -> str:
        return f"webhook {describe(self.url)}" if self.url else f"command {self.argv[0]}"

    def __call__(self, event: Mapping[str, Any]) -> bool:
        subject = str(event.get("subject", ""))
        body = orjson.dumps(dict(event))
        ok = self._post(body, subject) if self.url else self._run(body, event, subject)
        if ok:
            log.info(LOG_TEXT["sent"].format(subject=subject, how=self.how),
                     extra={"fields": {"event": "notify-sent", "subject": subject, "how": "webhook" if self.url else "command"}})
        return ok

    def _post(self, body: bytes, subject: str) -> bool:
        assert self.url is not None
        try:
            resp = requests.post(self.url, data=body, headers={"Content-Type": "application/json"},
                                 timeout=self.timeout, allow_redirects=False)
        except requests.RequestException as exc:
            self._failed(LOG_TEXT["failed-error"].format(subject=subject, error=type(exc).__name__), subject)
            return False
        if not 200 <= resp.status_code < 300:
            self._failed(LOG_TEXT["failed-status"].format(status=resp.status_code, subject=subject), subject,
                         status=resp.status_code)
            return False
        return True

    def _run(self, body: bytes, event: Mapping[str, Any], subject: str) -> bool:
        env = {**os.environ, **{f"FHIR3T_{k.upper()}": str(v) for k, v in event.items()
                                if isinstance(v, str | int) and k.replace("_", "").isalnum()}}
        try:
            done = subprocess.run(self.argv, input=body, env=env, timeout=self.timeout, check=False,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            self._failed(LOG_TEXT["failed-timeout"].format(seconds=self.timeout, subject=subject), subject)
            return False
        except OSError as exc:
            self._failed(LOG_TEXT["failed-error"].format(subject=subject, error=type(exc).__name__), subject)
            return False
        if done.returncode != 0:
            self._failed(LOG_TEXT["failed-exit"].format(code=done.returncode, subject=subject), subject,
                         exit_code=done.returncode)
            return False
        return True

    def _failed(self, message: str, subject: str, **fields: Any) -> None:
        log.warning(message, extra={"fields": {"event": "notify-failed", "subject": subject, **fields}})


def _runnable(name: str) -> bool:
    import shutil

    return shutil.which(name) is not None or (os.sep in name and os.access(name, os.X_OK))


__all__ = ["TIMEOUT", "Notifier"]
