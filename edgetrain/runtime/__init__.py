"""Layer 2 of 6 (beside emulation): the training runtime, the same on the testbed and on real devices.

- `coordinator/`: the coordinator's side: a job and its run (`job`), how shards are started
  (`launcher`: local processes; `remote`: worker daemons over the control plane), recovery from lost
  devices (`recovery`), calibration jobs (`calibration`), run metrics (`metrics`).
- `device/`: a device's side: the worker daemon (`worker`), the shard process and its training loop
  (`shard`), energy meters, CPU and traffic counters, calibration measurements.
- `training/`: the math: the model written for one device (`model`), one function per parallelism
  (`parallel`), plan-independent checkpoints (`checkpoint`), the training text (`data`).
- `wire/`: what crosses the network: the authenticated control plane (`control`) and the shard spec
  and events (`spec`).

May import: edgetrain.core and torch. Never edgetrain.emulation (it must run with no Mininet and
reaches workers by address) nor RL code. Inside: coordinator and device do not import each other;
both stand on training and wire (CI checks it).
"""
