#!/usr/bin/env bash
# RSR where depth helps on the shapes world: loops trained in, an adapter, a parameter-matched LoRA, and the
# plain base of the same inference compute (docs/lab/shapes_rsr_depth.md).
#   experiments/shapes_rsr_depth.sh RUNS [D]
# D: the RSR base's depth; by default the depth ladder's verdict (docs/lab/shapes_depth_ladder.md: the
# shallowest base that falls short of the 6-block one on some task), read from its results file. Needs the
# ladder's runs (experiments/shapes_depth_ladder.sh RUNS) for the seed-0 bases. Finished runs are skipped,
# interrupted ones resume.
source "$(dirname "$0")/_common.sh"
D=${2:-$(python -m thinkpix.analysis.depth_match --pick-base experiments/results/shapes_depth_ladder.json)}
R=$RUNS/shapes_rsr_depth
LADDER=$RUNS/shapes_depth_ladder
TRAIN="$DDP train configs/base_demo.yaml steps=2000 optim.warmup_steps=100"
LOOP=preset=refined-every-step,layers=0,experts=2,latent_steps=8,rank=8,random_depth=true,gate_init_std=0.5,tau=1,load_balance_weight=0.01
# The plain base whose forward costs what the looped one costs at T = 8.
DEEP=$(python -m thinkpix.analysis.depth_match --size demo-d$D --rsr $LOOP --latent-steps 8 \
       | python -c "import json,sys; print(json.load(sys.stdin)['nearest_depth'])")
echo "RSR base: $D blocks; compute-matched plain base: $DEEP blocks"
size() { if [ "$1" = 6 ]; then echo demo; else echo demo-d$1; fi; }
base_dir() {  # depth seed -> a trained plain base (seed 0 from the ladder where it has that depth)
  if [ "$2" = 0 ] && [ -d "$LADDER/d$1/final" ]; then echo "$LADDER/d$1/final"; else echo "$R/d$1_s$2/final"; fi
}
train_seed() {  # seed -> the plain bases (D and DEEP blocks) and the loop of that training seed
  for d in $D $DEEP; do
    dir=$(base_dir "$d" $1); [ -d "$dir" ] || $TRAIN out_dir=${dir%/final} model.size=$(size "$d") seed=$1
  done
  [ -d "$R/loop_s$1/final" ] || $TRAIN out_dir=$R/loop_s$1 model.size=$(size "$D") model.rsr=$LOOP seed=$1
}
COMPARE="python -m benchmarks.compare_adapters --model shapes-base --prompts data/eval/geneval.jsonl --images-per-prompt 2 --seed 0 --reuse"
# Seed 0 first, in full: the arms, the adapters on the frozen seed-0 base (the same loop as an RSR adapter,
# and LoRA matched to its parameters, both with the fine-tune recipe configs/finetune_rsr.yaml), every arm
# scored and the loop's T curve.
train_seed 0
BASE0=$(base_dir "$D" 0)
[ -d "$R/adapter/adapter" ] || $DDP finetune --pretrained $BASE0 --config configs/finetune_rsr.yaml --rsr $LOOP --output_dir $R/adapter seed=0
[ -d "$R/lora/adapter" ] || $DDP finetune --pretrained $BASE0 --config configs/finetune_rsr.yaml --method lora --rsr $LOOP --output_dir $R/lora seed=0
T_ARMS=""
for t in 1 2 4 8 12; do T_ARMS="$T_ARMS --arm loop_T$t=:$t --arm-model loop_T$t=$R/loop_s0/final"; done
$COMPARE --arm base --arm-model base=$BASE0 --arm deep --arm-model deep=$(base_dir "$DEEP" 0) $T_ARMS \
    --arm adapter_T1=$R/adapter/adapter:1 --arm adapter_T8=$R/adapter/adapter:8 --arm lora=$R/lora/adapter \
    --arm-model adapter_T1=$BASE0 --arm-model adapter_T8=$BASE0 --arm-model lora=$BASE0 \
    --versus base --versus deep --versus loop_T1 --versus lora \
    --work $R/compare_s0 --out experiments/results/shapes_rsr_depth_s0.json
# Seeds 1 and 2: the deciding rows.
for s in 1 2; do
  train_seed $s
  $COMPARE --arm base --arm-model base=$(base_dir "$D" $s) --arm deep --arm-model deep=$(base_dir "$DEEP" $s) \
      --arm loop_T1=:1 --arm-model loop_T1=$R/loop_s$s/final --arm loop_T8=:8 --arm-model loop_T8=$R/loop_s$s/final \
      --versus base --versus deep --versus loop_T1 --work $R/compare_s$s --out experiments/results/shapes_rsr_depth_s$s.json
done
# The adapters' seeds 1 and 2: the protocol re-runs them when the adapter's row decides a conclusion (seed 0:
# adapter T8 - base excludes zero on X). Fine-tune seeds 1 and 2 on the same frozen seed-0 base, each seed's
# arms in their own folder (the base is re-sampled there with the same noise).
for s in 1 2; do
  [ -d "$R/adapter_s$s/adapter" ] || $DDP finetune --pretrained $BASE0 --config configs/finetune_rsr.yaml --rsr $LOOP --output_dir $R/adapter_s$s seed=$s
  [ -d "$R/lora_s$s/adapter" ] || $DDP finetune --pretrained $BASE0 --config configs/finetune_rsr.yaml --method lora --rsr $LOOP --output_dir $R/lora_s$s seed=$s
  $COMPARE --arm base --arm-model base=$BASE0 --arm adapter_T8=$R/adapter_s$s/adapter:8 --arm lora=$R/lora_s$s/adapter \
      --arm-model adapter_T8=$BASE0 --arm-model lora=$BASE0 --versus base --versus lora \
      --work $R/compare_adapters_s$s --out experiments/results/shapes_rsr_depth_adapters_s$s.json
done
