"""Gymnasium environments: EdgeTrain-v0 over the simulator or the live testbed."""
