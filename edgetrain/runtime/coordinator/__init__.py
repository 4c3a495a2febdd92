"""The coordinator's side of the runtime: runs jobs on shards it starts locally or through worker
daemons, follows their events, and recovers from lost devices. May import: core, runtime.training,
runtime.wire (never runtime.device: devices are reached by command or over the wire)."""
