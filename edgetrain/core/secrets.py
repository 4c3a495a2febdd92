"""Files that hold secrets (the control plane's shared token): created unreadable by others from the
first moment, never chmodded after the fact (a file written at umask 022, then chmodded, is readable
by anyone in between)."""

from __future__ import annotations

import os


def write_secret(path, text: str) -> None:
    """A new file of mode 0600 holding `text`: never readable by others, not for a moment (it is
    created with that mode, not chmodded after). Fails if the file exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        os.write(fd, text.encode())
    finally:
        os.close(fd)
