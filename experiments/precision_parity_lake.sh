#!/usr/bin/env bash
# Does a lake diffusion model trained in bf16 solve as many maps as one trained in fp32?
# (docs/lab/precision_parity.md, the lake run)
#   experiments/precision_parity_lake.sh RUNS
# The lake diffusion base of docs/lab/lake_diffusion.md (cell_diffusion, arm stack-2, 4,000 steps, batch 64,
# one thread), trained three times: fp32 seed 0, bf16 seed 0 (same maps, paths, noise and timesteps as
# fp32 seed 0) and fp32 seed 1, the extra reading: how far two fp32 seeds differ. All scored in fp32 on the
# same test maps with the same noise; in-range accuracy paired per map against fp32 seed 0 (and on the
# deciding maps, 4-6 moves). Writes experiments/results/precision_parity_lake.json.
# Finished runs are kept; interrupted ones resume (in their own precision only).
# Knobs (environment): ARM (stack-2), STEPS (4000), OUT.
source "$(dirname "$0")/_common.sh"
R=$RUNS/precision_parity_lake
ARM=${ARM:-stack-2}
STEPS=${STEPS:-4000}
OUT=${OUT:-experiments/results/precision_parity_lake.json}
train() {  # PRECISION SEED
  python -m thinkpix.worlds.lake.ladder train --task diffusion --arm "$ARM" --steps "$STEPS" --threads 1 \
      --precision "$1" --seed "$2" --runs "$R/$1"
}
train fp32 0
train bf16 0
train fp32 1
python -m benchmarks.lake_precision_parity --arm fp32="$R/fp32/diffusion-$ARM/seed0" \
    --arm bf16="$R/bf16/diffusion-$ARM/seed0" --arm fp32_seed1="$R/fp32/diffusion-$ARM/seed1" --out "$OUT"
