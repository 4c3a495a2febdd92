"""The control plane: authentication, integrity, schema checks, and a worker that survives garbage."""

import errno
import random
import socket
import struct
import threading
import time

import pytest

from conftest import serve_on_a_free_port
from edgetrain.runtime.device.worker import Worker
from edgetrain.runtime.wire.control import HANDSHAKE_TIMEOUT_S, PROTOCOL_VERSION, ProtocolError, connect

TOKEN = b"s3cret-token-of-the-home-fleet-0123456789"
HUNG_UP = {errno.ENOTCONN, errno.ECONNRESET, errno.EPIPE}


@pytest.fixture
def worker(tmp_path):
    server = Worker("dev0", ("127.0.0.1", 0), TOKEN, heartbeat_s=0.2, workdir=str(tmp_path / "worker"))
    server.warm_up = lambda: None  # no warm shard for these protocol tests
    yield serve_on_a_free_port(server)
    server.shutdown()


def test_the_right_token_gets_state_and_heartbeats(worker):
    channel, device = connect(worker.listen, TOKEN)
    try:
        assert device == "dev0"
        channel.send({"type": "status"})
        replies = [channel.receive() for _ in range(3)]
        states = [r for r in replies if r["type"] == "state"]
        assert states and states[0]["state"]["device"] == "dev0"
        assert any(r["type"] == "heartbeat" for r in replies)
    finally:
        channel.close()


def test_a_wrong_token_is_refused(worker, caplog):
    with pytest.raises(ProtocolError, match="refused our credentials"):
        connect(worker.listen, b"not-the-token-at-all-0000000000")
    time.sleep(0.2)
    assert any("authentication failed" in r.getMessage() for r in caplog.records)


def test_a_fake_worker_that_does_not_know_the_token_is_refused_by_the_client():
    server = socket.create_server(("127.0.0.1", 0))

    def fake():
        conn, _ = server.accept()
        body = ('{"type":"challenge","nonce":"00112233445566778899aabbccddeeff","version":%d}' % PROTOCOL_VERSION).encode()
        conn.sendall(struct.pack(">I", len(body)) + body)
        conn.recv(4096)
        body = b'{"type":"welcome","proof":"' + b"0" * 64 + b'","device":"dev0"}'
        conn.sendall(struct.pack(">I", len(body)) + body)
        time.sleep(0.5)
        conn.close()

    threading.Thread(target=fake, daemon=True).start()
    with pytest.raises(ProtocolError, match="could not prove"):
        connect(server.getsockname(), TOKEN)
    server.close()


def assert_still_serving(worker) -> None:
    """An authenticated status request is answered with the worker's state."""
    channel, _ = connect(worker.listen, TOKEN)
    channel.send({"type": "status"})
    reply = channel.receive()
    while reply["type"] != "state":  # heartbeats may come first
        reply = channel.receive()
    assert reply["state"]["device"] == "dev0"
    channel.close()


def _until_hung_up(channel, deadline_s: float = 5.0) -> list[dict]:
    """Read until the worker hangs up; the messages it sent first (heartbeats, a refusal). A worker that
    hangs instead of hanging up fails here: a timeout is not a refusal."""
    channel.sock.settimeout(deadline_s)
    received = []
    deadline = time.monotonic() + deadline_s
    with pytest.raises(ConnectionError):  # closed or reset by the worker; socket.timeout is not one
        while True:
            assert time.monotonic() < deadline, "the worker neither answered nor hung up"
            received.append(channel.receive())
    return received


def _send_raw(channel, payload: bytes, mac: bytes | None = None) -> None:
    """A frame with the right MAC for this session (unless one is given), whatever the payload."""
    if mac is None:
        mac = channel._mac(channel._send_label, channel._send_seq, payload)
        channel._send_seq += 1
    channel.sock.sendall(struct.pack(">I", len(mac + payload)) + mac + payload)


def test_a_tampered_frame_breaks_the_session(worker, caplog):
    channel, _ = connect(worker.listen, TOKEN)
    # Bypass Channel.send: a status request with a MAC that does not match.
    _send_raw(channel, b'{"type":"status"}', mac=b"\0" * 32)
    received = _until_hung_up(channel)
    channel.close()
    assert all(m["type"] == "heartbeat" for m in received)  # no state for a forged request
    time.sleep(0.1)
    assert any("integrity check" in r.getMessage() for r in caplog.records)


def test_a_replayed_frame_breaks_the_session(worker, caplog):
    channel, _ = connect(worker.listen, TOKEN)
    payload = b'{"type":"status"}'
    mac = channel._mac(channel._send_label, 0, payload)
    _send_raw(channel, payload, mac=mac)
    _send_raw(channel, payload, mac=mac)  # the same frame again: its sequence number is spent
    received = _until_hung_up(channel)
    channel.close()
    assert [m["type"] for m in received].count("state") == 1
    time.sleep(0.1)
    assert any("integrity check" in r.getMessage() for r in caplog.records)


def _authenticated_garbage(rng: random.Random, count: int):
    """Payloads an authenticated peer could send that are not valid requests."""
    shapes = [b"[]", b"null", b'{"type":7}', b'{"type":"status","extra":1}', b'{"type":"heartbeat"}',
              b'{"type":"start","spec":{}}', b'{"type":"start","spec":{"rank":"zero"}}', b"{" * 300,
              b'{"type":"start"}', b"\xff\xfe not utf-8"]
    for i in range(count):
        if i % 3 == 0:
            yield bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80)))
        else:
            yield rng.choice(shapes)


def test_fuzz_after_authentication_refuses_or_hangs_up_and_the_worker_keeps_serving(worker):
    rng = random.Random(99)
    outcomes = {"refused": 0, "hung up": 0}
    for payload in _authenticated_garbage(rng, 300):
        channel, _ = connect(worker.listen, TOKEN)
        _send_raw(channel, payload)
        channel.sock.settimeout(5)
        deadline = time.monotonic() + 5
        try:
            while True:
                assert time.monotonic() < deadline, f"no answer to {payload[:40]!r}"
                reply = channel.receive()
                if reply["type"] == "refused":
                    outcomes["refused"] += 1
                    break
                assert reply["type"] == "heartbeat", (payload[:40], reply)
        except ConnectionError:
            outcomes["hung up"] += 1
        finally:
            channel.close()
    assert outcomes["refused"] > 0 and outcomes["hung up"] > 0
    assert sum(outcomes.values()) == 300
    assert_still_serving(worker)


def _garbage_frames(rng: random.Random, count: int):
    valid_start = b'{"type":"auth","nonce":"' + b"a" * 32 + b'","proof":"'
    for i in range(count):
        kind = i % 5
        if kind == 0:  # random bytes
            yield bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
        elif kind == 1:  # a length prefix promising more than is sent
            yield struct.pack(">I", rng.randint(1, 1 << 20)) + b"x" * rng.randint(0, 16)
        elif kind == 2:  # an absurd length
            yield struct.pack(">I", rng.randint(1 << 21, (1 << 32) - 1))
        elif kind == 3:  # well-framed JSON of the wrong shape
            body = rng.choice([b"[]", b"null", b'{"type":"start","spec":{}}', b'{"type":7}', b"{" * 500])
            yield struct.pack(">I", len(body)) + body
        else:  # a truncated valid-looking auth message
            body = valid_start[: rng.randint(1, len(valid_start))]
            yield struct.pack(">I", len(body)) + body


def test_fuzz_ten_thousand_random_and_truncated_frames_and_the_worker_keeps_serving(worker):
    rng = random.Random(1234)
    delivered = 0
    for frame in _garbage_frames(rng, 10_000):
        with socket.create_connection(worker.listen, timeout=5) as sock:
            sock.settimeout(5)
            assert sock.recv(4096)  # the challenge: the worker is still serving
            sock.sendall(frame)
            delivered += 1
            try:  # the worker must hang up (a close or a reset); a timeout here means it hung: a failure
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(4096):
                    pass
            except TimeoutError:
                raise
            except OSError as exc:  # already closed or reset by the worker: exactly right
                assert exc.errno in HUNG_UP, exc
    assert delivered == 10_000
    assert_still_serving(worker)


def test_two_hundred_dripping_peers_do_not_lock_out_the_coordinator(worker, caplog):
    """Before: 16 peers dripping one byte every 3 s before authenticating blocked every honest connection
    (a per-recv timeout, 16 slots closed on accept). Now the handshake has one deadline and a pool of
    pending handshakes that evicts the oldest, so the coordinator is served within 1 s throughout."""
    hostile, stop = [], threading.Event()
    for _ in range(200):
        sock = socket.create_connection(worker.listen, timeout=5)
        hostile.append(sock)

    def drip():
        while not stop.is_set():
            for sock in hostile:
                try:
                    sock.send(b"\x00")
                except OSError:
                    pass
            stop.wait(0.5)

    dripper = threading.Thread(target=drip, daemon=True)
    dripper.start()
    served_in = []
    try:
        for _ in range(5):
            started = time.monotonic()
            assert_still_serving(worker)
            served_in.append(time.monotonic() - started)
            time.sleep(0.3)
    finally:
        stop.set()
        dripper.join()
        for sock in hostile:
            sock.close()
    # A lock-out makes every request wait for dripping peers' handshakes (each holds its slot up to the
    # 5 s deadline); one answer of the five a little late is the loaded 2-core CI machine's scheduling
    # (seen once: 1.02 s), so the median must be within 1 s and none may reach the deadline.
    assert sorted(served_in)[2] < 1.0 and max(served_in) < HANDSHAKE_TIMEOUT_S, served_in
    # The pool is bounded whatever the peers do.
    assert len(worker._pending) <= 64


def test_a_handshake_has_one_deadline_not_one_per_byte(monkeypatch):
    """A peer that sends a byte every 0.2 s kept a per-recv timeout of 1 s waiting for as long as it
    dripped; the deadline covers the whole handshake."""
    import edgetrain.runtime.wire.control as control
    monkeypatch.setattr(control, "HANDSHAKE_TIMEOUT_S", 1.0)
    server, client = socket.socketpair()
    outcome = {}

    def serve():
        started = time.monotonic()
        try:
            control.server_handshake(server, TOKEN, "dev0", "peer")
        except Exception as exc:  # noqa: BLE001 (the test inspects it)
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=serve)
    thread.start()
    assert client.recv(4096)  # the challenge
    client.sendall(struct.pack(">I", 100))  # a frame of 100 bytes announced, then dripped
    for _ in range(20):
        if not thread.is_alive():
            break
        try:
            client.sendall(b"\x00")
        except OSError:
            break
        time.sleep(0.2)
    thread.join(5)
    client.close()
    server.close()
    assert isinstance(outcome.get("error"), ProtocolError) and "in time" in str(outcome["error"])
    assert outcome["seconds"] < 1.5


@pytest.mark.parametrize("auth", [
    b'{"type":"auth","nonce":"' + b"1" * 5000 + b'","proof":"x"}',  # a 5000-digit string is fine, just wrong
    b'{"type":"auth","nonce":' + b"1" * 5000 + b',"proof":"x"}',  # a 5000-digit integer: ValueError in json
    '{"type":"auth","nonce":"00112233445566778899aabbccddeeff","proof":"\u00e9\u00e9"}'.encode(),  # non-ASCII
    b'{"type":"auth","nonce":"00112233445566778899aabbccddeeff","proof":"x","bad\\nWARNING forged line":1}',
])
def test_hostile_handshakes_are_refused_in_one_escaped_line_without_traceback(worker, caplog, auth):
    with socket.create_connection(worker.listen, timeout=5) as sock:
        assert sock.recv(4096)
        sock.sendall(struct.pack(">I", len(auth)) + auth)
        sock.settimeout(5)
        try:
            assert sock.recv(4096) == b""
        except OSError as exc:
            assert exc.errno in HUNG_UP
    time.sleep(0.2)
    refused = [r for r in caplog.records if "rejected peer" in r.getMessage()]
    assert len(refused) == 1
    assert "\n" not in refused[0].getMessage() and refused[0].exc_info is None
    assert all(r.exc_info is None and "Traceback" not in r.getMessage() for r in caplog.records)
    assert_still_serving(worker)


def test_refusals_are_rate_limited_and_the_rest_counted(caplog):
    from edgetrain.runtime.device.worker import RefusalLog
    now = [0.0]
    refusals = RefusalLog(per_minute=3, clock=lambda: now[0])
    logged = [refusals.refused("10.0.0.9:1", "bad") for _ in range(10)]
    assert logged == [True] * 3 + [False] * 7
    now[0] = 61.0
    assert refusals.refused("10.0.0.9:1", "bad")
    messages = [r.getMessage() for r in caplog.records]
    assert "7 more refused peers not logged in the last minute" in messages
    assert sum("rejected peer" in m for m in messages) == 4


GOOD_SPEC = {"rank": 0, "world_size": 2, "kind": "dp", "device": "dev0", "master_addr": "127.0.0.1",
             "master_port": 29500, "model": {"layers": 2, "d_model": 16, "heads": 2, "seq_len": 8, "batch_size": 4},
             "seed": 0, "steps": 5, "profile": "laptop", "cores": 0.5}


@pytest.mark.parametrize("field,value", [
    ("rank", 0.5), ("rank", True), ("rank", -1), ("rank", 2), ("world_size", 10 ** 6), ("steps", -3),
    ("steps", 10 ** 12), ("master_port", 70000), ("kind", "warp"), ("model", {"layers": 10 ** 7}),
    ("model", {"layers": 2, "d_model": 15, "heads": 2}), ("model", {"nope": 1}), ("cores", "1"),
    ("data", 7), ("data", "x" * 5000), ("timeout_s", -1), ("mode", "shell"), ("hardware_meter", 1),
])
def test_a_start_with_a_bad_field_is_refused_whole_and_takes_no_process(worker, field, value):
    """Before: a non-integer rank was accepted by the spec check (names only), the worker took a warm
    process for it (one leaked per request), and rank 0.5 crashed the event-forwarding thread."""
    channel, _ = connect(worker.listen, TOKEN)
    try:
        channel.send({"type": "start", "spec": {**GOOD_SPEC, field: value}})
        reply = channel.receive()
        while reply["type"] == "heartbeat":
            reply = channel.receive()
        assert reply["type"] == "refused" and field in reply["reason"], reply
        assert worker._shards == {} and worker._spares == []
    finally:
        channel.close()
