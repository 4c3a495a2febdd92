"""Overhead of `edgetrain run` over plain PyTorch, for dp and pp on 3 local processes and a hybrid on 4
(two pipeline stages, each data-parallel over two devices: hybrid:laptop+orin-nano=2/xavier-nx+pi4=2@4
against torch.distributed.pipelining's GPipe per pair and an all-reduce per stage).

Both sides train the default scenario's model on the same batches with the same primitive; they run
alternately, ROUNDS times each, on the same machine. The figure compared is the median time of a whole
training-loop iteration (edgetrain's metering and reporting included), first step excluded.
Target: ratio <= 1.05. Prints JSON.

    .venv/bin/python benchmarks/runtime_overhead.py [--steps 40] [--rounds 5] [--kinds dp,pp,hybrid]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from edgetrain.runtime.coordinator.job import free_port

DEVICES = "laptop,orin-nano,xavier-nx"
PLANS = {"dp": f"dp:{DEVICES}", "pp": f"pp:{DEVICES}", "hybrid": "hybrid:laptop+orin-nano=2/xavier-nx+pi4=2@4"}
WORLD = {"dp": 3, "pp": 3, "hybrid": 4}
TARGET = 1.05
HERE = Path(__file__).resolve().parent


def edgetrain_median(kind: str, steps: int, workdir: Path) -> float:
    out = workdir / f"{kind}.json"
    subprocess.run([sys.executable, "-m", "edgetrain", "run", "--plan", PLANS[kind], "--steps",
                    str(steps), "--metrics-out", str(out), "--run-dir", str(workdir / kind),
                    "--checkpoint-every", "0"],  # the plain loop saves nothing either
                   check=True, capture_output=True, text=True)
    steps_ = json.loads(out.read_text())["steps"]
    intervals = [max(d["interval_s"] for d in s["devices"].values()) for s in steps_]
    return statistics.median(intervals[1:])


def plain_median(kind: str, steps: int) -> float:
    result = subprocess.run([sys.executable, str(HERE / "plain_training.py"), kind, str(WORLD[kind]), str(steps),
                             str(free_port())], check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["median_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kinds", default=",".join(PLANS), help="comma-separated, of " + ", ".join(PLANS))
    args = parser.parse_args()
    report = {"target_ratio": TARGET, "steps": args.steps, "rounds": args.rounds, "plans": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            ours, plain = [], []
            for round_ in range(args.rounds):
                print(f"{kind}: round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
                ours.append(edgetrain_median(kind, args.steps, Path(tmp)))
                plain.append(plain_median(kind, args.steps))
            ratio = statistics.median(ours) / statistics.median(plain)
            report["plans"][PLANS[kind]] = {
                "edgetrain_rounds_s": ours,
                "plain_rounds_s": plain,
                "edgetrain_median_step_s": statistics.median(ours),
                "plain_median_step_s": statistics.median(plain),
                "ratio": ratio,
                "target_met": ratio <= TARGET,
            }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
