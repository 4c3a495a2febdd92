"""The emulated edge testbed on Mininet. The only package that imports mininet; never imports runtime or RL code."""
