"""Where the SMTP password comes from: the environment or a systemd credential file, never the
config file.

Why: a config file gets copied into backups, pasted into bug reports and shown in the web UI; a
password in it leaks. systemd's LoadCredential= hands a root-only file to the service in
$CREDENTIALS_DIRECTORY, and a developer can export HOMESEC_SMTP_PASSWORD. The value is read fresh
on every use, so a fixed credential is picked up without guessing, and it is redacted from any
text that might be logged.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

PASSWORD_ENV = "HOMESEC_SMTP_PASSWORD"
CREDENTIAL_NAME = "smtp_password"
WHERE_TO_PUT_IT = (
    f"set ${PASSWORD_ENV}, or put it in the systemd credential {CREDENTIAL_NAME} "
    f"($CREDENTIALS_DIRECTORY/{CREDENTIAL_NAME})"
)


@dataclass(frozen=True)
class Secret:
    """A password and where it was found; repr and str never show the value."""

    value: str | None
    source: str

    def __repr__(self) -> str:
        return f"Secret(source={self.source!r}, value={'***' if self.value else None})"

    __str__ = __repr__


def smtp_password(environ: Mapping[str, str] | None = None) -> Secret:
    """The SMTP password from $HOMESEC_SMTP_PASSWORD, else $CREDENTIALS_DIRECTORY/smtp_password.

    A trailing newline (as `echo pw > file` leaves) is not part of the password."""
    return _secret(PASSWORD_ENV, CREDENTIAL_NAME, environ)


MQTT_PASSWORD_ENV = "HOMESEC_MQTT_PASSWORD"
MQTT_CREDENTIAL_NAME = "mqtt_password"


def mqtt_password(environ: Mapping[str, str] | None = None) -> Secret:
    """The MQTT broker password from $HOMESEC_MQTT_PASSWORD, else
    $CREDENTIALS_DIRECTORY/mqtt_password (same rules as the SMTP password)."""
    return _secret(MQTT_PASSWORD_ENV, MQTT_CREDENTIAL_NAME, environ)


MQTT_PIN_ENV = "HOMESEC_MQTT_PIN"
MQTT_PIN_CREDENTIAL_NAME = "mqtt_pin"


def mqtt_pin(environ: Mapping[str, str] | None = None) -> Secret:
    """The optional PIN that disarming over MQTT must carry ($HOMESEC_MQTT_PIN, else
    $CREDENTIALS_DIRECTORY/mqtt_pin); none set = no PIN."""
    return _secret(MQTT_PIN_ENV, MQTT_PIN_CREDENTIAL_NAME, environ)


def _secret(env_name: str, cred_name: str, environ: Mapping[str, str] | None) -> Secret:
    """A secret from the environment variable, else from the systemd credential of that name
    (a trailing newline stripped), else "not set"; an unreadable file says why."""
    env = os.environ if environ is None else environ
    value = env.get(env_name)
    if value:
        return Secret(value, f"${env_name}")
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / cred_name
        try:
            return Secret(path.read_text(encoding="utf-8").rstrip("\r\n"), str(path))
        except FileNotFoundError:
            pass
        except OSError as exc:
            return Secret(None, f"{path} (unreadable: {exc.strerror})")
    return Secret(None, "not set")


def redact(text: str, secret: Secret | str | None) -> str:
    """`text` with the password (and its base64 forms, as AUTH sends them) replaced by ***."""
    value = secret.value if isinstance(secret, Secret) else secret
    if not value:
        return text
    forms = {value, base64.b64encode(value.encode()).decode()}
    for form in sorted(forms, key=len, reverse=True):
        if len(form) >= 3:
            text = text.replace(form, "***")
    return text


# scheme://authority, the authority ending at the path, query, fragment or white space.
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/?#\s]*)")


def redact_url(text: str) -> str:
    """`text` with the credentials of any URL in it hidden: `rtsp://admin:pw@cam/` becomes
    `rtsp://admin:***@cam/` (a bare `token@host` becomes `***@host`).

    Why: a network camera's address often carries its password, and the address ends up in log
    lines, `check-config` output and the camera error the web UI shows."""

    def hide(m: re.Match[str]) -> str:
        scheme, authority = m.group(1), m.group(2)
        if "@" not in authority:
            return m.group(0)
        userinfo, host = authority.rsplit("@", 1)  # a password may itself hold an '@'
        user, colon, _password = userinfo.partition(":")
        return f"{scheme}{user}:***@{host}" if colon else f"{scheme}***@{host}"

    return _URL.sub(hide, text)
