#!/usr/bin/env bash
# The paper's fine-tuning protocol on lake diffusion (docs/lab/lake_finetune.md): RSR adapters, a
# parameter-matched LoRA and that LoRA at twice the steps on the frozen stack-2 diffusion base, fit to 1,000
# shifted maps, seeds 0-2, then the paired table.
#   experiments/lake_finetune.sh RUNS
# RUNS is the run folder of experiments/lake_diffusion.sh (its stack-2 bases must be finished); the fine-tunes
# go to RUNS/finetune. Finished runs are skipped, interrupted ones resume.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:?usage: experiments/lake_finetune.sh RUNS}
PY=${PYTHON:-.venv/bin/python}
for seed in ${SEEDS:-0 1 2}; do
  for arm in adapter-refined-every-step adapter-paper lora lora-2x; do
    "$PY" -m thinkpix.worlds.lake.cell_finetune --arm "$arm" --seed "$seed" --base stack-2 --base-runs "$RUNS" \
      --runs "$RUNS/finetune"
  done
done
"$PY" -m thinkpix.worlds.lake.cell_finetune_table --base-runs "$RUNS" --runs "$RUNS/finetune" --base stack-2 \
  --out experiments/results/lake_finetune.json --doc docs/lab/lake_finetune.md
