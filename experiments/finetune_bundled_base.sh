#!/usr/bin/env bash
# Does an RSR fine-tune improve the bundled text-to-image base? (docs/lab/finetune_bundled_base.md)
#   experiments/finetune_bundled_base.sh RUNS
# The three settings (600 steps on the base's own distribution, 1,200 on a composition-weighted mix,
# tau 1), RSR and its parameter-matched LoRA, scored paired with the fixed evaluator, then the old
# evaluator (commit 98d5e51) on the same images. Writes benchmarks/results/finetune_compare_*_fixed.json,
# base_geneval.json and rescore_rounds/*.json. About 6 h on two cores.
source "$(dirname "$0")/_common.sh"
R=$RUNS/finetune_bundled_base
MIX=single_object=0.5,colors=0.5,two_object=2,counting=2,position=3,color_attr=2,free=1
$DDP finetune --output_dir $R/ft_rsr
$DDP finetune --method lora --output_dir $R/ft_lora
$DDP finetune --output_dir $R/ft_rsr_mix steps=1200 data_mix=$MIX
$DDP finetune --method lora --output_dir $R/ft_lora_mix steps=1200 data_mix=$MIX
$DDP finetune --rsr layers=2,3,experts=2,latent_steps=2,rank=8,tau=1.0 --output_dir $R/ft_rsr_tau1
python -m benchmarks.compare_adapters --model shapes-base --arm base --images-per-prompt 4 --seed 0 \
    --work $R/compare --out benchmarks/results/base_geneval.json
python -m benchmarks.compare_adapters --model shapes-base --arm base --arm rsr_T2=$R/ft_rsr/adapter:2 \
    --arm lora=$R/ft_lora/adapter --images-per-prompt 4 --seed 0 --work $R/compare \
    --out benchmarks/results/finetune_compare_fixed.json
python -m benchmarks.compare_adapters --model shapes-base --arm base --arm rsr_mix_T2=$R/ft_rsr_mix/adapter:2 \
    --arm lora_mix=$R/ft_lora_mix/adapter --images-per-prompt 4 --seed 0 --work $R/compare \
    --out benchmarks/results/finetune_compare_mix_fixed.json
python -m benchmarks.compare_adapters --model shapes-base --arm base --arm rsr_tau1_T2=$R/ft_rsr_tau1/adapter:2 \
    --images-per-prompt 2 --seed 0 --work $R/compare_n2 --out benchmarks/results/finetune_compare_tau1_fixed.json
# The evaluator before its fix on the same images.
python -m benchmarks.evaluator_versions folder $R/compare/base --out benchmarks/results/rescore_base_geneval.json
for arm in base rsr_T2 lora rsr_mix_T2 lora_mix; do
  python -m benchmarks.evaluator_versions folder $R/compare/$arm --out benchmarks/results/rescore_rounds/$arm.json
done
for arm in base rsr_tau1_T2; do
  python -m benchmarks.evaluator_versions folder $R/compare_n2/$arm --out benchmarks/results/rescore_rounds/n2_$arm.json
done
