"""Files over the control plane: checkpoints (and a training corpus) travel between the coordinator and
a device's worker in chunks, so that nothing assumes a shared filesystem.

A file goes as consecutive `put` (coordinator -> worker) or `chunk` (worker -> coordinator) messages,
each carrying its offset, the file's total size and the SHA-256 of the whole file; the receiver writes
them to a temporary file beside the destination and keeps the file only when its hash matches. A
transfer that arrives corrupted or truncated is never loaded: the receiver says so and asks again.
Every frame is also under the session's HMAC (wire/control.py), so this hash catches what the MAC
cannot: a file that changed on disk while it was read, or a chunk lost by a bug.

Names on the wire are plain file names, never paths: each side decides where its files live (the
worker inside its own folder), so a peer cannot make the other read or write anything else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path
from typing import Iterator, Optional

CHUNK_BYTES = 256 * 1024
"""Raw bytes per message (about 350 kB of base64: well under the control plane's 1 MiB frame)."""
MAX_FILE_BYTES = 1 << 36
"""64 GiB: far above any edge model's checkpoint; a peer cannot announce an endless file."""
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class TransferError(Exception):
    """A transfer that cannot be kept: out of order, over its size, or not matching its hash."""


def is_plain_name(name: str) -> bool:
    """A file name without any path in it (no slash, no leading dot, no '..')."""
    return bool(_PLAIN_NAME.fullmatch(name)) and ".." not in name


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_name(path: Path) -> str:
    """The name a file travels under: its content hash (so a receiver that has it already is not sent it
    again) and its suffix."""
    return file_sha256(path)[:40] + "".join(Path(path).suffixes[-1:])


def chunk_messages(kind: str, name: str, path: Path) -> Iterator[dict]:
    """The messages that carry the file at `path` under `name` (read whole first, so the hash and the
    bytes sent are of one version of the file even if it is replaced meanwhile)."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    for offset in range(0, max(len(data), 1), CHUNK_BYTES):
        yield {"type": kind, "name": name, "offset": offset, "total": len(data), "sha256": digest,
               "data": base64.b64encode(data[offset:offset + CHUNK_BYTES]).decode("ascii")}


class Assembly:
    """One file being received into `destination`; `add` each message in order; returns True when the
    file is complete and verified (it is then at `destination`)."""

    def __init__(self, destination: Path, total: int, sha256: str):
        if not 0 <= total <= MAX_FILE_BYTES:
            raise TransferError(f"a file of {total} bytes is over the {MAX_FILE_BYTES}-byte limit")
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise TransferError("the file's hash is not a SHA-256 hex digest")
        self.destination = Path(destination)
        self.total = total
        self.sha256 = sha256
        self.received = 0
        self._digest = hashlib.sha256()
        self.destination.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.destination.with_name(f".{self.destination.name}.part{os.getpid()}")
        self._handle = open(os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")

    def add(self, message: dict) -> bool:
        if message["total"] != self.total or message["sha256"] != self.sha256:
            self.abandon()
            raise TransferError("a chunk of another version of the file arrived mid-transfer")
        if message["offset"] != self.received:
            self.abandon()
            raise TransferError(f"chunk at offset {message['offset']}, expected {self.received}")
        try:
            block = base64.b64decode(message["data"].encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            self.abandon()
            raise TransferError("a chunk is not base64") from None
        if self.received + len(block) > self.total or (not block and self.total):
            self.abandon()
            raise TransferError("chunks run past the file's announced size")
        self._handle.write(block)
        self._digest.update(block)
        self.received += len(block)
        if self.received < self.total:
            return False
        self._handle.close()
        if self._digest.hexdigest() != self.sha256:
            self._tmp.unlink(missing_ok=True)
            raise TransferError("the file arrived corrupted (its SHA-256 does not match)")
        os.replace(self._tmp, self.destination)
        return True

    def abandon(self) -> None:
        if not self._handle.closed:
            self._handle.close()
        self._tmp.unlink(missing_ok=True)


def start_assembly(message: dict, destination: Path, current: Optional[Assembly]) -> Assembly:
    """The assembly a message belongs to: a new one at offset 0 (replacing an unfinished one), else the
    current one."""
    if message["offset"] == 0:
        if current is not None:
            current.abandon()
        return Assembly(destination, message["total"], message["sha256"])
    if current is None:
        raise TransferError(f"chunk at offset {message['offset']} of a transfer that never began")
    return current
