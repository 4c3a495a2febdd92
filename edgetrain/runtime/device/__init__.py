"""A device's side of the runtime: the worker daemon a device runs, the shard process that trains,
and the device's meters (energy, CPU time, bytes on the wire). May import: core, runtime.training,
runtime.wire (never runtime.coordinator)."""
