#!/usr/bin/env bash
# Lake: is budget what the lever-base lacks? (docs/lab/lake_arms.md, "the lever-base at 2,500 steps")
#   experiments/lake_base_2500.sh RUNS      (after experiments/lake_patch_context.sh RUNS)
# Arm a with lake.patch_context=1 at 2,500 steps (seed 0), paired with the 1,000-step lever base.
source "$(dirname "$0")/_common.sh"
R=$RUNS/lake
thinkpix lake train configs/lake_base.yaml out_dir=$R/base_pc1_2500_s0 lake.patch_context=1 steps=2500 seed=0
python -m benchmarks.lake_arms --arm base_pc1=$R/base_pc1_s0/final --arm base_pc1_2500=$R/base_pc1_2500_s0/final \
    --work $R/arms_2500 --out benchmarks/results/lake_arms_pc1_2500.json
