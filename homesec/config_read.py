"""Reading a config file's text, whatever is at its path.

Why not `Path.read_text()`: the config path comes from the command line or $HOMESEC_CONFIG and
is read by every process (the daemon, each gunicorn worker, `check-config`). A FIFO there blocks
the read for ever, /dev/zero (or a file gone wild) never ends and fills the memory, and bytes that
are not UTF-8 ended in a traceback. Here: only a regular file (a symlink to one is fine), at most
MAX_CONFIG_BYTES, UTF-8 with the line of the first bad byte named. Every failure is a
ConfigReadError whose message starts with the path; config.load turns it into a ConfigError.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

# The example config with every key and comment is about 20 kB.
MAX_CONFIG_BYTES = 1024 * 1024


class ConfigReadError(ValueError):
    """The config file cannot be read as text; the message names the file and why."""


def read_config_text(path: Path) -> str:
    """The file's text (see the module docstring for what is refused)."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (fstat refuses it below).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigReadError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ConfigReadError(f"{path}: cannot read config file: Is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise ConfigReadError(f"{path}: cannot read config file: not a regular file")
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_CONFIG_BYTES and (chunk := os.read(fd, 65536)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigReadError(f"{path}: cannot read config file: {exc.strerror}") from None
    finally:
        os.close(fd)
    if size > MAX_CONFIG_BYTES:
        raise ConfigReadError(f"{path}: cannot read config file: larger than "
                              f"{MAX_CONFIG_BYTES // 1024} KiB (is it the right file?)")
    raw = b"".join(chunks)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigReadError(f"{path}: line {line}: not UTF-8 text (byte "
                              f"0x{raw[exc.start]:02x}); save the file as UTF-8") from None
