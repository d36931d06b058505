#!/usr/bin/env bash
# Lake: does the base learn the task at the planned budget? (docs/lab/lake_first_arms.md)
#   experiments/lake_first_arms.sh RUNS
# Arms a (base) and b (RSR trained in) at 1,000 steps x 64, seed 0, scored on the 480 committed maps
# with b swept over T = 0..8, and the decoded-latent-step figure. About 20 minutes on two cores.
# The report stays in the run folder ($RUNS/lake/lake_arms_ab.json); it was not committed.
source "$(dirname "$0")/_common.sh"
R=$RUNS/lake
thinkpix lake train configs/lake_base.yaml out_dir=$R/base_s0 seed=0
thinkpix lake train configs/lake_rsr.yaml out_dir=$R/rsr_s0 seed=0
python -m benchmarks.lake_arms --arm base=$R/base_s0/final --arm rsr_in=$R/rsr_s0/final \
    --sweep rsr_in=0,1,2,3,4,5,6,7,8 --work $R/arms_ab --out $R/lake_arms_ab.json
python -m benchmarks.lake_figures think-steps --model $R/rsr_s0/final --out docs/figures/lake_think_steps.png
