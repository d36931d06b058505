#!/usr/bin/env bash
# Lake: with the patch-context lever, do RSR, adapters or depth beat the base? (docs/lab/lake_arms.md)
#   experiments/lake_arms.sh RUNS
# Arms a-c for training seeds 0-2, arm d and the T = 0..8 sweeps for seed 0, all with
# lake.patch_context=1 (arm a seed 0 is lake_patch_context.sh's base_pc1_s0, the same command: it is
# reused when present). About 20 minutes per seed on two cores.
source "$(dirname "$0")/_common.sh"
R=$RUNS/lake
SPEC=layers=1,2,experts=2,latent_steps=4,rank=8
for S in 0 1 2; do
  thinkpix lake train configs/lake_base.yaml out_dir=$R/base_pc1_s$S lake.patch_context=1 seed=$S
  thinkpix lake train configs/lake_rsr.yaml out_dir=$R/rsr_pc1_s$S lake.patch_context=1 seed=$S
  thinkpix lake finetune --pretrained $R/base_pc1_s$S/final --rsr $SPEC --output_dir $R/ft_rsr_pc1_s$S steps=500 seed=$S
  thinkpix lake finetune --pretrained $R/base_pc1_s$S/final --rsr $SPEC --method lora --output_dir $R/ft_lora_pc1_s$S steps=500 seed=$S
  EXTRA=""
  if [ $S = 0 ]; then
    thinkpix lake train configs/lake_base.yaml lake.depth=5 lake.patch_context=1 out_dir=$R/deep_pc1_s0 seed=0
    EXTRA="--arm deep_s0=$R/deep_pc1_s0/final --sweep rsr_in_s0=0,1,2,3,4,5,6,7,8 --sweep ft_rsr_s0=0,1,2,3,4,5,6,7,8"
  fi
  python -m benchmarks.lake_arms --arm base_s$S=$R/base_pc1_s$S/final --arm rsr_in_s$S=$R/rsr_pc1_s$S/final \
      --arm ft_rsr_s$S=$R/base_pc1_s$S/final+$R/ft_rsr_pc1_s$S/adapter \
      --arm ft_lora_s$S=$R/base_pc1_s$S/final+$R/ft_lora_pc1_s$S/adapter $EXTRA \
      --versus ft_lora_s$S --work $R/arms_s$S --out benchmarks/results/lake_arms_pc1_s$S.json
done
python -m benchmarks.lake_arms --seeds benchmarks/results/lake_arms_pc1_s0.json \
    benchmarks/results/lake_arms_pc1_s1.json benchmarks/results/lake_arms_pc1_s2.json
python -m benchmarks.lake_figures routing --model $R/rsr_pc1_s0/final --out docs/figures/lake_routing.png
python -m benchmarks.lake_figures arms --arm base=$R/base_pc1_s0/final --arm rsr_in=$R/rsr_pc1_s0/final \
    --arm ft_rsr=$R/base_pc1_s0/final+$R/ft_rsr_pc1_s0/adapter --arm ft_lora=$R/base_pc1_s0/final+$R/ft_lora_pc1_s0/adapter \
    --arm deep=$R/deep_pc1_s0/final --out docs/figures/lake_arms.png
