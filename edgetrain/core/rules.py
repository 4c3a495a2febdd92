"""Rules of the fleet that the runtime, the emulated testbed and the simulator must agree on, kept in
one place so that they cannot drift apart."""

# Below this charge a battery device leaves (the testbed cuts it off; the simulator drops it), until a
# charger brings it back to BATTERY_RETURN_PCT (a device that never charges is gone for good).
BATTERY_CUTOFF_PCT = 10.0
BATTERY_RETURN_PCT = 20.0

# Seconds of missed heartbeats after which the coordinator declares a device lost (a broken connection
# is noticed at once); the simulator charges this much detection time for every failure. Workers beat
# every HEARTBEAT_EVERY_S: five beats may go missing (a loaded device, a jittery Wi-Fi) before a device
# counts as lost, and a recovery still starts within 3 s of a silent loss (issue 11). Measured on the
# testbed (benchmarks/recovery_time.py) with beats every 0.5 s while every device trained: the longest
# gap between two messages of any worker was 0.60 s, so beats ran at most 0.1 s late; a silent loss
# took 2.7 s to notice and 3.7 s to resume from, against 1.2 s for a worker that died.
HEARTBEAT_EVERY_S = 0.25
HEARTBEAT_TIMEOUT_S = 1.5

# A device whose last heartbeat said its processes' own memory took this much of its memory cap, and
# that then went silent, may be stalled reclaiming memory before its kernel OOM-kills the shard: the
# coordinator waits another HEARTBEAT_TIMEOUT_S for its worker to say so before calling it lost (any
# other silent device is lost at once). Measured on the testbed (tests/mininet/test_out_of_memory.py's
# scenario): 0.60 of the laptop's cap before its shard started, rising 0.15 a second to 0.985 at the kill.
MEMORY_STALL_FRACTION = 0.9

# A worker starts a standby (a warm process beside a plan's shard, for a fast recovery or switch) only
# while its device's processes take less than this share of its memory cap: a standby holds torch
# (about 210 MiB of its own, measured by the kernel's OOM report on the testbed), and on a small device
# it is what pushes the training shard beside it over the cap (the OOM test: a 600 MiB laptop 0.6 full
# when its shard started; the kernel killed the standby or the shard, 2 CI runs of 4 said "device lost").
STANDBY_MEMORY_FRACTION = 0.5

# The CFS bandwidth period of each device's host. A host may use its quota (share x cores x period) at
# the machine's full speed, then stalls until the period ends: with Linux's default of 100 ms a 10 ms
# training step runs at this machine's speed whatever the share (`edgetrain emulate check`, smart-home
# on this 2-core machine: 10 ms steps back to back at 2-3.3x their share), a device waiting for the
# network saves up quota and then computes in a burst, and a collective stalls on a device whose quota
# ran out. A 2 ms period holds each device to its share at every time scale (10 ms steps within 1%;
# Mininet lengthens the period of small shares to keep CFS's minimum quota of 1 ms; multi-threaded hosts
# lose up to 6% of their share to throttling). The shipped calibrations are measured under it; a
# calibration of the testbed under another period is refused (edgetrain.core.calibration): its devices
# computed at other speeds.
# `edgetrain emulate check --cfs-period-ms` measures any other.
TESTBED_CFS_PERIOD_US = 2_000
