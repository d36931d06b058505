#!/usr/bin/env bash
# Lake: is budget what the base lacks, or adjacency? (docs/lab/lake_adjacency.md)
#   experiments/lake_adjacency.sh RUNS      (after experiments/lake_first_arms.sh RUNS)
# The base at 2,500 steps, the 2-move diagnostic (1,000 and 2,500 steps), the path-weight lever; each
# scored with the path-cell instrument. 9-20 minutes per run on two cores.
source "$(dirname "$0")/_common.sh"
R=$RUNS/lake
thinkpix lake train configs/lake_base.yaml out_dir=$R/base2500_s0 steps=2500 seed=0
thinkpix lake train configs/lake_base.yaml out_dir=$R/len2_s0 lake.lengths=2 seed=0
thinkpix lake train configs/lake_base.yaml out_dir=$R/len2_pw10_s0 lake.lengths=2 lake.path_weight=10 seed=0
thinkpix lake train configs/lake_base.yaml out_dir=$R/len2_2500_s0 lake.lengths=2 steps=2500 seed=0
python -m benchmarks.lake_arms --arm base1000=$R/base_s0/final --arm base2500=$R/base2500_s0/final \
    --arm rsr_in1000=$R/rsr_s0/final --arm len2=$R/len2_s0/final --work $R/arms_cells \
    --out benchmarks/results/lake_arms_cells.json
python -m benchmarks.lake_arms --arm len2=$R/len2_s0/final --arm len2_pw10=$R/len2_pw10_s0/final \
    --work $R/arms_pw --out benchmarks/results/lake_arms_pw.json
python -m benchmarks.lake_arms --arm len2=$R/len2_s0/final --arm len2_2500=$R/len2_2500_s0/final \
    --work $R/arms_len2_long --out benchmarks/results/lake_arms_len2_long.json
for arm in base1000 base2500 rsr_in1000 len2; do thinkpix lake evaluate $R/arms_cells/$arm --json; done
