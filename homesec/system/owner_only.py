"""Secret files that only their owner may read or replace (the web's cookie-signing key).

Why more than `open()`: the state dir is the service's own under systemd (StateDirectory, 0750),
but `homesec web` and `homesec demo` also run from a checkout, with a state dir wherever the
config says, and another local user may be able to create names in it. Such a user could plant
  - a symlink at the key's name, pointing at a file they can read or at one of ours to clobber;
  - the key file itself, with a key they know (and so forge signed cookies with), or
  - a symlink at the temporary name we write the new key to (O_TRUNC through it).
So a secret is opened without following symlinks, must be a regular file owned by this user and
readable by nobody else, and is created with O_EXCL (a name that already exists is never written
through). Anything else is refused with the file's name and what to do, never used quietly.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from homesec.config import ConfigError


class UnsafeSecretFile(RuntimeError):
    """A secret file that others could read or have planted; the message names it and the fix."""


class UnsafeStateDir(ConfigError):
    """paths.state_dir is not private to this user (a ConfigError: printed as one line)."""


def read_owner_only(path: Path) -> bytes:
    """The contents of `path`: a regular file (not a symlink) owned by this user with no group
    or other permission bits. FileNotFoundError when it does not exist."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        if path.is_symlink():
            raise UnsafeSecretFile(f"{path}: is a symbolic link; a secret must be a file of its "
                                   "own (delete the link, a new key is made)") from None
        raise
    try:
        st = os.fstat(fd)
        problem = _problem(st)
        if problem:
            raise UnsafeSecretFile(f"{path}: {problem}; delete it (a new one is made) or fix it "
                                   f"with `chown {os.geteuid()} {path}; chmod 600 {path}`")
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _problem(st: os.stat_result) -> str:
    """Why a secret file with this stat may not be used ('' when it may)."""
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != os.geteuid():
        return f"belongs to uid {st.st_uid}, not to this user (uid {os.geteuid()})"
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return f"may be read or written by others (mode {mode:04o}, must be 0600)"
    return ""


def create_owner_only(path: Path, data: bytes) -> None:
    """Write `data` to a new file `path` (mode 0600, fsynced). FileExistsError if any entry of
    that name exists, a symlink included: nothing is ever written through one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def check_private_dir(path: Path) -> None:
    """Refuse (UnsafeStateDir) a state dir in which another local user could plant or swap
    files: one that anybody may write to, or one that belongs to another user (root may use
    the service user's dir: `sudo homesec passwd`). The secret key, the database with the
    password hash and the event journal all live there."""
    st = path.stat()
    euid = os.geteuid()
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o002:
        raise UnsafeStateDir(f"{path}: the state dir may be written by any user (mode "
                             f"{mode:04o}): they could plant the web key or the database; "
                             f"`chmod o-w {path}` (or choose another paths.state_dir)")
    if euid != 0 and st.st_uid not in (euid, 0):
        raise UnsafeStateDir(f"{path}: the state dir belongs to uid {st.st_uid}, not to this "
                             f"user (uid {euid}); choose another paths.state_dir")
