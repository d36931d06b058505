#!/usr/bin/env bash
# Lake: does a patch embedding that sees the neighbours help? (docs/lab/lake_patch_context.md)
#   experiments/lake_patch_context.sh RUNS   (after lake_first_arms.sh and lake_adjacency.sh, whose plain runs it pairs with)
# lake.patch_context=1 on the 2-move diagnostic and on arm a (lengths 1-6), 1,000 steps, seed 0.
source "$(dirname "$0")/_common.sh"
R=$RUNS/lake
thinkpix lake train configs/lake_base.yaml out_dir=$R/len2_pc1_s0 lake.lengths=2 lake.patch_context=1 seed=0
thinkpix lake train configs/lake_base.yaml out_dir=$R/base_pc1_s0 lake.patch_context=1 seed=0
python -m benchmarks.lake_arms --arm len2=$R/len2_s0/final --arm len2_pc1=$R/len2_pc1_s0/final \
    --work $R/arms_len2_pc1 --out benchmarks/results/lake_arms_len2_pc1.json
python -m benchmarks.lake_arms --arm base=$R/base_s0/final --arm base_pc1=$R/base_pc1_s0/final \
    --work $R/arms_base_pc1 --out benchmarks/results/lake_arms_base_pc1.json
