"""The training runtime: a model written for one device, parallelised from outside by one function per
plan kind, shard processes joined by torch.distributed, energy meters and plan-independent checkpoints.

Runs on real devices without Mininet: nothing here imports `emulation` or RL code.
"""
