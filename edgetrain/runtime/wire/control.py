"""The control plane between the coordinator and worker daemons: authenticated, schema-checked JSON.

Devices are trusted, the network is not. So:
- Both peers prove they know the shared secret (HMAC-SHA256 over fresh nonces from each side); the
  secret never crosses the wire.
- Every later frame carries an HMAC under a per-session key over its direction, its sequence number and
  its bytes: a frame that was altered, replayed, reordered or injected fails the check.
- Frames are length-prefixed JSON (at most MAX_FRAME bytes) and every message is checked against
  MESSAGE_SCHEMA before anyone looks at it. Nothing is ever unpickled.
Any violation ends the connection with a `ProtocolError`; the server logs it and keeps serving.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import socket
import stat
import struct
import threading
import time
from typing import Optional

PROTOCOL_VERSION = 2
MAX_FRAME = 1 << 20
HANDSHAKE_TIMEOUT_S = 5.0
"""Deadline for a peer's whole handshake (one round trip for an honest one)."""
HANDSHAKE_MAX_FRAME = 4096
"""The handshake's frames are a few hundred bytes; an unauthenticated peer may not send more."""
_LENGTH = struct.Struct(">I")
_MAC_BYTES = 32

# Message type -> required fields and their JSON types. Extra fields are refused too.
MESSAGE_SCHEMA: dict[str, dict[str, tuple]] = {
    # handshake (before the session key exists)
    "challenge": {"nonce": (str,), "version": (int,)},
    "auth": {"nonce": (str,), "proof": (str,)},
    "welcome": {"proof": (str,), "device": (str,)},
    # coordinator -> worker
    "status": {},
    "start": {"spec": (dict,)},
    "stop": {},
    "have": {"name": (str,)},
    "put": {"name": (str,), "offset": (int,), "total": (int,), "sha256": (str,), "data": (str,)},
    "fetch": {"name": (str,)},
    "extend": {"steps": (int,)},
    "release": {},
    # worker -> coordinator
    "state": {"state": (dict,)},
    "heartbeat": {"state": (dict,)},
    "started": {"rank": (int,)},
    "extended": {},
    "stopped": {},
    "event": {"event": (dict,)},
    "exit": {"rank": (int,), "code": (int,), "out_of_memory": (int,)},
    "refused": {"reason": (str,)},
    "has": {"name": (str,), "size": (int,)},
    "stored": {"name": (str,)},
    "chunk": {"name": (str,), "offset": (int,), "total": (int,), "sha256": (str,), "data": (str,)},
}
"""Files travel as put/chunk messages (wire/transfer.py): checkpoints to and from devices."""


class ProtocolError(Exception):
    """A peer broke the protocol: bad frame, bad MAC, bad schema, or failed authentication."""


def read_token(path: str) -> bytes:
    """The shared secret from its file; refused when anyone but its owner may read or write the file."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ValueError(f"token file {path}: cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
        if mode & 0o077:
            raise ValueError(f"token file {path}: others can read or change it (mode {mode:04o}); "
                             f"`chmod 600 {path}` or make a new one with `edgetrain token`")
        token = handle.read().strip()
    if len(token) < 16:
        raise ValueError(f"token file {path}: the secret must be at least 16 bytes")
    return token


def new_token() -> str:
    return os.urandom(32).hex()


def _check_message(message) -> dict:
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("a message must be a JSON object with a string 'type'")
    schema = MESSAGE_SCHEMA.get(message["type"])
    if schema is None:
        raise ProtocolError(f"unknown message type {message['type'][:40]!r}")
    extra = set(message) - set(schema) - {"type"}
    if extra:
        raise ProtocolError(f"unexpected fields in {message['type']}: {', '.join(sorted(extra))[:80]}")
    for key, types in schema.items():
        value = message.get(key)
        if not isinstance(value, types) or isinstance(value, bool):
            raise ProtocolError(f"field {key!r} of {message['type']} has the wrong type")
    return message


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def _proof(token: bytes, label: bytes, server_nonce: str, client_nonce: str) -> str:
    return hmac.new(token, label + server_nonce.encode() + b"|" + client_nonce.encode(), hashlib.sha256).hexdigest()


class Channel:
    """One authenticated connection. Thread-safe for one reader and any number of senders."""

    def __init__(self, sock: socket.socket, session_key: bytes, is_server: bool, peer: str):
        self.sock = sock
        self.key = session_key
        self.peer = peer
        self._send_label, self._recv_label = (b"S", b"C") if is_server else (b"C", b"S")
        self._send_seq = 0
        self._recv_seq = 0
        self._send_lock = threading.Lock()

    def _mac(self, label: bytes, seq: int, payload: bytes) -> bytes:
        return hmac.new(self.key, label + struct.pack(">Q", seq) + payload, hashlib.sha256).digest()

    def send(self, message: dict) -> None:
        payload = json.dumps(_check_message(message), separators=(",", ":")).encode()
        with self._send_lock:
            mac = self._mac(self._send_label, self._send_seq, payload)
            self._send_seq += 1
            _send_frame(self.sock, mac + payload)

    def receive(self) -> dict:
        frame = _recv_frame(self.sock)
        if len(frame) < _MAC_BYTES:
            raise ProtocolError("frame too short to carry a MAC")
        mac, payload = frame[:_MAC_BYTES], frame[_MAC_BYTES:]
        if not hmac.compare_digest(mac, self._mac(self._recv_label, self._recv_seq, payload)):
            raise ProtocolError("frame failed its integrity check (altered, replayed or not from the peer)")
        self._recv_seq += 1
        return _decode(payload)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _send_frame(sock: socket.socket, body: bytes) -> None:
    sock.sendall(_LENGTH.pack(len(body)) + body)


def _recv_exact(sock: socket.socket, size: int, deadline: Optional[float] = None) -> bytes:
    """`size` bytes; with a `deadline` (time.monotonic()) for all of them, not for each recv: a peer that
    drips one byte at a time cannot hold the connection open past it."""
    chunks, left = [], size
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ProtocolError("the peer did not complete the handshake in time")
            sock.settimeout(remaining)
        try:
            chunk = sock.recv(min(left, 1 << 16))
        except socket.timeout:
            if deadline is not None:
                raise ProtocolError("the peer did not complete the handshake in time") from None
            raise
        if not chunk:
            raise ConnectionError("peer closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv_frame(sock: socket.socket, deadline: Optional[float] = None, limit: int = MAX_FRAME) -> bytes:
    (length,) = _LENGTH.unpack(_recv_exact(sock, _LENGTH.size, deadline))
    if length > limit:
        raise ProtocolError(f"frame of {length} bytes is over the {limit}-byte limit")
    return _recv_exact(sock, length, deadline)


def _decode(payload: bytes) -> dict:
    try:
        message = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or an integer of thousands of digits
        raise ProtocolError("frame is not UTF-8 JSON within the protocol's limits") from None
    return _check_message(message)


def _plain_send(sock: socket.socket, message: dict) -> None:
    _send_frame(sock, json.dumps(_check_message(message)).encode())


def _plain_receive(sock: socket.socket, expected: str, deadline: Optional[float] = None) -> dict:
    message = _decode(_recv_frame(sock, deadline, HANDSHAKE_MAX_FRAME))
    if message["type"] != expected:
        raise ProtocolError(f"expected {expected}, got {message['type']}")
    return message


def server_handshake(sock: socket.socket, token: bytes, device: str, peer: str) -> Channel:
    """Challenge the client; return the channel once it proved the secret, else raise ProtocolError."""
    deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S  # for the whole handshake, not per recv
    sock.settimeout(HANDSHAKE_TIMEOUT_S)
    server_nonce = os.urandom(16).hex()
    _plain_send(sock, {"type": "challenge", "nonce": server_nonce, "version": PROTOCOL_VERSION})
    auth = _plain_receive(sock, "auth", deadline)
    client_nonce = auth["nonce"]
    if not _is_hex(client_nonce, 32):
        raise ProtocolError("client nonce is not 32 hex digits")
    if not _is_hex(auth["proof"], 64) or \
            not hmac.compare_digest(auth["proof"], _proof(token, b"client", server_nonce, client_nonce)):
        raise ProtocolError("authentication failed: the peer does not know the shared secret")
    _plain_send(sock, {"type": "welcome", "device": device,
                       "proof": _proof(token, b"server", server_nonce, client_nonce)})
    sock.settimeout(None)
    key = hmac.new(token, b"session" + server_nonce.encode() + client_nonce.encode(), hashlib.sha256).digest()
    return Channel(sock, key, is_server=True, peer=peer)


def connect(address: tuple[str, int], token: bytes, timeout_s: float = 10.0) -> tuple[Channel, str]:
    """Connect to a worker and authenticate both ways; returns the channel and the worker's device name."""
    sock = socket.create_connection(address, timeout=timeout_s)
    try:
        deadline = time.monotonic() + timeout_s
        challenge = _plain_receive(sock, "challenge", deadline)
        if challenge["version"] != PROTOCOL_VERSION:
            raise ProtocolError(f"worker speaks protocol {challenge['version']}, we speak {PROTOCOL_VERSION}")
        server_nonce = challenge["nonce"]
        if not _is_hex(server_nonce, 32):
            raise ProtocolError("the worker's challenge nonce is not 32 hex digits")
        client_nonce = os.urandom(16).hex()
        _plain_send(sock, {"type": "auth", "nonce": client_nonce,
                           "proof": _proof(token, b"client", server_nonce, client_nonce)})
        try:
            welcome = _plain_receive(sock, "welcome", deadline)
        except ConnectionError:
            raise ProtocolError("the worker refused our credentials (wrong token?)") from None
        if not _is_hex(welcome["proof"], 64) or \
                not hmac.compare_digest(welcome["proof"], _proof(token, b"server", server_nonce, client_nonce)):
            raise ProtocolError("the worker could not prove it knows the shared secret")
    except BaseException:
        sock.close()
        raise
    sock.settimeout(None)
    key = hmac.new(token, b"session" + server_nonce.encode() + client_nonce.encode(), hashlib.sha256).digest()
    return Channel(sock, key, is_server=False, peer=f"{address[0]}:{address[1]}"), welcome["device"]


def parse_address(text: str, default_host: str = "0.0.0.0") -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {text!r} is not HOST:PORT")
    return (host or default_host), int(port)

