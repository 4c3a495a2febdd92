"""Layer 2 of 6 (beside runtime): the emulated edge testbed on Mininet.

`network` wraps Mininet (hosts, links shaped with htb, CPU and memory cgroups, cleanup of its own
prefix); `testbed` runs the worker daemon in every host and plays availability and batteries;
`check` measures links and CPU shares against the scenario; `probes` are the programs it runs in hosts.

May import: edgetrain.core and mininet. It starts the runtime's worker as a command (`python -m
edgetrain worker`), never by import; no RL code (CI checks it). Nothing else imports mininet.
"""
