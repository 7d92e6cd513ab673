"""The web process's one mail thread: requests queue mail, this thread sends it.

A request never talks to the mail server nor waits for the digest lock. Sending
from the request (or from a FastAPI background task, which runs on the same
thread pool as every sync endpoint) let a hung or slow SMTP server, or a long
digest run holding the lock, occupy all the pool's threads: 45 subscriptions
against a server that never answered made /healthz time out.

Confirmation mails are outbox rows (written by the request in the same
transaction as the subscription), so this thread only flushes the outbox; if
the process dies first, the next `digest send` (scheduler or cron) sends them.
Verification mails are not outbox rows (paperfeed.digest.verify): the request
reserves the account's slot and hands the id over here; one lost with the
process costs the user a click on "send the link again". Password-reset mails
(paperfeed.digest.password_reset) go the same way: the raw token exists only in
this queue and in the mail, never in the database.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

from paperfeed.config import Settings
from paperfeed.store import accounts as acc
from paperfeed.store import open_store

log = logging.getLogger(__name__)

LOCK_RETRY = 2.0  # seconds between tries while a send job holds the digest lock
LOCK_GIVE_UP = 300.0  # then the send job itself (or the next one) delivers the mail

_FLUSH = 0  # queue item: flush the outbox; any other int is an account id to verify
# a (address, token) pair is a password-reset mail to send
_Item = int | tuple[str, str] | None


class Mailer:
    def __init__(self, data_dir: Path, settings: Settings) -> None:
        self.data_dir = data_dir
        # the app's own Settings object: tests (and a config reload) may change it after start
        self.settings = settings
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._flush_since: float | None = None  # set while a flush waits for the lock

    def send_outbox(self) -> None:
        """A request queued an outbox row (a confirmation mail): send it soon."""
        self._put(_FLUSH)

    def send_verification(self, user_id: int) -> None:
        """Mail the verification link; the caller reserved the slot (accounts.note_verify_sent)."""
        self._put(user_id)

    def send_password_reset(self, email: str, token: str) -> None:
        """Mail a password-reset link (the request must answer the same whether or not it is sent)."""
        self._put((email, token))

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)

    def _put(self, item: _Item) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mailer", daemon=True)
                self._thread.start()
        self._queue.put(item)

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=LOCK_RETRY if self._flush_since is not None else None)
            except queue.Empty:
                first = _FLUSH  # retry the flush that found the lock taken
            items = [first]
            # many requests at once queue many items: one flush serves them all
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if None in items:
                return
            for item in dict.fromkeys(i for i in items if i != _FLUSH):
                if isinstance(item, tuple):
                    self._reset(*item)
                else:
                    self._verify(item)
            if _FLUSH in items:
                self._flush()

    def _flush(self) -> None:
        from paperfeed.digest import flush_outbox

        try:
            with open_store(self.data_dir) as store:
                report = flush_outbox(store, self.settings)
        except Exception:  # noqa: BLE001 - this thread has nobody to report to but the log
            log.exception("sending queued mail failed")
            self._flush_since = None
            return
        if report.errors:
            log.warning("queued mail deferred: %s", report.errors[0])
        if not report.locked:
            self._flush_since = None
            return
        # A send job holds the lock; it may have listed its mails before ours was queued,
        # and the next job can be an interval away, so try again shortly.
        now = time.monotonic()
        self._flush_since = self._flush_since or now
        if now - self._flush_since > LOCK_GIVE_UP:
            log.warning("queued mail waits for the next send job: another one held the lock")
            self._flush_since = None

    def _verify(self, user_id: int) -> None:
        from paperfeed.digest.verify import send_verification

        try:
            with open_store(self.data_dir) as store:
                user = acc.get_user(store, user_id)
                if user is not None:
                    send_verification(store, self.settings, user, reserved=True)
        except Exception:  # noqa: BLE001 - this thread has nobody to report to but the log
            log.exception("sending the verification mail failed")

    def _reset(self, email: str, token: str) -> None:
        from paperfeed.digest.password_reset import send_reset

        try:
            send_reset(self.settings, email, token)
        except Exception:  # noqa: BLE001 - this thread has nobody to report to but the log
            log.exception("sending the password reset mail failed")
