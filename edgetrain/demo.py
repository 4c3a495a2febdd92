"""`make demo`: the main job on the built-in default scenario.

Today it shows the runtime: the same model trained for real with every plan kind on three devices of
`smart-home`, with the time and energy each plan costs per sample. (Policy learning, evaluation and
deployment join it as the agents land.)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from edgetrain.errors import RunError, UserError
from edgetrain.plans import Plan
from edgetrain.scenario import load_scenario

DEMO_DEVICES = ("laptop", "orin-nano", "xavier-nx")
DEMO_STEPS = 8


def main() -> int:
    from runtime.coordinator import Job, run_job
    from runtime.launcher import LocalLauncher
    scenario = load_scenario()
    out = Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    plans = [Plan("local", DEMO_DEVICES[:1])] + [Plan(kind, DEMO_DEVICES) for kind in ("dp", "pp", "tp", "sp")]
    rows = []
    for index, plan in enumerate(plans, start=1):
        print(f"== [{index}/{len(plans)}] {plan} on scenario {scenario.name}", file=sys.stderr, flush=True)
        try:
            metrics = run_job(Job(scenario=scenario, plan=plan, steps=DEMO_STEPS, run_dir=out / plan.kind,
                                  checkpoint_out=str(out / plan.kind / "checkpoint.pt")),
                              LocalLauncher(), progress=lambda line: print("   " + line, file=sys.stderr, flush=True))
        except (UserError, RunError) as exc:
            print(f"   skipped: {exc}", file=sys.stderr)
            continue
        metrics.write(str(out / f"{plan.kind}.json"))
        total = metrics.to_dict()["total"]
        rows.append((str(plan), metrics.losses[-1], total["time_per_sample_s"], total["energy_per_sample_j"]))
    print(f"\n{'plan':40s} {'loss':>8s} {'ms/sample':>10s} {'J/sample':>9s}")
    for plan, loss, tps, eps in rows:
        print(f"{plan:40s} {loss:8.4f} {tps * 1e3:10.2f} {eps:9.3f}")
    print(f"\nmetrics and checkpoints: {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
