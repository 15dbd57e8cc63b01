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
    env = os.environ if environ is None else environ
    value = env.get(PASSWORD_ENV)
    if value:
        return Secret(value, f"${PASSWORD_ENV}")
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        path = Path(cred_dir) / CREDENTIAL_NAME
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
