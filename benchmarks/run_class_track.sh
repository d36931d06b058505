#!/bin/bash
# The class-conditional track of docs/class_track.md, end to end, on a 2-core CPU machine (~5 h; ~4 h with BASE=shapes-dit: each
# fine-tune ~17 min and each arm's 5,040 images ~25 min of one thread):
# DiT base, feature network, the seven adapters of the table (RSR, LoRA, RSR with soft routing, RSR and
# LoRA on circle-weighted data, and the routing levers' repeat: RSR with the levers of the screen and one LoRA
# expert run twice), 5,040 images per arm (two lanes side by side, one thread each: fine-tune an arm,
# sample it, next arm), then the table and its figure. Everything goes into RUNS_DIR; nothing under src/ is touched.
#   bash benchmarks/run_class_track.sh [RUNS_DIR]      (default runs/; every step resumes or reuses)
#   BASE=shapes-dit bash benchmarks/run_class_track.sh  skip step 1 and use the bundled base instead
#   PER_CLASS=105 ...                                   images per class (default 210: 5,040 per arm)
#   LANE_A="rsr_best" LANE_B="rsr lora" ...             only these arms (default: all seven)
# The table is written to RUNS_DIR/class_table.json (benchmarks/results/class_table.json is the copy
# the docs quote: copy it there to update them; tests/test_docs_numbers.py then checks the docs).
set -euo pipefail
R=${1:-runs}
mkdir -p "$R"
if [ -z "${BASE:-}" ]; then
  # 1. the base: 6,000 steps x 64, bundled fp16 into RUNS_DIR (the same format as src/thinkpix/bundled/shapes-dit)
  torchrun --standalone --nproc_per_node 2 -m thinkpix.cli train configs/dit_demo.yaml out_dir=$R/dit_demo
  python - "$R" <<'PY'
import sys, torch
from thinkpix.models.c2i import ClassToImage
ClassToImage.load(f"{sys.argv[1]}/dit_demo/final").save(f"{sys.argv[1]}/shapes-dit", dtype=torch.float16,
    extra_meta={"training": {"config": "configs/dit_demo.yaml", "seed": 0, "steps": 6000, "batch_size": 64,
    "images_seen": 384000, "weights": "EMA (decay 0.999), stored fp16",
    "command": "torchrun --standalone --nproc_per_node 2 -m thinkpix.cli train configs/dit_demo.yaml"}})
PY
  BASE=$R/shapes-dit
fi
T="python -m benchmarks.class_table --model $BASE --per-class ${PER_CLASS:-210} --work $R/class_table"
FT="thinkpix finetune --config configs/finetune_dit.yaml --pretrained $BASE"
L=layers=4,5,experts=2,latent_steps=2,rank=8
BEST=$L,gate_init_std=0.5,tau=1,load_balance_weight=0.01  # the routing screen (docs/lab/routing_levers.md, rsr_best)
TWICE=layers=4,5,experts=1,latent_steps=2,rank=8,base_every_step=true  # the shift table's lora_twice (docs/lab/shift_table.md)
# Each arm's fine-tune arguments (600 steps x 64 each; configs/finetune_dit.yaml's RSR spec unless --rsr).
declare -A FT_ARGS=([lora]="--method lora" [rsr]="" [rsr_soft]="--rsr $L,routing=soft"
  [lora_circle]="--method lora data_mix=circle=4" [rsr_circle]="data_mix=circle=4"
  [rsr_best]="--rsr $BEST" [lora_twice]="--rsr $TWICE")
ORDER="lora rsr rsr_soft lora_circle rsr_circle rsr_best lora_twice"  # the table's row order
# Two lanes side by side (one thread each); each fine-tunes an arm and samples it at once, so neither
# core waits for the other. LANE_A / LANE_B choose the arms (a subset: a smaller table).
LANE_A=${LANE_A:-"rsr_best lora_twice rsr_soft rsr_circle"}
LANE_B=${LANE_B:-"rsr lora lora_circle"}
adapter() { echo "$R/ft_dit_$1/adapter"; }
lane() {
  for a in "$@"; do
    [ -f "$(adapter $a)/checksums.json" ] || $FT --output_dir $R/ft_dit_$a ${FT_ARGS[$a]}  # a finished fine-tune is reused
    $T --features - --threads 1 --sample-only --arm $a=$(adapter $a)
  done
}
# 2. lane A: the feature network, the base's images, then its arms | lane B: its arms
( [ -f $R/features_demo/final/checksums.json ] ||
    thinkpix train configs/features_demo.yaml --export $R/features_demo/final out_dir=$R/features_demo
  $T --features - --threads 1 --sample-only --arm base
  lane $LANE_A ) &
( lane $LANE_B ) &
wait
# 3. the table (each arm also judged by the evaluator before its fix, 98d5e51) and its figure
ARMS=$(for a in $ORDER; do case " $LANE_A $LANE_B " in *" $a "*) echo "--arm $a=$(adapter $a)";; esac; done)
$T --features $R/features_demo/final --arm base $ARMS --before-rev 98d5e51 --out $R/class_table.json
python -m benchmarks.make_figures class-arms --work $R/class_table --arm base --arm lora --arm rsr
