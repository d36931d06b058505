"""Thread settings for training the bundled base: one process with 1 or 2 threads, or two DDP processes
with one thread each (the experiments' default, `experiments/_common.sh`). Training images per second.

    python -m benchmarks.bench_threads --out benchmarks/results/threads.json

Each setting is a real training run of the bundled base's recipe (`configs/base_demo.yaml`, batch 64,
fp32 unless `--precision`) started as its own command, `--steps` steps from scratch into a temporary
folder, the settings alternated round by round:

- `1 process x 1 thread`:  `python -m thinkpix.cli train ... threads=1` (OMP_NUM_THREADS=1)
- `1 process x 2 threads`: `python -m thinkpix.cli train ... threads=2` (OMP_NUM_THREADS=2)
- `2 processes x 1 thread`: `torchrun --standalone --nproc_per_node 2 -m thinkpix.cli train ... threads=1`
  (OMP_NUM_THREADS=1; gloo; each process takes 32 of the 64 images of a step)

Images/s is read from the trainer's own log (`images_per_s` of every `--log-every`-step window of
metrics.jsonl: wall time, the whole step of the whole run); the first window (text-embedding cache,
allocator, DDP start-up) is dropped and the median of the others counts, the median over rounds is
reported. The CPU seconds the command used (its processes, from the OS) per image are written too: a
second thread or process that only waits shows there. Threads can only be compared on the wall clock,
so the machine must be otherwise idle for the numbers to mean what they say: the 1-minute load average
before and after every run is in the JSON (`load_before`, `load_after`), and on a loaded machine the
result says more about the other work than about the settings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 64  # configs/base_demo.yaml's batch_size
SETTINGS = {  # name -> (processes, threads per process)
    "1 process x 1 thread": (1, 1),
    "1 process x 2 threads": (1, 2),
    "2 processes x 1 thread": (2, 1),
}


def command(processes: int, threads: int, out_dir: Path, args) -> list[str]:
    """The training command of one setting (a short run of configs/base_demo.yaml)."""
    launcher = [sys.executable, "-m", "thinkpix.cli"]
    if processes > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                    str(processes), "-m", "thinkpix.cli"]
    return launcher + ["train", str(ROOT / "configs" / "base_demo.yaml"), f"out_dir={out_dir}", f"steps={args.steps}",
                       f"log_every={args.log_every}", f"ckpt_every={args.steps}", "sample_every=1000000",
                       f"optim.warmup_steps={min(500, args.steps)}", f"threads={threads}", f"precision={args.precision}"]


def windows(out_dir: Path) -> list[float]:
    """images_per_s of every logged window of the run, in order."""
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    return [r["images_per_s"] for r in map(json.loads, lines) if "images_per_s" in r]


def run_setting(name: str, args, work: Path) -> dict:
    processes, threads = SETTINGS[name]
    out_dir = work / name.replace(" ", "_")
    shutil.rmtree(out_dir, ignore_errors=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before, start = os.getloadavg()[0], time.perf_counter()
    done = subprocess.run(command(processes, threads, out_dir, args), cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{name}: training failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rates = windows(out_dir)
    if len(rates) < 2:
        raise SystemExit(f"{name}: fewer than 2 logged windows; raise --steps or lower --log-every")
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"windows_images_per_s": rates, "images_per_s": statistics.median(rates[1:]), "command_wall_s": wall,
            "command_cpu_s": cpu, "cpu_s_per_image": cpu / (args.steps * BATCH),
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per run (the first window is dropped)")
    parser.add_argument("--log-every", type=int, default=10, help="steps per logged images/s window")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds of all settings")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"))
    parser.add_argument("--settings", default=",".join(SETTINGS), help="a comma list of: " + ", ".join(SETTINGS))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from thinkpix.files import write_json

    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    if not names or any(n not in SETTINGS for n in names):
        raise SystemExit(f"--settings: a comma list of {', '.join(SETTINGS)}")
    result = {"command": (f"python -m benchmarks.bench_threads --steps {args.steps} --log-every {args.log_every} "
                          f"--rounds {args.rounds} --precision {args.precision}"),
              "machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "recipe": "configs/base_demo.yaml (batch 64)", "precision": args.precision,
              "clock": "wall (the trainer's images_per_s windows), median of windows after the first, median of rounds",
              "settings": {}}
    runs = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as work:
        for r in range(args.rounds):
            for name in names:
                runs[name].append(run_setting(name, args, Path(work)))
                print(f"round {r + 1} {name}: {runs[name][-1]['images_per_s']:.1f} img/s "
                      f"(load {runs[name][-1]['load_before']:.1f})", flush=True)
    for name in names:
        rate = statistics.median(x["images_per_s"] for x in runs[name])
        result["settings"][name] = {"processes": SETTINGS[name][0], "threads_per_process": SETTINGS[name][1],
                                    "images_per_s": rate,
                                    "cpu_s_per_image": statistics.median(x["cpu_s_per_image"] for x in runs[name]),
                                    "rounds": runs[name]}
    base = result["settings"].get("1 process x 1 thread")
    for s in result["settings"].values():
        s["speedup_over_1x1"] = s["images_per_s"] / base["images_per_s"] if base else None
    write_json(args.out, result)
    from thinkpix.analysis.speed_tables import threads_table

    print(threads_table(result))


if __name__ == "__main__":
    main()
