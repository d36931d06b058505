#!/usr/bin/env bash
# Lake diffusion with one token per cell (docs/lab/lake_diffusion.md): the base rule on validation maps,
# then every arm for seeds 0-2, the table with paired intervals and the decoded-steps figure.
#   experiments/lake_diffusion.sh RUNS [ARM ...]
# RUNS is a run folder outside the repository; finished runs are skipped, interrupted ones resume. With ARM
# arguments only those arms are trained (e.g. two queues in parallel) and no table is written; a run without
# ARM arguments skips what is finished and writes the table.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:?usage: experiments/lake_diffusion.sh RUNS [ARM ...]}
shift || true
PY=${PYTHON:-.venv/bin/python}
STEPS=4000
train() { "$PY" -m thinkpix.worlds.lake.ladder train --task diffusion --steps "$STEPS" --runs "$RUNS" --arm "$1" --seed "$2"; }

# The base rule, read on validation maps: the shallowest of stack-2, stack-3 with in-range accuracy >= 0.50.
for B in 2 3; do
  train "stack-$B" 0
  "$PY" -m thinkpix.worlds.lake.ladder validate --task diffusion --runs "$RUNS"
  if "$PY" -c "import json, sys; r = json.load(open(sys.argv[1]))['in-range']['T']['1']; sys.exit(sum(r) < 0.5 * len(r))" \
      "$RUNS/diffusion-stack-$B/seed0/validation.json"; then break; fi
  if [ "$B" = 3 ]; then echo "no base clears the 0.50 rule on validation maps; no arms are run" >&2; exit 1; fi
done
DEEP=$("$PY" -c "import sys; from thinkpix.worlds.lake.cell_diffusion import compute_matched_stack as m; \
from thinkpix.worlds.lake.ladder_models import arm_named; print(m(arm_named(sys.argv[1]), 8).name)" \
  "rsr-refined-every-step-b$B")
ARMS=${*:-stack-$B rsr-refined-every-step-b$B rsr-paper-b$B $DEEP}
for seed in ${SEEDS:-0 1 2}; do
  for arm in $ARMS; do train "$arm" "$seed"; done
done
[ -n "${*:-}" ] && exit 0
"$PY" -m thinkpix.worlds.lake.cell_diffusion_table --runs "$RUNS" --base "stack-$B" \
  --winner "rsr-refined-every-step-b$B" --paper "rsr-paper-b$B" --deep "$DEEP" \
  --out experiments/results/lake_diffusion.json --doc docs/lab/lake_diffusion.md
"$PY" -m thinkpix.worlds.lake.cell_diffusion_figure --runs "$RUNS" --arm "rsr-refined-every-step-b$B" --seed 0 \
  --out docs/figures/lake_diffusion_decoded_steps.png
"$PY" -m thinkpix.worlds.lake.cell_diffusion_figure --curves experiments/results/lake_diffusion.json \
  --out docs/figures/lake_diffusion_t_curves.png
