#!/usr/bin/env bash
# Does recursion trained in from the start use its latent steps? (docs/lab/recursion_trained_in.md)
#   experiments/recursion_trained_in.sh RUNS
# Three arms at 20% of the bundled budget (2,000 steps x 64, seed 0): a fresh base, the base with RSR
# trained in (random depth up to T = 4, the routing levers), a 7-block base; then RSR's training seeds
# 1 and 2. Each arm 22-29 minutes on two cores; scoring at T = 0..6 on 1,200 images per arm.
source "$(dirname "$0")/_common.sh"
R=$RUNS/recursion_trained_in
TRAIN="$DDP train configs/base_demo.yaml steps=2000 optim.warmup_steps=100"
RSR=layers=2,3,experts=2,latent_steps=4,rank=8,random_depth=true,gate_init_std=0.5,tau=1,load_balance_weight=0.01
$TRAIN out_dir=$R/rsr_in model.rsr=$RSR
$TRAIN out_dir=$R/base
$TRAIN out_dir=$R/deep model.size=demo7
T_ARMS=""
for t in 0 1 2 3 4 6; do T_ARMS="$T_ARMS --arm rsr_T$t=:$t --arm-model rsr_T$t=$R/rsr_in/final"; done
python -m benchmarks.compare_adapters --model shapes-base --arm base --arm deep $T_ARMS \
    --arm-model base=$R/base/final --arm-model deep=$R/deep/final --versus base --versus rsr_T4 \
    --prompts data/eval/geneval.jsonl --images-per-prompt 2 --seed 0 --work $R/compare \
    --out benchmarks/results/trained_in_s0.json
# Training seeds 1 and 2 of the RSR arm.
$TRAIN out_dir=$R/rsr_in_s1 model.rsr=$RSR seed=1
$TRAIN out_dir=$R/rsr_in_s2 model.rsr=$RSR seed=2
T_ARMS=""
for t in 0 1 2 4; do T_ARMS="$T_ARMS --arm rsr_T$t=:$t --arm-model rsr_T$t=$R/rsr_in_s1/final"; done
python -m benchmarks.compare_adapters --model shapes-base $T_ARMS --versus rsr_T4 --prompts data/eval/geneval.jsonl \
    --images-per-prompt 2 --seed 0 --work $R/compare_s1 --out benchmarks/results/trained_in_s1.json
python -m benchmarks.compare_adapters --model shapes-base --arm rsr_T1=:1 --arm rsr_T4=:4 \
    --arm-model rsr_T1=$R/rsr_in_s2/final --arm-model rsr_T4=$R/rsr_in_s2/final --versus rsr_T4 \
    --prompts data/eval/geneval.jsonl --images-per-prompt 2 --seed 0 --work $R/compare_s2 \
    --out benchmarks/results/trained_in_s2.json
python -m benchmarks.make_figures t-curve --report benchmarks/results/trained_in_s0.json
