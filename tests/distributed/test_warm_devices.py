"""A device counts as ready for a plan only once its worker can start a shard at once: a worker that has
just come up imports torch for its first process (14-22 s on the testbed's slowest device), and a plan
that took the device then would wait for it (a switch measured at 19.5 s instead of 0.5 s)."""

import os
import time

from conftest import serve_on_a_free_port
from edgetrain.runtime.coordinator.remote import RemoteLauncher, is_warm
from edgetrain.runtime.device.worker import Worker


def test_a_worker_that_just_came_up_is_there_but_not_ready_until_its_process_is_warm(tmp_path):
    secret = os.urandom(32).hex().encode()
    worker = serve_on_a_free_port(Worker("a", ("127.0.0.1", 0), secret, workdir=str(tmp_path / "a")))
    launcher = RemoteLauncher({"a": worker.listen}, secret)
    try:
        assert launcher.available_devices(["a"]) == ["a"]
        client = launcher.clients["a"]
        deadline = time.monotonic() + 10
        while not client.state and time.monotonic() < deadline:  # its first heartbeat
            time.sleep(0.05)
        # Its first process still imports torch (a second or more here, against 0.25 s between heartbeats).
        assert client.state["spares_importing"] == 1 and client.state["spares_warm"] == 0
        assert launcher.ready_devices(["a"]) == []
        deadline = time.monotonic() + 120
        while launcher.ready_devices(["a"]) != ["a"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert launcher.ready_devices(["a"]) == ["a"]
        assert client.state["spares_warm"] == 1 and client.state["spares_importing"] == 0
    finally:
        launcher.close()
        worker.shutdown()


def test_warm_means_a_shard_runs_or_a_process_waits_imported():
    assert not is_warm({})  # no heartbeat yet: unknown
    assert not is_warm({"shards_running": 0, "spares_importing": 1, "spares_warm": 0})
    assert is_warm({"shards_running": 0, "spares_importing": 1, "spares_warm": 1})  # a standby imports beside it
    assert is_warm({"shards_running": 1, "spares_importing": 1, "spares_warm": 0})  # in a plan: its standby imports
