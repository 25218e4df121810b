"""The service's state on disk (SQLite, standard library): cards shown, clinicians' feedback, explanation pages,
JWT ids seen.

A card is recorded with the patient it was about (a keyed hash of the FHIR server's origin and the patient id,
which the how-often rule looks up, and the patient's reference and server as the coordinator reads them) and the
user it was shown to (`context.userId`). Feedback keeps what the clinician chose (outcome, override reason code)
and the free-text comment: `fhir3t serve --feedback-rows` shows them by patient to the study team, who must see
who declined; nothing of it is logged. The file is the service's own (mode 0600, in `state_dir`), holds patient
references but no names, values or free text from the record.

The how-often rule (`may_show`), per user and patient: no card for a patient within `after_accept_days` of an
accepted card (whoever accepted it: the card did its job), none to a user within `after_override_days` of a card
that user dismissed, and none to a user within `show_again_after_days` of the last card that user was shown for
that patient, unless the patient moved from candidate to eligible since (news worth a card). Another clinician
opening the same chart the same day sees the card.

An explanation page (the whole screening behind a card, rendered in the site's language) is kept for
`EXPLANATION_DAYS` under a random token that only the card's link carries (never logged); the page is read by
that token alone, from the clinician's browser.

Bounded: feedback is kept only for cards this service showed, one item per card (the latest; feedback on a card
never shown is counted, not stored), so the feedback table never outgrows the cards table; the cards table keeps
at most `MAX_CARDS` rows and the explanations `MAX_EXPLANATIONS` (the oldest go first, and the log says so). A
folder that cannot hold the state (`/proc`, read-only) is a ConfigError in one sentence.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir3t.enrolment import Status
from fhir3t.errors import ConfigError
from fhir3t.messages import table
from fhir3t.service.bodies import FeedbackItem
from fhir3t.smallfiles import TOKEN_LIMIT, read_small

SCHEMA = """
CREATE TABLE IF NOT EXISTS cards (
    uuid TEXT PRIMARY KEY, service TEXT NOT NULL, patient TEXT NOT NULL, status TEXT NOT NULL,
    shown_at REAL NOT NULL, hook_instance TEXT);
CREATE INDEX IF NOT EXISTS cards_patient ON cards (patient, shown_at);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT, card TEXT NOT NULL, service TEXT NOT NULL, patient TEXT,
    outcome TEXT NOT NULL, reason_system TEXT, reason_code TEXT, reason_display TEXT, comment TEXT,
    accepted TEXT, outcome_at TEXT, received_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS feedback_patient ON feedback (patient, received_at);
CREATE INDEX IF NOT EXISTS feedback_card ON feedback (card);
CREATE TABLE IF NOT EXISTS jti (iss TEXT NOT NULL, jti TEXT NOT NULL, exp REAL NOT NULL, PRIMARY KEY (iss, jti));
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS explanations (
    token TEXT PRIMARY KEY, card TEXT NOT NULL, expires REAL NOT NULL, page BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS explanations_expires ON explanations (expires);
"""
#: columns added after the first release (a state file written before gets them on open)
ADDED_COLUMNS = {
    "cards": (("user_ref", "TEXT"), ("patient_ref", "TEXT"), ("server", "TEXT")),
    "feedback": (("user_ref", "TEXT"),),
}
#: days an explanation page stays readable by its link
EXPLANATION_DAYS = 14
#: explanation pages kept at most (each a few kB compressed); the oldest go first
MAX_EXPLANATIONS = 100_000
#: pages kept between two removals of the expired ones (a removal and a count per card would scan the table)
PRUNE_EVERY = 1000
DAY = 86400.0
#: cards kept at most (a year of chart openings at a large hospital is far below); the oldest go first
MAX_CARDS = 500_000

log = logging.getLogger("fhir3t.service")

#: a state folder the service cannot start with (the CLI's error line)
MESSAGES = table("serve.store", {
    "unusable": "{path}: the service's state cannot be kept there ({reason}); give [serve] state_dir a folder the "
                "service may create files in",
    "secret": "a secret of the service's state",
})
#: the log records of the store's bounds: English (what engineers grep)
LOG_TEXT = {
    "pruned": "card history at its bound of {limit} cards: the {n} oldest were removed",
    "pruned-pages": "explanation pages at their bound of {limit}: the {n} oldest were removed",
}


@dataclass(frozen=True)
class Rule:
    show_again_after_days: int = 7
    after_override_days: int = 30
    after_accept_days: int = 365


def _private_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """Read a small secret file, creating it (0600) first if absent."""
    try:
        return read_small(path, TOKEN_LIMIT, MESSAGES["secret"]())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    data = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return data


def private_token(path: Path) -> str:
    """A random token kept in a 0600 file (created on first use): what rest-hook notifications must carry."""
    return _private_file(path, lambda: secrets.token_urlsafe(32).encode()).decode().strip()


class Store:
    """One SQLite file; safe to share between the service's threads."""

    def __init__(self, folder: Path, rule: Rule | None = None, clock: Callable[[], float] = time.time,
                 max_cards: int = MAX_CARDS) -> None:
        self.path = folder / "cds.sqlite"
        self.rule = rule or Rule()
        self.clock = clock
        self.max_cards = max_cards
        self._count: int | None = None  # cards in the table (counted once, then kept)
        self._pages: int | None = None  # explanation pages in the table (counted at each pruning, then kept)
        self._pages_since_prune = 0
        self._lock = threading.Lock()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._key = _private_file(folder / "patient-hash.key", lambda: secrets.token_bytes(32))
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            os.chmod(self.path, 0o600)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
            for table, columns in ADDED_COLUMNS.items():
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns:
                    if name not in have:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
            self._db.execute("CREATE INDEX IF NOT EXISTS cards_patient_user ON cards (patient, user_ref, shown_at)")
        except (OSError, sqlite3.Error) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)[:120] or type(exc).__name__
            raise ConfigError(MESSAGES["unusable"](path=str(folder), reason=reason)) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def patient_key(self, server: str, patient_id: str) -> str:
        return hmac.new(self._key, f"{server}\x1f{patient_id}".encode(), hashlib.sha256).hexdigest()

    def _one(self, sql: str, args: tuple) -> tuple | None:
        with self._lock:
            row: tuple | None = self._db.execute(sql, args).fetchone()
            return row

    # ---- the how-often rule -------------------------------------------------------------
    def may_show(self, patient: str, status: str, *, user: str | None = None, interval: bool = True) -> str | None:
        """None if a card may show now to `user` (a `context.userId`; None: anyone); else why not (no patient data in
        the reason). `interval` off: only the quiet periods after feedback apply (an order being placed is news
        whenever the last card was). See the module doc for who is held back by what."""
        now, r = self.clock(), self.rule
        accepted = self._one("SELECT MAX(received_at) FROM feedback WHERE patient = ? AND outcome = 'accepted'",
                             (patient,))
        if accepted is not None and accepted[0] is not None:
            at = min(accepted[0], now)  # recorded by a concurrent call after `now` was read: just now
            if now - at < r.after_accept_days * DAY:
                return f"accepted {int((now - at) // DAY)} day(s) ago"
        # a card recorded before users were (an earlier release's state file) holds for every user, as it did then
        mine = " AND (user_ref = ? OR user_ref IS NULL)" if user is not None else ""
        args: tuple = (patient, user) if user is not None else (patient,)
        dismissed = self._one("SELECT MAX(received_at) FROM feedback WHERE patient = ? AND outcome = 'overridden'"
                              + mine, args)
        if dismissed is not None and dismissed[0] is not None:
            at = min(dismissed[0], now)
            if now - at < r.after_override_days * DAY:
                return f"dismissed {int((now - at) // DAY)} day(s) ago"
        last = self._one("SELECT status, shown_at FROM cards WHERE patient = ?" + mine + " ORDER BY shown_at DESC LIMIT 1",
                         args)
        if last is not None and interval:
            was, shown_at = last
            at = min(shown_at, now)  # a card a concurrent call showed after `now` was read: shown just now
            if now - at < r.show_again_after_days * DAY and not (was == Status.CANDIDATE and status == Status.ELIGIBLE):
                return f"shown {int((now - at) // DAY)} day(s) ago"
        return None

    def shown(self, uuid: str, service: str, patient: str, status: str, hook_instance: str, *, user: str | None = None,
              patient_ref: str | None = None, server: str | None = None, page: tuple[str, str] | None = None) -> None:
        """Record a card shown: `patient` is the rule's key (patient_key), `patient_ref` and `server` what the
        coordinator reads, `user` the context.userId it was shown to; `page` (token, HTML): its explanation page,
        kept in the same transaction (one write to disk per card)."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute("INSERT INTO cards (uuid, service, patient, status, shown_at, hook_instance, user_ref, "
                                 "patient_ref, server) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 (uuid, service, patient, status, self.clock(), hook_instance, user, patient_ref, server))
                if page is not None:
                    self._keep_page(page[0], uuid, page[1], EXPLANATION_DAYS)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if self._count is None:
                self._count = int(self._db.execute("SELECT COUNT(*) FROM cards").fetchone()[0])
            else:
                self._count += 1
            if self._count > self.max_cards:
                self._prune()

    def _prune(self) -> None:
        """Remove the oldest tenth of the cards (and their feedback): the table stays under its bound."""
        n = max(1, self.max_cards // 10)
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM feedback WHERE card IN (SELECT uuid FROM cards ORDER BY shown_at LIMIT ?)", (n,))
        self._db.execute("DELETE FROM cards WHERE uuid IN (SELECT uuid FROM cards ORDER BY shown_at LIMIT ?)", (n,))
        self._db.execute("COMMIT")
        self._count = None
        log.warning(LOG_TEXT["pruned"].format(limit=self.max_cards, n=n))

    # ---- feedback -----------------------------------------------------------------------
    def feedback(self, service: str, item: FeedbackItem) -> bool:
        """Record one feedback item (typed by the caller); True if its card is one this service showed."""
        return self.feedback_many(service, [item]) == 1

    def feedback_many(self, service: str, items: list[FeedbackItem]) -> int:
        """Record feedback items in one transaction; how many were for cards this service showed.

        One item per card is kept (the latest replaces an earlier one); an item for a card never shown is
        only counted: the table cannot grow beyond the cards, whatever a client sends."""
        known = 0
        now = self.clock()
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for item in items:
                    card = self._db.execute("SELECT patient, user_ref FROM cards WHERE uuid = ? AND service = ?",
                                            (item.card, service)).fetchone()
                    if card is None:
                        self._db.execute("INSERT INTO counters (name, n) VALUES ('feedback_unknown_cards', 1) "
                                         "ON CONFLICT(name) DO UPDATE SET n = n + 1")
                        continue
                    known += 1
                    self._db.execute("DELETE FROM feedback WHERE card = ?", (item.card,))
                    self._db.execute(
                        "INSERT INTO feedback (card, service, patient, outcome, reason_system, reason_code, "
                        "reason_display, comment, accepted, outcome_at, received_at, user_ref) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (item.card, service, card[0], item.outcome, item.reason_system, item.reason_code,
                         item.reason_display, item.comment, json.dumps(list(item.accepted)) if item.accepted else None,
                         item.outcome_at, now, card[1]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return known

    def summary(self) -> dict[str, Any]:
        """What clinicians did with the cards (counts and reasons; no patient, no comment text)."""
        with self._lock:
            shown = dict(self._db.execute("SELECT status, COUNT(*) FROM cards GROUP BY status").fetchall())
            patients = self._db.execute("SELECT COUNT(DISTINCT patient) FROM cards").fetchone()[0]
            outcomes = dict(self._db.execute(
                "SELECT outcome, COUNT(DISTINCT card) FROM feedback GROUP BY outcome").fetchall())
            reasons = self._db.execute(
                "SELECT COALESCE(reason_code, ''), COALESCE(reason_display, ''), COUNT(*) FROM feedback "
                "WHERE outcome = 'overridden' GROUP BY 1, 2 ORDER BY 3 DESC").fetchall()
            comments = self._db.execute("SELECT COUNT(*) FROM feedback WHERE comment IS NOT NULL AND comment != ''").fetchone()[0]
            row = self._db.execute("SELECT n FROM counters WHERE name = 'feedback_unknown_cards'").fetchone()
            old = self._db.execute("SELECT COUNT(*) FROM feedback WHERE patient IS NULL").fetchone()[0]  # before 0.3
            unknown = (row[0] if row else 0) + old
        return {
            "cards_shown": sum(shown.values()), "by_status": shown, "patients": patients,
            "accepted": outcomes.get("accepted", 0), "overridden": outcomes.get("overridden", 0),
            "override_reasons": [{"code": c or None, "display": d or None, "count": n} for c, d, n in reasons],
            "comments": comments, "feedback_for_unknown_cards": unknown,
        }

    def feedback_rows(self, patient: str | None = None) -> list[dict[str, Any]]:
        """Every feedback item, for the study team, with the patient and the user the card was shown to (includes
        the clinicians' comments); `patient` (a FHIR id or Patient/id) keeps that patient's."""
        where: str = ""
        args: tuple[str, ...] = ()
        if patient is not None:
            where, args = " WHERE c.patient_ref = ?", (patient if patient.startswith("Patient/") else f"Patient/{patient}",)
        with self._lock:
            cur = self._db.execute("SELECT c.patient_ref AS patient, c.server AS fhir_server, f.user_ref AS user, "
                                   "f.card, c.service, c.status, f.outcome, f.reason_code, f.reason_display, f.comment, "
                                   "f.accepted, f.outcome_at FROM feedback f LEFT JOIN cards c ON c.uuid = f.card"
                                   + where + " ORDER BY f.id", args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    # ---- explanation pages --------------------------------------------------------------
    def keep_explanation(self, token: str, card: str, page: str, days: float = EXPLANATION_DAYS) -> None:
        """Keep a card's explanation page for `days`, readable by `token` only. Expired pages are removed every
        `PRUNE_EVERY` pages kept (and then counted again); beyond MAX_EXPLANATIONS the oldest go."""
        with self._lock:
            self._keep_page(token, card, page, days)

    def _keep_page(self, token: str, card: str, page: str, days: float) -> None:
        now = self.clock()
        if self._pages is None or self._pages_since_prune >= PRUNE_EVERY:
            self._db.execute("DELETE FROM explanations WHERE expires < ?", (now,))
            self._pages = int(self._db.execute("SELECT COUNT(*) FROM explanations").fetchone()[0])
            self._pages_since_prune = 0
        self._db.execute("INSERT OR REPLACE INTO explanations (token, card, expires, page) VALUES (?, ?, ?, ?)",
                         (token, card, now + days * DAY, zlib.compress(page.encode("utf-8"), 6)))
        self._pages += 1
        self._pages_since_prune += 1
        if self._pages > MAX_EXPLANATIONS:
            cut = max(1, MAX_EXPLANATIONS // 10)
            self._db.execute("DELETE FROM explanations WHERE token IN (SELECT token FROM explanations "
                             "ORDER BY expires LIMIT ?)", (cut,))
            self._pages = None
            log.warning(LOG_TEXT["pruned-pages"].format(limit=MAX_EXPLANATIONS, n=cut))

    def explanation(self, token: str) -> str | None:
        """The page kept under `token`, or None (unknown or expired)."""
        row = self._one("SELECT page FROM explanations WHERE token = ? AND expires >= ?", (token, self.clock()))
        return zlib.decompress(row[0]).decode("utf-8") if row is not None else None

    # ---- JWT replay ---------------------------------------------------------------------
    def use_jti(self, iss: str, jti: str, exp: float) -> bool:
        """Remember a JWT id until it expires; False if it was used already (a replay)."""
        with self._lock:
            self._db.execute("DELETE FROM jti WHERE exp < ?", (self.clock() - 300,))
            try:
                self._db.execute("INSERT INTO jti (iss, jti, exp) VALUES (?, ?, ?)", (iss, jti, exp))
            except sqlite3.IntegrityError:
                return False
        return True


__all__ = ["EXPLANATION_DAYS", "Rule", "Store", "private_token"]
