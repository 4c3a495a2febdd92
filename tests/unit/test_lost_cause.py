"""Why a plan stopped, when a shard failed: a device whose kernel killed its shard for memory is
reported as out of memory even if it went silent first (a memory cgroup at its cap stalls its worker
before the kill); a device that stays silent is lost; one that closed its connection is lost at once.
The launcher here is a stand-in (what it reports is the input); the code under test is the coordinator's."""

import queue
import threading
import time
from types import SimpleNamespace

from edgetrain.core.errors import DeviceLost, OutOfMemory, RunError
from edgetrain.core.plans import Plan
from edgetrain.runtime.coordinator.job import _shard_failed
from edgetrain.runtime.coordinator.launcher import ShardMessage


class _Launcher:
    heartbeat_timeout_s = 1.0

    def __init__(self, lost, connected):
        self.lost, self.connected = lost, connected

    def lost_devices(self, devices):
        return [d for d in devices if d in self.lost]

    def silent_but_connected(self, devices):
        return [d for d in devices if d in self.lost and d in self.connected]


JOB = SimpleNamespace(plan=Plan.parse("dp:laptop,xavier-nx"))
METRICS = SimpleNamespace(last_step=3)


def test_a_silent_device_that_then_reports_an_oom_kill_is_out_of_memory_and_other_messages_stay_queued():
    messages = queue.Queue()
    messages.put(ShardMessage(1, event={"event": "checkpoint", "step": 2}))
    threading.Timer(0.5, lambda: messages.put(ShardMessage(0, exit_code=-9, out_of_memory=True))).start()
    cause = _shard_failed(JOB, _Launcher({"laptop"}, {"laptop"}), METRICS, "xavier-nx's shard exited", messages)
    assert isinstance(cause, OutOfMemory) and cause.devices == ["laptop"] and cause.step == 3
    assert messages.get_nowait().event == {"event": "checkpoint", "step": 2}


def test_a_device_that_stays_silent_is_lost_after_the_grace_and_one_disconnected_at_once():
    started = time.monotonic()
    silent = _shard_failed(JOB, _Launcher({"laptop"}, {"laptop"}), METRICS, "exited", queue.Queue())
    waited = time.monotonic() - started
    assert type(silent) is DeviceLost and silent.devices == ["laptop"] and waited >= 1.0
    started = time.monotonic()
    gone = _shard_failed(JOB, _Launcher({"laptop"}, set()), METRICS, "exited", queue.Queue())
    assert type(gone) is DeviceLost and time.monotonic() - started < 0.5


def test_with_every_device_there_the_shard_itself_is_blamed():
    cause = _shard_failed(JOB, _Launcher(set(), set()), METRICS, "the shard on xavier-nx exited", queue.Queue())
    assert type(cause) is RunError and "xavier-nx" in str(cause)
