#!/usr/bin/env bash
# Does a tuned LoRA change the comparison? (docs/lab/lora_tuning.md)
#   experiments/lora_tuning.sh RUNS      (after experiments/shift_table.sh RUNS)
# LoRA's own 8-run screen on the shift pool (300 steps x 8; s7_lora of the routing screen is its
# untuned run), the pick by the lowest final val_loss, the pick at the shift table's protocol with seeds
# 1-3, scored paired against the shift table's runs.
# The record keeps the screen's final validation losses (lora_screen_val.json) but not the
# script that gathered them; `inspect_adapter --run` prints the same values from the runs.
source "$(dirname "$0")/_common.sh"
R=$RUNS/shift
S=$RUNS/lora_screen
L=layers=2,3,experts=2,latent_steps=2,rank=8
COMMON="steps=300 batch_size=8 data_pool=1000 data_mix=two_object=1,counting=1,position=1,color_attr=1
        validate_every=100 log_every=25 ckpt_every=100 threads=2 optim.warmup_steps=50"
screen() { local name=$1; shift; thinkpix finetune --output_dir $S/$name --method lora --rsr $L "$@" $COMMON; }
screen s7_lora
screen l1_lr3e-4 optim.lr=3e-4
screen l2_lr3e-3 optim.lr=3e-3
screen l3_lr1e-4 optim.lr=1e-4
screen l4_r16 finetune.lora_rank=16
screen l5_r96 finetune.lora_rank=96
screen l6_r16_lr3e-3 finetune.lora_rank=16 optim.lr=3e-3
screen l7_r96_lr3e-4 finetune.lora_rank=96 optim.lr=3e-4
python -m benchmarks.inspect_adapter --run $S/s7_lora $S/l1_lr3e-4 $S/l2_lr3e-3 $S/l3_lr1e-4 $S/l4_r16 $S/l5_r96 \
    $S/l6_r16_lr3e-3 $S/l7_r96_lr3e-4
# The pick (l5_r96 in the record) at the shift table's protocol.
P="steps=1200 batch_size=8 data_pool=1000 data_mix=two_object=1,counting=1,position=1,color_attr=1
   validate_every=300 log_every=50 ckpt_every=300 threads=2 optim.warmup_steps=50"
for s in 1 2 3; do
  thinkpix finetune --output_dir $R/lora_tuned_s$s --method lora --rsr $L finetune.lora_rank=96 $P seed=$s
done
python -m benchmarks.compare_adapters --model shapes-base --arm base --arm lora_23=$R/lora_23_s1/adapter \
    --arm lora_23_s2=$R/lora_23_s2/adapter --arm lora_23_s3=$R/lora_23_s3/adapter \
    --arm rsr_best=$R/rsr_best_s1/adapter --arm rsr_best_s2=$R/rsr_best_s2/adapter --arm rsr_best_s3=$R/rsr_best_s3/adapter \
    --arm lora_tuned=$R/lora_tuned_s1/adapter --arm lora_tuned_s2=$R/lora_tuned_s2/adapter \
    --arm lora_tuned_s3=$R/lora_tuned_s3/adapter --versus base --versus lora_23_3seeds --versus lora_tuned_3seeds \
    --pool rsr_best_3seeds=rsr_best,rsr_best_s2,rsr_best_s3 --pool lora_23_3seeds=lora_23,lora_23_s2,lora_23_s3 \
    --pool lora_tuned_3seeds=lora_tuned,lora_tuned_s2,lora_tuned_s3 \
    --prompts data/eval/geneval.jsonl --prompts data/eval/dense.jsonl --images-per-prompt 1 --seed 0 \
    --work $R/compare --out benchmarks/results/lora_tuned_compare.json
