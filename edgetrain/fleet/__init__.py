"""Layer 3 of 6: where a run's shards live, and the pipelines that measure a fleet.

`backends` opens one of: local processes, the emulated testbed (a worker in every Mininet host), or
real devices listed in a cluster file (`cluster`). `measure` calibrates a fleet and measures what
plans really cost. This is the one place where the runtime and the emulation meet.

May import: edgetrain.core, edgetrain.runtime, edgetrain.emulation (never mininet directly, nor envs,
agents or app; CI checks it).
"""
