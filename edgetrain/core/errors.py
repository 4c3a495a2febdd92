"""Errors a user can cause. The CLI prints them as one sentence and exits with code 2."""


class UserError(Exception):
    """Bad input from the user: a scenario, a plan, a flag, a file. Never a bug of ours."""

    exit_code = 2


class ScenarioError(UserError):
    """A scenario file that cannot be loaded: names the file and the key path."""


class PlanError(UserError):
    """A plan that cannot be parsed or cannot run on the chosen devices."""


class RunError(Exception):
    """A training run that failed at run time (a shard crashed, a device vanished)."""

    exit_code = 1


class DeviceLost(RunError):
    """Devices of the running plan vanished (worker gone, link down, heartbeats stopped)."""

    def __init__(self, devices: list[str], step: int, detected_at: float):
        super().__init__(f"lost device(s) {', '.join(devices)} after step {step}")
        self.devices = devices
        self.step = step
        self.detected_at = detected_at
        self.metrics = None  # the partial RunMetrics, attached by the coordinator


class OutOfMemory(DeviceLost):
    """A device's kernel killed a shard of the running plan for want of memory (the memory model
    under-estimated what the plan needs there). A recovery goes on without that device: it is lost to
    this plan, not to the fleet."""

    def __init__(self, devices: list[str], step: int, detected_at: float):
        super().__init__(devices, step, detected_at)
        self.args = (f"{', '.join(devices)} ran out of memory after step {step} (its kernel killed the shard)",)
