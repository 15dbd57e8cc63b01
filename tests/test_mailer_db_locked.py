"""The same alert is never sent twice because the database was locked when it went out: a real
SMTP server (aiosmtpd, STARTTLS + AUTH) is slow to answer DATA while another connection holds
SQLite's write lock, so the mailer's "sent" mark fails (busy) after the server accepted."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import Envelope, Session

from homesec.alerts.worker import OutboxWorker
from homesec.config import parse
from homesec.storage.store import Store
from homesec.system.credentials import PASSWORD_ENV
from tests.conftest import wait_for
from tests.mail_support import PASSWORD, Handler, SmtpServer, config_dict, make_certs

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


class LockingHandler(Handler):
    """When a message arrives, takes the database's write lock on a connection of its own (a
    stuck writer elsewhere) and answers DATA only after a while."""

    def __init__(self, db_path: Path) -> None:
        super().__init__()
        self.db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if not self.db.in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
        await asyncio.sleep(0.5)  # the slow server (its behaviour, not a wait of the test)
        return await super().handle_DATA(server, session, envelope)

    def release(self) -> None:
        if self.db.in_transaction:
            self.db.execute("COMMIT")


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


@pytest.fixture
def cleanup() -> Iterator[list[Any]]:
    items: list[Any] = []
    yield items
    for it in reversed(items):
        it.stop()


def test_alert_delivered_while_the_database_is_locked_goes_out_once(
        tmp_path: Path, cleanup: list[Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="homesec.alerts.worker")
    certs = make_certs(tmp_path / "certs")
    # (Store first: the handler's connection needs the migrated file.)
    root = tmp_path / "root"
    probe = parse(config_dict(root, "starttls", 25, certs))
    store = Store(probe.paths.db_path)
    handler = LockingHandler(probe.paths.db_path)
    srv = SmtpServer("starttls", certs, handler=handler).start()
    cleanup.append(srv)
    cfg = parse(config_dict(root, "starttls", srv.port, certs))
    store.set_arm(True, "test")
    eid, armed = store.add_event(cfg.camera.name, time.time(), 2.0, [], None, None, None, 3)
    assert armed
    worker = OutboxWorker(cfg)
    worker.start()
    cleanup.append(worker)
    try:
        wait_for(lambda: srv.messages, 10, what="the alert to be delivered")

        def db_errors() -> int:
            return sum(1 for r in caplog.records
                       if r.name == "homesec.alerts.worker" and "database error" in r.getMessage())

        # Two failed marks (each waits out the 10 s busy timeout): the old worker had sent the
        # same alert again in between.
        wait_for(lambda: db_errors() >= 2, 40, interval=0.2,
                 what="the worker to meet the lock twice")
        assert len(srv.messages) == 1
    finally:
        handler.release()
    wait_for(lambda: store.conn.execute("SELECT status FROM outbox").fetchone()[0] == "sent", 15,
             interval=0.1, what="the alert to be marked sent once the lock is gone")
    (row,) = store.conn.execute("SELECT * FROM outbox").fetchall()
    (got,) = srv.messages
    assert got.event_ids == [eid]
    assert row["message_id"] == got.msg["Message-ID"]
    assert row["sent_ts"] is not None and row["sent_ts"] <= time.time()
    worker.stop()
    assert worker.step(store) is False  # nothing left to send, and nothing sent again
    assert len(srv.messages) == 1
    store.close()
