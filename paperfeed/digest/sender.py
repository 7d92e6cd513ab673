"""SMTP delivery with the stdlib smtplib: one connection reused for many mails,
and every outcome sorted into sent / retry later / permanent failure."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

from paperfeed.config import Settings

# Seconds per SMTP operation. Short: a hung server must not hold a sending thread for
# minutes; a mail that times out is retried with backoff like any 4xx.
TIMEOUT = 10.0


@dataclass
class Outcome:
    status: str  # sent | retry | failed
    code: int | None = None
    error: str = ""
    # the connection itself failed: later mails in this run would fail the same way
    connection: bool = False


def _text(resp: bytes | str) -> str:
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)


def classify(code: int, message: str) -> Outcome:
    """4xx is transient (greylisting, mailbox busy); 5xx is permanent (no such user)."""
    if 200 <= code < 300:
        return Outcome("sent", code)
    if 400 <= code < 500:
        return Outcome("retry", code, f"{code} {message}")
    return Outcome("failed", code, f"{code} {message}")


class SmtpSender:
    """Sends through the configured server; reconnects when the server drops us."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn: smtplib.SMTP | None = None
        _, self.envelope_from = parseaddr(settings.mail_from)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.smtp_tls == "ssl":
            conn: smtplib.SMTP = smtplib.SMTP_SSL(
                s.smtp_host, s.smtp_port, timeout=TIMEOUT, context=ssl.create_default_context()
            )
        else:
            conn = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=TIMEOUT)
            if s.smtp_tls == "starttls":
                conn.starttls(context=ssl.create_default_context())
        conn.ehlo_or_helo_if_needed()
        if s.smtp_user:
            conn.login(s.smtp_user, s.smtp_password)
        return conn

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.quit()
            except (smtplib.SMTPException, OSError):
                self.conn.close()
            self.conn = None

    def send(self, recipient: str, message: bytes) -> Outcome:
        try:
            if self.conn is None:
                self.conn = self._connect()
            refused = self.conn.sendmail(self.envelope_from, [recipient], message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, resp = exc.recipients.get(recipient, (550, b"refused"))
            return classify(code, _text(resp))
        except smtplib.SMTPSenderRefused as exc:
            return classify(exc.smtp_code, _text(exc.smtp_error))
        except smtplib.SMTPDataError as exc:
            return classify(exc.smtp_code, _text(exc.smtp_error))
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            # wrong credentials are the operator's to fix, not the recipient's fault
            return Outcome("retry", exc.smtp_code, f"authentication failed: {_text(exc.smtp_error)}", connection=True)
        except smtplib.SMTPResponseException as exc:
            self._drop()
            out = classify(exc.smtp_code, _text(exc.smtp_error))
            # an error outside a transaction (greeting, HELO) is about the server, not this address
            return Outcome("retry", out.code, out.error, connection=True)
        except (TimeoutError, smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            self._drop()
            return Outcome("retry", None, f"connection: {type(exc).__name__}: {exc}", connection=True)
        if refused:  # only possible with several recipients; kept for completeness
            code, resp = refused[recipient]
            return classify(code, _text(resp))
        return Outcome("sent", 250)

    def _drop(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            finally:
                self.conn = None


class DryRunSender:
    """Writes each mail to DIR/<n>-<recipient>.eml instead of sending it."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def write(self, name: str, message: bytes) -> Path:
        self.count += 1
        safe = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in name)[:150]
        path = self.folder / f"{self.count:05d}-{safe}.eml"
        path.write_bytes(message)
        return path

    def close(self) -> None:
        pass
