"""The outbox worker: a daemon thread that turns queued alerts into emails, and `send_test`.

Why a thread reading a table (not a queue from the capture loop): the alert row is committed with
the event, so an alert survives a crash, a reboot or an SMTP outage of days; the worker only ever
reads the table, and an SMTP server that hangs stalls this thread, never the camera. It sends at
most one email per `mail.min_interval_s`: what happens inside that window is folded into the next
email as a digest; the first alert after a quiet spell goes out at once. A message is marked sent
only after the server accepted it. Temporary failures back off exponentially (capped);
permanent ones (wrong password, refused recipient) stay in the table with their error and are
retried when the worker starts again or the password changes.

Why a delivered batch is remembered in memory: the server may accept the message while the
database is locked (or read-only), so that the "sent" mark cannot be written. The worker then
retries only that mark, never the delivery: at most one delivery per batch while the process
lives. (After a restart before the mark was written, the batch goes out once more, with the same
Message-ID, so mail clients that thread by it show it once.)
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from email.utils import make_msgid

from homesec.alerts import outbox
from homesec.alerts.compose import AlertItem, alarm_line, compose_alert, compose_notice, compose_test
from homesec.alerts.smtp import MailError, deliver, where
from homesec.config import Config
from homesec.storage.store import Store
from homesec.storage.writable import unwritable_reason
from homesec.system.credentials import Secret, redact, smtp_password

log = logging.getLogger("homesec.alerts.worker")

POLL_S = 0.25  # how often the outbox is looked at: the bulk of the alert latency budget


def backoff_s(attempts: int, initial_s: float, max_s: float) -> float:
    """Wait after `attempts` failed attempts: initial, 2x, 4x, ... capped at max_s."""
    return min(max_s, initial_s * 2 ** max(0, min(attempts - 1, 30)))


def _fingerprint(secret: Secret) -> str:
    """Changes when the password changes; never reveals it (only compared in memory)."""
    return hashlib.sha256(f"{secret.source}\0{secret.value}".encode()).hexdigest()


class OutboxWorker(threading.Thread):
    """Sends queued alerts. Started and stopped by the daemon (`Daemon.start_workers`)."""

    def __init__(self, cfg: Config, stop_event: threading.Event | None = None) -> None:
        super().__init__(name="mailer", daemon=True)
        self.cfg = cfg
        self.shared_stop = stop_event or threading.Event()
        self._stop_now = threading.Event()
        self._secret_fp: str | None = None
        # Set by a permanent failure caused by the config (wrong password, refused recipient):
        # no further logins until the password changes or the daemon restarts, so a busy night
        # does not lock the account. New alerts wait as 'pending' meanwhile.
        self.blocked: str | None = None
        self.sent_messages = 0
        # Batches the server accepted whose "sent" mark is not written yet (batch id -> (when,
        # note)), and every batch delivered by this process: never delivered twice.
        self._unmarked: dict[int, tuple[float, str | None]] = {}
        self._delivered: set[int] = set()
        self._requeued = False  # failed alerts of an earlier run are retried once, at start
        self._unwritable: str | None = None

    def stop(self, timeout: float = 2.0) -> None:
        """Stop after the current step. An SMTP exchange in progress is abandoned (daemon thread):
        its rows are still pending and go out, with the same Message-ID, on the next start."""
        self._stop_now.set()
        if self.is_alive():
            self.join(timeout)

    def _stopping(self) -> bool:
        return self._stop_now.is_set() or self.shared_stop.is_set()

    def run(self) -> None:
        store: Store | None = None
        try:
            while store is None and not self._stopping():
                try:
                    store = Store(self.cfg.paths.db_path)
                except sqlite3.Error as exc:
                    log.error("mailer cannot open the database: %s", exc)
                    self._stop_now.wait(5.0)
            if store is None:
                return
            log.info("mailer sending alerts to %d recipient(s) via %s",
                     len(self.cfg.mail.recipients), where(self.cfg.mail))
            while not self._stopping():
                try:
                    self.step(store)
                except sqlite3.Error as exc:
                    log.error("mailer: database error (will retry): %s", exc)
                    self._stop_now.wait(2.0)
                except Exception:  # a bug must not end alerting for good: log it, go on
                    log.exception("mailer: unexpected error (will retry)")
                    self._stop_now.wait(5.0)
                self._stop_now.wait(POLL_S)
        finally:
            # (Not while the files refuse writes: even a close touches SQLite's -shm mapping.)
            if store is not None and unwritable_reason(self.cfg.paths.db_path) is None:
                store.close()

    def _check_password(self, store: Store, secret: Secret) -> None:
        """A changed credential file re-queues alerts that failed (e.g. with 'auth rejected')."""
        fp = _fingerprint(secret)
        if self._secret_fp is not None and fp != self._secret_fp:
            self.blocked = None
            n = outbox.requeue_failed(store)
            if n:
                log.info("SMTP password changed (%s): retrying %d failed alert(s)", secret.source, n)
        self._secret_fp = fp

    def step(self, store: Store, now: float | None = None) -> bool:
        """Send what is due now; True if an email was attempted."""
        now = time.time() if now is None else now
        reason = unwritable_reason(self.cfg.paths.db_path)
        if reason is not None:  # keep away from SQLite meanwhile (see storage/writable.py)
            if reason != self._unwritable:
                log.error("mailer waits: the database cannot be written: %s", reason)
            self._unwritable = reason
            return False
        self._unwritable = None
        if not self._requeued:
            n = outbox.requeue_failed(store)
            self._requeued = True
            if n:
                log.warning("retrying %d alert(s) that failed before this start", n)
        self._write_marks(store)  # raises while the database refuses: nothing else is sent
        secret = smtp_password()
        self._check_password(store, secret)
        if self.blocked is not None:
            return False
        batch = outbox.open_batch(store)
        if batch is None:
            if not outbox.has_unbatched(store):
                return False
            last = outbox.last_sent_ts(store)
            # (last > now: the clock was stepped back, e.g. a Pi without RTC before NTP; do not
            # hold alerts until it catches up.)
            if last is not None and last <= now < last + self.cfg.mail.min_interval_s:
                return False  # inside the window: the alerts wait and are folded together
            batch = outbox.form_batch(store, now)
            if batch is None:
                return False
        elif batch.id in self._delivered:  # (its mark was written, yet it reads as pending)
            self._unmarked[batch.id] = (now, None)
            self._write_marks(store)
            return False
        elif now < batch.next_attempt_ts <= now + self.cfg.mail.retry_max_s:
            return False  # (a retry further away than the cap means the clock stepped back)
        self._attempt(store, batch, secret, now)
        return True

    def _items(self, store: Store, batch: outbox.Batch) -> list[AlertItem]:
        media = self.cfg.paths.media
        items = []
        for eid in batch.event_ids:
            ev = store.event(eid)
            if ev is None:
                continue
            items.append(AlertItem(ev.id, ev.camera, ev.start_ts, ev.end_ts,
                                   media / ev.snapshot if ev.snapshot else None,
                                   media / ev.thumb if ev.thumb else None))
        items.sort(key=lambda it: it.event_id)  # recording order, immune to clock steps
        return items

    def _attempt(self, store: Store, batch: outbox.Batch, secret: Secret, now: float) -> None:
        items = self._items(store, batch)
        if not items and batch.notice is None:
            outbox.mark_failed(store, batch, outbox.DELETED_EVENT)
            return
        t0 = time.monotonic()
        try:
            msg = compose_notice(self.cfg, *batch.notice, batch.message_id) if batch.notice \
                else compose_alert(self.cfg, items, batch.message_id, state=alarm_line(store))
            refused = deliver(self.cfg.mail, msg, secret)
        except MailError as exc:
            self._failed(store, batch, exc, now + (time.monotonic() - t0))
            return
        except Exception as exc:  # a bug or a broken file must not kill the worker: retry later
            log.exception("mailer: could not build or send the alert for events %s", batch.event_ids)
            self._failed(store, batch, MailError("internal", False, redact(
                f"unexpected {type(exc).__name__}: {exc}", secret)), now + (time.monotonic() - t0))
            return
        note = None
        if refused:
            note = "refused by the server for: " + "; ".join(f"{a} ({r})" for a, r in refused.items())
            log.warning("alert for events %s: %s", batch.event_ids, note)
        self._delivered.add(batch.id)
        self._unmarked[batch.id] = (now + (time.monotonic() - t0), note)
        self.sent_messages += 1
        log.info("alert email sent for event(s) %s in %.2f s (%s)",
                 ",".join(map(str, batch.event_ids)), time.monotonic() - t0, batch.message_id)
        self._write_marks(store)

    def _write_marks(self, store: Store) -> None:
        """Mark delivered batches sent; a database error propagates (retried by `run`), and the
        batches stay remembered so that only the mark is retried, never the delivery."""
        for batch_id, (sent_ts, note) in list(self._unmarked.items()):
            try:
                outbox.mark_sent_batch(store, batch_id, sent_ts, note=note)
            except sqlite3.Error as exc:
                log.warning("alert of batch %d delivered, but the database does not take its "
                            "'sent' mark yet (%s): retrying the mark only", batch_id, exc)
                raise
            del self._unmarked[batch_id]

    def _failed(self, store: Store, batch: outbox.Batch, exc: MailError, now: float) -> None:
        if exc.permanent:
            outbox.mark_failed(store, batch, str(exc))
            if exc.kind != "rejected":  # not this message's fault: the config's
                self.blocked = str(exc)
            log.error("alert for event(s) %s not sent, kept until the config or password is "
                      "fixed: %s", batch.event_ids, exc)
            return
        wait = backoff_s(batch.attempts + 1, self.cfg.mail.retry_initial_s, self.cfg.mail.retry_max_s)
        outbox.mark_retry(store, batch, str(exc), now + wait)
        log.warning("alert for event(s) %s not sent (attempt %d), retrying in %.0f s: %s",
                    batch.event_ids, batch.attempts + 1, wait, exc)


def send_test(cfg: Config) -> str:
    """Send the `mail-test` message now; returns a line saying where it went. Raises MailError."""
    msg = compose_test(cfg, make_msgid(idstring="homesec-test"))
    refused = deliver(cfg.mail, msg, smtp_password())
    if refused:
        who = "; ".join(f"{a} ({r})" for a, r in refused.items())
        raise MailError("recipient", True, f"recipient refused by {where(cfg.mail)}: {who}: check "
                        f"mail.recipients (the others did get the test email)")
    return f"test email accepted by {where(cfg.mail)} for {', '.join(cfg.mail.recipients)}"


def outbox_line(cfg: Config) -> str | None:
    """'outbox: 2 waiting, 1 failed (last error: ...)' for `mail-test`, or None when the
    database does not exist (yet) or nothing is waiting."""
    if not cfg.paths.db_path.exists():
        return None
    try:
        store = Store(cfg.paths.db_path)
    except (sqlite3.Error, OSError):
        return None
    try:
        s = outbox.summary(store)
    finally:
        store.close()
    if not (s["pending"] or s["failed"]):
        return None
    line = f"outbox: {s['pending']} alert(s) waiting, {s['failed']} failed"
    if s["last_error"]:
        line += f" (last error: {s['last_error']})"
    if s["failed"]:
        line += "; failed alerts are retried when `homesec run` restarts or the password changes"
    return line

