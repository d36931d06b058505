#!/usr/bin/env bash
# The paper's table with a shift (docs/lab/shift_table.md)
#   experiments/shift_table.sh RUNS
# Every arm on the fixed 1,000-sample composition pool, 1,200 steps x 8 (the full fine-tune 700 steps
# at lr 1e-4), seed 1; seeds 2 and 3 for the deciding rows (rsr_best, lora_23) and lora_twice; then the
# instruments and the paired scores. About 3 minutes per fine-tune and 20 per scored arm on two cores.
# rsr_tokens (the tokens-only gate) is read as rsr_best with gate=tokens_only: the record names the
# arm but not its spec.
source "$(dirname "$0")/_common.sh"
R=$RUNS/shift
L=layers=2,3,experts=2,latent_steps=2,rank=8
BEST=gate_init_std=0.5,tau=1,load_balance_weight=0.01
P="steps=1200 batch_size=8 data_pool=1000 data_mix=two_object=1,counting=1,position=1,color_attr=1
   validate_every=300 log_every=50 ckpt_every=300 threads=2 optim.warmup_steps=50"
ft() { local name=$1; shift; thinkpix finetune --output_dir $R/$name "$@" $P; }
ft full_s1 --method full steps=700 optim.lr=1e-4 seed=1
for S in 1 2 3; do
  ft lora_23_s$S --method lora --rsr $L seed=$S
  ft rsr_best_s$S --rsr $L,$BEST,seed=$S seed=$S
  ft lora_twice_s$S --rsr layers=2,3,experts=1,latent_steps=2,rank=8,base_every_step=true,seed=$S seed=$S
done
ft lora_123_s1 --method lora --rsr $L finetune.lora_layers=1,2,3 seed=1
ft rsr_paper_s1 --rsr $L,seed=1 seed=1
ft rsr_m1_s1 --rsr layers=2,3,experts=1,latent_steps=2,rank=8,seed=1 seed=1
ft rsr_noremod_s1 --rsr $L,$BEST,remodulate=false,seed=1 seed=1
ft rsr_baseevery_s1 --rsr $L,$BEST,base_every_step=true,seed=1 seed=1
ft rsr_m5t5_s1 --rsr layers=2,3,experts=5,latent_steps=5,rank=8,$BEST,seed=1 seed=1
ft rsr_tokens_s1 --rsr $L,$BEST,gate=tokens_only,seed=1 seed=1
python -m benchmarks.inspect_adapter --run $R/rsr_best_s1 $R/rsr_paper_s1 $R/rsr_m1_s1 $R/rsr_noremod_s1 \
    $R/rsr_baseevery_s1 $R/rsr_m5t5_s1 $R/rsr_tokens_s1 $R/lora_twice_s1 $R/lora_23_s1 $R/lora_123_s1 $R/full_s1 \
    --out benchmarks/results/shift_instruments.json
EVAL="--prompts data/eval/geneval.jsonl --prompts data/eval/dense.jsonl --images-per-prompt 1 --seed 0 --work $R/compare"
python -m benchmarks.compare_adapters --model shapes-base --arm base --arm base_21steps --arm base_24steps --arm full= \
    --arm lora_23=$R/lora_23_s1/adapter --arm lora_123=$R/lora_123_s1/adapter --arm lora_twice=$R/lora_twice_s1/adapter \
    --arm rsr_best=$R/rsr_best_s1/adapter --arm rsr_paper=$R/rsr_paper_s1/adapter --arm rsr_m1=$R/rsr_m1_s1/adapter \
    --arm rsr_noremod=$R/rsr_noremod_s1/adapter --arm rsr_baseevery=$R/rsr_baseevery_s1/adapter \
    --arm rsr_m5t5=$R/rsr_m5t5_s1/adapter --arm-model full=$R/full_s1/model \
    --arm-steps base_21steps=21 --arm-steps base_24steps=24 --versus base --versus lora_23 --versus lora_123 \
    $EVAL --out benchmarks/results/shift_compare_s1.json
python -m benchmarks.compare_adapters --model shapes-base --arm base --arm lora_23=$R/lora_23_s1/adapter \
    --arm lora_123=$R/lora_123_s1/adapter --arm rsr_best=$R/rsr_best_s1/adapter --arm lora_twice=$R/lora_twice_s1/adapter \
    --arm lora_23_s2=$R/lora_23_s2/adapter --arm lora_23_s3=$R/lora_23_s3/adapter \
    --arm rsr_best_s2=$R/rsr_best_s2/adapter --arm rsr_best_s3=$R/rsr_best_s3/adapter \
    --arm lora_twice_s2=$R/lora_twice_s2/adapter --arm lora_twice_s3=$R/lora_twice_s3/adapter \
    --versus base --versus lora_23 --versus lora_123 --versus lora_23_3seeds \
    --pool rsr_best_3seeds=rsr_best,rsr_best_s2,rsr_best_s3 --pool lora_23_3seeds=lora_23,lora_23_s2,lora_23_s3 \
    --pool lora_twice_3seeds=lora_twice,lora_twice_s2,lora_twice_s3 \
    $EVAL --out benchmarks/results/shift_compare_seeds.json
