"""Why a plan stopped, when a device went silent or a shard failed: a device whose kernel killed its
shard for memory is reported as out of memory even if it went silent first (a memory cgroup at its cap
stalls its worker before the kill), but only a device whose last heartbeat said its memory was nearly
full waits for that report: any other silent device is lost at once, as is one that closed its
connection. The launcher here is a stand-in (what it reports is the input); the code under test is the
coordinator's."""

import queue
import threading
import time
from types import SimpleNamespace

from edgetrain.core.errors import DeviceLost, OutOfMemory, RunError
from edgetrain.core.plans import Plan
from edgetrain.runtime.coordinator.job import _shard_failed, _why_lost
from edgetrain.runtime.coordinator.launcher import ShardMessage


class _Launcher:
    heartbeat_timeout_s = 1.0

    def __init__(self, lost, connected, full=()):
        self.lost, self.connected, self.full = set(lost), set(connected), set(full)

    def lost_devices(self, devices):
        return [d for d in devices if d in self.lost]

    def silent_but_connected(self, devices):
        return [d for d in devices if d in self.lost and d in self.connected]

    def memory_nearly_full(self, devices):
        return [d for d in devices if d in self.full]


JOB = SimpleNamespace(plan=Plan.parse("dp:laptop,xavier-nx"))
METRICS = SimpleNamespace(last_step=3)
LAPTOP_LOST = DeviceLost(["laptop"], 3, 0.0)


def _report_oom_in(seconds, messages):
    threading.Timer(seconds, lambda: messages.put(ShardMessage(0, exit_code=-9, out_of_memory=True))).start()


def test_a_silent_device_with_full_memory_that_then_reports_an_oom_kill_is_out_of_memory_and_other_messages_stay_queued():
    messages = queue.Queue()
    messages.put(ShardMessage(1, event={"event": "checkpoint", "step": 2}))
    _report_oom_in(0.5, messages)
    cause = _shard_failed(JOB, _Launcher({"laptop"}, {"laptop"}, {"laptop"}), METRICS, "xavier-nx's shard exited", messages)
    assert isinstance(cause, OutOfMemory) and cause.devices == ["laptop"] and cause.step == 3
    assert messages.get_nowait().event == {"event": "checkpoint", "step": 2}


def test_a_device_heard_again_before_its_oom_report_is_still_out_of_memory():
    launcher, messages = _Launcher({"laptop"}, {"laptop"}, {"laptop"}), queue.Queue()
    threading.Timer(0.2, launcher.lost.clear).start()  # its heartbeat comes back first
    _report_oom_in(0.6, messages)
    cause = _why_lost(JOB, launcher, METRICS, LAPTOP_LOST, messages)
    assert isinstance(cause, OutOfMemory) and cause.devices == ["laptop"]


def test_a_silent_device_with_full_memory_is_lost_after_the_grace():
    started = time.monotonic()
    silent = _why_lost(JOB, _Launcher({"laptop"}, {"laptop"}, {"laptop"}), METRICS, LAPTOP_LOST, queue.Queue())
    assert type(silent) is DeviceLost and silent.devices == ["laptop"] and time.monotonic() - started >= 1.0


def test_a_silent_device_with_memory_to_spare_and_one_disconnected_are_lost_at_once():
    for launcher in (_Launcher({"laptop"}, {"laptop"}), _Launcher({"laptop"}, set(), {"laptop"})):
        started = time.monotonic()
        cause = _shard_failed(JOB, launcher, METRICS, "exited", queue.Queue())
        assert type(cause) is DeviceLost and cause.devices == ["laptop"] and time.monotonic() - started < 0.5


def test_with_every_device_there_the_shard_itself_is_blamed():
    cause = _shard_failed(JOB, _Launcher(set(), set()), METRICS, "the shard on xavier-nx exited", queue.Queue())
    assert type(cause) is RunError and "xavier-nx" in str(cause)
