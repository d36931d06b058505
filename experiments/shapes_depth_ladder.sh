#!/usr/bin/env bash
# Where does depth help on the shapes world? (docs/lab/shapes_depth_ladder.md)
#   experiments/shapes_depth_ladder.sh RUNS
# Text-to-image bases with 1, 2, 3, 4 and 6 blocks (sizes demo-d1 .. demo-d4 and demo), each 2,000 steps x 64
# on the same data stream (configs/base_demo.yaml, seed 0), then all five scored on the committed GenEval-style
# set with identical prompts and noise, paired against the 6-block base. Finished runs are skipped, interrupted
# ones resume. Training about 70 minutes on two cores in all, scoring about 40.
source "$(dirname "$0")/_common.sh"
R=$RUNS/shapes_depth_ladder
TRAIN="$DDP train configs/base_demo.yaml steps=2000 optim.warmup_steps=100"
ARMS=""
for d in 1 2 3 4 6; do
  size=demo-d$d; [ "$d" = 6 ] && size=demo
  [ -d "$R/d$d/final" ] || $TRAIN out_dir=$R/d$d model.size=$size
  ARMS="$ARMS --arm d$d --arm-model d$d=$R/d$d/final"
done
python -m benchmarks.compare_adapters --model shapes-base $ARMS --versus d6 --versus d1 \
    --prompts data/eval/geneval.jsonl --images-per-prompt 2 --seed 0 --reuse --work $R/compare \
    --out experiments/results/shapes_depth_ladder.json
# Width where depth stops: the 6-block base at width 256 (model.size=w256, same recipe and seed), scored
# against the 6-block width-128 base on the same prompts and noise (d6's images are reused).
[ -d "$R/w256/final" ] || $TRAIN out_dir=$R/w256 model.size=w256
python -m benchmarks.compare_adapters --model shapes-base --arm d6 --arm-model d6=$R/d6/final --arm w256 \
    --arm-model w256=$R/w256/final --versus d6 --prompts data/eval/geneval.jsonl --images-per-prompt 2 --seed 0 \
    --reuse --work $R/compare --out experiments/results/shapes_depth_ladder_w256.json
