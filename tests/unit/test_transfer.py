"""Files over the control plane (wire/transfer.py): what arrives is what was sent, or it is not kept;
a corrupted transfer is detected by its hash and sent again; a worker reads and writes only its folder."""

import hashlib
import os
import queue
from pathlib import Path

import pytest

from conftest import serve_on_a_free_port
from edgetrain.runtime.coordinator.launcher import ShardMessage
from edgetrain.runtime.coordinator.remote import WorkerClient
from edgetrain.runtime.device.worker import Worker
from edgetrain.runtime.wire import transfer
from edgetrain.runtime.wire.spec import ShardSpec
from edgetrain.runtime.wire.transfer import Assembly, TransferError, chunk_messages, is_plain_name

TOKEN = b"transfer-test-token-0123456789abcdef"


def _payload(size: int) -> bytes:
    return os.urandom(size)


def _assemble(messages, destination: Path) -> bool:
    assembly = None
    done = False
    for message in messages:
        assembly = transfer.start_assembly(message, destination, assembly)
        done = assembly.add(message)
    return done


def test_a_file_of_several_chunks_arrives_whole(tmp_path):
    data = _payload(3 * transfer.CHUNK_BYTES + 123)
    (tmp_path / "src").write_bytes(data)
    messages = list(chunk_messages("chunk", "x.pt", tmp_path / "src"))
    assert len(messages) == 4
    assert _assemble(messages, tmp_path / "dst")
    assert (tmp_path / "dst").read_bytes() == data
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial file left


@pytest.mark.parametrize("damage", ["flip", "drop", "reorder", "oversize", "not-base64"])
def test_a_damaged_transfer_is_never_kept(tmp_path, damage):
    data = _payload(2 * transfer.CHUNK_BYTES + 10)
    (tmp_path / "src").write_bytes(data)
    messages = list(chunk_messages("chunk", "x.pt", tmp_path / "src"))
    if damage == "flip":
        raw = bytearray(transfer.base64.b64decode(messages[1]["data"]))
        raw[7] ^= 0xFF
        messages[1]["data"] = transfer.base64.b64encode(bytes(raw)).decode()
    elif damage == "drop":
        del messages[1]
    elif damage == "reorder":
        messages[1], messages[2] = messages[2], messages[1]
    elif damage == "oversize":
        messages[-1]["data"] = transfer.base64.b64encode(_payload(transfer.CHUNK_BYTES)).decode()
    else:
        messages[1]["data"] = "@@@"
    with pytest.raises(TransferError):
        _assemble(messages, tmp_path / "dst")
    assert not (tmp_path / "dst").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]


def test_an_announced_size_beyond_the_limit_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(TransferError, match="over the"):
        Assembly(tmp_path / "dst", transfer.MAX_FILE_BYTES + 1, "0" * 64)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,plain", [("a.pt", True), ("3f2a.pt", True), ("../x", False), ("/etc/passwd", False),
                                        (".hidden", False), ("a/b", False), ("", False), ("a" * 200, False)])
def test_names_on_the_wire_are_plain_file_names(name, plain):
    assert is_plain_name(name) is plain


@pytest.fixture
def worker_and_client(tmp_path):
    server = Worker("dev0", ("127.0.0.1", 0), TOKEN, heartbeat_s=0.2, workdir=str(tmp_path / "worker"))
    server.warm_up = lambda: None
    serve_on_a_free_port(server)
    client = WorkerClient("dev0", server.listen, TOKEN)
    yield server, client
    client.close()
    server.shutdown()


def test_a_checkpoint_sent_to_a_worker_lands_in_its_folder_once(worker_and_client, tmp_path, monkeypatch):
    server, client = worker_and_client
    checkpoint = tmp_path / "step-20.pt"
    checkpoint.write_bytes(_payload(transfer.CHUNK_BYTES + 5))
    name = client.ensure(checkpoint)
    assert (server.store / name).read_bytes() == checkpoint.read_bytes()
    assert name.startswith(hashlib.sha256(checkpoint.read_bytes()).hexdigest()[:40])
    sent = []
    monkeypatch.setattr("edgetrain.runtime.coordinator.remote.chunk_messages",
                        lambda *a: sent.append(a) or chunk_messages(*a))
    assert client.ensure(checkpoint) == name and sent == []  # the worker has it: not sent again


def test_a_checkpoint_corrupted_on_its_way_to_a_worker_is_refused_there_and_sent_again(worker_and_client, tmp_path,
                                                                                       monkeypatch):
    server, client = worker_and_client
    checkpoint = tmp_path / "step-40.pt"
    checkpoint.write_bytes(_payload(2 * transfer.CHUNK_BYTES))
    attempts = []

    def corrupt_first(kind, name, path):
        attempts.append(name)
        for message in chunk_messages(kind, name, path):
            if len(attempts) == 1 and message["offset"] > 0:
                message = {**message, "data": transfer.base64.b64encode(b"\0" * transfer.CHUNK_BYTES).decode()}
            yield message

    monkeypatch.setattr("edgetrain.runtime.coordinator.remote.chunk_messages", corrupt_first)
    name = client.ensure(checkpoint)
    assert len(attempts) == 2
    assert (server.store / name).read_bytes() == checkpoint.read_bytes()


def test_a_worker_reads_and_writes_only_files_in_its_folder(worker_and_client, tmp_path):
    server, client = worker_and_client
    spec = ShardSpec(rank=0, world_size=1, kind="local", device="dev0", master_addr="127.0.0.1", master_port=29500,
                     model={"layers": 1, "d_model": 8, "heads": 2, "seq_len": 4, "batch_size": 2}, seed=0, steps=1,
                     profile="laptop", cores=1.0)
    for field in ("resume", "data", "checkpoint_out"):
        with pytest.raises(ValueError, match="not a path"):
            server.confined(ShardSpec(**{**spec.__dict__, field: "/etc/passwd"}))
    with pytest.raises(ValueError, match="no file never-sent.pt was sent"):
        server.confined(ShardSpec(**{**spec.__dict__, "resume": "never-sent.pt"}))
    checkpoint = tmp_path / "c.pt"
    checkpoint.write_bytes(b"weights")
    name = client.ensure(checkpoint)
    confined = server.confined(ShardSpec(**{**spec.__dict__, "resume": name, "checkpoint_out": "checkpoint.pt"}))
    assert Path(confined.resume).parent == server.store and Path(confined.checkpoint_out).parent == server.store


class _Recorder:
    def __init__(self):
        self.sent = []

    def send(self, message):
        self.sent.append(message)


def test_a_checkpoint_corrupted_on_its_way_back_is_fetched_again_and_its_event_waits_for_it(tmp_path):
    """The coordinator's side in isolation: a corrupted copy is never put in the checkpoint's place, the
    worker is asked for it again, and the checkpoint event is passed on only once a good copy is here."""
    client = object.__new__(WorkerClient)
    client.channel, client._messages = _Recorder(), queue.Queue()
    client._arriving, client._verified, client._held = None, set(), {}
    destination = tmp_path / "run" / "checkpoint.pt"
    client.outputs = {"checkpoint.pt": destination}
    (tmp_path / "src").write_bytes(_payload(transfer.CHUNK_BYTES + 99))
    good = list(chunk_messages("chunk", "checkpoint.pt", tmp_path / "src"))
    bad = [dict(m) for m in good]
    bad[1]["data"] = transfer.base64.b64encode(b"x" * 99).decode()
    for message in bad:
        client._receive_chunk(message)
    assert client.channel.sent == [{"type": "fetch", "name": "checkpoint.pt"}]
    event = {"event": "checkpoint", "rank": 0, "step": 25, "path": "checkpoint.pt", "time_s": 0.1}
    assert client._arrived(event) is None and client._messages.empty() and not destination.exists()
    for message in good:  # the worker's answer to the fetch
        client._receive_chunk(message)
    passed = client._messages.get_nowait()
    assert isinstance(passed, ShardMessage) and passed.event["path"] == str(destination) and passed.event["step"] == 25
    assert destination.read_bytes() == (tmp_path / "src").read_bytes()
