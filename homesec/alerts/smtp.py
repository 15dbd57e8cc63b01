"""Hand one message to the SMTP server (or to the catch folder) and explain any failure.

Why the classification: the outbox must know whether to try again (server down, timeout, 4xx) or
to stop and wait for a fixed config (wrong password, refused recipient, certificate mismatch:
retrying those only locks the account). And a user running `homesec mail-test` needs one line
saying what went wrong and what to change, not a traceback.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from pathlib import Path

from homesec.config import MailConfig
from homesec.system.atomic import write_atomic
from homesec.system.credentials import WHERE_TO_PUT_IT, Secret, redact


class MailError(Exception):
    """A send that failed: `kind` (short tag), `permanent` (do not retry until the config or
    password changes) and a message that says what happened and what to do."""

    def __init__(self, kind: str, permanent: bool, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.permanent = permanent


def sender_address(cfg: MailConfig) -> str:
    """From: the configured sender, else the login if it is an address, else homesec@<host>."""
    if cfg.sender:
        return cfg.sender
    if "@" in cfg.username:
        return cfg.username
    return f"homesec@{socket.gethostname() or 'localhost'}"


def tls_context(cfg: MailConfig) -> ssl.SSLContext:
    """Certificates verified against the system store (plus `ca_file`) unless verify_tls=false."""
    ctx = ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)
    if not cfg.verify_tls:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def where(cfg: MailConfig) -> str:
    """Where messages go, for log lines and mail-test output."""
    if cfg.catch_dir is not None:
        return f"catch folder {cfg.catch_dir}"
    auth = f", AUTH as {cfg.username}" if cfg.username else ""
    return f"{cfg.host}:{cfg.port} ({cfg.security}{auth})"


def _catch(cfg: MailConfig, msg: EmailMessage) -> None:
    """Write the message as an .eml file (demo / testing), named so files sort in send order."""
    assert cfg.catch_dir is not None
    cfg.catch_dir.mkdir(parents=True, exist_ok=True)
    mid = str(msg["Message-ID"] or "").strip("<>").split("@")[0] or "message"
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in mid)
    name = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}-{safe}.eml"
    write_atomic(Path(cfg.catch_dir) / name, msg.as_bytes())


def deliver(cfg: MailConfig, msg: EmailMessage, password: Secret) -> dict[str, str]:
    """Send `msg` to every recipient; returns the recipients the server refused (the others got
    it). Raises MailError. Returning means the server accepted the message (DATA answered 250)."""
    if cfg.catch_dir is not None:
        try:
            _catch(cfg, msg)
        except OSError as exc:
            raise MailError("catch", False, f"cannot write to {cfg.catch_dir}: {exc.strerror}") from exc
        return {}
    try:
        return _smtp_send(cfg, msg, password)
    except MailError:
        raise
    except Exception as exc:
        raise classify(exc, cfg, password) from exc


def _smtp_send(cfg: MailConfig, msg: EmailMessage, password: Secret) -> dict[str, str]:
    if cfg.username and not password.value:
        raise MailError("no-password", True,
                        f"mail.username is set but there is no SMTP password: {WHERE_TO_PUT_IT}")
    ctx = tls_context(cfg)
    smtp: smtplib.SMTP
    if cfg.security == "tls":
        smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout_s, context=ctx)
    else:
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
    try:
        smtp.ehlo()
        if cfg.security == "starttls":
            smtp.starttls(context=ctx)
            smtp.ehlo()
        if cfg.username:
            assert password.value is not None
            smtp.login(cfg.username, password.value)
        refused = smtp.send_message(msg, from_addr=sender_address(cfg), to_addrs=cfg.recipients)
    finally:
        _quit(smtp)
    return {addr: f"{code} {resp.decode(errors='replace')}" for addr, (code, resp) in refused.items()}


def _quit(smtp: smtplib.SMTP) -> None:
    """QUIT politely; the message was already accepted (or not), so a failure here changes
    nothing and must not turn a delivered alert into a resend."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(
        exc.smtp_error)
    return f"{exc.smtp_code} {' '.join(text.split())}"


def classify(exc: BaseException, cfg: MailConfig, password: Secret | None = None) -> MailError:
    """Turn an exception from smtplib/ssl/socket into a MailError: what went wrong, what to do."""
    server = f"{cfg.host}:{cfg.port}"
    if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, OSError):
        exc = exc.__context__  # smtplib wraps a read timeout or reset as "unexpectedly closed"
    err = _classify(exc, cfg, server)
    return MailError(err.kind, err.permanent, redact(str(err), password))


def _classify(exc: BaseException, cfg: MailConfig, server: str) -> MailError:
    port_hint = "use port 465 with security = \"tls\", or 587 with security = \"starttls\""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return MailError("auth", True,
                         f"authentication rejected by {server} ({_reply(exc)}): check mail.username "
                         f"and the password ({WHERE_TO_PUT_IT}); many providers need an app password")
    if isinstance(exc, smtplib.SMTPNotSupportedError) or (
            isinstance(exc, smtplib.SMTPException) and "not supported" in str(exc)):
        return MailError("unsupported", True,
                         f"{server} does not support what the config asks ({exc}): {port_hint}, "
                         f"or leave mail.username empty if the server needs no login")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        who = ", ".join(f"{a} ({c} {r.decode(errors='replace')})"
                        for a, (c, r) in exc.recipients.items())
        perm = all(c >= 500 for c, _ in exc.recipients.values())
        return MailError("recipient", perm,
                         f"recipient refused by {server}: {who}: check mail.recipients (and that the "
                         f"server lets this account send to them)")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return MailError("sender", exc.smtp_code >= 500,
                         f"sender {exc.sender!r} refused by {server} ({_reply(exc)}): set mail.sender "
                         f"to an address this account may send as (often the login itself)")
    if isinstance(exc, smtplib.SMTPResponseException):
        perm = exc.smtp_code >= 500
        what = "rejected the message" if perm else "is busy or deferred the message"
        return MailError("rejected" if perm else "deferred", perm,
                         f"{server} {what} ({_reply(exc)})"
                         + (": check the server's policy for this account" if perm
                            else ": will retry"))
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return MailError("disconnected", False,
                         f"{server} closed the connection ({exc or 'no reason given'}): check that "
                         f"mail.security matches the port ({port_hint}); will retry")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return MailError("certificate", True,
                         f"TLS certificate of {server} not accepted ({exc.verify_message}): check "
                         f"mail.host is the name on the certificate, or set mail.ca_file to the CA "
                         f"that signed it")
    if isinstance(exc, ssl.SSLError):
        return MailError("tls", True,
                         f"TLS handshake with {server} failed ({exc.reason or exc}): {port_hint}")
    if isinstance(exc, ConnectionRefusedError):
        return MailError("refused", False,
                         f"connection to {server} refused: check mail.host and mail.port "
                         f"({port_hint}) and that the server is up")
    if isinstance(exc, TimeoutError | socket.timeout):
        return MailError("timeout", False,
                         f"no answer from {server} within {cfg.timeout_s:g} s: check mail.host and "
                         f"mail.port, that the network or firewall lets SMTP out, and that mail.security "
                         f"matches the port ({port_hint})")
    if isinstance(exc, socket.gaierror):
        return MailError("dns", False,
                         f"cannot resolve mail.host {cfg.host!r} ({exc.strerror}): check the name and "
                         f"the network")
    if isinstance(exc, OSError):
        return MailError("network", False,
                         f"network error talking to {server} ({exc.strerror or exc}): will retry")
    if isinstance(exc, smtplib.SMTPException):
        return MailError("smtp", False, f"SMTP error from {server}: {exc}")
    return MailError("internal", False, f"unexpected {type(exc).__name__}: {exc}")
