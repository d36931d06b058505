#!/usr/bin/env bash
# The recursion ladder: train and score every arm for seeds 0-2, then tabulate with paired intervals.
#   experiments/recursion_ladder.sh RUNS [ARM ...]
# RUNS is a run folder outside the repository (checkpoints, per-run scores); finished runs are skipped,
# interrupted ones resume. The table goes to experiments/results/recursion_ladder.json (paths relative to RUNS).
# Adapter arms (adapter-*) need the stack-1 run of the same seed first; the default list orders them after it.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:?usage: experiments/recursion_ladder.sh RUNS [ARM ...]}
shift || true
ARMS=${*:-loop rsr-paper rsr-every-step rsr-refined rsr-refined-every-step rsr-gated rsr-gated-every-step rsr-block rsr-block-every-step stack-1 stack-2 stack-8 rsr-refined-every-step-m1 rsr-refined-every-step-m4 adapter-paper adapter-refined-every-step}
PY=${PYTHON:-.venv/bin/python}
for seed in ${SEEDS:-0 1 2}; do
  for arm in $ARMS; do
    "$PY" -m thinkpix.worlds.lake.ladder train --arm "$arm" --seed "$seed" --runs "$RUNS"
  done
done
"$PY" -m thinkpix.worlds.lake.ladder validate --runs "$RUNS"   # validation maps: the choice of the best reading
"$PY" -m thinkpix.worlds.lake.ladder table --runs "$RUNS" --out experiments/results/recursion_ladder.json \
  --doc docs/lab/recursion_ladder.md
if [ -z "${*:-}" ]; then   # the full ladder: the figure of the control, the best reading and the paper's
  "$PY" -m thinkpix.worlds.lake.ladder_figure --runs "$RUNS" --arms loop rsr-refined-every-step rsr-paper --seed 0 \
    --out docs/figures/ladder_decoded_steps.png
fi
