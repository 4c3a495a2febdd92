"""A device's side of the runtime: the worker daemon a device runs, the shard process that trains,
the device's meters (energy, CPU time, bytes on the wire, memory) and its power modes. May import: core, runtime.training,
runtime.wire (never runtime.coordinator)."""
