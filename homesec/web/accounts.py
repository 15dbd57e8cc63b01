"""Who may use the web UI and API: the owner's password, bearer tokens, failed-login records.

Why here and not in the web package: `homesec passwd` and `homesec token create` (CLI) and the
web workers share these rules and the same tables (users, api_tokens, login_failures in the
SQLite store), and the CLI should not need Flask to set a password.

Passwords are hashed with argon2id (memory-hard, so a stolen database is slow to attack on GPUs).
Tokens are 256 random bits, so a fast SHA-256 hash is enough for them and lets a request find its
token with one indexed lookup; only the hash is stored, the token is shown once.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from homesec.storage.store import Store, row_id_ok

log = logging.getLogger("homesec.web.accounts")

OWNER = "owner"
MIN_PASSWORD_LEN = 8
MAX_PASSWORD_LEN = 1024
TOKEN_PREFIX = "hs_"
TOKEN_NAME_MAX = 60

# Login rate limit: this many failures per client address within the window -> refused (429).
LOGIN_MAX_FAILURES = 5
LOGIN_WINDOW_S = 600.0
# Global cap: once this many failures from anyone fall in the window, a device that never logged
# in here may check a password only once every LOGIN_SLOW_INTERVAL_S (429 + Retry-After in
# between). Why: every address counts on its own (a home's whole IPv6 /64, and fe80::/64, is
# every device), so an attacker who rotates addresses is held back by this instead: at most
# 600 / 5 = 120 guesses per window. Browsers that logged in before carry a device cookie and are
# never slowed (security.known_device), so the owner is not locked out by someone else's guessing.
LOGIN_GLOBAL_MAX_FAILURES = 20
LOGIN_SLOW_INTERVAL_S = 5.0


class AccountError(ValueError):
    """A password or token request that cannot be honoured; the message says why."""


def _hasher() -> PasswordHasher:
    """argon2id with the library's defaults (RFC 9106 low-memory profile, 46 MiB): a login
    costs a Pi 4 well under a second, an attacker's GPU a lot."""
    return PasswordHasher()


def check_password_rules(password: str) -> None:
    """Refuse passwords too short to resist guessing (or absurdly long)."""
    if len(password) < MIN_PASSWORD_LEN:
        raise AccountError(f"the password needs at least {MIN_PASSWORD_LEN} characters")
    if len(password) > MAX_PASSWORD_LEN:
        raise AccountError(f"the password may have at most {MAX_PASSWORD_LEN} characters")


def set_password(store: Store, password: str, username: str = OWNER,
                 end_sessions: bool = True) -> None:
    """Hash and store the owner's password (replacing an old one). A new password ends every
    login session and forgets failed logins (they guessed at the old one), in the same
    transaction; `end_sessions=False` only for re-hashing the same password at login."""
    digest = hash_password(password)
    with store.transaction() as c:
        store_password_hash(c, digest, username, end_sessions)


def hash_password(password: str) -> str:
    """The argon2id hash of a new password that passes the rules (AccountError otherwise)."""
    check_password_rules(password)
    return _hasher().hash(password)


def store_password_hash(c: sqlite3.Connection, digest: str, username: str = OWNER,
                        end_sessions: bool = True) -> None:
    """Inside the caller's transaction: the new hash, and (end_sessions) every login session
    and recorded failure gone with the old password (see set_password)."""
    c.execute(
        "INSERT INTO users (username, password_hash, created_ts) VALUES (?, ?, ?) "
        "ON CONFLICT(username) DO UPDATE SET password_hash = excluded.password_hash",
        (username, digest, time.time()),
    )
    if end_sessions:
        c.execute("DELETE FROM web_sessions")
        c.execute("DELETE FROM login_failures")


def password_hash(store: Store, username: str = OWNER) -> str | None:
    """The stored hash, or None when no password was ever set."""
    r = store.conn.execute("SELECT password_hash FROM users WHERE username = ?",
                           (username,)).fetchone()
    return r["password_hash"] if r else None


def verify_password(store: Store, password: str, username: str = OWNER) -> bool:
    """True when `password` matches; upgrades the stored hash if the parameters changed."""
    digest = password_hash(store, username)
    if digest is None or len(password) > MAX_PASSWORD_LEN:
        return False
    ph = _hasher()
    try:
        ph.verify(digest, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if ph.check_needs_rehash(digest):
        set_password(store, password, username, end_sessions=False)
    return True


def password_fingerprint(store: Store, username: str = OWNER) -> str | None:
    """A short digest of the stored hash, kept in the device cookie (security.known_device):
    a new password (homesec passwd) changes it, so devices that logged in with the old one are
    no longer known."""
    digest = password_hash(store, username)
    return hashlib.sha256(digest.encode()).hexdigest()[:16] if digest else None


# ---- bearer tokens -----------------------------------------------------------------------------


@dataclass
class TokenInfo:
    """A stored token, without its secret."""

    id: int
    name: str
    created_ts: float
    last_used_ts: float | None


def _token_hash(token: str) -> str:
    """What is stored for a token (hex SHA-256)."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: Store, name: str) -> tuple[TokenInfo, str]:
    """A new token named `name`; returns its info and the secret (shown to the owner once)."""
    name = name.strip()
    if not name or len(name) > TOKEN_NAME_MAX or not name.isprintable():
        raise AccountError(f"a token name is 1 to {TOKEN_NAME_MAX} printable characters")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = time.time()
    with store.transaction() as c:
        cur = c.execute("INSERT INTO api_tokens (name, token_hash, created_ts) VALUES (?, ?, ?)",
                        (name, _token_hash(secret), now))
    return TokenInfo(int(cur.lastrowid or 0), name, now, None), secret


def list_tokens(store: Store) -> list[TokenInfo]:
    """Every token, oldest first."""
    rows = store.conn.execute(
        "SELECT id, name, created_ts, last_used_ts FROM api_tokens ORDER BY id").fetchall()
    return [TokenInfo(r["id"], r["name"], r["created_ts"], r["last_used_ts"]) for r in rows]


def revoke_token(store: Store, token_id: int) -> bool:
    """Delete a token; False when there was none with that id."""
    if not row_id_ok(token_id):
        return False
    with store.transaction() as c:
        cur = c.execute("DELETE FROM api_tokens WHERE id = ?", (token_id,))
    return cur.rowcount > 0


def revoke_all_tokens(store: Store) -> int:
    """Delete every token (`homesec passwd --revoke-all`); returns how many there were."""
    with store.transaction() as c:
        cur = c.execute("DELETE FROM api_tokens")
    return cur.rowcount


def check_token(store: Store, secret: str) -> TokenInfo | None:
    """The token matching `secret`, or None. Records when it was last used (at most once a
    minute, so a polling script does not turn every read into a write)."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    r = store.conn.execute(
        "SELECT id, name, created_ts, last_used_ts FROM api_tokens WHERE token_hash = ?",
        (_token_hash(secret),)).fetchone()
    if r is None:
        return None
    now = time.time()
    if r["last_used_ts"] is None or now - r["last_used_ts"] > 60:
        try:
            with store.transaction() as c:
                c.execute("UPDATE api_tokens SET last_used_ts = ? WHERE id = ?", (now, r["id"]))
        except sqlite3.Error as exc:  # best effort: a read-only or locked database must not
            log.warning("last use of token %r not recorded: %s", r["name"], exc)  # fail reads
    return TokenInfo(r["id"], r["name"], r["created_ts"], r["last_used_ts"])


# ---- login rate limit --------------------------------------------------------------------------


def login_blocked_for(store: Store, client: str, now: float | None = None) -> float:
    """Seconds until `client` may try again (0 when it may try now)."""
    now = time.time() if now is None else now
    rows = store.conn.execute(
        "SELECT ts FROM login_failures WHERE client = ? AND ts > ? ORDER BY ts DESC LIMIT ?",
        (client, now - LOGIN_WINDOW_S, LOGIN_MAX_FAILURES)).fetchall()
    if len(rows) < LOGIN_MAX_FAILURES:
        return 0.0
    oldest = rows[-1]["ts"]
    return max(1.0, oldest + LOGIN_WINDOW_S - now)


def login_slowed_for(store: Store, now: float | None = None) -> float:
    """Seconds until a device not known to this appliance may have its password checked, while
    the failures from everyone exceed the global cap (0 when it may try now)."""
    now = time.time() if now is None else now
    count, newest = store.conn.execute(
        "SELECT COUNT(*), MAX(ts) FROM login_failures WHERE ts > ?",
        (now - LOGIN_WINDOW_S,)).fetchone()
    if count < LOGIN_GLOBAL_MAX_FAILURES or newest is None:
        return 0.0
    return max(0.0, newest + LOGIN_SLOW_INTERVAL_S - now)


def record_login_failure(store: Store, client: str, now: float | None = None) -> None:
    """Remember a failed login (and forget failures older than the window, from anyone)."""
    now = time.time() if now is None else now
    with store.transaction() as c:
        c.execute("DELETE FROM login_failures WHERE ts < ?", (now - LOGIN_WINDOW_S,))
        c.execute("INSERT INTO login_failures (client, ts) VALUES (?, ?)", (client, now))


def clear_login_failures(store: Store, client: str) -> None:
    """A successful login wipes the client's record."""
    with store.transaction() as c:
        c.execute("DELETE FROM login_failures WHERE client = ?", (client,))
