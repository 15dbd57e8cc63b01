"""Real parts for the mailer tests and the alert-latency benchmark: a self-signed CA and server
certificate, an aiosmtpd server on 127.0.0.1 (STARTTLS + AUTH, implicit TLS + AUTH, or plain), a
server that accepts TCP and never answers, and a demo camera with a faster crossing timetable.

Why a faster timetable: the stock demo scene has one crossing per 20 s; tests and the benchmark
need several events in seconds. The scene itself (room, noise, person) is the same; only the clock
that picks scene time is folded so that someone walks through every `period_s`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from homesec.camera.demo import CROSSING_START_S, DemoCamera

USER = "alarm@example.com"
PASSWORD = "correct horse battery staple"
RECIPIENTS = ["owner@example.com", "partner@example.com"]


def free_port() -> int:
    """A loopback port nobody listens on (right now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---- certificates ------------------------------------------------------------------------------

@dataclass
class Certs:
    """PEM files: the CA a client must trust, the server's certificate chain and key."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """What the test server presents."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def make_certs(folder: Path) -> Certs:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "homesec test CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    certs = Certs(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    certs.ca.write_bytes(ca_cert.public_bytes(pem))
    certs.cert.write_bytes(cert.public_bytes(pem))
    certs.key.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return certs


# ---- SMTP server -------------------------------------------------------------------------------

@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    accepted_mono: float
    msg: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        self.msg = email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[assignment]

    @property
    def event_ids(self) -> list[int]:
        """The events this email reports (header written by the composer)."""
        return [int(x) for x in str(self.msg["X-Homesec-Events"]).split(",")]


class Handler:
    """Keeps every accepted message; can refuse chosen recipients."""

    def __init__(self, refuse: set[str] | None = None) -> None:
        self.messages: list[Received] = []
        self.refuse = refuse or set()
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        with self.lock:
            self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos),
                                          envelope.content, time.monotonic()))
        return "250 OK queued"


def _authenticator(server: Any, session: Session, envelope: Envelope, mechanism: str,
                   auth_data: Any) -> AuthResult:
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
          and auth_data.password == PASSWORD.encode())
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


class SmtpServer:
    """aiosmtpd on 127.0.0.1:`port` in one of the three modes the mailer supports."""

    def __init__(self, mode: str, certs: Certs, port: int | None = None,
                 handler: Handler | None = None) -> None:
        self.mode = mode
        self.port = port or free_port()
        self.handler = handler or Handler()
        kw: dict[str, Any] = {}
        if mode == "starttls":
            kw = {"tls_context": certs.server_context(), "require_starttls": True,
                  "authenticator": _authenticator, "auth_required": True}
        elif mode == "tls":
            kw = {"ssl_context": certs.server_context(), "authenticator": _authenticator,
                  "auth_required": True, "auth_require_tls": False}
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kw)

    @property
    def messages(self) -> list[Received]:
        """What arrived so far."""
        with self.handler.lock:
            return list(self.handler.messages)

    def start(self) -> SmtpServer:
        """Listen (blocks until ready)."""
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        self.controller.stop()


class SilentServer:
    """Accepts TCP connections and never says a word (a wedged mail server or middlebox)."""

    def __init__(self, port: int | None = None) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port or 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self.accepted: list[float] = []
        self.conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.append(time.monotonic())

    def stop(self) -> None:
        """Close the listener and every connection."""
        with contextlib.suppress(OSError):  # shutdown wakes the blocked accept() on Linux
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        for c in self.conns:
            c.close()
        self._thread.join(2)


# ---- camera ------------------------------------------------------------------------------------

class FastCrossingCamera(DemoCamera):
    """The demo scene with a person walking through every `period_s` seconds, the first time
    `lead_s` after the start (stock scene: every 20 s, first at 5 s). Lamp stays off."""

    def __init__(self, period_s: float = 4.0, lead_s: float = 0.6, **kw: Any) -> None:
        if not (lead_s <= CROSSING_START_S and period_s <= 20.0 + lead_s):
            raise ValueError("timetable outside the stock scene's quiet, lamp-off stretch")
        super().__init__(**kw)
        self.period_s, self.lead_s = period_s, lead_s

    def scene_time(self, t: float) -> float:
        """Scene time shown at camera time t: quiet, then a crossing at lead_s, then quiet."""
        return CROSSING_START_S - self.lead_s + (t % self.period_s)

    def crossing_starts(self, n: int) -> list[float]:
        """Camera times (s after open) at which the first n crossings begin."""
        return [self.lead_s + k * self.period_s for k in range(n)]


# ---- config ------------------------------------------------------------------------------------

def config_dict(root: Path, mode: str, port: int, certs: Certs | None, **mail: Any) -> dict[str, Any]:
    """A test config: small frames, short event timings, fast retries, paths under `root`."""
    m: dict[str, Any] = {
        "enabled": True, "host": "127.0.0.1", "port": port, "security": mode,
        "recipients": list(RECIPIENTS), "sender": USER, "min_interval_s": 1.0, "timeout_s": 1.0,
        "retry_initial_s": 0.2, "retry_max_s": 1.0,
    }
    if mode != "none":
        m["username"] = USER
    if certs is not None:
        m["ca_file"] = str(certs.ca)
    m.update(mail)
    return {
        "camera": {"source": "demo", "name": "Front door", "width": 640, "height": 360,
                   "lores_width": 320, "fps": 15, "realtime": True},
        "events": {"confirm_s": 0.2, "post_motion_s": 1.0},
        "paths": {"state_dir": str(root / "state"), "runtime_dir": str(root / "run")},
        "alarm": {"exit_delay_s": 0},
        "mail": m,
        "web": {"base_url": "http://homesec.test:8080", "bind": "127.0.0.1"},
    }


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    """Write a two-level dict (sections of scalars/lists) as TOML for the real CLI."""
    lines = []
    for section, values in data.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path
