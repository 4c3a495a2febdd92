"""edgetrain: learn how to train a Transformer on a group of trusted edge devices.

The package is built in layers; each imports only the layers below it (`.importlinter`, checked by
`make test`):

    app         the `edgetrain` command and the demo: composes everything below
    agents      MaskablePPO training, baselines, evaluation, deployment of a policy
    envs        the Gymnasium environment EdgeTrain-v0, its simulator and cost model
    fleet       where shards live (local processes, the emulated testbed, a cluster file) and the
                pipelines that measure a fleet: the one place runtime and emulation meet
    runtime | emulation   side by side, never importing each other:
                runtime    coordinator, device daemon and shards, the training math, the wire
                emulation  the Mininet testbed (the only code that imports mininet)
    core        the floor, importing nothing of the project: scenario configs, plans, errors,
                the device catalog, power, availability, model sizing, memory, feasibility,
                calibrations, the Zeus cost

Built-in scenarios and their calibrations ship as package data in `edgetrain/scenarios/`.
"""

__version__ = "0.1.0"
