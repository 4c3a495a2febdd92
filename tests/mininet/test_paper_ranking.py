"""The case study of Zeng et al. ("Implementation of Big AI Models for Wireless Networks with
Collaborative Edge Computing", IEEE Network 2024), live: on Jetson boards, data and pipeline
parallelism are the most energy-efficient, tensor and sequence parallelism held back by the
communication they need per layer. Measured, not predicted: every kind trains on two Jetson-profiled
devices of the testbed and the energy per sample of its steps is compared."""


def test_live_energy_per_sample_ranks_dp_and_pp_ahead_of_tp_and_sp_on_jetsons(tmp_path):
    import dataclasses

    from edgetrain.core.plans import Plan
    from edgetrain.core.scenario import load_scenario
    from edgetrain.fleet.backends import open_backend
    from edgetrain.fleet.measure import measure_plans, warm_up_devices
    lab = load_scenario("jetson-lab")
    jetsons = ("orin-nano", "xavier-nx")
    scenario = dataclasses.replace(lab, devices=tuple(d for d in lab.devices if d.name in jetsons))
    with open_backend("mininet", scenario, tmp_path, follow_availability=False) as backend:
        warm_up_devices(backend, scenario)
        measured = measure_plans(backend, scenario, [Plan(kind, jetsons) for kind in ("dp", "pp", "tp", "sp")],
                                 tmp_path, steps=2)
    per_sample = {m.plan.kind: m.energy_j / scenario.model.batch_size for m in measured}
    assert max(per_sample["dp"], per_sample["pp"]) < min(per_sample["tp"], per_sample["sp"]), per_sample
